//! An OTLP peer that records the headers of every export it receives, for tests of header
//! forwarding (which tenant's headers reached which upstream).
//!
//! [`HeaderSink::start`] runs `tests/python/header_sink.py` (grpcio and opentelemetry-proto, in
//! the `proto` virtualenv) on two free loopback ports, OTLP/gRPC and OTLP/HTTP. The script owns
//! the sockets and appends one JSON line per accepted export to a file this process owns;
//! [`HeaderSink::requests`] reads that file again on every call, so a test polls it rather than
//! being told. Dropping the sink kills the process and removes its files.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::gateway::{free_port, loopback, wait_for};
use super::grpc::temp_path;
use super::python::{script_dir, venv, Venv};

/// How long the script may take to bind both ports (a cold interpreter importing grpcio).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`HeaderSink::stop`] waits for the script to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Tries with fresh ports when the script could not bind one (another process took it between
/// [`free_port`] and the bind).
const START_ATTEMPTS_MAX: usize = 3;

/// The script's exit code when a port cannot be bound.
const EXIT_BIND_FAILED: i32 = 3;

/// One export request as the sink received it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Recorded {
    /// `grpc` or `http`.
    pub transport: String,
    /// `traces`, `metrics` or `logs`.
    pub signal: String,
    /// gRPC call metadata or HTTP request headers: lower-cased name to values, in order.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The `service.name` of each resource group, in order; empty where it has none.
    pub services: Vec<String>,
    /// Spans, metric data points or log records in the request.
    pub items: u64,
}

impl Recorded {
    /// The first value of header `name` (any case), if the request carried it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }
}

/// A running `header_sink.py`; ends when dropped.
pub struct HeaderSink {
    child: Option<Child>,
    /// Its OTLP/gRPC address.
    pub grpc: SocketAddr,
    /// Its OTLP/HTTP address (`/v1/traces`, `/v1/metrics`, `/v1/logs`).
    pub http: SocketAddr,
    out: PathBuf,
    log: PathBuf,
}

impl HeaderSink {
    /// Starts the sink on free loopback ports and waits until both accept connections.
    pub fn start() -> HeaderSink {
        let python = venv(Venv::Proto);
        for attempt in 1..=START_ATTEMPTS_MAX {
            let mut sink = HeaderSink {
                child: None,
                grpc: loopback(free_port()),
                http: loopback(free_port()),
                out: temp_path("header-sink.jsonl"),
                log: temp_path("header-sink.log"),
            };
            let log = std::fs::File::create(&sink.log)
                .unwrap_or_else(|e| panic!("creating {}: {e}", sink.log.display()));
            let mut command = Command::new(&python);
            command
                .arg(script_dir().join("header_sink.py"))
                .args(["--grpc", &sink.grpc.to_string()])
                .args(["--http", &sink.http.to_string()])
                .arg("--out")
                .arg(&sink.out)
                .env_remove("PYTHONPATH")
                .env_remove("PYTHONHOME")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            sink.child =
                Some(command.spawn().unwrap_or_else(|e| {
                    panic!("cannot run {} header_sink.py: {e}", python.display())
                }));
            match sink.wait_listening() {
                Ok(()) => return sink,
                Err(Some(status))
                    if status.code() == Some(EXIT_BIND_FAILED) && attempt < START_ATTEMPTS_MAX =>
                {
                    continue
                }
                Err(status) => panic!(
                    "header_sink.py did not start on {} and {} ({}):\n{}",
                    sink.grpc,
                    sink.http,
                    status.map_or("still not listening after 60 s".to_string(), |s| s
                        .to_string()),
                    sink.log_text()
                ),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Waits until both ports accept; the exit status if the script ended first (`None`: timed
    /// out, the script killed).
    fn wait_listening(&mut self) -> Result<(), Option<ExitStatus>> {
        let child = self.child.as_mut().expect("spawned");
        let deadline = Instant::now() + START_TIMEOUT;
        let accepts = |addr: &SocketAddr| {
            TcpStream::connect_timeout(addr, Duration::from_millis(500)).is_ok()
        };
        loop {
            if let Some(status) = child.try_wait().expect("wait for header_sink.py") {
                return Err(Some(status));
            }
            if accepts(&self.grpc) && accepts(&self.http) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every export received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        let text = match std::fs::read_to_string(&self.out) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("reading {}: {e}", self.out.display()),
        };
        // A line without its newline is still being written: it is read on the next call.
        let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        complete
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("header_sink.py wrote {line:?}: {e}"))
            })
            .collect()
    }

    /// Spans, data points and log records received so far, all signals together.
    pub fn items(&self) -> u64 {
        self.requests().iter().map(|r| r.items).sum()
    }

    /// Waits up to `limit` until at least `n` items have arrived; whether they did.
    pub fn wait_for_items(&self, n: u64, limit: Duration) -> bool {
        wait_for(limit, || self.items() >= n)
    }

    /// What the script wrote to stderr.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the script to exit; returns its status.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) with a pid this test spawned and has not yet waited on; no memory is
        // involved.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for header_sink.py") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "header_sink.py did not exit within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HeaderSink {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.out);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A multi-tenant gateway's configuration after its receivers, up to `service.telemetry`:
/// tail sampling by `policies` (YAML under `policies:`, indented by 6) with a one-second
/// decision wait, a `batch` processor batching by `x-tenant`, and `headers_setter` setting each
/// batch's tenant as `X-Scope-OrgID` (`anonymous` without one) on every export to `sink` (a
/// [`HeaderSink`]'s gRPC address).
pub fn tenant_sampling(policies: &str, sink: SocketAddr) -> String {
    format!(
        "processors:
  tail_sampling:
    decision_wait: 1s
    policies:
{policies}
  batch:
    timeout: 200ms
    metadata_keys: [x-tenant]
extensions:
  headers_setter:
    headers:
      - key: X-Scope-OrgID
        from_context: x-tenant
        default_value: anonymous
exporters:
  otlp:
    endpoint: {sink}
    tls:
      insecure: true
    auth:
      authenticator: headers_setter
service:
  extensions: [headers_setter]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling, batch]
      exporters: [otlp]
"
    )
}
