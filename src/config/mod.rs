//! Configuration: the OpenTelemetry Collector's YAML layout and key names, parsed strictly into
//! typed settings.
//!
//! Users bring the Collector config they already run. Where tailgate has the Collector's concept,
//! the keys, defaults and nesting are the Collector's (`receivers.otlp.protocols.grpc.endpoint`,
//! `processors.tail_sampling.policies`, `exporters.otlp/NAME`, `service.pipelines`); `shards` is
//! tailgate's own section. What the Collector has and tailgate does not is an error that says
//! so, never silently ignored: unknown keys, unknown component types, settings parsed but not
//! supported yet (the routing context `datapoint`, OTTL beyond the subset
//! `ottl_condition` policies and routing conditions accept).
//!
//! # How a file becomes a [`Config`]
//!
//! 1. **Substitution** (`env`): `${env:VAR}`, `${env:VAR:-default}` and `$$` are replaced in
//!    the text, outside comments, keeping each value one YAML scalar.
//! 2. **Lint** (`locate::lint`): the text must be one well-formed YAML document with no key
//!    repeated within a mapping.
//! 3. **Typed parse**: serde_norway reads the text into raw structs that mirror the YAML, every
//!    one `deny_unknown_fields`, every leaf optional. Errors here (unknown key, wrong type,
//!    malformed duration or integer) come from the parser with their key path and position.
//! 4. **Checks**: each section turns its raw structs into the public types below, applying
//!    defaults and bounds and cross-checking values (a batch maximum below its size, a pipeline
//!    naming a missing component). A check knows the key path of what it rejects;
//!    `locate::locate` finds that key or value in the text for the line and column.
//!
//! Every error is a [`ConfigError`] that reads `FILE:LINE:COL: KEY.PATH: message`; the first
//! problem found stops the load.
//!
//! # Who uses the result
//!
//! A [`Config`] is plain owned data, built once at start-up and read-only afterwards; shards
//! read it (or the parts they are given) and never change it. Every count, size and duration in
//! it is within a stated bound (the `*_MAX` constants of each section), so code sizing buffers
//! and queues from it can rely on those bounds.

mod actions;
mod attributes;
mod component;
mod connectors;
mod env;
mod error;
mod exporters;
mod extensions;
mod feature_gates;
mod filter;
pub(crate) mod headers_setter;
mod locate;
mod processors;
mod receivers;
mod resource;
mod scalar;
mod service;
mod shards;
mod tail_sampling;
mod tier;
mod tls;
mod values;

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

/// The gRPC client's `keepalive` and `balancer_name`, as read: the export layer's own types.
pub use crate::export::{Balancer, ClientKeepalive};
pub use actions::{ActionKind, AttributeAction, ConfigValue, ConvertTo, ValueSource, ACTIONS_MAX};
pub use attributes::{
    AttributeMatch, AttributesProcessor, LibraryMatch, MatchProperties, MatchType, SeverityMatch,
    MATCH_ENTRIES_MAX, SPAN_KINDS,
};
pub use connectors::{
    Connector, Connectors, Failover, RequestCondition, Route, RouteAction, RouteCondition, Routing,
    CONNECTOR_KINDS, MAX_RETRIES_DEFAULT, PRIORITY_LEVELS_MAX, RETRY_GAP_DEFAULT,
    RETRY_INTERVAL_DEFAULT, ROUTES_MAX,
};
pub use error::{ConfigError, ConfigErrorKind};
pub use exporters::{
    BackendResolver, Compression, DebugExporter, Encoding, Exporter, Exporters,
    LoadBalancingExporter, OtlpExporter, OtlpHttpExporter, QueueBatch, QueueSizer, RetryOnFailure,
    RoutingKey, SendingQueue, Verbosity, EXPORT_TIMEOUT_DEFAULT,
};
pub use extensions::{
    BasicAuth, BearerTokenAuth, BearerTokens, Credential, Extension, Extensions, HealthCheck,
    HtpasswdSource, ResponseBody, Secret, BEARER_HEADER_DEFAULT, BEARER_SCHEME_DEFAULT,
    HEALTH_CHECK_ENDPOINT_DEFAULT,
};
pub use feature_gates::{FeatureGates, UnknownGate, COUNT_SPANS_SAMPLED, USE_TRACESTATE};
pub use filter::{FilterProcessor, FilterRule, FILTER_CONDITIONS_MAX};
pub use headers_setter::{
    HeaderAction, HeaderEntry, HeaderSource, HeadersSetter, HEADERS_SETTER_ENTRIES_MAX,
};
pub use processors::{
    BatchProcessor, MemoryLimit, MemoryLimiter, Processor, Processors, BATCH_TIMEOUT_DEFAULT,
    SEND_BATCH_SIZE_DEFAULT,
};
pub use receivers::{
    Cors, GrpcReceiver, HttpReceiver, OtlpReceiver, Receiver, Receivers, GRPC_ENDPOINT_DEFAULT,
    HTTP_ENDPOINT_DEFAULT, MAX_CONCURRENT_STREAMS_DEFAULT, MAX_RECV_MSG_SIZE_MIB_DEFAULT,
};
pub use resource::ResourceProcessor;
pub use service::{
    LogLevel, LogsExport, MetricsLevel, MetricsPush, Pipeline, PipelineId, PushProtocol, Service,
    Telemetry, TelemetryLogs, TelemetryMetrics, TELEMETRY_ADDRESS_DEFAULT,
};
pub use shards::{Cpus, Shards};
#[cfg(test)]
pub(crate) use tail_sampling::NUM_TRACES_DEFAULT;
pub use tail_sampling::{
    BooleanAttributePolicy, BytesLimitingPolicy, CompositePolicy, DecisionCache, ErrorMode,
    LatencyPolicy, NumericAttributePolicy, OttlConditionPolicy, Policy, PolicyKind,
    ProbabilisticPolicy, RateAllocation, RateLimitingPolicy, SamplingStrategy, SpanCountPolicy,
    StatusCode, StatusCodePolicy, StressRelief, StressReliefMode, StringAttributePolicy,
    TailSampling, TraceStatePolicy, ACTIVATION_LEVEL_DEFAULT, DEACTIVATION_LEVEL_DEFAULT,
    DECISION_WAIT_DEFAULT, HASH_SALT_DEFAULT, MINIMUM_ACTIVATION_DURATION_DEFAULT,
    MINIMUM_ACTIVATION_DURATION_MAX, OTTL_CONDITIONS_MAX, REGEX_CACHE_SIZE_DEFAULT,
};
pub use tier::Tier;
pub use tls::{Pem, TlsClientSettings, TlsCommon, TlsServerSettings, TlsVersion};
pub use values::{ComponentId, Endpoint, HttpUrl, Scheme};

use component::{Ctx, RawComponents};
use connectors::RawConnector;
use error::split_serde_error;
use exporters::RawExporter;
use extensions::RawExtension;
use locate::{LintError, Target};
use processors::RawProcessor;
use receivers::RawReceiver;
use service::{Components, RawService};
use shards::RawShards;
use values::KeyPath;

/// The largest configuration file read (4 MiB): far above any real one, and a bound on what a
/// mistaken path (a log file, a binary) can make the loader hold.
pub(crate) const CONFIG_BYTES_MAX: usize = 4 * 1024 * 1024;

/// [`Config::source`] of the embedded default.
pub const EMBEDDED_SOURCE: &str = "<embedded default>";

/// The configuration used when no file is given.
const EMBEDDED_DEFAULT: &str = include_str!("default.yaml");

/// A complete, checked gateway configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `receivers`.
    pub receivers: Receivers,
    /// `processors`.
    pub processors: Processors,
    /// `exporters`.
    pub exporters: Exporters,
    /// `connectors`: `routing` and `failover`, each the exporter of some pipelines and the
    /// receiver of others.
    pub connectors: Connectors,
    /// `extensions`: the authenticators (enabled when `service.extensions` lists them).
    pub extensions: Extensions,
    /// `service`: pipelines, enabled extensions and telemetry.
    pub service: Service,
    /// `shards` (tailgate's own section).
    pub shards: Shards,
    /// `tier` (tailgate's own section): the nodes that share trace ownership, if any.
    pub tier: Option<Tier>,
    /// The file the configuration came from, or [`EMBEDDED_SOURCE`].
    pub source: String,
}

impl Config {
    /// Applies the command line's feature gates to the components they concern.
    pub fn apply_feature_gates(&mut self, gates: FeatureGates) {
        for processor in self.processors.by_id.values_mut() {
            if let Processor::TailSampling(sampling) = processor {
                sampling.use_tracestate = gates.use_tracestate;
            }
        }
    }

    /// Reads `path`, substitutes `${env:...}`, parses and checks it. A `shards.profile` in it is
    /// read relative to the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = path.display().to_string();
        let text = read_text(path, &source)?;
        let base = path.parent().unwrap_or(Path::new(""));
        parse(&text, &source, Some(base), &env::process_env)
    }

    /// Substitutes `${env:...}` in `text`, parses and checks it; `source` names it in errors.
    /// A relative `shards.profile` is read relative to the working directory.
    pub fn from_yaml(text: &str, source: &str) -> Result<Config, ConfigError> {
        parse(text, source, None, &env::process_env)
    }

    /// The text of the built-in configuration, as `tailgate print-default-config` prints it.
    pub fn embedded_default_text() -> &'static str {
        EMBEDDED_DEFAULT
    }

    /// The built-in configuration (`src/config/default.yaml`): OTLP on localhost 4317/4318,
    /// errors + slow + 10 % of traces kept, everything printed by the `debug` exporter.
    pub fn embedded_default() -> Config {
        // The text is fixed at build time and has no `${env:...}`; a test parses it.
        match parse(EMBEDDED_DEFAULT, EMBEDDED_SOURCE, None, &|_| {
            env::Lookup::Unset
        }) {
            Ok(config) => config,
            Err(err) => panic!("the embedded default configuration is invalid: {err}"),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawDocument {
    receivers: Option<RawComponents<RawReceiver>>,
    processors: Option<RawComponents<RawProcessor>>,
    exporters: Option<RawComponents<RawExporter>>,
    connectors: Option<RawComponents<RawConnector>>,
    extensions: Option<RawComponents<RawExtension>>,
    service: Option<RawService>,
    shards: Option<RawShards>,
    tier: Option<tier::RawTier>,
}

/// Reads a configuration or profile file as UTF-8 text of at most [`CONFIG_BYTES_MAX`] bytes;
/// `source` names it in errors.
fn read_text(path: &Path, source: &str) -> Result<String, ConfigError> {
    let read_error = |why: String| ConfigError::new(source, ConfigErrorKind::Read(why));
    let file = std::fs::File::open(path).map_err(|e| read_error(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(CONFIG_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(e.to_string()))?;
    if bytes.len() > CONFIG_BYTES_MAX {
        return Err(ConfigError::new(
            source,
            ConfigErrorKind::TooLarge {
                len: bytes.len(),
                max: CONFIG_BYTES_MAX,
            },
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        read_error(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// What a document is read with: where relative paths in it start, and how `${env:...}` is
/// looked up.
struct Reading<'a> {
    base: Option<&'a Path>,
    lookup: &'a dyn Fn(&str) -> env::Lookup,
}

fn parse(
    text: &str,
    source: &str,
    base: Option<&Path>,
    lookup: &dyn Fn(&str) -> env::Lookup,
) -> Result<Config, ConfigError> {
    let reading = Reading { base, lookup };
    parse_document(text, source, lookup, |raw: RawDocument, ctx| {
        check(raw, ctx, &reading)
    })
}

/// Steps 1 to 3 of the load for any document (the configuration, or a tuning profile it names):
/// substitution, lint and the typed parse into `T`, whose checks `then` runs with the document's
/// context, so that their errors point into this document.
fn parse_document<T: serde::de::DeserializeOwned, R>(
    text: &str,
    source: &str,
    lookup: &dyn Fn(&str) -> env::Lookup,
    then: impl FnOnce(T, &Ctx<'_>) -> Result<R, ConfigError>,
) -> Result<R, ConfigError> {
    if text.len() > CONFIG_BYTES_MAX {
        return Err(ConfigError::new(
            source,
            ConfigErrorKind::TooLarge {
                len: text.len(),
                max: CONFIG_BYTES_MAX,
            },
        ));
    }
    let substituted = env::substitute(text, lookup).map_err(|e| {
        ConfigError::new(source, ConfigErrorKind::Substitution(e.message)).at(e.line, e.column)
    })?;
    let ctx = Ctx {
        source,
        text: &substituted.text,
        columns: &substituted.columns,
    };
    lint(&ctx)?;
    let raw: T = serde_norway::from_str(ctx.text).map_err(|err| serde_error(&ctx, &err, false))?;
    then(raw, &ctx)
}

/// A serde_norway error as a [`ConfigError`]; `syntax` for errors of the lint pass, which can
/// only be about the YAML itself.
fn serde_error(ctx: &Ctx<'_>, err: &serde_norway::Error, syntax: bool) -> ConfigError {
    let parts = split_serde_error(err);
    let kind = match parts.kind {
        ConfigErrorKind::InvalidValue(message) if syntax => ConfigErrorKind::Syntax(message),
        kind => kind,
    };
    let mut out = ConfigError::new(ctx.source, kind);
    if let (Some(line), Some(column)) = (parts.line, parts.column) {
        out = out.at(line, ctx.columns.original_column(line, column));
    }
    match parts.path {
        Some(path) if !syntax => out.with_path(path),
        _ => out,
    }
}

fn lint(ctx: &Ctx<'_>) -> Result<(), ConfigError> {
    match locate::lint(ctx.text) {
        Ok(()) => Ok(()),
        Err(LintError::Syntax(err)) => Err(serde_error(ctx, &err, true)),
        Err(LintError::Duplicate {
            parent,
            key,
            line,
            column,
        }) => {
            let path = parent.key(key.as_str());
            let first_line = locate::locate(ctx.text, &path, Target::Key).map(|(line, _)| line);
            Err(ConfigError::new(
                ctx.source,
                ConfigErrorKind::DuplicateKey { key, first_line },
            )
            .at(line, ctx.columns.original_column(line, column))
            .with_path(path.to_string()))
        }
    }
}

fn check(raw: RawDocument, ctx: &Ctx<'_>, reading: &Reading<'_>) -> Result<Config, ConfigError> {
    let root = KeyPath::root();
    let extensions = extensions::check(raw.extensions.unwrap_or_default(), ctx)?;
    let receivers = receivers::check(raw.receivers.unwrap_or_default(), ctx)?;
    let processors = processors::check(raw.processors.unwrap_or_default(), ctx)?;
    let exporters = exporters::check(raw.exporters.unwrap_or_default(), ctx)?;
    let connectors = connectors::check(raw.connectors.unwrap_or_default(), ctx)?;
    // Authenticator references first: a receiver left open by a mistake there matters more
    // than whatever else is wrong.
    let mut raw_service = raw.service;
    let enabled = extensions::check_enabled(
        raw_service
            .as_mut()
            .and_then(RawService::take_extensions)
            .unwrap_or_default(),
        &extensions,
        &root.key("service").key("extensions"),
        ctx,
    )?;
    extensions::check_references(&receivers, &exporters, &extensions, &enabled, ctx)?;
    let Some(raw_service) = raw_service else {
        return Err(ctx.missing(&root, "service"));
    };
    let service = service::check(
        raw_service,
        enabled,
        &Components {
            receivers: &receivers,
            processors: &processors,
            exporters: &exporters,
            connectors: &connectors,
        },
        ctx,
    )?;
    let shards = shards::check(raw.shards, ctx, reading)?;
    let tier = tier::check(raw.tier, ctx)?;
    Ok(Config {
        receivers,
        processors,
        exporters,
        connectors,
        extensions,
        service,
        shards,
        tier,
        source: ctx.source.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let config = Config::embedded_default();
        assert_eq!(config.source, EMBEDDED_SOURCE);
        assert_eq!(config.service.pipelines.len(), 3);
    }
}
