//! The official OpenTelemetry JavaScript SDK as a test client: [`send_spans`] runs
//! `tests/node/send_spans.mjs` under Node.js with the packages `tests/node/package-lock.json`
//! pins, installed once (`npm ci`, shared by every test process) under `<workspace>/target/node`
//! and again whenever the lock, the manifest or the script changes.
//!
//! [`available`] says whether `node` and `npm` are on PATH; a test skips, with a message, where
//! they are not, unless `TAILGATE_REQUIRE_NODE` is set (`.ci/run` sets it), when it fails.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::python::{fnv1a64, hex, run_with_timeout, workspace, DirLock, TempFile};

/// `npm ci` of the pinned packages: a few seconds from a warm cache, a minute or two cold.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// One run of the script.
const SEND_TIMEOUT: Duration = Duration::from_secs(120);
/// The files copied into the install directory; their contents decide whether it is current.
const FILES: [&str; 3] = ["package.json", "package-lock.json", "send_spans.mjs"];

/// Whether this machine can run the Node.js client: `node` and `npm` answer. Where they do not,
/// panics if `TAILGATE_REQUIRE_NODE` is set.
pub fn available() -> bool {
    let answers = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    let found = answers("node") && answers("npm");
    assert!(
        found || std::env::var_os("TAILGATE_REQUIRE_NODE").is_none(),
        "TAILGATE_REQUIRE_NODE is set and node or npm is not on PATH"
    );
    found
}

/// The directory holding the script and its installed packages, brought up to date first.
fn client_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(install).clone()
}

fn install() -> PathBuf {
    let source = workspace().join("tests").join("node");
    let root = workspace().join("target");
    let dir = root.join("node");
    let contents: Vec<Vec<u8>> = FILES
        .iter()
        .map(|name| {
            std::fs::read(source.join(name))
                .unwrap_or_else(|e| panic!("reading tests/node/{name}: {e}"))
        })
        .collect();
    let marker_text = format!("fnv1a64 {:016x}\n", fnv1a64(&contents.concat()));
    let marker = dir.join(".tailgate-installed");
    let up_to_date = || std::fs::read_to_string(&marker).ok().as_deref() == Some(&*marker_text);
    if up_to_date() {
        return dir;
    }
    std::fs::create_dir_all(&root).expect("create target/");
    let _lock = DirLock::acquire(root.join("node.lock"));
    if up_to_date() {
        return dir;
    }
    eprintln!(
        "tailgate tests: installing the OpenTelemetry JavaScript SDK into {} (npm ci; needs the \
         npm registry)",
        dir.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create target/node");
    for (name, content) in FILES.iter().zip(&contents) {
        std::fs::write(dir.join(name), content).expect("copy the client's files");
    }
    let out = run_with_timeout(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir),
        INSTALL_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("cannot run npm: {e}"));
    assert!(
        out.status.success(),
        "npm ci in {} failed ({}):\n{}\n{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&marker, marker_text).expect("write the marker");
    dir
}

/// A span as the SDK handed it to its exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpan {
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    /// Empty for a root.
    pub parent_span_id: Vec<u8>,
    pub name: String,
    /// The SDK's `SpanKind` (0 internal, 1 server, 2 client, ...): OTLP's value less one.
    pub kind: i32,
    /// The SDK's `SpanStatusCode` (0 unset, 1 ok, 2 error): OTLP's values.
    pub status_code: i32,
}

/// Sends `traces` traces of `spans_per_trace` spans through the JavaScript SDK's exporter for
/// `protocol` (`grpc`, `http/protobuf`, `http/json`) to `endpoint` (`http://host:port`, or
/// `https://` trusting the authority in `ca`, given as an SDK user gives it:
/// `OTEL_EXPORTER_OTLP_CERTIFICATE`), with `compression` (`none`, `gzip`); returns the spans the
/// exporter was handed. Panics when an export fails.
pub fn send_spans(
    protocol: &str,
    endpoint: &str,
    traces: usize,
    spans_per_trace: usize,
    compression: &str,
    ca: Option<&std::path::Path>,
) -> Vec<NodeSpan> {
    let dir = client_dir();
    let report = TempFile::new("json");
    let mut command = Command::new("node");
    command
        .arg(dir.join("send_spans.mjs"))
        .args([protocol, endpoint])
        .args([traces.to_string(), spans_per_trace.to_string()])
        .arg(compression)
        .arg(&report.0)
        .current_dir(&dir)
        .env_remove("NODE_OPTIONS");
    // The SDK reads its settings from the environment: none but these from the tests'.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    if let Some(ca) = ca {
        command.env("OTEL_EXPORTER_OTLP_CERTIFICATE", ca);
    }
    let out = run_with_timeout(&mut command, SEND_TIMEOUT).expect("run node");
    assert!(
        out.status.success(),
        "the JavaScript SDK's {protocol} export to {endpoint} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read(&report.0).expect("the client's report");
    let report: serde_json::Value = serde_json::from_slice(&text).expect("the report is JSON");
    let field = |span: &serde_json::Value, key: &str| {
        span[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} in {span}"))
            .to_string()
    };
    report["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|span| NodeSpan {
            trace_id: hex(&field(span, "trace_id")).expect("hex"),
            span_id: hex(&field(span, "span_id")).expect("hex"),
            parent_span_id: hex(&field(span, "parent_span_id")).expect("hex"),
            name: field(span, "name"),
            kind: span["kind"].as_i64().expect("kind") as i32,
            status_code: span["status_code"].as_i64().expect("status") as i32,
        })
        .collect()
}
