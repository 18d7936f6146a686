//! The Collector's `filter` processor through the real binary, over real sockets: spans from
//! the official Python SDK dropped before tail sampling (so no policy sees them) and after it
//! (so kept traces lose them on the way out), log records and metrics posted over HTTP dropped
//! by item and by resource, every drop counted in the Collector's families and in
//! `tailgate_dropped_*{reason="filtered"}`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use prost::Message;

use common::gateway::{
    free_port, http_request, loopback, received_spans, start_sink, wait_for, Gateway,
};
use common::header_sink::HeaderSink;
use common::python::send_spans;

const WAIT: Duration = Duration::from_secs(30);

/// Traces of four spans (indexes 0 to 3) from the Python SDK over gRPC, every third trace an
/// error. `filter/before` drops every span 2 before `tail_sampling`, whose policies keep error
/// traces and traces holding a span 2: with the spans 2 gone, only the error traces are kept.
/// `filter/after` then drops their spans 1. The sink gets exactly spans 0 and 3 of the error
/// traces.
#[test]
fn spans_are_dropped_before_and_after_tail_sampling_in_the_order_listed() {
    let (sink, sink_addr, _) = start_sink();
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let config = format!(
        r#"receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
processors:
  filter/before:
    traces:
      span:
        - attributes["test.span_index"] == 2
  filter/after:
    error_mode: ignore
    trace_conditions:
      - span.attributes["test.span_index"] == 1 and resource.attributes["service.name"] == "tailgate-test-grpc"
  filter/logs-only:
    logs:
      log_record:
        - severity_number < SEVERITY_NUMBER_WARN
  tail_sampling:
    decision_wait: 1s
    policies:
      - name: errors
        type: status_code
        status_code:
          status_codes: [ERROR]
      - name: second-child
        type: numeric_attribute
        numeric_attribute:
          key: test.span_index
          min_value: 2
          max_value: 2
  batch:
    timeout: 50ms
exporters:
  otlp:
    endpoint: {sink_addr}
    tls:
      insecure: true
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [filter/before, filter/logs-only, tail_sampling, filter/after, batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0, 1]
"#
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let sent = send_spans("grpc", &format!("http://{grpc}"), 30, 4, 7, 3, "none");
    assert_eq!(sent.len(), 120);
    let index = |span: &common::python::SentSpan| span.attributes["test.span_index"].as_i64();
    let errors: BTreeSet<[u8; 16]> = sent
        .iter()
        .filter(|s| s.status_code == 2)
        .map(|s| s.trace_id)
        .collect();
    assert_eq!(errors.len(), 10);
    let expected: BTreeSet<([u8; 16], [u8; 8])> = sent
        .iter()
        .filter(|s| errors.contains(&s.trace_id) && matches!(index(s), Some(0 | 3)))
        .map(|s| (s.trace_id, s.span_id))
        .collect();
    let filtered =
        |id: &str| gateway.metric("otelcol_processor_filter_spans_filtered", &[("filter", id)]);
    assert!(
        wait_for(WAIT, || sink.spans_received() >= 20
            && filtered("filter/before") == 30.0
            && filtered("filter/after") == 10.0),
        "sink {}, before {}, after {}\n{}",
        sink.spans_received(),
        filtered("filter/before"),
        filtered("filter/after"),
        gateway.metrics()
    );
    // A filter without conditions for traces has no series on a traces pipeline.
    assert!(!gateway.metrics().contains("filter/logs-only"));
    assert_eq!(
        gateway.metric("tailgate_dropped_spans", &[("reason", "filtered")]),
        40.0
    );
    assert!(gateway.stop().success());
    let result = sink.stop().expect("stop the sink");
    let received: BTreeSet<([u8; 16], [u8; 8])> = received_spans(&result)
        .into_iter()
        .map(|(_, span)| {
            (
                span.trace_id.try_into().expect("16 bytes"),
                span.span_id.try_into().expect("8 bytes"),
            )
        })
        .collect();
    assert_eq!(received, expected);
}

/// Log records dropped by severity and by resource, metrics by name and by a resource group
/// condition, each counted in the Collector's families (a metric as its data points).
#[test]
fn log_records_and_metrics_are_dropped_by_item_and_by_resource() {
    let sink = HeaderSink::start();
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let config = format!(
        r#"receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
processors:
  filter:
    logs:
      resource:
        - attributes["service.name"] == "canary"
      log_record:
        - severity_number < SEVERITY_NUMBER_WARN
    metric_conditions:
      - context: metric
        conditions:
          - name == "noisy"
      - context: resource
        conditions:
          - attributes["service.name"] == "canary"
exporters:
  otlphttp:
    endpoint: http://{sink}
    compression: none
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [filter]
      exporters: [otlphttp]
    metrics:
      receivers: [otlp]
      processors: [filter]
      exporters: [otlphttp]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0]
"#,
        sink = sink.http
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let post = |path: &str, body: Vec<u8>| {
        let (status, _, reply) = http_request(
            gateway.http,
            "POST",
            path,
            &[("Content-Type", "application/x-protobuf")],
            &body,
        )
        .expect("post");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    };
    let logs = common::otlp::log_group;
    // Checkout: INFO, ERROR, DEBUG, WARN (two kept); canary: ERROR (dropped with its
    // resource); billing: INFO only (its group left empty, not written).
    post(
        "/v1/logs",
        ExportLogsServiceRequest {
            resource_logs: vec![
                logs("checkout", &[9, 17, 5, 13]),
                logs("canary", &[17]),
                logs("billing", &[9]),
            ],
        }
        .encode_to_vec(),
    );
    // All kept: goes on as it came.
    post(
        "/v1/logs",
        ExportLogsServiceRequest {
            resource_logs: vec![logs("billing", &[21])],
        }
        .encode_to_vec(),
    );
    let gauge = |name: &str, points: usize| Metric {
        name: name.to_string(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![
                NumberDataPoint {
                    time_unix_nano: 1,
                    ..NumberDataPoint::default()
                };
                points
            ],
        })),
        ..Metric::default()
    };
    let metrics = |service: &str, list: Vec<Metric>| ResourceMetrics {
        resource: common::otlp::resource(service),
        scope_metrics: vec![ScopeMetrics {
            metrics: list,
            ..ScopeMetrics::default()
        }],
        ..ResourceMetrics::default()
    };
    // Kept: `requests` (2 points); dropped: `noisy` (3) and canary's `requests` (4).
    post(
        "/v1/metrics",
        ExportMetricsServiceRequest {
            resource_metrics: vec![
                metrics("checkout", vec![gauge("requests", 2), gauge("noisy", 3)]),
                metrics("canary", vec![gauge("requests", 4)]),
            ],
        }
        .encode_to_vec(),
    );
    // Everything dropped: nothing is sent.
    post(
        "/v1/metrics",
        ExportMetricsServiceRequest {
            resource_metrics: vec![metrics("checkout", vec![gauge("noisy", 1)])],
        }
        .encode_to_vec(),
    );
    let count = |signal: &str| -> u64 {
        sink.requests()
            .iter()
            .filter(|r| r.signal == signal)
            .map(|r| r.items)
            .sum()
    };
    let filtered = |family: &str| gateway.metric(family, &[("filter", "filter")]);
    assert!(
        wait_for(WAIT, || count("logs") == 3
            && count("metrics") == 2
            && filtered("otelcol_processor_filter_logs_filtered") == 4.0
            && filtered("otelcol_processor_filter_datapoints_filtered")
                == 8.0),
        "logs {}, metrics {}\n{}",
        count("logs"),
        count("metrics"),
        gateway.metrics()
    );
    let services = |signal: &str| {
        let mut all: Vec<String> = sink
            .requests()
            .into_iter()
            .filter(|r| r.signal == signal)
            .flat_map(|r| r.services)
            .collect();
        all.sort();
        all
    };
    assert_eq!(services("logs"), ["billing", "checkout"]);
    assert_eq!(services("metrics"), ["checkout"]);
    assert_eq!(
        gateway.metric("tailgate_dropped_log_records", &[("reason", "filtered")]),
        4.0
    );
    assert_eq!(
        gateway.metric("tailgate_dropped_metric_points", &[("reason", "filtered")]),
        8.0
    );
    assert!(gateway.stop().success());
}

/// The parity test's filters, in each of the Collector's layouts: by signal and context;
/// conditions whose paths name their context; groups naming theirs, one overriding the
/// processor's error mode. Each line indented as the YAML needs.
const PARITY_FILTERS: [&str; 3] = [
    r#"    error_mode: ignore
    traces:
      resource:
        - attributes["service.name"] == "canary"
      span:
        - attributes["http.route"] == "/healthz"
        - IsMatch(name, "^GET /ping")
        - kind == SPAN_KIND_INTERNAL and attributes["http.status_code"] < 300
        - IsMatch(attributes["ratio"], "^0\\.2")
        - instrumentation_scope.name == "lib-b" and status.code != STATUS_CODE_ERROR
        - not IsRootSpan() and attributes["keep"] == false
        - resource.attributes["tier"] == nil and attributes["http.status_code"] == 404
      spanevent:
        - name == "retry" and attributes["attempt"] > 1
        - IsMatch(span.name, "^db") and name == "checkpoint"
"#,
    r#"    trace_conditions:
      - resource.attributes["service.name"] == "canary"
      - span.attributes["http.route"] == "/healthz" or IsMatch(span.name, "^GET /ping")
      - span.kind == SPAN_KIND_INTERNAL and span.attributes["http.status_code"] < 300
      - IsMatch(span.attributes["ratio"], "^0\\.2")
      - not IsRootSpan() and span.attributes["keep"] == false
      - spanevent.name == "checkpoint" and span.kind == SPAN_KIND_SERVER
"#,
    r#"    error_mode: propagate
    trace_conditions:
      - context: span
        error_mode: silent
        conditions:
          - IsMatch(attributes["ratio"], "^0\\.2")
          - instrumentation_scope.name == "lib-b" and status.code != STATUS_CODE_ERROR
      - context: resource
        conditions:
          - attributes["tier"] == "web" and attributes["service.name"] == "billing"
      - context: spanevent
        conditions:
          - name == "exception" or attributes["attempt"] == 3
"#,
];

/// Traces from four services over two scopes, with names, kinds, statuses and attributes the
/// parity conditions test (a NaN `ratio` now and then, which fails `IsMatch` under `ignore`):
/// `requests` requests of 25 traces of 4 spans, as OTLP/HTTP protobuf bodies; and the number
/// of spans.
fn parity_load(requests: usize) -> (Vec<Vec<u8>>, usize) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value::Value, AnyValue, InstrumentationScope, KeyValue,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        span::Event, status, ResourceSpans, ScopeSpans, Span, Status,
    };
    let kv = |key: &str, value: Value| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    };
    let services = ["checkout", "canary", "billing", "health"];
    let names = [
        "GET /ping",
        "GET /pay",
        "db.query",
        "render",
        "GET /pingback",
    ];
    let routes = ["/healthz", "/pay", "/cart"];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut bodies = Vec::new();
    let mut spans_sent = 0;
    for r in 0..requests {
        let mut groups: Vec<ResourceSpans> = Vec::new();
        for t in 0..25u64 {
            let service = services[next(4) as usize];
            let mut attributes = vec![kv("service.name", Value::StringValue(service.into()))];
            if next(2) == 0 {
                attributes.push(kv("tier", Value::StringValue("web".into())));
            }
            let trace = (r as u64) << 32 | t;
            let spans: Vec<(String, Span)> = (0..4u64)
                .map(|i| {
                    let code = [200, 204, 404, 500, 503][next(5) as usize];
                    let ratio = if next(10) == 0 {
                        f64::NAN
                    } else {
                        next(8) as f64 / 8.0
                    };
                    let mut attrs = vec![
                        kv("http.status_code", Value::IntValue(code)),
                        kv("ratio", Value::DoubleValue(ratio)),
                    ];
                    if next(3) == 0 {
                        attrs.push(kv(
                            "http.route",
                            Value::StringValue(routes[next(3) as usize].into()),
                        ));
                    }
                    if next(2) == 0 {
                        attrs.push(kv("keep", Value::BoolValue(next(2) == 0)));
                    }
                    let scope = if next(2) == 0 { "lib-a" } else { "lib-b" };
                    let span = Span {
                        trace_id: [trace.to_be_bytes(), 0x5eed_u64.to_be_bytes()].concat(),
                        span_id: (trace * 4 + i + 1).to_be_bytes().to_vec(),
                        parent_span_id: if i == 0 {
                            Vec::new()
                        } else {
                            (trace * 4 + 1).to_be_bytes().to_vec()
                        },
                        name: names[next(5) as usize].into(),
                        kind: 1 + next(5) as i32,
                        start_time_unix_nano: 1_000,
                        end_time_unix_nano: 2_000,
                        attributes: attrs,
                        events: (0..next(4))
                            .map(|e| Event {
                                time_unix_nano: 1_000 + e,
                                name: ["exception", "checkpoint", "retry"][next(3) as usize].into(),
                                attributes: vec![kv("attempt", Value::IntValue(next(4) as i64))],
                                ..Event::default()
                            })
                            .collect(),
                        status: Some(Status {
                            code: [
                                status::StatusCode::Unset,
                                status::StatusCode::Ok,
                                status::StatusCode::Error,
                            ][next(3) as usize] as i32,
                            ..Status::default()
                        }),
                        ..Span::default()
                    };
                    (scope.to_string(), span)
                })
                .collect();
            spans_sent += spans.len();
            let scope_group = |name: &str| ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: name.into(),
                    ..InstrumentationScope::default()
                }),
                spans: spans
                    .iter()
                    .filter(|(s, _)| s == name)
                    .map(|(_, span)| span.clone())
                    .collect(),
                ..ScopeSpans::default()
            };
            groups.push(ResourceSpans {
                resource: Some(Resource {
                    attributes,
                    ..Resource::default()
                }),
                scope_spans: vec![scope_group("lib-a"), scope_group("lib-b")],
                ..ResourceSpans::default()
            });
        }
        bodies.push(
            ExportTraceServiceRequest {
                resource_spans: groups,
            }
            .encode_to_vec(),
        );
    }
    (bodies, spans_sent)
}

/// The same spans through tailgate and the Collector built from its modules (contrib's
/// `filter` v0.161.0), each with the same `filter` processor, must leave the same spans at
/// each one's sink: resource and span conditions, both layouts, kinds, statuses, scopes,
/// `IsRootSpan()`, `nil`, `not`, numbers and booleans, and `IsMatch` failing on NaN under
/// `error_mode: ignore` and `silent`. Skipped, with a message, only where `go` is not on PATH.
#[test]
fn the_same_spans_are_dropped_as_the_collector_drops_them() {
    use common::parity::built_peers;
    let Some(built) = built_peers() else {
        return;
    };
    let (bodies, sent) = parity_load(40);
    for filter in PARITY_FILTERS {
        filter_parity(&built, filter, &bodies, sent);
    }
}

/// One parity run of `filter` on `bodies`, which hold `sent` spans.
fn filter_parity(built: &std::path::Path, filter: &str, bodies: &[Vec<u8>], sent: usize) {
    use common::parity::{post_all, settle, sum, Pair};
    let pair = Pair::start(built, |http, upstream| {
        format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: {http}\nprocessors:\n  filter:\n{filter}  batch:\n    timeout: 50ms\nexporters:\n  otlp:\n    endpoint: {upstream}\n    tls:\n      insecure: true\n    compression: none\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [filter, batch]\n      exporters: [otlp]\n"
        )
    });
    let (admin, their_metrics) = (pair.admin, pair.theirs.metrics);
    post_all(&pair.receivers(), bodies, &[]);
    // Every span has been through each system's filter once its receiver counted it.
    for metrics in [admin, their_metrics] {
        assert!(
            wait_for(WAIT, || sum(metrics, "otelcol_receiver_accepted_spans")
                == sent as f64),
            "{metrics}: {} of {sent} spans accepted",
            sum(metrics, "otelcol_receiver_accepted_spans")
        );
    }
    settle(admin, &pair.ours_sink);
    settle(their_metrics, &pair.theirs_sink);
    let ours_filtered = sum(admin, "otelcol_processor_filter_spans_filtered");
    let theirs_filtered = sum(their_metrics, "otelcol_processor_filter_spans_filtered");
    let (ours_sink, theirs_sink) = pair.stop();
    // Each span kept, with the events it kept (their times and names).
    type Kept = BTreeMap<(Vec<u8>, Vec<u8>), Vec<(u64, String)>>;
    let kept = |sink: tailgate_bench::sink::Sink| -> Kept {
        received_spans(&sink.stop().expect("stop the sink"))
            .into_iter()
            .map(|(_, s)| {
                let events = s.events.iter().map(|e| (e.time_unix_nano, e.name.clone()));
                ((s.trace_id, s.span_id), events.collect())
            })
            .collect()
    };
    let (ours_kept, theirs_kept) = (kept(ours_sink), kept(theirs_sink));
    let events = |k: &Kept| k.values().map(Vec::len).sum::<usize>();
    println!(
        "filter parity: events kept: tailgate {}, the Collector {}",
        events(&ours_kept),
        events(&theirs_kept)
    );
    // The span event conditions dropped some events of the spans kept, not all.
    let sent_events: usize = bodies
        .iter()
        .flat_map(|body| {
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                &body[..],
            )
            .expect("a request")
            .resource_spans
        })
        .flat_map(|g| g.scope_spans)
        .flat_map(|s| s.spans)
        .filter(|s| theirs_kept.contains_key(&(s.trace_id.clone(), s.span_id.clone())))
        .map(|s| s.events.len())
        .sum();
    assert!(
        events(&theirs_kept) > 0 && events(&theirs_kept) < sent_events,
        "{} of {sent_events} events kept",
        events(&theirs_kept)
    );
    let differing: Vec<_> = theirs_kept
        .iter()
        .filter(|(id, events)| ours_kept.get(*id).is_some_and(|ours| ours != *events))
        .take(3)
        .collect();
    assert!(differing.is_empty(), "events differ: {differing:?}");
    let ids = |k: &Kept| -> BTreeSet<(Vec<u8>, Vec<u8>)> { k.keys().cloned().collect() };
    let (ours, theirs) = (ids(&ours_kept), ids(&theirs_kept));
    println!(
        "filter parity: {sent} spans sent; tailgate kept {}, the Collector {}; filtered {ours_filtered} and {theirs_filtered}",
        ours.len(),
        theirs.len()
    );
    // The load exercises the conditions: some spans kept, many dropped by something.
    assert!(
        theirs.len() > sent / 20 && theirs.len() < sent * 2 / 3,
        "{}",
        theirs.len()
    );
    let only_ours: Vec<_> = ours.difference(&theirs).take(5).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).take(5).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "kept by tailgate only: {only_ours:?}; by the Collector only: {only_theirs:?}"
    );
    assert_eq!(ours_filtered, theirs_filtered);
    assert_eq!(ours_filtered as usize + ours.len(), sent);
}
