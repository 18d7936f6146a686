//! Scalar types for the raw (as-written) settings, with the Collector's leniency where users rely
//! on it and tailgate's strictness elsewhere.
//!
//! Each implements `Deserialize` through `deserialize_any`, so an error raised here is located by
//! serde_norway at the scalar itself (its key path, line and column).
//!
//! - Integers accept `100_000` (Go's YAML decoder drops underscores, and the Collector's README
//!   writes cache sizes that way) and numeric strings (what `${env:VAR}` often yields).
//! - Durations need a unit, except a bare `0`: Go would read `timeout: 5` as five nanoseconds,
//!   which is never what was meant.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::values::parse_duration;

/// A non-negative integer as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UInt(pub(crate) u64);

/// A signed integer as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SInt(pub(crate) i64);

/// A finite number as written (integers are accepted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Float(pub(crate) f64);

/// A duration in Go's syntax (`200ms`, `5s`, `1h30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dur(pub(crate) Duration);

/// Parses decimal digits with optional `_` separators and an optional sign.
fn parse_integer(text: &str) -> Option<i128> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    let value: i128 = cleaned.parse().ok()?;
    Some(if negative { -value } else { value })
}

/// Reads an integer and checks it against the target type's range inside the visitor, so that
/// serde_norway locates a range error at the scalar (an error raised after `deserialize_any`
/// returns would be located at the enclosing mapping).
struct IntVisitor {
    min: i128,
    max: i128,
}

impl IntVisitor {
    fn check<E: de::Error>(&self, v: i128) -> Result<i128, E> {
        if v < 0 && self.min == 0 {
            Err(E::custom(format!("must not be negative, found {v}")))
        } else if v < self.min || v > self.max {
            Err(E::custom(format!(
                "{v} is out of range; allowed: {} to {}",
                self.min, self.max
            )))
        } else {
            Ok(v)
        }
    }
}

impl Visitor<'_> for IntVisitor {
    type Value = i128;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i128, E> {
        self.check(i128::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i128, E> {
        self.check(i128::from(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<i128, E> {
        self.check(v)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<i128, E> {
        let v = i128::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))?;
        self.check(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i128, E> {
        Err(E::custom(format!("expected an integer, found {v}")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i128, E> {
        let n = parse_integer(v)
            .ok_or_else(|| E::custom(format!("expected an integer, found `{v}`")))?;
        self.check(n)
    }
}

/// Any scalar, as its text (`true`, `3`, `0.5`, `text`): a value the Collector takes as
/// `any`, such as a resource attribute or a log field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text(pub(crate) String);

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a number or a boolean")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

impl<'de> Deserialize<'de> for UInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let visitor = IntVisitor {
            min: 0,
            max: i128::from(u64::MAX),
        };
        // In range by the visitor's check.
        d.deserialize_any(visitor).map(|v| UInt(v as u64))
    }
}

impl<'de> Deserialize<'de> for SInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let visitor = IntVisitor {
            min: i128::from(i64::MIN),
            max: i128::from(i64::MAX),
        };
        d.deserialize_any(visitor).map(|v| SInt(v as i64))
    }
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(E::custom(format!("expected a finite number, found {v}")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v.trim().replace('_', "").parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            _ => Err(E::custom(format!("expected a number, found `{v}`"))),
        }
    }
}

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FloatVisitor).map(Float)
    }
}

struct DurVisitor;

impl Visitor<'_> for DurVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 200ms, 5s, 1m or 1h")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurVisitor).map(Dur)
    }
}

/// For a section whose mere presence means something (`grpc:` enables the gRPC protocol with its
/// defaults, as in the Collector): a present key with a null value becomes `Some(default)`; with
/// `#[serde(default)]`, an absent key stays `None`.
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_with_underscores() {
        assert_eq!(parse_integer("100_000"), Some(100_000));
        assert_eq!(parse_integer("-5"), Some(-5));
        assert_eq!(parse_integer("+7"), Some(7));
        for bad in ["", "_1", "1.5", "ten", "1e3", "-"] {
            assert_eq!(parse_integer(bad), None, "{bad}");
        }
    }
}
