//! The Collector's `attributes` processor through the real binary, over real sockets, against
//! the Collector built from its modules (contrib `attributes` v0.161.0) with the same
//! configuration, on all three signals at once:
//!
//! - spans: every action (insert, update, upsert from a value, another attribute or the
//!   client's metadata; delete and hash by key and pattern; extract; convert) on attributes of
//!   every value type, and `include`/`exclude` by service (a missing and a non-string
//!   `service.name` among them), span name and kind, resource and span attributes (strict,
//!   with values of every type, and regexp on their text) and libraries;
//! - log records: by body (strings, numbers and maps, which match as JSON), severity text and
//!   number, resource and record attributes;
//! - metrics: every data point of every kind of metric, chosen by metric name, and an
//!   `include` by `resources` alone, which the Collector reads as matching everything.
//!
//! Each span, log record and metric must arrive with the same attributes, in the same order, at
//! both sinks; everything else as it was sent.
//!
//! And spans from the official Python SDK over gRPC, edited before tail sampling (a policy keeps
//! the traces an edit marked) and after it (on the kept spans alone).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile, ExponentialHistogram, ExponentialHistogramDataPoint,
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tailgate_wire::Signal;

use common::gateway::{free_port, loopback, received_spans, start_sink, wait_for, Gateway};
use common::otlp::{kv, s};
use common::parity::{built_peers, post_to, settle_signals, Pair};
use common::python::send_spans;

/// The processors both systems run, indented for `processors:`.
const PROCESSORS: &str = r#"  attributes/edit:
    actions:
      - {key: deployment.environment, value: production, action: insert}
      - {key: tier, value: 3, action: update}
      - {key: weight, value: 0.5, action: upsert}
      - {key: owner, from_attribute: team, action: upsert}
      - {key: tenant, from_context: metadata.x-tenant, action: insert}
      - {key: secret, action: delete}
      - {action: delete, pattern: ^tmp\.}
      - {key: user.email, action: hash}
      - {action: hash, pattern: ^pii\.}
      - {key: http.url, pattern: '^(?P<scheme>https?)://(?P<host>[^/:]+)(?::(?P<port>\d+))?', action: extract}
      - {key: port, action: convert, converted_type: int}
      - {key: ratio, action: convert, converted_type: double}
      - {key: count, action: convert, converted_type: string}
      - {key: zone, from_attribute: missing.attr, default_value: fallback, action: upsert}
  attributes/services:
    include:
      match_type: strict
      services: [svc-0, svc-2, "<nil-service-name>", "7"]
      span_kinds: [SPAN_KIND_SERVER, SPAN_KIND_CLIENT]
    actions:
      - {key: matched.services, value: true, action: upsert}
  attributes/regexp:
    include:
      match_type: regexp
      span_names: ["^get", "cart$"]
      attributes: [{key: code, value: "^5"}]
    exclude:
      match_type: regexp
      libraries: [{name: "^lib-b"}]
    actions:
      - {key: matched.regexp, value: 1, action: insert}
  attributes/values:
    include:
      match_type: strict
      attributes: [{key: code, value: 500}, {key: flag}]
      resources: [{key: weight, value: 0.5}]
    actions:
      - {key: matched.values, from_attribute: code, action: upsert}
  attributes/libraries:
    include:
      match_type: strict
      libraries: [{name: lib-a, version: "1.0"}]
    exclude:
      match_type: strict
      attributes: [{key: flag, value: true}]
    actions:
      - {key: matched.libraries, value: lib, action: insert}
      - {key: code, action: delete}
  attributes/keyed:
    actions:
      - {key: note, value: seen, action: update}
      - {key: team, action: hash}
      - {key: ratio, action: convert, converted_type: string}
  attributes/logs:
    include:
      match_type: regexp
      log_bodies: ["^error", '"level":"warn"', "^5$"]
      log_severity_number: {min: 13, match_undefined: true}
    exclude:
      match_type: strict
      log_severity_texts: [DEBUG]
    actions:
      - {key: matched.logs, value: true, action: insert}
      - {key: secret, action: hash}
  attributes/json:
    include:
      match_type: strict
      log_bodies: ['{"level":"warn","msg":"a<b & \"c\"","n":1e+21}', '{"level":"warn"}', '["error"]', "5", ZXJyb3I=, NaN, -Infinity, '{"b":null}']
    actions:
      - {key: matched.json, value: true, action: insert}
  attributes/log-resources:
    include:
      match_type: strict
      resources: [{key: service.name, value: svc-1}]
      attributes: [{key: kind}]
    actions:
      - {key: matched.resources, value: 2, action: upsert}
  attributes/metrics:
    include:
      match_type: regexp
      metric_names: ['^http\.', "count$"]
    exclude:
      match_type: strict
      metric_names: [http.skip]
    actions:
      - {key: matched.metrics, value: 0.5, action: insert}
      - {key: host, action: delete}
      - {key: code, action: convert, converted_type: int}
  attributes/metric-resources:
    include:
      match_type: strict
      resources: [{key: nothing, value: here}]
    actions:
      - {key: every.point, value: true, action: upsert}
"#;

const PIPELINES: &str = "    traces:
      receivers: [otlp]
      processors: [attributes/keyed, attributes/edit, attributes/services, attributes/regexp, attributes/values, attributes/libraries]
      exporters: [otlp]
    logs:
      receivers: [otlp]
      processors: [attributes/logs, attributes/json, attributes/log-resources, attributes/edit]
      exporters: [otlp]
    metrics:
      receivers: [otlp]
      processors: [attributes/metrics, attributes/metric-resources, attributes/keyed]
      exporters: [otlp]
";

/// Values of every type, for the actions and the matches to meet.
fn values() -> Vec<Option<Value>> {
    vec![
        s("8080"),
        s("503"),
        s(""),
        s("0.25"),
        s("true"),
        Some(Value::IntValue(500)),
        Some(Value::IntValue(-7)),
        Some(Value::DoubleValue(5.5)),
        Some(Value::DoubleValue(1e21)),
        Some(Value::DoubleValue(5e-7)),
        Some(Value::DoubleValue(f64::NAN)),
        Some(Value::DoubleValue(500.0)),
        Some(Value::BoolValue(true)),
        Some(Value::BoolValue(false)),
        Some(Value::BytesValue(vec![5, 0, 255])),
        None,
    ]
}

/// The resources of the span groups: services of every kind, weights the strict match meets
/// and misses.
fn span_resources() -> Vec<Option<Resource>> {
    let resource = |attributes: Vec<KeyValue>| {
        Some(Resource {
            attributes,
            ..Resource::default()
        })
    };
    vec![
        resource(vec![
            kv("service.name", s("svc-0")),
            kv("weight", Some(Value::DoubleValue(0.5))),
        ]),
        resource(vec![
            kv("service.name", s("svc-1")),
            kv("weight", Some(Value::DoubleValue(0.5))),
        ]),
        resource(vec![
            kv("service.name", s("svc-2")),
            kv("weight", Some(Value::DoubleValue(0.25))),
        ]),
        resource(vec![kv("weight", Some(Value::DoubleValue(0.5)))]),
        resource(vec![
            kv("service.name", Some(Value::IntValue(7))),
            kv("weight", s("0.5")),
        ]),
        resource(Vec::new()),
        // The first of a repeated key is its value: svc-9.
        resource(vec![
            kv("service.name", s("svc-9")),
            kv("service.name", s("svc-2")),
            kv("weight", Some(Value::DoubleValue(0.5))),
        ]),
        None,
    ]
}

fn scopes() -> Vec<Option<InstrumentationScope>> {
    let scope = |name: &str, version: &str| {
        Some(InstrumentationScope {
            name: name.into(),
            version: version.into(),
            ..InstrumentationScope::default()
        })
    };
    vec![
        scope("lib-a", "1.0"),
        scope("lib-a", "2.0"),
        scope("lib-b", "1.0"),
        scope("", ""),
        None,
    ]
}

/// One traces request: a group per resource, a scope group per scope, ten spans each, their
/// names, kinds and attributes varying; every span's id unique.
fn spans_request() -> (Vec<u8>, usize) {
    let names = ["get-user", "post-cart", "cart", "GET", "other", "getcart"];
    let values = values();
    let mut n = 0u64;
    let groups: Vec<ResourceSpans> = span_resources()
        .into_iter()
        .map(|resource| ResourceSpans {
            resource,
            scope_spans: scopes()
                .into_iter()
                .map(|scope| ScopeSpans {
                    scope,
                    spans: (0..10)
                        .map(|_| {
                            n += 1;
                            let i = n as usize;
                            let v = &values[i % values.len()];
                            let w = &values[(i * 5 + 3) % values.len()];
                            let mut attributes = vec![
                                // A stride prime to the list's length: every value in turn.
                                kv("code", values[(i * 3) % values.len()].clone()),
                                kv("port", v.clone()),
                                kv("ratio", w.clone()),
                                kv("count", v.clone()),
                                kv("user.email", w.clone()),
                                kv("pii.name", v.clone()),
                                kv("tmp.a", s("1")),
                                kv("secret", s("one")),
                                kv("secret", s("two")),
                            ];
                            match i % 5 {
                                0 => attributes.push(kv("flag", Some(Value::BoolValue(true)))),
                                1 => attributes.push(kv("flag", Some(Value::BoolValue(false)))),
                                2 => attributes.push(kv("flag", s("true"))),
                                _ => {}
                            }
                            if i.is_multiple_of(2) {
                                attributes.push(kv("note", s("n")));
                            }
                            if i.is_multiple_of(3) {
                                attributes
                                    .push(kv("http.url", s("https://shop.example.com:8443/cart")));
                                attributes.push(kv("team", s("payments")));
                                attributes.push(kv("tier", s("web")));
                            }
                            if i.is_multiple_of(7) {
                                // No attributes at all: matches by attribute fail.
                                attributes.clear();
                            }
                            Span {
                                trace_id: [n.to_be_bytes(), 9u64.to_be_bytes()].concat(),
                                span_id: n.to_be_bytes().to_vec(),
                                name: names[i % names.len()].into(),
                                kind: (i % 7) as i32,
                                start_time_unix_nano: 1,
                                end_time_unix_nano: 2,
                                attributes,
                                ..Span::default()
                            }
                        })
                        .collect(),
                    ..ScopeSpans::default()
                })
                .collect(),
            ..ResourceSpans::default()
        })
        .collect();
    let body = ExportTraceServiceRequest {
        resource_spans: groups,
    }
    .encode_to_vec();
    (body, n as usize)
}

/// One logs request: bodies of every kind, severities and texts around the match's bounds.
fn logs_request() -> (Vec<u8>, usize) {
    let bodies = vec![
        s("error: disk full"),
        s("info: started"),
        s("5"),
        Some(Value::IntValue(5)),
        Some(Value::DoubleValue(5.0)),
        Some(Value::KvlistValue(KeyValueList {
            values: vec![
                kv("msg", s("a<b & \"c\"")),
                kv("level", s("warn")),
                kv("n", Some(Value::DoubleValue(1e21))),
            ],
        })),
        Some(Value::KvlistValue(KeyValueList {
            values: vec![kv("level", s("info")), kv("level", s("warn"))],
        })),
        Some(Value::ArrayValue(ArrayValue {
            values: vec![AnyValue { value: s("error") }],
        })),
        Some(Value::BytesValue(b"error".to_vec())),
        Some(Value::DoubleValue(f64::NAN)),
        Some(Value::DoubleValue(f64::NEG_INFINITY)),
        Some(Value::KvlistValue(KeyValueList {
            values: vec![kv("b", Some(Value::BytesValue(Vec::new())))],
        })),
        None,
    ];
    let severities = [
        (0, ""),
        (5, "DEBUG"),
        (13, "WARN"),
        (17, "ERROR"),
        (9, "INFO"),
    ];
    let mut n = 0u64;
    let groups = ["svc-1", "svc-2"]
        .iter()
        .map(|service| ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(service))],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: bodies
                    .iter()
                    .flat_map(|body| {
                        severities
                            .iter()
                            .map(move |(number, text)| (body, number, text))
                    })
                    .map(|(body, number, text)| {
                        n += 1;
                        let mut attributes = vec![kv("secret", s("hidden"))];
                        if n.is_multiple_of(2) {
                            attributes.push(kv("kind", s("audit")));
                        }
                        LogRecord {
                            time_unix_nano: n,
                            severity_number: *number,
                            severity_text: text.to_string(),
                            body: Some(AnyValue {
                                value: body.clone(),
                            }),
                            attributes,
                            ..LogRecord::default()
                        }
                    })
                    .collect(),
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        })
        .collect();
    let body = ExportLogsServiceRequest {
        resource_logs: groups,
    }
    .encode_to_vec();
    (body, n as usize)
}

/// One metrics request: a metric of each kind, names the match meets and misses, two data
/// points each.
fn metrics_request() -> (Vec<u8>, usize) {
    let attributes = |i: u64| {
        let mut attributes = vec![
            kv("host", s("h1")),
            kv("code", if i == 0 { s("200") } else { s("x") }),
        ];
        if i == 0 {
            attributes.push(kv("note", s("n")));
        }
        attributes
    };
    let number = |i: u64| NumberDataPoint {
        attributes: attributes(i),
        time_unix_nano: 10 + i,
        value: Some(number_data_point::Value::AsInt(i as i64)),
        ..NumberDataPoint::default()
    };
    let metric = |name: &str, data: Data| Metric {
        name: name.into(),
        data: Some(data),
        ..Metric::default()
    };
    let metrics = vec![
        metric(
            "http.requests",
            Data::Gauge(Gauge {
                data_points: (0..2).map(number).collect(),
            }),
        ),
        metric(
            "http.skip",
            Data::Sum(Sum {
                data_points: (0..2).map(number).collect(),
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
        ),
        metric(
            "request.count",
            Data::Histogram(Histogram {
                data_points: (0..2)
                    .map(|i| HistogramDataPoint {
                        attributes: attributes(i),
                        time_unix_nano: 20 + i,
                        count: 3,
                        bucket_counts: vec![1, 2],
                        explicit_bounds: vec![1.0],
                        ..HistogramDataPoint::default()
                    })
                    .collect(),
                aggregation_temporality: 1,
            }),
        ),
        metric(
            "bytes.count",
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: (0..2)
                    .map(|i| ExponentialHistogramDataPoint {
                        attributes: attributes(i),
                        time_unix_nano: 30 + i,
                        count: 2,
                        scale: 1,
                        positive: Some(Buckets {
                            offset: 0,
                            bucket_counts: vec![2],
                        }),
                        ..ExponentialHistogramDataPoint::default()
                    })
                    .collect(),
                aggregation_temporality: 2,
            }),
        ),
        metric(
            "latency",
            Data::Summary(Summary {
                data_points: (0..2)
                    .map(|i| SummaryDataPoint {
                        attributes: attributes(i),
                        time_unix_nano: 40 + i,
                        count: 1,
                        sum: 2.0,
                        quantile_values: vec![ValueAtQuantile {
                            quantile: 0.5,
                            value: 2.0,
                        }],
                        ..SummaryDataPoint::default()
                    })
                    .collect(),
            }),
        ),
    ];
    let points = metrics.len() * 2;
    let body = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("svc-m"))],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
    .encode_to_vec();
    (body, points)
}

/// What a sink received, each item keyed by its identity: spans by id, log records by time,
/// metrics by name; with the resource each came under.
#[derive(Default)]
struct Received {
    spans: BTreeMap<Vec<u8>, (Option<Resource>, Span)>,
    logs: BTreeMap<u64, (Option<Resource>, LogRecord)>,
    metrics: BTreeMap<String, (Option<Resource>, Metric)>,
}

fn received(sink: tailgate_bench::sink::Sink) -> Received {
    let mut out = Received::default();
    for (signal, bytes) in sink.stop().expect("stop the sink").requests {
        match signal {
            Signal::Traces => {
                for group in ExportTraceServiceRequest::decode(&bytes[..])
                    .unwrap()
                    .resource_spans
                {
                    for span in group.scope_spans.into_iter().flat_map(|s| s.spans) {
                        let previous = out
                            .spans
                            .insert(span.span_id.clone(), (group.resource.clone(), span));
                        assert!(previous.is_none(), "a span twice");
                    }
                }
            }
            Signal::Logs => {
                for group in ExportLogsServiceRequest::decode(&bytes[..])
                    .unwrap()
                    .resource_logs
                {
                    for log in group.scope_logs.into_iter().flat_map(|s| s.log_records) {
                        let previous = out
                            .logs
                            .insert(log.time_unix_nano, (group.resource.clone(), log));
                        assert!(previous.is_none(), "a log record twice");
                    }
                }
            }
            Signal::Metrics => {
                for group in ExportMetricsServiceRequest::decode(&bytes[..])
                    .unwrap()
                    .resource_metrics
                {
                    for metric in group.scope_metrics.into_iter().flat_map(|s| s.metrics) {
                        let previous = out
                            .metrics
                            .insert(metric.name.clone(), (group.resource.clone(), metric));
                        assert!(previous.is_none(), "a metric twice");
                    }
                }
            }
        }
    }
    out
}

/// `metric` with the empty bucket messages the Collector's encoder writes where none came.
fn normal_metric(metric: &Metric) -> Metric {
    let mut metric = metric.clone();
    if let Some(Data::ExponentialHistogram(h)) = &mut metric.data {
        for point in &mut h.data_points {
            point.positive.get_or_insert_with(Buckets::default);
            point.negative.get_or_insert_with(Buckets::default);
        }
    }
    metric
}

/// Fails with `what` unless `ours` and `theirs` encode alike (so a NaN equals a NaN).
fn assert_same<M: Message + std::fmt::Debug>(ours: &M, theirs: &M, what: impl FnOnce() -> String) {
    if ours.encode_to_vec() != theirs.encode_to_vec() {
        panic!("{}\n  tailgate:  {ours:?}\n  Collector: {theirs:?}", what());
    }
}

/// The keys of `attributes`, for a failure's message.
fn keys(attributes: &[KeyValue]) -> Vec<&str> {
    attributes.iter().map(|kv| kv.key.as_str()).collect()
}

#[test]
fn items_are_edited_as_the_collector_edits_them() {
    let Some(built) = built_peers() else {
        return;
    };
    let (spans, span_count) = spans_request();
    let (logs, log_count) = logs_request();
    let (metrics, point_count) = metrics_request();
    let pair = Pair::start(&built, |http, upstream| {
        format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: {http}\n        include_metadata: true\nprocessors:\n{PROCESSORS}exporters:\n  otlp:\n    endpoint: {upstream}\n    tls:\n      insecure: true\n    compression: none\nservice:\n  pipelines:\n{PIPELINES}"
        )
    });
    let headers = [("X-Tenant", "acme")];
    post_to(&pair.receivers(), "/v1/traces", &[spans], &headers);
    post_to(&pair.receivers(), "/v1/logs", &[logs], &headers);
    post_to(&pair.receivers(), "/v1/metrics", &[metrics], &headers);
    let sent = [
        ("otelcol_exporter_sent_spans", span_count),
        ("otelcol_exporter_sent_log_records", log_count),
        ("otelcol_exporter_sent_metric_points", point_count),
    ];
    settle_signals(pair.admin, &pair.ours_sink, &sent);
    settle_signals(pair.theirs.metrics, &pair.theirs_sink, &sent);
    let (ours_sink, theirs_sink) = pair.stop();
    let (ours, theirs) = (received(ours_sink), received(theirs_sink));

    assert_eq!(ours.spans.len(), span_count);
    assert_eq!(theirs.spans.len(), span_count);
    // The Collector writes an empty `status` where none came (its encoder writes every message
    // field); tailgate forwards the span as it came.
    let normal = |span: &Span| Span {
        status: Some(span.status.clone().unwrap_or_default()),
        ..span.clone()
    };
    let mut matched: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, (resource, span)) in &theirs.spans {
        let (our_resource, our_span) = &ours.spans[id];
        // The Collector writes an empty resource where none came.
        assert_eq!(
            our_resource.clone().unwrap_or_default(),
            resource.clone().unwrap_or_default(),
            "span {id:?}: its resource"
        );
        assert_same(&normal(our_span), &normal(span), || {
            format!(
                "span {id:?} ({}, kind {}): tailgate's attributes {:?}, the Collector's {:?}",
                span.name,
                span.kind,
                keys(&our_span.attributes),
                keys(&span.attributes)
            )
        });
        for kv in &span.attributes {
            if let Some(which) = kv.key.strip_prefix("matched.") {
                *matched.entry(which).or_default() += 1;
            }
        }
    }
    // Each matching processor chose some spans and not others.
    for which in ["services", "regexp", "values", "libraries"] {
        let n = matched.get(which).copied().unwrap_or(0);
        assert!(
            n > 0 && n < span_count,
            "matched.{which} on {n} of {span_count} spans"
        );
    }

    assert_eq!(ours.logs.len(), log_count);
    assert_eq!(theirs.logs.len(), log_count);
    let mut matched: BTreeMap<&str, usize> = BTreeMap::new();
    for (time, (resource, log)) in &theirs.logs {
        let (our_resource, our_log) = &ours.logs[time];
        // The Collector writes an empty resource where none came.
        assert_eq!(
            our_resource.clone().unwrap_or_default(),
            resource.clone().unwrap_or_default(),
            "log record {time}: its resource"
        );
        assert_same(our_log, log, || {
            format!(
                "log record {time} (body {:?}, severity {} {:?}): tailgate's attributes {:?}, \
                 the Collector's {:?}",
                log.body,
                log.severity_number,
                log.severity_text,
                keys(&our_log.attributes),
                keys(&log.attributes)
            )
        });
        for kv in &log.attributes {
            if let Some(which) = kv.key.strip_prefix("matched.") {
                *matched.entry(which).or_default() += 1;
            }
        }
    }
    for which in ["logs", "json", "resources"] {
        let n = matched.get(which).copied().unwrap_or(0);
        assert!(
            n > 0 && n < log_count,
            "matched.{which} on {n} of {log_count} log records"
        );
    }

    assert_eq!(ours.metrics.len(), 5);
    assert_eq!(theirs.metrics.len(), 5);
    for (name, (resource, metric)) in &theirs.metrics {
        let (our_resource, our_metric) = &ours.metrics[name];
        // The Collector writes an empty resource where none came.
        assert_eq!(
            our_resource.clone().unwrap_or_default(),
            resource.clone().unwrap_or_default(),
            "metric {name}: its resource"
        );
        assert_same(&normal_metric(our_metric), &normal_metric(metric), || {
            format!("metric {name}")
        });
    }
    // The names chose: http.requests edited, http.skip not; every point got `every.point`.
    let text = format!("{:?}", ours.metrics["http.requests"].1);
    assert!(text.contains("matched.metrics") && text.contains("every.point"));
    let text = format!("{:?}", ours.metrics["http.skip"].1);
    assert!(!text.contains("matched.metrics") && text.contains("every.point"));
}

/// Traces of four spans from the Python SDK over gRPC, every third an error. `attributes/mark`,
/// listed before `tail_sampling`, marks the root span of every fifth trace (its name ends in
/// `/root`, its `test.trace_index` as text ends in 0 or 5), and a policy keeps the marked traces
/// beside the errors. `attributes/after`, listed after it, edits the kept spans but the roots.
/// The sink gets exactly the kept traces' spans, edited so.
#[test]
fn python_sdk_spans_are_edited_before_and_after_tail_sampling() {
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
  attributes/mark:
    include:
      match_type: regexp
      span_names: ["/root$"]
      attributes: [{{key: test.trace_index, value: "^[0-9]*[05]$"}}]
    actions:
      - {{key: sampling.keep, value: true, action: insert}}
  tail_sampling:
    decision_wait: 1s
    policies:
      - name: errors
        type: status_code
        status_code:
          status_codes: [ERROR]
      - name: marked
        type: boolean_attribute
        boolean_attribute:
          key: sampling.keep
          value: true
  attributes/after:
    exclude:
      match_type: strict
      span_kinds: [SPAN_KIND_SERVER]
    actions:
      - {{key: test.tags, action: delete}}
      - {{key: region, value: eu, action: insert}}
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
      processors: [attributes/mark, tail_sampling, attributes/after, batch]
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
    let trace_index = |span: &common::python::SentSpan| {
        span.attributes["test.trace_index"]
            .as_i64()
            .expect("an int")
    };
    let kept = |t: i64| t % 3 == 2 || t % 5 == 0;
    let expected: BTreeMap<[u8; 8], &common::python::SentSpan> = sent
        .iter()
        .filter(|s| kept(trace_index(s)))
        .map(|s| (s.span_id, s))
        .collect();
    // Errors at 2, 5, ..., 29 (10) and marks at 0, 5, ..., 25 (6), 5 and 20 among both.
    assert_eq!(expected.len(), 14 * 4);
    assert!(
        wait_for(Duration::from_secs(30), || sink.spans_received()
            >= expected.len() as u64),
        "the sink has {} of {} spans",
        sink.spans_received(),
        expected.len()
    );
    assert!(gateway.stop().success());
    let received = received_spans(&sink.stop().expect("stop the sink"));
    assert_eq!(received.len(), expected.len());
    for (_, span) in received {
        let id: [u8; 8] = span.span_id.clone().try_into().expect("8 bytes");
        let sent = expected[&id];
        let key_list = keys(&span.attributes);
        let root = sent.parent_span_id.is_empty();
        let marked = root && trace_index(sent) % 5 == 0;
        assert_eq!(
            key_list.contains(&"sampling.keep"),
            marked,
            "{}: {key_list:?}",
            sent.name
        );
        // The roots are servers: left as they were; the others lost their tags and gained a
        // region.
        assert_eq!(key_list.contains(&"test.tags"), root, "{}", sent.name);
        assert_eq!(key_list.contains(&"region"), !root, "{}", sent.name);
        assert_eq!(
            key_list.len(),
            // One gained by the mark; one lost and one gained by the rest.
            sent.attributes.len() + usize::from(marked),
            "{}: {key_list:?}",
            sent.name
        );
    }
}
