//! Exporters behind an egress proxy, through the real binary and a real HTTP proxy (`proxy.py`
//! from PyPI, installed by `tests/common/python.rs`): `otlphttp`'s `proxy_url` tunnels through
//! it with CONNECT, with and without Basic proxy credentials; wrong credentials are a clear,
//! retried failure; and `HTTPS_PROXY` is read as Go reads it — a loopback upstream is reached
//! directly, and an unusable value stops the start, naming the variable.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::gateway::{loopback, start_sink, traces_config, wait_for, Gateway};
use common::python::{venv, Venv};

/// A `proxy.py` process on a loopback port, its access log in a file.
struct Proxy {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Proxy {
    /// Starts the proxy; with `credentials` (`user:password`) it demands them.
    fn start(name: &str, credentials: Option<&str>) -> Proxy {
        let dir =
            std::env::temp_dir().join(format!("tailgate-proxy-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (port_file, log) = (dir.join("port"), dir.join("access.log"));
        let mut command = Command::new(venv(Venv::Proxy));
        command
            .args(["-m", "proxy", "--hostname", "127.0.0.1", "--port", "0"])
            .args([
                "--num-workers",
                "1",
                "--num-acceptors",
                "1",
                "--log-level",
                "INFO",
            ])
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log-file")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(credentials) = credentials {
            command.args(["--basic-auth", credentials]);
        }
        // A process group of its own: proxy.py forks its acceptors, which must end with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("start proxy.py");
        let mut port = 0;
        assert!(
            wait_for(Duration::from_secs(30), || {
                port = std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
                    .unwrap_or(0);
                port != 0 && std::net::TcpStream::connect(loopback(port)).is_ok()
            }),
            "proxy.py did not start"
        );
        Proxy { child, port, log }
    }

    fn url(&self, credentials: &str) -> String {
        format!("http://{credentials}127.0.0.1:{}", self.port)
    }

    /// The tunnels the proxy opened to `target` (logged when each closes).
    fn tunnels_to(&self, target: SocketAddr) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(&format!("CONNECT {target} ")))
            .count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The whole group: proxy.py and the acceptor processes it forked.
        // SAFETY: kill(2) on the process group this test spawned; no memory is involved.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Starts a gateway on [`traces_config`], run with `env` set.
fn start(id: &str, exporter: &str, env: &[(&str, &str)]) -> Gateway {
    let (config, grpc, http, admin) = traces_config(id, exporter);
    Gateway::start_customised(&config, grpc, http, admin, |command| {
        for (name, value) in env {
            command.env(name, value);
        }
    })
}

fn post_span(gateway: &Gateway, id: u64) {
    gateway.post_one_span(7, id);
}

/// An `otlphttp` exporter to `sink_http` through `proxy_url`.
fn through(sink_http: SocketAddr, proxy_url: &str) -> String {
    format!(
        "  otlphttp:\n    endpoint: http://{sink_http}\n    proxy_url: {proxy_url}\n    \
         retry_on_failure:\n      initial_interval: 100ms\n"
    )
}

#[test]
fn otlphttp_tunnels_through_proxy_url_with_and_without_credentials() {
    let (sink, _, sink_http) = start_sink();
    let open = Proxy::start("open", None);
    let guarded = Proxy::start("guarded", Some("tailgate:s3cret"));

    // No credentials: through the open proxy.
    let gateway = start("otlphttp", &through(sink_http, &open.url("")), &[]);
    post_span(&gateway, 1);
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received() >= 1));
    assert!(gateway.stop().success());
    // The tunnel is logged when it closes, with the gateway.
    assert!(
        wait_for(Duration::from_secs(10), || open.tunnels_to(sink_http) >= 1),
        "{}",
        std::fs::read_to_string(&open.log).unwrap_or_default()
    );

    // The right credentials (the password written escaped, as a URL carries an `@` or `:`).
    let guarded_url = guarded.url("tailgate:s3cr%65t@");
    let gateway = start("otlphttp", &through(sink_http, &guarded_url), &[]);
    post_span(&gateway, 2);
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received() >= 2));
    assert!(gateway.stop().success());
    assert!(wait_for(Duration::from_secs(10), || guarded
        .tunnels_to(sink_http)
        >= 1));

    // Wrong ones: the proxy's refusal is the attempt's error, logged with the proxy (its
    // password hidden); the span waits in the queue for a retry.
    let wrong_url = guarded.url("tailgate:wrong@");
    let gateway = start("otlphttp", &through(sink_http, &wrong_url), &[]);
    post_span(&gateway, 3);
    let refused = format!(
        "proxy http://tailgate:***@127.0.0.1:{} refused the tunnel to {sink_http}: HTTP/1.1 407",
        guarded.port
    );
    assert!(
        wait_for(Duration::from_secs(20), || gateway
            .stderr()
            .contains(&refused)),
        "{}",
        gateway.stderr()
    );
    assert!(
        !gateway.stderr().contains("wrong"),
        "the password is never logged"
    );
    assert_eq!(sink.spans_received(), 2);
    drop(gateway);
    sink.stop().unwrap();
}

#[test]
fn https_proxy_is_read_as_go_reads_it() {
    let (sink, sink_grpc, _) = start_sink();
    let proxy = Proxy::start("env", None);
    let otlp_to = |addr: SocketAddr| {
        format!("  otlp:\n    endpoint: {addr}\n    tls:\n      insecure: true\n")
    };
    let mut delivered = 0;
    let mut deliver = |gateway: &Gateway, id: u64| {
        post_span(gateway, id);
        delivered += 1;
        assert!(wait_for(Duration::from_secs(20), || sink.spans_received()
            >= delivered));
    };

    // A loopback upstream is never sent through the environment's proxy.
    let gateway = start(
        "otlp",
        &otlp_to(sink_grpc),
        &[("HTTPS_PROXY", &proxy.url(""))],
    );
    deliver(&gateway, 1);
    assert!(gateway.stop().success());

    // 0.0.0.0 is not a loopback address to Go's rule, yet a connection to it reaches the
    // sink's loopback port: an upstream the environment's proxy serves, on this machine. The
    // gRPC exporter tunnels to it (plaintext HTTP/2 through CONNECT).
    let unspecified = SocketAddr::from(([0, 0, 0, 0], sink_grpc.port()));
    let gateway = start(
        "otlp",
        &otlp_to(unspecified),
        &[("HTTPS_PROXY", &proxy.url(""))],
    );
    deliver(&gateway, 2);
    assert!(gateway.stop().success());
    assert!(
        wait_for(Duration::from_secs(10), || proxy.tunnels_to(unspecified)
            == 1),
        "{}",
        std::fs::read_to_string(&proxy.log).unwrap_or_default()
    );
    assert_eq!(proxy.tunnels_to(sink_grpc), 0);

    // NO_PROXY names it: direct again.
    let gateway = start(
        "otlp",
        &otlp_to(unspecified),
        &[
            ("HTTPS_PROXY", &proxy.url("")),
            ("NO_PROXY", "10.0.0.0/8,0.0.0.0"),
        ],
    );
    deliver(&gateway, 3);
    assert!(gateway.stop().success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(proxy.tunnels_to(unspecified), 1);

    // A proxy tailgate cannot use stops the start of an exporter that would go through it,
    // naming the variable; one whose upstream it does not serve starts.
    let bad = [("HTTPS_PROXY", "socks5://svc:hunter2@127.0.0.1:1080")];
    let gateway = start("otlp", &otlp_to(sink_grpc), &bad);
    deliver(&gateway, 4);
    assert!(gateway.stop().success());
    let (config, _, _, _) = traces_config("otlp", &otlp_to(unspecified));
    let dir = std::env::temp_dir().join(format!("tailgate-proxy-{}-bad", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_tailgate"))
        .arg("--config")
        .arg(&path)
        .env(bad[0].0, bad[0].1)
        .output()
        .expect("run tailgate");
    assert!(started.elapsed() < Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "HTTPS_PROXY: `socks5://svc:***@127.0.0.1:1080`: socks5 proxies are not supported"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    sink.stop().unwrap();
}
