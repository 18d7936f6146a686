//! Policies on a trace's own facts: `latency`, `status_code`, `span_count`, and
//! `probabilistic` (the Collector's hash of the trace id).

use serde::Deserialize;

use super::super::component::{in_range, Ctx};
use super::super::error::ConfigError;
use super::super::scalar::{Float, UInt};
use super::super::values::KeyPath;
use super::policy::required_values;
use super::HASH_SALT_DEFAULT;

/// `latency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyPolicy {
    /// Without an upper threshold, traces at least this long match; with one, traces longer
    /// than this (the bound becomes exclusive, as in the Collector).
    pub threshold_ms: u64,
    /// When set, traces longer than this do not match (above `threshold_ms`).
    pub upper_threshold_ms: Option<u64>,
}

/// `probabilistic`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbabilisticPolicy {
    /// The hash salt ([`HASH_SALT_DEFAULT`] when not given).
    pub hash_salt: String,
    /// The share of traces sampled, 0 to 100.
    pub sampling_percentage: f64,
}

/// A span status code, as `status_code` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// `UNSET`: the span set no status.
    Unset,
    /// `OK`.
    Ok,
    /// `ERROR`.
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

/// `span_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanCountPolicy {
    /// The fewest spans that match, inclusive.
    pub min_spans: u32,
    /// The most spans that match, inclusive (`None`: no upper bound).
    pub max_spans: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLatency {
    pub(super) threshold_ms: Option<UInt>,
    pub(super) upper_threshold_ms: Option<UInt>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawProbabilistic {
    pub(super) hash_salt: Option<String>,
    pub(super) sampling_percentage: Option<Float>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStatusCode {
    pub(super) status_codes: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSpanCount {
    pub(super) min_spans: Option<UInt>,
    pub(super) max_spans: Option<UInt>,
}

pub(super) fn check_latency(
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

pub(super) fn check_probabilistic(
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
        _ => HASH_SALT_DEFAULT.to_string(),
    };
    Ok(ProbabilisticPolicy {
        hash_salt,
        sampling_percentage: pct,
    })
}

pub(super) fn check_status_code(
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

pub(super) fn check_span_count(
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
