//! The admin endpoint over real sockets: metrics written by shard threads and scraped by the
//! admin thread, health and readiness, error statuses, and the bounds on what a client sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tailgate::telemetry::{
    AdminServer, DropMetrics, DropReason, ExporterMetrics, Health, PublishedRegistry,
    ReceiverMetrics, RegistryBuilder, ShardMetrics, ADMIN_CONNECTIONS_MAX, ADMIN_HEADER_BYTES_MAX,
};
use tailgate_wire::Signal;

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as is and reads the whole response (the server closes after one).
fn exchange(addr: SocketAddr, request: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(&raw).expect("well-formed response") {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => panic!("truncated response: {raw:?}"),
    };
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8(h.value.to_vec()).unwrap(),
            )
        })
        .collect();
    let response = Response {
        status: parsed.code.unwrap(),
        headers,
        body: String::from_utf8(raw[head_len..].to_vec()).unwrap(),
    };
    let length: usize = response.header("content-length").unwrap().parse().unwrap();
    assert_eq!(
        length,
        response.body.len(),
        "Content-Length matches the body"
    );
    assert_eq!(response.header("connection"), Some("close"));
    response
}

fn get(addr: SocketAddr, path: &str) -> Response {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n").as_bytes(),
    )
}

fn start(builder: RegistryBuilder, health: Arc<Health>) -> AdminServer {
    AdminServer::start(
        "127.0.0.1:0".parse().unwrap(),
        Some(Arc::new(PublishedRegistry::new(builder.build()))),
        health,
    )
    .expect("start")
}

#[test]
fn a_scrape_shows_what_each_shard_thread_counted_as_its_own_series() {
    let mut builder = RegistryBuilder::new();
    let shards: Vec<_> = (0..2)
        .map(|shard| {
            (
                ReceiverMetrics::register(&mut builder, "otlp", "grpc", shard),
                ExporterMetrics::register(&mut builder, "otlp/central", shard),
                DropMetrics::register(&mut builder, shard),
                ShardMetrics::register(&mut builder, shard),
            )
        })
        .collect();
    let health = Arc::new(Health::new(2));
    let server = start(builder, Arc::clone(&health));

    // Each "shard" thread is the only writer of its cells.
    let writers: Vec<_> = shards
        .into_iter()
        .enumerate()
        .map(|(shard, (receiver, exporter, drops, owned))| {
            thread::spawn(move || {
                let n = 10 * (shard as u64 + 1);
                for _ in 0..n {
                    receiver.signal(Signal::Traces).accepted.inc();
                    owned.owned_spans.inc();
                }
                receiver.signal(Signal::Metrics).refused.add(3);
                exporter.signal(Signal::Traces).sent.add(n - 1);
                exporter.signal(Signal::Traces).queue_size.set(2);
                exporter.signal(Signal::Traces).queue_capacity.set(1000);
                drops.add(Signal::Traces, DropReason::TraceTooLarge, 1);
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }

    let response = get(server.local_addr(), "/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = &response.body;
    for line in [
        "# HELP otelcol_receiver_accepted_spans Number of spans successfully pushed into the pipeline.",
        "# TYPE otelcol_receiver_accepted_spans counter",
        "otelcol_receiver_accepted_spans{receiver=\"otlp\",transport=\"grpc\",shard=\"0\"} 10",
        "otelcol_receiver_accepted_spans{receiver=\"otlp\",transport=\"grpc\",shard=\"1\"} 20",
        "otelcol_receiver_refused_metric_points{receiver=\"otlp\",transport=\"grpc\",shard=\"1\"} 3",
        "otelcol_exporter_sent_spans{exporter=\"otlp/central\",shard=\"0\"} 9",
        "otelcol_exporter_sent_spans{exporter=\"otlp/central\",shard=\"1\"} 19",
        "otelcol_exporter_queue_size{exporter=\"otlp/central\",data_type=\"traces\",shard=\"1\"} 2",
        "otelcol_exporter_queue_capacity{exporter=\"otlp/central\",data_type=\"traces\",shard=\"0\"} 1000",
        "tailgate_dropped_spans{reason=\"trace_too_large\",shard=\"0\"} 1",
        "tailgate_dropped_spans{reason=\"export_failed\",shard=\"0\"} 0",
        "tailgate_shard_owned_spans{shard=\"0\"} 10",
        "tailgate_shard_owned_spans{shard=\"1\"} 20",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing line {line:?} in\n{body}"
        );
    }
    // Nothing summed across shards, and the Collector's bare counter names by default.
    assert!(!body.contains("shard=\"all\""));
    assert!(!body.contains("_total"));
    server.shutdown().unwrap();
}

#[test]
fn healthz_is_ok_once_started() {
    let server = start(RegistryBuilder::new(), Arc::new(Health::new(1)));
    let response = get(server.local_addr(), "/healthz");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "ok\n");
}

#[test]
fn readyz_turns_ready_when_every_shard_is_up_and_unready_when_draining() {
    let health = Arc::new(Health::new(2));
    let server = start(RegistryBuilder::new(), Arc::clone(&health));
    let addr = server.local_addr();

    let response = get(addr, "/readyz");
    assert_eq!(response.status, 503);
    assert_eq!(response.body, "not ready: 0 of 2 shards up\n");

    let h = Arc::clone(&health);
    thread::spawn(move || h.shard_up()).join().unwrap();
    let response = get(addr, "/readyz");
    assert_eq!(response.status, 503);
    assert_eq!(response.body, "not ready: 1 of 2 shards up\n");

    let h = Arc::clone(&health);
    thread::spawn(move || h.shard_up()).join().unwrap();
    let response = get(addr, "/readyz");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "ready\n");

    health.start_draining();
    let response = get(addr, "/readyz");
    assert_eq!(response.status, 503);
    assert_eq!(response.body, "not ready: draining\n");
}

#[test]
fn unknown_paths_are_404_and_other_methods_405() {
    let server = start(RegistryBuilder::new(), Arc::new(Health::new(0)));
    let addr = server.local_addr();
    assert_eq!(get(addr, "/").status, 404);
    assert_eq!(get(addr, "/metricsx").status, 404);

    let response = exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: admin\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET"));
    assert_eq!(
        exchange(addr, b"HEAD /healthz HTTP/1.1\r\nHost: admin\r\n\r\n").status,
        405
    );
    // Query strings do not change the route.
    assert_eq!(get(addr, "/healthz?verbose=1").status, 200);
}

#[test]
fn malformed_and_oversized_requests_are_refused_and_the_server_goes_on() {
    let server = start(RegistryBuilder::new(), Arc::new(Health::new(0)));
    let addr = server.local_addr();

    assert_eq!(
        exchange(addr, b"GET /healthz\x01 HTTP/1.1\r\n\r\n").status,
        400
    );

    let mut oversized = b"GET /metrics HTTP/1.1\r\nHost: admin\r\nX-Padding: ".to_vec();
    oversized.resize(2 * ADMIN_HEADER_BYTES_MAX, b'a');
    oversized.extend_from_slice(b"\r\n\r\n");
    assert_eq!(exchange(addr, &oversized).status, 431);

    let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(exchange(addr, &many).status, 431);

    // The server is still serving.
    assert_eq!(get(addr, "/healthz").status, 200);
}

#[test]
fn a_request_head_in_pieces_is_assembled() {
    let server = start(RegistryBuilder::new(), Arc::new(Health::new(0)));
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    for piece in ["GET /hea", "lthz HTTP/1.1\r\nHo", "st: a\r\n", "\r\n"] {
        stream.write_all(piece.as_bytes()).unwrap();
        stream.flush().unwrap();
        thread::sleep(Duration::from_millis(20));
    }
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert!(raw.ends_with("\r\n\r\nok\n"), "{raw}");
}

#[test]
fn shutdown_is_prompt_even_with_a_client_holding_a_connection() {
    let server = start(RegistryBuilder::new(), Arc::new(Health::new(0)));
    let addr = server.local_addr();
    // A client that connects and sends nothing keeps its connection thread in its read.
    let _idle = TcpStream::connect(addr).unwrap();
    thread::sleep(Duration::from_millis(50));

    let began = Instant::now();
    server.shutdown().unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        began.elapsed()
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener is closed after shutdown"
    );
}

/// Whether `stream` has been answered or closed by the server (without waiting for it).
fn answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let answered = match (&*stream).read(&mut byte) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    answered
}

#[test]
fn a_client_that_sends_nothing_or_half_a_request_does_not_hold_up_healthz() {
    let server = start(RegistryBuilder::new(), Arc::new(Health::new(0)));
    let addr = server.local_addr();
    let silent = TcpStream::connect(addr).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: adm")
        .unwrap();

    let response = get(addr, "/healthz");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "ok\n");
    // Served one at a time, /healthz could only have been answered after both earlier
    // connections had been (408 once their time to send a request ran out).
    assert!(!answered(&silent), "the silent connection is still waiting");
    assert!(!answered(&half), "the half request is still waiting");
    server.shutdown().unwrap();
}

#[test]
fn connections_over_the_bound_are_refused_with_503_and_the_rest_served() {
    let server = start(RegistryBuilder::new(), Arc::new(Health::new(0)));
    let addr = server.local_addr();
    let held: Vec<TcpStream> = (0..ADMIN_CONNECTIONS_MAX)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // The accepting thread takes the held connections in order; once all are being served,
    // the next is refused. A probe that finds a free slot, or whose answer a reset destroyed
    // (the refusal closes without waiting for the request), is tried again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let busy = loop {
        let mut probe = TcpStream::connect(addr).unwrap();
        probe
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = probe.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n");
        let mut raw = Vec::new();
        if probe.read_to_end(&mut raw).is_ok() && raw.starts_with(b"HTTP/1.1 503 ") {
            break String::from_utf8(raw).unwrap();
        }
        assert!(Instant::now() < deadline, "never refused");
        thread::sleep(Duration::from_millis(10));
    };
    assert!(busy.contains("\r\nRetry-After: 1\r\n"), "{busy}");
    let (head, body) = busy.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
        "{busy}"
    );
    assert!(held.iter().all(|s| !answered(s)), "the held ones wait on");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(addr, "/healthz").status != 200 {
        assert!(
            Instant::now() < deadline,
            "slots are freed once clients leave"
        );
        thread::sleep(Duration::from_millis(10));
    }
    server.shutdown().unwrap();
}
