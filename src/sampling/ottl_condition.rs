//! `ottl_condition`: the Collector's OTTL condition evaluator (contrib `internal/sampling/ottl.go`)
//! over a trace's spans read in place.
//!
//! As in the Collector, the spans are walked in the order they arrived; for each span the
//! `span` conditions are tried first, then the `spanevent` conditions on each of its events, in
//! order. The first condition that holds samples the trace; none holding is NotSampled. The
//! conditions were parsed and type-checked when the configuration loaded, so evaluation only
//! reads views; a shard's policy owns its copy of the conditions and the scratch buffer they
//! share, so nothing is allocated per span once that buffer has grown (see [`crate::ottl`]).
//!
//! A condition fails only when `IsMatch` meets a NaN or infinite float. `ignore` and `silent`
//! count that condition as false and go on (`ignore` logs, at most once a minute with a count,
//! where the Collector logs each failure); `propagate` ends the evaluation as NotSampled, and
//! the failure is noted for the policy set to count in `sampling_policy_evaluation_error`, once
//! for the top-level policy it happened under, as the Collector counts it (see
//! [`OttlFilter::take_failures`]). The Collector's `propagate` ends the evaluation with an error
//! instead: the policy is then skipped for the trace, and a `not`, `and`, `drop` or `composite`
//! above it fails too. The final decision is the same unless the policy sits under `not`
//! (tailgate samples) or `composite` (tailgate asks the next sub-policy), or an `invert_match`
//! policy answered InvertSampled.

use std::time::{Duration, Instant};

use super::trace::Trace;
use super::Decision;
use crate::config::{ErrorMode, OttlConditionPolicy};
use crate::ottl::{Condition, EvalError, Scratch, Subject};

/// How often `ignore` mode may log the failures it skipped.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// A compiled `ottl_condition` policy.
#[derive(Debug, Clone)]
pub(crate) struct OttlFilter {
    policy: Box<str>,
    span: Box<[Condition]>,
    spanevent: Box<[Condition]>,
    error_mode: ErrorMode,
    scratch: Scratch,
    failures: FailureLog,
    /// `propagate` failures since the policy set last took them.
    propagated: u64,
}

/// Failures skipped in `ignore` mode and not yet logged.
#[derive(Debug, Clone, Default)]
struct FailureLog {
    unreported: u64,
    last: Option<Instant>,
}

impl FailureLog {
    fn record(&mut self, policy: &str, condition: &Condition, err: EvalError) {
        self.unreported += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|at| now.duration_since(at) < FAILURE_LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            policy,
            condition = condition.text(),
            error = %err,
            "{} OTTL condition evaluation(s) failed since the last report and counted as false \
             (error_mode: ignore); logged at most once a minute",
            self.unreported
        );
        self.last = Some(now);
        self.unreported = 0;
    }
}

impl OttlFilter {
    pub(crate) fn new(policy: &str, cfg: &OttlConditionPolicy) -> Self {
        OttlFilter {
            policy: policy.into(),
            span: cfg.span.clone().into(),
            spanevent: cfg.spanevent.clone().into(),
            error_mode: cfg.error_mode,
            scratch: Scratch::default(),
            failures: FailureLog::default(),
            propagated: 0,
        }
    }

    /// Whether an evaluation can fail (`error_mode: propagate`): only then are there failures
    /// to take.
    pub(crate) fn may_fail(&self) -> bool {
        self.error_mode == ErrorMode::Propagate
    }

    pub(crate) fn evaluate(&mut self, trace: &Trace<'_>) -> Decision {
        match self.any_span_matches(trace) {
            Ok(true) => Decision::Sampled,
            Ok(false) => Decision::NotSampled,
            Err(_) => {
                self.propagated += 1;
                Decision::NotSampled
            }
        }
    }

    /// The evaluations that failed under `propagate` since the last call.
    pub(crate) fn take_failures(&mut self) -> u64 {
        std::mem::take(&mut self.propagated)
    }

    /// Whether some span or span event meets a condition; `Err` only in `propagate` mode.
    fn any_span_matches(&mut self, trace: &Trace<'_>) -> Result<bool, EvalError> {
        let OttlFilter {
            policy,
            span,
            spanevent,
            error_mode,
            scratch,
            failures,
            propagated: _,
        } = self;
        let mut any = |conditions: &[Condition], subject: &Subject<'_>| {
            for condition in conditions {
                match condition.eval(subject, scratch) {
                    Ok(true) => return Ok(true),
                    Ok(false) => {}
                    Err(err) => match error_mode {
                        ErrorMode::Propagate => return Err(err),
                        ErrorMode::Ignore => failures.record(policy, condition, err),
                        ErrorMode::Silent => {}
                    },
                }
            }
            Ok(false)
        };
        for s in trace.spans() {
            let mut subject = Subject {
                resource: s.resource,
                scope: s.scope,
                span: Some(s.span),
                event: None,
                log: None,
                metric: None,
            };
            if !span.is_empty() && any(span, &subject)? {
                return Ok(true);
            }
            if !spanevent.is_empty() {
                for event in s.span.events() {
                    subject.event = Some(event);
                    if any(spanevent, &subject)? {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

    use super::super::testing::*;
    use super::*;
    use crate::config::PolicyKind;
    use crate::ottl::ContextKind;

    fn ottl(error_mode: ErrorMode, span: &[&str], spanevent: &[&str]) -> PolicyKind {
        let parse = |list: &[&str], context| {
            list.iter()
                .map(|c| Condition::parse(c, context).unwrap())
                .collect()
        };
        PolicyKind::OttlCondition(OttlConditionPolicy {
            error_mode,
            span: parse(span, ContextKind::Span),
            spanevent: parse(spanevent, ContextKind::SpanEvent),
        })
    }

    fn named(mut span: Span, name: &str) -> Span {
        span.name = name.to_string();
        span
    }

    fn with_event(mut span: Span, name: &str) -> Span {
        span.events.push(Event {
            name: name.to_string(),
            ..Default::default()
        });
        span
    }

    fn trace(spans: Vec<Span>) -> Vec<ResourceSpans> {
        vec![group(Some(vec![str_attr("service.name", "api")]), spans)]
    }

    #[test]
    fn any_span_or_event_matching_any_condition_samples() {
        let kind = || {
            ottl(
                ErrorMode::Silent,
                &["name == \"b\"", "attributes[\"x\"] > 10"],
                &["name == \"exception\" and span.name == \"c\""],
            )
        };
        let t = |spans| evaluate_one(kind(), trace(spans));
        assert_eq!(
            t(vec![named(span(0, 0, 1), "a"), named(span(1, 0, 1), "b")]),
            Decision::Sampled
        );
        assert_eq!(
            t(vec![with_attrs(span(0, 0, 1), vec![int_attr("x", 11)])]),
            Decision::Sampled
        );
        assert_eq!(
            t(vec![with_event(named(span(0, 0, 1), "c"), "exception")]),
            Decision::Sampled
        );
        assert_eq!(
            t(vec![
                with_event(named(span(0, 0, 1), "a"), "exception"),
                with_event(named(span(1, 0, 1), "c"), "retry"),
            ]),
            Decision::NotSampled,
            "the event condition needs both on one event"
        );
        assert_eq!(
            evaluate_one(
                ottl(
                    ErrorMode::Silent,
                    &["resource.attributes[\"service.name\"] == \"api\""],
                    &[]
                ),
                trace(vec![span(0, 0, 1)])
            ),
            Decision::Sampled
        );
    }

    #[test]
    fn scope_paths_read_the_scope_each_span_arrived_under() {
        use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
        let mut groups = trace(vec![span(0, 0, 1)]);
        groups[0].scope_spans[0].scope = Some(InstrumentationScope {
            name: "okhttp".to_string(),
            version: "4.12".to_string(),
            ..Default::default()
        });
        let kind = |condition: &str| ottl(ErrorMode::Silent, &[condition], &[]);
        assert_eq!(
            evaluate_one(
                kind("instrumentation_scope.name == \"okhttp\" and scope.version == \"4.12\""),
                groups.clone()
            ),
            Decision::Sampled
        );
        assert_eq!(
            evaluate_one(kind("instrumentation_scope.name == \"grpc\""), groups),
            Decision::NotSampled
        );
        // No scope message at all reads as an empty scope.
        assert_eq!(
            evaluate_one(
                kind("instrumentation_scope.name == \"\""),
                trace(vec![span(0, 0, 1)])
            ),
            Decision::Sampled
        );
    }

    #[test]
    fn error_modes_decide_what_a_failing_condition_does() {
        // The first span's IsMatch fails (a NaN); the second span matches the other condition.
        let spans = || {
            trace(vec![
                with_attrs(named(span(0, 0, 1), "a"), vec![double_attr("f", f64::NAN)]),
                named(span(1, 0, 1), "b"),
            ])
        };
        let conditions = ["IsMatch(attributes[\"f\"], \"1\")", "name == \"b\""];
        for mode in [ErrorMode::Ignore, ErrorMode::Silent] {
            assert_eq!(
                evaluate_one(ottl(mode, &conditions, &[]), spans()),
                Decision::Sampled,
                "{mode:?}: the failing condition counts as false"
            );
        }
        assert_eq!(
            evaluate_one(ottl(ErrorMode::Propagate, &conditions, &[]), spans()),
            Decision::NotSampled,
            "propagate: the evaluation ends at the failure"
        );
        // A condition that holds before the failure still samples under propagate.
        let first_holds = ["name == \"a\"", "IsMatch(attributes[\"f\"], \"1\")"];
        assert_eq!(
            evaluate_one(ottl(ErrorMode::Propagate, &first_holds, &[]), spans()),
            Decision::Sampled
        );
    }

    #[test]
    fn propagated_failures_count_once_per_top_level_policy() {
        let nan = || {
            trace(vec![with_attrs(
                span(0, 0, 1),
                vec![double_attr("f", f64::NAN)],
            )])
        };
        let failing = |mode| ottl(mode, &["IsMatch(attributes[\"f\"], \"1\")"], &[]);
        let mut set = set(vec![
            policy("top", failing(ErrorMode::Propagate)),
            policy(
                "not",
                PolicyKind::Not(Box::new(policy("inner", failing(ErrorMode::Propagate)))),
            ),
            policy("ignored", failing(ErrorMode::Ignore)),
            policy("silent", failing(ErrorMode::Silent)),
        ]);
        with_trace(nan(), |trace| set.decide(trace, Instant::now()).decision);
        assert_eq!(
            set.take_evaluation_errors(),
            2,
            "the top-level policy and the one under `not`; ignore and silent do not fail"
        );
        assert_eq!(set.take_evaluation_errors(), 0, "taken");
        let fine = trace(vec![span(0, 0, 1)]);
        with_trace(fine, |trace| set.decide(trace, Instant::now()).decision);
        assert_eq!(set.take_evaluation_errors(), 0, "no NaN, no failure");
    }

    #[test]
    fn sits_under_and_and_not() {
        let is_b = || policy("b", ottl(ErrorMode::Silent, &["name == \"b\""], &[]));
        let t = || trace(vec![named(span(0, 0, 1), "b")]);
        assert_eq!(
            evaluate_one(PolicyKind::Not(Box::new(is_b())), t()),
            Decision::NotSampled
        );
        assert_eq!(
            evaluate_one(
                PolicyKind::And(vec![is_b(), policy("all", PolicyKind::AlwaysSample)]),
                t()
            ),
            Decision::Sampled
        );
        assert_eq!(
            evaluate_one(PolicyKind::Drop(vec![is_b()]), t()),
            Decision::Dropped
        );
    }
}
