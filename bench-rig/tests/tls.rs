//! The load and the sink over TLS, with certificates from `tailgate_bench::certs`: what arrives
//! is judged as in the clear, and a TLS misconfiguration (the wrong authority, the wrong name, a
//! client certificate missing) stops the load with an error that says what to change.
//! `tailgate-bench handshakes` against a TLS sink: full handshakes counted at both ends, a
//! thousand connections held at once, failures told by reason.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tailgate_bench::certs::{self, CertFiles};
use tailgate_bench::handshakes::HandshakeArgs;
use tailgate_bench::load::{self, LoadArgs};
use tailgate_bench::sink::{Sink, SinkArgs, TRACKED_SPANS_DEFAULT};
use tailgate_bench::tls::{ClientTlsArgs, ServerTlsArgs};

/// How long the sink has to count a refused load's handshakes.
const SETTLE: Duration = Duration::from_millis(500);

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tailgate-bench-tls-{}-{name}", std::process::id()))
}

/// A certificate set of its own for one test.
fn cert_set(name: &str) -> CertFiles {
    certs::write_set(&temp(name), &["localhost", "127.0.0.1"]).expect("write certificates")
}

/// The sink's TLS from `files`, requiring client certificates when `mutual`.
fn sink_tls(files: &CertFiles, mutual: bool) -> ServerTlsArgs {
    ServerTlsArgs {
        tls_cert: Some(files.server_cert.clone()),
        tls_key: Some(files.server_key.clone()),
        tls_client_ca: mutual.then(|| files.ca.clone()),
    }
}

/// The load's TLS trusting `ca`, presenting `files`' client certificate when `mutual`.
fn load_tls(ca: &Path, files: &CertFiles, mutual: bool) -> ClientTlsArgs {
    ClientTlsArgs {
        tls_ca: Some(ca.to_path_buf()),
        tls_server_name: None,
        tls_cert: mutual.then(|| files.client_cert.clone()),
        tls_key: mutual.then(|| files.client_key.clone()),
    }
}

/// Runs half a second of `protocol` load with `tls` (changed by `adjust`) into a sink serving
/// `sink_tls`; returns the load's outcome (its report, or its error) and the sink's report.
fn run(
    name: &str,
    protocol: &str,
    sink_tls: &ServerTlsArgs,
    tls: ClientTlsArgs,
    adjust: impl FnOnce(&mut LoadArgs),
) -> (Result<serde_json::Value, String>, serde_json::Value) {
    let (grpc, http) = (free_addr(), free_addr());
    let expect = temp(&format!("{name}.expect"));
    let args = SinkArgs {
        listen: grpc,
        http_listen: Some(http),
        report: PathBuf::from("/dev/null"),
        dump: None,
        cpu: 0,
        cpus: Vec::new(),
        track_max: TRACKED_SPANS_DEFAULT,
    };
    let sink = Sink::start_tls(args, sink_tls, false, Some(expect.clone())).expect("the sink");
    let endpoint = if protocol == "grpc" { grpc } else { http };
    let report = temp(&format!("{name}.json"));
    let mut args = LoadArgs {
        tls,
        protocol: protocol.into(),
        connections: 2,
        rate: "20000".into(),
        duration: 0.5,
        spans_per_request: 100,
        seed: 17,
        error_rate: 0.03,
        trace_spread_ms: 50,
        oracle_policy: "errors,latency:500,probabilistic:10".into(),
        expect_out: Some(expect.clone()),
        quiet: true,
        ..LoadArgs::new(&format!("https://{endpoint}"), &report)
    };
    adjust(&mut args);
    let outcome = load::run(args)
        .map_err(|err| err.to_string())
        .map(|()| serde_json::from_slice(&std::fs::read(&report).expect("load report")).unwrap());
    if outcome.is_err() {
        // A load that gave up left at once: give the sink time to accept its connections and
        // read their alerts, so the failed handshakes are counted before it stops.
        std::thread::sleep(SETTLE);
    }
    let sink = sink.stop().expect("the sink stops").report;
    let _ = std::fs::remove_file(&report);
    let _ = std::fs::remove_file(&expect);
    (outcome, sink)
}

fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Every trace the load sent arrived whole at the sink, judged by the oracle as in the clear.
fn assert_verified(load: &serde_json::Value, sink: &serde_json::Value) {
    assert_eq!(load["tls"], true);
    assert!(u(load, "spans_sent") > 2_000, "{load}");
    assert_eq!(u(load, "spans_refused"), 0, "{load}");
    assert_eq!(u(sink, "spans_received"), u(load, "spans_sent"));
    assert_eq!(u(sink, "duplicates"), 0);
    let (sent, kept) = (u(load, "traces_sent"), u(load, "traces_kept_expected"));
    assert_eq!(u(sink, "expected_traces_kept"), kept);
    assert_eq!(u(sink, "kept_traces_complete"), kept);
    assert_eq!(u(sink, "traces_kept_wrongly"), sent - kept);
    assert_eq!(u(sink, "traces_unknown"), 0);
    // One full handshake a connection, none refused.
    assert_eq!(u(sink, "tls_handshakes"), 2, "{sink}");
    assert_eq!(u(sink, "tls_handshakes_failed"), 0, "{sink}");
}

#[test]
fn grpc_over_tls_arrives_whole() {
    let files = cert_set("grpc");
    let (load, sink) = run(
        "grpc",
        "grpc",
        &sink_tls(&files, false),
        load_tls(&files.ca, &files, false),
        |_| {},
    );
    assert_verified(&load.expect("the load runs"), &sink);
    let _ = std::fs::remove_dir_all(temp("grpc"));
}

#[test]
fn gzip_grpc_in_16k_frames_with_client_certificates_arrives_whole() {
    let files = cert_set("mtls");
    let (load, sink) = run(
        "mtls",
        "grpc",
        &sink_tls(&files, true),
        load_tls(&files.ca, &files, true),
        |args| {
            args.compression = Some("gzip".into());
            args.frame_size = Some(16_384);
        },
    );
    assert_verified(&load.expect("the load runs"), &sink);
    let _ = std::fs::remove_dir_all(temp("mtls"));
}

#[test]
fn http_protobuf_over_tls_with_client_certificates_arrives_whole() {
    let files = cert_set("http");
    let (load, sink) = run(
        "http",
        "http-protobuf",
        &sink_tls(&files, true),
        load_tls(&files.ca, &files, true),
        |_| {},
    );
    assert_verified(&load.expect("the load runs"), &sink);
    let _ = std::fs::remove_dir_all(temp("http"));
}

#[test]
fn a_load_trusting_another_authority_stops_and_says_so() {
    let (files, other) = (cert_set("ca-sink"), cert_set("ca-other"));
    for protocol in ["grpc", "http-protobuf"] {
        let (load, sink) = run(
            "wrong-ca",
            protocol,
            &sink_tls(&files, false),
            load_tls(&other.ca, &other, false),
            |_| {},
        );
        let err = load.expect_err("a load that trusts another authority fails");
        // Both authorities have the same name: the certificate's signature is what fails.
        assert!(err.contains("invalid peer certificate"), "{err}");
        assert!(err.contains("not from the authority in --tls-ca"), "{err}");
        assert_eq!(u(&sink, "spans_received"), 0, "{sink}");
        assert_eq!(u(&sink, "tls_handshakes"), 0, "{sink}");
        assert!(u(&sink, "tls_handshakes_failed") >= 1, "{sink}");
    }
    let _ = std::fs::remove_dir_all(temp("ca-sink"));
    let _ = std::fs::remove_dir_all(temp("ca-other"));
}

#[test]
fn a_server_name_the_certificate_does_not_carry_stops_the_load() {
    let files = cert_set("name");
    let mut tls = load_tls(&files.ca, &files, false);
    tls.tls_server_name = Some("gateway.example".into());
    let (load, _) = run("name", "grpc", &sink_tls(&files, false), tls, |_| {});
    let err = load.expect_err("the certificate is not for that name");
    assert!(err.contains("--tls-server-name"), "{err}");
    let _ = std::fs::remove_dir_all(temp("name"));
}

#[test]
fn a_sink_requiring_client_certificates_refuses_a_load_without_one() {
    let files = cert_set("no-client-cert");
    for protocol in ["grpc", "http-protobuf"] {
        let (load, sink) = run(
            "no-client-cert",
            protocol,
            &sink_tls(&files, true),
            load_tls(&files.ca, &files, false),
            |_| {},
        );
        let err = load.expect_err("the sink requires a client certificate");
        assert!(err.contains("CertificateRequired"), "{protocol}: {err}");
        assert!(err.contains("give --tls-cert and --tls-key"), "{err}");
        assert_eq!(u(&sink, "spans_received"), 0, "{sink}");
        assert_eq!(u(&sink, "tls_handshakes"), 0, "{sink}");
        assert!(u(&sink, "tls_handshakes_failed") >= 1, "{sink}");
    }
    let _ = std::fs::remove_dir_all(temp("no-client-cert"));
}

#[test]
fn https_without_an_authority_to_trust_is_refused_before_sending() {
    let files = cert_set("no-ca");
    let (load, sink) = run(
        "no-ca",
        "grpc",
        &sink_tls(&files, false),
        ClientTlsArgs::default(),
        |_| {},
    );
    let err = load.expect_err("https:// needs --tls-ca");
    assert!(err.contains("TLS needs --tls-ca"), "{err}");
    assert_eq!(u(&sink, "grpc_connections"), 0, "{sink}");
    let _ = std::fs::remove_dir_all(temp("no-ca"));
}

/// `tailgate-bench handshakes` against a TLS sink on `grpc` (changed by `adjust`); returns the
/// command's outcome and its report.
fn handshakes(
    name: &str,
    grpc: SocketAddr,
    tls: ClientTlsArgs,
    adjust: impl FnOnce(&mut HandshakeArgs),
) -> (Result<(), String>, serde_json::Value) {
    let report = temp(&format!("{name}.handshakes.json"));
    let mut args = HandshakeArgs {
        addr: grpc.to_string(),
        tls,
        alpn: Some("h2".into()),
        key_exchange: None,
        threads: 1,
        connections: 4,
        duration: 1.0,
        hold: false,
        report: Some(report.clone()),
        quiet: true,
    };
    adjust(&mut args);
    let outcome = tailgate_bench::handshakes::run(args).map_err(|err| err.to_string());
    let json = serde_json::from_slice(&std::fs::read(&report).expect("handshakes report"))
        .expect("a JSON report");
    let _ = std::fs::remove_file(&report);
    (outcome, json)
}

/// A sink serving TLS from `files` on a free gRPC address (and no HTTP listener).
fn tls_sink(files: &CertFiles, mutual: bool) -> (Sink, SocketAddr) {
    let grpc = free_addr();
    let args = SinkArgs {
        listen: grpc,
        http_listen: None,
        report: PathBuf::from("/dev/null"),
        dump: None,
        cpu: 0,
        cpus: Vec::new(),
        track_max: 1000,
    };
    let sink = Sink::start_tls(args, &sink_tls(files, mutual), false, None).expect("the sink");
    (sink, grpc)
}

#[test]
fn handshakes_repeat_full_tls13_handshakes_and_the_server_counts_each() {
    let files = cert_set("handshakes");
    let (sink, grpc) = tls_sink(&files, true);
    let (outcome, report) = handshakes("repeat", grpc, load_tls(&files.ca, &files, true), |_| {});
    let sink = sink.stop().expect("the sink stops").report;
    outcome.expect("handshakes completed");
    let completed = u(&report, "handshakes_completed");
    assert!(completed > 20, "{report}");
    assert_eq!(u(&report, "handshakes_failed"), 0, "{report}");
    let negotiated = &report["negotiated"];
    assert_eq!(negotiated["protocol_version"], "TLSv1_3", "{report}");
    assert_eq!(negotiated["alpn"], "h2", "{report}");
    // Every handshake the client completed was a full one at the server; the last few may
    // still have been closing when the sink stopped.
    let at_sink = u(&sink, "tls_handshakes");
    assert!(
        at_sink <= completed && at_sink + 4 >= completed,
        "{sink} {report}"
    );
    assert_eq!(u(&sink, "tls_handshakes_failed"), 0, "{sink}");
    let _ = std::fs::remove_dir_all(temp("handshakes"));
}

#[test]
fn a_thousand_tls_connections_are_held_at_once() {
    let files = cert_set("hold");
    let (sink, grpc) = tls_sink(&files, false);
    let (outcome, report) = handshakes("hold", grpc, load_tls(&files.ca, &files, false), |args| {
        args.hold = true;
        args.threads = 2;
        args.connections = 1000;
        args.duration = 5.0;
        args.key_exchange = Some("secp256r1".into());
    });
    let sink = sink.stop().expect("the sink stops").report;
    outcome.expect("handshakes completed");
    assert_eq!(u(&report, "handshakes_completed"), 1000, "{report}");
    assert_eq!(u(&report, "connections_held"), 1000, "{report}");
    assert_eq!(report["failures"], serde_json::json!({}), "{report}");
    assert_eq!(
        report["negotiated"]["key_exchange"], "secp256r1",
        "{report}"
    );
    assert_eq!(u(&sink, "tls_handshakes"), 1000, "{sink}");
    assert_eq!(u(&sink, "grpc_connections_open_max"), 1000, "{sink}");
    let _ = std::fs::remove_dir_all(temp("hold"));
}

#[test]
fn handshakes_with_the_wrong_authority_fail_by_reason() {
    let (files, other) = (cert_set("hs-sink"), cert_set("hs-other"));
    let (sink, grpc) = tls_sink(&files, false);
    let (outcome, report) = handshakes("wrong", grpc, load_tls(&other.ca, &other, false), |_| {});
    drop(sink.stop());
    let err = outcome.expect_err("no handshake can complete");
    assert!(err.contains("no handshake completed"), "{err}");
    assert_eq!(u(&report, "handshakes_completed"), 0, "{report}");
    let failures = report["failures"].as_object().expect("failures by reason");
    assert_eq!(failures.len(), 1, "{report}");
    let (reason, count) = failures.iter().next().unwrap();
    assert!(
        reason.starts_with("tls: invalid peer certificate"),
        "{report}"
    );
    assert!(count.as_u64().unwrap() > 4, "{report}");
    let _ = std::fs::remove_dir_all(temp("hs-sink"));
    let _ = std::fs::remove_dir_all(temp("hs-other"));
}
