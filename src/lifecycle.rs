//! Process lifecycle: turning SIGTERM and SIGINT into each shard's stop signal.
//!
//! Signals arrive on one process-wide flag, set by `signal-hook`'s handler. Shards are
//! single-threaded executors that share nothing, so each shard runs a small watcher task that
//! looks at the flag every `SIGNAL_POLL_MS` milliseconds and, once it is set, triggers the
//! shard's own [`Stop`]. The poll costs one atomic load per interval per shard.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tailgate_shards::sync::Stop;

use crate::telemetry::Health;

/// How often a shard looks at the process-wide shutdown flag.
pub(crate) const SIGNAL_POLL_MS: u64 = 20;

/// Raises this process's open-file limit to its hard limit: every client connection is a file
/// descriptor, and the default soft limit (often 1024) is far below what a gateway holds.
pub fn raise_open_files_limit() {
    if let Ok((soft, hard)) = crate::sys::open_files_limits() {
        if soft < hard && crate::sys::set_open_files_limits(hard, hard).is_err() {
            tracing::warn!("could not raise the open-file limit to {hard}");
        }
    }
}

/// Registers SIGTERM and SIGINT to set the returned flag.
pub(crate) fn shutdown_flag() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, flag.clone())?;
    }
    Ok(flag)
}

/// Registers SIGHUP to set the returned flag: a configuration reload, which the main thread
/// makes (see `crate::gateway`). Without it SIGHUP's default action would end the process.
pub(crate) fn reload_flag() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, flag.clone())?;
    Ok(flag)
}

/// Triggers `stop` once `flag` is set, or once `stop` is triggered by other means; beats
/// shard `shard`'s heartbeat in `health` each time it looks.
pub(crate) async fn watch(flag: Arc<AtomicBool>, stop: Rc<Stop>, health: &Health, shard: usize) {
    while !flag.load(Ordering::Relaxed) && !stop.is_triggered() {
        health.beat(shard);
        glommio::timer::sleep(Duration::from_millis(SIGNAL_POLL_MS)).await;
    }
    stop.trigger();
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
pub(crate) fn fail_stop_on_panic(flag: Arc<AtomicBool>) {
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
        flag.store(true, Ordering::Relaxed);
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
