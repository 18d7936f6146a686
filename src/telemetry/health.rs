//! Liveness and readiness, as the shards report them and `/readyz` reads them.
//!
//! [`Health`] is shared (`Arc`) between the start-up code, the shards and the admin thread. It
//! changes only when a shard comes up or goes away and when draining starts, never on the data
//! path, so plain atomic read-modify-writes are fine here. The gateway is ready when every shard
//! is up and it is not draining; a load balancer stops sending new connections as soon as
//! draining starts, while the shards finish what they hold.
//!
//! Each shard also beats: its shutdown watcher, a task woken every few milliseconds, counts up
//! a heartbeat. A shard whose heartbeat stops is alive as a thread but no longer runs its tasks
//! (a task that never yields, a blocking call); systemd's watchdog ping ([`crate::notify`]) is
//! withheld then, so the supervisor restarts what `/readyz` alone would call healthy.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::SystemTime;

/// Shard counts and the draining flag.
#[derive(Debug)]
pub struct Health {
    shards_total: usize,
    shards_up: AtomicUsize,
    draining: AtomicBool,
    /// When every shard was first up (the `health_check` extension's `upSince`).
    up_since: OnceLock<SystemTime>,
    /// Per shard, how many times its watcher task has run.
    heartbeats: Vec<AtomicU64>,
}

/// Why the gateway is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// Fewer shards are up than configured: starting, or a shard was lost.
    ShardsDown {
        /// Shards running now.
        up: usize,
        /// Shards configured.
        total: usize,
    },
    /// Shutdown has begun; no new traffic should be sent here.
    Draining,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::ShardsDown { up, total } => write!(f, "{up} of {total} shards up"),
            NotReady::Draining => write!(f, "draining"),
        }
    }
}

impl Health {
    /// Health for a gateway of `shards_total` shards, none of them up yet.
    pub fn new(shards_total: usize) -> Self {
        Health {
            shards_total,
            shards_up: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            up_since: OnceLock::new(),
            heartbeats: (0..shards_total).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Shard `shard` is running its tasks (called by its heartbeat task, every
    /// [`HEARTBEAT`](crate::lifecycle::HEARTBEAT)).
    pub fn beat(&self, shard: usize) {
        self.heartbeats[shard].fetch_add(1, Ordering::Relaxed);
    }

    /// Every shard's heartbeat count now, by shard id.
    pub fn heartbeats(&self) -> Vec<u64> {
        self.heartbeats
            .iter()
            .map(|beats| beats.load(Ordering::Relaxed))
            .collect()
    }

    /// A shard has started and is serving. Called once per shard.
    ///
    /// # Panics
    ///
    /// If more shards report up than were configured, which would make readiness lie.
    pub fn shard_up(&self) {
        // Release: whatever the shard set up before saying so is visible to whoever sees it up.
        let before = self.shards_up.fetch_add(1, Ordering::Release);
        assert!(
            before < self.shards_total,
            "shard_up called more often than there are shards ({})",
            self.shards_total
        );
        if before + 1 == self.shards_total {
            self.up_since.get_or_init(SystemTime::now);
        }
    }

    /// When every shard was first up, if they have been.
    pub fn up_since(&self) -> Option<SystemTime> {
        self.up_since.get().copied()
    }

    /// A shard has stopped (its executor ended, or it failed).
    pub fn shard_down(&self) {
        let before = self.shards_up.fetch_sub(1, Ordering::Release);
        assert!(before > 0, "shard_down without a matching shard_up");
    }

    /// Shutdown has begun: readiness turns off for good.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// How many shards the gateway was configured with.
    pub fn shards_total(&self) -> usize {
        self.shards_total
    }

    /// How many shards are up now.
    pub fn shards_up(&self) -> usize {
        self.shards_up.load(Ordering::Acquire)
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Ready when every shard is up and the gateway is not draining; otherwise why not.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if self.is_draining() {
            return Err(NotReady::Draining);
        }
        let up = self.shards_up();
        if up < self.shards_total {
            return Err(NotReady::ShardsDown {
                up,
                total: self.shards_total,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_all_shards_up_and_not_draining() {
        let h = Health::new(2);
        assert_eq!(h.readiness(), Err(NotReady::ShardsDown { up: 0, total: 2 }));
        h.shard_up();
        h.shard_up();
        assert_eq!(h.readiness(), Ok(()));
        h.shard_down();
        assert_eq!(h.readiness().unwrap_err().to_string(), "1 of 2 shards up");
        h.shard_up();
        h.start_draining();
        assert_eq!(h.readiness(), Err(NotReady::Draining));
    }
}
