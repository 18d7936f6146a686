//! Every answer the OTLP receivers must give, through the real `tailgate` binary over real
//! sockets: gRPC statuses as a real gRPC client (grpcio, `tests/python/grpc_call.py`) sees them,
//! OTLP/HTTP statuses and bodies over raw HTTP/1.1, and the gateway's behaviour under hostile
//! input — oversized and decompression-bomb bodies (with the process's peak memory watched),
//! garbage on both ports, oversized heads, a thousand idle connections — and while it drains.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::gateway::{http_get, proc_status_bytes, received_spans, start_sink, Gateway};
use common::grpc::{grpc_call, GrpcReply, Payload};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const TRACE_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const METRICS_EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// `max_request_body_size` of the HTTP receiver in `Gateway::start`'s config.
const HTTP_LIMIT: usize = 1 << 20;
/// What a decompression bomb inflates to: far past either receiver's limit.
const BOMB_BYTES: usize = 64 << 20;
/// How much the gateway's peak RSS may grow while it refuses a bomb: the receiver may hold up
/// to its limit (4 MiB for gRPC) while inflating, but nowhere near the inflated size.
const BOMB_RSS_GROWTH_MAX: u64 = 40 << 20;

// ---------------------------------------------------------------------------------------------
// Requests

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![string_attribute("service.name", service)],
        ..Default::default()
    })
}

/// A span of trace `trace` (the id is 16 bytes of that value) with span id `id`.
fn span(trace: u8, id: u64, name: &str) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: id.to_be_bytes().to_vec(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_000_100_000,
        ..Default::default()
    }
}

fn traces(spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource("gateway-errors"),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

/// A valid traces request of exactly `size` bytes: one span whose name is sized to fit.
fn traces_of_size(size: usize) -> Vec<u8> {
    let with_name = |len: usize| traces(vec![span(0x5a, 1, &"n".repeat(len))]);
    let mut len = size.saturating_sub(with_name(0).len());
    // Length prefixes grow by a byte at varint boundaries; walk down until the size fits.
    for _ in 0..16 {
        let request = with_name(len);
        match request.len().cmp(&size) {
            std::cmp::Ordering::Equal => return request,
            std::cmp::Ordering::Greater => len -= 1,
            std::cmp::Ordering::Less => len += 1,
        }
    }
    panic!("no traces request of exactly {size} bytes");
}

fn metrics_request(points: usize) -> Vec<u8> {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("gateway-errors"),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue.depth".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: (0..points)
                            .map(|i| NumberDataPoint {
                                time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                                value: Some(number_data_point::Value::AsInt(i as i64)),
                                ..Default::default()
                            })
                            .collect(),
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

fn logs_request(records: usize) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("gateway-errors"),
            scope_logs: vec![ScopeLogs {
                log_records: (0..records)
                    .map(|i| LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                        severity_number: 9,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!("line {i}"))),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A gzip stream of [`BOMB_BYTES`] zeros (about 64 KiB compressed).
fn gzip_bomb() -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..BOMB_BYTES / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.finish().unwrap()
}

/// Deterministic pseudo-random bytes (xorshift64).
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// The spans the sink received, by span id.
fn span_ids(result: &tailgate_bench::sink::SinkResult) -> Vec<u64> {
    let mut ids: Vec<u64> = received_spans(result)
        .into_iter()
        .map(|(_, span)| u64::from_be_bytes(span.span_id.try_into().expect("8-byte span id")))
        .collect();
    ids.sort_unstable();
    ids
}

/// Stops the gateway (asserting a clean exit) and then the sink; returns what the sink got.
fn finish(gateway: Gateway, sink: tailgate_bench::sink::Sink) -> tailgate_bench::sink::SinkResult {
    let stderr = gateway.stderr();
    let status = gateway.stop();
    assert!(status.success(), "exit status {status}:\n{stderr}");
    sink.stop().expect("sink")
}

// ---------------------------------------------------------------------------------------------
// A real gRPC client: grpcio through tests/python/grpc_call.py (tests/common/grpc.rs)

fn grpc_traces(gateway: &Gateway, request: &[u8]) -> GrpcReply {
    grpc_call(gateway.grpc, TRACE_EXPORT, Payload::Bytes(request), "none")
}

fn assert_ok_empty(reply: &GrpcReply) {
    assert_eq!(reply.code, "OK", "{reply:?}");
    assert_eq!(
        reply.response(),
        Vec::<u8>::new(),
        "full success is an empty response"
    );
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client

#[derive(Debug)]
struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as a `google.rpc.Status`: (code, message).
    fn rpc_status(&self) -> (u64, String) {
        rpc_status(&self.body)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Decodes fields 1 (code) and 2 (message) of a `google.rpc.Status`.
fn rpc_status(body: &[u8]) -> (u64, String) {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Status {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let status = Status::decode(body).expect("a google.rpc.Status body");
    (status.code as u64, status.message)
}

/// One HTTP/1.1 connection, read response by response.
struct Conn {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        Conn {
            stream,
            buffer: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response (a `100 Continue` counts as one). An error of kind
    /// `UnexpectedEof` or a reset means the peer closed before a whole response arrived.
    fn response(&mut self) -> std::io::Result<HttpReply> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = parsed
                .parse(&self.buffer)
                .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?
            {
                let status = parsed.code.unwrap_or(0);
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let body_len = if status < 200 {
                    0
                } else {
                    headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .map(|(_, v)| v.parse::<usize>().expect("Content-Length"))
                        .expect("responses carry Content-Length")
                };
                if self.buffer.len() >= head_len + body_len {
                    let body = self.buffer[head_len..head_len + body_len].to_vec();
                    self.buffer.drain(..head_len + body_len);
                    return Ok(HttpReply {
                        status,
                        headers,
                        body,
                    });
                }
            }
            let mut chunk = [0u8; 64 << 10];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!("closed after {} bytes of a response", self.buffer.len()),
                    ))
                }
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the peer closed the connection (EOF or reset) within the read timeout, with
    /// nothing more to read.
    fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    )
                }
            }
        }
    }
}

/// A request with `Host` and `Content-Length`; `headers` come after them.
fn http_request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: tailgate\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One request on a connection of its own (`Connection: close`).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let mut all = headers.to_vec();
    all.push(("Connection", "close"));
    let mut conn = Conn::open(addr);
    conn.send(&http_request_bytes(method, path, &all, body))
        .expect("send the request");
    conn.response().expect("a response")
}

fn post_protobuf(gateway: &Gateway, body: &[u8]) -> HttpReply {
    http(
        gateway.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        body,
    )
}

/// A protobuf traces request whose body is in `encoding` (`Content-Encoding`).
fn post_encoded(gateway: &Gateway, encoding: &str, body: &[u8]) -> HttpReply {
    http(
        gateway.http,
        "POST",
        "/v1/traces",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", encoding),
        ],
        body,
    )
}

/// The gateway still serves: ready, and a valid request over each transport is accepted.
fn assert_still_serving(gateway: &Gateway, span_id: u64) {
    assert_eq!(
        http_get(gateway.admin, "/readyz").expect("/readyz").0,
        200,
        "ready"
    );
    let request = traces(vec![span(0x11, span_id, "still-serving")]);
    let reply = post_protobuf(gateway, &request);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_ok_empty(&grpc_traces(gateway, &request));
}

// ---------------------------------------------------------------------------------------------
// Memory of the gateway process

/// Watches how far the gateway's resident memory peaks above where it is now.
struct PeakRss {
    pid: u32,
    before: u64,
}

impl PeakRss {
    fn start(pid: u32) -> PeakRss {
        // Resetting the high-water mark makes VmHWM the peak from now on; where the kernel does
        // not allow it, VmHWM is the peak since start-up, which only makes the check stricter.
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        PeakRss {
            pid,
            before: proc_status_bytes(pid, "VmRSS"),
        }
    }

    /// How far the peak rose above the resident size at `start`.
    fn growth(&self) -> u64 {
        proc_status_bytes(self.pid, "VmHWM").saturating_sub(self.before)
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC

#[test]
fn grpc_export_full_and_partial_success() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");

    let full = traces((1..=3).map(|i| span(0x21, i, "good")).collect());
    assert_ok_empty(&grpc_traces(&gateway, &full));

    // A span with an all-zero trace id among valid ones: rejected on its own.
    let mut spans: Vec<Span> = (4..=6).map(|i| span(0x22, i, "good")).collect();
    spans.insert(1, span(0x00, 99, "zero-trace-id"));
    let reply = grpc_traces(&gateway, &traces(spans));
    assert_eq!(reply.code, "OK", "{reply:?}");
    let response = ExportTraceServiceResponse::decode(reply.response().as_slice())
        .expect("an ExportTraceServiceResponse");
    let partial = response.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_spans, 1, "{partial:?}");
    assert!(partial.error_message.contains("trace_id"), "{partial:?}");

    let result = finish(gateway, sink);
    assert_eq!(
        span_ids(&result),
        vec![1, 2, 3, 4, 5, 6],
        "the valid spans arrive, the rejected one does not"
    );
}

#[test]
fn grpc_undecodable_message_is_invalid_argument_naming_the_offset() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    // Field 1 (resource_spans), length 100, but only 3 bytes follow.
    let reply = grpc_traces(&gateway, &[0x0a, 100, 1, 2, 3]);
    assert_eq!(reply.code, "INVALID_ARGUMENT", "{reply:?}");
    assert!(
        reply.details().ends_with("at byte 1"),
        "details name the offset: {reply:?}"
    );
    // Random bytes are refused the same way.
    let reply = grpc_traces(&gateway, &garbage(4096, 7));
    assert_eq!(reply.code, "INVALID_ARGUMENT", "{reply:?}");
    assert!(reply.details().contains("at byte "), "{reply:?}");
    // A permanent error: no RetryInfo for the client to act on.
    assert!(
        reply
            .trailing_metadata
            .iter()
            .all(|(key, _)| key != "grpc-status-details-bin"),
        "{reply:?}"
    );
    assert!(span_ids(&finish(gateway, sink)).is_empty());
}

#[test]
fn grpc_message_over_the_limit_is_resource_exhausted() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "        max_recv_msg_size_mib: 1");
    let limit = 1 << 20;
    // Exactly at the limit is accepted; a byte more is not.
    assert_ok_empty(&grpc_traces(&gateway, &traces_of_size(limit)));
    let reply = grpc_traces(&gateway, &traces_of_size(limit + 1));
    assert_eq!(reply.code, "RESOURCE_EXHAUSTED", "{reply:?}");
    assert!(reply.details().contains(&limit.to_string()), "{reply:?}");
    // Far over it too (the gateway stops reading at the limit).
    let reply = grpc_traces(&gateway, &traces_of_size(3 * limit));
    assert_eq!(reply.code, "RESOURCE_EXHAUSTED", "{reply:?}");
    assert_still_serving(&gateway, 2);
    assert_eq!(span_ids(&finish(gateway, sink)), vec![1, 2, 2]);
}

#[test]
fn grpc_unknown_method_is_unimplemented() {
    let (_sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let request = traces(vec![span(0x31, 1, "x")]);
    for method in [
        "/opentelemetry.proto.collector.trace.v1.TraceService/Nope",
        "/no.Such/Service",
    ] {
        let reply = grpc_call(gateway.grpc, method, Payload::Bytes(&request), "none");
        assert_eq!(reply.code, "UNIMPLEMENTED", "{method}: {reply:?}");
        assert!(reply.details().contains(method), "{reply:?}");
    }
}

#[test]
fn grpc_gzip_request_is_accepted() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let request = traces((1..=5).map(|i| span(0x41, i, "gzipped")).collect());
    let reply = grpc_call(gateway.grpc, TRACE_EXPORT, Payload::Bytes(&request), "gzip");
    assert_ok_empty(&reply);
    assert_eq!(span_ids(&finish(gateway, sink)), vec![1, 2, 3, 4, 5]);
}

#[test]
fn grpc_gzip_bomb_is_resource_exhausted_with_bounded_memory() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let peak = PeakRss::start(gateway.pid());
    // grpcio compresses 64 MiB of zeros to about 64 KiB: well within the 4 MiB message limit
    // on the wire, 16 times over it once inflated.
    let reply = grpc_call(
        gateway.grpc,
        TRACE_EXPORT,
        Payload::Zeros(BOMB_BYTES),
        "gzip",
    );
    assert_eq!(reply.code, "RESOURCE_EXHAUSTED", "{reply:?}");
    assert!(
        reply.details().contains(&(4u64 << 20).to_string()),
        "{reply:?}"
    );
    let growth = peak.growth();
    assert!(
        growth < BOMB_RSS_GROWTH_MAX,
        "peak RSS grew by {} MiB refusing a {} MiB bomb",
        growth >> 20,
        BOMB_BYTES >> 20
    );
    assert_still_serving(&gateway, 1);
    assert_eq!(span_ids(&finish(gateway, sink)), vec![1, 1]);
}

#[test]
fn grpc_health_check_is_serving() {
    let (_sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let reply = grpc_call(gateway.grpc, HEALTH_CHECK, Payload::Bytes(&[]), "none");
    assert_eq!(reply.code, "OK", "{reply:?}");
    assert_eq!(reply.response(), vec![0x08, 0x01], "status SERVING");
}

#[test]
fn grpc_metrics_and_logs_arrive() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let reply = grpc_call(
        gateway.grpc,
        METRICS_EXPORT,
        Payload::Bytes(&metrics_request(7)),
        "none",
    );
    assert_ok_empty(&reply);
    let reply = grpc_call(
        gateway.grpc,
        LOGS_EXPORT,
        Payload::Bytes(&logs_request(5)),
        "gzip",
    );
    assert_ok_empty(&reply);
    // A logs request sent to the metrics method is not a valid metrics request.
    let reply = grpc_call(
        gateway.grpc,
        METRICS_EXPORT,
        Payload::Bytes(&[0x0a, 0x02, 0x08]),
        "none",
    );
    assert_eq!(reply.code, "INVALID_ARGUMENT", "{reply:?}");
    let result = finish(gateway, sink);
    assert_eq!(
        result.report["metric_points_received"], 7,
        "{}",
        result.report
    );
    assert_eq!(
        result.report["log_records_received"], 5,
        "{}",
        result.report
    );
}

#[test]
fn grpc_port_closes_a_connection_that_is_not_http2() {
    let (_sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    for seed in [1, 2, 3] {
        let mut conn = Conn::open(gateway.grpc);
        // A failed write means the gateway already closed: what this test wants.
        let _ = conn.send(&garbage(4096, seed));
        let started = Instant::now();
        assert!(
            conn.closed(),
            "the gateway closes a connection sending garbage"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // An HTTP/1.1 request on the gRPC port is not HTTP/2 either.
    let mut conn = Conn::open(gateway.grpc);
    let _ = conn.send(&http_request_bytes("POST", "/v1/traces", &[], b""));
    assert!(conn.closed());
    assert_still_serving(&gateway, 1);
}

// ---------------------------------------------------------------------------------------------
// OTLP/HTTP

#[test]
fn http_valid_protobuf_and_json_are_accepted() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let reply = post_protobuf(&gateway, &traces(vec![span(0x51, 1, "proto")]));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/x-protobuf"));
    assert!(reply.body.is_empty(), "full success: an empty response");

    let json = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "52525252525252525252525252525252",
            "spanId": "0000000000000002",
            "name": "json",
            "kind": 2,
            "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000000000100000"
        }]}]
    }]});
    let reply = http(
        gateway.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json; charset=utf-8")],
        json.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), serde_json::json!({}));

    // A zero trace id in JSON is a partial success, in JSON.
    let mut partial = json.clone();
    partial["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] =
        "00000000000000000000000000000000".into();
    let reply = http(
        gateway.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        partial.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.json();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "1", "{body}");
    assert!(
        body["partialSuccess"]["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("trace_id")),
        "{body}"
    );

    assert_eq!(span_ids(&finish(gateway, sink)), vec![1, 2]);
}

#[test]
fn http_undecodable_bodies_are_400_with_a_status_body() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let reply = post_protobuf(&gateway, &[0x0a, 100, 1, 2, 3]);
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/x-protobuf"));
    let (code, message) = reply.rpc_status();
    assert_eq!(code, 3, "INVALID_ARGUMENT: {message}");
    assert!(message.contains("byte"), "{message}");

    let reply = http(
        gateway.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        b"{\"resourceSpans\": [",
    );
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["code"], 3, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );

    // A gzip body that is not gzip.
    let reply = http(
        gateway.http,
        "POST",
        "/v1/traces",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        b"not gzip at all",
    );
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.rpc_status().0, 3);
    assert!(span_ids(&finish(gateway, sink)).is_empty());
}

#[test]
fn http_wrong_path_method_and_media_are_refused() {
    let (_sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let body = traces(vec![span(0x61, 1, "x")]);
    let proto = ("Content-Type", "application/x-protobuf");

    let reply = http(gateway.http, "POST", "/v1/nothing", &[proto], &body);
    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(reply.rpc_status().0, 12, "UNIMPLEMENTED");

    let reply = http(gateway.http, "GET", "/v1/traces", &[], b"");
    assert_eq!(reply.status, 405, "{reply:?}");
    assert_eq!(reply.header("allow"), Some("POST"));

    let reply = http(
        gateway.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "text/plain")],
        &body,
    );
    assert_eq!(reply.status, 415, "{reply:?}");
    let reply = http(gateway.http, "POST", "/v1/traces", &[], &body);
    assert_eq!(reply.status, 415, "no content type: {reply:?}");

    let reply = http(
        gateway.http,
        "POST",
        "/v1/traces",
        &[proto, ("Content-Encoding", "br")],
        &body,
    );
    assert_eq!(reply.status, 415, "{reply:?}");
    assert!(reply.rpc_status().1.contains("br"), "{reply:?}");
}

/// `compression_algorithms` on the HTTP receiver reads only what it lists, as the Collector's
/// does: a body in any other coding is refused with the reason and nothing of it is kept, while
/// the listed ones go through; `identity` is the `""` entry.
#[test]
fn http_compression_algorithms_reads_only_what_it_lists() {
    let (sink, sink_grpc, _) = start_sink();
    let (config, grpc, http_addr, admin) = Gateway::standard_config(
        sink_grpc,
        1,
        "",
        "        compression_algorithms: [gzip, lz4]",
    );
    let gateway = Gateway::start_with_config(&config, grpc, http_addr, admin);
    let proto = ("Content-Type", "application/x-protobuf");
    let post = |coding: &str, body: &[u8]| {
        let mut headers = vec![proto];
        if !coding.is_empty() {
            headers.push(("Content-Encoding", coding));
        }
        http(gateway.http, "POST", "/v1/traces", &headers, body)
    };

    let refused = traces(vec![span(0x71, 1, "plain")]);
    for coding in ["", "identity"] {
        let reply = post(coding, &refused);
        assert_eq!(reply.status, 415, "{coding:?}: {reply:?}");
        assert!(
            reply.rpc_status().1.contains("compression_algorithms"),
            "{coding:?}: {reply:?}"
        );
    }
    let zstd = zstd::encode_all(&traces(vec![span(0x72, 2, "zstd")])[..], 3).unwrap();
    let reply = post("zstd", &zstd);
    assert_eq!(reply.status, 415, "{reply:?}");
    assert!(reply.rpc_status().1.contains("\"zstd\""), "{reply:?}");

    let reply = post("gzip", &gzip(&traces(vec![span(0x73, 3, "gzip")])));
    assert_eq!(reply.status, 200, "{reply:?}");
    let mut lz4 = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
    lz4.write_all(&traces(vec![span(0x74, 4, "lz4")])).unwrap();
    let (lz4, finished) = lz4.finish();
    finished.unwrap();
    let reply = post("lz4", &lz4);
    assert_eq!(reply.status, 200, "{reply:?}");

    assert_eq!(
        span_ids(&finish(gateway, sink)),
        [3, 4],
        "only the listed codings' spans"
    );
}

/// Sends `head` and then `body` from another thread (the gateway may answer, and close, before
/// it has read the body: a failed write is expected), and reads the response.
fn http_with_large_body(addr: SocketAddr, head: &str, body: Vec<u8>) -> HttpReply {
    let mut conn = Conn::open(addr);
    conn.send(head.as_bytes()).expect("send the head");
    let mut writer = conn.stream.try_clone().expect("clone the stream");
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&body);
    });
    let reply = conn.response().expect("a response");
    let _ = conn.stream.shutdown(Shutdown::Both);
    sending.join().expect("writer thread");
    reply
}

#[test]
fn http_body_over_the_limit_is_413() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    // Exactly at the limit is accepted.
    let reply = post_protobuf(&gateway, &traces_of_size(HTTP_LIMIT));
    assert_eq!(reply.status, 200, "{reply:?}");

    let over = traces_of_size(HTTP_LIMIT + 1);
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\n\r\n",
        over.len()
    );
    let reply = http_with_large_body(gateway.http, &head, over.clone());
    assert_eq!(reply.status, 413, "{reply:?}");
    let (code, message) = reply.rpc_status();
    assert_eq!(code, 8, "RESOURCE_EXHAUSTED: {message}");

    // The same by chunked coding, where the size is known only as the chunks come.
    let mut chunked = Vec::new();
    for chunk in over.chunks(256 << 10) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = "POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-protobuf\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    let reply = http_with_large_body(gateway.http, head, chunked);
    assert_eq!(reply.status, 413, "{reply:?}");

    assert_still_serving(&gateway, 2);
    assert_eq!(span_ids(&finish(gateway, sink)), vec![1, 2, 2]);
}

#[test]
fn http_gzip_bomb_is_413_with_bounded_memory() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let bomb = gzip_bomb();
    assert!(bomb.len() < HTTP_LIMIT / 4, "{} bytes", bomb.len());
    let peak = PeakRss::start(gateway.pid());
    for encoding in ["gzip", "GZIP"] {
        let reply = post_encoded(&gateway, encoding, &bomb);
        assert_eq!(reply.status, 413, "{reply:?}");
        assert_eq!(reply.rpc_status().0, 8);
    }
    let growth = peak.growth();
    assert!(
        growth < BOMB_RSS_GROWTH_MAX,
        "peak RSS grew by {} MiB refusing a {} MiB bomb",
        growth >> 20,
        BOMB_BYTES >> 20
    );
    // A gzip body within the limit is accepted.
    let reply = post_encoded(
        &gateway,
        "gzip",
        &gzip(&traces(vec![span(0x71, 7, "gzipped")])),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_still_serving(&gateway, 1);
    assert_eq!(span_ids(&finish(gateway, sink)), vec![1, 1, 7]);
}

/// snappy in either format: a framed stream and a raw block, each 16 MiB of zeros squeezed
/// under the receiver's 1 MiB limit, are refused with 413 without the gateway holding what
/// they would inflate to; a small body in each format is accepted.
#[test]
fn http_snappy_bombs_framed_or_block_are_413_with_bounded_memory() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let zeros = vec![0u8; 16 << 20];
    let framed = |data: &[u8]| {
        let mut encoder = snap::write::FrameEncoder::new(Vec::new());
        encoder.write_all(data).unwrap();
        encoder.into_inner().unwrap()
    };
    let block = |data: &[u8]| snap::raw::Encoder::new().compress_vec(data).unwrap();
    let post = |encoding: &str, body: &[u8]| post_encoded(&gateway, encoding, body);
    let peak = PeakRss::start(gateway.pid());
    for (encoding, bomb) in [
        ("snappy", framed(&zeros)),
        ("x-snappy-framed", framed(&zeros)),
        ("snappy", block(&zeros)),
    ] {
        assert!(bomb.len() < HTTP_LIMIT, "{} bytes", bomb.len());
        let reply = post(encoding, &bomb);
        assert_eq!(reply.status, 413, "{encoding}: {reply:?}");
    }
    let growth = peak.growth();
    assert!(
        growth < BOMB_RSS_GROWTH_MAX,
        "peak RSS grew by {} MiB refusing 16 MiB snappy bombs",
        growth >> 20
    );
    let reply = post("snappy", &framed(&traces(vec![span(0x72, 8, "framed")])));
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = post("snappy", &block(&traces(vec![span(0x73, 9, "block")])));
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = post("snappy", b"\xff\x06\x00\x00sNaPpY\x00\x05\x00\x00broken");
    assert_eq!(reply.status, 400, "a corrupt framed body: {reply:?}");
    assert_still_serving(&gateway, 1);
    assert_eq!(span_ids(&finish(gateway, sink)), vec![1, 1, 8, 9]);
}

#[test]
fn http_bodies_of_several_gzip_members_and_unsized_zstd_frames_are_read_whole() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let post = |encoding: &str, body: &[u8]| post_encoded(&gateway, encoding, body);
    // Two gzip members (RFC 1952 allows several): the protobuf of both requests, concatenated,
    // is one request holding the spans of both.
    let mut members = gzip(&traces(
        (1..=3).map(|i| span(0x91, i, "first member")).collect(),
    ));
    members.extend(gzip(&traces(
        (4..=5).map(|i| span(0x91, i, "second member")).collect(),
    )));
    let reply = post("gzip", &members);
    assert_eq!(reply.status, 200, "{reply:?}");
    // zstd written by a streaming encoder, which does not state the size, in two frames.
    let frame = |ids: std::ops::RangeInclusive<u64>| {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_contentsize(false).unwrap();
        encoder
            .write_all(&traces(ids.map(|i| span(0x92, i, "zstd frame")).collect()))
            .unwrap();
        encoder.finish().unwrap()
    };
    let reply = post("zstd", &[frame(1..=2), frame(3..=3)].concat());
    assert_eq!(reply.status, 200, "{reply:?}");
    // Bytes after the last member that are not a member: refused, not ignored.
    let mut trailing = gzip(&traces(vec![span(0x93, 1, "trailing")]));
    trailing.extend_from_slice(b"not a gzip member");
    let reply = post("gzip", &trailing);
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_still_serving(&gateway, 1);
    assert_eq!(
        span_ids(&finish(gateway, sink)),
        vec![1, 1, 1, 1, 2, 2, 3, 3, 4, 5]
    );
}

#[test]
fn http_chunked_body_is_accepted() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let body = traces((1..=4).map(|i| span(0x81, i, "chunked")).collect());
    let mut request = b"POST /v1/traces HTTP/1.1\r\nHost: t\r\n\
        Content-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\
        Connection: close\r\n\r\n"
        .to_vec();
    // Uneven chunks, one with an extension.
    let (a, rest) = body.split_at(7);
    let (b, c) = rest.split_at(rest.len() / 2);
    for (i, chunk) in [a, b, c].into_iter().enumerate() {
        let ext = if i == 1 { ";name=value" } else { "" };
        request.extend_from_slice(format!("{:X}{ext}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let mut conn = Conn::open(gateway.http);
    // Sent in small pieces, so chunk boundaries and reads do not line up.
    for piece in request.chunks(13) {
        conn.send(piece).unwrap();
    }
    let reply = conn.response().expect("a response");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(span_ids(&finish(gateway, sink)), vec![1, 2, 3, 4]);
}

#[test]
fn http_expect_continue_and_keep_alive() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let proto = ("Content-Type", "application/x-protobuf");

    // Expect: 100-continue: the head alone gets 100, then the body gets 200.
    let body = traces(vec![span(0x91, 1, "continue")]);
    let request = http_request_bytes(
        "POST",
        "/v1/traces",
        &[proto, ("Expect", "100-continue")],
        &body,
    );
    let head_len = request.len() - body.len();
    let mut conn = Conn::open(gateway.http);
    conn.send(&request[..head_len]).unwrap();
    let reply = conn.response().expect("100 Continue");
    assert_eq!(reply.status, 100, "{reply:?}");
    conn.send(&request[head_len..]).unwrap();
    let reply = conn.response().expect("the final response");
    assert_eq!(reply.status, 200, "{reply:?}");

    // Keep-alive: requests on the same connection are all answered, including two pipelined
    // in one write.
    let mut conn = Conn::open(gateway.http);
    conn.send(&http_request_bytes(
        "POST",
        "/v1/traces",
        &[proto],
        &traces(vec![span(0x92, 2, "first")]),
    ))
    .unwrap();
    let reply = conn.response().expect("first response");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("connection"), Some("keep-alive"));
    let mut pipelined = http_request_bytes(
        "POST",
        "/v1/traces",
        &[proto],
        &traces(vec![span(0x93, 3, "second")]),
    );
    pipelined.extend(http_request_bytes(
        "POST",
        "/v1/traces",
        &[proto, ("Connection", "close")],
        &traces(vec![span(0x94, 4, "third")]),
    ));
    conn.send(&pipelined).unwrap();
    for expected in ["keep-alive", "close"] {
        let reply = conn.response().expect("pipelined response");
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("connection"), Some(expected));
    }
    assert!(conn.closed(), "closed after Connection: close");
    assert_eq!(span_ids(&finish(gateway, sink)), vec![1, 2, 3, 4]);
}

#[test]
fn http_head_over_16_kib_is_431() {
    let (_sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let big = "x".repeat(20 << 10);
    let mut conn = Conn::open(gateway.http);
    let _ = conn.send(
        format!(
            "POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-protobuf\r\n\
             X-Padding: {big}\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    );
    let reply = conn.response().expect("a response");
    assert_eq!(reply.status, 431, "{reply:?}");
    // A head just under the limit is fine.
    let pad = "y".repeat(15 << 10);
    let reply = http(
        gateway.http,
        "POST",
        "/v1/traces",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("X-Padding", &pad),
        ],
        &traces(vec![span(0xa1, 1, "x")]),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn http_garbage_is_refused_and_the_gateway_keeps_serving() {
    let (_sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    for seed in [11, 12, 13] {
        let mut conn = Conn::open(gateway.http);
        let started = Instant::now();
        let _ = conn.send(&garbage(4096, seed));
        // Either a 400 and a close, or a close.
        match conn.response() {
            Ok(reply) => {
                assert_eq!(reply.status, 400, "{reply:?}");
                assert!(conn.closed());
            }
            Err(err) => assert!(
                matches!(
                    err.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ),
                "{err}"
            ),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "garbage answered at once, not held: {:?}",
            started.elapsed()
        );
    }
    // A request line with a bad version, complete with its blank line.
    let mut conn = Conn::open(gateway.http);
    conn.send(b"POST /v1/traces HTTP/9\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(conn.response().expect("a response").status, 400);
    assert_still_serving(&gateway, 1);
}

// ---------------------------------------------------------------------------------------------
// Draining and many connections

#[test]
fn a_draining_gateway_refuses_with_503_and_exits_0() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let proto = ("Content-Type", "application/x-protobuf");
    let request = |id| {
        http_request_bytes(
            "POST",
            "/v1/traces",
            &[proto],
            &traces(vec![span(0xb1, id, "d")]),
        )
    };

    // Two kept-alive connections, each with one request served.
    let mut idle = Conn::open(gateway.http);
    let mut busy = Conn::open(gateway.http);
    for (conn, id) in [(&mut idle, 1), (&mut busy, 2)] {
        conn.send(&request(id)).unwrap();
        assert_eq!(conn.response().expect("served").status, 200);
    }
    // `busy` starts a request and stops halfway through the body: the gateway is reading it
    // when the signal comes.
    let next = request(3);
    let half = next.len() - 10;
    busy.send(&next[..half]).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    // SAFETY: kill(2) on the pid of the child this test started and still holds.
    unsafe {
        libc::kill(gateway.pid() as i32, libc::SIGTERM);
    }
    // Wait until the gateway says it is draining, so that the shards have seen the signal.
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(http_get(gateway.admin, "/readyz"), Ok((200, _))) {
        assert!(Instant::now() < deadline, "still ready 5 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));

    // The rest of the body: the request arrived whole while draining, so it is refused as
    // retryable. This is not a race: a draining shard waits (up to its drain timeout) for
    // HTTP connections that are inside a request to answer it.
    let _ = busy.send(&next[half..]);
    let reply = busy.response().expect("an answer to the request in flight");
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("retry-after"), Some("1"), "{reply:?}");
    assert!(busy.closed(), "closed after the refusal");

    // The idle connection was between requests when draining began: the gateway either closed
    // it (it waits for a next request only until the stop signal) or, had the new request been
    // read first, refuses it. Both tell the client to go elsewhere; which one happens depends
    // on whether the close reaches the client before its request reaches the gateway, so both
    // are accepted.
    match idle.send(&request(4)).and_then(|()| idle.response()) {
        Ok(reply) => {
            assert_eq!(reply.status, 503, "{reply:?}");
            assert_eq!(reply.header("retry-after"), Some("1"));
        }
        Err(err) => assert!(
            matches!(
                err.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ),
            "{err}"
        ),
    }
    // Exits 0, and forwarded only what it accepted before draining.
    assert_eq!(span_ids(&finish(gateway, sink)), vec![1, 2]);
}

#[test]
fn a_thousand_idle_connections_do_not_stall_service() {
    tailgate::lifecycle::raise_open_files_limit();
    let (sink, sink_grpc, _) = start_sink();
    let gateway = Gateway::start(sink_grpc, 2, "");
    let mut idle = Vec::with_capacity(2000);
    for addr in [gateway.grpc, gateway.http] {
        for _ in 0..1000 {
            idle.push(TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect"));
        }
    }
    let request = traces(vec![span(0xc1, 1, "among-idle")]);
    let started = Instant::now();
    assert_ok_empty(&grpc_traces(&gateway, &request));
    let grpc_took = started.elapsed();
    let started = Instant::now();
    let reply = post_protobuf(&gateway, &traces(vec![span(0xc2, 2, "among-idle")]));
    assert_eq!(reply.status, 200, "{reply:?}");
    let http_took = started.elapsed();
    assert!(
        grpc_took < Duration::from_secs(5) && http_took < Duration::from_secs(5),
        "gRPC took {grpc_took:?}, HTTP {http_took:?}"
    );
    assert_eq!(http_get(gateway.admin, "/readyz").expect("/readyz").0, 200);
    // The idle connections are still open (none was dropped to make room).
    let mut probe = [0u8; 1];
    let open = idle
        .iter()
        .skip(1000)
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            matches!(s.peek(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock)
        })
        .count();
    assert_eq!(open, 1000, "idle HTTP connections kept open");
    drop(idle);
    assert_eq!(span_ids(&finish(gateway, sink)), vec![1, 2]);
}

// ---------------------------------------------------------------------------------------------
// Pressure: a retryable refusal instead of an ever longer wait
// ---------------------------------------------------------------------------------------------

/// An upstream that accepts connections, reads whatever arrives and never answers.
fn black_hole() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the black hole");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 64 << 10];
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// A POST that gives up after `wait`; `None` when no answer came in time.
fn post_within(addr: SocketAddr, body: &[u8], wait: Duration) -> Option<common::gateway::Response> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(wait)).ok()?;
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    common::gateway::parse_response(&response).ok()
}

#[test]
fn a_shard_under_pressure_refuses_with_retry_hints_instead_of_stalling() {
    let upstream = black_hole();
    let ports: Vec<u16> = (0..3).map(|_| common::gateway::free_port()).collect();
    let (grpc, http, admin): (SocketAddr, SocketAddr, SocketAddr) = (
        format!("127.0.0.1:{}", ports[0]).parse().unwrap(),
        format!("127.0.0.1:{}", ports[1]).parse().unwrap(),
        format!("127.0.0.1:{}", ports[2]).parse().unwrap(),
    );
    // One shard; batches of 10 spans; one sending consumer stuck on the black hole and a
    // sending queue of one batch: the third batch has nowhere to go.
    let config = format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
processors:
  batch:
    send_batch_size: 10
    timeout: 10ms
exporters:
  otlp:
    endpoint: {upstream}
    tls:
      insecure: true
    timeout: 60s
    retry_on_failure:
      enabled: false
    sending_queue:
      queue_size: 1
      num_consumers: 1
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0]
"
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let request = |n: u64| traces((0..10).map(|i| span(1, n * 100 + i + 1, "op")).collect());

    let mut statuses = Vec::new();
    let mut refused = None;
    for n in 0..8 {
        match post_within(gateway.http, &request(n), Duration::from_millis(1500)) {
            Some((status, headers, _)) => {
                statuses.push(status);
                if status == 429 {
                    refused = Some(headers);
                    break;
                }
            }
            // A request that waits on the full queue: the client gives up, the shard notes it.
            None => statuses.push(0),
        }
    }
    let headers = refused.unwrap_or_else(|| panic!("no 429 under pressure; statuses {statuses:?}"));
    assert_eq!(
        statuses[..2],
        [200, 200],
        "the first two batches fit: {statuses:?}"
    );
    assert!(
        statuses.contains(&0),
        "a request waited before pressure was declared: {statuses:?}"
    );
    assert!(
        headers
            .iter()
            .any(|(name, value)| name == "retry-after" && value == "1"),
        "429 carries Retry-After: {headers:?}"
    );

    // gRPC under the same pressure: RESOURCE_EXHAUSTED with a RetryInfo detail.
    let reply = grpc_traces(&gateway, &request(50));
    assert_eq!(reply.code, "RESOURCE_EXHAUSTED", "{reply:?}");
    assert!(
        reply
            .trailing_metadata
            .iter()
            .any(|(key, _)| key == "grpc-status-details-bin"),
        "RetryInfo travels in grpc-status-details-bin: {reply:?}"
    );

    // Refused items are counted, on both transports.
    let metrics = gateway.metrics();
    let refused_http = common::gateway::metric_value(
        &metrics,
        "otelcol_receiver_refused_spans",
        &[("transport", "http")],
    );
    let refused_grpc = common::gateway::metric_value(
        &metrics,
        "otelcol_receiver_refused_spans",
        &[("transport", "grpc")],
    );
    assert!(refused_http >= 10.0 && refused_grpc >= 10.0, "{metrics}");
    // The gateway is stuck on its upstream by design here; it is killed, not drained.
    drop(gateway);
}

#[test]
fn http_response_headers_are_on_every_answer_and_keep_alives_can_be_turned_off() {
    let (sink, sink_grpc, _) = start_sink();
    let http_extra = "        keepalive:\n          enabled: false\n        response_headers:\n          \
                      - name: Strict-Transport-Security\n            value: max-age=31536000\n          \
                      - name: X-Served-By\n            value: gateway-a\n";
    let (config, grpc, http, admin) = Gateway::standard_config(sink_grpc, 1, "", http_extra);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let proto = ("Content-Type", "application/x-protobuf");

    // A client that asks to keep the connection is answered, with the headers, and the
    // connection is closed after it.
    let mut conn = Conn::open(gateway.http);
    conn.send(&http_request_bytes(
        "POST",
        "/v1/traces",
        &[proto],
        &traces(vec![span(0xb1, 1, "first")]),
    ))
    .unwrap();
    let reply = conn.response().expect("a response");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(
        reply.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert_eq!(reply.header("x-served-by"), Some("gateway-a"));
    assert!(
        conn.closed(),
        "keep-alives are off: closed after the answer"
    );

    // A refusal carries them too.
    let mut conn = Conn::open(gateway.http);
    conn.send(&http_request_bytes("POST", "/v1/nothing", &[proto], b""))
        .unwrap();
    let reply = conn.response().expect("a response");
    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(reply.header("x-served-by"), Some("gateway-a"));

    // Python's http.client, a real client: it sees the headers, and its one connection object
    // reconnects for the second request because the first answer said close.
    let body = traces(vec![span(0xb2, 2, "from-python")]);
    let body_path = std::env::temp_dir().join(format!("tailgate-{}-rh.bin", std::process::id()));
    std::fs::write(&body_path, &body).unwrap();
    let script = format!(
        "import http.client\n\
         body = open({path:?}, 'rb').read()\n\
         conn = http.client.HTTPConnection('{host}', {port}, timeout=10)\n\
         for _ in range(2):\n\
         \x20   conn.request('POST', '/v1/traces', body, {{'Content-Type': 'application/x-protobuf'}})\n\
         \x20   r = conn.getresponse(); r.read()\n\
         \x20   print(r.status, r.getheader('X-Served-By'), r.getheader('Connection'), r.will_close)\n",
        path = body_path.display().to_string(),
        host = gateway.http.ip(),
        port = gateway.http.port(),
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    let _ = std::fs::remove_file(&body_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200 gateway-a close True\n200 gateway-a close True\n"
    );
    assert_eq!(span_ids(&finish(gateway, sink)), vec![1, 2, 2]);
}
