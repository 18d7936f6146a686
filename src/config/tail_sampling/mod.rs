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
//!   `maximum_trace_size_bytes` (0: no limit), `sampling_strategy` (`trace-complete`, or
//!   `span-ingest`, which needs stateless policies), `num_shards` (1 to 256; the Collector's
//!   count of event loops, which tailgate reads as a no-op: its shards are its cores) and
//!   `policies` (required). `tail_storage` is refused: tailgate's buffer is its own.
//! - A policy is `{name, type, <block named after the type>}`. `always_sample` and `trace_flags`
//!   have no block.
//! - Nesting, as the Collector builds evaluators: `and` and `composite` sub-policies may not be
//!   compound, except that a `composite` sub-policy may be an `and`; `drop`, `not` and
//!   `composite` exist only at the top level.
//!
//! Stricter than the Collector, on purpose: a policy may carry only its own type's block (the
//! Collector ignores the others, so a block under the wrong type silently does nothing), a
//! required setting left out is an error rather than a zero that samples everything or nothing,
//! and every count has a ceiling.
//!
//! `ottl_condition` (`error_mode`, `span`, `spanevent`) is accepted for the OTTL subset that
//! [`crate::ottl`] implements, which its module documentation lists. Every condition is parsed
//! and type-checked here: a condition outside the subset is an error naming the policy, the
//! condition and what is not supported; so is one the Collector would refuse. Conditions on
//! `instrumentation_scope` (or `scope`) paths are refused in this policy for now, because the
//! trace buffer keeps each span's resource but not its scope. `error_mode` takes the
//! Collector's values, case-insensitively; left out it behaves as `silent`, as the Collector's
//! empty mode does.
//!
//! Where the Collector's semantics were not certain from its sources, the choice is noted beside
//! the check.
//!
//! One key is tailgate's own: `stress_relief` (see its module), which a Collector
//! configuration never has; the Collector would refuse it as an unknown key.

mod attribute;
mod composite;
mod ottl;
mod policy;
mod rate;
mod stress_relief;
mod trace;

use std::time::Duration;

use serde::Deserialize;

use super::component::{in_range, Ctx};
use super::error::{ConfigError, ConfigErrorKind};
use super::locate::Target;
use super::processors::duration_at_most;
use super::scalar::{Dur, UInt};
use super::values::KeyPath;
use policy::{check_policies, Level, RawPolicy};

pub use attribute::{
    BooleanAttributePolicy, NumericAttributePolicy, StringAttributePolicy, TraceStatePolicy,
};
pub use composite::{CompositePolicy, RateAllocation};
pub(crate) use ottl::error_mode;
pub use ottl::{ErrorMode, OttlConditionPolicy, OTTL_CONDITIONS_MAX};
pub use policy::{Policy, PolicyKind};
pub use rate::{BytesLimitingPolicy, RateLimitingPolicy};
use stress_relief::{check_stress_relief, RawStressRelief};
pub use stress_relief::{
    StressRelief, StressReliefMode, ACTIVATION_LEVEL_DEFAULT, DEACTIVATION_LEVEL_DEFAULT,
    MINIMUM_ACTIVATION_DURATION_DEFAULT, MINIMUM_ACTIVATION_DURATION_MAX,
};
pub use trace::{
    LatencyPolicy, ProbabilisticPolicy, SpanCountPolicy, StatusCode, StatusCodePolicy,
};

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
pub const HASH_SALT_DEFAULT: &str = "default-hash-seed";

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
    /// When decisions are made (default [`SamplingStrategy::TraceComplete`]).
    pub sampling_strategy: SamplingStrategy,
    /// `num_shards` as given (1 when not): the Collector's count of event loops. tailgate runs
    /// one shard per core whatever it says, and warns when it is above 1.
    pub num_shards: u32,
    /// Consistent probability sampling: set by the `processor.tailsamplingprocessor.usetracestate`
    /// feature gate (`--feature-gates`), not by a key, as in the Collector.
    pub use_tracestate: bool,
    /// tailgate's own: deciding new traces at arrival while a shard's memory is high.
    pub stress_relief: StressRelief,
}

/// `sampling_strategy`: when decisions are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SamplingStrategy {
    /// `trace-complete`: each trace is decided once, `decision_wait` after its first span (or
    /// sooner, see `decision_wait_after_root_received`), on all its spans.
    #[default]
    TraceComplete,
    /// `span-ingest`: each request's spans of a trace are evaluated as they arrive; the first
    /// that samples (or drops) decides the trace, its held spans go with it and later ones
    /// follow; a trace still undecided at `decision_wait` is not sampled. Stateless policies
    /// only.
    SpanIngest,
}

/// The most `num_shards` the Collector accepts.
pub const NUM_SHARDS_MAX: u64 = 256;

/// `decision_cache`: LRU caches of trace ids by decision; 0 disables a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecisionCache {
    /// Trace ids decided "sample".
    pub sampled_cache_size: u64,
    /// Trace ids decided "do not sample".
    pub non_sampled_cache_size: u64,
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
    sampling_strategy: Option<String>,
    num_shards: Option<UInt>,
    tail_storage: Option<serde::de::IgnoredAny>,
    policies: Option<Vec<RawPolicy>>,
    stress_relief: Option<RawStressRelief>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawDecisionCache {
    sampled_cache_size: Option<UInt>,
    non_sampled_cache_size: Option<UInt>,
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
    if raw.tail_storage.is_some() {
        return Err(ctx.error(
            &path.key("tail_storage"),
            Target::Key,
            ConfigErrorKind::Unsupported(
                "tailgate has no tail storage extensions: each shard holds its traces in memory, \
                 bounded by the memory_limiter budget and num_traces (docs/OPERATIONS.md, \
                 \"Behaviour under pressure\")"
                    .to_string(),
            ),
        ));
    }
    let sampling_strategy = match raw.sampling_strategy.as_deref() {
        None | Some("trace-complete") => SamplingStrategy::TraceComplete,
        Some("span-ingest") => SamplingStrategy::SpanIngest,
        Some(other) => {
            return Err(ctx.invalid(
                &path.key("sampling_strategy"),
                format!(
                    "invalid sampling_strategy `{other}`, expected `trace-complete` or \
                     `span-ingest`"
                ),
            ))
        }
    };
    let num_shards = match raw.num_shards {
        // 0 is the Collector's "not set": one loop.
        Some(UInt(0)) | None => 1,
        Some(UInt(n)) => in_range(ctx, &path.key("num_shards"), n, 1, NUM_SHARDS_MAX)? as u32,
    };
    let Some(policies) = raw.policies else {
        return Err(ctx.missing(path, "policies"));
    };
    let policies_path = path.key("policies");
    let policies = check_policies(policies, &policies_path, Level::Top, ctx)?;
    if sampling_strategy == SamplingStrategy::SpanIngest {
        if let Some(i) = policies.iter().position(|p| p.is_stateful()) {
            return Err(ctx.invalid(
                &policies_path.index(i),
                format!(
                    "sampling_strategy `span-ingest` requires all policies to be stateless, but \
                     policy `{}` is stateful (rate_limiting, bytes_limiting, latency with \
                     upper_threshold_ms, span_count with max_spans, or a policy holding one)",
                    policies[i].name
                ),
            ));
        }
    }
    let stress_relief = match raw.stress_relief {
        Some(raw) => check_stress_relief(raw, &path.key("stress_relief"), ctx)?,
        None => StressRelief::default(),
    };
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
        sampling_strategy,
        num_shards,
        use_tracestate: false,
        stress_relief,
    })
}
