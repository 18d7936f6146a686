//! Process lifecycle: turning SIGTERM and SIGINT into each shard's stop signal.
//!
//! Signals arrive on one process-wide flag, set by `signal-hook`'s handler. Shards are
//! single-threaded executors that share nothing, so each shard runs a small watcher task that
//! looks at the flag every [`SIGNAL_POLL_MS`] milliseconds and, once it is set, triggers the
//! shard's own [`Stop`]. The poll costs one atomic load per interval per shard.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::ingest::stop::Stop;

/// How often a shard looks at the process-wide shutdown flag.
pub const SIGNAL_POLL_MS: u64 = 20;

/// Raises this process's open-file limit to its hard limit: every client connection is a file
/// descriptor, and the default soft limit (often 1024) is far below what a gateway holds.
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the `rlimit` struct passed by pointer,
    // which lives on this stack frame for the duration of each call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("could not raise the open-file limit to {}", limit.rlim_max);
            }
        }
    }
}

/// Registers SIGTERM and SIGINT to set the returned flag.
pub fn shutdown_flag() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, flag.clone())?;
    }
    Ok(flag)
}

/// Triggers `stop` once `flag` is set, or once `stop` is triggered by other means.
pub async fn watch(flag: Arc<AtomicBool>, stop: Rc<Stop>) {
    while !flag.load(Ordering::Relaxed) && !stop.is_triggered() {
        glommio::timer::sleep(Duration::from_millis(SIGNAL_POLL_MS)).await;
    }
    stop.trigger();
}
