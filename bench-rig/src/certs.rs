//! Certificates for TLS tests and benchmarks: a private certificate authority and the server
//! and client certificates it issues (ECDSA P-256), written as PEM files.
//!
//! Nothing here is for production: the keys are written unencrypted, next to the certificates.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// A certificate authority that can issue certificates.
pub struct Authority {
    /// The authority's own certificate, PEM.
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

/// When an issued certificate is valid.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    /// From an hour ago for a year.
    Current,
    /// It ran out a day ago.
    Expired,
}

/// What a certificate is for.
#[derive(Debug, Clone)]
pub enum Leaf<'a> {
    /// A server known by these names (IP addresses become IP SANs).
    Server(&'a [&'a str]),
    /// A client with this common name.
    Client(&'a str),
}

fn failed(err: rcgen::Error) -> io::Error {
    io::Error::other(err.to_string())
}

impl Authority {
    /// A new self-signed authority named `name`.
    pub fn new(name: &str) -> io::Result<Authority> {
        let key = KeyPair::generate().map_err(failed)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(2);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key).map_err(failed)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Issues a certificate for `leaf`, valid as `validity` says.
    pub fn issue(&self, leaf: Leaf<'_>, validity: Validity) -> io::Result<Issued> {
        let key = KeyPair::generate().map_err(failed)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        let mut dn = DistinguishedName::new();
        match &leaf {
            Leaf::Server(hosts) => {
                dn.push(
                    DnType::CommonName,
                    hosts.first().copied().unwrap_or("server"),
                );
                for host in *hosts {
                    params.subject_alt_names.push(match host.parse::<IpAddr>() {
                        Ok(ip) => SanType::IpAddress(ip),
                        Err(_) => SanType::DnsName((*host).try_into().map_err(failed)?),
                    });
                }
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            Leaf::Client(name) => {
                dn.push(DnType::CommonName, *name);
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
        }
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        (params.not_before, params.not_after) = match validity {
            Validity::Current => (now - Duration::hours(1), now + Duration::days(365)),
            Validity::Expired => (now - Duration::days(30), now - Duration::days(1)),
        };
        let cert = params.signed_by(&key, &self.issuer).map_err(failed)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The files [`write_set`] writes.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The authority's certificate.
    pub ca: PathBuf,
    /// The server's certificate, for `hosts`.
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    /// A client certificate from the same authority.
    pub client_cert: PathBuf,
    /// The client's private key.
    pub client_key: PathBuf,
}

/// Writes a new authority (`ca.pem`), a server certificate for `hosts` (`server.pem`,
/// `server-key.pem`) and a client certificate (`client.pem`, `client-key.pem`) into `dir`.
pub fn write_set(dir: &Path, hosts: &[&str]) -> io::Result<CertFiles> {
    write_set_keeping(dir, hosts).map(|(_, files)| files)
}

/// [`write_set`], returning the authority too, to issue more certificates from it (a rotated
/// server certificate, an expired client one).
pub fn write_set_keeping(dir: &Path, hosts: &[&str]) -> io::Result<(Authority, CertFiles)> {
    fs::create_dir_all(dir)?;
    // Named after its directory, so two sets' CAs are told apart by name as well as by key.
    let name = dir
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let ca = Authority::new(&format!("tailgate test CA {name}"))?;
    let server = ca.issue(Leaf::Server(hosts), Validity::Current)?;
    let client = ca.issue(Leaf::Client("tailgate test client"), Validity::Current)?;
    let files = CertFiles {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client-key.pem"),
    };
    fs::write(&files.ca, &ca.cert_pem)?;
    fs::write(&files.server_cert, &server.cert_pem)?;
    fs::write(&files.server_key, &server.key_pem)?;
    fs::write(&files.client_cert, &client.cert_pem)?;
    fs::write(&files.client_key, &client.key_pem)?;
    Ok((ca, files))
}
