//! Tail-sampling decisions end to end through the real layers: a `tail_sampling` section parsed
//! by the configuration loader, OTLP requests encoded with prost and validated by the wire
//! layer, traces assembled from the span views (across resource groups and requests), and the
//! policy set's final decisions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use tailgate::config::{ComponentId, Config, Processor, TailSampling};
use tailgate::sampling::{Decision, PolicySet, Trace, TraceSpan};
use tailgate_wire::TracesRequest;

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000_000_000;

/// With the default salt at 10 %, this id is sampled (its FNV-1a hash is 0x17bec3739634fe2d,
/// under the threshold 1844674407370955263) and the next one is not (0xdbcf64d5420f4cad); see
/// the parity table in `src/sampling/probabilistic.rs`.
const LUCKY: [u8; 16] = [0xff; 16];
const UNLUCKY: [u8; 16] = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
];

/// The recommended policy set: keep errors, keep slow traces, 10 % of the rest, and never
/// health checks.
const POLICIES: &str = r#"
      - name: keep-errors
        type: status_code
        status_code:
          status_codes: [ERROR]
      - name: keep-slow
        type: latency
        latency:
          threshold_ms: 1000
      - name: sample-10-percent
        type: probabilistic
        probabilistic:
          sampling_percentage: 10
      - name: drop-health-checks
        type: drop
        drop:
          drop_sub_policy:
            - name: healthz-route
              type: string_attribute
              string_attribute:
                key: http.route
                values: [/healthz]
"#;

/// Parses a full gateway configuration whose `tail_sampling` has `policies` (YAML list items
/// indented by six spaces) and `extra` top-level settings.
fn tail_sampling(extra: &str, policies: &str) -> TailSampling {
    let yaml = format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
processors:
  tail_sampling:
    decision_wait: 5s
{extra}
    policies:
{policies}
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [debug]
"#
    );
    let config = Config::from_yaml(&yaml, "test.yaml").expect("valid configuration");
    let id = ComponentId::parse("tail_sampling").unwrap();
    match config.processors.get(&id) {
        Some(Processor::TailSampling(ts)) => ts.clone(),
        other => panic!("no tail_sampling processor: {other:?}"),
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// A span of `trace_id` over `[start_ms, end_ms]` with `status` and one `http.route`.
fn span(trace_id: [u8; 16], n: u8, start_ms: u64, end_ms: u64, status: i32, route: &str) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: [n + 1; 8].to_vec(),
        name: format!("GET {route}"),
        start_time_unix_nano: T0 + start_ms * MS,
        end_time_unix_nano: T0 + end_ms * MS,
        attributes: vec![kv("http.route", route)],
        status: Some(Status {
            code: status,
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// A request with one resource group per service.
fn request(services: Vec<(&str, Vec<Span>)>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: services
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
    .encode_to_vec()
}

/// Every span of the requests grouped by trace id, in arrival order, as a trace buffer would.
fn by_trace<'a>(requests: &[TracesRequest<'a>]) -> BTreeMap<[u8; 16], Vec<TraceSpan<'a>>> {
    let mut traces: BTreeMap<[u8; 16], Vec<TraceSpan<'a>>> = BTreeMap::new();
    for request in requests {
        for group in request.request().resource_groups() {
            let resource = group.resource();
            for scope_group in group.scope_groups() {
                let scope = scope_group.scope();
                for span in scope_group.spans() {
                    let id = span.trace_id_array().expect("16-byte trace id");
                    traces.entry(id).or_default().push(TraceSpan {
                        span,
                        resource,
                        scope,
                    });
                }
            }
        }
    }
    traces
}

/// Decides every trace in `requests` and returns (sampled, decision) by trace id.
fn decide_all(
    set: &mut PolicySet,
    requests: &[Vec<u8>],
    now: Instant,
) -> BTreeMap<[u8; 16], (bool, Decision)> {
    let parsed: Vec<TracesRequest<'_>> = requests
        .iter()
        .map(|bytes| TracesRequest::parse(bytes).expect("valid request"))
        .collect();
    by_trace(&parsed)
        .into_iter()
        .map(|(id, spans)| {
            let d = set.decide(&Trace::new(id, &spans), now);
            (id, (d.sampled, d.decision))
        })
        .collect()
}

fn id(n: u8) -> [u8; 16] {
    let mut id = [0x5a; 16];
    id[15] = n;
    id
}

#[test]
fn the_recommended_policies_keep_errors_slow_traces_and_a_share_and_drop_health_checks() {
    let mut set = PolicySet::new(&tail_sampling("", POLICIES), 1).unwrap();
    assert_eq!(
        set.names(),
        [
            "keep-errors",
            "keep-slow",
            "sample-10-percent",
            "drop-health-checks"
        ]
    );
    let (error, slow, fast) = (id(1), id(2), UNLUCKY);
    let (health_error, health_lucky) = (id(3), LUCKY);
    let requests = vec![
        request(vec![
            (
                "frontend",
                vec![
                    span(error, 0, 0, 120, 0, "/checkout"),
                    span(slow, 0, 0, 300, 0, "/search"),
                    span(fast, 0, 0, 80, 1, "/cart"),
                ],
            ),
            (
                "payments",
                vec![
                    span(error, 1, 10, 90, 2, "/charge"),
                    span(slow, 1, 20, 1_001, 0, "/index"), // 1 001 ms: over 1 000, which is exclusive
                ],
            ),
        ]),
        // A later request: the health checks, one failing, one with a lucky trace id.
        request(vec![(
            "frontend",
            vec![
                span(health_error, 0, 0, 5, 2, "/healthz"),
                span(health_lucky, 0, 0, 5, 0, "/healthz"),
            ],
        )]),
    ];
    let decisions = decide_all(&mut set, &requests, Instant::now());
    assert_eq!(decisions[&error], (true, Decision::Sampled));
    assert_eq!(decisions[&slow], (true, Decision::Sampled));
    assert_eq!(decisions[&fast], (false, Decision::NotSampled));
    // Drop wins over the error and over the probabilistic share.
    assert_eq!(decisions[&health_error], (false, Decision::Dropped));
    assert_eq!(decisions[&health_lucky], (false, Decision::Dropped));
}

#[test]
fn the_probabilistic_share_follows_the_collectors_hash() {
    let mut set = PolicySet::new(&tail_sampling("", POLICIES), 1).unwrap();
    let requests = vec![request(vec![(
        "frontend",
        vec![
            span(LUCKY, 0, 0, 10, 0, "/cart"),
            span(UNLUCKY, 0, 0, 10, 0, "/cart"),
        ],
    )])];
    let decisions = decide_all(&mut set, &requests, Instant::now());
    assert_eq!(decisions[&LUCKY], (true, Decision::Sampled));
    assert_eq!(decisions[&UNLUCKY], (false, Decision::NotSampled));

    // Over many ids the share is close to 10 %.
    let spans: Vec<Span> = (0..4_000u32)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            id[12..].copy_from_slice(&i.to_le_bytes());
            span(id, 0, 0, 10, 0, "/cart")
        })
        .collect();
    let decisions = decide_all(&mut set, &[request(vec![("svc", spans)])], Instant::now());
    let kept = decisions.values().filter(|(sampled, _)| *sampled).count();
    assert!((300..=500).contains(&kept), "{kept} of 4000 kept");
}

#[test]
fn sample_on_first_match_stops_before_an_inverted_refusal_but_not_before_a_drop() {
    // An extra policy excludes the "batch" service with invert_match: its InvertNotSampled
    // overrides every sample unless the evaluation stops first.
    let policies = format!(
        "{POLICIES}{}",
        r#"
      - name: not-batch
        type: string_attribute
        string_attribute:
          key: service.name
          values: [batch]
          invert_match: true
"#
    );
    let requests = vec![request(vec![
        ("batch", vec![span(id(1), 0, 0, 10, 2, "/job")]),
        ("batch", vec![span(id(2), 0, 0, 10, 2, "/healthz")]),
        ("api", vec![span(id(3), 0, 0, 10, 2, "/orders")]),
    ])];

    let mut all = PolicySet::new(&tail_sampling("", &policies), 1).unwrap();
    let decisions = decide_all(&mut all, &requests, Instant::now());
    assert_eq!(decisions[&id(1)], (false, Decision::NotSampled));
    assert_eq!(decisions[&id(2)], (false, Decision::Dropped));
    // "api" is not excluded: InvertSampled, and keep-errors sampled.
    assert_eq!(decisions[&id(3)], (true, Decision::Sampled));

    let first_match = tail_sampling("    sample_on_first_match: true", &policies);
    let mut first = PolicySet::new(&first_match, 1).unwrap();
    let parsed = TracesRequest::parse(&requests[0]).unwrap();
    let traces = by_trace(&[parsed]);
    let batch_error = first.decide(&Trace::new(id(1), &traces[&id(1)]), Instant::now());
    assert!(batch_error.sampled, "keep-errors matched first");
    assert_eq!(batch_error.policy, Some(0));
    assert_eq!(
        batch_error.per_policy,
        [
            Some(Decision::Sampled),
            None,
            None,
            Some(Decision::NotSampled),
            None
        ]
    );
    let health = first.decide(&Trace::new(id(2), &traces[&id(2)]), Instant::now());
    assert_eq!(
        health.decision,
        Decision::Dropped,
        "drop policies run first"
    );
    assert_eq!(health.policy, Some(3));
}

#[test]
fn resource_attributes_count_across_requests_and_groups() {
    // Keep any trace touching the "payments" service, wherever its spans arrive.
    let policies = r#"
      - name: payments
        type: string_attribute
        string_attribute:
          key: service.name
          values: [paym.*]
          enabled_regex_matching: true
"#;
    let mut set = PolicySet::new(&tail_sampling("", policies), 1).unwrap();
    let (touches, avoids) = (id(7), id(8));
    let requests = vec![
        request(vec![(
            "frontend",
            vec![
                span(touches, 0, 0, 10, 0, "/pay"),
                span(avoids, 0, 0, 10, 0, "/"),
            ],
        )]),
        request(vec![
            ("cart", vec![span(avoids, 1, 1, 5, 0, "/cart")]),
            ("payments", vec![span(touches, 1, 1, 5, 0, "/charge")]),
        ]),
    ];
    let decisions = decide_all(&mut set, &requests, Instant::now());
    assert!(decisions[&touches].0);
    assert!(!decisions[&avoids].0);
}

#[test]
fn node_wide_rates_are_shared_by_the_shards() {
    // 40 spans/s across 4 shards: each shard's bucket refills 10/s and holds 20.
    let policies = r#"
      - name: cap
        type: rate_limiting
        rate_limiting:
          spans_per_second: 40
"#;
    let config = tail_sampling("", policies);
    let mut shard = PolicySet::new(&config, 4).unwrap();
    let t0 = Instant::now();
    let trace_of = |n: u8, spans: usize| {
        request(vec![(
            "svc",
            (0..spans)
                .map(|i| span(id(n), i as u8, 0, 1, 0, "/"))
                .collect(),
        )])
    };
    assert!(decide_all(&mut shard, &[trace_of(1, 15)], t0)[&id(1)].0);
    assert!(!decide_all(&mut shard, &[trace_of(2, 6)], t0)[&id(2)].0);
    assert!(decide_all(&mut shard, &[trace_of(3, 5)], t0)[&id(3)].0);
    let later = t0 + Duration::from_millis(600);
    assert!(decide_all(&mut shard, &[trace_of(4, 6)], later)[&id(4)].0);
    // The whole node on one shard would have taken all of it at once.
    let mut whole = PolicySet::new(&config, 1).unwrap();
    assert!(decide_all(&mut whole, &[trace_of(5, 80)], t0)[&id(5)].0);
}
