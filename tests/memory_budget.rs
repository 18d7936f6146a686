//! The node's memory budget without tail sampling: `memory_limiter` bounds what the exporters
//! hold, so a stalled upstream becomes refusals rather than gigabytes of queued batches. The
//! real binary, clients on loopback sockets, and `tailgate-bench`'s sink behind a relay that
//! can stop reading.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::gateway::{
    free_port, http_request, loopback, rss_kib, start_sink, wait_for, Gateway, Relay,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// A pass-through gateway (2 shards) with `memory_limiter` at 8 MiB and the Collector's default
/// sending queue (1000 batches), exporting to `upstream`; with `whole_process`, the budget
/// bounds the process's resident memory, which alone is larger than 8 MiB, and without it only
/// the bytes the shards hold.
fn start(upstream: SocketAddr, whole_process: bool) -> Gateway {
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let config = format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 8
    spike_limit_mib: 2
  batch:
    timeout: 50ms
    send_batch_size: 1000
    send_batch_max_size: 2000
exporters:
  otlp:
    endpoint: {upstream}
    tls:
      insecure: true
    timeout: 60s
    retry_on_failure:
      initial_interval: 100ms
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlp]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0, 1]
  memory_budget_whole_process: {whole_process}
"
    );
    Gateway::start_with_config(&config, grpc, http, admin)
}

fn padded(key: &str, len: usize) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("p".repeat(len))),
        }),
        ..Default::default()
    }
}

/// 200 spans of about 1 kB each, of 200 traces numbered from `first`.
fn traces_request(first: u32) -> Vec<u8> {
    let spans = (first..first + 200)
        .map(|t| {
            let mut trace_id = [0u8; 16];
            trace_id[12..].copy_from_slice(&t.to_be_bytes());
            trace_id[0] = 0x7a;
            Span {
                trace_id: trace_id.to_vec(),
                span_id: (u64::from(t) + 1).to_be_bytes().to_vec(),
                name: "op".into(),
                start_time_unix_nano: 1_750_000_000_000_000_000,
                end_time_unix_nano: 1_750_000_000_001_000_000,
                attributes: vec![padded("pad", 900)],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn post(gateway: SocketAddr, path: &str, body: &[u8]) -> u16 {
    http_request(
        gateway,
        "POST",
        path,
        &[("Content-Type", "application/x-protobuf")],
        body,
    )
    .expect("POST")
    .0
}

/// Offered load far past the budget while the upstream stalls: the gateway refuses with 429
/// once its exporters hold its budget, its memory stays bounded, the shard that is full refuses
/// logs too, and once the upstream answers again every accepted span arrives, once.
#[test]
fn a_stalled_upstream_is_refused_at_the_budget_and_loses_nothing() {
    let (sink, upstream, _) = start_sink();
    let relay = Relay::start(upstream);
    let gateway = start(relay.addr, false);
    let baseline = rss_kib(gateway.pid());
    relay.paused.store(true, Ordering::Relaxed);
    // 200 MB in 200 kB requests, in two halves. The default queue alone would take all of it
    // (500 batches of up to 2 MB per shard); the budget is 8 MiB.
    let mut accepted_spans = 0u64;
    let (mut ok, mut refused) = (0u64, 0u64);
    let mut peaks = [0u64; 2];
    for r in 0..1000u32 {
        match post(gateway.http, "/v1/traces", &traces_request(r * 1000 + 1)) {
            200 => {
                ok += 1;
                accepted_spans += 200;
            }
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
        let half = &mut peaks[r as usize / 500];
        *half = (*half).max(rss_kib(gateway.pid()));
    }
    eprintln!(
        "RSS {baseline} KiB at start, {} KiB after 100 MB offered, {} KiB after 200 MB; \
         {ok} requests accepted, {refused} refused",
        peaks[0], peaks[1]
    );
    assert!(
        refused > 0,
        "nothing refused ({ok} accepted):\n{}",
        gateway.metrics()
    );
    assert!(ok > 0);
    // What each shard's exporter holds stops near its 4 MiB share: one 2 MB batch may take it
    // past, nothing after that.
    let held = gateway.metric("tailgate_shard_export_bytes", &[]);
    assert!(
        held <= (8 << 20) as f64 + 2.0 * 2.5e6,
        "exporters hold {held} bytes"
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
    // The Collector's memory_limiter families count what the budget refused (queue pressure,
    // the other retryable refusal, is the receivers' alone) and what went in past it.
    let limiter = [("processor", "memory_limiter")];
    let limiter_refused =
        gateway.metric("otelcol_processor_memory_limiter_refused_spans", &limiter);
    assert!(
        limiter_refused > 0.0 && limiter_refused <= (refused * 200) as f64,
        "{limiter_refused} refused by the limiter of {} refused:\n{}",
        refused * 200,
        gateway.metrics()
    );
    assert_eq!(
        gateway.metric("otelcol_processor_memory_limiter_accepted_spans", &limiter),
        accepted_spans as f64
    );

    // Logs go to the receiving shard's own pipeline: whichever shard takes the connection is
    // full now, so they are refused as well, and counted.
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("hello".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    assert_eq!(post(gateway.http, "/v1/logs", &logs), 429);
    assert_eq!(
        gateway.metric("otelcol_receiver_refused_log_records", &[]),
        1.0
    );

    relay.paused.store(false, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while gateway.metric("otelcol_exporter_sent_spans", &[]) < accepted_spans as f64 {
        assert!(
            Instant::now() < deadline,
            "not all exported:\n{}",
            gateway.metrics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Drained: nothing held, so the budget takes data again.
    assert_eq!(gateway.metric("tailgate_shard_export_bytes", &[]), 0.0);
    assert_eq!(post(gateway.http, "/v1/logs", &logs), 200);
    assert_eq!(gateway.metric("tailgate_dropped_spans", &[]), 0.0);
    assert!(gateway.stop().success());
    let result = sink.stop().expect("sink report");
    assert_eq!(result.report["spans_received"], accepted_spans);
    assert_eq!(result.report["duplicates"], 0);
}

/// The budget bounds the process, not only what the shards hold: the process's resident memory
/// less what they hold is taken off each shard's share. The 8 MiB budget here is smaller than
/// the process alone, so each shard keeps its floor, a quarter of its 4 MiB share, and a
/// stalled upstream is refused once a shard's exporter holds 1 MiB, never its 4 MiB; with
/// `memory_budget_whole_process: false` the same load is refused only at the full share.
#[test]
fn the_budget_leaves_room_for_the_process_and_refuses_before_the_share_is_held() {
    const SHARE: f64 = (4u64 << 20) as f64;
    const FLOOR: f64 = SHARE / 4.0;
    // Most bytes a shard's exporter holds when the first request is refused, for each setting.
    let held_at_refusal = |whole_process: bool| -> f64 {
        let (sink, upstream, _) = start_sink();
        let relay = Relay::start(upstream);
        let gateway = start(relay.addr, whole_process);
        let limits = |g: &Gateway| {
            ["0", "1"].map(|s| {
                g.metric(
                    "tailgate_shard_memory_effective_limit_bytes",
                    &[("shard", s)],
                )
            })
        };
        if whole_process {
            assert!(
                wait_for(Duration::from_secs(30), || limits(&gateway) == [FLOOR; 2]),
                "the limits did not follow the process's memory:\n{}",
                gateway.metrics()
            );
            let rss = gateway.metric("tailgate_memory_rss_bytes", &[]);
            let overhead = gateway.metric("tailgate_memory_overhead_bytes", &[]);
            assert!(
                overhead >= 2.0 * (SHARE - FLOOR) && rss >= overhead,
                "RSS {rss}, overhead {overhead}"
            );
        } else {
            assert_eq!(limits(&gateway), [SHARE; 2]);
        }
        relay.paused.store(true, Ordering::Relaxed);
        let mut accepted_spans = 0u64;
        let mut refused = false;
        for r in 0..500u32 {
            match post(gateway.http, "/v1/traces", &traces_request(r * 1000 + 1)) {
                200 => accepted_spans += 200,
                429 => {
                    refused = true;
                    break;
                }
                other => panic!("unexpected status {other}"),
            }
        }
        let held = ["0", "1"]
            .map(|s| gateway.metric("tailgate_shard_export_bytes", &[("shard", s)]))
            .into_iter()
            .fold(0.0, f64::max);
        assert!(refused, "nothing refused:\n{}", gateway.metrics());
        assert!(
            gateway.metric(
                "otelcol_processor_memory_limiter_refused_spans",
                &[("processor", "memory_limiter")]
            ) > 0.0,
            "refused by the budget, not for another reason:\n{}",
            gateway.metrics()
        );
        if whole_process {
            assert_eq!(limits(&gateway), [FLOOR; 2], "held at the floor under load");
        }
        relay.paused.store(false, Ordering::Relaxed);
        assert!(
            wait_for(Duration::from_secs(30), || gateway
                .metric("otelcol_exporter_sent_spans", &[])
                >= accepted_spans as f64),
            "not all exported:\n{}",
            gateway.metrics()
        );
        assert!(gateway.stop().success());
        let result = sink.stop().expect("sink report");
        assert_eq!(result.report["spans_received"], accepted_spans);
        held
    };
    // A shard refuses at its floor; one batch (up to 1,100 spans of about 1 kB) may take it
    // past, and what its batcher held may follow: together still under the configured share.
    let whole = held_at_refusal(true);
    assert!(
        (FLOOR..SHARE).contains(&whole),
        "the first refusal came with {whole} bytes held, not between the floor and the share"
    );
    let held_only = held_at_refusal(false);
    assert!(
        held_only >= SHARE,
        "held bytes alone: refused with {held_only} bytes held, below the share"
    );
}
