//! Live reload on SIGHUP through the real binary: under steady load, a reload that changes the
//! tail-sampling policies and moves export to a new exporter loses nothing (every accepted span
//! reaches one of the two sinks, once), keeps the counters counting, and shows on /metrics; a
//! reload that cannot apply leaves the running configuration serving, logged and counted.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::gateway::{
    free_port, http_request, loopback, one_span_request, start_sink, wait_for, Gateway,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// A gateway configuration: two shards, tail sampling with `policy` (YAML list items, indented
/// by 6), exporting to `exporters` (name, address).
fn config(
    (grpc, http, admin): (SocketAddr, SocketAddr, SocketAddr),
    policy: &str,
    exporters: &[(&str, SocketAddr)],
) -> String {
    let defined: String = exporters
        .iter()
        .map(|(name, addr)| {
            format!("  {name}:\n    endpoint: {addr}\n    tls:\n      insecure: true\n")
        })
        .collect();
    let names = exporters
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
processors:
  tail_sampling:
    decision_wait: 1s
    policies:
{policy}
  batch:
    timeout: 50ms
exporters:
{defined}service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling, batch]
      exporters: [{names}]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0, {}]
",
        if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
            1
        } else {
            0
        }
    )
}

fn always(name: &str) -> String {
    format!("      - name: {name}\n        type: always_sample\n")
}

fn sighup(gateway: &Gateway) {
    // SAFETY: kill(2) on the gateway process this test spawned; no memory is involved.
    unsafe {
        libc::kill(gateway.pid() as i32, libc::SIGHUP);
    }
}

/// One request of `traces` traces of 3 spans each, trace ids from `first`.
fn request(first: u64, traces: u64) -> Vec<u8> {
    let spans = (first..first + traces)
        .flat_map(|t| {
            (0..3u64).map(move |s| {
                let mut trace_id = vec![0u8; 16];
                trace_id[..8].copy_from_slice(&t.to_be_bytes());
                trace_id[8] = 0x5a;
                Span {
                    trace_id,
                    span_id: (t * 4 + s + 1).to_be_bytes().to_vec(),
                    name: format!("op-{s}"),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    ..Default::default()
                }
            })
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn post(addr: SocketAddr, body: &[u8]) -> u16 {
    http_request(
        addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        body,
    )
    .map_or(0, |(status, _, _)| status)
}

#[test]
fn a_reload_under_steady_load_loses_nothing_and_keeps_counting() {
    let (sink_a, a, _) = start_sink();
    let (sink_b, b, _) = start_sink();
    let addrs = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let gateway = Gateway::start_with_config(
        &config(addrs, &always("keep-all"), &[("otlp/a", a)]),
        addrs.0,
        addrs.1,
        addrs.2,
    );

    // Steady load from another thread: 20 traces a request, as fast as answered.
    let accepted = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let load = std::thread::spawn({
        let (accepted, running, http) = (accepted.clone(), running.clone(), gateway.http);
        move || {
            let mut next = 0u64;
            while running.load(Ordering::Relaxed) {
                if post(http, &request(next, 20)) == 200 {
                    accepted.fetch_add(60, Ordering::Relaxed);
                }
                next += 20;
            }
        }
    });
    // Until traces decided by the first policy have left through the first exporter.
    assert!(wait_for(Duration::from_secs(20), || sink_a
        .spans_received()
        > 0));

    // New policies under a new name, and export moved to a new exporter: traces buffered now
    // are decided by the new policy and leave through the new exporter.
    std::fs::write(
        gateway.config_path(),
        config(addrs, &always("keep-everything"), &[("otlp/b", b)]),
    )
    .unwrap();
    sighup(&gateway);
    assert!(
        wait_for(Duration::from_secs(20), || gateway
            .metric("tailgate_config_reloads", &[])
            == 1.0),
        "{}\n{}",
        gateway.stderr(),
        gateway.metrics()
    );
    let at_reload = accepted.load(Ordering::Relaxed);
    assert!(wait_for(Duration::from_secs(20), || accepted
        .load(Ordering::Relaxed)
        >= at_reload + 3_000));
    running.store(false, Ordering::Relaxed);
    load.join().unwrap();
    let accepted = accepted.load(Ordering::Relaxed);

    // Everything accepted arrives: a decision wait, then the batches.
    assert!(
        wait_for(Duration::from_secs(30), || {
            sink_a.spans_received() + sink_b.spans_received() >= accepted
        }),
        "sinks {} + {} of {accepted}:\n{}",
        sink_a.spans_received(),
        sink_b.spans_received(),
        gateway.metrics()
    );
    let metrics = gateway.metrics();
    // The receivers' counts span the reload (no reset), and so do the sampler's.
    assert_eq!(
        common::gateway::metric_value(&metrics, "otelcol_receiver_accepted_spans", &[]),
        accepted as f64,
        "{metrics}"
    );
    // Every trace decided once, across the reload (a removed policy's own series goes with
    // it; the node-wide count stays).
    assert_eq!(
        common::gateway::metric_value(
            &metrics,
            "otelcol_processor_tail_sampling_global_count_traces_sampled",
            &[("sampled", "true")]
        ),
        (accepted / 3) as f64,
        "{metrics}"
    );
    assert!(
        common::gateway::metric_value(
            &metrics,
            "otelcol_processor_tail_sampling_count_traces_sampled",
            &[("policy", "keep-everything"), ("sampled", "true")]
        ) > 0.0,
        "{metrics}"
    );
    assert_eq!(
        common::gateway::metric_value(&metrics, "tailgate_config_last_reload_success", &[]),
        1.0
    );
    assert_eq!(
        common::gateway::metric_value(&metrics, "tailgate_config_reload_failures", &[]),
        0.0
    );
    assert_eq!(
        common::gateway::metric_value(&metrics, "tailgate_dropped_spans", &[]),
        0.0,
        "{metrics}"
    );
    let log = gateway.stderr();
    assert!(
        log.contains("reload: ") && log.contains("took effect on 2 shard(s)"),
        "{log}"
    );
    assert!(gateway.stop().success());
    let (got_a, got_b) = (sink_a.stop().unwrap(), sink_b.stop().unwrap());
    let spans_a = got_a.report["spans_received"].as_u64().unwrap();
    let spans_b = got_b.report["spans_received"].as_u64().unwrap();
    assert_eq!(spans_a + spans_b, accepted, "every accepted span, once");
    assert!(
        spans_a > 0 && spans_b > 0,
        "{spans_a} before, {spans_b} after"
    );
    assert_eq!(got_a.report["duplicates"], 0);
    assert_eq!(got_b.report["duplicates"], 0);
}

#[test]
fn a_reload_that_cannot_apply_leaves_the_running_configuration_serving() {
    let (sink, a, _) = start_sink();
    let addrs = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let good = config(addrs, &always("keep-all"), &[("otlp/a", a)]);
    let gateway = Gateway::start_with_config(&good, addrs.0, addrs.1, addrs.2);
    let failures = |n: f64| {
        wait_for(Duration::from_secs(20), || {
            gateway.metric("tailgate_config_reload_failures", &[]) == n
        })
    };

    // A file that does not parse.
    std::fs::write(gateway.config_path(), "receivers: [\n").unwrap();
    sighup(&gateway);
    assert!(failures(1.0), "{}", gateway.stderr());
    assert_eq!(
        gateway.metric("tailgate_config_last_reload_success", &[]),
        0.0
    );
    // A change that needs a restart: another receiver address.
    let moved = config(
        (loopback(free_port()), addrs.1, addrs.2),
        &always("keep-all"),
        &[("otlp/a", a)],
    );
    std::fs::write(gateway.config_path(), moved).unwrap();
    sighup(&gateway);
    assert!(failures(2.0), "{}", gateway.stderr());
    let log = gateway.stderr();
    assert!(
        log.contains("reload of") && log.contains("receivers changed"),
        "{log}"
    );
    // The running configuration still serves.
    assert_eq!(post(gateway.http, &one_span_request(9, 1, "after")), 200);
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received() >= 1));

    // And a good file applies.
    std::fs::write(
        gateway.config_path(),
        config(addrs, &always("renamed"), &[("otlp/a", a)]),
    )
    .unwrap();
    sighup(&gateway);
    assert!(wait_for(Duration::from_secs(20), || gateway
        .metric("tailgate_config_reloads", &[])
        == 1.0));
    assert_eq!(
        gateway.metric("tailgate_config_last_reload_success", &[]),
        1.0
    );
    assert!(gateway.stop().success());
    sink.stop().unwrap();
}
