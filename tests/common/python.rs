//! The official OpenTelemetry Python SDK as a real OTLP client for integration tests.
//!
//! [`venv`] builds (once, shared by every test process) a virtualenv under
//! `<workspace>/target/python/<kind>` from `tests/python/requirements-<kind>.txt`, installing
//! from PyPI with pip. [`send_spans`] runs `tests/python/send_spans.py` in the right virtualenv
//! and returns the spans it exported, exactly as the SDK handed them to the exporter.
//!
//! Requirements: `python3` (3.10+; override with `TAILGATE_PYTHON=/path/to/python`) with the
//! `venv` module (Debian/Ubuntu: `apt-get install python3-venv`) and access to PyPI (or a pip
//! mirror configured through pip's own config/`PIP_*` variables). The first run takes about half
//! a minute; later runs reuse the virtualenvs until a requirements file changes.
#![allow(dead_code)]

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Which virtualenv: the two exporter families have conflicting pins and cannot share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Venv {
    /// `opentelemetry-exporter-otlp-proto-grpc` and `-proto-http` (`requirements-proto.txt`).
    Proto,
    /// `opentelemetry-exporter-otlp-json-http` (`requirements-json.txt`).
    Json,
    /// `dnslib`, for a DNS server whose records a test changes (`requirements-dns.txt`).
    Dns,
    /// `proxy.py`, an HTTP proxy exporters tunnel through (`requirements-proxy.txt`).
    Proxy,
}

impl Venv {
    fn name(self) -> &'static str {
        match self {
            Venv::Proto => "proto",
            Venv::Json => "json",
            Venv::Dns => "dns",
            Venv::Proxy => "proxy",
        }
    }

    /// The virtualenv a `send_spans.py --protocol` value runs in.
    pub fn for_protocol(protocol: &str) -> Venv {
        match protocol {
            "grpc" | "http/protobuf" => Venv::Proto,
            "http/json" => Venv::Json,
            other => {
                panic!("unknown OTLP protocol {other:?} (want grpc, http/protobuf or http/json)")
            }
        }
    }
}

/// One span as the Python SDK exported it.
#[derive(Clone, Debug, PartialEq)]
pub struct SentSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// Empty for a root span, else 8 bytes.
    pub parent_span_id: Vec<u8>,
    pub name: String,
    /// The OTLP `Span.SpanKind` value (1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub kind: i32,
    /// Attribute values as plain JSON (string, integer, float, bool, array).
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub events: Vec<(String, serde_json::Map<String, serde_json::Value>)>,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    pub status_message: String,
    pub service_name: String,
}

/// How long one `send_spans.py` run may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(120);

/// How long creating a virtualenv and installing into it may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// A lock older than this is taken to be left behind by a killed process.
const STALE_LOCK: Duration = Duration::from_secs(20 * 60);

/// Bumped when the way a virtualenv is built changes, to force a rebuild.
const LAYOUT_VERSION: &str = "1";

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn script_dir() -> PathBuf {
    workspace().join("tests").join("python")
}

fn base_python() -> String {
    std::env::var("TAILGATE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn venv_python(dir: &Path) -> PathBuf {
    if cfg!(windows) {
        dir.join("Scripts").join("python.exe")
    } else {
        dir.join("bin").join("python")
    }
}

/// Returns the python of the virtualenv for `kind`, creating it or bringing it up to date with
/// its requirements file first. Safe to call from many threads and test processes at once.
pub fn venv(kind: Venv) -> PathBuf {
    static PROTO: OnceLock<PathBuf> = OnceLock::new();
    static JSON: OnceLock<PathBuf> = OnceLock::new();
    static DNS: OnceLock<PathBuf> = OnceLock::new();
    static PROXY: OnceLock<PathBuf> = OnceLock::new();
    let cell = match kind {
        Venv::Proto => &PROTO,
        Venv::Json => &JSON,
        Venv::Dns => &DNS,
        Venv::Proxy => &PROXY,
    };
    cell.get_or_init(|| ensure_venv(kind)).clone()
}

fn ensure_venv(kind: Venv) -> PathBuf {
    let root = workspace().join("target").join("python");
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("creating {}: {e}", root.display()));
    let dir = root.join(kind.name());
    let requirements = script_dir().join(format!("requirements-{}.txt", kind.name()));
    let req_text = std::fs::read(&requirements)
        .unwrap_or_else(|e| panic!("reading {}: {e}", requirements.display()));
    let python = base_python();
    let marker_text = format!(
        "layout {LAYOUT_VERSION}\nbase python {python}\nrequirements fnv1a64 {:016x}\n",
        fnv1a64(&req_text)
    );
    let marker = dir.join(".tailgate-requirements");
    let up_to_date = || {
        venv_python(&dir).exists()
            && std::fs::read_to_string(&marker).ok().as_deref() == Some(marker_text.as_str())
    };

    if up_to_date() {
        return venv_python(&dir);
    }
    let _lock = DirLock::acquire(root.join(format!("{}.lock", kind.name())));
    // Another process may have finished the job while this one waited for the lock.
    if up_to_date() {
        return venv_python(&dir);
    }

    let started = Instant::now();
    eprintln!(
        "tailgate tests: building Python virtualenv {} from {} (one-off; needs PyPI access)",
        dir.display(),
        requirements.display()
    );
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .unwrap_or_else(|e| panic!("removing stale {}: {e}", dir.display()));
    }
    let out = run_with_timeout(
        Command::new(&python).arg("-m").arg("venv").arg(&dir),
        INSTALL_TIMEOUT,
    )
    .unwrap_or_else(|e| {
        panic!(
            "cannot run `{python} -m venv`: {e}\n\
             The Python-client tests need Python 3.10+ with the venv module \
             (Debian/Ubuntu: `apt-get install python3 python3-venv`); \
             set TAILGATE_PYTHON to use another interpreter."
        )
    });
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        panic!(
            "`{python} -m venv {}` failed ({}).\n\
             The Python-client tests need the venv module and ensurepip \
             (Debian/Ubuntu: `apt-get install python3-venv`).\n--- stdout ---\n{}\n--- stderr ---\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
    let vpy = venv_python(&dir);
    let out = run_with_timeout(
        Command::new(&vpy)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(["--prefer-binary", "-r"])
            .arg(&requirements)
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .env_remove("PIP_USER"),
        INSTALL_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("cannot run {} -m pip: {e}", vpy.display()));
    if !out.status.success() {
        panic!(
            "pip could not install {} into {} ({}); the Python-client tests need PyPI access.\n\
             --- pip stdout ---\n{}\n--- pip stderr ---\n{}",
            requirements.display(),
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
    std::fs::write(&marker, &marker_text)
        .unwrap_or_else(|e| panic!("writing {}: {e}", marker.display()));
    eprintln!(
        "tailgate tests: virtualenv {} ready in {:.1?}",
        dir.display(),
        started.elapsed()
    );
    vpy
}

/// Builds `count` traces of `spans_per_trace` spans each with the OpenTelemetry Python SDK and
/// exports them to `endpoint` over `protocol` (`grpc`, `http/protobuf` or `http/json`).
/// `endpoint` is a base URL such as `http://127.0.0.1:4318`; the HTTP exporters post to
/// `/v1/traces` under it. Every `error_every`-th trace (indexes `error_every-1`, `2*error_every-1`,
/// ...) has an ERROR status on its root; 0 means none. `compression` is `none` or `gzip`.
/// The same `seed` always yields the same ids, names and attributes.
///
/// Panics, with the script's output, if any export call fails or the script does not finish
/// within [`SEND_TIMEOUT`].
pub fn send_spans(
    protocol: &str,
    endpoint: &str,
    traces: usize,
    spans_per_trace: usize,
    seed: u64,
    error_every: usize,
    compression: &str,
) -> Vec<SentSpan> {
    match try_send_spans(
        protocol,
        endpoint,
        traces,
        spans_per_trace,
        seed,
        error_every,
        compression,
        &[],
    ) {
        Ok(spans) => spans,
        Err(failure) => panic!("{failure}"),
    }
}

/// What went wrong in [`try_send_spans`].
#[derive(Debug)]
pub struct SendFailure {
    /// The script's exit code (2: an export call failed; 3: span count mismatch); `None` if it
    /// was killed (timeout) or could not be started.
    pub code: Option<i32>,
    pub message: String,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for SendFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "send_spans.py failed: {} (exit code {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.message, self.code, self.stdout, self.stderr
        )
    }
}

/// Like [`send_spans`] but returns the failure instead of panicking; `extra_args` are passed to
/// the script as they are (for instance `["--timeout", "2", "--batch-size", "50"]`).
#[allow(clippy::too_many_arguments)]
pub fn try_send_spans(
    protocol: &str,
    endpoint: &str,
    traces: usize,
    spans_per_trace: usize,
    seed: u64,
    error_every: usize,
    compression: &str,
    extra_args: &[&str],
) -> Result<Vec<SentSpan>, SendFailure> {
    let python = venv(Venv::for_protocol(protocol));
    let out_file = TempFile::new("json");
    let mut cmd = Command::new(&python);
    cmd.arg(script_dir().join("send_spans.py"))
        .args(["--endpoint", endpoint, "--protocol", protocol])
        .args(["--traces", &traces.to_string()])
        .args(["--spans-per-trace", &spans_per_trace.to_string()])
        .args(["--seed", &seed.to_string()])
        .args(["--error-every", &error_every.to_string()])
        .args(["--compression", compression])
        .arg("--out")
        .arg(&out_file.0)
        .args(extra_args)
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        // These override the HTTP exporter's `certificate_file` (requests reads them first):
        // a test's own CA is what the client must trust.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    // Test endpoints are local: keep the exporters (requests, urllib3, grpc) off any proxy.
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "grpc_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    let failure = |code, message: String, out: &Output| SendFailure {
        code,
        message,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let out = run_with_timeout(&mut cmd, SEND_TIMEOUT).map_err(|e| SendFailure {
        code: None,
        message: format!("running {}: {e}", python.display()),
        stdout: String::new(),
        stderr: String::new(),
    })?;
    if !out.status.success() {
        let what = match out.status.code() {
            Some(2) => "an export call failed".to_string(),
            Some(3) => "the exporter did not get every span".to_string(),
            None => format!("killed ({}; timeout {SEND_TIMEOUT:?})", out.status),
            Some(_) => format!("{}", out.status),
        };
        return Err(failure(
            out.status.code(),
            format!("{protocol} -> {endpoint}: {what}"),
            &out,
        ));
    }
    let text = std::fs::read(&out_file.0)
        .map_err(|e| failure(None, format!("reading {}: {e}", out_file.0.display()), &out))?;
    parse_report(&text).map_err(|e| failure(None, format!("parsing the --out report: {e}"), &out))
}

fn parse_report(text: &[u8]) -> Result<Vec<SentSpan>, String> {
    #[derive(serde::Deserialize)]
    struct Report {
        spans: Vec<RawSpan>,
    }
    #[derive(serde::Deserialize)]
    struct RawEvent {
        name: String,
        attributes: serde_json::Map<String, serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct RawSpan {
        trace_id: String,
        span_id: String,
        parent_span_id: String,
        name: String,
        kind: i32,
        attributes: serde_json::Map<String, serde_json::Value>,
        events: Vec<RawEvent>,
        status_code: i32,
        status_message: String,
        service_name: String,
    }
    let report: Report = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    report
        .spans
        .into_iter()
        .map(|s| {
            Ok(SentSpan {
                trace_id: hex(&s.trace_id)?
                    .try_into()
                    .map_err(|_| format!("trace id {:?}", s.trace_id))?,
                span_id: hex(&s.span_id)?
                    .try_into()
                    .map_err(|_| format!("span id {:?}", s.span_id))?,
                parent_span_id: hex(&s.parent_span_id)?,
                name: s.name,
                kind: s.kind,
                attributes: s.attributes,
                events: s
                    .events
                    .into_iter()
                    .map(|e| (e.name, e.attributes))
                    .collect(),
                status_code: s.status_code,
                status_message: s.status_message,
                service_name: s.service_name,
            })
        })
        .collect()
}

/// Lower-case or upper-case hex to bytes.
pub fn hex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {text:?}"));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("bad hex {text:?}")),
    };
    text.as_bytes()
        .chunks(2)
        .map(|p| Ok((digit(p[0])? << 4) | digit(p[1])?))
        .collect()
}

pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Runs `cmd` with piped output, killing it after `timeout` (the returned status then shows the
/// signal). stdout and stderr are drained on threads so a chatty child cannot block.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// A directory created with `create_dir` (atomic) used as a cross-process mutex. Holds the
/// owner's pid; a lock whose owner is gone (checked through /proc where there is one) or that is
/// older than [`STALE_LOCK`] is broken.
pub struct DirLock(PathBuf);

impl DirLock {
    pub fn acquire(path: PathBuf) -> DirLock {
        let started = Instant::now();
        let mut told = false;
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let _ = std::fs::write(path.join("pid"), std::process::id().to_string());
                    return DirLock(path);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if Self::stale(&path) {
                        eprintln!("tailgate tests: breaking stale lock {}", path.display());
                        let _ = std::fs::remove_dir_all(&path);
                        continue;
                    }
                    if !told {
                        eprintln!(
                            "tailgate tests: waiting for {} (another test is building it)",
                            path.display()
                        );
                        told = true;
                    }
                    if started.elapsed() > INSTALL_TIMEOUT + STALE_LOCK {
                        panic!("gave up waiting for lock {}", path.display());
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => panic!("creating lock {}: {e}", path.display()),
            }
        }
    }

    fn stale(path: &Path) -> bool {
        let age = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if age.is_some_and(|a| a > STALE_LOCK) {
            return true;
        }
        // The owner writes its pid just after creating the directory; give it a moment.
        if age.is_some_and(|a| a < Duration::from_secs(2)) {
            return false;
        }
        let owner = std::fs::read_to_string(path.join("pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        match owner {
            Some(pid) if Path::new("/proc/self").exists() => {
                !Path::new(&format!("/proc/{pid}")).exists()
            }
            _ => false,
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A uniquely named file in the temp directory, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(ext: &str) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        TempFile(std::env::temp_dir().join(format!(
            "tailgate-send-spans-{}-{}-{nanos}.{ext}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
