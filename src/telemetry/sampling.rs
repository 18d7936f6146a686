//! The tail-sampling families, with the Collector's `tail_sampling` processor names.
//!
//! The Collector labels per-policy series with `policy` (the policy's configured name) and
//! decisions with `sampled` (`true`/`false`) and `decision` (`sampled`, `not_sampled`,
//! `dropped`); so do we, plus `shard`. The decision latency histogram keeps the Collector's unit
//! (microseconds) and bucket bounds, so `le` thresholds in existing dashboards still mean the
//! same latency. `tailgate_decided_spans` is ours: the Collector counts sampled *traces*
//! globally, while the accounting invariant needs the *spans* each decision released or
//! discarded.
//!
//! The stress relief families are ours too (the Collector has no stress relief), per shard
//! like the state they show: `tailgate_sampling_stress_relief_active` (0 or 1),
//! `_activations`, and the traces and spans it decided at arrival by `decision`. Spans it
//! decided are in none of the other decision counters: not in `tailgate_decided_spans` (no
//! policy saw them) and not in the late spans.

use std::time::Duration;

use super::cell::{Counter, Gauge, Histogram};
use super::registry::{HistogramPart, RegistryBuilder};

/// The Collector's bucket bounds for `sampling_decision_latency`, in microseconds, and for
/// `sampling_decision_timer_latency`, in milliseconds.
pub const DECISION_LATENCY_BOUNDS_US: [u64; 23] = [
    1, 2, 5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 2000, 3000, 4000, 5000,
    10000, 20000, 30000, 50000,
];

/// The OpenTelemetry SDK's default bucket bounds, which the Collector's histograms without bounds
/// of their own (`sampling_trace_removal_age`, in whole seconds) use.
pub const SDK_DEFAULT_BOUNDS: [u64; 15] = [
    0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000,
];

/// The outcome of a sampling decision, as the Collector labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The policies kept the trace.
    Sampled,
    /// No policy kept the trace.
    NotSampled,
    /// A `drop` policy matched; drop wins over every sample.
    Dropped,
}

impl Decision {
    /// Every decision, in the order their series are registered.
    pub const ALL: [Decision; 3] = [Decision::Sampled, Decision::NotSampled, Decision::Dropped];

    /// The value of the `decision` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Sampled => "sampled",
            Decision::NotSampled => "not_sampled",
            Decision::Dropped => "dropped",
        }
    }

    /// The value of the `sampled` label.
    fn sampled(self) -> &'static str {
        match self {
            Decision::Sampled => "true",
            Decision::NotSampled | Decision::Dropped => "false",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const DECISIONS: usize = Decision::ALL.len();

/// One policy's cells on one shard.
#[derive(Debug, Clone)]
struct PolicyMetrics {
    decision_latency_us: Histogram,
    traces: [Counter; DECISIONS],
    spans: [Counter; DECISIONS],
}

impl PolicyMetrics {
    /// Registers policy `policy`'s cells on `shard`.
    fn register(builder: &mut RegistryBuilder, policy: &str, shard: &str) -> Self {
        let decision_latency_us = builder.histogram(
            "otelcol_processor_tail_sampling_sampling_decision_latency",
            "Latency (in microseconds) of a given sampling policy",
            &DECISION_LATENCY_BOUNDS_US,
            &[("policy", policy), ("shard", shard)],
        );
        // The Collector's newer pair is the histogram's count and sum.
        builder.counter_of(
            &decision_latency_us,
            HistogramPart::Count,
            "otelcol_processor_tail_sampling_sampling_policy_execution_count",
            "Total number of executions of a specific sampling policy",
            &[("policy", policy), ("shard", shard)],
        );
        builder.counter_of(
            &decision_latency_us,
            HistogramPart::Sum,
            "otelcol_processor_tail_sampling_sampling_policy_execution_time_sum",
            "Total time spent (in microseconds) executing a specific sampling policy",
            &[("policy", policy), ("shard", shard)],
        );
        PolicyMetrics {
            decision_latency_us,
            traces: Decision::ALL.map(|d| {
                builder.counter(
                    "otelcol_processor_tail_sampling_count_traces_sampled",
                    "Count of traces that were sampled or not per sampling policy",
                    &[
                        ("policy", policy),
                        ("sampled", d.sampled()),
                        ("decision", d.as_str()),
                        ("shard", shard),
                    ],
                )
            }),
            spans: Decision::ALL.map(|d| {
                builder.counter(
                    "otelcol_processor_tail_sampling_count_spans_sampled",
                    "Count of spans that were sampled or not per sampling policy",
                    &[
                        ("policy", policy),
                        ("sampled", d.sampled()),
                        ("decision", d.as_str()),
                        ("shard", shard),
                    ],
                )
            }),
        }
    }
}

/// One shard's tail-sampling cells.
#[derive(Debug, Clone)]
pub struct SamplingMetrics {
    policies: Vec<PolicyMetrics>,
    global_traces: [Counter; DECISIONS],
    decided_spans: [Counter; DECISIONS],
    /// `otelcol_processor_tail_sampling_sampling_traces_on_memory`: traces buffered, awaiting or
    /// past their decision.
    pub traces_on_memory: Gauge,
    /// `otelcol_processor_tail_sampling_new_trace_id_received`: first spans of traces.
    pub new_trace_id_received: Counter,
    /// `otelcol_processor_tail_sampling_count_spans_with_unparseable_tracestate`: kept spans
    /// whose tracestate could not take their trace's threshold (the tracestate gate).
    pub unparseable_tracestates: Counter,
    /// `otelcol_processor_tail_sampling_sampling_policy_evaluation_error`: top-level policy
    /// evaluations that failed (an `ottl_condition` under `error_mode: propagate`).
    pub policy_evaluation_errors: Counter,
    /// `tailgate_sampling_early_decisions{reason}`: traces decided before their wait ended.
    early_decisions: [Counter; EarlyReason::ALL.len()],
    /// `tailgate_sampling_late_spans{decision}`: spans that arrived after their trace's decision.
    late_spans: [Counter; 2],
    /// `tailgate_sampling_oversized_late_spans{decision}`: of the late spans, those of traces
    /// decided early for their size.
    oversized_late_spans: [Counter; 2],
    /// `sampling_trace_removal_age`: seconds from a trace's first span to its decision.
    removal_age_s: Histogram,
    /// `sampling_late_span_age`: seconds from a trace's decision to a late span's arrival.
    late_span_age_s: Histogram,
    /// `sampling_decision_timer_latency`: milliseconds each run of the decision timer took.
    timer_latency_ms: Histogram,
    /// `tailgate_sampling_stress_relief_active`: 1 while the shard is in stress relief.
    pub stress_relief_active: Gauge,
    /// `tailgate_sampling_stress_relief_activations`: times the shard went into stress relief.
    pub stress_relief_activations: Counter,
    /// `tailgate_sampling_stress_relief_traces{decision}`: traces decided at arrival.
    stress_relief_traces: [Counter; 2],
    /// `tailgate_sampling_stress_relief_spans{decision}`: spans of those traces, forwarded or
    /// dropped, whenever they arrived.
    stress_relief_spans: [Counter; 2],
}

/// Why a trace was decided before its wait ended, as `tailgate_sampling_early_decisions` labels
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EarlyReason {
    /// The buffer held `num_traces` traces.
    NumTraces,
    /// The buffer held more bytes than its soft limit.
    Memory,
    /// The gateway was shutting down.
    Shutdown,
    /// The trace alone passed the oversized bound (an eighth of its shard's soft limit).
    TraceSize,
}

impl EarlyReason {
    /// Every reason, in the order their series are registered.
    pub const ALL: [EarlyReason; 4] = [
        EarlyReason::NumTraces,
        EarlyReason::Memory,
        EarlyReason::Shutdown,
        EarlyReason::TraceSize,
    ];

    /// The value of the `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            EarlyReason::NumTraces => "num_traces",
            EarlyReason::Memory => "memory",
            EarlyReason::Shutdown => "shutdown",
            EarlyReason::TraceSize => "trace_size",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl SamplingMetrics {
    /// Registers the tail-sampling families on `shard` for the top-level policies named
    /// `policies`, in configuration order; later calls name a policy by its index there.
    pub fn register(builder: &mut RegistryBuilder, shard: usize, policies: &[&str]) -> Self {
        let shard = shard.to_string();
        let shard = shard.as_str();
        let policies = policies
            .iter()
            .map(|&policy| PolicyMetrics::register(builder, policy, shard))
            .collect();
        let global_traces = Decision::ALL.map(|d| {
            builder.counter(
                "otelcol_processor_tail_sampling_global_count_traces_sampled",
                "Global count of traces that were sampled or not by at least one policy",
                &[
                    ("sampled", d.sampled()),
                    ("decision", d.as_str()),
                    ("shard", shard),
                ],
            )
        });
        let decided_spans = Decision::ALL.map(|d| {
            builder.counter(
                "tailgate_decided_spans",
                "Number of spans whose trace's final sampling decision released or discarded them.",
                &[("decision", d.as_str()), ("shard", shard)],
            )
        });
        let only_shard = [("shard", shard)];
        let early_decisions = EarlyReason::ALL.map(|reason| {
            builder.counter(
                "tailgate_sampling_early_decisions",
                "Number of traces decided before decision_wait ended, by reason.",
                &[("reason", reason.as_str()), ("shard", shard)],
            )
        });
        let late_spans = [Decision::Sampled, Decision::NotSampled].map(|d| {
            builder.counter(
                "tailgate_sampling_late_spans",
                "Number of spans that arrived after their trace was decided: forwarded when it \
                 was sampled, dropped when not.",
                &[("decision", d.as_str()), ("shard", shard)],
            )
        });
        // The Collector's name for the same spans, served from the same cells.
        for (counter, sampled) in late_spans.iter().zip(["true", "false"]) {
            builder.counter_alias(
                counter,
                "otelcol_processor_tail_sampling_early_releases_from_cache_decision",
                "Number of spans that were able to be immediately released due to a decision \
                 cache hit.",
                &[("sampled", sampled), ("shard", shard)],
            );
        }
        let oversized_late_spans = [Decision::Sampled, Decision::NotSampled].map(|d| {
            builder.counter(
                "tailgate_sampling_oversized_late_spans",
                "Number of late spans of traces decided early for their size (reason trace_size): \
                 forwarded when the trace was sampled, dropped when not.",
                &[("decision", d.as_str()), ("shard", shard)],
            )
        });
        let mut relief = |name: &str, help: &str| {
            [Decision::Sampled, Decision::NotSampled]
                .map(|d| builder.counter(name, help, &[("decision", d.as_str()), ("shard", shard)]))
        };
        let stress_relief_traces = relief(
            "tailgate_sampling_stress_relief_traces",
            "Number of traces stress relief decided at their arrival, by trace id: kept \
             (sampled) or not.",
        );
        let stress_relief_spans = relief(
            "tailgate_sampling_stress_relief_spans",
            "Number of spans of traces stress relief decided: forwarded (sampled) or dropped \
             (not_sampled), the first span and every later one.",
        );
        SamplingMetrics {
            stress_relief_active: builder.gauge(
                "tailgate_sampling_stress_relief_active",
                "1 while this shard is in stress relief (new traces decided at arrival), else 0.",
                &only_shard,
            ),
            stress_relief_activations: builder.counter(
                "tailgate_sampling_stress_relief_activations",
                "Number of times this shard went into stress relief.",
                &only_shard,
            ),
            stress_relief_traces,
            stress_relief_spans,
            early_decisions,
            late_spans,
            oversized_late_spans,
            removal_age_s: builder.histogram(
                "otelcol_processor_tail_sampling_sampling_trace_removal_age",
                "Time (in seconds) from arrival of a new trace until its removal from memory",
                &SDK_DEFAULT_BOUNDS,
                &only_shard,
            ),
            late_span_age_s: builder.histogram(
                "otelcol_processor_tail_sampling_sampling_late_span_age",
                "Time (in seconds) from the sampling decision was taken and the arrival of a late \
                 span",
                &SDK_DEFAULT_BOUNDS,
                &only_shard,
            ),
            timer_latency_ms: builder.histogram(
                "otelcol_processor_tail_sampling_sampling_decision_timer_latency",
                "Latency (in milliseconds) of each run of the sampling decision timer",
                &DECISION_LATENCY_BOUNDS_US,
                &only_shard,
            ),
            policies,
            global_traces,
            decided_spans,
            traces_on_memory: builder.gauge(
                "otelcol_processor_tail_sampling_sampling_traces_on_memory",
                "Tracks the number of traces current on memory",
                &only_shard,
            ),
            new_trace_id_received: builder.counter(
                "otelcol_processor_tail_sampling_new_trace_id_received",
                "Counts the arrival of new traces",
                &only_shard,
            ),
            policy_evaluation_errors: builder.counter(
                "otelcol_processor_tail_sampling_sampling_policy_evaluation_error",
                "Count of sampling policy evaluation errors",
                &only_shard,
            ),
            unparseable_tracestates: builder.counter(
                "otelcol_processor_tail_sampling_count_spans_with_unparseable_tracestate",
                "Count of spans whose tracestate could not be parsed when writing the sampling \
                 threshold",
                &only_shard,
            ),
        }
    }

    /// Records one evaluation of policy `policy` (its index at registration): how long it took
    /// and what it decided for the trace of `spans` spans.
    ///
    /// # Panics
    ///
    /// If `policy` is not an index given at registration.
    #[inline]
    pub fn policy_evaluated(&self, policy: usize, latency_us: u64, decision: Decision, spans: u64) {
        let p = &self.policies[policy];
        p.decision_latency_us.record(latency_us);
        p.traces[decision.index()].inc();
        p.spans[decision.index()].add(spans);
    }

    /// Records a trace's final decision, covering `spans` spans, `age` after its first span
    /// arrived (the trace leaves memory with its decision).
    #[inline]
    pub fn trace_decided(&self, decision: Decision, spans: u64, age: Duration) {
        self.global_traces[decision.index()].inc();
        self.decided_spans[decision.index()].add(spans);
        self.removal_age_s.record(age.as_secs());
    }

    /// Counts `spans` late spans of traces decided early for their size, `sampled` or not.
    #[inline]
    pub fn oversized_late_spans(&self, sampled: bool, spans: u64) {
        self.oversized_late_spans[usize::from(!sampled)].add(spans);
    }

    /// Records a late span that arrived `age_s` whole seconds after its trace's decision.
    #[inline]
    pub fn late_span_age(&self, age_s: u32) {
        self.late_span_age_s.record(u64::from(age_s));
    }

    /// Records one run of the decision timer (late spans pushed, due traces decided).
    #[inline]
    pub fn decision_run(&self, took: Duration) {
        self.timer_latency_ms
            .record(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
    }

    /// Counts a trace decided early for `reason`.
    #[inline]
    pub fn decided_early(&self, reason: EarlyReason) {
        self.early_decisions[reason.index()].inc();
    }

    /// Counts `spans` late spans of traces decided `sampled` or not.
    #[inline]
    pub fn late_spans(&self, sampled: bool, spans: u64) {
        self.late_spans[usize::from(!sampled)].add(spans);
    }

    /// Counts what stress relief decided in one request: traces and spans, kept or not.
    #[inline]
    pub fn stress_relief(&self, traces: [u64; 2], spans: [u64; 2]) {
        for i in 0..2 {
            self.stress_relief_traces[i].add(traces[i]);
            self.stress_relief_spans[i].add(spans[i]);
        }
    }

    /// Spans released or discarded with `decision` so far.
    pub fn decided_spans(&self, decision: Decision) -> u64 {
        self.decided_spans[decision.index()].get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_and_global_series_carry_the_collector_labels() {
        let mut b = RegistryBuilder::new();
        let s = SamplingMetrics::register(&mut b, 0, &["errors", "slow"]);
        s.policy_evaluated(1, 30, Decision::Sampled, 7);
        s.policy_evaluated(1, 20, Decision::NotSampled, 3);
        s.trace_decided(Decision::Dropped, 12, Duration::from_millis(2_900));
        s.late_spans(true, 4);
        s.late_span_age(7);
        s.decision_run(Duration::from_micros(3_500));
        let mut out = String::new();
        b.build().render_prometheus(&mut out);
        for line in [
            "otelcol_processor_tail_sampling_sampling_decision_latency_bucket{policy=\"slow\",shard=\"0\",le=\"10\"} 0\n",
            "otelcol_processor_tail_sampling_sampling_decision_latency_bucket{policy=\"slow\",shard=\"0\",le=\"25\"} 1\n",
            "otelcol_processor_tail_sampling_sampling_decision_latency_bucket{policy=\"slow\",shard=\"0\",le=\"50\"} 2\n",
            "otelcol_processor_tail_sampling_sampling_decision_latency_count{policy=\"slow\",shard=\"0\"} 2\n",
            "otelcol_processor_tail_sampling_count_traces_sampled{policy=\"slow\",sampled=\"true\",decision=\"sampled\",shard=\"0\"} 1\n",
            "otelcol_processor_tail_sampling_global_count_traces_sampled{sampled=\"false\",decision=\"dropped\",shard=\"0\"} 1\n",
            "tailgate_decided_spans{decision=\"dropped\",shard=\"0\"} 12\n",
            "otelcol_processor_tail_sampling_sampling_traces_on_memory{shard=\"0\"} 0\n",
            "otelcol_processor_tail_sampling_count_spans_sampled{policy=\"slow\",sampled=\"true\",decision=\"sampled\",shard=\"0\"} 7\n",
            "otelcol_processor_tail_sampling_count_spans_sampled{policy=\"slow\",sampled=\"false\",decision=\"not_sampled\",shard=\"0\"} 3\n",
            "otelcol_processor_tail_sampling_sampling_policy_execution_count{policy=\"slow\",shard=\"0\"} 2\n",
            "otelcol_processor_tail_sampling_sampling_policy_execution_time_sum{policy=\"slow\",shard=\"0\"} 50\n",
            "otelcol_processor_tail_sampling_sampling_policy_execution_count{policy=\"errors\",shard=\"0\"} 0\n",
            "otelcol_processor_tail_sampling_sampling_trace_removal_age_bucket{shard=\"0\",le=\"0\"} 0\n",
            "otelcol_processor_tail_sampling_sampling_trace_removal_age_bucket{shard=\"0\",le=\"5\"} 1\n",
            "otelcol_processor_tail_sampling_sampling_trace_removal_age_sum{shard=\"0\"} 2\n",
            "otelcol_processor_tail_sampling_early_releases_from_cache_decision{sampled=\"true\",shard=\"0\"} 4\n",
            "tailgate_sampling_late_spans{decision=\"sampled\",shard=\"0\"} 4\n",
            "otelcol_processor_tail_sampling_sampling_late_span_age_bucket{shard=\"0\",le=\"5\"} 0\n",
            "otelcol_processor_tail_sampling_sampling_late_span_age_bucket{shard=\"0\",le=\"10\"} 1\n",
            "otelcol_processor_tail_sampling_sampling_decision_timer_latency_bucket{shard=\"0\",le=\"2\"} 0\n",
            "otelcol_processor_tail_sampling_sampling_decision_timer_latency_bucket{shard=\"0\",le=\"5\"} 1\n",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
        assert_eq!(s.decided_spans(Decision::Dropped), 12);
    }

    #[test]
    fn stress_relief_series_carry_the_shard_and_the_decision() {
        let mut b = RegistryBuilder::new();
        let s = SamplingMetrics::register(&mut b, 3, &["errors"]);
        s.stress_relief_active.set(1);
        s.stress_relief_activations.inc();
        s.stress_relief([2, 5], [7, 0]);
        let mut out = String::new();
        b.build().render_prometheus(&mut out);
        for line in [
            "tailgate_sampling_stress_relief_active{shard=\"3\"} 1\n",
            "tailgate_sampling_stress_relief_activations{shard=\"3\"} 1\n",
            "tailgate_sampling_stress_relief_traces{decision=\"sampled\",shard=\"3\"} 2\n",
            "tailgate_sampling_stress_relief_traces{decision=\"not_sampled\",shard=\"3\"} 5\n",
            "tailgate_sampling_stress_relief_spans{decision=\"sampled\",shard=\"3\"} 7\n",
            // Every series exists before its first count.
            "tailgate_sampling_stress_relief_spans{decision=\"not_sampled\",shard=\"3\"} 0\n",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
    }
}
