//! Thresholds and randomness: the two 56-bit numbers of consistent probability sampling.
//!
//! A trace has a randomness R (its explicit `rv`, or the low 56 bits of its trace id); a
//! sampler with threshold T keeps it when `T <= R`, so it keeps a share `(2^56 - T) / 2^56` of
//! traces, and every sampler with the same T keeps the same ones. T is written in tracestate as
//! `th`: 14 hex digits with trailing zeros removed (`0` for "keep all").

use std::fmt::Write as _;

/// 2^56: the number of randomness values, and the threshold that keeps nothing.
const MAX_ADJUSTED_COUNT: u64 = 1 << 56;
/// Hex digits of a full randomness or threshold.
const HEX_DIGITS: usize = 14;

/// A sampling threshold: keep when `threshold <= randomness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Threshold(u64);

impl Threshold {
    /// Keeps every trace (`th:0`).
    pub(crate) const ALWAYS: Threshold = Threshold(0);
    /// Keeps none (written as no `th` at all).
    pub(crate) const NEVER: Threshold = Threshold(MAX_ADJUSTED_COUNT);

    /// The threshold that keeps `probability` of traces, as the Collector's
    /// `ProbabilityToThreshold` computes it: `2^56 - round(p * 2^56)` at full precision.
    /// Probabilities from 1 up keep all; those below `2^-56` (0 included) keep none.
    pub(crate) fn from_probability(probability: f64) -> Threshold {
        if probability >= 1.0 {
            return Threshold::ALWAYS;
        }
        if probability.is_nan() || probability < 1.0 / MAX_ADJUSTED_COUNT as f64 {
            return Threshold::NEVER;
        }
        // p * 2^56 is exact in floating point (a power-of-two scaling) and below 2^56.
        let scaled = (probability * MAX_ADJUSTED_COUNT as f64).round() as u64;
        Threshold(MAX_ADJUSTED_COUNT - scaled.min(MAX_ADJUSTED_COUNT))
    }

    /// The threshold just above `randomness`: keeps exactly the randomness values above it.
    pub(crate) fn above(randomness: Randomness) -> Threshold {
        Threshold(randomness.0 + 1)
    }

    /// A `th` value: 1 to 14 hex digits, the missing ones zeros on the right.
    pub(crate) fn parse(text: &[u8]) -> Option<Threshold> {
        if text.is_empty() || text.len() > HEX_DIGITS {
            return None;
        }
        let value = parse_hex(text)?;
        Some(Threshold(value << (4 * (HEX_DIGITS - text.len()))))
    }

    /// The threshold as a number below 2^57 (for compact storage).
    pub(crate) fn bits(self) -> u64 {
        self.0
    }

    /// A threshold from [`Threshold::bits`].
    pub(crate) fn from_bits(bits: u64) -> Threshold {
        Threshold(bits.min(MAX_ADJUSTED_COUNT))
    }

    /// Whether a trace of `randomness` is kept.
    pub(crate) fn keeps(self, randomness: Randomness) -> bool {
        self.0 <= randomness.0
    }

    /// Appends the `th` value: `0` for [`Threshold::ALWAYS`], nothing for
    /// [`Threshold::NEVER`], otherwise the 14 hex digits without their trailing zeros.
    pub(crate) fn write_tvalue(self, out: &mut String) {
        match self {
            Threshold::ALWAYS => out.push('0'),
            Threshold::NEVER => {}
            Threshold(value) => {
                let start = out.len();
                let _ = write!(out, "{value:014x}");
                let digits = out[start..].trim_end_matches('0').len();
                out.truncate(start + digits);
            }
        }
    }
}

/// A trace's sampling randomness: 56 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Randomness(u64);

impl Randomness {
    /// The randomness of a W3C random trace id: the low 56 bits of its last 8 bytes, read
    /// big-endian.
    pub(crate) fn of_trace_id(id: [u8; 16]) -> Randomness {
        let mut low = [0; 8];
        low.copy_from_slice(&id[8..]);
        Randomness(u64::from_be_bytes(low) & (MAX_ADJUSTED_COUNT - 1))
    }

    /// An `rv` value: exactly 14 hex digits.
    pub(crate) fn parse(text: &[u8]) -> Option<Randomness> {
        if text.len() != HEX_DIGITS {
            return None;
        }
        parse_hex(text).map(Randomness)
    }

    #[cfg(test)]
    pub(crate) fn from_u56(value: u64) -> Randomness {
        assert!(value < MAX_ADJUSTED_COUNT);
        Randomness(value)
    }
}

/// Hex digits (either case, as Go's `strconv.ParseUint(s, 16, 64)` reads them) to a number;
/// at most 14 digits, so it cannot overflow.
fn parse_hex(text: &[u8]) -> Option<u64> {
    text.iter().try_fold(0u64, |acc, &c| {
        let digit = (c as char).to_digit(16)?;
        Some(acc << 4 | u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tvalue(th: Threshold) -> String {
        let mut out = String::new();
        th.write_tvalue(&mut out);
        out
    }

    #[test]
    fn probabilities_give_the_collectors_thresholds() {
        // The Collector's own examples (contrib pkg/sampling, encoding_test.go).
        for (p, th) in [
            (1.0, "0"),
            (0.5, "8"),
            (f64::powi(2.0, -56), "ffffffffffffff"),
            (1.0 / 3.0, "aaaaaaaaaaaaac"),
            (2.0 / 3.0, "55555555555558"),
            (1.0 - 84.0 / 256.0, "54"),
            (1.0 - 1.0 / 256.0, "01"),
            (0.1, "e6666666666666"),
        ] {
            assert_eq!(tvalue(Threshold::from_probability(p)), th, "p = {p}");
        }
        assert_eq!(Threshold::from_probability(0.0), Threshold::NEVER);
        assert_eq!(Threshold::from_probability(f64::NAN), Threshold::NEVER);
        assert_eq!(Threshold::from_probability(1.5), Threshold::ALWAYS);
        assert_eq!(tvalue(Threshold::NEVER), "");
    }

    #[test]
    fn tvalues_parse_with_implied_trailing_zeros() {
        assert_eq!(Threshold::parse(b"8"), Some(Threshold(1 << 55)));
        assert_eq!(Threshold::parse(b"08"), Some(Threshold(1 << 51)));
        assert_eq!(Threshold::parse(b"0"), Some(Threshold::ALWAYS));
        assert_eq!(
            Threshold::parse(b"FFFFFFFFFFFFFF"),
            Some(Threshold((1 << 56) - 1))
        );
        for bad in [&b""[..], b"fffffffffffffff", b"g", b"+1", b"0x1"] {
            assert_eq!(
                Threshold::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let th = Threshold::parse(b"c").unwrap();
        assert!(th.keeps(Randomness(0xc0_0000_0000_0000)));
        assert!(!th.keeps(Randomness(0xbf_ffff_ffff_ffff)));
    }

    #[test]
    fn randomness_is_the_trace_ids_low_56_bits_or_an_rv() {
        let mut id = [0xff; 16];
        id[9..].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(Randomness::of_trace_id(id), Randomness(0x01_0203_0405_0607));
        assert_eq!(
            Randomness::parse(b"0102030405060A"),
            Some(Randomness(0x01_0203_0405_060a))
        );
        assert_eq!(Randomness::parse(b"010203040506"), None);
        assert_eq!(Threshold::above(Randomness(5)), Threshold(6));
    }
}
