//! TLS for receivers and exporters: rustls with the aws-lc-rs provider, over the shards' glommio
//! sockets.
//!
//! # Why rustls and aws-lc-rs
//!
//! rustls keeps OpenSSL out of the binary and its state machine is memory-safe; it speaks TLS 1.2
//! and 1.3 only, which is what a gateway should accept. Of its maintained providers, aws-lc-rs
//! (AWS's fork of BoringSSL) is rustls's default: it has the faster AES-GCM and P-256 code of
//! the two, offers the post-quantum hybrid key exchange X25519MLKEM768 first by default, and has
//! a FIPS-validated build for the users who need one. ring would build faster; the handshake
//! and record costs are what the gateway pays at run time, so aws-lc-rs it is.
//!
//! # Shapes
//!
//! A [`ServerTls`] (one per TLS listener, shared by every shard's copy of it) and a
//! [`ClientTls`] (one per TLS exporter, shared by the shards) each hold the rustls
//! configuration built from their files, behind a lock that is read once per connection. With
//! `reload_interval` set, [`reload::Reloader`] reads the files again on its own thread and swaps
//! in a new configuration when they changed and parse; a broken new file keeps the old
//! configuration, logged and counted. Connections in progress keep the configuration they began
//! with.
//!
//! Streams are [`Conn`]s: a plain socket or a TLS session over one.

pub mod reload;
mod stream;

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::aws_lc_rs::{self, cipher_suite, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite, SupportedProtocolVersion,
};

use crate::config::{Pem, TlsClientSettings, TlsCommon, TlsServerSettings, TlsVersion};
pub use stream::Conn;

/// ALPN for gRPC.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN for OTLP/HTTP, which the gateway serves and sends as HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Go's name for each suite rustls's aws-lc-rs provider implements.
const SUITES: &[(&str, SupportedCipherSuite)] = &[
    (
        "TLS_AES_128_GCM_SHA256",
        cipher_suite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        cipher_suite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The order suites are preferred in, first to last, as Go orders them; suites not listed
/// come after.
const SUITE_PREFERENCE: &[rustls::CipherSuite] = &[
    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
];

/// The rustls suite Go calls `name`, or why there is none.
pub fn cipher_suite(name: &str) -> Result<SupportedCipherSuite, String> {
    if let Some((_, suite)) = SUITES.iter().find(|(go, _)| *go == name) {
        return Ok(*suite);
    }
    let why = if name.contains("_CBC_") || name.contains("_RC4_") || name.contains("3DES") {
        "a CBC, RC4 or 3DES suite, which rustls does not implement"
    } else if name.starts_with("TLS_RSA_") {
        "a static-RSA key exchange (no forward secrecy), which rustls does not implement"
    } else {
        "not a cipher suite name Go and rustls share"
    };
    Err(format!(
        "`{name}` is {why}; use one of {}",
        SUITES
            .iter()
            .map(|(go, _)| *go)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The key exchange group `curve_preferences` calls `name`, or why there is none.
pub fn key_exchange_group(name: &str) -> Result<&'static dyn SupportedKxGroup, String> {
    Ok(match name {
        "X25519" => kx_group::X25519,
        "P256" => kx_group::SECP256R1,
        "P384" => kx_group::SECP384R1,
        "X25519MLKEM768" => kx_group::X25519MLKEM768,
        "P521" => {
            return Err(
                "P521 is not implemented by the aws-lc-rs provider of rustls; use X25519, P256, \
                 P384 or X25519MLKEM768"
                    .into(),
            )
        }
        other => {
            return Err(format!(
                "`{other}` is not a curve; use X25519, P256, P384 or X25519MLKEM768"
            ))
        }
    })
}

/// The provider with the suites and groups `common` allows. Named TLS 1.2 suites restrict the
/// TLS 1.2 suites and named TLS 1.3 suites the TLS 1.3 ones; a version with no suite named keeps
/// the provider's defaults (Go does not let TLS 1.3 suites be chosen at all).
fn provider(common: &TlsCommon) -> Result<Arc<CryptoProvider>, String> {
    let mut provider = aws_lc_rs::default_provider();
    // Go's order (so the Collector's): AES-128-GCM with SHA-256 first. aws-lc-rs lists
    // AES-256-GCM with SHA-384 first, whose key schedule runs on SHA-512's core: 12 % of a
    // full handshake's CPU on the gateway, where SHA-256 has the CPU's SHA extensions.
    provider
        .cipher_suites
        .sort_by_key(|suite| SUITE_PREFERENCE.iter().position(|s| *s == suite.suite()));
    if !common.cipher_suites.is_empty() {
        let named: Vec<SupportedCipherSuite> = common
            .cipher_suites
            .iter()
            .map(|n| cipher_suite(n))
            .collect::<Result<_, _>>()?;
        let is13 = |s: &SupportedCipherSuite| matches!(s, SupportedCipherSuite::Tls13(_));
        let any13 = named.iter().any(is13);
        let any12 = named.iter().any(|s| !is13(s));
        provider.cipher_suites.retain(|s| {
            let version_named = if is13(s) { any13 } else { any12 };
            !version_named || named.iter().any(|n| n.suite() == s.suite())
        });
    }
    if !common.curve_preferences.is_empty() {
        provider.kx_groups = common
            .curve_preferences
            .iter()
            .map(|n| key_exchange_group(n))
            .collect::<Result<_, _>>()?;
    }
    Ok(Arc::new(provider))
}

/// The versions between `min_version` and `max_version` rustls speaks.
fn versions(common: &TlsCommon) -> Vec<&'static SupportedProtocolVersion> {
    let mut versions = Vec::new();
    if common.min_version <= TlsVersion::V1_2 && common.max_version >= TlsVersion::V1_2 {
        versions.push(&rustls::version::TLS12);
    }
    if common.max_version >= TlsVersion::V1_3 {
        versions.push(&rustls::version::TLS13);
    }
    versions
}

/// The bytes of `pem`, read now.
fn read(pem: &Pem, what: &str) -> Result<Vec<u8>, String> {
    match pem {
        Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        Pem::File(path) => std::fs::read(path)
            .map_err(|err| format!("reading the {what} file {}: {err}", path.display())),
    }
}

fn describe(pem: &Pem, what: &str) -> String {
    match pem {
        Pem::Inline(_) => format!("the {what} PEM"),
        Pem::File(path) => format!("the {what} file {}", path.display()),
    }
}

fn certificates(
    pem: &Pem,
    bytes: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{}: {err}", describe(pem, what)))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", describe(pem, what)));
    }
    Ok(certs)
}

fn private_key(pem: &Pem, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(bytes)
        .map_err(|err| format!("{}: no private key in it ({err})", describe(pem, "key")))
}

fn roots(pem: Option<(&Pem, &[u8])>, system: bool, what: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    if let Some((pem, bytes)) = pem {
        for cert in certificates(pem, bytes, what)? {
            store
                .add(cert)
                .map_err(|err| format!("{}: {err}", describe(pem, what)))?;
        }
    }
    if system {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // A system store may hold certificates webpki cannot use; skip them as Go does.
            let _ = store.add(cert);
        }
        if store.is_empty() {
            return Err(format!(
                "no CA given and no usable system root certificates found{}",
                found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ));
        }
    }
    Ok(store)
}

/// The files' contents a configuration was built from, to tell whether a reload changes it.
type Loaded = Vec<Vec<u8>>;

/// A TLS listener's configuration, shared by every shard.
pub struct ServerTls {
    /// Which listener, for logs: `receiver otlp gRPC`.
    label: String,
    settings: TlsServerSettings,
    alpn: &'static [u8],
    current: RwLock<Arc<ServerConfig>>,
    loaded: Mutex<Loaded>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the files `settings` names and builds the configuration; `alpn` is the one
    /// protocol the listener serves.
    pub fn load(
        label: String,
        settings: TlsServerSettings,
        alpn: &'static [u8],
    ) -> Result<Arc<ServerTls>, String> {
        let files = server_files(&settings)?;
        let config = server_config(&settings, &files, alpn)?;
        if settings.common.min_version < TlsVersion::V1_2 {
            tracing::warn!(
                "{label}: tls.min_version {} is below what rustls speaks; clients that only \
                 speak TLS 1.0 or 1.1 will fail the handshake",
                settings.common.min_version.as_str()
            );
        }
        Ok(Arc::new(ServerTls {
            label,
            settings,
            alpn,
            current: RwLock::new(Arc::new(config)),
            loaded: Mutex::new(files),
        }))
    }

    /// The configuration new connections use.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.read().expect("tls config lock").clone()
    }
}

/// The contents of a server's files, in a fixed order: certificate, key, client CA.
fn server_files(settings: &TlsServerSettings) -> Result<Loaded, String> {
    let common = &settings.common;
    let mut files = Vec::new();
    for (pem, what) in [
        (&common.cert, "certificate"),
        (&common.key, "key"),
        (&settings.client_ca, "client CA"),
    ] {
        files.push(match pem {
            Some(pem) => read(pem, what)?,
            None => Vec::new(),
        });
    }
    Ok(files)
}

fn server_config(
    settings: &TlsServerSettings,
    files: &Loaded,
    alpn: &[u8],
) -> Result<ServerConfig, String> {
    let common = &settings.common;
    let (Some(cert_pem), Some(key_pem)) = (&common.cert, &common.key) else {
        return Err("a TLS receiver needs cert_file and key_file".into());
    };
    let provider = provider(common)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(common))
        .map_err(|err| format!("TLS versions and suites do not fit together: {err}"))?;
    let builder = match &settings.client_ca {
        Some(pem) => {
            let roots = roots(Some((pem, &files[2])), false, "client CA")?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|err| format!("{}: {err}", describe(pem, "client CA")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(
            certificates(cert_pem, &files[0], "certificate")?,
            private_key(key_pem, &files[1])?,
        )
        .map_err(|err| {
            format!(
                "{} and {} do not make a usable pair: {err}",
                describe(cert_pem, "certificate"),
                describe(key_pem, "key")
            )
        })?;
    config.alpn_protocols = vec![alpn.to_vec()];
    // The server's order decides, as Go's servers do.
    config.ignore_client_order = true;
    // Resumption across shards and reconnections: tickets from one key for the configuration's
    // life. One ticket a handshake is enough for clients that reconnect one connection at a
    // time, and halves what a full handshake spends on them.
    config.ticketer = aws_lc_rs::Ticketer::new().map_err(|err| err.to_string())?;
    config.send_tls13_tickets = 1;
    Ok(config)
}

/// An exporter's TLS configuration, shared by every shard.
pub struct ClientTls {
    /// Which exporter, for logs: `exporter otlp/central`.
    label: String,
    settings: TlsClientSettings,
    alpn: &'static [u8],
    current: RwLock<Arc<ClientConfig>>,
    loaded: Mutex<Loaded>,
    /// The last handshake's failure, by endpoint: logs say when it changes, not every time.
    failing: Mutex<Vec<(String, String)>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        self.label == other.label && self.settings == other.settings
    }
}

impl ClientTls {
    /// Reads the files `settings` names (and the system's roots when no CA is given, or when
    /// `include_system_ca_certs_pool` says so) and builds the configuration.
    pub fn load(
        label: String,
        settings: TlsClientSettings,
        alpn: &'static [u8],
    ) -> Result<Arc<ClientTls>, String> {
        let files = client_files(&settings)?;
        let config = client_config(&settings, &files, alpn)?;
        if settings.insecure_skip_verify {
            tracing::warn!(
                "{label}: tls.insecure_skip_verify is set: the upstream's certificate is not \
                 checked, so anyone on the path can read and alter what is exported"
            );
        }
        Ok(Arc::new(ClientTls {
            label,
            settings,
            alpn,
            current: RwLock::new(Arc::new(config)),
            loaded: Mutex::new(files),
            failing: Mutex::new(Vec::new()),
        }))
    }

    /// Notes a failed handshake with `endpoint`; logs it when TLS there was working, or failed
    /// for another reason.
    pub fn handshake_failed(&self, endpoint: &str, reason: &str, err: &io::Error) {
        let why = format!("{reason}: {err}");
        let mut failing = self.failing.lock().expect("tls state lock");
        match failing.iter_mut().find(|(e, _)| e == endpoint) {
            Some((_, last)) if *last == why => return,
            Some((_, last)) => *last = why.clone(),
            None => failing.push((endpoint.to_string(), why.clone())),
        }
        tracing::warn!(
            "{}: TLS with {endpoint} fails ({why}); batches wait and are retried, and are \
             dropped as failed when their retries run out",
            self.label
        );
    }

    /// Notes a handshake with `endpoint` that worked; logs it when TLS there was failing.
    pub fn handshake_succeeded(&self, endpoint: &str) {
        let mut failing = self.failing.lock().expect("tls state lock");
        if let Some(i) = failing.iter().position(|(e, _)| e == endpoint) {
            failing.swap_remove(i);
            tracing::info!("{}: TLS with {endpoint} works again", self.label);
        }
    }

    /// The configuration new connections use.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.current.read().expect("tls config lock").clone()
    }

    /// The name the upstream's certificate is checked against: `server_name_override`, or
    /// the endpoint's host.
    pub fn server_name(&self, host: &str) -> io::Result<ServerName<'static>> {
        let name = self
            .settings
            .server_name_override
            .as_deref()
            .unwrap_or(host);
        ServerName::try_from(name.to_string()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{name}` is not a DNS name or an IP address to check a certificate by"),
            )
        })
    }
}

/// The contents of a client's files: CA, certificate, key.
fn client_files(settings: &TlsClientSettings) -> Result<Loaded, String> {
    let common = &settings.common;
    let mut files = Vec::new();
    for (pem, what) in [
        (&common.ca, "CA"),
        (&common.cert, "certificate"),
        (&common.key, "key"),
    ] {
        files.push(match pem {
            Some(pem) => read(pem, what)?,
            None => Vec::new(),
        });
    }
    Ok(files)
}

fn client_config(
    settings: &TlsClientSettings,
    files: &Loaded,
    alpn: &[u8],
) -> Result<ClientConfig, String> {
    let common = &settings.common;
    let provider = provider(common)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(common))
        .map_err(|err| format!("TLS versions and suites do not fit together: {err}"))?;
    let roots = roots(
        common.ca.as_ref().map(|pem| (pem, files[0].as_slice())),
        common.ca.is_none() || common.include_system_ca_certs_pool,
        "CA",
    )?;
    let builder = builder.with_root_certificates(roots);
    let mut config = match (&common.cert, &common.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(
                certificates(cert, &files[1], "certificate")?,
                private_key(key, &files[2])?,
            )
            .map_err(|err| {
                format!(
                    "{} and {} do not make a usable pair: {err}",
                    describe(cert, "certificate"),
                    describe(key, "key")
                )
            })?,
        _ => builder.with_no_client_auth(),
    };
    if settings.insecure_skip_verify {
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(SkipVerify(provider)));
    }
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// `insecure_skip_verify`: any certificate is taken, but the handshake's signatures are still
/// checked against it (so the session is at least with the holder of that certificate's key).
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a TLS session could not be set up, as a metric label.
pub fn failure_reason(err: &io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return match err.kind() {
            io::ErrorKind::TimedOut => "timeout",
            _ => "closed",
        };
    };
    match tls {
        Error::NoCertificatesPresented => "no_client_certificate",
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "certificate_expired",
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => "certificate_unknown_issuer",
        Error::InvalidCertificate(_) => "certificate_invalid",
        Error::PeerIncompatible(_) | Error::NoApplicationProtocol => "incompatible",
        Error::AlertReceived(_) => "alert_received",
        _ => "protocol",
    }
}

/// What a reload of one configuration found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The files are as they were.
    Unchanged,
    /// New files, in use from the next connection.
    Swapped,
    /// New files that do not make a configuration; the old one stays.
    Failed(String),
}

/// A configuration [`reload::Reloader`] keeps up to date.
pub trait Reload: Send + Sync + fmt::Debug {
    /// For logs and metric labels.
    fn label(&self) -> &str;
    /// How often to look; `None`: never.
    fn interval(&self) -> Option<std::time::Duration>;
    /// Reads the files again and swaps in a new configuration if they changed and parse.
    fn reload(&self) -> Reloaded;
}

fn reload_with<C>(
    loaded: &Mutex<Loaded>,
    current: &RwLock<Arc<C>>,
    files: Result<Loaded, String>,
    build: impl FnOnce(&Loaded) -> Result<C, String>,
) -> Reloaded {
    let files = match files {
        Ok(files) => files,
        Err(why) => return Reloaded::Failed(why),
    };
    let mut last = loaded.lock().expect("tls files lock");
    if *last == files {
        return Reloaded::Unchanged;
    }
    match build(&files) {
        Ok(config) => {
            *current.write().expect("tls config lock") = Arc::new(config);
            *last = files;
            Reloaded::Swapped
        }
        Err(why) => Reloaded::Failed(why),
    }
}

impl Reload for ServerTls {
    fn label(&self) -> &str {
        &self.label
    }

    fn interval(&self) -> Option<std::time::Duration> {
        self.settings.common.reload_interval.or(self
            .settings
            .client_ca_file_reload
            .then_some(reload::CLIENT_CA_POLL))
    }

    fn reload(&self) -> Reloaded {
        reload_with(
            &self.loaded,
            &self.current,
            server_files(&self.settings),
            |files| server_config(&self.settings, files, self.alpn),
        )
    }
}

impl Reload for ClientTls {
    fn label(&self) -> &str {
        &self.label
    }

    fn interval(&self) -> Option<std::time::Duration> {
        self.settings.common.reload_interval
    }

    fn reload(&self) -> Reloaded {
        reload_with(
            &self.loaded,
            &self.current,
            client_files(&self.settings),
            |files| client_config(&self.settings, files, self.alpn),
        )
    }
}
