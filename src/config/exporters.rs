//! `exporters`: OTLP over gRPC (`otlp`), OTLP over HTTP (`otlphttp`), `debug` and
//! `loadbalancing`, each also as `TYPE/NAME`, with the Collector's keys and defaults.
//!
//! TLS is decided the way the Collector decides it: an `otlp` endpoint with `https://`, or a bare
//! `host:port` without `tls: {insecure: true}`, is dialled with TLS; `http://` is plaintext. An
//! `otlphttp` URL's scheme decides. TLS keys on an exporter that sends plaintext are refused,
//! naming the key, rather than silently unused.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::component::{in_range, Ctx, RawComponent, RawComponents};
use super::error::{ConfigError, ConfigErrorKind};
use super::extensions::check_auth;
use super::locate::Target;
use super::processors::duration_at_most;
use super::receivers::RawAuth;
use super::scalar::{Dur, Float, SInt, UInt};
use super::tls::{check_client, RawTls, TlsClientSettings};
use super::values::{format_duration, ComponentId, Endpoint, HttpUrl, KeyPath, Scheme};
use crate::export::{Balancer, ClientKeepalive, HttpPool, ProxyUrl};
use tailgate_wire::Signal;

/// Exporter types tailgate has: the Collector's names, each type under both of its names where
/// it has two (v0.161.0 names the OTLP exporters `otlp_grpc` and `otlp_http` and the load
/// balancer `load_balancing`, and keeps `otlp`, `otlphttp` and `loadbalancing` as aliases).
pub const EXPORTER_KINDS: &[&str] = &[
    "otlp",
    "otlp_grpc",
    "otlphttp",
    "otlp_http",
    "debug",
    "loadbalancing",
    "load_balancing",
];

/// `timeout` when not given (the Collector's default).
pub const EXPORT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// The longest `timeout` of one export request.
pub const EXPORT_TIMEOUT_MAX: Duration = Duration::from_secs(600);
/// The longest `retry_on_failure.initial_interval` and `max_interval`.
pub const RETRY_INTERVAL_MAX: Duration = Duration::from_secs(3600);
/// The longest `retry_on_failure.max_elapsed_time`.
pub const RETRY_ELAPSED_MAX: Duration = Duration::from_secs(24 * 3600);
/// The most `sending_queue.num_consumers` (concurrent requests per exporter).
pub const NUM_CONSUMERS_MAX: u64 = 1024;
/// The largest `sending_queue.queue_size` with `sizer: requests` (batches).
pub const QUEUE_SIZE_MAX: u64 = 1_000_000;
/// The largest `sending_queue.queue_size` with `sizer: items` (spans, points, records).
pub const QUEUE_ITEMS_MAX: u64 = 1_000_000_000;
/// The largest `sending_queue.queue_size` with `sizer: bytes` (1 TiB: the memory budget is
/// the bound that binds first).
pub const QUEUE_BYTES_MAX: u64 = 1 << 40;
/// The most `headers` on one exporter.
pub const HEADERS_MAX: usize = 64;
/// The most `resolver.static.hostnames` of one `loadbalancing` exporter.
pub const BACKENDS_MAX: usize = 256;
/// `resolver.dns.interval` when not given (the Collector's default).
pub const DNS_INTERVAL_DEFAULT: Duration = Duration::from_secs(5);
/// `resolver.dns.timeout` when not given (the Collector's default).
pub const DNS_TIMEOUT_DEFAULT: Duration = Duration::from_secs(1);
/// The port of a backend written without one, and of `resolver.dns` without `port` (the
/// Collector's `defaultPort`).
pub const BACKEND_PORT_DEFAULT: u16 = 4317;

/// The `exporters` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exporters {
    /// Every exporter defined, by id.
    pub by_id: BTreeMap<ComponentId, Exporter>,
}

impl Exporters {
    /// The exporter with this id.
    pub fn get(&self, id: &ComponentId) -> Option<&Exporter> {
        self.by_id.get(id)
    }
}

/// One exporter's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Exporter {
    /// `otlp`: OTLP/gRPC.
    Otlp(OtlpExporter),
    /// `otlphttp`: OTLP/HTTP.
    OtlpHttp(OtlpHttpExporter),
    /// `debug`: prints what would be exported.
    Debug(DebugExporter),
    /// `loadbalancing`: spreads data over backends by consistent hashing.
    LoadBalancing(LoadBalancingExporter),
}

/// `loadbalancing`: every backend the resolver finds gets an `otlp` exporter built from
/// `protocol.otlp`; data goes to the backend its routing key hashes to.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancingExporter {
    /// What data is routed by, as written; `None` takes the signal's default
    /// ([`LoadBalancingExporter::routing_key`]).
    pub routing_key: Option<RoutingKey>,
    /// Each backend's `otlp` settings; the endpoint is the backend's, so this one's is unset.
    pub protocol: OtlpExporter,
    /// Where the backends come from.
    pub resolver: BackendResolver,
}

impl LoadBalancingExporter {
    /// The routing key for `signal`, as the Collector (v0.161.0) picks it: traces by `traceID`
    /// unless `service` is asked for; metrics by `service` unless `resource` is; logs by
    /// `service` unless `traceID` or `resource` is. `None`: `signal` cannot be routed by the
    /// key written.
    pub fn routing_key(&self, signal: Signal) -> Option<RoutingKey> {
        match (signal, self.routing_key) {
            (Signal::Traces, None) => Some(RoutingKey::TraceId),
            (Signal::Traces, Some(key @ (RoutingKey::TraceId | RoutingKey::Service))) => Some(key),
            (Signal::Metrics, None) => Some(RoutingKey::Service),
            (Signal::Metrics, Some(key @ (RoutingKey::Service | RoutingKey::Resource))) => {
                Some(key)
            }
            (Signal::Logs, None) => Some(RoutingKey::Service),
            (Signal::Logs, Some(key)) => Some(key),
            _ => None,
        }
    }
}

/// `loadbalancing.routing_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingKey {
    /// `traceID` (the default for traces): every span of a trace, and every log record of a
    /// trace, to one backend.
    TraceId,
    /// `service` (the default for metrics and logs): every resource group with the same
    /// `service.name` to one backend (a group without one goes with the empty name's).
    Service,
    /// `resource` (metrics, logs): every resource group with the same resource to one backend.
    Resource,
}

impl RoutingKey {
    /// The key as the configuration spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingKey::TraceId => "traceID",
            RoutingKey::Service => "service",
            RoutingKey::Resource => "resource",
        }
    }
}

/// `loadbalancing.resolver`: exactly one of `static` and `dns`.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendResolver {
    /// `static.hostnames`: a fixed list, each `host` or `host:port` (port 4317 when absent).
    Static {
        /// The backends, in the order written (the ring does not depend on it).
        hostnames: Vec<Endpoint>,
    },
    /// `dns`: every address `hostname` resolves to is a backend on `port`.
    Dns {
        /// The name to resolve (a headless Kubernetes Service, say).
        hostname: String,
        /// The port every backend listens on (default 4317).
        port: u16,
        /// How often the name is resolved again (default 5s).
        interval: Duration,
        /// The bound on one resolution (default 1s).
        timeout: Duration,
    },
}

impl BackendResolver {
    /// The resolver's name as the `resolver` metric label spells it.
    pub fn label(&self) -> &'static str {
        match self {
            BackendResolver::Static { .. } => "static",
            BackendResolver::Dns { .. } => "dns",
        }
    }
}

/// `otlp`: OTLP/gRPC to one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpExporter {
    /// Where to connect (the scheme stripped).
    pub endpoint: Endpoint,
    /// TLS to the destination: `https://`, or a bare `host:port` without `tls.insecure: true`;
    /// `None`: plaintext.
    pub tls: Option<TlsClientSettings>,
    /// Extra request headers (gRPC metadata), as written.
    pub headers: BTreeMap<String, String>,
    /// `auth.authenticator`: the extension whose credentials every request carries.
    pub auth: Option<ComponentId>,
    /// Request compression (default gzip).
    pub compression: Compression,
    /// `compression_params.level` (`None`: gzip 6, zstd 3, as the Collector).
    pub compression_level: Option<i32>,
    /// The deadline of one export request (default 5s).
    pub timeout: Duration,
    /// Retries of failed requests.
    pub retry_on_failure: RetryOnFailure,
    /// The bounded queue in front of the exporter.
    pub sending_queue: SendingQueue,
    /// `keepalive` (default on: 10 s, 10 s); `None`: `enabled: false`.
    pub keepalive: Option<ClientKeepalive>,
    /// `balancer_name` (default `round_robin`).
    pub balancer: Balancer,
    /// `authority`: the `:authority` sent instead of the endpoint's.
    pub authority: Option<String>,
    /// `wait_for_ready`.
    pub wait_for_ready: bool,
}

/// `otlphttp`: OTLP/HTTP to one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpHttpExporter {
    /// TLS to the destination (`https://` URLs); `None`: plaintext (`http://`).
    pub tls: Option<TlsClientSettings>,
    /// Where traces are posted: `traces_endpoint`, or `endpoint` + `/v1/traces`.
    pub traces_url: Option<HttpUrl>,
    /// Where metrics are posted: `metrics_endpoint`, or `endpoint` + `/v1/metrics`.
    pub metrics_url: Option<HttpUrl>,
    /// Where logs are posted: `logs_endpoint`, or `endpoint` + `/v1/logs`.
    pub logs_url: Option<HttpUrl>,
    /// Body encoding (default protobuf).
    pub encoding: Encoding,
    /// Extra request headers, as written.
    pub headers: BTreeMap<String, String>,
    /// `auth.authenticator`: the extension whose credentials every request carries.
    pub auth: Option<ComponentId>,
    /// Request compression (default gzip).
    pub compression: Compression,
    /// `compression_params.level` (`None`: gzip 6, zstd 3, as the Collector).
    pub compression_level: Option<i32>,
    /// The deadline of one export request (default 5s).
    pub timeout: Duration,
    /// Retries of failed requests.
    pub retry_on_failure: RetryOnFailure,
    /// The bounded queue in front of the exporter.
    pub sending_queue: SendingQueue,
    /// `proxy_url`: the HTTP proxy every request goes through; `None`: the environment's.
    pub proxy_url: Option<ProxyUrl>,
    /// confighttp's `keepalive` (or its older flat keys): the connection pool.
    pub pool: HttpPool,
}

impl OtlpHttpExporter {
    /// Where data of `signal` is posted; every signal of a pipeline using this exporter has one.
    pub fn url(&self, signal: Signal) -> Option<&HttpUrl> {
        match signal {
            Signal::Traces => self.traces_url.as_ref(),
            Signal::Metrics => self.metrics_url.as_ref(),
            Signal::Logs => self.logs_url.as_ref(),
        }
    }
}

/// `debug`: a summary (or more) of each batch on standard output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugExporter {
    /// How much to print (default basic: a one-line summary).
    pub verbosity: Verbosity,
    /// Batches printed per second before sampling starts (default 2).
    pub sampling_initial: u32,
    /// Then one batch in this many is printed (default 1: all).
    pub sampling_thereafter: u32,
    /// Whether it prints to standard error, the log's stream (`use_internal_logger: true`, or
    /// `false` with `output_paths: [stderr]`) rather than standard output (left out, or
    /// `false` with `output_paths` left out or `[stdout]`).
    pub to_stderr: bool,
}

/// `compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// `gzip`.
    Gzip,
    /// `zstd`.
    Zstd,
    /// `snappy`: snappy's framing format (what the Collector sends under that name).
    Snappy,
    /// `zlib` (`otlphttp` only, as in the Collector).
    Zlib,
    /// `deflate`: zlib-wrapped, as HTTP names it (`otlphttp` only, as in the Collector).
    Deflate,
    /// `lz4`: the LZ4 frame format (`otlphttp` only, as in the Collector).
    Lz4,
    /// `none`: bodies are sent as they are.
    None,
}

/// `otlphttp.encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `proto`: binary protobuf.
    Proto,
    /// `json`: OTLP/JSON.
    Json,
}

/// `debug.verbosity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verbosity {
    /// `basic`: one summary line per batch.
    Basic,
    /// `normal`: plus one line per span, metric or log record.
    Normal,
    /// `detailed`: plus resources, scopes and attributes.
    Detailed,
}

/// `retry_on_failure`: exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryOnFailure {
    /// Whether failed requests are retried (default true).
    pub enabled: bool,
    /// The first wait (default 5s).
    pub initial_interval: Duration,
    /// Jitter: each wait is drawn from ± this share of the interval (default 0.5).
    pub randomization_factor: f64,
    /// Growth of the interval per attempt (default 1.5).
    pub multiplier: f64,
    /// The longest wait (default 30s).
    pub max_interval: Duration,
    /// Give up on a request after this long (default 300s; `None` when written as 0: retry
    /// until the queue pushes back).
    pub max_elapsed_time: Option<Duration>,
}

/// `sending_queue`: batches waiting for a consumer; when full, the pipeline pushes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendingQueue {
    /// Whether requests are queued (default true); otherwise each waits for its send.
    pub enabled: bool,
    /// Concurrent requests (default 10).
    pub num_consumers: u32,
    /// What the queue holds, in `sizer` units (default 1000 batches).
    pub queue_size: u64,
    /// How `queue_size` is counted (default `requests`, the Collector's default).
    pub sizer: QueueSizer,
    /// When a batch does not fit: wait for room, pushing back on the pipeline and so on the
    /// clients (true, tailgate's default), or drop it, counted (false).
    pub block_on_overflow: bool,
    /// `drop_oldest_on_overflow` (tailgate's own, default false): with `block_on_overflow:
    /// false`, make room by dropping the oldest queued batches instead of the new one.
    pub drop_oldest_on_overflow: bool,
    /// `storage`: the `file_storage` extension that keeps the queue on disk.
    pub storage: Option<ComponentId>,
    /// `batch`: batching before the queue, in items; `None`: off (the Collector's default).
    pub batch: Option<QueueBatch>,
}

/// `sending_queue.batch`, in items: the pipeline's batcher takes these settings (see
/// docs/CONFIGURATION.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueBatch {
    /// `flush_timeout` (default 200 ms): a batch goes out this long after it began at most.
    pub flush_timeout: Duration,
    /// `min_size` (default 8192): a batch goes out once it holds this many items.
    pub min_size: u64,
    /// `max_size` (default 0: no limit): larger requests are split.
    pub max_size: u64,
    /// `partition.metadata_keys`: client metadata keys whose values batch apart (lower-case,
    /// sorted; empty: requests of the same metadata merge). See `crate::metadata`.
    pub partition_keys: Vec<String>,
}

/// `sending_queue.sizer`: the unit of `queue_size`, as the Collector's exporterhelper names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueSizer {
    /// `requests`: batches.
    #[default]
    Requests,
    /// `items`: spans, metric data points or log records.
    Items,
    /// `bytes`: the batches' encoded (uncompressed) size.
    Bytes,
}

impl Default for RetryOnFailure {
    fn default() -> Self {
        RetryOnFailure {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            randomization_factor: 0.5,
            multiplier: 1.5,
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Some(Duration::from_secs(300)),
        }
    }
}

impl Default for SendingQueue {
    fn default() -> Self {
        SendingQueue {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            sizer: QueueSizer::Requests,
            block_on_overflow: true,
            drop_oldest_on_overflow: false,
            storage: None,
            batch: None,
        }
    }
}

pub(crate) enum RawExporter {
    Otlp(RawOtlp),
    OtlpHttp(RawOtlpHttp),
    Debug(RawDebug),
    LoadBalancing(RawLoadBalancing),
    Unknown,
}

impl RawComponent for RawExporter {
    fn from_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        Ok(match kind {
            "otlp" | "otlp_grpc" => {
                RawExporter::Otlp(Option::<RawOtlp>::deserialize(d)?.unwrap_or_default())
            }
            "otlphttp" | "otlp_http" => {
                RawExporter::OtlpHttp(Option::<RawOtlpHttp>::deserialize(d)?.unwrap_or_default())
            }
            "debug" => RawExporter::Debug(Option::<RawDebug>::deserialize(d)?.unwrap_or_default()),
            "loadbalancing" | "load_balancing" => RawExporter::LoadBalancing(
                Option::<RawLoadBalancing>::deserialize(d)?.unwrap_or_default(),
            ),
            _ => {
                IgnoredAny::deserialize(d)?;
                RawExporter::Unknown
            }
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawOtlp {
    endpoint: Option<String>,
    tls: Option<RawTls>,
    headers: Option<RawHeaders>,
    auth: Option<RawAuth>,
    compression: Option<String>,
    compression_params: Option<RawCompressionParams>,
    timeout: Option<Dur>,
    retry_on_failure: Option<RawRetry>,
    sending_queue: Option<RawQueue>,
    keepalive: Option<RawClientKeepalive>,
    balancer_name: Option<String>,
    authority: Option<String>,
    wait_for_ready: Option<bool>,
}

/// confighttp's client `keepalive` section (v0.160.0 on), which replaces `idle_conn_timeout`,
/// `max_idle_conns`, `max_idle_conns_per_host` and `disable_keep_alives`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawHttpClientKeepalive {
    enabled: Option<bool>,
    idle_conn_timeout: Option<Dur>,
    max_idle_conns: Option<UInt>,
    max_idle_conns_per_host: Option<UInt>,
}

/// configgrpc's client `keepalive`, an optional section (`enabled: false` turns it off).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawClientKeepalive {
    enabled: Option<bool>,
    time: Option<Dur>,
    timeout: Option<Dur>,
    permit_without_stream: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawOtlpHttp {
    endpoint: Option<String>,
    traces_endpoint: Option<String>,
    metrics_endpoint: Option<String>,
    logs_endpoint: Option<String>,
    encoding: Option<String>,
    tls: Option<RawTls>,
    headers: Option<RawHeaders>,
    auth: Option<RawAuth>,
    compression: Option<String>,
    compression_params: Option<RawCompressionParams>,
    timeout: Option<Dur>,
    retry_on_failure: Option<RawRetry>,
    sending_queue: Option<RawQueue>,
    proxy_url: Option<String>,
    keepalive: Option<RawHttpClientKeepalive>,
    idle_conn_timeout: Option<Dur>,
    max_idle_conns: Option<UInt>,
    max_idle_conns_per_host: Option<UInt>,
    disable_keep_alives: Option<bool>,
    /// Go's HTTP/2 client settings: accepted, with no effect (tailgate's client speaks
    /// HTTP/1.1; docs/CONFIGURATION.md).
    #[serde(rename = "http2_read_idle_timeout")]
    _http2_read_idle_timeout: Option<Dur>,
    #[serde(rename = "http2_ping_timeout")]
    _http2_ping_timeout: Option<Dur>,
    #[serde(rename = "force_attempt_http2")]
    _force_attempt_http2: Option<bool>,
    /// The URL for profiles: accepted, so the Collector's configurations load; tailgate has no
    /// profiles pipelines, so nothing is sent to it.
    #[serde(rename = "profiles_endpoint")]
    _profiles_endpoint: Option<String>,
    /// confighttp's client buffer sizes: accepted, with no effect (docs/CONFIGURATION.md).
    #[serde(rename = "read_buffer_size")]
    _read_buffer_size: Option<UInt>,
    #[serde(rename = "write_buffer_size")]
    _write_buffer_size: Option<UInt>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDebug {
    verbosity: Option<String>,
    sampling_initial: Option<UInt>,
    sampling_thereafter: Option<UInt>,
    use_internal_logger: Option<bool>,
    output_paths: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLoadBalancing {
    routing_key: Option<String>,
    routing_attributes: Option<IgnoredAny>,
    protocol: Option<RawProtocol>,
    resolver: Option<RawResolver>,
    timeout: Option<IgnoredAny>,
    retry_on_failure: Option<IgnoredAny>,
    sending_queue: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawProtocol {
    otlp: Option<RawOtlp>,
}

impl RawProtocol {
    /// Sets `compression` (and its level, unless one is given) where the section leaves
    /// compression out: for a section whose default is not the `otlp` exporter's gzip.
    pub(super) fn default_compression(&mut self, compression: &str, level: i64) {
        let Some(otlp) = self.otlp.as_mut() else {
            return;
        };
        if otlp.compression.is_none() {
            otlp.compression = Some(compression.to_owned());
            if otlp.compression_params.is_none() {
                otlp.compression_params = Some(RawCompressionParams {
                    level: Some(SInt(level)),
                });
            }
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawResolver {
    #[serde(rename = "static")]
    static_list: Option<RawStaticResolver>,
    dns: Option<RawDnsResolver>,
    k8s: Option<IgnoredAny>,
    aws_cloud_map: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawStaticResolver {
    hostnames: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawDnsResolver {
    hostname: Option<String>,
    port: Option<UInt>,
    interval: Option<Dur>,
    timeout: Option<Dur>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawCompressionParams {
    level: Option<SInt>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRetry {
    enabled: Option<bool>,
    initial_interval: Option<Dur>,
    randomization_factor: Option<Float>,
    multiplier: Option<Float>,
    max_interval: Option<Dur>,
    max_elapsed_time: Option<Dur>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawQueue {
    enabled: Option<bool>,
    num_consumers: Option<UInt>,
    queue_size: Option<UInt>,
    sizer: Option<String>,
    block_on_overflow: Option<bool>,
    drop_oldest_on_overflow: Option<bool>,
    storage: Option<String>,
    /// Present at all, even empty: `batch:` alone turns the Collector's batching on with its
    /// defaults.
    #[serde(deserialize_with = "super::scalar::present")]
    batch: Option<RawQueueBatch>,
}

/// `sending_queue.batch`: exporterhelper's batching in front of the queue.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawQueueBatch {
    flush_timeout: Option<Dur>,
    min_size: Option<UInt>,
    max_size: Option<UInt>,
    sizer: Option<String>,
    partition: Option<RawPartition>,
}

/// `sending_queue.batch.partition`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPartition {
    metadata_keys: Option<Vec<String>>,
}

pub(crate) fn check(
    raw: RawComponents<RawExporter>,
    ctx: &Ctx<'_>,
) -> Result<Exporters, ConfigError> {
    let section = KeyPath::root().key("exporters");
    let mut by_id = BTreeMap::new();
    for (key, raw) in raw.0 {
        let id = ctx.component_id(&section, &key)?;
        let path = section.key(key.as_str());
        let exporter = match raw {
            RawExporter::Otlp(raw) => Exporter::Otlp(check_otlp(raw, &path, ctx)?),
            RawExporter::OtlpHttp(raw) => Exporter::OtlpHttp(check_otlphttp(raw, &path, ctx)?),
            RawExporter::Debug(raw) => Exporter::Debug(check_debug(raw, &path, ctx)?),
            RawExporter::LoadBalancing(raw) => {
                Exporter::LoadBalancing(check_loadbalancing(raw, &path, ctx)?)
            }
            RawExporter::Unknown => {
                return Err(ctx.error(
                    &path,
                    Target::Key,
                    ConfigErrorKind::UnknownComponent {
                        section: "exporter",
                        kind: id.kind,
                        supported: EXPORTER_KINDS,
                    },
                ))
            }
        };
        by_id.insert(id, exporter);
    }
    Ok(Exporters { by_id })
}

/// An exporter's `tls` when the endpoint says TLS (`tls` at `tls_path`), or `None` for plaintext
/// after checking that no TLS key is set (a CA or certificate on a plaintext exporter would be
/// silently unused: refused instead, naming the key).
fn client_tls(
    raw: Option<RawTls>,
    secure: bool,
    plaintext_because: &str,
    tls_path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Option<TlsClientSettings>, ConfigError> {
    let raw = raw.unwrap_or_default();
    if secure {
        return check_client(raw, tls_path, ctx).map(Some);
    }
    if let Some(key) = raw.tls_key_set() {
        return Err(ctx.invalid(
            &tls_path.key(key),
            format!("`{key}` configures TLS, but {plaintext_because}; remove it, or use TLS"),
        ));
    }
    Ok(None)
}

fn check_otlp(
    mut raw: RawOtlp,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<OtlpExporter, ConfigError> {
    let Some(text) = raw.endpoint.take() else {
        return Err(ctx.missing(path, "endpoint"));
    };
    let endpoint_path = path.key("endpoint");
    let (scheme, rest) = match Scheme::strip(&text) {
        Some((scheme, rest)) => (Some(scheme), rest),
        // grpc-go's `dns` and `passthrough` resolver targets, `SCHEME://[authority]/host:port`,
        // which configgrpc hands to grpc-go as they are: the host:port is dialled (resolved
        // by name, every address, as a bare host:port is), TLS as for a bare one.
        None if text.starts_with("dns://") || text.starts_with("passthrough://") => {
            let after = text.split_once("://").map_or("", |(_, after)| after);
            match after.split_once('/') {
                Some((_authority, target)) => (None, target),
                None => {
                    return Err(ctx.invalid(
                        &endpoint_path,
                        format!("`{text}`: a resolver target is SCHEME:///host:port"),
                    ))
                }
            }
        }
        None if text.contains("://") => {
            return Err(ctx.error(
                &endpoint_path,
                Target::Value,
                ConfigErrorKind::Unsupported(format!(
                    "`{text}`: only host:port, http://host:port, https://host:port and grpc-go's \
                     dns:/// and passthrough:/// targets are supported"
                )),
            ))
        }
        None => (None, text.as_str()),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err(ctx.invalid(
            &endpoint_path,
            format!("`{text}`: a gRPC endpoint is host:port, without a path"),
        ));
    }
    let endpoint = Endpoint::parse(rest).map_err(|why| ctx.invalid(&endpoint_path, why))?;
    if endpoint.host.is_empty() || endpoint.port == 0 {
        return Err(ctx.invalid(
            &endpoint_path,
            format!("`{text}` needs a host and a port other than 0"),
        ));
    }
    // As configgrpc reads it: https:// is TLS, http:// plaintext, and a bare host:port TLS
    // unless `tls.insecure: true`.
    let insecure = raw.tls.as_ref().and_then(|t| t.insecure);
    let (secure, because) = match (scheme, insecure) {
        (Some(Scheme::Https), _) => (true, String::new()),
        (Some(Scheme::Http), _) => (false, format!("`{text}` is plaintext (http://)")),
        (None, Some(true)) => (false, "tls.insecure is true".to_string()),
        (None, Some(false) | None) => (true, String::new()),
    };
    let tls = client_tls(raw.tls, secure, &because, &path.key("tls"), ctx)?;
    let compression = check_compression(
        raw.compression,
        Transport::Grpc,
        &path.key("compression"),
        ctx,
    )?;
    Ok(OtlpExporter {
        endpoint,
        tls,
        headers: check_headers(raw.headers, &path.key("headers"), ctx)?,
        auth: check_auth(raw.auth, path, ctx)?,
        compression,
        compression_level: check_compression_level(
            compression,
            raw.compression_params,
            &path.key("compression_params").key("level"),
            ctx,
        )?,
        timeout: check_timeout(raw.timeout, &path.key("timeout"), ctx)?,
        retry_on_failure: check_retry(raw.retry_on_failure, &path.key("retry_on_failure"), ctx)?,
        sending_queue: check_queue(raw.sending_queue, &path.key("sending_queue"), ctx)?,
        keepalive: check_client_keepalive(raw.keepalive, &path.key("keepalive"), ctx)?,
        balancer: check_balancer(raw.balancer_name, &path.key("balancer_name"), ctx)?,
        authority: check_authority(raw.authority, &path.key("authority"), ctx)?,
        wait_for_ready: raw.wait_for_ready.unwrap_or(false),
    })
}

/// The longest `idle_conn_timeout`.
const IDLE_CONN_TIMEOUT_MAX: Duration = Duration::from_secs(24 * 3600);

/// An `otlphttp` exporter's connection pool, as confighttp folds its two spellings: the
/// `keepalive` section or the deprecated flat keys, not both. Zero is "no limit" for the
/// timeout and `max_idle_conns`; for `max_idle_conns_per_host` Go's zero means 2, which
/// tailgate does not copy (its pool is per shard and sized to the consumers).
fn check_http_pool(
    raw: &RawOtlpHttp,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<HttpPool, ConfigError> {
    let flat = [
        ("idle_conn_timeout", raw.idle_conn_timeout.is_some()),
        ("max_idle_conns", raw.max_idle_conns.is_some()),
        (
            "max_idle_conns_per_host",
            raw.max_idle_conns_per_host.is_some(),
        ),
        ("disable_keep_alives", raw.disable_keep_alives == Some(true)),
    ];
    let (enabled, idle, max, per_host, at) = match &raw.keepalive {
        Some(section) => {
            if let Some((key, _)) = flat.iter().find(|(_, given)| *given) {
                return Err(ctx.invalid(
                    &path.key(*key),
                    "cannot be used alongside the `keepalive` section (the Collector refuses \
                     the mix too); move it into `keepalive`",
                ));
            }
            (
                section.enabled != Some(false),
                section.idle_conn_timeout,
                section.max_idle_conns,
                section.max_idle_conns_per_host,
                path.key("keepalive"),
            )
        }
        None => (
            raw.disable_keep_alives != Some(true),
            raw.idle_conn_timeout,
            raw.max_idle_conns,
            raw.max_idle_conns_per_host,
            path.clone(),
        ),
    };
    let defaults = HttpPool::default();
    let idle_timeout = match idle {
        None => defaults.idle_timeout,
        Some(Dur(d)) if d.is_zero() => None,
        Some(Dur(d)) => Some(duration_at_most(
            ctx,
            &at.key("idle_conn_timeout"),
            d,
            IDLE_CONN_TIMEOUT_MAX,
        )?),
    };
    let count = |value: Option<UInt>| {
        value
            .map(|UInt(n)| usize::try_from(n).unwrap_or(usize::MAX))
            .filter(|&n| n > 0)
    };
    Ok(HttpPool {
        keep_alives: enabled,
        idle_timeout,
        max_idle: count(max),
        max_idle_per_host: count(per_host),
    })
}

/// The longest client `keepalive.time` and `timeout`.
const CLIENT_KEEPALIVE_MAX: Duration = Duration::from_secs(24 * 3600);
/// `keepalive.timeout: 0` reads as grpc-go's default timeout.
const CLIENT_KEEPALIVE_TIMEOUT_ZERO: Duration = Duration::from_secs(20);

/// `keepalive` of a gRPC exporter, read as grpc-go reads its client parameters: a `time` below
/// 10 s (0 included) is 10 s, a `timeout` of 0 is 20 s.
fn check_client_keepalive(
    raw: Option<RawClientKeepalive>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Option<ClientKeepalive>, ConfigError> {
    let defaults = ClientKeepalive::default();
    let Some(raw) = raw else {
        return Ok(Some(defaults));
    };
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    let time = match raw.time {
        None => defaults.time,
        Some(Dur(time)) => duration_at_most(ctx, &path.key("time"), time, CLIENT_KEEPALIVE_MAX)?
            .max(ClientKeepalive::TIME_MIN),
    };
    let timeout = match raw.timeout {
        None => defaults.timeout,
        Some(Dur(timeout)) if timeout.is_zero() => CLIENT_KEEPALIVE_TIMEOUT_ZERO,
        Some(Dur(timeout)) => {
            duration_at_most(ctx, &path.key("timeout"), timeout, CLIENT_KEEPALIVE_MAX)?
        }
    };
    Ok(Some(ClientKeepalive {
        time,
        timeout,
        permit_without_stream: raw.permit_without_stream.unwrap_or(false),
    }))
}

/// `balancer_name`: gRPC's `round_robin` (the Collector's default) or `pick_first` (also the
/// empty name, grpc-go's own default).
fn check_balancer(
    raw: Option<String>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Balancer, ConfigError> {
    match raw.as_deref() {
        None | Some("round_robin") => Ok(Balancer::RoundRobin),
        Some("pick_first" | "") => Ok(Balancer::PickFirst),
        Some(other) => Err(ctx.invalid(
            path,
            format!("`{other}` is not a balancer tailgate has; use round_robin or pick_first"),
        )),
    }
}

/// `authority`: `host` or `host:port` as HTTP/2 carries it; empty is none, as in configgrpc.
fn check_authority(
    raw: Option<String>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Option<String>, ConfigError> {
    let Some(text) = raw.filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    match text.parse::<http::uri::Authority>() {
        Ok(authority) if !authority.as_str().contains('@') && !authority.host().is_empty() => {
            Ok(Some(text))
        }
        _ => Err(ctx.invalid(
            path,
            format!("`{text}` is not an authority: write host or host:port"),
        )),
    }
}

fn check_otlphttp(
    raw: RawOtlpHttp,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<OtlpHttpExporter, ConfigError> {
    let pool = check_http_pool(&raw, path, ctx)?;
    let url = |key: &str, text: Option<String>| -> Result<Option<HttpUrl>, ConfigError> {
        let Some(text) = text else { return Ok(None) };
        let at = path.key(key);
        let url = HttpUrl::parse(&text).map_err(|why| ctx.invalid(&at, why))?;
        Ok(Some(url))
    };
    let base = url("endpoint", raw.endpoint)?;
    let signal_url = |key: &str, text: Option<String>, suffix: &str| {
        Ok(match url(key, text)? {
            Some(url) => Some(url),
            // As the Collector composes it: the base path, `/` if missing, then `v1/<signal>`.
            None => base.as_ref().map(|base| {
                let mut url = base.clone();
                if !url.path.ends_with('/') {
                    url.path.push('/');
                }
                url.path.push_str(suffix);
                url
            }),
        })
    };
    let traces_url = signal_url("traces_endpoint", raw.traces_endpoint, "v1/traces")?;
    let metrics_url = signal_url("metrics_endpoint", raw.metrics_endpoint, "v1/metrics")?;
    let logs_url = signal_url("logs_endpoint", raw.logs_endpoint, "v1/logs")?;
    if traces_url.is_none() && metrics_url.is_none() && logs_url.is_none() {
        return Err(ctx.missing(path, "endpoint"));
    }
    // As confighttp reads it: the URL's scheme decides; every URL of one exporter shares its
    // TLS settings, so they must agree.
    let urls: Vec<(&str, &HttpUrl)> = [
        ("traces_endpoint", &traces_url),
        ("metrics_endpoint", &metrics_url),
        ("logs_endpoint", &logs_url),
    ]
    .into_iter()
    .filter_map(|(k, u)| u.as_ref().map(|u| (k, u)))
    .collect();
    let secure = urls[0].1.scheme == Scheme::Https;
    if let Some((key, url)) = urls
        .iter()
        .find(|(_, u)| (u.scheme == Scheme::Https) != secure)
    {
        return Err(ctx.invalid(
            &path.key(*key),
            format!(
                "`{}://{}` mixes http and https with the exporter's other URLs; one exporter \
                 is TLS or plaintext",
                if url.scheme == Scheme::Https {
                    "https"
                } else {
                    "http"
                },
                url.endpoint
            ),
        ));
    }
    let tls = client_tls(
        raw.tls,
        secure,
        "the endpoint is plaintext (http://)",
        &path.key("tls"),
        ctx,
    )?;
    let encoding = match raw.encoding.as_deref() {
        None | Some("proto") => Encoding::Proto,
        Some("json") => Encoding::Json,
        Some(other) => {
            return Err(ctx.invalid(
                &path.key("encoding"),
                format!("`{other}` is not an encoding; use proto or json"),
            ))
        }
    };
    let compression = check_compression(
        raw.compression,
        Transport::Http,
        &path.key("compression"),
        ctx,
    )?;
    Ok(OtlpHttpExporter {
        tls,
        traces_url,
        metrics_url,
        logs_url,
        encoding,
        headers: check_headers(raw.headers, &path.key("headers"), ctx)?,
        auth: check_auth(raw.auth, path, ctx)?,
        compression,
        compression_level: check_compression_level(
            compression,
            raw.compression_params,
            &path.key("compression_params").key("level"),
            ctx,
        )?,
        timeout: check_timeout(raw.timeout, &path.key("timeout"), ctx)?,
        retry_on_failure: check_retry(raw.retry_on_failure, &path.key("retry_on_failure"), ctx)?,
        sending_queue: check_queue(raw.sending_queue, &path.key("sending_queue"), ctx)?,
        pool,
        proxy_url: match raw.proxy_url.filter(|url| !url.is_empty()) {
            Some(url) => Some(
                ProxyUrl::parse(&url).map_err(|why| ctx.invalid(&path.key("proxy_url"), why))?,
            ),
            None => None,
        },
    })
}

fn check_debug(raw: RawDebug, path: &KeyPath, ctx: &Ctx<'_>) -> Result<DebugExporter, ConfigError> {
    let verbosity = match raw.verbosity.as_deref() {
        None | Some("basic") => Verbosity::Basic,
        Some("normal") => Verbosity::Normal,
        Some("detailed") => Verbosity::Detailed,
        Some(other) => {
            return Err(ctx.invalid(
                &path.key("verbosity"),
                format!("`{other}` is not a verbosity; use basic, normal or detailed"),
            ))
        }
    };
    let count = |key: &str, value: Option<UInt>, default: u32| match value {
        Some(UInt(v)) => in_range(ctx, &path.key(key), v, 1, u64::from(u32::MAX)).map(|v| v as u32),
        None => Ok(default),
    };
    // The Collector prints through its logger (standard error) unless `use_internal_logger`
    // is false, and then to `output_paths` (standard output by default). tailgate prints to
    // standard output when neither key is given, as it always has.
    let to_stderr = match (raw.use_internal_logger, raw.output_paths.as_deref()) {
        (Some(true), Some(_)) => {
            return Err(ctx.invalid(
                &path.key("output_paths"),
                "applies only with use_internal_logger: false",
            ))
        }
        (Some(true), None) => true,
        (_, None) => false,
        (_, Some([one])) if one == "stdout" => false,
        (_, Some([one])) if one == "stderr" => true,
        (_, Some(_)) => {
            return Err(ctx.invalid(
                &path.key("output_paths"),
                "tailgate prints to one stream: write [stdout] or [stderr]; files are not \
                 supported",
            ))
        }
    };
    Ok(DebugExporter {
        verbosity,
        sampling_initial: count("sampling_initial", raw.sampling_initial, 2)?,
        sampling_thereafter: count("sampling_thereafter", raw.sampling_thereafter, 1)?,
        to_stderr,
    })
}

/// `headers` as written: a map of names to values, or, as the Collector's `configopaque.MapList`
/// also reads it, a list of `{name: ..., value: ...}` pairs.
pub(crate) struct RawHeaders(Vec<(String, String)>);

/// One pair of the list form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderPair {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
}

impl<'de> Deserialize<'de> for RawHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = RawHeaders;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of header names to values, or a list of `name`/`value` pairs")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeaders, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(RawHeaders(pairs))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut list: A) -> Result<RawHeaders, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = list.next_element::<RawHeaderPair>()? {
                    pairs.push((pair.name, pair.value));
                }
                Ok(RawHeaders(pairs))
            }

            fn visit_unit<E>(self) -> Result<RawHeaders, E> {
                Ok(RawHeaders(Vec::new()))
            }
        }
        d.deserialize_any(Either)
    }
}

pub(crate) fn check_headers(
    raw: Option<RawHeaders>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let pairs = raw.map(|raw| raw.0).unwrap_or_default();
    if pairs.len() > HEADERS_MAX {
        return Err(ctx.invalid(
            path,
            format!(
                "has {} headers; at most {HEADERS_MAX} are allowed",
                pairs.len()
            ),
        ));
    }
    let mut headers = BTreeMap::new();
    for (name, value) in pairs {
        if headers.contains_key(&name) {
            return Err(ctx.invalid(path, format!("`{name}` is given twice")));
        }
        headers.insert(name, value);
    }
    for (name, value) in &headers {
        if !super::values::is_header_name(name) {
            return Err(ctx.error(
                &path.key(name.as_str()),
                Target::Key,
                ConfigErrorKind::InvalidValue(format!("`{name}` is not an HTTP header name")),
            ));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ctx.invalid(
                &path.key(name.as_str()),
                "a header value may not contain control characters or line breaks",
            ));
        }
    }
    Ok(headers)
}

/// Which client a `compression` key configures: the Collector's gRPC client (configgrpc) takes
/// gzip, zstd and snappy, its HTTP client (confighttp) zlib, deflate and lz4 as well.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Grpc,
    Http,
}

fn check_compression(
    raw: Option<String>,
    transport: Transport,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Compression, ConfigError> {
    let compression = match raw.as_deref() {
        None | Some("gzip") => Compression::Gzip,
        Some("zstd") => Compression::Zstd,
        Some("snappy") => Compression::Snappy,
        Some("zlib") => Compression::Zlib,
        Some("deflate") => Compression::Deflate,
        Some("lz4") => Compression::Lz4,
        Some("none" | "") => Compression::None,
        Some(other) => {
            let choices = match transport {
                Transport::Grpc => "gzip, zstd, snappy or none",
                Transport::Http => "gzip, zstd, snappy, zlib, deflate, lz4 or none",
            };
            return Err(ctx.invalid(
                path,
                format!("`{other}` is not a compression; use {choices}"),
            ));
        }
    };
    match (transport, compression) {
        (Transport::Grpc, Compression::Zlib | Compression::Deflate | Compression::Lz4) => {
            let name = compression_name(compression);
            Err(ctx.error(
                path,
                Target::Value,
                ConfigErrorKind::Unsupported(format!(
                    "`{name}` compression is not supported over gRPC (the Collector's gRPC \
                     client refuses it too); use gzip, zstd, snappy or none, or `{name}` on an \
                     otlphttp exporter"
                )),
            ))
        }
        _ => Ok(compression),
    }
}

/// `compression_params.level`, checked as the Collector checks it: gzip takes -1 (its default),
/// 0 (stored, no compression) and 1 to 9; zstd any level (0: its default; others are taken to
/// the nearest level libzstd has, 1 to 19); `none` no level at all.
fn check_compression_level(
    compression: Compression,
    raw: Option<RawCompressionParams>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Option<i32>, ConfigError> {
    let Some(SInt(level)) = raw.and_then(|params| params.level) else {
        return Ok(None);
    };
    match (compression, level) {
        (Compression::Gzip | Compression::Zlib | Compression::Deflate, -1..=9)
        | (Compression::Zstd, _) => Ok(Some(level.clamp(i32::MIN.into(), i32::MAX.into()) as i32)),
        (Compression::Gzip | Compression::Zlib | Compression::Deflate, -2) => Err(ctx.error(
            path,
            Target::Value,
            ConfigErrorKind::Unsupported(
                "level -2 (Huffman-only) is not supported; use 1 for the fastest deflate".into(),
            ),
        )),
        (Compression::Gzip | Compression::Zlib | Compression::Deflate, _) => Err(ctx.invalid(
            path,
            format!(
                "{level} is not a {} level; use -1 (the default, 6), 0 (stored) or 1 to 9",
                compression_name(compression)
            ),
        )),
        // 0 is the Collector's "no level", which snappy and lz4 take.
        (Compression::Snappy | Compression::Lz4, 0) => Ok(None),
        (Compression::Snappy | Compression::Lz4, _) => Err(ctx.invalid(
            path,
            format!(
                "{} has no levels; remove the level, or use gzip or zstd for one",
                compression_name(compression)
            ),
        )),
        (Compression::None, _) => Err(ctx.invalid(
            path,
            "a level needs a compression; set compression: gzip or zstd, or remove the level",
        )),
    }
}

/// The name `compression` has in a configuration.
fn compression_name(compression: Compression) -> &'static str {
    match compression {
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::Snappy => "snappy",
        Compression::Zlib => "zlib",
        Compression::Deflate => "deflate",
        Compression::Lz4 => "lz4",
        Compression::None => "none",
    }
}

fn check_timeout(raw: Option<Dur>, path: &KeyPath, ctx: &Ctx<'_>) -> Result<Duration, ConfigError> {
    match raw {
        None => Ok(EXPORT_TIMEOUT_DEFAULT),
        // The Collector reads 0 as "no deadline"; tailgate bounds every request.
        Some(Dur(d)) if d.is_zero() => Err(ctx.invalid(
            path,
            format!(
                "must be above 0; every export has a deadline (default {})",
                format_duration(EXPORT_TIMEOUT_DEFAULT)
            ),
        )),
        Some(Dur(d)) => duration_at_most(ctx, path, d, EXPORT_TIMEOUT_MAX),
    }
}

fn check_retry(
    raw: Option<RawRetry>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<RetryOnFailure, ConfigError> {
    let d = RetryOnFailure::default();
    let Some(raw) = raw else { return Ok(d) };
    let interval = |key: &str, value: Option<Dur>, default: Duration| match value {
        Some(Dur(v)) if v.is_zero() => Err(ctx.invalid(&path.key(key), "must be above 0")),
        Some(Dur(v)) => duration_at_most(ctx, &path.key(key), v, RETRY_INTERVAL_MAX),
        None => Ok(default),
    };
    let initial_interval = interval("initial_interval", raw.initial_interval, d.initial_interval)?;
    let max_interval = interval("max_interval", raw.max_interval, d.max_interval)?;
    if max_interval < initial_interval {
        return Err(ctx.invalid(
            &path.key("max_interval"),
            format!(
                "{} is below initial_interval ({})",
                format_duration(max_interval),
                format_duration(initial_interval)
            ),
        ));
    }
    let randomization_factor = match raw.randomization_factor {
        Some(Float(f)) if !(0.0..=1.0).contains(&f) => {
            return Err(ctx.invalid(
                &path.key("randomization_factor"),
                format!("{f} is out of range; allowed: 0 to 1"),
            ))
        }
        Some(Float(f)) => f,
        None => d.randomization_factor,
    };
    let multiplier = match raw.multiplier {
        // Below 1 the waits would shrink toward a busy retry loop.
        Some(Float(m)) if !(1.0..=100.0).contains(&m) => {
            return Err(ctx.invalid(
                &path.key("multiplier"),
                format!("{m} is out of range; allowed: 1 to 100"),
            ))
        }
        Some(Float(m)) => m,
        None => d.multiplier,
    };
    let max_elapsed_time = match raw.max_elapsed_time {
        Some(Dur(v)) if v.is_zero() => None,
        Some(Dur(v)) => {
            let v = duration_at_most(ctx, &path.key("max_elapsed_time"), v, RETRY_ELAPSED_MAX)?;
            if v < max_interval {
                return Err(ctx.invalid(
                    &path.key("max_elapsed_time"),
                    format!(
                        "{} is below max_interval ({}); use 0 for no limit",
                        format_duration(v),
                        format_duration(max_interval)
                    ),
                ));
            }
            Some(v)
        }
        None => d.max_elapsed_time,
    };
    Ok(RetryOnFailure {
        enabled: raw.enabled.unwrap_or(d.enabled),
        initial_interval,
        randomization_factor,
        multiplier,
        max_interval,
        max_elapsed_time,
    })
}

fn check_queue(
    raw: Option<RawQueue>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<SendingQueue, ConfigError> {
    let d = SendingQueue::default();
    let Some(mut raw) = raw else { return Ok(d) };
    let batch = match raw.batch.take() {
        Some(batch) => Some(check_queue_batch(batch, &raw, path, ctx)?),
        None => None,
    };
    let storage = match &raw.storage {
        Some(name) => {
            Some(ComponentId::parse(name).map_err(|why| ctx.invalid(&path.key("storage"), why))?)
        }
        None => None,
    };
    if storage.is_some() && raw.enabled == Some(false) {
        return Err(ctx.invalid(
            &path.key("storage"),
            "keeps the sending queue on disk, but `enabled: false` turns the queue off; \
             remove one of them",
        ));
    }
    let block_on_overflow = raw.block_on_overflow.unwrap_or(d.block_on_overflow);
    let drop_oldest_on_overflow = raw.drop_oldest_on_overflow.unwrap_or(false);
    if drop_oldest_on_overflow && block_on_overflow {
        return Err(ctx.invalid(
            &path.key("drop_oldest_on_overflow"),
            "drops to make room, but `block_on_overflow` is true (the default), which waits for \
             room instead; set `block_on_overflow: false` to drop",
        ));
    }
    let num_consumers = match raw.num_consumers {
        Some(UInt(v)) => in_range(ctx, &path.key("num_consumers"), v, 1, NUM_CONSUMERS_MAX)? as u32,
        None => d.num_consumers,
    };
    let sizer = match raw.sizer.as_deref() {
        None | Some("requests") => QueueSizer::Requests,
        Some("items") => QueueSizer::Items,
        Some("bytes") => QueueSizer::Bytes,
        Some(other) => {
            return Err(ctx.invalid(
                &path.key("sizer"),
                format!("`{other}` is not a sizer; use requests, items or bytes"),
            ))
        }
    };
    let max = match sizer {
        QueueSizer::Requests => QUEUE_SIZE_MAX,
        QueueSizer::Items => QUEUE_ITEMS_MAX,
        QueueSizer::Bytes => QUEUE_BYTES_MAX,
    };
    let queue_size = match raw.queue_size {
        Some(UInt(v)) => in_range(ctx, &path.key("queue_size"), v, 1, max)?,
        // The Collector's default, 1000, whatever the sizer; in items or bytes that is less than
        // a batch of the default size, so the queue holds one batch at a time (one larger than
        // the queue goes alone): loaded as the Collector loads it, with a warning.
        None if sizer != QueueSizer::Requests => {
            let unit = if sizer == QueueSizer::Items {
                "items"
            } else {
                "bytes"
            };
            tracing::warn!(
                "{}: no queue_size, so the Collector's default of 1000 {unit}: smaller than most \
                 batches, so the queue holds one batch at a time; give queue_size in {unit}",
                path.key("queue_size")
            );
            d.queue_size
        }
        None => d.queue_size,
    };
    Ok(SendingQueue {
        enabled: raw.enabled.unwrap_or(d.enabled),
        num_consumers,
        queue_size,
        sizer,
        block_on_overflow,
        drop_oldest_on_overflow,
        storage,
        batch,
    })
}

/// The most `flush_timeout` may be.
const FLUSH_TIMEOUT_MAX: Duration = Duration::from_secs(3600);

/// `sending_queue.batch`, as exporterhelper checks it: a positive `flush_timeout`, `max_size`
/// 0 or at least `min_size`, a sizer of items (the default, or the queue's `sizer` when only
/// that is given, as the Collector folds it); with the queue also in items, `min_size` at most
/// `queue_size`.
fn check_queue_batch(
    raw: RawQueueBatch,
    queue: &RawQueue,
    queue_path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<QueueBatch, ConfigError> {
    let path = &queue_path.key("batch");
    let partition_keys = super::processors::metadata_keys(
        raw.partition
            .and_then(|p| p.metadata_keys)
            .unwrap_or_default(),
        &path.key("partition").key("metadata_keys"),
        ctx,
    )?;
    let (sizer, sizer_path) = match (&raw.sizer, &queue.sizer) {
        (Some(sizer), _) => (sizer.as_str(), path.key("sizer")),
        (None, Some(sizer)) => (sizer.as_str(), queue_path.key("sizer")),
        (None, None) => ("items", path.key("sizer")),
    };
    match sizer {
        "items" => {}
        "requests" => {
            return Err(ctx.invalid(
                &sizer_path,
                "batches are sized in items or bytes, not requests (the Collector refuses it \
                 too); set `batch.sizer: items`",
            ))
        }
        "bytes" => {
            return Err(ctx.unsupported(
                &sizer_path,
                "batches sized in bytes are not supported; size them in items",
            ))
        }
        other => {
            return Err(ctx.invalid(&sizer_path, format!("`{other}` is not a sizer; use items")))
        }
    }
    let flush_timeout = match raw.flush_timeout {
        None => Duration::from_millis(200),
        Some(Dur(d)) if d.is_zero() => {
            return Err(ctx.invalid(&path.key("flush_timeout"), "must be above 0"))
        }
        Some(Dur(d)) => duration_at_most(ctx, &path.key("flush_timeout"), d, FLUSH_TIMEOUT_MAX)?,
    };
    let min_size = raw.min_size.map_or(8192, |UInt(n)| n);
    let max_size = raw.max_size.map_or(0, |UInt(n)| n);
    if max_size > 0 && max_size < min_size {
        return Err(ctx.invalid(
            &path.key("max_size"),
            format!("{max_size} is below min_size ({min_size}); give 0 (no limit) or more"),
        ));
    }
    if queue.sizer.as_deref() == Some("items") {
        let queue_size = queue
            .queue_size
            .map_or(SendingQueue::default().queue_size, |UInt(n)| n);
        if min_size > queue_size {
            return Err(ctx.invalid(
                &path.key("min_size"),
                format!("{min_size} is more than the queue holds ({queue_size} items)"),
            ));
        }
    }
    Ok(QueueBatch {
        flush_timeout,
        min_size,
        max_size,
        partition_keys,
    })
}

/// The most a `resolver.dns.interval` may be: a longer one would follow a changed backend set
/// too late to be of use.
const DNS_INTERVAL_MAX: Duration = Duration::from_secs(3600);
/// The most a `resolver.dns.timeout` may be.
const DNS_TIMEOUT_MAX: Duration = Duration::from_secs(60);

fn check_loadbalancing(
    raw: RawLoadBalancing,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<LoadBalancingExporter, ConfigError> {
    // The Collector's exporter-level queue and retry sit in front of the routing, so what they
    // hold is lost when a backend leaves; tailgate queues and retries per backend, where a
    // leaving backend's batches can be routed again.
    for (key, set) in [
        ("sending_queue", raw.sending_queue.is_some()),
        ("retry_on_failure", raw.retry_on_failure.is_some()),
        ("timeout", raw.timeout.is_some()),
    ] {
        if set {
            return Err(ctx.unsupported(
                &path.key(key),
                format!(
                    "tailgate queues, retries and times out per backend, so that a backend that \
                     leaves hands its data to the others; set protocol.otlp.{key} instead"
                ),
            ));
        }
    }
    if raw.routing_attributes.is_some() {
        return Err(ctx.unsupported(
            &path.key("routing_attributes"),
            "routing by attributes is not supported; use routing_key: traceID, service or resource",
        ));
    }
    let routing_key = match raw.routing_key.as_deref() {
        None | Some("") => None,
        Some("traceID") => Some(RoutingKey::TraceId),
        Some("service") => Some(RoutingKey::Service),
        Some("resource") => Some(RoutingKey::Resource),
        Some(other @ ("metric" | "streamID" | "attributes")) => {
            return Err(ctx.error(
                &path.key("routing_key"),
                Target::Value,
                ConfigErrorKind::Unsupported(format!(
                    "routing_key `{other}` is not supported; use traceID, service or resource"
                )),
            ))
        }
        Some(other) => {
            return Err(ctx.invalid(
                &path.key("routing_key"),
                format!("`{other}` is not a routing key; use traceID, service or resource"),
            ))
        }
    };
    // `protocol` or `protocol.otlp` left out (or empty) is the `otlp` exporter's defaults, as
    // the Collector's factory fills them in.
    let mut otlp = raw.protocol.and_then(|p| p.otlp).unwrap_or_default();
    // Static backends all written `http://...` with no `tls` block: configgrpc dials each in
    // plaintext, whatever the defaults say, so the backends' link is plaintext here too.
    let all_http = raw
        .resolver
        .as_ref()
        .and_then(|r| r.static_list.as_ref())
        .and_then(|s| s.hostnames.as_ref())
        .is_some_and(|h| !h.is_empty() && h.iter().all(|b| b.starts_with("http://")));
    if all_http && otlp.tls.is_none() {
        let mut tls = RawTls::default();
        tls.insecure = Some(true);
        otlp.tls = Some(tls);
    }
    let raw_protocol = RawProtocol { otlp: Some(otlp) };
    let protocol = check_protocol(Some(raw_protocol), &path.key("protocol"), ctx)?;
    let resolver = check_resolver(
        raw.resolver,
        &path.key("resolver"),
        path,
        Some(protocol.tls.is_some()),
        ctx,
    )?;
    Ok(LoadBalancingExporter {
        routing_key,
        protocol,
        resolver,
    })
}

/// `protocol.otlp` of a load balancer (or of the tier): every `otlp` key but `endpoint`, which
/// each backend's address fills in.
pub(super) fn check_protocol(
    raw: Option<RawProtocol>,
    protocol_path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<OtlpExporter, ConfigError> {
    let Some(otlp) = raw.and_then(|p| p.otlp) else {
        return Err(ctx.missing(protocol_path, "otlp"));
    };
    let otlp_path = protocol_path.key("otlp");
    if otlp.endpoint.is_some() {
        return Err(ctx.invalid(
            &otlp_path.key("endpoint"),
            "each backend's endpoint comes from the resolver; remove endpoint",
        ));
    }
    // As the Collector builds it: the backend's `host:port`, dialled with TLS unless
    // `tls.insecure: true`.
    let otlp = RawOtlp {
        endpoint: Some(format!("placeholder:{BACKEND_PORT_DEFAULT}")),
        ..otlp
    };
    let otlp = check_otlp(otlp, &otlp_path, ctx)?;
    if otlp.sending_queue.batch.is_some() {
        return Err(ctx.unsupported(
            &otlp_path.key("sending_queue").key("batch"),
            "batching per backend is not supported; batch in the pipeline (the `batch` \
             processor) before the load balancer",
        ));
    }
    Ok(otlp)
}

/// `resolver` of a load balancer (or of the tier): exactly one of `static` and `dns`;
/// `exporter` is the section it belongs to, for the error when it is missing.
/// `secure`: for a load balancer, whether its backends are dialled with TLS (`protocol.otlp`),
/// so that a static backend written with `http://` or `https://` (which configgrpc strips) can
/// be checked against it; `None` (the tier) takes no scheme.
pub(super) fn check_resolver(
    raw: Option<RawResolver>,
    path: &KeyPath,
    exporter: &KeyPath,
    secure: Option<bool>,
    ctx: &Ctx<'_>,
) -> Result<BackendResolver, ConfigError> {
    let Some(raw) = raw else {
        return Err(ctx.missing(exporter, "resolver"));
    };
    for (key, set) in [
        ("k8s", raw.k8s.is_some()),
        ("aws_cloud_map", raw.aws_cloud_map.is_some()),
    ] {
        if set {
            return Err(ctx.unsupported(
                &path.key(key),
                format!(
                    "the {key} resolver is not supported; use dns (for Kubernetes, the \
                     headless Service's name) or static"
                ),
            ));
        }
    }
    match (raw.static_list, raw.dns) {
        (Some(_), Some(_)) => Err(ctx.invalid(
            &path.key("dns"),
            "give one resolver: static or dns, not both",
        )),
        (None, None) => Err(ctx.missing(path, "static")),
        (Some(list), None) => {
            let list_path = path.key("static").key("hostnames");
            let hostnames = list.hostnames.unwrap_or_default();
            if hostnames.is_empty() {
                return Err(ctx.invalid(&list_path, "needs at least one backend"));
            }
            if hostnames.len() > BACKENDS_MAX {
                return Err(ctx.invalid(
                    &list_path,
                    format!(
                        "has {} backends; at most {BACKENDS_MAX} are allowed",
                        hostnames.len()
                    ),
                ));
            }
            let mut parsed: Vec<Endpoint> = Vec::with_capacity(hostnames.len());
            for (i, text) in hostnames.iter().enumerate() {
                let at = list_path.index(i);
                let bare =
                    match (secure, Scheme::strip(text)) {
                        (Some(secure), Some((scheme, bare))) => {
                            if (scheme == Scheme::Https) != secure {
                                return Err(ctx.invalid(
                                    &at,
                                    format!(
                                    "`{text}` says {}, but protocol.otlp dials every backend {}; \
                                     write the backend as host:port, or change protocol.otlp.tls",
                                    if scheme == Scheme::Https { "TLS" } else { "plaintext" },
                                    if secure { "with TLS" } else { "in plaintext" }
                                ),
                                ));
                            }
                            bare
                        }
                        _ => text.as_str(),
                    };
                let endpoint = backend_endpoint(bare).map_err(|why| ctx.invalid(&at, why))?;
                if parsed.contains(&endpoint) {
                    return Err(ctx.invalid(&at, format!("`{text}` is listed twice")));
                }
                parsed.push(endpoint);
            }
            Ok(BackendResolver::Static { hostnames: parsed })
        }
        (None, Some(dns)) => {
            let dns_path = path.key("dns");
            let hostname = match dns.hostname {
                Some(h) if !h.trim().is_empty() => h,
                _ => return Err(ctx.missing(&dns_path, "hostname")),
            };
            if hostname.contains(':') || hostname.contains('/') {
                return Err(ctx.invalid(
                    &dns_path.key("hostname"),
                    format!("`{hostname}` is not a host name; the port goes under `port`"),
                ));
            }
            let port = match dns.port {
                Some(UInt(p)) => in_range(ctx, &dns_path.key("port"), p, 1, 65535)? as u16,
                None => BACKEND_PORT_DEFAULT,
            };
            let bounded = |key: &str, value: Option<Dur>, default: Duration, max: Duration| {
                match value {
                    // The Collector reads 0 as its default.
                    Some(Dur(v)) if v.is_zero() => Ok(default),
                    Some(Dur(v)) => duration_at_most(ctx, &dns_path.key(key), v, max),
                    None => Ok(default),
                }
            };
            Ok(BackendResolver::Dns {
                hostname,
                port,
                interval: bounded(
                    "interval",
                    dns.interval,
                    DNS_INTERVAL_DEFAULT,
                    DNS_INTERVAL_MAX,
                )?,
                timeout: bounded("timeout", dns.timeout, DNS_TIMEOUT_DEFAULT, DNS_TIMEOUT_MAX)?,
            })
        }
    }
}

/// A static backend: `host`, `host:port` or `[v6]:port`; port 4317 when absent, as the
/// Collector's `endpointWithPort`.
fn backend_endpoint(text: &str) -> Result<Endpoint, String> {
    if text.contains("://") || text.contains('/') {
        return Err(format!(
            "`{text}`: a backend is host or host:port, without a scheme or path"
        ));
    }
    let with_port = if text.contains(':') {
        text.to_string()
    } else {
        format!("{text}:{BACKEND_PORT_DEFAULT}")
    };
    let endpoint = Endpoint::parse(&with_port)?;
    if endpoint.host.is_empty() || endpoint.port == 0 {
        return Err(format!("`{text}` needs a host and a port other than 0"));
    }
    Ok(endpoint)
}
