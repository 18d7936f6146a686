//! Metric cells: one writer (the owning shard), any number of readers (the admin thread).
//!
//! A cell is a handful of atomics behind an `Arc`. Because exactly one thread ever writes a
//! cell, an update is a relaxed load followed by a relaxed store rather than a `fetch_add`:
//! there is no other writer whose update the store could lose, and on x86-64 and AArch64 the
//! pair compiles to plain loads and stores, without the locked read-modify-write a `fetch_add`
//! costs even when uncontended. Readers use relaxed loads; a 64-bit atomic is never torn, so a
//! reader sees some value the writer stored.
//!
//! The single-writer rule is checked in debug builds: the first thread that writes a cell
//! claims it, and a write from any other thread panics. Release builds carry no check. A
//! clone of a handle shares the cell, so handing a clone to a second shard is exactly the
//! mistake the check catches.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// The most finite bucket bounds a [`Histogram`] may have; the `+Inf` bucket comes on top.
pub const HISTOGRAM_BUCKETS_MAX: usize = 64;

/// Debug-build record of the one thread allowed to write a cell.
#[derive(Debug, Default)]
struct Writer {
    #[cfg(debug_assertions)]
    thread: std::sync::OnceLock<std::thread::ThreadId>,
}

impl Writer {
    #[inline]
    fn check(&self) {
        #[cfg(debug_assertions)]
        {
            let me = std::thread::current().id();
            let owner = *self.thread.get_or_init(|| me);
            assert_eq!(
                owner, me,
                "metric cell written from two threads: cells are single-writer (one shard owns each)"
            );
        }
    }
}

#[derive(Debug, Default)]
struct CounterCell {
    value: AtomicU64,
    writer: Writer,
}

/// A monotonic count, written by one thread.
#[derive(Debug, Clone, Default)]
pub struct Counter {
    cell: Arc<CounterCell>,
}

impl Counter {
    pub(crate) fn new() -> Self {
        Counter::default()
    }

    /// Adds `n`. Only the owning thread may call this (checked in debug builds).
    #[inline]
    pub fn add(&self, n: u64) {
        self.cell.writer.check();
        // Single writer: load + store cannot lose an update, and avoids a locked instruction.
        let v = self.cell.value.load(Relaxed);
        self.cell.value.store(v.wrapping_add(n), Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The current value, from any thread.
    pub fn get(&self) -> u64 {
        self.cell.value.load(Relaxed)
    }
}

#[derive(Debug, Default)]
struct GaugeCell {
    value: AtomicI64,
    writer: Writer,
}

/// A value that goes up and down (a queue's length, buffered bytes), written by one thread.
#[derive(Debug, Clone, Default)]
pub struct Gauge {
    cell: Arc<GaugeCell>,
}

impl Gauge {
    pub(crate) fn new() -> Self {
        Gauge::default()
    }

    /// Sets the value. Only the owning thread may call this (checked in debug builds).
    #[inline]
    pub fn set(&self, v: i64) {
        self.cell.writer.check();
        self.cell.value.store(v, Relaxed);
    }

    /// Adds `delta` (negative to subtract). Only the owning thread may call this.
    #[inline]
    pub fn add(&self, delta: i64) {
        self.cell.writer.check();
        let v = self.cell.value.load(Relaxed);
        self.cell.value.store(v.wrapping_add(delta), Relaxed);
    }

    /// The current value, from any thread.
    pub fn get(&self) -> i64 {
        self.cell.value.load(Relaxed)
    }
}

#[derive(Debug)]
struct HistogramCell {
    /// Inclusive upper bounds, strictly increasing (Prometheus `le`).
    bounds: &'static [u64],
    /// Per-bucket (not cumulative) counts; one more than `bounds`, the last is `+Inf`. A record
    /// touches one bucket; the reader accumulates.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    writer: Writer,
}

/// A distribution of integer observations (latencies in µs or ms, sizes) over fixed buckets,
/// written by one thread.
///
/// There is no separate count cell: the exposition derives `_count` from the buckets it loaded,
/// so `_count` always equals the `+Inf` bucket within a scrape. `_sum` is loaded separately and
/// may include an observation the buckets do not yet show, a skew of one in-flight record.
#[derive(Debug, Clone)]
pub struct Histogram {
    cell: Arc<HistogramCell>,
}

/// What the exposition loads from a histogram.
pub(crate) struct HistogramSnapshot<'a> {
    pub bounds: &'a [u64],
    /// Cumulative counts, one per bound plus `+Inf`.
    pub cumulative: Vec<u64>,
    pub sum: u64,
}

impl Histogram {
    /// # Panics
    ///
    /// If `bounds` is empty, longer than [`HISTOGRAM_BUCKETS_MAX`] or not strictly increasing:
    /// bucket bounds are constants, so this is a programming error found at start-up.
    pub(crate) fn new(bounds: &'static [u64]) -> Self {
        assert!(
            !bounds.is_empty() && bounds.len() <= HISTOGRAM_BUCKETS_MAX,
            "histogram needs 1..={HISTOGRAM_BUCKETS_MAX} bucket bounds, got {}",
            bounds.len()
        );
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "histogram bucket bounds must be strictly increasing: {bounds:?}"
        );
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            cell: Arc::new(HistogramCell {
                bounds,
                buckets,
                sum: AtomicU64::new(0),
                writer: Writer::default(),
            }),
        }
    }

    /// Records one observation. Only the owning thread may call this (checked in debug builds).
    #[inline]
    pub fn record(&self, value: u64) {
        let cell = &*self.cell;
        cell.writer.check();
        // The first bound >= value; past the last bound, the +Inf bucket.
        let i = cell.bounds.partition_point(|&b| b < value);
        let bucket = &cell.buckets[i];
        bucket.store(bucket.load(Relaxed).wrapping_add(1), Relaxed);
        cell.sum
            .store(cell.sum.load(Relaxed).wrapping_add(value), Relaxed);
    }

    /// The bucket bounds this histogram was registered with.
    pub fn bounds(&self) -> &'static [u64] {
        self.cell.bounds
    }

    /// How many observations were recorded, from any thread.
    pub fn count(&self) -> u64 {
        self.cell.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The sum of all observations, from any thread.
    pub fn sum(&self) -> u64 {
        self.cell.sum.load(Relaxed)
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot<'_> {
        let mut running = 0u64;
        let cumulative = self
            .cell
            .buckets
            .iter()
            .map(|b| {
                running = running.wrapping_add(b.load(Relaxed));
                running
            })
            .collect();
        HistogramSnapshot {
            bounds: self.cell.bounds,
            cumulative,
            sum: self.cell.sum.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_gauge_count() {
        let c = Counter::new();
        c.add(10);
        c.inc();
        assert_eq!(c.get(), 11);
        let g = Gauge::new();
        g.set(5);
        g.add(-7);
        assert_eq!(g.get(), -2);
    }

    #[test]
    fn histogram_buckets_are_inclusive_upper_bounds() {
        static BOUNDS: [u64; 3] = [1, 5, 10];
        let h = Histogram::new(&BOUNDS);
        for v in [0, 1, 2, 5, 6, 10, 11, 1000] {
            h.record(v);
        }
        let s = h.snapshot();
        // le=1: {0,1}; le=5: +{2,5}; le=10: +{6,10}; +Inf: +{11,1000}.
        assert_eq!(s.cumulative, vec![2, 4, 6, 8]);
        assert_eq!(s.sum, 1035);
        assert_eq!(h.count(), 8);
    }

    #[test]
    #[should_panic(expected = "strictly increasing")]
    fn histogram_rejects_unsorted_bounds() {
        static BOUNDS: [u64; 2] = [5, 5];
        Histogram::new(&BOUNDS);
    }

    #[cfg(debug_assertions)]
    #[test]
    fn a_second_writer_thread_is_caught() {
        let c = Counter::new();
        c.inc();
        let other = c.clone();
        let r = std::thread::spawn(move || other.inc()).join();
        assert!(
            r.is_err(),
            "write from a second thread must panic in debug builds"
        );
        assert_eq!(c.get(), 1);
    }
}
