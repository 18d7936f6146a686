//! `receivers`: the OTLP receiver (`otlp`, `otlp/NAME`) with the Collector's keys and defaults.
//!
//! ```yaml
//! receivers:
//!   otlp:
//!     protocols:
//!       grpc:                       # present, even empty: enabled with defaults
//!         endpoint: 0.0.0.0:4317
//!         auth:                     # an enabled extension (extensions.rs); also under http
//!           authenticator: bearertokenauth
//!         keepalive:                # configgrpc's keys; 0 means unbounded where gRPC says so
//!           server_parameters:
//!             max_connection_idle: 5m       # gRPC: unbounded; tailgate bounds it
//!             max_connection_age: 0s
//!             max_connection_age_grace: 0s
//!             time: 2h
//!             timeout: 20s
//!           enforcement_policy:
//!             min_time: 5m
//!             permit_without_stream: false
//!       http:
//!         endpoint: 0.0.0.0:4318
//!         read_header_timeout: 10s  # confighttp's keys; each above 0, at most a day
//!         read_timeout: 60s         # the whole body (the head has its own)
//!         write_timeout: 30s
//!         idle_timeout: 120s
//!         tls:                      # configtls's server keys (config/tls.rs)
//!           cert_file: server.pem
//!           key_file: server-key.pem
//!           client_ca_file: ca.pem  # mTLS: client certificates required and verified
//!           reload_interval: 1h     # rotated files are picked up without a restart
//! ```
//!
//! Where the Collector leaves a limit unbounded (`max_concurrent_streams: 0`), tailgate sets a
//! default and a ceiling: every buffer a client can make the gateway fill has a stated bound,
//! and every connection a bound in time (docs/OPERATIONS.md, "What a hostile client meets").

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;

use super::component::{in_range, Ctx, RawComponent, RawComponents};
use super::error::{ConfigError, ConfigErrorKind};
use super::exporters::{check_headers, RawHeaders};
use super::extensions::check_auth;
use super::locate::Target;
use super::processors::duration_at_most;
use super::scalar::{present, Dur, UInt};
use super::tls::{check_server, RawTls, TlsServerSettings};
use super::values::{ComponentId, Endpoint, KeyPath};
use crate::ingest::http::HttpTimeouts;
use crate::ingest::keepalive::{Keepalive, TIME_MIN};

/// Receiver types tailgate has.
pub const RECEIVER_KINDS: &[&str] = &["otlp"];

/// `protocols.grpc.endpoint` when not given.
pub const GRPC_ENDPOINT_DEFAULT: &str = "0.0.0.0:4317";
/// `protocols.http.endpoint` when not given.
pub const HTTP_ENDPOINT_DEFAULT: &str = "0.0.0.0:4318";
/// `max_recv_msg_size_mib` when not given: gRPC's default, as in the Collector.
pub const MAX_RECV_MSG_SIZE_MIB_DEFAULT: u32 = 4;
/// The largest `max_recv_msg_size_mib`: a request is held whole while it is scanned, so this
/// bounds one request's memory.
pub const MAX_RECV_MSG_SIZE_MIB_MAX: u32 = 1024;
/// `max_concurrent_streams` when not given (the Collector's 0 means unlimited).
pub const MAX_CONCURRENT_STREAMS_DEFAULT: u32 = 100;
/// The largest `max_concurrent_streams`: with `max_recv_msg_size_mib`, it bounds what one
/// connection can make the gateway buffer (streams × message size).
pub const MAX_CONCURRENT_STREAMS_MAX: u32 = 1024;
/// The names `compression_algorithms` takes: the Collector's, every one of which tailgate reads
/// (`""`: a body with no `Content-Encoding`, or `identity`).
pub const COMPRESSION_ALGORITHMS: [&str; 8] = [
    "",
    "gzip",
    "zstd",
    "zlib",
    "deflate",
    "snappy",
    "x-snappy-framed",
    "lz4",
];

/// `max_request_body_size` when not given: 20 MiB, the Collector's default.
pub const MAX_REQUEST_BODY_SIZE_DEFAULT: u64 = 20 * 1024 * 1024;
/// The largest `max_request_body_size` (1 GiB), for the same reason as the gRPC bound.
pub const MAX_REQUEST_BODY_SIZE_MAX: u64 = 1024 * 1024 * 1024;
/// The longest timeout any receiver key accepts: every connection is bounded in time.
pub const RECEIVER_TIMEOUT_MAX: Duration = Duration::from_secs(24 * 3600);

/// The `receivers` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receivers {
    /// Every receiver defined, by id.
    pub by_id: BTreeMap<ComponentId, Receiver>,
}

impl Receivers {
    /// The receiver with this id.
    pub fn get(&self, id: &ComponentId) -> Option<&Receiver> {
        self.by_id.get(id)
    }
}

/// One receiver's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receiver {
    /// `otlp`: OTLP over gRPC and/or HTTP.
    Otlp(OtlpReceiver),
}

/// The OTLP receiver: at least one of its protocols is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpReceiver {
    /// `protocols.grpc`, when enabled.
    pub grpc: Option<GrpcReceiver>,
    /// `protocols.http`, when enabled.
    pub http: Option<HttpReceiver>,
}

/// `protocols.grpc`: OTLP/gRPC over HTTP/2, over TCP or TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcReceiver {
    /// Where to listen (default `0.0.0.0:4317`).
    pub endpoint: Endpoint,
    /// `auth.authenticator`: the extension every call's credentials are checked with.
    pub auth: Option<ComponentId>,
    /// The largest request message accepted, in MiB (default 4, at most
    /// `MAX_RECV_MSG_SIZE_MIB_MAX`).
    pub max_recv_msg_size_mib: u32,
    /// HTTP/2 streams one connection may have open (default 100, at most
    /// `MAX_CONCURRENT_STREAMS_MAX`).
    pub max_concurrent_streams: u32,
    /// `keepalive.server_parameters` and `keepalive.enforcement_policy`.
    pub keepalive: Keepalive,
    /// `tls`: TLS (and mTLS with `client_ca_file`); `None`: plaintext.
    pub tls: Option<TlsServerSettings>,
    /// `include_metadata`: the request's headers go with its data as client metadata (see
    /// `crate::metadata`).
    pub include_metadata: bool,
}

/// `protocols.http`: OTLP/HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReceiver {
    /// Where to listen (default `0.0.0.0:4318`).
    pub endpoint: Endpoint,
    /// `auth.authenticator`: the extension every request's credentials are checked with.
    pub auth: Option<ComponentId>,
    /// The largest request body accepted, in bytes (default 20 MiB, at most
    /// `MAX_REQUEST_BODY_SIZE_MAX`).
    pub max_request_body_size: u64,
    /// The path traces are posted to (default `/v1/traces`).
    pub traces_url_path: String,
    /// The path metrics are posted to (default `/v1/metrics`).
    pub metrics_url_path: String,
    /// The path logs are posted to (default `/v1/logs`).
    pub logs_url_path: String,
    /// `compression_algorithms`: the `Content-Encoding`s read, as named there (`""`: none);
    /// `None`: every one tailgate reads, as the Collector's default lists them all.
    pub compression_algorithms: Option<Vec<String>>,
    /// `cors`: answers for browsers posting from other origins; `None`: off (no origin given).
    pub cors: Option<Cors>,
    /// The connection's timeouts.
    pub timeouts: HttpTimeouts,
    /// `tls`: TLS (and mTLS with `client_ca_file`); `None`: plaintext.
    pub tls: Option<TlsServerSettings>,
    /// Whether a connection is kept open for the next request (default on): off with
    /// `keepalive: {enabled: false}` or `keep_alives_enabled: false`.
    pub keep_alives: bool,
    /// `response_headers`: sent on every response (by name, in byte order).
    pub response_headers: Vec<(String, String)>,
    /// `include_metadata`: the request's headers go with its data as client metadata (see
    /// `crate::metadata`).
    pub include_metadata: bool,
}

/// `protocols.http.cors`, as confighttp reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Origins allowed, as written: `*` for any, or with one `*` standing for any run of
    /// characters (`https://*.example.com`).
    pub allowed_origins: Vec<String>,
    /// Request headers allowed beyond those always allowed; `*` for any.
    pub allowed_headers: Vec<String>,
    /// Response headers a page may read (`Access-Control-Expose-Headers`), as written.
    pub exposed_headers: Vec<String>,
    /// `Access-Control-Max-Age`, in seconds.
    pub max_age: Option<u64>,
}

pub(crate) enum RawReceiver {
    Otlp(Box<RawOtlpReceiver>),
    Unknown,
}

impl RawComponent for RawReceiver {
    fn from_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        match kind {
            "otlp" => Ok(RawReceiver::Otlp(Box::new(
                Option::<RawOtlpReceiver>::deserialize(d)?.unwrap_or_default(),
            ))),
            _ => {
                IgnoredAny::deserialize(d)?;
                Ok(RawReceiver::Unknown)
            }
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawOtlpReceiver {
    protocols: Option<RawProtocols>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawProtocols {
    #[serde(deserialize_with = "present")]
    grpc: Option<RawGrpc>,
    #[serde(deserialize_with = "present")]
    http: Option<RawHttp>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawGrpc {
    /// A key written with no value is `Some("")`, refused: the Collector then listens on a
    /// random port of every interface.
    #[serde(deserialize_with = "present")]
    endpoint: Option<String>,
    max_recv_msg_size_mib: Option<UInt>,
    max_concurrent_streams: Option<UInt>,
    transport: Option<String>,
    keepalive: Option<RawKeepalive>,
    tls: Option<RawTls>,
    auth: Option<RawAuth>,
    include_metadata: Option<bool>,
    middlewares: Option<Vec<RawMiddleware>>,
    /// configgrpc's buffer sizes for grpc-go's transport: accepted, so the Collector's
    /// configurations load, with no effect (the receive path reads through io_uring into
    /// buffers of its own; docs/CONFIGURATION.md).
    #[serde(rename = "read_buffer_size")]
    _read_buffer_size: Option<UInt>,
    #[serde(rename = "write_buffer_size")]
    _write_buffer_size: Option<UInt>,
}

/// `keepalive`, as gRPC and the Collector's configgrpc spell it.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawKeepalive {
    server_parameters: Option<RawServerParameters>,
    enforcement_policy: Option<RawEnforcementPolicy>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawServerParameters {
    max_connection_idle: Option<Dur>,
    max_connection_age: Option<Dur>,
    max_connection_age_grace: Option<Dur>,
    time: Option<Dur>,
    timeout: Option<Dur>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawEnforcementPolicy {
    min_time: Option<Dur>,
    permit_without_stream: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    /// A key written with no value is `Some("")`, refused: the Collector then listens on a
    /// random port of every interface.
    #[serde(deserialize_with = "present")]
    endpoint: Option<String>,
    max_request_body_size: Option<UInt>,
    traces_url_path: Option<String>,
    metrics_url_path: Option<String>,
    logs_url_path: Option<String>,
    compression_algorithms: Option<Vec<String>>,
    read_timeout: Option<Dur>,
    read_header_timeout: Option<Dur>,
    write_timeout: Option<Dur>,
    idle_timeout: Option<Dur>,
    keep_alives_enabled: Option<bool>,
    keepalive: Option<RawHttpKeepalive>,
    response_headers: Option<RawHeaders>,
    cors: Option<RawCors>,
    tls: Option<RawTls>,
    auth: Option<RawAuth>,
    include_metadata: Option<bool>,
    middlewares: Option<Vec<RawMiddleware>>,
    /// confignet's transport, squashed into confighttp's server settings: `tcp` only.
    transport: Option<String>,
}

/// configmiddleware's entry: the id of a middleware extension.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawMiddleware {
    id: String,
}

/// `middlewares`: the Collector's middleware extensions wrap a receiver's request handling with
/// code of their own, which tailgate cannot host; an empty list is what no key says.
fn check_middlewares(
    middlewares: Option<&[RawMiddleware]>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    let Some(first) = middlewares.and_then(<[_]>::first) else {
        return Ok(());
    };
    Err(ctx.error(
        &path.key("middlewares"),
        Target::Value,
        ConfigErrorKind::Unsupported(format!(
            "middleware extensions (`{}`) are not supported: they wrap the Collector's request \
             handling with Go code of their own, which tailgate does not run; tailgate's \
             receivers have their own limits (the memory budget, `max_request_body_size`, \
             `max_concurrent_streams`) and authenticators (`auth`); remove the entry",
            first.id
        )),
    ))
}

/// confighttp's `keepalive` section (v0.160.0 on), which replaces `idle_timeout` and
/// `keep_alives_enabled`: an optional section, off with `enabled: false`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawHttpKeepalive {
    enabled: Option<bool>,
    idle_timeout: Option<Dur>,
}

/// `auth: {authenticator: NAME}`, naming an authenticator extension.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAuth {
    pub(crate) authenticator: Option<String>,
    /// confighttp's query parameters handed to the authenticator; bearertokenauth and
    /// basicauth read headers only.
    pub(crate) request_params: Option<Vec<String>>,
}

/// `cors`, for browsers posting OTLP/HTTP.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawCors {
    allowed_origins: Option<Vec<String>>,
    allowed_headers: Option<Vec<String>>,
    exposed_headers: Option<Vec<String>>,
    max_age: Option<UInt>,
}

pub(crate) fn auth_unsupported(ctx: &Ctx<'_>, path: &KeyPath, auth: &RawAuth) -> ConfigError {
    let params = auth.request_params.as_ref().map_or(0, Vec::len);
    ctx.unsupported(
        &path.key("auth").key("request_params"),
        format!(
            "request parameters are not handed to authenticators ({params} given): \
             bearertokenauth and basicauth read headers only; remove `request_params`"
        ),
    )
}

pub(crate) fn check(
    raw: RawComponents<RawReceiver>,
    ctx: &Ctx<'_>,
) -> Result<Receivers, ConfigError> {
    let section = KeyPath::root().key("receivers");
    let mut by_id = BTreeMap::new();
    for (key, raw) in raw.0 {
        let id = ctx.component_id(&section, &key)?;
        let path = section.key(key.as_str());
        let receiver = match raw {
            RawReceiver::Otlp(otlp) => Receiver::Otlp(check_otlp(*otlp, &path, ctx)?),
            RawReceiver::Unknown => {
                return Err(ctx.error(
                    &path,
                    Target::Key,
                    ConfigErrorKind::UnknownComponent {
                        section: "receiver",
                        kind: id.kind,
                        supported: RECEIVER_KINDS,
                    },
                ))
            }
        };
        by_id.insert(id, receiver);
    }
    Ok(Receivers { by_id })
}

fn check_otlp(
    raw: RawOtlpReceiver,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<OtlpReceiver, ConfigError> {
    let Some(protocols) = raw.protocols else {
        return Err(ctx.missing(path, "protocols"));
    };
    let path = path.key("protocols");
    if protocols.grpc.is_none() && protocols.http.is_none() {
        return Err(ctx.invalid(
            &path,
            "enable at least one protocol: `grpc:`, `http:` or both",
        ));
    }
    let grpc = match protocols.grpc {
        Some(grpc) => Some(check_grpc(grpc, &path.key("grpc"), ctx)?),
        None => None,
    };
    let http = match protocols.http {
        Some(http) => Some(check_http(http, &path.key("http"), ctx)?),
        None => None,
    };
    Ok(OtlpReceiver { grpc, http })
}

/// Parses a listen endpoint, or the default.
pub(crate) fn listen_endpoint(
    ctx: &Ctx<'_>,
    path: &KeyPath,
    raw: Option<String>,
    default: &str,
) -> Result<Endpoint, ConfigError> {
    let text = raw.unwrap_or_else(|| default.to_string());
    if text.trim().is_empty() {
        return Err(ctx.invalid(
            path,
            format!(
                "is empty; write host:port, or leave the key out for the default \
                 ({default}) (a Collector receiver given no value listens on a random port of \
                 every interface)"
            ),
        ));
    }
    Endpoint::parse(&text).map_err(|why| ctx.invalid(path, why))
}

fn check_grpc(raw: RawGrpc, path: &KeyPath, ctx: &Ctx<'_>) -> Result<GrpcReceiver, ConfigError> {
    check_middlewares(raw.middlewares.as_deref(), path, ctx)?;
    if let Some(auth) = &raw.auth {
        if auth.request_params.is_some() {
            return Err(auth_unsupported(ctx, path, auth));
        }
    }
    if let Some(transport) = raw.transport.as_deref() {
        if transport != "tcp" {
            return Err(ctx.error(
                &path.key("transport"),
                Target::Value,
                ConfigErrorKind::Unsupported(format!(
                    "transport `{transport}` is not supported; tailgate serves gRPC over `tcp`"
                )),
            ));
        }
    }
    let endpoint = listen_endpoint(
        ctx,
        &path.key("endpoint"),
        raw.endpoint,
        GRPC_ENDPOINT_DEFAULT,
    )?;
    let max_recv_msg_size_mib = match raw.max_recv_msg_size_mib {
        Some(UInt(v)) => in_range(
            ctx,
            &path.key("max_recv_msg_size_mib"),
            v,
            1,
            u64::from(MAX_RECV_MSG_SIZE_MIB_MAX),
        )? as u32,
        None => MAX_RECV_MSG_SIZE_MIB_DEFAULT,
    };
    let max_concurrent_streams = match raw.max_concurrent_streams {
        Some(UInt(v)) => in_range(
            ctx,
            &path.key("max_concurrent_streams"),
            v,
            1,
            u64::from(MAX_CONCURRENT_STREAMS_MAX),
        )? as u32,
        None => MAX_CONCURRENT_STREAMS_DEFAULT,
    };
    let keepalive = check_keepalive(
        raw.keepalive.unwrap_or_default(),
        &path.key("keepalive"),
        ctx,
    )?;
    let tls = match raw.tls {
        Some(tls) => Some(check_server(tls, &path.key("tls"), ctx)?),
        None => None,
    };
    Ok(GrpcReceiver {
        endpoint,
        auth: check_auth(raw.auth, path, ctx)?,
        max_recv_msg_size_mib,
        max_concurrent_streams,
        keepalive,
        tls,
        include_metadata: raw.include_metadata.unwrap_or(false),
    })
}

/// A timeout key: above zero, at most [`RECEIVER_TIMEOUT_MAX`].
fn timeout(
    ctx: &Ctx<'_>,
    path: &KeyPath,
    raw: Option<Dur>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match raw {
        None => Ok(default),
        Some(Dur(d)) if d.is_zero() => Err(ctx.invalid(
            path,
            "must be above 0: every connection is bounded in time (give a long duration instead)",
        )),
        Some(Dur(d)) => duration_at_most(ctx, path, d, RECEIVER_TIMEOUT_MAX),
    }
}

/// A keepalive duration that gRPC reads as "unbounded" when 0 or absent.
fn optional_timeout(
    ctx: &Ctx<'_>,
    path: &KeyPath,
    raw: Option<Dur>,
    default: Option<Duration>,
) -> Result<Option<Duration>, ConfigError> {
    match raw {
        None => Ok(default),
        Some(Dur(d)) if d.is_zero() => Ok(None),
        Some(Dur(d)) => duration_at_most(ctx, path, d, RECEIVER_TIMEOUT_MAX).map(Some),
    }
}

fn check_keepalive(
    raw: RawKeepalive,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Keepalive, ConfigError> {
    let defaults = Keepalive::default();
    let server = raw.server_parameters.unwrap_or_default();
    let sp = path.key("server_parameters");
    let policy = raw.enforcement_policy.unwrap_or_default();
    let ep = path.key("enforcement_policy");
    let time = timeout(ctx, &sp.key("time"), server.time, defaults.time)?.max(TIME_MIN);
    Ok(Keepalive {
        max_connection_idle: optional_timeout(
            ctx,
            &sp.key("max_connection_idle"),
            server.max_connection_idle,
            defaults.max_connection_idle,
        )?,
        max_connection_age: optional_timeout(
            ctx,
            &sp.key("max_connection_age"),
            server.max_connection_age,
            defaults.max_connection_age,
        )?,
        max_connection_age_grace: optional_timeout(
            ctx,
            &sp.key("max_connection_age_grace"),
            server.max_connection_age_grace,
            defaults.max_connection_age_grace,
        )?,
        time,
        timeout: timeout(ctx, &sp.key("timeout"), server.timeout, defaults.timeout)?,
        min_time: match policy.min_time {
            None => defaults.min_time,
            Some(Dur(d)) => duration_at_most(ctx, &ep.key("min_time"), d, RECEIVER_TIMEOUT_MAX)?,
        },
        permit_without_stream: policy
            .permit_without_stream
            .unwrap_or(defaults.permit_without_stream),
    })
}

fn check_http(raw: RawHttp, path: &KeyPath, ctx: &Ctx<'_>) -> Result<HttpReceiver, ConfigError> {
    check_middlewares(raw.middlewares.as_deref(), path, ctx)?;
    if let Some(auth) = &raw.auth {
        if auth.request_params.is_some() {
            return Err(auth_unsupported(ctx, path, auth));
        }
    }
    if let Some(transport) = raw.transport.as_deref().filter(|t| *t != "tcp") {
        return Err(ctx.error(
            &path.key("transport"),
            Target::Value,
            ConfigErrorKind::Unsupported(format!(
                "transport `{transport}` is not supported; tailgate serves HTTP over `tcp`"
            )),
        ));
    }
    let keep_alives = check_keep_alives(&raw, path, ctx)?;
    let cors = match raw.cors {
        Some(cors) => check_cors(cors, &path.key("cors"), ctx)?,
        None => None,
    };
    let endpoint = listen_endpoint(
        ctx,
        &path.key("endpoint"),
        raw.endpoint,
        HTTP_ENDPOINT_DEFAULT,
    )?;
    let max_request_body_size = match raw.max_request_body_size {
        Some(UInt(v)) => in_range(
            ctx,
            &path.key("max_request_body_size"),
            v,
            1,
            MAX_REQUEST_BODY_SIZE_MAX,
        )?,
        None => MAX_REQUEST_BODY_SIZE_DEFAULT,
    };
    let url_path = |key: &str, raw: Option<String>, default: &str| {
        let p = raw.unwrap_or_else(|| default.to_string());
        if p.is_empty()
            || p.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            return Err(ctx.invalid(
                &path.key(key),
                format!("`{p}` is not a URL path (no spaces, `?` or `#`)"),
            ));
        }
        // The Collector adds a missing leading `/`.
        Ok(if p.starts_with('/') {
            p
        } else {
            format!("/{p}")
        })
    };
    let traces_url_path = url_path("traces_url_path", raw.traces_url_path, "/v1/traces")?;
    let metrics_url_path = url_path("metrics_url_path", raw.metrics_url_path, "/v1/metrics")?;
    let logs_url_path = url_path("logs_url_path", raw.logs_url_path, "/v1/logs")?;
    let pairs = [
        (
            "metrics_url_path",
            &metrics_url_path,
            "traces_url_path",
            &traces_url_path,
        ),
        (
            "logs_url_path",
            &logs_url_path,
            "traces_url_path",
            &traces_url_path,
        ),
        (
            "logs_url_path",
            &logs_url_path,
            "metrics_url_path",
            &metrics_url_path,
        ),
    ];
    for (key, value, other_key, other) in pairs {
        if value == other {
            return Err(ctx.invalid(
                &path.key(key),
                format!("`{value}` is also `{other_key}`; each signal needs its own path"),
            ));
        }
    }
    let compression_algorithms = match raw.compression_algorithms {
        None => None,
        Some(names) => {
            let key = path.key("compression_algorithms");
            let mut checked: Vec<String> = Vec::with_capacity(names.len());
            for name in names {
                if !COMPRESSION_ALGORITHMS.contains(&name.as_str()) {
                    return Err(ctx.invalid(
                        &key,
                        format!(
                            "`{name}` is not a compression algorithm; use any of \"\" (no \
                             compression), gzip, zstd, zlib, deflate, snappy, x-snappy-framed, lz4"
                        ),
                    ));
                }
                if !checked.contains(&name) {
                    checked.push(name);
                }
            }
            Some(checked)
        }
    };
    let defaults = HttpTimeouts::default();
    let timeouts = HttpTimeouts {
        read_header: timeout(
            ctx,
            &path.key("read_header_timeout"),
            raw.read_header_timeout,
            defaults.read_header,
        )?,
        read: timeout(
            ctx,
            &path.key("read_timeout"),
            raw.read_timeout,
            defaults.read,
        )?,
        write: timeout(
            ctx,
            &path.key("write_timeout"),
            raw.write_timeout,
            defaults.write,
        )?,
        idle: match raw.keepalive.as_ref().and_then(|k| k.idle_timeout) {
            Some(idle) => timeout(
                ctx,
                &path.key("keepalive").key("idle_timeout"),
                Some(idle),
                defaults.idle,
            )?,
            None => timeout(
                ctx,
                &path.key("idle_timeout"),
                raw.idle_timeout,
                defaults.idle,
            )?,
        },
    };
    let response_headers = check_response_headers(raw.response_headers, path, ctx)?;
    let tls = match raw.tls {
        Some(tls) => Some(check_server(tls, &path.key("tls"), ctx)?),
        None => None,
    };
    Ok(HttpReceiver {
        endpoint,
        auth: check_auth(raw.auth, path, ctx)?,
        max_request_body_size,
        traces_url_path,
        metrics_url_path,
        logs_url_path,
        compression_algorithms,
        cors,
        timeouts,
        tls,
        keep_alives,
        response_headers,
        include_metadata: raw.include_metadata.unwrap_or(false),
    })
}

/// Whether keep-alives are on, as confighttp folds its two spellings: the `keepalive` section
/// (present: on unless `enabled: false`) or the deprecated `keep_alives_enabled`, not both.
fn check_keep_alives(raw: &RawHttp, path: &KeyPath, ctx: &Ctx<'_>) -> Result<bool, ConfigError> {
    let Some(section) = &raw.keepalive else {
        return Ok(raw.keep_alives_enabled.unwrap_or(true));
    };
    let deprecated = [
        ("idle_timeout", raw.idle_timeout.is_some()),
        (
            "keep_alives_enabled",
            raw.keep_alives_enabled == Some(false),
        ),
    ];
    if let Some((key, _)) = deprecated.iter().find(|(_, given)| *given) {
        return Err(ctx.invalid(
            &path.key(*key),
            "cannot be used alongside the `keepalive` section (the Collector refuses the mix \
             too); move it into `keepalive`",
        ));
    }
    Ok(section.enabled != Some(false))
}

/// The most `response_headers`.
const RESPONSE_HEADERS_MAX: usize = 64;
/// Headers tailgate writes itself on a response (framing, the answer's own, CORS), which
/// `response_headers` may not set.
const RESPONSE_HEADERS_OWN: [&str; 11] = [
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "trailer",
    "retry-after",
    "allow",
    "www-authenticate",
    "vary",
];

/// `response_headers`: a map or a list of `{name, value}`, as exporter `headers` are.
fn check_response_headers(
    raw: Option<RawHeaders>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let path = path.key("response_headers");
    let headers = check_headers(raw, &path, ctx)?;
    if headers.len() > RESPONSE_HEADERS_MAX {
        return Err(ctx.invalid(
            &path,
            format!("{} headers; at most {RESPONSE_HEADERS_MAX}", headers.len()),
        ));
    }
    let mut seen: Vec<String> = Vec::with_capacity(headers.len());
    for name in headers.keys() {
        let lower = name.to_ascii_lowercase();
        if RESPONSE_HEADERS_OWN.contains(&lower.as_str()) || lower.starts_with("access-control-") {
            return Err(ctx.error(
                &path.key(name.as_str()),
                Target::Key,
                ConfigErrorKind::InvalidValue(format!(
                    "`{name}` is a header the receiver writes itself"
                )),
            ));
        }
        if seen.contains(&lower) {
            return Err(ctx.invalid(&path, format!("`{name}` is given twice")));
        }
        seen.push(lower);
    }
    Ok(headers.into_iter().collect())
}

/// The most origins `cors.allowed_origins` takes (each request's origin is compared with them).
const CORS_ORIGINS_MAX: usize = 256;
/// The most headers `cors.exposed_headers` takes (they are sent on every answer to a page).
const CORS_EXPOSED_MAX: usize = 64;
/// The longest `cors.max_age`: browsers cap it lower anyway (Chromium at 2 hours).
const CORS_MAX_AGE_MAX: u64 = 86_400;

/// `cors`: `None` when it names no origin, as the Collector then ignores it (it warns when
/// headers were given; so does the plan).
fn check_cors(raw: RawCors, path: &KeyPath, ctx: &Ctx<'_>) -> Result<Option<Cors>, ConfigError> {
    let origins = raw.allowed_origins.unwrap_or_default();
    let headers = raw.allowed_headers.unwrap_or_default();
    if origins.len() > CORS_ORIGINS_MAX {
        return Err(ctx.invalid(
            &path.key("allowed_origins"),
            format!(
                "{} origins; at most {CORS_ORIGINS_MAX} (use a wildcard such as \
                 `https://*.example.com`)",
                origins.len()
            ),
        ));
    }
    for origin in &origins {
        if origin != "*" && origin.matches('*').count() > 1 {
            return Err(ctx.invalid(
                &path.key("allowed_origins"),
                format!("`{origin}` has more than one `*`; an origin takes one wildcard"),
            ));
        }
    }
    let exposed = raw.exposed_headers.unwrap_or_default();
    if exposed.len() > CORS_EXPOSED_MAX {
        return Err(ctx.invalid(
            &path.key("exposed_headers"),
            format!("{} headers; at most {CORS_EXPOSED_MAX}", exposed.len()),
        ));
    }
    if let Some(bad) = exposed.iter().find(|h| !super::values::is_header_name(h)) {
        return Err(ctx.invalid(
            &path.key("exposed_headers"),
            format!("`{bad}` is not an HTTP header name"),
        ));
    }
    let max_age = match raw.max_age {
        Some(UInt(seconds)) => Some(in_range(
            ctx,
            &path.key("max_age"),
            seconds,
            0,
            CORS_MAX_AGE_MAX,
        )?),
        None => None,
    };
    if origins.is_empty() {
        if !headers.is_empty() {
            tracing::warn!(
                "{}: allowed_headers without allowed_origins: CORS stays off, as in the Collector",
                path
            );
        }
        return Ok(None);
    }
    Ok(Some(Cors {
        allowed_origins: origins,
        allowed_headers: headers,
        exposed_headers: exposed,
        max_age,
    }))
}
