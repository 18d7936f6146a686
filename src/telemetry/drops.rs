//! Every item the gateway loses after accepting it is counted here, with a reason.
//!
//! `tailgate_dropped_spans{reason,shard}`, `tailgate_dropped_metric_points{reason,shard}` and
//! `tailgate_dropped_log_records{reason,shard}` have one series per [`DropReason`], registered
//! up front, so a reason that never happened reads as 0 instead of being absent (an alert on
//! `increase(...) > 0` needs the series to exist). Reasons are a closed enum, so every drop has
//! one and the label's cardinality is fixed.
//!
//! Items refused before acceptance (the sender is told, and may retry) are not drops: they are
//! `otelcol_receiver_refused_*`. Traces not sampled by a policy decision are not drops either:
//! they are counted by [`super::SamplingMetrics`]. With those, the accounting invariant is
//! accepted = exported + not sampled + dropped (all reasons) + still buffered.

use tailgate_wire::Signal;

use super::cell::Counter;
use super::registry::RegistryBuilder;

/// Why an accepted item was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The item was rejected on its own inside an accepted request (a span with a bad trace or
    /// span id); the request's partial-success answer told the sender.
    InvalidSpan,
    /// The exporter gave up: a permanent error, or retries exhausted.
    ExportFailed,
    /// The trace grew past `maximum_trace_size_bytes` before its decision, and it and its later
    /// spans were dropped.
    TraceTooLarge,
    /// The gateway shut down with the item still unsent at a drain deadline (or handed to a
    /// pipeline already closed): data the operator did not choose to lose.
    Shutdown,
    /// The trace was still buffered at shutdown and `drop_pending_traces_on_shutdown` asked for
    /// it to be dropped rather than decided: lost by choice.
    DropPending,
    /// An exporter's sending queue had no room and its `block_on_overflow: false` asked to drop
    /// rather than push back.
    QueueFull,
    /// A persistent queue found the item's record damaged on disk (a write cut short by a
    /// crash or power loss, bytes changed) and skipped it. The count is what the damaged
    /// record's header claimed, when it was readable.
    QueueDamaged,
    /// A routing connector's resource group met no route and the connector has no
    /// `default_pipelines`.
    Unrouted,
    /// A routing condition failed to evaluate under `error_mode: propagate`: the Collector
    /// fails the whole request, and so does tailgate, after accepting it.
    RoutingError,
    /// A failover connector's lowest priority level failed the data too.
    FailoverExhausted,
    /// A `filter` processor's condition met it: dropped by the operator's choice (the same
    /// count as `otelcol_processor_filter_*_filtered`).
    Filtered,
    /// A filter condition failed to evaluate under `error_mode: propagate`: the Collector
    /// fails the whole request, and so does tailgate, after accepting it.
    FilterError,
}

impl DropReason {
    /// Every reason, in the order their series are registered.
    pub const ALL: [DropReason; 12] = [
        DropReason::InvalidSpan,
        DropReason::ExportFailed,
        DropReason::TraceTooLarge,
        DropReason::Shutdown,
        DropReason::DropPending,
        DropReason::QueueFull,
        DropReason::QueueDamaged,
        DropReason::Unrouted,
        DropReason::RoutingError,
        DropReason::FailoverExhausted,
        DropReason::Filtered,
        DropReason::FilterError,
    ];

    /// The value of the `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::InvalidSpan => "invalid_span",
            DropReason::ExportFailed => "export_failed",
            DropReason::TraceTooLarge => "trace_too_large",
            DropReason::Shutdown => "shutdown",
            DropReason::DropPending => "drop_pending_on_shutdown",
            DropReason::QueueFull => "queue_full",
            DropReason::QueueDamaged => "queue_damaged",
            DropReason::Unrouted => "unrouted",
            DropReason::RoutingError => "routing_error",
            DropReason::FailoverExhausted => "failover_exhausted",
            DropReason::Filtered => "filtered",
            DropReason::FilterError => "filter_error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const REASONS: usize = DropReason::ALL.len();

/// One shard's drop counters, per signal and reason.
#[derive(Debug, Clone)]
pub struct DropMetrics {
    spans: [Counter; REASONS],
    metric_points: [Counter; REASONS],
    log_records: [Counter; REASONS],
}

impl DropMetrics {
    /// Registers the drop families on `shard`, one series per reason.
    pub fn register(builder: &mut RegistryBuilder, shard: usize) -> Self {
        let shard = shard.to_string();
        let mut family = |item: &str, item_help: &str| {
            DropReason::ALL.map(|reason| {
                builder.counter(
                    &format!("tailgate_dropped_{item}"),
                    &format!("Number of accepted {item_help} the gateway lost, by reason."),
                    &[("reason", reason.as_str()), ("shard", shard.as_str())],
                )
            })
        };
        DropMetrics {
            spans: family("spans", "spans"),
            metric_points: family("metric_points", "metric points"),
            log_records: family("log_records", "log records"),
        }
    }

    /// Counts `n` items of `signal` lost for `reason`.
    #[inline]
    pub fn add(&self, signal: Signal, reason: DropReason, n: u64) {
        self.counter(signal, reason).add(n);
    }

    /// The counter of `signal` and `reason`.
    pub fn counter(&self, signal: Signal, reason: DropReason) -> &Counter {
        let row = match signal {
            Signal::Traces => &self.spans,
            Signal::Metrics => &self.metric_points,
            Signal::Logs => &self.log_records,
        };
        &row[reason.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_in_index_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn every_reason_has_a_series_from_the_start() {
        let mut b = RegistryBuilder::new();
        let d = DropMetrics::register(&mut b, 1);
        d.add(Signal::Traces, DropReason::ExportFailed, 7);
        let mut out = String::new();
        b.build().render_prometheus(&mut out);
        assert!(out.contains("tailgate_dropped_spans{reason=\"export_failed\",shard=\"1\"} 7\n"));
        for reason in DropReason::ALL {
            for family in [
                "tailgate_dropped_spans",
                "tailgate_dropped_metric_points",
                "tailgate_dropped_log_records",
            ] {
                let prefix = format!("{family}{{reason=\"{}\",shard=\"1\"}} ", reason.as_str());
                assert!(out.contains(&prefix), "missing {prefix}");
            }
        }
        assert_eq!(d.counter(Signal::Traces, DropReason::ExportFailed).get(), 7);
    }
}
