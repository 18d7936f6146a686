//! `service`: the pipelines that connect components, and the gateway's own telemetry.
//!
//! A pipeline is keyed by signal (`traces`, `metrics`, `logs`, each also as `SIGNAL/NAME`) and
//! lists components by id, as in the Collector. The checks here are the ones that need the whole
//! file: every id names a defined component that can serve the pipeline's signal, and every
//! connector joins pipelines of one signal, without a cycle, sending only to pipelines that
//! list it as a receiver.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;

use super::component::{in_range, Ctx, RawComponent, RawComponents};
use super::connectors::{Connector, Connectors};
use super::error::{ConfigError, ConfigErrorKind};
use super::exporters::{Exporter, Exporters};
use super::locate::Target;
use super::processors::{Processor, Processors};
use super::receivers::{listen_endpoint, Receivers};
use super::scalar::{Dur, Text, UInt};
use super::tls::{Pem, TlsClientSettings, TlsCommon, TlsVersion};
use super::values::{ComponentId, Endpoint, KeyPath};
use tailgate_wire::Signal;

/// `service.telemetry.metrics.address` when not given: loopback only, so self-metrics and
/// health endpoints are not exposed unless asked for.
pub const TELEMETRY_ADDRESS_DEFAULT: &str = "127.0.0.1:8888";
/// The most components one pipeline may list in each role.
pub const PIPELINE_COMPONENTS_MAX: usize = 64;

/// The `service` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The pipelines, in file order; at least one.
    pub pipelines: Vec<Pipeline>,
    /// `extensions`: the extensions started, each defined under `extensions`.
    pub extensions: Vec<ComponentId>,
    /// The gateway's own metrics and logs.
    pub telemetry: Telemetry,
}

impl Service {
    /// The pipeline with this id.
    pub fn pipeline(&self, id: &PipelineId) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| &p.id == id)
    }
}

/// A pipeline's id: its signal and optional name (`traces/sampled`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PipelineId {
    /// The signal the pipeline carries.
    pub signal: Signal,
    /// The name after `/`, if any.
    pub name: Option<String>,
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.signal.as_str())?;
        if let Some(name) = &self.name {
            write!(f, "/{name}")?;
        }
        Ok(())
    }
}

/// One pipeline: receivers → processors (in order) → exporters (fan-out). A receiver or an
/// exporter may be a connector (`Config::connectors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    /// Signal and name.
    pub id: PipelineId,
    /// Receivers feeding the pipeline; at least one, each defined in `receivers` or
    /// `connectors`.
    pub receivers: Vec<ComponentId>,
    /// Processors in order; each defined in `processors` and able to handle the signal.
    pub processors: Vec<ComponentId>,
    /// Exporters receiving everything the pipeline passes, each defined in `exporters` or
    /// `connectors`; at least one.
    pub exporters: Vec<ComponentId>,
}

impl Pipeline {
    /// Whether the pipeline takes data from the gateway's receivers (and not only from
    /// connectors): every delivery of its signal reaches it.
    pub fn is_entry(&self, connectors: &Connectors) -> bool {
        self.receivers.iter().any(|id| connectors.get(id).is_none())
    }
}

/// `service.telemetry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telemetry {
    /// `metrics`: where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics: TelemetryMetrics,
    /// `logs`: the gateway's log level.
    pub logs: TelemetryLogs,
    /// `resource`: the attributes describing this gateway in its own telemetry, as written
    /// (`None`: the attribute is removed), applied over `service.name` and `service.version`.
    pub resource: Vec<(String, Option<String>)>,
}

/// This process's `service.instance.id`: a version 4 UUID from the kernel's random source,
/// made once.
fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        use std::io::Read as _;
        let mut bytes = [0u8; 16];
        let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
        if read.is_err() {
            // No random source: the time and the process id, which still differ by node.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            bytes[..12].copy_from_slice(&nanos.to_le_bytes()[..12]);
            bytes[12..].copy_from_slice(&std::process::id().to_le_bytes());
        }
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    })
}

/// The most `resource` attributes and `logs.initial_fields` (each goes on every scrape or
/// every log line).
pub const TELEMETRY_FIELDS_MAX: usize = 64;

impl Telemetry {
    /// The resource attributes of this gateway's telemetry: `service.name` (`tailgate`),
    /// `service.version` and `service.instance.id` (a random UUID for this process, as the
    /// Collector sets one, so that pushed series of a fleet's nodes stay apart), with
    /// `resource` applied over them, in name order.
    pub fn resource_attributes(&self) -> Vec<(String, String)> {
        let mut attributes = std::collections::BTreeMap::from([
            ("service.name".to_string(), "tailgate".to_string()),
            (
                "service.version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            ("service.instance.id".to_string(), instance_id().to_string()),
        ]);
        for (name, value) in &self.resource {
            match value {
                Some(value) => attributes.insert(name.clone(), value.clone()),
                None => attributes.remove(name),
            };
        }
        attributes.into_iter().collect()
    }
}

/// `service.telemetry.metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryMetrics {
    /// The admin listen address (default `127.0.0.1:8888`).
    pub address: Endpoint,
    /// How much to record (default normal).
    pub level: MetricsLevel,
    /// Whether counter samples carry Prometheus' `_total` suffix: a Prometheus reader's
    /// `without_type_suffix: false` (default: no suffix, as the Collector serves by default).
    pub counter_total: bool,
    /// `readers[].periodic`: where the self-metrics are pushed over OTLP, and how often.
    pub pushes: Vec<MetricsPush>,
}

/// A periodic reader: the self-metrics pushed over OTLP every `interval`, as the Collector's
/// declarative telemetry configuration (otelconf v0.3) writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsPush {
    /// `interval` (default 60 s).
    pub interval: Duration,
    /// The bound on one push: the reader's `timeout` (default 30 s) or the exporter's
    /// (default 10 s), whichever is shorter.
    pub timeout: Duration,
    /// `exporter.otlp.protocol`.
    pub protocol: PushProtocol,
    /// gRPC: `host:port`; HTTP: the URL posted to (`/v1/metrics` when the endpoint has no path).
    pub endpoint: String,
    /// TLS to the endpoint (`https://`, or a bare gRPC `host:port` without `insecure: true`),
    /// with `certificate` as its CA and `client_certificate`/`client_key`; `None`: plaintext.
    pub tls: Option<TlsClientSettings>,
    /// `compression: gzip` (default none).
    pub gzip: bool,
    /// `headers` and `headers_list`.
    pub headers: Vec<(String, String)>,
}

/// `exporter.otlp.protocol` of a periodic reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushProtocol {
    /// `grpc`.
    Grpc,
    /// `http/protobuf`.
    HttpProtobuf,
}

/// `service.telemetry.metrics.level`: the Collector's `none` and `normal`. tailgate has one
/// set of self-metrics, the Collector's `normal` one: `basic` and `detailed` (which in the
/// Collector drop or add series) are read as `normal`, with a warning, so the configurations
/// the Collector's documentation writes (`detailed`) load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetricsLevel {
    /// No `/metrics`; `/healthz` and `/readyz` are still served.
    None,
    /// Every metric tailgate has (the default).
    Normal,
}

/// `service.telemetry.logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryLogs {
    /// The lowest level logged (default info).
    pub level: LogLevel,
    /// `encoding`: `console` (the default: text lines) or `json` (one JSON object a line).
    pub json: bool,
    /// `output_paths: [stdout]` (the default is standard error).
    pub to_stdout: bool,
    /// `initial_fields`: `name=value` pairs every log line carries, in name order.
    pub initial_fields: Vec<(String, String)>,
    /// `processors`: where the log's records are also pushed over OTLP.
    pub exports: Vec<LogsExport>,
}

/// A log processor (`service.telemetry.logs.processors[]`, otelconf v0.3): the gateway's log
/// records pushed over OTLP, batched as the SDK's batch processor batches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsExport {
    /// `schedule_delay` (default 1 s; a `simple` processor: none, each record at once).
    pub schedule_delay: Duration,
    /// The bound on one export: `export_timeout` (default 30 s) or the exporter's `timeout`
    /// (default 10 s), whichever is shorter.
    pub timeout: Duration,
    /// `max_queue_size` (default 2048): records waiting; past it a record is dropped, counted.
    pub max_queue_size: usize,
    /// `max_export_batch_size` (default 512; `simple`: 1), at most `max_queue_size`.
    pub max_export_batch_size: usize,
    /// `exporter.console`: each record written to standard output as a JSON line (the
    /// `exporter.otlp` fields below are then unused).
    pub console: bool,
    /// `exporter.otlp.protocol`.
    pub protocol: PushProtocol,
    /// gRPC: `host:port`; HTTP: the URL posted to (`/v1/logs` when the endpoint has no path).
    pub endpoint: String,
    /// TLS to the endpoint, as a periodic reader's.
    pub tls: Option<TlsClientSettings>,
    /// `compression: gzip` (default none).
    pub gzip: bool,
    /// `headers` and `headers_list`.
    pub headers: Vec<(String, String)>,
}

/// `service.telemetry.logs.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `debug`: everything below, and detail for debugging.
    Debug,
    /// `info`: everything below, and what the gateway is doing.
    Info,
    /// `warn`: errors, and what went wrong but was handled.
    Warn,
    /// `error`: errors only.
    Error,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawService {
    extensions: Option<Vec<String>>,
    pipelines: Option<RawComponents<RawPipeline>>,
    telemetry: Option<RawTelemetry>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPipeline {
    receivers: Option<Vec<String>>,
    processors: Option<Vec<String>>,
    exporters: Option<Vec<String>>,
}

impl RawComponent for RawPipeline {
    fn from_kind<'de, D: Deserializer<'de>>(_signal: &str, d: D) -> Result<Self, D::Error> {
        Ok(Option::<RawPipeline>::deserialize(d)?.unwrap_or_default())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTelemetry {
    metrics: Option<RawTelemetryMetrics>,
    logs: Option<RawTelemetryLogs>,
    resource: Option<RawResource>,
}

/// `service.telemetry.resource`, in either of the Collector's forms: the legacy map of
/// attribute names to values (`null` removes a default), or the declarative configuration's
/// `attributes: [{name, value, type}]`, `attributes_list: "k=v,..."` and `schema_url`, in the
/// order written. `detection/development` is refused.
#[derive(Default)]
struct RawResource {
    attributes: Vec<(String, Option<String>)>,
    detection: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResourceAttribute {
    name: String,
    value: Option<Text>,
    #[serde(rename = "type")]
    _kind: Option<String>,
}

impl<'de> Deserialize<'de> for RawResource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = RawResource;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of resource attributes, or `attributes: [{name, value}]`")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawResource, A::Error> {
                let mut out = RawResource::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "attributes" => {
                            for a in map.next_value::<Vec<RawResourceAttribute>>()? {
                                out.attributes.push((a.name, a.value.map(|Text(t)| t)));
                            }
                        }
                        "attributes_list" => {
                            let list = map.next_value::<String>()?;
                            for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
                                let (name, value) = pair.split_once('=').ok_or_else(|| {
                                    serde::de::Error::custom(format!(
                                        "attributes_list: `{pair}` is not name=value"
                                    ))
                                })?;
                                out.attributes.push((
                                    name.trim().to_string(),
                                    Some(value.trim().to_string()),
                                ));
                            }
                        }
                        "schema_url" => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        "detection/development" => {
                            map.next_value::<IgnoredAny>()?;
                            out.detection = true;
                        }
                        _ => {
                            let value = map.next_value::<Option<Text>>()?;
                            out.attributes.push((key, value.map(|Text(t)| t)));
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Either)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTelemetryMetrics {
    address: Option<String>,
    level: Option<String>,
    readers: Option<Vec<RawReader>>,
}

/// `service.telemetry.metrics.readers[]`: the Collector's current layout for where its
/// self-metrics go. tailgate serves one pull reader, a Prometheus endpoint.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawReader {
    pull: Option<RawPull>,
    periodic: Option<RawPeriodic>,
}

/// `readers[].periodic`, otelconf v0.3's layout: intervals in milliseconds.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPeriodic {
    interval: Option<UInt>,
    timeout: Option<UInt>,
    exporter: Option<RawPushExporter>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPushExporter {
    otlp: Option<RawPushOtlp>,
    console: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPushOtlp {
    protocol: Option<String>,
    endpoint: Option<String>,
    compression: Option<String>,
    timeout: Option<UInt>,
    headers: Option<Vec<RawNameValue>>,
    headers_list: Option<String>,
    insecure: Option<bool>,
    certificate: Option<String>,
    client_certificate: Option<String>,
    client_key: Option<String>,
    temporality_preference: Option<String>,
    default_histogram_aggregation: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawNameValue {
    name: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPull {
    exporter: Option<RawPullExporter>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPullExporter {
    prometheus: Option<RawPrometheus>,
}

/// A Prometheus pull exporter: where `/metrics` is served, and whether counters carry
/// `_total`. Its other options are unknown keys here, refused by name.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPrometheus {
    host: Option<String>,
    port: Option<UInt>,
    without_type_suffix: Option<bool>,
    without_units: Option<bool>,
    without_scope_info: Option<bool>,
}

/// `readers[].pull.exporter.prometheus.host` when not given.
const PROMETHEUS_HOST_DEFAULT: &str = "localhost";
/// `readers[].pull.exporter.prometheus.port` when not given.
const PROMETHEUS_PORT_DEFAULT: u64 = 8888;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTelemetryLogs {
    level: Option<String>,
    initial_fields: Option<std::collections::BTreeMap<String, Text>>,
    encoding: Option<String>,
    output_paths: Option<Vec<String>>,
    error_output_paths: Option<Vec<String>>,
    sampling: Option<RawLogSampling>,
    processors: Option<Vec<RawLogProcessor>>,
    // zap's: tailgate's log lines carry no caller and no stack trace, so these change nothing.
    #[serde(rename = "development")]
    _development: Option<bool>,
    #[serde(rename = "disable_caller")]
    _disable_caller: Option<bool>,
    #[serde(rename = "disable_stacktrace")]
    _disable_stacktrace: Option<bool>,
}

/// `logs.processors[]`: a `batch` or a `simple` processor.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLogProcessor {
    batch: Option<RawBatchLogProcessor>,
    simple: Option<RawSimpleLogProcessor>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawBatchLogProcessor {
    schedule_delay: Option<UInt>,
    export_timeout: Option<UInt>,
    max_queue_size: Option<UInt>,
    max_export_batch_size: Option<UInt>,
    exporter: Option<RawPushExporter>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSimpleLogProcessor {
    exporter: Option<RawPushExporter>,
}

/// `logs.sampling`: zap's sampler of repeated lines. tailgate does not sample its log; only
/// `enabled: false` is taken.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLogSampling {
    enabled: Option<bool>,
    #[serde(rename = "tick")]
    _tick: Option<Dur>,
    #[serde(rename = "initial")]
    _initial: Option<UInt>,
    #[serde(rename = "thereafter")]
    _thereafter: Option<UInt>,
}

/// The components a pipeline may use.
pub(crate) struct Components<'a> {
    pub(crate) receivers: &'a Receivers,
    pub(crate) processors: &'a Processors,
    pub(crate) exporters: &'a Exporters,
    pub(crate) connectors: &'a Connectors,
}

impl RawService {
    /// `service.extensions`, taken out to be checked against `extensions` first.
    pub(crate) fn take_extensions(&mut self) -> Option<Vec<String>> {
        self.extensions.take()
    }
}

/// Checks `raw`; `extensions` is `service.extensions`, checked already.
pub(crate) fn check(
    raw: RawService,
    extensions: Vec<ComponentId>,
    components: &Components<'_>,
    ctx: &Ctx<'_>,
) -> Result<Service, ConfigError> {
    let path = KeyPath::root().key("service");
    let pipelines_path = path.key("pipelines");
    let raw_pipelines = match raw.pipelines {
        Some(p) if !p.0.is_empty() => p.0,
        _ => {
            return Err(ctx.error(
                &pipelines_path,
                Target::Key,
                ConfigErrorKind::InvalidValue(
                    "at least one pipeline is needed (traces, metrics or logs)".into(),
                ),
            ))
        }
    };
    check_connector_ids(components, ctx)?;
    let mut pipelines: Vec<Pipeline> = Vec::with_capacity(raw_pipelines.len());
    let mut keys = Vec::with_capacity(raw_pipelines.len());
    for (key, raw) in raw_pipelines {
        let pipeline = check_pipeline(&key, raw, &pipelines_path, components, ctx)?;
        check_against_earlier(
            &pipeline,
            &pipelines,
            &pipelines_path.key(key.as_str()),
            components,
            ctx,
        )?;
        pipelines.push(pipeline);
        keys.push(key);
    }
    check_connections(&pipelines, &keys, &pipelines_path, components, ctx)?;
    let telemetry = check_telemetry(
        raw.telemetry.unwrap_or_default(),
        &path.key("telemetry"),
        ctx,
    )?;
    Ok(Service {
        pipelines,
        extensions,
        telemetry,
    })
}

/// The roles a pipeline lists components in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Receiver,
    Processor,
    Exporter,
}

impl Role {
    fn key(self) -> &'static str {
        match self {
            Role::Receiver => "receivers",
            Role::Processor => "processors",
            Role::Exporter => "exporters",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Role::Receiver => "receiver",
            Role::Processor => "processor",
            Role::Exporter => "exporter",
        }
    }
}

fn check_pipeline(
    key: &str,
    raw: RawPipeline,
    section: &KeyPath,
    components: &Components<'_>,
    ctx: &Ctx<'_>,
) -> Result<Pipeline, ConfigError> {
    let path = section.key(key);
    let id = ctx.component_id(section, key)?;
    let signal = match id.kind.as_str() {
        "traces" => Signal::Traces,
        "metrics" => Signal::Metrics,
        "logs" => Signal::Logs,
        "profiles" => {
            return Err(ctx.unsupported(&path, "profiles pipelines are not supported"));
        }
        other => {
            return Err(ctx.error(
                &path,
                Target::Key,
                ConfigErrorKind::InvalidValue(format!(
                    "`{other}` is not a signal; a pipeline is `traces`, `metrics` or `logs` \
                     (optionally with `/NAME`)"
                )),
            ))
        }
    };
    let id = PipelineId {
        signal,
        name: id.name,
    };
    let list = |role: Role, raw: Option<Vec<String>>| {
        check_list(&id, role, raw.unwrap_or_default(), &path, components, ctx)
    };
    let receivers = list(Role::Receiver, raw.receivers)?;
    let processors = list(Role::Processor, raw.processors)?;
    let exporters = list(Role::Exporter, raw.exporters)?;
    Ok(Pipeline {
        id,
        receivers,
        processors,
        exporters,
    })
}

fn check_list(
    pipeline: &PipelineId,
    role: Role,
    names: Vec<String>,
    path: &KeyPath,
    components: &Components<'_>,
    ctx: &Ctx<'_>,
) -> Result<Vec<ComponentId>, ConfigError> {
    let list_path = path.key(role.key());
    if names.is_empty() && role != Role::Processor {
        return Err(ctx.error(
            path,
            Target::Key,
            ConfigErrorKind::Reference(format!(
                "pipeline `{pipeline}` needs at least one {}",
                role.noun()
            )),
        ));
    }
    if names.len() > PIPELINE_COMPONENTS_MAX {
        return Err(ctx.invalid(
            &list_path,
            format!(
                "lists {} {}; at most {PIPELINE_COMPONENTS_MAX} are allowed",
                names.len(),
                role.key()
            ),
        ));
    }
    let mut seen = HashSet::new();
    let mut ids = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let at = list_path.index(i);
        let reference =
            |why: String| ctx.error(&at, Target::Value, ConfigErrorKind::Reference(why));
        let id = ComponentId::parse(name).map_err(|why| ctx.invalid(&at, why))?;
        if !seen.insert(id.clone()) {
            return Err(reference(format!(
                "pipeline `{pipeline}` lists {} `{id}` twice",
                role.noun()
            )));
        }
        let connector = components.connectors.get(&id).is_some() && role != Role::Processor;
        let exists = connector
            || match role {
                Role::Receiver => components.receivers.get(&id).is_some(),
                Role::Processor => components.processors.get(&id).is_some(),
                Role::Exporter => components.exporters.get(&id).is_some(),
            };
        if !exists {
            let defined: Vec<String> = match role {
                Role::Receiver => components
                    .receivers
                    .by_id
                    .keys()
                    .map(ToString::to_string)
                    .collect(),
                Role::Processor => components
                    .processors
                    .by_id
                    .keys()
                    .map(ToString::to_string)
                    .collect(),
                Role::Exporter => components
                    .exporters
                    .by_id
                    .keys()
                    .map(ToString::to_string)
                    .collect(),
            };
            let mut defined = defined;
            if role != Role::Processor {
                defined.extend(components.connectors.by_id.keys().map(ToString::to_string));
            }
            let defined = if defined.is_empty() {
                format!("no {} are defined", role.key())
            } else {
                format!("defined: {}", defined.join(", "))
            };
            let sections = match role {
                Role::Processor => "`processors`".to_string(),
                _ => format!("`{}` or `connectors`", role.key()),
            };
            return Err(reference(format!(
                "pipeline `{pipeline}` uses {} `{id}`, which is not defined under {sections} \
                 ({defined})",
                role.noun(),
            )));
        }
        if let (Role::Processor, Some(Processor::Attributes(attributes))) =
            (role, components.processors.get(&id))
        {
            if let Some(why) = attributes.refusal(pipeline.signal) {
                return Err(reference(format!(
                    "pipeline `{pipeline}` uses `{id}`: {why}"
                )));
            }
        }
        if role == Role::Processor && pipeline.signal != Signal::Traces {
            if let Some(Processor::TailSampling(_)) = components.processors.get(&id) {
                return Err(reference(format!(
                    "pipeline `{pipeline}` uses `{id}`, but tail_sampling works on traces only"
                )));
            }
        }
        if role == Role::Exporter {
            if let Some(Exporter::LoadBalancing(lb)) = components.exporters.get(&id) {
                if lb.routing_key(pipeline.signal).is_none() {
                    let written = lb.routing_key.map_or("", |k| k.as_str());
                    return Err(reference(format!(
                        "pipeline `{pipeline}` uses `{id}`, whose routing_key `{written}` does \
                         not route {}: traces take traceID or service, metrics service or \
                         resource, logs traceID",
                        pipeline.signal.as_str()
                    )));
                }
            }
            if let Some(Exporter::OtlpHttp(http)) = components.exporters.get(&id) {
                if http.url(pipeline.signal).is_none() {
                    let signal = pipeline.signal.as_str();
                    return Err(reference(format!(
                        "pipeline `{pipeline}` uses `{id}`, which has neither `endpoint` nor \
                         `{signal}_endpoint` for {signal}"
                    )));
                }
            }
        }
        ids.push(id);
    }
    Ok(ids)
}

/// What tailgate's routing needs of the pipelines together, checked as each is added: a
/// delivery reaching the shard that owns it carries its signal, not the receiver it came
/// through, so a signal's data goes to every entry pipeline of that signal (one that takes from
/// the gateway's receivers, not only from connectors), and those pipelines must take the same
/// receivers (or the Collector's routing would change); and each shard runs one trace buffer,
/// so one pipeline at most may use `tail_sampling`.
fn check_against_earlier(
    pipeline: &Pipeline,
    earlier: &[Pipeline],
    path: &KeyPath,
    components: &Components<'_>,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    // Connectors feed only the pipelines they name; the gateway's receivers feed every entry
    // pipeline of their signal.
    let connectors = components.connectors;
    let names = |p: &Pipeline| {
        let mut names: Vec<String> = p
            .receivers
            .iter()
            .filter(|id| connectors.get(id).is_none())
            .map(ToString::to_string)
            .collect();
        names.sort();
        names
    };
    let same_signal = earlier
        .iter()
        .filter(|p| p.is_entry(connectors))
        .find(|p| p.id.signal == pipeline.id.signal);
    let entry = pipeline.is_entry(connectors);
    if let Some(first) = same_signal.filter(|first| entry && names(first) != names(pipeline)) {
        let signal = pipeline.id.signal.as_str();
        return Err(ctx.error(
            &path.key("receivers"),
            Target::Key,
            ConfigErrorKind::Unsupported(format!(
                "pipeline `{}` takes receivers [{}], but `{}` takes [{}]; tailgate sends a \
                 signal's data to every pipeline of that signal, so all {signal} pipelines must \
                 list the same receivers (to route by a resource attribute, use the `routing` \
                 connector; to route by receiver, run one tailgate per route)",
                pipeline.id,
                names(pipeline).join(", "),
                first.id,
                names(first).join(", ")
            )),
        ));
    }
    let tail_sampling = |p: &Pipeline| {
        p.processors.iter().position(|id| {
            matches!(
                components.processors.get(id),
                Some(Processor::TailSampling(_))
            )
        })
    };
    if let Some(index) = tail_sampling(pipeline) {
        if let Some(first) = earlier.iter().find(|p| tail_sampling(p).is_some()) {
            return Err(ctx.error(
                &path.key("processors").index(index),
                Target::Value,
                ConfigErrorKind::Unsupported(format!(
                    "pipeline `{}` uses tail_sampling, and so does `{}`; tailgate runs one \
                     trace buffer per shard, for one sampled traces pipeline: sample in one \
                     pipeline and fan out to several exporters from it",
                    pipeline.id, first.id
                )),
            ));
        }
    }
    Ok(())
}

/// A connector's id may not also be a receiver's or an exporter's: a pipeline naming it would
/// be ambiguous (the Collector refuses it too).
fn check_connector_ids(components: &Components<'_>, ctx: &Ctx<'_>) -> Result<(), ConfigError> {
    for id in components.connectors.by_id.keys() {
        let clash = if components.receivers.get(id).is_some() {
            Some("receiver")
        } else if components.exporters.get(id).is_some() {
            Some("exporter")
        } else {
            None
        };
        if let Some(what) = clash {
            return Err(ctx.invalid(
                &KeyPath::root().key("connectors").key(id.to_string()),
                format!("connector `{id}` has the id of a defined {what}; rename one of them"),
            ));
        }
    }
    Ok(())
}

/// Where connector `id`'s settings name pipeline `target`, for errors.
fn target_path(id: &ComponentId, connector: &Connector, target: &PipelineId) -> KeyPath {
    let at = KeyPath::root().key("connectors").key(id.to_string());
    match connector {
        Connector::Routing(routing) => {
            for (i, route) in routing.table.iter().enumerate() {
                if let Some(j) = route.pipelines.iter().position(|p| p == target) {
                    return at.key("table").index(i).key("pipelines").index(j);
                }
            }
            match routing.default_pipelines.iter().position(|p| p == target) {
                Some(j) => at.key("default_pipelines").index(j),
                None => at,
            }
        }
        Connector::Failover(failover) => {
            for (i, level) in failover.priority_levels.iter().enumerate() {
                if let Some(j) = level.iter().position(|p| p == target) {
                    return at.key("priority_levels").index(i).index(j);
                }
            }
            at
        }
    }
}

/// What connectors need of the pipelines together, checked once all are read: a connector
/// used on one side is used on the other; it joins pipelines of one signal (`routing` and
/// `failover` connect a signal to itself); it names only pipelines that list it as a receiver;
/// and no data can come back round to a pipeline it left.
fn check_connections(
    pipelines: &[Pipeline],
    keys: &[String],
    section: &KeyPath,
    components: &Components<'_>,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    let reference = |path: &KeyPath, why: String| {
        ctx.error(path, Target::Value, ConfigErrorKind::Reference(why))
    };
    // Where pipeline `p` lists `id` in `role`.
    let listed_at = |p: usize, role: Role, id: &ComponentId| {
        let list = match role {
            Role::Receiver => &pipelines[p].receivers,
            _ => &pipelines[p].exporters,
        };
        let i = list.iter().position(|x| x == id).unwrap_or(0);
        section.key(keys[p].as_str()).key(role.key()).index(i)
    };
    for (id, connector) in &components.connectors.by_id {
        let sources: Vec<usize> = (0..pipelines.len())
            .filter(|&p| pipelines[p].exporters.contains(id))
            .collect();
        let sinks: Vec<usize> = (0..pipelines.len())
            .filter(|&p| pipelines[p].receivers.contains(id))
            .collect();
        match (sources.first(), sinks.first()) {
            (None, None) => continue,
            (Some(&p), None) => {
                return Err(reference(
                    &listed_at(p, Role::Exporter, id),
                    format!(
                        "connector `{id}` is an exporter of pipeline `{}` but no pipeline lists \
                         it as a receiver",
                        pipelines[p].id
                    ),
                ))
            }
            (None, Some(&p)) => {
                return Err(reference(
                    &listed_at(p, Role::Receiver, id),
                    format!(
                        "connector `{id}` is a receiver of pipeline `{}` but no pipeline lists \
                         it as an exporter",
                        pipelines[p].id
                    ),
                ))
            }
            (Some(_), Some(_)) => {}
        }
        let signal = pipelines[sources[0]].id.signal;
        for (&p, role) in sources
            .iter()
            .map(|p| (p, Role::Exporter))
            .chain(sinks.iter().map(|p| (p, Role::Receiver)))
        {
            if pipelines[p].id.signal != signal {
                return Err(reference(
                    &listed_at(p, role, id),
                    format!(
                        "connector `{id}` joins {} and {} pipelines (`{}` and `{}`); routing \
                         and failover connect pipelines of one signal",
                        signal.as_str(),
                        pipelines[p].id.signal.as_str(),
                        pipelines[sources[0]].id,
                        pipelines[p].id
                    ),
                ));
            }
        }
        if let Connector::Failover(failover) = connector {
            check_levels_fed_only_by(id, failover, pipelines, keys, section, ctx)?;
        }
        if let Connector::Routing(routing) = connector {
            let wrong = routing
                .table
                .iter()
                .filter_map(|route| route.condition.item_signal())
                .find(|&(routes, _)| routes != signal);
            if let Some((routes, context)) = wrong {
                let routes = routes.as_str();
                return Err(reference(
                    &listed_at(sources[0], Role::Exporter, id),
                    format!(
                        "connector `{id}` routes by {context} (a route with `context: \
                         {context}`), and pipeline `{}` is a {} pipeline; the {context} context \
                         routes {routes}",
                        pipelines[sources[0]].id,
                        signal.as_str()
                    ),
                ));
            }
        }
        for target in connector.targets() {
            if !sinks.iter().any(|&p| &pipelines[p].id == target) {
                let exists = pipelines.iter().any(|p| &p.id == target);
                let why = if exists {
                    format!(
                        "connector `{id}` sends to pipeline `{target}`, which does not list \
                         `{id}` among its receivers"
                    )
                } else {
                    format!("connector `{id}` sends to pipeline `{target}`, which is not defined")
                };
                return Err(reference(&target_path(id, connector, target), why));
            }
        }
    }
    check_no_cycle(pipelines, keys, section, components, ctx)
}

/// A failover level's pipelines take data from that failover connector only: the level's
/// health is read from the pipelines' exporters, and what they fail is handed to the next
/// level, which would be wrong for data that came another way.
fn check_levels_fed_only_by(
    id: &ComponentId,
    failover: &super::connectors::Failover,
    pipelines: &[Pipeline],
    keys: &[String],
    section: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    for level in &failover.priority_levels {
        for target in level {
            let Some(p) = pipelines.iter().position(|p| &p.id == target) else {
                continue;
            };
            if let Some(i) = pipelines[p].receivers.iter().position(|r| r != id) {
                return Err(ctx.error(
                    &section.key(keys[p].as_str()).key("receivers").index(i),
                    Target::Value,
                    ConfigErrorKind::Unsupported(format!(
                        "pipeline `{}` is a priority level of failover connector `{id}` and \
                         also takes data from `{}`; tailgate reads a level's health from its \
                         pipelines' exporters and hands what they fail to the next level, so a \
                         level's pipelines take data from their failover connector only",
                        pipelines[p].id, pipelines[p].receivers[i]
                    )),
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a loop of pipelines through connectors (the Collector refuses it too): data would
/// circle without end.
fn check_no_cycle(
    pipelines: &[Pipeline],
    keys: &[String],
    section: &KeyPath,
    components: &Components<'_>,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    // next[p]: the pipelines p's connectors send to.
    let next: Vec<Vec<usize>> = pipelines
        .iter()
        .map(|p| {
            p.exporters
                .iter()
                .filter_map(|id| components.connectors.get(id).map(|c| (id, c)))
                .flat_map(|(id, c)| {
                    c.targets()
                        .into_iter()
                        .filter_map(|t| pipelines.iter().position(|q| &q.id == t))
                        .filter(move |&q| pipelines[q].receivers.contains(id))
                })
                .collect()
        })
        .collect();
    // Depth-first with colours: 0 unseen, 1 on the current path, 2 done. Iterative, so a long
    // chain cannot exhaust the stack.
    let mut colour = vec![0u8; pipelines.len()];
    for start in 0..pipelines.len() {
        if colour[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        colour[start] = 1;
        while let Some(&mut (p, ref mut i)) = stack.last_mut() {
            if let Some(&q) = next[p].get(*i) {
                *i += 1;
                match colour[q] {
                    0 => {
                        colour[q] = 1;
                        stack.push((q, 0));
                    }
                    1 => {
                        let path: Vec<String> = stack
                            .iter()
                            .skip_while(|(x, _)| *x != q)
                            .map(|(x, _)| pipelines[*x].id.to_string())
                            .chain(std::iter::once(pipelines[q].id.to_string()))
                            .collect();
                        return Err(ctx.error(
                            &section.key(keys[q].as_str()),
                            Target::Key,
                            ConfigErrorKind::Reference(format!(
                                "pipelines form a cycle through connectors: {}",
                                path.join(" → ")
                            )),
                        ));
                    }
                    _ => {}
                }
            } else {
                colour[p] = 2;
                stack.pop();
            }
        }
    }
    Ok(())
}

/// A pull reader: where `/metrics` is served, and whether counters carry `_total`.
type PullReader = (Endpoint, bool);

/// The most periodic readers.
const PUSHES_MAX: usize = 4;
/// A periodic reader's `interval` and `timeout`, and its exporter's `timeout`, when not given.
const PUSH_INTERVAL_DEFAULT: Duration = Duration::from_secs(60);
const PUSH_READER_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
const PUSH_EXPORT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// The bounds on those, in milliseconds.
const PUSH_INTERVAL_MS_MIN: u64 = 100;
const PUSH_INTERVAL_MS_MAX: u64 = 24 * 3600 * 1000;
const PUSH_TIMEOUT_MS_MAX: u64 = 600 * 1000;

/// `readers`: at most one Prometheus pull reader, whose host and port are where `/metrics` (and
/// the admin endpoint's other paths) are served, and whether counters carry `_total`; and the
/// periodic readers. Without a pull reader the admin endpoint stays at its default address.
fn check_readers(
    readers: Vec<RawReader>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<(Option<PullReader>, Vec<MetricsPush>), ConfigError> {
    let mut pull = None;
    let mut pushes = Vec::new();
    for (i, reader) in readers.into_iter().enumerate() {
        let at = path.index(i);
        match (reader.pull, reader.periodic) {
            (Some(raw), None) => {
                if pull.is_some() {
                    return Err(ctx.invalid(
                        &at,
                        "a second pull reader; tailgate serves its self-metrics for scraping on \
                         one address",
                    ));
                }
                pull = Some(pull_reader(raw, &at.key("pull"), ctx)?);
            }
            (None, Some(raw)) => {
                if pushes.len() == PUSHES_MAX {
                    return Err(
                        ctx.invalid(&at, format!("more than {PUSHES_MAX} periodic readers"))
                    );
                }
                pushes.push(periodic_reader(raw, &at.key("periodic"), ctx)?);
            }
            (Some(_), Some(_)) => {
                return Err(ctx.invalid(&at, "a reader is `pull` or `periodic`, not both"))
            }
            (None, None) => return Err(ctx.missing(&at, "pull")),
        }
    }
    Ok((pull, pushes))
}

/// A periodic reader, read as otelconf v0.3 reads it.
fn periodic_reader(
    raw: RawPeriodic,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<MetricsPush, ConfigError> {
    // 0 is the default, as the SDK reads it.
    let millis =
        |key: &KeyPath, value: Option<UInt>, min: u64, max: u64, default: Duration| match value {
            Some(UInt(ms)) if ms > 0 => in_range(ctx, key, ms, min, max).map(Duration::from_millis),
            _ => Ok(default),
        };
    let interval = millis(
        &path.key("interval"),
        raw.interval,
        PUSH_INTERVAL_MS_MIN,
        PUSH_INTERVAL_MS_MAX,
        PUSH_INTERVAL_DEFAULT,
    )?;
    let reader_timeout = millis(
        &path.key("timeout"),
        raw.timeout,
        1,
        PUSH_TIMEOUT_MS_MAX,
        PUSH_READER_TIMEOUT_DEFAULT,
    )?;
    let (exporter, export_timeout) = push_exporter(raw.exporter, path, ctx, "/v1/metrics", true)?;
    Ok(MetricsPush {
        interval,
        timeout: reader_timeout.min(export_timeout),
        protocol: exporter.protocol,
        endpoint: exporter.endpoint,
        tls: exporter.tls,
        gzip: exporter.gzip,
        headers: exporter.headers,
    })
}

/// An otelconf OTLP exporter, checked: where and how a periodic reader or a log processor
/// pushes.
struct PushExporter {
    protocol: PushProtocol,
    endpoint: String,
    tls: Option<TlsClientSettings>,
    gzip: bool,
    headers: Vec<(String, String)>,
}

/// The `exporter` of a reader or log processor at `path`, as otelconf v0.3 reads it; an HTTP
/// endpoint without a path posts to `default_path`; `metrics` takes the metric exporter's own
/// keys (`temporality_preference`, `default_histogram_aggregation`). With its `timeout`.
fn push_exporter(
    exporter: Option<RawPushExporter>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
    default_path: &str,
    metrics: bool,
) -> Result<(PushExporter, Duration), ConfigError> {
    // 0 is the default, as the SDK reads it.
    let millis =
        |key: &KeyPath, value: Option<UInt>, min: u64, max: u64, default: Duration| match value {
            Some(UInt(ms)) if ms > 0 => in_range(ctx, key, ms, min, max).map(Duration::from_millis),
            _ => Ok(default),
        };
    let Some(exporter) = exporter else {
        return Err(ctx.missing(path, "exporter"));
    };
    let at = path.key("exporter");
    if exporter.console.is_some() {
        return Err(ctx.error(
            &at.key("console"),
            Target::Key,
            ConfigErrorKind::Unsupported(
                "the console exporter is not supported; push over `otlp`, or scrape /metrics"
                    .to_string(),
            ),
        ));
    }
    let Some(otlp) = exporter.otlp else {
        return Err(ctx.missing(&at, "otlp"));
    };
    let at = at.key("otlp");
    let protocol = match otlp.protocol.as_deref() {
        Some("grpc") => PushProtocol::Grpc,
        Some("http/protobuf") => PushProtocol::HttpProtobuf,
        Some(other) => {
            return Err(ctx.invalid(
                &at.key("protocol"),
                format!(
                    "`{other}` is not a protocol tailgate pushes in; use grpc or http/protobuf"
                ),
            ))
        }
        None => return Err(ctx.missing(&at, "protocol")),
    };
    let Some(text) = otlp.endpoint.filter(|e| !e.is_empty()) else {
        return Err(ctx.missing(&at, "endpoint"));
    };
    // The endpoint is not echoed: it may carry credentials.
    let bad_endpoint = |why: &str| ctx.invalid(&at.key("endpoint"), why.to_string());
    let (endpoint, secure) = match protocol {
        PushProtocol::Grpc => {
            let (secure, rest) = match text.split_once("://") {
                Some(("http", rest)) => (false, rest),
                Some(("https", rest)) => (true, rest),
                Some(_) => return Err(bad_endpoint("write host:port, http:// or https://")),
                None => (otlp.insecure != Some(true), text.as_str()),
            };
            let rest = rest.trim_end_matches('/');
            Endpoint::parse(rest).map_err(|_| {
                bad_endpoint("not host:port, http://host:port or https://host:port")
            })?;
            (rest.to_string(), secure)
        }
        PushProtocol::HttpProtobuf => {
            // A bare host:port is https://, or http:// with `insecure: true`, as the
            // Collector normalizes it.
            let full = if text.contains("://") {
                text.clone()
            } else if otlp.insecure == Some(true) {
                format!("http://{text}")
            } else {
                format!("https://{text}")
            };
            let mut url = super::values::HttpUrl::parse(&full).map_err(|_| {
                bad_endpoint("not an http:// or https:// URL (without user information or query)")
            })?;
            let secure = url.scheme.as_str() == "https";
            // As otlpmetrichttp and otlploghttp: the URL's path when it has one, the signal's
            // (`/v1/metrics`, `/v1/logs`) when not (a
            // bare `/` too, which Go would post to as written and no OTLP receiver serves).
            if url.path == "/" {
                url.path = default_path.to_string();
            }
            (url.to_string(), secure)
        }
    };
    let gzip = match otlp.compression.as_deref() {
        None | Some("none") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(ctx.invalid(
                &at.key("compression"),
                format!("`{other}` is not a compression here; use gzip or none"),
            ))
        }
    };
    let export_timeout = millis(
        &at.key("timeout"),
        otlp.timeout,
        1,
        PUSH_TIMEOUT_MS_MAX,
        PUSH_EXPORT_TIMEOUT_DEFAULT,
    )?;
    if !metrics {
        for (key, given) in [
            (
                "temporality_preference",
                otlp.temporality_preference.is_some(),
            ),
            (
                "default_histogram_aggregation",
                otlp.default_histogram_aggregation.is_some(),
            ),
        ] {
            if given {
                return Err(ctx.invalid(
                    &at.key(key),
                    format!("`{key}` is a metric exporter's key; a log exporter has none"),
                ));
            }
        }
    }
    match otlp.temporality_preference.as_deref() {
        None | Some("cumulative") => {}
        Some(other) => {
            return Err(ctx.error(
                &at.key("temporality_preference"),
                Target::Value,
                ConfigErrorKind::Unsupported(format!(
                    "`{other}` is not supported: tailgate pushes its self-metrics cumulative"
                )),
            ))
        }
    }
    match otlp.default_histogram_aggregation.as_deref() {
        None | Some("explicit_bucket_histogram") => {}
        Some(other) => {
            return Err(ctx.error(
                &at.key("default_histogram_aggregation"),
                Target::Value,
                ConfigErrorKind::Unsupported(format!(
                    "`{other}` is not supported: tailgate's histograms have explicit buckets"
                )),
            ))
        }
    }
    let mut headers = Vec::new();
    if let Some(list) = otlp
        .headers_list
        .as_deref()
        .filter(|l| !l.trim().is_empty())
    {
        // As W3C baggage, which otelconf parses it as: members split by `,`, each `name=value`
        // with `;properties` dropped and the value percent-decoded. Errors name the member by
        // its place only: values are often credentials.
        for (i, member) in list.split(',').enumerate() {
            let member = member.split(';').next().unwrap_or("");
            let decoded = member.split_once('=').and_then(|(name, value)| {
                let value =
                    String::from_utf8(tailgate_wire::grpc::percent_decode(value.trim().as_bytes()))
                        .ok()?;
                Some((name.trim().to_string(), value))
            });
            match decoded {
                Some((name, value)) if !name.is_empty() && !name.contains(' ') => {
                    headers.push((name, value))
                }
                _ => {
                    return Err(ctx.invalid(
                        &at.key("headers_list"),
                        format!("member {} is not name=value", i + 1),
                    ))
                }
            }
        }
    }
    for pair in otlp.headers.unwrap_or_default() {
        // An entry without a value is skipped, as otelconf skips it.
        let (Some(name), Some(value)) = (pair.name, pair.value) else {
            continue;
        };
        // `headers` wins over `headers_list`, as otelconf merges them.
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        headers.push((name, value));
    }
    if headers.len() > super::exporters::HEADERS_MAX {
        return Err(ctx.invalid(
            &at.key("headers"),
            format!(
                "{} headers; at most {}",
                headers.len(),
                super::exporters::HEADERS_MAX
            ),
        ));
    }
    for (name, value) in &headers {
        if !super::values::is_header_name(name) {
            return Err(ctx.invalid(
                &at.key("headers"),
                format!("`{name}` is not an HTTP header name"),
            ));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ctx.invalid(
                &at.key("headers"),
                format!("the value of `{name}` has a control character"),
            ));
        }
    }
    let files = [
        ("certificate", &otlp.certificate),
        ("client_certificate", &otlp.client_certificate),
        ("client_key", &otlp.client_key),
    ];
    if !secure {
        if let Some((key, _)) = files.iter().find(|(_, f)| f.is_some()) {
            return Err(ctx.invalid(
                &at.key(*key),
                "the endpoint is plaintext (http://, or `insecure: true`): a certificate has \
                 no use",
            ));
        }
    }
    if otlp.client_certificate.is_some() != otlp.client_key.is_some() {
        return Err(ctx.invalid(&at, "client_certificate and client_key go together"));
    }
    let tls = secure.then(|| TlsClientSettings {
        common: TlsCommon {
            ca: otlp.certificate.map(|f| Pem::File(f.into())),
            cert: otlp.client_certificate.map(|f| Pem::File(f.into())),
            key: otlp.client_key.map(|f| Pem::File(f.into())),
            include_system_ca_certs_pool: false,
            min_version: TlsVersion::V1_2,
            max_version: TlsVersion::V1_3,
            cipher_suites: Vec::new(),
            curve_preferences: Vec::new(),
            reload_interval: None,
        },
        insecure_skip_verify: false,
        server_name_override: None,
    });
    Ok((
        PushExporter {
            protocol,
            endpoint,
            tls,
            gzip,
            headers,
        },
        export_timeout,
    ))
}

/// The most log processors.
const LOG_EXPORTS_MAX: usize = 4;
/// `max_queue_size` when not given (the SDK's), and the most it may be.
const LOG_QUEUE_DEFAULT: u64 = 2048;
const LOG_QUEUE_MAX: u64 = 1 << 16;
/// `max_export_batch_size` when not given (the SDK's).
const LOG_BATCH_DEFAULT: u64 = 512;
/// `schedule_delay` and `export_timeout` when not given (the SDK's).
const LOG_DELAY_DEFAULT: Duration = Duration::from_secs(1);
const LOG_EXPORT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// The log processors at `path`, as otelconf v0.3 reads them.
fn log_processors(
    raw: Vec<RawLogProcessor>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Vec<LogsExport>, ConfigError> {
    if raw.len() > LOG_EXPORTS_MAX {
        return Err(ctx.invalid(path, format!("more than {LOG_EXPORTS_MAX} log processors")));
    }
    let mut exports = Vec::with_capacity(raw.len());
    for (i, processor) in raw.into_iter().enumerate() {
        let at = path.index(i);
        let export = match (processor.batch, processor.simple) {
            (Some(batch), None) => {
                let at = at.key("batch");
                let millis = |key: &str, value: Option<UInt>, default: Duration| match value {
                    // 0 is the default, as the SDK reads it.
                    Some(UInt(ms)) if ms > 0 => {
                        in_range(ctx, &at.key(key), ms, 1, PUSH_TIMEOUT_MS_MAX)
                            .map(Duration::from_millis)
                    }
                    _ => Ok(default),
                };
                let schedule_delay =
                    millis("schedule_delay", batch.schedule_delay, LOG_DELAY_DEFAULT)?;
                let export_timeout = millis(
                    "export_timeout",
                    batch.export_timeout,
                    LOG_EXPORT_TIMEOUT_DEFAULT,
                )?;
                let count = |key: &str, value: Option<UInt>, default: u64, max: u64| match value {
                    Some(UInt(n)) if n > 0 => in_range(ctx, &at.key(key), n, 1, max),
                    _ => Ok(default),
                };
                let queue = count(
                    "max_queue_size",
                    batch.max_queue_size,
                    LOG_QUEUE_DEFAULT,
                    LOG_QUEUE_MAX,
                )?;
                let size = count(
                    "max_export_batch_size",
                    batch.max_export_batch_size,
                    LOG_BATCH_DEFAULT.min(queue),
                    LOG_QUEUE_MAX,
                )?;
                if size > queue {
                    return Err(ctx.invalid(
                        &at.key("max_export_batch_size"),
                        format!("{size} is more than max_queue_size ({queue})"),
                    ));
                }
                let (exporter, timeout) = log_exporter(batch.exporter, &at, ctx)?;
                (
                    exporter,
                    schedule_delay,
                    export_timeout.min(timeout),
                    queue,
                    size,
                )
            }
            (None, Some(simple)) => {
                let at = at.key("simple");
                let (exporter, timeout) = log_exporter(simple.exporter, &at, ctx)?;
                (exporter, Duration::ZERO, timeout, LOG_QUEUE_DEFAULT, 1)
            }
            (Some(_), Some(_)) => {
                return Err(ctx.invalid(&at, "a log processor is `batch` or `simple`, not both"))
            }
            (None, None) => return Err(ctx.missing(&at, "batch")),
        };
        let (exporter, schedule_delay, timeout, queue, size) = export;
        let console = exporter.is_none();
        let exporter = exporter.unwrap_or(PushExporter {
            protocol: PushProtocol::Grpc,
            endpoint: "standard output".to_string(),
            tls: None,
            gzip: false,
            headers: Vec::new(),
        });
        exports.push(LogsExport {
            schedule_delay,
            timeout,
            max_queue_size: queue as usize,
            max_export_batch_size: size as usize,
            console,
            protocol: exporter.protocol,
            endpoint: exporter.endpoint,
            tls: exporter.tls,
            gzip: exporter.gzip,
            headers: exporter.headers,
        });
    }
    Ok(exports)
}

/// A log processor's `exporter` at `at`: `otlp` (with its timeout), or `console` (`None`).
fn log_exporter(
    exporter: Option<RawPushExporter>,
    at: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<(Option<PushExporter>, Duration), ConfigError> {
    match &exporter {
        Some(RawPushExporter {
            console: Some(_),
            otlp: None,
        }) => Ok((None, PUSH_EXPORT_TIMEOUT_DEFAULT)),
        Some(RawPushExporter {
            console: Some(_),
            otlp: Some(_),
        }) => Err(ctx.invalid(
            &at.key("exporter"),
            "an exporter is `otlp` or `console`, not both",
        )),
        _ => push_exporter(exporter, at, ctx, "/v1/logs", false)
            .map(|(exporter, timeout)| (Some(exporter), timeout)),
    }
}

/// One Prometheus pull reader.
fn pull_reader(pull: RawPull, at: &KeyPath, ctx: &Ctx<'_>) -> Result<PullReader, ConfigError> {
    let Some(exporter) = pull.exporter else {
        return Err(ctx.missing(at, "exporter"));
    };
    let at = at.key("exporter");
    let Some(prometheus) = exporter.prometheus else {
        return Err(ctx.missing(&at, "prometheus"));
    };
    let at = at.key("prometheus");
    let port = match prometheus.port {
        Some(UInt(port)) => in_range(ctx, &at.key("port"), port, 0, u64::from(u16::MAX))?,
        None => PROMETHEUS_PORT_DEFAULT,
    };
    for (key, value) in [
        ("without_units", prometheus.without_units),
        ("without_scope_info", prometheus.without_scope_info),
    ] {
        if value == Some(false) {
            return Err(ctx.error(
                &at.key(key),
                Target::Value,
                ConfigErrorKind::Unsupported(format!(
                    "`{key}: false` is not supported: tailgate serves the Collector's names \
                     without unit suffixes and without scope labels"
                )),
            ));
        }
    }
    let counter_total = prometheus.without_type_suffix == Some(false);
    let host = prometheus
        .host
        .unwrap_or_else(|| PROMETHEUS_HOST_DEFAULT.to_string());
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let text = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let endpoint = Endpoint::parse(&text).map_err(|why| ctx.invalid(&at.key("host"), why))?;
    Ok((endpoint, counter_total))
}

fn check_telemetry(
    raw: RawTelemetry,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Telemetry, ConfigError> {
    let metrics = raw.metrics.unwrap_or_default();
    let metrics_path = path.key("metrics");
    let (address, counter_total, pushes) = match metrics.readers {
        Some(readers) => {
            let readers_path = metrics_path.key("readers");
            if metrics.address.is_some() {
                return Err(ctx.invalid(
                    &readers_path,
                    "give `address` or `readers`, not both (`address` is the Collector's older \
                     layout of the same setting)",
                ));
            }
            let (pull, pushes) = check_readers(readers, &readers_path, ctx)?;
            let (address, counter_total) = match pull {
                Some(pull) => pull,
                None => (
                    listen_endpoint(
                        ctx,
                        &metrics_path.key("address"),
                        None,
                        TELEMETRY_ADDRESS_DEFAULT,
                    )?,
                    false,
                ),
            };
            (address, counter_total, pushes)
        }
        None => (
            listen_endpoint(
                ctx,
                &metrics_path.key("address"),
                metrics.address,
                TELEMETRY_ADDRESS_DEFAULT,
            )?,
            false,
            Vec::new(),
        ),
    };
    // Level names are case-insensitive in the Collector.
    let level = match metrics
        .level
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("normal") => MetricsLevel::Normal,
        Some("none") => MetricsLevel::None,
        Some(other @ ("basic" | "detailed")) => {
            tracing::warn!(
                "{}: `{other}` is served as `normal`: tailgate has one set of self-metrics, the \
                 Collector's normal level (write `normal` to silence this, or `none` to turn \
                 /metrics off)",
                metrics_path.key("level")
            );
            MetricsLevel::Normal
        }
        Some(other) => {
            return Err(ctx.invalid(
                &metrics_path.key("level"),
                format!("`{other}` is not a metrics level; use none, basic, normal or detailed"),
            ))
        }
    };
    let logs = raw.logs.unwrap_or_default();
    let logs_path = path.key("logs");
    let json = match logs.encoding.as_deref() {
        None | Some("console") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ctx.invalid(
                &logs_path.key("encoding"),
                format!("`{other}` is not a log encoding; use console or json"),
            ))
        }
    };
    // One stream: standard error (the default) or standard output; files are not written.
    let stream = |key: &str, paths: Option<&[String]>| match paths {
        None => Ok(false),
        Some([one]) if one == "stderr" => Ok(false),
        Some([one]) if one == "stdout" => Ok(true),
        Some(_) => Err(ctx.invalid(
            &logs_path.key(key),
            "tailgate logs to one stream: write [stderr] or [stdout]; files are not supported \
             (let systemd or the container runtime keep the log)",
        )),
    };
    let to_stdout = stream("output_paths", logs.output_paths.as_deref())?;
    stream("error_output_paths", logs.error_output_paths.as_deref())?;
    if let Some(sampling) = &logs.sampling {
        if sampling.enabled != Some(false) {
            return Err(ctx.unsupported(
                &logs_path.key("sampling"),
                "tailgate does not sample its log lines (it logs little, and repeated refusals \
                 at most once a minute); write `enabled: false` or remove the key",
            ));
        }
    }
    let log_level = match logs
        .level
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("info") => LogLevel::Info,
        Some("debug") => LogLevel::Debug,
        Some("warn") => LogLevel::Warn,
        Some("error") => LogLevel::Error,
        Some(other) => {
            return Err(ctx.invalid(
                &path.key("logs").key("level"),
                format!("`{other}` is not a log level; use debug, info, warn or error"),
            ))
        }
    };
    let raw_resource = raw.resource.unwrap_or_default();
    if raw_resource.detection {
        return Err(ctx.unsupported(
            &path.key("resource").key("detection/development"),
            "resource detectors are not supported; give the attributes under `attributes`",
        ));
    }
    let resource = raw_resource.attributes;
    check_fields(
        resource.iter().map(|(n, v)| (n.as_str(), v.as_deref())),
        &path.key("resource"),
        ctx,
    )?;
    let initial_fields: Vec<(String, String)> = logs
        .initial_fields
        .unwrap_or_default()
        .into_iter()
        .map(|(name, Text(value))| (name, value))
        .collect();
    check_fields(
        initial_fields
            .iter()
            .map(|(n, v)| (n.as_str(), Some(v.as_str()))),
        &path.key("logs").key("initial_fields"),
        ctx,
    )?;
    let exports = log_processors(
        logs.processors.unwrap_or_default(),
        &path.key("logs").key("processors"),
        ctx,
    )?;
    Ok(Telemetry {
        metrics: TelemetryMetrics {
            address,
            level,
            counter_total,
            pushes,
        },
        logs: TelemetryLogs {
            level: log_level,
            json,
            to_stdout,
            initial_fields,
            exports,
        },
        resource,
    })
}

/// `resource` and `logs.initial_fields`: at most [`TELEMETRY_FIELDS_MAX`], names not empty,
/// neither names nor values with control characters (they go into /metrics and log lines).
fn check_fields<'a>(
    fields: impl ExactSizeIterator<Item = (&'a str, Option<&'a str>)>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    if fields.len() > TELEMETRY_FIELDS_MAX {
        return Err(ctx.invalid(
            path,
            format!("{} entries; at most {TELEMETRY_FIELDS_MAX}", fields.len()),
        ));
    }
    for (name, value) in fields {
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(ctx.invalid(
                path,
                format!("`{name}` is not a name: empty, or with control characters"),
            ));
        }
        if value.is_some_and(|v| v.chars().any(char::is_control)) {
            return Err(ctx.invalid(
                &path.key(name),
                "a value may not contain control characters or line breaks",
            ));
        }
    }
    Ok(())
}
