//! Process lifecycle: turning SIGTERM and SIGINT into each shard's stop signal.
//!
//! Signals arrive on one process-wide [`Shutdown`]: `signal-hook`'s handler sets its flag and
//! then rings a bell per shard ([`crate::bell`]). Shards are single-threaded executors that share
//! nothing, so each shard runs a small watcher task that sleeps until its bell rings and then,
//! the flag being set, triggers the shard's own [`Stop`]. A fatal panic and a shard that could
//! not start trigger the same shutdown. Nothing polls: an idle shard does not wake for it.
//!
//! Each shard also beats its heartbeat (read by the systemd watchdog, [`crate::notify`]) every
//! [`HEARTBEAT`], on the shard's common beat so it shares its wake with the other periodic
//! tasks.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tailgate_shards::sync::Stop;

use crate::bell::{Bell, Ear};
use crate::telemetry::Health;

/// How often each shard beats its heartbeat.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(100);

/// Raises this process's open-file limit to its hard limit: every client connection is a file
/// descriptor, and the default soft limit (often 1024) is far below what a gateway holds.
pub fn raise_open_files_limit() {
    if let Ok((soft, hard)) = crate::sys::open_files_limits() {
        if soft < hard && crate::sys::set_open_files_limits(hard, hard).is_err() {
            tracing::warn!("could not raise the open-file limit to {hard}");
        }
    }
}

/// The process-wide shutdown: a flag, and a bell per shard rung each time it is set.
pub(crate) struct Shutdown {
    flag: Arc<AtomicBool>,
    bells: Vec<Bell>,
}

impl Shutdown {
    /// The shutdown of a gateway of `shards` shards, set by SIGTERM and SIGINT from now on.
    pub(crate) fn register(shards: usize) -> std::io::Result<Arc<Shutdown>> {
        let flag = Arc::new(AtomicBool::new(false));
        let bells = Bell::per_shard(shards)?;
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            // The flag first: signal-hook runs a signal's actions in the order they were
            // registered, so a shard woken by its bell finds the flag set.
            signal_hook::flag::register(signal, flag.clone())?;
            for bell in &bells {
                bell.ring_on_signal(signal)?;
            }
        }
        Ok(Arc::new(Shutdown { flag, bells }))
    }

    /// Begins the shutdown: every shard's watcher wakes and stops its shard.
    pub(crate) fn trigger(&self) {
        self.flag.store(true, Ordering::Release);
        for bell in &self.bells {
            bell.ring();
        }
    }

    /// Whether the shutdown has begun.
    pub(crate) fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Shard `shard`'s bell, for its watcher (once).
    fn take_ear(&self, shard: usize) -> Option<Ear> {
        self.bells[shard].take_ear()
    }
}

/// Registers SIGHUP to set the returned flag: a configuration reload, which the main thread
/// makes (see `crate::gateway`). Without it SIGHUP's default action would end the process.
pub(crate) fn reload_flag() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, flag.clone())?;
    Ok(flag)
}

/// Triggers `stop` once `shutdown` is (or once `stop` is triggered by other means), waking only
/// when shard `shard`'s bell rings.
pub(crate) async fn watch(shutdown: Arc<Shutdown>, stop: Rc<Stop>, shard: usize) {
    let mut ear = shutdown
        .take_ear(shard)
        .expect("each shard's one watcher takes its bell");
    while !shutdown.is_triggered() && !stop.is_triggered() {
        futures_lite::future::or(ear.heard(), stop.wait()).await;
    }
    stop.trigger();
}

/// Beats shard `shard`'s heartbeat in `health` every [`HEARTBEAT`] until `stop`.
pub(crate) async fn beat(health: Arc<Health>, stop: Rc<Stop>, shard: usize) {
    while !stop.is_triggered() {
        health.beat(shard);
        crate::bell::sleep_to_beat(HEARTBEAT).await;
    }
}

/// The exit status of a gateway stopped by a fatal internal error (a panic on a shard):
/// `EX_SOFTWARE` from sysexits(3), so a supervisor tells it from a refused configuration (1).
pub(crate) const FATAL_EXIT_CODE: i32 = 70;

/// How long the shards that are still running get to drain after a fatal error before the
/// process exits regardless.
pub(crate) const FATAL_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes any panic fatal to the whole process, cleanly: fail-stop, never half-serving.
///
/// A shard is one thread that owns its listeners, connections, trace buffer and queues. A panic
/// unwinds that thread, but the process would go on: the dead shard's SO_REUSEPORT listeners
/// stay bound, so the kernel keeps handing them a share of new connections that nobody will
/// serve, and the traces it owned can no longer be decided. Containing the panic to one
/// connection's task instead would keep serving on state (buffers, counters, queues shared by
/// the shard's tasks) that the panic may have left half-updated. So the rule is fail-stop: the
/// hook logs one clear line naming the thread, sets the process-wide shutdown flag so the
/// other shards stop accepting and drain what they hold (sending it upstream), and ends the
/// process with [`FATAL_EXIT_CODE`] once they have, or after [`FATAL_DRAIN_TIMEOUT`] at most —
/// so that systemd (`Restart=on-failure`) or the orchestrator starts a fresh one.
pub(crate) fn fail_stop_on_panic(shutdown: Arc<Shutdown>) {
    static FATAL: AtomicBool = AtomicBool::new(false);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("an unnamed thread");
        tracing::error!(
            "fatal: {name} panicked ({info}); stopping the gateway: the other shards drain, \
             then the process exits with status {FATAL_EXIT_CODE} for its supervisor to restart it"
        );
        shutdown.trigger();
        if !FATAL.swap(true, Ordering::SeqCst) {
            let _ = std::thread::Builder::new()
                .name("tailgate-fail-stop".into())
                .spawn(|| {
                    std::thread::sleep(FATAL_DRAIN_TIMEOUT);
                    tracing::error!(
                        "fatal: the shards did not drain within {FATAL_DRAIN_TIMEOUT:?}; exiting"
                    );
                    std::process::exit(FATAL_EXIT_CODE);
                });
        }
    }));
}

/// Fault injection for the fail-stop tests, in debug builds only: with
/// `TAILGATE_FAULT_INJECTION=panic` in the environment, a request for [`FAULT_INJECTION_PATH`]
/// panics the shard serving it. Release builds have no such path.
#[cfg(debug_assertions)]
pub(crate) fn fault_injected(path: &str) -> bool {
    path == FAULT_INJECTION_PATH
        && std::env::var("TAILGATE_FAULT_INJECTION").is_ok_and(|v| v == "panic")
}

/// The path that panics a shard when fault injection is on (debug builds only).
#[cfg(debug_assertions)]
pub const FAULT_INJECTION_PATH: &str = "/__tailgate/fault/panic";
