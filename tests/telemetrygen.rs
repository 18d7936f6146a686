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

use common::gateway::{free_port, loopback, start_sink, wait_for, Gateway};
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

/// snappy with the Collector on both sides of the gateway: telemetrygen sends to a Collector
/// whose `otlp` and `otlphttp` exporters compress with `compression: snappy` (grpc-go's snappy
/// codec, and confighttp's snappy) into the gateway's receivers; the gateway's own `otlp` and
/// `otlphttp` exporters, with `compression: snappy`, send everything to a second receiver of
/// the same Collector, which passes it to the sink uncompressed. Every span must arrive at the
/// sink once through each of the four snappy links: four times in all, nothing refused or
/// failed on the way.
#[test]
fn snappy_from_and_to_the_collector_over_grpc_and_http() {
    through_the_collector_both_ways(&[Link::Grpc("snappy"), Link::Http("snappy")]);
}

/// zlib, deflate and lz4, which the Collector's HTTP client (confighttp) sends and its HTTP
/// server reads, the same way: the Collector sends to the gateway's HTTP receiver once in each,
/// and the gateway exports everything in each to the Collector's HTTP receiver, so every span
/// reaches the sink nine times.
#[test]
fn zlib_deflate_and_lz4_from_and_to_the_collector_over_http() {
    through_the_collector_both_ways(&[
        Link::Http("zlib"),
        Link::Http("deflate"),
        Link::Http("lz4"),
    ]);
}

/// One compressed link between the Collector and the gateway: an `otlp` (gRPC) or `otlphttp`
/// exporter with this `compression`, on both sides.
#[derive(Clone, Copy)]
enum Link {
    Grpc(&'static str),
    Http(&'static str),
}

impl Link {
    /// The exporter's name, e.g. `otlphttp/lz4`, and its configuration (indented as an
    /// exporter), sending to the gRPC endpoint `grpc` or the HTTP one `http`.
    fn exporter(self, grpc: std::net::SocketAddr, http: std::net::SocketAddr) -> (String, String) {
        match self {
            Link::Grpc(compression) => (
                format!("otlp/{compression}"),
                format!(
                    "  otlp/{compression}:\n    endpoint: {grpc}\n    tls:\n      insecure: true\n    \
                     compression: {compression}\n"
                ),
            ),
            Link::Http(compression) => (
                format!("otlphttp/{compression}"),
                format!(
                    "  otlphttp/{compression}:\n    endpoint: http://{http}\n    compression: \
                     {compression}\n"
                ),
            ),
        }
    }
}

/// telemetrygen sends to a Collector that exports to the gateway's receivers over each of
/// `links`; the gateway exports everything over each of `links` to a second receiver of the
/// same Collector, which passes it to the sink uncompressed. Every span must reach the sink once
/// through each pair of links (`links²` times in all), nothing refused or failed on the way.
fn through_the_collector_both_ways(links: &[Link]) {
    if !peers::go_on_path() {
        println!(
            "skipped: go is not on PATH, so bench-rig/peers/build.sh cannot build the Collector"
        );
        return;
    }
    let built = peers::build().unwrap_or_else(|err| panic!("{err}"));
    let (sink, upstream, _) = start_sink();
    let (collector_in, back_grpc, back_http) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let (names, exporters): (Vec<String>, Vec<String>) = links
        .iter()
        .map(|link| link.exporter(back_grpc, back_http))
        .unzip();
    let gateway = Gateway::start_with_config(
        &format!(
            "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
processors:
  batch:
    timeout: 50ms
exporters:
{}service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [{}]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0]
",
            exporters.concat(),
            names.join(", ")
        ),
        grpc,
        http,
        admin,
    );
    let (collector_names, collector_exporters): (Vec<String>, Vec<String>) =
        links.iter().map(|link| link.exporter(grpc, http)).unzip();
    let config = std::env::temp_dir().join(format!(
        "tailgate-collector-links-{}-{}.yaml",
        std::process::id(),
        collector_in.port()
    ));
    std::fs::write(
        &config,
        format!(
            "receivers:
  otlp/in:
    protocols:
      grpc:
        endpoint: {collector_in}
  otlp/back:
    protocols:
      grpc:
        endpoint: {back_grpc}
      http:
        endpoint: {back_http}
exporters:
{}  otlp/sink:
    endpoint: {upstream}
    tls:
      insecure: true
    compression: none
service:
  pipelines:
    traces/in:
      receivers: [otlp/in]
      exporters: [{}]
    traces/out:
      receivers: [otlp/back]
      exporters: [otlp/sink]
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
",
            collector_exporters.concat(),
            collector_names.join(", ")
        ),
    )
    .expect("write the Collector's configuration");
    let log = config.with_extension("log");
    let mut collector = peers::Collector::start(&built, &config, log).expect("start the Collector");
    let listening = wait_for(Duration::from_secs(30), || {
        std::net::TcpStream::connect(collector_in).is_ok()
            && std::net::TcpStream::connect(back_grpc).is_ok()
            && std::net::TcpStream::connect(back_http).is_ok()
    });
    assert!(
        listening,
        "the Collector did not listen:\n{}",
        collector.log()
    );

    let (workers, traces) = (2, 300);
    let sent = workers * traces * SPANS_PER_TRACE;
    let endpoint = vec!["--otlp-endpoint".to_string(), collector_in.to_string()];
    telemetrygen(&built.join("telemetrygen"), &endpoint, workers, traces);

    let n = links.len() as u64;
    let (grpc_links, http_links) = links.iter().fold((0, 0), |(g, h), link| match link {
        Link::Grpc(_) => (g + 1, h),
        Link::Http(_) => (g, h + 1),
    });
    let accepted = |transport: &str| {
        gateway.metric(
            "otelcol_receiver_accepted_spans",
            &[("transport", transport)],
        ) as u64
    };
    let sent_by = |exporter: &str| {
        gateway.metric("otelcol_exporter_sent_spans", &[("exporter", exporter)]) as u64
    };
    let through = wait_for(Duration::from_secs(60), || {
        accepted("grpc") == grpc_links * sent
            && accepted("http") == http_links * sent
            && names.iter().all(|name| sent_by(name) == n * sent)
            && sink.spans_received() == n * n * sent
    });
    let exported: Vec<String> = names
        .iter()
        .map(|name| format!("{name} {}", sent_by(name)))
        .collect();
    assert!(
        through,
        "{sent} sent over {n} links: accepted {} over gRPC and {} over HTTP; exported {}; {} at \
         the sink (want {})\ngateway:\n{}\nCollector:\n{}",
        accepted("grpc"),
        accepted("http"),
        exported.join(", "),
        sink.spans_received(),
        n * n * sent,
        gateway.stderr(),
        collector.log()
    );
    assert_eq!(gateway.metric("otelcol_receiver_refused_spans", &[]), 0.0);
    assert_eq!(
        gateway.metric("otelcol_exporter_send_failed_spans", &[]),
        0.0
    );
    assert!(collector.running(), "{}", collector.log());
    drop(collector);
    assert!(gateway.stop().success());
    let report = sink.stop().expect("stop the sink").report;
    assert_eq!(report["spans_received"], n * n * sent, "{report}");
    assert_eq!(report["traces_received"], workers * traces, "{report}");
    assert_eq!(report["spans_bad_trace_id"], 0, "{report}");
    let _ = std::fs::remove_file(&config);
}
