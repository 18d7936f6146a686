//! The node's memory budget: what each shard holds, and the flags that make every shard refuse
//! data a full shard would have to hold.
//!
//! `memory_limiter` gives the node one budget (the tightest limit any pipeline names, or half
//! the machine's memory without one), split evenly across shards. A shard holds data in two
//! places that can grow with a slow upstream: its trace buffer (with tail sampling) and its
//! exporters' batches, queued or being sent. [`ShardMemory`] adds the two up on the shard's
//! own thread; when the sum reaches the shard's share, the shard raises its [`Overload`] flag
//! and every receiving shard refuses requests that would hand it more (RESOURCE_EXHAUSTED with
//! `RetryInfo`, or 429 with `Retry-After`), until exports and decisions bring it back under.
//!
//! The Collector's memory_limiter measures the Go heap and refuses above `limit - spike`; here
//! the held bytes are counted exactly instead, so a refusal never depends on when a garbage
//! collector last ran. The allowance for spikes is where the trace buffer starts deciding
//! traces early (see `crate::sampling`).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::telemetry::Gauge;

/// Which shards are full (refusing data they would hold). Shared by all shards; each flag is
/// written by its own shard only, and read by every shard's receivers.
#[derive(Debug)]
pub struct Overload {
    full: Box<[AtomicBool]>,
}

impl Overload {
    pub fn new(shards: usize) -> Self {
        Overload {
            full: (0..shards).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Whether `shard` refuses new data now.
    #[inline]
    pub fn is_full(&self, shard: usize) -> bool {
        self.full[shard].load(Ordering::Relaxed)
    }

    fn set(&self, shard: usize, full: bool) {
        if self.full[shard].load(Ordering::Relaxed) != full {
            self.full[shard].store(full, Ordering::Relaxed);
        }
    }
}

/// One shard's account of the bytes it holds, against its share of the budget. Shard-local:
/// only the shard's own tasks touch it.
#[derive(Debug)]
pub struct ShardMemory {
    shard: usize,
    limit: u64,
    overload: Arc<Overload>,
    /// The trace buffer's bytes, as its sampler last published them.
    buffered: Cell<u64>,
    /// Whether the buffer refuses on its own (`block_on_overflow` at `num_traces`).
    buffer_full: Cell<bool>,
    /// Bytes of batches the shard's exporters hold: queued, or being sent and retried.
    exporting: Cell<u64>,
    exporting_gauge: Gauge,
}

impl ShardMemory {
    /// The account of `shard`, whose share of the node's budget is `limit` bytes.
    pub fn new(shard: usize, limit: u64, overload: Arc<Overload>, exporting_gauge: Gauge) -> Self {
        ShardMemory {
            shard,
            limit,
            overload,
            buffered: Cell::new(0),
            buffer_full: Cell::new(false),
            exporting: Cell::new(0),
            exporting_gauge,
        }
    }

    /// The shard this account is of.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// The shard's share of the node's budget.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Everything the shard holds now.
    pub fn held(&self) -> u64 {
        self.buffered.get() + self.exporting.get()
    }

    /// The trace buffer now holds `bytes`; `full` when it refuses more on its own terms.
    pub fn set_buffered(&self, bytes: u64, full: bool) {
        self.buffered.set(bytes);
        self.buffer_full.set(full);
        self.refresh();
    }

    /// An exporter took (`delta > 0`) or let go of (`delta < 0`) batches of `delta` bytes.
    pub fn exporting(&self, delta: i64) {
        let now = self.exporting.get().saturating_add_signed(delta);
        self.exporting.set(now);
        self.exporting_gauge.set(now as i64);
        self.refresh();
    }

    fn refresh(&self) {
        self.overload.set(
            self.shard,
            self.buffer_full.get() || self.held() >= self.limit,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_follows_the_sum_of_buffer_and_exports() {
        let overload = Arc::new(Overload::new(2));
        let memory = ShardMemory::new(1, 1000, overload.clone(), Gauge::default());
        memory.set_buffered(600, false);
        memory.exporting(300);
        assert!(!overload.is_full(1));
        memory.exporting(100);
        assert!(overload.is_full(1), "600 + 400 reaches the limit");
        assert!(!overload.is_full(0), "only the shard's own flag");
        memory.exporting(-400);
        assert!(!overload.is_full(1));
        assert_eq!(memory.held(), 600);
        memory.set_buffered(0, true);
        assert!(
            overload.is_full(1),
            "the buffer may refuse on its own terms"
        );
        memory.set_buffered(0, false);
        assert!(!overload.is_full(1));
    }
}
