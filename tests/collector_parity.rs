//! Decision parity with the OpenTelemetry Collector itself: the same traces, sent over OTLP/HTTP
//! to tailgate and to the Collector built from its modules (`bench-rig/peers/build.sh`, contrib's
//! `tail_sampling` v0.161.0), with the same `tail_sampling` policies, must leave the same set of
//! trace ids at each one's sink. One case per deterministic policy kind (rate limiting is
//! time-dependent, so it has none), and `ottl_condition` cases over tailgate's OTTL subset
//! (attribute, resource, kind, status and span event paths, comparisons across types, IsMatch on
//! strings and non-strings, error modes, nesting). Every trace is sent whole in one request,
//! well inside `decision_wait`, so both decide on the whole trace.
//!
//! Two more tests hold tailgate to the Collector where it goes beyond decisions: under the
//! `usetracestate` feature gate, every kept span's tracestate must be the Collector's, byte for
//! byte (thresholds from probabilistic, `and` and rate-limit policies, upstream `rv` and `th`,
//! whitespace, unparseable states); and with `sampling_strategy: span-ingest`, with every trace
//! split over two requests, the same spans must be kept.
//!
//! `TAILGATE_PARITY_TRACES` sets the traces per case (default 2,000; docs/BENCHMARKS.md records
//! a run of 100,000). Skipped, with a message, only where `go` is not on PATH.

mod common;

use std::collections::BTreeMap;

use common::parity;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tailgate_bench::peers;

/// The policies of each case, as YAML list items under `policies:` (indented by 6).
const CASES: &[(&str, &str)] = &[
    (
        "probabilistic, default salt, 10 %",
        "      - {name: p, type: probabilistic, probabilistic: {sampling_percentage: 10}}",
    ),
    (
        "probabilistic, salted, 33.3 %",
        "      - {name: p, type: probabilistic, probabilistic: {hash_salt: tenant-a, sampling_percentage: 33.3}}",
    ),
    (
        "latency between 1000 and 1400 ms",
        "      - {name: l, type: latency, latency: {threshold_ms: 1000, upper_threshold_ms: 1400}}",
    ),
    (
        "status_code ERROR",
        "      - {name: s, type: status_code, status_code: {status_codes: [ERROR]}}",
    ),
    (
        "string_attribute by regex",
        "      - {name: r, type: string_attribute, string_attribute: {key: http.route, values: ['/pay/.*'], enabled_regex_matching: true}}",
    ),
    (
        "string_attribute inverted",
        "      - {name: r, type: string_attribute, string_attribute: {key: service.name, values: [health], invert_match: true}}",
    ),
    (
        "numeric_attribute 500..599",
        "      - {name: n, type: numeric_attribute, numeric_attribute: {key: http.status_code, min_value: 500, max_value: 599}}",
    ),
    (
        "boolean_attribute",
        "      - {name: b, type: boolean_attribute, boolean_attribute: {key: retry, value: true}}",
    ),
    (
        "trace_state",
        "      - {name: t, type: trace_state, trace_state: {key: vendor, values: [a, c]}}",
    ),
    (
        "span_count 3..5",
        "      - {name: c, type: span_count, span_count: {min_spans: 3, max_spans: 5}}",
    ),
    (
        "trace_flags",
        "      - {name: f, type: trace_flags}",
    ),
    (
        "and: errors of checkout",
        "      - name: a
        type: and
        and:
          and_sub_policy:
            - {name: e, type: status_code, status_code: {status_codes: [ERROR]}}
            - {name: c, type: string_attribute, string_attribute: {key: service.name, values: [checkout]}}",
    ),
    (
        "not: all but slow",
        "      - name: n
        type: not
        not:
          not_sub_policy: {name: l, type: latency, latency: {threshold_ms: 700}}",
    ),
    (
        "drop health, else errors and 20 %",
        "      - {name: e, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: p, type: probabilistic, probabilistic: {sampling_percentage: 20}}
      - name: d
        type: drop
        drop:
          drop_sub_policy:
            - {name: h, type: string_attribute, string_attribute: {key: http.route, values: [/health]}}",
    ),
    (
        "ottl: attribute equality, resource, nil and mixed types",
        r#"      - name: o
        type: ottl_condition
        ottl_condition:
          span:
            - 'attributes["http.route"] == "/b" and attributes["tier"] == nil'
            - 'resource.attributes["deployment.environment"] == "staging" and attributes["tier"] != "gold" and attributes["tier"] != nil'"#,
    ),
    (
        "ottl: IsMatch on strings and non-strings, error_mode ignore",
        r#"      - name: o
        type: ottl_condition
        ottl_condition:
          error_mode: ignore
          span:
            - 'IsMatch(attributes["load"], "e[-+]")'
            - 'IsMatch(attributes["http.route"], "^/pay/w") and IsMatch(attributes["tier"], "^(1|true)$")'"#,
    ),
    (
        "ottl: numeric comparisons, int against float",
        r#"      - name: o
        type: ottl_condition
        ottl_condition:
          span:
            - 'attributes["http.status_code"] >= 500.0 and attributes["http.status_code"] < 600'
            - 'attributes["load"] > 1 and attributes["load"] <= 2 and end_time_unix_nano > 1700000000050000000'"#,
    ),
    (
        "ottl: status code and message",
        r#"      - name: o
        type: ottl_condition
        ottl_condition:
          span: ['status.code == STATUS_CODE_ERROR and status.message != "timeout"']"#,
    ),
    (
        "ottl: span kind",
        r#"      - name: o
        type: ottl_condition
        ottl_condition:
          span:
            - 'kind == SPAN_KIND_PRODUCER'
            - 'span.kind == SPAN_KIND_CONSUMER and not IsRootSpan() and name != "op1"'"#,
    ),
    (
        "ottl: span events",
        r#"      - name: o
        type: ottl_condition
        ottl_condition:
          spanevent:
            - 'name == "exception" and attributes["exception.type"] == "TimeoutError"'
            - 'attributes["attempt"] >= 3 and span.kind == SPAN_KIND_CLIENT'"#,
    ),
    (
        "ottl under and and not, with trace_state",
        r#"      - name: a
        type: and
        and:
          and_sub_policy:
            - {name: e, type: status_code, status_code: {status_codes: [ERROR]}}
            - {name: o, type: ottl_condition, ottl_condition: {span: ['resource.attributes["service.name"] != "batch"']}}
      - name: n
        type: not
        not:
          not_sub_policy: {name: o, type: ottl_condition, ottl_condition: {span: ['trace_state["vendor"] != "a" or attributes["retry"] == false']}}"#,
    ),
    (
        "ottl: error_mode propagate on a NaN",
        r#"      - name: o
        type: ottl_condition
        ottl_condition:
          error_mode: propagate
          span: ['IsMatch(attributes["load"], "^2$")', 'attributes["http.route"] == "/a"']"#,
    ),
];

/// One trace of the recorded load: its id and its spans' request.
struct Trace {
    id: [u8; 16],
    spans: usize,
    /// What was drawn, for a difference's report.
    drawn: String,
}

/// splitmix64: the load's ids and choices, the same on every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(value: &str) -> any_value::Value {
    any_value::Value::StringValue(value.into())
}

/// The tracestates of the decision cases: W3C vendor entries, no OpenTelemetry ones.
const VENDOR_STATES: &[&str] = &[
    "",
    "vendor=a",
    "vendor=b",
    "rojo=1,vendor=c",
    "vendor=a,x=y",
];

/// Trace `i`: 1–6 spans, a service, a duration of 0–1.9 s, an error one time in 13, an HTTP
/// status, a route, a retry flag one time in 5, a tracestate (`tracestate` of the trace's draw),
/// a sampled flag, all drawn from `i`; and, for the `ottl_condition` cases, drawn from a second
/// word so that the draws above (and the other cases' results) stay as they were: an
/// environment, a `load` double (NaN one time in 16), a `tier` of mixed types, span kinds, an
/// error message, and 0–2 events with attributes on each span. Returns the trace and its
/// resource group.
fn trace(i: u64, tracestate: fn(u64) -> String) -> (Trace, ResourceSpans) {
    let r = mix(i);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&mix(r).to_be_bytes());
    id[8..].copy_from_slice(&mix(r ^ 0x5555).to_be_bytes());
    let spans = 1 + (r % 6) as usize;
    let service = ["api", "checkout", "batch", "health"][(r >> 8) as usize % 4];
    let route = ["/a", "/b", "/health", "/pay/card", "/pay/wallet"][(r >> 12) as usize % 5];
    let http_status = [200i64, 404, 500, 503, 201, 599, 600][(r >> 16) as usize % 7];
    let error = (r >> 20).is_multiple_of(13);
    let retry = (r >> 24).is_multiple_of(5);
    let trace_state = tracestate(r);
    let sampled_flag = !(r >> 32).is_multiple_of(3);
    let duration_ms = (r >> 36) % 1_900;
    let start = 1_700_000_000_000_000_000u64 + i * 1_000_000;
    // The OTTL cases' draws, from their own word.
    let q = mix(r ^ 0x0771_0771_0771_0771);
    let environment = ["prod", "staging"][q as usize % 2];
    let load = [0.25, 1.5, 2.0, 1e21, 1e-7, 3.0, 1.0, f64::NAN][(q >> 4) as usize % 8];
    let load = if load.is_nan() && !(q >> 8).is_multiple_of(2) {
        2.0
    } else {
        load
    };
    let tier = [
        Some(text("gold")),
        Some(text("silver")),
        Some(any_value::Value::IntValue(1)),
        Some(any_value::Value::BoolValue(true)),
        None,
    ][(q >> 12) as usize % 5]
        .clone();
    let message = ["timeout", "refused", ""][(q >> 16) as usize % 3];
    let spans_out = (0..spans)
        .map(|n| {
            let root = n == 0;
            let mut attributes = vec![kv("http.route", text(route))];
            if root {
                attributes.push(kv(
                    "http.status_code",
                    any_value::Value::IntValue(http_status),
                ));
                attributes.push(kv("retry", any_value::Value::BoolValue(retry)));
                attributes.push(kv("load", any_value::Value::DoubleValue(load)));
                if let Some(tier) = tier.clone() {
                    attributes.push(kv("tier", tier));
                }
            }
            let e = mix(q ^ (n as u64 + 1));
            let kind = if root {
                2
            } else {
                [2, 3, 1, 4, 5][e as usize % 5]
            };
            let events = (0..(e >> 8) % 3)
                .map(|k| Event {
                    time_unix_nano: start + 1_500 + k,
                    name: ["exception", "retry", "cache.miss"][(e >> (12 + k)) as usize % 3].into(),
                    attributes: vec![
                        kv(
                            "exception.type",
                            text(["TimeoutError", "IOError"][(e >> (16 + k)) as usize % 2]),
                        ),
                        kv(
                            "attempt",
                            any_value::Value::IntValue(1 + ((e >> (20 + k)) % 4) as i64),
                        ),
                    ],
                    ..Default::default()
                })
                .collect();
            let (begin, end) = if root {
                (start, start + duration_ms * 1_000_000)
            } else {
                (start + 1_000, start + 2_000 + n as u64)
            };
            Span {
                trace_id: id.to_vec(),
                span_id: mix(r ^ (n as u64 + 1)).max(1).to_be_bytes().to_vec(),
                parent_span_id: if root {
                    Vec::new()
                } else {
                    mix(r ^ 1).max(1).to_be_bytes().to_vec()
                },
                trace_state: trace_state.clone(),
                flags: if sampled_flag { 0x101 } else { 0x100 },
                name: format!("op{n}"),
                kind,
                start_time_unix_nano: begin,
                end_time_unix_nano: end,
                attributes,
                events,
                status: Some(Status {
                    code: if root && error {
                        status::StatusCode::Error as i32
                    } else {
                        status::StatusCode::Unset as i32
                    },
                    message: if root && error {
                        message.to_string()
                    } else {
                        String::new()
                    },
                }),
                ..Default::default()
            }
        })
        .collect();
    let group = ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", text(service)),
                kv("deployment.environment", text(environment)),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: spans_out,
            ..Default::default()
        }],
        ..Default::default()
    };
    let drawn = format!(
        "trace {i}: {spans} spans, {service}, {route}, {duration_ms} ms, status {http_status}, \
         error {error}, retry {retry}, tracestate {trace_state:?}, sampled flag {sampled_flag}; \
         {environment}, load {load}, tier {tier:?}, message {message:?}"
    );
    (Trace { id, spans, drawn }, group)
}

/// The load as OTLP/HTTP request bodies of 50 traces each.
fn load(traces: u64) -> (Vec<Trace>, Vec<Vec<u8>>) {
    load_with(
        traces,
        |r| VENDOR_STATES[(r >> 28) as usize % 5].to_string(),
        false,
    )
}

/// The load with tracestates from `tracestate`; with `split`, each trace of two spans or more
/// is sent in two requests, one after the other: its later spans (one time in two, its root
/// among them) with the next 50 traces' first spans.
fn load_with(
    traces: u64,
    tracestate: fn(u64) -> String,
    split: bool,
) -> (Vec<Trace>, Vec<Vec<u8>>) {
    let mut all = Vec::new();
    let mut bodies = Vec::new();
    // This body's groups, and the later spans that go with the next body.
    let (mut groups, mut rest) = (Vec::new(), Vec::new());
    let mut in_body = 0;
    for i in 0..traces {
        let (t, mut group) = trace(i, tracestate);
        all.push(t);
        if split && group.scope_spans[0].spans.len() > 1 {
            let mut later = group.clone();
            let spans = &mut group.scope_spans[0].spans;
            later.scope_spans[0].spans = spans.split_off(spans.len() / 2);
            if mix(i ^ 0xabc).is_multiple_of(2) {
                std::mem::swap(&mut group, &mut later);
            }
            rest.push(later);
        }
        groups.push(group);
        in_body += 1;
        if in_body == 50 || i + 1 == traces {
            if i + 1 == traces {
                groups.append(&mut rest);
            }
            bodies.push(
                ExportTraceServiceRequest {
                    resource_spans: std::mem::replace(&mut groups, std::mem::take(&mut rest)),
                }
                .encode_to_vec(),
            );
            in_body = 0;
        }
    }
    (all, bodies)
}

#[test]
fn every_deterministic_policy_decides_as_the_collector_does() {
    let Some(built) = parity::built_peers() else {
        return;
    };
    let count: u64 = std::env::var("TAILGATE_PARITY_TRACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let (traces, bodies) = load(count);
    let mut report = Vec::new();
    let mut differences = Vec::new();
    for (name, policies) in CASES {
        let case = parity::Case {
            policies,
            settings: "",
            gates: &[],
        };
        let (ours, theirs) = parity::run(&built, &case, &bodies, traces.len());
        let (ours, theirs) = (parity::trace_ids(&ours), parity::trace_ids(&theirs));
        report.push(format!(
            "{name}: tailgate kept {}, the Collector {}",
            ours.len(),
            theirs.len()
        ));
        // A case where nothing or everything is kept could not tell the two apart.
        assert!(
            !theirs.is_empty() && theirs.len() < traces.len(),
            "{name}: the load does not exercise the policy ({} of {} kept)",
            theirs.len(),
            traces.len()
        );
        if ours != theirs {
            let describe = |ids: Vec<&[u8; 16]>| -> Vec<&str> {
                ids.iter()
                    .filter_map(|id| traces.iter().find(|t| &t.id == *id))
                    .map(|t| t.drawn.as_str())
                    .collect()
            };
            let only_ours = describe(ours.difference(&theirs).take(4).collect());
            let only_theirs = describe(theirs.difference(&ours).take(4).collect());
            differences.push(format!(
                "{name}: {} kept by tailgate only (e.g. {only_ours:#?}), {} by the Collector \
                 only (e.g. {only_theirs:#?})",
                ours.difference(&theirs).count(),
                theirs.difference(&ours).count()
            ));
        }
    }
    eprintln!("{} traces a case:\n{}", traces.len(), report.join("\n"));
    let spans: usize = traces.iter().map(|t| t.spans).sum();
    assert!(spans > traces.len());
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// Tracestates with OpenTelemetry sampling fields for the tracestate gate's cases: none, a
/// vendor's, an explicit `rv` (drawn), an upstream threshold, both, optional whitespace, one
/// that does not parse, a very strict upstream threshold.
fn otel_states(r: u64) -> String {
    match (r >> 28) % 8 {
        0 => String::new(),
        1 => "vendor=a".into(),
        2 => format!("ot=rv:{:014x}", mix(r) >> 8),
        3 => "ot=th:8".into(),
        4 => format!("ot=rv:{:014x};th:c,vendor=b", mix(r ^ 7) >> 8),
        5 => " ot=th:0 , x=y".into(),
        6 => "bad key=1".into(),
        _ => "ot=th:fe".into(),
    }
}

/// Each kept span's tracestate, by trace and span id.
fn tracestates(
    spans: &[opentelemetry_proto::tonic::trace::v1::Span],
) -> BTreeMap<(Vec<u8>, Vec<u8>), String> {
    spans
        .iter()
        .map(|s| {
            (
                (s.trace_id.clone(), s.span_id.clone()),
                s.trace_state.clone(),
            )
        })
        .collect()
}

/// How many traces a run of the cases below takes (`TAILGATE_PARITY_TRACES`, default 2,000).
fn parity_traces() -> u64 {
    std::env::var("TAILGATE_PARITY_TRACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// Under the Collector's `usetracestate` gate, both keep the same traces and write the same
/// threshold into every kept span's tracestate.
#[test]
fn under_the_tracestate_gate_kept_spans_carry_the_collectors_thresholds() {
    if !peers::go_on_path() {
        println!("skipped: go is not on PATH");
        return;
    }
    let built = peers::build().unwrap_or_else(|err| panic!("{err}"));
    let (traces, bodies) = load_with(parity_traces(), otel_states, false);
    let cases: &[(&str, &str)] = &[
        (
            "probabilistic 30 %",
            "      - {name: p, type: probabilistic, probabilistic: {sampling_percentage: 30}}",
        ),
        (
            "errors or 20 %",
            "      - {name: e, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: p, type: probabilistic, probabilistic: {sampling_percentage: 20}}",
        ),
        (
            "and: checkout at 50 %",
            "      - name: a
        type: and
        and:
          and_sub_policy:
            - {name: c, type: string_attribute, string_attribute: {key: service.name, values: [checkout]}}
            - {name: p, type: probabilistic, probabilistic: {sampling_percentage: 50}}",
        ),
        (
            "a rate limit that keeps all, beside 10 %",
            "      - {name: r, type: rate_limiting, rate_limiting: {spans_per_second: 100000000}}
      - {name: p, type: probabilistic, probabilistic: {sampling_percentage: 10}}",
        ),
    ];
    let mut differences = Vec::new();
    for (name, policies) in cases {
        let case = parity::Case {
            policies,
            settings: "",
            gates: &["+processor.tailsamplingprocessor.usetracestate"],
        };
        let (ours, theirs) = parity::run(&built, &case, &bodies, traces.len());
        let (ours, theirs) = (tracestates(&ours), tracestates(&theirs));
        let rewritten = theirs
            .iter()
            .filter(|(_, state)| state.contains("th:"))
            .count();
        eprintln!(
            "{name}: tailgate kept {} spans, the Collector {} ({rewritten} with a th)",
            ours.len(),
            theirs.len()
        );
        assert!(rewritten > 0, "{name}: no span carries a threshold");
        let differing: Vec<_> = theirs
            .iter()
            .filter(|(key, state)| ours.get(*key) != Some(*state))
            .map(|(key, state)| (state, ours.get(key)))
            .chain(
                ours.iter()
                    .filter(|(key, _)| !theirs.contains_key(*key))
                    .map(|(_, state)| (state, None)),
            )
            .take(6)
            .collect();
        if ours != theirs {
            differences.push(format!(
                "{name}: kept spans or tracestates differ (the Collector's, tailgate's): \
                 {differing:?}"
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// With `sampling_strategy: span-ingest`, traces sent in two requests each are decided as the
/// Collector decides them: on the request whose spans a policy samples (or drops), and
/// otherwise not sampled when their wait ends.
#[test]
fn span_ingest_decides_on_the_same_request_as_the_collector() {
    if !peers::go_on_path() {
        println!("skipped: go is not on PATH");
        return;
    }
    let built = peers::build().unwrap_or_else(|err| panic!("{err}"));
    let (traces, bodies) = load_with(
        parity_traces(),
        |r| VENDOR_STATES[(r >> 28) as usize % 5].to_string(),
        true,
    );
    let cases: &[(&str, &str)] = &[
        (
            "errors",
            "      - {name: e, type: status_code, status_code: {status_codes: [ERROR]}}",
        ),
        (
            "errors or 20 %",
            "      - {name: e, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: p, type: probabilistic, probabilistic: {sampling_percentage: 20}}",
        ),
        (
            "latency over 700 ms, per request",
            "      - {name: l, type: latency, latency: {threshold_ms: 700}}",
        ),
        (
            // The retry flag is on the root only: a request without the root has no retry
            // flag, so `not` samples the trace there, which a whole-trace decision would not.
            "not a retried trace, per request",
            "      - name: n
        type: not
        not:
          not_sub_policy: {name: b, type: boolean_attribute, boolean_attribute: {key: retry, value: true}}",
        ),
        (
            "with a drop policy, nothing is sampled",
            "      - {name: e, type: status_code, status_code: {status_codes: [ERROR]}}
      - name: d
        type: drop
        drop:
          drop_sub_policy:
            - {name: h, type: string_attribute, string_attribute: {key: http.route, values: [/health]}}",
        ),
    ];
    let mut differences = Vec::new();
    for (name, policies) in cases {
        let case = parity::Case {
            policies,
            settings: "    sampling_strategy: span-ingest\n",
            gates: &[],
        };
        let (ours, theirs) = parity::run(&built, &case, &bodies, traces.len());
        let (ours, theirs) = (tracestates(&ours), tracestates(&theirs));
        eprintln!(
            "{name}: tailgate kept {} spans, the Collector {}",
            ours.len(),
            theirs.len()
        );
        if ours.keys().ne(theirs.keys()) {
            differences.push(format!(
                "{name}: {} spans kept by tailgate only, {} by the Collector only",
                ours.keys().filter(|k| !theirs.contains_key(*k)).count(),
                theirs.keys().filter(|k| !ours.contains_key(*k)).count()
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
