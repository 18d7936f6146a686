//! Decision parity with the OpenTelemetry Collector itself: the same traces, sent over OTLP/HTTP
//! to tailgate and to the Collector built from its modules (`bench-rig/peers/build.sh`, contrib's
//! `tail_sampling` v0.161.0), with the same `tail_sampling` policies, must leave the same set of
//! trace ids at each one's sink. One case per deterministic policy kind (rate limiting is
//! time-dependent, so it has none). Every trace is sent whole in one request, well inside
//! `decision_wait`, so both decide on the whole trace.
//!
//! `TAILGATE_PARITY_TRACES` sets the traces per case (default 2,000; docs/BENCHMARKS.md records
//! a run of 100,000). Skipped, with a message, only where `go` is not on PATH.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::gateway::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tailgate_bench::peers;

/// The policies of each case, as YAML list items under `policies:` (indented by 6).
const CASES: &[(&str, &str)] = &[
    (
        "probabilistic, default salt, 10 %",
        "      - {name: p, type: probabilistic, probabilistic: {sampling_percentage: 10}}",
    ),
    (
        "probabilistic, salted, 33.3 %",
        "      - {name: p, type: probabilistic, probabilistic: {hash_salt: tenant-a, sampling_percentage: 33.3}}",
    ),
    (
        "latency between 1000 and 1400 ms",
        "      - {name: l, type: latency, latency: {threshold_ms: 1000, upper_threshold_ms: 1400}}",
    ),
    (
        "status_code ERROR",
        "      - {name: s, type: status_code, status_code: {status_codes: [ERROR]}}",
    ),
    (
        "string_attribute by regex",
        "      - {name: r, type: string_attribute, string_attribute: {key: http.route, values: ['/pay/.*'], enabled_regex_matching: true}}",
    ),
    (
        "string_attribute inverted",
        "      - {name: r, type: string_attribute, string_attribute: {key: service.name, values: [health], invert_match: true}}",
    ),
    (
        "numeric_attribute 500..599",
        "      - {name: n, type: numeric_attribute, numeric_attribute: {key: http.status_code, min_value: 500, max_value: 599}}",
    ),
    (
        "boolean_attribute",
        "      - {name: b, type: boolean_attribute, boolean_attribute: {key: retry, value: true}}",
    ),
    (
        "trace_state",
        "      - {name: t, type: trace_state, trace_state: {key: vendor, values: [a, c]}}",
    ),
    (
        "span_count 3..5",
        "      - {name: c, type: span_count, span_count: {min_spans: 3, max_spans: 5}}",
    ),
    (
        "trace_flags",
        "      - {name: f, type: trace_flags}",
    ),
    (
        "and: errors of checkout",
        "      - name: a
        type: and
        and:
          and_sub_policy:
            - {name: e, type: status_code, status_code: {status_codes: [ERROR]}}
            - {name: c, type: string_attribute, string_attribute: {key: service.name, values: [checkout]}}",
    ),
    (
        "not: all but slow",
        "      - name: n
        type: not
        not:
          not_sub_policy: {name: l, type: latency, latency: {threshold_ms: 700}}",
    ),
    (
        "drop health, else errors and 20 %",
        "      - {name: e, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: p, type: probabilistic, probabilistic: {sampling_percentage: 20}}
      - name: d
        type: drop
        drop:
          drop_sub_policy:
            - {name: h, type: string_attribute, string_attribute: {key: http.route, values: [/health]}}",
    ),
];

/// One trace of the recorded load: its id and its spans' request.
struct Trace {
    id: [u8; 16],
    spans: usize,
    /// What was drawn, for a difference's report.
    drawn: String,
}

/// splitmix64: the load's ids and choices, the same on every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(value: &str) -> any_value::Value {
    any_value::Value::StringValue(value.into())
}

/// Trace `i`: 1–6 spans, a service, a duration of 0–1.9 s, an error one time in 13, an HTTP
/// status, a route, a retry flag one time in 5, a tracestate, a sampled flag, all drawn from
/// `i`. Returns the trace and its resource group.
fn trace(i: u64) -> (Trace, ResourceSpans) {
    let r = mix(i);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&mix(r).to_be_bytes());
    id[8..].copy_from_slice(&mix(r ^ 0x5555).to_be_bytes());
    let spans = 1 + (r % 6) as usize;
    let service = ["api", "checkout", "batch", "health"][(r >> 8) as usize % 4];
    let route = ["/a", "/b", "/health", "/pay/card", "/pay/wallet"][(r >> 12) as usize % 5];
    let http_status = [200i64, 404, 500, 503, 201, 599, 600][(r >> 16) as usize % 7];
    let error = (r >> 20).is_multiple_of(13);
    let retry = (r >> 24).is_multiple_of(5);
    let trace_state = [
        "",
        "vendor=a",
        "vendor=b",
        "rojo=1,vendor=c",
        "vendor=a,x=y",
    ][(r >> 28) as usize % 5];
    let sampled_flag = !(r >> 32).is_multiple_of(3);
    let duration_ms = (r >> 36) % 1_900;
    let start = 1_700_000_000_000_000_000u64 + i * 1_000_000;
    let spans_out = (0..spans)
        .map(|n| {
            let root = n == 0;
            let mut attributes = vec![kv("http.route", text(route))];
            if root {
                attributes.push(kv(
                    "http.status_code",
                    any_value::Value::IntValue(http_status),
                ));
                attributes.push(kv("retry", any_value::Value::BoolValue(retry)));
            }
            let (begin, end) = if root {
                (start, start + duration_ms * 1_000_000)
            } else {
                (start + 1_000, start + 2_000 + n as u64)
            };
            Span {
                trace_id: id.to_vec(),
                span_id: mix(r ^ (n as u64 + 1)).max(1).to_be_bytes().to_vec(),
                parent_span_id: if root {
                    Vec::new()
                } else {
                    mix(r ^ 1).max(1).to_be_bytes().to_vec()
                },
                trace_state: trace_state.into(),
                flags: if sampled_flag { 0x101 } else { 0x100 },
                name: format!("op{n}"),
                kind: 2,
                start_time_unix_nano: begin,
                end_time_unix_nano: end,
                attributes,
                status: Some(Status {
                    code: if root && error {
                        status::StatusCode::Error as i32
                    } else {
                        status::StatusCode::Unset as i32
                    },
                    message: String::new(),
                }),
                ..Default::default()
            }
        })
        .collect();
    let group = ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", text(service))],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: spans_out,
            ..Default::default()
        }],
        ..Default::default()
    };
    let drawn = format!(
        "trace {i}: {spans} spans, {service}, {route}, {duration_ms} ms, status {http_status}, \
         error {error}, retry {retry}, tracestate {trace_state:?}, sampled flag {sampled_flag}"
    );
    (Trace { id, spans, drawn }, group)
}

/// The load as OTLP/HTTP request bodies of 50 traces each.
fn load(traces: u64) -> (Vec<Trace>, Vec<Vec<u8>>) {
    let mut all = Vec::new();
    let mut bodies = Vec::new();
    let mut groups = Vec::new();
    for i in 0..traces {
        let (t, group) = trace(i);
        all.push(t);
        groups.push(group);
        if groups.len() == 50 || i + 1 == traces {
            bodies.push(
                ExportTraceServiceRequest {
                    resource_spans: std::mem::take(&mut groups),
                }
                .encode_to_vec(),
            );
        }
    }
    (all, bodies)
}

/// The sum of every series of `name` (with or without the `_total` suffix, which the
/// Collector's exposition may add) on the Prometheus page at `addr`; -1 when there is no page.
fn sum(addr: SocketAddr, name: &str) -> f64 {
    let Ok((200, page)) = http_get(addr, "/metrics") else {
        return -1.0;
    };
    metric_value(&page, name, &[]) + metric_value(&page, &format!("{name}_total"), &[])
}

/// The `tail_sampling` block both systems run.
fn tail_sampling(policies: &str) -> String {
    // The batch processor after it: the Collector exports each decided trace as a request of
    // its own otherwise, and its sending queue (1,000 requests) overflows at a decision tick.
    format!(
        "  batch:
    timeout: 100ms
  tail_sampling:
    decision_wait: 1s
    num_traces: 200000
    policies:
{policies}
"
    )
}

/// Runs one case through both systems; returns the trace ids each kept.
fn run_case(
    peers: &std::path::Path,
    policies: &str,
    bodies: &[Vec<u8>],
    traces: &[Trace],
) -> (BTreeSet<[u8; 16]>, BTreeSet<[u8; 16]>) {
    let (ours_sink, ours_upstream, _) = start_sink_on(Vec::new(), true);
    let (theirs_sink, theirs_upstream, _) = start_sink_on(Vec::new(), true);
    let sampling = tail_sampling(policies);

    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let ours = Gateway::start_with_config(
        &format!(
            "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
processors:
{sampling}exporters:
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
    );

    let (their_http, their_metrics) = (loopback(free_port()), loopback(free_port()));
    let config = std::env::temp_dir().join(format!(
        "tailgate-parity-{}-{}.yaml",
        std::process::id(),
        their_http.port()
    ));
    std::fs::write(
        &config,
        format!(
            "receivers:
  otlp:
    protocols:
      http:
        endpoint: {their_http}
processors:
{sampling}exporters:
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
  telemetry:
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
            their_metrics.port()
        ),
    )
    .unwrap();
    let log = config.with_extension("log");
    let mut theirs = peers::Collector::start(peers, &config, log).expect("start the Collector");
    let ready = wait_for(Duration::from_secs(30), || {
        theirs.running()
            && http_get(their_metrics, "/metrics").is_ok_and(|(s, _)| s == 200)
            && std::net::TcpStream::connect(their_http).is_ok()
    });
    assert!(ready, "the Collector did not start:\n{}", theirs.log());

    for body in bodies {
        for addr in [http, their_http] {
            let (status, _, reply) = http_request(
                addr,
                "POST",
                "/v1/traces",
                &[("Content-Type", "application/x-protobuf")],
                body,
            )
            .expect("a response");
            assert_eq!(status, 200, "{addr}: {}", String::from_utf8_lossy(&reply));
        }
    }

    // Both decide every trace; then what they kept reaches their sinks (the exporter's queue
    // empty, and the sink holding every span the exporter reports sent).
    let decided = |metrics: SocketAddr| {
        sum(
            metrics,
            "otelcol_processor_tail_sampling_global_count_traces_sampled",
        )
    };
    let n = traces.len() as f64;
    assert!(
        wait_for(Duration::from_secs(60), || decided(admin) >= n
            && decided(their_metrics) >= n),
        "not every trace was decided: tailgate {}, Collector {} of {n}",
        decided(admin),
        decided(their_metrics)
    );
    // An exporter's request leaves the queue before it is in flight, and is counted sent only
    // when answered: what the sink holds is final once, on five polls in a row (half a second),
    // the queue is empty, nothing is in flight and the sink holds exactly what was sent.
    for (metrics, sink) in [(admin, &ours_sink), (their_metrics, &theirs_sink)] {
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
    drop(theirs);
    ours.stop();
    let kept = |sink: tailgate_bench::sink::Sink| -> BTreeSet<[u8; 16]> {
        received_spans(&sink.stop().unwrap())
            .iter()
            .map(|(_, s)| s.trace_id.clone().try_into().unwrap())
            .collect()
    };
    let _ = std::fs::remove_file(&config);
    (kept(ours_sink), kept(theirs_sink))
}

#[test]
fn every_deterministic_policy_decides_as_the_collector_does() {
    if !peers::go_on_path() {
        println!(
            "skipped: go is not on PATH, so bench-rig/peers/build.sh cannot build the Collector"
        );
        return;
    }
    let built = peers::build().unwrap_or_else(|err| panic!("{err}"));
    let count: u64 = std::env::var("TAILGATE_PARITY_TRACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let (traces, bodies) = load(count);
    let mut report = Vec::new();
    let mut differences = Vec::new();
    for (name, policies) in CASES {
        let (ours, theirs) = run_case(&built, policies, &bodies, &traces);
        report.push(format!(
            "{name}: tailgate kept {}, the Collector {}",
            ours.len(),
            theirs.len()
        ));
        // A case where nothing or everything is kept could not tell the two apart.
        assert!(
            !theirs.is_empty() && theirs.len() < traces.len(),
            "{name}: the load does not exercise the policy ({} of {} kept)",
            theirs.len(),
            traces.len()
        );
        if ours != theirs {
            let describe = |ids: Vec<&[u8; 16]>| -> Vec<&str> {
                ids.iter()
                    .filter_map(|id| traces.iter().find(|t| &t.id == *id))
                    .map(|t| t.drawn.as_str())
                    .collect()
            };
            let only_ours = describe(ours.difference(&theirs).take(4).collect());
            let only_theirs = describe(theirs.difference(&ours).take(4).collect());
            differences.push(format!(
                "{name}: {} kept by tailgate only (e.g. {only_ours:#?}), {} by the Collector \
                 only (e.g. {only_theirs:#?})",
                ours.difference(&theirs).count(),
                theirs.difference(&ours).count()
            ));
        }
    }
    eprintln!("{} traces a case:\n{}", traces.len(), report.join("\n"));
    let spans: usize = traces.iter().map(|t| t.spans).sum();
    assert!(spans > traces.len());
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
