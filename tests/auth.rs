//! Authentication through the real binary over real sockets: `bearertokenauth` and `basicauth`
//! on the receivers (the official Python SDK and grpcio as clients, with and without
//! credentials), on an exporter sending to a second gateway that requires them, token files
//! rotated while both run, and authenticator mistakes refused at start with their key path.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::gateway::{free_port, http_request, loopback, start_sink, wait_for, Gateway};
use common::grpc::{grpc_call_with, Payload};
use common::python::try_send_spans;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const TRACE_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
const FAILURES: &str = "tailgate_receiver_auth_failures";

/// A directory of its own for one test's files.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tailgate-auth-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The standard test gateway exporting to `upstream`, with `extensions` (YAML indented by 2)
/// enabled and `authenticator` on both receiver protocols.
fn gateway_with_auth(
    upstream: SocketAddr,
    extensions: &str,
    enabled: &[&str],
    authenticator: &str,
) -> Gateway {
    let auth = format!("        auth:\n          authenticator: {authenticator}");
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 2, &auth, &auth);
    let config = with_extensions(&config, extensions, enabled);
    Gateway::start_with_config(&config, grpc, http, admin)
}

/// `config` with an `extensions` section and `service.extensions`.
fn with_extensions(config: &str, extensions: &str, enabled: &[&str]) -> String {
    let config = config.replacen(
        "service:\n",
        &format!("service:\n  extensions: [{}]\n", enabled.join(", ")),
        1,
    );
    format!("extensions:\n{extensions}{config}")
}

/// One small valid traces request.
fn one_span_request() -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![7; 16],
                    span_id: vec![9; 8],
                    name: "probe".into(),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    ..Span::default()
                }],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

/// An OTLP/HTTP traces post with `headers`: status and headers of the answer.
fn post_traces(gateway: &Gateway, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>) {
    let mut all = vec![("Content-Type", "application/x-protobuf")];
    all.extend_from_slice(headers);
    let (status, headers, _) = http_request(
        gateway.http,
        "POST",
        "/v1/traces",
        &all,
        &one_span_request(),
    )
    .expect("post traces");
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Sends 3 traces of 2 spans with the Python SDK over `protocol`, with `headers` (`NAME=VALUE`).
fn python_send(gateway: &Gateway, protocol: &str, seed: u64, headers: &[&str]) -> bool {
    let endpoint = match protocol {
        "grpc" => format!("http://{}", gateway.grpc),
        _ => format!("http://{}", gateway.http),
    };
    let mut args = vec!["--timeout", "5"];
    for h in headers {
        args.extend(["--header", h]);
    }
    match try_send_spans(protocol, &endpoint, 3, 2, seed, 0, "none", &args) {
        Ok(sent) => {
            assert_eq!(sent.len(), 6);
            true
        }
        Err(failure) => {
            assert_eq!(
                failure.code,
                Some(2),
                "an export failure, not a crash: {failure}"
            );
            false
        }
    }
}

fn failures(gateway: &Gateway, transport: &str, reason: &str) -> f64 {
    gateway.metric(FAILURES, &[("transport", transport), ("reason", reason)])
}

fn grpc_export(gateway: &Gateway, metadata: &[(&str, &str)]) -> common::grpc::GrpcReply {
    let request = one_span_request();
    grpc_call_with(
        gateway.grpc,
        TRACE_EXPORT,
        Payload::Bytes(&request),
        "none",
        metadata,
    )
}

#[test]
fn bearer_tokens_are_checked_on_grpc_and_http() {
    let (sink, sink_grpc, _) = start_sink();
    let gateway = gateway_with_auth(
        sink_grpc,
        "  bearertokenauth/in:\n    tokens: [tok-alpha, tok-beta]\n",
        &["bearertokenauth/in"],
        "bearertokenauth/in",
    );

    // The official SDK, with its exporter's `headers`: either token, either protocol.
    assert!(python_send(
        &gateway,
        "grpc",
        1,
        &["authorization=Bearer tok-alpha"]
    ));
    assert!(python_send(
        &gateway,
        "http/protobuf",
        2,
        &["Authorization=Bearer tok-beta"]
    ));
    assert!(!python_send(
        &gateway,
        "grpc",
        3,
        &["authorization=Bearer tok-gamma"]
    ));
    assert!(!python_send(&gateway, "http/protobuf", 4, &[]));

    // gRPC: UNAUTHENTICATED with a message; the health check needs no credentials.
    let reply = grpc_export(&gateway, &[]);
    assert_eq!(reply.code, "UNAUTHENTICATED", "{reply:?}");
    assert_eq!(reply.details(), "unauthenticated: missing credentials");
    let reply = grpc_export(&gateway, &[("authorization", "Bearer nope-xyz")]);
    assert_eq!(reply.code, "UNAUTHENTICATED", "{reply:?}");
    assert_eq!(reply.details(), "unauthenticated: invalid credentials");
    let reply = grpc_export(&gateway, &[("authorization", "Bearer tok-beta")]);
    assert_eq!(reply.code, "OK", "{reply:?}");
    let health = grpc_call_with(gateway.grpc, HEALTH_CHECK, Payload::Bytes(&[]), "none", &[]);
    assert_eq!(health.code, "OK", "the health check stays open: {health:?}");

    // HTTP: 401 with a challenge naming the scheme.
    let (status, headers) = post_traces(&gateway, &[]);
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "www-authenticate"),
        Some("Bearer realm=\"tailgate\"")
    );
    let (status, _) = post_traces(&gateway, &[("Authorization", "Bearer tok-alphax")]);
    assert_eq!(status, 401);
    let (status, _) = post_traces(&gateway, &[("authorization", "Bearer tok-alpha")]);
    assert_eq!(status, 200);

    assert_eq!(failures(&gateway, "grpc", "missing"), 1.0);
    assert!(failures(&gateway, "grpc", "invalid") >= 2.0);
    assert!(failures(&gateway, "http", "missing") >= 2.0);
    assert_eq!(failures(&gateway, "http", "invalid"), 1.0);
    let accepted = |transport| {
        gateway.metric(
            "otelcol_receiver_accepted_spans",
            &[("transport", transport)],
        )
    };
    assert_eq!((accepted("grpc"), accepted("http")), (7.0, 7.0));
    let stderr = gateway.stderr();
    let logged = stderr.matches("for missing or invalid credentials").count();
    assert!(
        (1..=4).contains(&logged),
        "refusals are logged at most once a minute per receiver protocol and shard:\n{stderr}"
    );
    assert!(
        !stderr.contains("tok-") && !stderr.contains("nope-xyz"),
        "no token in the log:\n{stderr}"
    );

    let status = gateway.stop();
    assert!(status.success(), "exit status {status}");
    let result = sink.stop().expect("sink");
    assert_eq!(common::gateway::received_spans(&result).len(), 14);
}

#[test]
fn basic_credentials_are_checked_on_grpc_and_http() {
    let dir = test_dir("basic");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let htpasswd = dir.join("htpasswd");
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let extensions = format!(
        "  basicauth/in:\n    htpasswd:\n      file: {}\n      inline: |\n        bob:{{SHA}}87u9ZqY9S/F0eUBXjsPQEDUw4h0=\n",
        htpasswd.display()
    );
    let (sink, sink_grpc, _) = start_sink();
    let gateway = gateway_with_auth(sink_grpc, &extensions, &["basicauth/in"], "basicauth/in");
    let basic = |user: &str, password: &str| {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    };
    let alice = basic("alice", "s3cret");
    let bob = basic("bob", "hunter2");

    assert!(python_send(
        &gateway,
        "grpc",
        1,
        &[&format!("authorization={alice}")]
    ));
    assert!(python_send(
        &gateway,
        "http/protobuf",
        2,
        &[&format!("Authorization={bob}")]
    ));
    assert!(!python_send(
        &gateway,
        "http/protobuf",
        3,
        &[&format!("Authorization={}", basic("alice", "wrong"))]
    ));

    let reply = grpc_export(&gateway, &[("authorization", &basic("bob", "hunter3"))]);
    assert_eq!(reply.code, "UNAUTHENTICATED", "{reply:?}");
    let reply = grpc_export(&gateway, &[("authorization", &basic("mallory", "x"))]);
    assert_eq!(reply.code, "UNAUTHENTICATED", "{reply:?}");
    let reply = grpc_export(&gateway, &[]);
    assert_eq!(reply.code, "UNAUTHENTICATED", "{reply:?}");

    let (status, headers) = post_traces(&gateway, &[]);
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "www-authenticate"),
        Some("Basic realm=\"tailgate\", charset=\"UTF-8\"")
    );
    let (status, _) = post_traces(&gateway, &[("Authorization", &alice)]);
    assert_eq!(status, 200, "bcrypt, checked off the shard's thread");
    let (status, _) = post_traces(&gateway, &[("Authorization", "Bearer x")]);
    assert_eq!(status, 401);

    assert_eq!(failures(&gateway, "grpc", "missing"), 1.0);
    assert_eq!(failures(&gateway, "grpc", "invalid"), 2.0);
    assert_eq!(failures(&gateway, "http", "missing"), 1.0);
    assert!(failures(&gateway, "http", "invalid") >= 2.0);

    let status = gateway.stop();
    assert!(status.success(), "exit status {status}");
    let result = sink.stop().expect("sink");
    assert_eq!(common::gateway::received_spans(&result).len(), 13);
    let _ = std::fs::remove_dir_all(dir);
}

/// Writes `text` to `path` through a rename, as a secret manager updates a file, so a reader
/// never sees it half written.
fn replace_file(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}

#[test]
fn an_exporter_sends_a_rotating_token_to_a_gateway_that_requires_it() {
    let dir = test_dir("chain");
    let upstream_tokens = dir.join("upstream.token");
    let downstream_token = dir.join("downstream.token");
    std::fs::write(&upstream_tokens, "old\n").unwrap();
    std::fs::write(&downstream_token, "old\n").unwrap();

    // B: requires a token from its file, exports to the sink.
    let (sink, sink_grpc, _) = start_sink();
    let upstream = gateway_with_auth(
        sink_grpc,
        &format!(
            "  bearertokenauth/in:\n    filename: {}\n",
            upstream_tokens.display()
        ),
        &["bearertokenauth/in"],
        "bearertokenauth/in",
    );

    // A: no auth on its receivers; exports to B over OTLP/gRPC and OTLP/HTTP with a token file.
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let config = format!(
        "extensions:
  bearertokenauth/out:
    filename: {token}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
processors:
  batch:
    timeout: 50ms
exporters:
  otlp:
    endpoint: http://{b_grpc}
    auth:
      authenticator: bearertokenauth/out
    retry_on_failure:
      initial_interval: 100ms
  otlphttp:
    endpoint: http://{b_http}
    auth:
      authenticator: bearertokenauth/out
    retry_on_failure:
      initial_interval: 100ms
service:
  extensions: [bearertokenauth/out]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp, otlphttp]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0]
",
        token = downstream_token.display(),
        b_grpc = upstream.grpc,
        b_http = upstream.http,
    );
    let downstream = Gateway::start_with_config(&config, grpc, http, admin);
    let upstream_pid = upstream.pid();

    // Every span reaches the sink twice: once through each of A's exporters.
    assert!(python_send(&downstream, "grpc", 1, &[]));
    assert!(
        wait_for(Duration::from_secs(20), || sink.spans_received() == 12),
        "delivered through B: {} spans\nA:\n{}\nB:\n{}",
        sink.spans_received(),
        downstream.stderr(),
        upstream.stderr()
    );

    // Rotation as it is done without downtime: B accepts old and new, A moves to new, B drops
    // old. Neither gateway restarts.
    // An empty request: 200 when the token is accepted, and nothing reaches the sink.
    let accepts = |token: &str| {
        let authorization = format!("Bearer {token}");
        let headers = [
            ("Content-Type", "application/x-protobuf"),
            ("Authorization", authorization.as_str()),
        ];
        let (status, _, _) =
            http_request(upstream.http, "POST", "/v1/traces", &headers, b"").expect("post to B");
        assert!(status == 200 || status == 401, "{status}");
        status == 200
    };
    replace_file(&upstream_tokens, "old\nnew\n");
    assert!(wait_for(Duration::from_secs(10), || accepts("new")));
    assert!(accepts("old"));
    replace_file(&downstream_token, "new\n");
    // A's watcher reads its file every second; give it two.
    std::thread::sleep(Duration::from_millis(2500));
    replace_file(&upstream_tokens, "new\n");
    assert!(wait_for(Duration::from_secs(10), || !accepts("old")));
    assert!(python_send(&downstream, "grpc", 2, &[]));
    assert!(
        wait_for(Duration::from_secs(20), || sink.spans_received() == 24),
        "after rotation: {} spans\nA:\n{}",
        sink.spans_received(),
        downstream.stderr()
    );
    assert_eq!(
        downstream.metric("otelcol_exporter_send_failed_spans", &[]),
        0.0,
        "no export of A was refused"
    );

    // A file that disappears or empties keeps the last good token.
    std::fs::remove_file(&upstream_tokens).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(accepts("new"));
    std::fs::write(&upstream_tokens, "\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(accepts("new"));
    assert!(!accepts("old"));
    let log = upstream.stderr();
    assert!(log.contains("keeping the last good token(s)"), "{log}");
    assert_eq!(upstream.pid(), upstream_pid);

    assert!(downstream.stop().success());
    assert!(upstream.stop().success());
    sink.stop().expect("sink");
    let _ = std::fs::remove_dir_all(dir);
}

/// `basicauth` client credentials from files, as a Kubernetes secret mounts them: the
/// exporter sends what the files hold (trimmed, the file over the inline `username`), and
/// sends a changed pair from its next requests on, without a restart.
#[test]
fn an_exporter_sends_basic_credentials_from_files_and_follows_them() {
    let dir = test_dir("basic-files");
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!(
            "alice:{}\nbob:{}\n",
            bcrypt::hash("one", 4).unwrap(),
            bcrypt::hash("two", 4).unwrap()
        ),
    )
    .unwrap();
    let (username, password) = (dir.join("username"), dir.join("password"));
    std::fs::write(&username, "alice\n").unwrap();
    std::fs::write(&password, "one\n").unwrap();

    // B: requires Basic credentials, exports to the sink.
    let (sink, sink_grpc, _) = start_sink();
    let upstream = gateway_with_auth(
        sink_grpc,
        &format!(
            "  basicauth/in:\n    htpasswd:\n      file: {}\n",
            htpasswd.display()
        ),
        &["basicauth/in"],
        "basicauth/in",
    );
    // A: exports to B over OTLP/gRPC with the files' credentials; a refusal is not retried,
    // so each one is counted at once.
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let config = format!(
        "extensions:
  basicauth/out:
    client_auth:
      username: mallory
      username_file: {username}
      password_file: {password}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
      http:
        endpoint: {http}
processors:
  batch:
    timeout: 20ms
exporters:
  otlp:
    endpoint: http://{b_grpc}
    auth:
      authenticator: basicauth/out
    retry_on_failure:
      enabled: false
service:
  extensions: [basicauth/out]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0]
",
        username = username.display(),
        password = password.display(),
        b_grpc = upstream.grpc,
    );
    let downstream = Gateway::start_with_config(&config, grpc, http, admin);
    let send = || {
        let (status, _) = post_traces(&downstream, &[]);
        assert_eq!(status, 200);
    };
    let failed = || downstream.metric("otelcol_exporter_send_failed_spans", &[]);

    // alice:one, from the files.
    send();
    assert!(
        wait_for(Duration::from_secs(20), || sink.spans_received() == 1),
        "A:\n{}\nB:\n{}",
        downstream.stderr(),
        upstream.stderr()
    );
    assert_eq!(failed(), 0.0);

    // A wrong password in the file: B refuses A's exports from the next ones on.
    replace_file(&password, "wrong\n");
    assert!(
        wait_for(Duration::from_secs(20), || {
            send();
            failures(&upstream, "grpc", "invalid") >= 1.0 && failed() >= 1.0
        }),
        "A:\n{}",
        downstream.stderr()
    );

    // Rotated to bob:two: delivered again.
    replace_file(&username, "bob");
    replace_file(&password, "two");
    let before = sink.spans_received();
    assert!(
        wait_for(Duration::from_secs(20), || {
            send();
            sink.spans_received() > before
        }),
        "A:\n{}",
        downstream.stderr()
    );
    // Every span A accepted was delivered or counted as failed.
    let accepted = || downstream.metric("otelcol_receiver_accepted_spans", &[]);
    assert!(wait_for(Duration::from_secs(20), || accepted()
        == sink.spans_received() as f64 + failed()));
    let log = downstream.stderr();
    assert!(log.contains("client_auth's credentials changed"), "{log}");

    assert!(downstream.stop().success());
    assert!(upstream.stop().success());
    sink.stop().expect("sink");
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs the gateway on `config` until it exits (it must, at start): its exit code and stderr.
fn start_refused(config: &str) -> (Option<i32>, String) {
    let dir = test_dir("refused");
    let path = dir.join(format!("{}.yaml", free_port()));
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tailgate"))
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run tailgate");
    let _ = std::fs::remove_file(&path);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn authenticator_mistakes_are_refused_at_start_with_their_key_path() {
    let (grpc, http, admin) = (
        loopback(free_port()),
        loopback(free_port()),
        loopback(free_port()),
    );
    let base = |receiver_auth: &str, exporter_auth: &str, extensions: &str, enabled: &str| {
        format!(
            "extensions:\n{extensions}receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: {grpc}\n{receiver_auth}      http:\n        endpoint: {http}\nexporters:\n  otlp:\n    endpoint: http://127.0.0.1:1\n{exporter_auth}service:\n  extensions: [{enabled}]\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp]\n  telemetry:\n    metrics:\n      address: {admin}\n"
        )
    };
    let on_receiver = |name: &str| format!("        auth:\n          authenticator: {name}\n");
    let on_exporter = |name: &str| format!("    auth:\n      authenticator: {name}\n");
    let bearer = "  bearertokenauth/in:\n    token: t\n";
    let client = "  basicauth/out:\n    client_auth:\n      username: u\n      password: p\n";
    let server = "  basicauth/in:\n    htpasswd:\n      inline: \"u:p\"\n";
    let missing_file = "  bearertokenauth/file:\n    filename: /nonexistent/tailgate.token\n";
    for (config, path, message) in [
        (
            base(
                &on_receiver("bearertokenauth/typo"),
                "",
                bearer,
                "bearertokenauth/in",
            ),
            "receivers.otlp.protocols.grpc.auth.authenticator",
            "authenticator `bearertokenauth/typo` is not defined under `extensions` (defined: \
             bearertokenauth/in)",
        ),
        (
            base(&on_receiver("bearertokenauth/in"), "", bearer, ""),
            "receivers.otlp.protocols.grpc.auth.authenticator",
            "is defined but not enabled: list it in `service.extensions`",
        ),
        (
            base(&on_receiver("basicauth/out"), "", client, "basicauth/out"),
            "receivers.otlp.protocols.grpc.auth.authenticator",
            "`basicauth/out` has `client_auth`",
        ),
        (
            base("", &on_exporter("basicauth/in"), server, "basicauth/in"),
            "exporters.otlp.auth.authenticator",
            "`basicauth/in` has `htpasswd`",
        ),
        (
            base("", &on_exporter("nothing"), bearer, "bearertokenauth/in"),
            "exporters.otlp.auth.authenticator",
            "authenticator `nothing` is not defined",
        ),
        (
            base("", "", bearer, "bearertokenauth/other"),
            "service.extensions[0]",
            "extension `bearertokenauth/other` is not defined",
        ),
        (
            base(
                &on_receiver("bearertokenauth/file"),
                "",
                missing_file,
                "bearertokenauth/file",
            ),
            "extensions.bearertokenauth/file.filename",
            "/nonexistent/tailgate.token: cannot read it",
        ),
        (
            base(
                "",
                &on_exporter("basicauth/out"),
                "  basicauth/out:\n    client_auth:\n      username: u\n      password_file: /nonexistent/tailgate.password\n",
                "basicauth/out",
            ),
            "extensions.basicauth/out.client_auth.password_file",
            "/nonexistent/tailgate.password: cannot read it",
        ),
    ] {
        let (code, stderr) = start_refused(&config);
        assert_eq!(code, Some(1), "{config}\n{stderr}");
        assert!(stderr.contains(&format!("{path}: ")), "{path} in: {stderr}");
        assert!(stderr.contains(message), "`{message}` in: {stderr}");
    }
}
