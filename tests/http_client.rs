//! The `otlphttp` exporter's connection pool under confighttp's keys, through the real binary,
//! counted at a relay in front of the sink: kept connections are reused, `keepalive.enabled:
//! false` opens one per request, and `idle_conn_timeout` closes what stays unused.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::gateway::{pipeline_config, start_sink, traces_config, wait_for, Gateway, Relay};

fn start(pool: &str, upstream: std::net::SocketAddr) -> Gateway {
    let exporter = format!("  otlphttp:\n    endpoint: http://{upstream}\n{pool}");
    let (config, grpc, http, admin) = traces_config("otlphttp", &exporter);
    Gateway::start_with_config(&config, grpc, http, admin)
}

/// Posts one span and waits until the sink has `total` spans.
fn deliver(gateway: &Gateway, sink: &tailgate_bench::sink::Sink, id: u64, total: u64) {
    gateway.post_one_span(8, id);
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received() >= total));
}

#[test]
fn the_otlphttp_pool_follows_confighttps_keepalive_keys() {
    let (sink, _, sink_http) = start_sink();
    let cases = [
        ("default", ""),
        ("off", "    keepalive:\n      enabled: false\n"),
        ("deprecated off", "    disable_keep_alives: true\n"),
        (
            "short idle",
            "    keepalive:\n      idle_conn_timeout: 1s\n      max_idle_conns: 4\n",
        ),
    ];
    let mut total = 0;
    let mut runs = Vec::new();
    for (name, pool) in cases {
        let relay = Relay::start(sink_http);
        let gateway = start(pool, relay.addr);
        for id in 1..=3 {
            total += 1;
            deliver(&gateway, &sink, id, total);
        }
        runs.push((name, relay, gateway));
    }
    let accepted = |i: usize| runs[i].1.accepted.load(Ordering::Relaxed);
    // Three requests one after the other: one connection, kept; or one each with keep-alives
    // off, closed by the gateway after its answer.
    assert_eq!(accepted(0), 1);
    assert_eq!(accepted(1), 3);
    assert_eq!(accepted(2), 3);
    assert!(wait_for(Duration::from_secs(10), || runs[1]
        .1
        .closed_by_gateway
        .load(Ordering::Relaxed)
        == 3));
    assert_eq!(accepted(3), 1);

    // Unused for 1 s, the short-idle exporter's connection is closed by the gateway; the
    // default (90 s) keeps its own.
    let idle_from = Instant::now();
    assert!(wait_for(Duration::from_secs(10), || runs[3]
        .1
        .closed_by_gateway
        .load(Ordering::Relaxed)
        == 1));
    assert!(idle_from.elapsed() < Duration::from_secs(5));
    assert_eq!(runs[0].1.closed_by_gateway.load(Ordering::Relaxed), 0);
    // The next request opens a new connection.
    total += 1;
    deliver(&runs[3].2, &sink, 10, total);
    assert_eq!(accepted(3), 2);
    for (_, _, gateway) in runs {
        assert!(gateway.stop().success());
    }
    sink.stop().unwrap();
}

#[test]
fn an_exporters_sending_queue_batch_batches_its_pipeline() {
    let (sink, sink_grpc, _) = start_sink();
    // No batch processor: the exporter's own batching, as the Collector's newer configurations
    // write it, holds the spans until it has min_size of them (the flush timeout is far off).
    let (config, grpc, http, admin) = pipeline_config(
        "traces",
        false,
        &format!(
            "  otlp:\n    endpoint: {sink_grpc}\n    tls:\n      insecure: true\n    \
             sending_queue:\n      batch:\n        flush_timeout: 60s\n        min_size: 3\n"
        ),
        "otlp",
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    gateway.post_one_span(10, 1);
    gateway.post_one_span(10, 2);
    assert_eq!(sink.requests_received(), 0);
    gateway.post_one_span(10, 3);
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received() >= 3));
    // One export request carried all three.
    assert_eq!(sink.requests_received(), 1);
    assert!(gateway.stop().success());
    sink.stop().unwrap();
}
