//! systemd's notification protocol through the real binary: the test plays systemd, holding
//! the datagram socket `NOTIFY_SOCKET` names, and reads what the gateway says — READY=1 once it
//! serves, WATCHDOG=1 at half `WATCHDOG_USEC`, STOPPING=1 when SIGTERM starts the drain.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use common::gateway::{start_sink, Gateway};

/// Every notification that arrives on `socket` until `until` is seen among them or `limit`
/// passes.
fn collect(socket: &UnixDatagram, into: &mut Vec<String>, until: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if into.iter().any(|m| m.lines().any(|l| l == until)) {
            return true;
        }
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            into.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    into.iter().any(|m| m.lines().any(|l| l == until))
}

fn count(messages: &[String], line: &str) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == line))
        .count()
}

/// Starts a gateway whose environment names `notify_socket`, with `env` besides.
fn gateway_notifying(notify_socket: &str, env: &[(&str, String)]) -> (Gateway, impl Drop) {
    let (sink, sink_grpc, _) = start_sink();
    let (config, grpc, http, admin) = Gateway::standard_config(sink_grpc, 1, "", "");
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let notify_socket = notify_socket.to_string();
    let gateway = Gateway::start_customised(&config, grpc, http, admin, move |command| {
        command.env("NOTIFY_SOCKET", notify_socket);
        for (key, value) in env {
            command.env(key, value);
        }
    });
    struct StopSink(Option<tailgate_bench::sink::Sink>);
    impl Drop for StopSink {
        fn drop(&mut self) {
            if let Some(sink) = self.0.take() {
                let _ = sink.stop();
            }
        }
    }
    (gateway, StopSink(Some(sink)))
}

#[test]
fn ready_watchdog_and_stopping_reach_a_path_socket() {
    let path = std::env::temp_dir().join(format!("tailgate-notify-test-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path).unwrap();
    // systemd would ping-check every 300 ms: the gateway pings every 150 ms.
    let (gateway, _sink) = gateway_notifying(
        path.to_str().unwrap(),
        &[("WATCHDOG_USEC", "300000".to_string())],
    );
    let pid = gateway.pid();
    let mut messages = Vec::new();
    assert!(
        collect(&socket, &mut messages, "READY=1", Duration::from_secs(10)),
        "no READY=1: {messages:?}\n{}",
        gateway.stderr()
    );
    let ready = messages
        .iter()
        .find(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap();
    assert!(ready.contains(&format!("MAINPID={pid}")), "{ready:?}");
    assert!(ready.contains("STATUS=serving on 1 shard(s)"), "{ready:?}");
    assert_eq!(count(&messages, "READY=1"), 1);

    // Pings keep coming while the shard runs its tasks.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&messages, "WATCHDOG=1") < 3 && Instant::now() < deadline {
        collect(&socket, &mut messages, "never", Duration::from_millis(200));
    }
    assert!(count(&messages, "WATCHDOG=1") >= 3, "{messages:?}");
    assert_eq!(count(&messages, "STOPPING=1"), 0, "{messages:?}");

    let status = gateway.stop();
    assert!(status.success(), "{status}");
    assert!(
        collect(&socket, &mut messages, "STOPPING=1", Duration::from_secs(5)),
        "no STOPPING=1 after SIGTERM: {messages:?}"
    );
    assert_eq!(count(&messages, "READY=1"), 1, "READY=1 once: {messages:?}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn an_abstract_socket_is_notified_and_another_pids_watchdog_is_not_pinged() {
    let name = format!("tailgate-notify-test-{}", std::process::id());
    let socket =
        UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    // WATCHDOG_PID names another process (systemd sets it for the main PID only), so this one
    // must not ping.
    let (gateway, _sink) = gateway_notifying(
        &format!("@{name}"),
        &[
            ("WATCHDOG_USEC", "200000".to_string()),
            ("WATCHDOG_PID", "1".to_string()),
        ],
    );
    let mut messages = Vec::new();
    assert!(
        collect(&socket, &mut messages, "READY=1", Duration::from_secs(10)),
        "no READY=1: {messages:?}\n{}",
        gateway.stderr()
    );
    collect(&socket, &mut messages, "never", Duration::from_millis(600));
    assert_eq!(count(&messages, "WATCHDOG=1"), 0, "{messages:?}");
    assert!(gateway.stop().success());
}

#[test]
fn an_unusable_notify_socket_is_reported_and_the_gateway_serves() {
    let (gateway, _sink) = gateway_notifying("not-a-path", &[]);
    assert!(
        gateway
            .stderr()
            .contains("NOTIFY_SOCKET is set but unusable"),
        "{}",
        gateway.stderr()
    );
    assert!(gateway.stop().success());
}
