//! A shard's export pipeline: a [`super::Batcher`] driven on the executor, fanning batches out to
//! exporters.
//!
//! # Who runs what
//!
//! [`Pipeline::push`] runs in the pushing task (a receiver's request task, or the sampler's
//! decision task): it appends the request to the batcher and hands every batch that became
//! full to each exporter in turn, awaiting each [`Exporter::submit`] — so a full sending queue
//! holds the pusher back, and the pusher's own caller, up to the receiver. One timer task per
//! pipeline, spawned by [`Pipeline::new`], sleeps until the oldest pending batch's timeout and
//! hands out what expired; it sleeps without a deadline while nothing is pending and is woken
//! by the push that makes something pending.
//!
//! Fan-out is complete: every exporter and every connector gets every batch (a `Bytes` clone,
//! no copy); connectors take it after the exporters with room and before the pusher waits on
//! full ones. Each
//! exporter with room takes the batch at once; only then does the pusher wait, one exporter at a
//! time, on those whose full queue blocks (`block_on_overflow`, the default). So a slow
//! destination delays neither the others' copy of a batch nor their sending; it holds the
//! pusher, and with it the next batches, until it has room — the push-back that exporter asked
//! for. One set to drop (`block_on_overflow: false`) never holds the pusher. Batches of
//! concurrent pushers may reach an exporter in either order; OTLP does not order requests.
//!
//! # Shutdown
//!
//! [`Pipeline::close`] refuses further pushes, stops the timer task and returns what the
//! batcher still held; the caller passes those batches to [`Exporter::shutdown`]. For a
//! pipeline that owns its exporters, [`Pipeline::shutdown`] does both. When exporters are
//! shared between pipelines, close every pipeline first and shut each exporter down once with
//! the final batches of all the pipelines feeding it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use futures_lite::future;
use glommio::task::JoinHandle;

use super::batch::Batch;
use super::exporter::Exporter;
use super::partition::Batchers;
use super::Connect;
use crate::metadata::Metadata;
use crate::processors::{Outcome, Steps};
use crate::telemetry::BatchMetrics;
use tailgate_shards::sync::Wakeup;
use tailgate_wire::Signal;

/// [`Pipeline::push`] after [`Pipeline::close`]: the request was not taken, and the caller
/// should refuse it upstream (retryably) rather than count it as accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineClosed;

impl fmt::Display for PipelineClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the export pipeline is shutting down")
    }
}

impl std::error::Error for PipelineClosed {}

/// A batcher and the exporters its batches go to, on one shard.
pub struct Pipeline {
    inner: Rc<Inner>,
    flusher: RefCell<Option<JoinHandle<()>>>,
}

struct Inner {
    batcher: RefCell<Batchers>,
    exporters: Vec<Rc<Exporter>>,
    connectors: Vec<Rc<dyn Connect>>,
    wakeup: Wakeup,
    closed: Cell<bool>,
    /// Told how many items the batcher holds, per signal, as it changes.
    batching: RefCell<Option<BatchingObserver>>,
    /// What it was last told, per signal.
    reported: Cell<[u64; 3]>,
    /// The `batch` processor's families, for a pipeline that has one.
    counted: RefCell<Option<BatchMetrics>>,
    /// What this pipeline last added to the processor's `metadata_cardinality`.
    combinations: Cell<i64>,
    /// The `filter` and `resource` processors listed after `tail_sampling`, applied to what is
    /// pushed.
    steps: RefCell<Steps>,
}

/// Why a batch was handed out, for the `batch` processor's families.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Full, or at once without a timeout.
    Size,
    /// Its timeout.
    Timeout,
    /// Shutdown.
    Shutdown,
}

/// Told the change in the items a pipeline's batcher holds of a signal (for the accounting's
/// "still batched" term).
pub type BatchingObserver = Rc<dyn Fn(Signal, i64)>;

impl Pipeline {
    /// Builds the pipeline and spawns its timer task. Must run on the shard's executor.
    pub fn new(batcher: impl Into<Batchers>, exporters: Vec<Rc<Exporter>>) -> Pipeline {
        Pipeline::with_connectors(batcher, exporters, Vec::new())
    }

    /// [`Pipeline::new`] for a pipeline that also hands every batch to `connectors`.
    pub fn with_connectors(
        batcher: impl Into<Batchers>,
        exporters: Vec<Rc<Exporter>>,
        connectors: Vec<Rc<dyn Connect>>,
    ) -> Pipeline {
        let inner = Rc::new(Inner {
            batcher: RefCell::new(batcher.into()),
            exporters,
            connectors,
            wakeup: Wakeup::default(),
            closed: Cell::new(false),
            batching: RefCell::new(None),
            reported: Cell::new([0; 3]),
            counted: RefCell::new(None),
            combinations: Cell::new(0),
            steps: RefCell::new(Steps::default()),
        });
        let flusher = glommio::spawn_local(flush_on_timeout(inner.clone())).detach();
        Pipeline {
            inner,
            flusher: RefCell::new(Some(flusher)),
        }
    }

    /// Counts the batches it hands out in its `batch` processor's `metrics`.
    pub fn count_batches(&self, metrics: BatchMetrics) {
        // The batcher without metadata, once for the processor on this shard (the Collector's
        // single batcher counts 1).
        if !metrics
            .baseline
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            metrics.cardinality.add(1);
        }
        *self.inner.counted.borrow_mut() = Some(metrics);
    }

    /// Applies `steps` to every request pushed from now on, before the batcher: the `filter`
    /// and `resource` processors a pipeline lists after `tail_sampling`.
    pub fn process_with(&self, steps: Steps) {
        *self.inner.steps.borrow_mut() = steps;
    }

    /// Tells `observer` how the items in the batcher change from now on.
    pub fn observe_batching(&self, observer: BatchingObserver) {
        *self.inner.batching.borrow_mut() = Some(observer);
        self.inner.report_batching();
    }

    /// The exporters this pipeline feeds.
    pub fn exporters(&self) -> &[Rc<Exporter>] {
        &self.inner.exporters
    }

    /// Adds one valid export request of `signal` holding `items` items, from a request with
    /// client `metadata`, and hands every batch it completes to the exporters, waiting while
    /// their queues are full.
    pub async fn push(
        &self,
        signal: Signal,
        bytes: &[u8],
        items: u64,
        metadata: &Metadata,
    ) -> Result<(), PipelineClosed> {
        let inner = &self.inner;
        if inner.closed.get() {
            return Err(PipelineClosed);
        }
        let part;
        let (bytes, items) = match inner.steps.borrow().apply(bytes, items, metadata) {
            Outcome::Unchanged => (bytes, items),
            Outcome::Nothing => return Ok(()),
            Outcome::Changed(kept, n) => {
                part = kept;
                (&part[..], n)
            }
        };
        let mut ready = Vec::new();
        {
            let mut batcher = inner.batcher.borrow_mut();
            let was_idle = batcher.is_idle();
            batcher.push(signal, bytes, items, metadata, Instant::now(), &mut ready);
            if was_idle && !batcher.is_idle() {
                inner.wakeup.notify();
            }
        }
        inner.report_batching_of(signal);
        inner.count(Trigger::Size, &ready);
        for batch in ready {
            inner.hand_over(batch).await;
        }
        Ok(())
    }

    /// Refuses further pushes, stops the timer task (waiting for it until `deadline` at most)
    /// and returns the batches the batcher still held, for [`Exporter::shutdown`].
    pub async fn close(&self, deadline: Instant) -> Vec<Batch> {
        let inner = &self.inner;
        if inner.closed.replace(true) {
            return Vec::new();
        }
        inner.wakeup.notify();
        let flusher = self.flusher.borrow_mut().take();
        if let Some(flusher) = flusher {
            // The timer task may be waiting on a full queue with a batch in hand; past the
            // deadline it is left to finish, and the exporter's shutdown refuses and counts
            // that batch.
            future::or(
                async {
                    flusher.await;
                },
                glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        }
        let mut last = Vec::new();
        inner.batcher.borrow_mut().flush_all(&mut last);
        inner.report_batching();
        inner.count(Trigger::Shutdown, &last);
        last
    }

    /// [`Pipeline::close`], then shuts down every exporter of the pipeline with the final
    /// batches and the same deadline. For pipelines that do not share exporters.
    pub async fn shutdown(&self, deadline: Instant) {
        let last = self.close(deadline).await;
        // Connectors first: the pipelines behind them close after this one (the dispatcher
        // flushes in that order), so they still take these batches.
        for connector in &self.inner.connectors {
            for batch in &last {
                connector.consume(batch).await;
            }
        }
        // One after the other is as fast as all at once: the deadline is absolute, and every
        // exporter's consumers keep draining while an earlier one shuts down.
        for exporter in &self.inner.exporters {
            exporter.shutdown(last.clone(), deadline).await;
        }
    }
}

impl Drop for Pipeline {
    /// Stops the timer task. Batches still pending cannot be sent from here (sending is
    /// asynchronous): [`Pipeline::close`] is how a pipeline ends without loss, so a drop with
    /// data pending is reported loudly.
    fn drop(&mut self) {
        let inner = &self.inner;
        if !inner.closed.replace(true) {
            inner.wakeup.notify();
            let batcher = inner.batcher.borrow();
            let pending: u64 = Signal::ALL
                .into_iter()
                .map(|signal| batcher.pending_items(signal))
                .sum();
            if pending > 0 {
                tracing::error!(
                    pending,
                    "export pipeline dropped without close; pending items lost"
                );
            }
        }
    }
}

impl Inner {
    /// Tells the batching observer what changed, for every signal.
    fn report_batching(&self) {
        for signal in Signal::ALL {
            self.report_batching_of(signal);
        }
    }

    /// Counts `batches`, handed out for `trigger`, in the `batch` processor's families.
    fn count(&self, trigger: Trigger, batches: &[Batch]) {
        let counted = self.counted.borrow();
        let Some(metrics) = counted.as_ref() else {
            return;
        };
        for batch in batches {
            match trigger {
                Trigger::Size => metrics.size_trigger.add(1),
                // The Collector sends what shutdown flushes as its timer does.
                Trigger::Timeout | Trigger::Shutdown => metrics.timeout_trigger.add(1),
            }
            metrics.send_size.record(batch.items);
        }
        // Pipelines that list one processor share its gauge: each adds what it holds.
        let held = i64::try_from(self.batcher.borrow().partitions()).unwrap_or(i64::MAX);
        metrics
            .cardinality
            .add(held - self.combinations.replace(held));
    }

    /// Tells the batching observer how the items pending for `signal` changed: on the push
    /// path only the pushed signal can have.
    fn report_batching_of(&self, signal: Signal) {
        let observer = self.batching.borrow();
        let Some(observer) = observer.as_ref() else {
            return;
        };
        let now = self.batcher.borrow().pending_items(signal);
        let mut reported = self.reported.get();
        let was = &mut reported[signal.index()];
        if now != *was {
            observer(signal, now as i64 - *was as i64);
            *was = now;
            self.reported.set(reported);
        }
    }

    async fn hand_over(&self, batch: Batch) {
        // Every exporter with room first, then the ones that make the pusher wait.
        let mut waiting = Vec::new();
        for exporter in &self.exporters {
            if let Err(batch) = exporter.try_submit(batch.clone()) {
                waiting.push((exporter, batch));
            }
        }
        for connector in &self.connectors {
            connector.consume(&batch).await;
        }
        for (exporter, batch) in waiting {
            // A refusal means shutdown has begun; the exporter has counted the batch.
            let _ = exporter.submit(batch).await;
        }
    }
}

/// The timer task: hands out batches whose timeout has passed.
async fn flush_on_timeout(inner: Rc<Inner>) {
    let mut ready = Vec::new();
    loop {
        if inner.closed.get() {
            return;
        }
        let next = inner.batcher.borrow().next_deadline();
        match next {
            None => inner.wakeup.wait().await,
            Some(at) => {
                let sleep = glommio::timer::sleep(at.saturating_duration_since(Instant::now()));
                future::or(sleep, inner.wakeup.wait()).await;
            }
        }
        if inner.closed.get() {
            return;
        }
        inner
            .batcher
            .borrow_mut()
            .flush_expired(Instant::now(), &mut ready);
        inner.report_batching();
        inner.count(Trigger::Timeout, &ready);
        for batch in ready.drain(..) {
            inner.hand_over(batch).await;
        }
    }
}
