//! A shard's tail sampler: its [`TraceBuffer`] and [`PolicySet`] in front of the traces
//! pipeline, driven on the shard's executor.
//!
//! Owned spans arrive through [`Sampler::accept`] (the shard's mesh drain and its own
//! receivers), which buffers them and never waits: the request is answered once its spans are
//! held. One decision task per shard does everything that waits: it decides traces as they come
//! due (or early, when woken), frames the kept spans and pushes them into the pipeline, whose
//! full exporter queue holds it back. Each step borrows the buffer only for work that does not
//! wait; at most one framed round is held outside the buffer at a time.
//!
//! # Limits
//!
//! After every request the sampler publishes the buffer's bytes to the shard's memory account
//! ([`crate::memory`]), and wakes the decision task when `num_traces` or the soft byte limit
//! calls for early decisions (oldest traces first). When the buffer and the exporters' batches
//! together reach the shard's budget (or with `block_on_overflow`, at `num_traces`) the
//! receivers of every shard refuse requests that would route spans here, with a retryable
//! error, until decisions and exports bring it back under: an upstream that stalls, or a
//! decision rate below the arrival rate, becomes refusals, never unbounded memory.
//!
//! # Stress relief
//!
//! With `stress_relief` on, the sampler keeps the shard's [`ReliefState`]: before each request
//! it compares what the shard holds with the activation and deactivation levels (and the
//! decision task does on each tick, so the state also ends while nothing arrives). While on,
//! the buffer decides new traces at arrival ([`TraceBuffer::set_stress_relief`]); their kept
//! spans join the late spans' queue. See [`super::stress_relief`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::task::JoinHandle;

use super::buffer::{oversized_bytes, BufferLimits, Framed, Inserted, TraceBuffer};
use super::stress_relief::{ArrivalSampling, ReliefLog, ReliefState, Transition};
use super::PolicySet;
use crate::config::StressRelief;
use crate::export::Pipeline;
use crate::memory::ShardMemory;
use crate::metadata::Metadata;
use crate::telemetry::{DropMetrics, DropReason, SamplingMetrics, ShardMetrics};
use tailgate_shards::sync::{Stop, Wakeup};
use tailgate_wire::Signal;

/// The longest the timer task sleeps: it also re-publishes the gauges.
const TICK_MAX: Duration = Duration::from_millis(100);
/// The shortest: due traces are decided in batches at least this far apart.
const TICK_MIN: Duration = Duration::from_millis(5);

/// The sampler's settings on one shard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerSettings {
    pub(crate) limits: BufferLimits,
    pub(crate) expected_traces: usize,
    pub(crate) block_on_overflow: bool,
    pub(crate) drop_pending_on_shutdown: bool,
    pub(crate) stress_relief: StressRelief,
    /// How stress relief decides new traces (its percentage; under the tracestate gate kept
    /// spans carry its threshold).
    pub(crate) relief_sampling: ArrivalSampling,
}

impl SamplerSettings {
    /// One shard's share of the node-wide figures: `num_traces`, the caches and the byte
    /// limits divided across `shards` (rounded up).
    pub fn for_shard(config: &crate::config::TailSampling, soft_bytes: u64, shards: usize) -> Self {
        let share = |n: u64| usize::try_from(n.div_ceil(shards as u64)).unwrap_or(usize::MAX);
        let num_traces = share(config.num_traces).max(1);
        // The Collector keeps a decided trace in its table until `num_traces` newer ones push it
        // out, and late spans follow its decision until then; the decision caches come on top.
        let cache = |size: u64| share(config.num_traces.saturating_add(size));
        let expected = config
            .expected_new_traces_per_sec
            .saturating_mul(config.decision_wait.as_secs().max(1));
        SamplerSettings {
            limits: BufferLimits {
                decision_wait: config.decision_wait,
                decision_wait_after_root: config.decision_wait_after_root_received,
                num_traces,
                evict_at_num_traces: !config.block_on_overflow,
                soft_bytes: soft_bytes.div_ceil(shards as u64),
                oversized_bytes: oversized_bytes(soft_bytes.div_ceil(shards as u64)),
                sampled_cache: cache(config.decision_cache.sampled_cache_size),
                not_sampled_cache: cache(config.decision_cache.non_sampled_cache_size),
                max_trace_bytes: config.maximum_trace_size_bytes,
                decide_at_ingest: config.sampling_strategy
                    == crate::config::SamplingStrategy::SpanIngest,
            },
            expected_traces: share(expected),
            block_on_overflow: config.block_on_overflow,
            drop_pending_on_shutdown: config.drop_pending_traces_on_shutdown,
            stress_relief: config.stress_relief,
            relief_sampling: ArrivalSampling::new(
                config.stress_relief.sampling_percentage,
                config.use_tracestate,
            ),
        }
    }
}

struct State {
    buffer: TraceBuffer,
    policies: PolicySet,
    /// Late spans of kept traces, framed, waiting for the decision task to push them.
    late: VecDeque<Framed>,
    late_bytes: u64,
    relief: ReliefState,
    /// The shard's memory limit the soft limit and the stress relief levels were last set
    /// from.
    followed_limit: u64,
}

/// One shard's tail sampler.
pub struct Sampler {
    settings: SamplerSettings,
    /// Shared with the sampler a reload hands it to ([`Sampler::take_over`]): the buffered
    /// traces, their decision caches and the late spans go on to the new policies unchanged.
    state: Rc<RefCell<State>>,
    pipeline: Pipeline,
    metrics: SamplingMetrics,
    shard_metrics: ShardMetrics,
    drops: DropMetrics,
    memory: Rc<ShardMemory>,
    /// How stress relief decides new traces while on.
    relief_sampling: ArrivalSampling,
    /// The node's stress relief log lines, shared by its shards.
    relief_log: Arc<ReliefLog>,
    /// Wakes the decision task early: late spans to push, or early decisions needed.
    wakeup: Wakeup,
    stop: Stop,
    task: RefCell<Option<JoinHandle<()>>>,
    /// Spans of the push in progress, counted as dropped if shutdown cuts it short.
    pushing: Cell<u64>,
    /// Set once shutdown has decided or dropped what was pending; later spans pass through.
    closed: Cell<bool>,
}

impl Sampler {
    /// A sampler feeding `pipeline`, with its decision task started. Must run on the shard's
    /// executor.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        settings: SamplerSettings,
        policies: PolicySet,
        pipeline: Pipeline,
        metrics: SamplingMetrics,
        shard_metrics: ShardMetrics,
        drops: DropMetrics,
        memory: Rc<ShardMemory>,
        relief_log: Arc<ReliefLog>,
    ) -> Rc<Self> {
        // Configured levels first; the decision task's first round follows the current limit.
        let relief = ReliefState::new(
            &settings.stress_relief,
            memory.configured_limit(),
            Instant::now(),
        );
        let mut buffer = TraceBuffer::new(settings.limits, settings.expected_traces);
        if relief.is_active() {
            buffer.set_stress_relief(Some(settings.relief_sampling));
            metrics.stress_relief_active.set(1);
            if memory.shard() == 0 {
                tracing::info!(
                    "stress relief is always on (tail_sampling.stress_relief.mode: always): \
                     every new trace is decided at arrival, keeping {} % by trace id",
                    settings.stress_relief.sampling_percentage
                );
            }
        }
        let state = Rc::new(RefCell::new(State {
            buffer,
            policies,
            late: VecDeque::new(),
            late_bytes: 0,
            relief,
            followed_limit: memory.configured_limit(),
        }));
        Sampler::launch(Sampler {
            state,
            settings,
            pipeline,
            metrics,
            shard_metrics,
            drops,
            memory,
            relief_sampling: settings.relief_sampling,
            relief_log,
            wakeup: Wakeup::default(),
            stop: Stop::default(),
            task: RefCell::new(None),
            pushing: Cell::new(0),
            closed: Cell::new(false),
        })
    }

    /// `sampler`, shared, with its decision task started.
    fn launch(sampler: Sampler) -> Rc<Self> {
        let sampler = Rc::new(sampler);
        let task = glommio::spawn_local(sampler.clone().run_decisions()).detach();
        *sampler.task.borrow_mut() = Some(task);
        // Whatever the state holds already (a reload's) is looked at now, not at the next tick.
        sampler.wakeup.notify();
        sampler
    }

    /// A live reload: a sampler with `policies`, feeding `pipeline`, that takes over what
    /// `previous` holds — its buffered traces (decided by `policies` when they come due), its
    /// decision caches, late spans and stress relief state — with its decision task started.
    /// `previous` decides nothing more once its task has stopped; [`Sampler::retire`] waits for
    /// that and then drains its pipeline. Must run on the shard's executor.
    pub fn take_over(
        previous: &Sampler,
        policies: PolicySet,
        pipeline: Pipeline,
        metrics: SamplingMetrics,
        shard_metrics: ShardMetrics,
    ) -> Rc<Self> {
        previous.stop.trigger();
        previous.wakeup.notify();
        previous.state.borrow_mut().policies = policies;
        let relief_active = previous.state.borrow().relief.is_active();
        metrics.stress_relief_active.set(i64::from(relief_active));
        Sampler::launch(Sampler {
            state: previous.state.clone(),
            settings: previous.settings,
            pipeline,
            metrics,
            shard_metrics,
            drops: previous.drops.clone(),
            memory: previous.memory.clone(),
            relief_sampling: previous.relief_sampling,
            relief_log: previous.relief_log.clone(),
            wakeup: Wakeup::default(),
            stop: Stop::default(),
            task: RefCell::new(None),
            pushing: Cell::new(0),
            closed: Cell::new(false),
        })
    }

    /// After [`Sampler::take_over`]: waits for this sampler's decision task to finish the push
    /// it is in, then closes its pipeline, sending what it holds by `deadline`.
    pub async fn retire(&self, deadline: Instant) {
        let task = self.task.borrow_mut().take();
        if let Some(task) = task {
            task.await;
        }
        self.pipeline.shutdown(deadline).await;
    }

    /// The pipeline the sampler feeds.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Takes one export request of traces this shard owns, holding `items` spans. Never waits
    /// on the exporters: the spans are buffered (late spans of kept traces queued for the
    /// decision task), so the request is answered at once; a full buffer is refused upstream.
    pub async fn accept(&self, bytes: &[u8], items: u64, metadata: &Metadata) {
        if self.closed.get() {
            // After shutdown decided everything (a peer that missed its drain deadline).
            self.push(bytes, items, metadata).await;
            return;
        }
        let mut late = Framed::default();
        let now = Instant::now();
        let (inserted, wake, relief) = {
            let mut state = self.state.borrow_mut();
            let relief = self.watch_relief(&mut state, now);
            let State {
                buffer, policies, ..
            } = &mut *state;
            let inserted = if policies.decides_at_ingest() {
                buffer.insert_deciding(bytes, metadata, now, &mut late, policies, &self.metrics)
            } else {
                buffer.insert(bytes, metadata, now, &mut late)
            };
            for &age in state.buffer.late_ages_s() {
                self.metrics.late_span_age(age);
            }
            // Late spans of kept traces, spans stress relief kept, and under span-ingest the
            // spans of traces kept now: framed together.
            let forwarded =
                inserted.late_sampled + inserted.relief_sampled + inserted.ingest_sampled;
            if forwarded > 0 {
                debug_assert_eq!(late.spans(), forwarded);
                state.late_bytes += late.bytes.len() as u64;
                state.late.push_back(late);
            }
            (
                inserted,
                forwarded > 0 || inserted.oversized > 0 || state.buffer.needs_early_decisions(),
                relief,
            )
        };
        if let Some((transition, held)) = relief {
            self.relief_changed(transition, held, now);
        }
        if inserted.relief_sampled + inserted.relief_not_sampled > 0 {
            self.count_relief(&inserted);
        }
        self.metrics.new_trace_id_received.add(inserted.new_traces);
        self.metrics
            .unparseable_tracestates
            .add(inserted.unparseable_tracestates);
        if inserted.late_not_sampled > 0 {
            self.metrics.late_spans(false, inserted.late_not_sampled);
        }
        if inserted.late_sampled > 0 {
            self.metrics.late_spans(true, inserted.late_sampled);
        }
        if inserted.late_oversized_sampled + inserted.late_oversized_not_sampled > 0 {
            self.metrics
                .oversized_late_spans(true, inserted.late_oversized_sampled);
            self.metrics
                .oversized_late_spans(false, inserted.late_oversized_not_sampled);
        }
        if inserted.invalid > 0 {
            self.drops
                .add(Signal::Traces, DropReason::InvalidSpan, inserted.invalid);
        }
        if inserted.too_large > 0 {
            self.drops.add(
                Signal::Traces,
                DropReason::TraceTooLarge,
                inserted.too_large,
            );
        }
        self.publish();
        if wake {
            self.wakeup.notify();
        }
    }

    /// Updates the shard's stress relief state from what it holds at `now`, and the buffer's
    /// with it; returns the change and the bytes held, if it changed.
    #[inline]
    fn watch_relief(&self, state: &mut State, now: Instant) -> Option<(Transition, u64)> {
        if !state.relief.watches() {
            return None;
        }
        let held = self.memory.held();
        let transition = state.relief.update(held, now)?;
        let sampling = state.relief.is_active().then_some(self.relief_sampling);
        state.buffer.set_stress_relief(sampling);
        Some((transition, held))
    }

    /// Shows a change of stress relief state: the gauge, the activations, and the node's log
    /// line when it may write one.
    #[cold]
    fn relief_changed(&self, transition: Transition, held: u64, now: Instant) {
        let settings = &self.settings.stress_relief;
        let shard = self.memory.shard();
        let percent = |bytes: u64| bytes as f64 * 100.0 / self.memory.target().max(1) as f64;
        let line = self.relief_log.changed(transition, now);
        match transition {
            Transition::Activated => {
                self.metrics.stress_relief_active.set(1);
                self.metrics.stress_relief_activations.inc();
                if let Some(line) = line {
                    tracing::warn!(
                        "stress relief on for shard {shard}: it holds {held} bytes, {:.1} % of its \
                         memory budget (activation_level {} %); new traces are decided at arrival, \
                         keeping {} % by trace id, until it holds less than {} % for at least {:?}; \
                         {} of {} shards in stress relief, {} activations and {} deactivations \
                         since the last line",
                        percent(held),
                        settings.activation_level,
                        settings.sampling_percentage,
                        settings.deactivation_level,
                        settings.minimum_activation_duration,
                        line.active,
                        line.shards,
                        line.activations,
                        line.deactivations,
                    );
                }
            }
            Transition::Deactivated { active_for } => {
                self.metrics.stress_relief_active.set(0);
                if let Some(line) = line {
                    tracing::info!(
                        "stress relief off for shard {shard} after {:.1} s: it holds {held} bytes, \
                         {:.1} % of its memory budget (deactivation_level {} %); new traces are \
                         buffered again; {} of {} shards in stress relief, {} activations and {} \
                         deactivations since the last line",
                        active_for.as_secs_f64(),
                        percent(held),
                        settings.deactivation_level,
                        line.active,
                        line.shards,
                        line.activations,
                        line.deactivations,
                    );
                }
            }
        }
    }

    /// Sets the soft limit and the stress relief levels from the shard's memory limit, when the
    /// process's overhead has moved it (once a tick at most; see `crate::memory`). Each keeps
    /// its configured share of the limit.
    fn follow_limit(&self) {
        let limit = self.memory.target();
        let mut state = self.state.borrow_mut();
        if limit == state.followed_limit {
            return;
        }
        state.followed_limit = limit;
        state.relief.set_budget(limit);
        let soft = crate::memory::scaled(
            self.settings.limits.soft_bytes,
            self.memory.configured_limit(),
            limit,
        );
        state.buffer.set_soft_bytes(soft);
    }

    /// The decision task's tick: stress relief may end while nothing arrives, and changes the
    /// node's log held back are told once it may write again.
    fn tick_relief(&self, now: Instant) {
        let relief = {
            let mut state = self.state.borrow_mut();
            if !state.relief.watches() {
                return;
            }
            self.watch_relief(&mut state, now)
        };
        if let Some((transition, held)) = relief {
            self.relief_changed(transition, held, now);
        } else if let Some(line) = self.relief_log.pending(now) {
            let text = format!(
                "stress relief: {} of {} shards in stress relief; {} activations and {} \
                 deactivations since the last line",
                line.active, line.shards, line.activations, line.deactivations
            );
            if line.active > 0 {
                tracing::warn!("{text}");
            } else {
                tracing::info!("{text}");
            }
        }
    }

    /// Counts what stress relief decided in one request.
    fn count_relief(&self, inserted: &Inserted) {
        self.metrics.stress_relief(
            [
                inserted.relief_traces_sampled,
                inserted.relief_traces_not_sampled,
            ],
            [inserted.relief_sampled, inserted.relief_not_sampled],
        );
    }

    /// Pushes the queued late spans, then decides rounds of due traces (every pending one with
    /// `shutdown`) and pushes the kept spans, until nothing more is due.
    async fn decide(&self, shutdown: bool) {
        let started = Instant::now();
        self.decide_all(shutdown).await;
        self.metrics.decision_run(started.elapsed());
    }

    /// [`Sampler::decide`]'s work.
    async fn decide_all(&self, shutdown: bool) {
        loop {
            let next = self.state.borrow_mut().late.pop_front();
            let Some(late) = next else { break };
            self.state.borrow_mut().late_bytes -= late.bytes.len() as u64;
            self.push_framed(&late).await;
        }
        loop {
            let mut out = Framed::default();
            let round = {
                let mut state = self.state.borrow_mut();
                let State {
                    buffer, policies, ..
                } = &mut *state;
                let metrics = &self.metrics;
                buffer.decide_round(
                    Instant::now(),
                    shutdown,
                    policies,
                    metrics,
                    &mut |reason| metrics.decided_early(reason),
                    &mut out,
                )
            };
            self.publish();
            self.metrics
                .unparseable_tracestates
                .add(round.unparseable_tracestates);
            if round.traces == 0 {
                return;
            }
            if round.kept_spans > 0 {
                debug_assert_eq!(out.spans(), round.kept_spans);
                self.push_framed(&out).await;
            }
        }
    }

    /// Pushes each of `framed`'s requests with its client metadata; shutdown cutting it short
    /// counts what was left as dropped.
    async fn push_framed(&self, framed: &Framed) {
        let mut left = framed.spans();
        for (bytes, items, metadata) in framed.requests() {
            self.pushing.set(left);
            self.push_one(bytes, items, metadata).await;
            left -= items;
        }
        self.pushing.set(0);
    }

    async fn push(&self, bytes: &[u8], items: u64, metadata: &Metadata) {
        self.pushing.set(items);
        self.push_one(bytes, items, metadata).await;
        self.pushing.set(0);
    }

    async fn push_one(&self, bytes: &[u8], items: u64, metadata: &Metadata) {
        let pushed = self
            .pipeline
            .push(Signal::Traces, bytes, items, metadata)
            .await;
        if pushed.is_err() {
            self.drops.add(Signal::Traces, DropReason::Shutdown, items);
        }
    }

    /// Updates the gauges and this shard's overload flag.
    fn publish(&self) {
        let state = self.state.borrow();
        let buffer = &state.buffer;
        // Once shutdown has decided what was pending, later spans pass through: nothing held.
        if self.closed.get() {
            self.memory.set_buffered(0, false);
        } else {
            let full = self.settings.block_on_overflow
                && buffer.trace_count() >= buffer.limits().num_traces;
            self.memory
                .set_buffered(buffer.bytes() + state.late_bytes, full);
        }
        self.metrics
            .traces_on_memory
            .set(buffer.trace_count() as i64);
        self.shard_metrics
            .buffered_spans
            .set(buffer.span_count() as i64);
        self.shard_metrics.buffered_bytes.set(buffer.bytes() as i64);
        self.shard_metrics
            .buffered_span_bytes
            .set(buffer.span_bytes() as i64);
    }

    /// The decision task: decides traces as they come due, or when woken for early decisions
    /// and late spans, until [`Sampler::shutdown`].
    async fn run_decisions(self: Rc<Self>) {
        while !self.stop.is_triggered() {
            self.follow_limit();
            self.decide(false).await;
            let now = Instant::now();
            self.tick_relief(now);
            let next = self.state.borrow_mut().buffer.next_due();
            // Nothing due within the longest tick: sleep to the shard's common beat, so that
            // an idle shard wakes once for this and its other periodic tasks.
            let sleep = match next.map(|due| due.saturating_duration_since(now)) {
                Some(wait) if wait < TICK_MAX => wait.max(TICK_MIN),
                _ => crate::bell::next_beat(TICK_MAX).saturating_duration_since(now),
            };
            futures_lite::future::or(glommio::timer::sleep(sleep), self.wakeup.wait()).await;
        }
    }

    /// Ends sampling, by `deadline`: stops the decision task (after the push it is in), then
    /// decides every pending trace now (or, with `drop_pending_traces_on_shutdown`, drops them)
    /// and pushes the kept spans. What is still pending at the deadline (an upstream that does
    /// not take it) is dropped; every drop is counted with reason `shutdown`. Spans that arrive
    /// later pass through unsampled.
    pub async fn shutdown(&self, deadline: Instant) {
        self.stop.trigger();
        self.wakeup.notify();
        let task = self.task.borrow_mut().take();
        let left = || deadline.saturating_duration_since(Instant::now());
        if let Some(task) = task {
            futures_lite::future::or(
                async {
                    task.await;
                },
                glommio::timer::sleep(left()),
            )
            .await;
        }
        if self.settings.drop_pending_on_shutdown {
            let dropped = self.state.borrow_mut().buffer.drop_all();
            self.drops
                .add(Signal::Traces, DropReason::DropPending, dropped);
        }
        let finished = futures_lite::future::or(
            async {
                self.decide(true).await;
                true
            },
            async {
                glommio::timer::sleep(left()).await;
                false
            },
        )
        .await;
        if !finished {
            let mut state = self.state.borrow_mut();
            let mut dropped = self.pushing.replace(0) + state.buffer.drop_all();
            dropped += state.late.drain(..).map(|late| late.spans()).sum::<u64>();
            state.late_bytes = 0;
            drop(state);
            self.drops
                .add(Signal::Traces, DropReason::Shutdown, dropped);
        }
        self.closed.set(true);
        self.publish();
    }
}
