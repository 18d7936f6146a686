//! A tier of tailgate nodes that share trace ownership: every node receives and samples, and a
//! span received by a node that does not own its trace is forwarded, once, to the node that
//! does — node-level routing in front of the core-level routing ([`crate::ingest`]), so that
//! each trace is decided once, on one core of one node, with all its spans.
//!
//! # Ownership
//!
//! Every node is given the same membership (`tier.resolver`: a static list, or the addresses a
//! DNS name resolves to, followed every `interval`) and builds the same ring from it: the
//! `loadbalancing` exporter's ring ([`crate::export`]'s `balance`), so a member joining or
//! leaving moves about 1/N of the traces. A node finds itself among the members by its gRPC
//! receivers' addresses, or by `tier.self`.
//!
//! On each shard, the receivers' one pass over a client's request ([`tailgate_wire::Split`])
//! asks [`Tier::with_owners`] who owns each span's trace: the spans this node owns go on to
//! their owning shard as before; the others are framed per member (their original bytes,
//! under their resource and scope) and handed straight to that member's `otlp` exporter in the
//! shard's forwarder — a load balancer over the members, each with its own queue and retries
//! from `tier.protocol.otlp`, compressed as that says. The parts are framed straight into a
//! per-member outbox, sent when it holds [`OUTBOX_SPANS`] spans or [`OUTBOX_BYTES`] bytes, or
//! [`OUTBOX_WAIT`] after its first part: a span is read once on the node that forwards it and
//! once on the node that decides it, copied once into its outbox, and travels in requests of
//! thousands of spans, whatever size the clients' requests are.
//!
//! # Client metadata
//!
//! Spans that came with client metadata (a tenant's header, see [`crate::metadata`]) are framed
//! into an outbox of their member and metadata, and their forward request carries that
//! metadata as headers, which the owner's receiver keeps as it keeps a client's: the tenant of
//! a span is the same wherever its trace is decided. Those outboxes are opened when needed and
//! dropped when sent, so a node holds one only for each (member, tenant) with spans pending.
//!
//! # Loop prevention
//!
//! Forwarded requests carry the gRPC metadata `tailgate-tier: forwarded`. A request with it is
//! never forwarded again: its spans go to this node's owning shards whatever this node's ring
//! says. When the two nodes' rings disagree — one has seen a membership change the other has
//! not yet — the span is counted (`tailgate_tier_received_spans{owner="other"}`) and decided
//! here: a trace may then be decided twice, in parts, until both have seen the change.
//!
//! # Membership changes
//!
//! The rule for traces in flight: **each node decides what it holds.** A trace whose owner
//! changes while its spans are buffered is decided by the old owner from the spans it has;
//! its later spans go to the new owner, which decides them as a trace of its own. So a change
//! splits the decisions of the traces in flight on the ~1/N of the ring that moved, and no
//! span is lost for it. A member that keeps failing is taken out of the ring (as a
//! `loadbalancing` backend is) and its traces go to the next member until it answers again;
//! what its exporter held is routed again, not dropped. A member that dies loses what it had
//! buffered (see docs/OPERATIONS.md, "A tier of gateways").

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use futures_lite::future;
use tailgate_shards::sync::Wakeup;
use tailgate_wire::Signal;

use std::collections::HashMap;

use crate::export::{Batch, Exporter};
use crate::memory::ShardMemory;
use crate::metadata::Metadata;
use crate::telemetry::{Gauge, TierMetrics};

/// The gRPC metadata key that marks a request forwarded by a member.
pub(crate) const FORWARDED_HEADER: &str = "tailgate-tier";
/// Its value.
pub(crate) const FORWARDED_VALUE: &str = "forwarded";

/// The exporter name the forwarder's metrics carry.
pub(crate) const EXPORTER_NAME: &str = "tier";

/// Where a traces request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// An agent, an SDK, a front tier: routed over the tier.
    Client,
    /// Another member of the tier: decided here.
    Member,
}

/// An outbox is sent once it holds this many spans...
pub(crate) const OUTBOX_SPANS: u64 = 8192;
/// ... or this many bytes...
pub(crate) const OUTBOX_BYTES: usize = 4 << 20;
/// ... or this long after its first part: short next to any `decision_wait`, and long enough
/// that a member receives a few large requests a second rather than many small ones. Each
/// request costs both nodes a wake and the caches it finds cold, whatever its size: on the tier
/// scenario (`bench-rig/scenarios/tier.sh`, docs/BENCHMARKS.md) a forwarded span cost about
/// 1.27 µs with 50 ms, 0.85–1.07 µs with 100 ms and 0.99–1.00 µs with 200 ms, and 1.6–1.75 µs
/// with outboxes sent at 256 KiB.
pub(crate) const OUTBOX_WAIT: Duration = Duration::from_millis(100);

/// The spans framed for one member, not yet sent: an export request.
#[derive(Default)]
struct Outbox {
    /// The client metadata its spans came with.
    metadata: Metadata,
    bytes: Vec<u8>,
    items: u64,
    /// The membership the member's index belongs to.
    generation: u64,
    /// When its first part came.
    opened: Option<Instant>,
}

/// An outbox taken to be sent.
pub(crate) struct Ready {
    member: usize,
    generation: u64,
    batch: Batch,
}

/// One shard's part of the tier: the forwarder, the outboxes in front of it and the tier's
/// counters.
pub(crate) struct Tier {
    /// A load balancer over the members.
    forwarder: Rc<Exporter>,
    /// By member index: spans without client metadata.
    outboxes: RefCell<Vec<Outbox>>,
    /// By member index and client metadata: only those with spans pending.
    tenants: RefCell<HashMap<(usize, Metadata), Outbox>>,
    /// Wakes the task that sends outboxes whose time is up.
    wakeup: Wakeup,
    /// Set at shutdown: parts are no longer taken.
    closed: Cell<bool>,
    metrics: TierMetrics,
    /// The shard's `tailgate_shard_batching_spans`, which counts what the outboxes hold.
    batching: Gauge,
    /// The shard's memory account: the outboxes' bytes are in its budget, with the exporters'
    /// batches, so a full shard refuses rather than let outboxes for many members grow.
    memory: Rc<ShardMemory>,
}

impl Tier {
    /// The tier of one shard, around `forwarder` (a load balancer built from the plan's tier
    /// settings); starts the task that sends outboxes whose time is up. Must run on the
    /// shard's executor.
    pub(crate) fn new(
        forwarder: Rc<Exporter>,
        metrics: TierMetrics,
        batching: Gauge,
        memory: Rc<ShardMemory>,
    ) -> Rc<Tier> {
        assert!(
            forwarder.balancer().is_some(),
            "the tier forwards through a load balancer"
        );
        let tier = Rc::new(Tier {
            forwarder,
            outboxes: RefCell::new(Vec::new()),
            tenants: RefCell::new(HashMap::new()),
            wakeup: Wakeup::default(),
            closed: Cell::new(false),
            metrics,
            batching,
            memory,
        });
        glommio::spawn_local(send_on_time(Rc::downgrade(&tier))).detach();
        tier
    }

    /// Calls `f` with the owner of each trace id (`None`: this node; else the member's index)
    /// and the number of members; returns its result and the membership's generation, for
    /// [`Tier::append`].
    pub(crate) fn with_owners<R>(
        &self,
        f: impl FnOnce(&dyn Fn(&[u8]) -> Option<usize>, usize) -> R,
    ) -> (R, u64) {
        let balancer = self.forwarder.balancer().expect("checked in new");
        self.metrics.member.set(i64::from(balancer.is_member()));
        balancer.with_owners(f)
    }

    /// Adds `items` spans that member `member` of membership `generation` owns, which came
    /// with client `metadata`, to its outbox: `frame` appends them, as an export request, to
    /// the outbox's bytes. Returns the outboxes now ready to be sent ([`Tier::send`]); `None`
    /// once shutdown has begun, when the caller keeps the spans.
    pub(crate) fn append(
        &self,
        member: usize,
        generation: u64,
        items: u64,
        metadata: &Metadata,
        frame: impl FnOnce(&mut Vec<u8>),
    ) -> Option<Vec<Ready>> {
        if self.closed.get() {
            return None;
        }
        let mut ready = Vec::new();
        if metadata.is_none() {
            let mut outboxes = self.outboxes.borrow_mut();
            if outboxes.len() <= member {
                outboxes.resize_with(member + 1, Outbox::default);
            }
            // Room for the outbox and the part that fills it, so that appending never copies
            // what it holds (growing by doubling would copy each span about once more).
            let reserve = OUTBOX_BYTES + OUTBOX_BYTES / 4;
            self.fill(
                &mut outboxes[member],
                member,
                generation,
                items,
                reserve,
                frame,
                &mut ready,
            );
        } else {
            let mut tenants = self.tenants.borrow_mut();
            let key = (member, metadata.clone());
            let outbox = tenants.entry(key).or_insert_with(|| Outbox {
                metadata: metadata.clone(),
                ..Outbox::default()
            });
            // A tenant's outbox grows as it fills: there may be many, most of them small.
            self.fill(outbox, member, generation, items, 0, frame, &mut ready);
            if outbox.items == 0 {
                tenants.remove(&(member, metadata.clone()));
            }
        }
        Some(ready)
    }

    /// [`Tier::append`]'s work on one outbox, reserving `reserve` bytes when it opens.
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &self,
        outbox: &mut Outbox,
        member: usize,
        generation: u64,
        items: u64,
        reserve: usize,
        frame: impl FnOnce(&mut Vec<u8>),
        ready: &mut Vec<Ready>,
    ) {
        if outbox.items > 0 && outbox.generation != generation {
            // Framed for another membership: sent as it is, routed again on the way.
            ready.extend(self.take(member, outbox));
        }
        if outbox.opened.is_none() {
            outbox.opened = Some(Instant::now());
            outbox.generation = generation;
            outbox.bytes.reserve(reserve);
            self.wakeup.notify();
        }
        let before = outbox.bytes.len();
        frame(&mut outbox.bytes);
        self.memory.exporting((outbox.bytes.len() - before) as i64);
        outbox.items += items;
        self.batching.add(items as i64);
        if outbox.items >= OUTBOX_SPANS || outbox.bytes.len() >= OUTBOX_BYTES {
            ready.extend(self.take(member, outbox));
        }
    }

    /// Sends outboxes taken by [`Tier::append`], waiting while a member's queue is full.
    pub(crate) async fn send(&self, ready: Vec<Ready>) {
        let balancer = self.forwarder.balancer().expect("checked in new");
        for Ready {
            member,
            generation,
            batch,
        } in ready
        {
            let items = batch.items;
            // A refusal means shutdown has begun; the forwarder counted the spans.
            if balancer.submit_to(member, generation, batch).await.is_ok() {
                self.metrics.forwarded.add(items);
            }
        }
    }

    /// Counts spans a member forwarded here: `owned` that this node's ring gives to it,
    /// `other` that it gives to another member.
    pub(crate) fn received(&self, owned: u64, other: u64) {
        self.metrics.received_owned.add(owned);
        self.metrics.received_other.add(other);
    }

    /// Takes no more parts and hands what the outboxes hold to the forwarder's shutdown, which
    /// routes it to the members and drains every member's exporter until `deadline`, counting
    /// as dropped (`reason="shutdown"`) whatever is still unsent then.
    pub(crate) async fn shutdown(&self, deadline: Instant) {
        self.closed.set(true);
        self.wakeup.notify();
        let last: Vec<Batch> = self
            .take_expired(None)
            .into_iter()
            .map(|ready| ready.batch)
            .collect();
        self.metrics
            .forwarded
            .add(last.iter().map(|batch| batch.items).sum());
        self.forwarder.shutdown(last, deadline).await;
    }

    /// Empties `outbox` (member `member`'s) into a [`Ready`].
    fn take(&self, member: usize, outbox: &mut Outbox) -> Option<Ready> {
        if outbox.items == 0 {
            return None;
        }
        let items = std::mem::take(&mut outbox.items);
        outbox.opened = None;
        self.batching.add(-(items as i64));
        // The forwarder's exporter accounts for the bytes from here on.
        self.memory.exporting(-(outbox.bytes.len() as i64));
        Some(Ready {
            member,
            generation: outbox.generation,
            batch: Batch {
                signal: Signal::Traces,
                bytes: std::mem::take(&mut outbox.bytes).into(),
                items,
                metadata: outbox.metadata.clone(),
            },
        })
    }

    /// Takes the outboxes opened before `before` (all of them with `None`).
    fn take_expired(&self, before: Option<Instant>) -> Vec<Ready> {
        let due = |outbox: &Outbox| {
            before.is_none_or(|before| outbox.opened.is_some_and(|at| at <= before))
        };
        let mut outboxes = self.outboxes.borrow_mut();
        let mut ready = Vec::new();
        for (member, outbox) in outboxes.iter_mut().enumerate() {
            if due(outbox) {
                ready.extend(self.take(member, outbox));
            }
        }
        self.tenants.borrow_mut().retain(|&(member, _), outbox| {
            if due(outbox) {
                ready.extend(self.take(member, outbox));
            }
            outbox.items > 0
        });
        ready
    }

    /// When the oldest outbox's time is up.
    fn next_due(&self) -> Option<Instant> {
        let tenants = self.tenants.borrow();
        self.outboxes
            .borrow()
            .iter()
            .chain(tenants.values())
            .filter_map(|o| o.opened)
            .min()
            .map(|at| at + OUTBOX_WAIT)
    }
}

/// Sends each outbox [`OUTBOX_WAIT`] after its first part; ends at the tier's shutdown (which
/// wakes it), or with the tier.
async fn send_on_time(tier: Weak<Tier>) {
    loop {
        let Some(tier) = tier.upgrade() else { return };
        if tier.closed.get() {
            return;
        }
        match tier.next_due() {
            None => tier.wakeup.wait().await,
            Some(at) => {
                let sleep = glommio::timer::sleep(at.saturating_duration_since(Instant::now()));
                future::or(sleep, tier.wakeup.wait()).await;
            }
        }
        if tier.closed.get() {
            return;
        }
        let ready = tier.take_expired(Instant::now().checked_sub(OUTBOX_WAIT));
        tier.send(ready).await;
    }
}
