//! Exporter settings: plain structs with the Collector's field names and defaults, which the
//! config layer fills from `exporters.otlp/NAME`, `exporters.otlphttp/NAME` and
//! `exporters.debug`.
//!
//! Checking what can be checked without the network happens here, once, when an exporter is
//! built ([`super::Exporter::new`]): endpoints parse, header names and values are legal, the
//! queue has room and consumers. Transport errors come later, as [`super::SendError`]s.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};

use crate::tls::ClientTls;

use super::proxy::ProxyUrl;
use super::retry::{BACKOFF_MULTIPLIER_DEFAULT, BACKOFF_RANDOMIZATION_DEFAULT};
use crate::auth::{ClientAuth, HeaderSetter};
use tailgate_wire::Signal;

/// Body compression, as the Collector's `compression` key spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `none`: bodies are sent as they are.
    None,
    /// `gzip`.
    Gzip,
    /// `zstd`.
    Zstd,
    /// `snappy`, in snappy's framing format.
    Snappy,
    /// `zlib`: a zlib stream (RFC 1950), as the Collector's HTTP client writes it.
    Zlib,
    /// `deflate`: the same zlib stream under HTTP's name for it (RFC 9110's `deflate` is
    /// zlib-wrapped), as the Collector's HTTP client writes it.
    Deflate,
    /// `lz4`: one LZ4 frame (the frame format, not a bare block), as the Collector's HTTP client
    /// writes it.
    Lz4,
}

impl Compression {
    /// The token in `grpc-encoding` and `Content-Encoding`; `None` has none.
    pub fn token(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
            Compression::Snappy => Some("snappy"),
            Compression::Zlib => Some("zlib"),
            Compression::Deflate => Some("deflate"),
            Compression::Lz4 => Some("lz4"),
        }
    }
}

/// `retry_on_failure`: exponential backoff between attempts, as the Collector's exporter
/// helper does it (see `super::retry`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// Whether a failed attempt that may be retried is retried at all.
    pub enabled: bool,
    /// Wait before the first retry.
    pub initial_interval: Duration,
    /// Growth of the interval after each attempt (default 1.5; at least 1).
    pub multiplier: f64,
    /// Each wait is drawn from `interval × [1 − f, 1 + f]` (default 0.5; 0 to 1, 0 = no jitter).
    pub randomization_factor: f64,
    /// Cap on the backoff interval (before randomization).
    pub max_interval: Duration,
    /// Give up once a retry would start this long after the first attempt; zero means never
    /// give up, as in the Collector (shutdown's deadline still ends the attempts).
    pub max_elapsed_time: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            multiplier: BACKOFF_MULTIPLIER_DEFAULT,
            randomization_factor: BACKOFF_RANDOMIZATION_DEFAULT,
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
        }
    }
}

/// `sending_queue`. The sizes are per shard: the config layer divides a node-wide figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// Without a queue, `submit` sends in the caller's task and returns when the batch is
    /// settled.
    pub enabled: bool,
    /// Batches sent concurrently.
    pub num_consumers: usize,
    /// What the queue holds, in `sizer` units; `submit` waits while a batch does not fit.
    pub queue_size: usize,
    /// The unit of `queue_size`.
    pub sizer: QueueSizer,
    /// Whether `submit` waits for room (true) or drops a batch that does not fit, counted.
    pub block_on_overflow: bool,
    /// Without `block_on_overflow`: make room by dropping the oldest queued batches (true)
    /// rather than the new one (false, the Collector's behaviour). Either way counted.
    pub drop_oldest: bool,
    /// `storage`: keep the queue on disk; `None` keeps it in memory.
    pub storage: Option<StorageSettings>,
}

/// A persistent sending queue's place and promises (`sending_queue.storage` naming a
/// `file_storage` extension). Per exporter; each shard keeps its own directory inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// The extension's id, for logs (`file_storage/queue`).
    pub extension: String,
    /// This exporter's directory: the extension's `directory` joined with the exporter's id.
    pub directory: std::path::PathBuf,
    /// `fsync`: each write reaches the disk before the writer goes on.
    pub fsync: bool,
    /// `write_delay`: how long a batch may wait in memory before its record is written (a
    /// batch settled within it is never written); zero writes it before it counts as queued.
    pub write_delay: std::time::Duration,
    /// The disk bytes one shard's queue may hold (its share of `max_size`); `None`: bounded by
    /// `queue_size` alone.
    pub max_bytes: Option<u64>,
    /// How many shards this run has: a shard also takes over the directories of shards beyond
    /// that count, left by a run with more shards.
    pub shards: usize,
}

/// The unit a sending queue is bounded in (`sending_queue.sizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueSizer {
    /// Batches.
    #[default]
    Requests,
    /// Spans, metric data points or log records.
    Items,
    /// Encoded bytes of the batches.
    Bytes,
}

impl QueueSizer {
    /// What `batch` weighs in this unit.
    pub fn weight(self, batch: &super::Batch) -> usize {
        match self {
            QueueSizer::Requests => 1,
            QueueSizer::Items => usize::try_from(batch.items).unwrap_or(usize::MAX),
            QueueSizer::Bytes => batch.bytes.len(),
        }
    }
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            sizer: QueueSizer::Requests,
            block_on_overflow: true,
            drop_oldest: false,
            storage: None,
        }
    }
}

/// `exporters.otlp`: OTLP/gRPC.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpGrpcSettings {
    /// `host:port`, `http://host:port` or `https://host:port`.
    pub endpoint: String,
    /// TLS to the destination (`https://`, or a bare `host:port` dialled with TLS); `None`:
    /// plaintext.
    pub tls: Option<Arc<ClientTls>>,
    /// Extra request headers (`headers:`), sent on every export.
    pub headers: Vec<(String, String)>,
    /// `auth.authenticator`: the credentials every export carries.
    pub auth: Option<ClientAuth>,
    /// `auth.authenticator` naming a `headers_setter`: the headers every export carries, some
    /// from the batch's client metadata.
    pub setter: Option<Arc<HeaderSetter>>,
    /// `compression` of request bodies (default gzip).
    pub compression: Compression,
    /// `compression_params.level` (`None`: the compression's default, gzip 6 and zstd 3).
    pub compression_level: Option<i32>,
    /// Bound on one attempt: connecting, sending and reading the response.
    pub timeout: Duration,
    /// `retry_on_failure`.
    pub retry: RetrySettings,
    /// `sending_queue`.
    pub queue: QueueSettings,
    /// `keepalive`: pinging a connection that has been silent; `None`: never pinged.
    pub keepalive: Option<ClientKeepalive>,
    /// `balancer_name`: where each new connection starts among the endpoint's addresses.
    pub balancer: Balancer,
    /// `authority`: the `:authority` of every request (and the TLS server name, unless
    /// `tls.server_name_override` gives one); `None`: the endpoint's `host:port`.
    pub authority: Option<String>,
    /// `wait_for_ready`: an attempt that cannot connect keeps trying until its `timeout`
    /// instead of failing at once.
    pub wait_for_ready: bool,
    /// Each batch's client metadata sent on as request headers, every value: the tier's
    /// forwarder, so the member that owns a trace keeps each span's tenant (no `otlp`
    /// exporter's setting).
    pub pass_metadata: bool,
}

impl Default for OtlpGrpcSettings {
    fn default() -> Self {
        OtlpGrpcSettings {
            endpoint: String::new(),
            tls: None,
            headers: Vec::new(),
            auth: None,
            setter: None,
            compression: Compression::Gzip,
            compression_level: None,
            timeout: Duration::from_secs(5),
            retry: RetrySettings::default(),
            queue: QueueSettings::default(),
            keepalive: Some(ClientKeepalive::default()),
            balancer: Balancer::RoundRobin,
            authority: None,
            wait_for_ready: false,
            pass_metadata: false,
        }
    }
}

/// `keepalive` of the gRPC client, with grpc-go's meaning: after `time` without receiving
/// anything, the client pings; if nothing at all arrives within `timeout` of the ping, the
/// connection is closed (and the next attempt opens another).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKeepalive {
    /// `time`: silence before a ping; at least [`ClientKeepalive::TIME_MIN`].
    pub time: Duration,
    /// `timeout`: how long the ping's answer may take.
    pub timeout: Duration,
    /// `permit_without_stream`: ping also when no export is in flight (an idle connection).
    pub permit_without_stream: bool,
}

impl ClientKeepalive {
    /// The shortest `time`: grpc-go raises anything below it to it, and so does tailgate.
    pub const TIME_MIN: Duration = Duration::from_secs(10);
}

impl Default for ClientKeepalive {
    /// The Collector's defaults (configgrpc): 10 s and 10 s, not while idle.
    fn default() -> Self {
        ClientKeepalive {
            time: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            permit_without_stream: false,
        }
    }
}

/// `balancer_name`: how a gRPC exporter's connections use the addresses its endpoint resolves
/// to. Each shard holds one connection per exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balancer {
    /// `round_robin` (the Collector's default): each new connection starts at the next address
    /// in turn, so the shards' connections spread over every address.
    #[default]
    RoundRobin,
    /// `pick_first`: every connection goes to the first address that answers, in the
    /// resolver's order.
    PickFirst,
}

/// `encoding` of `otlphttp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `proto`: binary protobuf (`application/x-protobuf`).
    Proto,
    /// `json`: OTLP/JSON (`application/json`).
    Json,
}

/// `exporters.otlphttp`: OTLP/HTTP over HTTP/1.1.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpHttpSettings {
    /// Base URL; `/v1/traces`, `/v1/metrics` and `/v1/logs` are appended to its path.
    pub endpoint: String,
    /// TLS to the destination (`https://` URLs); `None`: plaintext.
    pub tls: Option<Arc<ClientTls>>,
    /// Full URLs that replace the base for one signal, used as given.
    pub traces_endpoint: Option<String>,
    /// `metrics_endpoint`: the full URL for metrics, instead of the base's `/v1/metrics`.
    pub metrics_endpoint: Option<String>,
    /// `logs_endpoint`: the full URL for logs, instead of the base's `/v1/logs`.
    pub logs_endpoint: Option<String>,
    /// Extra request headers (`headers:`), sent on every export.
    pub headers: Vec<(String, String)>,
    /// `auth.authenticator`: the credentials every export carries.
    pub auth: Option<ClientAuth>,
    /// `auth.authenticator` naming a `headers_setter`: the headers every export carries, some
    /// from the batch's client metadata.
    pub setter: Option<Arc<HeaderSetter>>,
    /// `compression` of request bodies (default gzip).
    pub compression: Compression,
    /// `compression_params.level` (`None`: the compression's default, gzip 6 and zstd 3).
    pub compression_level: Option<i32>,
    /// `encoding` of request bodies (default proto).
    pub encoding: Encoding,
    /// Bound on one attempt: connecting, sending and reading the response.
    pub timeout: Duration,
    /// `retry_on_failure`.
    pub retry: RetrySettings,
    /// `sending_queue`.
    pub queue: QueueSettings,
    /// `proxy_url`: the proxy every connection tunnels through; `None`: the environment's
    /// (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), if any.
    pub proxy: Option<ProxyUrl>,
    /// confighttp's `keepalive`: how connections are kept between requests.
    pub pool: HttpPool,
}

/// How an `otlphttp` exporter keeps connections between requests (per shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpPool {
    /// Off (`keepalive.enabled: false`, `disable_keep_alives`): every request says
    /// `Connection: close` and has a connection of its own.
    pub keep_alives: bool,
    /// `idle_conn_timeout`: an idle connection unused this long is closed; `None`: kept.
    pub idle_timeout: Option<Duration>,
    /// `max_idle_conns`: the most idle connections kept in all; `None`: one per consumer.
    pub max_idle: Option<usize>,
    /// `max_idle_conns_per_host`: the most kept per host; `None`: as many as `max_idle`.
    pub max_idle_per_host: Option<usize>,
}

impl Default for HttpPool {
    /// Go's transport's idle timeout (90 s), and one idle connection per consumer.
    fn default() -> Self {
        HttpPool {
            keep_alives: true,
            idle_timeout: Some(Duration::from_secs(90)),
            max_idle: None,
            max_idle_per_host: None,
        }
    }
}

impl Default for OtlpHttpSettings {
    fn default() -> Self {
        OtlpHttpSettings {
            endpoint: String::new(),
            tls: None,
            traces_endpoint: None,
            metrics_endpoint: None,
            logs_endpoint: None,
            headers: Vec::new(),
            auth: None,
            setter: None,
            compression: Compression::Gzip,
            compression_level: None,
            encoding: Encoding::Proto,
            timeout: Duration::from_secs(30),
            retry: RetrySettings::default(),
            queue: QueueSettings::default(),
            proxy: None,
            pool: HttpPool::default(),
        }
    }
}

/// `verbosity` of the debug exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// One summary line per batch.
    #[default]
    Basic,
    /// Plus one line per span, metric or log record.
    Normal,
    /// Plus resources, scopes and attributes.
    Detailed,
}

/// `exporters.debug`. It prints in the caller's task, without a queue or retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugSettings {
    /// How much of each batch is printed.
    pub verbosity: Verbosity,
    /// Batches printed in each second before sampling starts (the Collector's default 2; at
    /// least 1). Per exporter instance, so per shard: the config layer divides a node figure.
    pub sampling_initial: u64,
    /// Past `sampling_initial` in a second, one batch in this many is printed (default 1: all;
    /// at least 1).
    pub sampling_thereafter: u64,
    /// Whether it prints to standard error instead of standard output.
    pub to_stderr: bool,
}

impl Default for DebugSettings {
    fn default() -> Self {
        DebugSettings {
            verbosity: Verbosity::Basic,
            sampling_initial: 2,
            sampling_thereafter: 1,
            to_stderr: false,
        }
    }
}

/// `exporters.loadbalancing`: where the backends come from, how data is routed over them, and
/// the `otlp` settings every backend's exporter is built with.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancingSettings {
    /// What the pipeline's data is routed by.
    pub routing: super::Routing,
    /// Each backend's exporter settings; the endpoint is replaced by the backend's.
    pub otlp: OtlpGrpcSettings,
    /// Where the backends come from.
    pub backends: Backends,
    /// Which backend is this node, for the tier (`crate::tier`); `None` for an exporter.
    pub local: Option<Local>,
}

/// How a tier's node recognises itself among the members a resolver names.
#[derive(Debug, Clone, PartialEq)]
pub enum Local {
    /// The member written exactly so (a static list's entry, found at start).
    Endpoint(String),
    /// The member with this address (`tier.self`).
    Address(std::net::SocketAddr),
    /// The member at an address a gRPC receiver of this node listens on: the same address, or
    /// the same port where the receiver listens on every interface and the member's IP is one
    /// of this machine's.
    Listening(Vec<std::net::SocketAddr>),
}

impl Local {
    /// Whether `endpoint` (a member as its resolver names it) is this node.
    pub fn is(&self, endpoint: &str) -> bool {
        match self {
            Local::Endpoint(mine) => mine == endpoint,
            Local::Address(mine) => endpoint.parse::<std::net::SocketAddr>() == Ok(*mine),
            Local::Listening(listening) => endpoint
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|member| is_listening_on(listening, member)),
        }
    }
}

/// Whether a receiver listening on one of `listening` takes connections to `member`.
pub fn is_listening_on(listening: &[std::net::SocketAddr], member: std::net::SocketAddr) -> bool {
    listening.iter().any(|bound| {
        bound.port() == member.port()
            && (bound.ip() == member.ip()
                || (bound.ip().is_unspecified() && is_this_machines(member.ip())))
    })
}

/// Whether `ip` is an address of this machine: one a socket can be bound to.
fn is_this_machines(ip: std::net::IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// A load balancer's resolver.
#[derive(Debug, Clone, PartialEq)]
pub enum Backends {
    /// A fixed list of `host:port` endpoints.
    Static(Vec<String>),
    /// Every address `hostname` resolves to, on `port`, looked up every `interval` (each
    /// lookup bounded by `timeout`).
    Dns {
        /// The name looked up.
        hostname: String,
        /// The backends' port.
        port: u16,
        /// Between lookups.
        interval: Duration,
        /// The bound on one lookup.
        timeout: Duration,
    },
}

impl Backends {
    /// The most backends this resolver can name: the static list's length, or the most
    /// addresses one DNS answer is taken for.
    pub fn most(&self) -> usize {
        match self {
            Backends::Static(list) => list.len(),
            Backends::Dns { .. } => super::resolve::ADDRESSES_MAX,
        }
    }

    /// The `resolver` metric label: `static` or `dns`.
    pub fn label(&self) -> &'static str {
        match self {
            Backends::Static(_) => "static",
            Backends::Dns { .. } => "dns",
        }
    }
}

/// One configured exporter.
#[derive(Debug, Clone, PartialEq)]
pub enum ExporterSettings {
    /// `otlp`: OTLP/gRPC.
    Otlp(OtlpGrpcSettings),
    /// `otlphttp`: OTLP/HTTP.
    OtlpHttp(OtlpHttpSettings),
    /// `debug`: printed to the log.
    Debug(DebugSettings),
    /// `loadbalancing`: routed over backends by consistent hashing.
    LoadBalancing(LoadBalancingSettings),
}

/// Why exporter settings were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsError {
    /// The endpoint does not parse as a URL or `host:port`.
    Endpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An `https://` endpoint without TLS settings, or an `http://` one with them.
    TlsMismatch {
        /// The endpoint as configured.
        endpoint: String,
    },
    /// A header name or value that HTTP does not allow (a newline in a value, say).
    Header {
        /// The header's name as configured.
        name: String,
    },
    /// `sending_queue.num_consumers` or `queue_size` is 0 with the queue enabled.
    EmptyQueue,
    /// `timeout` is zero: no attempt could ever finish.
    ZeroTimeout,
    /// The persistent queue's directory cannot be used (not creatable, locked by another
    /// process, unreadable).
    Storage {
        /// The directory.
        directory: std::path::PathBuf,
        /// What the system said.
        error: String,
    },
    /// A load balancer without a backend to route to.
    NoBackends,
    /// `HTTPS_PROXY` or `HTTP_PROXY` names a proxy tailgate cannot use.
    Proxy(String),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::Endpoint { endpoint, reason } => {
                write!(f, "invalid endpoint {endpoint:?}: {reason}")
            }
            SettingsError::TlsMismatch { endpoint } => write!(
                f,
                "endpoint {endpoint:?}: https:// needs TLS settings and http:// takes none"
            ),
            SettingsError::Header { name } => write!(
                f,
                "header {name:?} cannot be sent: a name must be an HTTP token, a value printable \
                 ASCII (no line breaks, no characters beyond ASCII)"
            ),
            SettingsError::Storage { directory, error } => write!(
                f,
                "the persistent queue in {} cannot be opened: {error}",
                directory.display()
            ),
            SettingsError::EmptyQueue => write!(
                f,
                "sending_queue needs num_consumers and queue_size above 0 when enabled"
            ),
            SettingsError::ZeroTimeout => write!(f, "timeout must be above 0"),
            SettingsError::NoBackends => write!(f, "a load balancer needs at least one backend"),
            SettingsError::Proxy(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for SettingsError {}

impl QueueSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.enabled && (self.num_consumers == 0 || self.queue_size == 0) {
            return Err(SettingsError::EmptyQueue);
        }
        Ok(())
    }
}

pub(crate) fn validate_timeout(timeout: Duration) -> Result<(), SettingsError> {
    if timeout.is_zero() {
        return Err(SettingsError::ZeroTimeout);
    }
    Ok(())
}

/// Where to connect and what to call it: the parsed form of an endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub host: String,
    /// TLS to the destination; `None`: plaintext.
    pub tls: Option<Arc<ClientTls>>,
    /// `host:port` as given, for `:authority` and `Host`.
    pub authority: String,
    /// The request path, beginning with `/`.
    pub path: String,
    /// The host's addresses, resolved when connecting (shared by the clones of one target).
    pub resolver: std::rc::Rc<super::resolve::Resolver>,
    /// The HTTP proxy connections tunnel through, and its addresses; `None`: direct.
    pub proxy: Option<(ProxyUrl, std::rc::Rc<super::resolve::Resolver>)>,
}

impl Target {
    /// Sends this target's connections through `proxy`.
    pub(crate) fn via(&mut self, proxy: Option<&ProxyUrl>) {
        self.proxy = proxy.map(|proxy| {
            let resolver = super::resolve::Resolver::new(&proxy.host, proxy.port);
            (proxy.clone(), std::rc::Rc::new(resolver))
        });
    }
}

/// Parses a gRPC endpoint: `host:port` or `http://host:port`; any path is ignored, as gRPC
/// puts the method there.
pub(crate) fn grpc_target(
    endpoint: &str,
    tls: Option<&Arc<ClientTls>>,
) -> Result<Target, SettingsError> {
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_string()
    } else if tls.is_some() {
        format!("https://{endpoint}")
    } else {
        format!("http://{endpoint}")
    };
    let mut target = parse_url(endpoint, &with_scheme, tls)?;
    target.path = String::new();
    Ok(target)
}

/// The URL an OTLP/HTTP exporter posts `signal` to: the per-signal override as given, or the
/// base endpoint with `/v1/<signal>` appended to its path; `None` when it has neither (an
/// exporter given only `logs_endpoint` has no traces URL, as in the Collector).
pub(crate) fn http_target(
    settings: &OtlpHttpSettings,
    signal: Signal,
) -> Result<Option<Target>, SettingsError> {
    let overridden = match signal {
        Signal::Traces => &settings.traces_endpoint,
        Signal::Metrics => &settings.metrics_endpoint,
        Signal::Logs => &settings.logs_endpoint,
    };
    let tls = settings.tls.as_ref();
    if let Some(url) = overridden {
        return parse_url(url, url, tls).map(Some);
    }
    if settings.endpoint.is_empty() {
        return Ok(None);
    }
    let mut target = parse_url(&settings.endpoint, &settings.endpoint, tls)?;
    let base = target.path.trim_end_matches('/');
    target.path = format!("{base}/v1/{}", signal.as_str());
    Ok(Some(target))
}

fn parse_url(
    endpoint: &str,
    url: &str,
    tls: Option<&Arc<ClientTls>>,
) -> Result<Target, SettingsError> {
    let bad = |reason| SettingsError::Endpoint {
        endpoint: endpoint.to_string(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL or host:port"))?;
    let default_port = match (uri.scheme_str(), tls) {
        (Some("http"), None) => 80,
        (Some("https"), Some(_)) => 443,
        (Some("http" | "https"), _) => {
            return Err(SettingsError::TlsMismatch {
                endpoint: endpoint.to_string(),
            })
        }
        _ => return Err(bad("the scheme must be http or https")),
    };
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = authority.port_u16().unwrap_or(default_port);
    let path = match uri.path_and_query() {
        Some(pq) if !pq.as_str().is_empty() => pq.as_str().to_string(),
        _ => "/".to_string(),
    };
    Ok(Target {
        host: host.to_string(),
        tls: tls.cloned(),
        authority: authority.as_str().to_string(),
        path,
        resolver: std::rc::Rc::new(super::resolve::Resolver::new(host, port)),
        proxy: None,
    })
}

/// Checks user headers and returns them as typed values.
pub(crate) fn parse_headers(
    headers: &[(String, String)],
) -> Result<Vec<(HeaderName, HeaderValue)>, SettingsError> {
    headers
        .iter()
        .map(|(name, value)| {
            let bad = || SettingsError::Header { name: name.clone() };
            Ok((
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?,
                HeaderValue::from_str(value).map_err(|_| bad())?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_endpoints_parse_with_or_without_scheme() {
        let t = grpc_target("collector:4317", None).unwrap();
        assert_eq!((t.host.as_str(), t.resolver.port()), ("collector", 4317));
        assert_eq!(t.authority, "collector:4317");
        let t = grpc_target("http://127.0.0.1:9000", None).unwrap();
        assert_eq!((t.host.as_str(), t.resolver.port()), ("127.0.0.1", 9000));
        let t = grpc_target("[::1]:4317", None).unwrap();
        assert_eq!(t.host, "::1");
        assert!(matches!(
            grpc_target("https://collector:4317", None),
            Err(SettingsError::TlsMismatch { .. })
        ));
        assert!(matches!(
            grpc_target("unix:///tmp/sock", None),
            Err(SettingsError::Endpoint { .. })
        ));
    }

    #[test]
    fn http_paths_append_the_signal_or_take_the_override() {
        let mut s = OtlpHttpSettings {
            endpoint: "http://collector:4318".into(),
            ..Default::default()
        };
        assert_eq!(
            http_target(&s, Signal::Traces).unwrap().unwrap().path,
            "/v1/traces"
        );
        s.endpoint = "http://collector:4318/otlp/".into();
        assert_eq!(
            http_target(&s, Signal::Metrics).unwrap().unwrap().path,
            "/otlp/v1/metrics"
        );
        s.logs_endpoint = Some("http://other:8080/ingest?tenant=a".into());
        let t = http_target(&s, Signal::Logs).unwrap().unwrap();
        assert_eq!((t.host.as_str(), t.resolver.port()), ("other", 8080));
        assert_eq!(t.path, "/ingest?tenant=a");
        s.endpoint = "http://collector".into();
        assert_eq!(
            http_target(&s, Signal::Traces)
                .unwrap()
                .unwrap()
                .resolver
                .port(),
            80
        );
    }

    #[test]
    fn headers_with_newlines_are_refused() {
        assert!(parse_headers(&[("x-tenant".into(), "a".into())]).is_ok());
        assert_eq!(
            parse_headers(&[("x-tenant".into(), "a\r\nx: y".into())]),
            Err(SettingsError::Header {
                name: "x-tenant".into()
            })
        );
        assert!(parse_headers(&[("bad name".into(), "a".into())]).is_err());
    }
}
