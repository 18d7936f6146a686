//! The Collector's `filter` processor through the real binary, over real sockets: spans from
//! the official Python SDK dropped before tail sampling (so no policy sees them) and after it
//! (so kept traces lose them on the way out), log records and metrics posted over HTTP dropped
//! by item and by resource, every drop counted in the Collector's families and in
//! `tailgate_dropped_*{reason="filtered"}`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
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
      - metric.name == "noisy"
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
    let logs = |service: &str, severities: &[i32]| ResourceLogs {
        resource: common::otlp::resource(service),
        scope_logs: vec![ScopeLogs {
            log_records: severities
                .iter()
                .map(|&severity_number| LogRecord {
                    time_unix_nano: 1,
                    severity_number,
                    ..LogRecord::default()
                })
                .collect(),
            ..ScopeLogs::default()
        }],
        ..ResourceLogs::default()
    };
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
