//! `extensions`: the Collector's authenticators `bearertokenauth` and `basicauth` (each also as
//! `TYPE/NAME`), the `auth.authenticator` keys of receivers and exporters that use them, and
//! the rule that ties the two together.
//!
//! ```yaml
//! extensions:
//!   bearertokenauth/in:
//!     scheme: Bearer            # default; "" sends and expects the token alone
//!     header: Authorization     # default
//!     tokens: [t1, t2]          # or `token: t1`, or `filename: /run/secrets/token`
//!   basicauth/in:
//!     htpasswd:
//!       file: /etc/tailgate/htpasswd
//!       inline: |
//!         ${env:USER}:${env:PASSWORD}
//!   basicauth/out:
//!     client_auth:
//!       username: gateway
//!       password: ${env:UPSTREAM_PASSWORD}
//! receivers:
//!   otlp:
//!     protocols:
//!       grpc:
//!         auth:
//!           authenticator: bearertokenauth/in
//! exporters:
//!   otlp:
//!     auth:
//!       authenticator: basicauth/out
//! service:
//!   extensions: [bearertokenauth/in, basicauth/out]
//! ```
//!
//! As in the Collector, an extension is started only when `service.extensions` lists it, so an
//! `auth.authenticator` must name an extension that is defined *and* listed; a `basicauth` is
//! either a server (`htpasswd`) or a client (`client_auth`), and is usable on that side only.
//! `bearertokenauth` works on both. Each of these is checked here, with the key path of the
//! `authenticator` that is wrong. Files (`filename`, `htpasswd.file`) are read at start, not
//! here: the same configuration may be checked on another machine.
//!
//! `health_check` is the Collector's health endpoint (`healthcheckextension`, its legacy
//! configuration): `endpoint`, `path`, `response_body` and `check_collector_pipeline` (which
//! the Collector keeps for compatibility and ignores; so does tailgate), served beside the
//! admin endpoint's `/healthz` and `/readyz`. `pprof` and `zpages` are accepted, whatever
//! their keys, and not served (start-up warns), so a Collector configuration loads; other
//! extension types are refused.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;

use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;

use super::component::{in_range, Ctx, RawComponent, RawComponents};
use super::error::{ConfigError, ConfigErrorKind};
use super::exporters::{Exporter, Exporters};
use super::headers_setter::{self, HeadersSetter, RawHeadersSetter};
use super::locate::{has_key, Target};
use super::receivers::{RawAuth, Receiver, Receivers};
use super::scalar::{Dur, UInt};
use super::tls::{check_server, RawTls, TlsServerSettings};
use super::values::{ComponentId, Endpoint, KeyPath};
use crate::auth::{check_token, Htpasswd, HTPASSWD_BYTES_MAX, TOKENS_MAX};

/// `health_check.endpoint` when not given (the Collector's default since it stopped listening
/// on every interface by default).
pub const HEALTH_CHECK_ENDPOINT_DEFAULT: &str = "localhost:13133";
/// The longest `health_check.path` and `response_body` text.
pub const HEALTH_CHECK_TEXT_MAX: usize = 4096;

/// `bearertokenauth.header` when not given.
pub const BEARER_HEADER_DEFAULT: &str = "Authorization";
/// `bearertokenauth.scheme` when not given.
pub const BEARER_SCHEME_DEFAULT: &str = "Bearer";

/// A credential from the configuration: its `Debug` form hides it, so a configuration printed
/// for debugging does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The credential itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The `extensions` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extensions {
    /// Every extension defined, by id (enabled or not: see `service.extensions`).
    pub by_id: BTreeMap<ComponentId, Extension>,
}

impl Extensions {
    /// The extension with this id.
    pub fn get(&self, id: &ComponentId) -> Option<&Extension> {
        self.by_id.get(id)
    }
}

/// One extension's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// `bearertokenauth`: a token in a header, on receivers and exporters.
    BearerTokenAuth(BearerTokenAuth),
    /// `basicauth`: HTTP Basic authentication, on receivers or on exporters.
    BasicAuth(BasicAuth),
    /// `health_check`: the Collector's health endpoint.
    HealthCheck(HealthCheck),
    /// `file_storage`: a directory for persistent sending queues.
    FileStorage(FileStorage),
    /// `headers_setter`: headers on exporters' requests, fixed or from client metadata.
    HeadersSetter(HeadersSetter),
    /// `pprof` or `zpages` (the kind): the Collector's debugging endpoints, accepted so that a
    /// Collector configuration loads, and not served (start-up warns when one is enabled).
    Unserved(String),
}

/// `file_storage.directory` when not given: the Collector's, so its configurations keep working.
pub const FILE_STORAGE_DIRECTORY_DEFAULT: &str = "/var/lib/otelcol/file_storage";
/// `file_storage.directory_permissions` when not given (the Collector's).
pub const FILE_STORAGE_PERMISSIONS_DEFAULT: u32 = 0o750;
/// The largest `file_storage.max_size` (1 PiB): a typo cannot read as "no limit".
pub const FILE_STORAGE_MAX_SIZE_MAX: u64 = 1 << 50;

/// `file_storage`: where persistent sending queues live, in the Collector's layout. tailgate
/// keeps a queue as checksummed segment files (see `export::persist`), not a bbolt database, so
/// the Collector's bbolt keys (`compaction`, `recreate`, `timeout`) are accepted and have
/// nothing to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStorage {
    /// `directory` (default [`FILE_STORAGE_DIRECTORY_DEFAULT`]): each exporter that uses the
    /// extension keeps its queue in a directory of its own inside.
    pub directory: PathBuf,
    /// `create_directory` (default false): create `directory` at start if it is missing;
    /// otherwise a missing directory is a start-up error, as in the Collector.
    pub create_directory: bool,
    /// `directory_permissions` (octal, default `0750`): the mode of a directory created.
    pub directory_permissions: u32,
    /// `fsync` (tailgate's default **true**, the Collector's false): each write reaches the
    /// device before its batch counts as queued, so a power loss loses nothing queued.
    pub fsync: bool,
    /// `max_size` in bytes: the disk an exporter's queue may use, over all shards (0 or absent:
    /// bounded by `sending_queue.queue_size` alone).
    pub max_size: Option<u64>,
    /// `write_delay` (tailgate's own, default [`FILE_STORAGE_WRITE_DELAY_DEFAULT`]): how long a
    /// queued batch may wait in memory before its record is written; one sent within it is
    /// never written. `0s` writes (and with `fsync` syncs) every batch before it counts as
    /// queued.
    pub write_delay: std::time::Duration,
}

/// `file_storage.write_delay` when not given: the `batch` processor's default timeout, so a
/// batch is on disk within about twice the time it may spend in the batcher, and one the
/// upstream takes at once is never written.
pub const FILE_STORAGE_WRITE_DELAY_DEFAULT: std::time::Duration =
    std::time::Duration::from_millis(200);
/// The longest `file_storage.write_delay`: a queue's unwritten batches stay bounded in time.
pub const FILE_STORAGE_WRITE_DELAY_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// `health_check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// `endpoint` (default [`HEALTH_CHECK_ENDPOINT_DEFAULT`]).
    pub endpoint: Endpoint,
    /// `path` (default `/`). As Go's HTTP mux reads it, a path ending in `/` answers every path
    /// under it (`/` answers all), any other only itself.
    pub path: String,
    /// `response_body`: what to answer instead of the Collector's JSON status.
    pub response_body: Option<ResponseBody>,
    /// `tls`: HTTPS (and mTLS with `client_ca_file`); `None`: plaintext. Boxed: most health
    /// checks have none.
    pub tls: Option<Box<TlsServerSettings>>,
}

/// `health_check.response_body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseBody {
    /// `healthy`: the body of a 200.
    pub healthy: String,
    /// `unhealthy`: the body of a 503.
    pub unhealthy: String,
}

impl HealthCheck {
    /// Whether a request for `path` (without its query) is answered with the health status.
    pub fn answers(&self, path: &str) -> bool {
        if self.path.ends_with('/') {
            path.starts_with(&self.path)
        } else {
            path == self.path
        }
    }
}

/// `bearertokenauth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerTokenAuth {
    /// `header` (default `Authorization`).
    pub header: String,
    /// `scheme` (default `Bearer`): the value is `SCHEME TOKEN`, or the token alone when empty.
    pub scheme: String,
    /// Where the tokens come from.
    pub tokens: BearerTokens,
}

/// The tokens of a `bearertokenauth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerTokens {
    /// `token`, or `tokens`: a server accepts any, a client sends the first.
    Inline(Vec<Secret>),
    /// `filename`: a token a line, re-read while running. `ignores_inline` when `token` or
    /// `tokens` was given too (the file wins, as in the Collector; start-up says so).
    File {
        /// The file.
        path: PathBuf,
        /// Whether `token` or `tokens` was set and is ignored.
        ignores_inline: bool,
    },
}

/// `basicauth`: a server or a client, never both (the Collector's rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasicAuth {
    /// `htpasswd`: the users a receiver accepts.
    Server(HtpasswdSource),
    /// `client_auth`: what an exporter sends.
    Client {
        /// `client_auth.username`, or `username_file`.
        username: Credential,
        /// `client_auth.password`, or `password_file` (an empty password when neither).
        password: Credential,
    },
}

/// One of `client_auth`'s credentials: given in the configuration, or the file that holds it
/// (which takes precedence, as in the Collector, and is followed while the gateway runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `username` / `password`, already checked.
    Inline(Secret),
    /// `username_file` / `password_file`: read at start (its text trimmed of surrounding
    /// whitespace; empty is refused) and every second after.
    File(PathBuf),
}

/// `basicauth.htpasswd`: `file`, `inline` or both (inline lines win for a user in both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtpasswdSource {
    /// `htpasswd.file`, read at start.
    pub file: Option<PathBuf>,
    /// `htpasswd.inline`, already checked.
    pub inline: Option<Secret>,
}

impl Extension {
    /// Whether it is an authenticator (bearertokenauth or basicauth).
    pub fn authenticates(&self) -> bool {
        matches!(
            self,
            Extension::BearerTokenAuth(_) | Extension::BasicAuth(_) | Extension::HeadersSetter(_)
        )
    }

    /// Whether a receiver can use it.
    pub fn serves(&self) -> bool {
        self.authenticates()
            && !matches!(
                self,
                Extension::BasicAuth(BasicAuth::Client { .. }) | Extension::HeadersSetter(_)
            )
    }

    /// Whether an exporter can use it.
    pub fn signs(&self) -> bool {
        self.authenticates() && !matches!(self, Extension::BasicAuth(BasicAuth::Server(_)))
    }

    /// The request header it reads or writes (empty for an extension that is no
    /// authenticator).
    pub fn header(&self) -> &str {
        match self {
            Extension::BearerTokenAuth(bearer) => &bearer.header,
            Extension::BasicAuth(_) => "Authorization",
            Extension::HealthCheck(_)
            | Extension::FileStorage(_)
            | Extension::HeadersSetter(_)
            | Extension::Unserved(_) => "",
        }
    }
}

pub(crate) enum RawExtension {
    BearerTokenAuth(RawBearer),
    BasicAuth(RawBasic),
    HealthCheck(RawHealthCheck),
    FileStorage(RawFileStorage),
    HeadersSetter(RawHeadersSetter),
    Unserved(String),
    Unknown,
}

impl RawComponent for RawExtension {
    fn from_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        Ok(match kind {
            "bearertokenauth" => {
                RawExtension::BearerTokenAuth(Option::deserialize(d)?.unwrap_or_default())
            }
            "basicauth" => RawExtension::BasicAuth(Option::deserialize(d)?.unwrap_or_default()),
            "health_check" => {
                RawExtension::HealthCheck(Option::deserialize(d)?.unwrap_or_default())
            }
            "file_storage" => {
                RawExtension::FileStorage(Option::deserialize(d)?.unwrap_or_default())
            }
            "headers_setter" => {
                RawExtension::HeadersSetter(Option::deserialize(d)?.unwrap_or_default())
            }
            "pprof" | "zpages" => {
                IgnoredAny::deserialize(d)?;
                RawExtension::Unserved(kind.to_string())
            }
            _ => {
                IgnoredAny::deserialize(d)?;
                RawExtension::Unknown
            }
        })
    }
}

/// The legacy `health_check` configuration. Its v2 keys (`use_v2`, `http`, `grpc`,
/// `component_health`) and confighttp's server keys besides `endpoint` and `tls` (`cors`,
/// `auth`, ...) are unknown keys here, refused by name.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHealthCheck {
    endpoint: Option<String>,
    path: Option<String>,
    response_body: Option<RawResponseBody>,
    check_collector_pipeline: Option<IgnoredAny>,
    tls: Option<Box<RawTls>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawFileStorage {
    directory: Option<String>,
    create_directory: Option<bool>,
    directory_permissions: Option<String>,
    fsync: Option<bool>,
    max_size: Option<UInt>,
    write_delay: Option<Dur>,
    timeout: Option<IgnoredAny>,
    compaction: Option<IgnoredAny>,
    recreate: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawResponseBody {
    healthy: Option<String>,
    unhealthy: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawBearer {
    header: Option<String>,
    scheme: Option<String>,
    token: Option<String>,
    tokens: Option<Vec<String>>,
    filename: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawBasic {
    #[serde(deserialize_with = "super::scalar::present")]
    htpasswd: Option<RawHtpasswd>,
    #[serde(deserialize_with = "super::scalar::present")]
    client_auth: Option<RawClientAuth>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawHtpasswd {
    file: Option<String>,
    inline: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawClientAuth {
    username: Option<String>,
    password: Option<String>,
    username_file: Option<String>,
    password_file: Option<String>,
    aws_secrets_manager: Option<IgnoredAny>,
}

/// The message for an extension type tailgate does not have.
fn unknown_kind(kind: &str) -> String {
    format!(
        "extension type `{kind}` is not supported; tailgate has the authenticators \
         `bearertokenauth` and `basicauth`, `headers_setter` for exporters' headers, \
         `health_check`, and `file_storage` for persistent sending queues; it accepts `pprof` and \
         `zpages` without serving them (and serves /healthz, /readyz and /metrics itself on \
         service.telemetry.metrics.address)"
    )
}

pub(crate) fn check(
    raw: RawComponents<RawExtension>,
    ctx: &Ctx<'_>,
) -> Result<Extensions, ConfigError> {
    let section = KeyPath::root().key("extensions");
    let mut by_id = BTreeMap::new();
    for (key, raw) in raw.0 {
        let id = ctx.component_id(&section, &key)?;
        let path = section.key(key.as_str());
        let extension = match raw {
            RawExtension::BearerTokenAuth(raw) => {
                Extension::BearerTokenAuth(check_bearer(raw, &path, ctx)?)
            }
            RawExtension::BasicAuth(raw) => Extension::BasicAuth(check_basic(raw, &path, ctx)?),
            RawExtension::HealthCheck(raw) => {
                Extension::HealthCheck(check_health_check(raw, &path, ctx)?)
            }
            RawExtension::FileStorage(raw) => {
                Extension::FileStorage(check_file_storage(raw, &path, ctx)?)
            }
            RawExtension::HeadersSetter(raw) => {
                Extension::HeadersSetter(headers_setter::check(raw, &path, ctx)?)
            }
            RawExtension::Unserved(kind) => Extension::Unserved(kind),
            RawExtension::Unknown => return Err(ctx.unsupported(&path, unknown_kind(&id.kind))),
        };
        by_id.insert(id, extension);
    }
    Ok(Extensions { by_id })
}

fn check_file_storage(
    raw: RawFileStorage,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<FileStorage, ConfigError> {
    let directory = match raw.directory {
        Some(dir) if dir.is_empty() => {
            return Err(ctx.invalid(&path.key("directory"), "is empty; name a directory"))
        }
        // Relative to the working directory, as in the Collector; taken once, here, so the
        // queue stays where this start found it.
        Some(dir) if !dir.starts_with('/') => std::env::current_dir()
            .map_err(|err| {
                ctx.invalid(
                    &path.key("directory"),
                    format!("`{dir}` is relative, and the working directory cannot be read: {err}"),
                )
            })?
            .join(dir),
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(FILE_STORAGE_DIRECTORY_DEFAULT),
    };
    let directory_permissions = match raw.directory_permissions.as_deref() {
        None => FILE_STORAGE_PERMISSIONS_DEFAULT,
        Some(text) => match u32::from_str_radix(text, 8) {
            Ok(mode) if mode <= 0o777 => mode,
            _ => {
                return Err(ctx.invalid(
                    &path.key("directory_permissions"),
                    format!("`{text}` is not a permission mode; write octal digits, like 0750"),
                ))
            }
        },
    };
    let max_size = match raw.max_size {
        None | Some(UInt(0)) => None,
        Some(UInt(v)) => Some(in_range(
            ctx,
            &path.key("max_size"),
            v,
            1024 * 1024,
            FILE_STORAGE_MAX_SIZE_MAX,
        )?),
    };
    let write_delay = match raw.write_delay {
        None => FILE_STORAGE_WRITE_DELAY_DEFAULT,
        Some(Dur(delay)) if delay > FILE_STORAGE_WRITE_DELAY_MAX => {
            return Err(ctx.invalid(
                &path.key("write_delay"),
                "is longer than 10s; a queued batch must reach the disk soon",
            ))
        }
        Some(Dur(delay)) => delay,
    };
    Ok(FileStorage {
        write_delay,
        directory,
        create_directory: raw.create_directory.unwrap_or(false),
        directory_permissions,
        fsync: raw.fsync.unwrap_or(true),
        max_size,
    })
}

fn check_health_check(
    raw: RawHealthCheck,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<HealthCheck, ConfigError> {
    let text = |key: &KeyPath, value: Option<String>| -> Result<Option<String>, ConfigError> {
        match value {
            Some(v) if v.len() > HEALTH_CHECK_TEXT_MAX => Err(ctx.invalid(
                key,
                format!("is {} bytes; at most {HEALTH_CHECK_TEXT_MAX}", v.len()),
            )),
            other => Ok(other),
        }
    };
    let endpoint_text = raw
        .endpoint
        .unwrap_or_else(|| HEALTH_CHECK_ENDPOINT_DEFAULT.to_string());
    let endpoint =
        Endpoint::parse(&endpoint_text).map_err(|why| ctx.invalid(&path.key("endpoint"), why))?;
    let url_path = text(&path.key("path"), raw.path)?.unwrap_or_else(|| "/".to_string());
    if !url_path.starts_with('/') {
        return Err(ctx.invalid(
            &path.key("path"),
            format!("`{url_path}` must start with `/`, as the Collector requires"),
        ));
    }
    let response_body = match raw.response_body {
        Some(body) => {
            let at = path.key("response_body");
            Some(ResponseBody {
                healthy: text(&at.key("healthy"), body.healthy)?.unwrap_or_default(),
                unhealthy: text(&at.key("unhealthy"), body.unhealthy)?.unwrap_or_default(),
            })
        }
        None => None,
    };
    let tls = match raw.tls {
        Some(tls) => Some(Box::new(check_server(*tls, &path.key("tls"), ctx)?)),
        None => None,
    };
    Ok(HealthCheck {
        endpoint,
        path: url_path,
        response_body,
        tls,
    })
}

fn check_bearer(
    raw: RawBearer,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<BearerTokenAuth, ConfigError> {
    let header = raw
        .header
        .unwrap_or_else(|| BEARER_HEADER_DEFAULT.to_string());
    if !super::values::is_header_name(&header) {
        return Err(ctx.invalid(
            &path.key("header"),
            format!("`{header}` is not an HTTP header name"),
        ));
    }
    let scheme = raw
        .scheme
        .unwrap_or_else(|| BEARER_SCHEME_DEFAULT.to_string());
    // Empty is allowed (the token alone); otherwise a token, as a header name is.
    if !scheme.is_empty() && !super::values::is_header_name(&scheme) {
        return Err(ctx.invalid(
            &path.key("scheme"),
            format!(
                "`{scheme}` is not an authentication scheme name (letters, digits and \
                 !#$%&'*+-.^_`|~; empty for the token alone)"
            ),
        ));
    }
    // The Collector reads an empty `token` as not given.
    let token = raw.token.filter(|t| !t.is_empty());
    let tokens = raw.tokens.unwrap_or_default();
    if token.is_some() && !tokens.is_empty() {
        return Err(ctx.invalid(
            &path.key("tokens"),
            "either `token` or `tokens` can be given, not both",
        ));
    }
    if tokens.len() > TOKENS_MAX {
        return Err(ctx.invalid(
            &path.key("tokens"),
            format!(
                "lists {} tokens; at most {TOKENS_MAX} are allowed",
                tokens.len()
            ),
        ));
    }
    let inline: Vec<(KeyPath, String)> = match token {
        Some(token) => vec![(path.key("token"), token)],
        None => tokens
            .into_iter()
            .enumerate()
            .map(|(i, t)| (path.key("tokens").index(i), t))
            .collect(),
    };
    for (at, token) in &inline {
        check_token(token).map_err(|why| ctx.invalid(at, why))?;
    }
    let tokens = match raw.filename.filter(|f| !f.is_empty()) {
        Some(file) => BearerTokens::File {
            path: PathBuf::from(file),
            ignores_inline: !inline.is_empty(),
        },
        None if inline.is_empty() => {
            return Err(ctx.invalid(path, "no bearer token: set `token`, `tokens` or `filename`"))
        }
        None => BearerTokens::Inline(inline.into_iter().map(|(_, t)| Secret(t)).collect()),
    };
    Ok(BearerTokenAuth {
        header,
        scheme,
        tokens,
    })
}

fn check_basic(raw: RawBasic, path: &KeyPath, ctx: &Ctx<'_>) -> Result<BasicAuth, ConfigError> {
    match (raw.htpasswd, raw.client_auth) {
        (Some(_), Some(_)) => Err(ctx.invalid(
            &path.key("client_auth"),
            "a basicauth extension has `htpasswd` (to check a receiver's clients) or \
             `client_auth` (to sign an exporter's requests), not both; define two extensions",
        )),
        (None, None) => Err(ctx.invalid(
            path,
            "set `htpasswd` (to check a receiver's clients) or `client_auth` (to sign an \
             exporter's requests)",
        )),
        (Some(htpasswd), None) => check_htpasswd(htpasswd, &path.key("htpasswd"), ctx),
        (None, Some(client)) => check_client_auth(client, &path.key("client_auth"), ctx),
    }
}

fn check_htpasswd(
    raw: RawHtpasswd,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<BasicAuth, ConfigError> {
    let file = raw.file.filter(|f| !f.is_empty()).map(PathBuf::from);
    let inline = raw.inline.filter(|text| !text.trim().is_empty());
    if file.is_none() && inline.is_none() {
        return Err(ctx.invalid(path, "set `file`, `inline` or both"));
    }
    if let Some(text) = &inline {
        let at = path.key("inline");
        if text.len() > HTPASSWD_BYTES_MAX {
            return Err(ctx.invalid(
                &at,
                format!("is {} bytes; at most {HTPASSWD_BYTES_MAX}", text.len()),
            ));
        }
        Htpasswd::parse(text).map_err(|err| ctx.invalid(&at, err.to_string()))?;
    }
    Ok(BasicAuth::Server(HtpasswdSource {
        file,
        inline: inline.map(Secret),
    }))
}

fn check_client_auth(
    raw: RawClientAuth,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<BasicAuth, ConfigError> {
    if raw.aws_secrets_manager.is_some() {
        return Err(ctx.unsupported(
            &path.key("aws_secrets_manager"),
            "`aws_secrets_manager` is not supported; give `username_file` and `password_file` \
             (a secret mounted as files, followed while the gateway runs), or `username` and \
             `password`",
        ));
    }
    // A file takes precedence over the inline value, as in the Collector.
    let file = |key: &str, value: Option<String>| -> Result<Option<PathBuf>, ConfigError> {
        match value {
            Some(file) if file.is_empty() => Err(ctx.invalid(&path.key(key), "is empty")),
            value => Ok(value.map(PathBuf::from)),
        }
    };
    let username = match file("username_file", raw.username_file)? {
        Some(file) => Credential::File(file),
        None => {
            let Some(username) = raw.username.filter(|u| !u.is_empty()) else {
                return Err(ctx.invalid(path, "set `username` or `username_file`"));
            };
            crate::auth::check_basic_username(&username)
                .map_err(|why| ctx.invalid(&path.key("username"), why))?;
            Credential::Inline(Secret(username))
        }
    };
    let password = match file("password_file", raw.password_file)? {
        Some(file) => Credential::File(file),
        None => {
            let password = raw.password.unwrap_or_default();
            crate::auth::check_basic_password(&password)
                .map_err(|why| ctx.invalid(&path.key("password"), why))?;
            Credential::Inline(Secret(password))
        }
    };
    Ok(BasicAuth::Client { username, password })
}

/// `auth.authenticator` of a receiver protocol or an exporter at `path`, as an id.
pub(crate) fn check_auth(
    raw: Option<RawAuth>,
    parent: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Option<ComponentId>, ConfigError> {
    let path = parent.key("auth");
    let Some(raw) = raw else {
        // `auth:` with nothing under it reads as no `auth` at all; a receiver would then take
        // every request, so a written but empty `auth` is refused.
        if has_key(ctx.text, &path) {
            return Err(ctx.missing(&path, "authenticator"));
        }
        return Ok(None);
    };
    let Some(name) = raw.authenticator else {
        return Err(ctx.missing(&path, "authenticator"));
    };
    ComponentId::parse(&name)
        .map(Some)
        .map_err(|why| ctx.invalid(&path.key("authenticator"), why))
}

/// `service.extensions`: each entry defined, none twice.
pub(crate) fn check_enabled(
    names: Vec<String>,
    extensions: &Extensions,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Vec<ComponentId>, ConfigError> {
    let mut seen = HashSet::new();
    let mut enabled = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let at = path.index(i);
        let id = ComponentId::parse(name).map_err(|why| ctx.invalid(&at, why))?;
        if extensions.get(&id).is_none() {
            return Err(ctx.error(
                &at,
                Target::Value,
                ConfigErrorKind::Reference(format!(
                    "extension `{id}` is not defined under `extensions` ({})",
                    defined(extensions)
                )),
            ));
        }
        if !seen.insert(id.clone()) {
            return Err(ctx.error(
                &at,
                Target::Value,
                ConfigErrorKind::Reference(format!("extension `{id}` is listed twice")),
            ));
        }
        enabled.push(id);
    }
    Ok(enabled)
}

fn defined(extensions: &Extensions) -> String {
    if extensions.by_id.is_empty() {
        "no extensions are defined".to_string()
    } else {
        let ids: Vec<String> = extensions.by_id.keys().map(ToString::to_string).collect();
        format!("defined: {}", ids.join(", "))
    }
}

/// Every `auth.authenticator` names an enabled extension that can serve its side; an exporter
/// does not also set the authenticator's header in `headers`.
pub(crate) fn check_references(
    receivers: &Receivers,
    exporters: &Exporters,
    extensions: &Extensions,
    enabled: &[ComponentId],
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    for (id, receiver) in &receivers.by_id {
        let Receiver::Otlp(otlp) = receiver;
        let protocols = KeyPath::root()
            .key("receivers")
            .key(id.to_string())
            .key("protocols");
        let uses = [
            ("grpc", otlp.grpc.as_ref().and_then(|g| g.auth.as_ref())),
            ("http", otlp.http.as_ref().and_then(|h| h.auth.as_ref())),
        ];
        for (protocol, auth) in uses {
            if let Some(auth) = auth {
                let at = protocols.key(protocol).key("auth").key("authenticator");
                resolve(auth, Side::Server, extensions, enabled, &at, ctx)?;
            }
        }
    }
    for (id, exporter) in &exporters.by_id {
        let queue = match exporter {
            Exporter::Otlp(e) => &e.sending_queue,
            Exporter::OtlpHttp(e) => &e.sending_queue,
            Exporter::LoadBalancing(e) => {
                if e.protocol.sending_queue.storage.is_some() {
                    let at = KeyPath::root()
                        .key("exporters")
                        .key(id.to_string())
                        .key("protocol")
                        .key("otlp")
                        .key("sending_queue")
                        .key("storage");
                    return Err(ctx.unsupported(
                        &at,
                        "a load balancer's backends come and go, and each queues in memory; a \
                         persistent queue per backend is not supported (put the persistent \
                         queue on the exporters of the tier behind it)",
                    ));
                }
                continue;
            }
            Exporter::Debug(_) => continue,
        };
        let Some(storage) = &queue.storage else {
            continue;
        };
        let at = KeyPath::root()
            .key("exporters")
            .key(id.to_string())
            .key("sending_queue")
            .key("storage");
        let reference =
            |why: String| ctx.error(&at, Target::Value, ConfigErrorKind::Reference(why));
        match extensions.get(storage) {
            None => {
                return Err(reference(format!(
                    "storage `{storage}` is not defined under `extensions` ({})",
                    defined(extensions)
                )))
            }
            Some(Extension::FileStorage(_)) => {}
            Some(_) => {
                return Err(reference(format!(
                    "`{storage}` is not a storage extension; define a `file_storage` extension"
                )))
            }
        }
        if !enabled.contains(storage) {
            return Err(reference(format!(
                "storage `{storage}` is defined but not enabled: list it in `service.extensions` \
                 (as in the Collector, only the extensions listed there are started)"
            )));
        }
    }
    for (id, exporter) in &exporters.by_id {
        let path = KeyPath::root().key("exporters").key(id.to_string());
        let (auth, headers, path) = match exporter {
            Exporter::Otlp(e) => (&e.auth, &e.headers, path),
            Exporter::OtlpHttp(e) => (&e.auth, &e.headers, path),
            Exporter::LoadBalancing(e) => (
                &e.protocol.auth,
                &e.protocol.headers,
                path.key("protocol").key("otlp"),
            ),
            Exporter::Debug(_) => continue,
        };
        let Some(auth) = auth else { continue };
        let at = path.key("auth").key("authenticator");
        let extension = resolve(auth, Side::Client, extensions, enabled, &at, ctx)?;
        let set = match extension {
            Extension::HeadersSetter(setter) => headers_setter::names(setter),
            other => [other.header().to_ascii_lowercase()].into_iter().collect(),
        };
        if let Some(name) = headers
            .keys()
            .find(|n| set.contains(&n.to_ascii_lowercase()))
        {
            return Err(ctx.error(
                &path.key("headers").key(name.as_str()),
                Target::Key,
                ConfigErrorKind::InvalidValue(format!(
                    "`{name}` is also set by auth.authenticator `{auth}`; remove one of them"
                )),
            ));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

fn resolve<'a>(
    id: &ComponentId,
    side: Side,
    extensions: &'a Extensions,
    enabled: &[ComponentId],
    at: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<&'a Extension, ConfigError> {
    let reference = |why: String| ctx.error(at, Target::Value, ConfigErrorKind::Reference(why));
    let Some(extension) = extensions.get(id) else {
        return Err(reference(format!(
            "authenticator `{id}` is not defined under `extensions` ({})",
            defined(extensions)
        )));
    };
    if !enabled.contains(id) {
        return Err(reference(format!(
            "authenticator `{id}` is defined but not enabled: list it in `service.extensions` \
             (as in the Collector, only the extensions listed there are started)"
        )));
    }
    if !extension.authenticates() {
        return Err(reference(format!(
            "`{id}` is not an authenticator (bearertokenauth, basicauth or headers_setter)"
        )));
    }
    match side {
        Side::Server if matches!(extension, Extension::HeadersSetter(_)) => {
            Err(reference(format!(
                "`{id}` is a headers_setter, which sets headers on an exporter's requests; a \
             receiver needs a basicauth extension with `htpasswd`, or a bearertokenauth"
            )))
        }
        Side::Server if !extension.serves() => Err(reference(format!(
            "`{id}` has `client_auth`, which signs an exporter's requests; a receiver needs a \
             basicauth extension with `htpasswd`, or a bearertokenauth"
        ))),
        Side::Client if !extension.signs() => Err(reference(format!(
            "`{id}` has `htpasswd`, which checks a receiver's clients; an exporter needs a \
             basicauth extension with `client_auth`, or a bearertokenauth"
        ))),
        _ => Ok(extension),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Credential, Secret, FILE_STORAGE_DIRECTORY_DEFAULT};
    use crate::config::{
        BasicAuth, BearerTokens, Config, Extension, ResponseBody, HEALTH_CHECK_ENDPOINT_DEFAULT,
    };

    const PIPELINE: &str = "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n";

    fn parse(extensions: &str) -> Result<Config, String> {
        Config::from_yaml(&format!("extensions:\n{extensions}{PIPELINE}"), "t.yaml")
            .map_err(|e| e.to_string())
    }

    fn extension(yaml: &str) -> Extension {
        let config = parse(yaml).unwrap_or_else(|e| panic!("{e}"));
        config
            .extensions
            .by_id
            .into_values()
            .next()
            .expect("one extension")
    }

    #[test]
    fn bearer_defaults_and_token_sources() {
        let Extension::BearerTokenAuth(b) = extension("  bearertokenauth:\n    token: abc\n")
        else {
            panic!("bearer")
        };
        assert_eq!(
            (b.header.as_str(), b.scheme.as_str()),
            ("Authorization", "Bearer")
        );
        assert!(
            matches!(&b.tokens, BearerTokens::Inline(t) if t.len() == 1 && t[0].expose() == "abc")
        );
        let Extension::BearerTokenAuth(b) = extension(
            "  bearertokenauth/x:\n    scheme: \"\"\n    header: X-Api-Key\n    tokens: [a, b]\n    filename: /t\n",
        ) else {
            panic!("bearer")
        };
        assert_eq!((b.header.as_str(), b.scheme.as_str()), ("X-Api-Key", ""));
        assert!(matches!(
            &b.tokens,
            BearerTokens::File { path, ignores_inline: true } if path.to_str() == Some("/t")
        ));
        assert!(
            !format!("{:?}", extension("  bearertokenauth:\n    token: s3cret\n"))
                .contains("s3cret")
        );
    }

    #[test]
    fn bearer_mistakes_name_their_key() {
        for (yaml, path, message) in [
            (
                "  bearertokenauth:\n",
                "extensions.bearertokenauth",
                "no bearer token",
            ),
            (
                "  bearertokenauth:\n    token: \"\"\n",
                "extensions.bearertokenauth",
                "no bearer token",
            ),
            (
                "  bearertokenauth:\n    token: a\n    tokens: [b]\n",
                "extensions.bearertokenauth.tokens",
                "not both",
            ),
            (
                "  bearertokenauth:\n    tokens: [ok, \"bad\\ttoken\"]\n",
                "extensions.bearertokenauth.tokens[1]",
                "printable ASCII",
            ),
            (
                "  bearertokenauth:\n    token: a\n    header: \"X Token\"\n",
                "extensions.bearertokenauth.header",
                "not an HTTP header name",
            ),
            (
                "  bearertokenauth:\n    token: a\n    scheme: \"Bear er\"\n",
                "extensions.bearertokenauth.scheme",
                "not an authentication scheme",
            ),
            (
                "  bearertokenauth:\n    token: a\n    tokenz: b\n",
                "extensions.bearertokenauth.tokenz",
                "unknown key",
            ),
        ] {
            let err = parse(yaml).expect_err(yaml);
            assert!(err.contains(&format!(": {path}: ")), "{yaml}: {err}");
            assert!(err.contains(message), "{yaml}: {err}");
        }
    }

    #[test]
    fn basicauth_is_a_server_or_a_client() {
        let Extension::BasicAuth(BasicAuth::Server(source)) =
            extension("  basicauth/in:\n    htpasswd:\n      file: /etc/htpasswd\n      inline: |\n        u:{SHA}87u9ZqY9S/F0eUBXjsPQEDUw4h0=\n")
        else {
            panic!("server")
        };
        assert_eq!(
            source.file.as_deref(),
            Some(std::path::Path::new("/etc/htpasswd"))
        );
        assert!(source.inline.is_some());
        let Extension::BasicAuth(BasicAuth::Client { username, password }) =
            extension("  basicauth/out:\n    client_auth:\n      username: u\n      password: p\n")
        else {
            panic!("client")
        };
        assert_eq!(
            (username, password),
            (
                Credential::Inline(Secret("u".into())),
                Credential::Inline(Secret("p".into()))
            )
        );
        // Files win over inline values, as in the Collector.
        let Extension::BasicAuth(BasicAuth::Client { username, password }) = extension(
            "  basicauth/out:\n    client_auth:\n      username: u\n      username_file: /run/u\n      password_file: /run/p\n",
        ) else {
            panic!("client")
        };
        assert_eq!(username, Credential::File("/run/u".into()));
        assert_eq!(password, Credential::File("/run/p".into()));
        for (yaml, path, message) in [
            ("  basicauth:\n", "extensions.basicauth", "set `htpasswd`"),
            ("  basicauth:\n    htpasswd:\n    client_auth:\n      username: u\n", "extensions.basicauth.client_auth", "not both"),
            ("  basicauth:\n    htpasswd:\n", "extensions.basicauth.htpasswd", "set `file`, `inline`"),
            ("  basicauth:\n    htpasswd:\n      inline: |\n        ok:pw\n        md5:$apr1$x$y\n", "extensions.basicauth.htpasswd.inline", "line 2: the password is MD5-crypt"),
            ("  basicauth:\n    client_auth:\n      password: p\n", "extensions.basicauth.client_auth", "set `username` or `username_file`"),
            ("  basicauth:\n    client_auth:\n      username: \"a:b\"\n", "extensions.basicauth.client_auth.username", "may not contain `:`"),
            ("  basicauth:\n    client_auth:\n      username: u\n      password_file: \"\"\n", "extensions.basicauth.client_auth.password_file", "is empty"),
            ("  basicauth:\n    client_auth:\n      username_file: /u\n      aws_secrets_manager: {secret_arn: x}\n", "extensions.basicauth.client_auth.aws_secrets_manager", "not supported"),
        ] {
            let err = parse(yaml).expect_err(yaml);
            assert!(err.contains(&format!(": {path}: ")), "{yaml}: {err}");
            assert!(err.contains(message), "{yaml}: {err}");
        }
    }

    #[test]
    fn an_empty_auth_and_request_params_are_refused() {
        let config = |auth: &str| {
            Config::from_yaml(
                &format!(
                    "extensions:\n  bearertokenauth:\n    token: t\nreceivers:\n  otlp:\n    protocols:\n      http:\n        auth:{auth}\nexporters:\n  debug:\nservice:\n  extensions: [bearertokenauth]\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
                ),
                "t.yaml",
            )
            .map_err(|e| e.to_string())
        };
        let ok = config("\n          authenticator: bearertokenauth").unwrap();
        let crate::config::Receiver::Otlp(otlp) = &ok.receivers.by_id.values().next().unwrap();
        assert_eq!(
            otlp.http
                .as_ref()
                .unwrap()
                .auth
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("bearertokenauth")
        );
        let err = config("").unwrap_err();
        assert!(
            err.contains("receivers.otlp.protocols.http.auth.authenticator: missing required key"),
            "{err}"
        );
        let err = config(" {}").unwrap_err();
        assert!(
            err.contains("missing required key `authenticator`"),
            "{err}"
        );
        let err = config(
            "\n          authenticator: bearertokenauth\n          request_params: [tenant]",
        )
        .unwrap_err();
        assert!(
            err.contains("receivers.otlp.protocols.http.auth.request_params: request parameters"),
            "{err}"
        );
    }

    #[test]
    fn file_storage_keys_defaults_and_refusals() {
        let Extension::FileStorage(fs) = extension("  file_storage:\n") else {
            panic!("a file_storage");
        };
        assert_eq!(fs.directory, PathBuf::from(FILE_STORAGE_DIRECTORY_DEFAULT));
        assert!(fs.fsync, "tailgate syncs unless told not to");
        assert!(!fs.create_directory);
        assert_eq!(fs.directory_permissions, 0o750);
        assert_eq!(fs.max_size, None);
        assert_eq!(fs.write_delay, super::FILE_STORAGE_WRITE_DELAY_DEFAULT);
        let Extension::FileStorage(fs) = extension("  file_storage:\n    write_delay: 0s\n") else {
            panic!("a file_storage");
        };
        assert!(fs.write_delay.is_zero());
        let Extension::FileStorage(fs) = extension(
            "  file_storage/q:\n    directory: /var/q\n    fsync: false\n    create_directory: \
             true\n    directory_permissions: \"0700\"\n    max_size: 1073741824\n    \
             timeout: 1s\n    compaction:\n      on_start: true\n    recreate: true\n",
        ) else {
            panic!("a file_storage");
        };
        assert_eq!(
            (
                fs.directory,
                fs.fsync,
                fs.create_directory,
                fs.directory_permissions
            ),
            (PathBuf::from("/var/q"), false, true, 0o700)
        );
        assert_eq!(fs.max_size, Some(1 << 30));
        // A relative directory is the working directory's, as in the Collector.
        let Extension::FileStorage(fs) = extension("  file_storage:\n    directory: queue\n")
        else {
            panic!("a file_storage");
        };
        assert_eq!(fs.directory, std::env::current_dir().unwrap().join("queue"));
        for (yaml, says) in [
            (
                "    directory_permissions: \"0999\"\n",
                "not a permission mode",
            ),
            ("    max_size: 1000\n", "extensions.file_storage.max_size"),
            ("    sync: true\n", "sync"),
            ("    write_delay: 1m\n", "longer than 10s"),
        ] {
            let err = parse(&format!("  file_storage:\n{yaml}")).unwrap_err();
            assert!(err.contains(says), "{yaml}: {err}");
        }
    }

    #[test]
    fn a_sending_queue_storage_names_an_enabled_file_storage() {
        let config = |storage: &str, extensions: &str, enabled: &str| {
            Config::from_yaml(
                &format!(
                    "extensions:\n{extensions}receivers:\n  otlp:\n    protocols:\n      \
                     grpc:\nexporters:\n  otlp:\n    endpoint: http://c:4317\n    \
                     sending_queue:\n{storage}service:\n  extensions: [{enabled}]\n  \
                     pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp]\n"
                ),
                "t.yaml",
            )
            .map_err(|e| e.to_string())
        };
        let fs = "  file_storage/q:\n    directory: /var/q\n  bearertokenauth:\n    token: t\n";
        let ok = config("      storage: file_storage/q\n", fs, "file_storage/q").unwrap();
        let crate::config::Exporter::Otlp(otlp) =
            ok.exporters.by_id.values().next().expect("one exporter")
        else {
            panic!("otlp");
        };
        assert_eq!(
            otlp.sending_queue.storage.as_ref().map(ToString::to_string),
            Some("file_storage/q".to_string())
        );
        for (storage, enabled, says) in [
            (
                "      storage: file_storage/q\n",
                "bearertokenauth",
                "defined but not enabled",
            ),
            (
                "      storage: bearertokenauth\n",
                "bearertokenauth",
                "not a storage extension",
            ),
            (
                "      storage: file_storage/x\n",
                "file_storage/q",
                "is not defined",
            ),
            (
                "      storage: file_storage/q\n      enabled: false\n",
                "file_storage/q",
                "turns the queue off",
            ),
            (
                "      drop_oldest_on_overflow: true\n",
                "file_storage/q",
                "set `block_on_overflow: false` to drop",
            ),
        ] {
            let err = config(storage, fs, enabled).unwrap_err();
            assert!(err.contains(says), "{storage}: {err}");
        }
        assert!(config(
            "      block_on_overflow: false\n      drop_oldest_on_overflow: true\n",
            fs,
            "file_storage/q"
        )
        .is_ok());
    }

    #[test]
    fn other_extension_types_are_refused_as_before() {
        let err = parse("  oauth2client:\n").unwrap_err();
        assert!(
            err.contains("extensions.oauth2client: extension type `oauth2client` is not supported"),
            "{err}"
        );
        assert!(err.contains("`health_check`"), "{err}");
        assert_eq!(
            extension("  pprof:\n    endpoint: localhost:1777\n"),
            Extension::Unserved("pprof".to_string())
        );
        assert_eq!(
            extension("  zpages:\n"),
            Extension::Unserved("zpages".to_string())
        );
    }

    #[test]
    fn health_check_takes_the_collectors_legacy_keys() {
        let Extension::HealthCheck(defaults) = extension("  health_check:\n") else {
            panic!("a health check");
        };
        assert_eq!(defaults.endpoint.to_string(), HEALTH_CHECK_ENDPOINT_DEFAULT);
        assert_eq!(defaults.path, "/");
        assert!(defaults.answers("/") && defaults.answers("/anything"));
        let Extension::HealthCheck(custom) = extension(
            "  health_check:\n    endpoint: 0.0.0.0:13134\n    path: /health/status\n    \
             response_body: {healthy: up}\n    check_collector_pipeline: {enabled: true}\n",
        ) else {
            panic!("a health check");
        };
        assert_eq!(custom.path, "/health/status");
        assert!(custom.answers("/health/status") && !custom.answers("/health/status/x"));
        assert_eq!(
            custom.response_body,
            Some(ResponseBody {
                healthy: "up".to_string(),
                unhealthy: String::new()
            })
        );
        let err = parse("  health_check:\n    path: health\n").unwrap_err();
        assert!(
            err.contains("health_check.path: `health` must start with `/`"),
            "{err}"
        );
        let err = parse("  health_check:\n    tls: {cert_file: a.pem}\n").unwrap_err();
        assert!(err.contains("tls"), "{err}");
        let err = parse("  health_check:\n    use_v2: true\n").unwrap_err();
        assert!(err.contains("use_v2"), "{err}");
    }

    #[test]
    fn a_health_check_is_no_authenticator() {
        let err = Config::from_yaml(
            "extensions:\n  health_check:\nreceivers:\n  otlp:\n    protocols:\n      grpc:\n        \
             auth: {authenticator: health_check}\nexporters:\n  debug:\nservice:\n  \
             extensions: [health_check]\n  pipelines:\n    traces: {receivers: [otlp], \
             exporters: [debug]}\n",
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`health_check` is not an authenticator"),
            "{err}"
        );
    }
}
