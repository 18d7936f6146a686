//! The shard's dispatcher: what a delivery meets once it reaches the shard that owns it.
//!
//! Every configured pipeline becomes one [`Stage`] on each shard: its `filter` and `resource`
//! processors (those listed before `tail_sampling`, [`crate::processors`]), then straight into
//! the pipeline's batcher, or through the tail sampler first (the processors listed after it
//! run in the pipeline, on what the sampler keeps). [`Pipelines`] is the receivers' and the mesh's
//! [`Deliver`]: it hands each delivery to every *entry* stage of its signal (a pipeline that
//! lists one of the gateway's receivers). The other stages are fed by connectors
//! ([`super::routing`], [`super::failover`]), which the pipelines exporting to them hand their
//! batches to; the stages and connectors of a shard form the configuration's graph of
//! pipelines, without cycles. A stage knows how to take a delivery and how to drain at
//! shutdown, so a new kind of stage is written here and nowhere else. Everything here belongs
//! to one shard and runs on its executor.
//!
//! Draining follows the graph: a stage settles and flushes before the stages its connectors
//! feed (the plan's `order`), so what it flushes last still finds them open.
//!
//! A live reload replaces the stages whole ([`Pipelines::replace`]): deliveries from then on go
//! to the new ones, while each old stage retires in a task of its own — once no delivery still
//! holds it, its batcher is flushed and its exporters drain their queues, so what it had taken
//! is sent, not dropped. A sampled stage first hands its buffered traces to its successor
//! ([`Sampler::take_over`]).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::export::{Exporter, Pipeline};
use crate::ingest::{Deliver, Delivery};
use crate::memory::ShardMemory;
use crate::plan::PipelinePlan;
use crate::processors::{Outcome, Steps};
use crate::sampling::{PolicySet, Sampler};
use crate::telemetry::{DropMetrics, DropReason};

use super::ShardTelemetry;

/// One pipeline of a shard: its filter and resource processors, then straight into its batcher
/// or through the tail sampler first.
pub(super) struct Stage {
    /// The `filter` and `resource` processors listed before `tail_sampling` (all of them,
    /// without it).
    steps: Steps,
    kind: Kind,
}

/// Where a stage's data goes once its processors are through.
enum Kind {
    Direct(Pipeline),
    Sampled(Rc<Sampler>),
}

impl Stage {
    /// The stage `plan` asks for in front of `pipeline`, on a node of `shards` shards, with
    /// `steps` first; a sampled stage takes over `previous`'s buffered traces where a reload
    /// gives one.
    pub(super) fn new(
        plan: &PipelinePlan,
        steps: Steps,
        pipeline: Pipeline,
        shards: usize,
        telemetry: &ShardTelemetry,
        memory: &Rc<ShardMemory>,
        previous: Option<&Rc<Sampler>>,
    ) -> Stage {
        Stage {
            steps,
            kind: Stage::kind(plan, pipeline, shards, telemetry, memory, previous),
        }
    }

    /// A stage without processors, straight into `pipeline`.
    #[cfg(test)]
    pub(super) fn direct(pipeline: Pipeline) -> Stage {
        Stage {
            steps: Steps::default(),
            kind: Kind::Direct(pipeline),
        }
    }

    fn kind(
        plan: &PipelinePlan,
        pipeline: Pipeline,
        shards: usize,
        telemetry: &ShardTelemetry,
        memory: &Rc<ShardMemory>,
        previous: Option<&Rc<Sampler>>,
    ) -> Kind {
        match (&plan.sampling, &telemetry.sampling) {
            (Some(sampling), Some(metrics)) => {
                let policies = PolicySet::new(&sampling.config, shards)
                    .expect("policies compile: checked when the plan was made");
                if let Some(previous) = previous {
                    return Kind::Sampled(Sampler::take_over(
                        previous,
                        policies,
                        pipeline,
                        metrics.clone(),
                        telemetry.shard.clone(),
                    ));
                }
                Kind::Sampled(Sampler::start(
                    sampling.settings,
                    policies,
                    pipeline,
                    metrics.clone(),
                    telemetry.shard.clone(),
                    telemetry.drops.clone(),
                    memory.clone(),
                    sampling.relief_log.clone(),
                ))
            }
            _ => Kind::Direct(pipeline),
        }
    }

    /// The exporters the stage's pipeline feeds.
    pub(super) fn exporters(&self) -> &[Rc<Exporter>] {
        match &self.kind {
            Kind::Direct(pipeline) => pipeline.exporters(),
            Kind::Sampled(sampler) => sampler.pipeline().exporters(),
        }
    }

    /// The sampler of a sampled stage.
    pub(super) fn sampler(&self) -> Option<&Rc<Sampler>> {
        match &self.kind {
            Kind::Sampled(sampler) => Some(sampler),
            Kind::Direct(_) => None,
        }
    }

    /// After a reload replaced it: drains what it holds by `deadline` (a sampled stage's
    /// successor has taken its traces already).
    async fn retire(&self, deadline: Instant) {
        match &self.kind {
            Kind::Direct(pipeline) => pipeline.shutdown(deadline).await,
            Kind::Sampled(sampler) => sampler.retire(deadline).await,
        }
    }

    /// Takes `delivery`, waiting while the pipeline pushes back.
    pub(super) async fn deliver(&self, delivery: &Delivery, drops: &DropMetrics) {
        let applied = self
            .steps
            .apply(&delivery.bytes, delivery.items, &delivery.metadata);
        let changed;
        let (bytes, items): (&[u8], u64) = match applied {
            Outcome::Unchanged => (&delivery.bytes, delivery.items),
            Outcome::Nothing => return,
            Outcome::Changed(bytes, items) => {
                changed = bytes;
                (&changed, items)
            }
        };
        let pipeline = match &self.kind {
            Kind::Sampled(sampler) => {
                sampler.accept(bytes, items, &delivery.metadata).await;
                return;
            }
            Kind::Direct(pipeline) => pipeline,
        };
        // A pipeline is closed only once shutdown has flushed it; a delivery that still
        // arrives (a peer that missed its drain deadline) is lost, and counted so.
        if pipeline
            .push(delivery.signal, bytes, items, &delivery.metadata)
            .await
            .is_err()
        {
            drops.add(delivery.signal, DropReason::Shutdown, items);
        }
    }

    /// Shutdown, before the batchers flush: decides (or drops) what the stage still holds.
    async fn settle(&self, deadline: Instant) {
        match &self.kind {
            Kind::Direct(_) => {}
            Kind::Sampled(sampler) => sampler.shutdown(deadline).await,
        }
    }

    /// Shutdown, last: flushes the batcher into the exporters, then drains the exporters.
    async fn flush(&self, deadline: Instant) {
        match &self.kind {
            Kind::Direct(pipeline) => pipeline.shutdown(deadline).await,
            Kind::Sampled(sampler) => sampler.pipeline().shutdown(deadline).await,
        }
    }
}

/// Every stage of a shard: one per pipeline of the plan, in its order.
#[derive(Default)]
pub(super) struct Stages {
    /// The stages, by the plan's pipeline index.
    pub(super) all: Vec<Rc<Stage>>,
    /// The entry stages of each signal (see the module documentation).
    pub(super) entry: [Vec<usize>; 3],
    /// The order to drain them in: each before those its connectors feed.
    pub(super) order: Vec<usize>,
    /// Whether a connector feeds each stage: such a stage settles when it flushes, once
    /// what feeds it has flushed.
    pub(super) fed: Vec<bool>,
}

impl Stages {
    /// The stages in drain order, each with whether a connector feeds it.
    fn in_order(&self) -> impl Iterator<Item = (&Stage, bool)> + '_ {
        self.order.iter().map(|&i| (&*self.all[i], self.fed[i]))
    }

    /// The sampler of the sampled stage, if there is one.
    pub(super) fn sampler(&self) -> Option<&Rc<Sampler>> {
        self.all.iter().find_map(|stage| stage.sampler())
    }
}

/// How long a stage a reload replaced may take to send what it holds: its exporters keep
/// retrying for this long (a central that is down at the reload), then count the rest dropped.
pub(super) const RETIRE_TIMEOUT: Duration = Duration::from_secs(300);

/// The most generations of replaced stages a shard keeps draining at once: each holds its
/// exporters' queues and connections for up to [`RETIRE_TIMEOUT`], so reloads in quick
/// succession against a central that is down would otherwise pile them up.
pub(super) const RETIRING_MAX: usize = 4;

/// How often a retiring stage looks whether deliveries still hold it.
const RETIRE_POLL: Duration = Duration::from_millis(5);

/// A retiring stage's task, and whether it finished.
type Retiring = (Rc<Cell<bool>>, glommio::task::JoinHandle<()>);

/// A shard's pipelines, as the receivers' [`Deliver`].
pub(super) struct Pipelines {
    /// The current stages; a delivery holds the `Rc` it started with for its whole length, so a
    /// reload never pulls a stage from under one.
    stages: RefCell<Rc<Stages>>,
    /// Stages a reload replaced, still sending what they hold (with whether they finished,
    /// so the list holds only those still running).
    retiring: RefCell<Vec<Retiring>>,
    drops: DropMetrics,
}

impl Pipelines {
    /// No stages yet; drops after shutdown are counted in `drops`.
    pub(super) fn new(drops: DropMetrics) -> Pipelines {
        Pipelines {
            stages: RefCell::new(Rc::new(Default::default())),
            retiring: RefCell::new(Vec::new()),
            drops,
        }
    }

    /// The first stages, before any delivery.
    pub(super) fn set(&mut self, stages: Stages) {
        *self.stages.get_mut() = Rc::new(stages);
    }

    /// How many generations of replaced stages are still draining.
    pub(super) fn retiring(&self) -> usize {
        let mut retiring = self.retiring.borrow_mut();
        retiring.retain(|(done, _)| !done.get());
        retiring.len()
    }

    /// The current stages.
    pub(super) fn current(&self) -> Rc<Stages> {
        self.stages.borrow().clone()
    }

    /// A reload: `stages` take every delivery from now on; the replaced ones retire in a task
    /// each (see the module documentation).
    pub(super) fn replace(&self, stages: Stages) {
        let old = self.stages.replace(Rc::new(stages));
        let done = Rc::new(Cell::new(false));
        let finished = done.clone();
        let task = glommio::spawn_local(async move {
            let deadline = Instant::now() + RETIRE_TIMEOUT;
            // Deliveries that began before the swap finish on the old stages first.
            while Rc::strong_count(&old) > 1 && Instant::now() < deadline {
                glommio::timer::sleep(RETIRE_POLL).await;
            }
            for (stage, _) in old.in_order() {
                stage.retire(deadline).await;
            }
            finished.set(true);
        })
        .detach();
        self.retiring.borrow_mut().push((done, task));
    }

    /// Settles every stage no connector feeds (see [`Stage::settle`]), each by `deadline`.
    pub(super) async fn settle(&self, deadline: Instant) {
        let stages = self.current();
        for (stage, fed) in stages.in_order() {
            if !fed {
                stage.settle(deadline).await;
            }
        }
    }

    /// Flushes every stage (see [`Stage::flush`]) in drain order, settling first those a
    /// connector feeds, each by `deadline`, and waits (until then) for the stages a reload
    /// replaced to finish sending.
    pub(super) async fn flush(&self, deadline: Instant) {
        let stages = self.current();
        for (stage, fed) in stages.in_order() {
            if fed {
                stage.settle(deadline).await;
            }
            stage.flush(deadline).await;
        }
        let retiring: Vec<_> = self.retiring.borrow_mut().drain(..).collect();
        if !super::join_by(deadline, retiring.into_iter().map(|(_, task)| task)).await {
            tracing::warn!(
                "a pipeline a reload replaced was still sending at shutdown; what it held is \
                 counted in otelcol_exporter_send_failed_*"
            );
        }
    }
}

impl Deliver for Pipelines {
    fn deliver(&self, delivery: Delivery) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(async move {
            let stages = self.current();
            for &i in &stages.entry[delivery.signal.index()] {
                stages.all[i].deliver(&delivery, &self.drops).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::export::{Batcher, BatcherSettings, DebugSettings, ExporterSettings};
    use crate::memory::Overload;
    use crate::shard::observer::Observer;
    use crate::telemetry::{ExporterMetrics, RegistryBuilder};
    use tailgate_wire::Signal;

    /// A delivery into a pipeline that shutdown already closed is counted as dropped.
    #[test]
    fn deliveries_after_close_are_counted_as_shutdown_drops() {
        let mut builder = RegistryBuilder::new();
        let drops = DropMetrics::register(&mut builder, 0);
        let exporter_metrics = ExporterMetrics::register(&mut builder, "debug", 0);
        let _registry = builder.build();
        let counted = drops.clone();
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let observer = Rc::new(Observer {
                    metrics: exporter_metrics,
                    drops: drops.clone(),
                    signal: Signal::Traces,
                    memory: Rc::new(ShardMemory::new(
                        0,
                        u64::MAX,
                        Arc::new(Overload::new(1)),
                        Default::default(),
                    )),
                    upstream: None,
                    balancer: None,
                });
                let exporter = Exporter::new(
                    "debug",
                    0,
                    ExporterSettings::Debug(DebugSettings::default()),
                    observer,
                )
                .expect("debug exporter");
                let batcher = Batcher::new(BatcherSettings::default()).expect("batcher");
                let pipeline = Pipeline::new(batcher, vec![Rc::new(exporter)]);
                pipeline
                    .shutdown(Instant::now() + Duration::from_secs(1))
                    .await;
                let mut pipelines = Pipelines::new(drops);
                let mut stages = Stages::default();
                stages.all.push(Rc::new(Stage::direct(pipeline)));
                stages.entry[Signal::Traces.index()].push(0);
                stages.order.push(0);
                stages.fed.push(false);
                pipelines.set(stages);
                pipelines
                    .deliver(Delivery {
                        signal: Signal::Traces,
                        bytes: bytes::Bytes::new(),
                        items: 7,
                        metadata: Default::default(),
                    })
                    .await;
            })
            .expect("executor")
            .join()
            .expect("test executor");
        assert_eq!(
            counted.counter(Signal::Traces, DropReason::Shutdown).get(),
            7
        );
    }
}
