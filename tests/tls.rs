//! TLS through the real binary: the official Python SDK over gRPC and HTTP with a private CA,
//! mTLS with good and bad client certificates, the exporter against a TLS upstream (a second
//! gateway) with the right CA, the wrong CA and a required client certificate, certificate
//! rotation under load, plaintext and garbage on TLS ports, and a thousand handshakes at once.
//!
//! Certificates are made by the test (`tailgate_bench::certs`, ECDSA P-256).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::gateway::*;
use common::python::{send_spans, try_send_spans};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tailgate_bench::certs::{self, Authority, Leaf, Validity};

/// A directory of certificates for one test.
struct Certs {
    dir: PathBuf,
    files: certs::CertFiles,
    /// The CA that issued `files`, to issue more.
    authority: Authority,
}

impl Certs {
    fn new(what: &str) -> Certs {
        let dir = std::env::temp_dir().join(format!("tailgate-tls-{}-{what}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (authority, files) =
            certs::write_set_keeping(&dir, &["localhost", "127.0.0.1"]).expect("certificates");
        Certs {
            dir,
            files,
            authority,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The receiver's `tls` block (indented under a protocol), with `extra` keys.
    fn server_block(&self, extra: &str) -> String {
        let mut block = format!(
            "        tls:\n          cert_file: {}\n          key_file: {}\n",
            self.files.server_cert.display(),
            self.files.server_key.display()
        );
        for line in extra.lines().filter(|l| !l.is_empty()) {
            block.push_str(&format!("          {line}\n"));
        }
        block
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read a certificate file")
}

/// A traces request of one span of trace `trace` with span id `id`.
fn traces(trace: u8, id: u64) -> Vec<u8> {
    one_span_request(trace, id, "tls")
}

/// A rustls client configuration trusting `ca` (PEM), with a client certificate if given.
fn client_config(ca: &[u8], identity: Option<(&[u8], &[u8])>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.expect("CA PEM")).expect("a CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<_, _>>()
                    .expect("cert PEM"),
                PrivateKeyDer::from_pem_slice(key).expect("key PEM"),
            )
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// POSTs `body` to `/v1/traces` over a new TLS connection; returns the status and the
/// certificate the server presented, or what failed.
fn post_tls(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let tcp = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let name = ServerName::try_from("127.0.0.1").expect("a name");
    let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes())
        .and_then(|()| tls.write_all(body))
        .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // A peer that closes without close_notify after a complete response is fine here.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    let peer = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let status = parse_response(&response)
        .map_err(|e| format!("response: {e}"))?
        .0;
    Ok((status, peer))
}

fn tls_failures(gateway: &Gateway, transport: &str, reason: &str) -> f64 {
    gateway.metric(
        "tailgate_receiver_tls_handshake_failures",
        &[("transport", transport), ("reason", reason)],
    )
}

#[test]
fn the_python_sdk_sends_over_tls_to_both_receivers_with_a_private_ca() {
    let certs = Certs::new("sdk");
    let (sink, upstream, _) = start_sink();
    let block = certs.server_block("");
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 2, &block, &block);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let ca = certs.files.ca.to_str().unwrap();

    let mut sent = send_spans_tls("grpc", &format!("https://{grpc}"), 1, ca, None);
    sent.extend(send_spans_tls(
        "http/protobuf",
        &format!("https://{http}"),
        2,
        ca,
        None,
    ));
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received()
        >= sent.len() as u64));
    for transport in ["grpc", "http"] {
        assert!(
            gateway.metric(
                "tailgate_receiver_tls_handshakes",
                &[("transport", transport)]
            ) >= 1.0,
            "no {transport} handshake counted"
        );
    }
    gateway.stop();
    let received = received_spans(&sink.stop().unwrap());
    let mut ids: Vec<[u8; 8]> = sent.iter().map(|s| s.span_id).collect();
    let mut got: Vec<[u8; 8]> = received
        .iter()
        .map(|(_, s)| s.span_id.clone().try_into().unwrap())
        .collect();
    ids.sort();
    got.sort();
    assert_eq!(ids, got, "every span the SDK sent over TLS arrived once");

    // Plaintext to the same ports is not served.
    let failure = try_send_spans(
        "http/protobuf",
        &format!("http://{http}"),
        1,
        1,
        3,
        0,
        "none",
        &["--timeout", "2"],
    );
    assert!(failure.is_err(), "plaintext HTTP to a TLS port succeeded");
}

/// The Python SDK sending 20 spans (4 traces of 5) with `seed` over TLS, trusting `ca`.
fn send_spans_tls(
    protocol: &str,
    endpoint: &str,
    seed: u64,
    ca: &str,
    identity: Option<(&Path, &Path)>,
) -> Vec<common::python::SentSpan> {
    let mut args = vec!["--ca-file".to_string(), ca.to_string()];
    if let Some((cert, key)) = identity {
        args.extend([
            "--client-cert".to_string(),
            cert.display().to_string(),
            "--client-key".to_string(),
            key.display().to_string(),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match try_send_spans(protocol, endpoint, 4, 5, seed, 0, "gzip", &args) {
        Ok(spans) => spans,
        Err(failure) => panic!("{failure}"),
    }
}

#[test]
fn mtls_admits_only_clients_certified_by_the_client_ca() {
    let certs = Certs::new("mtls");
    let (sink, upstream, _) = start_sink();
    let block = certs.server_block(&format!("client_ca_file: {}", certs.files.ca.display()));
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 1, &block, &block);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let ca = certs.files.ca.to_str().unwrap();
    let identity = Some((
        certs.files.client_cert.as_path(),
        certs.files.client_key.as_path(),
    ));

    // The SDK with a certificate from the client CA: served, over both protocols.
    let mut sent = send_spans_tls("grpc", &format!("https://{grpc}"), 11, ca, identity);
    sent.extend(send_spans_tls(
        "http/protobuf",
        &format!("https://{http}"),
        12,
        ca,
        identity,
    ));
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received()
        >= sent.len() as u64));

    // The SDK without a certificate: refused.
    let failure = try_send_spans(
        "grpc",
        &format!("https://{grpc}"),
        1,
        1,
        13,
        0,
        "none",
        &["--ca-file", ca, "--timeout", "3"],
    );
    assert!(
        failure.is_err(),
        "a gRPC client without a certificate was served"
    );
    assert!(wait_for(Duration::from_secs(10), || tls_failures(
        &gateway,
        "grpc",
        "no_client_certificate"
    ) >= 1.0));

    // A certificate from another CA, and an expired one from the right CA: refused, each
    // counted with its reason.
    let other = Authority::new("another CA").unwrap();
    let stranger = other
        .issue(Leaf::Client("stranger"), Validity::Current)
        .unwrap();
    let ca_pem = read(&certs.files.ca);
    let refused = |cert: &str, key: &str| {
        let config = client_config(&ca_pem, Some((cert.as_bytes(), key.as_bytes())));
        if let Ok((status, _)) = post_tls(http, &config, &traces(1, 1)) {
            panic!("served with status {status}");
        }
    };
    refused(&stranger.cert_pem, &stranger.key_pem);
    assert!(wait_for(Duration::from_secs(10), || tls_failures(
        &gateway,
        "http",
        "certificate_unknown_issuer"
    ) >= 1.0));
    let expired = certs
        .authority
        .issue(Leaf::Client("expired"), Validity::Expired)
        .unwrap();
    refused(&expired.cert_pem, &expired.key_pem);
    assert!(wait_for(Duration::from_secs(10), || tls_failures(
        &gateway,
        "http",
        "certificate_expired"
    ) >= 1.0));
    // And no certificate at all, from the Rust client too.
    assert!(post_tls(http, &client_config(&ca_pem, None), &traces(1, 2)).is_err());
    assert!(wait_for(Duration::from_secs(10), || tls_failures(
        &gateway,
        "http",
        "no_client_certificate"
    ) >= 1.0));

    // Nothing refused reached the sink; the gateway still serves the good client.
    let good = client_config(
        &ca_pem,
        Some((
            &read(&certs.files.client_cert),
            &read(&certs.files.client_key),
        )),
    );
    assert_eq!(post_tls(http, &good, &traces(2, 3)).unwrap().0, 200);
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received()
        > sent.len() as u64));
    gateway.stop();
    let result = sink.stop().unwrap();
    assert_eq!(received_spans(&result).len(), sent.len() + 1);
}

#[test]
fn plaintext_and_garbage_on_tls_ports_are_refused_and_serving_goes_on() {
    let certs = Certs::new("plain");
    let (sink, upstream, _) = start_sink();
    let block = certs.server_block("");
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 1, &block, &block);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);

    // Plaintext HTTP to the TLS HTTP port: a plaintext 400 that says so.
    let (status, body) = http_get(http, "/v1/traces").expect("an answer");
    assert_eq!(status, 400);
    assert!(body.contains("speaks TLS"), "{body}");
    // An HTTP/2 preface and garbage to the TLS gRPC port: closed at once.
    for bytes in [
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
        &[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3][..],
    ] {
        let mut stream = TcpStream::connect(grpc).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(bytes).unwrap();
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "the gateway answered plaintext on its TLS gRPC port: {rest:?}"
        );
    }
    // A TLS record header followed by nonsense: a protocol failure, counted.
    let mut stream = TcpStream::connect(grpc).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 9, 9, 9, 9, 9])
        .unwrap();
    let _ = stream.read_to_end(&mut Vec::new());

    assert!(wait_for(Duration::from_secs(10), || {
        tls_failures(&gateway, "http", "not_tls") >= 1.0
            && tls_failures(&gateway, "grpc", "not_tls") >= 2.0
            && tls_failures(&gateway, "grpc", "protocol") >= 1.0
    }));
    // Still serving.
    let config = client_config(&read(&certs.files.ca), None);
    assert_eq!(post_tls(http, &config, &traces(3, 1)).unwrap().0, 200);
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received() >= 1));
    gateway.stop();
    sink.stop().unwrap();
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart_and_no_request_fails() {
    let certs = Certs::new("rotate");
    let (sink, upstream, _) = start_sink();
    // The files the gateway reads, copied so the test can replace them.
    let cert = certs.path("live.pem");
    let key = certs.path("live-key.pem");
    std::fs::copy(&certs.files.server_cert, &cert).unwrap();
    std::fs::copy(&certs.files.server_key, &key).unwrap();
    let block = format!(
        "        tls:\n          cert_file: {}\n          key_file: {}\n          reload_interval: 1s\n",
        cert.display(),
        key.display()
    );
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 2, "", &block);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let client = client_config(&read(&certs.files.ca), None);
    let first_cert = {
        let (status, peer) = post_tls(http, &client, &traces(4, 0)).unwrap();
        assert_eq!(status, 200);
        peer
    };

    // Steady load: a new connection (a full handshake) for every request, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(1));
    let load = {
        let (stop, sent, client) = (stop.clone(), sent.clone(), client.clone());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut certificates = Vec::new();
            let mut id = 1u64;
            while !stop.load(Ordering::Relaxed) {
                match post_tls(http, &client, &traces(4, id)) {
                    Ok((200, peer)) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                        if certificates.last() != Some(&peer) {
                            certificates.push(peer);
                        }
                    }
                    Ok((status, _)) => failures.push(format!("status {status}")),
                    Err(e) => failures.push(e),
                }
                id += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (failures, certificates)
        })
    };

    // A broken file first (a half-written rotation): the old certificate stays, counted.
    std::fs::write(&cert, b"-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    assert!(
        wait_for(Duration::from_secs(15), || gateway
            .metric("tailgate_tls_reloads", &[("outcome", "failed")])
            >= 1.0),
        "the broken file was not noticed"
    );
    // Then a new certificate and key from the same CA, key first (as a rotation writes them):
    // the pair may be read half-written once more, which again keeps the old one.
    let next = certs
        .authority
        .issue(Leaf::Server(&["localhost", "127.0.0.1"]), Validity::Current)
        .unwrap();
    std::fs::write(&key, &next.key_pem).unwrap();
    std::fs::write(&cert, &next.cert_pem).unwrap();
    let next_der = CertificateDer::from_pem_slice(next.cert_pem.as_bytes())
        .unwrap()
        .to_vec();
    assert!(
        wait_for(Duration::from_secs(15), || gateway
            .metric("tailgate_tls_reloads", &[("outcome", "swapped")])
            >= 1.0),
        "the new certificate was not loaded"
    );
    // New connections get the new certificate.
    assert!(wait_for(Duration::from_secs(10), || post_tls(
        http,
        &client,
        &traces(5, 1)
    )
    .is_ok_and(|(_, peer)| peer == next_der)));
    let before = sent.load(Ordering::Relaxed);
    assert!(wait_for(Duration::from_secs(10), || sent
        .load(Ordering::Relaxed)
        > before + 5));
    stop.store(true, Ordering::Relaxed);
    let (failures, certificates) = load.join().unwrap();
    assert!(failures.is_empty(), "requests failed: {failures:?}");
    assert_eq!(
        certificates,
        vec![first_cert, next_der],
        "the load saw the old certificate, then the new one, and nothing else"
    );
    gateway.stop();
    sink.stop().unwrap();
}

/// A gateway that takes plaintext gRPC on `grpc` and exports traces with `exporters` (YAML
/// under `exporters:`, indented by 2), all of which the traces pipeline uses.
fn edge_config(grpc: SocketAddr, admin: SocketAddr, exporters: &str, ids: &str) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {grpc}
processors:
  batch:
    timeout: 50ms
exporters:
{exporters}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [{ids}]
  telemetry:
    metrics:
      address: {admin}
shards:
  cpus: [0]
"
    )
}

/// Sends spans through `edge` (seed `seed`) and waits for its exporter to log that the
/// upstream's certificate was refused.
fn assert_refused_as_invalid_certificate(edge: &Gateway, seed: u64) {
    send_spans(
        "grpc",
        &format!("http://{}", edge.grpc),
        1,
        2,
        seed,
        0,
        "none",
    );
    assert!(
        wait_for(Duration::from_secs(20), || edge
            .stderr()
            .contains("(certificate_invalid")),
        "{}",
        edge.stderr()
    );
}

fn start_edge(exporters: &str, ids: &str) -> Gateway {
    let (grpc, admin) = (loopback(free_port()), loopback(free_port()));
    let http = loopback(free_port());
    Gateway::start_with_config(&edge_config(grpc, admin, exporters, ids), grpc, http, admin)
}

#[test]
fn the_exporter_verifies_its_upstream_and_presents_its_certificate() {
    let certs = Certs::new("export");
    let (sink, upstream, _) = start_sink();
    // The central: a second gateway, TLS with client certificates required on both protocols,
    // exporting to the sink.
    let block = certs.server_block(&format!("client_ca_file: {}", certs.files.ca.display()));
    let (config, central_grpc, central_http, admin) =
        Gateway::standard_config(upstream, 1, &block, &block);
    let central = Gateway::start_with_config(&config, central_grpc, central_http, admin);
    let (ca, cert, key) = (
        certs.files.ca.display().to_string(),
        certs.files.client_cert.display().to_string(),
        certs.files.client_key.display().to_string(),
    );

    // The right CA and a client certificate, over gRPC (a bare host:port is TLS) and HTTP.
    let edge = start_edge(
        &format!(
            "  otlp:\n    endpoint: {central_grpc}\n    tls:\n      ca_file: {ca}\n      \
             cert_file: {cert}\n      key_file: {key}\n  otlphttp:\n    endpoint: \
             https://{central_http}\n    tls:\n      ca_file: {ca}\n      cert_file: {cert}\n      \
             key_file: {key}\n"
        ),
        "otlp, otlphttp",
    );
    let sent = send_spans(
        "grpc",
        &format!("http://{}", edge.grpc),
        4,
        5,
        21,
        0,
        "none",
    );
    // Each span reaches the central twice (once per exporter), and the sink from there.
    assert!(
        wait_for(Duration::from_secs(30), || sink.spans_received()
            >= 2 * sent.len() as u64),
        "{} of {} spans arrived\n{}",
        sink.spans_received(),
        2 * sent.len(),
        edge.stderr()
    );
    assert!(
        central.metric("tailgate_receiver_tls_handshakes", &[("transport", "grpc")]) >= 1.0
            && central.metric("tailgate_receiver_tls_handshakes", &[("transport", "http")]) >= 1.0
    );
    edge.stop();
    let delivered = sink.spans_received();

    // The wrong CA: nothing is sent, and the failure is logged once, not per attempt.
    let other = Certs::new("export-other");
    let edge = start_edge(
        &format!(
            "  otlp:\n    endpoint: {central_grpc}\n    tls:\n      ca_file: {}\n    \
             retry_on_failure:\n      initial_interval: 50ms\n      max_interval: 100ms\n",
            other.files.ca.display()
        ),
        "otlp",
    );
    for seed in 0..3 {
        send_spans(
            "grpc",
            &format!("http://{}", edge.grpc),
            1,
            2,
            30 + seed,
            0,
            "none",
        );
    }
    assert!(wait_for(Duration::from_secs(10), || tls_failures(
        &central,
        "grpc",
        "alert_received"
    ) >= 3.0));
    let log = edge.stderr();
    assert_eq!(
        log.matches(&format!("TLS with {central_grpc} fails"))
            .count(),
        1,
        "the failure is logged once:\n{log}"
    );
    assert!(log.contains("(certificate_unknown_issuer"), "{log}");
    edge.stop();

    // The right CA without a client certificate: the central refuses it.
    let edge = start_edge(
        &format!("  otlp:\n    endpoint: {central_grpc}\n    tls:\n      ca_file: {ca}\n"),
        "otlp",
    );
    send_spans(
        "grpc",
        &format!("http://{}", edge.grpc),
        1,
        2,
        40,
        0,
        "none",
    );
    assert!(wait_for(Duration::from_secs(10), || tls_failures(
        &central,
        "grpc",
        "no_client_certificate"
    ) >= 1.0));
    edge.stop();
    central.stop();
    let result = sink.stop().unwrap();
    assert_eq!(
        received_spans(&result).len() as u64,
        delivered,
        "nothing arrived over the refused connections"
    );
}

#[test]
fn a_thousand_tls_handshakes_at_once_all_complete() {
    const CONNECTIONS: usize = 1000;
    // The test holds a thousand sockets open at once.
    tailgate::lifecycle::raise_open_files_limit();
    let certs = Certs::new("thousand");
    let (sink, upstream, _) = start_sink();
    let block = certs.server_block("");
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 2, &block, "");
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let mut client = (*client_config(&read(&certs.files.ca), None)).clone();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let connector = futures_rustls::TlsConnector::from(Arc::new(client));

    let (done, failed) = glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(async move {
            let tasks: Vec<_> = (0..CONNECTIONS)
                .map(|_| {
                    let connector = connector.clone();
                    glommio::spawn_local(async move {
                        let tcp = glommio::net::TcpStream::connect(grpc)
                            .await
                            .map_err(|e| e.to_string())?;
                        let name = ServerName::try_from("127.0.0.1").unwrap();
                        let session = connector
                            .connect(name, tcp)
                            .await
                            .map_err(|e| e.to_string())?;
                        let alpn = session.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                        Ok::<_, String>((session, alpn))
                    })
                })
                .collect();
            // Every session is held until all have completed: the thousand are open at once.
            let mut sessions = Vec::new();
            let mut failed = Vec::new();
            for task in tasks {
                match task.await {
                    Ok(session) => sessions.push(session),
                    Err(e) => failed.push(e),
                }
            }
            assert!(sessions
                .iter()
                .all(|(_, alpn)| alpn.as_deref() == Some(&b"h2"[..])));
            (sessions.len(), failed)
        });
    assert!(
        failed.is_empty(),
        "{} handshakes failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(done, CONNECTIONS);
    assert_eq!(
        gateway.metric("tailgate_receiver_tls_handshakes", &[("transport", "grpc")]),
        CONNECTIONS as f64
    );
    assert_eq!(
        gateway.metric("tailgate_receiver_tls_handshake_failures", &[]),
        0.0
    );
    gateway.stop();
    sink.stop().unwrap();
}

#[test]
fn the_exporter_checks_the_name_it_is_told_and_can_skip_verification() {
    let certs = Certs::new("names");
    let (sink, upstream, _) = start_sink();
    // The central's certificate names localhost and 127.0.0.1.
    let block = certs.server_block("");
    let (config, central_grpc, central_http, admin) =
        Gateway::standard_config(upstream, 1, &block, "");
    let central = Gateway::start_with_config(&config, central_grpc, central_http, admin);
    let ca = certs.files.ca.display().to_string();

    // server_name_override: the certificate is checked against that name, not the address.
    let edge = start_edge(
        &format!(
            "  otlp:\n    endpoint: {central_grpc}\n    tls:\n      ca_file: {ca}\n      \
             server_name_override: localhost\n"
        ),
        "otlp",
    );
    let sent = send_spans(
        "grpc",
        &format!("http://{}", edge.grpc),
        2,
        3,
        51,
        0,
        "none",
    );
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received()
        >= sent.len() as u64));
    edge.stop();

    // A name the certificate does not carry: refused by the exporter, logged once.
    let edge = start_edge(
        &format!(
            "  otlp:\n    endpoint: {central_grpc}\n    tls:\n      ca_file: {ca}\n      \
             server_name_override: central.example\n"
        ),
        "otlp",
    );
    assert_refused_as_invalid_certificate(&edge, 52);
    edge.stop();
    let before = sink.spans_received();

    // insecure_skip_verify: no CA at all, and still TLS (the central counts a handshake).
    let handshakes = central.metric("tailgate_receiver_tls_handshakes", &[]);
    let edge = start_edge(
        &format!(
            "  otlp:\n    endpoint: {central_grpc}\n    tls:\n      insecure_skip_verify: true\n"
        ),
        "otlp",
    );
    assert!(
        edge.stderr().contains("insecure_skip_verify is set"),
        "the start warns: {}",
        edge.stderr()
    );
    let sent = send_spans(
        "grpc",
        &format!("http://{}", edge.grpc),
        2,
        3,
        53,
        0,
        "none",
    );
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received()
        >= before + sent.len() as u64));
    assert!(central.metric("tailgate_receiver_tls_handshakes", &[]) > handshakes);
    edge.stop();
    central.stop();
    sink.stop().unwrap();
}

#[test]
fn the_exporters_authority_names_the_server_its_certificate_is_checked_by() {
    // The central's certificate names central.example only; the exporter dials its address.
    let dir = std::env::temp_dir().join(format!("tailgate-tls-{}-authority", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files = certs::write_set(&dir, &["central.example"]).expect("certificates");
    let (sink, upstream, _) = start_sink();
    let block = format!(
        "        tls:\n          cert_file: {}\n          key_file: {}\n",
        files.server_cert.display(),
        files.server_key.display()
    );
    let (config, central_grpc, central_http, admin) =
        Gateway::standard_config(upstream, 1, &block, "");
    let central = Gateway::start_with_config(&config, central_grpc, central_http, admin);
    let ca = files.ca.display().to_string();
    let exporter = |extra: &str| {
        format!("  otlp:\n    endpoint: {central_grpc}\n{extra}    tls:\n      ca_file: {ca}\n")
    };

    // Without `authority` the certificate is checked against 127.0.0.1, which it lacks.
    let edge = start_edge(&exporter(""), "otlp");
    assert_refused_as_invalid_certificate(&edge, 61);
    edge.stop();
    assert_eq!(sink.spans_received(), 0);

    // With it, against the name it gives, as grpc-go's WithAuthority does.
    let edge = start_edge(&exporter("    authority: central.example:4317\n"), "otlp");
    let sent = send_spans(
        "grpc",
        &format!("http://{}", edge.grpc),
        2,
        3,
        62,
        0,
        "none",
    );
    assert!(wait_for(Duration::from_secs(20), || sink.spans_received()
        >= sent.len() as u64));
    edge.stop();

    // server_name_override outranks it.
    let edge = start_edge(
        &format!(
            "  otlp:\n    endpoint: {central_grpc}\n    authority: central.example\n    tls:\n      \
             ca_file: {ca}\n      server_name_override: other.example\n"
        ),
        "otlp",
    );
    assert_refused_as_invalid_certificate(&edge, 63);
    edge.stop();
    central.stop();
    sink.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_certificate_rotated_after_a_live_reload_is_still_served() {
    let certs = Certs::new("rotate-after-reload");
    let (sink, upstream, _) = start_sink();
    let cert = certs.path("live.pem");
    let key = certs.path("live-key.pem");
    std::fs::copy(&certs.files.server_cert, &cert).unwrap();
    std::fs::copy(&certs.files.server_key, &key).unwrap();
    let block = format!(
        "        tls:\n          cert_file: {}\n          key_file: {}\n          reload_interval: 1s\n",
        cert.display(),
        key.display()
    );
    let (config, grpc, http, admin) = Gateway::standard_config(upstream, 1, "", &block);
    let gateway = Gateway::start_with_config(&config, grpc, http, admin);
    let client = client_config(&read(&certs.files.ca), None);
    let (status, first_cert) = post_tls(http, &client, &traces(6, 0)).unwrap();
    assert_eq!(status, 200);

    // A live reload that leaves the receiver as it is (the batch timeout changes).
    assert!(config.contains("timeout: 50ms"));
    std::fs::write(
        gateway.config_path(),
        config.replace("timeout: 50ms", "timeout: 60ms"),
    )
    .unwrap();
    // SAFETY: kill(2) on the gateway process this test spawned; no memory is involved.
    unsafe {
        libc::kill(gateway.pid() as i32, libc::SIGHUP);
    }
    assert!(
        wait_for(Duration::from_secs(15), || gateway
            .metric("tailgate_config_reloads", &[])
            >= 1.0),
        "{}",
        gateway.stderr()
    );

    // The receiver still serves from the configuration the reloader now watches.
    let next = certs
        .authority
        .issue(Leaf::Server(&["localhost", "127.0.0.1"]), Validity::Current)
        .unwrap();
    std::fs::write(&key, &next.key_pem).unwrap();
    std::fs::write(&cert, &next.cert_pem).unwrap();
    let next_der = CertificateDer::from_pem_slice(next.cert_pem.as_bytes())
        .unwrap()
        .to_vec();
    assert_ne!(next_der, first_cert);
    assert!(
        wait_for(Duration::from_secs(15), || post_tls(
            http,
            &client,
            &traces(6, 1)
        )
        .is_ok_and(|(_, peer)| peer == next_der)),
        "the rotated certificate is not served after the reload: {}",
        gateway.stderr()
    );
    gateway.stop();
    sink.stop().unwrap();
}
