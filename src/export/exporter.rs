//! One configured exporter on one shard: its sending queue, its consumer tasks, retries, and
//! shutdown.
//!
//! # Who runs what
//!
//! [`Exporter::check`] runs at start-up, on the main thread, and refuses what `new` would.
//! [`Exporter::new`] runs on the shard's executor and spawns `num_consumers` consumer tasks
//! there. [`Exporter::submit`] is called by the shard's pipeline tasks: it puts the batch on
//! the sending queue, waiting while the queue is full — that wait is the backpressure the
//! receivers feel; nothing is dropped to make room. A consumer takes the oldest batch and
//! settles it: attempts, backoff sleeps between them, and the final count. With
//! `sending_queue.enabled: false` there are no consumers: `submit` settles the batch in the
//! caller's task and returns when it is settled.
//!
//! # Settling a batch
//!
//! A batch in the hands of a consumer is held by a `Claim`, which must end in exactly one
//! report to the [`ExportObserver`]: sent (less any items the upstream rejected in a partial
//! success), failed with a reason, handed on to the exporter's [`Fallback`] (a failover
//! connector, which then owns the batch), or — if the claim is dropped unsettled, which happens only
//! when shutdown's deadline cuts an attempt short — dropped with reason `shutdown`. So no path,
//! cancellation included, loses a batch without a count.
//!
//! Each attempt is bounded by `timeout`; the attempts of one batch by `max_elapsed_time`
//! (measured from the first attempt, checked before each wait, as the Collector does); the
//! whole by shutdown's deadline.
//!
//! # Shutdown
//!
//! [`Exporter::shutdown`] enqueues the batcher's final batches past the queue bound, then
//! closes the queue: waiting and later `submit`s are refused (and their batches counted as
//! dropped), consumers keep draining what is queued until it is empty or the deadline passes;
//! whatever is in flight or queued at the deadline is counted as dropped with reason
//! `shutdown`.
//!
//! # Handing batches back
//!
//! A load balancer's backend ([`super::balance`]) is built with a *handback*: while the
//! balancer has it diverted (taken out of the ring, or gone from the resolver's answer), the
//! exporter sends nothing more. Its queued batches, a batch that fails an attempt, a batch
//! popped or submitted while diverted, all go to the handback instead of being retried here or
//! dropped; the balancer routes them again to the backends that own them now. A batch handed
//! back is settled without a count: it is counted where it is finally delivered or dropped.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::sync::{Gate, Pass, Semaphore};

use super::balance::LoadBalancer;
use super::batch::Batch;
use super::debug::DebugPrinter;
use super::error::SendError;
use super::otlp_grpc::{self, GrpcClient};
use super::otlp_http::{self, HttpClient};
use super::persist::{DiskQueue, Refused};
use super::queue::SendingQueue;
use super::retry::{Backoff, Xorshift};
use super::settings::{
    validate_timeout, ExporterSettings, OtlpGrpcSettings, QueueSettings, QueueSizer, RetrySettings,
    SettingsError,
};
use super::status::Delivered;
use super::{reason, ExportObserver, Fallback};

/// Idle HTTP/1.1 connections kept by an `otlphttp` exporter without a queue, where the number
/// of concurrent sends is the callers' and not known here.
const INLINE_IDLE_CONNECTIONS: usize = 4;

/// The debug exporter prints synchronously; its "attempt" cannot time out, but every attempt
/// carries a bound.
const DEBUG_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`Exporter::submit`] did not take a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// Shutdown has begun; the batch was counted as dropped with reason `shutdown`.
    ShutDown,
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::ShutDown => {
                write!(
                    f,
                    "the exporter is shutting down; the batch was counted as dropped"
                )
            }
        }
    }
}

impl std::error::Error for SubmitError {}

/// One configured exporter on one shard.
pub struct Exporter {
    kind: Kind,
}

enum Kind {
    /// One destination.
    Single(Rc<Inner>),
    /// `loadbalancing`: one [`Exporter`] per backend, behind a ring.
    Balanced(LoadBalancer),
}

/// Where a backend's exporter hands back the batches it gives up while diverted.
pub(crate) type Handback = Rc<dyn Fn(Batch)>;

struct Inner {
    name: String,
    transport: Transport,
    retry: RetrySettings,
    timeout: Duration,
    /// The in-memory sending queue; `None` without a queue or with a persistent one.
    queue: Option<SendingQueue<Batch>>,
    /// The persistent sending queue (`sending_queue.storage`).
    disk: Option<Rc<DiskQueue>>,
    queue_size: usize,
    /// What a batch weighs in the queue.
    sizer: QueueSizer,
    /// Wait for room (true), or drop a batch that does not fit.
    block_on_overflow: bool,
    /// Dropping to make room drops the oldest queued batches rather than the new one.
    drop_oldest: bool,
    observer: Rc<dyn ExportObserver>,
    /// Entered by consumers and by inline sends; shutdown closes it and waits for them.
    gate: Gate,
    shutdown: Shutdown,
    rng: RefCell<Xorshift>,
    /// A load balancer's backend: where batches go while `diverted`.
    handback: Option<Handback>,
    diverted: Cell<bool>,
    /// Where a batch that cannot be delivered goes instead of being dropped (a failover
    /// connector), with the index it knows this exporter by.
    fallback: RefCell<Option<(Weak<dyn Fallback>, usize)>>,
}

/// An exporter's transport; one per exporter per shard, so the clients are boxed rather than
/// the enum sized to the largest.
enum Transport {
    Grpc(Box<GrpcClient>),
    Http(Box<HttpClient>),
    Debug(DebugPrinter),
}

/// A transport and the settings the exporter runs it with.
type Parts = (Transport, RetrySettings, Duration, QueueSettings);

impl Transport {
    /// Checks `settings` and builds the transport for `shard`; connects nothing.
    fn build(shard: usize, settings: ExporterSettings) -> Result<Parts, SettingsError> {
        Ok(match settings {
            ExporterSettings::Otlp(s) => {
                validate_timeout(s.timeout)?;
                s.queue.validate()?;
                let client = GrpcClient::new(&s)?;
                client.spread_from(shard);
                (
                    Transport::Grpc(Box::new(client)),
                    s.retry,
                    s.timeout,
                    s.queue,
                )
            }
            ExporterSettings::OtlpHttp(s) => {
                validate_timeout(s.timeout)?;
                s.queue.validate()?;
                let max_idle = if s.queue.enabled {
                    s.queue.num_consumers
                } else {
                    INLINE_IDLE_CONNECTIONS
                };
                let client = HttpClient::new(&s, max_idle)?;
                client.spread_from(shard);
                (
                    Transport::Http(Box::new(client)),
                    s.retry,
                    s.timeout,
                    s.queue,
                )
            }
            ExporterSettings::LoadBalancing(_) => {
                unreachable!("a load balancer is built by LoadBalancer::new, its backends as otlp")
            }
            ExporterSettings::Debug(s) => (
                Transport::Debug(DebugPrinter::new(shard, &s)),
                RetrySettings {
                    enabled: false,
                    ..RetrySettings::default()
                },
                DEBUG_TIMEOUT,
                QueueSettings {
                    enabled: false,
                    ..QueueSettings::default()
                },
            ),
        })
    }
}

enum Prepared {
    Grpc(otlp_grpc::Prepared),
    Http(otlp_http::Prepared),
    Debug,
}

impl Exporter {
    /// Builds the exporter `name` (as configured, e.g. `otlp/primary`) for shard `shard`.
    ///
    /// Must run on the shard's executor: it spawns the consumer tasks there.
    pub fn new(
        name: &str,
        shard: usize,
        settings: ExporterSettings,
        observer: Rc<dyn ExportObserver>,
    ) -> Result<Exporter, SettingsError> {
        if let ExporterSettings::LoadBalancing(settings) = settings {
            let balancer = LoadBalancer::new(name, shard, settings, observer)?;
            return Ok(Exporter {
                kind: Kind::Balanced(balancer),
            });
        }
        Exporter::single(name, shard, settings, observer, None)
    }

    /// A load balancer's backend: an `otlp` exporter that hands batches back to `handback`
    /// while diverted (see the module documentation).
    pub(crate) fn backend(
        name: &str,
        shard: usize,
        settings: OtlpGrpcSettings,
        observer: Rc<dyn ExportObserver>,
        handback: Handback,
    ) -> Result<Exporter, SettingsError> {
        Exporter::single(
            name,
            shard,
            ExporterSettings::Otlp(settings),
            observer,
            Some(handback),
        )
    }

    fn single(
        name: &str,
        shard: usize,
        settings: ExporterSettings,
        observer: Rc<dyn ExportObserver>,
        handback: Option<Handback>,
    ) -> Result<Exporter, SettingsError> {
        let (transport, retry, timeout, queue) = Transport::build(shard, settings)?;
        let disk = match (&queue.storage, queue.enabled) {
            (Some(storage), true) => Some(
                DiskQueue::open(
                    name,
                    shard,
                    storage,
                    queue.queue_size,
                    queue.sizer,
                    observer.clone(),
                )
                .map_err(|err| SettingsError::Storage {
                    directory: storage.directory.clone(),
                    error: err.to_string(),
                })?,
            ),
            _ => None,
        };
        let inner = Rc::new(Inner {
            name: name.to_string(),
            transport,
            retry,
            timeout,
            queue: (queue.enabled && disk.is_none()).then(|| SendingQueue::new(queue.queue_size)),
            disk,
            queue_size: if queue.enabled { queue.queue_size } else { 0 },
            sizer: queue.sizer,
            block_on_overflow: queue.block_on_overflow,
            drop_oldest: queue.drop_oldest,
            observer,
            gate: Gate::new(),
            shutdown: Shutdown::new(),
            rng: RefCell::new(Xorshift::seeded(shard, name)),
            handback,
            diverted: Cell::new(false),
            fallback: RefCell::new(None),
        });
        if queue.enabled {
            for _ in 0..queue.num_consumers {
                let pass = inner.gate.enter().expect("a new gate is open");
                if inner.disk.is_some() {
                    glommio::spawn_local(consume_disk(inner.clone(), pass)).detach();
                } else {
                    glommio::spawn_local(consume(inner.clone(), pass)).detach();
                }
            }
        }
        Ok(Exporter {
            kind: Kind::Single(inner),
        })
    }

    /// Checks `settings` exactly as [`Exporter::new`] does, starting nothing: start-up and
    /// `check-config` run it before any shard exists, so a shard cannot refuse an exporter
    /// the gateway accepted. Runs on any thread.
    pub fn check(settings: &ExporterSettings) -> Result<(), SettingsError> {
        match settings {
            ExporterSettings::LoadBalancing(settings) => LoadBalancer::check(settings),
            _ => Transport::build(0, settings.clone()).map(drop),
        }
    }

    /// The load balancer, for a `loadbalancing` exporter (or the tier's forwarder).
    pub(crate) fn balancer(&self) -> Option<&LoadBalancer> {
        match &self.kind {
            Kind::Balanced(balancer) => Some(balancer),
            Kind::Single(_) => None,
        }
    }

    /// The exporter's configured name.
    pub fn name(&self) -> &str {
        match &self.kind {
            Kind::Single(inner) => &inner.name,
            Kind::Balanced(balancer) => balancer.name(),
        }
    }

    /// Whether the upstream says it serves, on `grpc.health.v1` (see
    /// [`otlp_grpc::GrpcClient::health`]): `None` where that says nothing — not an `otlp`
    /// exporter, an upstream without the service, a load balancer, or an exporter shutting
    /// down.
    pub async fn upstream_serving(&self) -> Option<bool> {
        let Kind::Single(inner) = &self.kind else {
            return None;
        };
        match &inner.transport {
            Transport::Grpc(client) if !inner.shutdown.has_begun() => match client.health().await {
                otlp_grpc::Health::Serving => Some(true),
                otlp_grpc::Health::NotServing => Some(false),
                otlp_grpc::Health::Unknown => None,
            },
            _ => None,
        }
    }

    /// From now on, a batch this exporter cannot deliver (out of retries, a permanent error, no
    /// room in a queue that drops) goes to `fallback` as exporter `index` instead of being
    /// dropped, and every delivery is reported to it, for as long as `fallback` lives. A load
    /// balancer re-routes what its backends cannot deliver itself, and takes no fallback.
    pub fn set_fallback(&self, fallback: Weak<dyn Fallback>, index: usize) {
        if let Kind::Single(inner) = &self.kind {
            *inner.fallback.borrow_mut() = Some((fallback, index));
        }
    }

    /// Batches waiting in the sending queue (0 without a queue), however the queue counts them;
    /// a load balancer's, over all its backends.
    pub fn queue_len(&self) -> usize {
        match &self.kind {
            Kind::Single(inner) => inner.queued(),
            Kind::Balanced(balancer) => balancer.queue_len(),
        }
    }

    /// The sending queue's bound in its sizer's unit (0 without a queue); a load balancer's is
    /// each backend's.
    pub fn queue_capacity(&self) -> usize {
        match &self.kind {
            Kind::Single(inner) => inner.queue_size,
            Kind::Balanced(balancer) => balancer.queue_capacity(),
        }
    }

    /// A backend taken out of its balancer's ring (`true`) or back in it: while diverted,
    /// everything queued and every batch that fails an attempt goes to the handback. Only for
    /// exporters built by [`Exporter::backend`].
    pub(crate) fn divert(&self, diverted: bool) {
        let Kind::Single(inner) = &self.kind else {
            return;
        };
        let Some(handback) = &inner.handback else {
            return;
        };
        if inner.diverted.replace(diverted) || !diverted {
            return;
        }
        if let Some(queue) = &inner.queue {
            let taken = queue.take_all();
            inner.observer.queue_len(queue.used());
            for batch in taken {
                inner.let_go(batch.signal, batch.items, batch.bytes.len());
                handback(batch);
            }
        }
    }

    /// Whether the exporter hands its batches back rather than sending them.
    pub(crate) fn is_diverted(&self) -> bool {
        matches!(&self.kind, Kind::Single(inner) if inner.diverted.get())
    }

    /// Hands a batch to the exporter, waiting while the sending queue is full (or, without a
    /// queue, until the batch is settled). After shutdown has begun the batch is refused and
    /// counted as dropped.
    pub async fn submit(&self, batch: Batch) -> Result<(), SubmitError> {
        match &self.kind {
            Kind::Single(_) => self.submit_direct(batch).await,
            Kind::Balanced(balancer) => balancer.submit(batch).await,
        }
    }

    /// [`Exporter::submit`] to one destination: a load balancer's backend.
    pub(crate) async fn submit_direct(&self, batch: Batch) -> Result<(), SubmitError> {
        let Kind::Single(inner) = &self.kind else {
            unreachable!("a load balancer's backends are single exporters");
        };
        if inner.hands_back() {
            inner.hand_back_unclaimed(batch);
            return Ok(());
        }
        let pass = match inner.gate.enter() {
            Ok(pass) if !inner.shutdown.has_begun() => pass,
            _ => return Err(inner.refuse(batch)),
        };
        if let Some(disk) = &inner.disk {
            let result = match disk.push(batch, inner.block_on_overflow).await {
                Ok(()) => Ok(()),
                Err(Refused::Closed(batch)) => Err(inner.refuse(batch)),
                Err(Refused::Full(batch)) => {
                    inner.overflow_to_disk(disk, batch).await;
                    Ok(())
                }
            };
            inner.observer.queue_len(disk.used());
            drop(pass);
            return result;
        }
        let weight = inner.sizer.weight(&batch);
        let (signal, items, bytes) = (batch.signal, batch.items, batch.bytes.len());
        match &inner.queue {
            None => {
                inner.took(signal, items, bytes);
                inner.settle(batch, false).await;
                drop(pass);
                Ok(())
            }
            Some(_) if !inner.block_on_overflow => {
                drop(pass);
                // Never waits: queued, or dropped and counted.
                let _ = self.try_submit(batch);
                Ok(())
            }
            Some(queue) => match queue.push(batch, weight).await {
                Ok(()) => {
                    inner.took(signal, items, bytes);
                    inner.observer.queue_len(queue.used());
                    Ok(())
                }
                Err(batch) => Err(inner.refuse(batch)),
            },
        }
    }

    /// Hands a batch over if that takes no waiting: `Ok` once it is taken — queued, or dropped
    /// and counted (shutdown has begun, or the queue is full and `block_on_overflow` is off) —
    /// and the batch back if taking it means waiting (a full queue that blocks, or no queue,
    /// where the send itself is the wait): then [`Exporter::submit`] it.
    pub fn try_submit(&self, batch: Batch) -> Result<(), Batch> {
        let inner = match &self.kind {
            Kind::Single(inner) => inner,
            // Routing and the backends' queues are the balancer's; it takes a batch in
            // `submit`, after the pipeline's other exporters took theirs.
            Kind::Balanced(_) => return Err(batch),
        };
        if inner.hands_back() {
            inner.hand_back_unclaimed(batch);
            return Ok(());
        }
        if !inner.gate.is_open() || inner.shutdown.has_begun() {
            let _ = inner.refuse(batch);
            return Ok(());
        }
        // A persistent queue writes before it queues: that is a wait, done in `submit`.
        let Some(queue) = &inner.queue else {
            return Err(batch);
        };
        let (bytes, weight) = (batch.bytes.len() as i64, inner.sizer.weight(&batch));
        let (signal, items) = (batch.signal, batch.items);
        let mut pushed = queue.try_push(batch, weight);
        if inner.drop_oldest && !inner.block_on_overflow {
            while let Err(batch) = pushed {
                let Some(oldest) = queue.pop_now() else {
                    pushed = Err(batch);
                    break;
                };
                inner.drop_for_room(oldest.signal, oldest.items);
                inner.let_go(oldest.signal, oldest.items, oldest.bytes.len());
                pushed = queue.try_push(batch, weight);
            }
        }
        match pushed {
            Ok(()) => {
                inner.took(signal, items, bytes as usize);
                inner.observer.queue_len(queue.used());
                Ok(())
            }
            Err(batch) if inner.block_on_overflow => Err(batch),
            // Full: dropped for this exporter only (or handed to its fallback), counted; the
            // pipeline goes on to its other exporters without waiting for this one.
            Err(batch) => {
                if let Some((fallback, index)) = inner.fallback() {
                    inner.observer.handed_on(signal, items, reason::QUEUE_FULL);
                    fallback.failed(index, batch, reason::QUEUE_FULL);
                } else {
                    inner
                        .observer
                        .send_failed(signal, items, reason::QUEUE_FULL);
                }
                Ok(())
            }
        }
    }

    /// Stops taking batches, sends `final_batches` (the batcher's last flush, enqueued past the
    /// queue bound) and what is queued until `deadline`, then counts whatever is left as
    /// dropped with reason `shutdown`. Returns when every batch is settled; a second call
    /// returns at once.
    pub async fn shutdown(&self, final_batches: Vec<Batch>, deadline: Instant) {
        match &self.kind {
            Kind::Single(_) => self.shutdown_direct(final_batches, deadline).await,
            Kind::Balanced(balancer) => balancer.shutdown(final_batches, deadline).await,
        }
    }

    /// [`Exporter::shutdown`] of one destination: a load balancer's backend.
    pub(crate) async fn shutdown_direct(&self, final_batches: Vec<Batch>, deadline: Instant) {
        let Kind::Single(inner) = &self.kind else {
            unreachable!("a load balancer's backends are single exporters");
        };
        if inner.shutdown.has_begun() {
            return;
        }
        if let Some(disk) = &inner.disk {
            for batch in final_batches {
                disk.push_unbounded(batch).await;
            }
            inner.observer.queue_len(disk.used());
            // Handed over to a reload's new exporter, the queue stays open and its consumers
            // go on; only the last user drains it and leaves the rest on disk, written now.
            let last = disk.leave();
            if last {
                disk.flush(true).await;
            }
            inner.shutdown.begin(deadline);
            if last {
                disk.close();
            }
            let _ = inner.gate.close().await;
            if last {
                inner.leave_on_disk(disk);
            }
            inner.transport.close_connections();
            return;
        }
        match &inner.queue {
            Some(queue) => {
                for batch in final_batches {
                    inner.took(batch.signal, batch.items, batch.bytes.len());
                    queue.push_unbounded(batch);
                }
                inner.observer.queue_len(queue.used());
            }
            None => {
                for batch in final_batches {
                    let pass = inner.gate.enter().expect("the gate closes below");
                    inner.took(batch.signal, batch.items, batch.bytes.len());
                    let task_inner = inner.clone();
                    glommio::spawn_local(async move {
                        task_inner.settle(batch, false).await;
                        drop(pass);
                    })
                    .detach();
                }
            }
        }
        inner.shutdown.begin(deadline);
        if let Some(queue) = &inner.queue {
            queue.close();
        }
        // Consumers end once the queue is empty; inline sends end when settled. Both are cut
        // short at the deadline, so this returns shortly after it at the latest.
        let _ = inner.gate.close().await;
        if let Some(queue) = &inner.queue {
            for batch in queue.drain() {
                inner
                    .observer
                    .send_failed(batch.signal, batch.items, reason::SHUTDOWN);
                inner.let_go(batch.signal, batch.items, batch.bytes.len());
            }
            inner.observer.queue_len(0);
        }
        // Nothing more will be sent: let the upstream see the connections end now rather than
        // when the exporter is dropped.
        inner.transport.close_connections();
    }
}

impl Drop for Exporter {
    /// An exporter dropped without [`Exporter::shutdown`] shuts down with a deadline of now:
    /// consumers count what they hold and what is queued as dropped, then end.
    fn drop(&mut self) {
        let Kind::Single(inner) = &self.kind else {
            // The balancer's backends are exporters of their own, dropped with it.
            return;
        };
        if inner.shutdown.has_begun() {
            return;
        }
        inner.shutdown.begin(Instant::now());
        if let Some(queue) = &inner.queue {
            queue.close();
        }
        if let Some(disk) = &inner.disk {
            if disk.leave() {
                disk.close();
            }
        }
    }
}

impl Inner {
    /// The fallback, while it lives.
    fn fallback(&self) -> Option<(Rc<dyn Fallback>, usize)> {
        let fallback = self.fallback.borrow();
        let (weak, index) = fallback.as_ref()?;
        Some((weak.upgrade()?, *index))
    }

    /// Ends `claim` for `batch`, which failed for `why`: handed to the fallback if there is one,
    /// otherwise dropped and counted.
    fn give_up(&self, claim: Claim, batch: Batch, why: &'static str, err: &SendError) {
        match self.fallback() {
            Some((fallback, index)) => {
                claim.handed_on(&self.name, why, err);
                fallback.failed(index, batch, why);
            }
            None => claim.failed(&self.name, why, err),
        }
    }

    /// The exporter took a batch of `items` (queued, or being sent), `bytes` of it in memory.
    fn took(&self, signal: tailgate_wire::Signal, items: u64, bytes: usize) {
        self.observer.holding(bytes as i64);
        self.observer.pending(signal, items as i64);
    }

    /// The exporter let go of a batch it took, unsent: dropped, or left on disk.
    fn let_go(&self, signal: tailgate_wire::Signal, items: u64, bytes: usize) {
        self.observer.holding(-(bytes as i64));
        self.observer.pending(signal, -(items as i64));
    }

    /// Batches queued, in memory or on disk.
    fn queued(&self) -> usize {
        match (&self.queue, &self.disk) {
            (Some(queue), _) => queue.len(),
            (None, Some(disk)) => disk.len(),
            (None, None) => 0,
        }
    }

    /// Whether `batch` goes to the handback rather than the queue: diverted, and not shutting
    /// down (shutdown's own rules count what is left then).
    fn hands_back(&self) -> bool {
        self.diverted.get() && self.handback.is_some() && !self.shutdown.has_begun()
    }

    /// Hands back a batch this exporter never took.
    fn hand_back_unclaimed(&self, batch: Batch) {
        if let Some(handback) = &self.handback {
            handback(batch);
        }
    }

    /// Counts a refused batch as dropped.
    fn refuse(&self, batch: Batch) -> SubmitError {
        self.observer
            .send_failed(batch.signal, batch.items, reason::NOT_QUEUED);
        SubmitError::ShutDown
    }

    /// Makes room in a full persistent queue for `batch` by dropping the oldest queued
    /// batches (`drop_oldest`), or drops `batch` itself; either way counted.
    async fn overflow_to_disk(&self, disk: &DiskQueue, mut batch: Batch) {
        if self.drop_oldest {
            while let Some(oldest) = disk.pop_now() {
                self.drop_for_room(oldest.signal(), oldest.items());
                // The queue lets go of the batch's memory as it discards it.
                self.let_go(oldest.signal(), oldest.items(), 0);
                disk.discard(oldest).await;
                match disk.push(batch, false).await {
                    Ok(()) => return,
                    Err(Refused::Full(back)) => batch = back,
                    Err(Refused::Closed(back)) => {
                        let _ = self.refuse(back);
                        return;
                    }
                }
            }
        }
        self.observer
            .send_failed(batch.signal, batch.items, reason::QUEUE_FULL);
    }

    /// Counts a queued batch dropped to make room for a newer one.
    fn drop_for_room(&self, signal: tailgate_wire::Signal, items: u64) {
        self.observer
            .send_failed(signal, items, reason::QUEUE_FULL_OLDEST);
    }

    /// At shutdown, after the consumers are done: what is still queued stays on disk for the
    /// next start (said in the log); batches the disk refused, held in memory, are lost.
    fn leave_on_disk(&self, disk: &DiskQueue) {
        let (mut batches, mut items) = (0u64, 0u64);
        for entry in disk.drain() {
            self.let_go(entry.signal(), entry.items(), 0);
            if entry.persisted() {
                batches += 1;
                items += entry.items();
                self.observer.left_on_disk(entry.signal(), entry.items());
            } else {
                self.observer
                    .send_failed(entry.signal(), entry.items(), reason::SHUTDOWN);
            }
        }
        self.observer.queue_len(0);
        if batches > 0 {
            tracing::info!(
                exporter = %self.name,
                directory = %disk.directory().display(),
                batches,
                items,
                "persistent queue: unsent batches stay on disk; the next start sends them"
            );
        }
    }

    /// Settles one batch: sends it with retries, unless shutdown's deadline comes first.
    /// Returns whether it was settled (sent, or dropped and counted); a batch cut short by the
    /// deadline is counted by its claim as lost, unless `persisted`: then the caller decides.
    async fn settle(&self, batch: Batch, persisted: bool) -> bool {
        let claim = Claim {
            signal: batch.signal,
            items: batch.items,
            bytes: batch.bytes.len(),
            observer: self.observer.clone(),
            settled: false,
            persisted,
        };
        if self.shutdown.expired() {
            return false; // The claim's drop counts the batch.
        }
        future::or(
            async {
                self.send(batch, claim).await;
                true
            },
            async {
                self.shutdown.until_expired().await;
                false
            },
        )
        .await
    }

    async fn send(&self, batch: Batch, claim: Claim) {
        let prepared = match self.transport.prepare(&batch) {
            Ok(prepared) => prepared,
            Err(err) => return self.give_up(claim, batch, reason::PERMANENT, &err),
        };
        let first_attempt = Instant::now();
        let mut backoff = Backoff::new(&self.retry);
        loop {
            if self.hands_back() {
                return self.hand_back(batch, claim);
            }
            let timeout = self.timeout;
            let started = Instant::now();
            let attempt = future::or(self.transport.attempt(&batch, &prepared), async {
                glommio::timer::sleep(timeout).await;
                Err(SendError::Timeout { after: timeout })
            })
            .await;
            self.observer
                .attempt_took(started.elapsed(), attempt.is_ok());
            let err = match attempt {
                Ok(delivered) => {
                    self.observer.attempt_answered();
                    if let Some((fallback, index)) = self.fallback() {
                        fallback.delivered(index);
                    }
                    return claim.delivered(&self.name, delivered);
                }
                Err(err) => err,
            };
            self.observer.attempt_failed(&err, self.queued());
            if matches!(err, SendError::Timeout { .. }) {
                self.transport.after_timeout();
            }
            if !err.is_retryable() {
                return self.give_up(claim, batch, reason::PERMANENT, &err);
            }
            if self.hands_back() {
                return self.hand_back(batch, claim);
            }
            if !self.retry.enabled {
                return self.give_up(claim, batch, reason::RETRIES_EXHAUSTED, &err);
            }
            let backoff_delay = backoff.next_delay(&mut self.rng.borrow_mut());
            let delay = backoff_delay.max(err.retry_delay().unwrap_or_default());
            let max_elapsed = self.retry.max_elapsed_time;
            if !max_elapsed.is_zero() && first_attempt.elapsed() + delay > max_elapsed {
                return self.give_up(claim, batch, reason::RETRIES_EXHAUSTED, &err);
            }
            tracing::debug!(
                exporter = %self.name,
                signal = batch.signal.as_str(),
                error = %err,
                ?delay,
                "export failed; retrying"
            );
            glommio::timer::sleep(delay).await;
        }
    }
}

impl Inner {
    /// Gives a claimed batch to the handback: settled here without a count, counted where it
    /// is delivered in the end.
    fn hand_back(&self, batch: Batch, mut claim: Claim) {
        claim.settled = true;
        drop(claim);
        self.hand_back_unclaimed(batch);
    }
}

/// A consumer task: settles queued batches until the queue is closed and empty.
async fn consume(inner: Rc<Inner>, pass: Pass) {
    let queue = inner
        .queue
        .as_ref()
        .expect("consumers run only for exporters with a queue");
    while let Some(batch) = queue.pop().await {
        inner.observer.queue_len(queue.used());
        inner.settle(batch, false).await;
    }
    drop(pass);
}

/// A consumer task of a persistent queue: settles queued batches, marking each settled on
/// disk, until the queue is closed and empty or shutdown's deadline passes (what is left stays
/// on disk).
async fn consume_disk(inner: Rc<Inner>, pass: Pass) {
    let disk = inner
        .disk
        .clone()
        .expect("disk consumers run only for exporters with a persistent queue");
    while !inner.shutdown.expired() {
        let entry = if inner.shutdown.has_begun() {
            if !disk.is_closed() {
                break; // Handed over: the successor's consumers send the rest.
            }
            match disk.pop().await {
                Some(entry) => entry,
                None => break,
            }
        } else {
            let popped = future::or(async { Some(disk.pop().await) }, async {
                inner.shutdown.until_begun().await;
                None
            })
            .await;
            match popped {
                Some(Some(entry)) => entry,
                Some(None) => break,
                None => continue, // Shutdown began: look again at how.
            }
        };
        inner.observer.queue_len(disk.used());
        let Some((batch, ack)) = disk.load(entry).await else {
            continue; // Damaged on disk: counted and marked settled by `load`.
        };
        let (signal, items) = (batch.signal, batch.items);
        // A batch cut short is counted here, not by its claim: it may still be sent.
        if inner.settle(batch, true).await {
            disk.ack(ack).await;
        } else if !disk.is_closed() {
            // Cut short while retiring after a reload: the successor sends it.
            disk.requeue(ack);
        } else if ack.persisted() {
            inner.observer.left_on_disk(signal, items);
        } else {
            // Held in memory only (the disk refused it): lost with the process.
            inner.observer.send_failed(signal, items, reason::SHUTDOWN);
            disk.ack(ack).await;
        }
    }
    drop(pass);
}

impl Transport {
    fn prepare(&self, batch: &Batch) -> Result<Prepared, SendError> {
        Ok(match self {
            Transport::Grpc(client) => Prepared::Grpc(client.prepare(batch)?),
            Transport::Http(client) => Prepared::Http(client.prepare(batch)?),
            Transport::Debug(_) => Prepared::Debug,
        })
    }

    async fn attempt(&self, batch: &Batch, prepared: &Prepared) -> Result<Delivered, SendError> {
        match (self, prepared) {
            (Transport::Grpc(client), Prepared::Grpc(prepared)) => {
                client.attempt(batch, prepared).await
            }
            (Transport::Http(client), Prepared::Http(prepared)) => {
                client.attempt(batch, prepared).await
            }
            (Transport::Debug(printer), _) => printer.print(batch),
            _ => unreachable!("a batch is prepared by the transport that sends it"),
        }
    }

    fn after_timeout(&self) {
        if let Transport::Grpc(client) = self {
            client.forget_connection();
        }
    }

    fn close_connections(&self) {
        match self {
            Transport::Grpc(client) => client.forget_connection(),
            Transport::Http(client) => client.close_idle(),
            Transport::Debug(_) => {}
        }
    }
}

/// Shutdown's state, shared by the exporter's tasks.
struct Shutdown {
    deadline: Cell<Option<Instant>>,
    /// Never has units: closing it is how waiting tasks learn that shutdown began.
    begun: Semaphore,
}

impl Shutdown {
    fn new() -> Self {
        Shutdown {
            deadline: Cell::new(None),
            begun: Semaphore::new(0),
        }
    }

    fn begin(&self, deadline: Instant) {
        self.deadline.set(Some(deadline));
        self.begun.close();
    }

    fn has_begun(&self) -> bool {
        self.deadline.get().is_some()
    }

    fn expired(&self) -> bool {
        self.deadline.get().is_some_and(|d| Instant::now() >= d)
    }

    /// Completes when shutdown has begun.
    async fn until_begun(&self) {
        // `acquire` can only fail, and fails when `begin` closes the semaphore.
        let _ = self.begun.acquire(1).await;
    }

    /// Completes when shutdown has begun and its deadline has passed.
    async fn until_expired(&self) {
        // `acquire` can only fail, and fails when `begin` closes the semaphore.
        let _ = self.begun.acquire(1).await;
        if let Some(deadline) = self.deadline.get() {
            glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        }
    }
}

/// A batch being settled; see the module documentation. Its end, whichever it is, lets go of
/// the batch's bytes.
struct Claim {
    signal: tailgate_wire::Signal,
    items: u64,
    bytes: usize,
    observer: Rc<dyn ExportObserver>,
    settled: bool,
    /// The batch is also on disk: cut short, it stays there rather than being lost.
    persisted: bool,
}

impl Claim {
    fn delivered(mut self, exporter: &str, delivered: Delivered) {
        self.settled = true;
        let rejected = delivered.rejected.min(self.items);
        if self.items > rejected {
            self.observer.sent(self.signal, self.items - rejected);
        }
        if rejected > 0 {
            self.observer
                .send_failed(self.signal, rejected, reason::REJECTED);
            tracing::warn!(
                exporter,
                signal = self.signal.as_str(),
                rejected,
                message = %delivered.message,
                "upstream rejected part of a batch"
            );
        } else if !delivered.message.is_empty() {
            // OTLP: a partial success with nothing rejected is a warning from the server.
            tracing::warn!(
                exporter,
                signal = self.signal.as_str(),
                message = %delivered.message,
                "upstream warning"
            );
        }
    }

    fn failed(mut self, exporter: &str, why: &'static str, err: &SendError) {
        self.settled = true;
        self.observer.send_failed(self.signal, self.items, why);
        tracing::warn!(
            exporter,
            signal = self.signal.as_str(),
            items = self.items,
            reason = why,
            error = %err,
            "dropping a batch"
        );
    }

    fn handed_on(mut self, exporter: &str, why: &'static str, err: &SendError) {
        self.settled = true;
        self.observer.handed_on(self.signal, self.items, why);
        tracing::debug!(
            exporter,
            signal = self.signal.as_str(),
            items = self.items,
            reason = why,
            error = %err,
            "handing a batch to the failover connector"
        );
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.observer.holding(-(self.bytes as i64));
        self.observer.pending(self.signal, -(self.items as i64));
        if !self.settled {
            // Only shutdown's deadline abandons a batch mid-send. One that is on disk is not
            // lost: its consumer hands it back to the queue or counts it as left on disk.
            if !self.persisted {
                self.observer
                    .send_failed(self.signal, self.items, reason::SHUTDOWN);
            }
        }
    }
}
