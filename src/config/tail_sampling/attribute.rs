//! Policies on what spans carry: `numeric_attribute`, `string_attribute`,
//! `boolean_attribute` and `trace_state`.

use serde::Deserialize;

use super::super::component::{in_range, Ctx};
use super::super::error::{ConfigError, ConfigErrorKind};
use super::super::locate::Target;
use super::super::scalar::{SInt, UInt};
use super::super::values::KeyPath;
use super::policy::{required_text, required_values};
use super::{REGEX_CACHE_SIZE_DEFAULT, REGEX_CACHE_SIZE_MAX};

/// The longest `trace_state` value the W3C Trace Context allows.
const TRACE_STATE_VALUE_LEN_MAX: usize = 256;

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawNumericAttribute {
    pub(super) key: Option<String>,
    pub(super) min_value: Option<SInt>,
    pub(super) max_value: Option<SInt>,
    pub(super) invert_match: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStringAttribute {
    pub(super) key: Option<String>,
    pub(super) values: Option<Vec<String>>,
    pub(super) enabled_regex_matching: Option<bool>,
    pub(super) cache_max_size: Option<UInt>,
    pub(super) invert_match: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTraceState {
    pub(super) key: Option<String>,
    pub(super) values: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBooleanAttribute {
    pub(super) key: Option<String>,
    pub(super) value: Option<bool>,
    pub(super) invert_match: Option<bool>,
}

pub(super) fn check_numeric(
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

pub(super) fn check_string_attribute(
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

pub(super) fn check_trace_state(
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

pub(super) fn check_boolean_attribute(
    raw: RawBooleanAttribute,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<BooleanAttributePolicy, ConfigError> {
    Ok(BooleanAttributePolicy {
        key: required_text(ctx, path, "key", raw.key)?,
        value: raw.value.unwrap_or(false),
        invert_match: raw.invert_match.unwrap_or(false),
    })
}
