//! Starting and stopping the gateway: from a [`Config`] to running shards, and back.
//!
//! Start-up happens on the main thread: the configuration becomes a [`Plan`] (plain values,
//! cloned into every shard), every shard's metric cells are registered in one registry (which is
//! read-only from then on), the admin server starts, and one shard per configured CPU is spawned.
//! Each shard then builds its own pipelines, exporters and receivers on its own executor, binds
//! its own SO_REUSEPORT listeners, and reports itself up ([`crate::shard`]).
//!
//! Shutdown (SIGTERM or SIGINT) runs in every shard in the same order, each step bounded by the
//! drain timeout: stop accepting; let in-flight requests finish; close this shard's mesh
//! senders and wait until every peer has closed its own (so every span routed here has
//! arrived); flush the batchers; drain the exporters' queues, counting anything still unsent at
//! the deadline as dropped with reason `shutdown`. Once every shard has drained, the admin
//! server stops and the process exits 0; a shard that failed ends it with [`StartError`].

mod error;
mod reload;

use std::collections::BTreeSet;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tailgate_shards::runtime;

use crate::auth::Watcher;
use crate::config::{Config, FeatureGates, MetricsLevel, SamplingStrategy};
use crate::ingest::Delivery;
use crate::lifecycle;
use crate::memory::{Overload, ProcessMemory};
use crate::plan::Plan;
use crate::shard::{self, ShardTelemetry};
use crate::telemetry::{
    AdminServer, DropMetrics, DropReason, ExporterMetrics, Gauge, Health, PublishedRegistry,
    Registry, RegistryBuilder,
};
use tailgate_wire::Signal;

pub use error::StartError;

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
                .map(|(a, _, _)| (format!("receiver {name} gRPC"), *a)),
        );
        listeners.extend(
            receiver
                .http
                .iter()
                .map(|(a, _, _)| (format!("receiver {name} HTTP"), *a)),
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

/// One line on how the shards are tuned, so that an operator sees which profile took effect.
fn tuning_summary(config: &Config, plan: &Plan) -> String {
    let shards = &config.shards;
    let mut parts = vec![match &shards.profile {
        Some(file) => format!("profile {}", file.display()),
        None => "no profile".to_string(),
    }];
    if !shards.irq_cpus.is_empty() {
        parts.push(format!("CPUs {:?} left for interrupts", shards.irq_cpus));
    }
    parts.push(format!("ring depth {}", plan.executor.ring_depth));
    parts.push(format!(
        "spin before park {} µs",
        plan.executor.spin_before_park.as_micros()
    ));
    match &plan.executor.memory_nodes {
        Some(nodes) => parts.push(format!("memory bound to NUMA nodes {nodes:?}")),
        None => parts.push("memory placed by first touch".to_string()),
    }
    let buffer = |bytes: u32| match bytes {
        0 => "kernel default".to_string(),
        n => format!("{n} B"),
    };
    parts.push(format!(
        "socket buffers receive {}, send {}",
        buffer(plan.listen.receive_buffer_bytes),
        buffer(plan.listen.send_buffer_bytes)
    ));
    if plan.incoming_cpu {
        parts.push("SO_INCOMING_CPU on".to_string());
    }
    parts.join("; ")
}

/// How often the main thread looks for a reload (SIGHUP) and measures the process's memory for
/// the budget while the shards run.
const MAIN_POLL: std::time::Duration = crate::memory::MEASURE_INTERVAL;

/// Runs the gateway until SIGTERM or SIGINT, reloading `config`'s file on SIGHUP (with the same
/// `gates`); returns once it has drained.
pub fn run(config: &Config, gates: FeatureGates) -> Result<(), StartError> {
    let started = (std::time::Instant::now(), std::time::SystemTime::now());
    let mut plan = Plan::from_config(config)?;
    let shard_count = plan.cpus.len();
    lifecycle::raise_open_files_limit();
    let manages_allocator = crate::sys::keep_freed_memory().is_some();
    if !manages_allocator {
        tracing::debug!(
            "allocator: purge delay left as it is (MIMALLOC_PURGE_DELAY, or not mimalloc v3)"
        );
    }
    plan.budget_connections()?;

    let Registered {
        registry,
        telemetry,
        exporter_names,
        tls: tls_watched,
        reload_metrics,
        memory_gauges: (rss_gauge, overhead_gauge),
        push_counters,
        log_counters,
    } = register(&plan, None);
    reload_metrics.started();
    // Certificates rotated on disk are picked up by this thread; it stops when dropped, after
    // the shards.
    let tls_reloader = crate::tls::reload::Reloader::start(tls_watched)?;
    let health = Arc::new(Health::new(shard_count));
    let registry = (config.service.telemetry.metrics.level != MetricsLevel::None)
        .then(|| Arc::new(PublishedRegistry::new(registry)));
    let admin =
        AdminServer::start(plan.admin, registry.clone(), health.clone()).map_err(|source| {
            StartError::Bind {
                listener: "the admin endpoint (service.telemetry.metrics.address)",
                addr: plan.admin,
                source,
            }
        })?;
    for id in &config.service.extensions {
        if let Some(crate::config::Extension::Unserved(kind)) = config.extensions.get(id) {
            tracing::warn!(
                "extension {id}: tailgate accepts `{kind}` so that a Collector configuration \
                 loads, but does not serve it (its profiles and pages are the Collector's)"
            );
        }
    }
    // Each enabled health_check extension, on its own address, stopped when dropped.
    let mut health_checks = Vec::new();
    for check in plan.health_checks.iter().cloned() {
        let addr = check.addr;
        let server = AdminServer::start_health_check(addr, check.config, check.tls, health.clone())
            .map_err(|source| StartError::Bind {
                listener: "a health_check extension (extensions.health_check.endpoint)",
                addr,
                source,
            })?;
        health_checks.push(server);
    }
    // Each periodic reader pushes the self-metrics from a thread of its own; dropped at the end
    // of `run`, each pushes once more.
    let mut pushers = crate::telemetry::Pushers::default();
    for (push, (sent, failed)) in plan.pushes.iter().cloned().zip(push_counters) {
        let Some(registry) = &registry else {
            tracing::warn!(
                "{}: service.telemetry.metrics.level is none, so there are no self-metrics to \
                 push",
                push.label
            );
            continue;
        };
        let target = crate::telemetry::PushTarget {
            label: push.label,
            settings: push.settings,
            interval: push.interval,
            timeout: push.timeout,
            sent,
            failed,
        };
        pushers.0.push(
            crate::telemetry::MetricsPusher::start(
                target,
                registry.clone(),
                config.service.telemetry.resource_attributes(),
                started,
            )
            .map_err(StartError::Io)?,
        );
    }
    // Each log processor pushes the log's records from a thread of its own, from the queue
    // the log has filled since the first line, until the process's last step
    // (`log_export::shutdown`, after its last line), which sends what is queued.
    let queues = crate::telemetry::log_export::take_queues();
    for ((export, queue), [sent, failed, dropped]) in plan
        .log_exports
        .iter()
        .cloned()
        .zip(queues)
        .zip(log_counters)
    {
        let target = crate::telemetry::log_export::LogTarget {
            label: export.label,
            settings: export.settings,
            schedule_delay: export.schedule_delay,
            timeout: export.timeout,
            batch_size: export.batch_size,
            sent,
            failed,
            dropped,
        };
        crate::telemetry::log_export::keep(
            crate::telemetry::log_export::LogPusher::start(
                target,
                queue,
                config.service.telemetry.resource_attributes(),
            )
            .map_err(StartError::Io)?,
        );
    }
    let shutdown = lifecycle::Shutdown::register(shard_count)?;
    lifecycle::fail_stop_on_panic(shutdown.clone());
    let reload_requested = lifecycle::reload_flag()?;
    // Under systemd (`Type=notify`): READY=1, the watchdog and STOPPING=1, until `run` returns.
    let _notifier = match crate::notify::Notifier::from_env() {
        Ok(Some(notifier)) => Some(crate::notify::NotifierThread::start(
            notifier,
            health.clone(),
            crate::notify::watchdog_ping_interval(),
        )?),
        Ok(None) => None,
        Err(err) => {
            tracing::warn!("NOTIFY_SOCKET is set but unusable ({err}); systemd is not notified");
            None
        }
    };
    // Follows bearer token files until the shards have drained (dropped at the end of `run`).
    let _token_watcher = Watcher::start(plan.token_files.clone())?;
    tracing::info!(
        "tailgate {}: {} shard(s) on CPUs {:?}; metrics on http://{}/metrics",
        env!("CARGO_PKG_VERSION"),
        shard_count,
        plan.cpus,
        admin.local_addr()
    );
    tracing::info!("tuning: {}", tuning_summary(config, &plan));
    for (pipeline, planned) in config.service.pipelines.iter().zip(&plan.pipelines) {
        if let Some(sampling) = &planned.sampling {
            let wait = sampling.config.decision_wait;
            let first = match sampling.config.sampling_strategy {
                SamplingStrategy::SpanIngest => "as its spans arrive".to_string(),
                SamplingStrategy::TraceComplete => {
                    format!("{wait:?} (decision_wait) after its first span")
                }
            };
            tracing::info!(
                "pipeline {}: tail sampling decides each trace {first}; kept traces reach the \
                 exporters from then on, not before",
                pipeline.id
            );
        }
    }

    // Set by a shard that could not start (an exporter that would not build, a listener that
    // would not bind); the gateway then stops every shard and exits non-zero.
    let start_failed = Arc::new(AtomicBool::new(false));
    let overload = Arc::new(Overload::new(shard_count));
    let process_memory = Arc::new(ProcessMemory::new(
        shard_count,
        plan.memory_limit,
        manages_allocator && plan.memory_whole_process,
        rss_gauge,
        overhead_gauge,
    ));
    // What the shards drop at shutdown, read once they have drained (a reload's cells for these
    // series are the same cells).
    let drops: Vec<DropMetrics> = telemetry
        .iter()
        .map(|cells| {
            cells
                .lock()
                .expect("telemetry lock")
                .as_ref()
                .expect("cells registered")
                .drops()
                .clone()
        })
        .collect();
    let exporter_cells: Vec<ExporterMetrics> = telemetry
        .iter()
        .flat_map(|cells| {
            cells
                .lock()
                .expect("telemetry lock")
                .as_ref()
                .expect("cells registered")
                .exporters()
                .to_vec()
        })
        .collect();
    let (answers_to, answers) = std::sync::mpsc::channel();
    let reloads = Arc::new(shard::Reloads::new(shard_count, answers_to)?);
    let mut reloader = reload::Reloader {
        config: config.clone(),
        gates,
        plan: plan.clone(),
        registry,
        metrics: reload_metrics,
        reloads: reloads.clone(),
        answers,
        tls: tls_reloader,
        requested: reload_requested,
        health: health.clone(),
    };
    let shards = runtime::start::<Delivery, _, _>(
        &plan.cpus,
        plan.channel_capacity,
        &plan.executor.clone(),
        {
            let plan = plan.clone();
            let start_failed = start_failed.clone();
            let process_memory = process_memory.clone();
            let telemetry = Arc::new(telemetry);
            let exporter_names = Arc::new(exporter_names);
            move |shard| async move {
                let mine = telemetry[shard.id]
                    .lock()
                    .expect("telemetry lock")
                    .take()
                    .expect("each shard takes its own telemetry once");
                let node = shard::Node {
                    health,
                    shutdown,
                    overload,
                    process_memory,
                    reloads,
                };
                let started = shard::run(shard, plan, mine, &exporter_names, node).await;
                if !started {
                    start_failed.store(true, Ordering::Relaxed);
                }
            }
        },
    )?;
    // The main thread serves reloads until the shards have drained.
    let (joined_to, joined) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("tailgate-join".into())
        .spawn(move || {
            let _ = joined_to.send(shards.join());
        })?;
    let result = loop {
        match joined.recv_timeout(MAIN_POLL) {
            Ok(result) => break result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // The memory budget's one measurement (`crate::memory::ProcessMemory`).
                process_memory.measure();
                reloader.poll();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break Err(io::Error::other(
                    "the shards' join thread ended without a result",
                ))
            }
        }
    };
    result.map_err(StartError::ShardFailed)?;
    admin.shutdown()?;
    if start_failed.load(Ordering::Relaxed) {
        return Err(StartError::Io(io::Error::other(
            "a shard could not start its exporters or receivers (see the errors above)",
        )));
    }
    let lost = Signal::ALL.map(|signal| {
        drops
            .iter()
            .map(|shard| shard.counter(signal, DropReason::Shutdown).get())
            .sum::<u64>()
    });
    if lost.iter().any(|&items| items > 0) {
        return Err(StartError::LostAtShutdown { items: lost });
    }
    let [spans, metric_points, log_records] = Signal::ALL.map(|signal| {
        exporter_cells
            .iter()
            .map(|cells| cells.signal(signal).left_on_disk.get())
            .sum::<u64>()
    });
    if spans + metric_points + log_records > 0 {
        tracing::info!(
            spans,
            metric_points,
            log_records,
            "tailgate: drained; what was not sent waits in the persistent queues (the next \
             start sends it first), the rest was sent or decided; exiting"
        );
        return Ok(());
    }
    tracing::info!("tailgate: drained, everything accepted was sent or decided; exiting");
    Ok(())
}

/// What [`register`] made.
pub(super) struct Registered {
    registry: Arc<Registry>,
    /// Each shard's cells, each taken once, by its shard.
    telemetry: Vec<Mutex<Option<ShardTelemetry>>>,
    /// The exporter names the cells are registered under, in their order.
    exporter_names: Vec<String>,
    /// The TLS configurations, with their reload counters.
    tls: Vec<crate::tls::reload::Watched>,
    /// The reload families.
    reload_metrics: reload::ReloadMetrics,
    /// The node's resident memory and the overhead its budget leaves room for.
    memory_gauges: (Gauge, Gauge),
    /// Per periodic reader: its pushes sent and failed.
    push_counters: Vec<(crate::telemetry::Counter, crate::telemetry::Counter)>,
    /// Per log processor: its records sent, failed and dropped.
    log_counters: Vec<[crate::telemetry::Counter; 3]>,
}

/// Registers every shard's metric cells in one registry: before any shard starts, and again
/// (reusing `previous`'s cells) for a reload. On the main thread, always.
pub(super) fn register(plan: &Plan, previous: Option<&Registry>) -> Registered {
    let suffix = if plan.counter_total {
        crate::telemetry::CounterSuffix::Total
    } else {
        crate::telemetry::CounterSuffix::None
    };
    let mut builder = match previous {
        Some(previous) => RegistryBuilder::reusing(previous),
        None => RegistryBuilder::new(),
    }
    .counter_suffix(suffix);
    let reload_metrics = reload::ReloadMetrics::register(&mut builder);
    // The gateway's resource (service.telemetry.resource over service.name and
    // service.version), as the Collector's Prometheus reader serves it.
    let labels: Vec<(&str, &str)> = plan
        .target_info
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    builder
        .gauge("target_info", "Target metadata", &labels)
        .set(1);
    let memory_gauges = (
        builder.gauge(
            "tailgate_memory_rss_bytes",
            "Resident memory of the process in bytes, as the memory budget last measured it \
             (every 100 ms).",
            &[],
        ),
        builder.gauge(
            "tailgate_memory_overhead_bytes",
            "Resident memory the shards do not account for (binary, connection buffers, \
             indexes, allocator slack): taken off the memory budget, so the process stays \
             within memory_limiter's limit.",
            &[],
        ),
    );
    let tls = plan
        .tls
        .iter()
        .map(|config| crate::tls::reload::Watched::register(&mut builder, config.clone()))
        .collect();
    let exporter_names: Vec<String> = plan
        .pipelines
        .iter()
        .flat_map(|p| p.exporters.iter().map(|(name, _)| name.clone()))
        .chain(
            plan.tier
                .is_some()
                .then(|| crate::tier::EXPORTER_NAME.to_string()),
        )
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let telemetry = (0..plan.cpus.len())
        .map(|shard| {
            Mutex::new(Some(ShardTelemetry::register(
                &mut builder,
                plan,
                shard,
                &exporter_names,
            )))
        })
        .collect();
    let push_counters = (0..plan.pushes.len())
        .map(|i| {
            let help = "Number of times a periodic reader (service.telemetry.metrics.readers) \
                        pushed the self-metrics: answered (outcome=sent) or not (outcome=failed; \
                        the next interval sends fresh values).";
            let reader = i.to_string();
            let counter = |builder: &mut crate::telemetry::RegistryBuilder, outcome| {
                builder.counter(
                    "tailgate_telemetry_pushes",
                    help,
                    &[("reader", reader.as_str()), ("outcome", outcome)],
                )
            };
            (
                counter(&mut builder, "sent"),
                counter(&mut builder, "failed"),
            )
        })
        .collect();
    let log_counters = (0..plan.log_exports.len())
        .map(|i| {
            let help = "Number of the gateway's log records a log processor \
                        (service.telemetry.logs.processors) pushed (outcome=sent), whose push \
                        failed (outcome=failed) or which its full queue dropped \
                        (outcome=dropped).";
            let processor = i.to_string();
            ["sent", "failed", "dropped"].map(|outcome| {
                builder.counter(
                    "tailgate_telemetry_log_records",
                    help,
                    &[("processor", processor.as_str()), ("outcome", outcome)],
                )
            })
        })
        .collect();
    Registered {
        registry: builder.build(),
        telemetry,
        exporter_names,
        tls,
        reload_metrics,
        memory_gauges,
        push_counters,
        log_counters,
    }
}
