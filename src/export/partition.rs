//! A pipeline's batching apart by client metadata: one [`Batcher`] per combination of the
//! metadata a batch may carry, so that no batch ever merges two tenants' data.
//!
//! Which metadata a pipeline's batches carry is the Collector's rule ([`Partitioning`], see
//! [`crate::metadata`]). Requests without any go to one plain batcher, as before; a partition
//! exists only while it holds something, and is dropped once it has handed out all it held, so
//! the batchers a pipeline keeps are those with data pending. Two bounds hold whatever clients
//! send: at most [`PARTITIONS_MAX`] partitions (a request of one more combination goes out at
//! once, alone, carrying its metadata), and at most [`PARTITIONS_PENDING_BYTES_MAX`] pending in
//! all of them (past it, every partition hands out what it holds before the next request is
//! taken) — so the bounds cost batching, never data, and the memory a pipeline's batching holds
//! stays that of a few plain batches.
//!
//! What the pipeline asks on every push — whether anything is pending, and how many items — is
//! kept as counts, not summed over the partitions; only the timer's wake-ups walk them all.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;

use tailgate_wire::Signal;

use super::batch::{Batch, BatchSettingsError, Batcher, BatcherSettings};
use crate::metadata::Metadata;

/// The most partitions a pipeline keeps on a shard, besides its plain batcher.
pub const PARTITIONS_MAX: usize = 4096;

/// The most bytes a pipeline's partitions hold pending on a shard, all together.
pub const PARTITIONS_PENDING_BYTES_MAX: usize = 64 << 20;

/// Which metadata a pipeline's batches carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Partitioning {
    /// None: a `batch` processor without `metadata_keys` merges everything (and tail sampling
    /// keeps none).
    #[default]
    Drop,
    /// Each request's, as it came: a pipeline without a `batch` processor.
    Keep,
    /// These keys' values (lower-case, sorted): a `batch` processor's `metadata_keys`.
    Keys(Vec<Box<str>>),
}

/// Batchers by the metadata their batches carry; the interface of one [`Batcher`], with the
/// metadata of each request.
#[derive(Debug)]
pub struct Batchers {
    partitioning: Partitioning,
    plain: Batcher,
    partitions: HashMap<Metadata, Batcher>,
    /// Items pending in the partitions, by signal.
    partition_items: [u64; 3],
    /// Bytes pending in the partitions.
    partition_bytes: usize,
    /// The size of the last batch a partition handed out, for a new partition's buffers.
    last_len: usize,
}

impl Batchers {
    /// Batchers of `settings`, apart by `partitioning`.
    pub fn new(
        settings: BatcherSettings,
        partitioning: Partitioning,
    ) -> Result<Batchers, BatchSettingsError> {
        Ok(Batchers::with(Batcher::new(settings)?, partitioning))
    }

    /// One plain batcher: what every request's batches carry is dropped.
    pub fn plain(batcher: Batcher) -> Batchers {
        Batchers::with(batcher, Partitioning::Drop)
    }

    fn with(plain: Batcher, partitioning: Partitioning) -> Batchers {
        Batchers {
            plain,
            partitioning,
            partitions: HashMap::new(),
            partition_items: [0; 3],
            partition_bytes: 0,
            last_len: 0,
        }
    }

    /// The batching settings.
    pub fn settings(&self) -> &BatcherSettings {
        self.plain.settings()
    }

    /// [`Batcher::push`] into the batcher of what `metadata` makes the batch carry.
    pub fn push(
        &mut self,
        signal: Signal,
        bytes: &[u8],
        items: u64,
        metadata: &Metadata,
        now: Instant,
        out: &mut Vec<Batch>,
    ) {
        let carried = match &self.partitioning {
            Partitioning::Drop => Metadata::none(),
            Partitioning::Keep => metadata.clone(),
            Partitioning::Keys(keys) => metadata.project(keys),
        };
        if carried.is_none() {
            self.plain.push(signal, bytes, items, now, out);
            return;
        }
        if bytes.is_empty() {
            return;
        }
        if self.partition_bytes.saturating_add(bytes.len()) > PARTITIONS_PENDING_BYTES_MAX {
            self.flush_partitions(out);
        }
        if (self.partitions.len() >= PARTITIONS_MAX || self.settings().timeout.is_zero())
            && !self.partitions.contains_key(&carried)
        {
            // Nothing to merge with (no timeout), or no room for one more partition.
            out.push(Batch {
                signal,
                bytes: Bytes::copy_from_slice(bytes),
                items,
                metadata: carried,
            });
            return;
        }
        self.on_partition(carried, out, |batcher, out| {
            batcher.push(signal, bytes, items, now, out)
        });
    }

    /// When the oldest pending batch of any batcher times out, if anything is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.all().filter_map(Batcher::next_deadline).min()
    }

    /// Whether nothing is pending anywhere.
    pub fn is_idle(&self) -> bool {
        self.plain.is_idle() && self.partitions.is_empty()
    }

    /// [`Batcher::flush_expired`] of every batcher; the partitions left empty are dropped.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Batch>) {
        self.plain.flush_expired(now, out);
        let due: Vec<Metadata> = self
            .partitions
            .iter()
            .filter(|(_, b)| b.next_deadline().is_some_and(|at| at <= now))
            .map(|(m, _)| m.clone())
            .collect();
        for metadata in due {
            self.on_partition(metadata, out, |batcher, out| {
                batcher.flush_expired(now, out)
            });
        }
    }

    /// [`Batcher::flush_all`] of every batcher.
    pub fn flush_all(&mut self, out: &mut Vec<Batch>) {
        self.plain.flush_all(out);
        self.flush_partitions(out);
    }

    /// Items pending for `signal`, in every batcher.
    pub fn pending_items(&self, signal: Signal) -> u64 {
        self.plain.pending_items(signal) + self.partition_items[signal.index()]
    }

    /// How many partitions hold something.
    pub fn partitions(&self) -> usize {
        self.partitions.len()
    }

    /// Every partition hands out all it holds.
    fn flush_partitions(&mut self, out: &mut Vec<Batch>) {
        for (_, mut batcher) in self.partitions.drain() {
            batcher.flush_all(out);
        }
        self.partition_items = [0; 3];
        self.partition_bytes = 0;
    }

    /// Runs `op` on the partition of `metadata` (made if there is none), handing out into
    /// `out`, and keeps the counts; a partition left holding nothing is dropped. One lookup for
    /// a partition that stays, which is every request but a tenant's first and last.
    fn on_partition(
        &mut self,
        metadata: Metadata,
        out: &mut Vec<Batch>,
        op: impl FnOnce(&mut Batcher, &mut Vec<Batch>),
    ) {
        let handed = out.len();
        let (plain, last_len) = (&self.plain, self.last_len);
        let batcher = self.partitions.entry(metadata.clone()).or_insert_with(|| {
            Batcher::new(plain.settings().clone())
                .expect("the plain batcher's settings were valid")
                .with_metadata(metadata.clone())
                .expect_batches_of(last_len)
        });
        let before = pending_of(batcher);
        op(batcher, out);
        let after = pending_of(batcher);
        let idle = batcher.is_idle();
        for signal in Signal::ALL {
            let at = signal.index();
            self.partition_items[at] = self.partition_items[at] - before.0[at] + after.0[at];
        }
        self.partition_bytes = self.partition_bytes - before.1 + after.1;
        if let Some(last) = out[handed..].last() {
            self.last_len = last.bytes.len();
        }
        if idle {
            self.partitions.remove(&metadata);
        }
    }

    fn all(&self) -> impl Iterator<Item = &Batcher> {
        std::iter::once(&self.plain).chain(self.partitions.values())
    }
}

/// What `batcher` holds pending: items by signal, and bytes.
fn pending_of(batcher: &Batcher) -> ([u64; 3], usize) {
    (
        Signal::ALL.map(|signal| batcher.pending_items(signal)),
        batcher.pending_bytes_all(),
    )
}

impl From<Batcher> for Batchers {
    fn from(batcher: Batcher) -> Batchers {
        Batchers::plain(batcher)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metadata::Capture;

    fn tenant(t: &'static str) -> Metadata {
        Capture::new(["x-tenant", "x-user"])
            .from_headers([("x-tenant", t.as_bytes()), ("x-user", &b"u"[..])].into_iter())
    }

    fn settings(timeout: Duration) -> BatcherSettings {
        BatcherSettings {
            send_batch_size: 3,
            timeout,
            ..BatcherSettings::default()
        }
    }

    /// One valid one-item request: a traces request holding one empty resource group.
    const REQUEST: &[u8] = &[0x0a, 0x00];

    #[test]
    fn tenants_are_batched_apart_and_carry_their_keys_only() {
        let keys = Partitioning::Keys(vec![Box::from("x-tenant")]);
        let mut batchers = Batchers::new(settings(Duration::from_secs(1)), keys).expect("valid");
        let (now, mut out) = (Instant::now(), Vec::new());
        for t in ["a", "b", "a", "b", "a"] {
            batchers.push(Signal::Traces, REQUEST, 1, &tenant(t), now, &mut out);
        }
        batchers.push(Signal::Traces, REQUEST, 1, &Metadata::none(), now, &mut out);
        assert_eq!(out.len(), 1, "tenant a reached 3 items");
        assert_eq!(out[0].items, 3);
        assert_eq!(out[0].metadata.get("x-tenant"), [Box::from(&b"a"[..])]);
        assert!(out[0].metadata.get("x-user").is_empty(), "only the keys");
        assert_eq!(
            batchers.partitions(),
            1,
            "a's partition went with its batch"
        );
        assert_eq!(batchers.pending_items(Signal::Traces), 3);
        out.clear();
        batchers.flush_expired(now + Duration::from_secs(2), &mut out);
        let mut got: Vec<(u64, bool)> = out
            .iter()
            .map(|b| (b.items, b.metadata.is_none()))
            .collect();
        got.sort();
        assert_eq!(got, [(1, true), (2, false)]);
        assert_eq!(batchers.partitions(), 0);
        assert_eq!(batchers.next_deadline(), None);
    }

    #[test]
    fn keep_sends_each_request_with_its_metadata_and_drop_merges_everything() {
        let mut keep = Batchers::new(settings(Duration::ZERO), Partitioning::Keep).expect("valid");
        let mut out = Vec::new();
        keep.push(
            Signal::Logs,
            REQUEST,
            1,
            &tenant("a"),
            Instant::now(),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].metadata, tenant("a"));
        assert_eq!(keep.partitions(), 0);
        let mut drop =
            Batchers::new(settings(Duration::from_secs(1)), Partitioning::Drop).expect("valid");
        out.clear();
        for t in ["a", "b", "c"] {
            drop.push(
                Signal::Traces,
                REQUEST,
                1,
                &tenant(t),
                Instant::now(),
                &mut out,
            );
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].metadata.is_none());
    }

    #[test]
    fn past_the_pending_bytes_bound_every_partition_hands_out_what_it_holds() {
        let mut batchers = Batchers::new(
            BatcherSettings {
                send_batch_size: 0,
                timeout: Duration::from_secs(60),
                // Above what 7 partitions reach before their sum does.
                batch_bytes_max: 32 << 20,
                ..BatcherSettings::default()
            },
            Partitioning::Keep,
        )
        .expect("valid");
        let request = vec![0u8; 1 << 20];
        let (now, mut out) = (Instant::now(), Vec::new());
        let capture = Capture::new(["x-tenant"]);
        let mut pushed = 0;
        while out.is_empty() {
            let name = (pushed % 7).to_string();
            let m = capture.from_headers([("x-tenant", name.as_bytes())].into_iter());
            batchers.push(Signal::Traces, &request, 1, &m, now, &mut out);
            pushed += 1;
        }
        assert_eq!(pushed, PARTITIONS_PENDING_BYTES_MAX / request.len() + 1);
        assert_eq!(out.len(), 7, "every partition, at once");
        assert_eq!(
            out.iter().map(|b| b.items).sum::<u64>() + batchers.pending_items(Signal::Traces),
            pushed as u64
        );
        assert_eq!(
            batchers.pending_items(Signal::Traces),
            1,
            "the request that crossed it"
        );
        assert!(!batchers.is_idle());
    }

    #[test]
    fn past_the_partition_bound_a_request_goes_out_alone_with_its_metadata() {
        let mut batchers =
            Batchers::new(settings(Duration::from_secs(1)), Partitioning::Keep).expect("valid");
        let mut out = Vec::new();
        let now = Instant::now();
        let capture = Capture::new(["x-tenant"]);
        for n in 0..=PARTITIONS_MAX {
            let name = n.to_string();
            let m = capture.from_headers([("x-tenant", name.as_bytes())].into_iter());
            batchers.push(Signal::Traces, REQUEST, 1, &m, now, &mut out);
        }
        assert_eq!(batchers.partitions(), PARTITIONS_MAX);
        assert_eq!(out.len(), 1, "one over the bound");
        let last = PARTITIONS_MAX.to_string();
        assert_eq!(
            out[0].metadata.get("x-tenant"),
            [Box::from(last.as_bytes())]
        );
        out.clear();
        batchers.flush_all(&mut out);
        assert_eq!(out.len(), PARTITIONS_MAX);
        assert_eq!(batchers.partitions(), 0);
    }
}
