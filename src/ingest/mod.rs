//! Receiving OTLP: the gRPC and HTTP receivers, and the hand-off of what they accept to the
//! shards that own it.
//!
//! Every shard runs its own listeners (SO_REUSEPORT spreads connections over shards) and its own
//! `Ingest`. A receiver reads a request body, decodes its transfer coding (`body`) and calls
//! `Ingest::export`, which is the same for both transports:
//!
//! - traces are validated and split by owning shard in one pass ([`tailgate_wire::Split`]); each
//!   destination gets one `Delivery` holding all of that request's spans it owns, framed as an
//!   export request of their own. The receiving shard keeps its own part, and sends the others
//!   over the bounded mesh channels — waiting, when a channel is full, which slows the client's
//!   connection (its next read, or HTTP/2 flow control) rather than dropping anything;
//! - with a tier (`crate::tier`), a client's spans whose trace another node owns are framed into
//!   that node's outbox in the same pass, and sent to it; a request a member forwarded here is
//!   routed to this node's shards only, never forwarded again;
//! - metrics and logs are validated and go to the receiving shard's own pipeline: they are not
//!   sampled, so any shard may forward them.
//!
//! The request is answered only after every part has been handed over, so an accepted item is
//! always in some shard's pipeline; spans rejected on their own (bad ids) are counted as refused
//! and reported back as partial success.
//!
//! A full shard: a shard holding its share of the memory budget (trace buffer and exporters'
//! batches, see `memory`) raises its `Overload` flag, and every shard refuses whole
//! traces requests that would route spans to it, and a full shard refuses metrics and logs
//! (which it would hold itself) — RESOURCE_EXHAUSTED with `RetryInfo`, or 429 with
//! `Retry-After` — counting them as refused, until exports and decisions bring it back under.
//!
//! Pressure: a hand-off that has waited `PRESSURE_WAIT` on a full queue puts its shard under
//! pressure, for as long as any hand-off is still waiting that long and `PRESSURE_HOLD` after.
//! Under pressure new requests are validated (so their items are counted) and refused whole with
//! a retryable error — RESOURCE_EXHAUSTED with `RetryInfo`, or 429 with `Retry-After` — rather
//! than joining the wait: nothing is accepted that is not handed over, and clients back off
//! instead of timing out.

// Lengths and counts here come from the network: arithmetic on them is checked or saturating,
// never wrapping or panicking (a wrapped chunk size once panicked a shard).
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

pub(crate) mod accept;
pub mod body;
pub(crate) mod cors;
pub(crate) mod grpc;
pub(crate) mod http;
pub mod http1;
pub mod keepalive;
pub(crate) mod status;
pub(crate) mod tls_accept;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::{GlommioError, ResourceType};
use tailgate_shards::route::Router;

use crate::memory::Overload;
use crate::metadata::{Admissions, Metadata};
use crate::telemetry::{MemoryLimiterMetrics, ReceiverMetrics, ShardMetrics};
pub(crate) use crate::tier::Origin;
use crate::tier::Tier;
use status::IngestError;
use tailgate_wire::{item_count, Framer, Request, Signal, Split};

/// What one shard hands another (or itself): a valid export request of `signal` holding `items`
/// items, all owned by the destination.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub signal: Signal,
    /// An export request: shared, so that a request that arrived in one HTTP/2 frame reaches
    /// its pipeline without a copy.
    pub bytes: Bytes,
    pub items: u64,
    /// The client metadata of the request it came from (see [`crate::metadata`]).
    pub metadata: Metadata,
}

/// The shard's pipeline, as the receivers see it: it takes deliveries, waiting while it is full.
pub(crate) trait Deliver {
    /// Hands `delivery` to the pipeline; resolves once it has been taken.
    fn deliver(&self, delivery: Delivery) -> Pin<Box<dyn Future<Output = ()> + '_>>;
}

/// What became of an accepted request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Items handed to the pipelines.
    pub accepted: u64,
    /// Items rejected on their own (partial success).
    pub rejected: u64,
    /// Why, for the partial-success message; empty when nothing was rejected.
    pub message: String,
}

/// Size and connection limits of one receiver.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The largest message accepted, after decompression.
    pub max_message_bytes: usize,
    /// The most connections the receiver's listener on one shard serves at once (from the
    /// descriptor budget, [`accept::ConnectionBudget`]).
    pub connections_max: usize,
}

/// One shard's receiving side: routing and hand-off, shared by its gRPC and HTTP receivers.
pub(crate) struct Ingest {
    shard: usize,
    router: Router,
    senders: Senders<Delivery>,
    pipeline: Rc<dyn Deliver>,
    shard_metrics: ShardMetrics,
    /// Splits are reused across requests; one per request in flight (requests interleave at
    /// await points, so a split is taken for the duration of one request).
    splits: RefCell<Vec<Split>>,
    framer: RefCell<Framer>,
    /// Hand-offs waiting longer than [`PRESSURE_WAIT`] right now.
    stalled: Cell<usize>,
    /// Pressure lasts until then after the last long wait.
    pressure_until: Cell<Option<Instant>>,
    /// Which shards hold their share of the memory budget (none for a sink without one).
    overload: Option<Arc<Overload>>,
    /// The `memory_limiter` processors' counters.
    memory_limiters: MemoryLimiterMetrics,
    /// The tier this node is part of, if any: spans of traces another member owns go to that
    /// member's outbox; member `m` is destination `router.shards() + m` of a split.
    tier: Option<Rc<Tier>>,
    /// The `batch` processors' limits on metadata combinations (see [`crate::metadata`]).
    admissions: Admissions,
}

/// How many idle splits a shard keeps for reuse.
const SPARE_SPLITS_MAX: usize = 64;

/// A hand-off waiting this long on a full queue puts the shard under pressure.
pub(crate) const PRESSURE_WAIT: Duration = Duration::from_millis(200);
/// How long pressure lasts after the last long wait ended; also the retry delay clients are given.
pub(crate) const PRESSURE_HOLD: Duration = Duration::from_secs(1);

impl Ingest {
    pub fn new(
        shard: usize,
        router: Router,
        senders: Senders<Delivery>,
        pipeline: Rc<dyn Deliver>,
        shard_metrics: ShardMetrics,
        overload: Option<Arc<Overload>>,
        memory_limiters: MemoryLimiterMetrics,
    ) -> Self {
        Ingest {
            shard,
            router,
            senders,
            pipeline,
            shard_metrics,
            splits: RefCell::new(Vec::new()),
            framer: RefCell::new(Framer::new()),
            stalled: Cell::new(0),
            pressure_until: Cell::new(None),
            overload,
            memory_limiters,
            tier: None,
            admissions: Admissions::default(),
        }
    }

    /// This ingest, admitting client metadata through `admissions`.
    pub fn with_admissions(mut self, admissions: Admissions) -> Self {
        self.admissions = admissions;
        self
    }

    /// This ingest, routing clients' spans over `tier` first.
    pub fn with_tier(mut self, tier: Option<Rc<Tier>>) -> Self {
        self.tier = tier;
        self
    }

    /// The tier's forwarder of this shard, for shutdown.
    pub fn tier(&self) -> Option<&Rc<Tier>> {
        self.tier.as_ref()
    }

    /// Whether new requests are refused for now (see the module documentation).
    pub fn under_pressure(&self) -> bool {
        self.stalled.get() > 0
            || self
                .pressure_until
                .get()
                .is_some_and(|t| Instant::now() < t)
    }

    /// Awaits a hand-off, putting the shard under pressure while it waits too long.
    async fn watched<T>(&self, handoff: impl Future<Output = T>) -> T {
        let mut handoff = pin!(handoff);
        let quick = futures_lite::future::or(async { Some(handoff.as_mut().await) }, async {
            glommio::timer::sleep(PRESSURE_WAIT).await;
            None
        })
        .await;
        match quick {
            Some(done) => done,
            None => {
                self.stalled.set(self.stalled.get().saturating_add(1));
                let done = handoff.await;
                self.stalled.set(self.stalled.get().saturating_sub(1));
                self.pressure_until
                    .set(Instant::now().checked_add(PRESSURE_HOLD));
                done
            }
        }
    }

    /// Admits a valid request of `items` items with client `metadata` past the `batch`
    /// processors' cardinality limits, once nothing else refuses it: a request refused for
    /// another reason takes no combination.
    fn admit(&self, signal: Signal, metadata: &Metadata, items: u64) -> Result<(), IngestError> {
        self.admissions
            .admit(signal, metadata)
            .map_err(|why| IngestError::Metadata { why, items })
    }

    fn refuse_under_pressure(&self, items: u64) -> Result<(), IngestError> {
        if self.under_pressure() {
            return Err(IngestError::Overloaded {
                items,
                retry_after: PRESSURE_HOLD,
            });
        }
        Ok(())
    }

    /// Hands a delivery that arrived over the mesh (or was kept locally) to this shard's
    /// pipeline, counting owned spans.
    pub async fn receive_owned(&self, delivery: Delivery) {
        if delivery.signal == Signal::Traces {
            self.shard_metrics.owned_spans.add(delivery.items);
        }
        self.pipeline.deliver(delivery).await;
    }

    /// Starts one task per peer shard that hands what that peer routed here to this shard's
    /// pipeline; each ends once its peer has closed its side ([`Ingest::close_mesh`]) and all
    /// it sent was delivered.
    pub fn serve_mesh(
        self: &Rc<Self>,
        mut receivers: Receivers<Delivery>,
    ) -> Vec<glommio::Task<()>> {
        receivers
            .streams()
            .into_iter()
            .map(|(_peer, stream)| {
                let ingest = self.clone();
                glommio::spawn_local(async move {
                    while let Some(delivery) = stream.recv().await {
                        ingest.receive_owned(delivery).await;
                    }
                })
            })
            .collect()
    }

    /// Validates, routes and hands over one decoded export request from `origin`, with the
    /// client `metadata` its receiver kept; counts it in `metrics`.
    pub async fn export(
        &self,
        signal: Signal,
        body: Bytes,
        origin: Origin,
        metadata: Metadata,
        metrics: &ReceiverMetrics,
    ) -> Result<Outcome, IngestError> {
        let counters = metrics.signal(signal);
        let result = match signal {
            Signal::Traces => self.export_traces(body, origin, metadata).await,
            Signal::Metrics | Signal::Logs => self.export_local(signal, body, metadata).await,
        };
        // A request refused whole because it did not decode has no known item count; one
        // refused under pressure was validated first, so its items are counted.
        match &result {
            Ok(outcome) => {
                counters.accepted.add(outcome.accepted);
                counters.refused.add(outcome.rejected);
                self.memory_limiters.accepted(signal, outcome.accepted);
            }
            Err(IngestError::Overloaded { items, .. } | IngestError::Metadata { items, .. }) => {
                counters.refused.add(*items)
            }
            Err(IngestError::OverMemory { items, .. }) => {
                counters.refused.add(*items);
                self.memory_limiters.refused(signal, *items);
            }
            Err(_) => {}
        }
        result
    }

    async fn export_local(
        &self,
        signal: Signal,
        body: Bytes,
        metadata: Metadata,
    ) -> Result<Outcome, IngestError> {
        let items = item_count(&Request::parse(signal, &body).map_err(IngestError::Decode)?);
        self.refuse_under_pressure(items)?;
        if self
            .overload
            .as_ref()
            .is_some_and(|overload| overload.is_full(self.shard))
        {
            return Err(IngestError::OverMemory {
                items,
                retry_after: PRESSURE_HOLD,
            });
        }
        self.admit(signal, &metadata, items)?;
        if items > 0 {
            self.watched(self.pipeline.deliver(Delivery {
                signal,
                bytes: body,
                items,
                metadata,
            }))
            .await;
        }
        Ok(Outcome {
            accepted: items,
            ..Outcome::default()
        })
    }

    async fn export_traces(
        &self,
        body: Bytes,
        origin: Origin,
        metadata: Metadata,
    ) -> Result<Outcome, IngestError> {
        let shards = self.router.shards();
        let mut split = self
            .splits
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Split::new(shards));
        let router = self.router;
        // With a tier, destinations past the shards are its members: `shards + member`.
        let (run, generation) = match (&self.tier, origin) {
            (None, _) => (split.run(&body, |id| router.owner(id)), 0),
            (Some(tier), Origin::Client) => tier.with_owners(|owner, members| {
                // Both are bounded (4096 CPUs, 256 members): no sum here comes near overflow.
                let destinations = shards.saturating_add(members);
                if split.shard_count() != destinations {
                    split = Split::new(destinations);
                }
                split.run(
                    &body,
                    remembering_last(|id| match owner(id) {
                        None => router.owner(id),
                        Some(member) => shards.saturating_add(member),
                    }),
                )
            }),
            // Forwarded by a member: decided here, whatever this node's ring says.
            (Some(tier), Origin::Member) => {
                let (owned, other) = (Cell::new(0u64), Cell::new(0u64));
                let (run, generation) = tier.with_owners(|owner, members| {
                    // The size clients' requests need, so that splits are reused across both.
                    let destinations = shards.saturating_add(members);
                    if split.shard_count() != destinations {
                        split = Split::new(destinations);
                    }
                    let mut owned_here = remembering_last(|id| owner(id).is_none());
                    split.run(&body, |id| {
                        let count = if owned_here(id) { &owned } else { &other };
                        count.set(count.get().saturating_add(1));
                        router.owner(id)
                    })
                });
                if run.is_ok() {
                    tier.received(owned.get(), other.get());
                }
                (run, generation)
            }
        };
        if let Err(err) = run {
            self.recycle(split);
            return Err(IngestError::Decode(err));
        }
        let rejected = split.rejected();
        let routed: u64 = (0..split.shard_count())
            .map(|s| split.spans(s).len() as u64)
            .sum();
        let items = routed.saturating_add(rejected);
        if let Err(err) = self.refuse_under_pressure(items) {
            self.recycle(split);
            return Err(err);
        }
        // A full shard takes nothing more until exports and decisions free it; the whole
        // request is refused, retryably, rather than part of it accepted.
        if let Some(overload) = &self.overload {
            if (0..shards).any(|s| !split.spans(s).is_empty() && overload.is_full(s)) {
                self.recycle(split);
                return Err(IngestError::OverMemory {
                    items,
                    retry_after: PRESSURE_HOLD,
                });
            }
        }
        if let Err(err) = self.admit(Signal::Traces, &metadata, items) {
            self.recycle(split);
            return Err(err);
        }
        let message = split
            .first_defect()
            .map(|(defect, offset)| {
                format!("{rejected} span(s) rejected; first at byte {offset}: {defect}")
            })
            .unwrap_or_default();
        let owners: Vec<usize> = (0..split.shard_count())
            .filter(|&s| !split.spans(s).is_empty())
            .collect();
        let mut accepted = 0u64;
        // The parts other members own go into their outboxes now, framed there.
        let mut outgoing = Vec::new();
        let mut forwarded = 0u64;
        let mut local_owners = Vec::with_capacity(owners.len());
        for &owner in &owners {
            let (Some(tier), Some(member)) = (&self.tier, owner.checked_sub(shards)) else {
                local_owners.push(owner);
                continue;
            };
            let items = split.spans(owner).len() as u64;
            let mut framer = self.framer.borrow_mut();
            match tier.append(member, generation, items, &metadata, |out| {
                if owners.len() == 1 && rejected == 0 {
                    // The whole request is the member's: as it came.
                    out.extend_from_slice(&body);
                } else {
                    split.frame(&body, owner, &mut framer, out);
                }
            }) {
                Some(ready) => {
                    outgoing.extend(ready);
                    forwarded = forwarded.saturating_add(items);
                }
                // Shutdown has begun: this shard keeps them.
                None => local_owners.push(owner),
            }
        }
        accepted = accepted.saturating_add(forwarded);
        // A member's part kept at shutdown goes to this shard.
        let kept_here = |owner: usize| if owner >= shards { self.shard } else { owner };
        // One owner, on this node, and nothing rejected: the request goes on as it came,
        // uncopied.
        if let ([owner], 0, 1) = (local_owners.as_slice(), rejected, owners.len()) {
            let items = split.spans(*owner).len() as u64;
            let owner = kept_here(*owner);
            self.recycle(split);
            self.hand_over(owner, body, items, metadata).await;
            accepted = accepted.saturating_add(items);
        } else {
            let mut parts = Vec::with_capacity(local_owners.len());
            {
                let mut framer = self.framer.borrow_mut();
                for &owner in &local_owners {
                    let spans = split.spans(owner);
                    // Empty: `frame` measures the request first and reserves exactly its
                    // length (an estimate reserved here would be copied by that reservation's
                    // realloc whenever the headers made it short).
                    let mut out = Vec::new();
                    split.frame(&body, owner, &mut framer, &mut out);
                    parts.push((kept_here(owner), Bytes::from(out), spans.len() as u64));
                }
            }
            self.recycle(split);
            for (owner, bytes, items) in parts {
                self.hand_over(owner, bytes, items, metadata.clone()).await;
                accepted = accepted.saturating_add(items);
            }
        }
        if let (Some(tier), false) = (&self.tier, outgoing.is_empty()) {
            self.watched(tier.send(outgoing)).await;
        }
        Ok(Outcome {
            accepted,
            rejected,
            message,
        })
    }

    /// Gives `owner` its part of a traces request: kept here if this shard owns it, otherwise
    /// sent over the mesh, waiting while the channel is full.
    async fn hand_over(&self, owner: usize, bytes: Bytes, items: u64, metadata: Metadata) {
        let delivery = Delivery {
            signal: Signal::Traces,
            bytes,
            items,
            metadata,
        };
        if owner == self.shard {
            self.watched(self.receive_owned(delivery)).await;
        } else if let Err(err) = self.watched(self.senders.send_to(owner, delivery)).await {
            // The mesh closes only when a shard stops, during shutdown: keep the spans here
            // rather than lose them.
            match err {
                GlommioError::Closed(ResourceType::Channel(delivery))
                | GlommioError::WouldBlock(ResourceType::Channel(delivery)) => {
                    self.receive_owned(delivery).await
                }
                other => unreachable!("a mesh send fails only as a closed channel: {other}"),
            }
        }
    }

    /// Closes this shard's ends of the mesh: peers see the end of what this shard sends them
    /// once they have received all of it. Part of shutdown, after the receivers stopped.
    pub fn close_mesh(&self) {
        self.senders.close();
    }

    fn recycle(&self, split: Split) {
        let mut splits = self.splits.borrow_mut();
        if splits.len() < SPARE_SPLITS_MAX {
            splits.push(split);
        }
    }
}

/// `answer`, with its answer for the last trace id kept and given again for the same id without
/// asking. A request's spans of one trace often come one after another (a service's part of a
/// trace, an SDK's export of one operation), and the tier asks its ring for each span (a hash
/// and a search, about 20 ns on the tier scenario): `answer` must give one id one answer
/// within a request, as the ring does while the caller holds the membership.
fn remembering_last<T: Copy>(mut answer: impl FnMut(&[u8; 16]) -> T) -> impl FnMut(&[u8; 16]) -> T {
    let mut last: Option<([u8; 16], T)> = None;
    move |id| match last {
        Some((seen, given)) if seen == *id => given,
        _ => {
            let given = answer(id);
            last = Some((*id, given));
            given
        }
    }
}

#[cfg(test)]
mod tests {
    use super::remembering_last;

    #[test]
    fn the_last_answer_is_given_again_for_the_same_id_only() {
        let mut asked = Vec::new();
        let mut answer = remembering_last(|id: &[u8; 16]| {
            asked.push(id[0]);
            usize::from(id[0]) * 10
        });
        let id = |b: u8| [b; 16];
        let answers: Vec<usize> = [1, 1, 2, 1, 1, 1, 3]
            .map(|b| answer(&id(b)))
            .into_iter()
            .collect();
        assert_eq!(answers, [10, 10, 20, 10, 10, 10, 30]);
        drop(answer);
        assert_eq!(asked, [1, 2, 1, 3], "asked once a run of the same id");
    }
}
