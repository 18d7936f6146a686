//! A policy: its name, its type, and the one block its type reads; the list rules (bounded,
//! names unique among siblings) and the nesting rules (which types may sit where).

use std::collections::HashSet;

use serde::Deserialize;

use super::super::component::Ctx;
use super::super::error::{ConfigError, ConfigErrorKind};
use super::super::locate::Target;
use super::super::values::KeyPath;
use super::attribute::{
    check_boolean_attribute, check_numeric, check_string_attribute, check_trace_state,
    RawBooleanAttribute, RawNumericAttribute, RawStringAttribute, RawTraceState,
};
use super::composite::{
    check_and, check_composite, check_drop, check_not, CompositePolicy, RawAnd, RawComposite,
    RawDrop, RawNot,
};
use super::ottl::{check_ottl_condition, OttlConditionPolicy, RawOttlCondition};
use super::rate::{
    check_bytes_limiting, check_rate_limiting, BytesLimitingPolicy, RateLimitingPolicy,
    RawBytesLimiting, RawRateLimiting,
};
use super::trace::{
    check_latency, check_probabilistic, check_span_count, check_status_code, LatencyPolicy,
    ProbabilisticPolicy, RawLatency, RawProbabilistic, RawSpanCount, RawStatusCode,
    SpanCountPolicy, StatusCodePolicy,
};
use super::{
    BooleanAttributePolicy, NumericAttributePolicy, StringAttributePolicy, TraceStatePolicy,
    POLICIES_MAX, VALUES_MAX,
};

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
    "ottl_condition",
    "and",
    "not",
    "drop",
    "composite",
];

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
    /// `ottl_condition`: a span or span event that meets an OTTL condition.
    OttlCondition(OttlConditionPolicy),
    /// `and`: samples when every sub-policy samples.
    And(Vec<Policy>),
    /// `not`: inverts its sub-policy's decision.
    Not(Box<Policy>),
    /// `drop`: drops the trace when every sub-policy matches; drop wins over sample.
    Drop(Vec<Policy>),
    /// `composite`: sub-policies in order with a shared span rate.
    Composite(CompositePolicy),
}

/// A policy as written: like the Collector's `PolicyCfg`, every type's block is a key.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPolicy {
    pub(super) name: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) latency: Option<RawLatency>,
    pub(super) numeric_attribute: Option<RawNumericAttribute>,
    pub(super) probabilistic: Option<RawProbabilistic>,
    pub(super) status_code: Option<RawStatusCode>,
    pub(super) string_attribute: Option<RawStringAttribute>,
    pub(super) trace_state: Option<RawTraceState>,
    pub(super) rate_limiting: Option<RawRateLimiting>,
    pub(super) bytes_limiting: Option<RawBytesLimiting>,
    pub(super) span_count: Option<RawSpanCount>,
    pub(super) boolean_attribute: Option<RawBooleanAttribute>,
    pub(super) ottl_condition: Option<RawOttlCondition>,
    pub(super) and: Option<RawAnd>,
    pub(super) not: Option<RawNot>,
    pub(super) drop: Option<RawDrop>,
    pub(super) composite: Option<RawComposite>,
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

impl Policy {
    /// Whether the Collector counts the policy stateful (its `IsStateful`): its decision may
    /// depend on earlier evaluations, so `sampling_strategy: span-ingest` refuses it.
    pub fn is_stateful(&self) -> bool {
        match &self.kind {
            PolicyKind::RateLimiting(_) | PolicyKind::BytesLimiting(_) => true,
            PolicyKind::Latency(p) => p.upper_threshold_ms.is_some(),
            PolicyKind::SpanCount(p) => p.max_spans.is_some(),
            PolicyKind::And(subs) | PolicyKind::Drop(subs) => subs.iter().any(Policy::is_stateful),
            PolicyKind::Not(sub) => sub.is_stateful(),
            PolicyKind::Composite(c) => c.sub_policies.iter().any(Policy::is_stateful),
            _ => false,
        }
    }
}

/// Where a policy list sits, which decides the types allowed in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    /// `policies`.
    Top,
    /// `composite_sub_policy`: simple types and `and`.
    CompositeSub,
    /// `and_sub_policy`, `drop_sub_policy`: simple types and `not` (the Collector's
    /// `AndSubPolicyCfg`, which both lists use).
    AndSub,
    /// `not_sub_policy`: simple types only.
    Simple,
}

/// Checks a policy list: non-empty, bounded, names unique among siblings.
pub(super) fn check_policies(
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
pub(super) fn required_text(
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
pub(super) fn required_values(
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

/// Checks one policy where `level` says it sits.
pub(super) fn check_policy(
    raw: RawPolicy,
    path: &KeyPath,
    level: Level,
    ctx: &Ctx<'_>,
) -> Result<Policy, ConfigError> {
    let name = required_text(ctx, path, "name", raw.name.clone())?;
    let kind = required_text(ctx, path, "type", raw.kind.clone())?;
    check_type(&kind, &name, level, &path.key("type"), ctx)?;
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
    let kind = check_block(raw, &kind, &name, path, ctx)?;
    Ok(Policy { name, kind })
}

/// `type`: one tailgate has, and allowed where `level` says the policy sits.
fn check_type(
    kind: &str,
    name: &str,
    level: Level,
    type_path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    if !POLICY_TYPES.contains(&kind) {
        return Err(ctx.invalid(
            type_path,
            format!(
                "policy `{name}`: unknown policy type `{kind}`; tailgate has {}",
                POLICY_TYPES.join(", ")
            ),
        ));
    }
    let allowed = match level {
        Level::Top => true,
        Level::CompositeSub => !matches!(kind, "not" | "drop" | "composite"),
        Level::AndSub => !matches!(kind, "and" | "drop" | "composite"),
        Level::Simple => !matches!(kind, "and" | "not" | "drop" | "composite"),
    };
    if !allowed {
        let where_ = match level {
            Level::CompositeSub => "a `composite` sub-policy (simple types and `and` only)",
            Level::AndSub => "an `and` or `drop` sub-policy (simple types and `not` only)",
            _ => "a `not` sub-policy (simple types only)",
        };
        return Err(ctx.invalid(
            type_path,
            format!("policy `{name}`: type `{kind}` cannot be {where_}"),
        ));
    }
    Ok(())
}

/// The block of type `kind`, which the policy must carry, checked by that type's rules.
fn check_block(
    raw: RawPolicy,
    kind: &str,
    name: &str,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<PolicyKind, ConfigError> {
    let at = &path.key(kind);
    // Only the arm of `kind` runs, so each block is moved out once.
    let missing = || ctx.missing(path, kind);
    Ok(match kind {
        "always_sample" => PolicyKind::AlwaysSample,
        "trace_flags" => PolicyKind::TraceFlags,
        "latency" => PolicyKind::Latency(check_latency(raw.latency.ok_or_else(missing)?, at, ctx)?),
        "numeric_attribute" => PolicyKind::NumericAttribute(check_numeric(
            raw.numeric_attribute.ok_or_else(missing)?,
            at,
            ctx,
        )?),
        "probabilistic" => PolicyKind::Probabilistic(check_probabilistic(
            raw.probabilistic.ok_or_else(missing)?,
            at,
            ctx,
        )?),
        "status_code" => PolicyKind::StatusCode(check_status_code(
            raw.status_code.ok_or_else(missing)?,
            at,
            ctx,
        )?),
        "string_attribute" => PolicyKind::StringAttribute(check_string_attribute(
            raw.string_attribute.ok_or_else(missing)?,
            name,
            at,
            ctx,
        )?),
        "trace_state" => PolicyKind::TraceState(check_trace_state(
            raw.trace_state.ok_or_else(missing)?,
            at,
            ctx,
        )?),
        "rate_limiting" => PolicyKind::RateLimiting(check_rate_limiting(
            raw.rate_limiting.ok_or_else(missing)?,
            at,
            ctx,
        )?),
        "bytes_limiting" => PolicyKind::BytesLimiting(check_bytes_limiting(
            raw.bytes_limiting.ok_or_else(missing)?,
            at,
            ctx,
        )?),
        "span_count" => PolicyKind::SpanCount(check_span_count(
            raw.span_count.ok_or_else(missing)?,
            at,
            ctx,
        )?),
        "boolean_attribute" => PolicyKind::BooleanAttribute(check_boolean_attribute(
            raw.boolean_attribute.ok_or_else(missing)?,
            at,
            ctx,
        )?),
        "ottl_condition" => PolicyKind::OttlCondition(check_ottl_condition(
            raw.ottl_condition.ok_or_else(missing)?,
            name,
            at,
            ctx,
        )?),
        "and" => PolicyKind::And(check_and(raw.and.ok_or_else(missing)?, at, ctx)?),
        "drop" => PolicyKind::Drop(check_drop(raw.drop.ok_or_else(missing)?, at, ctx)?),
        "not" => PolicyKind::Not(Box::new(check_not(raw.not.ok_or_else(missing)?, at, ctx)?)),
        "composite" => PolicyKind::Composite(check_composite(
            raw.composite.ok_or_else(missing)?,
            at,
            ctx,
        )?),
        other => unreachable!("policy type `{other}` is in POLICY_TYPES but has no check"),
    })
}
