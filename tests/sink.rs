//! `tailgate-bench sink`'s own OTLP receivers, as real clients see them: grpcio
//! (`tests/python/grpc_call.py`) for gRPC, raw HTTP/1.1 for OTLP/HTTP, over loopback sockets.
//! The sink only scans traces requests, so what it must still refuse (broken framing, unknown
//! methods and paths) is checked here, and so is a sink of two shards, whose tallies merge at
//! exit.

mod common;

use common::gateway::{http_request, start_sink_on};
use common::grpc::{grpc_call, Payload};
use tailgate_bench::generate::{sdk_shaped_request, Rng};

const TRACE_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

fn count(report: &serde_json::Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {report}"))
}

#[test]
fn the_sink_answers_grpc_clients_and_refuses_what_it_cannot_scan() {
    let (sink, grpc, _) = start_sink_on(Vec::new(), false);
    let request = sdk_shaped_request(&mut Rng(21), 50);

    let plain = grpc_call(grpc, TRACE_EXPORT, Payload::Bytes(&request), "none");
    assert_eq!(plain.code, "OK", "{plain:?}");
    assert_eq!(plain.response(), Vec::<u8>::new(), "an empty, full success");
    let gzip = grpc_call(grpc, TRACE_EXPORT, Payload::Bytes(&request), "gzip");
    assert_eq!(gzip.code, "OK", "{gzip:?}");

    // Cut inside its last span: the framing says more bytes than there are.
    let cut = &request[..request.len() - 7];
    let broken = grpc_call(grpc, TRACE_EXPORT, Payload::Bytes(cut), "none");
    assert_eq!(broken.code, "INVALID_ARGUMENT", "{broken:?}");
    assert!(broken.details().contains("malformed"), "{broken:?}");

    let unknown = grpc_call(
        grpc,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Nope",
        Payload::Bytes(&request),
        "none",
    );
    assert_eq!(unknown.code, "UNIMPLEMENTED", "{unknown:?}");

    // Still serving after the refusals.
    let again = grpc_call(grpc, TRACE_EXPORT, Payload::Bytes(&request), "none");
    assert_eq!(again.code, "OK", "{again:?}");

    let report = sink.stop().expect("stop the sink").report;
    assert_eq!(count(&report, "spans_received"), 150, "{report}");
    assert_eq!(count(&report, "requests_received"), 3, "{report}");
    assert_eq!(count(&report, "malformed_requests"), 1, "{report}");
    // Three copies of the same 50 spans.
    assert_eq!(count(&report, "duplicates"), 100, "{report}");
    assert_eq!(count(&report, "spans_bad_trace_id"), 0, "{report}");
}

#[test]
fn two_shards_merge_their_tallies_and_find_duplicates_across_them() {
    let (sink, grpc, http) = start_sink_on(vec![0, 1], false);
    let request = sdk_shaped_request(&mut Rng(5), 40);
    let traces = {
        let mut ids = Vec::new();
        tailgate_bench::verify::scan_span_ids(&request, |trace, _| ids.push(trace.to_vec()));
        ids.sort();
        ids.dedup();
        ids.len() as u64
    };
    // Each call on its own connection, so SO_REUSEPORT spreads them over both shards; the
    // totals do not depend on where each landed.
    for _ in 0..4 {
        let reply = grpc_call(grpc, TRACE_EXPORT, Payload::Bytes(&request), "none");
        assert_eq!(reply.code, "OK", "{reply:?}");
    }
    // OTLP/HTTP is scanned on the shard whose connection it came in on, as gRPC is.
    for _ in 0..2 {
        let (status, _, body) = http_request(
            http,
            "POST",
            "/v1/traces",
            &[("Content-Type", "application/x-protobuf")],
            &request,
        )
        .expect("POST /v1/traces");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let report = sink.stop().expect("stop the sink").report;
    assert_eq!(count(&report, "shards"), 2, "{report}");
    assert_eq!(count(&report, "spans_received"), 240, "{report}");
    assert_eq!(count(&report, "traces_received"), traces, "{report}");
    assert_eq!(count(&report, "duplicates"), 200, "{report}");
}

#[test]
fn the_sink_answers_otlp_http_and_refuses_what_it_cannot_read() {
    let (sink, _, http) = start_sink_on(Vec::new(), false);
    let request = sdk_shaped_request(&mut Rng(8), 30);
    let proto = [("Content-Type", "application/x-protobuf")];

    let (status, headers, body) =
        http_request(http, "POST", "/v1/traces", &proto, &request).expect("protobuf");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(headers.contains(&("content-type".into(), "application/x-protobuf".into())));
    assert!(body.is_empty(), "an empty, full success");

    let json = tailgate_wire::json::from_protobuf(tailgate_wire::Signal::Traces, &request)
        .expect("the request as OTLP/JSON");
    let json_type = [("Content-Type", "application/json")];
    let (status, _, body) =
        http_request(http, "POST", "/v1/traces", &json_type, &json).expect("JSON");
    assert_eq!((status, &body[..]), (200, &b"{}"[..]));

    let cut = &request[..request.len() - 7];
    let (status, _, body) = http_request(http, "POST", "/v1/traces", &proto, cut).expect("cut");
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("malformed"),
        "{body:?}"
    );
    let (status, _, _) = http_request(http, "POST", "/v1/spans", &proto, &request).expect("path");
    assert_eq!(status, 404);
    let text = [("Content-Type", "text/plain")];
    let (status, _, _) = http_request(http, "POST", "/v1/traces", &text, &request).expect("type");
    assert_eq!(status, 415);

    let report = sink.stop().expect("stop the sink").report;
    assert_eq!(count(&report, "spans_received"), 60, "{report}");
    assert_eq!(count(&report, "requests_received"), 2, "{report}");
    assert_eq!(count(&report, "malformed_requests"), 1, "{report}");
    assert_eq!(count(&report, "duplicates"), 30, "{report}");
}
