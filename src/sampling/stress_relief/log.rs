//! Stress relief's log lines, node-wide: one [`ReliefLog`] shared by every shard of a node, so
//! that shards changing state together write one line between them, at most one every
//! [`LOG_INTERVAL`]; changes in between are counted and reported by the next line.
//!
//! It is shared as atomics, written by each shard's thread: it is touched only when a shard's
//! state changes and on the decision task's tick (at most every 100 ms a shard), never per
//! request, so sharing it costs the data path nothing.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::Transition;

/// The shortest time between two stress relief log lines of one node.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The node's stress relief log: shards in stress relief, and the changes no line told yet.
#[derive(Debug)]
pub struct ReliefLog {
    shards: usize,
    epoch: Instant,
    active: AtomicUsize,
    activations: AtomicU64,
    deactivations: AtomicU64,
    /// Milliseconds from `epoch` to the last line, plus one (0: no line yet).
    last_line_ms: AtomicU64,
}

/// What one line reports: the node's state now, and the changes since the last line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// Shards in stress relief now.
    pub active: usize,
    /// Shards in all.
    pub shards: usize,
    /// Activations since the last line, this one's included.
    pub activations: u64,
    /// Deactivations since the last line, this one's included.
    pub deactivations: u64,
}

impl ReliefLog {
    /// The log of a node of `shards` shards, none in stress relief.
    pub fn new(shards: usize) -> Self {
        ReliefLog {
            shards,
            epoch: Instant::now(),
            active: AtomicUsize::new(0),
            activations: AtomicU64::new(0),
            deactivations: AtomicU64::new(0),
            last_line_ms: AtomicU64::new(0),
        }
    }

    /// Records one shard's `transition` at `now`; returns the line for that shard to write, if
    /// the node may write one now.
    pub fn changed(&self, transition: Transition, now: Instant) -> Option<Line> {
        match transition {
            Transition::Activated => {
                self.active.fetch_add(1, Relaxed);
                self.activations.fetch_add(1, Relaxed);
            }
            Transition::Deactivated { .. } => {
                self.active.fetch_sub(1, Relaxed);
                self.deactivations.fetch_add(1, Relaxed);
            }
        }
        self.claim(now)
    }

    /// A line reporting changes that no line told yet, if there are some and the node may write
    /// one at `now`: without it, the last change of a burst would go unlogged.
    pub fn pending(&self, now: Instant) -> Option<Line> {
        if self.activations.load(Relaxed) == 0 && self.deactivations.load(Relaxed) == 0 {
            return None;
        }
        self.claim(now)
    }

    /// Takes the node's next line, if [`LOG_INTERVAL`] has passed since the last one.
    fn claim(&self, now: Instant) -> Option<Line> {
        let interval_ms = LOG_INTERVAL.as_millis() as u64;
        let now_ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX - interval_ms)
            + 1;
        let last = self.last_line_ms.load(Relaxed);
        if last != 0 && now_ms < last + interval_ms {
            return None;
        }
        // Another shard claiming the same line wins it.
        self.last_line_ms
            .compare_exchange(last, now_ms, Relaxed, Relaxed)
            .ok()?;
        Some(Line {
            active: self.active.load(Relaxed),
            shards: self.shards,
            activations: self.activations.swap(0, Relaxed),
            deactivations: self.deactivations.swap(0, Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: Transition = Transition::Activated;
    const OFF: Transition = Transition::Deactivated {
        active_for: Duration::from_secs(10),
    };

    #[test]
    fn shards_flapping_together_write_one_line_an_interval() {
        let log = ReliefLog::new(4);
        let t0 = log.epoch;
        let s = Duration::from_secs(1);
        assert_eq!(
            log.changed(ON, t0),
            Some(Line {
                active: 1,
                shards: 4,
                activations: 1,
                deactivations: 0
            })
        );
        // Three more shards within the interval, and one goes off again: no lines.
        assert_eq!(log.changed(ON, t0 + s), None);
        assert_eq!(log.changed(ON, t0 + 2 * s), None);
        assert_eq!(log.changed(ON, t0 + 3 * s), None);
        assert_eq!(log.changed(OFF, t0 + 4 * s), None);
        assert_eq!(log.pending(t0 + 9 * s), None, "the interval has not passed");
        // The tick after the interval tells what was held back.
        assert_eq!(
            log.pending(t0 + 10 * s),
            Some(Line {
                active: 3,
                shards: 4,
                activations: 3,
                deactivations: 1
            })
        );
        assert_eq!(log.pending(t0 + 30 * s), None, "nothing new to tell");
        // A change after the interval is told at once.
        assert_eq!(
            log.changed(OFF, t0 + 31 * s),
            Some(Line {
                active: 2,
                shards: 4,
                activations: 0,
                deactivations: 1
            })
        );
    }
}
