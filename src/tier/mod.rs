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
//! from `tier.protocol.otlp`, compressed as that says. A span is read once on the node that
//! forwards it and once on the node that decides it; nothing is batched again (a client's
//! request already is a batch) or split twice.
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

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use tailgate_wire::Signal;

use crate::export::{Batch, Exporter};
use crate::telemetry::TierMetrics;

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

/// One shard's part of the tier: the forwarder and the tier's counters.
pub(crate) struct Tier {
    /// A load balancer over the members.
    forwarder: Rc<Exporter>,
    metrics: TierMetrics,
}

impl Tier {
    /// The tier of one shard, around `forwarder` (a load balancer built from the plan's tier
    /// settings).
    pub(crate) fn new(forwarder: Rc<Exporter>, metrics: TierMetrics) -> Tier {
        assert!(
            forwarder.balancer().is_some(),
            "the tier forwards through a load balancer"
        );
        Tier { forwarder, metrics }
    }

    /// Calls `f` with the owner of each trace id (`None`: this node; else the member's index)
    /// and the number of members; returns its result and the membership's generation, for
    /// [`Tier::forward`].
    pub(crate) fn with_owners<R>(
        &self,
        f: impl FnOnce(&dyn Fn(&[u8]) -> Option<usize>, usize) -> R,
    ) -> (R, u64) {
        let balancer = self.forwarder.balancer().expect("checked in new");
        self.metrics.member.set(i64::from(balancer.is_member()));
        balancer.with_owners(f)
    }

    /// Forwards `request`, an export request of `items` spans that member `member` of
    /// membership `generation` owns, waiting while that member's queue is full. `false` once
    /// shutdown has begun: the caller keeps the spans.
    pub(crate) async fn forward(
        &self,
        member: usize,
        generation: u64,
        request: Bytes,
        items: u64,
    ) -> bool {
        let balancer = self.forwarder.balancer().expect("checked in new");
        let batch = Batch {
            signal: Signal::Traces,
            bytes: request,
            items,
        };
        if balancer.submit_to(member, generation, batch).await.is_err() {
            return false;
        }
        self.metrics.forwarded.add(items);
        true
    }

    /// Counts spans a member forwarded here: `owned` that this node's ring gives to it,
    /// `other` that it gives to another member.
    pub(crate) fn received(&self, owned: u64, other: u64) {
        self.metrics.received_owned.add(owned);
        self.metrics.received_other.add(other);
    }

    /// Drains the forwarder, until `deadline`.
    pub(crate) async fn shutdown(&self, deadline: Instant) {
        self.forwarder.shutdown(Vec::new(), deadline).await;
    }
}
