//! Building and running one shard: on its own executor, from the plan and its own metric cells,
//! the shard builds its exporters and stages, joins the mesh, binds its listeners, reports
//! itself up, and runs until the stop signal; then it drains ([`super::drain`]).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use tailgate_shards::runtime::Shard;

use crate::export::upstream::{ShardUpstream, UpstreamHealth};
use crate::export::{Batchers, Connect, Exporter, ExporterSettings, Pipeline};
use crate::ingest::accept::ListenOptions;
use crate::ingest::{Delivery, Ingest};
use crate::lifecycle::{self, Shutdown};
use crate::memory::{Overload, ProcessMemory, ShardMemory, MEASURE_INTERVAL};
use crate::metadata::Admissions;
use crate::plan::{ConnectorKind, PipelinePlan, Plan, StepKind};
use crate::processors::{AttributesEditor, Filter, ResourceEditor, Step, Steps};
use crate::telemetry::Health;
use crate::tier::{self, Tier};
use tailgate_shards::sync::Stop;
use tailgate_wire::Signal;

use super::dispatch::{Pipelines, Stage, Stages};
use super::drain::drain;
use super::failover::{Failover, Retry};
use super::listeners::Listeners;
use super::observer::{BalancerCells, Observer};
use super::reload::Reloads;
use super::routing::{Route, Router};
use super::ShardTelemetry;

/// What every shard shares with the node.
pub(crate) struct Node {
    /// Readiness and heartbeats.
    pub(crate) health: Arc<Health>,
    /// The process-wide shutdown (signals, a fatal panic, a shard that could not start).
    pub(crate) shutdown: Arc<Shutdown>,
    /// Which shards hold their share of the memory budget.
    pub(crate) overload: Arc<Overload>,
    /// The process's resident memory against what the shards hold.
    pub(crate) process_memory: Arc<ProcessMemory>,
    /// The reload mailboxes.
    pub(crate) reloads: Arc<Reloads>,
}

/// Runs one shard until shutdown; returns whether it started (its exporters built, its
/// listeners bound). A shard missing an exporter or a listener triggers the shutdown, stopping the
/// whole gateway rather than running degraded (data for a missing exporter would be lost
/// without a count).
pub(crate) async fn run(
    shard: Shard<Delivery>,
    plan: Plan,
    telemetry: ShardTelemetry,
    exporter_names: &[String],
    node: Node,
) -> bool {
    let Node {
        health,
        shutdown,
        overload,
        process_memory,
        reloads,
    } = node;
    let id = shard.id;
    let memory = Rc::new(ShardMemory::new(
        id,
        plan.memory_limit.div_ceil(plan.cpus.len() as u64),
        overload.clone(),
        telemetry.shard.export_bytes.clone(),
    ));
    let mut pipelines = Pipelines::new(telemetry.drops.clone());
    let (stages, failed) = build_stages(id, &plan, &telemetry, exporter_names, &memory, None);
    pipelines.set(stages);
    let exporters_failed = !failed.is_empty();
    let pipelines = Rc::new(pipelines);
    let (tier, tier_failed) = build_tier(id, &plan, &telemetry, exporter_names, &memory);
    let ingest = Rc::new(
        Ingest::new(
            id,
            shard.router,
            shard.senders,
            pipelines.clone(),
            telemetry.shard.clone(),
            Some(overload),
            telemetry.memory_limiters.clone(),
        )
        .with_tier(tier)
        .with_admissions(Admissions::new(&plan.admissions)),
    );
    let stop = Rc::new(Stop::default());
    // Set here, on the shard, its only writer (the follow task below sets it from then on).
    telemetry
        .shard
        .memory_effective_limit_bytes
        .set(i64::try_from(memory.limit()).unwrap_or(i64::MAX));
    let budget_task = plan.memory_whole_process.then(|| {
        glommio::spawn_local(follow_process_memory(
            memory.clone(),
            process_memory,
            telemetry.shard.memory_effective_limit_bytes.clone(),
            stop.clone(),
        ))
        .detach()
    });
    let reload_task = glommio::spawn_local(super::reload::serve(
        id,
        reloads,
        pipelines.clone(),
        memory.clone(),
        stop.clone(),
    ))
    .detach();
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
    let up = !(exporters_failed || tier_failed || listeners_failed);
    if up {
        health.shard_up();
    } else {
        shutdown.trigger();
    }

    let heartbeat =
        glommio::spawn_local(lifecycle::beat(health.clone(), stop.clone(), id)).detach();
    lifecycle::watch(shutdown, stop.clone(), id).await;
    // Shards stop beating once they drain (the watchdog knows: see `crate::notify`).
    heartbeat.cancel();
    health.start_draining();
    // A reload in progress finishes its swap first: the drain then sees the stages it left.
    reload_task.await;
    drain(id, listeners, &ingest, mesh_tasks, &pipelines).await;
    if let Some(task) = budget_task {
        task.cancel();
    }
    if up {
        health.shard_down();
    }
    up
}

/// Every [`MEASURE_INTERVAL`] until `stop`: publishes what the shard holds to the process's
/// view, and takes the shard's share of the process's overhead off its memory limit (shown in
/// `limit_gauge`). The sampler's soft limit and stress relief levels follow on its next tick.
async fn follow_process_memory(
    memory: Rc<ShardMemory>,
    process: Arc<ProcessMemory>,
    limit_gauge: crate::telemetry::Gauge,
    stop: Rc<Stop>,
) {
    while !stop.is_triggered() {
        process.publish_held(memory.shard(), memory.held());
        if memory.follow_overhead(process.overhead_share()) {
            limit_gauge.set(i64::try_from(memory.limit()).unwrap_or(i64::MAX));
        }
        crate::bell::sleep_to_beat(MEASURE_INTERVAL).await;
    }
}

/// Every pipeline of the plan as a stage of shard `id`, and why any exporter would not build
/// (each logged): at start-up the stages hold the exporters that did build, and the shard runs
/// them until the gateway stops (a shard that cannot start stops them all). With `previous` (a
/// reload) no stage is built unless every exporter is, and the sampled stage takes over
/// `previous`'s sampler.
pub(super) fn build_stages(
    id: usize,
    plan: &Plan,
    telemetry: &ShardTelemetry,
    exporter_names: &[String],
    memory: &Rc<ShardMemory>,
    previous: Option<&Stages>,
) -> (Stages, Vec<String>) {
    // Exporters first: a reload hands nothing over unless the whole new set stands.
    let mut built = Vec::with_capacity(plan.pipelines.len());
    let mut errors = Vec::new();
    for pipeline in &plan.pipelines {
        let (exporters, failed) = build_exporters(
            id,
            &plan.upstreams,
            pipeline,
            telemetry,
            exporter_names,
            memory,
        );
        errors.extend(failed);
        built.push(exporters);
    }
    if previous.is_some() && !errors.is_empty() {
        return (Stages::default(), errors);
    }
    let previous_sampler = previous.and_then(Stages::sampler);
    let n = plan.pipelines.len();
    let mut all: Vec<Option<Rc<Stage>>> = vec![None; n];
    let mut connectors: Vec<Option<Rc<dyn Connect>>> = vec![None; plan.connectors.len()];
    let mut built: Vec<Option<Vec<Rc<Exporter>>>> = built.into_iter().map(Some).collect();
    // Downstream first: the stages a connector feeds exist before the connector, and the
    // connector before the pipelines that export to it.
    for &p in plan.order.iter().rev() {
        let pipeline = &plan.pipelines[p];
        let mut feeds: Vec<Rc<dyn Connect>> = Vec::with_capacity(pipeline.connectors.len());
        for &c in &pipeline.connectors {
            if connectors[c].is_none() {
                connectors[c] = Some(build_connector(id, plan, c, &all, telemetry));
            }
            feeds.extend(connectors[c].clone());
        }
        let batcher = Batchers::new(pipeline.batch.clone(), pipeline.partitioning.clone())
            .expect("batch settings were validated");
        let exporters = built[p].take().expect("each pipeline is built once");
        let direct = Pipeline::with_connectors(batcher, exporters, feeds);
        if let Some((_, metrics)) = telemetry
            .batches
            .iter()
            .find(|(id, _)| Some(id) == pipeline.batch_processor.as_ref())
        {
            direct.count_batches(metrics.clone());
        }
        let batching = telemetry.shard.batching.clone();
        direct.observe_batching(Rc::new(move |signal, delta| {
            batching[signal.index()].add(delta);
        }));
        let steps = |after_sampling: bool| {
            Steps::new(
                pipeline
                    .steps
                    .iter()
                    .filter(|step| step.after_sampling == after_sampling)
                    .map(|step| match &step.kind {
                        StepKind::Filter(rules) => {
                            let counter = telemetry
                                .filters
                                .counter(&step.id, pipeline.signal)
                                .expect("each filter of a pipeline has its counter")
                                .clone();
                            Step::Filter(Box::new(Filter::new(
                                step.id.clone(),
                                pipeline.signal,
                                rules.clone(),
                                counter,
                                telemetry.drops.clone(),
                            )))
                        }
                        StepKind::Resource(config) => {
                            Step::Resource(ResourceEditor::new(pipeline.signal, config))
                        }
                        StepKind::Attributes(config) => Step::Attributes(Box::new(
                            AttributesEditor::new(pipeline.signal, config),
                        )),
                    })
                    .collect(),
            )
        };
        direct.process_with(steps(true));
        all[p] = Some(Rc::new(Stage::new(
            pipeline,
            steps(false),
            direct,
            plan.cpus.len(),
            telemetry,
            memory,
            previous_sampler,
        )));
    }
    let mut stages = Stages {
        all: all
            .into_iter()
            .map(|s| s.expect("the order lists every pipeline"))
            .collect(),
        order: plan.order.clone(),
        fed: vec![false; n],
        ..Stages::default()
    };
    for connector in &plan.connectors {
        for target in connector.targets() {
            stages.fed[target] = true;
        }
    }
    for (p, pipeline) in plan.pipelines.iter().enumerate() {
        if pipeline.entry {
            stages.entry[pipeline.signal.index()].push(p);
        }
    }
    (stages, errors)
}

/// Connector `c` of the plan on shard `id`, over the stages of `all` it sends to (built
/// already: they drain after the pipelines that feed it).
fn build_connector(
    id: usize,
    plan: &Plan,
    c: usize,
    all: &[Option<Rc<Stage>>],
    telemetry: &ShardTelemetry,
) -> Rc<dyn Connect> {
    let connector = &plan.connectors[c];
    let stage = |p: usize| {
        all[p]
            .clone()
            .expect("a connector's pipelines are built before it")
    };
    match &connector.kind {
        ConnectorKind::Routing {
            routes,
            default,
            error_mode,
        } => {
            let targets = connector.targets();
            let set = |pipelines: &[usize]| {
                pipelines.iter().fold(0u64, |acc, p| {
                    let bit = targets.iter().position(|t| t == p).expect("a target");
                    acc | 1 << bit
                })
            };
            let routes = routes
                .iter()
                .map(|route| Route {
                    condition: route.condition.clone(),
                    copy: route.copy,
                    targets: set(&route.pipelines),
                })
                .collect();
            Rc::new(Router::new(
                connector.name.clone(),
                connector.signal,
                routes,
                set(default),
                *error_mode,
                targets.iter().map(|&p| stage(p)).collect(),
                telemetry.drops.clone(),
            ))
        }
        ConnectorKind::Failover {
            levels,
            retry_interval,
            retry_gap,
            max_retries,
        } => {
            let names = levels
                .iter()
                .map(|level| {
                    let names: Vec<&str> = level
                        .iter()
                        .map(|&p| plan.pipelines[p].name.as_str())
                        .collect();
                    names.join(", ")
                })
                .collect();
            tracing::debug!(shard = id, connector = %connector.name, "failover connector built");
            Failover::new(
                connector.name.clone(),
                connector.signal,
                levels
                    .iter()
                    .map(|level| level.iter().map(|&p| stage(p)).collect())
                    .collect(),
                names,
                Retry {
                    interval: *retry_interval,
                    gap: *retry_gap,
                    max_retries: *max_retries,
                },
                telemetry.connectors[c].clone(),
                telemetry.drops.clone(),
            )
        }
    }
}

/// The exporters of `pipeline` on shard `id`; returns those that built and why others did not
/// (each failure is logged).
/// Shard `id`'s part of the tier, if the plan has one: its forwarder, a load balancer over the
/// members counted as the exporter `tier`; and whether it failed to build (logged).
fn build_tier(
    id: usize,
    plan: &Plan,
    telemetry: &ShardTelemetry,
    exporter_names: &[String],
    memory: &Rc<ShardMemory>,
) -> (Option<Rc<Tier>>, bool) {
    let (Some(settings), Some(metrics)) = (&plan.tier, &telemetry.tier) else {
        return (None, false);
    };
    let index = exporter_names
        .iter()
        .position(|n| n == tier::EXPORTER_NAME)
        .expect("the tier's forwarder was registered");
    let observer = Rc::new(Observer {
        metrics: telemetry.exporters[index].clone(),
        drops: telemetry.drops.clone(),
        signal: Signal::Traces,
        memory: memory.clone(),
        upstream: None,
        balancer: telemetry.balancers[index].clone().map(BalancerCells::new),
    });
    match Exporter::new(
        tier::EXPORTER_NAME,
        id,
        ExporterSettings::LoadBalancing(settings.clone()),
        observer,
    ) {
        Ok(forwarder) => (
            Some(Tier::new(
                Rc::new(forwarder),
                metrics.clone(),
                telemetry.shard.batching[Signal::Traces.index()].clone(),
                memory.clone(),
            )),
            false,
        ),
        Err(err) => {
            tracing::error!("shard {id}: the tier's forwarder cannot start: {err}");
            (None, true)
        }
    }
}

fn build_exporters(
    id: usize,
    upstreams: &BTreeMap<String, Arc<UpstreamHealth>>,
    pipeline: &PipelinePlan,
    telemetry: &ShardTelemetry,
    exporter_names: &[String],
    memory: &Rc<ShardMemory>,
) -> (Vec<Rc<Exporter>>, Vec<String>) {
    let mut exporters = Vec::new();
    let mut failed = Vec::new();
    for (name, settings) in &pipeline.exporters {
        let index = exporter_names
            .iter()
            .position(|n| n == name)
            .expect("every exporter was registered");
        let metrics = telemetry.exporters[index].clone();
        let upstream = upstreams
            .get(name)
            .map(|health| ShardUpstream::new(health.clone(), id, metrics.upstream_failing.clone()));
        let observer = Rc::new(Observer {
            metrics,
            drops: telemetry.drops.clone(),
            signal: pipeline.signal,
            memory: memory.clone(),
            upstream,
            balancer: telemetry.balancers[index].clone().map(BalancerCells::new),
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
                let why = format!("shard {id}: exporter {name} cannot start: {err}");
                tracing::error!("{why}");
                failed.push(why);
            }
        }
    }
    (exporters, failed)
}
