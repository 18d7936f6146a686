//! Certificate rotation: a thread that reads each TLS configuration's files again on its
//! `reload_interval` and swaps in what changed.
//!
//! A new file that does not parse, or a key that does not match its certificate (as happens for
//! a moment while a rotation writes the two files one after the other), keeps the configuration
//! in use; the failure is logged once per distinct cause and counted, and the next interval
//! tries again. Files are compared by content, so touching a file changes nothing.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Reload, Reloaded};
use crate::telemetry::{Counter, RegistryBuilder};

/// How often a client CA file is read when only `client_ca_file_reload` asks for it.
pub const CLIENT_CA_POLL: Duration = Duration::from_secs(5);

/// One configuration and its reload counters.
pub struct Watched {
    config: Arc<dyn Reload>,
    swapped: Counter,
    failed: Counter,
}

impl Watched {
    /// Registers `tailgate_tls_reloads{component, outcome}` for `config`.
    pub fn register(builder: &mut RegistryBuilder, config: Arc<dyn Reload>) -> Watched {
        let help = "Number of times a TLS configuration's files were read again and found \
                    changed: swapped in (outcome=swapped), or kept out because they did not \
                    load (outcome=failed; the previous certificate stays in use).";
        let swapped = builder.counter(
            "tailgate_tls_reloads",
            help,
            &[("component", config.label()), ("outcome", "swapped")],
        );
        let failed = builder.counter(
            "tailgate_tls_reloads",
            help,
            &[("component", config.label()), ("outcome", "failed")],
        );
        Watched {
            config,
            swapped,
            failed,
        }
    }
}

/// The reload thread; it stops when dropped.
pub struct Reloader {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reloader {
    /// Starts watching every configuration of `watched` that has an interval; none: no thread.
    pub fn start(watched: Vec<Watched>) -> std::io::Result<Reloader> {
        let watched: Vec<Watched> = watched
            .into_iter()
            .filter(|w| w.config.interval().is_some())
            .collect();
        if watched.is_empty() {
            return Ok(Reloader {
                stop: None,
                thread: None,
            });
        }
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tls-reload".into())
            .spawn(move || run(watched, &stopped))?;
        Ok(Reloader {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(watched: Vec<Watched>, stopped: &mpsc::Receiver<()>) {
    let start = Instant::now();
    let mut due: Vec<Instant> = watched
        .iter()
        .map(|w| start + w.config.interval().unwrap_or(Duration::MAX / 4))
        .collect();
    let mut last_failure: Vec<Option<String>> = vec![None; watched.len()];
    loop {
        let next = due.iter().min().copied().unwrap_or(start);
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            // Stopped (the sender is dropped; nothing is ever sent).
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        for (i, w) in watched.iter().enumerate() {
            if due[i] > now {
                continue;
            }
            due[i] = now + w.config.interval().unwrap_or(Duration::MAX / 4);
            match w.config.reload() {
                Reloaded::Unchanged => {}
                Reloaded::Swapped => {
                    w.swapped.inc();
                    last_failure[i] = None;
                    tracing::info!(
                        "{}: TLS files changed; new connections use the new certificate",
                        w.config.label()
                    );
                }
                Reloaded::Failed(why) => {
                    w.failed.inc();
                    if last_failure[i].as_deref() != Some(why.as_str()) {
                        tracing::warn!(
                            "{}: TLS files changed but do not load, keeping the certificate in \
                             use: {why}",
                            w.config.label()
                        );
                        last_failure[i] = Some(why);
                    }
                }
            }
        }
    }
}
