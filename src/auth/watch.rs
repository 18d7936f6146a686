//! The credential-file watcher: one plain thread, off the shards, that re-reads every token
//! file (and every `basicauth` `username_file` and `password_file`) each
//! [`TOKEN_POLL_INTERVAL`] and publishes a changed, valid token set (or Basic pair) to its
//! [`TokenCell`]; the shards see it at their next request.
//!
//! Reading the whole (small, bounded) file each time is simpler and surer than watching
//! modification times, which have a coarse resolution on some file systems and miss a
//! Kubernetes secret swapped through a symlink. A file that disappears, cannot be read, is
//! empty or holds an invalid token keeps the last good tokens in use; each such state is logged
//! once, when it begins (not every poll), and the recovery when it ends.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::client::current_basic_token;
use super::tokens::{read_token_file, tokens_of, TokenCell, TokenError};
use crate::config::Credential;

/// How often each token file is read.
pub const TOKEN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// One credential source to follow: the extension it belongs to, its cell, and what it reads.
#[derive(Debug, Clone)]
pub struct WatchedFile {
    /// The extension's id, for the log.
    pub extension: String,
    /// Where its tokens are published.
    pub cell: Arc<TokenCell>,
    /// What is read.
    pub followed: Followed,
}

/// What a [`WatchedFile`] reads.
#[derive(Debug, Clone)]
pub enum Followed {
    /// `bearertokenauth`'s token file, the cell's [`TokenCell::file`].
    Tokens,
    /// `basicauth`'s `client_auth`, at least one of them a file: its pair is published as
    /// one Basic token.
    Basic {
        /// `username` or `username_file`.
        username: Credential,
        /// `password` or `password_file`.
        password: Credential,
    },
}

/// What the last poll of a file saw.
#[derive(PartialEq)]
enum Seen {
    /// These bytes, valid and published (or loaded at start).
    Good(Vec<u8>),
    /// These bytes, refused.
    Refused(Vec<u8>),
    /// A read error.
    Unreadable(String),
}

struct Follow {
    file: WatchedFile,
    seen: Seen,
}

impl Follow {
    fn poll(&mut self) {
        match &self.file.followed {
            Followed::Tokens => self.poll_tokens(),
            Followed::Basic { username, password } => {
                let now = current_basic_token(username, password);
                self.basic_seen(now);
            }
        }
    }

    /// Publishes the Basic pair read now when it changed; a failure keeps the last good pair,
    /// logged once when it begins.
    fn basic_seen(&mut self, now: Result<String, String>) {
        let extension = &self.file.extension;
        match now {
            Ok(token) => {
                if matches!(&self.seen, Seen::Good(bytes) if bytes == token.as_bytes()) {
                    return;
                }
                self.file.cell.publish(std::slice::from_ref(&token));
                tracing::info!(
                    "extensions.{extension}: client_auth's credentials changed; sent from the \
                     next request"
                );
                self.seen = Seen::Good(token.into_bytes());
            }
            Err(why) => {
                if self.seen != Seen::Unreadable(why.clone()) {
                    tracing::warn!(
                        "extensions.{extension}.client_auth.{why}; keeping the last good \
                         credentials"
                    );
                    self.seen = Seen::Unreadable(why);
                }
            }
        }
    }

    fn poll_tokens(&mut self) {
        let extension = &self.file.extension;
        // A token cell that is followed was read from a file (`Watcher::start` keeps no other).
        let Some(file) = self.file.cell.file() else {
            return;
        };
        let path = file.display();
        let now = match read_token_file(file) {
            Ok(bytes) => bytes,
            Err(err) => {
                let why = err.to_string();
                if self.seen != Seen::Unreadable(why.clone()) {
                    tracing::warn!(
                        "extensions.{extension}: token file {path}: {why}; keeping the last \
                         good token(s)"
                    );
                    self.seen = Seen::Unreadable(why);
                }
                return;
            }
        };
        match &self.seen {
            Seen::Good(bytes) | Seen::Refused(bytes) if *bytes == now => return,
            _ => {}
        }
        match tokens_of(&now) {
            Ok(tokens) => {
                self.file.cell.publish(&tokens);
                tracing::info!(
                    "extensions.{extension}: token file {path} changed; {} token(s) in use",
                    tokens.len()
                );
                self.seen = Seen::Good(now);
            }
            Err(err) => {
                let verb = match err {
                    TokenError::Empty => "is empty",
                    _ => "is refused",
                };
                tracing::warn!(
                    "extensions.{extension}: token file {path} {verb} ({err}); keeping the last \
                     good token(s)"
                );
                self.seen = Seen::Refused(now);
            }
        }
    }
}

/// The running watcher; stops (and joins its thread) when dropped.
pub struct Watcher {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts following `files` (each cell's `file()`), whose current contents were loaded
    /// already; `None` when there is nothing to follow.
    pub fn start(files: Vec<WatchedFile>) -> std::io::Result<Option<Watcher>> {
        let mut follows: Vec<Follow> = files
            .into_iter()
            .filter_map(|file| {
                if let Followed::Basic { username, password } = &file.followed {
                    // What start-up read, as the token files below.
                    let seen = match current_basic_token(username, password) {
                        Ok(token) => {
                            file.cell.publish(std::slice::from_ref(&token));
                            Seen::Good(token.into_bytes())
                        }
                        Err(why) => Seen::Unreadable(why),
                    };
                    return Some(Follow { file, seen });
                }
                // The file may have changed since start-up read it: what is there now is
                // published, quietly (it is what start-up would have read), and counts as seen.
                let seen = match read_token_file(file.cell.file()?) {
                    Ok(bytes) => match tokens_of(&bytes) {
                        Ok(tokens) => {
                            file.cell.publish(&tokens);
                            Seen::Good(bytes)
                        }
                        Err(_) => Seen::Refused(bytes),
                    },
                    Err(err) => Seen::Unreadable(err.to_string()),
                };
                Some(Follow { file, seen })
            })
            .collect();
        if follows.is_empty() {
            return Ok(None);
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tailgate-tokens".into())
            .spawn(move || loop {
                match stopped.recv_timeout(TOKEN_POLL_INTERVAL) {
                    Err(RecvTimeoutError::Timeout) => follows.iter_mut().for_each(Follow::poll),
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })?;
        Ok(Some(Watcher {
            stop: Some(stop),
            thread: Some(thread),
        }))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::auth::TokenView;

    fn follow(dir: &std::path::Path, text: &str) -> (Follow, TokenView, PathBuf) {
        let path = dir.join("token");
        std::fs::write(&path, text).unwrap();
        let tokens = tokens_of(text.as_bytes()).unwrap();
        let cell = Arc::new(TokenCell::new("Bearer", &tokens, Some(path.clone())));
        let view = TokenView::new(cell.clone());
        let follow = Follow {
            file: WatchedFile {
                extension: "bearertokenauth".into(),
                cell,
                followed: Followed::Tokens,
            },
            seen: Seen::Good(text.as_bytes().to_vec()),
        };
        (follow, view, path)
    }

    #[test]
    fn a_changed_file_is_published_and_a_broken_one_keeps_the_last_tokens() {
        let dir = std::env::temp_dir().join(format!("tailgate-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut follow, view, path) = follow(&dir, "first\n");
        follow.poll();
        assert_eq!(&*view.current().0, ["Bearer first"]);

        std::fs::write(&path, "second\n").unwrap();
        follow.poll();
        assert_eq!(&*view.current().0, ["Bearer second"]);

        for broken in ["", "\n  \n", "bad\u{1}token\n"] {
            std::fs::write(&path, broken).unwrap();
            follow.poll();
            assert_eq!(&*view.current().0, ["Bearer second"], "{broken:?}");
        }
        std::fs::remove_file(&path).unwrap();
        follow.poll();
        assert!(matches!(follow.seen, Seen::Unreadable(_)));
        assert_eq!(&*view.current().0, ["Bearer second"]);

        std::fs::write(&path, "third\nfourth\n").unwrap();
        follow.poll();
        assert_eq!(&*view.current().0, ["Bearer third", "Bearer fourth"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `basicauth`'s files: a changed pair is published, trimmed; an empty, missing or
    /// refused one keeps the last good pair.
    #[test]
    fn basic_credential_files_are_followed_and_a_broken_one_keeps_the_last_pair() {
        use crate::auth::ClientAuth;
        let dir = std::env::temp_dir().join(format!("tailgate-watch3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (user, pass) = (dir.join("username"), dir.join("password"));
        std::fs::write(&user, "alice\n").unwrap();
        std::fs::write(&pass, "  one\n").unwrap();
        let (username, password) = (
            Credential::File(user.clone()),
            Credential::File(pass.clone()),
        );
        let cell = ClientAuth::basic_cell(&username, &password).unwrap();
        let view = TokenView::new(cell.clone());
        // base64("alice:one")
        assert_eq!(&*view.current().0, ["Basic YWxpY2U6b25l"]);
        let mut follow = Follow {
            file: WatchedFile {
                extension: "basicauth/out".into(),
                cell,
                followed: Followed::Basic { username, password },
            },
            seen: Seen::Good(b"YWxpY2U6b25l".to_vec()),
        };
        std::fs::write(&pass, "two").unwrap();
        follow.poll();
        // base64("alice:two")
        assert_eq!(&*view.current().0, ["Basic YWxpY2U6dHdv"]);
        for (file, broken) in [(&pass, "\n"), (&user, "bob:by"), (&pass, "a\u{1}b")] {
            let good = std::fs::read(file).unwrap();
            std::fs::write(file, broken).unwrap();
            follow.poll();
            assert!(matches!(follow.seen, Seen::Unreadable(_)), "{broken:?}");
            assert_eq!(&*view.current().0, ["Basic YWxpY2U6dHdv"], "{broken:?}");
            std::fs::write(file, good).unwrap();
        }
        std::fs::remove_file(&user).unwrap();
        follow.poll();
        assert_eq!(&*view.current().0, ["Basic YWxpY2U6dHdv"]);
        std::fs::write(&user, "bob").unwrap();
        follow.poll();
        // base64("bob:two")
        assert_eq!(&*view.current().0, ["Basic Ym9iOnR3bw=="]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_watcher_thread_stops_when_dropped() {
        let dir = std::env::temp_dir().join(format!("tailgate-watch2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (follow, _view, _path) = follow(&dir, "t\n");
        let watcher = Watcher::start(vec![follow.file.clone()]).unwrap();
        assert!(watcher.is_some());
        drop(watcher);
        assert!(Watcher::start(Vec::new()).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
