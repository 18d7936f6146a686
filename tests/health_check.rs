//! Collector configuration a user meets on day one, through the binary: the `health_check`
//! extension (`extensions: health_check` and `service.extensions: [health_check]`) serves the
//! Collector's health answer on its own address, on its path, while the gateway is ready; and
//! the Collector's current `service.telemetry.metrics.readers` layout places `/metrics` (and its
//! `without_type_suffix` chooses `_total`); and
//! `pprof` and `zpages` load (with a warning) without being served.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::gateway::*;
use tailgate_wire::Signal;

/// [`Gateway::standard_config`] with `extensions` added and `service.extensions` enabling
/// `enabled`.
fn start_with(extensions: &str, enabled: &str) -> Gateway {
    let (_sink, upstream, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 1, "", "");
    let config = config.replace(
        "service:\n",
        &format!("extensions:\n{extensions}service:\n  extensions: [{enabled}]\n"),
    );
    Gateway::start_with_config(&config, grpc, http, admin)
}

#[test]
fn health_check_answers_as_the_collector_on_its_own_address() {
    let port = loopback(free_port());
    let gateway = start_with(
        &format!("  health_check:\n    endpoint: {port}\n"),
        "health_check",
    );
    let (status, _, body) = http_request(port, "GET", "/", &[], b"").expect("an answer");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("{\"status\":\"Server available\",\"upSince\":\"")
            && body.contains("Z\",\"uptime\":\"")
            && body.ends_with("s\"}"),
        "{body}"
    );
    // Path `/` answers every path, as Go's mux reads it, and any method.
    let (status, _, _) = http_request(port, "HEAD", "/anything?x=1", &[], b"").unwrap();
    assert_eq!(status, 200);
    // The admin endpoint is still where it was.
    assert_eq!(http_get(gateway.admin, "/readyz").unwrap().0, 200);
    let code = gateway.stop();
    assert!(code.success(), "{code}");
    assert!(
        TcpStream::connect(port).is_err(),
        "the health check stopped with the gateway"
    );
}

#[test]
fn a_path_and_response_bodies_are_served_as_configured() {
    let port = loopback(free_port());
    let gateway = start_with(
        &format!(
            "  health_check/custom:
    endpoint: {port}
    path: /health/status
    response_body:
      healthy: I'm OK
      unhealthy: I'm not well
    check_collector_pipeline:
      enabled: false
"
        ),
        "health_check/custom",
    );
    let (status, _, body) = http_request(port, "GET", "/health/status", &[], b"").unwrap();
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (200, "I'm OK")
    );
    let (status, _, body) = http_request(port, "GET", "/health", &[], b"").unwrap();
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    gateway.stop();
}

#[test]
fn a_health_check_not_enabled_in_service_extensions_is_not_served() {
    let port: SocketAddr = loopback(free_port());
    let gateway = start_with(&format!("  health_check:\n    endpoint: {port}\n"), "");
    assert!(TcpStream::connect(port).is_err());
    gateway.stop();
}

#[test]
fn the_readers_layout_serves_metrics_where_it_says() {
    let (_sink, upstream, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 1, "", "");
    let config = config.replace(
        &format!("      address: {admin}\n"),
        &format!(
            "      readers:
        - pull:
            exporter:
              prometheus:
                host: {}
                port: {}
                without_type_suffix: false
",
            admin.ip(),
            admin.port()
        ),
    );
    assert!(config.contains("readers:"));
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let (status, page) = http_get(admin, "/metrics").unwrap();
    assert_eq!(status, 200);
    // `without_type_suffix: false`: counters carry `_total`, as that Collector reader serves.
    assert!(
        page.contains("\notelcol_receiver_accepted_spans_total{"),
        "{page}"
    );
    // The Collector's process families, read at the scrape.
    assert!(page.contains("\notelcol_process_uptime_total "), "{page}");
    assert!(
        page.contains("\notelcol_process_cpu_seconds_total "),
        "{page}"
    );
    let rss: u64 = page
        .lines()
        .find_map(|l| l.strip_prefix("otelcol_process_memory_rss "))
        .expect("otelcol_process_memory_rss")
        .parse()
        .unwrap();
    assert!(rss > 1 << 20);
    gateway.stop();
}

#[test]
fn pprof_and_zpages_load_with_a_warning_and_are_not_served() {
    let gateway = start_with(
        "  pprof:\n    endpoint: localhost:1777\n  zpages:\n    endpoint: localhost:55679\n",
        "pprof, zpages",
    );
    assert_eq!(http_get(gateway.admin, "/readyz").unwrap().0, 200);
    let log = gateway.stderr();
    assert!(
        log.contains("extension pprof: tailgate accepts `pprof`")
            && log.contains("extension zpages: tailgate accepts `zpages`"),
        "{log}"
    );
    gateway.stop();
}

#[test]
fn health_check_serves_https_with_its_tls_block() {
    let dir = std::env::temp_dir().join(format!("tailgate-health-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files =
        tailgate_bench::certs::write_set(&dir, &["localhost", "127.0.0.1"]).expect("certificates");
    let port = loopback(free_port());
    // mTLS: the probe must present a certificate from the client CA.
    let gateway = start_with(
        &format!(
            "  health_check:\n    endpoint: {port}\n    path: /health\n    tls:\n      \
             cert_file: {}\n      key_file: {}\n      client_ca_file: {}\n",
            files.server_cert.display(),
            files.server_key.display(),
            files.ca.display()
        ),
        "health_check",
    );
    // Python's urllib, verifying the certificate against the test's CA and presenting the
    // client's: a real HTTPS client.
    let script = format!(
        "import ssl, urllib.request, urllib.error\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         ctx.load_cert_chain({cert:?}, {key:?})\n\
         r = urllib.request.urlopen('https://127.0.0.1:{p}/health', context=ctx, timeout=10)\n\
         print(r.status, r.read().decode())\n\
         try:\n\
         \x20   urllib.request.urlopen('https://127.0.0.1:{p}/other', context=ctx, timeout=10)\n\
         except urllib.error.HTTPError as e:\n\
         \x20   print(e.code)\n\
         try:\n\
         \x20   urllib.request.urlopen('https://127.0.0.1:{p}/health', context=ssl.create_default_context(), timeout=10)\n\
         except urllib.error.URLError as e:\n\
         \x20   print('unverified:', 'CERTIFICATE_VERIFY_FAILED' in str(e.reason))\n\
         try:\n\
         \x20   urllib.request.urlopen('https://127.0.0.1:{p}/health', context=ssl.create_default_context(cafile={ca:?}), timeout=10)\n\
         \x20   print('no client certificate: answered')\n\
         except (urllib.error.URLError, ConnectionError, ssl.SSLError) as e:\n\
         \x20   print('no client certificate: refused')\n",
        ca = files.ca.display().to_string(),
        cert = files.client_cert.display().to_string(),
        key = files.client_key.display().to_string(),
        p = port.port(),
    );
    let run = || {
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("python3");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let stdout = run();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("200 {\"status\":\"Server available\""),
        "{stdout}"
    );
    assert_eq!(
        lines[1..],
        ["404", "unverified: True", "no client certificate: refused"],
        "{stdout}"
    );

    // Plaintext on the TLS port gets no answer, and the server goes on.
    assert!(http_request(port, "GET", "/health", &[], b"").is_err());
    // A client that trickles a handshake, one byte every 50 ms (never a pause long enough for a
    // socket timeout), is cut off at the request head's 5 s, not when its 16 KiB record ends.
    let mut slow = TcpStream::connect(port).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    slow.write_all(&[0x16, 0x03, 0x01, 0x40, 0x00]).unwrap();
    let started = Instant::now();
    let mut scratch = [0u8; 512];
    let closed_after = loop {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "a trickling client held the connection for 15 s"
        );
        if slow.write_all(&[0x01]).is_err() {
            break started.elapsed();
        }
        match slow.read(&mut scratch) {
            Ok(0) => break started.elapsed(),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break started.elapsed(),
        }
    };
    assert!(closed_after >= Duration::from_secs(4), "{closed_after:?}");
    assert!(run().starts_with("200 "));
    assert!(gateway.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn periodic_readers_push_the_self_metrics_over_grpc_and_http() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
    use prost::Message;

    let (grpc_sink, grpc_at, _) = start_sink();
    let (http_sink, _, http_at) = start_sink();
    let (_data_sink, upstream, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 1, "", "");
    // The Collector's declarative layout, as its docs and the cookbook write it: one reader per
    // protocol (the HTTP endpoint without a path posts to /v1/metrics) beside the pull reader
    // that places /metrics.
    let readers = format!(
        "  telemetry:
    resource:
      service.name: gateway-a
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: {host}
                port: {port}
        - periodic:
            interval: 300
            exporter:
              otlp:
                protocol: grpc
                endpoint: http://{grpc_at}
        - periodic:
            interval: 600000
            exporter:
              otlp:
                protocol: http/protobuf
                endpoint: http://{http_at}
                compression: gzip
        - periodic:
            interval: 200
            exporter:
              otlp:
                protocol: grpc
                endpoint: http://{nowhere}
",
        host = admin.ip(),
        port = admin.port(),
        nowhere = loopback(free_port()),
    );
    let telemetry = format!("  telemetry:\n    metrics:\n      address: {admin}\n");
    assert!(config.contains(&telemetry));
    let config = config.replace(&telemetry, &readers);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    gateway.post_one_span(9, 1);
    // The gRPC reader pushes every 300 ms; the HTTP one's 10 minutes do not come in this test.
    assert!(
        wait_for(Duration::from_secs(20), || grpc_sink.requests_received()
            >= 3),
        "{}",
        gateway.stderr()
    );
    assert_eq!(http_sink.requests_received(), 0);
    // Counted per reader; the one with nothing listening fails, logged once.
    let pushes = |reader: &str, outcome: &str| {
        gateway.metric(
            "tailgate_telemetry_pushes",
            &[("reader", reader), ("outcome", outcome)],
        )
    };
    assert!(pushes("0", "sent") >= 3.0);
    assert_eq!(pushes("1", "sent"), 0.0);
    assert!(
        wait_for(Duration::from_secs(20), || pushes("2", "failed") >= 2.0),
        "{}",
        gateway.stderr()
    );
    assert_eq!(pushes("2", "sent"), 0.0);
    assert_eq!(
        gateway
            .stderr()
            .matches("pushing self-metrics failed")
            .count(),
        1,
        "{}",
        gateway.stderr()
    );
    // Stopping pushes once more: the HTTP reader's one request is that last push, and it holds
    // the final counts.
    assert!(gateway.stop().success());
    assert_eq!(http_sink.requests_received(), 1);
    for sink in [grpc_sink, http_sink] {
        let result = sink.stop().unwrap();
        let last = result
            .requests
            .iter()
            .rev()
            .find(|(signal, _)| *signal == Signal::Metrics)
            .expect("a metrics request");
        let request = ExportMetricsServiceRequest::decode(&last.1[..]).unwrap();
        let resource = request.resource_metrics[0].resource.as_ref().unwrap();
        let service = resource
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.clone());
        assert_eq!(
            service,
            Some(any_value::Value::StringValue("gateway-a".into()))
        );
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
        let accepted = metrics
            .iter()
            .find(|m| m.name == "otelcol_receiver_accepted_spans")
            .expect("otelcol_receiver_accepted_spans");
        let Some(metric::Data::Sum(sum)) = &accepted.data else {
            panic!("{accepted:?}");
        };
        assert!(sum.is_monotonic);
        let total: i64 = sum
            .data_points
            .iter()
            .map(|p| match p.value {
                Some(number_data_point::Value::AsInt(n)) => n,
                _ => 0,
            })
            .sum();
        assert_eq!(total, 1);
        assert!(metrics
            .iter()
            .any(|m| m.name == "otelcol_process_memory_rss"));
    }
}

/// A one-shard gateway's configuration with `processors` (YAML list items, indented for
/// `service.telemetry.logs.processors`) as its log processors, and its data sink (to keep
/// running while the gateway does); with its receivers' and admin addresses.
fn with_log_processors(
    processors: &str,
) -> (
    tailgate_bench::sink::Sink,
    String,
    (SocketAddr, SocketAddr, SocketAddr),
) {
    let (data_sink, upstream, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 1, "", "");
    let telemetry = format!("  telemetry:\n    metrics:\n      address: {admin}\n");
    assert!(config.contains(&telemetry));
    let logs = format!("{telemetry}    logs:\n      processors:\n{processors}");
    (
        data_sink,
        config.replace(&telemetry, &logs),
        (grpc, http, admin),
    )
}

/// Log processors push the gateway's own log records over OTLP: a batch processor over
/// OTLP/HTTP and a simple one over OTLP/gRPC, each into a peer that records what it got; the
/// start's lines arrive as records of the `tailgate` service, counted sent.
#[test]
fn log_processors_push_the_log_over_http_and_grpc() {
    use common::header_sink::HeaderSink;
    let (one, two, three) = (
        HeaderSink::start(),
        HeaderSink::start(),
        HeaderSink::start(),
    );
    let (_data_sink, config, (grpc, http, admin)) = with_log_processors(&format!(
        "        - batch:
            schedule_delay: 200
            exporter:
              otlp:
                protocol: http/protobuf
                endpoint: http://{http_at}
        - simple:
            exporter:
              otlp:
                protocol: grpc
                endpoint: http://{grpc_at}
        - batch:
            schedule_delay: 600000
            max_export_batch_size: 2048
            exporter:
              otlp:
                protocol: http/protobuf
                endpoint: http://{last_at}
",
        http_at = one.http,
        grpc_at = two.grpc,
        last_at = three.http,
    ));
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    // The start logs a few lines at info: each processor pushes them.
    for sink in [&one, &two] {
        assert!(
            sink.wait_for_items(2, Duration::from_secs(20)),
            "{}",
            gateway.stderr()
        );
        for request in sink.requests() {
            assert_eq!(request.signal, "logs", "{request:?}");
            assert_eq!(request.services, ["tailgate"], "{request:?}");
        }
    }
    let (http_requests, grpc_requests) = (one.requests(), two.requests());
    assert!(http_requests.iter().all(|r| r.transport == "http"));
    assert!(grpc_requests.iter().all(|r| r.transport == "grpc"));
    assert!(
        grpc_requests.iter().all(|r| r.items == 1),
        "a simple processor sends each record alone"
    );
    let records = |processor: &str, outcome: &str| {
        gateway.metric(
            "tailgate_telemetry_log_records",
            &[("processor", processor), ("outcome", outcome)],
        )
    };
    assert!(
        wait_for(Duration::from_secs(20), || records("0", "sent") >= 2.0),
        "{}",
        gateway.metrics()
    );
    assert_eq!(records("0", "failed"), 0.0);
    // The third waits ten minutes a batch: what it holds goes out at shutdown.
    assert!(three.requests().is_empty());
    assert!(gateway.stop().success());
    assert!(
        three.wait_for_items(2, Duration::from_secs(10)),
        "flushed at shutdown"
    );
}

/// A log processor whose endpoint takes connections and never answers does not hold the
/// process at shutdown: an export under way is cut off at the shutdown's bound (5 s), not left
/// to its own ten-minute timeout.
#[test]
fn a_log_processor_with_a_silent_endpoint_does_not_hold_the_shutdown() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let silent_at = silent.local_addr().expect("its address");
    // Accepts, and keeps every connection open without reading or answering.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let (_data_sink, config, (grpc, http, admin)) = with_log_processors(&format!(
        "        - simple:
            exporter:
              otlp:
                protocol: http/protobuf
                endpoint: http://{silent_at}
                timeout: 600000
"
    ));
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    // The start's first record is on its way, and waits.
    assert!(
        wait_for(Duration::from_secs(20), || gateway.metric(
            "tailgate_telemetry_log_records",
            &[("processor", "0"), ("outcome", "sent")]
        ) == 0.0
            && gateway.stderr().contains("tuning:")),
        "{}",
        gateway.stderr()
    );
    let asked = Instant::now();
    assert!(gateway.stop().success());
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(30), "the shutdown took {took:?}");
}

/// A log processor with the console exporter writes each record as a JSON line on standard
/// output (the Collector's own testdata configures one).
#[test]
fn a_console_log_processor_writes_json_lines_on_standard_output() {
    let (_data_sink, config, (grpc, http, admin)) = with_log_processors(
        "        - batch:
            schedule_delay: 100
            exporter:
              console: {}
",
    );
    let out = std::env::temp_dir().join(format!("tailgate-console-{}.out", std::process::id()));
    let file = std::fs::File::create(&out).expect("stdout file");
    let gateway = Gateway::start_customised(&config, grpc, http, admin, |command| {
        command.stdout(file);
    });
    let lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(20), || lines()
            .iter()
            .any(|l| l["body"]
                .as_str()
                .is_some_and(|b| b.starts_with("tuning:")))),
        "{}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    let line = lines().into_iter().next().expect("a record");
    assert_eq!(line["severity_text"], "INFO");
    assert_eq!(line["severity_number"], 9);
    assert_eq!(line["resource"]["service.name"], "tailgate");
    assert_eq!(line["scope"], "tailgate");
    assert!(gateway.stop().success());
    let _ = std::fs::remove_file(&out);
}
