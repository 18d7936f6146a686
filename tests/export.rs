//! Exporters against real upstreams on loopback: an HTTP/2 gRPC server (`h2` on glommio, as the
//! client is) and an HTTP/1.1 server (`httparse`), both answering from a script, each test on
//! its own glommio executor. Intervals are milliseconds so the suite stays fast; the one
//! exception waits out a one-second `Retry-After`, the smallest HTTP can say.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::Read as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;
use glommio::LocalExecutor;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use tailgate::export::{
    reason, Batch, Batcher, BatcherSettings, Compression, Encoding, ExportObserver, Exporter,
    ExporterSettings, OtlpGrpcSettings, OtlpHttpSettings, Pipeline, PipelineClosed, QueueSettings,
    QueueSizer, RetrySettings, SubmitError,
};
use tailgate_wire::Signal;

// ---------------------------------------------------------------------------------------------
// Observer and data

#[derive(Default)]
struct Recorder {
    sent: RefCell<Vec<(Signal, u64)>>,
    failed: RefCell<Vec<(Signal, u64, &'static str)>>,
    /// The running sum of `holding`: bytes the exporter holds now.
    held: Cell<i64>,
    /// The last queue size reported, in the queue's unit.
    queue_len: Cell<usize>,
}

impl ExportObserver for Recorder {
    fn sent(&self, signal: Signal, items: u64) {
        self.sent.borrow_mut().push((signal, items));
    }
    fn send_failed(&self, signal: Signal, items: u64, reason: &'static str) {
        self.failed.borrow_mut().push((signal, items, reason));
    }
    fn queue_len(&self, len: usize) {
        self.queue_len.set(len);
    }
    fn holding(&self, delta: i64) {
        self.held.set(self.held.get() + delta);
        assert!(self.held.get() >= 0, "let go of more than was taken");
    }
}

impl Recorder {
    fn sent_items(&self) -> u64 {
        self.sent.borrow().iter().map(|(_, n)| n).sum()
    }
    fn failed_items(&self, why: &str) -> u64 {
        self.failed
            .borrow()
            .iter()
            .filter(|(_, _, r)| *r == why)
            .map(|(_, n, _)| n)
            .sum()
    }
    fn all_failed_items(&self) -> u64 {
        self.failed.borrow().iter().map(|(_, n, _)| n).sum()
    }
}

fn traces_request(spans: usize, service: &str) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..spans)
                    .map(|i| Span {
                        trace_id: vec![i as u8 + 1; 16],
                        span_id: vec![7; 8],
                        name: format!("{service}-{i}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            schema_url: service.into(),
        }],
    }
    .encode_to_vec()
}

fn logs_request(records: usize) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: (0..records)
                    .map(|i| LogRecord {
                        severity_number: 9,
                        time_unix_nano: i as u64,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn traces_batch(spans: usize, service: &str) -> Batch {
    Batch {
        signal: Signal::Traces,
        bytes: Bytes::from(traces_request(spans, service)),
        items: spans as u64,
        metadata: Default::default(),
    }
}

fn fast_retry() -> RetrySettings {
    RetrySettings {
        enabled: true,
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(40),
        max_elapsed_time: Duration::from_secs(3),
        ..RetrySettings::default()
    }
}

fn grpc_settings(addr: SocketAddr) -> OtlpGrpcSettings {
    OtlpGrpcSettings {
        endpoint: addr.to_string(),
        compression: Compression::None,
        timeout: Duration::from_secs(3),
        retry: fast_retry(),
        ..Default::default()
    }
}

fn http_settings(addr: SocketAddr) -> OtlpHttpSettings {
    OtlpHttpSettings {
        endpoint: format!("http://{addr}"),
        compression: Compression::None,
        timeout: Duration::from_secs(3),
        retry: fast_retry(),
        ..Default::default()
    }
}

fn inline() -> QueueSettings {
    QueueSettings {
        enabled: false,
        ..Default::default()
    }
}

fn exporter(settings: ExporterSettings, recorder: &Rc<Recorder>) -> Exporter {
    Exporter::new("test", 0, settings, recorder.clone()).expect("valid settings")
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(3)
}

fn decompress(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("zstd") => out = zstd::decode_all(body).unwrap(),
        Some(other) => panic!("unexpected encoding {other}"),
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The gRPC upstream

#[derive(Clone)]
enum GrpcReply {
    Ok,
    Partial(i64, &'static str),
    /// A trailers-only status, with a `RetryInfo` delay when given.
    Status(i32, &'static str, Option<Duration>),
    /// OK once the test signals `release`.
    Held,
}

struct GrpcCall {
    path: String,
    headers: http::HeaderMap,
    message: Vec<u8>,
    at: Instant,
}

struct GrpcUpstream {
    addr: SocketAddr,
    calls: RefCell<Vec<GrpcCall>>,
    script: RefCell<VecDeque<GrpcReply>>,
    connections: Cell<usize>,
    /// Send GOAWAY after each call, so every call needs a new connection.
    one_call_per_connection: bool,
    release: Semaphore,
}

fn grpc_upstream(script: Vec<GrpcReply>, one_call_per_connection: bool) -> Rc<GrpcUpstream> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = Rc::new(GrpcUpstream {
        addr: listener.local_addr().unwrap(),
        calls: RefCell::new(Vec::new()),
        script: RefCell::new(script.into()),
        connections: Cell::new(0),
        one_call_per_connection,
        release: Semaphore::new(0),
    });
    let state = upstream.clone();
    glommio::spawn_local(async move {
        while let Ok(stream) = listener.accept().await {
            state.connections.set(state.connections.get() + 1);
            glommio::spawn_local(serve_h2(stream, state.clone())).detach();
        }
    })
    .detach();
    upstream
}

async fn serve_h2(stream: TcpStream, state: Rc<GrpcUpstream>) {
    let Ok(mut conn) = h2::server::handshake(stream.compat()).await else {
        return;
    };
    while let Some(Ok((request, respond))) = conn.accept().await {
        glommio::spawn_local(answer_grpc(request, respond, state.clone())).detach();
        if state.one_call_per_connection {
            conn.graceful_shutdown();
        }
    }
}

async fn answer_grpc(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    state: Rc<GrpcUpstream>,
) {
    let (head, mut body) = request.into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        data.extend_from_slice(&chunk);
    }
    let len = u32::from_be_bytes(data[1..5].try_into().unwrap()) as usize;
    assert_eq!(data.len(), 5 + len, "one length-prefixed message");
    let encoding = head
        .headers
        .get("grpc-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        data[0] == 1,
        encoding.is_some(),
        "compressed flag matches grpc-encoding"
    );
    state.calls.borrow_mut().push(GrpcCall {
        path: head.uri.path().to_string(),
        message: decompress(encoding.as_deref(), &data[5..]),
        headers: head.headers,
        at: Instant::now(),
    });
    let reply = state
        .script
        .borrow_mut()
        .pop_front()
        .unwrap_or(GrpcReply::Ok);
    let partial = match reply {
        GrpcReply::Ok => None,
        GrpcReply::Partial(rejected, message) => Some((rejected, message)),
        GrpcReply::Held => {
            let _ = state.release.acquire(1).await;
            None
        }
        GrpcReply::Status(code, message, delay) => {
            let mut response = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .header("grpc-status", code.to_string())
                .header("grpc-message", message.replace(' ', "%20"));
            if let Some(delay) = delay {
                response = response.header("grpc-status-details-bin", retry_info(delay));
            }
            let _ = respond.send_response(response.body(()).unwrap(), true);
            return;
        }
    };
    let response = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let Ok(mut send) = respond.send_response(response, false) else {
        return;
    };
    let message = ExportTraceServiceResponse {
        partial_success: partial.map(|(rejected_spans, message)| ExportTracePartialSuccess {
            rejected_spans,
            error_message: message.into(),
        }),
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let _ = send.send_data(Bytes::from(frame), false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = send.send_trailers(trailers);
}

/// `grpc-status-details-bin` for a `google.rpc.Status` carrying a `RetryInfo`.
fn retry_info(delay: Duration) -> String {
    #[derive(Clone, PartialEq, Message)]
    struct Status {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(message, repeated, tag = "3")]
        details: Vec<Any>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Any {
        #[prost(string, tag = "1")]
        type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        value: Vec<u8>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct RetryInfo {
        #[prost(message, optional, tag = "1")]
        retry_delay: Option<ProtoDuration>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct ProtoDuration {
        #[prost(int64, tag = "1")]
        seconds: i64,
        #[prost(int32, tag = "2")]
        nanos: i32,
    }
    let info = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: delay.as_secs() as i64,
            nanos: delay.subsec_nanos() as i32,
        }),
    };
    let status = Status {
        code: 8,
        details: vec![Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: info.encode_to_vec(),
        }],
    };
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.encode_to_vec())
}

// ---------------------------------------------------------------------------------------------
// The HTTP/1.1 upstream

struct HttpReply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    chunked: bool,
    /// Close the connection after this response without saying so, as an upstream's idle
    /// timeout does.
    close: bool,
}

impl HttpReply {
    fn status(status: u16) -> HttpReply {
        HttpReply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            chunked: false,
            close: false,
        }
    }
}

struct HttpCall {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: Instant,
}

impl HttpCall {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct HttpUpstream {
    addr: SocketAddr,
    calls: RefCell<Vec<HttpCall>>,
    script: RefCell<VecDeque<HttpReply>>,
    connections: Cell<usize>,
}

fn http_upstream(script: Vec<HttpReply>) -> Rc<HttpUpstream> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = Rc::new(HttpUpstream {
        addr: listener.local_addr().unwrap(),
        calls: RefCell::new(Vec::new()),
        script: RefCell::new(script.into()),
        connections: Cell::new(0),
    });
    let state = upstream.clone();
    glommio::spawn_local(async move {
        while let Ok(stream) = listener.accept().await {
            state.connections.set(state.connections.get() + 1);
            glommio::spawn_local(serve_http(stream, state.clone())).detach();
        }
    })
    .detach();
    upstream
}

async fn serve_http(mut stream: TcpStream, state: Rc<HttpUpstream>) {
    let mut buf = Vec::new();
    while let Some((path, headers, body)) = read_request(&mut stream, &mut buf).await {
        let encoding = headers
            .iter()
            .find(|(n, _)| n == "content-encoding")
            .map(|(_, v)| v.clone());
        state.calls.borrow_mut().push(HttpCall {
            path,
            body: decompress(encoding.as_deref(), &body),
            headers,
            at: Instant::now(),
        });
        let reply = state
            .script
            .borrow_mut()
            .pop_front()
            .unwrap_or(HttpReply::status(200));
        let mut out = format!("HTTP/1.1 {} X\r\n", reply.status);
        for (name, value) in &reply.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if reply.chunked {
            out.push_str("Transfer-Encoding: chunked\r\n\r\n");
            for piece in reply.body.chunks(3) {
                out.push_str(&format!("{:x}\r\n", piece.len()));
                let mut bytes = out.into_bytes();
                bytes.extend_from_slice(piece);
                out = String::from_utf8(bytes).unwrap();
                out.push_str("\r\n");
            }
            out.push_str("0\r\nx-trailer: 1\r\n\r\n");
            stream.write_all(out.as_bytes()).await.unwrap();
        } else {
            out.push_str(&format!("Content-Length: {}\r\n\r\n", reply.body.len()));
            stream.write_all(out.as_bytes()).await.unwrap();
            stream.write_all(&reply.body).await.unwrap();
        }
        stream.flush().await.unwrap();
        if reply.close {
            return;
        }
    }
}

type Request = (String, Vec<(String, String)>, Vec<u8>);

async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    loop {
        let parsed = {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(buf).unwrap() {
                httparse::Status::Complete(len) => Some((
                    len,
                    request.path.unwrap().to_string(),
                    request
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect::<Vec<_>>(),
                )),
                httparse::Status::Partial => None,
            }
        };
        if let Some((head_len, path, headers)) = parsed {
            let body_len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            buf.drain(..head_len);
            while buf.len() < body_len {
                read_some(stream, buf).await?;
            }
            let body = buf.drain(..body_len).collect();
            return Some((path, headers, body));
        }
        read_some(stream, buf).await?;
    }
}

async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OTLP/gRPC

#[test]
fn grpc_batches_arrive_as_the_concatenation_with_headers() {
    LocalExecutor::default().run(async {
        let upstream = grpc_upstream(vec![], false);
        let recorder = Rc::new(Recorder::default());
        let mut settings = grpc_settings(upstream.addr);
        settings.headers = vec![("x-tenant".into(), "acme".into())];
        let exporter = Rc::new(exporter(ExporterSettings::Otlp(settings), &recorder));
        let batcher = Batcher::new(BatcherSettings {
            send_batch_size: 10,
            timeout: Duration::from_secs(10),
            ..Default::default()
        })
        .unwrap();
        let pipeline = Pipeline::new(batcher, vec![exporter]);
        let (a, b) = (traces_request(6, "a"), traces_request(6, "b"));
        pipeline
            .push(Signal::Traces, &a, 6, &Default::default())
            .await
            .unwrap();
        pipeline
            .push(Signal::Traces, &b, 6, &Default::default())
            .await
            .unwrap();
        pipeline.shutdown(soon()).await;

        let calls = upstream.calls.borrow();
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        assert_eq!(call.message, [a, b].concat(), "byte-exact concatenation");
        let merged = ExportTraceServiceRequest::decode(&call.message[..]).unwrap();
        assert_eq!(merged.resource_spans.len(), 2);
        assert_eq!(
            call.path,
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
        assert_eq!(call.headers["content-type"], "application/grpc");
        assert_eq!(call.headers["te"], "trailers");
        assert_eq!(call.headers["x-tenant"], "acme");
        assert_eq!(call.headers["grpc-timeout"], "3000000u");
        assert!(!call.headers.contains_key("grpc-encoding"));
        assert_eq!(recorder.sent_items(), 12);
        assert_eq!(recorder.all_failed_items(), 0);
    });
}

#[test]
fn a_named_endpoint_is_resolved_and_each_of_its_addresses_tried() {
    // `localhost` may resolve to ::1 before 127.0.0.1; the upstream listens on the IPv4
    // address only, so whichever a connection starts at, it ends connected there.
    LocalExecutor::default().run(async {
        let upstream = grpc_upstream(vec![], true);
        let recorder = Rc::new(Recorder::default());
        let mut settings = grpc_settings(upstream.addr);
        settings.endpoint = format!("localhost:{}", upstream.addr.port());
        let exporter = exporter(ExporterSettings::Otlp(settings), &recorder);
        for i in 0..4 {
            exporter
                .submit(traces_batch(1, &format!("n{i}")))
                .await
                .unwrap();
        }
        exporter.shutdown(vec![], soon()).await;
        assert_eq!(recorder.sent_items(), 4);
        assert_eq!(recorder.all_failed_items(), 0);
        assert_eq!(upstream.calls.borrow().len(), 4);
    });
}

#[test]
fn grpc_gzip_and_zstd_bodies_decode_to_the_batch() {
    LocalExecutor::default().run(async {
        let upstream = grpc_upstream(vec![], false);
        let recorder = Rc::new(Recorder::default());
        let traces = traces_batch(50, "gz");
        let logs = Batch {
            signal: Signal::Logs,
            bytes: Bytes::from(logs_request(40)),
            items: 40,
            metadata: Default::default(),
        };
        for (compression, batch) in [
            (Compression::Gzip, traces.clone()),
            (Compression::Zstd, logs.clone()),
        ] {
            let mut settings = grpc_settings(upstream.addr);
            settings.compression = compression;
            settings.queue = inline();
            let exporter = exporter(ExporterSettings::Otlp(settings), &recorder);
            exporter.submit(batch).await.unwrap();
        }
        let calls = upstream.calls.borrow();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].headers["grpc-encoding"], "gzip");
        assert_eq!(calls[0].message, traces.bytes);
        assert_eq!(calls[1].headers["grpc-encoding"], "zstd");
        assert_eq!(
            calls[1].path,
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
        );
        assert_eq!(calls[1].message, logs.bytes);
        assert_eq!(recorder.sent_items(), 90);
    });
}

#[test]
fn grpc_unavailable_is_retried_until_it_succeeds() {
    LocalExecutor::default().run(async {
        let upstream = grpc_upstream(
            vec![
                GrpcReply::Status(14, "busy", None),
                GrpcReply::Status(14, "still busy", None),
            ],
            false,
        );
        let recorder = Rc::new(Recorder::default());
        let exporter = exporter(
            ExporterSettings::Otlp(grpc_settings(upstream.addr)),
            &recorder,
        );
        exporter.submit(traces_batch(5, "r")).await.unwrap();
        exporter.shutdown(vec![], soon()).await;
        assert_eq!(upstream.calls.borrow().len(), 3);
        assert_eq!(recorder.sent_items(), 5);
        assert_eq!(recorder.all_failed_items(), 0);
    });
}

#[test]
fn grpc_resource_exhausted_without_retry_info_is_not_retried() {
    LocalExecutor::default().run(async {
        let upstream = grpc_upstream(vec![GrpcReply::Status(8, "out of memory", None)], false);
        let recorder = Rc::new(Recorder::default());
        let exporter = exporter(
            ExporterSettings::Otlp(grpc_settings(upstream.addr)),
            &recorder,
        );
        exporter.submit(traces_batch(5, "x")).await.unwrap();
        exporter.shutdown(vec![], soon()).await;
        assert_eq!(upstream.calls.borrow().len(), 1);
        assert_eq!(recorder.failed_items(reason::PERMANENT), 5);
        assert_eq!(recorder.sent_items(), 0);
    });
}

#[test]
fn grpc_resource_exhausted_with_retry_info_is_retried_after_its_delay() {
    LocalExecutor::default().run(async {
        let delay = Duration::from_millis(300);
        let upstream = grpc_upstream(vec![GrpcReply::Status(8, "slow down", Some(delay))], false);
        let recorder = Rc::new(Recorder::default());
        let exporter = exporter(
            ExporterSettings::Otlp(grpc_settings(upstream.addr)),
            &recorder,
        );
        exporter.submit(traces_batch(5, "x")).await.unwrap();
        exporter.shutdown(vec![], soon()).await;
        let calls = upstream.calls.borrow();
        assert_eq!(calls.len(), 2);
        let waited = calls[1].at - calls[0].at;
        assert!(
            waited >= delay,
            "retried after {waited:?}, asked for {delay:?}"
        );
        assert_eq!(recorder.sent_items(), 5);
    });
}

#[test]
fn grpc_partial_success_counts_the_rejected_items() {
    LocalExecutor::default().run(async {
        let upstream = grpc_upstream(vec![GrpcReply::Partial(2, "bad ids")], false);
        let recorder = Rc::new(Recorder::default());
        let exporter = exporter(
            ExporterSettings::Otlp(grpc_settings(upstream.addr)),
            &recorder,
        );
        exporter.submit(traces_batch(5, "p")).await.unwrap();
        exporter.shutdown(vec![], soon()).await;
        assert_eq!(recorder.sent_items(), 3);
        assert_eq!(recorder.failed_items(reason::REJECTED), 2);
    });
}

#[test]
fn grpc_reconnects_when_the_upstream_closes_the_connection() {
    LocalExecutor::default().run(async {
        let upstream = grpc_upstream(vec![], true);
        let recorder = Rc::new(Recorder::default());
        let mut settings = grpc_settings(upstream.addr);
        settings.queue = inline();
        let exporter = exporter(ExporterSettings::Otlp(settings), &recorder);
        for i in 0..3 {
            exporter.submit(traces_batch(2, "c")).await.unwrap();
            // Let the GOAWAY arrive before the next batch, as it would between real batches.
            glommio::timer::sleep(Duration::from_millis(20)).await;
            assert_eq!(upstream.connections.get(), i + 1);
        }
        assert_eq!(recorder.sent_items(), 6);
        assert_eq!(recorder.all_failed_items(), 0);
    });
}

#[test]
fn unreachable_upstream_exhausts_retries() {
    LocalExecutor::default().run(async {
        let addr = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let recorder = Rc::new(Recorder::default());
        let mut settings = grpc_settings(addr);
        settings.retry.max_elapsed_time = Duration::from_millis(150);
        settings.queue = inline();
        let exporter = exporter(ExporterSettings::Otlp(settings), &recorder);
        let started = Instant::now();
        exporter.submit(traces_batch(4, "u")).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(recorder.failed_items(reason::RETRIES_EXHAUSTED), 4);

        let mut settings = grpc_settings(addr);
        settings.retry.enabled = false;
        settings.queue = inline();
        let exporter = Exporter::new(
            "no-retry",
            0,
            ExporterSettings::Otlp(settings),
            recorder.clone(),
        )
        .unwrap();
        exporter.submit(traces_batch(1, "u")).await.unwrap();
        assert_eq!(recorder.failed_items(reason::RETRIES_EXHAUSTED), 5);
        assert_eq!(recorder.held.get(), 0);
    });
}

// ---------------------------------------------------------------------------------------------
// OTLP/HTTP

#[test]
fn http_posts_protobuf_with_headers_on_one_kept_alive_connection() {
    LocalExecutor::default().run(async {
        let upstream = http_upstream(vec![]);
        let recorder = Rc::new(Recorder::default());
        let mut settings = http_settings(upstream.addr);
        settings.headers = vec![("x-tenant".into(), "acme".into())];
        settings.queue = inline();
        let exporter = exporter(ExporterSettings::OtlpHttp(settings), &recorder);
        let first = traces_batch(3, "h1");
        let second = traces_batch(4, "h2");
        exporter.submit(first.clone()).await.unwrap();
        exporter.submit(second.clone()).await.unwrap();
        let calls = upstream.calls.borrow();
        assert_eq!(calls.len(), 2);
        assert_eq!(upstream.connections.get(), 1, "the connection is reused");
        assert_eq!(calls[0].path, "/v1/traces");
        assert_eq!(
            calls[0].header("content-type"),
            Some("application/x-protobuf")
        );
        assert_eq!(calls[0].header("x-tenant"), Some("acme"));
        assert_eq!(calls[0].header("content-encoding"), None);
        assert_eq!(calls[0].body, first.bytes);
        assert_eq!(calls[1].body, second.bytes);
        assert_eq!(recorder.sent_items(), 7);
    });
}

#[test]
fn http_gzip_and_zstd_bodies_decode_to_the_batch() {
    LocalExecutor::default().run(async {
        let upstream = http_upstream(vec![]);
        let recorder = Rc::new(Recorder::default());
        let batch = traces_batch(30, "z");
        for compression in [Compression::Gzip, Compression::Zstd] {
            let mut settings = http_settings(upstream.addr);
            settings.compression = compression;
            settings.queue = inline();
            let exporter = exporter(ExporterSettings::OtlpHttp(settings), &recorder);
            exporter.submit(batch.clone()).await.unwrap();
        }
        let calls = upstream.calls.borrow();
        assert_eq!(calls[0].header("content-encoding"), Some("gzip"));
        assert_eq!(calls[1].header("content-encoding"), Some("zstd"));
        assert!(calls.iter().all(|call| call.body == batch.bytes));
        assert_eq!(recorder.sent_items(), 60);
    });
}

#[test]
fn http_json_encoding_sends_otlp_json() {
    LocalExecutor::default().run(async {
        let upstream = http_upstream(vec![HttpReply {
            headers: vec![("Content-Type", "application/json".into())],
            body: br#"{"partialSuccess":{"rejectedSpans":"1","errorMessage":"one bad"}}"#.to_vec(),
            ..HttpReply::status(200)
        }]);
        let recorder = Rc::new(Recorder::default());
        let mut settings = http_settings(upstream.addr);
        settings.encoding = Encoding::Json;
        settings.traces_endpoint = Some(format!("http://{}/custom/traces", upstream.addr));
        settings.queue = inline();
        let exporter = exporter(ExporterSettings::OtlpHttp(settings), &recorder);
        let batch = traces_batch(3, "j");
        exporter.submit(batch.clone()).await.unwrap();
        let calls = upstream.calls.borrow();
        assert_eq!(calls[0].path, "/custom/traces");
        assert_eq!(calls[0].header("content-type"), Some("application/json"));
        let json: serde_json::Value = serde_json::from_slice(&calls[0].body).unwrap();
        assert!(json["resourceSpans"][0]["scopeSpans"][0]["spans"].is_array());
        let back = tailgate_wire::json::to_protobuf(Signal::Traces, &calls[0].body).unwrap();
        assert_eq!(
            ExportTraceServiceRequest::decode(&back[..]).unwrap(),
            ExportTraceServiceRequest::decode(&batch.bytes[..]).unwrap()
        );
        assert_eq!(recorder.sent_items(), 2);
        assert_eq!(recorder.failed_items(reason::REJECTED), 1);
    });
}

#[test]
fn http_503_is_retried_after_retry_after() {
    LocalExecutor::default().run(async {
        let upstream = http_upstream(vec![HttpReply {
            headers: vec![("Retry-After", "1".into())],
            ..HttpReply::status(503)
        }]);
        let recorder = Rc::new(Recorder::default());
        let mut settings = http_settings(upstream.addr);
        settings.queue = inline();
        let exporter = exporter(ExporterSettings::OtlpHttp(settings), &recorder);
        exporter.submit(traces_batch(2, "t")).await.unwrap();
        let calls = upstream.calls.borrow();
        assert_eq!(calls.len(), 2);
        let waited = calls[1].at - calls[0].at;
        assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
        assert_eq!(recorder.sent_items(), 2);
    });
}

#[test]
fn http_400_is_not_retried_and_counted_failed() {
    LocalExecutor::default().run(async {
        let upstream = http_upstream(vec![HttpReply {
            headers: vec![("Content-Type", "application/json".into())],
            body: br#"{"code":3,"message":"invalid span"}"#.to_vec(),
            ..HttpReply::status(400)
        }]);
        let recorder = Rc::new(Recorder::default());
        let mut settings = http_settings(upstream.addr);
        settings.queue = inline();
        let exporter = exporter(ExporterSettings::OtlpHttp(settings), &recorder);
        exporter.submit(traces_batch(6, "bad")).await.unwrap();
        assert_eq!(upstream.calls.borrow().len(), 1);
        assert_eq!(recorder.failed_items(reason::PERMANENT), 6);
        assert_eq!(recorder.sent_items(), 0);
    });
}

#[test]
fn http_partial_success_in_a_chunked_response_is_counted() {
    LocalExecutor::default().run(async {
        let body = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "span too old".into(),
            }),
        }
        .encode_to_vec();
        let upstream = http_upstream(vec![HttpReply {
            body,
            chunked: true,
            ..HttpReply::status(200)
        }]);
        let recorder = Rc::new(Recorder::default());
        let mut settings = http_settings(upstream.addr);
        settings.queue = inline();
        let exporter = exporter(ExporterSettings::OtlpHttp(settings), &recorder);
        exporter.submit(traces_batch(5, "c")).await.unwrap();
        // The chunked response, trailers included, was read to its end: the connection is
        // reused for the next batch.
        exporter.submit(traces_batch(1, "c")).await.unwrap();
        assert_eq!(upstream.connections.get(), 1);
        assert_eq!(recorder.sent_items(), 4);
        assert_eq!(recorder.failed_items(reason::REJECTED), 2);
    });
}

#[test]
fn http_stale_kept_alive_connection_is_replaced_without_backoff() {
    LocalExecutor::default().run(async {
        let upstream = http_upstream(vec![HttpReply {
            close: true,
            ..HttpReply::status(200)
        }]);
        let recorder = Rc::new(Recorder::default());
        let mut settings = http_settings(upstream.addr);
        settings.retry.initial_interval = Duration::from_secs(2);
        settings.queue = inline();
        let exporter = exporter(ExporterSettings::OtlpHttp(settings), &recorder);
        exporter.submit(traces_batch(1, "k")).await.unwrap();
        glommio::timer::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        exporter.submit(traces_batch(1, "k")).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "no backoff wait"
        );
        assert_eq!(upstream.connections.get(), 2);
        assert_eq!(upstream.calls.borrow().len(), 2);
        assert_eq!(recorder.sent_items(), 2);
    });
}

#[test]
fn grpc_attempts_time_out_and_move_to_a_new_connection() {
    LocalExecutor::default().run(async {
        let upstream = grpc_upstream(vec![GrpcReply::Held; 10], false);
        let recorder = Rc::new(Recorder::default());
        let mut settings = grpc_settings(upstream.addr);
        settings.timeout = Duration::from_millis(100);
        settings.retry.max_elapsed_time = Duration::from_millis(250);
        settings.queue = inline();
        let exporter = exporter(ExporterSettings::Otlp(settings), &recorder);
        exporter.submit(traces_batch(3, "slow")).await.unwrap();
        let calls = upstream.calls.borrow().len();
        assert!(calls >= 2, "{calls} attempts");
        assert_eq!(upstream.connections.get(), calls);
        assert_eq!(recorder.failed_items(reason::RETRIES_EXHAUSTED), 3);
    });
}

// ---------------------------------------------------------------------------------------------
// Queue, backpressure, shutdown

#[test]
fn a_full_queue_makes_submit_wait_and_drops_nothing() {
    LocalExecutor::default().run(async {
        let upstream = grpc_upstream(vec![GrpcReply::Held; 3], false);
        let recorder = Rc::new(Recorder::default());
        let mut settings = grpc_settings(upstream.addr);
        settings.queue = QueueSettings {
            enabled: true,
            num_consumers: 1,
            queue_size: 1,
            ..QueueSettings::default()
        };
        let exporter = Rc::new(exporter(ExporterSettings::Otlp(settings), &recorder));
        let done = Rc::new(Cell::new(0));
        let mut tasks = Vec::new();
        for i in 0..3 {
            let (exporter, done) = (exporter.clone(), done.clone());
            tasks.push(glommio::spawn_local(async move {
                exporter
                    .submit(traces_batch(1, &format!("q{i}")))
                    .await
                    .unwrap();
                done.set(done.get() + 1);
            }));
            glommio::timer::sleep(Duration::from_millis(30)).await;
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
        // One batch in flight (held by the upstream), one queued, the third waits for room.
        assert_eq!(done.get(), 2);
        assert_eq!(exporter.queue_len(), 1);
        let one = traces_batch(1, "q0").bytes.len() as i64;
        assert_eq!(recorder.held.get(), 2 * one, "in flight and queued");
        assert_eq!(recorder.all_failed_items(), 0);
        upstream.release.signal(3);
        for task in tasks {
            task.await;
        }
        exporter.shutdown(vec![], soon()).await;
        assert_eq!(recorder.sent_items(), 3);
        assert_eq!(recorder.all_failed_items(), 0);
        assert_eq!(recorder.held.get(), 0);
        assert_eq!(upstream.calls.borrow().len(), 3);
    });
}

#[test]
fn a_queue_bounded_in_bytes_waits_while_a_batch_does_not_fit() {
    LocalExecutor::default().run(async {
        let upstream = grpc_upstream(vec![GrpcReply::Held; 4], false);
        let recorder = Rc::new(Recorder::default());
        let one = traces_batch(10, "b0").bytes.len();
        let mut settings = grpc_settings(upstream.addr);
        // Room for two batches' bytes, not three (and many more batches than that).
        settings.queue = QueueSettings {
            enabled: true,
            num_consumers: 1,
            queue_size: 2 * one + one / 2,
            sizer: QueueSizer::Bytes,
            ..QueueSettings::default()
        };
        let exporter = Rc::new(exporter(ExporterSettings::Otlp(settings), &recorder));
        let done = Rc::new(Cell::new(0));
        let mut tasks = Vec::new();
        for i in 0..4 {
            let (exporter, done) = (exporter.clone(), done.clone());
            tasks.push(glommio::spawn_local(async move {
                exporter
                    .submit(traces_batch(10, &format!("b{i}")))
                    .await
                    .unwrap();
                done.set(done.get() + 1);
            }));
            glommio::timer::sleep(Duration::from_millis(30)).await;
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
        // One in flight, two queued (their bytes fit), the fourth waits for room.
        assert_eq!(done.get(), 3);
        assert_eq!(exporter.queue_len(), 2);
        assert_eq!(recorder.queue_len.get(), 2 * one, "the queue reports bytes");
        upstream.release.signal(4);
        for task in tasks {
            task.await;
        }
        exporter.shutdown(vec![], soon()).await;
        assert_eq!(recorder.sent_items(), 40);
        assert_eq!(recorder.all_failed_items(), 0);
    });
}

#[test]
fn without_block_on_overflow_a_batch_that_does_not_fit_is_dropped_and_counted_at_once() {
    LocalExecutor::default().run(async {
        let upstream = grpc_upstream(vec![GrpcReply::Held; 3], false);
        let recorder = Rc::new(Recorder::default());
        let mut settings = grpc_settings(upstream.addr);
        settings.queue = QueueSettings {
            enabled: true,
            num_consumers: 1,
            queue_size: 1,
            block_on_overflow: false,
            ..QueueSettings::default()
        };
        let exporter = exporter(ExporterSettings::Otlp(settings), &recorder);
        exporter.submit(traces_batch(1, "f0")).await.unwrap();
        glommio::timer::sleep(Duration::from_millis(50)).await;
        exporter.submit(traces_batch(2, "f1")).await.unwrap();
        // In flight, queued, and now no room: this one is dropped without waiting.
        let started = Instant::now();
        exporter.submit(traces_batch(3, "f2")).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(recorder.failed_items(reason::QUEUE_FULL), 3);
        assert_eq!(exporter.queue_len(), 1);
        upstream.release.signal(3);
        exporter.shutdown(vec![], soon()).await;
        assert_eq!(recorder.sent_items(), 3);
        assert_eq!(recorder.failed_items(reason::QUEUE_FULL), 3);
        assert_eq!(recorder.held.get(), 0);
    });
}

#[test]
fn a_full_exporter_does_not_delay_the_others_copy_of_a_batch() {
    LocalExecutor::default().run(async {
        let stalled = grpc_upstream(vec![GrpcReply::Held; 3], false);
        let healthy = grpc_upstream(vec![], false);
        let (slow_recorder, fast_recorder) =
            (Rc::new(Recorder::default()), Rc::new(Recorder::default()));
        let mut slow = grpc_settings(stalled.addr);
        slow.queue = QueueSettings {
            enabled: true,
            num_consumers: 1,
            queue_size: 1,
            ..QueueSettings::default()
        };
        let slow = Rc::new(exporter(ExporterSettings::Otlp(slow), &slow_recorder));
        let fast = Rc::new(exporter(
            ExporterSettings::Otlp(grpc_settings(healthy.addr)),
            &fast_recorder,
        ));
        let batcher = Batcher::new(BatcherSettings {
            send_batch_size: 1,
            timeout: Duration::from_secs(10),
            ..Default::default()
        })
        .unwrap();
        // The slow exporter first: sequential fan-out would hold the fast one's copy behind it.
        let pipeline = Rc::new(Pipeline::new(batcher, vec![slow.clone(), fast.clone()]));
        for i in 0..2 {
            let request = traces_request(1, &format!("p{i}"));
            pipeline
                .push(Signal::Traces, &request, 1, &Default::default())
                .await
                .unwrap();
            glommio::timer::sleep(Duration::from_millis(30)).await;
        }
        // The slow one has one batch in flight and one queued: the third waits for it...
        let third = {
            let pipeline = pipeline.clone();
            glommio::spawn_local(async move {
                let request = traces_request(1, "p2");
                pipeline
                    .push(Signal::Traces, &request, 1, &Default::default())
                    .await
                    .unwrap();
            })
        };
        glommio::timer::sleep(Duration::from_millis(100)).await;
        // ...but the fast one already has it, and has sent it.
        assert_eq!(healthy.calls.borrow().len(), 3);
        assert_eq!(fast_recorder.sent_items(), 3);
        assert_eq!(slow.queue_len(), 1);
        stalled.release.signal(3);
        third.await;
        pipeline.shutdown(soon()).await;
        assert_eq!(slow_recorder.sent_items(), 3);
        assert_eq!(slow_recorder.all_failed_items(), 0);
    });
}

#[test]
fn shutdown_drains_the_queue() {
    LocalExecutor::default().run(async {
        let upstream = grpc_upstream(vec![], false);
        let recorder = Rc::new(Recorder::default());
        let mut settings = grpc_settings(upstream.addr);
        settings.queue = QueueSettings {
            enabled: true,
            num_consumers: 2,
            queue_size: 10,
            ..QueueSettings::default()
        };
        let exporter = exporter(ExporterSettings::Otlp(settings), &recorder);
        for i in 0..6 {
            exporter
                .submit(traces_batch(2, &format!("d{i}")))
                .await
                .unwrap();
        }
        let started = Instant::now();
        exporter
            .shutdown(vec![traces_batch(3, "final")], soon())
            .await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(recorder.sent_items(), 15);
        assert_eq!(recorder.all_failed_items(), 0);
        assert_eq!(recorder.held.get(), 0);
        assert_eq!(upstream.calls.borrow().len(), 7);
    });
}

#[test]
fn shutdown_counts_what_it_could_not_send_as_dropped() {
    LocalExecutor::default().run(async {
        // The upstream never answers.
        let upstream = grpc_upstream(vec![GrpcReply::Held; 10], false);
        let recorder = Rc::new(Recorder::default());
        let mut settings = grpc_settings(upstream.addr);
        settings.queue = QueueSettings {
            enabled: true,
            num_consumers: 1,
            queue_size: 4,
            ..QueueSettings::default()
        };
        let exporter = exporter(ExporterSettings::Otlp(settings), &recorder);
        for i in 0..3 {
            exporter
                .submit(traces_batch(2, &format!("s{i}")))
                .await
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_millis(200);
        exporter
            .shutdown(vec![traces_batch(1, "final")], deadline)
            .await;
        assert!(Instant::now() >= deadline);
        assert!(Instant::now() < deadline + Duration::from_secs(1));
        assert_eq!(recorder.failed_items(reason::SHUTDOWN), 7);
        assert_eq!(recorder.sent_items(), 0);
        assert_eq!(exporter.queue_len(), 0);
        assert_eq!(recorder.held.get(), 0, "dropped batches are let go of too");

        assert_eq!(
            exporter.submit(traces_batch(4, "late")).await,
            Err(SubmitError::ShutDown)
        );
        assert_eq!(recorder.failed_items(reason::SHUTDOWN), 7);
        assert_eq!(recorder.failed_items(reason::NOT_QUEUED), 4);
    });
}

#[test]
fn pipeline_flushes_on_timeout_and_refuses_after_close() {
    LocalExecutor::default().run(async {
        let upstream = http_upstream(vec![]);
        let recorder = Rc::new(Recorder::default());
        let exporter = Rc::new(exporter(
            ExporterSettings::OtlpHttp(http_settings(upstream.addr)),
            &recorder,
        ));
        let batcher = Batcher::new(BatcherSettings {
            send_batch_size: 1000,
            timeout: Duration::from_millis(100),
            ..Default::default()
        })
        .unwrap();
        let pipeline = Pipeline::new(batcher, vec![exporter]);
        let request = traces_request(3, "t");
        let pushed = Instant::now();
        pipeline
            .push(Signal::Traces, &request, 3, &Default::default())
            .await
            .unwrap();
        pipeline
            .push(Signal::Traces, &request, 3, &Default::default())
            .await
            .unwrap();
        glommio::timer::sleep(Duration::from_millis(400)).await;
        {
            let calls = upstream.calls.borrow();
            assert_eq!(calls.len(), 1, "the timer flushed the pending batch");
            assert!(calls[0].at - pushed >= Duration::from_millis(100));
            assert_eq!(calls[0].body, [&request[..], &request[..]].concat());
        }
        pipeline
            .push(Signal::Traces, &request, 3, &Default::default())
            .await
            .unwrap();
        pipeline.shutdown(soon()).await;
        assert_eq!(upstream.calls.borrow().len(), 2, "close flushed the rest");
        assert_eq!(recorder.sent_items(), 9);
        assert_eq!(
            pipeline
                .push(Signal::Traces, &request, 3, &Default::default())
                .await,
            Err(PipelineClosed)
        );
    });
}

#[test]
fn debug_exporter_counts_what_it_prints() {
    LocalExecutor::default().run(async {
        let recorder = Rc::new(Recorder::default());
        let exporter = exporter(ExporterSettings::Debug(Default::default()), &recorder);
        exporter.submit(traces_batch(2, "dbg")).await.unwrap();
        let invalid = Batch {
            signal: Signal::Traces,
            bytes: Bytes::from_static(&[0x0a, 0x09]),
            items: 1,
            metadata: Default::default(),
        };
        exporter.submit(invalid).await.unwrap();
        assert_eq!(recorder.sent_items(), 2);
        assert_eq!(recorder.failed_items(reason::PERMANENT), 1);
        // Without a queue, shutdown sends the final batches itself.
        exporter
            .shutdown(vec![traces_batch(3, "dbg")], soon())
            .await;
        assert_eq!(recorder.sent_items(), 5);
    });
}

#[test]
fn settings_errors_name_the_problem() {
    LocalExecutor::default().run(async {
        let recorder: Rc<dyn ExportObserver> = Rc::new(Recorder::default());
        let bad = |settings| Exporter::new("bad", 0, settings, recorder.clone()).err();
        let tls = ExporterSettings::Otlp(OtlpGrpcSettings {
            endpoint: "https://collector:4317".into(),
            ..Default::default()
        });
        assert!(bad(tls).unwrap().to_string().contains("TLS"));
        let empty_queue = ExporterSettings::OtlpHttp(OtlpHttpSettings {
            endpoint: "http://collector:4318".into(),
            queue: QueueSettings {
                enabled: true,
                num_consumers: 0,
                queue_size: 10,
                ..QueueSettings::default()
            },
            ..Default::default()
        });
        assert!(bad(empty_queue).is_some());
        let header = ExporterSettings::Otlp(OtlpGrpcSettings {
            endpoint: "collector:4317".into(),
            headers: vec![("x".into(), "a\nb".into())],
            ..Default::default()
        });
        assert!(bad(header).unwrap().to_string().contains("header"));
    });
}
