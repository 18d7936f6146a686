//! Checks the Python-SDK client harness (tests/common/python.rs, tests/python/) on its own,
//! without the gateway: a minimal OTLP/HTTP receiver in this test takes what the official
//! OpenTelemetry Python exporters send, and the spans it decodes must be exactly the spans the
//! script reports. (gRPC needs an HTTP/2 server; the gateway tests cover it.)

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::python::{send_spans, try_send_spans, SentSpan};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;

#[derive(Debug)]
struct Received {
    method: String,
    path: String,
    content_type: String,
    content_encoding: String,
    /// Decompressed.
    body: Vec<u8>,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every request with `status`. Returns its base
/// URL and the requests it has received so far.
fn receiver(status: u16) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let sink = sink.clone();
            std::thread::spawn(move || serve(conn, status, &sink));
        }
    });
    (url, seen)
}

/// Serves one keep-alive connection until the client closes it.
fn serve(mut conn: TcpStream, status: u16, sink: &Mutex<Vec<Received>>) {
    let mut buf = Vec::new();
    loop {
        // Read until the head is complete.
        let (head_len, method, path, headers) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf).expect("malformed HTTP request") {
                httparse::Status::Complete(n) => {
                    let hs: Vec<(String, String)> = req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    break (
                        n,
                        req.method.unwrap().to_string(),
                        req.path.unwrap().to_string(),
                        hs,
                    );
                }
                httparse::Status::Partial => {
                    if !fill(&mut conn, &mut buf) {
                        return;
                    }
                }
            }
        };
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        buf.drain(..head_len);
        let raw = if header("transfer-encoding").eq_ignore_ascii_case("chunked") {
            read_chunked(&mut conn, &mut buf)
        } else {
            let len: usize = header("content-length").parse().unwrap_or(0);
            while buf.len() < len {
                assert!(fill(&mut conn, &mut buf), "connection closed inside a body");
            }
            buf.drain(..len).collect()
        };
        let encoding = header("content-encoding");
        let body = match encoding.as_str() {
            "" | "identity" => raw,
            "gzip" => inflate(flate2::read::GzDecoder::new(&raw[..])),
            "deflate" => inflate(flate2::read::ZlibDecoder::new(&raw[..])),
            other => panic!("unexpected content-encoding {other:?}"),
        };
        let content_type = header("content-type");
        let (reply_type, reply_body): (&str, &[u8]) =
            if content_type.starts_with("application/json") {
                ("application/json", b"{}")
            } else {
                ("application/x-protobuf", b"")
            };
        sink.lock().unwrap().push(Received {
            method,
            path,
            content_type,
            content_encoding: encoding,
            body,
        });
        let reason = if status == 200 { "OK" } else { "Error" };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: {reply_type}\r\ncontent-length: {}\r\n\r\n",
            reply_body.len()
        );
        if conn
            .write_all(head.as_bytes())
            .and_then(|_| conn.write_all(reply_body))
            .is_err()
        {
            return;
        }
    }
}

fn fill(conn: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match conn.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn read_chunked(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            assert!(fill(conn, buf), "connection closed inside a chunk header");
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            assert!(fill(conn, buf), "connection closed inside a chunk");
        }
        body.extend(buf.drain(..size));
        buf.drain(..2);
        if size == 0 {
            return body;
        }
    }
}

fn inflate(mut r: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).expect("bad compressed body");
    out
}

/// The invariants every `send_spans` result must satisfy.
fn check_report(
    spans: &[SentSpan],
    protocol: &str,
    traces: usize,
    per_trace: usize,
    error_every: usize,
) {
    assert_eq!(spans.len(), traces * per_trace, "span count");
    let mut by_trace: BTreeMap<[u8; 16], Vec<&SentSpan>> = BTreeMap::new();
    for s in spans {
        assert_ne!(s.trace_id, [0; 16], "zero trace id");
        assert_ne!(s.span_id, [0; 8], "zero span id");
        assert_eq!(s.service_name, format!("tailgate-test-{protocol}"));
        by_trace.entry(s.trace_id).or_default().push(s);
    }
    let unique: BTreeSet<[u8; 8]> = spans.iter().map(|s| s.span_id).collect();
    assert_eq!(unique.len(), spans.len(), "duplicate span ids");
    assert_eq!(by_trace.len(), traces, "trace count");
    for members in by_trace.values() {
        assert_eq!(members.len(), per_trace, "spans in a trace");
        let ids: BTreeSet<Vec<u8>> = members.iter().map(|s| s.span_id.to_vec()).collect();
        let roots: Vec<_> = members
            .iter()
            .filter(|s| s.parent_span_id.is_empty())
            .collect();
        assert_eq!(roots.len(), 1, "one root per trace");
        assert_eq!(roots[0].kind, 2, "root is a SERVER span");
        for s in members.iter().filter(|s| !s.parent_span_id.is_empty()) {
            assert!(
                ids.contains(&s.parent_span_id),
                "parent of {} is in its trace",
                s.name
            );
        }
    }
    let errors: Vec<_> = spans.iter().filter(|s| s.status_code == 2).collect();
    assert_eq!(errors.len(), traces / error_every, "error spans");
    for e in &errors {
        assert!(e.parent_span_id.is_empty(), "errors are on roots");
        assert!(!e.status_message.is_empty(), "error has a description");
    }
    let sample = &spans[0];
    for (key, ok) in [
        (
            "test.protocol",
            sample.attributes["test.protocol"].is_string(),
        ),
        (
            "test.trace_index",
            sample.attributes["test.trace_index"].is_u64(),
        ),
        ("test.ratio", sample.attributes["test.ratio"].is_f64()),
        (
            "test.is_root",
            sample.attributes["test.is_root"].is_boolean(),
        ),
        ("test.tags", sample.attributes["test.tags"].is_array()),
    ] {
        assert!(ok, "attribute {key} has the wrong type in {sample:?}");
    }
    assert_eq!(sample.events.len(), 1);
    assert_eq!(sample.events[0].0, "checkpoint");
    assert!(!sample.events[0].1.is_empty());
}

/// Decodes the received bodies and checks they carry exactly the reported spans.
fn check_received(
    received: &[Received],
    content_type: &str,
    encoding: &str,
    spans: &[SentSpan],
    json: bool,
) {
    assert!(!received.is_empty(), "the receiver got no request");
    let reported: BTreeMap<[u8; 8], &SentSpan> = spans.iter().map(|s| (s.span_id, s)).collect();
    let mut seen = BTreeSet::new();
    for r in received {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/traces"));
        assert_eq!(r.content_type, content_type);
        assert_eq!(r.content_encoding, encoding);
        let proto = if json {
            tailgate_wire::json::to_protobuf(tailgate_wire::Signal::Traces, &r.body).unwrap_or_else(
                |e| panic!("OTLP/JSON from the Python exporter does not decode: {e:?}"),
            )
        } else {
            r.body.clone()
        };
        let request = ExportTraceServiceRequest::decode(&proto[..])
            .expect("not an ExportTraceServiceRequest");
        for rs in &request.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref()?.value.clone());
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    let id: [u8; 8] = span.span_id.clone().try_into().expect("8-byte span id");
                    assert!(seen.insert(id), "span {id:02x?} received twice");
                    let sent = reported
                        .get(&id)
                        .unwrap_or_else(|| panic!("unreported span {id:02x?}"));
                    assert_eq!(span.trace_id, sent.trace_id);
                    assert_eq!(span.parent_span_id, sent.parent_span_id);
                    assert_eq!(span.name, sent.name);
                    assert_eq!(span.kind, sent.kind);
                    let status = span.status.clone().unwrap_or_default();
                    assert_eq!(
                        (status.code, status.message.as_str()),
                        (sent.status_code, sent.status_message.as_str())
                    );
                    assert_eq!(span.attributes.len(), sent.attributes.len());
                    assert_eq!(span.events.len(), sent.events.len());
                    assert_eq!(span.events[0].name, sent.events[0].0);
                    assert_eq!(
                        service,
                        Some(any_value::Value::StringValue(sent.service_name.clone()))
                    );
                }
            }
        }
    }
    assert_eq!(
        seen.len(),
        reported.len(),
        "received span ids != reported span ids"
    );
}

#[test]
fn python_sdk_harness_exports_what_it_reports() {
    let (traces, per_trace, error_every, seed) = (12, 7, 4, 42);

    // OTLP/HTTP protobuf, uncompressed.
    let (url, received) = receiver(200);
    let proto_spans = send_spans(
        "http/protobuf",
        &url,
        traces,
        per_trace,
        seed,
        error_every,
        "none",
    );
    check_report(
        &proto_spans,
        "http/protobuf",
        traces,
        per_trace,
        error_every,
    );
    check_received(
        &received.lock().unwrap(),
        "application/x-protobuf",
        "",
        &proto_spans,
        false,
    );

    // OTLP/HTTP JSON (its own virtualenv), gzip, several batches.
    let (url, received) = receiver(200);
    let json_spans = try_send_spans(
        "http/json",
        &url,
        traces,
        per_trace,
        seed,
        error_every,
        "gzip",
        &["--batch-size", "20"],
    )
    .unwrap_or_else(|f| panic!("{f}"));
    check_report(&json_spans, "http/json", traces, per_trace, error_every);
    let received = received.lock().unwrap();
    assert!(
        received.len() >= 2,
        "expected several batches, got {}",
        received.len()
    );
    check_received(&received, "application/json", "gzip", &json_spans, true);

    // The seed fixes ids and names whatever the exporter.
    let ids = |spans: &[SentSpan]| -> BTreeSet<([u8; 16], [u8; 8], String)> {
        spans
            .iter()
            .map(|s| (s.trace_id, s.span_id, s.name.clone()))
            .collect()
    };
    assert_eq!(ids(&proto_spans), ids(&json_spans));

    // A rejected export makes the script fail with exit code 2.
    let (url, _received) = receiver(400);
    let failure = try_send_spans("http/protobuf", &url, 1, 2, seed, 0, "none", &[])
        .expect_err("an HTTP 400 must fail the export");
    assert_eq!(failure.code, Some(2), "{failure}");
}
