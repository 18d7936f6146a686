//! Building and running one shard: on its own executor, from the plan and its own metric cells,
//! the shard builds its exporters and stages, joins the mesh, binds its listeners, reports
//! itself up, and runs until the stop signal; then it drains ([`super::drain`]).

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tailgate_shards::runtime::Shard;

use crate::export::{Batcher, Exporter, Pipeline};
use crate::ingest::accept::ListenOptions;
use crate::ingest::{Delivery, Ingest};
use crate::lifecycle;
use crate::memory::{Overload, ShardMemory};
use crate::plan::{PipelinePlan, Plan};
use crate::telemetry::Health;
use tailgate_shards::sync::Stop;

use super::dispatch::{Pipelines, Stage};
use super::drain::drain;
use super::listeners::Listeners;
use super::observer::Observer;
use super::ShardTelemetry;

/// Runs one shard until shutdown; returns whether it started (its exporters built, its
/// listeners bound). A shard missing an exporter or a listener raises `flag`, stopping the
/// whole gateway rather than running degraded (data for a missing exporter would be lost
/// without a count).
pub(crate) async fn run(
    shard: Shard<Delivery>,
    plan: Plan,
    telemetry: ShardTelemetry,
    exporter_names: &[String],
    health: Arc<Health>,
    flag: Arc<AtomicBool>,
    overload: Arc<Overload>,
) -> bool {
    let id = shard.id;
    let memory = Rc::new(ShardMemory::new(
        id,
        plan.memory_limit.div_ceil(plan.cpus.len() as u64),
        overload.clone(),
        telemetry.shard.export_bytes.clone(),
    ));
    let (pipelines, exporters_failed) =
        build_pipelines(id, &plan, &telemetry, exporter_names, &memory);
    let pipelines = Rc::new(pipelines);
    let ingest = Rc::new(Ingest::new(
        id,
        shard.router,
        shard.senders,
        pipelines.clone(),
        telemetry.shard.clone(),
        Some(overload),
        telemetry.memory_limiters.clone(),
    ));
    let stop = Rc::new(Stop::default());
    // The mesh: one task per peer hands what that peer routed here to the pipelines.
    let mesh_tasks = ingest.serve_mesh(shard.receivers);
    let options = ListenOptions {
        incoming_cpu: plan.incoming_cpu.then_some(shard.cpu),
        ..plan.listen
    };
    let (listeners, listeners_failed) = Listeners::bind(
        id,
        &plan.receivers,
        options,
        telemetry.receivers,
        &ingest,
        &health,
        &stop,
    );
    let up = !(exporters_failed || listeners_failed);
    if up {
        health.shard_up();
    } else {
        flag.store(true, Ordering::Relaxed);
    }

    lifecycle::watch(flag, stop.clone(), &health, id).await;
    health.start_draining();
    drain(id, listeners, &ingest, mesh_tasks, &pipelines).await;
    if up {
        health.shard_down();
    }
    up
}

/// Every pipeline of the plan as a stage of shard `id`; returns them and whether an exporter
/// failed to build (each failure is logged).
fn build_pipelines(
    id: usize,
    plan: &Plan,
    telemetry: &ShardTelemetry,
    exporter_names: &[String],
    memory: &Rc<ShardMemory>,
) -> (Pipelines, bool) {
    let mut pipelines = Pipelines::new(telemetry.drops.clone());
    let mut failed = false;
    for pipeline in &plan.pipelines {
        let (exporters, exporter_failed) =
            build_exporters(id, pipeline, telemetry, exporter_names, memory);
        failed |= exporter_failed;
        let batcher = Batcher::new(pipeline.batch.clone()).expect("batch settings were validated");
        let direct = Pipeline::new(batcher, exporters);
        let stage = Stage::new(pipeline, direct, plan.cpus.len(), telemetry, memory);
        pipelines.push(pipeline.signal, stage);
    }
    (pipelines, failed)
}

/// The exporters of `pipeline` on shard `id`; returns those that built and whether any failed
/// (each failure is logged).
fn build_exporters(
    id: usize,
    pipeline: &PipelinePlan,
    telemetry: &ShardTelemetry,
    exporter_names: &[String],
    memory: &Rc<ShardMemory>,
) -> (Vec<Rc<Exporter>>, bool) {
    let mut exporters = Vec::new();
    let mut failed = false;
    for (name, settings) in &pipeline.exporters {
        let index = exporter_names
            .iter()
            .position(|n| n == name)
            .expect("every exporter was registered");
        let observer = Rc::new(Observer {
            metrics: telemetry.exporters[index].clone(),
            drops: telemetry.drops.clone(),
            signal: pipeline.signal,
            memory: memory.clone(),
        });
        match Exporter::new(name, id, settings.clone(), observer) {
            Ok(exporter) => {
                telemetry.exporters[index]
                    .signal(pipeline.signal)
                    .queue_capacity
                    .set(exporter.queue_capacity() as i64);
                exporters.push(Rc::new(exporter));
            }
            Err(err) => {
                tracing::error!("shard {id}: exporter {name} cannot start: {err}");
                failed = true;
            }
        }
    }
    (exporters, failed)
}
