//! The header-recording test peer checked on its own: an export over each transport, and what
//! it recorded of the headers, service names and item counts.

mod common;

use std::io::Write;
use std::time::Duration;

use common::gateway::http_request;
use common::grpc::{grpc_call_with, Payload};
use common::header_sink::HeaderSink;
use common::otlp::{logs_request, metrics_request, resource};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const METRICS_EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");

/// Traces of `spans` spans from `service`, then a resource group without a service name.
fn traces_request(service: &str, spans: u8) -> Vec<u8> {
    let span = |id: u8| Span {
        trace_id: vec![7; 16],
        span_id: vec![id; 8],
        name: "probe".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Span::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: resource(service),
                scope_spans: vec![ScopeSpans {
                    spans: (1..spans).map(span).collect(),
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            },
            ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(spans)],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            },
        ],
    }
    .encode_to_vec()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

#[test]
fn records_headers_services_and_items_of_each_transport() {
    let sink = HeaderSink::start();

    let (status, headers, body) = http_request(
        sink.http,
        "POST",
        "/v1/traces",
        &[PROTOBUF, ("X-Tenant", "acme")],
        &traces_request("checkout", 3),
    )
    .expect("post traces");
    assert_eq!(status, 200);
    assert!(body.is_empty(), "an empty ExportTraceServiceResponse");
    assert!(headers
        .iter()
        .any(|(name, value)| name == "content-type" && value == "application/x-protobuf"));

    let reply = grpc_call_with(
        sink.grpc,
        METRICS_EXPORT,
        Payload::Bytes(&metrics_request("billing", 4)),
        "gzip",
        &[("x-tenant", "globex")],
    );
    assert_eq!(reply.code, "OK", "{}", reply.details());

    let (status, _, _) = http_request(
        sink.http,
        "POST",
        "/v1/logs",
        &[
            PROTOBUF,
            ("Content-Encoding", "gzip"),
            ("x-tenant", "initech"),
        ],
        &gzip(&logs_request("ledger", 2)),
    )
    .expect("post logs");
    assert_eq!(status, 200);

    let (status, _, _) = http_request(sink.http, "POST", "/v1/spans", &[PROTOBUF], b"")
        .expect("post to an unknown path");
    assert_eq!(status, 404);

    assert!(sink.wait_for_items(3 + 4 + 2, Duration::from_secs(10)));
    let requests = sink.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");

    let traces = &requests[0];
    assert_eq!(
        (traces.transport.as_str(), traces.signal.as_str()),
        ("http", "traces")
    );
    assert_eq!(traces.header("x-tenant"), Some("acme"));
    assert_eq!(traces.header("X-TENANT"), Some("acme"));
    assert_eq!(traces.headers["x-tenant"], ["acme"]);
    assert_eq!(traces.services, ["checkout", ""]);
    assert_eq!(traces.items, 3);

    let metrics = &requests[1];
    assert_eq!(
        (metrics.transport.as_str(), metrics.signal.as_str()),
        ("grpc", "metrics")
    );
    assert_eq!(metrics.header("x-tenant"), Some("globex"));
    assert_eq!(metrics.services, ["billing"]);
    assert_eq!(metrics.items, 4);

    let logs = &requests[2];
    assert_eq!(
        (logs.transport.as_str(), logs.signal.as_str()),
        ("http", "logs")
    );
    assert_eq!(logs.header("x-tenant"), Some("initech"));
    assert_eq!(logs.header("content-encoding"), Some("gzip"));
    assert_eq!(logs.services, ["ledger"]);
    assert_eq!(logs.items, 2);
    assert_eq!(logs.header("x-absent"), None);

    let status = sink.stop();
    assert!(
        status.success(),
        "header_sink.py exits 0 on SIGTERM: {status}"
    );
}
