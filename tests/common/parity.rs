//! Running the same load through tailgate and the OpenTelemetry Collector (built from its
//! modules by `bench-rig/peers/build.sh`), each with the same `tail_sampling` settings and
//! exporting to a sink of its own, and returning what each sink received.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;
use tailgate_bench::peers;

use super::gateway::*;

/// One parity run's settings.
pub struct Case<'a> {
    /// YAML list items under `policies:` (indented by 6).
    pub policies: &'a str,
    /// Further `tail_sampling` keys, each a line indented by 4 (empty for none).
    pub settings: &'a str,
    /// `--feature-gates` values, given to both.
    pub gates: &'a [&'a str],
}

/// The sum of every series of `name` (with or without the `_total` suffix, which the
/// Collector's exposition may add) on the Prometheus page at `addr`; -1 when there is no page.
pub fn sum(addr: SocketAddr, name: &str) -> f64 {
    let Ok((200, page)) = http_get(addr, "/metrics") else {
        return -1.0;
    };
    metric_value(&page, name, &[]) + metric_value(&page, &format!("{name}_total"), &[])
}

/// The processors both systems run: `tail_sampling`, then a batch processor (the Collector
/// exports each decided trace as a request of its own otherwise, and its sending queue of
/// 1,000 requests overflows at a decision tick).
fn processors(case: &Case<'_>) -> String {
    format!(
        "  batch:
    timeout: 100ms
  tail_sampling:
    decision_wait: 1s
    num_traces: 200000
{}    policies:
{}
",
        case.settings, case.policies
    )
}

/// Runs `case` through both systems on `bodies` (OTLP/HTTP protobuf requests, sent in order to
/// each), holding `traces` traces; returns the spans each sink received (tailgate's, the
/// Collector's) once both have decided every trace and exported what they kept.
pub fn run(
    peers: &Path,
    case: &Case<'_>,
    bodies: &[Vec<u8>],
    traces: usize,
) -> (Vec<Span>, Vec<Span>) {
    let (ours_sink, ours_upstream, _) = start_sink_on(Vec::new(), true);
    let (theirs_sink, theirs_upstream, _) = start_sink_on(Vec::new(), true);
    let processors = processors(case);
    let gates: Vec<String> = case
        .gates
        .iter()
        .map(|g| format!("--feature-gates={g}"))
        .collect();

    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let ours = Gateway::start_customised(
        &format!(
            "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
processors:
{processors}exporters:
  otlp:
    endpoint: {ours_upstream}
    tls:
      insecure: true
    compression: none
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling, batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0, 1]
"
        ),
        grpc,
        http,
        admin,
        |command| {
            command.args(&gates);
        },
    );

    let their_http = loopback(free_port());
    let theirs = Peer::start(
        peers,
        &format!(
            "receivers:
  otlp:
    protocols:
      http:
        endpoint: {their_http}
processors:
{processors}exporters:
  otlp:
    endpoint: {theirs_upstream}
    tls:
      insecure: true
    compression: none
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling, batch]
      exporters: [otlp]
"
        ),
        their_http,
        &gates,
    );
    let their_metrics = theirs.metrics;
    post_all(&[http, their_http], bodies, &[]);

    // Both decide every trace; then what they kept reaches their sinks (the exporter's queue
    // empty, and the sink holding every span the exporter reports sent).
    let decided = |metrics: SocketAddr| {
        sum(
            metrics,
            "otelcol_processor_tail_sampling_global_count_traces_sampled",
        )
    };
    let n = traces as f64;
    assert!(
        wait_for(Duration::from_secs(60), || decided(admin) >= n
            && decided(their_metrics) >= n),
        "not every trace was decided: tailgate {}, Collector {} of {n}",
        decided(admin),
        decided(their_metrics)
    );
    for (metrics, sink) in [(admin, &ours_sink), (their_metrics, &theirs_sink)] {
        settle(metrics, sink);
    }
    drop(theirs);
    ours.stop();
    let spans = |sink: tailgate_bench::sink::Sink| -> Vec<Span> {
        received_spans(&sink.stop().unwrap())
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    };
    (spans(ours_sink), spans(theirs_sink))
}

/// The Collector built in `peers`, running a configuration whose OTLP/HTTP receiver listens at
/// `http`, serving its own metrics at [`Peer::metrics`]; stopped, its files removed, when
/// dropped.
pub struct Peer {
    collector: peers::Collector,
    config: std::path::PathBuf,
    /// Where its Prometheus reader serves its metrics.
    pub metrics: SocketAddr,
}

impl Peer {
    /// Starts the Collector on `config` (everything up to `service.telemetry`, which this adds:
    /// warnings only in its log, detailed metrics on a pull reader) with `args`, and waits
    /// until it serves its metrics and accepts connections at `http`.
    pub fn start(peers: &Path, config: &str, http: SocketAddr, args: &[String]) -> Peer {
        let metrics = loopback(free_port());
        let file = std::env::temp_dir().join(format!(
            "tailgate-peer-{}-{}.yaml",
            std::process::id(),
            http.port()
        ));
        std::fs::write(
            &file,
            format!(
                "{config}  telemetry:
    logs:
      level: warn
    metrics:
      level: detailed
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {}
",
                metrics.port()
            ),
        )
        .unwrap();
        let mut collector =
            peers::Collector::start_with(peers, &file, file.with_extension("log"), args)
                .expect("start the Collector");
        let ready = wait_for(Duration::from_secs(30), || {
            collector.running()
                && http_get(metrics, "/metrics").is_ok_and(|(s, _)| s == 200)
                && std::net::TcpStream::connect(http).is_ok()
        });
        assert!(ready, "the Collector did not start:\n{}", collector.log());
        Peer {
            collector,
            config: file,
            metrics,
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // The Collector stops when its handle, a field, drops after this.
        let _ = std::fs::remove_file(&self.config);
    }
}

/// Posts each of `bodies` (OTLP/HTTP protobuf traces requests), in order, to each of `addrs`,
/// with `headers` besides the content type; each must be answered 200.
pub fn post_all(addrs: &[SocketAddr], bodies: &[Vec<u8>], headers: &[(&str, &str)]) {
    post_to(addrs, "/v1/traces", bodies, headers);
}

/// [`post_all`] for any signal: each of `bodies` posted to `path` (`/v1/logs`, ...) of each of
/// `addrs`.
pub fn post_to(addrs: &[SocketAddr], path: &str, bodies: &[Vec<u8>], headers: &[(&str, &str)]) {
    let mut all = vec![("Content-Type", "application/x-protobuf")];
    all.extend_from_slice(headers);
    for body in bodies {
        for &addr in addrs {
            let (status, _, reply) =
                http_request(addr, "POST", path, &all, body).expect("a response");
            assert_eq!(status, 200, "{addr}: {}", String::from_utf8_lossy(&reply));
        }
    }
}

/// Waits until what `sink` holds is final for the exporter whose metrics are at `metrics`: an
/// exporter's request leaves the queue before it is in flight, and is counted sent only when
/// answered, so the sink is settled once, on five polls in a row (half a second), the queue is
/// empty, nothing is in flight and the sink holds exactly what was sent.
pub fn settle(metrics: SocketAddr, sink: &tailgate_bench::sink::Sink) {
    let mut quiet = 0;
    let settled = wait_for(Duration::from_secs(30), || {
        let sent = sum(metrics, "otelcol_exporter_sent_spans");
        let idle = sum(metrics, "otelcol_exporter_queue_size") == 0.0
            && sum(metrics, "otelcol_exporter_in_flight_requests") <= 0.0
            && sink.spans_received() as f64 == sent;
        quiet = if idle { quiet + 1 } else { 0 };
        std::thread::sleep(Duration::from_millis(100));
        quiet >= 5
    });
    assert!(
        settled,
        "{metrics}: the sink has {} spans, the exporter reports {} sent",
        sink.spans_received(),
        sum(metrics, "otelcol_exporter_sent_spans")
    );
}

/// [`settle`] for every signal: once the families `sent` (`otelcol_exporter_sent_spans`,
/// `..._log_records`, `..._metric_points`) reach their counts, waits until, on five polls in a
/// row, the queues are empty, nothing is in flight and the sink's request count holds still.
pub fn settle_signals(
    metrics: SocketAddr,
    sink: &tailgate_bench::sink::Sink,
    sent: &[(&str, usize)],
) {
    for (family, count) in sent {
        assert!(
            wait_for(Duration::from_secs(30), || sum(metrics, family)
                == *count as f64),
            "{metrics}: {} of {count} {family}",
            sum(metrics, family)
        );
    }
    let (mut quiet, mut last) = (0, u64::MAX);
    let settled = wait_for(Duration::from_secs(30), || {
        let requests = sink.requests_received();
        let idle = sum(metrics, "otelcol_exporter_queue_size") == 0.0
            && sum(metrics, "otelcol_exporter_in_flight_requests") <= 0.0
            && requests == last;
        last = requests;
        quiet = if idle { quiet + 1 } else { 0 };
        std::thread::sleep(Duration::from_millis(100));
        quiet >= 5
    });
    assert!(settled, "{metrics}: the exporters did not settle");
}

/// The trace ids of `spans`.
pub fn trace_ids(spans: &[Span]) -> BTreeSet<[u8; 16]> {
    spans
        .iter()
        .map(|s| s.trace_id.clone().try_into().unwrap())
        .collect()
}

/// tailgate and the Collector side by side on the same configuration, each exporting to a sink
/// of its own that keeps what it receives.
pub struct Pair {
    pub ours: Gateway,
    pub theirs: Peer,
    pub ours_sink: tailgate_bench::sink::Sink,
    pub theirs_sink: tailgate_bench::sink::Sink,
    /// tailgate's OTLP/HTTP receiver, and where it serves its metrics.
    pub http: SocketAddr,
    pub admin: SocketAddr,
    /// The Collector's OTLP/HTTP receiver.
    pub their_http: SocketAddr,
}

impl Pair {
    /// Starts both on `config(http, upstream)`: everything up to `service.telemetry`, with an
    /// OTLP/HTTP receiver at `http` and an exporter to `upstream`. tailgate gets its metrics
    /// address and two shards besides; the Collector what [`Peer::start`] adds.
    pub fn start(built: &Path, config: impl Fn(SocketAddr, SocketAddr) -> String) -> Pair {
        let (ours_sink, ours_upstream, _) = start_sink_on(Vec::new(), true);
        let (theirs_sink, theirs_upstream, _) = start_sink_on(Vec::new(), true);
        let (grpc, http, admin) = (
            loopback(free_port()),
            loopback(free_port()),
            loopback(free_port()),
        );
        let ours = Gateway::start_with_config(
            &format!(
                "{}  telemetry:\n    metrics:\n      address: {admin}\nshards:\n  cpus: [0, 1]\n",
                config(http, ours_upstream)
            ),
            grpc,
            http,
            admin,
        );
        let their_http = loopback(free_port());
        let theirs = Peer::start(built, &config(their_http, theirs_upstream), their_http, &[]);
        Pair {
            ours,
            theirs,
            ours_sink,
            theirs_sink,
            http,
            admin,
            their_http,
        }
    }

    /// Both receivers.
    pub fn receivers(&self) -> [SocketAddr; 2] {
        [self.http, self.their_http]
    }

    /// Stops both systems (tailgate must exit cleanly) and returns their sinks, tailgate's
    /// first.
    pub fn stop(self) -> (tailgate_bench::sink::Sink, tailgate_bench::sink::Sink) {
        drop(self.theirs);
        assert!(self.ours.stop().success());
        (self.ours_sink, self.theirs_sink)
    }
}

/// The peers built from their Go modules (`bench-rig/peers/build.sh`), or `None`, with a
/// message saying the test is skipped, where `go` is not on PATH.
pub fn built_peers() -> Option<std::path::PathBuf> {
    if !peers::go_on_path() {
        println!(
            "skipped: go is not on PATH, so bench-rig/peers/build.sh cannot build the Collector"
        );
        return None;
    }
    Some(peers::build().unwrap_or_else(|err| panic!("{err}")))
}
