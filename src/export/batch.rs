//! The batcher: the OpenTelemetry Collector's `batch` processor, on request bytes.
//!
//! A [`Batcher`] keeps one pending buffer per signal and appends each pushed export request's
//! bytes to it. Two encodings of the same protobuf message, concatenated, encode their merge,
//! and merging an export request appends its repeated `resource_*` field; so the pending buffer
//! is at every moment a valid export request holding every resource group pushed so far, and a
//! [`Batch`] is handed out without decoding or re-encoding anything.
//!
//! The rules are the Collector's, per signal:
//!
//! - `send_batch_size`: a batch is handed out as soon as it holds this many items (0: only the
//!   timeout or the bounds below hand one out).
//! - `send_batch_max_size` (0: unbounded): a batch never holds more items than this. The
//!   Collector splits a request to honour it; tailgate splits at *request* granularity, never
//!   inside a request, so the bound is on what the batcher merges: pending data is handed out
//!   before a request that would overflow it, and a request that alone exceeds it travels as a
//!   batch of its own.
//! - `timeout`: pending data is handed out this long after its first item arrived (0: every
//!   request is handed out as it arrives, unmerged).
//! - `batch_bytes_max` (tailgate's own): the same rule as `send_batch_max_size`, on bytes, so a
//!   batch's memory is bounded whatever its items weigh.
//!
//! The batcher holds no timer and reads no clock: callers pass `now`, ask
//! [`Batcher::next_deadline`] when to come back, and call [`Batcher::flush_expired`] then. That
//! keeps it a plain state machine, tested without an executor; [`super::Pipeline`] drives it on
//! the shard's executor.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

use tailgate_wire::Signal;

use crate::metadata::Metadata;

/// Default bound on a batch's encoded size: large enough that batches are bounded by items in
/// practice, small enough that a queue of them has a predictable footprint and that it stays
/// under common upstream limits on request size (gRPC servers often refuse more than 4–16 MiB).
pub const BATCH_BYTES_MAX_DEFAULT: usize = 8 * 1024 * 1024;

/// Export requests of one signal merged into one, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The signal every merged request carries.
    pub signal: Signal,
    /// The encoded export request: the concatenation of the merged requests' bytes.
    /// `Bytes` so that handing the batch to several exporters and to the HTTP/2 stack copies
    /// nothing.
    pub bytes: Bytes,
    /// Spans, metric data points or log records in the batch, counted as the Collector counts
    /// them.
    pub items: u64,
    /// The client metadata every merged request carried (see [`crate::metadata`]); none for
    /// most pipelines.
    pub metadata: Metadata,
}

/// The `batch` processor's settings, with the Collector's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatcherSettings {
    /// Items after which a batch is handed out; 0 leaves it to the timeout and the bounds.
    pub send_batch_size: u64,
    /// Upper bound on the items in a merged batch; 0 means unbounded.
    pub send_batch_max_size: u64,
    /// How long pending data may wait for more; zero sends every request as it arrives.
    pub timeout: Duration,
    /// Upper bound on a merged batch's encoded size (see `BATCH_BYTES_MAX_DEFAULT`).
    pub batch_bytes_max: usize,
}

impl Default for BatcherSettings {
    fn default() -> Self {
        BatcherSettings {
            send_batch_size: 8192,
            send_batch_max_size: 0,
            timeout: Duration::from_millis(200),
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
        }
    }
}

/// Why batcher settings were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchSettingsError {
    /// The Collector refuses `send_batch_max_size` below `send_batch_size`, as a batch could
    /// never reach the size that sends it.
    MaxBelowSize {
        /// The size that sends a batch.
        send_batch_size: u64,
        /// The largest batch allowed, below `send_batch_size`.
        send_batch_max_size: u64,
    },
    /// `batch_bytes_max` must leave room for at least one byte.
    ZeroBatchBytesMax,
}

impl fmt::Display for BatchSettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSettingsError::MaxBelowSize {
                send_batch_size,
                send_batch_max_size,
            } => write!(
                f,
                "send_batch_max_size ({send_batch_max_size}) must be 0 or at least \
                 send_batch_size ({send_batch_size})"
            ),
            BatchSettingsError::ZeroBatchBytesMax => write!(f, "batch_bytes_max must be above 0"),
        }
    }
}

impl std::error::Error for BatchSettingsError {}

impl BatcherSettings {
    /// Checks the settings the way the Collector's `batch` processor does.
    pub fn validate(&self) -> Result<(), BatchSettingsError> {
        if self.send_batch_max_size != 0 && self.send_batch_max_size < self.send_batch_size {
            return Err(BatchSettingsError::MaxBelowSize {
                send_batch_size: self.send_batch_size,
                send_batch_max_size: self.send_batch_max_size,
            });
        }
        if self.batch_bytes_max == 0 {
            return Err(BatchSettingsError::ZeroBatchBytesMax);
        }
        Ok(())
    }
}

/// One signal's pending batch.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    items: u64,
    /// When the first request of the pending batch arrived; `None` while nothing is pending.
    first_at: Option<Instant>,
    /// The size of the last batch handed out, to size the next buffer in one allocation
    /// instead of a series of doublings.
    last_len: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.first_at.is_none()
    }
}

/// Merges export requests into batches, per signal; see the module documentation.
#[derive(Debug)]
pub struct Batcher {
    settings: BatcherSettings,
    pending: [Pending; 3],
    /// What every batch it hands out carries: the metadata of its partition (see
    /// [`super::partition`]).
    metadata: Metadata,
}

impl Batcher {
    /// A batcher with nothing pending, once `settings` are valid.
    pub fn new(settings: BatcherSettings) -> Result<Self, BatchSettingsError> {
        settings.validate()?;
        Ok(Batcher {
            settings,
            pending: Default::default(),
            metadata: Metadata::none(),
        })
    }

    /// The batcher of one partition: every batch it hands out carries `metadata`.
    pub fn with_metadata(mut self, metadata: Metadata) -> Batcher {
        self.metadata = metadata;
        self
    }

    /// Whether nothing is pending, for any signal.
    pub fn is_idle(&self) -> bool {
        self.pending.iter().all(Pending::is_empty)
    }

    /// Sizes its first buffers as if its last batches had been `len` bytes (a new partition's
    /// batcher, from its pipeline's last batch), so they grow in one allocation, not a series
    /// of doublings.
    pub fn expect_batches_of(mut self, len: usize) -> Batcher {
        for pending in &mut self.pending {
            pending.last_len = len;
        }
        self
    }

    /// Bytes pending, all signals together.
    pub fn pending_bytes_all(&self) -> usize {
        self.pending.iter().map(|p| p.bytes.len()).sum()
    }

    /// The settings this batcher was made with.
    pub fn settings(&self) -> &BatcherSettings {
        &self.settings
    }

    /// Adds one export request of `signal` (`bytes`, valid and holding `items` items) and
    /// appends to `out` every batch that is ready because of it, oldest first.
    pub fn push(
        &mut self,
        signal: Signal,
        bytes: &[u8],
        items: u64,
        now: Instant,
        out: &mut Vec<Batch>,
    ) {
        if bytes.is_empty() {
            // The empty request: nothing to merge and nothing to send.
            return;
        }
        let settings = &self.settings;
        if settings.timeout.is_zero() {
            out.push(Batch {
                signal,
                bytes: Bytes::copy_from_slice(bytes),
                items,
                metadata: self.metadata.clone(),
            });
            return;
        }
        let max_items = settings.send_batch_max_size;
        let alone_too_big =
            (max_items != 0 && items > max_items) || bytes.len() > settings.batch_bytes_max;
        let pending = &mut self.pending[signal.index()];
        let overflows = (max_items != 0 && pending.items + items > max_items)
            || pending.bytes.len() + bytes.len() > settings.batch_bytes_max;
        if overflows && !pending.is_empty() {
            out.push(take(signal, pending, &self.metadata));
        }
        if alone_too_big {
            out.push(Batch {
                signal,
                bytes: Bytes::copy_from_slice(bytes),
                items,
                metadata: self.metadata.clone(),
            });
            return;
        }
        if pending.is_empty() {
            pending.first_at = Some(now);
            // Batches end on an item count, so the next may run past the last by up to a
            // request: reserving only the last one's size made about every other batch grow,
            // copying all of it (5 % of gateway CPU in pass-through).
            let expected = (pending.last_len + pending.last_len / 8).max(bytes.len()) + bytes.len();
            pending
                .bytes
                .reserve(expected.min(settings.batch_bytes_max));
        }
        pending.bytes.extend_from_slice(bytes);
        pending.items += items;
        if settings.send_batch_size != 0 && pending.items >= settings.send_batch_size {
            out.push(take(signal, pending, &self.metadata));
        }
    }

    /// When the oldest pending batch times out, if anything is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .filter_map(|p| p.first_at)
            .min()
            .map(|first| first + self.settings.timeout)
    }

    /// Appends to `out` every pending batch whose timeout has passed at `now`.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Batch>) {
        let timeout = self.settings.timeout;
        for (signal, pending) in Signal::ALL.into_iter().zip(self.pending.iter_mut()) {
            if pending.first_at.is_some_and(|first| first + timeout <= now) {
                out.push(take(signal, pending, &self.metadata));
            }
        }
    }

    /// Appends every pending batch to `out`, whatever its age: for shutdown.
    pub fn flush_all(&mut self, out: &mut Vec<Batch>) {
        for (signal, pending) in Signal::ALL.into_iter().zip(self.pending.iter_mut()) {
            if !pending.is_empty() {
                out.push(take(signal, pending, &self.metadata));
            }
        }
    }

    /// Items pending for `signal`.
    pub fn pending_items(&self, signal: Signal) -> u64 {
        self.pending[signal.index()].items
    }

    /// Bytes pending for `signal`.
    pub fn pending_bytes(&self, signal: Signal) -> usize {
        self.pending[signal.index()].bytes.len()
    }
}

/// Hands out the pending batch. `Bytes::from(Vec)` keeps the vector's allocation, so the merged
/// bytes are copied once, when they were appended.
fn take(signal: Signal, pending: &mut Pending, metadata: &Metadata) -> Batch {
    let bytes = std::mem::take(&mut pending.bytes);
    pending.last_len = bytes.len();
    let batch = Batch {
        signal,
        bytes: Bytes::from(bytes),
        items: pending.items,
        metadata: metadata.clone(),
    };
    pending.items = 0;
    pending.first_at = None;
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(size: u64, max: u64, timeout_ms: u64, max_bytes: usize) -> BatcherSettings {
        BatcherSettings {
            send_batch_size: size,
            send_batch_max_size: max,
            timeout: Duration::from_millis(timeout_ms),
            batch_bytes_max: max_bytes,
        }
    }

    /// A stand-in request: only the batcher's byte handling matters here.
    fn request(tag: u8, len: usize) -> Vec<u8> {
        vec![tag; len]
    }

    #[test]
    fn hands_out_a_batch_when_send_batch_size_is_reached() {
        let mut b = Batcher::new(settings(10, 0, 1000, 1 << 20)).unwrap();
        let now = Instant::now();
        let mut out = Vec::new();
        b.push(Signal::Traces, &request(1, 3), 4, now, &mut out);
        b.push(Signal::Traces, &request(2, 5), 4, now, &mut out);
        assert!(out.is_empty());
        assert_eq!(b.pending_items(Signal::Traces), 8);
        b.push(Signal::Traces, &request(3, 2), 4, now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].items, 12);
        let mut expected = request(1, 3);
        expected.extend(request(2, 5));
        expected.extend(request(3, 2));
        assert_eq!(&out[0].bytes[..], &expected[..]);
        assert_eq!(b.pending_items(Signal::Traces), 0);
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn signals_are_batched_apart() {
        let mut b = Batcher::new(settings(4, 0, 1000, 1 << 20)).unwrap();
        let now = Instant::now();
        let mut out = Vec::new();
        b.push(Signal::Traces, &request(1, 1), 2, now, &mut out);
        b.push(Signal::Logs, &request(2, 1), 2, now, &mut out);
        b.push(Signal::Metrics, &request(3, 1), 2, now, &mut out);
        assert!(out.is_empty());
        b.push(Signal::Logs, &request(4, 1), 2, now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].signal, Signal::Logs);
        assert_eq!(&out[0].bytes[..], &[2, 4]);
    }

    #[test]
    fn max_size_hands_out_pending_before_an_overflowing_request() {
        let mut b = Batcher::new(settings(10, 12, 1000, 1 << 20)).unwrap();
        let now = Instant::now();
        let mut out = Vec::new();
        b.push(Signal::Traces, &request(1, 1), 8, now, &mut out);
        b.push(Signal::Traces, &request(2, 1), 5, now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].items, 8);
        assert_eq!(b.pending_items(Signal::Traces), 5);
    }

    #[test]
    fn a_request_over_max_size_travels_alone_after_pending() {
        let mut b = Batcher::new(settings(10, 12, 1000, 1 << 20)).unwrap();
        let now = Instant::now();
        let mut out = Vec::new();
        b.push(Signal::Traces, &request(1, 1), 3, now, &mut out);
        b.push(Signal::Traces, &request(2, 4), 50, now, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].items, &out[0].bytes[..]), (3, &[1][..]));
        assert_eq!((out[1].items, &out[1].bytes[..]), (50, &[2, 2, 2, 2][..]));
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn every_merged_batch_respects_max_size() {
        let mut b = Batcher::new(settings(0, 7, 1000, 1 << 20)).unwrap();
        let now = Instant::now();
        let mut out = Vec::new();
        for i in 0..100u64 {
            b.push(Signal::Logs, &request(1, 1), i % 5 + 1, now, &mut out);
        }
        b.flush_all(&mut out);
        assert!(out.iter().all(|batch| batch.items <= 7));
        assert_eq!(out.iter().map(|batch| batch.items).sum::<u64>(), 300);
    }

    #[test]
    fn byte_bound_limits_merged_batches() {
        let mut b = Batcher::new(settings(1000, 0, 1000, 10)).unwrap();
        let now = Instant::now();
        let mut out = Vec::new();
        b.push(Signal::Traces, &request(1, 6), 1, now, &mut out);
        b.push(Signal::Traces, &request(2, 6), 1, now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes.len(), 6);
        assert_eq!(b.pending_bytes(Signal::Traces), 6);
        b.push(Signal::Traces, &request(3, 25), 1, now, &mut out);
        assert_eq!(
            out.len(),
            3,
            "pending first, then the oversized request alone"
        );
        assert_eq!(out[2].bytes.len(), 25);
        b.push(Signal::Traces, &request(4, 4), 1, now, &mut out);
        b.push(Signal::Traces, &request(5, 6), 1, now, &mut out);
        assert_eq!(out.len(), 3, "4 + 6 bytes fits the bound exactly");
        assert_eq!(b.pending_bytes(Signal::Traces), 10);
    }

    #[test]
    fn timeout_counts_from_the_first_item() {
        let mut b = Batcher::new(settings(100, 0, 200, 1 << 20)).unwrap();
        let t0 = Instant::now();
        let mut out = Vec::new();
        assert_eq!(b.next_deadline(), None);
        b.push(Signal::Metrics, &request(1, 1), 1, t0, &mut out);
        b.push(
            Signal::Metrics,
            &request(2, 1),
            1,
            t0 + Duration::from_millis(150),
            &mut out,
        );
        let deadline = t0 + Duration::from_millis(200);
        assert_eq!(b.next_deadline(), Some(deadline));
        b.flush_expired(deadline - Duration::from_millis(1), &mut out);
        assert!(out.is_empty());
        b.flush_expired(deadline, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].items, 2);
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn next_deadline_is_the_oldest_signals() {
        let mut b = Batcher::new(settings(100, 0, 200, 1 << 20)).unwrap();
        let t0 = Instant::now();
        let mut out = Vec::new();
        b.push(Signal::Logs, &request(1, 1), 1, t0, &mut out);
        b.push(
            Signal::Traces,
            &request(1, 1),
            1,
            t0 + Duration::from_millis(50),
            &mut out,
        );
        assert_eq!(b.next_deadline(), Some(t0 + Duration::from_millis(200)));
        b.flush_expired(t0 + Duration::from_millis(200), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].signal, Signal::Logs);
        assert_eq!(b.next_deadline(), Some(t0 + Duration::from_millis(250)));
    }

    #[test]
    fn zero_timeout_sends_every_request_unmerged() {
        let mut b = Batcher::new(settings(100, 0, 0, 1 << 20)).unwrap();
        let mut out = Vec::new();
        b.push(Signal::Traces, &request(1, 2), 1, Instant::now(), &mut out);
        b.push(Signal::Traces, &request(2, 2), 1, Instant::now(), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn flush_all_hands_out_everything_pending() {
        let mut b = Batcher::new(BatcherSettings::default()).unwrap();
        let mut out = Vec::new();
        let now = Instant::now();
        for signal in Signal::ALL {
            b.push(signal, &request(1, 3), 2, now, &mut out);
        }
        b.push(Signal::Traces, &[], 0, now, &mut out);
        assert!(out.is_empty());
        b.flush_all(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(b.next_deadline(), None);
        out.clear();
        b.flush_all(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn settings_are_validated_like_the_collectors() {
        assert_eq!(
            Batcher::new(settings(100, 50, 200, 10)).err(),
            Some(BatchSettingsError::MaxBelowSize {
                send_batch_size: 100,
                send_batch_max_size: 50
            })
        );
        assert_eq!(
            Batcher::new(settings(100, 0, 200, 0)).err(),
            Some(BatchSettingsError::ZeroBatchBytesMax)
        );
        assert!(Batcher::new(settings(100, 100, 200, 1)).is_ok());
    }
}
