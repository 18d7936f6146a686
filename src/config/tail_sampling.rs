//! `processors.tail_sampling`: the OpenTelemetry Collector contrib `tail_sampling` processor's
//! configuration, accepted as users already write it, and checked here so that the policy engine
//! receives only policies it can evaluate.
//!
//! The keys, their nesting and their defaults follow the contrib processor (its README,
//! `config.go` and `config.schema.yaml`):
//!
//! - Top level: `decision_wait` (30s), `decision_wait_after_root_received` (0s: off),
//!   `num_traces` (50000), `expected_new_traces_per_sec` (0), `decision_cache.sampled_cache_size`
//!   and `decision_cache.non_sampled_cache_size` (0: no cache), `sample_on_first_match`,
//!   `drop_pending_traces_on_shutdown` and `block_on_overflow` (false),
//!   `maximum_trace_size_bytes` (0: no limit), and `policies` (required).
//! - A policy is `{name, type, <block named after the type>}`. `always_sample` and `trace_flags`
//!   have no block.
//! - Nesting, as the Collector builds evaluators: `and` and `composite` sub-policies may not be
//!   compound, except that a `composite` sub-policy may be an `and`; `drop`, `not` and
//!   `composite` exist only at the top level.
//!
//! Stricter than the Collector, on purpose: a policy may carry only its own type's block (the
//! Collector ignores the others, so a block under the wrong type silently does nothing), a
//! required setting left out is an error rather than a zero that samples everything or nothing,
//! and every count has a ceiling. `ottl_condition` is refused: tailgate does not implement OTTL.
//!
//! Where the Collector's semantics were not certain from its sources, the choice is noted beside
//! the check.

use std::collections::HashSet;
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::component::{in_range, Ctx};
use super::error::{ConfigError, ConfigErrorKind};
use super::locate::Target;
use super::processors::duration_at_most;
use super::scalar::{Dur, Float, SInt, UInt};
use super::values::KeyPath;

/// `decision_wait` when not given.
pub const DECISION_WAIT_DEFAULT: Duration = Duration::from_secs(30);
/// The longest `decision_wait` (and `decision_wait_after_root_received`): every trace's spans
/// are held this long, so it bounds buffered memory together with the span rate.
pub const DECISION_WAIT_MAX: Duration = Duration::from_secs(3600);
/// `num_traces` when not given.
pub const NUM_TRACES_DEFAULT: u64 = 50_000;
/// The largest `num_traces`, `expected_new_traces_per_sec` and decision cache size.
pub const TRACE_COUNT_MAX: u64 = 100_000_000;
/// The most policies in one list (`policies` or a compound policy's sub-policies).
pub const POLICIES_MAX: usize = 1024;
/// The most values in one `string_attribute`, `trace_state` or `status_code` list.
pub const VALUES_MAX: usize = 10_000;
/// `string_attribute.cache_max_size` when regex matching is on and no size is given (the
/// contrib processor's `defaultCacheSize`).
pub const REGEX_CACHE_SIZE_DEFAULT: usize = 128;
/// The largest `string_attribute.cache_max_size`.
pub const REGEX_CACHE_SIZE_MAX: u64 = 1_000_000;
/// The salt `probabilistic` hashes with when `hash_salt` is empty, as the Collector does, so a
/// mixed fleet agrees on every trace.
pub const DEFAULT_HASH_SALT: &str = "default-hash-seed";
/// The longest `trace_state` value the W3C Trace Context allows.
const TRACE_STATE_VALUE_LEN_MAX: usize = 256;

/// Policy types tailgate evaluates, in the order messages list them.
const POLICY_TYPES: &[&str] = &[
    "always_sample",
    "latency",
    "numeric_attribute",
    "probabilistic",
    "status_code",
    "string_attribute",
    "trace_state",
    "trace_flags",
    "rate_limiting",
    "bytes_limiting",
    "span_count",
    "boolean_attribute",
    "and",
    "not",
    "drop",
    "composite",
];

/// The tail sampling processor's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TailSampling {
    /// How long after a trace's first span its decision is made (default 30s).
    pub decision_wait: Duration,
    /// How long after a trace's root span its decision is made, when sooner than
    /// `decision_wait` (`None`: only `decision_wait` applies).
    pub decision_wait_after_root_received: Option<Duration>,
    /// Traces held awaiting a decision (default 50000).
    pub num_traces: u64,
    /// A sizing hint for the trace table (default 0).
    pub expected_new_traces_per_sec: u64,
    /// Caches of decided trace ids, so late spans follow their trace's decision.
    pub decision_cache: DecisionCache,
    /// Decide as soon as one policy samples (default false).
    pub sample_on_first_match: bool,
    /// On shutdown, drop traces still waiting instead of deciding early (default false).
    pub drop_pending_traces_on_shutdown: bool,
    /// When `num_traces` are held, refuse new data instead of evicting the oldest trace
    /// (default false).
    pub block_on_overflow: bool,
    /// Traces larger than this are dropped before their decision (`None`: no limit).
    pub maximum_trace_size_bytes: Option<u64>,
    /// The policies, in order; at least one.
    pub policies: Vec<Policy>,
}

/// `decision_cache`: LRU caches of trace ids by decision; 0 disables a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecisionCache {
    /// Trace ids decided "sample".
    pub sampled_cache_size: u64,
    /// Trace ids decided "do not sample".
    pub non_sampled_cache_size: u64,
}

/// One named policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `name`: unique among its siblings; used in metrics and by `composite`.
    pub name: String,
    /// `type` and its block.
    pub kind: PolicyKind,
}

/// A policy's type and its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyKind {
    /// `always_sample`.
    AlwaysSample,
    /// `latency`: trace duration (first start to last end).
    Latency(LatencyPolicy),
    /// `numeric_attribute`: an integer attribute within a range.
    NumericAttribute(NumericAttributePolicy),
    /// `probabilistic`: a share of trace ids, by hash.
    Probabilistic(ProbabilisticPolicy),
    /// `status_code`: any span with one of these statuses.
    StatusCode(StatusCodePolicy),
    /// `string_attribute`: a string attribute equal to (or matching) one of the values.
    StringAttribute(StringAttributePolicy),
    /// `trace_state`: a trace state entry with one of the values.
    TraceState(TraceStatePolicy),
    /// `trace_flags`: the sampled flag is set on a span.
    TraceFlags,
    /// `rate_limiting`: at most this many spans per second (a global figure).
    RateLimiting(RateLimitingPolicy),
    /// `bytes_limiting`: at most this many bytes per second (a global figure), token bucket.
    BytesLimiting(BytesLimitingPolicy),
    /// `span_count`: the trace's span count within a range.
    SpanCount(SpanCountPolicy),
    /// `boolean_attribute`: a boolean attribute with this value.
    BooleanAttribute(BooleanAttributePolicy),
    /// `and`: samples when every sub-policy samples.
    And(Vec<Policy>),
    /// `not`: inverts its sub-policy's decision.
    Not(Box<Policy>),
    /// `drop`: drops the trace when every sub-policy matches; drop wins over sample.
    Drop(Vec<Policy>),
    /// `composite`: sub-policies in order with a shared span rate.
    Composite(CompositePolicy),
}

/// `latency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyPolicy {
    /// Without an upper threshold, traces at least this long match; with one, traces longer
    /// than this (the bound becomes exclusive, as in the Collector).
    pub threshold_ms: u64,
    /// When set, traces longer than this do not match (above `threshold_ms`).
    pub upper_threshold_ms: Option<u64>,
}

/// `numeric_attribute`; at least one bound is set, and `min_value <= max_value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumericAttributePolicy {
    /// The attribute (span or resource).
    pub key: String,
    /// The lowest matching value, inclusive (`None`: no lower bound).
    pub min_value: Option<i64>,
    /// The highest matching value, inclusive (`None`: no upper bound).
    pub max_value: Option<i64>,
    /// Sample when the value does not match.
    pub invert_match: bool,
}

/// `probabilistic`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbabilisticPolicy {
    /// The hash salt ([`DEFAULT_HASH_SALT`] when not given).
    pub hash_salt: String,
    /// The share of traces sampled, 0 to 100.
    pub sampling_percentage: f64,
}

/// A span status code, as `status_code` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    /// The OTLP `Status.code` value.
    pub fn otlp_code(self) -> i32 {
        match self {
            StatusCode::Unset => 0,
            StatusCode::Ok => 1,
            StatusCode::Error => 2,
        }
    }
}

/// `status_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCodePolicy {
    /// The statuses that match; at least one.
    pub status_codes: Vec<StatusCode>,
}

/// `string_attribute`. With `enabled_regex_matching`, every value is a regular expression that
/// compiles with the `regex` crate (unanchored, like Go's `MatchString`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringAttributePolicy {
    /// The attribute (span or resource).
    pub key: String,
    /// Exact values or patterns; at least one.
    pub values: Vec<String>,
    /// Whether `values` are regular expressions.
    pub enabled_regex_matching: bool,
    /// Entries of the regex match-result cache (used with regex matching only; default 128).
    pub cache_max_size: usize,
    /// Sample when the attribute does not match.
    pub invert_match: bool,
}

/// `trace_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStatePolicy {
    /// The trace state key.
    pub key: String,
    /// Matching values; at least one.
    pub values: Vec<String>,
}

/// `rate_limiting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitingPolicy {
    /// Spans per second across the gateway; above 0.
    pub spans_per_second: u64,
}

/// `bytes_limiting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BytesLimitingPolicy {
    /// Bytes per second across the gateway; above 0.
    pub bytes_per_second: u64,
    /// The bucket size in bytes (default twice `bytes_per_second`); a larger trace never passes.
    pub burst_capacity: u64,
}

/// `span_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanCountPolicy {
    /// The fewest spans that match, inclusive.
    pub min_spans: u32,
    /// The most spans that match, inclusive (`None`: no upper bound).
    pub max_spans: Option<u32>,
}

/// `boolean_attribute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BooleanAttributePolicy {
    /// The attribute (span or resource).
    pub key: String,
    /// The value that matches (default false, as in the Collector).
    pub value: bool,
    /// Sample when the attribute does not match.
    pub invert_match: bool,
}

/// `composite`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositePolicy {
    /// The span rate shared by the sub-policies, across the gateway; above 0.
    pub max_total_spans_per_second: u64,
    /// Sub-policy names in evaluation order; each names a sub-policy once.
    pub policy_order: Vec<String>,
    /// `composite_sub_policy`: the sub-policies.
    pub sub_policies: Vec<Policy>,
    /// Shares of `max_total_spans_per_second` by sub-policy; at most 100 % in all.
    pub rate_allocation: Vec<RateAllocation>,
}

/// One `rate_allocation` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateAllocation {
    /// A sub-policy name.
    pub policy: String,
    /// Its share of the total rate, 0 to 100.
    pub percent: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTailSampling {
    decision_wait: Option<Dur>,
    decision_wait_after_root_received: Option<Dur>,
    num_traces: Option<UInt>,
    expected_new_traces_per_sec: Option<UInt>,
    decision_cache: Option<RawDecisionCache>,
    sample_on_first_match: Option<bool>,
    drop_pending_traces_on_shutdown: Option<bool>,
    block_on_overflow: Option<bool>,
    maximum_trace_size_bytes: Option<UInt>,
    policies: Option<Vec<RawPolicy>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawDecisionCache {
    sampled_cache_size: Option<UInt>,
    non_sampled_cache_size: Option<UInt>,
}

/// A policy as written: like the Collector's `PolicyCfg`, every type's block is a key.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawPolicy {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    latency: Option<RawLatency>,
    numeric_attribute: Option<RawNumericAttribute>,
    probabilistic: Option<RawProbabilistic>,
    status_code: Option<RawStatusCode>,
    string_attribute: Option<RawStringAttribute>,
    trace_state: Option<RawTraceState>,
    rate_limiting: Option<RawRateLimiting>,
    bytes_limiting: Option<RawBytesLimiting>,
    span_count: Option<RawSpanCount>,
    boolean_attribute: Option<RawBooleanAttribute>,
    ottl_condition: Option<IgnoredAny>,
    and: Option<RawAnd>,
    not: Option<RawNot>,
    drop: Option<RawDrop>,
    composite: Option<RawComposite>,
}

impl RawPolicy {
    /// The type blocks present, by key.
    fn blocks_present(&self) -> Vec<&'static str> {
        [
            ("latency", self.latency.is_some()),
            ("numeric_attribute", self.numeric_attribute.is_some()),
            ("probabilistic", self.probabilistic.is_some()),
            ("status_code", self.status_code.is_some()),
            ("string_attribute", self.string_attribute.is_some()),
            ("trace_state", self.trace_state.is_some()),
            ("rate_limiting", self.rate_limiting.is_some()),
            ("bytes_limiting", self.bytes_limiting.is_some()),
            ("span_count", self.span_count.is_some()),
            ("boolean_attribute", self.boolean_attribute.is_some()),
            ("ottl_condition", self.ottl_condition.is_some()),
            ("and", self.and.is_some()),
            ("not", self.not.is_some()),
            ("drop", self.drop.is_some()),
            ("composite", self.composite.is_some()),
        ]
        .into_iter()
        .filter(|(_, present)| *present)
        .map(|(key, _)| key)
        .collect()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLatency {
    threshold_ms: Option<UInt>,
    upper_threshold_ms: Option<UInt>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawNumericAttribute {
    key: Option<String>,
    min_value: Option<SInt>,
    max_value: Option<SInt>,
    invert_match: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawProbabilistic {
    hash_salt: Option<String>,
    sampling_percentage: Option<Float>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawStatusCode {
    status_codes: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawStringAttribute {
    key: Option<String>,
    values: Option<Vec<String>>,
    enabled_regex_matching: Option<bool>,
    cache_max_size: Option<UInt>,
    invert_match: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTraceState {
    key: Option<String>,
    values: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRateLimiting {
    spans_per_second: Option<UInt>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawBytesLimiting {
    bytes_per_second: Option<UInt>,
    burst_capacity: Option<UInt>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSpanCount {
    min_spans: Option<UInt>,
    max_spans: Option<UInt>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawBooleanAttribute {
    key: Option<String>,
    value: Option<bool>,
    invert_match: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawAnd {
    and_sub_policy: Option<Vec<RawPolicy>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawNot {
    not_sub_policy: Option<Box<RawPolicy>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawDrop {
    drop_sub_policy: Option<Vec<RawPolicy>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawComposite {
    max_total_spans_per_second: Option<UInt>,
    policy_order: Option<Vec<String>>,
    composite_sub_policy: Option<Vec<RawPolicy>>,
    rate_allocation: Option<Vec<RawRateAllocation>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRateAllocation {
    policy: Option<String>,
    percent: Option<UInt>,
}

/// Where a policy list sits, which decides the types allowed in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// `policies`.
    Top,
    /// `composite_sub_policy`: simple types and `and`.
    CompositeSub,
    /// `and_sub_policy`, `drop_sub_policy`, `not_sub_policy`: simple types only.
    Simple,
}

pub(crate) fn check(
    raw: RawTailSampling,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<TailSampling, ConfigError> {
    let decision_wait = match raw.decision_wait {
        Some(Dur(d)) if d.is_zero() => {
            return Err(ctx.invalid(&path.key("decision_wait"), "must be above 0"))
        }
        Some(Dur(d)) => duration_at_most(ctx, &path.key("decision_wait"), d, DECISION_WAIT_MAX)?,
        None => DECISION_WAIT_DEFAULT,
    };
    let decision_wait_after_root_received = match raw.decision_wait_after_root_received {
        Some(Dur(d)) if d.is_zero() => None,
        Some(Dur(d)) => Some(duration_at_most(
            ctx,
            &path.key("decision_wait_after_root_received"),
            d,
            DECISION_WAIT_MAX,
        )?),
        None => None,
    };
    let count = |key: &str, value: Option<UInt>, min: u64, default: u64| match value {
        Some(UInt(v)) => in_range(ctx, &path.key(key), v, min, TRACE_COUNT_MAX),
        None => Ok(default),
    };
    let num_traces = count("num_traces", raw.num_traces, 1, NUM_TRACES_DEFAULT)?;
    let expected_new_traces_per_sec = count(
        "expected_new_traces_per_sec",
        raw.expected_new_traces_per_sec,
        0,
        0,
    )?;
    let decision_cache = match raw.decision_cache {
        Some(cache) => {
            let cache_path = path.key("decision_cache");
            let size = |key: &str, value: Option<UInt>| match value {
                Some(UInt(v)) => in_range(ctx, &cache_path.key(key), v, 0, TRACE_COUNT_MAX),
                None => Ok(0),
            };
            DecisionCache {
                sampled_cache_size: size("sampled_cache_size", cache.sampled_cache_size)?,
                non_sampled_cache_size: size(
                    "non_sampled_cache_size",
                    cache.non_sampled_cache_size,
                )?,
            }
        }
        None => DecisionCache::default(),
    };
    let maximum_trace_size_bytes = raw
        .maximum_trace_size_bytes
        .and_then(|UInt(v)| (v != 0).then_some(v));
    let Some(policies) = raw.policies else {
        return Err(ctx.missing(path, "policies"));
    };
    let policies = check_policies(policies, &path.key("policies"), Level::Top, ctx)?;
    Ok(TailSampling {
        decision_wait,
        decision_wait_after_root_received,
        num_traces,
        expected_new_traces_per_sec,
        decision_cache,
        sample_on_first_match: raw.sample_on_first_match.unwrap_or(false),
        drop_pending_traces_on_shutdown: raw.drop_pending_traces_on_shutdown.unwrap_or(false),
        block_on_overflow: raw.block_on_overflow.unwrap_or(false),
        maximum_trace_size_bytes,
        policies,
    })
}

/// Checks a policy list: non-empty, bounded, names unique among siblings.
fn check_policies(
    raw: Vec<RawPolicy>,
    path: &KeyPath,
    level: Level,
    ctx: &Ctx<'_>,
) -> Result<Vec<Policy>, ConfigError> {
    if raw.is_empty() {
        return Err(ctx.invalid(path, "needs at least one policy"));
    }
    if raw.len() > POLICIES_MAX {
        return Err(ctx.invalid(
            path,
            format!(
                "has {} policies; at most {POLICIES_MAX} are allowed",
                raw.len()
            ),
        ));
    }
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, raw) in raw.into_iter().enumerate() {
        let policy_path = path.index(i);
        let policy = check_policy(raw, &policy_path, level, ctx)?;
        if !names.insert(policy.name.clone()) {
            return Err(ctx.invalid(
                &policy_path.key("name"),
                format!("policy name `{}` is used twice in this list", policy.name),
            ));
        }
        out.push(policy);
    }
    Ok(out)
}

/// A required text setting: present and not empty.
fn required_text(
    ctx: &Ctx<'_>,
    parent: &KeyPath,
    key: &str,
    value: Option<String>,
) -> Result<String, ConfigError> {
    match value {
        None => Err(ctx.missing(parent, key)),
        Some(v) if v.is_empty() => Err(ctx.invalid(&parent.key(key), "must not be empty")),
        Some(v) => Ok(v),
    }
}

/// A required list of texts: present, non-empty, bounded, no empty entries.
fn required_values(
    ctx: &Ctx<'_>,
    parent: &KeyPath,
    key: &str,
    values: Option<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    let path = parent.key(key);
    let values = values.ok_or_else(|| ctx.missing(parent, key))?;
    if values.is_empty() {
        return Err(ctx.invalid(&path, "needs at least one value"));
    }
    if values.len() > VALUES_MAX {
        return Err(ctx.invalid(
            &path,
            format!(
                "has {} values; at most {VALUES_MAX} are allowed",
                values.len()
            ),
        ));
    }
    if let Some(i) = values.iter().position(String::is_empty) {
        return Err(ctx.invalid(&path.index(i), "must not be empty"));
    }
    Ok(values)
}

fn check_policy(
    raw: RawPolicy,
    path: &KeyPath,
    level: Level,
    ctx: &Ctx<'_>,
) -> Result<Policy, ConfigError> {
    let name = required_text(ctx, path, "name", raw.name.clone())?;
    let kind_text = required_text(ctx, path, "type", raw.kind.clone())?;
    let type_path = path.key("type");
    let kind = kind_text.as_str();
    if kind == "ottl_condition" {
        return Err(ctx.error(
            &type_path,
            Target::Value,
            ConfigErrorKind::Unsupported(format!(
                "policy `{name}`: tailgate does not support `ottl_condition` policies (it does \
                 not implement OTTL); combine string_attribute, numeric_attribute, \
                 boolean_attribute or status_code policies with `and` instead"
            )),
        ));
    }
    if !POLICY_TYPES.contains(&kind) {
        return Err(ctx.invalid(
            &type_path,
            format!(
                "policy `{name}`: unknown policy type `{kind}`; tailgate has {}",
                POLICY_TYPES.join(", ")
            ),
        ));
    }
    let allowed = match level {
        Level::Top => true,
        Level::CompositeSub => !matches!(kind, "not" | "drop" | "composite"),
        Level::Simple => !matches!(kind, "and" | "not" | "drop" | "composite"),
    };
    if !allowed {
        let where_ = match level {
            Level::CompositeSub => "a `composite` sub-policy (simple types and `and` only)",
            _ => "an `and`, `drop` or `not` sub-policy (simple types only)",
        };
        return Err(ctx.invalid(
            &type_path,
            format!("policy `{name}`: type `{kind}` cannot be {where_}"),
        ));
    }
    if let Some(stray) = raw.blocks_present().into_iter().find(|b| *b != kind) {
        return Err(ctx.error(
            &path.key(stray),
            Target::Key,
            ConfigErrorKind::InvalidValue(format!(
                "policy `{name}` has type `{kind}`, so a `{stray}` block does not belong here \
                 (the Collector would silently ignore it)"
            )),
        ));
    }
    let block_path = path.key(kind);
    let need = |present: bool| {
        if present {
            Ok(())
        } else {
            Err(ctx.missing(path, kind))
        }
    };
    let kind = match kind {
        "always_sample" => PolicyKind::AlwaysSample,
        "trace_flags" => PolicyKind::TraceFlags,
        "latency" => {
            need(raw.latency.is_some())?;
            PolicyKind::Latency(check_latency(
                raw.latency.unwrap_or_default(),
                &block_path,
                ctx,
            )?)
        }
        "numeric_attribute" => {
            need(raw.numeric_attribute.is_some())?;
            let raw = raw.numeric_attribute.unwrap_or_default();
            PolicyKind::NumericAttribute(check_numeric(raw, &block_path, ctx)?)
        }
        "probabilistic" => {
            need(raw.probabilistic.is_some())?;
            let raw = raw.probabilistic.unwrap_or_default();
            PolicyKind::Probabilistic(check_probabilistic(raw, &block_path, ctx)?)
        }
        "status_code" => {
            need(raw.status_code.is_some())?;
            let raw = raw.status_code.unwrap_or_default();
            PolicyKind::StatusCode(check_status_code(raw, &block_path, ctx)?)
        }
        "string_attribute" => {
            need(raw.string_attribute.is_some())?;
            let raw = raw.string_attribute.unwrap_or_default();
            PolicyKind::StringAttribute(check_string_attribute(raw, &name, &block_path, ctx)?)
        }
        "trace_state" => {
            need(raw.trace_state.is_some())?;
            let raw = raw.trace_state.unwrap_or_default();
            PolicyKind::TraceState(check_trace_state(raw, &block_path, ctx)?)
        }
        "rate_limiting" => {
            need(raw.rate_limiting.is_some())?;
            let raw = raw.rate_limiting.unwrap_or_default();
            let Some(UInt(rate)) = raw.spans_per_second else {
                return Err(ctx.missing(&block_path, "spans_per_second"));
            };
            let spans_per_second =
                in_range(ctx, &block_path.key("spans_per_second"), rate, 1, u64::MAX)?;
            PolicyKind::RateLimiting(RateLimitingPolicy { spans_per_second })
        }
        "bytes_limiting" => {
            need(raw.bytes_limiting.is_some())?;
            let raw = raw.bytes_limiting.unwrap_or_default();
            PolicyKind::BytesLimiting(check_bytes_limiting(raw, &block_path, ctx)?)
        }
        "span_count" => {
            need(raw.span_count.is_some())?;
            let raw = raw.span_count.unwrap_or_default();
            PolicyKind::SpanCount(check_span_count(raw, &block_path, ctx)?)
        }
        "boolean_attribute" => {
            need(raw.boolean_attribute.is_some())?;
            let raw = raw.boolean_attribute.unwrap_or_default();
            PolicyKind::BooleanAttribute(BooleanAttributePolicy {
                key: required_text(ctx, &block_path, "key", raw.key)?,
                value: raw.value.unwrap_or(false),
                invert_match: raw.invert_match.unwrap_or(false),
            })
        }
        "and" => {
            need(raw.and.is_some())?;
            let subs = raw.and.unwrap_or_default().and_sub_policy;
            let subs = subs.ok_or_else(|| ctx.missing(&block_path, "and_sub_policy"))?;
            PolicyKind::And(check_policies(
                subs,
                &block_path.key("and_sub_policy"),
                Level::Simple,
                ctx,
            )?)
        }
        "drop" => {
            need(raw.drop.is_some())?;
            let subs = raw.drop.unwrap_or_default().drop_sub_policy;
            let subs = subs.ok_or_else(|| ctx.missing(&block_path, "drop_sub_policy"))?;
            PolicyKind::Drop(check_policies(
                subs,
                &block_path.key("drop_sub_policy"),
                Level::Simple,
                ctx,
            )?)
        }
        "not" => {
            need(raw.not.is_some())?;
            let sub = raw.not.unwrap_or_default().not_sub_policy;
            let sub = sub.ok_or_else(|| ctx.missing(&block_path, "not_sub_policy"))?;
            let sub_path = block_path.key("not_sub_policy");
            PolicyKind::Not(Box::new(check_policy(*sub, &sub_path, Level::Simple, ctx)?))
        }
        "composite" => {
            need(raw.composite.is_some())?;
            let raw = raw.composite.unwrap_or_default();
            PolicyKind::Composite(check_composite(raw, &block_path, ctx)?)
        }
        other => unreachable!("policy type `{other}` is in POLICY_TYPES but has no check"),
    };
    Ok(Policy { name, kind })
}

fn check_latency(
    raw: RawLatency,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<LatencyPolicy, ConfigError> {
    let Some(UInt(threshold_ms)) = raw.threshold_ms else {
        return Err(ctx.missing(path, "threshold_ms"));
    };
    // The Collector reads an upper threshold of 0 as "none", and with one matches durations in
    // `threshold_ms < d <= upper_threshold_ms`; an upper bound at or below the lower one would
    // match nothing.
    let upper_threshold_ms = match raw.upper_threshold_ms {
        Some(UInt(0)) | None => None,
        Some(UInt(upper)) if upper <= threshold_ms => {
            return Err(ctx.invalid(
                &path.key("upper_threshold_ms"),
                format!(
                    "{upper} must be above threshold_ms ({threshold_ms}), or 0 for no upper bound"
                ),
            ))
        }
        Some(UInt(upper)) => Some(upper),
    };
    Ok(LatencyPolicy {
        threshold_ms,
        upper_threshold_ms,
    })
}

fn check_numeric(
    raw: RawNumericAttribute,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<NumericAttributePolicy, ConfigError> {
    let key = required_text(ctx, path, "key", raw.key)?;
    let min_value = raw.min_value.map(|SInt(v)| v);
    let max_value = raw.max_value.map(|SInt(v)| v);
    match (min_value, max_value) {
        (None, None) => {
            return Err(ctx.error(
                path,
                Target::Key,
                ConfigErrorKind::MissingKey("min_value` or `max_value".to_string()),
            ))
        }
        (Some(min), Some(max)) if min > max => {
            return Err(ctx.invalid(
                &path.key("min_value"),
                format!("{min} is above max_value ({max})"),
            ))
        }
        _ => {}
    }
    Ok(NumericAttributePolicy {
        key,
        min_value,
        max_value,
        invert_match: raw.invert_match.unwrap_or(false),
    })
}

fn check_probabilistic(
    raw: RawProbabilistic,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<ProbabilisticPolicy, ConfigError> {
    let Some(Float(pct)) = raw.sampling_percentage else {
        return Err(ctx.missing(path, "sampling_percentage"));
    };
    if !(0.0..=100.0).contains(&pct) {
        return Err(ctx.invalid(
            &path.key("sampling_percentage"),
            format!("{pct} is not a percentage; allowed: 0 to 100"),
        ));
    }
    let hash_salt = match raw.hash_salt {
        Some(salt) if !salt.is_empty() => salt,
        _ => DEFAULT_HASH_SALT.to_string(),
    };
    Ok(ProbabilisticPolicy {
        hash_salt,
        sampling_percentage: pct,
    })
}

fn check_status_code(
    raw: RawStatusCode,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<StatusCodePolicy, ConfigError> {
    let codes = required_values(ctx, path, "status_codes", raw.status_codes)?;
    let mut status_codes = Vec::with_capacity(codes.len());
    for (i, code) in codes.iter().enumerate() {
        // Case-sensitive, as in the Collector.
        status_codes.push(match code.as_str() {
            "OK" => StatusCode::Ok,
            "ERROR" => StatusCode::Error,
            "UNSET" => StatusCode::Unset,
            other => {
                return Err(ctx.invalid(
                    &path.key("status_codes").index(i),
                    format!("`{other}` is not a status code; use OK, ERROR or UNSET"),
                ))
            }
        });
    }
    Ok(StatusCodePolicy { status_codes })
}

fn check_string_attribute(
    raw: RawStringAttribute,
    policy: &str,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<StringAttributePolicy, ConfigError> {
    let key = required_text(ctx, path, "key", raw.key)?;
    let values = required_values(ctx, path, "values", raw.values)?;
    let enabled_regex_matching = raw.enabled_regex_matching.unwrap_or(false);
    if enabled_regex_matching {
        for (i, pattern) in values.iter().enumerate() {
            if let Err(err) = regex::Regex::new(pattern) {
                // The regex crate's message spans several lines with a caret under the spot;
                // keep its last line, the reason.
                let reason = err.to_string();
                let reason = reason.lines().last().unwrap_or_default().trim().to_string();
                return Err(ctx.invalid(
                    &path.key("values").index(i),
                    format!(
                        "policy `{policy}`, attribute `{key}`: `{pattern}` is not a valid \
                         regular expression: {reason}"
                    ),
                ));
            }
        }
        // The sampler matches the patterns as one set, which can exceed the regex crate's size
        // limit when each pattern alone does not: compiled here as the sampler compiles it.
        if let Err(err) = regex::bytes::RegexSet::new(&values) {
            let reason = err.to_string();
            let reason = reason.lines().last().unwrap_or_default().trim().to_string();
            return Err(ctx.invalid(
                &path.key("values"),
                format!(
                    "policy `{policy}`, attribute `{key}`: the patterns do not compile \
                     together: {reason}; use fewer or simpler patterns"
                ),
            ));
        }
    }
    let cache_max_size = match raw.cache_max_size {
        // The contrib processor uses its default for 0 and below.
        Some(UInt(0)) | None => REGEX_CACHE_SIZE_DEFAULT,
        Some(UInt(v)) => {
            in_range(ctx, &path.key("cache_max_size"), v, 1, REGEX_CACHE_SIZE_MAX)? as usize
        }
    };
    Ok(StringAttributePolicy {
        key,
        values,
        enabled_regex_matching,
        cache_max_size,
        invert_match: raw.invert_match.unwrap_or(false),
    })
}

fn check_trace_state(
    raw: RawTraceState,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<TraceStatePolicy, ConfigError> {
    let key = required_text(ctx, path, "key", raw.key)?;
    let values = required_values(ctx, path, "values", raw.values)?;
    if let Some(i) = values
        .iter()
        .position(|v| v.len() > TRACE_STATE_VALUE_LEN_MAX)
    {
        return Err(ctx.invalid(
            &path.key("values").index(i),
            format!(
                "is longer than the {TRACE_STATE_VALUE_LEN_MAX} characters a trace state value \
                 may have"
            ),
        ));
    }
    Ok(TraceStatePolicy { key, values })
}

fn check_bytes_limiting(
    raw: RawBytesLimiting,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<BytesLimitingPolicy, ConfigError> {
    let Some(UInt(rate)) = raw.bytes_per_second else {
        return Err(ctx.missing(path, "bytes_per_second"));
    };
    let bytes_per_second = in_range(ctx, &path.key("bytes_per_second"), rate, 1, u64::MAX)?;
    // The contrib processor: "If not specified, defaults to 2x BytesPerSecond"; 0 is read as
    // not specified. A burst below the rate is allowed: it only caps single traces lower.
    let burst_capacity = match raw.burst_capacity {
        Some(UInt(0)) | None => bytes_per_second.saturating_mul(2),
        Some(UInt(burst)) => burst,
    };
    Ok(BytesLimitingPolicy {
        bytes_per_second,
        burst_capacity,
    })
}

fn check_span_count(
    raw: RawSpanCount,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<SpanCountPolicy, ConfigError> {
    let max = i32::MAX as u64; // The Collector's fields are int32.
    let Some(UInt(min)) = raw.min_spans else {
        return Err(ctx.missing(path, "min_spans"));
    };
    let min_spans = in_range(ctx, &path.key("min_spans"), min, 0, max)? as u32;
    let max_spans = match raw.max_spans {
        // 0 means no upper bound, as in the Collector.
        Some(UInt(0)) | None => None,
        Some(UInt(v)) => {
            let v = in_range(ctx, &path.key("max_spans"), v, 1, max)? as u32;
            if v < min_spans {
                return Err(ctx.invalid(
                    &path.key("max_spans"),
                    format!("{v} is below min_spans ({min_spans})"),
                ));
            }
            Some(v)
        }
    };
    Ok(SpanCountPolicy {
        min_spans,
        max_spans,
    })
}

fn check_composite(
    raw: RawComposite,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<CompositePolicy, ConfigError> {
    let Some(UInt(total)) = raw.max_total_spans_per_second else {
        return Err(ctx.missing(path, "max_total_spans_per_second"));
    };
    let max_total_spans_per_second = in_range(
        ctx,
        &path.key("max_total_spans_per_second"),
        total,
        1,
        u64::MAX,
    )?;
    let subs = raw
        .composite_sub_policy
        .ok_or_else(|| ctx.missing(path, "composite_sub_policy"))?;
    let sub_policies = check_policies(
        subs,
        &path.key("composite_sub_policy"),
        Level::CompositeSub,
        ctx,
    )?;
    let names: HashSet<&str> = sub_policies.iter().map(|p| p.name.as_str()).collect();
    let known = |ctx: &Ctx<'_>, at: &KeyPath, name: &str| {
        if names.contains(name) {
            Ok(())
        } else {
            Err(ctx.invalid(
                at,
                format!("`{name}` is not the name of a composite_sub_policy"),
            ))
        }
    };
    // The contrib processor evaluates sub-policies in `composite_sub_policy` order and does not
    // appear to read `policy_order`; tailgate holds it to naming each sub-policy at most once so
    // that the order it states is unambiguous.
    let policy_order = raw
        .policy_order
        .ok_or_else(|| ctx.missing(path, "policy_order"))?;
    let order_path = path.key("policy_order");
    if policy_order.is_empty() {
        return Err(ctx.invalid(&order_path, "needs at least one sub-policy name"));
    }
    let mut seen = HashSet::new();
    for (i, name) in policy_order.iter().enumerate() {
        known(ctx, &order_path.index(i), name)?;
        if !seen.insert(name.as_str()) {
            return Err(ctx.invalid(&order_path.index(i), format!("`{name}` is listed twice")));
        }
    }
    let mut rate_allocation = Vec::new();
    let mut total_percent = 0u64;
    let mut allocated = HashSet::new();
    let alloc_path = path.key("rate_allocation");
    for (i, entry) in raw
        .rate_allocation
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let entry_path = alloc_path.index(i);
        let policy = required_text(ctx, &entry_path, "policy", entry.policy)?;
        known(ctx, &entry_path.key("policy"), &policy)?;
        if !allocated.insert(policy.clone()) {
            return Err(ctx.invalid(
                &entry_path.key("policy"),
                format!("`{policy}` has two rate allocations"),
            ));
        }
        let Some(UInt(percent)) = entry.percent else {
            return Err(ctx.missing(&entry_path, "percent"));
        };
        let percent = in_range(ctx, &entry_path.key("percent"), percent, 0, 100)?;
        total_percent += percent;
        if total_percent > 100 {
            return Err(ctx.invalid(
                &entry_path.key("percent"),
                format!(
                    "brings the allocations to {total_percent} %; they may total at most 100 %"
                ),
            ));
        }
        rate_allocation.push(RateAllocation {
            policy,
            percent: percent as u32,
        });
    }
    Ok(CompositePolicy {
        max_total_spans_per_second,
        policy_order,
        sub_policies,
        rate_allocation,
    })
}
