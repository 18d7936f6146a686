//! The shard's dispatcher: what a delivery meets once it reaches the shard that owns it.
//!
//! Every configured pipeline becomes one [`Stage`] on each shard: straight into the pipeline's
//! batcher, or through the tail sampler first. [`Pipelines`] is the receivers' and the mesh's
//! [`Deliver`]: it hands each delivery to every stage of its signal. A stage knows how to take
//! a delivery and how to drain at shutdown, so a new kind of stage is written here and nowhere
//! else. Everything here belongs to one shard and runs on its executor.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use tailgate_wire::Signal;

use crate::export::Pipeline;
use crate::ingest::{Deliver, Delivery};
use crate::memory::ShardMemory;
use crate::plan::PipelinePlan;
use crate::sampling::{PolicySet, Sampler};
use crate::telemetry::{DropMetrics, DropReason};

use super::ShardTelemetry;

/// `Signal` as an index into [`Pipelines`].
fn index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

/// One pipeline of a shard: straight into its batcher, or through the tail sampler first.
pub(super) enum Stage {
    Direct(Pipeline),
    Sampled(Rc<Sampler>),
}

impl Stage {
    /// The stage `plan` asks for in front of `pipeline`, on a node of `shards` shards.
    pub(super) fn new(
        plan: &PipelinePlan,
        pipeline: Pipeline,
        shards: usize,
        telemetry: &ShardTelemetry,
        memory: &Rc<ShardMemory>,
    ) -> Stage {
        match (&plan.sampling, &telemetry.sampling) {
            (Some(sampling), Some(metrics)) => {
                let policies = PolicySet::new(&sampling.config, shards)
                    .expect("policies compile: checked when the plan was made");
                Stage::Sampled(Sampler::start(
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
            _ => Stage::Direct(pipeline),
        }
    }

    async fn deliver(&self, delivery: &Delivery, drops: &DropMetrics) {
        let pipeline = match self {
            Stage::Sampled(sampler) => {
                sampler.accept(&delivery.bytes, delivery.items).await;
                return;
            }
            Stage::Direct(pipeline) => pipeline,
        };
        // A pipeline is closed only once shutdown has flushed it; a delivery that still
        // arrives (a peer that missed its drain deadline) is lost, and counted so.
        if pipeline
            .push(delivery.signal, &delivery.bytes, delivery.items)
            .await
            .is_err()
        {
            drops.add(delivery.signal, DropReason::Shutdown, delivery.items);
        }
    }

    /// Shutdown, before the batchers flush: decides (or drops) what the stage still holds.
    async fn settle(&self, deadline: Instant) {
        match self {
            Stage::Direct(_) => {}
            Stage::Sampled(sampler) => sampler.shutdown(deadline).await,
        }
    }

    /// Shutdown, last: flushes the batcher into the exporters, then drains the exporters.
    async fn flush(&self, deadline: Instant) {
        match self {
            Stage::Direct(pipeline) => pipeline.shutdown(deadline).await,
            Stage::Sampled(sampler) => sampler.pipeline().shutdown(deadline).await,
        }
    }
}

/// A shard's pipelines, as the receivers' [`Deliver`].
pub(super) struct Pipelines {
    by_signal: [Vec<Stage>; 3],
    drops: DropMetrics,
}

impl Pipelines {
    /// No stages yet; drops after shutdown are counted in `drops`.
    pub(super) fn new(drops: DropMetrics) -> Pipelines {
        Pipelines {
            by_signal: Default::default(),
            drops,
        }
    }

    /// Adds `stage` to the stages every delivery of `signal` goes through, in order.
    pub(super) fn push(&mut self, signal: Signal, stage: Stage) {
        self.by_signal[index(signal)].push(stage);
    }

    /// Settles every stage (see [`Stage::settle`]), each by `deadline`.
    pub(super) async fn settle(&self, deadline: Instant) {
        for stage in self.by_signal.iter().flatten() {
            stage.settle(deadline).await;
        }
    }

    /// Flushes every stage (see [`Stage::flush`]), each by `deadline`.
    pub(super) async fn flush(&self, deadline: Instant) {
        for stage in self.by_signal.iter().flatten() {
            stage.flush(deadline).await;
        }
    }
}

impl Deliver for Pipelines {
    fn deliver(&self, delivery: Delivery) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(async move {
            for stage in &self.by_signal[index(delivery.signal)] {
                stage.deliver(&delivery, &self.drops).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::export::{Batcher, BatcherSettings, DebugSettings, Exporter, ExporterSettings};
    use crate::memory::Overload;
    use crate::shard::observer::Observer;
    use crate::telemetry::{ExporterMetrics, RegistryBuilder};

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
                pipelines.push(Signal::Traces, Stage::Direct(pipeline));
                pipelines
                    .deliver(Delivery {
                        signal: Signal::Traces,
                        bytes: bytes::Bytes::new(),
                        items: 7,
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
