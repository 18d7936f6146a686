//! The official OpenTelemetry JavaScript SDK (npm: `@opentelemetry/sdk-trace` and its three OTLP
//! trace exporters, pinned by tests/node/package-lock.json) sends through the real gateway:
//! over gRPC (on `@grpc/grpc-js`, an HTTP/2 stack of its own), HTTP/protobuf and HTTP/JSON,
//! with and without gzip. Every span the SDK handed its exporter must reach the sink once, with
//! its ids, parent, name, kind and status, under the SDK's resource. Skipped, with a message,
//! only where node or npm is missing and `TAILGATE_REQUIRE_NODE` is not set.

mod common;

use std::collections::HashMap;

use common::gateway::{received_spans, start_sink, Gateway};
use common::node::{self, NodeSpan};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

fn round_trip(protocol: &str, compression: &str) {
    let (sink, sink_grpc, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(sink_grpc, 2, "", "");
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let endpoint = match protocol {
        "grpc" => format!("http://{}", gateway.grpc),
        _ => format!("http://{}", gateway.http),
    };
    let sent = node::send_spans(protocol, &endpoint, 20, 4, compression, None);
    assert_eq!(
        sent.len(),
        80,
        "{protocol}/{compression}: the SDK exported every span"
    );
    let stderr = gateway.stderr();
    assert!(gateway.stop().success(), "{stderr}");
    let result = sink.stop().expect("sink");

    let mut arrived: HashMap<(Vec<u8>, Vec<u8>), Vec<NodeSpan>> = HashMap::new();
    for (resource, span) in received_spans(&result) {
        let service = resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.clone());
        assert_eq!(
            service,
            Some(Value::StringValue("node-client".into())),
            "{protocol}/{compression}: the SDK's resource"
        );
        let status_code = span.status.as_ref().map_or(0, |s| s.code);
        arrived
            .entry((span.trace_id.clone(), span.span_id.clone()))
            .or_default()
            .push(NodeSpan {
                trace_id: span.trace_id,
                span_id: span.span_id,
                parent_span_id: span.parent_span_id,
                name: span.name,
                kind: span.kind - 1,
                status_code,
            });
    }
    assert_eq!(
        arrived.len(),
        sent.len(),
        "{protocol}/{compression}: every span, once"
    );
    for expected in &sent {
        let got = arrived
            .get(&(expected.trace_id.clone(), expected.span_id.clone()))
            .unwrap_or_else(|| panic!("{protocol}/{compression}: {expected:?} did not arrive"));
        assert_eq!(
            got.as_slice(),
            std::slice::from_ref(expected),
            "{protocol}/{compression}"
        );
    }
    let errors = sent.iter().filter(|s| s.status_code == 2).count();
    assert_eq!(errors, 2, "every tenth trace's root ends in error");
}

#[test]
fn the_javascript_sdk_over_grpc_http_protobuf_and_http_json_arrives_intact() {
    if !node::available() {
        println!("skipped: node or npm is not on PATH (the machine image carries Node.js)");
        return;
    }
    for protocol in ["grpc", "http/protobuf", "http/json"] {
        for compression in ["none", "gzip"] {
            round_trip(protocol, compression);
        }
    }
}

/// Over TLS, with a private authority given as an SDK user gives it
/// (`OTEL_EXPORTER_OTLP_CERTIFICATE`): Node's TLS (OpenSSL) and grpc-js against the receivers'
/// rustls, every span through once over each protocol.
#[test]
fn the_javascript_sdk_sends_over_tls_with_a_private_authority() {
    if !node::available() {
        println!("skipped: node or npm is not on PATH (the machine image carries Node.js)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tailgate-node-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (_, files) = tailgate_bench::certs::write_set_keeping(&dir, &["localhost", "127.0.0.1"])
        .expect("certificates");
    let block = format!(
        "        tls:\n          cert_file: {}\n          key_file: {}\n",
        files.server_cert.display(),
        files.server_key.display()
    );
    let (sink, sink_grpc, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(sink_grpc, 2, &block, &block);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let mut sent = Vec::new();
    for (protocol, address) in [("grpc", grpc), ("http/protobuf", http), ("http/json", http)] {
        let endpoint = format!("https://{address}");
        sent.extend(node::send_spans(
            protocol,
            &endpoint,
            5,
            3,
            "gzip",
            Some(&files.ca),
        ));
    }
    assert_eq!(sent.len(), 45);
    let stderr = gateway.stderr();
    assert!(gateway.stop().success(), "{stderr}");
    let mut got: Vec<Vec<u8>> = received_spans(&sink.stop().expect("sink"))
        .into_iter()
        .map(|(_, span)| span.span_id)
        .collect();
    let mut ids: Vec<Vec<u8>> = sent.into_iter().map(|span| span.span_id).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "every span the SDK sent over TLS arrived once");
    let _ = std::fs::remove_dir_all(&dir);
}
