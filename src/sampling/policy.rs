//! One compiled policy and its evaluation: the Collector's evaluators, one variant each.
//!
//! Compiling turns the checked configuration into what evaluation reads (byte keys, hash sets,
//! regex sets, hash prefixes, thresholds) and into per-shard state (token buckets, rate windows,
//! regex result caches). Evaluation reads the trace's views in place.

use std::time::Instant;

use super::attribute::{BooleanFilter, NumericFilter, StringFilter};
use super::composite::Composite;
use super::consistent::{Threshold, TraceRandomness};
use super::limiter::{Limiter, TokenBucket};
use super::ottl_condition::OttlFilter;
use super::probabilistic::Probabilistic;
use super::trace::{status_bit, StatusMask, Trace};
use super::trace_state::TraceStateFilter;
use super::{Decision, PolicyError};
use crate::config::{self, LatencyPolicy, PolicyKind};

/// The instant a decision is made, and the rate window it falls in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) now: Instant,
    /// Whole seconds since the policy set's first decision: the Collector's one-second windows
    /// (which it counts in Unix seconds).
    pub(crate) second: u64,
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub(crate) enum Policy {
    AlwaysSample,
    Latency(LatencyPolicy),
    NumericAttribute(NumericFilter),
    Probabilistic(Probabilistic),
    StatusCode(StatusMask),
    StringAttribute(StringFilter),
    TraceState(TraceStateFilter),
    TraceFlags,
    RateLimiting(Limiter),
    BytesLimiting(Limiter),
    SpanCount { min: u64, max: Option<u64> },
    BooleanAttribute(BooleanFilter),
    OttlCondition(OttlFilter),
    And(Vec<Policy>),
    Not(Box<Policy>),
    Drop(Vec<Policy>),
    Composite(Composite),
}

impl Policy {
    /// Compiles `cfg` for one of `shards` shards.
    pub(crate) fn compile(cfg: &config::Policy, shards: u64) -> Result<Policy, PolicyError> {
        let all = |subs: &[config::Policy]| -> Result<Vec<Policy>, PolicyError> {
            subs.iter().map(|p| Policy::compile(p, shards)).collect()
        };
        Ok(match &cfg.kind {
            PolicyKind::AlwaysSample => Policy::AlwaysSample,
            PolicyKind::Latency(latency) => Policy::Latency(*latency),
            PolicyKind::NumericAttribute(p) => Policy::NumericAttribute(NumericFilter::new(p)),
            PolicyKind::Probabilistic(p) => {
                Policy::Probabilistic(Probabilistic::new(&p.hash_salt, p.sampling_percentage))
            }
            PolicyKind::StatusCode(p) => Policy::StatusCode(
                p.status_codes
                    .iter()
                    .fold(0, |mask, code| mask | status_bit(code.otlp_code())),
            ),
            PolicyKind::StringAttribute(p) => {
                Policy::StringAttribute(StringFilter::new(p).map_err(|err| PolicyError::Regex {
                    policy: cfg.name.clone(),
                    reason: err.to_string(),
                })?)
            }
            PolicyKind::TraceState(p) => {
                Policy::TraceState(TraceStateFilter::new(&p.key, &p.values))
            }
            PolicyKind::TraceFlags => Policy::TraceFlags,
            PolicyKind::RateLimiting(p) => Policy::RateLimiting(Limiter::new(TokenBucket::new(
                p.spans_per_second,
                p.burst_capacity,
                shards,
            ))),
            PolicyKind::BytesLimiting(p) => Policy::BytesLimiting(Limiter::new(TokenBucket::new(
                p.bytes_per_second,
                p.burst_capacity,
                shards,
            ))),
            PolicyKind::SpanCount(p) => Policy::SpanCount {
                min: u64::from(p.min_spans),
                max: p.max_spans.map(u64::from),
            },
            PolicyKind::BooleanAttribute(p) => Policy::BooleanAttribute(BooleanFilter::new(p)),
            PolicyKind::OttlCondition(p) => Policy::OttlCondition(OttlFilter::new(&cfg.name, p)),
            PolicyKind::And(subs) => Policy::And(all(subs)?),
            PolicyKind::Not(sub) => Policy::Not(Box::new(Policy::compile(sub, shards)?)),
            PolicyKind::Drop(subs) => Policy::Drop(all(subs)?),
            PolicyKind::Composite(p) => Policy::Composite(Composite::compile(p, shards)?),
        })
    }

    /// Whether this is a `drop` policy, which the Collector evaluates before all others.
    pub(crate) fn is_drop(&self) -> bool {
        matches!(self, Policy::Drop(_))
    }

    /// Whether evaluating this policy may read the trace's spans (attributes, trace states, the
    /// latency policy's span-by-span scan), rather than only the facts gathered as they arrived.
    /// `zero_times`: whether the trace has a span with a zero timestamp, which turns the latency
    /// policy's answer from the trace's duration into the span-by-span scan.
    pub(crate) fn reads_spans(&self, zero_times: bool) -> bool {
        match self {
            Policy::AlwaysSample
            | Policy::Probabilistic(_)
            | Policy::StatusCode(_)
            | Policy::TraceFlags
            | Policy::RateLimiting(_)
            | Policy::BytesLimiting(_)
            | Policy::SpanCount { .. } => false,
            Policy::Latency(latency) => zero_times || latency.upper_threshold_ms.is_some(),
            Policy::NumericAttribute(_)
            | Policy::StringAttribute(_)
            | Policy::TraceState(_)
            | Policy::BooleanAttribute(_)
            | Policy::OttlCondition(_) => true,
            Policy::And(subs) | Policy::Drop(subs) => {
                subs.iter().any(|p| p.reads_spans(zero_times))
            }
            Policy::Not(sub) => sub.reads_spans(zero_times),
            Policy::Composite(composite) => composite.reads_spans(zero_times),
        }
    }

    /// Whether evaluating this policy can fail: an `ottl_condition` policy with `error_mode:
    /// propagate`, here or under it.
    pub(crate) fn may_fail(&self) -> bool {
        match self {
            Policy::OttlCondition(filter) => filter.may_fail(),
            Policy::And(subs) | Policy::Drop(subs) => subs.iter().any(Policy::may_fail),
            Policy::Not(sub) => sub.may_fail(),
            Policy::Composite(composite) => composite.may_fail(),
            _ => false,
        }
    }

    /// The evaluations that failed, here or under this policy, since the last call: the
    /// failing `ottl_condition` policies read as NotSampled and note it, for the policy set to
    /// count.
    pub(crate) fn take_failures(&mut self) -> u64 {
        match self {
            Policy::OttlCondition(filter) => filter.take_failures(),
            Policy::And(subs) | Policy::Drop(subs) => {
                subs.iter_mut().map(Policy::take_failures).sum()
            }
            Policy::Not(sub) => sub.take_failures(),
            Policy::Composite(composite) => composite.take_failures(),
            _ => 0,
        }
    }

    /// The policy's decision for `trace`.
    pub(crate) fn evaluate(&mut self, trace: &Trace<'_>, clock: Clock) -> Decision {
        let sampled = |yes: bool| {
            if yes {
                Decision::Sampled
            } else {
                Decision::NotSampled
            }
        };
        match self {
            Policy::AlwaysSample => Decision::Sampled,
            Policy::Latency(latency) => sampled(latency_matches(latency, trace)),
            Policy::NumericAttribute(filter) => filter.evaluate(trace),
            Policy::Probabilistic(p) => sampled(p.samples(trace.trace_id())),
            Policy::StatusCode(mask) => sampled(trace.statuses() & *mask != 0),
            Policy::StringAttribute(filter) => filter.evaluate(trace),
            Policy::TraceState(filter) => sampled(
                trace
                    .spans()
                    .iter()
                    .any(|s| filter.matches(s.span.trace_state())),
            ),
            Policy::TraceFlags => sampled(trace.has_sampled_flag()),
            Policy::RateLimiting(limiter) => sampled(limiter.allow(trace.span_count(), clock.now)),
            Policy::BytesLimiting(limiter) => sampled(limiter.allow(trace.bytes(), clock.now)),
            Policy::SpanCount { min, max } => {
                let n = trace.span_count();
                sampled(n >= *min && max.is_none_or(|max| n <= max))
            }
            Policy::BooleanAttribute(filter) => filter.evaluate(trace),
            Policy::OttlCondition(filter) => filter.evaluate(trace),
            Policy::And(subs) => {
                // Every sub-policy must sample; the first that does not ends the evaluation,
                // so stateful sub-policies after it are not consulted.
                for sub in subs {
                    if matches!(
                        sub.evaluate(trace, clock),
                        Decision::NotSampled | Decision::InvertNotSampled
                    ) {
                        return Decision::NotSampled;
                    }
                }
                Decision::Sampled
            }
            Policy::Not(sub) => match sub.evaluate(trace, clock) {
                Decision::Sampled => Decision::NotSampled,
                Decision::NotSampled => Decision::Sampled,
                // The Collector lets other decisions, the inverted ones included, through.
                other => other,
            },
            Policy::Drop(subs) => {
                for sub in subs {
                    if matches!(
                        sub.evaluate(trace, clock),
                        Decision::NotSampled | Decision::InvertNotSampled
                    ) {
                        return Decision::NotSampled;
                    }
                }
                Decision::Dropped
            }
            Policy::Composite(composite) => composite.evaluate(trace, clock),
        }
    }

    /// The policy's decision for `trace` under the tracestate gate, with the threshold it
    /// reports (meaningful when it samples; see `super::consistent`). `rate_limiting` and
    /// `bytes_limiting` decide against their round's cut once rounds are budgeted (only those at
    /// the top level or in a top-level `and` are: see [`Policy::budgets_rounds`]).
    pub(crate) fn evaluate_consistently(
        &mut self,
        trace: &Trace<'_>,
        clock: Clock,
        randomness: &TraceRandomness,
    ) -> (Decision, Threshold) {
        let decided = |(kept, threshold): (bool, Threshold)| {
            if kept {
                (Decision::Sampled, threshold)
            } else {
                (Decision::NotSampled, Threshold::ALWAYS)
            }
        };
        match self {
            Policy::Probabilistic(p) => {
                let (kept, threshold) = p.samples_consistently(trace.trace_id(), randomness);
                // Reported whatever the decision, as the Collector's evaluator does; only a
                // sampled decision's threshold is used.
                let decision = if kept {
                    Decision::Sampled
                } else {
                    Decision::NotSampled
                };
                (decision, threshold)
            }
            Policy::RateLimiting(limiter) => {
                decided(limiter.allow_consistently(trace.span_count(), randomness.value, clock.now))
            }
            Policy::BytesLimiting(limiter) => {
                decided(limiter.allow_consistently(trace.bytes(), randomness.value, clock.now))
            }
            Policy::And(subs) => {
                // Kept only when every sub-policy keeps it, so with the strictest threshold.
                let mut strictest = Threshold::ALWAYS;
                for sub in subs {
                    let (decision, threshold) = sub.evaluate_consistently(trace, clock, randomness);
                    if matches!(decision, Decision::NotSampled | Decision::InvertNotSampled) {
                        return (Decision::NotSampled, Threshold::ALWAYS);
                    }
                    strictest = strictest.max(threshold);
                }
                (Decision::Sampled, strictest)
            }
            other => (other.evaluate(trace, clock), Threshold::ALWAYS),
        }
    }

    /// Whether the policy budgets whole decision rounds under the tracestate gate: a limiter,
    /// or an `and` holding one (the Collector's batch evaluators at the top level).
    pub(crate) fn budgets_rounds(&self) -> bool {
        match self {
            Policy::RateLimiting(_) | Policy::BytesLimiting(_) => true,
            Policy::And(subs) => subs.iter().any(Policy::budgets_rounds),
            _ => false,
        }
    }

    /// Adds `trace` to the round a limiter budgets; an `and` adds it to its limiters when every
    /// other sub-policy samples it (a trace it cannot keep takes no budget).
    pub(crate) fn add_candidate(
        &mut self,
        trace: &Trace<'_>,
        clock: Clock,
        randomness: &TraceRandomness,
    ) {
        match self {
            Policy::RateLimiting(limiter) => {
                limiter.add_candidate(randomness.value, trace.span_count())
            }
            Policy::BytesLimiting(limiter) => {
                limiter.add_candidate(randomness.value, trace.bytes())
            }
            Policy::And(subs) => {
                let eligible = subs.iter_mut().all(|sub| {
                    sub.budgets_rounds()
                        || !matches!(
                            sub.evaluate(trace, clock),
                            Decision::NotSampled | Decision::InvertNotSampled
                        )
                });
                if eligible {
                    for sub in subs.iter_mut().filter(|sub| sub.budgets_rounds()) {
                        sub.add_candidate(trace, clock, randomness);
                    }
                }
            }
            _ => {}
        }
    }

    /// Budgets the round the candidates were added to.
    pub(crate) fn close_round(&mut self, now: Instant) {
        match self {
            Policy::RateLimiting(limiter) | Policy::BytesLimiting(limiter) => {
                limiter.close_round(now)
            }
            Policy::And(subs) => subs.iter_mut().for_each(|sub| sub.close_round(now)),
            _ => {}
        }
    }
}

/// The Collector's `latency` evaluator. It matches when the trace lasts more than `threshold_ms`
/// (exclusive, in whole milliseconds) and, with an upper threshold, at most
/// `upper_threshold_ms`. The lower bound is exclusive with or without an upper one: that is what
/// contrib v0.161.0 does (tests/collector_parity.rs found a trace of exactly the threshold kept
/// here and not there; older releases' source read `>=` without an upper bound). It judges the running duration after each span
/// in arrival order and matches at the first span where the test holds, so with an upper
/// threshold a trace whose first spans fit the window matches even if later spans stretch it
/// past the upper bound. Without an upper threshold, and with no zero timestamps, the running
/// duration only grows, so the whole trace's duration decides at once.
fn latency_matches(latency: &LatencyPolicy, trace: &Trace<'_>) -> bool {
    let lower = i64::try_from(latency.threshold_ms).unwrap_or(i64::MAX);
    match latency.upper_threshold_ms {
        None if trace.span_count() > 0 && !trace.has_zero_times() => trace.duration_ms() > lower,
        None => trace.any_running_duration_ms(|ms| ms > lower),
        Some(upper) => {
            let upper = i64::try_from(upper).unwrap_or(i64::MAX);
            trace.any_running_duration_ms(|ms| lower < ms && ms <= upper)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

    use super::super::testing::*;
    use super::super::PolicySet;
    use super::*;
    use crate::config::{
        BytesLimitingPolicy, CompositePolicy, RateAllocation, RateLimitingPolicy, SpanCountPolicy,
        StatusCode, StatusCodePolicy, StringAttributePolicy, TraceStatePolicy,
    };

    fn latency(threshold_ms: u64, upper_threshold_ms: Option<u64>) -> PolicyKind {
        PolicyKind::Latency(LatencyPolicy {
            threshold_ms,
            upper_threshold_ms,
        })
    }

    /// One group holding these spans.
    fn spans(spans: Vec<Span>) -> Vec<ResourceSpans> {
        vec![group(None, spans)]
    }

    fn route(value: &str) -> PolicyKind {
        PolicyKind::StringAttribute(StringAttributePolicy {
            key: "http.route".to_string(),
            values: vec![value.to_string()],
            enabled_regex_matching: false,
            cache_max_size: 128,
            invert_match: false,
        })
    }

    fn not_route(value: &str) -> PolicyKind {
        let PolicyKind::StringAttribute(mut p) = route(value) else {
            unreachable!()
        };
        p.invert_match = true;
        PolicyKind::StringAttribute(p)
    }

    fn routed(value: &str) -> Vec<ResourceSpans> {
        spans(vec![with_attrs(
            span(0, 0, 1),
            vec![str_attr("http.route", value)],
        )])
    }

    #[test]
    fn latency_without_upper_bound_is_exclusive() {
        // Earliest start to latest end, whichever spans carry them.
        let t = || {
            spans(vec![
                span(0, 100, 400),
                span(1, 0, 300),
                span(2, 250, 1_000),
            ])
        };
        assert_eq!(evaluate_one(latency(999, None), t()), Decision::Sampled);
        assert_eq!(
            evaluate_one(latency(1_000, None), t()),
            Decision::NotSampled
        );
        // Sub-millisecond remainders are truncated.
        let mut almost = span(0, 0, 0);
        almost.end_time_unix_nano = T0 + 1_000 * MS - 1;
        assert_eq!(
            evaluate_one(latency(999, None), spans(vec![almost])),
            Decision::NotSampled
        );
    }

    #[test]
    fn latency_with_upper_bound_excludes_the_lower_one() {
        let t = |ms| spans(vec![span(0, 0, ms)]);
        assert_eq!(
            evaluate_one(latency(1_000, Some(2_000)), t(1_000)),
            Decision::NotSampled
        );
        assert_eq!(
            evaluate_one(latency(1_000, Some(2_000)), t(1_001)),
            Decision::Sampled
        );
        assert_eq!(
            evaluate_one(latency(1_000, Some(2_000)), t(2_000)),
            Decision::Sampled
        );
        assert_eq!(
            evaluate_one(latency(1_000, Some(2_000)), t(2_001)),
            Decision::NotSampled
        );
    }

    #[test]
    fn latency_with_upper_bound_matches_on_a_prefix_of_the_spans() {
        // The Collector checks the running duration after each span: 1.5 s after the first
        // span fits (1 s, 2 s], even though the whole trace lasts 5 s.
        let fits_first = spans(vec![span(0, 0, 1_500), span(1, 0, 5_000)]);
        assert_eq!(
            evaluate_one(latency(1_000, Some(2_000)), fits_first),
            Decision::Sampled
        );
        let long_first = spans(vec![span(0, 0, 5_000), span(1, 0, 1_500)]);
        assert_eq!(
            evaluate_one(latency(1_000, Some(2_000)), long_first),
            Decision::NotSampled
        );
    }

    #[test]
    fn latency_reads_zero_times_as_unset() {
        // A span that ends at 0 is skipped over by the running maximum; one that starts at 0
        // becomes the running minimum until the next span replaces it.
        let mut zero_start = span(1, 0, 0);
        zero_start.start_time_unix_nano = 0;
        zero_start.end_time_unix_nano = 0;
        let t = spans(vec![span(0, 0, 100), zero_start, span(2, 50, 1_500)]);
        // Running: [0,100] → 100 ms; then min = 0 (unset), max stays → huge; the Collector
        // matches there (the duration from the epoch is far above 1 s).
        assert_eq!(evaluate_one(latency(1_000, None), t), Decision::Sampled);
        let none: Vec<ResourceSpans> = vec![];
        assert_eq!(
            evaluate_one(latency(0, None), none),
            Decision::NotSampled,
            "no spans"
        );
    }

    #[test]
    fn status_code_matches_any_span() {
        let codes = |codes: Vec<StatusCode>| {
            PolicyKind::StatusCode(StatusCodePolicy {
                status_codes: codes,
            })
        };
        let t = || spans(vec![span(0, 0, 1), with_status(span(1, 0, 1), 2)]);
        assert_eq!(
            evaluate_one(codes(vec![StatusCode::Error]), t()),
            Decision::Sampled
        );
        // A span without a status is UNSET.
        assert_eq!(
            evaluate_one(codes(vec![StatusCode::Unset]), t()),
            Decision::Sampled
        );
        assert_eq!(
            evaluate_one(codes(vec![StatusCode::Ok]), t()),
            Decision::NotSampled
        );
        let odd = spans(vec![with_status(span(0, 0, 1), 7)]);
        let all = codes(vec![StatusCode::Ok, StatusCode::Error, StatusCode::Unset]);
        assert_eq!(evaluate_one(all, odd), Decision::NotSampled, "unknown code");
    }

    #[test]
    fn trace_state_and_trace_flags_look_at_every_span() {
        let ts = || {
            PolicyKind::TraceState(TraceStatePolicy {
                key: "vendor".to_string(),
                values: vec!["keep".to_string()],
            })
        };
        let mut tagged = span(1, 0, 1);
        tagged.trace_state = "other=1,vendor=keep".to_string();
        assert_eq!(
            evaluate_one(ts(), spans(vec![span(0, 0, 1), tagged])),
            Decision::Sampled
        );
        let mut wrong = span(0, 0, 1);
        wrong.trace_state = "vendor=drop".to_string();
        assert_eq!(evaluate_one(ts(), spans(vec![wrong])), Decision::NotSampled);

        let mut sampled = span(1, 0, 1);
        sampled.flags = 0x301; // context bits above the W3C byte are ignored
        let t = spans(vec![span(0, 0, 1), sampled]);
        assert_eq!(evaluate_one(PolicyKind::TraceFlags, t), Decision::Sampled);
        let mut context_only = span(0, 0, 1);
        context_only.flags = 0x300;
        let t = spans(vec![context_only]);
        assert_eq!(
            evaluate_one(PolicyKind::TraceFlags, t),
            Decision::NotSampled
        );
    }

    #[test]
    fn span_count_bounds_are_inclusive() {
        let count = |min_spans, max_spans| {
            PolicyKind::SpanCount(SpanCountPolicy {
                min_spans,
                max_spans,
            })
        };
        let t = || spans((0..3).map(|i| span(i, 0, 1)).collect());
        assert_eq!(evaluate_one(count(3, Some(3)), t()), Decision::Sampled);
        assert_eq!(evaluate_one(count(4, None), t()), Decision::NotSampled);
        assert_eq!(evaluate_one(count(1, Some(2)), t()), Decision::NotSampled);
        assert_eq!(evaluate_one(count(2, None), t()), Decision::Sampled);
    }

    /// A trace of `n` spans.
    fn of_spans(n: u8) -> Vec<ResourceSpans> {
        spans((0..n).map(|i| span(i, 0, 1)).collect())
    }

    #[test]
    fn rate_limiting_is_a_token_bucket_with_twice_the_rate() {
        let kind = || {
            PolicyKind::RateLimiting(RateLimitingPolicy {
                spans_per_second: 10,
                burst_capacity: 20,
            })
        };
        let mut set = set(vec![policy("rate", kind())]);
        let t0 = Instant::now();
        // The bucket starts full at 20 spans.
        assert!(decide(&mut set, of_spans(15), t0).sampled);
        assert!(!decide(&mut set, of_spans(6), t0).sampled, "5 left");
        assert!(decide(&mut set, of_spans(5), t0).sampled);
        // Half a second refills 5.
        let t1 = t0 + Duration::from_millis(500);
        assert!(!decide(&mut set, of_spans(6), t1).sampled);
        assert!(decide(&mut set, of_spans(5), t1).sampled);
        // A trace above the burst never passes.
        let t2 = t1 + Duration::from_secs(60);
        assert!(!decide(&mut set, of_spans(21), t2).sampled);
        assert!(decide(&mut set, of_spans(20), t2).sampled);
    }

    #[test]
    fn rates_are_split_across_shards() {
        // 40 spans/s over 4 shards: 10/s and a burst of 20 on this shard.
        let cfg = config(vec![policy(
            "rate",
            PolicyKind::RateLimiting(RateLimitingPolicy {
                spans_per_second: 40,
                burst_capacity: 80,
            }),
        )]);
        let mut set = PolicySet::new(&cfg, 4).unwrap();
        let t0 = Instant::now();
        assert!(!decide(&mut set, of_spans(21), t0).sampled);
        assert!(decide(&mut set, of_spans(20), t0).sampled);
        assert!(!decide(&mut set, of_spans(1), t0).sampled);
        assert!(decide(&mut set, of_spans(1), t0 + Duration::from_millis(100)).sampled);
    }

    #[test]
    fn bytes_limiting_counts_span_bytes_against_the_burst() {
        let with_bytes = |bytes: usize| {
            let mut s = span(0, 0, 1);
            s.name = "x".repeat(bytes);
            spans(vec![s])
        };
        // Measure one span's encoded size to set exact limits around it.
        let one = with_trace(with_bytes(1_000), |t| t.bytes());
        let kind = PolicyKind::BytesLimiting(BytesLimitingPolicy {
            bytes_per_second: one,
            burst_capacity: 2 * one,
        });
        let mut set = set(vec![policy("bytes", kind)]);
        let t0 = Instant::now();
        assert!(decide(&mut set, with_bytes(1_000), t0).sampled);
        assert!(decide(&mut set, with_bytes(1_000), t0).sampled);
        assert!(
            !decide(&mut set, with_bytes(1_000), t0).sampled,
            "bucket empty"
        );
        assert!(decide(&mut set, with_bytes(1_000), t0 + Duration::from_secs(1)).sampled);
        // Larger than the whole bucket: never.
        let t = t0 + Duration::from_secs(10);
        assert!(!decide(&mut set, with_bytes(3_000), t).sampled);
    }

    #[test]
    fn and_needs_every_sub_policy_and_stops_at_the_first_no() {
        let rate = || {
            policy(
                "rate",
                PolicyKind::RateLimiting(RateLimitingPolicy {
                    spans_per_second: 1,
                    burst_capacity: 2,
                }),
            )
        };
        let and = |first: PolicyKind| PolicyKind::And(vec![policy("route", first), rate()]);
        assert_eq!(
            evaluate_one(and(route("/a")), routed("/a")),
            Decision::Sampled
        );
        assert_eq!(
            evaluate_one(and(route("/a")), routed("/b")),
            Decision::NotSampled
        );
        // Inverted sub-decisions count as their plain counterparts inside `and`.
        assert_eq!(
            evaluate_one(and(not_route("/a")), routed("/b")),
            Decision::Sampled
        );
        assert_eq!(
            evaluate_one(and(not_route("/a")), routed("/a")),
            Decision::NotSampled
        );

        // The rate limiter (burst 2) after a refusing sub-policy keeps its tokens.
        let mut set = set(vec![policy("and", and(route("/a")))]);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(!decide(&mut set, routed("/b"), t0).sampled);
        }
        assert!(decide(&mut set, routed("/a"), t0).sampled);
        assert!(decide(&mut set, routed("/a"), t0).sampled);
        assert!(!decide(&mut set, routed("/a"), t0).sampled);
    }

    #[test]
    fn not_flips_plain_decisions_only() {
        let not = |sub: PolicyKind| PolicyKind::Not(Box::new(policy("sub", sub)));
        assert_eq!(
            evaluate_one(not(route("/a")), routed("/a")),
            Decision::NotSampled
        );
        assert_eq!(
            evaluate_one(not(route("/a")), routed("/b")),
            Decision::Sampled
        );
        // The Collector passes inverted decisions through unchanged.
        assert_eq!(
            evaluate_one(not(not_route("/a")), routed("/a")),
            Decision::InvertNotSampled
        );
        assert_eq!(
            evaluate_one(not(not_route("/a")), routed("/b")),
            Decision::InvertSampled
        );
    }

    #[test]
    fn drop_needs_every_sub_policy() {
        let drop = |subs: Vec<PolicyKind>| {
            PolicyKind::Drop(
                subs.into_iter()
                    .enumerate()
                    .map(|(i, k)| policy(&format!("s{i}"), k))
                    .collect(),
            )
        };
        let health = || drop(vec![route("/healthz"), PolicyKind::AlwaysSample]);
        assert_eq!(
            evaluate_one(health(), routed("/healthz")),
            Decision::Dropped
        );
        assert_eq!(
            evaluate_one(health(), routed("/checkout")),
            Decision::NotSampled
        );
        let inverted = drop(vec![not_route("/checkout")]);
        assert_eq!(
            evaluate_one(inverted, routed("/healthz")),
            Decision::Dropped
        );
    }

    fn composite(total: u64, subs: Vec<(&str, PolicyKind)>, alloc: &[(&str, u32)]) -> PolicyKind {
        PolicyKind::Composite(CompositePolicy {
            max_total_spans_per_second: total,
            policy_order: subs.iter().map(|(n, _)| n.to_string()).collect(),
            sub_policies: subs.into_iter().map(|(n, k)| policy(n, k)).collect(),
            rate_allocation: alloc
                .iter()
                .map(|(p, percent)| RateAllocation {
                    policy: p.to_string(),
                    percent: *percent,
                })
                .collect(),
        })
    }

    #[test]
    fn composite_gives_each_sub_policy_its_share_per_second() {
        // 10 spans/s: "a" (route /a) 60 %, "rest" (always) the remaining equal share, 5.
        let kind = composite(
            10,
            vec![("a", route("/a")), ("rest", PolicyKind::AlwaysSample)],
            &[("a", 60)],
        );
        let mut set = set(vec![policy("composite", kind)]);
        let t0 = Instant::now();
        let sampled = |set: &mut PolicySet, route: &str, n: u8, at: Instant| {
            let mut groups = of_spans(n);
            for s in &mut groups[0].scope_spans[0].spans {
                s.attributes = vec![str_attr("http.route", route)];
            }
            decide(set, groups, at).sampled
        };
        assert!(sampled(&mut set, "/a", 4, t0));
        assert!(sampled(&mut set, "/a", 2, t0), "6 of 6");
        // "a" is full: a trace it samples is refused, and "rest" is not asked.
        assert!(!sampled(&mut set, "/a", 1, t0));
        assert!(sampled(&mut set, "/b", 5, t0), "rest: 5 of 5");
        assert!(!sampled(&mut set, "/b", 1, t0));
        // The next second starts over (a window, not a bucket).
        let t1 = t0 + Duration::from_millis(1_000);
        assert!(sampled(&mut set, "/a", 6, t1));
        assert!(sampled(&mut set, "/b", 5, t1));
        assert!(!sampled(&mut set, "/b", 1, t1 + Duration::from_millis(999)));
        assert!(sampled(
            &mut set,
            "/b",
            1,
            t1 + Duration::from_millis(1_000)
        ));
    }

    #[test]
    fn composite_caps_each_sub_policy_at_the_total() {
        // 100 % to one sub-policy of two, with a total of 4: the allocation (4) and the cap agree.
        let kind = composite(
            4,
            vec![("all", PolicyKind::AlwaysSample), ("never", route("/x"))],
            &[("all", 100)],
        );
        let mut set = set(vec![policy("composite", kind)]);
        let t0 = Instant::now();
        assert!(decide(&mut set, of_spans(4), t0).sampled);
        assert!(!decide(&mut set, of_spans(1), t0).sampled);
        assert!(!decide(&mut set, of_spans(5), t0 + Duration::from_secs(1)).sampled);
    }
}
