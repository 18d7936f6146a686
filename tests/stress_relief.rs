//! Stress relief end to end: the real binary with `tail_sampling.stress_relief`, clients on
//! loopback sockets, and `tailgate-bench`'s sink behind a relay that can stop reading.
//!
//! The load: a small memory budget (16 MiB, 8 MiB a shard), `always_sample`, and an upstream
//! that stops reading, so that everything kept piles up in the exporters. 40 MB of spans is
//! then far more than a shard may hold, and a gateway without stress relief refuses; with
//! stress relief at 10 %, a shard that reaches its activation level decides new traces at
//! arrival, keeps a tenth of what follows, and holds well under its budget: nothing is refused.
//!
//! Which traces stress relief keeps is computed here, independently of the gateway's code: the
//! OTEP-235 rule written out again (randomness = the trace id's last 7 bytes, kept when at least
//! `(1 - p) * 2^56`).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::gateway::{
    free_port, http_request, loopback, received_spans, start_sink, wait_for, Gateway, Relay,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// Traces a request starts (and finishes the previous request's).
const TRACES_PER_REQUEST: u32 = 50;
/// Requests: each carries spans 0-1 of its traces and spans 2-3 of the previous request's.
const REQUESTS: u32 = 200;
const SPANS_PER_TRACE: usize = 4;
/// What stress relief keeps.
const PERCENT: f64 = 10.0;

/// The id of trace `k`: `k` in front (and a byte that keeps trace 0's id from being all zeros,
/// which is invalid), a mix of it behind, so the randomness is spread.
fn trace_id(k: u32) -> [u8; 16] {
    let mut x = u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&k.to_be_bytes());
    id[4] = 0x5a;
    id[8..].copy_from_slice(&x.to_be_bytes());
    id
}

/// OTEP 235, written out: the trace id's last 56 bits against `(1 - p) * 2^56`.
fn relief_keeps(id: &[u8; 16], percent: f64) -> bool {
    let randomness = u64::from_be_bytes(id[8..].try_into().unwrap()) & ((1 << 56) - 1);
    let threshold = ((1.0 - percent / 100.0) * (1u64 << 56) as f64).round() as u64;
    randomness >= threshold
}

/// Span `n` of trace `k`, about 1 KB.
fn span(k: u32, n: u8, pad: &str) -> Span {
    let id = trace_id(k);
    Span {
        trace_id: id.to_vec(),
        span_id: vec![n + 1, id[0], id[1], id[2], id[3], 0, 0, 1],
        parent_span_id: if n == 0 {
            Vec::new()
        } else {
            vec![1, id[0], id[1], id[2], id[3], 0, 0, 1]
        },
        name: format!("op-{n}"),
        start_time_unix_nano: 1_750_000_000_000_000_000,
        end_time_unix_nano: 1_750_000_000_005_000_000,
        attributes: vec![KeyValue {
            key: "pad".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(pad.to_string())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Request `r`: spans 0-1 of traces started by `r`, spans 2-3 of those started by `r - 1`.
fn request(r: u32, pad: &str) -> (Vec<u8>, u64) {
    let batch = |r: u32| r * TRACES_PER_REQUEST..(r + 1) * TRACES_PER_REQUEST;
    let mut spans: Vec<Span> = Vec::new();
    if r < REQUESTS {
        spans.extend(batch(r).flat_map(|k| [span(k, 0, pad), span(k, 1, pad)]));
    }
    if let Some(previous) = r.checked_sub(1) {
        spans.extend(batch(previous).flat_map(|k| [span(k, 2, pad), span(k, 3, pad)]));
    }
    let count = spans.len() as u64;
    let body = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    (body, count)
}

/// A gateway (2 shards) with a 16 MiB budget of held bytes (the process alone is larger, so
/// the budget does not bound it here) and `always_sample`, exporting to `upstream` through a
/// queue of 4 batches; `stress_relief` is YAML under `tail_sampling`.
fn start(upstream: SocketAddr, stress_relief: &str) -> Gateway {
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
    limit_mib: 16
    spike_limit_mib: 4
  tail_sampling:
    decision_wait: 5s
    num_traces: 100000
    decision_cache:
      sampled_cache_size: 100000
      non_sampled_cache_size: 100000
    policies:
      - name: all
        type: always_sample
{stress_relief}
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
    sending_queue:
      queue_size: 4
      num_consumers: 2
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, tail_sampling, batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0, 1]
  memory_budget_whole_process: false
"
    );
    Gateway::start_with_config(&config, grpc, http, admin)
}

const STRESS_RELIEF: &str = "    stress_relief:
      mode: monitor
      activation_level: 40
      deactivation_level: 20
      sampling_percentage: 10
      minimum_activation_duration: 1s";

/// Offers the whole load; returns (spans accepted, spans refused).
fn offer(gateway: &Gateway) -> (u64, u64) {
    let pad = "p".repeat(900);
    let (mut accepted, mut refused) = (0, 0);
    for r in 0..=REQUESTS {
        let (body, spans) = request(r, &pad);
        let status = http_request(
            gateway.http,
            "POST",
            "/v1/traces",
            &[("Content-Type", "application/x-protobuf")],
            &body,
        )
        .expect("POST /v1/traces")
        .0;
        match status {
            200 => accepted += spans,
            429 => refused += spans,
            other => panic!("unexpected status {other}"),
        }
    }
    (accepted, refused)
}

/// The load that a gateway without stress relief refuses (its budget fills with what the
/// stalled upstream does not take) is taken whole with stress relief on: the gauge and counters
/// show it working, every span is accounted for, every trace at the sink is complete, and the
/// traces missing are exactly those whose first span stress relief met and whose id is below
/// the threshold.
#[test]
fn stress_relief_takes_a_load_that_is_refused_without_it_and_keeps_traces_whole() {
    // Without stress relief: refused once the budget is full.
    {
        let (sink, upstream, _) = start_sink();
        let relay = Relay::start(upstream);
        let gateway = start(relay.addr, "");
        relay.paused.store(true, Ordering::Relaxed);
        let (accepted, refused) = offer(&gateway);
        assert!(
            refused > 0,
            "nothing refused without stress relief ({accepted} accepted):\n{}",
            gateway.metrics()
        );
        assert_eq!(
            gateway.metric("tailgate_sampling_stress_relief_activations", &[]),
            0.0
        );
        relay.paused.store(false, Ordering::Relaxed);
        assert!(gateway.stop().success());
        drop(sink);
    }

    let (sink, upstream, _) = start_sink();
    let relay = Relay::start(upstream);
    let gateway = start(relay.addr, STRESS_RELIEF);
    relay.paused.store(true, Ordering::Relaxed);
    let (accepted, refused) = offer(&gateway);
    assert_eq!(
        refused,
        0,
        "refused with stress relief:\n{}",
        gateway.metrics()
    );
    let total = u64::from(REQUESTS * TRACES_PER_REQUEST) * SPANS_PER_TRACE as u64;
    assert_eq!(accepted, total);
    // Both shards filled their buffers to the activation level and are relieved now.
    let relief = |name: &str, decision: &str| {
        gateway.metric(
            &format!("tailgate_sampling_stress_relief_{name}"),
            &[("decision", decision)],
        )
    };
    assert_eq!(
        gateway.metric("tailgate_sampling_stress_relief_active", &[]),
        2.0,
        "{}",
        gateway.metrics()
    );
    assert!(gateway.metric("tailgate_sampling_stress_relief_activations", &[]) >= 2.0);
    assert!(relief("traces", "sampled") > 0.0 && relief("traces", "not_sampled") > 0.0);
    let stderr = gateway.stderr();
    assert!(
        stderr.contains("stress relief on for shard"),
        "no activation line:\n{stderr}"
    );

    // The upstream answers again: what was kept is exported, the buffered traces are decided
    // at their wait, and with the shards' memory back down stress relief ends.
    relay.paused.store(false, Ordering::Relaxed);
    assert!(
        wait_for(Duration::from_secs(60), || {
            gateway.metric("tailgate_sampling_stress_relief_active", &[]) == 0.0
                && gateway.metric("tailgate_shard_buffered_spans", &[]) == 0.0
        }),
        "stress relief did not end:\n{}",
        gateway.metrics()
    );
    // Accounting, once everything kept is exported: accepted = sent + decided out + dropped
    // (by reason) + buffered.
    let decided_out = |g: &Gateway| {
        g.metric("tailgate_decided_spans", &[("decision", "not_sampled")])
            + g.metric("tailgate_decided_spans", &[("decision", "dropped")])
            + g.metric(
                "tailgate_sampling_late_spans",
                &[("decision", "not_sampled")],
            )
            + g.metric(
                "tailgate_sampling_stress_relief_spans",
                &[("decision", "not_sampled")],
            )
    };
    let accounted = |g: &Gateway| {
        g.metric("otelcol_exporter_sent_spans", &[])
            + decided_out(g)
            + g.metric("tailgate_dropped_spans", &[])
            + g.metric("tailgate_shard_buffered_spans", &[])
    };
    assert!(
        wait_for(Duration::from_secs(60), || accounted(&gateway)
            >= accepted as f64),
        "not all exported:\n{}",
        gateway.metrics()
    );
    assert_eq!(
        gateway.metric("otelcol_receiver_accepted_spans", &[]),
        accepted as f64
    );
    assert_eq!(accounted(&gateway), accepted as f64);
    assert_eq!(gateway.metric("tailgate_dropped_spans", &[]), 0.0);
    assert_eq!(
        decided_out(&gateway),
        relief("spans", "not_sampled"),
        "always_sample: only stress relief leaves spans out"
    );
    // The node's log tells, within its interval, that no shard is relieved any more.
    assert!(
        wait_for(Duration::from_secs(30), || gateway
            .stderr()
            .contains("0 of 2 shards in stress relief")),
        "no deactivation line:\n{}",
        gateway.stderr()
    );
    let relief_traces = relief("traces", "sampled") + relief("traces", "not_sampled");
    let (relief_kept_spans, relief_dropped_spans) =
        (relief("spans", "sampled"), relief("spans", "not_sampled"));
    assert!(gateway.stop().success());

    // At the sink: every trace whole, each span once; missing exactly the traces stress relief
    // did not keep.
    let result = sink.stop().expect("sink report");
    let mut got: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for (_, span) in received_spans(&result) {
        got.entry(span.trace_id).or_default().push(span.name);
    }
    let whole: Vec<String> = (0..SPANS_PER_TRACE).map(|n| format!("op-{n}")).collect();
    for (id, names) in &mut got {
        names.sort();
        assert_eq!(names, &whole, "trace {id:02x?} is not whole");
    }
    let traces = REQUESTS * TRACES_PER_REQUEST;
    let missing: Vec<u32> = (0..traces)
        .filter(|&k| !got.contains_key(trace_id(k).as_slice()))
        .collect();
    for &k in &missing {
        assert!(
            !relief_keeps(&trace_id(k), PERCENT),
            "trace {k} clears the threshold but is missing"
        );
    }
    assert_eq!(
        missing.len() as f64 * SPANS_PER_TRACE as f64,
        relief_dropped_spans
    );
    // Stress relief decided most traces (it came on early in the load), and kept about 10 %.
    let kept_share = 1.0 - missing.len() as f64 / relief_traces;
    assert!(
        relief_traces > f64::from(traces) / 2.0,
        "{relief_traces} of {traces}"
    );
    assert!(
        (0.05..0.15).contains(&kept_share),
        "stress relief kept {kept_share} of {relief_traces} traces"
    );
    assert_eq!(
        relief_kept_spans,
        (relief_traces - missing.len() as f64) * SPANS_PER_TRACE as f64
    );
    assert_eq!(
        got.len() + missing.len(),
        traces as usize,
        "nothing but the load's traces"
    );
}

/// `mode: always`: nothing is buffered from the start; each trace is forwarded or dropped as its
/// spans arrive, by its id; no policy sees any.
#[test]
fn always_decides_every_trace_at_arrival() {
    let (sink, upstream, _) = start_sink();
    let gateway = start(
        upstream,
        "    stress_relief:
      mode: always
      sampling_percentage: 10",
    );
    assert_eq!(
        gateway.metric("tailgate_sampling_stress_relief_active", &[]),
        2.0
    );
    assert!(gateway
        .stderr()
        .contains("stress relief is always on (tail_sampling.stress_relief.mode: always)"));
    let pad = "p".repeat(100);
    let requests = 4;
    for r in 0..=requests {
        let (body, _) = request(r, &pad);
        let status = http_request(
            gateway.http,
            "POST",
            "/v1/traces",
            &[("Content-Type", "application/x-protobuf")],
            &body,
        )
        .expect("POST /v1/traces")
        .0;
        assert_eq!(status, 200);
    }
    // Traces of the first `requests` batches sent whole; the last batch's first wave only.
    let kept = |batches: std::ops::Range<u32>| {
        batches
            .flat_map(|b| b * TRACES_PER_REQUEST..(b + 1) * TRACES_PER_REQUEST)
            .filter(|&k| relief_keeps(&trace_id(k), PERCENT))
            .count() as f64
    };
    let kept_spans =
        kept(0..requests) * SPANS_PER_TRACE as f64 + kept(requests..requests + 1) * 2.0;
    assert!(
        wait_for(Duration::from_secs(30), || gateway
            .metric("otelcol_exporter_sent_spans", &[])
            >= kept_spans),
        "{}",
        gateway.metrics()
    );
    assert_eq!(
        gateway.metric("otelcol_exporter_sent_spans", &[]),
        kept_spans
    );
    assert_eq!(gateway.metric("tailgate_shard_buffered_spans", &[]), 0.0);
    assert_eq!(
        gateway.metric(
            "tailgate_sampling_stress_relief_traces",
            &[("decision", "sampled")]
        ),
        kept(0..requests + 1)
    );
    assert_eq!(
        gateway.metric(
            "otelcol_processor_tail_sampling_global_count_traces_sampled",
            &[]
        ),
        0.0,
        "no policy decided anything"
    );
    assert_eq!(
        gateway.metric("tailgate_sampling_stress_relief_activations", &[]),
        0.0,
        "always on is not an activation"
    );
    assert!(gateway.stop().success());
    drop(sink);
}
