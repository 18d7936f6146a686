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
//!
//! The budget bounds the process, not only the held bytes: what the process's resident memory
//! holds besides them (binary, connection buffers, indexes, allocator slack; see [`process`])
//! is taken off each shard's share, every [`MEASURE_INTERVAL`], down to a floor of
//! [`LIMIT_FLOOR_PERCENT`] of the share. The shard's soft limit and stress relief levels, shares
//! of its limit, follow (see `crate::sampling::Sampler`).

mod process;

pub use process::{rss_bytes, ProcessMemory, MEASURE_INTERVAL};

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

/// The least share of a shard's configured limit the overhead leaves it, in percent: a process
/// whose fixed costs alone exceed the budget still buffers, decides and exports (and its RSS
/// goes over the budget by that much, visible as `tailgate_memory_overhead_bytes`).
pub const LIMIT_FLOOR_PERCENT: u64 = 25;

/// The limit a shard enforces when its configured share is `limit` bytes and its share of the
/// process's overhead is `overhead` bytes: the share less the overhead, but never below
/// [`LIMIT_FLOOR_PERCENT`] of it. An unbounded budget (`u64::MAX`) stays unbounded.
pub fn effective_limit(limit: u64, overhead: u64) -> u64 {
    if limit == u64::MAX {
        return limit;
    }
    let floor = (u128::from(limit) * u128::from(LIMIT_FLOOR_PERCENT) / 100) as u64;
    limit.saturating_sub(overhead).max(floor)
}

/// The share of a shard's configured limit its refusal limit stays above what it holds while
/// the effective limit falls: an eighth.
pub const DESCENT_HEADROOM_SHARE: u64 = 8;

/// Where a shard refuses after a tick, when it refused at `previous`, its effective limit is
/// `target` and it holds `held` bytes: at the target when that rises or is already above what
/// the shard holds; while the target falls below that, no lower than `held + headroom`, so a
/// sudden rise of the overhead is met by early decisions and stress relief (which follow the
/// target at once) shedding bytes, not by refusals, and the refusal limit comes down with the
/// bytes held.
pub fn refusal_limit(previous: u64, target: u64, held: u64, headroom: u64) -> u64 {
    if target >= previous {
        return target;
    }
    target.max(previous.min(held.saturating_add(headroom)))
}

/// `bytes`, a share of `configured`, as the same share of `effective` (a soft limit following
/// its shard's effective limit).
pub fn scaled(bytes: u64, configured: u64, effective: u64) -> u64 {
    if effective >= configured {
        return bytes;
    }
    (u128::from(bytes) * u128::from(effective) / u128::from(configured.max(1))) as u64
}

/// One shard's account of the bytes it holds, against its share of the budget. Shard-local:
/// only the shard's own tasks touch it.
#[derive(Debug)]
pub struct ShardMemory {
    shard: usize,
    /// The shard's configured share of the budget.
    limit: u64,
    /// [`effective_limit`] of `limit` and the process's overhead, which the soft limit and the
    /// stress relief levels follow.
    target: Cell<u64>,
    /// Where it refuses now: [`refusal_limit`], the target once what it holds allows.
    effective: Cell<u64>,
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
            target: Cell::new(limit),
            effective: Cell::new(limit),
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

    /// Where the shard refuses now: its share of the node's budget less its share of the
    /// process's overhead, or while that falls, a little above what it holds.
    pub fn limit(&self) -> u64 {
        self.effective.get()
    }

    /// The shard's share of the node's budget less its share of the process's overhead: what
    /// its soft limit and stress relief levels are shares of.
    pub fn target(&self) -> u64 {
        self.target.get()
    }

    /// The shard's configured share of the node's budget.
    pub fn configured_limit(&self) -> u64 {
        self.limit
    }

    /// The shard's share of the process's overhead is `overhead` bytes now: its target becomes
    /// [`effective_limit`] of them, and its refusal limit [`refusal_limit`]. Returns whether
    /// either changed.
    pub fn follow_overhead(&self, overhead: u64) -> bool {
        let target = effective_limit(self.limit, overhead);
        let headroom = self.limit / DESCENT_HEADROOM_SHARE;
        let effective = refusal_limit(self.effective.get(), target, self.held(), headroom);
        if (target, effective) == (self.target.get(), self.effective.get()) {
            return false;
        }
        self.target.set(target);
        self.effective.set(effective);
        self.refresh();
        true
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
            self.buffer_full.get() || self.held() >= self.effective.get(),
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

    #[test]
    fn the_effective_limit_leaves_room_for_the_overhead_down_to_a_floor() {
        assert_eq!(effective_limit(1000, 0), 1000);
        assert_eq!(effective_limit(1000, 300), 700);
        assert_eq!(effective_limit(1000, 750), 250, "the floor exactly");
        assert_eq!(effective_limit(1000, 900), 250, "a quarter, however large");
        assert_eq!(effective_limit(1000, u64::MAX), 250);
        assert_eq!(effective_limit(u64::MAX, 1 << 40), u64::MAX, "unbounded");
        assert_eq!(effective_limit(3, 3), 0, "a quarter of 3 bytes rounds down");
    }

    #[test]
    fn soft_limits_keep_their_share_of_the_effective_limit() {
        assert_eq!(scaled(750, 1000, 1000), 750);
        assert_eq!(scaled(750, 1000, 400), 300);
        assert_eq!(
            scaled(750, 1000, 2000),
            750,
            "never above the configured soft limit"
        );
        assert_eq!(scaled(u64::MAX / 2, u64::MAX, u64::MAX / 2), u64::MAX / 4);
    }

    #[test]
    fn the_refusal_limit_comes_down_with_the_bytes_held() {
        // Rising, or falling to where nothing held is in the way: the target at once.
        assert_eq!(refusal_limit(500, 800, 700, 100), 800);
        assert_eq!(refusal_limit(1000, 600, 0, 125), 600);
        assert_eq!(
            refusal_limit(1000, 600, 400, 125),
            600,
            "525 is below the target"
        );
        // The overhead jumps while the shard holds 700: it refuses above 825, not above 600.
        assert_eq!(refusal_limit(1000, 600, 700, 125), 825);
        // Early decisions shed bytes: the limit follows them down to the target.
        assert_eq!(refusal_limit(825, 600, 650, 125), 775);
        assert_eq!(refusal_limit(775, 600, 500, 125), 625);
        assert_eq!(refusal_limit(625, 600, 300, 125), 600);
        // Never above where it was: bytes taken meanwhile do not raise it.
        assert_eq!(refusal_limit(775, 600, 900, 125), 775);
    }

    #[test]
    fn the_flag_follows_the_effective_limit() {
        let overload = Arc::new(Overload::new(1));
        let memory = ShardMemory::new(0, 1000, overload.clone(), Gauge::default());
        assert!(
            memory.follow_overhead(400),
            "1000 - 400 = 600: the limit changed"
        );
        assert_eq!((memory.target(), memory.limit()), (600, 600));
        assert_eq!(memory.configured_limit(), 1000);
        memory.set_buffered(600, false);
        assert!(overload.is_full(0), "600 held reaches the effective limit");
        assert!(
            !memory.follow_overhead(400),
            "the same overhead changes nothing"
        );
        assert!(memory.follow_overhead(100));
        assert!(!overload.is_full(0), "room again once the overhead shrinks");
        // A jump of the overhead while 600 are held: the target is the floor at once, the
        // refusal limit an eighth of the share above what is held.
        memory.follow_overhead(10_000);
        assert_eq!((memory.target(), memory.limit()), (250, 725));
        assert!(!overload.is_full(0));
        memory.set_buffered(100, false);
        memory.follow_overhead(10_000);
        assert_eq!(memory.limit(), 250, "down to the floor with the bytes held");
    }
}
