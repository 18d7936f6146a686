//! Bearer tokens: the values a `bearertokenauth` extension accepts (server side) and sends
//! (client side), written in the configuration or read from a file that may change while the
//! gateway runs.
//!
//! A [`TokenCell`] holds an extension's current *authorization values*, as the Collector
//! forms them: `SCHEME TOKEN` (or the token alone when `scheme` is empty). It is shared by
//! every shard. A token file is re-read by the watcher thread (`super::watch`), which publishes
//! a new set here: stored under a mutex, then announced by bumping a generation counter. A
//! shard reads through its own [`TokenView`]: one atomic load per request to see whether the
//! generation moved, and only when it did, the mutex, once, to copy the new set. So the data
//! path takes no lock while nothing changes, and sees a change at its next request.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The largest token file read (64 KiB): far above any token list; a bound on what a wrong
/// path (a log file) makes the watcher read every poll.
pub const TOKEN_FILE_BYTES_MAX: usize = 64 * 1024;

/// The most tokens one extension holds (a server compares each request with every one).
pub const TOKENS_MAX: usize = 256;

/// Why a token, or a token file, is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The file could not be read (the `io::Error`'s text).
    Read(String),
    /// The file is larger than [`TOKEN_FILE_BYTES_MAX`].
    TooLarge,
    /// The file has no token (empty, or blank lines only).
    Empty,
    /// More than [`TOKENS_MAX`] tokens.
    TooMany(usize),
    /// A token that cannot travel in an HTTP header: `line` is 1-based in a file, the index
    /// plus one in a list.
    Invalid {
        /// Where the token is.
        line: usize,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Read(why) => write!(f, "cannot read it: {why}"),
            TokenError::TooLarge => write!(
                f,
                "it is larger than {TOKEN_FILE_BYTES_MAX} bytes; a token file holds tokens, \
                 one a line"
            ),
            TokenError::Empty => write!(f, "it holds no token (one token a line)"),
            TokenError::TooMany(n) => {
                write!(f, "it holds {n} tokens; at most {TOKENS_MAX} are allowed")
            }
            TokenError::Invalid { line, why } => write!(f, "line {line}: {why}"),
        }
    }
}

/// Checks one token: not empty, printable ASCII, no leading or trailing space. (Header values
/// allow a little more, but a token with a control character or a line break is a mistake, and
/// one with bytes past ASCII would be sent differently by different clients.)
pub fn check_token(token: &str) -> Result<(), &'static str> {
    if token.is_empty() {
        return Err("the token is empty");
    }
    if !token.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err("a token may hold printable ASCII only (no control characters or line breaks)");
    }
    if token.starts_with(' ') || token.ends_with(' ') {
        return Err("a token may not begin or end with a space");
    }
    Ok(())
}

/// The tokens of a token file's text, as the Collector reads one: a token a line, each line
/// trimmed; blank lines are skipped.
pub fn parse_token_file(text: &str) -> Result<Vec<String>, TokenError> {
    let mut tokens = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let token = line.trim();
        if token.is_empty() {
            continue;
        }
        check_token(token).map_err(|why| TokenError::Invalid {
            line: index + 1,
            why,
        })?;
        tokens.push(token.to_string());
    }
    match tokens.len() {
        0 => Err(TokenError::Empty),
        n if n > TOKENS_MAX => Err(TokenError::TooMany(n)),
        _ => Ok(tokens),
    }
}

/// Reads a token file's bytes, at most [`TOKEN_FILE_BYTES_MAX`] of them.
pub fn read_token_file(path: &Path) -> Result<Vec<u8>, TokenError> {
    let file = std::fs::File::open(path).map_err(|e| TokenError::Read(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(TOKEN_FILE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TokenError::Read(e.to_string()))?;
    if bytes.len() > TOKEN_FILE_BYTES_MAX {
        return Err(TokenError::TooLarge);
    }
    Ok(bytes)
}

/// The tokens in a token file's bytes.
pub fn tokens_of(bytes: &[u8]) -> Result<Vec<String>, TokenError> {
    let text = std::str::from_utf8(bytes).map_err(|e| TokenError::Invalid {
        line: bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1,
        why: "not UTF-8 text",
    })?;
    parse_token_file(text)
}

/// One extension's current authorization values, shared by every shard; see the module
/// documentation.
pub struct TokenCell {
    /// `scheme` and a space, or nothing: what each token is prefixed with.
    prefix: String,
    /// Bumped after each publication.
    generation: AtomicU64,
    values: Mutex<Arc<[String]>>,
    /// The file the tokens come from, if any (for the watcher).
    file: Option<PathBuf>,
}

impl TokenCell {
    /// A cell for `tokens` (each already checked) sent or accepted as `SCHEME TOKEN`, or as
    /// the token alone when `scheme` is empty; `file` is where they were read from, if they
    /// were.
    pub fn new(scheme: &str, tokens: &[String], file: Option<PathBuf>) -> TokenCell {
        let prefix = if scheme.is_empty() {
            String::new()
        } else {
            format!("{scheme} ")
        };
        let values = Self::values(&prefix, tokens);
        TokenCell {
            prefix,
            generation: AtomicU64::new(0),
            values: Mutex::new(values),
            file,
        }
    }

    fn values(prefix: &str, tokens: &[String]) -> Arc<[String]> {
        tokens.iter().map(|t| format!("{prefix}{t}")).collect()
    }

    /// The token file, when the tokens come from one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Replaces the tokens; every shard sees the new ones from its next request on.
    pub fn publish(&self, tokens: &[String]) {
        let values = Self::values(&self.prefix, tokens);
        *self.values.lock().unwrap_or_else(PoisonError::into_inner) = values;
        // Release: a shard that sees the new generation finds the new values under the lock.
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn snapshot(&self) -> (u64, Arc<[String]>) {
        let generation = self.generation.load(Ordering::Acquire);
        let values = self
            .values
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (generation, values)
    }
}

impl fmt::Debug for TokenCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the values: they are credentials.
        f.debug_struct("TokenCell")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// One shard's view of a [`TokenCell`]: its own copy of the values, refreshed when the
/// generation moves.
pub struct TokenView {
    cell: Arc<TokenCell>,
    seen: Cell<u64>,
    values: RefCell<Arc<[String]>>,
}

impl TokenView {
    /// A view of `cell` for the calling shard.
    pub fn new(cell: Arc<TokenCell>) -> TokenView {
        let (generation, values) = cell.snapshot();
        TokenView {
            cell,
            seen: Cell::new(generation),
            values: RefCell::new(values),
        }
    }

    /// The current authorization values (never empty), and whether they changed since the
    /// last call.
    pub fn current(&self) -> (Arc<[String]>, bool) {
        let generation = self.cell.generation.load(Ordering::Acquire);
        if generation == self.seen.get() {
            return (self.values.borrow().clone(), false);
        }
        let (generation, values) = self.cell.snapshot();
        self.seen.set(generation);
        *self.values.borrow_mut() = values.clone();
        (values, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_hold_a_token_a_line() {
        assert_eq!(
            parse_token_file("  first \n\nsecond\r\n").unwrap(),
            vec!["first".to_string(), "second".to_string()]
        );
        assert_eq!(parse_token_file(" \n\n"), Err(TokenError::Empty));
        assert_eq!(parse_token_file(""), Err(TokenError::Empty));
        assert!(matches!(
            parse_token_file("ok\nbad\u{7}token\n"),
            Err(TokenError::Invalid { line: 2, .. })
        ));
        assert!(matches!(
            tokens_of(b"ok\n\xff\n"),
            Err(TokenError::Invalid { line: 2, .. })
        ));
        let many = "t\n".repeat(TOKENS_MAX + 1);
        assert_eq!(
            parse_token_file(&many),
            Err(TokenError::TooMany(TOKENS_MAX + 1))
        );
    }

    #[test]
    fn tokens_are_printable_ascii_without_outer_spaces() {
        assert!(check_token("abc.DEF-123_~+/=").is_ok());
        assert!(check_token("with inner space").is_ok());
        assert!(check_token("").is_err());
        assert!(check_token(" lead").is_err());
        assert!(check_token("tab\there").is_err());
        assert!(check_token("naïve").is_err());
    }

    #[test]
    fn values_carry_the_scheme_and_views_see_a_publication_once() {
        let cell = Arc::new(TokenCell::new("Bearer", &["one".into()], None));
        let view = TokenView::new(cell.clone());
        let (values, changed) = view.current();
        assert_eq!(&*values, ["Bearer one".to_string()]);
        assert!(!changed);
        cell.publish(&["two".into(), "three".into()]);
        let (values, changed) = view.current();
        assert_eq!(
            &*values,
            ["Bearer two".to_string(), "Bearer three".to_string()]
        );
        assert!(changed);
        assert!(!view.current().1);
        let bare = TokenCell::new("", &["raw".into()], None);
        assert_eq!(&*TokenView::new(Arc::new(bare)).current().0, ["raw"]);
    }

    #[test]
    fn debug_output_hides_the_tokens() {
        let cell = TokenCell::new("Bearer", &["s3cret".into()], None);
        assert!(!format!("{cell:?}").contains("s3cret"));
    }
}
