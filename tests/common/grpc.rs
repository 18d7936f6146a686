//! A real gRPC client for tests: grpcio through `tests/python/grpc_call.py`, in the project's
//! own virtualenv.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::python::{script_dir, venv, Venv};

/// What a gRPC call returned.
#[derive(Debug, serde::Deserialize)]
pub struct GrpcReply {
    /// The `grpc.StatusCode` name.
    pub code: String,
    pub details: Option<String>,
    pub trailing_metadata: Vec<(String, String)>,
    pub response_hex: Option<String>,
}

impl GrpcReply {
    pub fn response(&self) -> Vec<u8> {
        let hex = self.response_hex.as_deref().expect("a response message");
        super::python::hex(hex).expect("hex")
    }

    pub fn details(&self) -> &str {
        self.details.as_deref().unwrap_or("")
    }
}

/// What the call sends.
pub enum Payload<'a> {
    Bytes(&'a [u8]),
    /// That many zero bytes, made by the client (a large message without a file of its size).
    Zeros(usize),
}

pub fn temp_path(what: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "tailgate-test-grpc-{}-{}-{what}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Makes one unary call with grpcio; `compression` is `none` or `gzip`.
pub fn grpc_call(
    target: SocketAddr,
    method: &str,
    payload: Payload,
    compression: &str,
) -> GrpcReply {
    grpc_call_with(target, method, payload, compression, &[])
}

/// [`grpc_call`] with call `metadata` (keys lower-case).
pub fn grpc_call_with(
    target: SocketAddr,
    method: &str,
    payload: Payload,
    compression: &str,
    metadata: &[(&str, &str)],
) -> GrpcReply {
    let python = venv(Venv::Proto);
    let out = temp_path("reply.json");
    let mut cmd = Command::new(&python);
    cmd.arg(script_dir().join("grpc_call.py"))
        .args(["--target", &target.to_string(), "--method", method])
        .args(["--compression", compression])
        .arg("--out")
        .arg(&out)
        .args(
            metadata
                .iter()
                .flat_map(|(key, value)| ["--metadata".to_string(), format!("{key}={value}")]),
        )
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let request = temp_path("request.bin");
    match payload {
        Payload::Bytes(bytes) => {
            std::fs::write(&request, bytes).expect("write the request");
            cmd.arg("--request-file").arg(&request);
        }
        Payload::Zeros(n) => {
            cmd.args(["--request-zeros", &n.to_string()]);
        }
    }
    for var in ["http_proxy", "https_proxy", "all_proxy", "grpc_proxy"] {
        cmd.env_remove(var).env_remove(var.to_ascii_uppercase());
    }
    let mut child = cmd.spawn().expect("run grpc_call.py");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("grpc_call.py output");
    let _ = std::fs::remove_file(&request);
    let text = std::fs::read(&out);
    let _ = std::fs::remove_file(&out);
    assert!(
        output.status.success(),
        "grpc_call.py {method} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&text.expect("grpc_call.py --out")).expect("grpc_call.py JSON")
}
