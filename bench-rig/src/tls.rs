//! The rig's TLS: rustls configurations for the load's client, the sink's listeners and the
//! handshake benchmark, read from PEM files, and what a failed handshake means.
//!
//! Every configuration names rustls's aws-lc-rs provider itself (no process-wide default) and
//! trusts only the authority it is given: the rig talks to a gateway with certificates from
//! [`crate::certs`] or the operator's own, never through the web's roots. A configuration is
//! built once, before any shard or load thread starts, and shared read-only (`Arc`) by all of
//! them; each connection owns its rustls session. Nothing resumes a session: the rig's clients
//! keep no session cache and the sink issues no tickets, so every connection made is one full
//! handshake and no shard touches another's state.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    AlertDescription, ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion,
};

/// The ALPN protocol id of HTTP/2, which gRPC runs on.
pub const ALPN_H2: &[u8] = b"h2";
/// The ALPN protocol id of HTTP/1.1, which OTLP/HTTP runs on.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// What a TLS client of the rig is told (`tailgate-bench load` and `handshakes`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientTlsArgs {
    /// Speak TLS, trusting only the certificate authority in this PEM file.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry (a DNS name or an IP address); by default
    /// the host of the address sent to.
    #[arg(long, requires = "tls_ca")]
    pub tls_server_name: Option<String>,
    /// A client certificate chain (PEM) to present, for a server that requires one (mTLS).
    #[arg(long, requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// What a TLS server of the rig is told (`tailgate-bench sink`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerTlsArgs {
    /// Serve TLS with this certificate chain (PEM), on every listener.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require a client certificate issued by the authority in this PEM file (mTLS).
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

/// A client's TLS towards one server: its configuration and the name the server must prove.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The configuration, shared by every connection.
    pub config: Arc<ClientConfig>,
    /// The name the server's certificate is checked against.
    pub server_name: ServerName<'static>,
}

impl ClientTlsArgs {
    /// Whether TLS is on (`--tls-ca` given).
    pub fn enabled(&self) -> bool {
        self.tls_ca.is_some()
    }

    /// The client's TLS towards `host` (the server name unless `--tls-server-name` says
    /// otherwise), offering the ALPN protocols `alpn`, with `provider` and protocol `versions`;
    /// `None` without `--tls-ca`. Sessions are never resumed: each connection is one full
    /// handshake.
    pub fn client(
        &self,
        host: &str,
        alpn: &[&[u8]],
        provider: CryptoProvider,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Result<Option<ClientTls>, TlsError> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let roots = roots("--tls-ca", ca)?;
        let builder = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .map_err(|err| TlsError::new("--tls-ca", ca, Problem::Refused(err)))?
            .with_root_certificates(roots);
        let mut config = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(chain("--tls-cert", cert)?, private_key("--tls-key", key)?)
                .map_err(|err| TlsError::new("--tls-key", key, Problem::Refused(err)))?,
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|id| id.to_vec()).collect();
        config.resumption = Resumption::disabled();
        let name = self.tls_server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string()).map_err(|_| TlsError {
            flag: match self.tls_server_name {
                Some(_) => "--tls-server-name",
                None => "the address's host",
            },
            value: name.to_string(),
            problem: Problem::NotAName,
        })?;
        Ok(Some(ClientTls {
            config: Arc::new(config),
            server_name,
        }))
    }
}

impl ClientTls {
    /// This TLS with a server-certificate verifier that remembers the one chain it verified
    /// ([`RememberingVerifier`]), for a client that handshakes with one server over and over;
    /// `args` and `provider` must be what the configuration was built with.
    pub fn remembering(
        mut self,
        args: &ClientTlsArgs,
        provider: CryptoProvider,
    ) -> Result<ClientTls, TlsError> {
        let Some(ca) = &args.tls_ca else {
            return Ok(self);
        };
        let inner = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots("--tls-ca", ca)?),
            Arc::new(provider),
        )
        .build()
        .map_err(|err| TlsError::new("--tls-ca", ca, Problem::Verifier(err)))?;
        let mut config = (*self.config).clone();
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(RememberingVerifier {
                inner,
                verified: OnceLock::new(),
            }));
        self.config = Arc::new(config);
        Ok(self)
    }
}

/// rustls's WebPKI verifier of server certificates, remembering the one chain it verified for
/// the one server name: every handshake with a server presents the same chain, so after the
/// first, the same bytes for the same name are taken as verified, and the client is spared a
/// chain walk and an ECDSA verification a handshake (about a fifth of a full handshake's client
/// CPU with a P-256 chain) — load for the server, not for the client. The handshake's own
/// signature (CertificateVerify), which proves the server holds the key, is checked every time.
/// Remembered once, read without a lock by every thread after.
#[derive(Debug)]
pub struct RememberingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    /// The server name, end-entity certificate and intermediates verified.
    verified: OnceLock<(ServerName<'static>, Vec<CertificateDer<'static>>)>,
}

impl ServerCertVerifier for RememberingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some((name, chain)) = self.verified.get() {
            let same = name == server_name
                && chain.len() == intermediates.len() + 1
                && chain[0] == *end_entity
                && chain[1..] == *intermediates;
            if same {
                return Ok(ServerCertVerified::assertion());
            }
        }
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|cert| cert.clone().into_owned())
            .collect();
        let _ = self.verified.set((server_name.to_owned(), chain));
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

impl ServerTlsArgs {
    /// Whether TLS is on (`--tls-cert` given).
    pub fn enabled(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// The server's configuration, offering `alpn` (and taking clients that offer none), with
    /// rustls's default protocol versions; `None` without `--tls-cert`. It issues no session
    /// tickets and keeps no session cache: every connection is a full handshake, and shards
    /// share no mutable state.
    pub fn server(&self, alpn: &[u8]) -> Result<Option<Arc<ServerConfig>>, TlsError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let provider = Arc::new(provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::new("--tls-cert", cert, Problem::Refused(err)))?;
        let builder = match &self.tls_client_ca {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots("--tls-client-ca", ca)?),
                    provider,
                )
                .build()
                .map_err(|err| TlsError::new("--tls-client-ca", ca, Problem::Verifier(err)))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain("--tls-cert", cert)?, private_key("--tls-key", key)?)
            .map_err(|err| TlsError::new("--tls-key", key, Problem::Refused(err)))?;
        config.alpn_protocols = vec![alpn.to_vec()];
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Some(Arc::new(config)))
    }
}

/// rustls's aws-lc-rs provider with its defaults (cipher suites, key exchange groups).
pub fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The host of `host:port` (an IPv6 address without its brackets), for the default server name.
pub fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

/// The trust anchors in a PEM file: every certificate in it.
fn roots(flag: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in chain(flag, path)? {
        roots
            .add(cert)
            .map_err(|err| TlsError::new(flag, path, Problem::Refused(err)))?;
    }
    Ok(roots)
}

/// Every certificate in a PEM file, in order; at least one.
fn chain(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let unreadable = |err| TlsError::new(flag, path, Problem::Pem(err));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    if certs.is_empty() {
        return Err(TlsError::new(flag, path, Problem::Missing("CERTIFICATE")));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
fn private_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| {
        let problem = match err {
            pem::Error::NoItemsFound => Problem::Missing("PRIVATE KEY"),
            err => Problem::Pem(err),
        };
        TlsError::new(flag, path, problem)
    })
}

/// A TLS setting the rig cannot use: which flag, its value, and what is wrong with it.
#[derive(Debug)]
pub struct TlsError {
    /// The flag (or the setting) at fault.
    pub flag: &'static str,
    /// Its value: a file, or a name.
    pub value: String,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a TLS setting.
#[derive(Debug)]
pub enum Problem {
    /// The file cannot be read, or is not PEM.
    Pem(pem::Error),
    /// The file holds no PEM block of this label.
    Missing(&'static str),
    /// rustls refused what the file holds (a key that does not match its certificate, a
    /// certificate that cannot be a trust anchor).
    Refused(rustls::Error),
    /// The client-certificate verifier cannot be built from the authority.
    Verifier(rustls::server::VerifierBuilderError),
    /// Neither a DNS name nor an IP address.
    NotAName,
}

impl TlsError {
    fn new(flag: &'static str, value: &Path, problem: Problem) -> TlsError {
        TlsError {
            flag,
            value: value.display().to_string(),
            problem,
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.flag, self.value)?;
        match &self.problem {
            Problem::Pem(pem::Error::Io(err)) => write!(f, "cannot read it: {err}"),
            Problem::Pem(err) => write!(f, "not a PEM file: {err}"),
            Problem::Missing(label) => write!(f, "holds no {label} block (PEM)"),
            Problem::Refused(err) => write!(f, "{err}"),
            Problem::Verifier(err) => write!(f, "cannot verify client certificates with it: {err}"),
            Problem::NotAName => write!(
                f,
                "not a DNS name or an IP address; give the name the server's certificate carries \
                 with --tls-server-name"
            ),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for io::Error {
    fn from(err: TlsError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, err.to_string())
    }
}

/// The TLS error behind an I/O error from a TLS stream, when TLS (not the network) failed:
/// futures-rustls hands rustls's errors over inside `io::Error`s.
pub fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Whether `err` says the two ends cannot talk as they are configured — a certificate not
/// trusted or not for the name, a client certificate missing or refused, no protocol version,
/// cipher suite or application protocol in common — so that trying again cannot help.
pub fn is_misconfiguration(err: &rustls::Error) -> bool {
    use AlertDescription as A;
    match err {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::PeerIncompatible(_)
        | rustls::Error::NoApplicationProtocol
        | rustls::Error::UnsupportedNameType => true,
        rustls::Error::AlertReceived(alert) => matches!(
            alert,
            A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::CertificateRequired
                | A::HandshakeFailure
                | A::ProtocolVersion
                | A::InsufficientSecurity
                | A::NoApplicationProtocol
                | A::AccessDenied
                | A::UnrecognisedName
        ),
        _ => false,
    }
}

/// `err` as a client of the rig meets it, with what to do about it where that is known.
pub fn explain(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    use AlertDescription as A;
    let hint = match err {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "the server's certificate is not from the authority in --tls-ca"
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            "the server's certificate is not for this name: give one it carries with \
             --tls-server-name"
        }
        rustls::Error::AlertReceived(A::CertificateRequired) => {
            "the server requires a client certificate: give --tls-cert and --tls-key"
        }
        rustls::Error::AlertReceived(A::BadCertificate | A::UnknownCA | A::CertificateUnknown) => {
            "the server refused this client's certificate (or its authority)"
        }
        rustls::Error::NoApplicationProtocol
        | rustls::Error::AlertReceived(A::NoApplicationProtocol) => {
            "the server does not speak this protocol over TLS (ALPN)"
        }
        _ => return err.to_string(),
    };
    format!("{err}: {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs;

    fn dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tailgate-bench-tls-{}-{name}", std::process::id()))
    }

    #[test]
    fn hosts_are_taken_from_addresses() {
        assert_eq!(host_of("127.0.0.1:4317"), "127.0.0.1");
        assert_eq!(host_of("localhost:4317"), "localhost");
        assert_eq!(host_of("[::1]:4317"), "::1");
        assert_eq!(host_of("gateway"), "gateway");
    }

    #[test]
    fn a_generated_set_makes_both_ends() {
        let dir = dir("set");
        let files = certs::write_set(&dir, &["localhost", "127.0.0.1"]).unwrap();
        let client = ClientTlsArgs {
            tls_ca: Some(files.ca.clone()),
            tls_server_name: None,
            tls_cert: Some(files.client_cert.clone()),
            tls_key: Some(files.client_key.clone()),
        };
        let versions = rustls::DEFAULT_VERSIONS;
        let tls = client.client("127.0.0.1", &[ALPN_H2], provider(), versions);
        let tls = tls.unwrap().expect("TLS on");
        assert_eq!(tls.server_name, ServerName::try_from("127.0.0.1").unwrap());
        assert_eq!(tls.config.alpn_protocols, vec![b"h2".to_vec()]);
        let server = ServerTlsArgs {
            tls_cert: Some(files.server_cert.clone()),
            tls_key: Some(files.server_key.clone()),
            tls_client_ca: Some(files.ca.clone()),
        };
        let config = server.server(ALPN_HTTP1).unwrap().expect("TLS on");
        assert_eq!(config.send_tls13_tickets, 0);
        assert!(ClientTlsArgs::default()
            .client("x", &[ALPN_H2], provider(), versions)
            .unwrap()
            .is_none());
        assert!(ServerTlsArgs::default().server(ALPN_H2).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_are_named_with_what_is_wrong() {
        let dir = dir("bad");
        let files = certs::write_set(&dir, &["localhost"]).unwrap();
        let versions = rustls::DEFAULT_VERSIONS;
        let client = |ca: &Path, cert: Option<&Path>, key: Option<&Path>| {
            ClientTlsArgs {
                tls_ca: Some(ca.to_path_buf()),
                tls_server_name: None,
                tls_cert: cert.map(Path::to_path_buf),
                tls_key: key.map(Path::to_path_buf),
            }
            .client("localhost", &[ALPN_H2], provider(), versions)
            .map(|_| ())
            .unwrap_err()
            .to_string()
        };
        let missing = dir.join("absent.pem");
        let err = client(&missing, None, None);
        assert!(
            err.starts_with("--tls-ca ") && err.contains("cannot read it"),
            "{err}"
        );
        // A key where the authority's certificate should be.
        let err = client(&files.server_key, None, None);
        assert!(err.contains("holds no CERTIFICATE block"), "{err}");
        // A certificate where its key should be.
        let err = client(
            &files.ca,
            Some(&files.client_cert),
            Some(&files.client_cert),
        );
        assert!(
            err.starts_with("--tls-key ") && err.contains("PRIVATE KEY"),
            "{err}"
        );
        // A key that is not the certificate's.
        let err = client(&files.ca, Some(&files.client_cert), Some(&files.server_key));
        assert!(err.starts_with("--tls-key "), "{err}");
        let named = ClientTlsArgs {
            tls_ca: Some(files.ca.clone()),
            tls_server_name: Some("not a name!".into()),
            ..ClientTlsArgs::default()
        };
        let err = named.client("localhost", &[ALPN_H2], provider(), versions);
        let err = err.map(|_| ()).unwrap_err().to_string();
        assert!(err.starts_with("--tls-server-name not a name!"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The remembering verifier verifies the first chain in full, takes the same chain for the
    /// same name without a walk, and verifies anything else in full again.
    #[test]
    fn a_remembered_chain_is_only_the_one_verified() {
        let dir = dir("remember");
        let files = certs::write_set(&dir, &["localhost"]).unwrap();
        let other = certs::write_set(&dir.join("other"), &["localhost"]).unwrap();
        let inner = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots("--tls-ca", &files.ca).unwrap()),
            Arc::new(provider()),
        )
        .build()
        .unwrap();
        let remembering = RememberingVerifier {
            inner,
            verified: OnceLock::new(),
        };
        let cert = |path: &Path| chain("x", path).unwrap().remove(0);
        let (ours, theirs) = (cert(&files.server_cert), cert(&other.server_cert));
        let name = ServerName::try_from("localhost").unwrap();
        let elsewhere = ServerName::try_from("gateway.example").unwrap();
        let verify = |cert: &CertificateDer<'_>, name: &ServerName<'_>| {
            remembering.verify_server_cert(cert, &[], name, &[], UnixTime::now())
        };
        assert!(verify(&theirs, &name).is_err());
        assert!(remembering.verified.get().is_none());
        assert!(verify(&ours, &name).is_ok());
        assert!(remembering.verified.get().is_some());
        assert!(verify(&ours, &name).is_ok());
        assert!(verify(&theirs, &name).is_err());
        assert!(verify(&ours, &elsewhere).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn certificate_trouble_is_a_misconfiguration_and_says_what_to_do() {
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert!(is_misconfiguration(&unknown));
        assert!(explain(&unknown).contains("--tls-ca"));
        let required = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        assert!(is_misconfiguration(&required));
        assert!(explain(&required).contains("--tls-cert"));
        assert!(!is_misconfiguration(&rustls::Error::DecryptError));
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, unknown.clone());
        assert_eq!(rustls_error(&wrapped), Some(&unknown));
        assert_eq!(
            rustls_error(&io::Error::from(io::ErrorKind::ConnectionReset)),
            None
        );
    }
}
