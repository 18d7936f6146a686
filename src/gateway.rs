//! Starting and stopping the gateway: from a [`Config`] to running shards, and back.
//!
//! Start-up happens on the main thread: the configuration becomes a [`Plan`] (plain values,
//! cloned into every shard), every shard's metric cells are registered in one registry (which is
//! read-only from then on), the admin server starts, and one shard per configured CPU is spawned.
//! Each shard then builds its own pipelines, exporters and receivers on its own executor, binds
//! its own SO_REUSEPORT listeners, and reports itself up.
//!
//! Shutdown (SIGTERM or SIGINT) runs in every shard in the same order, each step bounded by
//! [`DRAIN_TIMEOUT`]: stop accepting; let in-flight requests finish; close this shard's mesh
//! senders and wait until every peer has closed its own (so every span routed here has
//! arrived); flush the batchers; drain the exporters' queues, counting anything still unsent at
//! the deadline as dropped with reason `shutdown`. Then the process exits 0.

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tailgate_shards::runtime::{self, Shard};
use tailgate_shards::sync::Stop;

use crate::config::{
    self, Config, Cpus, Exporter as ExporterConfig, MemoryLimit, MemoryLimiter, MetricsLevel,
    Processor, TailSampling,
};
use crate::export::{
    self, Batcher, BatcherSettings, DebugSettings, ExportObserver, Exporter, ExporterSettings,
    OtlpGrpcSettings, OtlpHttpSettings, Pipeline, QueueSettings, RetrySettings,
    MAX_BATCH_BYTES_DEFAULT,
};
use crate::ingest::accept::{
    listen, open_files_limit, ConnectionBudget, CONNECTIONS_PER_LISTENER_MAX,
};
use crate::ingest::grpc::{GrpcReceiver, GrpcSettings};
use crate::ingest::http::{HttpReceiver, HttpSettings};
use crate::ingest::{Deliver, Delivery, Ingest, Limits};
use crate::lifecycle;
use crate::memory::{Overload, ShardMemory};
use crate::sampling::{PolicySet, Sampler, SamplerSettings};
use crate::telemetry::{
    AdminServer, DropMetrics, DropReason, ExporterMetrics, Health, ReceiverMetrics,
    RegistryBuilder, SamplingMetrics, ShardMetrics,
};
use tailgate_wire::Signal;

/// How long each shutdown step may take before the gateway moves on.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the gateway could not start.
#[derive(Debug)]
pub enum StartError {
    /// The configuration asks for something this build does not do.
    Unsupported(String),
    /// The machine cannot give what the configuration asks (CPUs, the memory size, a name
    /// that resolves): the same file may be right for another machine, so `check-config`
    /// reports these as notes.
    Machine(String),
    /// A thread or the signal handlers could not be set up, or a shard failed (see the log).
    Io(io::Error),
    /// A listener could not bind its address.
    Bind {
        /// Which listener, with the key that sets its address.
        listener: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    /// A shard failed while running (it panicked): the gateway stopped, fail-stop.
    ShardFailed(io::Error),
}

impl StartError {
    /// The process exit status this error ends the gateway with.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::ShardFailed(_) => lifecycle::FATAL_EXIT_CODE as u8,
            _ => 1,
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Unsupported(what) | StartError::Machine(what) => f.write_str(what),
            StartError::Io(err) => write!(f, "{err}"),
            StartError::ShardFailed(err) => write!(f, "stopped after a fatal error: {err}"),
            StartError::Bind {
                listener,
                addr,
                source,
            } => {
                write!(f, "{listener}: cannot listen on {addr}: {source}")?;
                if source.kind() == io::ErrorKind::AddrInUse {
                    f.write_str("; stop what listens there, or choose another address")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for StartError {}

impl From<io::Error> for StartError {
    fn from(err: io::Error) -> Self {
        StartError::Io(err)
    }
}

/// One OTLP receiver instance (`otlp`, `otlp/NAME`) and what it listens on.
#[derive(Debug, Clone)]
struct ReceiverPlan {
    name: String,
    grpc: Option<(SocketAddr, GrpcSettings)>,
    http: Option<(SocketAddr, HttpSettings)>,
}

/// `Signal` as an ordered key.
type SignalKey = u8;

fn key(signal: Signal) -> SignalKey {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

/// One pipeline: its tail sampling, its batching and its exporters.
#[derive(Debug, Clone)]
struct PipelinePlan {
    signal: Signal,
    sampling: Option<SamplingPlan>,
    batch: BatcherSettings,
    exporters: Vec<(String, ExporterSettings)>,
}

/// A traces pipeline's `tail_sampling`, with each shard's share of its limits.
#[derive(Debug, Clone)]
struct SamplingPlan {
    config: TailSampling,
    settings: SamplerSettings,
}

/// The node's memory budget without a `memory_limiter` in any pipeline: half the machine's (or
/// the cgroup's) memory, with the Collector's default spike allowance of a fifth of the limit.
const DEFAULT_LIMIT_PERCENTAGE: u64 = 50;

/// The (soft, hard) byte limits of a `memory_limiter` (refusing starts at `limit - spike` in the
/// Collector; here that is where the trace buffer's early decisions start, and the limit itself,
/// counting the exporters' batches too, is where refusing starts).
fn byte_limits(limiter: Option<&MemoryLimiter>) -> Result<(u64, u64), StartError> {
    const MIB: u64 = 1 << 20;
    let of_total = |percent: u64| -> Result<u64, StartError> {
        let total = crate::host::memory_bytes().ok_or_else(|| {
            StartError::Machine(
                "cannot read the machine's memory size (/proc/meminfo) to size the memory \
                 budget; give memory_limiter a limit_mib"
                    .to_string(),
            )
        })?;
        Ok(total / 100 * percent)
    };
    let (hard, spike) = match limiter.map(|l| l.limit) {
        Some(MemoryLimit::Mib {
            limit_mib,
            spike_limit_mib,
        }) => (u64::from(limit_mib) * MIB, u64::from(spike_limit_mib) * MIB),
        Some(MemoryLimit::Percentage {
            limit_percentage,
            spike_limit_percentage,
        }) => (
            of_total(u64::from(limit_percentage))?,
            of_total(u64::from(spike_limit_percentage))?,
        ),
        None => {
            let hard = of_total(DEFAULT_LIMIT_PERCENTAGE)?;
            (hard, hard / 5)
        }
    };
    Ok((hard.saturating_sub(spike), hard))
}

/// The node's (soft, hard) memory budget: the tightest `memory_limiter` any pipeline names (the
/// Collector's limiters each watch the whole process, so the lowest one is the one that binds),
/// or the default share of memory. Without a limiter and without a readable memory size, the
/// budget is unbounded unless traces are sampled, whose buffers need one.
fn memory_budget(config: &Config) -> Result<(u64, u64), StartError> {
    let mut tightest: Option<(u64, u64)> = None;
    for pipeline in &config.service.pipelines {
        for id in &pipeline.processors {
            if let Some(Processor::MemoryLimiter(limiter)) = config.processors.by_id.get(id) {
                let limits = byte_limits(Some(limiter))?;
                if tightest.is_none_or(|(_, hard)| limits.1 < hard) {
                    tightest = Some(limits);
                }
            }
        }
    }
    match (tightest, byte_limits(None)) {
        (Some(limits), _) | (None, Ok(limits)) => Ok(limits),
        (None, Err(err)) => {
            let samples = config
                .processors
                .by_id
                .values()
                .any(|p| matches!(p, Processor::TailSampling(_)));
            if samples {
                return Err(err);
            }
            tracing::warn!("{err}; the memory budget is unbounded");
            Ok((u64::MAX, u64::MAX))
        }
    }
}

/// Everything a shard needs to build itself, as plain values.
#[derive(Debug, Clone)]
struct Plan {
    cpus: Vec<usize>,
    channel_capacity: usize,
    receivers: Vec<ReceiverPlan>,
    pipelines: Vec<PipelinePlan>,
    /// The node's memory budget in bytes, split evenly across shards (see [`crate::memory`]).
    memory_limit: u64,
    admin: SocketAddr,
}

impl Plan {
    /// Caps every listener's connections so that all of them together cannot exhaust the
    /// process's descriptors ([`ConnectionBudget`]); says so in the log.
    fn budget_connections(&mut self) -> Result<(), StartError> {
        let listeners = self.cpus.len()
            * self
                .receivers
                .iter()
                .map(|r| usize::from(r.grpc.is_some()) + usize::from(r.http.is_some()))
                .sum::<usize>();
        let exporters: usize = self.pipelines.iter().map(|p| p.exporters.len()).sum();
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
            if let Some((_, grpc)) = &mut receiver.grpc {
                grpc.limits.connections_max = budget.per_listener;
            }
            if let Some((_, http)) = &mut receiver.http {
                http.limits.connections_max = budget.per_listener;
            }
        }
        Ok(())
    }
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

fn retry(config: &config::RetryOnFailure) -> RetrySettings {
    RetrySettings {
        enabled: config.enabled,
        initial_interval: config.initial_interval,
        multiplier: config.multiplier,
        randomization_factor: config.randomization_factor,
        max_interval: config.max_interval,
        // The Collector reads 0 as "retry forever"; tailgate keeps every loop bounded, so no
        // limit becomes the longest the Collector documents as a default, an hour.
        max_elapsed_time: config.max_elapsed_time.unwrap_or(Duration::from_secs(3600)),
    }
}

/// The Collector's queue figures are per exporter; tailgate runs one exporter instance per
/// shard, so each gets its share, and the node holds what the configuration says.
fn queue(config: &config::SendingQueue, shards: usize) -> QueueSettings {
    QueueSettings {
        enabled: config.enabled,
        num_consumers: (config.num_consumers as usize).div_ceil(shards).max(1),
        queue_size: (config.queue_size as usize).div_ceil(shards).max(1),
    }
}

fn compression(config: config::Compression) -> export::Compression {
    match config {
        config::Compression::None => export::Compression::None,
        config::Compression::Gzip => export::Compression::Gzip,
        config::Compression::Zstd => export::Compression::Zstd,
    }
}

fn exporter_settings(config: &ExporterConfig, shards: usize) -> ExporterSettings {
    match config {
        ExporterConfig::Otlp(otlp) => ExporterSettings::Otlp(OtlpGrpcSettings {
            endpoint: otlp.endpoint.to_string(),
            headers: otlp.headers.clone().into_iter().collect(),
            compression: compression(otlp.compression),
            timeout: otlp.timeout,
            retry: retry(&otlp.retry_on_failure),
            queue: queue(&otlp.sending_queue, shards),
        }),
        ExporterConfig::OtlpHttp(http) => {
            let url = |signal| http.url(signal).map(ToString::to_string);
            ExporterSettings::OtlpHttp(OtlpHttpSettings {
                endpoint: url(Signal::Traces).unwrap_or_default(),
                traces_endpoint: url(Signal::Traces),
                metrics_endpoint: url(Signal::Metrics),
                logs_endpoint: url(Signal::Logs),
                headers: http.headers.clone().into_iter().collect(),
                compression: compression(http.compression),
                encoding: match http.encoding {
                    config::Encoding::Proto => export::Encoding::Proto,
                    config::Encoding::Json => export::Encoding::Json,
                },
                timeout: http.timeout,
                retry: retry(&http.retry_on_failure),
                queue: queue(&http.sending_queue, shards),
            })
        }
        ExporterConfig::Debug(debug) => ExporterSettings::Debug(DebugSettings {
            verbosity: match debug.verbosity {
                config::Verbosity::Basic => export::Verbosity::Basic,
                config::Verbosity::Normal => export::Verbosity::Normal,
                config::Verbosity::Detailed => export::Verbosity::Detailed,
            },
            // The Collector's figure is per second for the process; each shard prints its share.
            sampling_initial: u64::from(debug.sampling_initial).div_ceil(shards as u64),
            sampling_thereafter: u64::from(debug.sampling_thereafter),
        }),
    }
}

impl Plan {
    fn from_config(config: &Config) -> Result<Plan, StartError> {
        let cpus = match &config.shards.cpus {
            Cpus::All => runtime::all_cpus().map_err(|err| {
                StartError::Machine(format!(
                    "shards.cpus is `all`, but this process's CPU affinity cannot be read \
                     ({err}); list the CPUs instead (shards.cpus: [0, 1])"
                ))
            })?,
            Cpus::List(list) => listed_cpus(list)?,
        };
        // The receivers some pipeline takes, by signal (the configuration checked that the
        // pipelines of one signal take the same ones).
        let mut receivers_of: [Option<BTreeSet<String>>; 3] = Default::default();
        let (soft, memory_limit) = memory_budget(config)?;
        let mut pipelines = Vec::new();
        for pipeline in &config.service.pipelines {
            let signal = pipeline.id.signal;
            receivers_of[key(signal) as usize] =
                Some(pipeline.receivers.iter().map(ToString::to_string).collect());
            let mut sampling = None;
            let mut batch = BatcherSettings {
                send_batch_size: 1,
                send_batch_max_size: 0,
                timeout: Duration::ZERO,
                max_batch_bytes: MAX_BATCH_BYTES_DEFAULT,
            };
            for id in &pipeline.processors {
                match config.processors.by_id.get(id) {
                    Some(Processor::Batch(b)) => {
                        batch = BatcherSettings {
                            send_batch_size: u64::from(b.send_batch_size),
                            send_batch_max_size: b.send_batch_max_size.map_or(0, u64::from),
                            timeout: b.timeout,
                            max_batch_bytes: MAX_BATCH_BYTES_DEFAULT,
                        }
                    }
                    // The configuration checked that one pipeline at most samples.
                    Some(Processor::TailSampling(config)) => sampling = Some(config.clone()),
                    // Counted once for the node, in `memory_budget`.
                    Some(Processor::MemoryLimiter(_)) | None => {}
                }
            }
            let sampling = match sampling {
                Some(config) => {
                    PolicySet::new(&config, cpus.len())
                        .map_err(|err| StartError::Unsupported(err.to_string()))?;
                    Some(SamplingPlan {
                        settings: SamplerSettings::for_shard(&config, soft, cpus.len()),
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
                let settings = exporter_settings(exporter, cpus.len());
                // What each shard's `Exporter::new` would refuse, refused once, before any starts.
                Exporter::check(&settings)
                    .map_err(|err| StartError::Unsupported(format!("exporters.{id}: {err}")))?;
                exporters.push((id.to_string(), settings));
            }
            pipelines.push(PipelinePlan {
                signal,
                sampling,
                batch,
                exporters,
            });
        }
        let mut receivers = Vec::new();
        for (id, receiver) in &config.receivers.by_id {
            let config::Receiver::Otlp(otlp) = receiver;
            let name = id.to_string();
            // A receiver no pipeline takes from is not started, as in the Collector.
            if !receivers_of
                .iter()
                .any(|names| names.as_ref().is_some_and(|n| n.contains(&name)))
            {
                continue;
            }
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
                    },
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
                    },
                )),
                None => None,
            };
            receivers.push(ReceiverPlan { name, grpc, http });
        }
        Ok(Plan {
            cpus,
            channel_capacity: config.shards.channel_capacity as usize,
            receivers,
            pipelines,
            memory_limit,
            admin: resolve(&config.service.telemetry.metrics.address)?,
        })
    }
}

/// One shard's metric cells, registered on the main thread before the shards start.
struct ShardTelemetry {
    receivers: Vec<(ReceiverMetrics, ReceiverMetrics)>,
    shard: ShardMetrics,
    sampling: Option<SamplingMetrics>,
    exporters: Vec<ExporterMetrics>,
    drops: DropMetrics,
}

/// Feeds an exporter's outcomes into its metrics and the shard's drop counters.
struct Observer {
    metrics: ExporterMetrics,
    drops: DropMetrics,
    signal: Signal,
    memory: Rc<ShardMemory>,
}

impl ExportObserver for Observer {
    fn sent(&self, signal: Signal, items: u64) {
        self.metrics.signal(signal).sent.add(items);
    }

    fn send_failed(&self, signal: Signal, items: u64, reason: &'static str) {
        let cells = self.metrics.signal(signal);
        let reason = match reason {
            export::reason::NOT_QUEUED => {
                cells.enqueue_failed.add(items);
                DropReason::Shutdown
            }
            export::reason::SHUTDOWN => {
                cells.send_failed.add(items);
                DropReason::Shutdown
            }
            _ => {
                cells.send_failed.add(items);
                DropReason::ExportFailed
            }
        };
        self.drops.add(signal, reason, items);
    }

    fn queue_len(&self, len: usize) {
        self.metrics.signal(self.signal).queue_size.set(len as i64);
    }

    fn holding(&self, delta: i64) {
        self.memory.exporting(delta);
    }
}

/// One pipeline of a shard: straight into its batcher, or through the tail sampler first.
enum Stage {
    Direct(Pipeline),
    Sampled(Rc<Sampler>),
}

/// A shard's pipelines, as the receivers' [`Deliver`].
struct Pipelines {
    by_signal: [Vec<Stage>; 3],
    drops: DropMetrics,
}

impl Deliver for Pipelines {
    fn deliver(&self, delivery: Delivery) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(async move {
            for stage in &self.by_signal[key(delivery.signal) as usize] {
                let pipeline = match stage {
                    Stage::Sampled(sampler) => {
                        sampler.accept(&delivery.bytes, delivery.items).await;
                        continue;
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
                    self.drops
                        .add(delivery.signal, DropReason::Shutdown, delivery.items);
                }
            }
        })
    }
}

/// What `check-config` says about running `config` here: the start-up checks that depend on
/// the machine (the same [`Plan`] start-up makes: CPUs, memory size, name resolution), and
/// whether each listen address can be bound now. Each problem is a note, since the file may be
/// meant for another machine; an error is a problem with the configuration itself.
pub fn check_on_this_machine(config: &Config) -> Result<Vec<String>, StartError> {
    let plan = match Plan::from_config(config) {
        Ok(plan) => plan,
        Err(StartError::Machine(note)) => return Ok(vec![note]),
        Err(err) => return Err(err),
    };
    let mut listeners = vec![(
        "the admin endpoint (service.telemetry.metrics.address)".to_string(),
        plan.admin,
    )];
    for receiver in &plan.receivers {
        let name = &receiver.name;
        listeners.extend(
            receiver
                .grpc
                .iter()
                .map(|(a, _)| (format!("receiver {name} gRPC"), *a)),
        );
        listeners.extend(
            receiver
                .http
                .iter()
                .map(|(a, _)| (format!("receiver {name} HTTP"), *a)),
        );
    }
    let mut notes = Vec::new();
    for (listener, addr) in listeners {
        // Port 0 takes any free port; the probe's listener closes at once.
        if addr.port() != 0 {
            if let Err(err) = std::net::TcpListener::bind(addr) {
                notes.push(format!("{listener} cannot listen on {addr} now: {err}"));
            }
        }
    }
    Ok(notes)
}

/// Runs the gateway until SIGTERM or SIGINT; returns once it has drained.
pub fn run(config: &Config) -> Result<(), StartError> {
    let mut plan = Plan::from_config(config)?;
    let shard_count = plan.cpus.len();
    lifecycle::raise_open_files_limit();
    plan.budget_connections()?;

    let mut builder = RegistryBuilder::new();
    let exporter_names: Vec<String> = plan
        .pipelines
        .iter()
        .flat_map(|p| p.exporters.iter().map(|(name, _)| name.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let telemetry: Vec<Mutex<Option<ShardTelemetry>>> = (0..shard_count)
        .map(|shard| {
            Mutex::new(Some(ShardTelemetry {
                receivers: plan
                    .receivers
                    .iter()
                    .map(|r| {
                        (
                            ReceiverMetrics::register(&mut builder, &r.name, "grpc", shard),
                            ReceiverMetrics::register(&mut builder, &r.name, "http", shard),
                        )
                    })
                    .collect(),
                shard: ShardMetrics::register(&mut builder, shard),
                sampling: plan.pipelines.iter().find_map(|p| {
                    let names: Vec<&str> = p
                        .sampling
                        .as_ref()?
                        .config
                        .policies
                        .iter()
                        .map(|policy| policy.name.as_str())
                        .collect();
                    Some(SamplingMetrics::register(&mut builder, shard, &names))
                }),
                exporters: exporter_names
                    .iter()
                    .map(|name| ExporterMetrics::register(&mut builder, name, shard))
                    .collect(),
                drops: DropMetrics::register(&mut builder, shard),
            }))
        })
        .collect();
    let registry = builder.build();
    let health = Arc::new(Health::new(shard_count));
    let registry =
        (config.service.telemetry.metrics.level != MetricsLevel::None).then_some(registry);
    let admin = AdminServer::start(plan.admin, registry, health.clone()).map_err(|source| {
        StartError::Bind {
            listener: "the admin endpoint (service.telemetry.metrics.address)",
            addr: plan.admin,
            source,
        }
    })?;
    let flag = lifecycle::shutdown_flag()?;
    lifecycle::fail_stop_on_panic(flag.clone());
    tracing::info!(
        "tailgate {}: {} shard(s) on CPUs {:?}; metrics on http://{}/metrics",
        env!("CARGO_PKG_VERSION"),
        shard_count,
        plan.cpus,
        admin.local_addr()
    );

    let telemetry = Arc::new(telemetry);
    let shared_exporter_names = Arc::new(exporter_names);
    // Set by a shard that could not start (an exporter that would not build, a listener that
    // would not bind); the gateway then stops every shard and exits non-zero.
    let start_failed = Arc::new(AtomicBool::new(false));
    let shard_start_failed = start_failed.clone();
    let overload = Arc::new(Overload::new(shard_count));
    let shards = runtime::start::<Delivery, _, _>(&plan.cpus, plan.channel_capacity, {
        let plan = plan.clone();
        let start_failed = shard_start_failed;
        move |shard| async move {
            let mine = telemetry[shard.id]
                .lock()
                .expect("telemetry lock")
                .take()
                .expect("each shard takes its own telemetry once");
            let started = run_shard(
                shard,
                plan,
                mine,
                &shared_exporter_names,
                health,
                flag,
                overload,
            )
            .await;
            if !started {
                start_failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    })?;
    shards.join().map_err(StartError::ShardFailed)?;
    admin.shutdown()?;
    if start_failed.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(StartError::Io(io::Error::other(
            "a shard could not start its exporters or receivers (see the errors above)",
        )));
    }
    tracing::info!("tailgate: drained, exiting");
    Ok(())
}

/// Runs one shard until shutdown; returns whether it started (its exporters built, its
/// listeners bound).
async fn run_shard(
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
    let mut by_signal: [Vec<Stage>; 3] = Default::default();
    let mut exporters: Vec<Rc<Exporter>> = Vec::new();
    // A shard missing an exporter or a listener stops the whole gateway rather than run
    // degraded (data for a missing exporter would be lost without a count).
    let mut failed = false;
    for pipeline in &plan.pipelines {
        let mut pipeline_exporters = Vec::new();
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
                    let exporter = Rc::new(exporter);
                    telemetry.exporters[index]
                        .signal(pipeline.signal)
                        .queue_capacity
                        .set(exporter.queue_capacity() as i64);
                    exporters.push(exporter.clone());
                    pipeline_exporters.push(exporter);
                }
                Err(err) => {
                    tracing::error!("shard {id}: exporter {name} cannot start: {err}");
                    failed = true;
                }
            }
        }
        let batcher = Batcher::new(pipeline.batch.clone()).expect("batch settings were validated");
        let direct = Pipeline::new(batcher, pipeline_exporters);
        let stage = match (&pipeline.sampling, &telemetry.sampling) {
            (Some(sampling), Some(metrics)) => {
                let policies = PolicySet::new(&sampling.config, plan.cpus.len())
                    .expect("policies compile: checked when the plan was made");
                let sampler = Sampler::start(
                    sampling.settings,
                    policies,
                    direct,
                    metrics.clone(),
                    telemetry.shard.clone(),
                    telemetry.drops.clone(),
                    memory.clone(),
                );
                Stage::Sampled(sampler)
            }
            _ => Stage::Direct(direct),
        };
        by_signal[key(pipeline.signal) as usize].push(stage);
    }
    let pipelines = Rc::new(Pipelines {
        by_signal,
        drops: telemetry.drops.clone(),
    });
    let ingest = Rc::new(Ingest::new(
        id,
        shard.router,
        shard.senders,
        pipelines.clone(),
        telemetry.shard.clone(),
        Some(overload),
    ));
    let stop = Rc::new(Stop::default());

    // The mesh: one task per peer hands what that peer routed here to the pipelines.
    let mesh_tasks = ingest.serve_mesh(shard.receivers);

    let mut grpc_receivers = Vec::new();
    let mut http_receivers = Vec::new();
    let mut listener_tasks = Vec::new();
    for (receiver, (grpc_metrics, http_metrics)) in plan.receivers.iter().zip(telemetry.receivers) {
        if let Some((addr, settings)) = &receiver.grpc {
            match listen(*addr) {
                Ok(listener) => {
                    let grpc = GrpcReceiver::new(
                        ingest.clone(),
                        grpc_metrics,
                        *settings,
                        health.clone(),
                        stop.clone(),
                    );
                    grpc_receivers.push(grpc.clone());
                    listener_tasks.push(glommio::spawn_local(grpc.serve(listener)));
                }
                Err(err) => {
                    tracing::error!(
                        "shard {id}: receiver {}: binding gRPC on {addr}: {err}",
                        receiver.name
                    );
                    failed = true;
                }
            }
        }
        if let Some((addr, settings)) = &receiver.http {
            match listen(*addr) {
                Ok(listener) => {
                    let http = HttpReceiver::new(
                        ingest.clone(),
                        http_metrics,
                        settings.clone(),
                        stop.clone(),
                    );
                    http_receivers.push(http.clone());
                    listener_tasks.push(glommio::spawn_local(http.serve(listener)));
                }
                Err(err) => {
                    tracing::error!(
                        "shard {id}: receiver {}: binding HTTP on {addr}: {err}",
                        receiver.name
                    );
                    failed = true;
                }
            }
        }
    }
    if failed {
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    } else {
        health.shard_up();
    }
    let was_up = !failed;

    lifecycle::watch(flag, stop.clone()).await;
    health.start_draining();

    // 1. Stop accepting; let in-flight requests finish.
    for task in listener_tasks {
        task.await;
    }
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    // An HTTP connection reading a request when the signal came answers it (503, retryable)
    // before it closes; without this wait the process could end first and reset it.
    while (grpc_receivers.iter().any(|r| r.open_connections() > 0)
        || http_receivers.iter().any(|r| r.open_connections() > 0))
        && Instant::now() < deadline
    {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    // 2. Close this shard's senders; wait until every peer closed theirs and all was delivered.
    ingest.close_mesh();
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    for task in mesh_tasks {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if glommio::timer::timeout(remaining, async {
            task.await;
            Ok(())
        })
        .await
        .is_err()
        {
            tracing::warn!("shard {id}: a peer did not finish its deliveries in time");
            break;
        }
    }
    // 3. Decide (or drop) the traces still buffered and push the kept ones.
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    for stage in pipelines.by_signal.iter().flatten() {
        if let Stage::Sampled(sampler) = stage {
            sampler.shutdown(deadline).await;
        }
    }
    // 4. Flush the batchers into the exporters, then drain the exporters.
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    for stage in pipelines.by_signal.iter().flatten() {
        match stage {
            Stage::Direct(pipeline) => pipeline.shutdown(deadline).await,
            Stage::Sampled(sampler) => sampler.pipeline().shutdown(deadline).await,
        }
    }
    drop(exporters);
    if was_up {
        health.shard_down();
    }
    was_up
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `retry_on_failure` and debug `sampling_*` key reaches the exporter's settings.
    #[test]
    fn exporter_keys_reach_the_exporter_settings() {
        let config = Config::from_yaml(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  otlp:\n    endpoint: http://127.0.0.1:4317\n    retry_on_failure:\n      multiplier: 2.5\n      randomization_factor: 0\n  debug:\n    sampling_initial: 5\n    sampling_thereafter: 20\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp, debug]\n",
            "test.yaml",
        )
        .expect("valid");
        let ExporterSettings::Otlp(otlp) = exporter_settings(
            &config.exporters.by_id[&config::ComponentId::parse("otlp").unwrap()],
            2,
        ) else {
            panic!("an otlp exporter");
        };
        assert_eq!(otlp.retry.multiplier, 2.5);
        assert_eq!(otlp.retry.randomization_factor, 0.0);
        let ExporterSettings::Debug(debug) = exporter_settings(
            &config.exporters.by_id[&config::ComponentId::parse("debug").unwrap()],
            2,
        ) else {
            panic!("a debug exporter");
        };
        assert_eq!((debug.sampling_initial, debug.sampling_thereafter), (3, 20));
    }

    /// A batch handed to an exporter whose shutdown has begun is the Collector's
    /// `enqueue_failed`, not a failed send, and a drop with reason `shutdown`.
    #[test]
    fn batches_refused_at_shutdown_count_as_enqueue_failed() {
        let mut builder = RegistryBuilder::new();
        let drops = DropMetrics::register(&mut builder, 0);
        let exporter_metrics = ExporterMetrics::register(&mut builder, "debug", 0);
        let _registry = builder.build();
        let (counted_drops, counted) = (drops.clone(), exporter_metrics.clone());
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let observer = Rc::new(Observer {
                    metrics: exporter_metrics,
                    drops,
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
                exporter
                    .shutdown(Vec::new(), Instant::now() + Duration::from_secs(1))
                    .await;
                let late = export::Batch {
                    signal: Signal::Traces,
                    bytes: bytes::Bytes::new(),
                    items: 5,
                };
                assert!(exporter.submit(late).await.is_err());
            })
            .expect("executor")
            .join()
            .expect("test executor");
        let cells = counted.signal(Signal::Traces);
        assert_eq!(cells.enqueue_failed.get(), 5);
        assert_eq!(cells.send_failed.get(), 0);
        assert_eq!(
            counted_drops
                .counter(Signal::Traces, DropReason::Shutdown)
                .get(),
            5
        );
    }

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
                let pipelines = Pipelines {
                    by_signal: [vec![Stage::Direct(pipeline)], Vec::new(), Vec::new()],
                    drops,
                };
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
