//! Certificate rotation: a thread that reads each TLS configuration's files again on its
//! `reload_interval` and swaps in what changed.
//!
//! A new file that does not parse, or a key that does not match its certificate (as happens for
//! a moment while a rotation writes the two files one after the other), keeps the configuration
//! in use; the failure is logged once per distinct cause and counted, and the next interval
//! tries again. Files are compared by content, so touching a file changes nothing.
//!
//! A configuration reload hands the thread the new set ([`Reloader::replace`]): the same
//! thread goes on, so the counters it writes keep one writer.

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
    /// New sets to watch; dropping it stops the thread.
    sets: Option<mpsc::Sender<Vec<Watched>>>,
    thread: Option<JoinHandle<()>>,
}

/// The configurations of `watched` that have an interval.
fn with_interval(watched: Vec<Watched>) -> Vec<Watched> {
    watched
        .into_iter()
        .filter(|w| w.config.interval().is_some())
        .collect()
}

impl Reloader {
    /// Starts watching every configuration of `watched` that has an interval; none: no thread.
    pub fn start(watched: Vec<Watched>) -> std::io::Result<Reloader> {
        let mut reloader = Reloader {
            sets: None,
            thread: None,
        };
        reloader.replace(watched)?;
        Ok(reloader)
    }

    /// Watches `watched` instead of what it watched (a configuration reload), on the same
    /// thread; starts the thread if it had nothing to watch before.
    pub fn replace(&mut self, watched: Vec<Watched>) -> std::io::Result<()> {
        let watched = with_interval(watched);
        if let Some(sets) = &self.sets {
            // The thread runs until this side is dropped, so the send reaches it.
            let _ = sets.send(watched);
            return Ok(());
        }
        if watched.is_empty() {
            return Ok(());
        }
        let (sets, received) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tls-reload".into())
            .spawn(move || run(watched, &received))?;
        self.sets = Some(sets);
        self.thread = Some(thread);
        Ok(())
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        drop(self.sets.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut watched: Vec<Watched>, sets: &mpsc::Receiver<Vec<Watched>>) {
    let schedule = |watched: &[Watched]| -> Vec<Instant> {
        let start = Instant::now();
        watched
            .iter()
            .map(|w| start + w.config.interval().unwrap_or(Duration::MAX / 4))
            .collect()
    };
    let mut due = schedule(&watched);
    let mut last_failure: Vec<Option<String>> = vec![None; watched.len()];
    loop {
        // With nothing to watch (a reload removed it all), wait for the next set.
        let next = due
            .iter()
            .min()
            .copied()
            .unwrap_or(Instant::now() + Duration::from_secs(3600));
        match sets.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(set) => {
                watched = set;
                due = schedule(&watched);
                last_failure = vec![None; watched.len()];
                continue;
            }
            // Stopped: the sender is dropped.
            Err(RecvTimeoutError::Disconnected) => return,
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
