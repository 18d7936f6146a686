//! The `loadbalancing` exporter through the real binary, over real sockets: a front tailgate
//! spreading traces over sinks on their own loopback addresses (127.0.0.2, .3, ...), as a tier
//! of gateways spreads them over peer nodes.
//!
//! - every trace lands whole on exactly one backend, and the backends share the load;
//! - a backend that stops: its traces go to the others, whole, and nothing accepted is lost;
//! - a backend that joins (a reload adding it): about 1/N of the traces move, all to it.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tailgate_bench::sink::Sink;

use common::dns::{start_with_resolver, DnsServer};
use common::gateway::{free_port, http_request, loopback, wait_for, Gateway};
use common::spread::{front_config, front_config_at, owners, request, spans_of_round, stop_all};

/// Spans per trace; each goes in a request of its own, so a trace's spans cross the front
/// gateway in different batches.
const SPANS_PER_TRACE: u64 = 3;

/// A sink keeping every request, listening for OTLP/gRPC on `127.0.0.<host>`.
fn sink_at(host: u8) -> (Sink, SocketAddr) {
    let grpc = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), free_port());
    (common::gateway::start_sink_at(grpc), grpc)
}

/// Sends every span of `traces`, one request per span index and chunk of 50 traces.
fn send(front: &Gateway, traces: std::ops::Range<u64>, round: u64) {
    for span in 0..SPANS_PER_TRACE {
        let mut first = traces.start;
        while first < traces.end {
            let last = (first + 50).min(traces.end);
            let (status, _, body) = http_request(
                front.http,
                "POST",
                "/v1/traces",
                &[("Content-Type", "application/x-protobuf")],
                &request(first..last, span, round),
            )
            .expect("post traces");
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            first = last;
        }
    }
}

fn received_total(sinks: &[&Sink]) -> u64 {
    sinks.iter().map(|s| s.spans_received()).sum()
}

#[test]
fn traces_spread_over_three_backends_each_whole_on_one() {
    let backends: Vec<(Sink, SocketAddr)> = (2..=4).map(sink_at).collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|(_, a)| *a).collect();
    let (config, grpc, http, admin) = front_config(&addrs);
    let front = Gateway::start_with_config(&config, grpc, http, admin);
    const TRACES: u64 = 600;
    send(&front, 0..TRACES, 1);
    let sinks: Vec<&Sink> = backends.iter().map(|(s, _)| s).collect();
    assert!(
        wait_for(Duration::from_secs(30), || received_total(&sinks)
            >= TRACES * SPANS_PER_TRACE),
        "received {} of {}",
        received_total(&sinks),
        TRACES * SPANS_PER_TRACE
    );
    let metrics = front.metrics();
    let metric =
        |name: &str, labels: &[(&str, &str)]| common::gateway::metric_value(&metrics, name, labels);
    assert_eq!(
        metric(
            "otelcol_exporter_sent_spans",
            &[("exporter", "loadbalancing")]
        ),
        (TRACES * SPANS_PER_TRACE) as f64
    );
    assert_eq!(
        metric(
            "otelcol_loadbalancer_num_backends",
            &[("resolver", "static")]
        ),
        6.0,
        "3 backends on each of 2 shards"
    );
    for addr in &addrs {
        let endpoint = addr.to_string();
        assert!(
            metric(
                "otelcol_loadbalancer_backend_outcome",
                &[("endpoint", endpoint.as_str()), ("success", "true")]
            ) > 0.0,
            "{endpoint}:\n{metrics}"
        );
        assert!(
            metric(
                "otelcol_loadbalancer_backend_latency_count",
                &[("endpoint", endpoint.as_str())]
            ) > 0.0
        );
    }
    assert_eq!(
        metric(
            "otelcol_loadbalancer_backend_outcome",
            &[("success", "false")]
        ),
        0.0
    );
    front.stop();

    let received = stop_all(backends.into_iter().map(|(s, _)| s).collect());
    let owners = owners(&received, 1);
    assert_eq!(owners.len() as u64, TRACES, "every trace arrived");
    for (trace, sinks) in &owners {
        assert_eq!(sinks.len(), 1, "trace {trace:?} reached sinks {sinks:?}");
    }
    assert_eq!(
        spans_of_round(&received, 1).len() as u64,
        TRACES * SPANS_PER_TRACE,
        "every span once"
    );
    let total_spans: usize = received
        .iter()
        .flat_map(|t| t.values())
        .map(BTreeSet::len)
        .sum();
    assert_eq!(
        total_spans as u64,
        TRACES * SPANS_PER_TRACE,
        "no duplicates"
    );
    for (sink, traces) in received.iter().enumerate() {
        let share = traces.len() as f64 / TRACES as f64;
        eprintln!("backend {sink}: {:.1} % of traces", share * 100.0);
        assert!(
            (0.2..0.47).contains(&share),
            "backend {sink} got {share} of the traces"
        );
    }
}

#[test]
fn a_stopped_backend_s_traces_go_to_the_others_whole_and_nothing_is_lost() {
    let mut backends: Vec<(Sink, SocketAddr)> = (5..=7).map(sink_at).collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|(_, a)| *a).collect();
    let (config, grpc, http, admin) = front_config(&addrs);
    let front = Gateway::start_with_config(&config, grpc, http, admin);
    const TRACES: u64 = 300;
    send(&front, 0..TRACES, 1);
    {
        let sinks: Vec<&Sink> = backends.iter().map(|(s, _)| s).collect();
        assert!(wait_for(Duration::from_secs(30), || received_total(&sinks)
            >= TRACES * SPANS_PER_TRACE));
    }

    // The third backend goes away; the same traces (new spans) are sent again.
    let (stopped, stopped_addr) = backends.pop().expect("three");
    let before_stop = stop_all(vec![stopped]);
    send(&front, 0..TRACES, 2);
    let sinks: Vec<&Sink> = backends.iter().map(|(s, _)| s).collect();
    // Its round-1 share reached it; round 2 must reach the others, all of it.
    assert!(
        wait_for(Duration::from_secs(60), || received_total(&sinks)
            >= TRACES * SPANS_PER_TRACE * 2
                - before_stop[0].values().map(BTreeSet::len).sum::<usize>()
                    as u64),
        "received {}:\n{}",
        received_total(&sinks),
        front.stderr()
    );
    let endpoint = stopped_addr.to_string();
    let metrics = front.metrics();
    let metric =
        |name: &str, labels: &[(&str, &str)]| common::gateway::metric_value(&metrics, name, labels);
    assert!(
        metric(
            "otelcol_loadbalancer_backend_outcome",
            &[("endpoint", endpoint.as_str()), ("success", "false")]
        ) > 0.0,
        "attempts to the stopped backend failed, and were counted"
    );
    assert_eq!(
        metric(
            "otelcol_exporter_send_failed_spans",
            &[("exporter", "loadbalancing")]
        ),
        0.0,
        "nothing was given up"
    );
    assert_eq!(metric("tailgate_dropped_spans", &[]), 0.0, "{metrics}");
    assert!(
        front
            .stderr()
            .contains("taken out of the ring, its data goes to the next backends"),
        "{}",
        front.stderr()
    );
    front.stop();

    let mut received = stop_all(backends.into_iter().map(|(s, _)| s).collect());
    let stopped_round_1: BTreeSet<Vec<u8>> = before_stop[0].keys().cloned().collect();
    assert!(
        !stopped_round_1.is_empty(),
        "the stopped backend had owned traces"
    );
    received.extend(before_stop);
    assert_eq!(
        spans_of_round(&received, 2).len() as u64,
        TRACES * SPANS_PER_TRACE,
        "every round-2 span reached a running backend"
    );
    let round_2 = owners(&received, 2);
    for (trace, sinks) in &round_2 {
        assert_eq!(sinks.len(), 1, "trace {trace:?} split over {sinks:?}");
        assert!(!sinks.contains(&2), "nothing reached the stopped backend");
    }
    // The traces that stayed with a running backend did not move.
    let round_1 = owners(&received, 1);
    for (trace, sinks) in &round_1 {
        if !stopped_round_1.contains(trace) {
            assert_eq!(&round_2[trace], sinks, "a running backend's trace moved");
        }
    }
}

#[test]
fn a_backend_joining_three_takes_about_a_quarter_of_the_traces_and_only_those_move() {
    let mut backends: Vec<(Sink, SocketAddr)> = (8..=11).map(sink_at).collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|(_, a)| *a).collect();
    let (config, grpc, http, admin) = front_config(&addrs[..3]);
    let front = Gateway::start_with_config(&config, grpc, http, admin);
    const TRACES: u64 = 800;
    send(&front, 0..TRACES, 1);
    {
        let sinks: Vec<&Sink> = backends.iter().map(|(s, _)| s).collect();
        assert!(wait_for(Duration::from_secs(30), || received_total(&sinks)
            >= TRACES * SPANS_PER_TRACE));
    }

    // The fourth joins: the configuration now lists it, and a reload takes it in.
    let four = front_config_at(&addrs, grpc, http, admin);
    std::fs::write(front.config_path(), four).expect("rewrite the config");
    // SAFETY: kill(2) on the gateway process this test spawned; no memory is involved.
    unsafe {
        libc::kill(front.pid() as i32, libc::SIGHUP);
    }
    assert!(
        wait_for(Duration::from_secs(20), || front
            .metric("tailgate_config_reloads", &[])
            >= 1.0),
        "{}",
        front.stderr()
    );
    send(&front, 0..TRACES, 2);
    {
        let sinks: Vec<&Sink> = backends.iter().map(|(s, _)| s).collect();
        assert!(wait_for(Duration::from_secs(30), || received_total(&sinks)
            >= TRACES * SPANS_PER_TRACE * 2));
    }
    front.stop();
    let joined = backends.len() - 1;
    let received = stop_all(backends.drain(..).map(|(s, _)| s).collect());
    let (before, after) = (owners(&received, 1), owners(&received, 2));
    let mut moved = 0;
    for (trace, sinks) in &after {
        assert_eq!(sinks.len(), 1, "trace {trace:?} split over {sinks:?}");
        let was = &before[trace];
        assert!(
            !was.contains(&joined),
            "the fourth owned nothing before it joined"
        );
        if was != sinks {
            moved += 1;
            assert!(
                sinks.contains(&joined),
                "a trace moved between staying backends"
            );
        }
    }
    let share = moved as f64 / TRACES as f64;
    eprintln!(
        "3 -> 4 backends: {moved} of {TRACES} traces moved ({:.1} %, ideal 25 %)",
        share * 100.0
    );
    assert!((0.15..0.35).contains(&share), "moved {share}");
}

#[test]
fn dns_membership_changes_move_about_one_nth_and_lose_nothing() {
    let port = free_port();
    let ips: Vec<Ipv4Addr> = (31..=33).map(|h| Ipv4Addr::new(127, 0, 0, h)).collect();
    let mut sinks: Vec<Sink> = ips
        .iter()
        .map(|ip| common::gateway::start_sink_at(SocketAddr::new(IpAddr::V4(*ip), port)))
        .collect();
    let dns = DnsServer::start(&ips[..2]);
    let (static_config, grpc, http, admin) = front_config(&[loopback(port)]);
    let config = static_config.replace(
        &format!("      static:\n        hostnames: [\"{}\"]\n", loopback(port)),
        &format!(
            "      dns:\n        hostname: {}\n        port: {port}\n        interval: 100ms\n        timeout: 1s\n",
            DnsServer::NAME
        ),
    );
    assert!(config.contains("dns:"), "{config}");
    let front = start_with_resolver(&config, (grpc, http, admin), &dns.resolv_conf());
    let backends = |n: f64| {
        wait_for(Duration::from_secs(30), || {
            front.metric("otelcol_loadbalancer_num_backends", &[("resolver", "dns")]) == n * 2.0
        })
    };
    let all_received = |spans: u64| {
        let sinks: Vec<&Sink> = sinks.iter().collect();
        wait_for(Duration::from_secs(30), || received_total(&sinks) >= spans)
    };
    const TRACES: u64 = 600;
    let round = TRACES * SPANS_PER_TRACE;
    assert!(backends(2.0), "{}", front.stderr());
    send(&front, 0..TRACES, 1);
    assert!(all_received(round));

    dns.set(&ips);
    assert!(
        backends(3.0),
        "the third backend joined: {}",
        front.stderr()
    );
    send(&front, 0..TRACES, 2);
    assert!(all_received(2 * round));

    // The second leaves the answer (scaled down; it still runs).
    dns.set(&[ips[0], ips[2]]);
    assert!(backends(2.0), "the second left: {}", front.stderr());
    send(&front, 0..TRACES, 3);
    assert!(all_received(3 * round));

    // The DNS server goes away: lookups fail, counted, and the last set stays.
    drop(dns);
    assert!(wait_for(Duration::from_secs(30), || front.metric(
        "otelcol_loadbalancer_num_resolutions",
        &[("resolver", "dns"), ("success", "false")]
    ) > 0.0));
    assert_eq!(
        front.metric("otelcol_loadbalancer_num_backends", &[("resolver", "dns")]),
        4.0
    );
    let metrics = front.metrics();
    let metric =
        |name: &str, labels: &[(&str, &str)]| common::gateway::metric_value(&metrics, name, labels);
    assert_eq!(
        metric(
            "otelcol_exporter_sent_spans",
            &[("exporter", "loadbalancing")]
        ),
        (3 * round) as f64
    );
    assert_eq!(metric("otelcol_exporter_send_failed_spans", &[]), 0.0);
    assert!(
        metric(
            "otelcol_loadbalancer_num_backend_updates",
            &[("resolver", "dns")]
        ) >= 6.0,
        "three sets on each of two shards"
    );
    front.stop();

    let received = stop_all(std::mem::take(&mut sinks));
    for round in 1..=3 {
        assert_eq!(
            spans_of_round(&received, round).len() as u64,
            TRACES * SPANS_PER_TRACE,
            "round {round}: every span arrived"
        );
    }
    let (one, two, three) = (
        owners(&received, 1),
        owners(&received, 2),
        owners(&received, 3),
    );
    let mut moved_in = 0;
    for trace in one.keys() {
        for owners in [&one[trace], &two[trace], &three[trace]] {
            assert_eq!(owners.len(), 1, "trace {trace:?} split over {owners:?}");
        }
        assert!(!one[trace].contains(&2), "the third had not joined");
        if one[trace] != two[trace] {
            moved_in += 1;
            assert!(two[trace].contains(&2), "moved between staying backends");
        }
        assert!(!three[trace].contains(&1), "the second had left");
        if !two[trace].contains(&1) {
            assert_eq!(two[trace], three[trace], "a staying backend's trace moved");
        }
    }
    let share = moved_in as f64 / TRACES as f64;
    eprintln!(
        "DNS 2 -> 3 backends: {moved_in} of {TRACES} traces moved ({:.1} %, ideal 33.3 %)",
        share * 100.0
    );
    assert!((0.22..0.45).contains(&share), "moved {share}");
}

/// Where the Collector loses data (contrib #35378, #36717): a backend leaves the DNS answer
/// while it holds batches — here one that accepts connections and never answers, so its
/// batches sit in its queue and in attempts that will time out. They go to the new owners.
#[test]
fn a_backend_leaving_with_batches_queued_hands_them_to_the_new_owners() {
    let port = free_port();
    let (staying, leaving) = (
        [Ipv4Addr::new(127, 0, 0, 41), Ipv4Addr::new(127, 0, 0, 43)],
        Ipv4Addr::new(127, 0, 0, 42),
    );
    let sinks: Vec<Sink> = staying
        .iter()
        .map(|ip| common::gateway::start_sink_at(SocketAddr::new(IpAddr::V4(*ip), port)))
        .collect();
    // Connections complete in the kernel's backlog, and nothing ever answers on them.
    let _black_hole = std::net::TcpListener::bind((leaving, port)).expect("bind the black hole");
    let dns = DnsServer::start(&[staying[0], leaving, staying[1]]);
    let (static_config, grpc, http, admin) = front_config(&[loopback(port)]);
    let config = static_config
        .replace(
            &format!(
                "      static:\n        hostnames: [\"{}\"]\n",
                loopback(port)
            ),
            &format!(
                "      dns:\n        hostname: {}\n        port: {port}\n        interval: 100ms\n",
                DnsServer::NAME
            ),
        )
        .replace(
            "        timeout: 1s\n",
            "        timeout: 2s\n        sending_queue:\n          num_consumers: 2\n",
        );
    let front = start_with_resolver(&config, (grpc, http, admin), &dns.resolv_conf());
    let backends = |n: f64| {
        wait_for(Duration::from_secs(30), || {
            front.metric("otelcol_loadbalancer_num_backends", &[("resolver", "dns")]) == n * 2.0
        })
    };
    assert!(backends(3.0), "{}", front.stderr());
    const TRACES: u64 = 600;
    send(&front, 0..TRACES, 1);
    // The black hole's share waits in its queue and in attempts that have not timed out.
    assert!(wait_for(Duration::from_secs(30), || front.metric(
        "otelcol_exporter_queue_size",
        &[("exporter", "loadbalancing")]
    ) > 0.0));
    dns.set(&staying);
    assert!(backends(2.0), "{}", front.stderr());
    let all: Vec<&Sink> = sinks.iter().collect();
    assert!(
        wait_for(Duration::from_secs(60), || received_total(&all)
            >= TRACES * SPANS_PER_TRACE),
        "received {}: {}",
        received_total(&all),
        front.stderr()
    );
    let metrics = front.metrics();
    let metric =
        |name: &str, labels: &[(&str, &str)]| common::gateway::metric_value(&metrics, name, labels);
    assert_eq!(metric("otelcol_exporter_send_failed_spans", &[]), 0.0);
    assert_eq!(metric("tailgate_dropped_spans", &[]), 0.0);
    assert_eq!(
        metric(
            "otelcol_exporter_queue_size",
            &[("exporter", "loadbalancing")]
        ),
        0.0
    );
    front.stop();
    let received = stop_all(sinks);
    assert_eq!(
        spans_of_round(&received, 1).len() as u64,
        TRACES * SPANS_PER_TRACE,
        "every span reached a staying backend"
    );
}
