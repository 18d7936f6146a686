//! The buffer's tests: requests built with prost, decided through real policies.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use super::super::testing::{config, double_attr, policy, str_attr, MS, T0};
use super::arena::SPARE_CHUNKS_MAX;
use super::*;
use crate::config::{
    ErrorMode, OttlConditionPolicy, PolicyKind, StatusCode, StatusCodePolicy, StringAttributePolicy,
};
use crate::metadata::Metadata;
use crate::ottl::{Condition, ContextKind};
use crate::sampling::PolicySet;
use crate::telemetry::{self, EarlyReason, RegistryBuilder, SamplingMetrics};

const WAIT: Duration = Duration::from_secs(2);

fn limits() -> BufferLimits {
    BufferLimits {
        decision_wait: WAIT,
        decision_wait_after_root: None,
        num_traces: 1000,
        evict_at_num_traces: true,
        soft_bytes: u64::MAX,
        sampled_cache: 100,
        not_sampled_cache: 100,
        max_trace_bytes: None,
        decide_at_ingest: false,
        oversized_bytes: u64::MAX,
    }
}

fn id(trace: u8) -> Vec<u8> {
    let mut id = vec![0x11; 16];
    id[0] = trace;
    id[15] = trace;
    id
}

/// Span `n` of trace `trace`; an error span when `error`; a root when `n` is 0.
fn span(trace: u8, n: u8, error: bool) -> Span {
    Span {
        trace_id: id(trace),
        span_id: vec![n + 1, trace, 0, 0, 0, 0, 0, 1],
        parent_span_id: if n == 0 {
            vec![]
        } else {
            vec![1, trace, 0, 0, 0, 0, 0, 1]
        },
        name: format!("t{trace}-s{n}"),
        start_time_unix_nano: T0 + u64::from(n) * MS,
        end_time_unix_nano: T0 + (u64::from(n) + 1) * MS,
        status: error.then(|| Status {
            code: status::StatusCode::Error as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A request with one resource group per service, each holding `spans`.
fn request(groups: Vec<(&str, Vec<Span>)>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![str_attr("service.name", service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

/// Span names by service in an export request.
fn names(bytes: &[u8]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for group in ExportTraceServiceRequest::decode(bytes)
        .unwrap()
        .resource_spans
    {
        let service = match &group.resource.unwrap().attributes[0].value {
            Some(v) => format!("{v:?}"),
            None => String::new(),
        };
        let service = service.split('"').nth(1).unwrap_or_default().to_string();
        for scope in group.scope_spans {
            out.entry(service.clone())
                .or_default()
                .extend(scope.spans.into_iter().map(|s| s.name));
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn errors_policy() -> PolicySet {
    PolicySet::new(
        &config(vec![policy(
            "errors",
            PolicyKind::StatusCode(StatusCodePolicy {
                status_codes: vec![StatusCode::Error],
            }),
        )]),
        1,
    )
    .unwrap()
}

fn metrics() -> SamplingMetrics {
    SamplingMetrics::register(&mut RegistryBuilder::new(), 0, &["errors"])
}

struct Rounds {
    out: Framed,
    round: Round,
    early: Vec<EarlyReason>,
}

/// Decides every round due at `now`.
fn decide(
    buffer: &mut TraceBuffer,
    policies: &mut PolicySet,
    metrics: &SamplingMetrics,
    now: Instant,
    shutdown: bool,
) -> Rounds {
    let mut all = Rounds {
        out: Framed::default(),
        round: Round::default(),
        early: Vec::new(),
    };
    loop {
        let r = buffer.decide_round(
            now,
            shutdown,
            policies,
            metrics,
            &mut |d| all.early.push(d),
            &mut all.out,
        );
        if r.traces == 0 {
            return all;
        }
        all.round.traces += r.traces;
        all.round.kept_spans += r.kept_spans;
        all.round.discarded_spans += r.discarded_spans;
        all.round.unparseable_tracestates += r.unparseable_tracestates;
    }
}

#[test]
fn traces_wait_then_keep_whole_under_their_resources() {
    let mut buffer = TraceBuffer::new(limits(), 0);
    let (mut policies, metrics) = (errors_policy(), metrics());
    let t0 = Instant::now();
    let mut late = Framed::default();
    // Trace 1 (kept: one error span) and trace 2 (not kept), in two waves, from two
    // services.
    let first = request(vec![
        ("api", vec![span(1, 0, false), span(2, 0, false)]),
        ("db", vec![span(1, 1, false)]),
    ]);
    let second = request(vec![
        ("db", vec![span(2, 1, false), span(1, 2, true)]),
        ("api", vec![span(1, 3, false)]),
    ]);
    let done = buffer.insert(&first, &Metadata::none(), t0, &mut late);
    assert_eq!((done.buffered, done.new_traces), (3, 2));
    let done = buffer.insert(
        &second,
        &Metadata::none(),
        t0 + Duration::from_secs(1),
        &mut late,
    );
    assert_eq!((done.buffered, done.new_traces), (3, 0));
    assert!(late.is_empty());
    assert_eq!((buffer.trace_count(), buffer.span_count()), (2, 6));

    let before = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT / 2, false);
    assert_eq!(before.round.traces, 0);
    assert_eq!(buffer.next_due(), Some(t0 + WAIT));

    let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
    assert_eq!(
        due.round,
        Round {
            traces: 2,
            kept_spans: 4,
            discarded_spans: 2,
            unparseable_tracestates: 0,
        }
    );
    assert!(due.early.is_empty());
    let kept = names(&due.out.bytes);
    assert_eq!(kept["api"], ["t1-s0", "t1-s3"]);
    assert_eq!(kept["db"], ["t1-s1", "t1-s2"]);
    // Each service's resource group is written once.
    let groups = ExportTraceServiceRequest::decode(&due.out.bytes[..])
        .unwrap()
        .resource_spans;
    assert_eq!(groups.len(), 2);
    assert_eq!((buffer.trace_count(), buffer.span_count()), (0, 0));
    assert_eq!(buffer.next_due(), None);
    assert_eq!(metrics.decided_spans(telemetry::Decision::Sampled), 4);
    assert_eq!(metrics.decided_spans(telemetry::Decision::NotSampled), 2);

    // Late spans follow their trace's decision.
    let third = request(vec![("api", vec![span(1, 4, false), span(2, 2, true)])]);
    let done = buffer.insert(&third, &Metadata::none(), t0 + WAIT * 2, &mut late);
    assert_eq!(
        done,
        Inserted {
            late_sampled: 1,
            late_not_sampled: 1,
            ..Inserted::default()
        }
    );
    assert_eq!(names(&late.bytes)["api"], ["t1-s4"]);
    assert_eq!(buffer.trace_count(), 0);
}

#[test]
fn kept_spans_are_the_bytes_received() {
    let mut buffer = TraceBuffer::new(limits(), 0);
    let (mut policies, metrics) = (errors_policy(), metrics());
    let t0 = Instant::now();
    let spans = vec![span(7, 0, true), span(7, 1, false)];
    let bytes = request(vec![("api", spans.clone())]);
    buffer.insert(&bytes, &Metadata::none(), t0, &mut Framed::default());
    let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
    let back = ExportTraceServiceRequest::decode(&due.out.bytes[..]).unwrap();
    assert_eq!(back, ExportTraceServiceRequest::decode(&bytes[..]).unwrap());
}

#[test]
fn num_traces_decides_the_oldest_early() {
    let mut buffer = TraceBuffer::new(
        BufferLimits {
            num_traces: 2,
            ..limits()
        },
        0,
    );
    let (mut policies, metrics) = (errors_policy(), metrics());
    let t0 = Instant::now();
    for trace in 1..=3u8 {
        let at = t0 + Duration::from_millis(u64::from(trace));
        buffer.insert(
            &request(vec![("api", vec![span(trace, 0, trace == 1)])]),
            &Metadata::none(),
            at,
            &mut Framed::default(),
        );
    }
    let now = t0 + Duration::from_millis(10);
    let early = decide(&mut buffer, &mut policies, &metrics, now, false);
    // Trace 1, the oldest, decided with what it had: its error span, so kept.
    assert_eq!(early.early, [EarlyReason::NumTraces]);
    assert_eq!(early.round.kept_spans, 1);
    assert_eq!(names(&early.out.bytes)["api"], ["t1-s0"]);
    assert_eq!(buffer.trace_count(), 2);
}

#[test]
fn the_soft_limit_decides_early_and_the_arena_gives_memory_back() {
    let mut buffer = TraceBuffer::new(limits(), 0);
    let (mut policies, metrics) = (errors_policy(), metrics());
    let t0 = Instant::now();
    let empty = buffer.bytes();
    // About 3 MB of spans in 200 traces.
    let big = |trace: u8, n: u8| Span {
        attributes: vec![str_attr("payload", &"x".repeat(1000))],
        ..span(trace, n, false)
    };
    for trace in 0..200u8 {
        let spans: Vec<Span> = (0..15).map(|n| big(trace, n)).collect();
        buffer.insert(
            &request(vec![("api", spans)]),
            &Metadata::none(),
            t0,
            &mut Framed::default(),
        );
    }
    let raw = buffer.span_bytes();
    assert!(raw > 3_000_000);
    let held = buffer.bytes() - empty;
    // Chunks are filled: what the buffer holds is the span bytes, their slots and traces,
    // plus at most the chunk being filled.
    assert!(
        held <= raw + buffer.span_count() * 64 + CHUNK_BYTES as u64,
        "held {held} for {raw} span bytes"
    );
    let limit = buffer.bytes() / 2;
    buffer.limits.soft_bytes = limit;
    let early = decide(&mut buffer, &mut policies, &metrics, t0, false);
    assert!(early.early.iter().all(|&d| d == EarlyReason::Memory));
    assert!(!early.early.is_empty());
    assert!(buffer.bytes() <= limit, "{} > {limit}", buffer.bytes());
    // Everything decided: at most the chunk being filled and the spares are left.
    decide(&mut buffer, &mut policies, &metrics, t0, true);
    assert_eq!(buffer.span_count(), 0);

    assert!(buffer.arena.allocated <= CHUNK_BYTES as u64);
    assert!(buffer.arena.spare.len() <= SPARE_CHUNKS_MAX);
}

#[test]
fn a_peak_that_has_passed_does_not_keep_the_buffer_over_its_limit() {
    let mut buffer = TraceBuffer::new(limits(), 0);
    let (mut policies, metrics) = (errors_policy(), metrics());
    let t0 = Instant::now();
    // A peak of 20,000 spans in 2,000 traces, all decided: the slabs keep that length.
    for round in 0..200u32 {
        let spans = (0..10u8)
            .flat_map(|trace| (0..10u8).map(move |n| (trace, n)))
            .map(|(trace, n)| Span {
                trace_id: [&round.to_le_bytes()[..], &[trace; 12]].concat(),
                ..span(trace, n, false)
            })
            .collect();
        buffer.insert(
            &request(vec![("api", spans)]),
            &Metadata::none(),
            t0,
            &mut Framed::default(),
        );
    }
    assert_eq!(buffer.trace_count(), 2000);
    decide(&mut buffer, &mut policies, &metrics, t0, true);
    let peak =
        buffer.slots.len() as u64 * SPAN_OVERHEAD + buffer.entries.len() as u64 * TRACE_OVERHEAD;
    // A soft limit below that peak but above one chunk: a new trace waits its turn.
    buffer.limits.soft_bytes = CHUNK_BYTES as u64 + 64 * 1024;
    assert!(peak > buffer.limits.soft_bytes, "{peak}");
    buffer.insert(
        &request(vec![("api", vec![span(1, 0, true)])]),
        &Metadata::none(),
        t0,
        &mut Framed::default(),
    );
    let calm = decide(&mut buffer, &mut policies, &metrics, t0, false);
    assert_eq!(
        calm.round.traces,
        0,
        "decided on arrival at {} bytes",
        buffer.bytes()
    );
    assert_eq!(buffer.trace_count(), 1);
}

#[test]
fn a_root_span_can_make_its_trace_due_sooner() {
    let mut buffer = TraceBuffer::new(
        BufferLimits {
            decision_wait_after_root: Some(Duration::from_millis(100)),
            ..limits()
        },
        0,
    );
    let (mut policies, metrics) = (errors_policy(), metrics());
    let t0 = Instant::now();
    // Trace 1 gets its root at once; trace 2 (first seen later) never gets one.
    buffer.insert(
        &request(vec![("api", vec![span(1, 1, true)])]),
        &Metadata::none(),
        t0,
        &mut Framed::default(),
    );
    buffer.insert(
        &request(vec![("api", vec![span(2, 1, true)])]),
        &Metadata::none(),
        t0 + Duration::from_millis(1),
        &mut Framed::default(),
    );
    let root_at = t0 + Duration::from_millis(50);
    buffer.insert(
        &request(vec![("api", vec![span(1, 0, false)])]),
        &Metadata::none(),
        root_at,
        &mut Framed::default(),
    );
    assert_eq!(
        buffer.next_due(),
        Some(root_at + Duration::from_millis(100))
    );
    let soon = decide(
        &mut buffer,
        &mut policies,
        &metrics,
        root_at + Duration::from_millis(100),
        false,
    );
    assert_eq!(soon.round.traces, 1);
    assert_eq!(names(&soon.out.bytes)["api"], ["t1-s0", "t1-s1"]);
    // Trace 1's first-arrival queue entry is stale now; trace 2 waits its full time.
    assert_eq!(
        buffer.next_due(),
        Some(t0 + Duration::from_millis(1) + WAIT)
    );
    let rest = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT * 2, false);
    assert_eq!(rest.round.traces, 1);
    assert_eq!(names(&rest.out.bytes)["api"], ["t2-s1"]);
}

#[test]
fn a_trace_past_its_size_limit_is_dropped_with_its_later_spans() {
    let mut buffer = TraceBuffer::new(
        BufferLimits {
            max_trace_bytes: Some(100),
            ..limits()
        },
        0,
    );
    let t0 = Instant::now();
    let mut late = Framed::default();
    let spans: Vec<Span> = (0..4).map(|n| span(3, n, true)).collect();
    let done = buffer.insert(
        &request(vec![("api", spans)]),
        &Metadata::none(),
        t0,
        &mut late,
    );
    assert!(done.too_large >= 2, "{done:?}");
    assert!(done.late_not_sampled >= 1, "{done:?}");
    assert_eq!(done.too_large + done.late_not_sampled, 4);
    assert_eq!(buffer.span_count(), 0);
    assert_eq!(buffer.headers.bytes, 0);
}

/// Without `maximum_trace_size_bytes`, a trace past the oversized bound is decided at the next
/// round, long before its wait ends, while an ordinary trace waits; the oversized trace's later
/// spans follow its decision and are told apart from other late spans.
#[test]
fn an_oversized_trace_is_decided_at_once_and_its_later_spans_follow() {
    let mut buffer = TraceBuffer::new(
        BufferLimits {
            oversized_bytes: 100,
            ..limits()
        },
        0,
    );
    let mut policies = errors_policy();
    let metrics = metrics();
    let t0 = Instant::now();
    let mut late = Framed::default();
    // Trace 7 (an error, so kept) grows past 100 bytes; trace 8 stays small.
    let huge: Vec<Span> = (0..4).map(|n| span(7, n, n == 3)).collect();
    let done = buffer.insert(
        &request(vec![("api", huge), ("web", vec![span(8, 0, true)])]),
        &Metadata::none(),
        t0,
        &mut late,
    );
    assert_eq!(done.oversized, 1, "{done:?}");
    assert_eq!(done.buffered, 5);
    assert_eq!(buffer.next_due(), Some(t0), "due at once");
    let first = decide(&mut buffer, &mut policies, &metrics, t0, false);
    assert_eq!(first.round.traces, 1, "only the oversized trace");
    assert_eq!(first.early, [EarlyReason::TraceSize]);
    assert_eq!(names(&first.out.bytes)["api"].len(), 4);
    assert_eq!(buffer.trace_count(), 1);
    // Its later spans follow the decision, counted as the oversized trace's.
    let done = buffer.insert(
        &request(vec![("api", vec![span(7, 4, false), span(7, 5, false)])]),
        &Metadata::none(),
        t0 + Duration::from_millis(5),
        &mut late,
    );
    assert_eq!(done.late_sampled, 2);
    assert_eq!(done.late_oversized_sampled, 2);
    assert_eq!(done.oversized, 0);
    assert_eq!(buffer.late_ages_s(), [0, 0]);
    assert_eq!(names(&late.bytes)["api"], ["t7-s4", "t7-s5"]);
    // The small trace waits its turn.
    let rest = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
    assert_eq!(rest.round.traces, 1);
    assert!(rest.early.is_empty());
    // A late span of the small trace is late, not oversized.
    let done = buffer.insert(
        &request(vec![("web", vec![span(8, 1, false)])]),
        &Metadata::none(),
        t0 + WAIT + Duration::from_secs(2),
        &mut late,
    );
    assert_eq!((done.late_sampled, done.late_oversized_sampled), (1, 0));
    assert_eq!(buffer.late_ages_s(), [2]);
}

#[test]
fn attribute_policies_see_span_and_resource_attributes() {
    let route = |key: &str, value: &str| {
        PolicyKind::StringAttribute(StringAttributePolicy {
            key: key.to_string(),
            values: vec![value.to_string()],
            enabled_regex_matching: false,
            cache_max_size: 128,
            invert_match: false,
        })
    };
    let mut policies = PolicySet::new(
        &config(vec![
            policy("by-span", route("http.route", "/checkout")),
            policy("by-resource", route("service.name", "billing")),
        ]),
        1,
    )
    .unwrap();
    let metrics = SamplingMetrics::register(&mut RegistryBuilder::new(), 0, &["a", "b"]);
    let mut buffer = TraceBuffer::new(limits(), 0);
    let t0 = Instant::now();
    let checkout = Span {
        attributes: vec![str_attr("http.route", "/checkout")],
        ..span(1, 0, false)
    };
    buffer.insert(
        &request(vec![
            ("api", vec![checkout, span(2, 0, false)]),
            ("billing", vec![span(3, 0, false)]),
        ]),
        &Metadata::none(),
        t0,
        &mut Framed::default(),
    );
    let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
    let kept = names(&due.out.bytes);
    assert_eq!(kept["api"], ["t1-s0"]);
    assert_eq!(kept["billing"], ["t3-s0"]);
    assert_eq!(due.round.discarded_spans, 1);
}

#[test]
fn a_span_without_a_trace_id_is_counted_not_buffered() {
    let mut buffer = TraceBuffer::new(limits(), 0);
    let short = Span {
        trace_id: vec![7; 15],
        ..span(9, 0, true)
    };
    let done = buffer.insert(
        &request(vec![("api", vec![short, span(1, 0, false)])]),
        &Metadata::none(),
        Instant::now(),
        &mut Framed::default(),
    );
    assert_eq!((done.invalid, done.buffered), (1, 1));
    assert_eq!(buffer.span_count(), 1);
}

#[test]
fn drop_all_frees_everything() {
    let mut buffer = TraceBuffer::new(limits(), 0);
    let t0 = Instant::now();
    for trace in 0..10u8 {
        buffer.insert(
            &request(vec![(
                "api",
                vec![span(trace, 0, false), span(trace, 1, false)],
            )]),
            &Metadata::none(),
            t0,
            &mut Framed::default(),
        );
    }
    assert_eq!(buffer.drop_all(), 20);
    assert_eq!((buffer.trace_count(), buffer.span_count()), (0, 0));
    assert_eq!(buffer.headers.bytes, 0);
    assert_eq!(buffer.next_due(), None);
}

/// Span `n` of trace `trace` carrying `tracestate`.
fn span_with_state(trace: u8, n: u8, error: bool, tracestate: &str) -> Span {
    Span {
        trace_state: tracestate.to_string(),
        ..span(trace, n, error)
    }
}

/// Each kept span's tracestate, by span name.
fn tracestates(bytes: &[u8]) -> BTreeMap<String, String> {
    ExportTraceServiceRequest::decode(bytes)
        .unwrap()
        .resource_spans
        .into_iter()
        .flat_map(|g| g.scope_spans)
        .flat_map(|s| s.spans)
        .map(|s| (s.name, s.trace_state))
        .collect()
}

fn gated(policies: Vec<crate::config::Policy>) -> (PolicySet, SamplingMetrics) {
    let names: Vec<String> = policies.iter().map(|p| p.name.clone()).collect();
    let mut cfg = config(policies);
    cfg.use_tracestate = true;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    (
        PolicySet::new(&cfg, 1).unwrap(),
        SamplingMetrics::register(&mut RegistryBuilder::new(), 0, &names),
    )
}

#[test]
fn under_the_tracestate_gate_kept_spans_carry_their_traces_threshold() {
    use crate::config::ProbabilisticPolicy;
    let (mut policies, metrics) = gated(vec![
        policy(
            "errors",
            PolicyKind::StatusCode(StatusCodePolicy {
                status_codes: vec![StatusCode::Error],
            }),
        ),
        policy(
            "half",
            PolicyKind::Probabilistic(ProbabilisticPolicy {
                hash_salt: "default-hash-seed".to_string(),
                sampling_percentage: 50.0,
            }),
        ),
    ]);
    let mut buffer = TraceBuffer::new(limits(), 0);
    let t0 = Instant::now();
    let mut late = Framed::default();
    // Trace 1: an error (kept for certain). Trace 2: high randomness, so the 50 % policy keeps
    // it. Trace 3: low randomness, not kept. One span of trace 1 has a tracestate that does not
    // parse; one of trace 2 already carries a stricter threshold.
    let first = request(vec![(
        "api",
        vec![
            span_with_state(1, 0, true, "vendor=a"),
            span_with_state(1, 1, false, "bad key=1"),
            span_with_state(2, 0, false, "ot=rv:ffffffffffffff"),
            span_with_state(2, 1, false, "ot=rv:ffffffffffffff;th:c, b=2"),
            span_with_state(3, 0, false, "ot=rv:00000000000000"),
        ],
    )]);
    buffer.insert(&first, &Metadata::none(), t0, &mut late);
    let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
    assert_eq!(
        (due.round.kept_spans, due.round.unparseable_tracestates),
        (4, 1)
    );
    let states = tracestates(&due.out.bytes);
    assert_eq!(states["t1-s0"], "ot=th:0,vendor=a");
    assert_eq!(states["t1-s1"], "bad key=1", "unparseable: left as it was");
    assert_eq!(states["t2-s0"], "ot=rv:ffffffffffffff;th:8");
    assert_eq!(
        states["t2-s1"], "ot=rv:ffffffffffffff;th:c, b=2",
        "stricter: kept"
    );
    assert!(!states.contains_key("t3-s0"));
    // A late span of trace 2 carries the same threshold.
    let done = buffer.insert(
        &request(vec![("api", vec![span_with_state(2, 2, false, "")])]),
        &Metadata::none(),
        t0 + WAIT * 2,
        &mut late,
    );
    assert_eq!((done.late_sampled, done.unparseable_tracestates), (1, 0));
    assert_eq!(tracestates(&late.bytes)["t2-s2"], "ot=th:8");
}

#[test]
fn under_the_tracestate_gate_a_rate_limit_keeps_the_highest_randomness_and_says_where_it_cut() {
    use crate::config::RateLimitingPolicy;
    // 2 spans a second: a burst of 4, so two of the three 2-span traces fit.
    let (mut policies, metrics) = gated(vec![policy(
        "rate",
        PolicyKind::RateLimiting(RateLimitingPolicy {
            spans_per_second: 2,
            burst_capacity: 4,
        }),
    )]);
    let mut buffer = TraceBuffer::new(limits(), 0);
    let t0 = Instant::now();
    let rv = [
        "",
        "ot=rv:40000000000000",
        "ot=rv:c0000000000000",
        "ot=rv:80000000000000",
    ];
    let spans = (1..=3u8)
        .flat_map(|t| (0..2).map(move |n| span_with_state(t, n, false, rv[t as usize])))
        .collect();
    buffer.insert(
        &request(vec![("api", spans)]),
        &Metadata::none(),
        t0,
        &mut Framed::default(),
    );
    let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
    let states = tracestates(&due.out.bytes);
    assert_eq!(
        states.keys().collect::<Vec<_>>(),
        ["t2-s0", "t2-s1", "t3-s0", "t3-s1"],
        "the two of highest randomness"
    );
    // The cut is just above trace 1's randomness: a backend weighs each kept span by
    // 2^56 / (2^56 - 0x40000000000001), about 4/3.
    assert_eq!(states["t2-s0"], "ot=rv:c0000000000000;th:40000000000001");
    assert_eq!(states["t3-s1"], "ot=rv:80000000000000;th:40000000000001");
}

fn at_ingest(policies: Vec<crate::config::Policy>) -> (TraceBuffer, PolicySet, SamplingMetrics) {
    let names: Vec<String> = policies.iter().map(|p| p.name.clone()).collect();
    let mut cfg = config(policies);
    cfg.sampling_strategy = crate::config::SamplingStrategy::SpanIngest;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let limits = BufferLimits {
        decide_at_ingest: true,
        ..limits()
    };
    (
        TraceBuffer::new(limits, 0),
        PolicySet::new(&cfg, 1).unwrap(),
        SamplingMetrics::register(&mut RegistryBuilder::new(), 0, &names),
    )
}

fn errors() -> crate::config::Policy {
    policy(
        "errors",
        PolicyKind::StatusCode(StatusCodePolicy {
            status_codes: vec![StatusCode::Error],
        }),
    )
}

#[test]
fn span_ingest_decides_a_trace_on_the_request_that_samples_it() {
    let (mut buffer, mut policies, metrics) = at_ingest(vec![errors()]);
    let t0 = Instant::now();
    let mut late = Framed::default();
    let mut insert =
        |buffer: &mut TraceBuffer, spans: Vec<Span>, at: Instant, late: &mut Framed| {
            late.clear();
            buffer.insert_deciding(
                &request(vec![("api", spans)]),
                &Metadata::none(),
                at,
                late,
                &mut policies,
                &metrics,
            )
        };
    // Nothing samples the first request's spans: both traces wait.
    let done = insert(
        &mut buffer,
        vec![span(1, 0, false), span(2, 0, false)],
        t0,
        &mut late,
    );
    assert_eq!((done.buffered, done.ingest_sampled), (2, 0));
    assert!(late.is_empty());
    // Trace 1's error arrives: the trace is decided, its held span goes with the new one.
    let done = insert(&mut buffer, vec![span(1, 1, true)], t0, &mut late);
    assert_eq!(done.ingest_sampled, 2);
    assert_eq!(names(&late.bytes)["api"], ["t1-s0", "t1-s1"]);
    assert_eq!(buffer.trace_count(), 1);
    // Its later spans follow the decision.
    let done = insert(&mut buffer, vec![span(1, 2, false)], t0, &mut late);
    assert_eq!(done.late_sampled, 1);
    assert_eq!(names(&late.bytes)["api"], ["t1-s2"]);
    // Trace 2 is not sampled when its wait ends, without evaluation.
    let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
    assert_eq!(
        (
            due.round.traces,
            due.round.kept_spans,
            due.round.discarded_spans
        ),
        (1, 0, 1)
    );
}

#[test]
fn span_ingest_with_a_drop_policy_drops_at_ingest_and_samples_nothing_as_the_collector_does() {
    // The Collector's makeDecisionOnSpanIngest: a drop policy that does not match a batch
    // might match a later one, so no batch can sample the trace.
    let drop = policy(
        "health",
        PolicyKind::Drop(vec![policy(
            "route",
            PolicyKind::StringAttribute(StringAttributePolicy {
                key: "service.name".to_string(),
                values: vec!["health".to_string()],
                enabled_regex_matching: false,
                cache_max_size: 128,
                invert_match: false,
            }),
        )]),
    );
    let (mut buffer, mut policies, metrics) = at_ingest(vec![errors(), drop]);
    let t0 = Instant::now();
    let mut late = Framed::default();
    let done = buffer.insert_deciding(
        &request(vec![
            ("health", vec![span(1, 0, true)]),
            ("api", vec![span(2, 0, true)]),
        ]),
        &Metadata::none(),
        t0,
        &mut late,
        &mut policies,
        &metrics,
    );
    assert_eq!(done.ingest_sampled, 0);
    assert!(late.is_empty());
    assert_eq!(
        buffer.trace_count(),
        1,
        "trace 1 dropped at once, trace 2 waits"
    );
    let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
    assert_eq!((due.round.kept_spans, due.round.discarded_spans), (0, 1));
}

/// A trace id whose randomness (its last 7 bytes) starts with `high`.
fn relief_id(high: u8, n: u8) -> [u8; 16] {
    let mut id = [0x22; 16];
    id[8] = 0xff;
    id[9] = high;
    id[15] = n;
    id
}

/// A span named `name` of the trace `trace_id`.
fn span_of(trace_id: [u8; 16], name: &str, error: bool) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: vec![name.len() as u8, trace_id[15], 0, 0, 0, 0, 0, 2],
        name: name.to_string(),
        ..span(0, 1, error)
    }
}

/// In stress relief, a trace neither buffered nor decided is decided at its arrival by its id:
/// kept spans are framed with the late ones, nothing is buffered, and the trace's later spans
/// follow the decision, counted as stress relief's, also once it is off. A trace buffered before
/// goes on as usual, and once off new traces are buffered again.
#[test]
fn stress_relief_decides_new_traces_at_arrival_and_their_later_spans_follow() {
    let mut buffer = TraceBuffer::new(limits(), 0);
    let (mut policies, metrics) = (errors_policy(), metrics());
    let t0 = Instant::now();
    let ms = Duration::from_millis(1);
    let mut late = Framed::default();
    buffer.insert(
        &request(vec![("api", vec![span(1, 0, true)])]),
        &Metadata::none(),
        t0,
        &mut late,
    );
    buffer.set_stress_relief(Some(super::super::stress_relief::ArrivalSampling::new(
        50.0, false,
    )));
    // Randomness 0xc0… is above half of 2^56, 0x10… below.
    let (kept, dropped) = (relief_id(0xc0, 1), relief_id(0x10, 2));
    let done = buffer.insert(
        &request(vec![(
            "api",
            vec![
                span(1, 1, false),
                span_of(kept, "k0", false),
                span_of(dropped, "d0", true),
                span_of(kept, "k1", false),
                span_of(dropped, "d1", false),
            ],
        )]),
        &Metadata::none(),
        t0 + ms,
        &mut late,
    );
    assert_eq!(
        done,
        Inserted {
            buffered: 1,
            new_traces: 2,
            relief_traces_sampled: 1,
            relief_traces_not_sampled: 1,
            relief_sampled: 2,
            relief_not_sampled: 2,
            ..Inserted::default()
        }
    );
    assert_eq!(names(&late.bytes)["api"], ["k0", "k1"]);
    assert!(buffer.late_ages_s().is_empty(), "not late spans");
    assert_eq!((buffer.trace_count(), buffer.span_count()), (1, 2));

    buffer.set_stress_relief(None);
    late.clear();
    let done = buffer.insert(
        &request(vec![(
            "db",
            vec![
                span_of(kept, "k2", false),
                span_of(dropped, "d2", false),
                span(2, 0, false),
            ],
        )]),
        &Metadata::none(),
        t0 + 2 * ms,
        &mut late,
    );
    assert_eq!(
        done,
        Inserted {
            buffered: 1,
            new_traces: 1,
            relief_sampled: 1,
            relief_not_sampled: 1,
            ..Inserted::default()
        }
    );
    assert_eq!(names(&late.bytes)["db"], ["k2"]);
    // The buffered traces are decided by the policies, at their wait.
    let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
    assert_eq!(
        due.round,
        Round {
            traces: 1,
            kept_spans: 2,
            ..Round::default()
        }
    );
    let due = decide(
        &mut buffer,
        &mut policies,
        &metrics,
        t0 + WAIT + 2 * ms,
        false,
    );
    assert_eq!(due.round.discarded_spans, 1);
    assert_eq!(buffer.trace_count(), 0);
}

/// Spans in = spans framed out + spans not kept + spans buffered, after every request, with
/// stress relief coming and going; every trace that goes out goes out whole, once; a trace
/// whose first span met stress relief is kept exactly when its id clears the threshold, any
/// other exactly when the policies keep it.
#[test]
fn with_stress_relief_coming_and_going_every_span_is_accounted_for() {
    use super::super::stress_relief::ArrivalSampling;
    let mut buffer = TraceBuffer::new(
        BufferLimits {
            sampled_cache: 10_000,
            not_sampled_cache: 10_000,
            num_traces: 10_000,
            ..limits()
        },
        0,
    );
    let (mut policies, metrics) = (errors_policy(), metrics());
    let sampling = ArrivalSampling::new(30.0, false);
    let t0 = Instant::now();
    let trace_id = |k: u32| {
        let mut x = u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5151;
        x ^= x >> 29;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&k.to_be_bytes());
        id[8..].copy_from_slice(&x.to_be_bytes());
        id
    };
    let error = |k: u32| k.is_multiple_of(4);
    // Trace k's spans come in requests k/10, k/10 + 1 and k/10 + 2; stress relief is on for
    // requests 10 to 19.
    let relieved = |request: u32| (10..20).contains(&request);
    let (traces, requests) = (300u32, 32u32);
    let (mut spans_in, mut not_kept) = (0u64, 0u64);
    let mut out: BTreeMap<[u8; 16], Vec<String>> = BTreeMap::new();
    let take = |bytes: &[u8], out: &mut BTreeMap<[u8; 16], Vec<String>>| {
        let mut n = 0;
        for group in ExportTraceServiceRequest::decode(bytes)
            .unwrap()
            .resource_spans
        {
            for span in group.scope_spans.into_iter().flat_map(|s| s.spans) {
                out.entry(span.trace_id.try_into().unwrap())
                    .or_default()
                    .push(span.name);
                n += 1;
            }
        }
        n
    };
    let mut spans_out = 0u64;
    for r in 0..requests {
        buffer.set_stress_relief(relieved(r).then_some(sampling));
        let spans: Vec<Span> = (0..3u32)
            .filter_map(|wave| r.checked_sub(wave).map(|first| (wave, first)))
            .flat_map(|(wave, first)| (first * 10..first * 10 + 10).map(move |k| (wave, k)))
            .filter(|&(_, k)| k < traces)
            .map(|(wave, k)| span_of(trace_id(k), &format!("{k}-{wave}"), wave == 2 && error(k)))
            .collect();
        spans_in += spans.len() as u64;
        let mut late = Framed::default();
        let now = t0 + Duration::from_millis(u64::from(r));
        let done = buffer.insert(
            &request(vec![("api", spans)]),
            &Metadata::none(),
            now,
            &mut late,
        );
        not_kept += done.late_not_sampled + done.relief_not_sampled;
        if !late.is_empty() {
            let framed = take(&late.bytes, &mut out);
            assert_eq!(framed, done.late_sampled + done.relief_sampled);
            spans_out += framed;
        }
        assert_eq!(
            spans_in,
            spans_out + not_kept + buffer.span_count(),
            "request {r}"
        );
    }
    let rest = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, true);
    spans_out += take(&rest.out.bytes, &mut out);
    not_kept += rest.round.discarded_spans;
    assert_eq!(buffer.span_count(), 0);
    assert_eq!(spans_in, spans_out + not_kept);
    assert_eq!(spans_in, u64::from(traces) * 3);

    let mut relief_kept = 0;
    for k in 0..traces {
        let id = trace_id(k);
        let expected = if relieved(k / 10) {
            relief_kept += u32::from(sampling.keeps(id));
            sampling.keeps(id)
        } else {
            error(k)
        };
        match out.get_mut(&id) {
            Some(names) => {
                names.sort();
                assert!(expected, "trace {k} kept wrongly");
                assert_eq!(names, &[0, 1, 2].map(|w| format!("{k}-{w}")), "trace {k}");
            }
            None => assert!(!expected, "trace {k} missing"),
        }
    }
    // 100 traces met stress relief; about 30 % of them were kept.
    assert!((15..=45).contains(&relief_kept), "{relief_kept}");
}

/// Under the tracestate gate, the spans stress relief keeps carry its threshold in their
/// tracestate, the first one and the later ones, as the policies' kept spans carry theirs.
#[test]
fn under_the_tracestate_gate_spans_stress_relief_keeps_carry_its_threshold() {
    use super::super::stress_relief::ArrivalSampling;
    let mut buffer = TraceBuffer::new(limits(), 0);
    buffer.set_stress_relief(Some(ArrivalSampling::new(10.0, true)));
    let t0 = Instant::now();
    // Randomness 0xf0… clears 10 %'s threshold, 0xe666….
    let kept = relief_id(0xf0, 1);
    let mut late = Framed::default();
    let first = Span {
        trace_state: "vendor=x".to_string(),
        ..span_of(kept, "k0", false)
    };
    let done = buffer.insert(
        &request(vec![("api", vec![first])]),
        &Metadata::none(),
        t0,
        &mut late,
    );
    assert_eq!((done.relief_sampled, done.unparseable_tracestates), (1, 0));
    assert_eq!(
        tracestates(&late.bytes)["k0"],
        "ot=th:e6666666666666,vendor=x"
    );
    buffer.set_stress_relief(None);
    late.clear();
    buffer.insert(
        &request(vec![("api", vec![span_of(kept, "k1", false)])]),
        &Metadata::none(),
        t0,
        &mut late,
    );
    assert_eq!(tracestates(&late.bytes)["k1"], "ot=th:e6666666666666");
}

#[test]
fn failed_policy_evaluations_are_counted_in_the_metrics() {
    // `IsMatch` on a NaN fails; under `error_mode: propagate` the policy's evaluation fails.
    let condition =
        Condition::parse("IsMatch(attributes[\"f\"], \"1\")", ContextKind::Span).unwrap();
    let kind = PolicyKind::OttlCondition(OttlConditionPolicy {
        error_mode: ErrorMode::Propagate,
        span: vec![condition],
        spanevent: Vec::new(),
    });
    let mut policies = PolicySet::new(&config(vec![policy("nan", kind)]), 1).unwrap();
    let metrics = SamplingMetrics::register(&mut RegistryBuilder::new(), 0, &["nan"]);
    let mut buffer = TraceBuffer::new(limits(), 0);
    let mut nan = span(1, 0, false);
    nan.attributes.push(double_attr("f", f64::NAN));
    let t0 = Instant::now();
    let request = request(vec![("api", vec![nan, span(2, 0, false)])]);
    buffer.insert(&request, &Metadata::none(), t0, &mut Framed::default());
    let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
    assert_eq!(due.round.traces, 2);
    assert_eq!(
        metrics.policy_evaluation_errors.get(),
        1,
        "trace 1's evaluation failed, trace 2's did not"
    );
}

fn tenant(name: &str) -> Metadata {
    Metadata::from_entries(vec![("x-tenant".into(), vec![name.as_bytes().into()])])
}

/// Each request's export request, its span names by service, and its tenant.
fn tenants(framed: &Framed) -> Vec<(String, BTreeMap<String, Vec<String>>, u64)> {
    framed
        .requests()
        .map(|(bytes, spans, metadata)| {
            let name = metadata
                .get("x-tenant")
                .first()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            (name, names(bytes), spans)
        })
        .collect()
}

/// Kept spans go out under the client metadata of the request that brought each: a trace
/// whose spans came from two tenants is framed as two requests, one per tenant; spans of the
/// same tenant from several requests share one; a header interned for one tenant is not
/// reused for another; late spans carry their own request's metadata; and once everything is
/// decided, no metadata is held.
#[test]
fn kept_spans_carry_the_client_metadata_they_came_with() {
    let mut buffer = TraceBuffer::new(limits(), 0);
    let (mut policies, metrics) = (errors_policy(), metrics());
    let t0 = Instant::now();
    let mut late = Framed::default();
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    // Trace 1 (kept) from acme and globex, trace 2 (kept) from globex only, trace 3 (not
    // kept) from acme, trace 4 (kept) with no metadata; all under the same resource.
    buffer.insert(
        &request(vec![("api", vec![span(1, 0, true), span(3, 0, false)])]),
        &acme,
        t0,
        &mut late,
    );
    buffer.insert(
        &request(vec![("api", vec![span(1, 1, false), span(2, 0, true)])]),
        &globex,
        t0,
        &mut late,
    );
    buffer.insert(
        &request(vec![("api", vec![span(1, 2, false)])]),
        &tenant("acme"),
        t0,
        &mut late,
    );
    buffer.insert(
        &request(vec![("api", vec![span(4, 0, true)])]),
        &Metadata::none(),
        t0,
        &mut late,
    );
    assert!(late.is_empty());
    let held = buffer.headers.bytes;
    let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
    assert_eq!(due.round.kept_spans, 5);
    let mut got = tenants(&due.out);
    got.sort();
    let api = |names: &[&str]| {
        BTreeMap::from([(
            "api".to_string(),
            names.iter().map(ToString::to_string).collect::<Vec<_>>(),
        )])
    };
    assert_eq!(
        got,
        [
            (String::new(), api(&["t4-s0"]), 1),
            ("acme".into(), api(&["t1-s0", "t1-s2"]), 2),
            ("globex".into(), api(&["t1-s1", "t2-s0"]), 2),
        ]
    );
    assert_eq!(due.out.spans(), 5);
    assert_eq!(buffer.headers.bytes, 0, "held {held} before");

    // Late spans of kept traces: under the metadata of their own request.
    let done = buffer.insert(
        &request(vec![("api", vec![span(1, 3, false), span(2, 1, false)])]),
        &acme,
        t0 + WAIT,
        &mut late,
    );
    assert_eq!(done.late_sampled, 2);
    assert_eq!(
        tenants(&late),
        [("acme".into(), api(&["t1-s3", "t2-s1"]), 2)]
    );
    // A request whose spans all followed a decision holds no metadata after it.
    assert_eq!(buffer.headers.bytes, 0);
}

/// Under `span-ingest`, a trace sampled by one request frames its spans of earlier requests
/// under their own metadata.
#[test]
fn span_ingest_frames_a_traces_earlier_spans_under_their_metadata() {
    let (mut buffer, mut policies, metrics) = at_ingest(vec![errors()]);
    let t0 = Instant::now();
    let mut late = Framed::default();
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    buffer.insert_deciding(
        &request(vec![("api", vec![span(1, 0, false)])]),
        &acme,
        t0,
        &mut late,
        &mut policies,
        &metrics,
    );
    assert!(late.is_empty());
    let done = buffer.insert_deciding(
        &request(vec![("api", vec![span(1, 1, true)])]),
        &globex,
        t0,
        &mut late,
        &mut policies,
        &metrics,
    );
    assert_eq!(done.ingest_sampled, 2);
    let got: Vec<(String, u64)> = tenants(&late)
        .into_iter()
        .map(|(tenant, _, spans)| (tenant, spans))
        .collect();
    assert_eq!(got, [("acme".into(), 1), ("globex".into(), 1)]);
    assert_eq!(buffer.headers.bytes, 0);
}

/// A trace dropped past its size limit takes its group's header with it; the group's next
/// span (of another trace) interns the header again rather than using the freed one, and
/// headers interned later, for other tenants, are each their own.
#[test]
fn a_header_freed_with_a_too_large_trace_is_not_used_again() {
    let mut buffer = TraceBuffer::new(
        BufferLimits {
            max_trace_bytes: Some(100),
            ..limits()
        },
        0,
    );
    let (mut policies, metrics) = (errors_policy(), metrics());
    let t0 = Instant::now();
    let mut late = Framed::default();
    // Trace 3 passes the limit within the group; trace 4's span comes after it in the group.
    let mut spans: Vec<Span> = (0..2).map(|n| span(3, n, true)).collect();
    spans.push(span(4, 0, true));
    let done = buffer.insert(
        &request(vec![("api", spans)]),
        &tenant("acme"),
        t0,
        &mut late,
    );
    assert_eq!((done.too_large, done.buffered), (2, 3), "{done:?}");
    buffer.insert(
        &request(vec![("db", vec![span(5, 0, true)])]),
        &tenant("globex"),
        t0,
        &mut late,
    );
    buffer.insert(
        &request(vec![("web", vec![span(6, 0, true)])]),
        &tenant("initech"),
        t0,
        &mut late,
    );
    let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
    let mut got = tenants(&due.out);
    got.sort();
    let one =
        |service: &str, name: &str| BTreeMap::from([(service.to_string(), vec![name.to_string()])]);
    assert_eq!(
        got,
        [
            ("acme".into(), one("api", "t4-s0"), 1),
            ("globex".into(), one("db", "t5-s0"), 1),
            ("initech".into(), one("web", "t6-s0"), 1),
        ]
    );
    assert_eq!(buffer.headers.bytes, 0);
    for trace in 7..9u8 {
        buffer.insert(
            &request(vec![("api", vec![span(trace, 0, false)])]),
            &tenant("acme"),
            t0,
            &mut late,
        );
    }
    buffer.drop_all();
    assert_eq!(buffer.headers.bytes, 0);
}
