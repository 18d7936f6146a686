//! The plan: a [`Config`] turned into the plain values every shard builds itself from.
//!
//! Made once, on the main thread, before any shard starts: CPUs are read, addresses resolved,
//! the memory budget sized ([`budget`]), each exporter's settings translated ([`exporters`])
//! and checked, and every policy compiled once, so that what a shard would refuse is refused
//! here, before anything listens. The plan is then cloned into each shard, which reads it only.

mod budget;
mod exporters;
mod tier;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use tailgate_shards::runtime;
use tailgate_wire::Signal;

use crate::auth::{Authenticators, ServerAuth, WatchedFile};
use crate::config::{self, Config, Cpus, Processor, TailSampling};
use crate::doctor::{NumaLayout, Tree};
use crate::export::upstream::UpstreamHealth;
use crate::export::{
    BatcherSettings, Exporter, ExporterSettings, OtlpGrpcSettings, OtlpHttpSettings, Partitioning,
    BATCH_BYTES_MAX_DEFAULT,
};
use crate::gateway::StartError;
use crate::ingest::accept::{
    open_files_limit, ConnectionBudget, ListenOptions, CONNECTIONS_PER_LISTENER_MAX,
};
use crate::ingest::grpc::GrpcSettings;
use crate::ingest::http::HttpSettings;
use crate::ingest::Limits;
use crate::metadata::{Admission, Capture};
use crate::sampling::stress_relief::ReliefLog;
use crate::sampling::{PolicySet, SamplerSettings};
use crate::tls::{ClientTls, Reload, ServerTls};

/// Everything a shard needs to build itself, as plain values.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) cpus: Vec<usize>,
    pub(crate) channel_capacity: usize,
    /// Each shard's executor: ring depth, spinning, NUMA binding.
    pub(crate) executor: runtime::Executor,
    /// The receivers' listening-socket options (without the CPU, which is each shard's).
    pub(crate) listen: ListenOptions,
    /// Whether each shard's listeners ask for the connections its CPU handles.
    pub(crate) incoming_cpu: bool,
    /// Each exporter's upstream, watched for the node (`crate::export::upstream`).
    pub(crate) upstreams: BTreeMap<String, Arc<UpstreamHealth>>,
    pub(crate) receivers: Vec<ReceiverPlan>,
    /// The `batch` processors' limits on client metadata combinations, each with the signal
    /// of its pipeline (see [`crate::metadata`]).
    pub(crate) admissions: Vec<(Signal, Arc<Admission>)>,
    /// Bearer token files to follow while running (see [`crate::auth::Watcher`]).
    pub(crate) token_files: Vec<WatchedFile>,
    pub(crate) pipelines: Vec<PipelinePlan>,
    /// The connectors, each sending to pipelines by their index in `pipelines`.
    pub(crate) connectors: Vec<ConnectorPlan>,
    /// Indexes into `pipelines`, every pipeline before those its connectors send to (and a
    /// failover's higher levels before its lower ones): the order a shard drains them in, so
    /// what an upstream pipeline flushes still finds its downstream pipelines open.
    pub(crate) order: Vec<usize>,
    /// The node's memory budget in bytes, split evenly across shards (see [`crate::memory`]).
    pub(crate) memory_limit: u64,
    /// Whether the budget bounds the process's resident memory, not only what the shards hold
    /// (`shards.memory_budget_whole_process`).
    pub(crate) memory_whole_process: bool,
    pub(crate) admin: SocketAddr,
    /// Whether counter samples carry `_total` (`without_type_suffix: false`).
    pub(crate) counter_total: bool,
    /// `target_info`'s labels: the telemetry's resource attributes, their names made
    /// Prometheus label names (`service.name` → `service_name`).
    pub(crate) target_info: Vec<(String, String)>,
    /// The enabled `health_check` extensions, each with the address it listens on and its TLS.
    pub(crate) health_checks: Vec<HealthCheckPlan>,
    /// The periodic readers: where the self-metrics are pushed.
    pub(crate) pushes: Vec<PushPlan>,
    /// The log processors: where the log's records are pushed.
    pub(crate) log_exports: Vec<LogExportPlan>,
    /// Every TLS configuration (listeners and exporters), for the reload thread.
    pub(crate) tls: Vec<Arc<dyn Reload>>,
    /// The tier's forwarder (`crate::tier`), if the node is part of one.
    pub(crate) tier: Option<crate::export::LoadBalancingSettings>,
}

/// One OTLP receiver instance (`otlp`, `otlp/NAME`) and what it listens on.
#[derive(Debug, Clone)]
pub(crate) struct ReceiverPlan {
    /// The authenticators each protocol checks requests with.
    pub(crate) auth: ReceiverAuth,
    pub(crate) name: String,
    pub(crate) grpc: Option<(SocketAddr, GrpcSettings, Option<Arc<ServerTls>>)>,
    pub(crate) http: Option<(SocketAddr, HttpSettings, Option<Arc<ServerTls>>)>,
}

/// One pipeline: its tail sampling, its batching, its exporters and its connectors.
#[derive(Debug, Clone)]
pub(crate) struct PipelinePlan {
    /// The pipeline's id (`traces/acme`), for logs.
    pub(crate) name: String,
    pub(crate) signal: Signal,
    /// Whether the receivers' deliveries reach it (it lists a receiver, not only connectors).
    pub(crate) entry: bool,
    /// The connectors it exports to, as indexes into [`Plan::connectors`].
    pub(crate) connectors: Vec<usize>,
    pub(crate) sampling: Option<SamplingPlan>,
    pub(crate) batch: BatcherSettings,
    /// Which client metadata its batches carry.
    pub(crate) partitioning: Partitioning,
    /// The id of the `batch` processor whose settings its batcher takes (the last it lists),
    /// for the processor's families; `None` without one.
    pub(crate) batch_processor: Option<String>,
    pub(crate) exporters: Vec<(String, ExporterSettings)>,
    /// The ids of the pipeline's `memory_limiter` processors, for their metric families.
    pub(crate) memory_limiters: Vec<String>,
    /// Its `filter` (with conditions for its signal) and `resource` processors, in the order
    /// listed.
    pub(crate) steps: Vec<StepPlan>,
}

/// One `filter` or `resource` processor of a pipeline.
#[derive(Debug, Clone)]
pub(crate) struct StepPlan {
    /// The processor's id (`filter/health`), for its families and logs.
    pub(crate) id: String,
    pub(crate) kind: StepKind,
    /// Whether the pipeline lists it after `tail_sampling`: it runs on the kept spans.
    pub(crate) after_sampling: bool,
}

/// What a step does.
#[derive(Debug, Clone)]
pub(crate) enum StepKind {
    /// A `filter`'s conditions for the pipeline's signal, resource conditions first.
    Filter(Vec<config::FilterRule>),
    /// A `resource` processor's actions.
    Resource(config::ResourceProcessor),
    /// An `attributes` processor's actions and matching.
    Attributes(Box<config::AttributesProcessor>),
}

/// The most pipelines one connector may send to: a routing connector marks each resource group
/// with the set of its targets in one 64-bit word.
pub(crate) const CONNECTOR_TARGETS_MAX: usize = 64;

/// One connector (`routing`, `failover`) as each shard builds it.
#[derive(Debug, Clone)]
pub(crate) struct ConnectorPlan {
    /// The connector's id (`routing/tenants`).
    pub(crate) name: String,
    /// The signal of every pipeline it joins.
    pub(crate) signal: Signal,
    pub(crate) kind: ConnectorKind,
}

/// What a connector does, with its pipelines as indexes into [`Plan::pipelines`].
#[derive(Debug, Clone)]
pub(crate) enum ConnectorKind {
    /// `routing`: resource groups to pipelines by condition.
    Routing {
        routes: Vec<RoutePlan>,
        /// `default_pipelines`.
        default: Vec<usize>,
        error_mode: config::ErrorMode,
    },
    /// `failover`: everything to the highest healthy level.
    Failover {
        levels: Vec<Vec<usize>>,
        retry_interval: Duration,
        retry_gap: Duration,
        max_retries: u32,
    },
}

/// One route of a routing table.
#[derive(Debug, Clone)]
pub(crate) struct RoutePlan {
    pub(crate) condition: config::RouteCondition,
    /// `action: copy`: the group stays on offer to the routes after this one.
    pub(crate) copy: bool,
    pub(crate) pipelines: Vec<usize>,
}

impl ConnectorPlan {
    /// Every pipeline `connector` (named `name`) of `config` sends to, as indexes into its
    /// pipelines (which the configuration checked exist).
    fn from_config(
        config: &Config,
        name: String,
        connector: &config::Connector,
    ) -> Result<ConnectorPlan, StartError> {
        let pipelines = &config.service.pipelines;
        let index = |id: &config::PipelineId| {
            pipelines
                .iter()
                .position(|p| &p.id == id)
                .expect("the configuration checked that connectors name defined pipelines")
        };
        let list = |ids: &[config::PipelineId]| ids.iter().map(index).collect::<Vec<_>>();
        let targets = connector.targets();
        if targets.len() > CONNECTOR_TARGETS_MAX {
            return Err(StartError::Unsupported(format!(
                "connectors.{name}: sends to {} pipelines; at most {CONNECTOR_TARGETS_MAX} are \
                 allowed",
                targets.len()
            )));
        }
        let signal = pipelines[index(targets[0])].id.signal;
        let kind = match connector {
            config::Connector::Routing(routing) => ConnectorKind::Routing {
                routes: routing
                    .table
                    .iter()
                    .map(|route| RoutePlan {
                        condition: route.condition.clone(),
                        copy: route.action == config::RouteAction::Copy,
                        pipelines: list(&route.pipelines),
                    })
                    .collect(),
                default: list(&routing.default_pipelines),
                error_mode: routing.error_mode,
            },
            config::Connector::Failover(failover) => ConnectorKind::Failover {
                levels: failover
                    .priority_levels
                    .iter()
                    .map(|level| list(level))
                    .collect(),
                retry_interval: failover.retry_interval,
                retry_gap: failover.retry_gap,
                max_retries: failover.max_retries,
            },
        };
        Ok(ConnectorPlan { name, signal, kind })
    }

    /// The pipelines the connector sends to, as indexes; for a failover, level by level.
    pub(crate) fn targets(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let all: Vec<usize> = match &self.kind {
            ConnectorKind::Routing {
                routes, default, ..
            } => routes
                .iter()
                .flat_map(|r| r.pipelines.iter().copied())
                .chain(default.iter().copied())
                .collect(),
            ConnectorKind::Failover { levels, .. } => levels.iter().flatten().copied().collect(),
        };
        for p in all {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }
}

/// The order a shard drains `pipelines` in (see [`Plan::order`]): Kahn's algorithm over the
/// edges from each pipeline to the pipelines its connectors send to, and from each failover
/// level to the next; ties in file order. The configuration refuses cycles, and a level's
/// pipelines take data from their failover connector only, so the level edges close no loop
/// either (one would need a path from a level back to its connector's sources: a cycle); the
/// fallback to file order only keeps the function total.
fn drain_order(pipelines: &[PipelinePlan], connectors: &[ConnectorPlan]) -> Vec<usize> {
    let n = pipelines.len();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (p, pipeline) in pipelines.iter().enumerate() {
        for &c in &pipeline.connectors {
            edges[p].extend(connectors[c].targets());
        }
    }
    for connector in connectors {
        if let ConnectorKind::Failover { levels, .. } = &connector.kind {
            for pair in levels.windows(2) {
                for &from in &pair[0] {
                    edges[from].extend(pair[1].iter().copied());
                }
            }
        }
    }
    let mut incoming = vec![0usize; n];
    for targets in &edges {
        for &t in targets {
            incoming[t] += 1;
        }
    }
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while order.len() < n {
        let next = (0..n)
            .find(|&p| !done[p] && incoming[p] == 0)
            .or_else(|| (0..n).find(|&p| !done[p]))
            .expect("a pipeline is left");
        done[next] = true;
        order.push(next);
        for &t in &edges[next] {
            incoming[t] = incoming[t].saturating_sub(1);
        }
    }
    order
}

/// A traces pipeline's `tail_sampling`, with each shard's share of its limits.
#[derive(Debug, Clone)]
pub(crate) struct SamplingPlan {
    pub(crate) config: TailSampling,
    pub(crate) settings: SamplerSettings,
    /// The node's stress relief log, shared by the shards' samplers.
    pub(crate) relief_log: Arc<ReliefLog>,
}

/// A receiver's `auth.authenticator`s, per protocol.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReceiverAuth {
    pub(crate) grpc: Option<std::sync::Arc<ServerAuth>>,
    pub(crate) http: Option<std::sync::Arc<ServerAuth>>,
}

impl ReceiverAuth {
    /// The authenticators of receiver `name` (the configuration checked that each names an
    /// enabled server authenticator).
    fn from_config(config: &Config, name: &str, auth: &Authenticators) -> ReceiverAuth {
        let receiver = config::ComponentId::parse(name)
            .ok()
            .and_then(|id| config.receivers.get(&id));
        let Some(config::Receiver::Otlp(otlp)) = receiver else {
            return ReceiverAuth::default();
        };
        let server = |id: Option<&config::ComponentId>| id.and_then(|id| auth.server(id));
        ReceiverAuth {
            grpc: server(otlp.grpc.as_ref().and_then(|g| g.auth.as_ref())),
            http: server(otlp.http.as_ref().and_then(|h| h.auth.as_ref())),
        }
    }
}

impl Plan {
    /// After a live reload, what keeps running — the receivers' and `health_check`'s
    /// listeners and the tier, none of which a reload rebuilds — serves with the TLS
    /// configurations it started with; the certificate reloader must go on watching those, not
    /// the copies this plan loaded (a rotation would be read, logged, and never served). A
    /// change to any of them needs a restart, so a label kept is the same configuration.
    /// Exporters are rebuilt from this plan, so theirs stay this plan's.
    pub(crate) fn keep_running_tls(&mut self, running: &Plan) {
        for tls in &mut self.tls {
            if tls.label().starts_with("exporter ") {
                continue;
            }
            if let Some(kept) = running.tls.iter().find(|old| old.label() == tls.label()) {
                *tls = kept.clone();
            }
        }
    }

    /// The plan for `config` on this machine; every check a shard's start would make, made once.
    pub(crate) fn from_config(config: &Config) -> Result<Plan, StartError> {
        let cpus = shard_cpus(&config.shards)?;
        let executor = runtime::Executor {
            ring_depth: config.shards.ring_depth as usize,
            spin_before_park: config.shards.spin_before_park,
            memory_nodes: if config.shards.numa_bind {
                Some(memory_nodes(&cpus)?)
            } else {
                None
            },
        };
        // Token and htpasswd files are this machine's: a missing one is a note for check-config.
        let auth = Authenticators::from_config(config)
            .map_err(|err| StartError::Machine(err.to_string()))?;
        let (soft, memory_limit) = budget::memory_budget(config, cpus.len())?;
        let mut tls: Vec<Arc<dyn Reload>> = Vec::new();
        let mut exporter_tls = BTreeMap::new();
        for (id, exporter) in &config.exporters.by_id {
            let (settings, alpn, key) = match exporter {
                config::Exporter::Otlp(otlp) => (&otlp.tls, crate::tls::ALPN_H2, "tls"),
                config::Exporter::OtlpHttp(http) => (&http.tls, crate::tls::ALPN_HTTP1, "tls"),
                config::Exporter::LoadBalancing(lb) => {
                    (&lb.protocol.tls, crate::tls::ALPN_H2, "protocol.otlp.tls")
                }
                config::Exporter::Debug(_) => continue,
            };
            if let Some(settings) = settings {
                let loaded = ClientTls::load(format!("exporter {id}"), settings.clone(), alpn)
                    .map_err(|why| {
                        tls_error(&format!("exporters.{id}.{key}"), &settings.common, why)
                    })?;
                tls.push(loaded.clone());
                exporter_tls.insert(id.clone(), loaded);
            }
        }
        let pipelines = config
            .service
            .pipelines
            .iter()
            .map(|pipeline| {
                PipelinePlan::from_config(config, pipeline, soft, cpus.len(), &exporter_tls)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut pipelines = with_client_auth(pipelines, config, &auth);
        let connectors = config
            .connectors
            .by_id
            .iter()
            .filter(|(id, _)| {
                // A connector no pipeline uses is not built, as in the Collector.
                config
                    .service
                    .pipelines
                    .iter()
                    .any(|p| p.exporters.contains(id))
            })
            .map(|(id, c)| ConnectorPlan::from_config(config, id.to_string(), c))
            .collect::<Result<Vec<_>, _>>()?;
        for (plan, pipeline) in pipelines.iter_mut().zip(&config.service.pipelines) {
            plan.connectors = pipeline
                .exporters
                .iter()
                .filter_map(|id| {
                    let name = id.to_string();
                    connectors.iter().position(|c| c.name == name)
                })
                .collect();
        }
        let order = drain_order(&pipelines, &connectors);
        // A receiver no pipeline takes from is not started, as in the Collector.
        let taken: BTreeSet<String> = config
            .service
            .pipelines
            .iter()
            .flat_map(|pipeline| pipeline.receivers.iter().map(ToString::to_string))
            .collect();
        let mut receivers = Vec::new();
        for (id, receiver) in &config.receivers.by_id {
            let name = id.to_string();
            if taken.contains(&name) {
                let receiver = ReceiverPlan::from_config(name, receiver)?;
                let listeners = [
                    receiver.grpc.as_ref().and_then(|(_, _, t)| t.clone()),
                    receiver.http.as_ref().and_then(|(_, _, t)| t.clone()),
                ];
                tls.extend(
                    listeners
                        .into_iter()
                        .flatten()
                        .map(|t| t as Arc<dyn Reload>),
                );
                receivers.push(receiver);
            }
        }
        for receiver in &mut receivers {
            receiver.auth = ReceiverAuth::from_config(config, &receiver.name, &auth);
        }
        let admissions = metadata_plan(config, &mut receivers);
        let tier = tier::plan(config, &receivers, cpus.len(), &mut tls)?;
        let upstreams = config
            .exporters
            .by_id
            .iter()
            .map(|(id, exporter)| {
                let endpoint = match exporter {
                    config::Exporter::Otlp(otlp) => otlp.endpoint.to_string(),
                    config::Exporter::OtlpHttp(http) => Signal::ALL
                        .into_iter()
                        .find_map(|signal| http.url(signal))
                        .map_or_else(String::new, ToString::to_string),
                    config::Exporter::Debug(_) => "standard output".to_string(),
                    config::Exporter::LoadBalancing(lb) => match &lb.resolver {
                        config::BackendResolver::Static { hostnames } => hostnames
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        config::BackendResolver::Dns { hostname, port, .. } => {
                            format!("{hostname}:{port} (dns)")
                        }
                    },
                };
                let name = id.to_string();
                let health = UpstreamHealth::new(&name, &endpoint, cpus.len());
                (name, health)
            })
            .collect();
        Ok(Plan {
            cpus,
            channel_capacity: config.shards.channel_capacity as usize,
            executor,
            listen: ListenOptions {
                receive_buffer_bytes: config.shards.socket_receive_buffer_bytes,
                send_buffer_bytes: config.shards.socket_send_buffer_bytes,
                incoming_cpu: None,
            },
            incoming_cpu: config.shards.incoming_cpu,
            upstreams,
            receivers,
            admissions,
            token_files: auth.watched_files(),
            pipelines,
            connectors,
            order,
            memory_limit,
            memory_whole_process: config.shards.memory_budget_whole_process,
            admin: resolve(&config.service.telemetry.metrics.address)?,
            counter_total: config.service.telemetry.metrics.counter_total,
            target_info: target_info(&config.service.telemetry.resource_attributes()),
            health_checks: health_checks(config, &mut tls)?,
            pushes: pushes(config, &mut tls)?,
            log_exports: log_exports(config, &mut tls)?,
            tls,
            tier,
        })
    }

    /// Caps every listener's connections so that all of them together cannot exhaust the
    /// process's descriptors ([`ConnectionBudget`]); says so in the log.
    pub(crate) fn budget_connections(&mut self) -> Result<(), StartError> {
        let listeners = self.cpus.len()
            * self
                .receivers
                .iter()
                .map(|r| usize::from(r.grpc.is_some()) + usize::from(r.http.is_some()))
                .sum::<usize>();
        // A load balancer holds connections to each of its backends.
        let exporters: usize = self
            .pipelines
            .iter()
            .flat_map(|p| p.exporters.iter())
            .map(|(_, settings)| match settings {
                ExporterSettings::LoadBalancing(lb) => lb.backends.most(),
                _ => 1,
            })
            .sum();
        let budget = ConnectionBudget::from_limit(
            open_files_limit()?,
            self.cpus.len(),
            listeners,
            exporters,
        )
        .map_err(|err| StartError::Unsupported(err.to_string()))?;
        tracing::info!(
            "connections: at most {} per listener ({listeners} listeners over {} shard(s)), \
             from an open-file limit of {} with {} descriptors kept for the runtime, \
             exporters and admin",
            budget.per_listener,
            self.cpus.len(),
            budget.descriptors,
            budget.reserved
        );
        for receiver in &mut self.receivers {
            if let Some((_, grpc, _)) = &mut receiver.grpc {
                grpc.limits.connections_max = budget.per_listener;
            }
            if let Some((_, http, _)) = &mut receiver.http {
                http.limits.connections_max = budget.per_listener;
            }
        }
        Ok(())
    }
}

impl PipelinePlan {
    /// One pipeline of `config`; `soft` is the node's soft memory limit, split over `shards`.
    fn from_config(
        config: &Config,
        pipeline: &config::Pipeline,
        soft: u64,
        shards: usize,
        exporter_tls: &BTreeMap<config::ComponentId, Arc<ClientTls>>,
    ) -> Result<PipelinePlan, StartError> {
        let mut sampling = None;
        let mut memory_limiters = Vec::new();
        let mut batch = BatcherSettings {
            send_batch_size: 1,
            send_batch_max_size: 0,
            timeout: Duration::ZERO,
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
        };
        // Without a batch processor, each request's client metadata goes on as it came.
        let mut partitioning = Partitioning::Keep;
        let mut batch_processor = None;
        let mut steps = Vec::new();
        for id in &pipeline.processors {
            match config.processors.by_id.get(id) {
                Some(Processor::Filter(filter)) => {
                    let rules = filter.rules(pipeline.id.signal);
                    // A filter without conditions for the signal passes everything.
                    if !rules.is_empty() {
                        steps.push(StepPlan {
                            id: id.to_string(),
                            kind: StepKind::Filter(rules.to_vec()),
                            after_sampling: sampling.is_some(),
                        });
                    }
                }
                Some(Processor::Resource(resource)) => steps.push(StepPlan {
                    id: id.to_string(),
                    kind: StepKind::Resource(resource.clone()),
                    after_sampling: sampling.is_some(),
                }),
                Some(Processor::Attributes(attributes)) => {
                    let resources = [&attributes.include, &attributes.exclude]
                        .into_iter()
                        .flatten()
                        .any(|m| !m.resources.is_empty());
                    if pipeline.id.signal == Signal::Metrics && resources {
                        tracing::warn!(
                            "processor {id} in pipeline {}: for metrics, the Collector's \
                             attributes processor matches by metric_names alone, and its \
                             resources narrow nothing; tailgate does the same",
                            pipeline.id
                        );
                    }
                    steps.push(StepPlan {
                        id: id.to_string(),
                        kind: StepKind::Attributes(attributes.clone()),
                        after_sampling: sampling.is_some(),
                    })
                }
                Some(Processor::Batch(b)) => {
                    batch_processor = Some(id.to_string());
                    partitioning = if b.metadata_keys.is_empty() {
                        Partitioning::Drop
                    } else {
                        Partitioning::Keys(
                            b.metadata_keys
                                .iter()
                                .map(|k| Box::from(k.as_str()))
                                .collect(),
                        )
                    };
                    batch = BatcherSettings {
                        send_batch_size: u64::from(b.send_batch_size),
                        send_batch_max_size: b.send_batch_max_size.map_or(0, u64::from),
                        timeout: b.timeout,
                        batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
                    }
                }
                // The configuration checked that one pipeline at most samples.
                Some(Processor::TailSampling(config)) => sampling = Some(config.clone()),
                // Counted once for the node, in `memory_budget`.
                Some(Processor::MemoryLimiter(_)) => memory_limiters.push(id.to_string()),
                None => {}
            }
        }
        let has_batch_processor = pipeline
            .processors
            .iter()
            .any(|id| matches!(config.processors.by_id.get(id), Some(Processor::Batch(_))));
        if let Some((settings, by)) = exporter_batching(config, pipeline, has_batch_processor)? {
            batch = settings;
            partitioning = by;
        }
        let sampling = match sampling {
            Some(config) => {
                if config.num_shards > 1 {
                    tracing::warn!(
                        "tail_sampling.num_shards ({}) is the Collector's count of event loops; \
                         tailgate decides traces on every shard it runs (shards.cpus: {shards} \
                         here) and ignores it",
                        config.num_shards
                    );
                }
                PolicySet::new(&config, shards)
                    .map_err(|err| StartError::Unsupported(err.to_string()))?;
                Some(SamplingPlan {
                    settings: SamplerSettings::for_shard(&config, soft, shards),
                    relief_log: Arc::new(ReliefLog::new(shards)),
                    config,
                })
            }
            None => None,
        };
        let mut exporters = Vec::new();
        for id in &pipeline.exporters {
            let Some(exporter) = config.exporters.by_id.get(id) else {
                continue;
            };
            let mut settings = exporters::exporter_settings(
                exporter,
                pipeline.id.signal,
                shards,
                exporter_tls.get(id).cloned(),
            );
            let storage = exporters::storage(config, id, exporter, &pipeline.id, shards)?;
            match &mut settings {
                ExporterSettings::Otlp(s) => s.queue.storage = storage,
                ExporterSettings::OtlpHttp(s) => s.queue.storage = storage,
                ExporterSettings::Debug(_) | ExporterSettings::LoadBalancing(_) => {}
            }
            // What each shard's `Exporter::new` would refuse, refused once, before any starts.
            Exporter::check(&settings)
                .map_err(|err| StartError::Unsupported(format!("exporters.{id}: {err}")))?;
            exporters.push((id.to_string(), settings));
        }
        Ok(PipelinePlan {
            name: pipeline.id.to_string(),
            signal: pipeline.id.signal,
            entry: pipeline.is_entry(&config.connectors),
            connectors: Vec::new(),
            sampling,
            batch,
            partitioning,
            batch_processor,
            exporters,
            memory_limiters,
            steps,
        })
    }
}

/// The client metadata keys something reads: every one (`batch` processors' `metadata_keys`,
/// `resource` processors' and enabled `headers_setter`s' `from_context`, exporters'
/// `partition.metadata_keys`, request routes), and those of the routing connectors' `context:
/// request` routes.
/// The processors some pipeline lists: one defined and unused reads nothing.
fn listed_processors(config: &Config) -> impl Iterator<Item = (&config::ComponentId, &Processor)> {
    config.processors.by_id.iter().filter(|(id, _)| {
        config
            .service
            .pipelines
            .iter()
            .any(|p| p.processors.contains(id))
    })
}

fn kept_keys(config: &Config) -> (Vec<&str>, Vec<&str>) {
    let mut keys: Vec<&str> = listed_processors(config)
        .flat_map(|(_, p)| -> Vec<&str> {
            match p {
                Processor::Batch(b) => b.metadata_keys.iter().map(String::as_str).collect(),
                Processor::Resource(r) => r.context_keys().collect(),
                Processor::Attributes(a) => a.context_keys().collect(),
                _ => Vec::new(),
            }
        })
        .collect();
    keys.extend(
        config
            .service
            .extensions
            .iter()
            .filter_map(|id| match config.extensions.get(id) {
                Some(config::Extension::HeadersSetter(setter)) => Some(setter.context_keys()),
                _ => None,
            })
            .flatten(),
    );
    keys.extend(
        config
            .exporters
            .by_id
            .values()
            .filter_map(|e| match e {
                config::Exporter::Otlp(e) => e.sending_queue.batch.as_ref(),
                config::Exporter::OtlpHttp(e) => e.sending_queue.batch.as_ref(),
                _ => None,
            })
            .flat_map(|batch| batch.partition_keys.iter().map(String::as_str)),
    );
    // The routing connectors' `context: request` keys: read from the client metadata of any
    // gRPC call (the Collector matches those on the call's metadata, include_metadata or
    // not), and of HTTP requests to receivers with include_metadata (its client metadata).
    let routed: Vec<&str> = config
        .connectors
        .by_id
        .values()
        .filter_map(|c| match c {
            config::Connector::Routing(routing) => Some(routing.table.iter()),
            _ => None,
        })
        .flatten()
        .filter_map(|route| match &route.condition {
            config::RouteCondition::Request(condition) => Some(condition.key.as_str()),
            config::RouteCondition::Ottl(_) => None,
        })
        .collect();
    keys.extend(routed.iter().copied());
    (keys, routed)
}

/// Client metadata (see [`crate::metadata`]): gives each receiver with `include_metadata` the
/// headers to keep — the keys the `batch` processors' `metadata_keys` and the enabled
/// `headers_setter`s' `from_context` read — and returns the `metadata_cardinality_limit` of
/// each pipeline the receivers feed that batches by metadata.
fn metadata_plan(config: &Config, receivers: &mut [ReceiverPlan]) -> Vec<(Signal, Arc<Admission>)> {
    let (keys, routed) = kept_keys(config);
    let setters: Vec<(&config::ComponentId, &config::HeadersSetter)> = config
        .service
        .extensions
        .iter()
        .filter_map(|id| match config.extensions.get(id) {
            Some(config::Extension::HeadersSetter(setter)) => Some((id, setter)),
            _ => None,
        })
        .collect();
    let capture = Arc::new(Capture::new(keys));
    let routing_only = (!routed.is_empty()).then(|| Arc::new(Capture::new(routed)));
    let mut including = false;
    for receiver in receivers.iter_mut() {
        let config::Receiver::Otlp(otlp) = &config.receivers.by_id
            [&config::ComponentId::parse(&receiver.name).expect("a planned receiver's id")];
        let keeps = |on: bool| (on && !capture.is_empty()).then(|| capture.clone());
        if let Some((_, settings, _)) = &mut receiver.grpc {
            let on = otlp.grpc.as_ref().is_some_and(|g| g.include_metadata);
            including |= on;
            settings.capture = keeps(on).or_else(|| routing_only.clone());
        }
        if let Some((_, settings, _)) = &mut receiver.http {
            let on = otlp.http.as_ref().is_some_and(|h| h.include_metadata);
            including |= on;
            settings.capture = keeps(on);
        }
    }
    if !including {
        for (id, processor) in listed_processors(config) {
            let reads = match processor {
                Processor::Resource(r) => r.context_keys().next().is_some(),
                Processor::Attributes(a) => a.context_keys().next().is_some(),
                _ => false,
            };
            if reads {
                tracing::warn!(
                    "processor {id}: from_context reads client metadata, and no receiver keeps \
                     any (include_metadata: true); its actions find no value there"
                );
            }
        }
        for (id, setter) in &setters {
            if setter.context_keys().next().is_some() {
                tracing::warn!(
                    "extension {id}: from_context reads client metadata, and no receiver keeps \
                     any (include_metadata: true); its default_value is sent"
                );
            }
        }
    }
    admission_specs(config)
        .into_iter()
        .map(|(signal, keys, limit)| {
            let keys = keys.iter().map(|k| Box::from(k.as_str())).collect();
            (signal, Arc::new(Admission::new(keys, limit as usize)))
        })
        .collect()
}

/// The `metadata_cardinality_limit` of each pipeline the receivers feed whose (last, as its
/// settings are the batcher's) `batch` processor has `metadata_keys` and a limit: its signal,
/// keys and limit. A pipeline that tail samples counts too: its kept spans carry their tenant
/// to that batcher.
fn admission_specs(config: &Config) -> Vec<(Signal, Vec<String>, u32)> {
    config
        .service
        .pipelines
        .iter()
        .filter(|pipeline| pipeline.is_entry(&config.connectors))
        .filter_map(|pipeline| {
            let batch = pipeline.processors.iter().rev().find_map(|id| {
                match config.processors.by_id.get(id) {
                    Some(Processor::Batch(b)) => Some(b),
                    _ => None,
                }
            })?;
            // No keys, or no limit: nothing to admit (the partitions are bounded on their own).
            (!batch.metadata_keys.is_empty() && batch.metadata_cardinality_limit > 0).then(|| {
                (
                    pipeline.id.signal,
                    batch.metadata_keys.clone(),
                    batch.metadata_cardinality_limit,
                )
            })
        })
        .collect()
}

/// What a live reload cannot change about client metadata, as text to compare: the headers the
/// receivers keep and the cardinality limits their requests are admitted against, which are
/// set when they start.
pub(crate) fn metadata_settings(config: &Config) -> String {
    let (mut kept, mut routed) = kept_keys(config);
    kept.sort_unstable();
    kept.dedup();
    routed.sort_unstable();
    routed.dedup();
    format!("{kept:?} {routed:?} {:?}", admission_specs(config))
}

/// Gives each exporter of `pipelines` the client authenticator its configuration names (the
/// configuration checked that it is an enabled one).
fn with_client_auth(
    mut pipelines: Vec<PipelinePlan>,
    config: &Config,
    auth: &Authenticators,
) -> Vec<PipelinePlan> {
    for (name, settings) in pipelines.iter_mut().flat_map(|p| p.exporters.iter_mut()) {
        let exporter = config::ComponentId::parse(name)
            .ok()
            .and_then(|id| config.exporters.get(&id));
        let client = match exporter {
            Some(config::Exporter::Otlp(otlp)) => otlp.auth.as_ref(),
            Some(config::Exporter::OtlpHttp(http)) => http.auth.as_ref(),
            Some(config::Exporter::LoadBalancing(lb)) => lb.protocol.auth.as_ref(),
            Some(config::Exporter::Debug(_)) | None => None,
        };
        let setter = client.and_then(|id| auth.setter(id));
        let client = client.and_then(|id| auth.client(id));
        match settings {
            ExporterSettings::Otlp(otlp) => (otlp.auth, otlp.setter) = (client, setter),
            ExporterSettings::OtlpHttp(http) => (http.auth, http.setter) = (client, setter),
            ExporterSettings::LoadBalancing(lb) => {
                (lb.otlp.auth, lb.otlp.setter) = (client, setter)
            }
            ExporterSettings::Debug(_) => {}
        }
    }
    pipelines
}

impl ReceiverPlan {
    /// The receiver `name`, its listen addresses resolved.
    fn from_config(name: String, receiver: &config::Receiver) -> Result<ReceiverPlan, StartError> {
        let config::Receiver::Otlp(otlp) = receiver;
        let grpc = match &otlp.grpc {
            Some(grpc) => Some((
                resolve(&grpc.endpoint)?,
                GrpcSettings {
                    limits: Limits {
                        max_message_bytes: grpc.max_recv_msg_size_mib as usize * (1 << 20),
                        connections_max: CONNECTIONS_PER_LISTENER_MAX,
                    },
                    max_concurrent_streams: grpc.max_concurrent_streams,
                    keepalive: grpc.keepalive,
                    capture: None,
                },
                server_tls(&name, "grpc", grpc.tls.as_ref(), crate::tls::ALPN_H2)?,
            )),
            None => None,
        };
        let http = match &otlp.http {
            Some(http) => Some((
                resolve(&http.endpoint)?,
                HttpSettings {
                    limits: Limits {
                        max_message_bytes: usize::try_from(http.max_request_body_size)
                            .unwrap_or(usize::MAX),
                        connections_max: CONNECTIONS_PER_LISTENER_MAX,
                    },
                    timeouts: http.timeouts,
                    traces_path: http.traces_url_path.clone(),
                    metrics_path: http.metrics_url_path.clone(),
                    logs_path: http.logs_url_path.clone(),
                    compression_algorithms: http.compression_algorithms.clone(),
                    cors: http
                        .cors
                        .as_ref()
                        .map(|cors| Arc::new(crate::ingest::cors::CorsPolicy::new(cors))),
                    keep_alives: http.keep_alives,
                    response_headers: http
                        .response_headers
                        .iter()
                        .map(|(name, value)| format!("{name}: {value}\r\n"))
                        .collect::<String>()
                        .into(),
                    capture: None,
                },
                server_tls(&name, "http", http.tls.as_ref(), crate::tls::ALPN_HTTP1)?,
            )),
            None => None,
        };
        Ok(ReceiverPlan {
            auth: ReceiverAuth::default(),
            name,
            grpc,
            http,
        })
    }
}

/// A TLS listener's configuration, its files read.
fn server_tls(
    receiver: &str,
    protocol: &str,
    settings: Option<&config::TlsServerSettings>,
    alpn: &'static [u8],
) -> Result<Option<Arc<ServerTls>>, StartError> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let label = format!("receiver {receiver} {protocol}");
    ServerTls::load(label, settings.clone(), alpn)
        .map(Some)
        .map_err(|why| {
            tls_error(
                &format!("receivers.{receiver}.protocols.{protocol}.tls"),
                &settings.common,
                why,
            )
        })
}

/// A TLS configuration that did not load: a file may be right on the machine the gateway is
/// meant for, so one that names files is a machine note for `check-config`; PEM given inline is
/// the configuration's own fault.
fn tls_error(key: &str, common: &config::TlsCommon, why: String) -> StartError {
    let files = [&common.ca, &common.cert, &common.key]
        .into_iter()
        .any(|pem| matches!(pem, Some(config::Pem::File(_))));
    let message = format!("{key}: {why}");
    if files {
        StartError::Machine(message)
    } else {
        StartError::Unsupported(message)
    }
}

/// The CPUs `shards.cpus` names, each one a CPU this process may run on. `all` is every CPU
/// the process may run on but the `irq_cpus`, or all of them where the `irq_cpus` are all of
/// them (a small machine, whose interrupts and shards share every CPU).
fn shard_cpus(shards: &config::Shards) -> Result<Vec<usize>, StartError> {
    match &shards.cpus {
        Cpus::All => {
            let allowed = runtime::allowed_cpus().map_err(|err| {
                StartError::Machine(format!(
                    "shards.cpus is `all`, but this process's CPU affinity cannot be read \
                     ({err}); list the CPUs instead (shards.cpus: [0, 1])"
                ))
            })?;
            Ok(shards.all_cpus_within(&allowed, tailgate_shards::route::SHARDS_MAX))
        }
        Cpus::List(list) => listed_cpus(list),
    }
}

/// The NUMA node of each shard CPU, for `numa_bind`; checks on this thread that the kernel lets
/// the process bind memory at all (a container's seccomp profile may not), so that a refusal is
/// a start-up error naming the setting rather than a warning from every shard.
fn memory_nodes(cpus: &[usize]) -> Result<Vec<usize>, StartError> {
    let machine = |why: String| StartError::Machine(format!("shards.numa_bind: {why}"));
    let layout = NumaLayout::read(&Tree::new(std::path::Path::new("/")));
    let nodes = cpus
        .iter()
        .map(|&cpu| match layout.node_of(cpu) {
            Some(node) => Ok(node),
            // A kernel without NUMA exposes no nodes: one memory domain, node 0.
            None if layout.nodes.is_empty() => Ok(0),
            None => Err(machine(format!(
                "CPU {cpu} is on no NUMA node in /sys/devices/system/node"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    tailgate_shards::numa::bind_thread_memory(nodes[0])
        .and_then(|()| tailgate_shards::numa::unbind_thread_memory())
        .map_err(|err| {
            machine(format!(
                "the kernel refuses to bind memory to a node (set_mempolicy: {err}); set \
                 numa_bind: false, or allow set_mempolicy (a container needs CAP_SYS_NICE \
                 or a seccomp profile that permits it)"
            ))
        })?;
    Ok(nodes)
}

/// The pipeline batcher's settings from its exporters' `sending_queue.batch`, when the pipeline
/// has no `batch` processor: tailgate batches once per pipeline, right before its exporters,
/// which is where the Collector's exporter batching sits. The exporters that batch must agree;
/// one that does not batch gets batches too (a warning says so). With a `batch` processor in the
/// pipeline, the processor's settings stand (a warning says the exporter's add nothing).
fn exporter_batching(
    config: &Config,
    pipeline: &config::Pipeline,
    has_batch_processor: bool,
) -> Result<Option<(BatcherSettings, Partitioning)>, StartError> {
    let mut batching: Vec<(&config::ComponentId, config::QueueBatch)> = Vec::new();
    let mut plain = Vec::new();
    for id in &pipeline.exporters {
        let queue = match config.exporters.by_id.get(id) {
            Some(config::Exporter::Otlp(e)) => &e.sending_queue,
            Some(config::Exporter::OtlpHttp(e)) => &e.sending_queue,
            // Connectors, debug and the load balancer have no exporter batching.
            _ => continue,
        };
        match &queue.batch {
            Some(batch) => batching.push((id, batch.clone())),
            None => plain.push(id.to_string()),
        }
    }
    let Some((first_id, first)) = batching.first() else {
        return Ok(None);
    };
    let name = pipeline.id.to_string();
    if has_batch_processor {
        tracing::warn!(
            "pipeline {name}: its batch processor batches for every exporter; \
             sending_queue.batch of exporter {first_id} adds nothing here (the Collector would \
             batch a second time)"
        );
        return Ok(None);
    }
    if let Some((other, _)) = batching.iter().find(|(_, b)| b != first) {
        return Err(StartError::Unsupported(format!(
            "pipeline {name}: exporters {first_id} and {other} batch differently \
             (sending_queue.batch); tailgate batches once per pipeline, before its exporters: \
             give them the same settings, or use the batch processor"
        )));
    }
    if !plain.is_empty() {
        tracing::warn!(
            "pipeline {name}: exporter {first_id}'s sending_queue.batch batches the pipeline, so \
             {} get(s) batches too",
            plain.join(", ")
        );
    }
    let partitioning = if first.partition_keys.is_empty() {
        Partitioning::Keep
    } else {
        Partitioning::Keys(
            first
                .partition_keys
                .iter()
                .map(|k| Box::from(k.as_str()))
                .collect(),
        )
    };
    Ok(Some((
        BatcherSettings {
            send_batch_size: first.min_size,
            send_batch_max_size: first.max_size,
            timeout: first.flush_timeout,
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
        },
        partitioning,
    )))
}

/// A periodic reader: its client's settings (TLS files read), interval and bound.
#[derive(Debug, Clone)]
pub(crate) struct PushPlan {
    /// `telemetry reader N (ENDPOINT)`, for logs.
    pub label: String,
    pub settings: ExporterSettings,
    pub interval: Duration,
    pub timeout: Duration,
}

/// The periodic readers of `service.telemetry.metrics.readers`; each TLS configuration is
/// added to `tls`.
fn pushes(config: &Config, tls: &mut Vec<Arc<dyn Reload>>) -> Result<Vec<PushPlan>, StartError> {
    let mut out = Vec::new();
    for (i, push) in config.service.telemetry.metrics.pushes.iter().enumerate() {
        let label = format!("telemetry reader {i} ({})", push.endpoint);
        let settings = push_client(
            &label,
            &format!("service.telemetry.metrics.readers[{i}].periodic.exporter.otlp"),
            PushClient {
                protocol: push.protocol,
                endpoint: &push.endpoint,
                tls: push.tls.as_ref(),
                gzip: push.gzip,
                headers: &push.headers,
                timeout: push.timeout,
                signal: Signal::Metrics,
            },
            tls,
        )?;
        out.push(PushPlan {
            label,
            settings,
            interval: push.interval,
            timeout: push.timeout,
        });
    }
    Ok(out)
}

/// One log processor (`service.telemetry.logs.processors[]`): its client and batching.
#[derive(Debug, Clone)]
pub(crate) struct LogExportPlan {
    /// `telemetry log processor N (ENDPOINT)`, for logs.
    pub label: String,
    /// The OTLP client; `None`: the console (standard output).
    pub settings: Option<ExporterSettings>,
    pub schedule_delay: Duration,
    pub timeout: Duration,
    pub batch_size: usize,
}

/// The log processors of `service.telemetry.logs.processors`; each TLS configuration is added
/// to `tls`.
fn log_exports(
    config: &Config,
    tls: &mut Vec<Arc<dyn Reload>>,
) -> Result<Vec<LogExportPlan>, StartError> {
    let mut out = Vec::new();
    for (i, export) in config.service.telemetry.logs.exports.iter().enumerate() {
        let label = format!("telemetry log processor {i} ({})", export.endpoint);
        if export.console {
            out.push(LogExportPlan {
                label,
                settings: None,
                schedule_delay: export.schedule_delay,
                timeout: export.timeout,
                batch_size: export.max_export_batch_size,
            });
            continue;
        }
        let settings = push_client(
            &label,
            &format!(
                "service.telemetry.logs.processors[{i}].{}.exporter.otlp",
                // A batch processor's delay is 1 ms at least; a simple one's none.
                if export.schedule_delay.is_zero() {
                    "simple"
                } else {
                    "batch"
                }
            ),
            PushClient {
                protocol: export.protocol,
                endpoint: &export.endpoint,
                tls: export.tls.as_ref(),
                gzip: export.gzip,
                headers: &export.headers,
                timeout: export.timeout,
                signal: Signal::Logs,
            },
            tls,
        )?;
        out.push(LogExportPlan {
            label,
            settings: Some(settings),
            schedule_delay: export.schedule_delay,
            timeout: export.timeout,
            batch_size: export.max_export_batch_size,
        });
    }
    Ok(out)
}

/// What a periodic reader's or log processor's client is made of.
struct PushClient<'a> {
    protocol: config::PushProtocol,
    endpoint: &'a str,
    tls: Option<&'a config::TlsClientSettings>,
    gzip: bool,
    headers: &'a [(String, String)],
    timeout: Duration,
    signal: Signal,
}

/// The client settings of a push (`label`, configured at `key`), its TLS files read and added
/// to `tls`; building the client is tried once here, as every exporter's is at start.
fn push_client(
    label: &str,
    key: &str,
    push: PushClient<'_>,
    tls: &mut Vec<Arc<dyn Reload>>,
) -> Result<ExporterSettings, StartError> {
    let alpn = match push.protocol {
        config::PushProtocol::Grpc => crate::tls::ALPN_H2,
        config::PushProtocol::HttpProtobuf => crate::tls::ALPN_HTTP1,
    };
    let client_tls = match push.tls {
        Some(settings) => {
            let loaded = ClientTls::load(label.to_string(), settings.clone(), alpn)
                .map_err(|why| tls_error(key, &settings.common, why))?;
            tls.push(loaded.clone());
            Some(loaded)
        }
        None => None,
    };
    let compression = if push.gzip {
        crate::export::Compression::Gzip
    } else {
        crate::export::Compression::None
    };
    let settings = match push.protocol {
        config::PushProtocol::Grpc => ExporterSettings::Otlp(OtlpGrpcSettings {
            endpoint: push.endpoint.to_string(),
            tls: client_tls,
            headers: push.headers.to_vec(),
            compression,
            timeout: push.timeout,
            ..OtlpGrpcSettings::default()
        }),
        config::PushProtocol::HttpProtobuf => {
            let mut http = OtlpHttpSettings {
                tls: client_tls,
                headers: push.headers.to_vec(),
                compression,
                timeout: push.timeout,
                ..OtlpHttpSettings::default()
            };
            match push.signal {
                Signal::Metrics => http.metrics_endpoint = Some(push.endpoint.to_string()),
                Signal::Logs => http.logs_endpoint = Some(push.endpoint.to_string()),
                Signal::Traces => http.traces_endpoint = Some(push.endpoint.to_string()),
            }
            ExporterSettings::OtlpHttp(http)
        }
    };
    // What only building the client checks (a proxy variable it cannot use): at start, as for
    // every exporter, not in the pusher's thread once running.
    crate::export::OneShot::new(&settings)
        .map_err(|err| StartError::Machine(format!("{label}: {err}")))?;
    Ok(settings)
}

/// An enabled `health_check` extension.
#[derive(Debug, Clone)]
pub(crate) struct HealthCheckPlan {
    pub addr: SocketAddr,
    pub config: config::HealthCheck,
    /// Its TLS, files read (and added to the reloaded set).
    pub tls: Option<Arc<ServerTls>>,
}

/// The `health_check` extensions `service.extensions` enables, with their addresses; each TLS
/// configuration is added to `tls`, the set certificate rotation watches.
fn health_checks(
    config: &Config,
    tls: &mut Vec<Arc<dyn Reload>>,
) -> Result<Vec<HealthCheckPlan>, StartError> {
    let mut out = Vec::new();
    for id in &config.service.extensions {
        if let Some(config::Extension::HealthCheck(health_check)) = config.extensions.get(id) {
            let served = match &health_check.tls {
                Some(settings) => {
                    let loaded = ServerTls::load(
                        format!("extension {id}"),
                        (**settings).clone(),
                        crate::tls::ALPN_HTTP1,
                    )
                    .map_err(|why| {
                        tls_error(&format!("extensions.{id}.tls"), &settings.common, why)
                    })?;
                    tls.push(loaded.clone());
                    Some(loaded)
                }
                None => None,
            };
            out.push(HealthCheckPlan {
                addr: resolve(&health_check.endpoint)?,
                config: health_check.clone(),
                tls: served,
            });
        }
    }
    Ok(out)
}

fn resolve(endpoint: &config::Endpoint) -> Result<SocketAddr, StartError> {
    let unresolved = |why: String| {
        StartError::Machine(format!(
            "the listen address {endpoint} does not resolve on this machine{why}"
        ))
    };
    format!("{}:{}", endpoint.host, endpoint.port)
        .to_socket_addrs()
        .map_err(|err| unresolved(format!(": {err}")))?
        .next()
        .ok_or_else(|| unresolved(String::new()))
}

/// `shards.cpus` as listed, each one a CPU this process may run on.
fn listed_cpus(list: &[u16]) -> Result<Vec<usize>, StartError> {
    let cpus: Vec<usize> = list.iter().map(|&cpu| usize::from(cpu)).collect();
    // Without a readable mask, pinning the shard itself reports a CPU that is not there.
    let Ok(allowed) = runtime::allowed_cpus() else {
        return Ok(cpus);
    };
    let missing: Vec<usize> = cpus
        .iter()
        .filter(|c| !allowed.contains(c))
        .copied()
        .collect();
    if missing.is_empty() {
        return Ok(cpus);
    }
    Err(StartError::Machine(format!(
        "shards.cpus lists CPU(s) {missing:?}, which this process may not run on here (it may \
         run on {allowed:?}); list CPUs of this machine, or write `all`"
    )))
}

/// Prometheus label names and values for `target_info` from resource attributes, as the
/// OpenTelemetry Prometheus exporter writes them: every character outside `[A-Za-z0-9_]`
/// becomes `_`, a name starting with a digit gets a `_` in front, and values whose names meet
/// are joined with `;`.
pub(crate) fn target_info(attributes: &[(String, String)]) -> Vec<(String, String)> {
    let mut labels: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for (name, value) in attributes {
        let mut label: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if label.starts_with(|c: char| c.is_ascii_digit()) {
            label.insert(0, '_');
        }
        labels
            .entry(label)
            .and_modify(|joined| {
                joined.push(';');
                joined.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    labels.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config whose pipelines are listed downstream first, so file order is the wrong one.
    const CHAINED: &str = "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  debug:
connectors:
  routing:
    default_pipelines: [traces/central]
    table:
      - condition: attributes[\"tenant\"] == \"acme\"
        pipelines: [traces/acme]
  failover:
    priority_levels: [[traces/backup2], [traces/backup]]
service:
  pipelines:
    traces/backup:
      receivers: [failover]
      exporters: [debug]
    traces/backup2:
      receivers: [failover]
      exporters: [debug]
    traces/central:
      receivers: [routing]
      exporters: [failover]
    traces/acme:
      receivers: [routing]
      exporters: [debug]
    traces/in:
      receivers: [otlp]
      exporters: [routing]
  telemetry:
    metrics:
      address: 127.0.0.1:0
shards:
  cpus: [0]
";

    #[test]
    fn pipelines_drain_before_those_their_connectors_feed_and_levels_in_priority() {
        let config = Config::from_yaml(CHAINED, "test.yaml").expect("valid");
        let plan = Plan::from_config(&config).expect("a plan");
        let order: Vec<&str> = plan
            .order
            .iter()
            .map(|&p| plan.pipelines[p].name.as_str())
            .collect();
        let at = |name: &str| order.iter().position(|n| *n == name).unwrap();
        assert!(at("traces/in") < at("traces/central"), "{order:?}");
        assert!(at("traces/in") < at("traces/acme"), "{order:?}");
        assert!(at("traces/central") < at("traces/backup2"), "{order:?}");
        assert!(at("traces/backup2") < at("traces/backup"), "{order:?}");
        let entry: Vec<&str> = plan
            .pipelines
            .iter()
            .filter(|p| p.entry)
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(entry, ["traces/in"]);
        assert_eq!(plan.connectors.len(), 2);
        let ConnectorKind::Failover { levels, .. } = &plan
            .connectors
            .iter()
            .find(|c| c.name == "failover")
            .unwrap()
            .kind
        else {
            panic!("a failover plan");
        };
        let names: Vec<Vec<&str>> = levels
            .iter()
            .map(|l| l.iter().map(|&p| plan.pipelines[p].name.as_str()).collect())
            .collect();
        assert_eq!(names, [["traces/backup2"], ["traces/backup"]]);
    }

    const TENANTS: &str = "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
      http:
        endpoint: 127.0.0.1:4318
        include_metadata: true
processors:
  batch:
    metadata_keys: [X-Tenant]
  batch/unlimited:
    metadata_keys: [x-tenant]
    metadata_cardinality_limit: 0
  batch/plain:
connectors:
  routing:
    default_pipelines: [logs/b]
    table:
      - context: request
        condition: request[\"X-Route\"] == \"a\"
        pipelines: [logs/a]
extensions:
  headers_setter:
    headers:
      - key: X-Scope-OrgID
        from_context: X-Org
exporters:
  debug:
  otlp:
    endpoint: 127.0.0.1:9
    auth:
      authenticator: headers_setter
service:
  extensions: [headers_setter]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
    metrics:
      receivers: [otlp]
      processors: [batch/unlimited]
      exporters: [debug]
    logs:
      receivers: [otlp]
      exporters: [routing]
    logs/a:
      receivers: [routing]
      processors: [batch/plain]
      exporters: [debug]
    logs/b:
      receivers: [routing]
      exporters: [debug]
  telemetry:
    metrics:
      address: 127.0.0.1:0
shards:
  cpus: [0]
";

    #[test]
    fn receivers_keep_what_is_read_and_limits_go_to_the_pipelines_they_feed() {
        let config = Config::from_yaml(TENANTS, "test.yaml").expect("valid");
        let plan = Plan::from_config(&config).expect("a plan");
        let receiver = &plan.receivers[0];
        let kept = |capture: &Option<Arc<Capture>>| {
            capture.as_deref().map(|c| {
                c.from_headers(
                    [("x-tenant", &b"t"[..]), ("x-route", b"r"), ("x-org", b"o")].into_iter(),
                )
                .entries()
                .iter()
                .map(|(k, _)| k.to_string())
                .collect::<Vec<_>>()
            })
        };
        let (grpc, http) = (
            &receiver.grpc.as_ref().expect("grpc").1.capture,
            &receiver.http.as_ref().expect("http").1.capture,
        );
        assert_eq!(
            kept(http),
            Some(vec!["x-org".into(), "x-route".into(), "x-tenant".into()]),
            "include_metadata: every key something reads"
        );
        assert_eq!(
            kept(grpc),
            Some(vec!["x-route".into()]),
            "without include_metadata, gRPC keeps the request routes' keys only"
        );
        let admitted: Vec<(Signal, usize)> = plan
            .admissions
            .iter()
            .map(|(signal, a)| (*signal, a.admitted()))
            .collect();
        assert_eq!(admitted, [(Signal::Traces, 0)], "limit 0 keeps nothing");
        let by_name = |name: &str| {
            plan.pipelines
                .iter()
                .find(|p| p.name == name)
                .expect(name)
                .partitioning
                .clone()
        };
        assert_eq!(
            by_name("traces"),
            Partitioning::Keys(vec![Box::from("x-tenant")])
        );
        assert_eq!(by_name("logs"), Partitioning::Keep);
        assert_eq!(by_name("logs/a"), Partitioning::Drop);
        let setter = plan.pipelines[0]
            .exporters
            .iter()
            .find_map(|(_, e)| match e {
                ExporterSettings::Otlp(otlp) => otlp.setter.clone(),
                _ => None,
            });
        assert!(setter.is_some(), "the otlp exporter sets headers");
        // What a reload compares: the same configuration, the same; another key, not.
        assert_eq!(metadata_settings(&config), metadata_settings(&config));
        let other = Config::from_yaml(
            &TENANTS.replace("from_context: X-Org", "from_context: X-Team"),
            "test.yaml",
        )
        .expect("valid");
        assert_ne!(metadata_settings(&config), metadata_settings(&other));
    }

    /// A pipeline that tail samples keeps each span's tenant to its batcher, so its `batch`
    /// processor's cardinality limit admits its requests as any pipeline's does.
    #[test]
    fn a_sampled_pipelines_cardinality_limit_admits_its_requests() {
        let sampled = TENANTS
            .replace(
                "processors:\n  batch:\n",
                "processors:\n  tail_sampling:\n    policies:\n      - name: all\n        type: always_sample\n  batch:\n",
            )
            .replace(
                "      processors: [batch]\n      exporters: [otlp]",
                "      processors: [tail_sampling, batch]\n      exporters: [otlp]",
            );
        let config = Config::from_yaml(&sampled, "test.yaml").expect("valid");
        let plan = Plan::from_config(&config).expect("starts");
        let traces = plan.pipelines.iter().find(|p| p.name == "traces").unwrap();
        assert!(traces.sampling.is_some(), "the traces pipeline samples");
        assert_eq!(
            traces.partitioning,
            Partitioning::Keys(vec![Box::from("x-tenant")])
        );
        let signals: Vec<Signal> = plan.admissions.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            signals,
            [Signal::Traces],
            "the sampled pipeline's limit admits"
        );
    }

    #[test]
    fn a_tier_node_forwards_client_metadata_to_grpc_receivers_that_keep_it() {
        let tier = "tier:
  resolver:
    static:
      hostnames: [\"127.0.0.1:4317\", \"127.0.0.2:4317\"]
  protocol:
    otlp:
      tls:
        insecure: true
";
        // The gRPC protocol, where members forward to, keeps none: refused, with the reason.
        let config = Config::from_yaml(&format!("{TENANTS}{tier}"), "test.yaml").expect("valid");
        let Err(err) = Plan::from_config(&config) else {
            panic!("a tier node whose gRPC receiver keeps no metadata starts");
        };
        let err = err.to_string();
        assert!(err.contains("receivers.otlp.protocols.grpc"), "{err}");
        assert!(err.contains("x-org, x-route, x-tenant"), "{err}");
        // Kept there too: the forwarder passes each batch's metadata on.
        let both = TENANTS.replace(
            "endpoint: 127.0.0.1:4317\n",
            "endpoint: 127.0.0.1:4317\n        include_metadata: true\n",
        );
        let config = Config::from_yaml(&format!("{both}{tier}"), "test.yaml").expect("valid");
        let plan = Plan::from_config(&config).expect("a tier node that keeps metadata starts");
        assert!(plan.tier.expect("a tier").otlp.pass_metadata);
        // A key the forward request sets itself cannot travel as metadata.
        let agent = both.replace("from_context: X-Org", "from_context: User-Agent");
        let config = Config::from_yaml(&format!("{agent}{tier}"), "test.yaml").expect("valid");
        let Err(err) = Plan::from_config(&config) else {
            panic!("a tier node forwarding user-agent as metadata starts");
        };
        assert!(
            err.to_string().contains("client metadata key user-agent"),
            "{err}"
        );
        // No metadata kept: nothing passed.
        let none = TENANTS.replace("        include_metadata: true\n", "");
        let none = none.replace("context: request", "context: resource");
        let none = none.replace(r#"request["X-Route"]"#, r#"attributes["route"]"#);
        let config = Config::from_yaml(&format!("{none}{tier}"), "test.yaml").expect("valid");
        let plan = Plan::from_config(&config).expect("starts");
        assert!(!plan.tier.expect("a tier").otlp.pass_metadata);
    }
}
