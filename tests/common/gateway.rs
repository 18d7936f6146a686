//! Driving the real `tailgate` binary in tests: a config on free loopback ports, the process
//! started and awaited until ready, its `/metrics` scraped, and a SIGTERM that must end it with
//! status 0. The upstream is `tailgate-bench`'s sink, running in the test process.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tailgate_bench::sink::{Sink, SinkArgs, SinkResult};
use tailgate_wire::Signal;

/// The ports tests hand out: below Linux's ephemeral range (32768–60999 by default), so that no
/// client connection of a test running alongside takes the port between the moment it is
/// chosen and the moment the gateway binds it. (Ports the kernel chose, with bind to port 0,
/// collided that way: a gateway failed to start with "Address already in use".)
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// A loopback port nobody listens on right now, never handed out before by this process.
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let span = usize::from(TEST_PORTS.end - TEST_PORTS.start);
    // Each test process starts at its own offset, so processes running side by side rarely try
    // the same ports; the bind below settles it when they do.
    let offset = std::process::id() as usize * 97;
    for _ in 0..span {
        let index = (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = TEST_PORTS.start + index as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {TEST_PORTS:?}");
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts a sink on free ports that keeps every request it receives.
pub fn start_sink() -> (Sink, SocketAddr, SocketAddr) {
    start_sink_on(Vec::new(), true)
}

/// Starts a sink on free ports with a shard on each of `cpus` (one on CPU 0 when empty); with
/// `keep`, it keeps every request it receives.
pub fn start_sink_on(cpus: Vec<usize>, keep: bool) -> (Sink, SocketAddr, SocketAddr) {
    let (grpc, http) = (loopback(free_port()), loopback(free_port()));
    let sink = Sink::start(
        SinkArgs {
            listen: grpc,
            http_listen: Some(http),
            report: PathBuf::from("/dev/null"),
            dump: None,
            cpu: 0,
            cpus,
            track_max: tailgate_bench::sink::TRACKED_SPANS_DEFAULT,
        },
        keep,
    )
    .expect("start the sink");
    (sink, grpc, http)
}

/// Starts a sink keeping every request, listening for OTLP/gRPC on `addr` only (a central that
/// comes back on the address an exporter was given).
pub fn start_sink_at(addr: SocketAddr) -> Sink {
    Sink::start(
        SinkArgs {
            listen: addr,
            http_listen: None,
            report: PathBuf::from("/dev/null"),
            dump: None,
            cpu: 0,
            cpus: Vec::new(),
            track_max: tailgate_bench::sink::TRACKED_SPANS_DEFAULT,
        },
        true,
    )
    .expect("start the sink")
}

/// A traces request of one span named `name` of trace `trace` (16 bytes of that value) with
/// span id `id`.
pub fn one_span_request(trace: u8, id: u64, name: &str) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![trace; 16],
                    span_id: id.to_be_bytes().to_vec(),
                    name: name.into(),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Every span the sink received, with its resource, decoded with prost.
pub fn received_spans(result: &SinkResult) -> Vec<(Option<Resource>, Span)> {
    let mut spans = Vec::new();
    for (signal, bytes) in &result.requests {
        if *signal != Signal::Traces {
            continue;
        }
        let request =
            ExportTraceServiceRequest::decode(bytes.as_slice()).expect("sink got valid OTLP");
        for rs in request.resource_spans {
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push((rs.resource.clone(), span));
                }
            }
        }
    }
    spans
}

/// A running gateway process.
pub struct Gateway {
    child: Option<Child>,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    dir: PathBuf,
}

static INSTANCE: AtomicUsize = AtomicUsize::new(0);

impl Gateway {
    /// A gateway with `shards` shards exporting traces, metrics and logs over OTLP/gRPC to
    /// `upstream`; `extra_receiver` is YAML appended under `protocols.grpc` (indented by 8).
    pub fn start(upstream: SocketAddr, shards: usize, grpc_extra: &str) -> Gateway {
        let (config, grpc, http, admin) = Self::standard_config(upstream, shards, grpc_extra, "");
        Self::start_with_config(&config, grpc, http, admin)
    }

    /// The configuration [`Gateway::start`] runs, on fresh loopback ports, with `http_extra`
    /// appended under `protocols.http` (indented by 8); returns it with its gRPC, HTTP and
    /// admin addresses.
    pub fn standard_config(
        upstream: SocketAddr,
        shards: usize,
        grpc_extra: &str,
        http_extra: &str,
    ) -> (String, SocketAddr, SocketAddr, SocketAddr) {
        let (grpc, http, admin) = (
            loopback(free_port()),
            loopback(free_port()),
            loopback(free_port()),
        );
        let cpus = (0..shards)
            .map(|s| (s % std::thread::available_parallelism().map_or(1, |n| n.get())).to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
{grpc_extra}
      http:
        endpoint: {http}
        max_request_body_size: 1048576
{http_extra}
processors:
  batch:
    timeout: 50ms
exporters:
  otlp:
    endpoint: {upstream}
    tls:
      insecure: true
    retry_on_failure:
      initial_interval: 100ms
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [{cpus}]
"
        );
        (config, grpc, http, admin)
    }

    /// [`Gateway::start`] on one shard, with `keys` (exporter keys, indented by 4) added to its
    /// `otlp` exporter.
    pub fn start_exporting_with(upstream: SocketAddr, keys: &str) -> Gateway {
        let (config, grpc, http, admin) = Self::standard_config(upstream, 1, "", "");
        let tls = "    tls:\n      insecure: true\n";
        assert!(config.contains(tls));
        let config = config.replace(tls, &format!("{tls}{keys}"));
        Self::start_with_config(&config, grpc, http, admin)
    }

    /// Posts one span (trace `trace`, span id `id`) over OTLP/HTTP; asserts the 200.
    pub fn post_one_span(&self, trace: u8, id: u64) {
        let (status, _, _) = http_request(
            self.http,
            "POST",
            "/v1/traces",
            &[("Content-Type", "application/x-protobuf")],
            &one_span_request(trace, id, "one-span"),
        )
        .expect("post a span");
        assert_eq!(status, 200);
    }

    /// Starts the gateway on `config`, whose receivers and admin address are the ones given.
    pub fn start_with_config(
        config: &str,
        grpc: SocketAddr,
        http: SocketAddr,
        admin: SocketAddr,
    ) -> Gateway {
        Self::start_customised(config, grpc, http, admin, |_| {})
    }

    /// [`Gateway::start_with_config`], with `customise` given the command before it is spawned
    /// (environment, resource limits).
    pub fn start_customised(
        config: &str,
        grpc: SocketAddr,
        http: SocketAddr,
        admin: SocketAddr,
        customise: impl FnOnce(&mut Command),
    ) -> Gateway {
        let dir = std::env::temp_dir().join(format!(
            "tailgate-test-{}-{}",
            std::process::id(),
            INSTANCE.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, config).expect("write config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tailgate"));
        command
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr file"));
        customise(&mut command);
        let child = command.spawn().expect("start tailgate");
        let mut gateway = Gateway {
            child: Some(child),
            grpc,
            http,
            admin,
            dir,
        };
        gateway.wait_ready();
        gateway
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tailgate exited with {status} before ready:\n{}",
                    self.stderr()
                );
            }
            if let Ok((200, _)) = http_get(self.admin, "/readyz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tailgate not ready in 20 s:\n{}", self.stderr());
    }

    /// The file the gateway was started with (rewrite it, then SIGHUP, to reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }

    /// The gateway's process id (for signals and `/proc/<pid>`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether the process has ended (reaping it if so).
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// What the gateway wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// The `/metrics` page.
    pub fn metrics(&self) -> String {
        http_get(self.admin, "/metrics").expect("scrape /metrics").1
    }

    /// The value of the series `name{labels...}` whose labels include all of `labels`, summed
    /// over the series that match.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics(), name, labels)
    }

    /// Waits up to `limit` for the process to end by itself; its status, if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`Gateway::stop`], with what the gateway logged to the end.
    pub fn stop_with_log(mut self) -> (ExitStatus, String) {
        let status = self.stop_in_place();
        (status, self.stderr())
    }

    /// Sends SIGTERM and waits for the process to end; returns its status.
    pub fn stop(mut self) -> ExitStatus {
        self.stop_in_place()
    }

    fn stop_in_place(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) with a pid this test spawned and still holds; no memory is involved.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "tailgate did not exit within 60 s of SIGTERM:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sums the series of `name` whose labels include `labels`.
pub fn metric_value(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let all = labels.iter().all(|(k, v)| {
                series_labels
                    .split(',')
                    .any(|kv| kv == format!("{k}=\"{v}\""))
            });
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// An HTTP response: status, headers (names lower-cased) and body.
pub type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// A bare HTTP/1.1 GET; returns the status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let (status, _, body) = http_request(addr, "GET", path, &[], b"")?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A bare HTTP/1.1 request with `Connection: close`; returns status, headers and body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    parse_response(&response)
}

/// Splits a raw HTTP/1.1 response into status, headers and body.
pub fn parse_response(response: &[u8]) -> std::io::Result<Response> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(response) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "not an HTTP response: {:?}",
                    String::from_utf8_lossy(response)
                ),
            ))
        }
    };
    let status = parsed.code.unwrap_or(0);
    let headers = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect::<Vec<(String, String)>>();
    let chunked = headers.iter().any(|(name, value)| {
        name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked")
    });
    let body = &response[head_len..];
    // Go's HTTP servers (the Collector's Prometheus page among them) send large bodies chunked;
    // left framed, a chunk boundary inside a line would cut a series in two.
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, headers, body))
}

/// A chunked body without its framing (chunk extensions and trailers dropped).
fn dechunk(mut framed: &[u8]) -> std::io::Result<Vec<u8>> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let mut body = Vec::new();
    loop {
        let line = framed
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("a chunk size line without CRLF"))?;
        let size = std::str::from_utf8(&framed[..line])
            .ok()
            .and_then(|text| usize::from_str_radix(text.split(';').next()?.trim(), 16).ok())
            .ok_or_else(|| bad("a chunk size that is not hexadecimal"))?;
        framed = &framed[line + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = framed
            .get(..size)
            .ok_or_else(|| bad("a chunk longer than the response"))?;
        body.extend_from_slice(chunk);
        framed = framed.get(size + 2..).unwrap_or_default();
    }
}

/// A `/proc/<pid>/status` field in bytes (`VmRSS`, `VmHWM`).
pub fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map(|kib| kib << 10)
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// A one-shard gateway's configuration on fresh loopback ports, OTLP/gRPC and OTLP/HTTP in,
/// with one `signal` pipeline (through a `batch` processor of 20 ms with `batch`) to the
/// exporters `ids`, defined by `exporters` (YAML indented by 2); returns it with its gRPC, HTTP
/// and admin addresses.
pub fn pipeline_config(
    signal: &str,
    batch: bool,
    exporters: &str,
    ids: &str,
) -> (String, SocketAddr, SocketAddr, SocketAddr) {
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let (section, names) = if batch {
        (
            "processors:\n  batch:\n    timeout: 20ms\n",
            "      processors: [batch]\n",
        )
    } else {
        ("", "")
    };
    let config = format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
{section}exporters:
{exporters}
service:
  pipelines:
    {signal}:
      receivers: [otlp]
{names}      exporters: [{ids}]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0]
"
    );
    (config, grpc, http, admin)
}

/// [`pipeline_config`] for traces, batched within 20 ms, to the one exporter `id`.
pub fn traces_config(id: &str, exporter: &str) -> (String, SocketAddr, SocketAddr, SocketAddr) {
    pipeline_config("traces", true, exporter, id)
}

/// A TCP relay in front of the sink that can stop reading from the gateway (`paused`: the
/// gateway's exports then stall as against an upstream that stopped answering), or read and
/// drop what the gateway sends (`blackhole`: a network that loses every packet, where the relay
/// still sees the gateway close its side). It counts the connections it accepted and those the
/// gateway closed.
pub struct Relay {
    pub addr: SocketAddr,
    pub paused: Arc<AtomicBool>,
    pub blackhole: Arc<AtomicBool>,
    pub accepted: Arc<AtomicUsize>,
    pub closed_by_gateway: Arc<AtomicUsize>,
}

impl Relay {
    pub fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay listener");
        let addr = listener.local_addr().unwrap();
        let relay = Relay {
            addr,
            paused: Arc::new(AtomicBool::new(false)),
            blackhole: Arc::new(AtomicBool::new(false)),
            accepted: Arc::new(AtomicUsize::new(0)),
            closed_by_gateway: Arc::new(AtomicUsize::new(0)),
        };
        let (paused, blackhole) = (relay.paused.clone(), relay.blackhole.clone());
        let (accepted, closed) = (relay.accepted.clone(), relay.closed_by_gateway.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                // `from_gateway`: the flags that apply, and the count of its closes.
                type FromGateway = Option<(Arc<AtomicBool>, Arc<AtomicBool>, Arc<AtomicUsize>)>;
                let pump = |mut from: TcpStream, mut to: TcpStream, from_gateway: FromGateway| {
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            while from_gateway
                                .as_ref()
                                .is_some_and(|(paused, _, _)| paused.load(Ordering::Relaxed))
                            {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(_)
                                    if from_gateway.as_ref().is_some_and(|(_, hole, _)| {
                                        hole.load(Ordering::Relaxed)
                                    }) => {}
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        if let Some((_, _, closed)) = &from_gateway {
                            closed.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    Some((paused.clone(), blackhole.clone(), closed.clone())),
                );
                pump(server, client, None);
            }
        });
        relay
    }
}

/// The resident set of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    proc_status_bytes(pid, "VmRSS") >> 10
}

/// CPU time (user + system) the process `pid` has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (which may hold spaces) start at field 3, the state;
    // utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')').expect("stat has (comm)") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf reads a constant of the system; no memory is involved.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// Waits until `condition` holds, checking every 20 ms for at most `limit`; whether it held.
pub fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}
