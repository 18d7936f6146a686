//! The `otlp` exporter's gRPC client settings the Collector's configurations carry, through the
//! real binary over real sockets: `keepalive` closes a connection whose upstream went silent
//! (and only while idle with `permit_without_stream`), and `wait_for_ready` holds an attempt
//! until the upstream can be reached instead of failing it at once.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::gateway::{free_port, loopback, start_sink, start_sink_at, wait_for, Gateway, Relay};

fn start(upstream: SocketAddr, client: &str) -> Gateway {
    Gateway::start_exporting_with(upstream, client)
}

fn post_span(gateway: &Gateway, id: u64) {
    gateway.post_one_span(5, id);
}

#[test]
fn keepalive_closes_a_silent_connection_and_only_pings_an_idle_one_when_permitted() {
    let (sink, sink_grpc, _) = start_sink();
    let fast = "    keepalive:\n      time: 10s\n      timeout: 1s\n";
    // Four exporters, each through a relay of its own to the same sink. A 1 s ping timeout
    // everywhere it pings at all, so a wrong ping would show within 11 s of the silence.
    let cases = [
        (
            "idle, pings permitted",
            format!("{fast}      permit_without_stream: true\n"),
        ),
        ("idle, pings not permitted", fast.to_string()),
        (
            "disabled",
            "    keepalive:\n      enabled: false\n".to_string(),
        ),
        // An export waits on the silent connection, with a deadline far beyond the ping's.
        ("export in flight", format!("{fast}    timeout: 60s\n")),
    ];
    let runs: Vec<(&str, Relay, Gateway)> = cases
        .iter()
        .map(|(name, client)| {
            let relay = Relay::start(sink_grpc);
            let gateway = start(relay.addr, client);
            (*name, relay, gateway)
        })
        .collect();
    for (id, (_, _, gateway)) in runs.iter().enumerate() {
        post_span(gateway, id as u64 + 1);
    }
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received() >= 4));
    // The network between every exporter and its upstream now loses everything it carries.
    for (_, relay, _) in &runs {
        assert_eq!(relay.accepted.load(Ordering::Relaxed), 1);
        relay.blackhole.store(true, Ordering::Relaxed);
    }
    let silent_since = Instant::now();
    let (_, in_flight, in_flight_gateway) = &runs[3];
    post_span(in_flight_gateway, 10);
    let closed = |relay: &Relay| relay.closed_by_gateway.load(Ordering::Relaxed);

    // The idle connection allowed pings is pinged 10 s after its last answer, and so is the
    // one an export waits on; nothing comes back within 1 s, so the exporter closes both.
    for (name, relay, gateway) in [&runs[0], &runs[3]] {
        assert!(
            wait_for(Duration::from_secs(30), || closed(relay) >= 1),
            "{name}: {}",
            gateway.stderr()
        );
        assert!(
            gateway
                .stderr()
                .contains("of a keepalive ping; closing the connection"),
            "{name}: {}",
            gateway.stderr()
        );
    }
    let elapsed = silent_since.elapsed();
    assert!(elapsed >= Duration::from_secs(8), "{elapsed:?}");
    // The export in flight failed then, long before its 60 s deadline, and is retried.
    assert!(elapsed < Duration::from_secs(25), "{elapsed:?}");
    assert!(in_flight_gateway
        .stderr()
        .contains("the upstream is failing"));
    // The other two, idle as long and past the moment a wrong ping would have closed them,
    // kept theirs: pings are not sent while idle unless permitted, nor ever when disabled.
    let after_wrong_ping = silent_since + Duration::from_secs(13);
    std::thread::sleep(after_wrong_ping.saturating_duration_since(Instant::now()));
    for (name, relay, gateway) in &runs[1..3] {
        assert_eq!(closed(relay), 0, "{name}: {}", gateway.stderr());
    }

    // The network heals: the next export opens a new connection and is delivered, and the
    // retried one arrives too.
    for (_, relay, _) in &runs {
        relay.blackhole.store(false, Ordering::Relaxed);
    }
    let (_, pinged, pinged_gateway) = &runs[0];
    post_span(pinged_gateway, 11);
    assert!(wait_for(Duration::from_secs(30), || sink.spans_received() >= 6));
    assert_eq!(pinged.accepted.load(Ordering::Relaxed), 2);
    assert!(in_flight.accepted.load(Ordering::Relaxed) >= 2);
    for (_, _, gateway) in runs {
        assert!(gateway.stop().success());
    }
    sink.stop().unwrap();
}

#[test]
fn wait_for_ready_holds_an_attempt_until_the_upstream_listens() {
    // Two upstreams that are not listening yet.
    let (waiting_at, failing_at) = (loopback(free_port()), loopback(free_port()));
    let waiting = start(waiting_at, "    timeout: 10s\n    wait_for_ready: true\n");
    let failing = start(failing_at, "    timeout: 10s\n");
    post_span(&waiting, 1);
    post_span(&failing, 2);
    let failing_logged = |gateway: &Gateway| gateway.stderr().contains("the upstream is failing");
    // Without wait_for_ready the first attempt fails at once (connection refused), logged.
    assert!(
        wait_for(Duration::from_secs(10), || failing_logged(&failing)),
        "{}",
        failing.stderr()
    );
    // Both upstreams come up, well within the 10 s deadline.
    let sinks = [start_sink_at(waiting_at), start_sink_at(failing_at)];
    for sink in &sinks {
        assert!(wait_for(Duration::from_secs(20), || sink.spans_received() >= 1));
    }
    // The waiting attempt was held, not failed: it was delivered by its first attempt.
    assert!(!failing_logged(&waiting), "{}", waiting.stderr());
    assert!(waiting.stop().success());
    assert!(failing.stop().success());
    for sink in sinks {
        sink.stop().unwrap();
    }
}
