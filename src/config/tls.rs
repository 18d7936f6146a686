//! `tls` on receivers and exporters, in the Collector's `configtls` layout.
//!
//! Keys are checked here (names, versions, suites, curves, which keys go together); the files
//! they name are read when the gateway starts ([`crate::tls`]), since a file may exist on the
//! machine that runs the gateway and not on the one that checks the configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::component::Ctx;
use super::error::ConfigError;
use super::processors::duration_at_most;
use super::scalar::Dur;
use super::values::KeyPath;

/// The shortest `reload_interval`: certificates are files read from disk, not a feed.
pub const RELOAD_INTERVAL_MIN: Duration = Duration::from_secs(1);
/// The longest `reload_interval`.
pub const RELOAD_INTERVAL_MAX: Duration = Duration::from_secs(366 * 24 * 3600);

/// A PEM document: a file read at start (and at each reload), or the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    /// `*_file`.
    File(PathBuf),
    /// `*_pem`.
    Inline(String),
}

/// A TLS protocol version, as `min_version`/`max_version` write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// "1.0": accepted as a floor; rustls speaks 1.2 and 1.3 only.
    V1_0,
    /// "1.1": as "1.0".
    V1_1,
    /// "1.2".
    V1_2,
    /// "1.3".
    V1_3,
}

impl TlsVersion {
    fn parse(text: &str) -> Option<TlsVersion> {
        Some(match text {
            "1.0" => TlsVersion::V1_0,
            "1.1" => TlsVersion::V1_1,
            "1.2" => TlsVersion::V1_2,
            "1.3" => TlsVersion::V1_3,
            _ => return None,
        })
    }

    /// As the configuration writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_0 => "1.0",
            TlsVersion::V1_1 => "1.1",
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }
}

/// The keys servers and clients share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCommon {
    /// `ca_file`/`ca_pem`: a client verifies the server with it.
    pub ca: Option<Pem>,
    /// `cert_file`/`cert_pem`: the certificate chain presented.
    pub cert: Option<Pem>,
    /// `key_file`/`key_pem`: its private key.
    pub key: Option<Pem>,
    /// `include_system_ca_certs_pool`: trust the system's roots beside `ca`.
    pub include_system_ca_certs_pool: bool,
    /// `min_version` (default 1.2).
    pub min_version: TlsVersion,
    /// `max_version` (default 1.3).
    pub max_version: TlsVersion,
    /// `cipher_suites`, Go's names, each checked against what rustls implements; empty: the
    /// provider's defaults.
    pub cipher_suites: Vec<String>,
    /// `curve_preferences`, checked; empty: the provider's defaults.
    pub curve_preferences: Vec<String>,
    /// `reload_interval`: files are read again this often; `None`: never.
    pub reload_interval: Option<Duration>,
}

/// A receiver's `tls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServerSettings {
    /// The shared keys; `cert` and `key` are required.
    pub common: TlsCommon,
    /// `client_ca_file`/`client_ca_pem`: client certificates are required and verified with it.
    pub client_ca: Option<Pem>,
    /// `client_ca_file_reload`: re-read the client CA file when it changes (also done at each
    /// `reload_interval`).
    pub client_ca_file_reload: bool,
}

/// An exporter's `tls`, when it is not `insecure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClientSettings {
    /// The shared keys; `cert` and `key` (both or neither) are the client certificate.
    pub common: TlsCommon,
    /// `insecure_skip_verify`: TLS without checking the server's certificate.
    pub insecure_skip_verify: bool,
    /// `server_name_override`: the name the certificate is checked against (and sent as SNI).
    pub server_name_override: Option<String>,
}

/// `tls.tpm`: keys held by a TPM. Parsed so that it can be refused by name.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTpm {
    enabled: Option<bool>,
    path: Option<String>,
    owner_auth: Option<String>,
    auth: Option<String>,
}

/// The Collector's `configtls` keys, server and client together; each side refuses the other's.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTls {
    // Common.
    ca_file: Option<String>,
    ca_pem: Option<String>,
    cert_file: Option<String>,
    cert_pem: Option<String>,
    key_file: Option<String>,
    key_pem: Option<String>,
    include_system_ca_certs_pool: Option<bool>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    include_insecure_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
    reload_interval: Option<Dur>,
    tpm: Option<RawTpm>,
    // Server.
    client_ca_file: Option<String>,
    client_ca_pem: Option<String>,
    client_ca_file_reload: Option<bool>,
    // Client.
    pub(crate) insecure: Option<bool>,
    insecure_skip_verify: Option<bool>,
    server_name_override: Option<String>,
}

impl RawTls {
    /// The client keys set, for a receiver's refusal.
    fn client_keys(&self) -> Option<&'static str> {
        [
            ("insecure", self.insecure.is_some()),
            ("insecure_skip_verify", self.insecure_skip_verify.is_some()),
            ("server_name_override", self.server_name_override.is_some()),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }

    /// The server keys set, for an exporter's refusal.
    fn server_keys(&self) -> Option<&'static str> {
        [
            ("client_ca_file", self.client_ca_file.is_some()),
            ("client_ca_pem", self.client_ca_pem.is_some()),
            (
                "client_ca_file_reload",
                self.client_ca_file_reload.is_some(),
            ),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }

    /// Whether any key but `insecure` is set: a plaintext exporter with TLS keys is a mistake.
    pub(crate) fn tls_key_set(&self) -> Option<&'static str> {
        [
            ("ca_file", self.ca_file.is_some()),
            ("ca_pem", self.ca_pem.is_some()),
            ("cert_file", self.cert_file.is_some()),
            ("cert_pem", self.cert_pem.is_some()),
            ("key_file", self.key_file.is_some()),
            ("key_pem", self.key_pem.is_some()),
            (
                "insecure_skip_verify",
                self.insecure_skip_verify == Some(true),
            ),
            ("server_name_override", self.server_name_override.is_some()),
            ("min_version", self.min_version.is_some()),
            ("max_version", self.max_version.is_some()),
            ("cipher_suites", self.cipher_suites.is_some()),
            ("curve_preferences", self.curve_preferences.is_some()),
            ("reload_interval", self.reload_interval.is_some()),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }
}

/// A `*_file`/`*_pem` pair: at most one of them.
fn pem_source(
    ctx: &Ctx<'_>,
    path: &KeyPath,
    what: &str,
    file: Option<String>,
    pem: Option<String>,
) -> Result<Option<Pem>, ConfigError> {
    match (file, pem) {
        (Some(_), Some(_)) => Err(ctx.invalid(
            &path.key(format!("{what}_pem")),
            format!("set `{what}_file` or `{what}_pem`, not both"),
        )),
        (Some(file), None) if file.is_empty() => Ok(None),
        (Some(file), None) => Ok(Some(Pem::File(PathBuf::from(file)))),
        (None, Some(pem)) if pem.is_empty() => Ok(None),
        (None, Some(pem)) => Ok(Some(Pem::Inline(pem))),
        (None, None) => Ok(None),
    }
}

fn check_common(raw: &mut RawTls, path: &KeyPath, ctx: &Ctx<'_>) -> Result<TlsCommon, ConfigError> {
    if let Some(tpm) = &raw.tpm {
        if tpm.enabled == Some(true) {
            return Err(ctx.unsupported(
                &path.key("tpm"),
                "keys in a TPM are not supported; give key_file or key_pem",
            ));
        }
        let _ = (&tpm.path, &tpm.owner_auth, &tpm.auth);
    }
    if raw.include_insecure_cipher_suites == Some(true) {
        return Err(ctx.unsupported(
            &path.key("include_insecure_cipher_suites"),
            "rustls implements no suite Go calls insecure (RC4, 3DES, CBC, static RSA); remove it",
        ));
    }
    let version = |key: &str, text: &Option<String>, default| match text.as_deref() {
        None | Some("") => Ok(default),
        Some(text) => TlsVersion::parse(text).ok_or_else(|| {
            ctx.invalid(
                &path.key(key),
                format!("`{text}` is not a TLS version; use \"1.0\", \"1.1\", \"1.2\" or \"1.3\""),
            )
        }),
    };
    let min_version = version("min_version", &raw.min_version, TlsVersion::V1_2)?;
    let max_version = version("max_version", &raw.max_version, TlsVersion::V1_3)?;
    if max_version < TlsVersion::V1_2 {
        return Err(ctx.unsupported(
            &path.key("max_version"),
            format!(
                "TLS {} is deprecated and rustls does not implement it; the gateway speaks TLS \
                 1.2 and 1.3",
                max_version.as_str()
            ),
        ));
    }
    if min_version > max_version {
        return Err(ctx.invalid(
            &path.key("min_version"),
            format!(
                "min_version {} is above max_version {}",
                min_version.as_str(),
                max_version.as_str()
            ),
        ));
    }
    let cipher_suites = raw.cipher_suites.take().unwrap_or_default();
    for (i, name) in cipher_suites.iter().enumerate() {
        if let Err(why) = crate::tls::cipher_suite(name) {
            return Err(ctx.invalid(&path.key("cipher_suites").index(i), why));
        }
    }
    let curve_preferences = raw.curve_preferences.take().unwrap_or_default();
    for (i, name) in curve_preferences.iter().enumerate() {
        if let Err(why) = crate::tls::key_exchange_group(name) {
            return Err(ctx.invalid(&path.key("curve_preferences").index(i), why));
        }
    }
    let reload_interval = match raw.reload_interval {
        Some(Dur(d)) if d.is_zero() => None,
        Some(Dur(d)) if d < RELOAD_INTERVAL_MIN => {
            return Err(ctx.invalid(
                &path.key("reload_interval"),
                "reload_interval is at least 1s",
            ))
        }
        Some(Dur(d)) => Some(duration_at_most(
            ctx,
            &path.key("reload_interval"),
            d,
            RELOAD_INTERVAL_MAX,
        )?),
        None => None,
    };
    let cert = pem_source(ctx, path, "cert", raw.cert_file.take(), raw.cert_pem.take())?;
    let key = pem_source(ctx, path, "key", raw.key_file.take(), raw.key_pem.take())?;
    match (&cert, &key) {
        (Some(_), None) => return Err(ctx.missing(path, "key_file")),
        (None, Some(_)) => return Err(ctx.missing(path, "cert_file")),
        _ => {}
    }
    Ok(TlsCommon {
        ca: pem_source(ctx, path, "ca", raw.ca_file.take(), raw.ca_pem.take())?,
        cert,
        key,
        include_system_ca_certs_pool: raw.include_system_ca_certs_pool.unwrap_or(false),
        min_version,
        max_version,
        cipher_suites,
        curve_preferences,
        reload_interval,
    })
}

/// A receiver's `tls` at `path` (the `tls` key itself).
pub(crate) fn check_server(
    mut raw: RawTls,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<TlsServerSettings, ConfigError> {
    if let Some(key) = raw.client_keys() {
        return Err(ctx.invalid(
            &path.key(key),
            format!("`{key}` is an exporter's (client) setting; a receiver does not take it"),
        ));
    }
    let common = check_common(&mut raw, path, ctx)?;
    if common.cert.is_none() {
        return Err(ctx.missing(path, "cert_file"));
    }
    Ok(TlsServerSettings {
        client_ca: pem_source(
            ctx,
            path,
            "client_ca",
            raw.client_ca_file.take(),
            raw.client_ca_pem.take(),
        )?,
        client_ca_file_reload: raw.client_ca_file_reload.unwrap_or(false),
        common,
    })
}

/// An exporter's `tls` at `path`, when it is TLS (not `insecure: true`).
pub(crate) fn check_client(
    mut raw: RawTls,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<TlsClientSettings, ConfigError> {
    if let Some(key) = raw.server_keys() {
        return Err(ctx.invalid(
            &path.key(key),
            format!("`{key}` is a receiver's (server) setting; an exporter does not take it"),
        ));
    }
    let common = check_common(&mut raw, path, ctx)?;
    let server_name_override = raw.server_name_override.take().filter(|s| !s.is_empty());
    if let Some(name) = &server_name_override {
        if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
            return Err(ctx.invalid(
                &path.key("server_name_override"),
                format!("`{name}` is not a DNS name or an IP address"),
            ));
        }
    }
    Ok(TlsClientSettings {
        common,
        insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
        server_name_override,
    })
}
