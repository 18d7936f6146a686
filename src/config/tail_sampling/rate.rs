//! Rate policies: `rate_limiting` (spans a second) and `bytes_limiting` (bytes a second), each
//! with a burst.

use serde::Deserialize;

use super::super::component::{in_range, Ctx};
use super::super::error::ConfigError;
use super::super::scalar::UInt;
use super::super::values::KeyPath;

/// `rate_limiting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitingPolicy {
    /// Spans per second across the gateway; above 0.
    pub spans_per_second: u64,
    /// The bucket size in spans (default twice `spans_per_second`); a larger trace never
    /// passes.
    pub burst_capacity: u64,
}

/// `bytes_limiting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BytesLimitingPolicy {
    /// Bytes per second across the gateway; above 0.
    pub bytes_per_second: u64,
    /// The bucket size in bytes (default twice `bytes_per_second`); a larger trace never passes.
    pub burst_capacity: u64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRateLimiting {
    pub(super) spans_per_second: Option<UInt>,
    pub(super) burst_capacity: Option<UInt>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBytesLimiting {
    pub(super) bytes_per_second: Option<UInt>,
    pub(super) burst_capacity: Option<UInt>,
}

pub(super) fn check_bytes_limiting(
    raw: RawBytesLimiting,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<BytesLimitingPolicy, ConfigError> {
    let Some(UInt(rate)) = raw.bytes_per_second else {
        return Err(ctx.missing(path, "bytes_per_second"));
    };
    let bytes_per_second = in_range(ctx, &path.key("bytes_per_second"), rate, 1, u64::MAX)?;
    Ok(BytesLimitingPolicy {
        bytes_per_second,
        burst_capacity: burst_capacity(raw.burst_capacity, bytes_per_second),
    })
}

/// `burst_capacity`: the contrib processor's "if not specified, defaults to 2x" the rate; 0 is
/// read as not specified. A burst below the rate is allowed: it only caps single traces lower.
fn burst_capacity(raw: Option<UInt>, rate: u64) -> u64 {
    match raw {
        Some(UInt(0)) | None => rate.saturating_mul(2),
        Some(UInt(burst)) => burst,
    }
}

pub(super) fn check_rate_limiting(
    raw: RawRateLimiting,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<RateLimitingPolicy, ConfigError> {
    let Some(UInt(rate)) = raw.spans_per_second else {
        return Err(ctx.missing(path, "spans_per_second"));
    };
    let spans_per_second = in_range(ctx, &path.key("spans_per_second"), rate, 1, u64::MAX)?;
    Ok(RateLimitingPolicy {
        spans_per_second,
        burst_capacity: burst_capacity(raw.burst_capacity, spans_per_second),
    })
}
