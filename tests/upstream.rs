//! A failing upstream is visible, through the real binary: the first failed attempt is logged
//! at once (not when a batch runs out of retries minutes later) with the endpoint, the error and
//! what waits in the queue; the recovery is logged too; `tailgate_exporter_upstream_failing`
//! shows it per shard; and a shutdown that leaves accepted data unsent says how much and exits
//! 75 instead of 0.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::gateway::{free_port, loopback, start_sink, wait_for, Gateway, Relay};

/// The standard one-shard configuration exporting to `upstream`, each attempt bounded by 300 ms.
fn start(upstream: SocketAddr) -> Gateway {
    Gateway::start_exporting_with(upstream, "    timeout: 300ms\n")
}

fn post_span(gateway: &Gateway, id: u64) {
    gateway.post_one_span(3, id);
}

#[test]
fn an_upstream_that_stops_answering_is_logged_at_once_and_so_is_its_recovery() {
    let (sink, sink_grpc, _) = start_sink();
    let relay = Relay::start(sink_grpc);
    let gateway = start(relay.addr);
    relay.paused.store(true, Ordering::Relaxed);
    post_span(&gateway, 1);

    // The first attempt times out after 300 ms: logged then, not after max_elapsed_time.
    assert!(
        wait_for(Duration::from_secs(10), || gateway
            .stderr()
            .contains("the upstream is failing")),
        "{}",
        gateway.stderr()
    );
    let log = gateway.stderr();
    assert!(
        log.contains(&format!("exporter otlp ({})", relay.addr)),
        "{log}"
    );
    assert!(log.contains("no response within 300ms"), "{log}");
    assert_eq!(
        gateway.metric(
            "tailgate_exporter_upstream_failing",
            &[("exporter", "otlp")]
        ),
        1.0
    );
    // Retries go on quietly: one line, not one per attempt.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        gateway.stderr().matches("the upstream is failing").count(),
        1,
        "{}",
        gateway.stderr()
    );

    relay.paused.store(false, Ordering::Relaxed);
    assert!(
        wait_for(Duration::from_secs(20), || gateway
            .stderr()
            .contains("the upstream answers again")),
        "{}",
        gateway.stderr()
    );
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received() >= 1));
    assert_eq!(
        gateway.metric(
            "tailgate_exporter_upstream_failing",
            &[("exporter", "otlp")]
        ),
        0.0
    );
    let status = gateway.stop();
    assert!(status.success(), "nothing was lost: {status}");
    sink.stop().unwrap();
}

#[test]
fn a_shutdown_that_leaves_accepted_data_unsent_says_so_and_exits_75() {
    // Nothing listens there: every attempt is refused.
    let nowhere = loopback(free_port());
    let gateway = start(nowhere);
    for id in 1..=5 {
        post_span(&gateway, id);
    }
    assert!(
        wait_for(Duration::from_secs(10), || gateway
            .stderr()
            .contains("the upstream is failing")),
        "{}",
        gateway.stderr()
    );
    let log_before = gateway.stderr();
    assert!(log_before.contains(&format!("({nowhere})")), "{log_before}");
    let (status, log) = gateway.stop_with_log();
    assert_eq!(status.code(), Some(75), "{status}\n{log}");
    assert!(
        log.contains("stopped, but 5 span(s), 0 metric point(s) and 0 log record(s) it had accepted were still unsent"),
        "{log}"
    );
    assert!(
        !log.contains("drained, everything accepted was sent"),
        "{log}"
    );
}

#[test]
fn a_stalled_destination_set_to_drop_fills_only_its_own_queue() {
    let (sink, sink_grpc, _) = start_sink();
    let relay = Relay::start(sink_grpc);
    relay.paused.store(true, Ordering::Relaxed);
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
  batch:
    timeout: 20ms
exporters:
  otlp/healthy:
    endpoint: {sink_grpc}
    tls: {{insecure: true}}
  otlp/stalled:
    endpoint: {}
    tls: {{insecure: true}}
    timeout: 300ms
    sending_queue:
      num_consumers: 1
      queue_size: 2
      block_on_overflow: false
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp/healthy, otlp/stalled]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0]
",
        relay.addr
    );
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    for id in 1..=40 {
        post_span(&gateway, id);
        std::thread::sleep(Duration::from_millis(25));
    }
    // The healthy destination gets everything, though the other has stopped answering.
    assert!(
        wait_for(Duration::from_secs(20), || sink.spans_received() >= 40),
        "{} of 40 at the healthy sink:\n{}",
        sink.spans_received(),
        gateway.metrics()
    );
    let stalled = [("exporter", "otlp/stalled")];
    let dropped = gateway.metric("otelcol_exporter_enqueue_failed_spans", &stalled);
    assert!(dropped > 0.0, "{}", gateway.metrics());
    assert_eq!(
        gateway.metric("tailgate_dropped_spans", &[("reason", "queue_full")]),
        dropped
    );
    assert_eq!(
        gateway.metric(
            "otelcol_exporter_enqueue_failed_spans",
            &[("exporter", "otlp/healthy")]
        ),
        0.0
    );
    assert_eq!(
        gateway.metric("otelcol_receiver_refused_spans", &[]),
        0.0,
        "no push-back to clients"
    );
    // What the stalled exporter still holds is lost at shutdown, and the exit status says so.
    let (status, _) = gateway.stop_with_log();
    assert_eq!(status.code(), Some(75));
    sink.stop().unwrap();
}

/// An upstream given by name follows the name (a DNS failover, a headless Service's pods
/// replaced): the gateway resolves through a DNS server the test controls (its own
/// resolv.conf in a private mount namespace); when the name moves to another address and the
/// old one stops answering, the exporter resolves again, says so in the log, and delivers there,
/// losing nothing.
#[test]
fn an_upstream_name_that_moves_to_another_address_is_followed() {
    use std::net::{IpAddr, Ipv4Addr};
    let port = free_port();
    let at = |host: u8| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), port);
    let (first, second) = (at(121), at(122));
    let first_sink = common::gateway::start_sink_at(first);
    let second_sink = common::gateway::start_sink_at(second);
    let dns = common::dns::DnsServer::start(&[Ipv4Addr::new(127, 0, 0, 121)]);
    let (config, grpc, http, admin) = Gateway::standard_config(loopback(port), 1, "", "");
    let named = format!("endpoint: {}:{port}", common::dns::DnsServer::NAME);
    let config = config.replace(&format!("endpoint: {}", loopback(port)), &named);
    assert!(config.contains(&named), "{config}");
    let gateway =
        common::dns::start_with_resolver(&config, (grpc, http, admin), &dns.resolv_conf());

    post_span(&gateway, 1);
    assert!(
        wait_for(Duration::from_secs(20), || first_sink.spans_received() >= 1),
        "{}",
        gateway.stderr()
    );
    // The name moves; the old address goes away.
    dns.set(&[Ipv4Addr::new(127, 0, 0, 122)]);
    first_sink.stop().expect("stop the first sink");
    for id in 2..=11 {
        post_span(&gateway, id);
    }
    assert!(
        wait_for(Duration::from_secs(60), || second_sink.spans_received()
            >= 10),
        "the new address got {} of 10:\n{}",
        second_sink.spans_received(),
        gateway.stderr()
    );
    assert!(
        gateway.stderr().contains("now resolves to"),
        "the change is logged:\n{}",
        gateway.stderr()
    );
    assert_eq!(
        gateway.metric("otelcol_exporter_send_failed_spans", &[]),
        0.0
    );
    assert!(gateway.stop().success());
    second_sink.stop().expect("stop the second sink");
}
