//! Export: batching sampled data and sending it upstream over OTLP/gRPC, OTLP/HTTP, or to stdout.
//!
//! # Who owns what, which thread runs it
//!
//! Everything here belongs to one shard and runs on that shard's single-threaded glommio
//! executor: state is shared between the shard's tasks with `Rc`/`RefCell`, never across
//! threads, and no lock is taken. Each shard builds its own pipeline from the same settings:
//!
//! ```text
//!  ingest / decisions ──push──► Pipeline ──► Batcher (per signal) ──Batch──► Exporter ─► upstream
//!                               flush timer ─┘                       (one per configured exporter,
//!                                                                     each with its sending queue)
//! ```
//!
//! - [`Batcher`] is pure logic (no executor, no clock of its own): it merges export requests of
//!   one signal into [`Batch`]es by the Collector's `batch` processor rules. A batch is the
//!   *concatenation* of the requests it holds: two encodings of the same protobuf message,
//!   concatenated, are the encoding of their merge, and merging appends the repeated
//!   `resource_*` field. Nothing is decoded or re-encoded on the way out.
//! - [`Pipeline`] drives a batcher on the executor: it hands full batches to its exporters as
//!   they form and runs the timer that flushes a batch `timeout` after its first item.
//! - [`Exporter`] owns a bounded sending queue and `num_consumers` tasks that send from it, each
//!   with retries and backoff. [`Exporter::submit`] *waits* while the queue is full: that wait is
//!   the backpressure the receivers feel, and nothing is dropped to make room.
//!
//! # Accounting
//!
//! Every item handed to an exporter ends in exactly one of [`ExportObserver::sent`],
//! [`ExportObserver::send_failed`] with a reason from [`reason`] (refused by the upstream in a
//! partial success, failed permanently, out of retries, or dropped at shutdown), or
//! [`ExportObserver::handed_on`] to the exporter's [`Fallback`] (a failover connector's lower
//! level), which then accounts for it. The telemetry layer implements the observer; this
//! module only calls it.
//!
//! A pipeline may also hand its batches to [`Connect`]ors (routing, failover), which feed other
//! pipelines of the same shard; the shard's dispatcher implements both hooks.
//!
//! # Bounds
//!
//! A batch holds at most `send_batch_max_size` items (when set) and `BATCH_BYTES_MAX_DEFAULT`
//! bytes (configurable), except that one request bigger than either travels alone: tailgate
//! splits at request granularity, never inside a request. A sending queue holds `queue_size`
//! units of its `sizer`: batches (the default; the memory an exporter can pin on a shard is then
//! about `(queue_size + num_consumers) × batch_bytes_max`), items, or bytes (then about
//! `queue_size + num_consumers × batch_bytes_max`). Retries stop after `max_elapsed_time`;
//! responses are read up to `RESPONSE_BYTES_MAX`; shutdown stops at its deadline.

mod balance;
mod batch;
pub(crate) mod compression;
mod connect;
mod debug;
mod error;
mod exporter;
mod otlp_grpc;
mod otlp_http;
mod partition;
mod persist;
mod pipeline;
pub mod proxy;
mod queue;
mod resolve;
mod retry;
mod settings;
mod status;
pub mod upstream;

pub use balance::Routing;
pub(crate) use batch::BATCH_BYTES_MAX_DEFAULT;
pub use batch::{Batch, BatchSettingsError, Batcher, BatcherSettings};
pub use error::SendError;
pub use exporter::{Exporter, SubmitError};
pub use partition::{Batchers, Partitioning};
pub use pipeline::{Pipeline, PipelineClosed};
pub use proxy::{ProxyEnv, ProxyUrl};
pub use settings::{
    is_listening_on, Backends, Balancer, ClientKeepalive, Compression, DebugSettings, Encoding,
    ExporterSettings, HttpPool, LoadBalancingSettings, Local, OtlpGrpcSettings, OtlpHttpSettings,
    QueueSettings, QueueSizer, RetrySettings, SettingsError, StorageSettings, Verbosity,
};

/// One export at a time, with no queue and no retries: for the gateway's own telemetry,
/// pushed on an interval, where a failed push is followed by the next interval's fresh values.
pub(crate) enum OneShot {
    Grpc(Box<otlp_grpc::GrpcClient>),
    Http(Box<otlp_http::HttpClient>),
}

impl OneShot {
    /// A client for `settings` (`otlp` or `otlphttp`).
    pub(crate) fn new(settings: &ExporterSettings) -> Result<OneShot, SettingsError> {
        match settings {
            ExporterSettings::Otlp(s) => {
                Ok(OneShot::Grpc(Box::new(otlp_grpc::GrpcClient::new(s)?)))
            }
            ExporterSettings::OtlpHttp(s) => {
                Ok(OneShot::Http(Box::new(otlp_http::HttpClient::new(s, 1)?)))
            }
            _ => Err(SettingsError::Endpoint {
                endpoint: String::new(),
                reason: "a one-shot client speaks otlp or otlphttp only",
            }),
        }
    }

    /// Sends `batch` once; the caller bounds the wait.
    pub(crate) async fn send(&self, batch: &Batch) -> Result<status::Delivered, SendError> {
        match self {
            OneShot::Grpc(client) => {
                let prepared = client.prepare(batch)?;
                client.attempt(batch, &prepared).await
            }
            OneShot::Http(client) => {
                let prepared = client.prepare(batch)?;
                client.attempt(batch, &prepared).await
            }
        }
    }

    /// After a send that ran out of time: the connection may be black-holed.
    pub(crate) fn forget_connection(&self) {
        match self {
            OneShot::Grpc(client) => client.forget_connection(),
            OneShot::Http(client) => client.close_idle(),
        }
    }
}

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tailgate_wire::Signal;

/// The most response body an exporter reads (status details, partial-success messages);
/// a longer response is a protocol error, so a misbehaving upstream cannot make a shard buffer
/// without bound.
pub(crate) const RESPONSE_BYTES_MAX: usize = 1024 * 1024;

/// The reasons [`ExportObserver::send_failed`] is called with: a fixed set, so they can be
/// metric labels.
pub mod reason {
    /// Still queued or in flight when the shutdown deadline passed.
    pub const SHUTDOWN: &str = "shutdown";
    /// Handed to the exporter after its shutdown had begun: never queued (the Collector's
    /// `enqueue_failed`), and lost to the shutdown.
    pub const NOT_QUEUED: &str = "not queued: shutting down";
    /// Refused by the upstream in a partial-success response (`rejected_spans` and the like).
    pub const REJECTED: &str = "rejected by upstream";
    /// An error the OTLP rules say not to retry (HTTP 400, gRPC `INVALID_ARGUMENT`,
    /// `RESOURCE_EXHAUSTED` without `RetryInfo`, a batch that cannot be encoded, ...).
    pub const PERMANENT: &str = "permanent error";
    /// A retryable error persisted past `max_elapsed_time`, or retry is disabled (a budget of
    /// one attempt).
    pub const RETRIES_EXHAUSTED: &str = "retries exhausted";
    /// The sending queue had no room and `block_on_overflow: false` asked to drop rather than
    /// wait: never queued (the Collector's `enqueue_failed`).
    pub const QUEUE_FULL: &str = "queue full";
    /// The sending queue had no room, and `drop_oldest_on_overflow` asked to make room by
    /// dropping the oldest queued batch: this one.
    pub const QUEUE_FULL_OLDEST: &str = "queue full: oldest dropped";
}

/// Where a [`Pipeline`] hands its batches besides its exporters: a connector (routing,
/// failover) that feeds other pipelines of the shard. Implemented by the shard's dispatcher.
pub trait Connect {
    /// Takes `batch`, a valid export request; resolves once the pipelines behind the connector
    /// have taken it (waiting while they push back). Whatever it cannot deliver, it counts.
    fn consume<'a>(&'a self, batch: &'a Batch) -> Pin<Box<dyn Future<Output = ()> + 'a>>;
}

/// Where an exporter hands a batch it could not deliver, instead of dropping it: the failover
/// connector, which sends it on to a lower priority level. Implemented by the shard's
/// dispatcher; an exporter holds it weakly, so the connector's end ends the hand-off.
pub trait Fallback {
    /// The exporter `exporter` (an index the fallback gave it) delivered a batch: the level
    /// it serves works.
    fn delivered(&self, exporter: usize);
    /// The exporter `exporter` gave up on `batch` (`reason`, one of [`reason`]); the fallback
    /// now owns it and accounts for it.
    fn failed(&self, exporter: usize, batch: Batch, reason: &'static str);
}

/// What an exporter reports about its work; the telemetry layer implements it on top of its
/// per-shard counters (`otelcol_exporter_sent_spans`, `otelcol_exporter_send_failed_spans`,
/// `otelcol_exporter_queue_size`, ...).
///
/// Called on the shard's thread from the exporter's tasks; implementations must not block.
pub trait ExportObserver {
    /// `items` of `signal` were accepted by the upstream.
    fn sent(&self, signal: Signal, items: u64);
    /// `items` of `signal` will never be delivered, for `reason` (one of [`reason`]).
    fn send_failed(&self, signal: Signal, items: u64, reason: &'static str);
    /// The sending queue now holds `len` batches.
    fn queue_len(&self, len: usize);
    /// The exporter took (`delta > 0`) or let go of (`delta < 0`) batches of `delta` bytes:
    /// every batch is counted once when queued (or, without a queue, when its send begins) and
    /// once when settled, dropped or drained, so the running sum is what it holds.
    fn holding(&self, _delta: i64) {}
    /// The exporter took (`delta > 0`) or let go of (`delta < 0`) `delta` items of `signal`:
    /// every item is counted once when it is queued (in memory or on disk, or read back from
    /// disk at start) or its send begins, and once when it is sent, dropped or left on disk, so
    /// the running sum is what the exporter has yet to settle — the accounting's "still
    /// queued" term.
    fn pending(&self, _signal: Signal, _delta: i64) {}
    /// An attempt to send failed with `err` (it may be retried); the sending queue holds
    /// `queued` batches.
    fn attempt_failed(&self, _err: &SendError, _queued: usize) {}
    /// An attempt reached the upstream and was answered (accepted, or in part rejected).
    fn attempt_answered(&self) {}
    /// `items` of `signal` failed to send for `reason` and were handed to the exporter's
    /// [`Fallback`]: a failed send (`otelcol_exporter_send_failed_*`), not a loss.
    fn handed_on(&self, _signal: Signal, _items: u64, _reason: &'static str) {}
    /// A persistent queue read back a batch of `items` of `signal` that an earlier run left.
    fn queue_recovered(&self, _signal: Signal, _items: u64) {}
    /// A persistent queue found `bytes` of damaged records (claiming `items` of `signal`, when
    /// a header was readable) and skipped them: data lost, counted.
    fn queue_damaged(&self, _signal: Option<Signal>, _items: u64, _bytes: u64) {}
    /// A persistent queue's disk refused `operation` (`write`, `fsync`, `read`, `ack`,
    /// `delete`, `recover`).
    fn queue_disk_error(&self, _operation: &'static str) {}
    /// A persistent queue's segments now take `bytes` on disk and hold `items` not yet
    /// settled.
    fn queue_disk_usage(&self, _bytes: u64, _items: u64) {}
    /// At shutdown, `items` of `signal` were left in a persistent queue for the next start:
    /// not sent, not lost.
    fn left_on_disk(&self, _signal: Signal, _items: u64) {}
    /// An attempt ended after `elapsed`, answered by the upstream or not.
    fn attempt_took(&self, _elapsed: Duration, _answered: bool) {}
    /// A load balancer's attempt to send to `endpoint` ended after `elapsed`, answered or not
    /// (`otelcol_loadbalancer_backend_outcome`, `_backend_latency`).
    fn backend_attempt(&self, _endpoint: &str, _answered: bool, _elapsed: Duration) {}
    /// A load balancer routes over `count` backends now (`otelcol_loadbalancer_num_backends`);
    /// `changed`: the set differs from the one before (`_num_backend_updates`).
    fn backends(&self, _count: usize, _changed: bool) {}
    /// A load balancer's resolver looked its backends up, successfully or not
    /// (`otelcol_loadbalancer_num_resolutions`).
    fn resolution(&self, _success: bool) {}
}
