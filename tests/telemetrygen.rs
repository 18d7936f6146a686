//! telemetrygen, the OpenTelemetry Collector's own load generator (contrib's `cmd/telemetrygen`,
//! built by `bench-rig/peers/build.sh` into target/peers), drives the real gateway over OTLP/gRPC
//! and OTLP/HTTP: a client that is not ours must see every span it sent accepted and forwarded
//! to the sink once. Here rather than in bench-rig/tests because it needs the gateway binary,
//! which only this package's tests can name (`CARGO_BIN_EXE_tailgate`). Skipped, with a message,
//! only where `go` is not on PATH.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::gateway::{start_sink, wait_for, Gateway};
use tailgate_bench::peers;

/// telemetrygen's traces: a parent and one child span each (`--child-spans` left at 1).
const SPANS_PER_TRACE: u64 = 2;

/// Runs telemetrygen to the end: `workers` workers of `traces` traces each, 2,000 spans a second
/// each (slow enough that its SDK's 2048-span queue never fills and drops a span).
fn telemetrygen(binary: &Path, endpoint: &[String], workers: u64, traces: u64) {
    let mut child = Command::new(binary)
        .arg("traces")
        .arg("--otlp-insecure")
        .args(endpoint)
        .args(["--workers", &workers.to_string()])
        .args(["--traces", &traces.to_string()])
        .args(["--rate", "2000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start telemetrygen");
    let ended = wait_for(Duration::from_secs(60), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !ended {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("telemetrygen's output");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(ended, "telemetrygen did not end in 60 s:\n{log}");
    assert!(output.status.success(), "telemetrygen failed:\n{log}");
    // Each worker logs how many traces it generated.
    let generated: u64 = log
        .lines()
        .filter(|line| line.contains("traces generated"))
        .filter_map(|line| {
            let count = line.split("\"traces\": ").nth(1)?.split('}').next()?;
            count.parse::<u64>().ok()
        })
        .sum();
    assert_eq!(generated, workers * traces, "{log}");
}

#[test]
fn telemetrygen_over_grpc_and_http_reaches_the_sink_through_the_gateway_whole() {
    if !peers::go_on_path() {
        println!(
            "skipped: go is not on PATH, so bench-rig/peers/build.sh cannot build telemetrygen"
        );
        return;
    }
    let binary = peers::build()
        .unwrap_or_else(|err| panic!("{err}"))
        .join("telemetrygen");
    let (sink, upstream, _) = start_sink();
    let gateway = Gateway::start(upstream, 1, "");
    let (workers, traces) = (2, 500);
    let per_run = workers * traces * SPANS_PER_TRACE;

    let grpc = vec!["--otlp-endpoint".to_string(), gateway.grpc.to_string()];
    let http = vec![
        "--otlp-endpoint".to_string(),
        gateway.http.to_string(),
        "--otlp-http".to_string(),
    ];
    for (run, (transport, endpoint)) in [("grpc", grpc), ("http", http)].into_iter().enumerate() {
        telemetrygen(&binary, &endpoint, workers, traces);
        let expected = per_run * (run as u64 + 1);
        let accepted = |g: &Gateway| g.metric("otelcol_receiver_accepted_spans", &[]) as u64;
        let through = wait_for(Duration::from_secs(30), || {
            accepted(&gateway) == expected && sink.spans_received() == expected
        });
        assert!(
            through,
            "after telemetrygen over {transport}: {} accepted, {} at the sink, {expected} sent",
            accepted(&gateway),
            sink.spans_received()
        );
        let by_transport = gateway.metric(
            "otelcol_receiver_accepted_spans",
            &[("transport", transport)],
        );
        assert_eq!(by_transport as u64, per_run, "{transport}");
    }
    assert_eq!(gateway.metric("otelcol_receiver_refused_spans", &[]), 0.0);
    assert!(gateway.stop().success());
    let report = sink.stop().expect("stop the sink").report;
    assert_eq!(report["spans_received"], 2 * per_run, "{report}");
    assert_eq!(report["duplicates"], 0, "{report}");
    assert_eq!(report["traces_received"], 2 * workers * traces, "{report}");
    assert_eq!(report["spans_bad_trace_id"], 0, "{report}");
}
