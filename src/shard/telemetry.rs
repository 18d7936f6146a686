//! A shard's metric cells: registered for every shard on the main thread before any starts (so
//! the registry is read-only from then on), then handed to the shard, which alone writes them.

use crate::export::ExporterSettings;
use crate::plan::{ConnectorKind, Plan, StepKind};
use crate::telemetry::{
    BatchMetrics, DropMetrics, ExporterMetrics, FailoverMetrics, FilterMetrics,
    LoadBalancerMetrics, MemoryLimiterMetrics, ReceiverMetrics, RegistryBuilder, SamplingMetrics,
    ShardMetrics, TierMetrics, TlsMetrics,
};

/// One shard's metric cells, registered on the main thread before the shards start.
pub(crate) struct ShardTelemetry {
    /// Per receiver of the plan, in its order: the gRPC and the HTTP cells.
    pub(super) receivers: Vec<(ReceiverMetrics, ReceiverMetrics)>,
    pub(super) shard: ShardMetrics,
    pub(super) sampling: Option<SamplingMetrics>,
    /// Per exporter, in the order of the names they were registered with.
    pub(super) exporters: Vec<ExporterMetrics>,
    /// Per exporter, in the same order: a `loadbalancing` exporter's own families.
    pub(super) balancers: Vec<Option<LoadBalancerMetrics>>,
    pub(super) drops: DropMetrics,
    pub(super) memory_limiters: MemoryLimiterMetrics,
    /// The `filter` processors' counters, by id and signal.
    pub(super) filters: FilterMetrics,
    /// Per `batch` processor a pipeline takes its batching from, by id.
    pub(super) batches: Vec<(String, BatchMetrics)>,
    /// Per connector of the plan, in its order: a failover's cells (none for a routing one).
    pub(super) connectors: Vec<Option<FailoverMetrics>>,
    /// The tier's cells, if the node is part of one.
    pub(super) tier: Option<TierMetrics>,
}

impl ShardTelemetry {
    /// The shard's drop counters (the main thread reads them once the shards have drained).
    pub(crate) fn drops(&self) -> &DropMetrics {
        &self.drops
    }

    /// The shard's exporter cells (the main thread reads what shutdown left on disk).
    pub(crate) fn exporters(&self) -> &[ExporterMetrics] {
        &self.exporters
    }

    /// Registers shard `shard`'s cells for `plan`, one set per name of `exporter_names`.
    pub(crate) fn register(
        builder: &mut RegistryBuilder,
        plan: &Plan,
        shard: usize,
        exporter_names: &[String],
    ) -> ShardTelemetry {
        ShardTelemetry {
            receivers: plan
                .receivers
                .iter()
                .map(|r| {
                    let mut grpc = ReceiverMetrics::register(builder, &r.name, "grpc", shard);
                    let mut http = ReceiverMetrics::register(builder, &r.name, "http", shard);
                    if matches!(r.grpc, Some((_, _, Some(_)))) {
                        grpc.connections.tls =
                            Some(TlsMetrics::register(builder, &r.name, "grpc", shard));
                    }
                    if matches!(r.http, Some((_, _, Some(_)))) {
                        http.connections.tls =
                            Some(TlsMetrics::register(builder, &r.name, "http", shard));
                    }
                    (grpc, http)
                })
                .collect(),
            shard: {
                let metrics = ShardMetrics::register(builder, shard);
                let limit = plan.memory_limit.div_ceil(plan.cpus.len() as u64);
                metrics
                    .memory_limit_bytes
                    .set(i64::try_from(limit).unwrap_or(i64::MAX));
                metrics
            },
            sampling: plan.pipelines.iter().find_map(|p| {
                let names: Vec<&str> = p
                    .sampling
                    .as_ref()?
                    .config
                    .policies
                    .iter()
                    .map(|policy| policy.name.as_str())
                    .collect();
                Some(SamplingMetrics::register(builder, shard, &names))
            }),
            exporters: exporter_names
                .iter()
                .map(|name| ExporterMetrics::register(builder, name, shard))
                .collect(),
            balancers: exporter_names
                .iter()
                .map(|name| {
                    let resolver = plan
                        .pipelines
                        .iter()
                        .flat_map(|p| p.exporters.iter())
                        .find_map(|(n, settings)| match settings {
                            ExporterSettings::LoadBalancing(lb) if n == name => {
                                Some(lb.backends.label())
                            }
                            _ => None,
                        })
                        .or_else(|| {
                            plan.tier
                                .as_ref()
                                .filter(|_| name == crate::tier::EXPORTER_NAME)
                                .map(|tier| tier.backends.label())
                        })?;
                    Some(LoadBalancerMetrics::register(
                        builder, name, resolver, shard,
                    ))
                })
                .collect(),
            tier: plan
                .tier
                .as_ref()
                .map(|_| TierMetrics::register(builder, shard)),
            drops: DropMetrics::register(builder, shard),
            memory_limiters: MemoryLimiterMetrics::register(
                builder,
                &plan
                    .pipelines
                    .iter()
                    .flat_map(|p| p.memory_limiters.iter().map(|id| (p.signal, id.clone())))
                    .collect::<Vec<_>>(),
                shard,
            ),
            filters: FilterMetrics::register(
                builder,
                &plan
                    .pipelines
                    .iter()
                    .flat_map(|p| {
                        p.steps
                            .iter()
                            .filter(|s| matches!(s.kind, StepKind::Filter(_)))
                            .map(|s| (p.signal, s.id.clone()))
                    })
                    .collect::<Vec<_>>(),
                shard,
            ),
            batches: {
                let mut ids: Vec<&String> = plan
                    .pipelines
                    .iter()
                    .filter_map(|p| p.batch_processor.as_ref())
                    .collect();
                ids.sort();
                ids.dedup();
                ids.into_iter()
                    .map(|id| (id.clone(), BatchMetrics::register(builder, id, shard)))
                    .collect()
            },
            connectors: plan
                .connectors
                .iter()
                .map(|c| match &c.kind {
                    ConnectorKind::Failover { levels, .. } => Some(FailoverMetrics::register(
                        builder,
                        &c.name,
                        levels.len(),
                        shard,
                    )),
                    ConnectorKind::Routing { .. } => None,
                })
                .collect(),
        }
    }
}
