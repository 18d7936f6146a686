//! Tail sampling end to end: the real binary with `processors.tail_sampling`, clients on
//! loopback sockets, and `tailgate-bench`'s sink as the upstream that checks what arrives.
//!
//! Which traces must be kept is computed here, independently of the gateway's policy code: the
//! trace's spans are built with known statuses and times, and the probabilistic policy's choice
//! is the Collector's formula (FNV-1a 64 over the salt, then the trace id) written out again.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::gateway::{
    free_port, http_request, loopback, received_spans, rss_kib, start_sink, wait_for, Gateway,
    Relay,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

const MS: u64 = 1_000_000;
const T0: u64 = 1_750_000_000_000_000_000;
const PERCENT: f64 = 20.0;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// The Collector's probabilistic sampler, written out from its definition.
fn probabilistic_keeps(trace_id: &[u8; 16], salt: &str, percent: f64) -> bool {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in salt.as_bytes().iter().chain(trace_id) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash <= ((percent / 100.0) * u64::MAX as f64) as u64
}

/// What a test trace is made of.
#[derive(Debug, Clone, Copy)]
struct Shape {
    id: [u8; 16],
    /// Its last span (in wave 2) has status ERROR.
    error: bool,
    /// Its last span (in wave 2) ends 800 ms after the root starts.
    slow: bool,
    /// Its root carries `http.route: /healthz`, which the `drop` policy drops.
    health_check: bool,
}

impl Shape {
    fn new(n: u32) -> Shape {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        id[4..12].copy_from_slice(
            &u64::from(n)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .to_le_bytes(),
        );
        id[15] = 0x5a;
        Shape {
            id,
            error: n.is_multiple_of(7),
            slow: n.is_multiple_of(11),
            health_check: n.is_multiple_of(13),
        }
    }

    /// The decision the gateway must make: drop wins; else errors, slow or the hash keep.
    fn kept(&self) -> bool {
        !self.health_check
            && (self.error
                || self.slow
                || probabilistic_keeps(&self.id, "default-hash-seed", PERCENT))
    }

    /// Span `n` (0 is the root). Wave 1 has spans 0..3, wave 2 spans 3..6, and span 6 comes
    /// after the decision.
    fn span(&self, n: u8) -> Span {
        let last = n == 5;
        Span {
            trace_id: self.id.to_vec(),
            span_id: vec![
                n + 1,
                self.id[0],
                self.id[1],
                self.id[2],
                self.id[3],
                0,
                0,
                1,
            ],
            parent_span_id: if n == 0 {
                Vec::new()
            } else {
                vec![1, self.id[0], self.id[1], self.id[2], self.id[3], 0, 0, 1]
            },
            name: format!("op-{n}"),
            start_time_unix_nano: T0 + u64::from(n) * MS,
            end_time_unix_nano: T0
                + (u64::from(n) + 5 + if last && self.slow { 800 } else { 0 }) * MS,
            attributes: if n == 0 && self.health_check {
                vec![kv("http.route", "/healthz")]
            } else {
                vec![kv("http.route", "/api")]
            },
            status: (last && self.error).then(|| Status {
                code: status::StatusCode::Error as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// One export request: the spans `spans` of each trace, each trace's spans split over two
/// services as a real system's would be.
fn request(traces: &[Shape], spans: std::ops::Range<u8>) -> Vec<u8> {
    let group = |service: &str, parity: u8| ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: traces
                .iter()
                .flat_map(|t| {
                    spans
                        .clone()
                        .filter(move |n| n % 2 == parity)
                        .map(|n| t.span(n))
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![group("frontend", 0), group("backend", 1)],
    }
    .encode_to_vec()
}

/// POSTs `body` as OTLP/HTTP protobuf on a connection of its own; returns the status.
fn post(gateway: SocketAddr, body: &[u8]) -> u16 {
    http_request(
        gateway,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        body,
    )
    .expect("POST /v1/traces")
    .0
}

/// A gateway config with `processors` (YAML under `processors:`) in the traces pipeline, 2
/// shards, exporting over OTLP/gRPC to `upstream`. The budgets these tests set (8 and 40 MiB)
/// bound the bytes held, not the process, which alone is larger than they are.
fn config(
    grpc: SocketAddr,
    http: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    processors: &str,
    names: &str,
    exporter_extra: &str,
) -> String {
    format!(
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
    send_batch_size: 1000
    send_batch_max_size: 2000
{processors}
exporters:
  otlp:
    endpoint: {upstream}
    tls:
      insecure: true
    timeout: 60s
    retry_on_failure:
      initial_interval: 100ms
{exporter_extra}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [{names}, batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0, 1]
  memory_budget_whole_process: false
"
    )
}

const POLICIES: &str = "    policies:
      - name: no-health-checks
        type: drop
        drop:
          drop_sub_policy:
            - name: health-route
              type: string_attribute
              string_attribute:
                key: http.route
                values: [/healthz]
      - name: errors
        type: status_code
        status_code:
          status_codes: [ERROR]
      - name: slow
        type: latency
        latency:
          threshold_ms: 500
      - name: some
        type: probabilistic
        probabilistic:
          sampling_percentage: 20
";

fn start(upstream: SocketAddr, processors: &str, names: &str) -> Gateway {
    start_with(upstream, processors, names, "")
}

fn start_with(
    upstream: SocketAddr,
    processors: &str,
    names: &str,
    exporter_extra: &str,
) -> Gateway {
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    Gateway::start_with_config(
        &config(
            grpc,
            http,
            admin,
            upstream,
            processors,
            names,
            exporter_extra,
        ),
        grpc,
        http,
        admin,
    )
}

/// Span names received per trace id.
fn by_trace(spans: &[(Option<Resource>, Span)]) -> BTreeMap<Vec<u8>, Vec<String>> {
    let mut out: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for (resource, span) in spans {
        let service = resource
            .as_ref()
            .and_then(|r| r.attributes.first())
            .and_then(|a| a.value.as_ref())
            .and_then(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        out.entry(span.trace_id.clone())
            .or_default()
            .push(format!("{service}/{}", span.name));
    }
    for names in out.values_mut() {
        names.sort();
    }
    out
}

/// Each trace's spans arrive in two waves of requests on different connections, then a late
/// span after the decision. The upstream receives exactly the traces the policies select, each
/// complete (the late span included), each span once; a trace with an error but the health
/// route is dropped (drop wins).
#[test]
fn whole_traces_are_kept_or_dropped_as_the_policies_say() {
    let (sink, upstream, _) = start_sink();
    let gateway = start(
        upstream,
        &format!("  tail_sampling:\n    decision_wait: 1s\n{POLICIES}"),
        "tail_sampling",
    );
    let traces: Vec<Shape> = (1..=300).map(Shape::new).collect();
    let expected: BTreeSet<Vec<u8>> = traces
        .iter()
        .filter(|t| t.kept())
        .map(|t| t.id.to_vec())
        .collect();
    // The fixture exercises every rule: kept by each reason, dropped despite an error.
    assert!(traces.iter().any(|t| t.error && t.health_check));
    assert!(traces.iter().any(|t| t.kept() && !t.error && !t.slow));
    assert!(
        expected.len() > 60 && expected.len() < 200,
        "{}",
        expected.len()
    );

    // Wave 1: spans 0-2 of each trace, 30 traces a request; wave 2 (spans 3-5, where the errors
    // and slow ends are) 300 ms later, in differently grouped requests.
    for chunk in traces.chunks(30) {
        assert_eq!(post(gateway.http, &request(chunk, 0..3)), 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    for chunk in traces.rchunks(45) {
        assert_eq!(post(gateway.http, &request(chunk, 3..6)), 200);
    }
    // Every trace decided.
    assert!(
        wait_for(Duration::from_secs(10), || {
            gateway.metric(
                "otelcol_processor_tail_sampling_global_count_traces_sampled",
                &[],
            ) >= traces.len() as f64
        }),
        "decisions not made:\n{}",
        gateway.metrics()
    );
    // A late span of every trace: forwarded for kept traces, dropped for the others.
    for chunk in traces.chunks(100) {
        assert_eq!(post(gateway.http, &request(chunk, 6..7)), 200);
    }
    let late = |decision: &str| {
        gateway.metric("tailgate_sampling_late_spans", &[("decision", decision)]) as usize
    };
    assert!(wait_for(Duration::from_secs(10), || {
        late("sampled") + late("not_sampled") == traces.len()
    }));
    assert_eq!(late("sampled"), expected.len());

    // Accounting: every accepted span was released, discarded or forwarded late.
    let accepted = gateway.metric("otelcol_receiver_accepted_spans", &[]);
    assert_eq!(accepted, (traces.len() * 7) as f64);
    let decided = |d: &str| gateway.metric("tailgate_decided_spans", &[("decision", d)]);
    assert_eq!(
        decided("sampled") + decided("not_sampled") + decided("dropped"),
        (traces.len() * 6) as f64
    );
    let dropped_by_policy = traces.iter().filter(|t| t.health_check).count();
    assert_eq!(decided("dropped"), (dropped_by_policy * 6) as f64);
    assert_eq!(
        gateway.metric(
            "otelcol_processor_tail_sampling_count_traces_sampled",
            &[("policy", "no-health-checks"), ("decision", "dropped")]
        ),
        dropped_by_policy as f64
    );
    assert_eq!(
        gateway.metric("tailgate_sampling_early_decisions", &[]),
        0.0
    );
    assert_eq!(gateway.metric("tailgate_dropped_spans", &[]), 0.0);

    // The Collector's other sampling series: spans per policy decision, executions, the late
    // spans under the Collector's name, each trace's age when it left memory (after the 1 s
    // wait), and the decision runs.
    assert_eq!(
        gateway.metric(
            "otelcol_processor_tail_sampling_count_spans_sampled",
            &[("policy", "no-health-checks"), ("decision", "dropped")]
        ),
        (dropped_by_policy * 6) as f64
    );
    // Every trace meets the drop policy first; a drop ends the evaluation before the others.
    let executions = |policy: &str| {
        gateway.metric(
            "otelcol_processor_tail_sampling_sampling_policy_execution_count",
            &[("policy", policy)],
        ) as usize
    };
    assert_eq!(executions("no-health-checks"), traces.len());
    assert_eq!(executions("errors"), traces.len() - dropped_by_policy);
    let released = |sampled: &str| {
        gateway.metric(
            "otelcol_processor_tail_sampling_early_releases_from_cache_decision",
            &[("sampled", sampled)],
        ) as usize
    };
    assert_eq!(released("true"), expected.len());
    assert_eq!(released("false"), traces.len() - expected.len());
    assert_eq!(
        gateway.metric(
            "otelcol_processor_tail_sampling_sampling_late_span_age_count",
            &[]
        ),
        traces.len() as f64,
        "an age for each late span"
    );
    let removal_age = |series: &str, labels: &[(&str, &str)]| {
        gateway.metric(
            &format!("otelcol_processor_tail_sampling_sampling_trace_removal_age_{series}"),
            labels,
        )
    };
    assert_eq!(removal_age("count", &[]), traces.len() as f64);
    assert_eq!(
        removal_age("bucket", &[("le", "0")]),
        0.0,
        "decided before the wait"
    );
    assert!(removal_age("sum", &[]) >= traces.len() as f64);
    assert!(
        gateway.metric(
            "otelcol_processor_tail_sampling_sampling_decision_timer_latency_count",
            &[]
        ) > 0.0
    );

    assert!(gateway.stop().success());
    let result = sink.stop().expect("sink report");
    let got = by_trace(&received_spans(&result));
    let got_ids: BTreeSet<Vec<u8>> = got.keys().cloned().collect();
    assert_eq!(got_ids, expected, "kept traces differ");
    let complete: Vec<String> = {
        let mut names: Vec<String> = (0..7u8)
            .map(|n| {
                let service = if n % 2 == 0 { "frontend" } else { "backend" };
                format!("{service}/op-{n}")
            })
            .collect();
        names.sort();
        names
    };
    for (id, names) in &got {
        assert_eq!(
            names, &complete,
            "trace {id:02x?}: spans missing or repeated"
        );
    }
}

/// Shutdown decides the traces still waiting and flushes the kept ones.
#[test]
fn shutdown_decides_pending_traces() {
    let (sink, upstream, _) = start_sink();
    let gateway = start(
        upstream,
        &format!("  tail_sampling:\n    decision_wait: 120s\n{POLICIES}"),
        "tail_sampling",
    );
    let traces: Vec<Shape> = (1..=100).map(Shape::new).collect();
    assert_eq!(post(gateway.http, &request(&traces, 0..6)), 200);
    assert!(wait_for(Duration::from_secs(10), || gateway
        .metric("tailgate_shard_buffered_spans", &[])
        == 600.0));
    assert!(gateway.stop().success());
    let got: BTreeSet<Vec<u8>> = by_trace(&received_spans(&sink.stop().expect("sink report")))
        .into_keys()
        .collect();
    let expected: BTreeSet<Vec<u8>> = traces
        .iter()
        .filter(|t| t.kept())
        .map(|t| t.id.to_vec())
        .collect();
    assert_eq!(got, expected);
}

/// With `drop_pending_traces_on_shutdown`, shutdown drops the waiting traces, counted.
#[test]
fn shutdown_can_drop_pending_traces_instead() {
    let (sink, upstream, _) = start_sink();
    let gateway = start(
        upstream,
        &format!(
            "  tail_sampling:\n    decision_wait: 120s\n    drop_pending_traces_on_shutdown: true\n{POLICIES}"
        ),
        "tail_sampling",
    );
    let traces: Vec<Shape> = (1..=50).map(Shape::new).collect();
    assert_eq!(post(gateway.http, &request(&traces, 0..4)), 200);
    assert!(wait_for(Duration::from_secs(10), || gateway
        .metric("tailgate_shard_buffered_spans", &[])
        == 200.0));
    // The drop counter is read from the log of the final scrape: scrape while draining is not
    // possible, so the gateway's own shutdown accounting is checked through the sink instead.
    assert!(gateway.stop().success());
    assert!(received_spans(&sink.stop().expect("sink report")).is_empty());
}

/// Offered load above the byte budget while the upstream stalls: the gateway refuses with 429
/// once its buffers are full, its memory stays bounded, and once the upstream answers again
/// every accepted span arrives, once.
#[test]
fn a_full_buffer_refuses_and_loses_nothing_it_accepted() {
    let (sink, upstream, _) = start_sink();
    let relay = Relay::start(upstream);
    let gateway = start_with(
        relay.addr,
        "  memory_limiter:
    check_interval: 1s
    limit_mib: 8
    spike_limit_mib: 2
  tail_sampling:
    decision_wait: 200ms
    policies:
      - name: all
        type: always_sample
",
        "memory_limiter, tail_sampling",
        "    sending_queue:\n      queue_size: 4\n      num_consumers: 2",
    );
    let baseline = rss_kib(gateway.pid());
    relay.paused.store(true, Ordering::Relaxed);
    // 200 MB offered in 200 kB requests, in two halves: far past the 8 MiB budget, the 2
    // shards' exporter queues and the relay's socket buffers together.
    let pad = "p".repeat(900);
    let mut accepted_spans = 0u64;
    let (mut ok, mut refused) = (0, 0);
    let mut peaks = [0u64; 2];
    for r in 0..1000u32 {
        let traces: Vec<Shape> = (0..200).map(|t| Shape::new(r * 1000 + t + 1)).collect();
        let body = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: traces
                        .iter()
                        .map(|t| Span {
                            attributes: vec![kv("pad", &pad)],
                            ..t.span(1)
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        match post(gateway.http, &body) {
            200 => {
                ok += 1;
                accepted_spans += traces.len() as u64;
            }
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
        let half = &mut peaks[r as usize / 500];
        *half = (*half).max(rss_kib(gateway.pid()));
    }
    assert!(
        refused > 0,
        "nothing refused ({ok} accepted):\n{}",
        gateway.metrics()
    );
    assert!(ok > 0);
    // Bounded: the second 100 MB, refused, grows nothing; what the first half took is the
    // budget, the exporter queues' batches (2000 spans, about 2 MB each) and what the allocator
    // and the executors keep after serving a burst (about 70 MB with an unoptimised build,
    // stalled or not).
    eprintln!(
        "RSS {baseline} KiB at start, {} KiB after 100 MB offered, {} KiB after 200 MB; \
         {ok} requests accepted, {refused} refused",
        peaks[0], peaks[1]
    );
    assert!(
        peaks[1] <= peaks[0] + 8 * 1024,
        "RSS kept growing: {baseline} KiB, then {} KiB, then {} KiB",
        peaks[0],
        peaks[1]
    );
    assert!(
        peaks[1] < baseline + 128 * 1024,
        "RSS grew from {baseline} KiB to {} KiB",
        peaks[1]
    );
    assert_eq!(
        gateway.metric("otelcol_receiver_accepted_spans", &[]),
        accepted_spans as f64
    );
    assert_eq!(
        gateway.metric("otelcol_receiver_refused_spans", &[]),
        (refused * 200) as f64
    );
    relay.paused.store(false, Ordering::Relaxed);
    assert!(
        wait_for(Duration::from_secs(30), || gateway
            .metric("otelcol_exporter_sent_spans", &[])
            >= accepted_spans as f64),
        "not all exported:\n{}",
        gateway.metrics()
    );
    assert_eq!(gateway.metric("tailgate_dropped_spans", &[]), 0.0);
    assert!(gateway.stop().success());
    let result = sink.stop().expect("sink report");
    assert_eq!(result.report["spans_received"], accepted_spans);
    assert_eq!(result.report["duplicates"], 0);
}

/// One trace that grows for the whole run, with no `maximum_trace_size_bytes`: once it holds
/// more than an eighth of its shard's soft limit it is decided at once (kept: it has an error),
/// its later spans follow the decision as they come, counted as the oversized trace's, and the
/// other traces, meanwhile, are sampled by their wait as usual. Nothing is refused or lost.
#[test]
fn a_trace_that_keeps_growing_is_decided_early_and_the_others_are_not_disturbed() {
    let (sink, upstream, _) = start_sink();
    // Soft limit 32 MiB over 2 shards: the bound is 2 MiB of one trace's spans.
    let gateway = start(
        upstream,
        &format!(
            "  memory_limiter:
    check_interval: 1s
    limit_mib: 40
    spike_limit_mib: 8
  tail_sampling:
    decision_wait: 1s
{POLICIES}"
        ),
        "memory_limiter, tail_sampling",
    );
    let huge = Shape {
        error: true,
        slow: false,
        health_check: false,
        ..Shape::new(1_000_001)
    };
    let pad = "h".repeat(2_000);
    // 60 requests of 50 spans of about 2 KB: 6 MB of one trace, three times the bound, each
    // request carrying a wave of ordinary traces too.
    let mut huge_spans = 0u32;
    let mut others: Vec<Shape> = Vec::new();
    for r in 0..60u32 {
        let wave: Vec<Shape> = (0..10).map(|t| Shape::new(r * 10 + t + 1)).collect();
        let mut body = ExportTraceServiceRequest::decode(&request(&wave, 0..6)[..]).unwrap();
        body.resource_spans.push(ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "batch-job")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..50)
                    .map(|_| {
                        huge_spans += 1;
                        Span {
                            span_id: (u64::from(huge_spans) + 1).to_le_bytes().to_vec(),
                            name: format!("step-{huge_spans}"),
                            attributes: vec![kv("pad", &pad)],
                            status: (huge_spans == 1).then(|| Status {
                                code: status::StatusCode::Error as i32,
                                ..Default::default()
                            }),
                            ..huge.span(1)
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(post(gateway.http, &body.encode_to_vec()), 200);
        others.extend(wave);
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every ordinary trace decided by its wait, the huge one early.
    assert!(
        wait_for(Duration::from_secs(15), || {
            gateway.metric(
                "otelcol_processor_tail_sampling_global_count_traces_sampled",
                &[],
            ) >= (others.len() + 1) as f64
        }),
        "decisions not made:\n{}",
        gateway.metrics()
    );
    let early =
        |reason: &str| gateway.metric("tailgate_sampling_early_decisions", &[("reason", reason)]);
    assert_eq!(early("trace_size"), 1.0, "{}", gateway.metrics());
    assert_eq!(early("memory") + early("num_traces"), 0.0);
    let oversized_late = gateway.metric(
        "tailgate_sampling_oversized_late_spans",
        &[("decision", "sampled")],
    );
    // Decided past 2 MiB (about 1,000 spans in): most of the 3,000 came after.
    assert!(
        oversized_late > 1_000.0 && oversized_late < f64::from(huge_spans),
        "{oversized_late}"
    );
    assert_eq!(
        gateway.metric("tailgate_sampling_late_spans", &[("decision", "sampled")]),
        oversized_late,
        "the only late spans are the huge trace's"
    );
    assert_eq!(gateway.metric("otelcol_receiver_refused_spans", &[]), 0.0);
    assert!(gateway.stop().success());

    let got = by_trace(&received_spans(&sink.stop().expect("sink report")));
    assert_eq!(
        got.get(huge.id.as_slice()).map(Vec::len),
        Some(huge_spans as usize),
        "every span of the huge trace, once"
    );
    let expected: BTreeSet<Vec<u8>> = others
        .iter()
        .filter(|t| t.kept())
        .map(|t| t.id.to_vec())
        .chain([huge.id.to_vec()])
        .collect();
    let got_ids: BTreeSet<Vec<u8>> = got.keys().cloned().collect();
    assert_eq!(got_ids, expected, "kept traces differ");
    for (id, names) in &got {
        if id != &huge.id.to_vec() {
            assert_eq!(names.len(), 6, "trace {id:02x?} incomplete");
        }
    }
}
