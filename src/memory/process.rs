//! The process's resident memory, against what the shards hold: the overhead the budget has to
//! leave room for.
//!
//! A shard counts exactly the bytes it holds (trace buffer, late spans, exporters' batches).
//! The rest of the process's memory is not in that account: the binary, the receivers'
//! connection buffers, the sampler's index and decision caches, and the allocator's slack. A
//! user who sets `limit_mib` expects the process to stay under it, so the budget leaves room for
//! that rest: one thread (the main thread, on its 100 ms poll) reads the resident size from
//! `/proc/self/statm` and subtracts the bytes every shard last published; each shard reads the
//! result on its own 100 ms tick and holds its share of the budget less its share of the
//! overhead (see [`super::ShardMemory::follow_overhead`]). The only atomics are one store a
//! shard and a few loads per tick: nothing on a span's path.
//!
//! The figure lags by up to a tick on each side: held bytes that grew since a shard published
//! them read as overhead, which errs towards a tighter limit while the load grows.
//!
//! The allocator keeps what the gateway frees (`crate::sys::keep_freed_memory`), so resident
//! memory stays near its peak when the held bytes fall, and the freed memory would read as
//! overhead although the next traces reuse it. Taken at face value, each fall of the held bytes
//! would lower the limit, and the limit would ratchet down to its floor. So the overhead the
//! budget uses falls at once to a lower measurement (the smallest, taken when the shards hold
//! the most, is the one closest to the true overhead) and rises towards a higher one by
//! 1/[`OVERHEAD_RISE_TICKS`] of the gap a tick (a time constant of 5 s): a stress relief or
//! early-decision cycle brings it back down before it has risen far, while a lasting rise (new
//! connections, a larger index) is followed within seconds. Once resident memory reaches
//! [`PRESSED_PERCENT`] of the budget, a higher measurement is taken at once instead: the lag
//! would let a fresh process under a sudden load grow past its budget before the figure caught
//! up (by 3-5 % on the overload scenario), and memory the allocator keeps is returned below.
//! Where the overhead still takes more
//! than half the budget, the allocator is told to return freed memory after all (mimalloc's
//! purge delay back to its default) until it takes less than [`PURGE_OFF_PERCENT`]: memory is
//! then worth more than the page faults that returning it costs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::telemetry::Gauge;

/// How often the overhead is measured and the shards follow it.
pub const MEASURE_INTERVAL: Duration = Duration::from_millis(100);
/// A measured overhead above the figure in use closes 1/this of the gap each tick.
pub const OVERHEAD_RISE_TICKS: u64 = 50;
/// Resident memory, in percent of the node's budget, from which a higher overhead is taken at
/// once.
pub const PRESSED_PERCENT: u64 = 80;
/// Overhead, in percent of the node's budget, above which the allocator returns freed memory.
pub const PURGE_ON_PERCENT: u64 = 50;
/// Overhead, in percent of the node's budget, below which it keeps freed memory again.
pub const PURGE_OFF_PERCENT: u64 = 40;

/// The overhead figure the budget uses after measuring `measured` bytes, when it used
/// `previous` (`None` before the first measurement): down at once, up by a share of the gap,
/// or at once when `pressed` (resident memory near the budget).
pub fn next_overhead(previous: Option<u64>, measured: u64, pressed: bool) -> u64 {
    match previous {
        Some(previous) if measured > previous && !pressed => {
            previous + (measured - previous).div_ceil(OVERHEAD_RISE_TICKS)
        }
        _ => measured,
    }
}

/// Whether the allocator should return freed memory, given whether it does now (`purging`) and
/// the overhead figure against the node's `budget`: on above [`PURGE_ON_PERCENT`], off below
/// [`PURGE_OFF_PERCENT`], as it was between the two; never with an unbounded budget.
pub fn purge_wanted(purging: bool, overhead: u64, budget: u64) -> bool {
    if budget == u64::MAX {
        return false;
    }
    let percent = |p: u64| (u128::from(budget) * u128::from(p) / 100) as u64;
    if purging {
        overhead >= percent(PURGE_OFF_PERCENT)
    } else {
        overhead > percent(PURGE_ON_PERCENT)
    }
}

/// The node's view of its resident memory. Shared by the main thread (which measures) and the
/// shards (each of which publishes its own held bytes and reads the overhead).
#[derive(Debug)]
pub struct ProcessMemory {
    /// What each shard held at its last tick; written by that shard only.
    held: Box<[AtomicU64]>,
    /// The overhead figure the shards use ([`next_overhead`] of the measurements).
    overhead: AtomicU64,
    /// Whether anything has been measured yet.
    measured: AtomicBool,
    /// The node's budget in bytes, for [`purge_wanted`].
    budget: u64,
    /// Whether this process sets the allocator's purge delay (it set it at start-up, and the
    /// environment did not).
    manages_allocator: bool,
    /// Whether the allocator returns freed memory now.
    purging: AtomicBool,
    rss_gauge: Gauge,
    overhead_gauge: Gauge,
}

impl ProcessMemory {
    /// The view for `shards` shards sharing a budget of `budget` bytes, showing its figures in
    /// `rss_gauge` and `overhead_gauge`; `manages_allocator` when the allocator's purge delay is
    /// this process's to set. Until the first measurement the overhead is zero.
    pub fn new(
        shards: usize,
        budget: u64,
        manages_allocator: bool,
        rss_gauge: Gauge,
        overhead_gauge: Gauge,
    ) -> Self {
        ProcessMemory {
            held: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            overhead: AtomicU64::new(0),
            measured: AtomicBool::new(false),
            budget,
            manages_allocator,
            purging: AtomicBool::new(false),
            rss_gauge,
            overhead_gauge,
        }
    }

    /// `shard` holds `bytes` now.
    pub fn publish_held(&self, shard: usize, bytes: u64) {
        self.held[shard].store(bytes, Ordering::Relaxed);
    }

    /// Reads the process's resident size and records it; `false` when `/proc` cannot be read
    /// (the overhead then stays as it was).
    pub fn measure(&self) -> bool {
        match rss_bytes() {
            Some(rss) => {
                self.record(rss);
                true
            }
            None => false,
        }
    }

    /// Records a resident size of `rss` bytes against the held bytes the shards published.
    pub fn record(&self, rss: u64) {
        let held = self
            .held
            .iter()
            .map(|h| h.load(Ordering::Relaxed))
            .fold(0u64, u64::saturating_add);
        let previous = self
            .measured
            .swap(true, Ordering::Relaxed)
            .then(|| self.overhead.load(Ordering::Relaxed));
        let pressed =
            u128::from(rss) * 100 >= u128::from(self.budget) * u128::from(PRESSED_PERCENT);
        let overhead = next_overhead(previous, rss.saturating_sub(held), pressed);
        self.overhead.store(overhead, Ordering::Relaxed);
        self.steer_allocator(overhead, rss);
        self.rss_gauge.set(i64::try_from(rss).unwrap_or(i64::MAX));
        self.overhead_gauge
            .set(i64::try_from(overhead).unwrap_or(i64::MAX));
    }

    /// Tells the allocator to return freed memory while the overhead takes more of the budget
    /// than [`purge_wanted`] allows, and to keep it again after.
    fn steer_allocator(&self, overhead: u64, rss: u64) {
        if !self.manages_allocator {
            return;
        }
        let purging = self.purging.load(Ordering::Relaxed);
        let wanted = purge_wanted(purging, overhead, self.budget);
        if wanted == purging {
            return;
        }
        self.purging.store(wanted, Ordering::Relaxed);
        const MIB: u64 = 1 << 20;
        if wanted {
            crate::sys::set_purge_delay(crate::sys::MI_PURGE_DELAY_DEFAULT_MS);
            tracing::info!(
                "memory: {} MiB of the process's {} MiB resident is not held data, over {} % of \
                 the {} MiB budget; the allocator returns freed memory until it is under {} %",
                overhead / MIB,
                rss / MIB,
                PURGE_ON_PERCENT,
                self.budget / MIB,
                PURGE_OFF_PERCENT,
            );
        } else {
            crate::sys::set_purge_delay(-1);
            tracing::info!(
                "memory: {} MiB of the process's {} MiB resident is not held data, under {} % of \
                 the {} MiB budget; the allocator keeps freed memory again",
                overhead / MIB,
                rss / MIB,
                PURGE_OFF_PERCENT,
                self.budget / MIB,
            );
        }
    }

    /// Each shard's share of the overhead: the budget is split evenly, and so is what it has
    /// to leave room for.
    pub fn overhead_share(&self) -> u64 {
        self.overhead
            .load(Ordering::Relaxed)
            .div_ceil(self.held.len().max(1) as u64)
    }
}

/// Resident bytes of this process (`/proc/self/statm` field 2, in pages).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages * crate::sys::page_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overhead_is_what_the_shards_do_not_hold() {
        let (rss, overhead) = (Gauge::default(), Gauge::default());
        let process = ProcessMemory::new(2, 4000, false, rss.clone(), overhead.clone());
        process.publish_held(0, 300);
        process.publish_held(1, 100);
        process.record(1000);
        assert_eq!((rss.get(), overhead.get()), (1000, 600));
        assert_eq!(process.overhead_share(), 300, "(1000 - 400) / 2");
        process.publish_held(1, 900);
        process.record(1000);
        assert_eq!(
            process.overhead_share(),
            0,
            "held bytes published after the measurement leave no negative overhead"
        );
    }

    #[test]
    fn the_overhead_falls_at_once_and_rises_slowly() {
        assert_eq!(
            next_overhead(None, 700, false),
            700,
            "the first measurement as it is"
        );
        assert_eq!(next_overhead(Some(700), 300, false), 300, "down at once");
        assert_eq!(next_overhead(Some(300), 300, false), 300);
        assert_eq!(
            next_overhead(Some(300), 300 + 50 * OVERHEAD_RISE_TICKS, false),
            350,
            "up by a share of the gap"
        );
        assert_eq!(next_overhead(Some(300), 301, false), 301, "at least a byte");
        // The allocator keeps what the shards freed: the held bytes fall by 400 and resident
        // memory does not. A measurement a tick for 1 s leaves the figure far from 700 ...
        let mut overhead = 300;
        for _ in 0..10 {
            overhead = next_overhead(Some(overhead), 700, false);
        }
        assert!((300..400).contains(&overhead), "{overhead}");
        // ... and the next time the shards hold as much again, it is back at once.
        assert_eq!(next_overhead(Some(overhead), 300, false), 300);
        // Near the budget, a higher figure is taken at once.
        assert_eq!(next_overhead(Some(300), 700, true), 700);
        assert_eq!(next_overhead(Some(700), 300, true), 300);
    }

    #[test]
    fn the_allocator_returns_memory_only_while_the_overhead_is_large() {
        assert!(
            !purge_wanted(false, 500, 1000),
            "half the budget is not above it"
        );
        assert!(purge_wanted(false, 501, 1000));
        assert!(purge_wanted(true, 400, 1000), "on until under 40 %");
        assert!(!purge_wanted(true, 399, 1000));
        assert!(!purge_wanted(false, 450, 1000), "off until over 50 %");
        assert!(!purge_wanted(false, u64::MAX, u64::MAX), "unbounded");
    }

    #[test]
    fn a_rising_overhead_is_followed_by_a_share_a_tick() {
        let overhead = Gauge::default();
        let process = ProcessMemory::new(1, 10_000, false, Gauge::default(), overhead.clone());
        process.record(1000);
        process.publish_held(0, 0);
        process.record(1000 + 100 * OVERHEAD_RISE_TICKS);
        assert_eq!(overhead.get(), 1100);
        process.record(500);
        assert_eq!(overhead.get(), 500);
        // Just below the pressed level of 10,000 bytes, slowly; at it, at once.
        let pressed = 10_000 * PRESSED_PERCENT / 100;
        process.record(pressed - 1);
        assert_eq!(
            overhead.get(),
            500 + (pressed - 501).div_ceil(OVERHEAD_RISE_TICKS) as i64
        );
        process.record(pressed);
        assert_eq!(overhead.get(), pressed as i64);
    }

    #[test]
    fn the_resident_size_is_read_from_proc() {
        let rss = Gauge::default();
        let process = ProcessMemory::new(1, 1 << 30, false, rss.clone(), Gauge::default());
        assert!(process.measure());
        assert!(rss.get() > 1 << 20, "a process holds more than 1 MiB");
    }
}
