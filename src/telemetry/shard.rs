//! Per-shard routing and buffer families.
//!
//! `tailgate_shard_owned_spans{shard}` counts the spans a shard received as their trace's owner,
//! whether they arrived on its own connections or over the mesh from another shard. Routing is
//! deliberately not counted per (from, to) pair: that is n² series for n shards, and the owner
//! count already shows what matters, that each trace's spans land on one shard and that load
//! spreads evenly. The buffer gauges give the "still buffered" term of the accounting invariant.

use super::cell::{Counter, Gauge};
use super::registry::RegistryBuilder;

/// One shard's routing and buffer cells.
#[derive(Debug, Clone)]
pub struct ShardMetrics {
    /// `tailgate_shard_owned_spans`: spans received as their trace's owner.
    pub owned_spans: Counter,
    /// `tailgate_shard_buffered_spans`: spans held in the trace buffer now.
    pub buffered_spans: Gauge,
    /// `tailgate_shard_buffered_bytes`: bytes of span data held in the trace buffer now, the
    /// figure the shard's memory budget is enforced on.
    pub buffered_bytes: Gauge,
    /// `tailgate_shard_buffered_span_bytes`: the encoded size of the spans held, without what
    /// holding them costs (`buffered_bytes` less this is the buffer's overhead).
    pub buffered_span_bytes: Gauge,
    /// `tailgate_shard_export_bytes`: bytes of batches this shard's exporters hold, queued or
    /// being sent; with the trace buffer's bytes, what the shard's memory budget is enforced on.
    pub export_bytes: Gauge,
    /// `tailgate_shard_memory_limit_bytes`: the shard's share of the memory budget (set once
    /// at start-up).
    pub memory_limit_bytes: Gauge,
    /// `tailgate_shard_memory_effective_limit_bytes`: where refusing starts now, its share less
    /// its share of the process's overhead (see `crate::memory`).
    pub memory_effective_limit_bytes: Gauge,
    /// `tailgate_shard_batching_spans`, `_metric_points`, `_log_records`: items in the shard's
    /// batchers, not yet handed to an exporter (by signal, in `Signal` order).
    pub batching: [Gauge; 3],
}

impl ShardMetrics {
    /// Registers the shard families for `shard`.
    pub fn register(builder: &mut RegistryBuilder, shard: usize) -> Self {
        let shard = shard.to_string();
        let labels = [("shard", shard.as_str())];
        ShardMetrics {
            owned_spans: builder.counter(
                "tailgate_shard_owned_spans",
                "Number of spans this shard received as the owner of their trace.",
                &labels,
            ),
            buffered_spans: builder.gauge(
                "tailgate_shard_buffered_spans",
                "Number of spans held in this shard's trace buffer.",
                &labels,
            ),
            buffered_bytes: builder.gauge(
                "tailgate_shard_buffered_bytes",
                "Bytes held by this shard's trace buffer (span bytes, their index and traces), \
                 the figure its memory budget is enforced on.",
                &labels,
            ),
            buffered_span_bytes: builder.gauge(
                "tailgate_shard_buffered_span_bytes",
                "Encoded size of the spans held in this shard's trace buffer.",
                &labels,
            ),
            export_bytes: builder.gauge(
                "tailgate_shard_export_bytes",
                "Bytes of batches held by this shard's exporters, queued or being sent; with the \
                 trace buffer's bytes, the figure its memory budget is enforced on.",
                &labels,
            ),
            memory_limit_bytes: builder.gauge(
                "tailgate_shard_memory_limit_bytes",
                "This shard's share of the memory budget in bytes, as configured.",
                &labels,
            ),
            memory_effective_limit_bytes: builder.gauge(
                "tailgate_shard_memory_effective_limit_bytes",
                "This shard's memory limit in bytes now: its share of the budget less its share \
                 of the process memory the shards do not hold. Buffered and export bytes above \
                 it are refused.",
                &labels,
            ),
            batching: [
                ("spans", "spans"),
                ("metric_points", "metric points"),
                ("log_records", "log records"),
            ]
            .map(|(item, help)| {
                builder.gauge(
                    &format!("tailgate_shard_batching_{item}"),
                    &format!(
                        "Number of {help} in this shard's batchers, not yet handed to an exporter."
                    ),
                    &labels,
                )
            }),
        }
    }
}
