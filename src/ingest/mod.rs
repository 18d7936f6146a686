//! Receiving OTLP: the gRPC and HTTP receivers, and the hand-off of what they accept to the
//! shards that own it.
//!
//! Every shard runs its own listeners (SO_REUSEPORT spreads connections over shards) and its own
//! [`Ingest`]. A receiver reads a request body, decodes its transfer coding ([`body`]) and calls
//! [`Ingest::export`], which is the same for both transports:
//!
//! - traces are validated and split by owning shard in one pass ([`crate::wire::Split`]); each
//!   destination gets one [`Delivery`] holding all of that request's spans it owns, framed as an
//!   export request of their own. The receiving shard keeps its own part, and sends the others
//!   over the bounded mesh channels — waiting, when a channel is full, which slows the client's
//!   connection (its next read, or HTTP/2 flow control) rather than dropping anything;
//! - metrics and logs are validated and go to the receiving shard's own pipeline: they are not
//!   sampled, so any shard may forward them.
//!
//! The request is answered only after every part has been handed over, so an accepted item is
//! always in some shard's pipeline; spans rejected on their own (bad ids) are counted as refused
//! and reported back as partial success.

pub mod body;
pub mod grpc;
pub mod http;
pub mod status;
pub mod stop;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use glommio::channels::channel_mesh::Senders;
use glommio::{GlommioError, ResourceType};
use tailgate_shards::route::Router;

use crate::telemetry::{ReceiverMetrics, ShardMetrics};
use crate::wire::{item_count, Framer, Request, Signal, Split};
use status::IngestError;

/// What one shard hands another (or itself): a valid export request of `signal` holding `items`
/// items, all owned by the destination.
#[derive(Debug)]
pub struct Delivery {
    pub signal: Signal,
    pub bytes: Vec<u8>,
    pub items: u64,
}

/// The shard's pipeline, as the receivers see it: it takes deliveries, waiting while it is full.
pub trait Deliver {
    /// Hands `delivery` to the pipeline; resolves once it has been taken.
    fn deliver(&self, delivery: Delivery) -> Pin<Box<dyn Future<Output = ()> + '_>>;
}

/// What became of an accepted request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Items handed to the pipelines.
    pub accepted: u64,
    /// Items rejected on their own (partial success).
    pub rejected: u64,
    /// Why, for the partial-success message; empty when nothing was rejected.
    pub message: String,
}

/// Size limits of one receiver.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest message accepted, after decompression.
    pub max_message_bytes: usize,
}

/// One shard's receiving side: routing and hand-off, shared by its gRPC and HTTP receivers.
pub struct Ingest {
    shard: usize,
    router: Router,
    senders: Senders<Delivery>,
    pipeline: Rc<dyn Deliver>,
    shard_metrics: ShardMetrics,
    /// Splits are reused across requests; one per request in flight (requests interleave at
    /// await points, so a split is taken for the duration of one request).
    splits: RefCell<Vec<Split>>,
    framer: RefCell<Framer>,
}

/// How many idle splits a shard keeps for reuse.
const SPARE_SPLITS_MAX: usize = 64;

impl Ingest {
    pub fn new(
        shard: usize,
        router: Router,
        senders: Senders<Delivery>,
        pipeline: Rc<dyn Deliver>,
        shard_metrics: ShardMetrics,
    ) -> Self {
        Ingest {
            shard,
            router,
            senders,
            pipeline,
            shard_metrics,
            splits: RefCell::new(Vec::new()),
            framer: RefCell::new(Framer::new()),
        }
    }

    pub fn shard(&self) -> usize {
        self.shard
    }

    /// Hands a delivery that arrived over the mesh (or was kept locally) to this shard's
    /// pipeline, counting owned spans.
    pub async fn receive_owned(&self, delivery: Delivery) {
        if delivery.signal == Signal::Traces {
            self.shard_metrics.owned_spans.add(delivery.items);
        }
        self.pipeline.deliver(delivery).await;
    }

    /// Validates, routes and hands over one decoded export request; counts it in `metrics`.
    pub async fn export(
        &self,
        signal: Signal,
        body: Vec<u8>,
        metrics: &ReceiverMetrics,
    ) -> Result<Outcome, IngestError> {
        let counters = metrics.signal(signal);
        let result = match signal {
            Signal::Traces => self.export_traces(body).await,
            Signal::Metrics | Signal::Logs => self.export_local(signal, body).await,
        };
        // A request refused whole was not decoded, so its items are unknown and not counted;
        // the refusal itself is the client's error (or retry) to act on.
        if let Ok(outcome) = &result {
            counters.accepted.add(outcome.accepted);
            counters.refused.add(outcome.rejected);
        }
        result
    }

    async fn export_local(&self, signal: Signal, body: Vec<u8>) -> Result<Outcome, IngestError> {
        let items = item_count(&Request::parse(signal, &body).map_err(IngestError::Decode)?);
        if items > 0 {
            self.pipeline
                .deliver(Delivery {
                    signal,
                    bytes: body,
                    items,
                })
                .await;
        }
        Ok(Outcome {
            accepted: items,
            ..Outcome::default()
        })
    }

    async fn export_traces(&self, body: Vec<u8>) -> Result<Outcome, IngestError> {
        let mut split = self
            .splits
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Split::new(self.router.shards()));
        let router = self.router;
        if let Err(err) = split.run(&body, |id| router.owner(id)) {
            self.recycle(split);
            return Err(IngestError::Decode(err));
        }
        let rejected = split.rejected();
        let message = split
            .first_defect()
            .map(|(defect, offset)| {
                format!("{rejected} span(s) rejected; first at byte {offset}: {defect}")
            })
            .unwrap_or_default();
        let owners: Vec<usize> = (0..split.shard_count())
            .filter(|&s| !split.spans(s).is_empty())
            .collect();
        let mut accepted = 0;
        // One owner and nothing rejected: the request goes on as it came, uncopied.
        if let ([owner], 0) = (owners.as_slice(), rejected) {
            let items = split.spans(*owner).len() as u64;
            self.recycle(split);
            self.hand_over(*owner, body, items).await;
            accepted = items;
        } else {
            let mut parts = Vec::with_capacity(owners.len());
            {
                let mut framer = self.framer.borrow_mut();
                for &owner in &owners {
                    let spans = split.spans(owner);
                    let estimate: usize =
                        spans.iter().map(|s| (s.end - s.start) as usize + 4).sum();
                    let mut out = Vec::with_capacity(estimate + 256);
                    split.frame(&body, owner, &mut framer, &mut out);
                    parts.push((owner, out, spans.len() as u64));
                }
            }
            self.recycle(split);
            for (owner, bytes, items) in parts {
                self.hand_over(owner, bytes, items).await;
                accepted += items;
            }
        }
        Ok(Outcome {
            accepted,
            rejected,
            message,
        })
    }

    /// Gives `owner` its part of a traces request: kept here if this shard owns it, otherwise
    /// sent over the mesh, waiting while the channel is full.
    async fn hand_over(&self, owner: usize, bytes: Vec<u8>, items: u64) {
        let delivery = Delivery {
            signal: Signal::Traces,
            bytes,
            items,
        };
        if owner == self.shard {
            self.receive_owned(delivery).await;
        } else if let Err(err) = self.senders.send_to(owner, delivery).await {
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
