//! The top-level policy list of one shard, and the final decision over it.

use std::fmt;
use std::time::Instant;

use super::consistent::{Threshold, TraceRandomness};
use super::policy::{Clock, Policy};
use super::trace::Trace;
use super::Decision;
use crate::config::{SamplingStrategy, TailSampling};

/// Why a policy set could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The shard count was 0.
    NoShards,
    /// A `string_attribute` policy's patterns did not compile together (each compiles alone,
    /// which the configuration checks; a very large set can still exceed the regex size limit).
    Regex {
        /// The policy's name.
        policy: String,
        /// The regex crate's error.
        reason: String,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::NoShards => f.write_str("tail sampling needs at least one shard"),
            PolicyError::Regex { policy, reason } => write!(
                f,
                "tail sampling policy `{policy}`: its regular expressions do not compile \
                 together: {reason}"
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

/// One shard's tail-sampling policies.
#[derive(Debug, Clone)]
pub struct PolicySet {
    /// Compiled top-level policies, in configuration order.
    policies: Vec<Policy>,
    /// Their names, in configuration order.
    names: Vec<String>,
    /// Indices into `policies` in evaluation order: `drop` policies first.
    order: Vec<usize>,
    sample_on_first_match: bool,
    /// The last decision's per-policy decisions, in configuration order.
    decisions: Vec<Option<Decision>>,
    /// How long each policy took in the last decision, in microseconds (0 when not evaluated).
    latencies_us: Vec<u64>,
    /// Whether some policy reads spans whatever the trace (see [`PolicySet::reads_spans`]).
    reads_spans: bool,
    /// Whether some policy reads spans when the trace has a zero timestamp.
    reads_spans_zero_times: bool,
    /// The first decision's instant, from which the one-second rate windows are counted.
    origin: Option<Instant>,
    /// The tracestate gate (`processor.tailsamplingprocessor.usetracestate`): policies report
    /// thresholds, and a kept trace's threshold goes into its spans' tracestates.
    use_tracestate: bool,
    /// Under the gate, the top-level policies that budget whole rounds (rate and bytes
    /// limiters, and `and` policies holding one), by configuration index.
    round_budgets: Vec<usize>,
    /// `sampling_strategy: span-ingest`.
    at_ingest: bool,
    /// Whether each top-level policy's evaluation can fail (see [`Policy::may_fail`]), by
    /// configuration index.
    may_fail: Vec<bool>,
    /// Top-level policy evaluations that failed and were not yet taken (see
    /// [`PolicySet::take_evaluation_errors`]).
    evaluation_errors: u64,
}

/// Which policies [`PolicySet::evaluate`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drops {
    /// All, `drop` policies first.
    Evaluate,
    /// The `drop` policies only.
    Only,
    /// All but the `drop` policies, which were evaluated and did not drop the trace.
    Passed,
}

/// A trace's final decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalDecision<'s> {
    /// Whether the trace is kept.
    pub sampled: bool,
    /// [`Decision::Sampled`], [`Decision::NotSampled`] or [`Decision::Dropped`].
    pub decision: Decision,
    /// The policy behind the decision, by configuration index: the first that sampled (for an
    /// inverted sample, the first InvertSampled), or the `drop` policy that dropped. `None` for
    /// a trace not sampled. The Collector records this policy's name as `tailsampling.policy`.
    pub policy: Option<usize>,
    /// Each top-level policy's decision, by configuration index; `None` for policies not
    /// evaluated because the evaluation stopped early (a drop, or `sample_on_first_match`).
    pub per_policy: &'s [Option<Decision>],
    /// How long each top-level policy took, in whole microseconds (as the Collector's
    /// `sampling_decision_latency` records it), by configuration index; 0 for policies not
    /// evaluated.
    pub latencies_us: &'s [u64],
    /// Under the tracestate gate, the threshold a kept trace's spans are to carry: the least
    /// among the policies that sampled it. `None` without the gate, for a trace not kept, and
    /// for one kept only by an inverted match.
    pub(crate) threshold: Option<Threshold>,
}

impl PolicySet {
    /// Compiles `config`'s policies for one of `shards` shards.
    pub fn new(config: &TailSampling, shards: usize) -> Result<PolicySet, PolicyError> {
        if shards == 0 {
            return Err(PolicyError::NoShards);
        }
        let policies = config
            .policies
            .iter()
            .map(|p| Policy::compile(p, shards as u64))
            .collect::<Result<Vec<_>, _>>()?;
        let (drops, others): (Vec<usize>, Vec<usize>) =
            (0..policies.len()).partition(|&i| policies[i].is_drop());
        // Under the gate every trace's spans are read for their randomness.
        let use_tracestate = config.use_tracestate;
        let reads_spans = use_tracestate || policies.iter().any(|p| p.reads_spans(false));
        let reads_spans_zero_times = use_tracestate || policies.iter().any(|p| p.reads_spans(true));
        let round_budgets = (0..policies.len())
            .filter(|&i| use_tracestate && policies[i].budgets_rounds())
            .collect();
        Ok(PolicySet {
            may_fail: policies.iter().map(Policy::may_fail).collect(),
            evaluation_errors: 0,
            use_tracestate,
            round_budgets,
            at_ingest: config.sampling_strategy == SamplingStrategy::SpanIngest,
            latencies_us: vec![0; policies.len()],
            reads_spans,
            reads_spans_zero_times,
            names: config.policies.iter().map(|p| p.name.clone()).collect(),
            order: drops.into_iter().chain(others).collect(),
            decisions: vec![None; policies.len()],
            policies,
            sample_on_first_match: config.sample_on_first_match,
            origin: None,
        })
    }

    /// The top-level policy names, in configuration order (the order of
    /// [`FinalDecision::per_policy`]).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether deciding a trace may read its spans, rather than only the facts gathered as they
    /// arrived; `zero_times`: whether the trace has a span with a zero timestamp. When it is
    /// false, [`PolicySet::decide`] may be given a trace without its spans.
    pub(crate) fn reads_spans(&self, zero_times: bool) -> bool {
        if zero_times {
            self.reads_spans_zero_times
        } else {
            self.reads_spans
        }
    }

    /// Decides `trace` at `now`.
    pub fn decide(&mut self, trace: &Trace<'_>, now: Instant) -> FinalDecision<'_> {
        self.evaluate(trace, now, Drops::Evaluate)
    }

    /// Whether traces are decided as their spans arrive (`sampling_strategy: span-ingest`):
    /// through [`PolicySet::decide_at_ingest`]; a trace still undecided when its wait ends is
    /// not sampled, without evaluation.
    pub(crate) fn decides_at_ingest(&self) -> bool {
        self.at_ingest
    }

    /// `span-ingest`: the decision on one request's spans of a trace (`trace`, whose facts
    /// count every span of the trace so far), as the Collector's `makeDecisionOnSpanIngest`
    /// makes it. The `drop` policies first: one that drops them drops the trace; one that does
    /// not leaves the trace pending (a later request might match it). Then the first policy
    /// that samples them samples the trace, reporting its own threshold under the gate.
    /// Otherwise the trace stays pending, given as `NotSampled` with no policy (there is no
    /// final "not sampled" at ingest).
    pub(crate) fn decide_at_ingest(
        &mut self,
        trace: &Trace<'_>,
        now: Instant,
    ) -> FinalDecision<'_> {
        let clock = self.clock(now);
        let randomness = self.use_tracestate.then(|| TraceRandomness::of(trace));
        self.decisions.fill(None);
        self.latencies_us.fill(0);
        let mut started = Instant::now();
        let mut drop_pending = false;
        let mut decided = (Decision::NotSampled, None, None);
        for &i in &self.order {
            let is_drop = self.policies[i].is_drop();
            if !is_drop && drop_pending {
                break;
            }
            let (decision, threshold) = match &randomness {
                Some(randomness) => {
                    self.policies[i].evaluate_consistently(trace, clock, randomness)
                }
                None => (self.policies[i].evaluate(trace, clock), Threshold::ALWAYS),
            };
            self.evaluation_errors += failed(&mut self.policies[i], self.may_fail[i]);
            let ended = Instant::now();
            self.latencies_us[i] = ended.saturating_duration_since(started).as_micros() as u64;
            started = ended;
            self.decisions[i] = Some(decision);
            if decision == Decision::Dropped {
                decided = (Decision::Dropped, Some(i), None);
                break;
            }
            if is_drop {
                drop_pending = true;
            } else if decision == Decision::Sampled {
                decided = (
                    Decision::Sampled,
                    Some(i),
                    randomness.is_some().then_some(threshold),
                );
                break;
            }
        }
        let (decision, policy, threshold) = decided;
        let mut final_decision = self.evaluate_done(decision, threshold);
        final_decision.policy = policy;
        final_decision
    }

    /// Whether deciding takes whole rounds: under the tracestate gate, with a policy that
    /// budgets rounds. Each trace of a round then goes through [`PolicySet::enter_round`], the
    /// round through [`PolicySet::close_round`], and each trace that entered through
    /// [`PolicySet::decide_entered`], in that order.
    pub(crate) fn decides_rounds(&self) -> bool {
        !self.round_budgets.is_empty()
    }

    /// A round's first pass on `trace`: the `drop` policies decide, and a trace they do not
    /// drop becomes a candidate of every round budget (`None`). A dropped trace's final
    /// decision is returned; it takes no further part.
    pub(crate) fn enter_round(
        &mut self,
        trace: &Trace<'_>,
        now: Instant,
    ) -> Option<FinalDecision<'_>> {
        let clock = self.clock(now);
        let drops = self.evaluate(trace, now, Drops::Only);
        if drops.decision == Decision::Dropped {
            let policy = drops.policy;
            let mut dropped = self.evaluate_done(Decision::Dropped, None);
            dropped.policy = policy;
            return Some(dropped);
        }
        let randomness = TraceRandomness::of(trace);
        for &i in &self.round_budgets {
            self.policies[i].add_candidate(trace, clock, &randomness);
        }
        None
    }

    /// Budgets the round whose traces entered.
    pub(crate) fn close_round(&mut self, now: Instant) {
        for &i in &self.round_budgets {
            self.policies[i].close_round(now);
        }
    }

    /// Decides a trace that entered the round and was not dropped.
    pub(crate) fn decide_entered(&mut self, trace: &Trace<'_>, now: Instant) -> FinalDecision<'_> {
        self.evaluate(trace, now, Drops::Passed)
    }

    /// The top-level policy evaluations that failed since the last call: an `ottl_condition`
    /// policy with `error_mode: propagate`, at the top or under an `and`, `not`, `drop` or
    /// `composite`, met a condition that could not be evaluated. The Collector counts these in
    /// `sampling_policy_evaluation_error`, once for each top-level policy that returned the
    /// error; so does this count, however many conditions failed under that policy.
    pub(crate) fn take_evaluation_errors(&mut self) -> u64 {
        std::mem::take(&mut self.evaluation_errors)
    }

    fn clock(&mut self, now: Instant) -> Clock {
        let origin = *self.origin.get_or_insert(now);
        Clock {
            now,
            second: now.saturating_duration_since(origin).as_secs(),
        }
    }

    /// Runs the policies `drops` says on `trace` and makes the final decision.
    fn evaluate(&mut self, trace: &Trace<'_>, now: Instant, drops: Drops) -> FinalDecision<'_> {
        let clock = self.clock(now);
        let randomness = self.use_tracestate.then(|| TraceRandomness::of(trace));
        // The least threshold among the policies that sampled.
        let mut least: Option<Threshold> = None;
        self.decisions.fill(None);
        self.latencies_us.fill(0);
        let mut started = Instant::now();
        // The first policy (in evaluation order) to give each decision.
        let mut first = [None::<usize>; 5];
        for &i in &self.order {
            let is_drop = self.policies[i].is_drop();
            if drops == Drops::Only && !is_drop {
                break;
            }
            if drops == Drops::Passed && is_drop {
                // Evaluated in the round's first pass (its time is not measured again).
                self.decisions[i] = Some(Decision::NotSampled);
                first[index(Decision::NotSampled)].get_or_insert(i);
                continue;
            }
            let decision = match &randomness {
                Some(randomness) => {
                    let (decision, threshold) =
                        self.policies[i].evaluate_consistently(trace, clock, randomness);
                    if decision == Decision::Sampled {
                        least = Some(least.map_or(threshold, |l| l.min(threshold)));
                    }
                    decision
                }
                None => self.policies[i].evaluate(trace, clock),
            };
            self.evaluation_errors += failed(&mut self.policies[i], self.may_fail[i]);
            // One clock read per policy: each policy's time runs from the previous one's end.
            let ended = Instant::now();
            self.latencies_us[i] = ended.saturating_duration_since(started).as_micros() as u64;
            started = ended;
            self.decisions[i] = Some(decision);
            first[index(decision)].get_or_insert(i);
            if decision == Decision::Dropped
                || (self.sample_on_first_match && decision == Decision::Sampled)
            {
                break;
            }
        }
        let given = |d: Decision| first[index(d)];
        let (decision, policy) = if let Some(p) = given(Decision::Dropped) {
            (Decision::Dropped, Some(p))
        } else if given(Decision::InvertNotSampled).is_some() {
            (Decision::NotSampled, None)
        } else if let Some(p) = given(Decision::Sampled) {
            (Decision::Sampled, Some(p))
        } else if let (Some(p), None) =
            (given(Decision::InvertSampled), given(Decision::NotSampled))
        {
            (Decision::Sampled, Some(p))
        } else {
            (Decision::NotSampled, None)
        };
        let threshold = if decision == Decision::Sampled {
            least
        } else {
            None
        };
        let mut decided = self.evaluate_done(decision, threshold);
        decided.policy = policy;
        decided
    }

    /// The final decision, with the per-policy record of the last evaluation.
    fn evaluate_done(&self, decision: Decision, threshold: Option<Threshold>) -> FinalDecision<'_> {
        FinalDecision {
            sampled: decision == Decision::Sampled,
            decision,
            policy: None,
            per_policy: &self.decisions,
            latencies_us: &self.latencies_us,
            threshold,
        }
    }
}

/// 1 when the evaluation of top-level `policy` that just ended failed (looked for only where it
/// `may_fail`), else 0: however many conditions failed under it, as the Collector counts the one
/// error the policy returned.
#[inline]
fn failed(policy: &mut Policy, may_fail: bool) -> u64 {
    u64::from(may_fail && policy.take_failures() > 0)
}

fn index(decision: Decision) -> usize {
    match decision {
        Decision::Sampled => 0,
        Decision::NotSampled => 1,
        Decision::InvertSampled => 2,
        Decision::InvertNotSampled => 3,
        Decision::Dropped => 4,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

    use super::super::testing::*;
    use super::*;
    use crate::config::{PolicyKind, RateLimitingPolicy, StringAttributePolicy};
    use crate::telemetry;

    fn route(value: &str, invert_match: bool) -> PolicyKind {
        PolicyKind::StringAttribute(StringAttributePolicy {
            key: "http.route".to_string(),
            values: vec![value.to_string()],
            enabled_regex_matching: false,
            cache_max_size: 128,
            invert_match,
        })
    }

    fn drop_route(value: &str) -> PolicyKind {
        PolicyKind::Drop(vec![policy("match", route(value, false))])
    }

    fn never() -> PolicyKind {
        route("/never", false)
    }

    fn routed(value: &str) -> Vec<ResourceSpans> {
        vec![group(
            None,
            vec![with_attrs(
                span(0, 0, 1),
                vec![str_attr("http.route", value)],
            )],
        )]
    }

    /// Decides `/healthz` with these policies and returns the decision and the record.
    fn run(
        policies: Vec<(&str, PolicyKind)>,
        first_match: bool,
    ) -> (FinalDecision<'static>, Vec<Option<Decision>>) {
        let mut cfg = config(policies.into_iter().map(|(n, k)| policy(n, k)).collect());
        cfg.sample_on_first_match = first_match;
        let mut set = PolicySet::new(&cfg, 1).unwrap();
        with_trace(routed("/healthz"), |trace| {
            let d = set.decide(trace, Instant::now());
            let record = d.per_policy.to_vec();
            let d = FinalDecision {
                per_policy: &[],
                latencies_us: &[],
                ..d
            };
            (d, record)
        })
    }

    #[test]
    fn drop_wins_even_when_listed_last_and_stops_the_evaluation() {
        let (d, record) = run(
            vec![
                ("always", PolicyKind::AlwaysSample),
                ("not-healthz", route("/healthz", true)),
                ("drop-health", drop_route("/healthz")),
            ],
            false,
        );
        assert!(!d.sampled);
        assert_eq!(d.decision, Decision::Dropped);
        assert_eq!(d.policy, Some(2));
        // Drop policies run first; after a drop nothing else runs.
        assert_eq!(record, vec![None, None, Some(Decision::Dropped)]);
    }

    #[test]
    fn a_drop_that_does_not_match_lets_the_others_decide() {
        let (d, record) = run(
            vec![
                ("always", PolicyKind::AlwaysSample),
                ("drop-checkout", drop_route("/checkout")),
            ],
            false,
        );
        assert!(d.sampled);
        assert_eq!(d.policy, Some(0));
        assert_eq!(
            record,
            vec![Some(Decision::Sampled), Some(Decision::NotSampled)]
        );
    }

    #[test]
    fn any_sample_samples_otherwise_not_sampled() {
        let (d, _) = run(
            vec![("never", never()), ("always", PolicyKind::AlwaysSample)],
            false,
        );
        assert!(d.sampled);
        assert_eq!(d.policy, Some(1));
        let (d, _) = run(vec![("never", never())], false);
        assert_eq!(
            (d.sampled, d.decision, d.policy),
            (false, Decision::NotSampled, None)
        );
    }

    #[test]
    fn an_inverted_not_sampled_beats_a_sample() {
        let (d, record) = run(
            vec![
                ("always", PolicyKind::AlwaysSample),
                ("not-healthz", route("/healthz", true)),
            ],
            false,
        );
        assert!(!d.sampled);
        assert_eq!(d.decision, Decision::NotSampled);
        assert_eq!(d.policy, None);
        assert_eq!(
            record,
            vec![Some(Decision::Sampled), Some(Decision::InvertNotSampled)]
        );
    }

    #[test]
    fn an_inverted_sample_samples_only_without_a_not_sampled() {
        let (d, _) = run(vec![("not-checkout", route("/checkout", true))], false);
        assert!(d.sampled);
        assert_eq!(d.decision, Decision::Sampled);
        assert_eq!(d.policy, Some(0));
        let (d, _) = run(
            vec![
                ("not-checkout", route("/checkout", true)),
                ("never", never()),
            ],
            false,
        );
        assert!(!d.sampled);
    }

    #[test]
    fn sample_on_first_match_stops_at_the_first_sample() {
        let policies = || {
            vec![
                ("never", never()),
                ("always", PolicyKind::AlwaysSample),
                ("not-healthz", route("/healthz", true)),
            ]
        };
        // Without it the inverted no wins; with it the evaluation ends before it is asked.
        let (d, _) = run(policies(), false);
        assert!(!d.sampled);
        let (d, record) = run(policies(), true);
        assert!(d.sampled);
        assert_eq!(d.policy, Some(1));
        assert_eq!(
            record,
            vec![Some(Decision::NotSampled), Some(Decision::Sampled), None]
        );
    }

    #[test]
    fn sample_on_first_match_is_not_stopped_by_an_inverted_sample() {
        let (d, record) = run(
            vec![
                ("not-checkout", route("/checkout", true)),
                ("never", never()),
            ],
            true,
        );
        assert!(!d.sampled, "the later NotSampled is still seen");
        assert_eq!(
            record,
            vec![Some(Decision::InvertSampled), Some(Decision::NotSampled)]
        );
    }

    #[test]
    fn sample_on_first_match_still_runs_drop_policies_first() {
        let (d, record) = run(
            vec![
                ("always", PolicyKind::AlwaysSample),
                ("drop-health", drop_route("/healthz")),
            ],
            true,
        );
        assert_eq!(d.decision, Decision::Dropped);
        assert_eq!(record, vec![None, Some(Decision::Dropped)]);
    }

    #[test]
    fn policies_after_a_first_match_keep_their_state() {
        let mut cfg = config(vec![
            policy("route-a", route("/a", false)),
            policy(
                "rate",
                PolicyKind::RateLimiting(RateLimitingPolicy {
                    spans_per_second: 1,
                    burst_capacity: 2,
                }),
            ),
        ]);
        cfg.sample_on_first_match = true;
        let mut set = PolicySet::new(&cfg, 1).unwrap();
        let t0 = Instant::now();
        // "/a" traces stop at the first policy: the limiter (burst 2) is not consulted...
        for _ in 0..5 {
            assert!(decide(&mut set, routed("/a"), t0).sampled);
        }
        // ...so it still holds its two tokens for the others.
        assert!(decide(&mut set, routed("/b"), t0).sampled);
        assert!(decide(&mut set, routed("/b"), t0).sampled);
        assert!(!decide(&mut set, routed("/b"), t0).sampled);
        assert!(decide(&mut set, routed("/b"), t0 + Duration::from_secs(1)).sampled);
    }

    #[test]
    fn names_and_metric_labels() {
        let set = set(vec![
            policy("a", PolicyKind::AlwaysSample),
            policy("b", drop_route("/x")),
        ]);
        assert_eq!(set.names(), ["a", "b"]);
        assert_eq!(
            Decision::InvertSampled.metric(),
            telemetry::Decision::Sampled
        );
        assert_eq!(
            Decision::InvertNotSampled.metric(),
            telemetry::Decision::NotSampled
        );
        assert_eq!(Decision::Dropped.metric(), telemetry::Decision::Dropped);
    }

    #[test]
    fn no_shards_is_an_error() {
        let cfg = config(vec![policy("a", PolicyKind::AlwaysSample)]);
        assert_eq!(PolicySet::new(&cfg, 0).unwrap_err(), PolicyError::NoShards);
    }
}
