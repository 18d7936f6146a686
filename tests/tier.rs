//! A tier of tailgate nodes through the real binary, over real sockets: three (then four)
//! gateway processes on their own loopback addresses (127.0.0.x, one port), each tail
//! sampling and exporting to a sink of its own, with clients sending every trace's spans to
//! different nodes.
//!
//! - steady membership: every trace is decided once, on one node, with all its spans;
//! - membership from a DNS name the test changes: a node killed, its traces re-routed once the
//!   answer drops it; a node added, about 1/N of the traces move to it;
//! - the two-tier layout: a front tailgate's `loadbalancing` exporter over sampling tailgates;
//!   and with the Collector (built from its modules by `bench-rig/peers/build.sh`) in either
//!   tier: its `loadbalancing` exporter over sampling tailgates, or a front tailgate over
//!   Collectors that tail sample.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tailgate_bench::certs::CertFiles;
use tailgate_bench::peers;
use tailgate_bench::sink::Sink;

use common::dns::{start_with_resolver, DnsServer};
use common::gateway::{free_port, http_request, loopback, wait_for, Gateway};
use common::spread::{front_config_at, owners, request, spans_of_round, stop_all, Received};

/// Spans per trace; each goes in a request of its own, to another node.
const SPANS_PER_TRACE: u64 = 3;

/// One node of a tier: its gateway and the sink it exports what it keeps to.
struct Node {
    gateway: Gateway,
    /// Where members reach it: `127.0.0.<host>:<the tier's port>`.
    member: SocketAddr,
}

/// What the members are found by; `None` for a sampling node that is not in a tier (the
/// second tier of the two-tier layout).
enum Membership {
    Static(Vec<SocketAddr>),
    Dns { port: u16 },
    None,
}

/// The configuration of a node listening for members on `member`, exporting to `sink`, tail
/// sampling by `policy` (YAML under `policies:`), two shards.
fn node_config(
    member: SocketAddr,
    (http, admin): (SocketAddr, SocketAddr),
    sink: SocketAddr,
    membership: &Membership,
    policy: &str,
) -> String {
    let tier = match membership {
        Membership::None => return without_tier(member, (http, admin), sink, policy),
        membership => tier_section(membership),
    };
    format!(
        "{}{tier}",
        without_tier(member, (http, admin), sink, policy)
    )
}

/// The `tier` section for `membership`; compression left out, so members forward with the
/// tier's default, zstd at a fast level.
fn tier_section(membership: &Membership) -> String {
    let resolver = match membership {
        Membership::Static(members) => format!(
            "    static:\n      hostnames: [{}]\n",
            members
                .iter()
                .map(|m| format!("\"{m}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Membership::Dns { port } => format!(
            "    dns:\n      hostname: {}\n      port: {port}\n      interval: 200ms\n      timeout: 1s\n",
            DnsServer::NAME
        ),
        Membership::None => unreachable!("no tier section"),
    };
    format!(
        "tier:
  resolver:
{resolver}  protocol:
    otlp:
      timeout: 1s
      tls:
        insecure: true
      retry_on_failure:
        initial_interval: 50ms
        max_interval: 200ms
"
    )
}

/// A sampling node's configuration without the `tier` section.
fn without_tier(
    member: SocketAddr,
    (http, admin): (SocketAddr, SocketAddr),
    sink: SocketAddr,
    policy: &str,
) -> String {
    let second_cpu = usize::from(std::thread::available_parallelism().map_or(1, |n| n.get()) > 1);
    format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {member}
      http:
        endpoint: {http}
processors:
  tail_sampling:
    decision_wait: 1s
    policies:
{policy}
exporters:
  otlp:
    endpoint: {sink}
    tls:
      insecure: true
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [otlp]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0, {second_cpu}]
"
    )
}

/// Keeps about half the traces, by trace id.
const HALF: &str = "      - name: half
        type: probabilistic
        probabilistic:
          sampling_percentage: 50";

/// Keeps every trace.
const ALL: &str = "      - name: all
        type: always_sample";

fn address(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), port)
}

/// A sink on `127.0.0.<host>`.
fn sink_at(host: u8) -> (Sink, SocketAddr) {
    let addr = address(host, free_port());
    (common::gateway::start_sink_at(addr), addr)
}

/// Starts a node at `127.0.0.<host>:<port>`; through `dns`'s resolver when given.
fn start_node(
    host: u8,
    port: u16,
    sink: SocketAddr,
    membership: &Membership,
    policy: &str,
    dns: Option<&DnsServer>,
) -> Node {
    let member = address(host, port);
    let (http, admin) = (loopback(free_port()), loopback(free_port()));
    let config = node_config(member, (http, admin), sink, membership, policy);
    let gateway = match dns {
        Some(dns) => start_with_resolver(&config, (member, http, admin), &dns.resolv_conf()),
        None => Gateway::start_with_config(&config, member, http, admin),
    };
    Node { gateway, member }
}

/// Sends every span of `traces` in round `round`: span `k` of the traces in chunk `c` goes, in
/// one request, to node `(c + k) mod n`, so each trace's spans reach several nodes.
fn send(nodes: &[&Node], traces: std::ops::Range<u64>, round: u64) {
    send_spans(nodes, traces, round, 0..SPANS_PER_TRACE);
}

/// [`send`] for the spans `spans` of each trace only.
fn send_spans(
    nodes: &[&Node],
    traces: std::ops::Range<u64>,
    round: u64,
    spans: std::ops::Range<u64>,
) {
    let receivers: Vec<SocketAddr> = nodes.iter().map(|node| node.gateway.http).collect();
    post_spans(&receivers, traces, round, spans);
}

/// [`send_spans`] to OTLP/HTTP receivers at `receivers`, a gateway's or a Collector's.
fn post_spans(
    receivers: &[SocketAddr],
    traces: std::ops::Range<u64>,
    round: u64,
    spans: std::ops::Range<u64>,
) {
    for span in spans {
        let mut first = traces.start;
        let mut chunk = 0;
        while first < traces.end {
            let last = (first + 50).min(traces.end);
            let receiver = receivers[(chunk + span as usize) % receivers.len()];
            let (status, _, body) = http_request(
                receiver,
                "POST",
                "/v1/traces",
                &[("Content-Type", "application/x-protobuf")],
                &request(first..last, span, round),
            )
            .expect("post traces");
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            first = last;
            chunk += 1;
        }
    }
}

/// `name{labels}` summed over `nodes`.
fn total(nodes: &[&Node], name: &str, labels: &[(&str, &str)]) -> f64 {
    nodes.iter().map(|n| n.gateway.metric(name, labels)).sum()
}

/// Decisions made on `nodes` together.
fn decisions(nodes: &[&Node]) -> f64 {
    total(
        nodes,
        "otelcol_processor_tail_sampling_global_count_traces_sampled",
        &[],
    )
}

/// Waits until `nodes` together have made `n` decisions.
fn await_decisions(nodes: &[&Node], n: u64) {
    assert!(
        wait_for(Duration::from_secs(30), || decisions(nodes) >= n as f64),
        "{} of {n} decisions:\n{}",
        decisions(nodes),
        nodes[0].gateway.stderr()
    );
}

/// Waits until every node of `nodes` counts `members` members (on each of its two shards).
fn await_members(nodes: &[&Node], members: usize) -> bool {
    wait_for(Duration::from_secs(30), || {
        nodes.iter().all(|n| {
            n.gateway
                .metric("otelcol_loadbalancer_num_backends", &[("exporter", "tier")])
                == (2 * members) as f64
        })
    })
}

/// Checks round `round` of `traces` traces at the sinks: every trace kept is whole on exactly
/// one sink, and every trace not kept left no span anywhere. Returns how many were kept.
fn check_decided_once(received: &Received, round: u64, traces: u64) -> u64 {
    let owners = owners(received, round);
    let spans = spans_of_round(received, round);
    for (trace, sinks) in &owners {
        assert_eq!(sinks.len(), 1, "trace {trace:?} reached sinks {sinks:?}");
        let sink = *sinks.iter().next().expect("one");
        let whole = received[sink][trace]
            .iter()
            .filter(|s| common::spread::round_of(s) == round)
            .count() as u64;
        assert_eq!(
            whole, SPANS_PER_TRACE,
            "trace {trace:?} kept with {whole} of its spans"
        );
    }
    assert_eq!(spans.len() as u64, owners.len() as u64 * SPANS_PER_TRACE);
    assert!(owners.len() as u64 <= traces);
    owners.len() as u64
}

/// Stops `nodes` and then `sinks`, and checks round 1 of `traces` traces at the sinks (see
/// [`check_decided_once`]) with about half of them kept (the `HALF` policy).
fn stop_and_check_half_kept(nodes: Vec<Node>, sinks: Vec<Sink>, traces: u64) {
    for node in nodes {
        assert!(node.gateway.stop().success());
    }
    let received = stop_all(sinks);
    let kept = check_decided_once(&received, 1, traces);
    assert!(
        (traces * 3 / 10..traces * 7 / 10).contains(&kept),
        "kept {kept} of {traces}"
    );
}

/// Spans `nodes` exported to their sinks, together.
fn exported(nodes: &[&Node]) -> f64 {
    total(
        nodes,
        "otelcol_exporter_sent_spans",
        &[("exporter", "otlp")],
    )
}

#[test]
fn three_nodes_decide_every_trace_once_with_all_its_spans() {
    let port = free_port();
    let members: Vec<SocketAddr> = (41..=43).map(|h| address(h, port)).collect();
    let (sinks, sink_addrs): (Vec<Sink>, Vec<SocketAddr>) = (51..=53).map(sink_at).unzip();
    let membership = Membership::Static(members.clone());
    let nodes: Vec<Node> = (41..=43)
        .zip(&sink_addrs)
        .map(|(host, sink)| start_node(host, port, *sink, &membership, HALF, None))
        .collect();
    let all: Vec<&Node> = nodes.iter().collect();
    const TRACES: u64 = 900;
    send(&all, 0..TRACES, 1);
    await_decisions(&all, TRACES);

    // Decided once: one decision a trace over the whole tier; no span forwarded twice or
    // decided against the ring.
    let forwarded = total(&all, "tailgate_tier_forwarded_spans", &[]);
    let received_owned = total(&all, "tailgate_tier_received_spans", &[("owner", "self")]);
    let received_other = total(&all, "tailgate_tier_received_spans", &[("owner", "other")]);
    assert_eq!(decisions(&all), TRACES as f64);
    assert_eq!(received_other, 0.0);
    let spans = (TRACES * SPANS_PER_TRACE) as f64;
    // Each span reaches an owner that is not its node two times in three.
    assert!(
        (0.5..0.8).contains(&(forwarded / spans)),
        "forwarded {forwarded} of {spans}"
    );
    assert!(wait_for(Duration::from_secs(10), || total(
        &all,
        "tailgate_tier_received_spans",
        &[("owner", "self")]
    ) == forwarded));
    assert!(received_owned <= forwarded);
    assert_eq!(
        total(
            &all,
            "otelcol_exporter_send_failed_spans",
            &[("exporter", "tier")]
        ),
        0.0
    );
    assert_eq!(total(&all, "tailgate_tier_member", &[]), 6.0);
    // Every node decides a share.
    for node in &nodes {
        assert!(
            node.gateway.metric(
                "otelcol_processor_tail_sampling_global_count_traces_sampled",
                &[]
            ) > (TRACES / 6) as f64,
            "{} decides too little",
            node.member
        );
    }
    stop_and_check_half_kept(nodes, sinks, TRACES);
}

#[test]
fn dns_membership_a_node_killed_and_a_node_added() {
    let port = free_port();
    let hosts = [61u8, 62, 63, 64];
    let ips: Vec<Ipv4Addr> = hosts.iter().map(|h| Ipv4Addr::new(127, 0, 0, *h)).collect();
    let dns = DnsServer::start(&ips[..3]);
    let (mut sinks, sink_addrs): (Vec<Sink>, Vec<SocketAddr>) = (71..=74).map(sink_at).unzip();
    let membership = Membership::Dns { port };
    let mut nodes: Vec<Option<Node>> = hosts[..3]
        .iter()
        .zip(&sink_addrs)
        .map(|(host, sink)| Some(start_node(*host, port, *sink, &membership, ALL, Some(&dns))))
        .collect();
    const TRACES: u64 = 600;
    /// The traces of rounds 2 and 3: other ids than round 1's, which the nodes have decided.
    const ROUND_TWO: std::ops::Range<u64> = 1000..1000 + TRACES;
    {
        let all: Vec<&Node> = nodes.iter().flatten().collect();
        assert!(await_members(&all, 3), "{}", all[0].gateway.stderr());
        send(&all, 0..TRACES, 1);
        await_decisions(&all, TRACES);
    }

    // A node dies (kill -9), and leaves the DNS answer.
    let dead = nodes[2].take().expect("running");
    let pid = dead.gateway.pid() as i32;
    // SAFETY: kill(2) on a process this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    drop(dead);
    let killed = Instant::now();
    dns.set(&ips[..2]);
    {
        let live: Vec<&Node> = nodes.iter().flatten().collect();
        assert!(await_members(&live, 2), "{}", live[0].gateway.stderr());
        eprintln!(
            "a killed node left the ring {:?} after the kill (resolver interval 200 ms)",
            killed.elapsed()
        );
        let before = decisions(&live);
        send(&live, ROUND_TWO, 2);
        await_decisions(&live, before as u64 + TRACES);
        assert_eq!(decisions(&live), before + TRACES as f64, "decided once");
    }

    // A node joins: 127.0.0.64, added to the answer.
    nodes.push(Some(start_node(
        hosts[3],
        port,
        sink_addrs[3],
        &membership,
        ALL,
        Some(&dns),
    )));
    dns.set(&[ips[0], ips[1], ips[3]]);
    let moved = {
        let live: Vec<&Node> = nodes.iter().flatten().collect();
        assert!(await_members(&live, 3), "{}", live[0].gateway.stderr());
        // The same traces again: those that stayed with their owner follow its decision
        // (their spans are late spans of a kept trace); those that moved are decided anew, by
        // the new node alone.
        let sent = || exported(&live);
        let (before, sent_before) = (decisions(&live), sent());
        send(&live, ROUND_TWO, 3);
        assert!(wait_for(Duration::from_secs(30), || sent()
            >= sent_before + (TRACES * SPANS_PER_TRACE) as f64));
        let moved = decisions(&live) - before;
        assert_eq!(
            moved,
            live[2].gateway.metric(
                "otelcol_processor_tail_sampling_global_count_traces_sampled",
                &[]
            ),
            "only the new node decided anew"
        );
        assert_eq!(
            total(&live, "tailgate_tier_received_spans", &[("owner", "other")]),
            0.0
        );
        moved
    };
    // A change while traces are in flight: the first span of each trace is sent, the new
    // node leaves the answer, then the other spans. The traces it owned are decided twice, in
    // parts — by it, from the first span, and by their new owner, from the rest — and nothing
    // is lost (the documented rule: each node decides what it holds).
    const ROUND_FOUR: std::ops::Range<u64> = 3000..3000 + TRACES;
    let split = {
        let live: Vec<&Node> = nodes.iter().flatten().collect();
        let sent = || exported(&live);
        let (before, sent_before) = (decisions(&live), sent());
        send_spans(&live, ROUND_FOUR, 4, 0..1);
        dns.set(&ips[..2]);
        assert!(await_members(&live[..2], 2), "{}", live[0].gateway.stderr());
        send_spans(&live, ROUND_FOUR, 4, 1..SPANS_PER_TRACE);
        // Every span kept (each part of a split trace by its own decision), so once all are
        // sent every decision has been made.
        assert!(wait_for(Duration::from_secs(30), || sent()
            >= sent_before + (TRACES * SPANS_PER_TRACE) as f64));
        let split = decisions(&live) - before - TRACES as f64;
        eprintln!(
            "a member leaving with traces in flight: {split} of {TRACES} traces decided in two \
             parts ({:.1} %; it had taken {moved} of {TRACES} when it joined)",
            100.0 * split / TRACES as f64
        );
        assert!(
            split > 0.0 && split <= (TRACES / 2) as f64,
            "split decisions {split}"
        );
        split
    };
    {
        let live: Vec<&Node> = nodes.iter().flatten().collect();
        // What the survivors had for the killed node was routed again, not dropped.
        assert_eq!(
            total(
                &live,
                "otelcol_exporter_send_failed_spans",
                &[("exporter", "tier")]
            ),
            0.0
        );
    }
    for node in nodes.into_iter().flatten() {
        assert!(node.gateway.stop().success());
    }
    let received = stop_all(std::mem::take(&mut sinks));
    // Round 1 was decided before the kill; what the killed node had not yet exported died
    // with it (its sink shows what it had).
    let lost = TRACES * SPANS_PER_TRACE - spans_of_round(&received, 1).len() as u64;
    eprintln!(
        "round 1: {lost} of {} spans lost with the killed node",
        TRACES * SPANS_PER_TRACE
    );
    // Rounds 2 and 3 were sent to live nodes only: everything arrived, each trace whole on one
    // node (every trace is kept).
    for round in [2, 3] {
        assert_eq!(check_decided_once(&received, round, TRACES), TRACES);
    }
    // Round 4: every span arrived; the split traces at two sinks.
    assert_eq!(
        spans_of_round(&received, 4).len() as u64,
        TRACES * SPANS_PER_TRACE
    );
    let at_two = owners(&received, 4)
        .values()
        .filter(|sinks| sinks.len() == 2)
        .count();
    assert_eq!(at_two as f64, split, "each split trace reached two nodes");
    let (two, three) = (owners(&received, 2), owners(&received, 3));
    let mut moved = 0;
    for (trace, sinks) in &three {
        assert!(!sinks.contains(&2), "the killed node took nothing");
        if two[trace] != *sinks {
            moved += 1;
            assert!(sinks.contains(&3), "a trace moved between staying nodes");
        }
    }
    let share = moved as f64 / TRACES as f64;
    eprintln!(
        "DNS 2 -> 3 members: {moved} of {TRACES} traces moved ({:.1} %, ideal 33.3 %)",
        share * 100.0
    );
    assert!((0.2..0.47).contains(&share), "moved {share}");
}

/// The Collector's two-tier layout, with tailgates in both tiers: a front tailgate's
/// `loadbalancing` exporter spreads traces over three sampling tailgates (not in a tier): every
/// trace decided once, whole, by one of them.
#[test]
fn two_tiers_front_load_balancer_over_sampling_tailgates() {
    let port = free_port();
    let samplers_at: Vec<SocketAddr> = (81..=83).map(|h| address(h, port)).collect();
    let (sinks, sink_addrs): (Vec<Sink>, Vec<SocketAddr>) = (91..=93).map(sink_at).unzip();
    let samplers: Vec<Node> = (81..=83)
        .zip(&sink_addrs)
        .map(|(host, sink)| start_node(host, port, *sink, &Membership::None, HALF, None))
        .collect();
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let front = Gateway::start_with_config(
        &front_config_at(&samplers_at, grpc, http, admin),
        grpc,
        http,
        admin,
    );
    let front = Node {
        gateway: front,
        member: grpc,
    };
    const TRACES: u64 = 900;
    send(&[&front], 0..TRACES, 1);
    let all: Vec<&Node> = samplers.iter().collect();
    await_decisions(&all, TRACES);
    assert_eq!(decisions(&all), TRACES as f64, "decided once");
    assert!(front.gateway.stop().success());
    stop_and_check_half_kept(samplers, sinks, TRACES);
}

/// The Collector's `loadbalancing` exporter block for `backends`, routing by trace id, as a
/// user's front tier has it (the same keys a front tailgate takes, [`front_config_at`]).
fn collector_load_balancer(backends: &[SocketAddr]) -> String {
    let hostnames = backends
        .iter()
        .map(|b| format!("\"{b}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        timeout: 5s
        tls:
          insecure: true
    resolver:
      static:
        hostnames: [{hostnames}]
"
    )
}

/// Starts the Collector built from its modules on `config` (written to a file named after
/// `name`), and waits until it listens on every address of `listens`. `None`, with a message,
/// where Go is not on PATH to build it.
fn start_collector(config: &str, name: &str, listens: &[SocketAddr]) -> Option<peers::Collector> {
    if !peers::go_on_path() {
        println!(
            "skipped: go is not on PATH, so bench-rig/peers/build.sh cannot build the Collector"
        );
        return None;
    }
    let built = peers::build().unwrap_or_else(|err| panic!("{err}"));
    let path = std::env::temp_dir().join(format!(
        "tailgate-tier-{name}-{}-{}.yaml",
        std::process::id(),
        listens[0].port()
    ));
    std::fs::write(&path, config).expect("write the Collector's configuration");
    let log = path.with_extension("log");
    let collector = peers::Collector::start(&built, &path, log).expect("start the Collector");
    let listening = wait_for(Duration::from_secs(30), || {
        listens
            .iter()
            .all(|addr| std::net::TcpStream::connect(addr).is_ok())
    });
    assert!(
        listening,
        "the Collector did not listen:\n{}",
        collector.log()
    );
    Some(collector)
}

/// The Collector's telemetry, quiet: warnings only, no metrics server.
const COLLECTOR_TELEMETRY: &str = "  telemetry:
    logs:
      level: warn
    metrics:
      level: none
";

/// The migration users make first: the Collectors of their `loadbalancing` tier stay in front,
/// and tailgates replace the sampling tier behind them. The Collector's own `loadbalancing`
/// exporter (contrib's, static resolver, routing by trace id) spreads traces over three
/// sampling tailgates: every trace decided once, whole, by one of them.
#[test]
fn the_collectors_load_balancer_over_sampling_tailgates() {
    let port = free_port();
    let samplers_at: Vec<SocketAddr> = (84..=86).map(|h| address(h, port)).collect();
    let front_http = loopback(free_port());
    let front = format!(
        "receivers:
  otlp:
    protocols:
      http:
        endpoint: {front_http}
exporters:
{}service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [loadbalancing]
{COLLECTOR_TELEMETRY}",
        collector_load_balancer(&samplers_at)
    );
    let (sinks, sink_addrs): (Vec<Sink>, Vec<SocketAddr>) = (94..=96).map(sink_at).unzip();
    let samplers: Vec<Node> = (84..=86)
        .zip(&sink_addrs)
        .map(|(host, sink)| start_node(host, port, *sink, &Membership::None, HALF, None))
        .collect();
    let Some(mut collector) = start_collector(&front, "lb-front", &[front_http]) else {
        return;
    };
    const TRACES: u64 = 900;
    post_spans(&[front_http], 0..TRACES, 1, 0..SPANS_PER_TRACE);
    let all: Vec<&Node> = samplers.iter().collect();
    await_decisions(&all, TRACES);
    assert_eq!(decisions(&all), TRACES as f64, "decided once");
    // Every sampler had a share: the Collector spread the traces.
    for node in &samplers {
        let own = node.gateway.metric(
            "otelcol_processor_tail_sampling_global_count_traces_sampled",
            &[],
        );
        assert!(own > (TRACES / 6) as f64, "{} decided {own}", node.member);
    }
    // The Collector answers a post once its exporter has queued the spans, and sends them
    // later: a trace can be decided before its last span arrives (that span then follows the
    // decision). Killing the Collector before the samplers hold every span would lose some.
    let every_span = (TRACES * SPANS_PER_TRACE) as f64;
    assert!(
        wait_for(Duration::from_secs(30), || total(
            &all,
            "otelcol_receiver_accepted_spans",
            &[]
        ) >= every_span),
        "the samplers accepted {} of {every_span} spans:\n{}",
        total(&all, "otelcol_receiver_accepted_spans", &[]),
        collector.log()
    );
    assert!(collector.running(), "{}", collector.log());
    drop(collector);
    stop_and_check_half_kept(samplers, sinks, TRACES);
}

/// The other way round: a front tailgate's `loadbalancing` exporter in front of three
/// Collectors that tail sample (contrib's `tail_sampling`, keeping everything): every trace
/// arrives whole at exactly one of their sinks, and every span once.
#[test]
fn a_front_tailgate_over_sampling_collectors() {
    let port = free_port();
    let samplers_at: Vec<SocketAddr> = (87..=89).map(|h| address(h, port)).collect();
    let (sinks, sink_addrs): (Vec<Sink>, Vec<SocketAddr>) = (97..=99).map(sink_at).unzip();
    let mut collectors = Vec::new();
    for (at, sink) in samplers_at.iter().zip(&sink_addrs) {
        let config = format!(
            "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {at}
processors:
  tail_sampling:
    decision_wait: 1s
    policies:
{ALL}
exporters:
  otlp:
    endpoint: {sink}
    tls:
      insecure: true
    compression: none
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [otlp]
{COLLECTOR_TELEMETRY}"
        );
        let Some(collector) = start_collector(&config, "sampler", &[*at]) else {
            return;
        };
        collectors.push(collector);
    }
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let front = Gateway::start_with_config(
        &front_config_at(&samplers_at, grpc, http, admin),
        grpc,
        http,
        admin,
    );
    const TRACES: u64 = 900;
    post_spans(&[http], 0..TRACES, 1, 0..SPANS_PER_TRACE);
    let spans = TRACES * SPANS_PER_TRACE;
    let arrived = || sinks.iter().map(Sink::spans_received).sum::<u64>();
    assert!(
        wait_for(Duration::from_secs(30), || arrived() >= spans),
        "{} of {spans} spans at the sinks\nfront:\n{}\nCollector:\n{}",
        arrived(),
        front.stderr(),
        collectors[0].log()
    );
    assert_eq!(
        front.metric(
            "otelcol_exporter_sent_spans",
            &[("exporter", "loadbalancing")]
        ),
        spans as f64
    );
    assert!(front.stop().success());
    for collector in &mut collectors {
        assert!(collector.running(), "{}", collector.log());
    }
    drop(collectors);
    let received = stop_all(sinks);
    assert_eq!(
        check_decided_once(&received, 1, TRACES),
        TRACES,
        "every trace kept once"
    );
    // The Collectors each sampled a share.
    for (at, traces) in samplers_at.iter().zip(&received) {
        assert!(
            traces.len() as u64 > TRACES / 6,
            "{at} got {} traces",
            traces.len()
        );
    }
}

/// `config` with mutual TLS between the members: each node's gRPC receiver (where members
/// forward) serves `certs`' server certificate and requires a client certificate from its
/// authority, and the tier's exporters present the client certificate and trust only that
/// authority. Clients keep plaintext HTTP.
fn with_member_mtls(config: &str, member: SocketAddr, certs: &CertFiles) -> String {
    let receiver = format!("      grpc:\n        endpoint: {member}\n");
    let served = format!(
        "{receiver}        tls:\n          cert_file: {}\n          key_file: {}\n          client_ca_file: {}\n",
        certs.server_cert.display(),
        certs.server_key.display(),
        certs.ca.display()
    );
    let insecure = "      tls:\n        insecure: true\n      retry_on_failure:";
    let presented = format!(
        "      tls:\n        ca_file: {}\n        cert_file: {}\n        key_file: {}\n      retry_on_failure:",
        certs.ca.display(),
        certs.client_cert.display(),
        certs.client_key.display()
    );
    assert!(config.contains(&receiver) && config.contains(insecure));
    config
        .replace(&receiver, &served)
        .replace(insecure, &presented)
}

/// TLS everywhere: members forward to each other over mutual TLS, with certificates for their
/// addresses from a private authority; every trace is still decided once, whole.
#[test]
fn members_forward_over_mutual_tls() {
    let port = free_port();
    let hosts = [101u8, 102, 103];
    let dir = std::env::temp_dir().join(format!("tailgate-tier-mtls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let names: Vec<String> = hosts.iter().map(|h| format!("127.0.0.{h}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (_, certs) = tailgate_bench::certs::write_set_keeping(&dir, &names).expect("certificates");
    let members: Vec<SocketAddr> = hosts.iter().map(|h| address(*h, port)).collect();
    let (sinks, sink_addrs): (Vec<Sink>, Vec<SocketAddr>) = (111..=113).map(sink_at).unzip();
    let membership = Membership::Static(members.clone());
    let nodes: Vec<Node> = hosts
        .iter()
        .zip(&sink_addrs)
        .map(|(host, sink)| {
            let member = address(*host, port);
            let (http, admin) = (loopback(free_port()), loopback(free_port()));
            let config = with_member_mtls(
                &node_config(member, (http, admin), *sink, &membership, HALF),
                member,
                &certs,
            );
            Node {
                gateway: Gateway::start_with_config(&config, member, http, admin),
                member,
            }
        })
        .collect();
    let all: Vec<&Node> = nodes.iter().collect();
    const TRACES: u64 = 600;
    send(&all, 0..TRACES, 1);
    await_decisions(&all, TRACES);
    assert_eq!(decisions(&all), TRACES as f64, "decided once");
    assert!(total(&all, "tailgate_tier_forwarded_spans", &[]) > 0.0);
    assert_eq!(
        total(
            &all,
            "otelcol_exporter_send_failed_spans",
            &[("exporter", "tier")]
        ),
        0.0
    );
    // Every handshake between members succeeded (the receivers require a client certificate:
    // tests/tls.rs shows them refusing one without).
    assert_eq!(
        total(&all, "tailgate_receiver_tls_handshake_failures", &[]),
        0.0
    );
    assert!(total(&all, "tailgate_receiver_tls_handshakes", &[]) > 0.0);
    stop_and_check_half_kept(nodes, sinks, TRACES);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The tenants of [`members_forward_each_spans_tenant`].
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// One request of span `span` of `traces`, each trace's service its tenant's name.
fn tenant_request(traces: &[u64], span: u64, tenant: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::trace::v1::Span;
    let spans = traces
        .iter()
        .map(|&trace| {
            let mut trace_id = [0x7E; 16];
            trace_id[..8].copy_from_slice(&trace.to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: [span as u8 + 1; 8].to_vec(),
                name: format!("t{trace}-s{span}"),
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                ..Span::default()
            }
        })
        .collect();
    common::otlp::spans_request(tenant, spans)
}

/// A multi-tenant tier: each node keeps client metadata, tail samples, batches by tenant and
/// sets each batch's tenant header. A span reaching a node that does not own its trace is
/// forwarded with its tenant, so every span reaches the sink (a peer that records headers)
/// under the tenant of the client that sent it, wherever its trace was decided.
#[test]
fn members_forward_each_spans_tenant() {
    let sink = common::header_sink::HeaderSink::start();
    let port = free_port();
    let members: Vec<SocketAddr> = (121..=123).map(|h| address(h, port)).collect();
    let second_cpu = usize::from(std::thread::available_parallelism().map_or(1, |n| n.get()) > 1);
    let nodes: Vec<Node> = members
        .iter()
        .map(|&member| {
            let (http, admin) = (loopback(free_port()), loopback(free_port()));
            let config = format!(
                "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {member}
        include_metadata: true
      http:
        endpoint: {http}
        include_metadata: true
{}  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0, {second_cpu}]
{}",
                common::header_sink::tenant_sampling(ALL, sink.grpc),
                tier_section(&Membership::Static(members.clone()))
            );
            Node {
                gateway: Gateway::start_with_config(&config, member, http, admin),
                member,
            }
        })
        .collect();
    let all: Vec<&Node> = nodes.iter().collect();
    const TRACES: u64 = 150;
    // Span `s` of trace `t` goes to node (t + s) mod 3, with the header of tenant t mod 3.
    for span in 0..SPANS_PER_TRACE {
        for (n, node) in nodes.iter().enumerate() {
            for (k, tenant) in TENANTS.iter().enumerate() {
                let traces: Vec<u64> = (0..TRACES)
                    .filter(|t| (t + span) % 3 == n as u64 && t % 3 == k as u64)
                    .collect();
                let (status, _, body) = http_request(
                    node.gateway.http,
                    "POST",
                    "/v1/traces",
                    &[
                        ("Content-Type", "application/x-protobuf"),
                        ("X-Tenant", tenant),
                    ],
                    &tenant_request(&traces, span, tenant),
                )
                .expect("post traces");
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            }
        }
    }
    let spans = TRACES * SPANS_PER_TRACE;
    assert!(
        sink.wait_for_items(spans, Duration::from_secs(30)),
        "{} of {spans} spans at the sink:\n{}",
        sink.items(),
        nodes[0].gateway.stderr()
    );
    assert_eq!(decisions(&all), TRACES as f64, "each trace decided once");
    let forwarded = total(&all, "tailgate_tier_forwarded_spans", &[]);
    assert!(forwarded >= (spans / 2) as f64, "forwarded {forwarded}");
    let mut by_tenant = std::collections::BTreeMap::<String, u64>::new();
    for r in sink.requests() {
        let tenant = r.header("x-scope-orgid").expect("set on every request");
        assert!(r.services.iter().all(|s| s == tenant), "{r:?}");
        *by_tenant.entry(tenant.to_string()).or_default() += r.items;
    }
    let expected: std::collections::BTreeMap<String, u64> =
        TENANTS.iter().map(|t| (t.to_string(), spans / 3)).collect();
    assert_eq!(by_tenant, expected);
    for node in nodes {
        assert!(node.gateway.stop().success());
    }
}
