//! Live reload on SIGHUP, the main thread's side: read the file again, check what may change
//! while running, make the new plan and metric cells, and hand each shard its part.
//!
//! # What a reload replaces, and what it does not
//!
//! A reload replaces the pipelines: their processors' settings (the `tail_sampling` policies,
//! `batch`), their exporters (endpoints, TLS, compression, queues, retries; exporters added or
//! removed) and which exporters each pipeline sends to. What needs a restart is refused, naming
//! it, and the running configuration stays: the receivers (their listeners are bound), the
//! extensions (authenticators, `health_check`), `service.telemetry`, `shards`, `tier`, the
//! memory budget (`memory_limiter`), and the trace buffer's own settings (everything in `tail_sampling` but
//! `policies` and `sample_on_first_match`), since the traces buffered now were admitted under
//! them.
//!
//! # Losing nothing
//!
//! Each shard switches between two deliveries ([`crate::shard::Reloads`]). Its buffered traces
//! stay where they are and are decided by the new policies when they come due; the old
//! batchers and exporters are flushed and drain their queues in the background. Counters keep
//! counting: the new registry reuses the cell of every series whose name and labels it keeps.
//!
//! A file that does not load, a change that needs a restart, or a shard that cannot build the
//! new exporters is a failed reload: logged, counted in `tailgate_config_reload_failures`, and
//! shown by `tailgate_config_last_reload_success` 0. A shard that could not build keeps its
//! running pipelines, so after a failure on some shards only, the shards differ until the next
//! reload succeeds; the log says which.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{Config, FeatureGates, Processor, TailSampling, EMBEDDED_SOURCE};
use crate::plan::Plan;
use crate::shard::{Reloads, ShardAnswer, ShardReload};
use crate::telemetry::{Counter, Gauge, Health, PublishedRegistry, RegistryBuilder};
use crate::tls::reload::Reloader as TlsReloader;

use super::{register, Registered};

/// How long the main thread waits for every shard to switch: each looks at its mailbox every
/// few milliseconds and builds a few exporters, so this is only reached by a stuck shard.
const SHARD_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the wait for the shards' answers looks whether a shutdown began.
const ANSWER_POLL: Duration = Duration::from_millis(100);

/// The reload families, registered in every registry the node builds.
#[derive(Clone)]
pub(super) struct ReloadMetrics {
    reloads: Counter,
    failures: Counter,
    last_success: Gauge,
    last_timestamp: Gauge,
}

impl ReloadMetrics {
    pub(super) fn register(builder: &mut RegistryBuilder) -> ReloadMetrics {
        ReloadMetrics {
            reloads: builder.counter(
                "tailgate_config_reloads",
                "Configuration reloads (SIGHUP) that took effect on every shard.",
                &[],
            ),
            failures: builder.counter(
                "tailgate_config_reload_failures",
                "Configuration reloads (SIGHUP) refused or failed; the running configuration \
                 stayed (see the log).",
                &[],
            ),
            last_success: builder.gauge(
                "tailgate_config_last_reload_success",
                "Whether the last configuration reload succeeded (1 also before any reload).",
                &[],
            ),
            last_timestamp: builder.gauge(
                "tailgate_config_last_reload_timestamp_seconds",
                "When the last configuration reload was attempted, in seconds since the epoch \
                 (the start time before any).",
                &[],
            ),
        }
    }

    /// The values a fresh node shows: successful, at start.
    pub(super) fn started(&self) {
        self.last_success.set(1);
        self.last_timestamp.set(unix_now());
    }

    fn outcome(&self, ok: bool) {
        if ok {
            self.reloads.inc();
        } else {
            self.failures.inc();
        }
        self.last_success.set(i64::from(ok));
        self.last_timestamp.set(unix_now());
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The running configuration and what a reload replaces; lives on the main thread.
pub(super) struct Reloader {
    pub(super) config: Config,
    pub(super) gates: FeatureGates,
    pub(super) plan: Plan,
    pub(super) registry: Option<Arc<PublishedRegistry>>,
    pub(super) metrics: ReloadMetrics,
    pub(super) reloads: Arc<Reloads>,
    pub(super) answers: Receiver<ShardAnswer>,
    /// Follows the certificates of the running configuration; replaced with it.
    pub(super) tls: TlsReloader,
    /// Set by SIGHUP.
    pub(super) requested: Arc<AtomicBool>,
    /// Whether the shards are draining: a reload then has no shard left to take it.
    pub(super) health: Arc<Health>,
}

impl Reloader {
    /// Reloads if SIGHUP asked since the last call.
    pub(super) fn poll(&mut self) {
        if self.requested.swap(false, Ordering::Relaxed) {
            if self.health.is_draining() {
                tracing::warn!("reload ignored: the gateway is shutting down");
                return;
            }
            let ok = match self.reload() {
                Ok(summary) => {
                    tracing::info!("reload: {summary}");
                    true
                }
                Err(why) => {
                    tracing::error!(
                        "reload of {} failed, the running configuration stays: {why}",
                        self.config.source
                    );
                    false
                }
            };
            self.metrics.outcome(ok);
        }
    }

    fn reload(&mut self) -> Result<String, String> {
        if self.config.source == EMBEDDED_SOURCE {
            return Err(
                "the gateway runs the embedded default; there is no file to read again \
                        (start it with --config FILE)"
                    .to_string(),
            );
        }
        let started = Instant::now();
        let mut config =
            Config::load(std::path::Path::new(&self.config.source)).map_err(|e| e.to_string())?;
        config.apply_feature_gates(self.gates);
        needs_no_restart(&self.config, &config)?;
        let mut plan = Plan::from_config(&config).map_err(|e| e.to_string())?;
        plan.keep_running_tls(&self.plan);
        if plan.memory_limit != self.plan.memory_limit || plan.cpus != self.plan.cpus {
            return Err("the memory budget or the shard CPUs changed; restart to apply".into());
        }
        let settings = |plan: &Plan| {
            plan.pipelines
                .iter()
                .find_map(|p| p.sampling.as_ref().map(|s| s.settings))
        };
        if settings(&plan) != settings(&self.plan) {
            return Err(
                "the trace buffer's limits changed (tail_sampling settings or the memory \
                        budget's share); restart to apply"
                    .into(),
            );
        }
        let previous = self.registry.as_ref().map(|r| r.current());
        let Registered {
            registry,
            telemetry,
            exporter_names,
            tls,
            reload_metrics,
            // The same cells as the first registration's, which the node's measurement sets.
            memory_gauges: _,
            // The same too (a reload keeps the readers), which the readers count in.
            push_counters: _,
            log_counters: _,
        } = register(&plan, previous.as_deref());
        let exporter_names = Arc::new(exporter_names);
        for (shard, cells) in telemetry.into_iter().enumerate() {
            let telemetry = cells
                .into_inner()
                .expect("registration lock")
                .expect("cells registered");
            self.reloads.post(
                shard,
                ShardReload {
                    plan: plan.clone(),
                    telemetry,
                    exporter_names: exporter_names.clone(),
                },
            );
        }
        let mut failed = Vec::new();
        let deadline = Instant::now() + SHARD_ANSWER_TIMEOUT;
        let mut answered = 0;
        while answered < plan.cpus.len() {
            // A shutdown that begins meanwhile ends the shards' reload tasks: stop waiting.
            if self.health.is_draining() {
                failed.push("the gateway began shutting down during the reload".to_string());
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                failed.push(format!(
                    "not every shard answered within {SHARD_ANSWER_TIMEOUT:?}"
                ));
                break;
            }
            match self.answers.recv_timeout(left.min(ANSWER_POLL)) {
                Ok((_, Ok(()))) => answered += 1,
                Ok((shard, Err(why))) => {
                    answered += 1;
                    failed.push(format!("shard {shard} kept the running pipelines: {why}"));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    failed.push("the shards are gone".to_string());
                    break;
                }
            }
        }
        // The new cells serve from now on (those that stayed are the same cells).
        if let Some(published) = &self.registry {
            published.replace(registry);
        }
        self.metrics = reload_metrics;
        self.tls
            .replace(tls)
            .map_err(|e| format!("certificate reloader: {e}"))?;
        self.config = config;
        self.plan = plan;
        if !failed.is_empty() {
            return Err(failed.join("; "));
        }
        Ok(format!(
            "{} took effect on {} shard(s) in {:?}",
            self.config.source,
            self.plan.cpus.len(),
            started.elapsed()
        ))
    }
}

/// Whether `new` differs from `old` only where a reload can apply it; otherwise what needs a
/// restart.
fn needs_no_restart(old: &Config, new: &Config) -> Result<(), String> {
    let restart = |what: &str| {
        Err(format!("{what} changed; a reload replaces pipelines, processors and exporters only, restart to apply this"))
    };
    if old.receivers != new.receivers {
        return restart("receivers");
    }
    if old.extensions != new.extensions || old.service.extensions != new.service.extensions {
        return restart("extensions");
    }
    if old.service.telemetry != new.service.telemetry {
        return restart("service.telemetry");
    }
    if old.shards != new.shards {
        return restart("shards");
    }
    if old.tier != new.tier {
        return restart("tier");
    }
    if crate::plan::metadata_settings(old) != crate::plan::metadata_settings(new) {
        return restart(
            "the client metadata the receivers keep (metadata_keys, headers_setter's \
             from_context, partition.metadata_keys, request routes) or a \
             metadata_cardinality_limit",
        );
    }
    let receivers = |config: &Config| {
        let mut taken: Vec<String> = config
            .service
            .pipelines
            .iter()
            .flat_map(|p| p.receivers.iter().map(ToString::to_string))
            .collect();
        taken.sort();
        taken.dedup();
        taken
    };
    if receivers(old) != receivers(new) {
        return restart("the set of receivers the pipelines take from");
    }
    let limiters = |config: &Config| {
        let mut limiters: Vec<String> = config
            .service
            .pipelines
            .iter()
            .flat_map(|p| {
                p.processors.iter().filter(|id| {
                    matches!(
                        config.processors.by_id.get(*id),
                        Some(Processor::MemoryLimiter(_))
                    )
                })
            })
            .map(|id| format!("{id}: {:?}", config.processors.by_id.get(id)))
            .collect();
        limiters.sort();
        limiters.dedup();
        limiters
    };
    if limiters(old) != limiters(new) {
        return restart("memory_limiter");
    }
    let buffer = |config: &Config| -> Vec<TailSampling> {
        config
            .service
            .pipelines
            .iter()
            .flat_map(|p| p.processors.iter())
            .filter_map(|id| match config.processors.by_id.get(id) {
                Some(Processor::TailSampling(sampling)) => Some(TailSampling {
                    policies: Vec::new(),
                    sample_on_first_match: false,
                    ..sampling.clone()
                }),
                _ => None,
            })
            .collect()
    };
    if buffer(old) != buffer(new) {
        return restart(
            "tail_sampling (beyond its policies and sample_on_first_match: the trace buffer's \
             settings, or which pipeline samples)",
        );
    }
    Ok(())
}
