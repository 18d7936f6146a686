//! The peers as real systems: `bench-rig/peers/build.sh` builds the OpenTelemetry Collector from
//! its Go modules, and the built binary, between the rig's load and the rig's sink, must forward
//! every span it accepted, once, with every trace whole. The first build of a clean machine
//! fetches and compiles the Collector (about 4.5 minutes on the 2-core VM); later runs find the
//! binary up to date. Skipped, with a message, only where `go` is not on PATH.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tailgate_bench::load::{self, LoadArgs};
use tailgate_bench::peers;
use tailgate_bench::sink::{Sink, SinkArgs, TRACKED_SPANS_DEFAULT};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "tailgate-bench-peers-{}-{name}",
        std::process::id()
    ))
}

/// Waits until `condition` holds, checking every 20 ms for at most `limit`; whether it held.
fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// The status code of `GET /` at `addr`, if anything answered.
fn http_status(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

#[test]
fn the_collector_built_from_its_modules_forwards_every_span_of_the_load() {
    if !peers::go_on_path() {
        println!(
            "skipped: go is not on PATH, so bench-rig/peers/build.sh cannot build the Collector"
        );
        return;
    }
    let peers = peers::build().unwrap_or_else(|err| panic!("{err}"));
    let (sink_grpc, receiver, health) = (free_addr(), free_addr(), free_addr());
    let expect = temp("collector.expect");
    let sink = Sink::start_expecting(
        SinkArgs {
            listen: sink_grpc,
            http_listen: None,
            report: PathBuf::from("/dev/null"),
            dump: None,
            cpu: 0,
            cpus: Vec::new(),
            track_max: TRACKED_SPANS_DEFAULT,
        },
        false,
        expect.clone(),
    )
    .expect("start the sink");

    // The pass-through of the peer-otelcol scenario, with the health_check extension to wait on.
    let config = temp("collector.yaml");
    std::fs::write(
        &config,
        format!(
            "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {receiver}
processors:
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
  otlp:
    endpoint: {sink_grpc}
    tls:
      insecure: true
    compression: none
extensions:
  health_check:
    endpoint: {health}
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
  telemetry:
    metrics:
      level: none
"
        ),
    )
    .unwrap();
    let log = temp("collector.log");
    let mut collector =
        peers::Collector::start(&peers, &config, log).expect("start target/peers/otelcol");
    let ready = wait_for(Duration::from_secs(30), || {
        collector.running() && http_status(health) == Some(200)
    });
    assert!(
        ready,
        "the Collector was not healthy in 30 s:\n{}",
        collector.log()
    );

    let report = temp("collector-load.json");
    load::run(LoadArgs {
        protocol: "grpc".into(),
        connections: 2,
        rate: "20000".into(),
        duration: 1.0,
        spans_per_request: 100,
        compression: None,
        corpus: "semantic".into(),
        seed: 13,
        error_rate: 0.03,
        trace_spread_ms: 50,
        oracle_policy: "always".into(),
        expect_out: Some(expect.clone()),
        quiet: true,
        ..LoadArgs::new(&format!("http://{receiver}"), &report)
    })
    .expect("the load runs");
    let load: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("load report")).unwrap();
    let count = |v: &serde_json::Value, key: &str| {
        v[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} missing in {v}"))
    };
    let accepted = count(&load, "spans_accepted");
    assert!(accepted > 5_000, "{load}");
    assert_eq!(count(&load, "spans_refused"), 0, "{load}");

    // The batch processor holds spans for up to 200 ms: wait for all of them, not for a time.
    let arrived = wait_for(Duration::from_secs(30), || {
        sink.spans_received() >= accepted
    });
    assert!(
        arrived,
        "{} of {accepted} spans at the sink after 30 s:\n{}",
        sink.spans_received(),
        collector.log()
    );
    drop(collector);
    let sink = sink.stop().expect("stop the sink").report;
    let _ = std::fs::remove_file(&report);
    let _ = std::fs::remove_file(&expect);
    let _ = std::fs::remove_file(&config);

    assert_eq!(count(&sink, "spans_received"), accepted, "{sink}");
    assert_eq!(count(&sink, "duplicates"), 0, "{sink}");
    assert_eq!(count(&sink, "traces_received"), count(&load, "traces_sent"));
    assert_eq!(
        count(&sink, "kept_traces_complete"),
        count(&load, "traces_sent"),
        "{sink}"
    );
    assert_eq!(sink["verified"], true, "{sink}");
}
