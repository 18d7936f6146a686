//! `probabilistic`: a share of trace ids, chosen by hash so that every gateway and every
//! Collector with the same salt keeps the same traces.
//!
//! The Collector hashes with FNV-1a (64-bit) over the salt's bytes and then the 16 trace-id
//! bytes, and samples when the hash is at most a threshold. The threshold is
//! `MaxUint64 × (sampling_percentage / 100)`, which the Collector computes with `math/big`: the
//! float64 ratio times a 64-bit-precision `big.Float` holding 2^64 − 1, rounded to 64 mantissa
//! bits (nearest, ties to even), then truncated to an integer. [`threshold`] does the same
//! exactly in `u128` arithmetic. (A plain `f64` product would not: 2^64 − 1 is not an `f64`,
//! and at 10 % the `f64` answer is off by one.)

use super::consistent::{Threshold, TraceRandomness};

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Continues an FNV-1a 64 hash from `state` over `bytes`.
pub(crate) fn fnv1a64(state: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(state, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// The Collector's `calculateThreshold(sampling_percentage / 100)`.
pub(crate) fn threshold(sampling_percentage: f64) -> u64 {
    let ratio = sampling_percentage / 100.0;
    if ratio.is_nan() || ratio <= 0.0 {
        return 0;
    }
    if ratio.is_infinite() {
        return u64::MAX;
    }
    // ratio = mantissa × 2^exponent, exactly.
    let bits = ratio.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = u128::from(bits & ((1 << 52) - 1));
    let (mantissa, exponent) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased - 1075)
    };
    // (2^64 − 1) × mantissa: at most 117 bits.
    let product = u128::from(u64::MAX) * mantissa;
    let rounded = round_to_significant_bits(product, 64);
    let integer = if exponent >= 0 {
        // Only for ratios above 1, which the configuration refuses; saturate like `Uint64()`.
        rounded
            .checked_shl(exponent as u32)
            .filter(|v| v.leading_zeros() >= exponent as u32)
            .unwrap_or(u128::MAX)
    } else {
        let shift = exponent.unsigned_abs();
        if shift >= 128 {
            0
        } else {
            rounded >> shift
        }
    };
    u64::try_from(integer).unwrap_or(u64::MAX)
}

/// Rounds `value` to its `bits` most significant bits, to nearest with ties to even, as
/// `big.Float` does at that precision.
fn round_to_significant_bits(value: u128, bits: u32) -> u128 {
    let len = 128 - value.leading_zeros();
    if len <= bits {
        return value;
    }
    let shift = len - bits;
    let kept = value >> shift;
    let rest = value & ((1u128 << shift) - 1);
    let half = 1u128 << (shift - 1);
    let up = rest > half || (rest == half && kept & 1 == 1);
    // `kept + 1` may reach 2^bits: still exact, as a power of two.
    (kept + u128::from(up)) << shift
}

/// A compiled `probabilistic` policy.
#[derive(Debug, Clone)]
pub(crate) struct Probabilistic {
    /// The FNV state after the salt, which every trace continues.
    salted: u64,
    threshold: u64,
    /// The same share as an OTEP-235 threshold, for the tracestate gate.
    consistent: Threshold,
}

impl Probabilistic {
    pub(crate) fn new(hash_salt: &str, sampling_percentage: f64) -> Self {
        Probabilistic {
            salted: fnv1a64(FNV_OFFSET, hash_salt.as_bytes()),
            threshold: threshold(sampling_percentage),
            consistent: Threshold::from_probability(sampling_percentage / 100.0),
        }
    }

    /// Whether the trace id's hash falls under the threshold.
    pub(crate) fn samples(&self, trace_id: &[u8; 16]) -> bool {
        fnv1a64(self.salted, trace_id) <= self.threshold
    }

    /// The decision under the tracestate gate, and the threshold it reports either way: a
    /// trace that carries OpenTelemetry sampling fields is decided on its randomness (its
    /// `rv`, or its trace id's), as every consistent sampler decides it; any other on the
    /// salted hash, as without the gate.
    pub(crate) fn samples_consistently(
        &self,
        trace_id: &[u8; 16],
        randomness: &TraceRandomness,
    ) -> (bool, Threshold) {
        let kept = if randomness.carries_sampling_fields {
            self.consistent.keeps(randomness.value)
        } else {
            self.samples(trace_id)
        };
        (kept, self.consistent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn hash(salt: &str, trace_id: &[u8; 16]) -> u64 {
        fnv1a64(fnv1a64(FNV_OFFSET, salt.as_bytes()), trace_id)
    }

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        assert_eq!(fnv1a64(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    // The Collector itself is the reference now: tests/collector_parity.rs runs the Collector
    // built from its modules beside tailgate on 2,000 traces (100,000 on demand) at 10 % with the
    // default salt and 33.3 % with another, and requires the same kept sets. The tables below
    // stay as fast unit checks of the threshold's rounding; they were produced once by an
    // independent oracle, a Python 3.11 script (kept out of the tree) that:
    //
    // - hashes with FNV-1a 64 written out from its definition (offset basis 0xcbf29ce484222325,
    //   prime 0x100000001b3, `h = ((h ^ byte) * prime) mod 2^64`) over `salt.encode()` and then
    //   `bytes.fromhex(trace_id)`;
    // - emulates Go's `calculateThreshold` with exact rationals: `x = Fraction(2**64 - 1) *
    //   Fraction(pct / 100)` (Python's float division is the same IEEE double division as Go's),
    //   rounds `x` to 64 significant bits with ties to even (as `big.Float` at precision 64
    //   does), then floors it and caps it at 2^64 − 1 (as `Float.Uint64` does);
    // - samples when `hash <= threshold`.
    //
    // Trace ids: six fixed ones (the W3C Trace Context examples, all-ones, one, patterns) and
    // six drawn from `random.Random(20240601)` so that both salts see both outcomes at 10 % and
    // 33.3 %. Salts: the default and "tailgate-parity".

    /// (sampling_percentage, threshold). The comments give `(f64 ratio × f64 (2^64 − 1))`, which
    /// differs.
    const THRESHOLDS: &[(f64, u64)] = &[
        (0.0, 0),
        (0.1, 18446744073709551),     // f64: 18446744073709552
        (1.0, 184467440737095519),    // f64: 184467440737095520
        (5.0, 922337203685477631),    // f64: 922337203685477632
        (10.0, 1844674407370955263),  // f64: 1844674407370955264
        (25.0, 4611686018427387903),  // f64: 4611686018427387904
        (33.3, 6142765776545279999),  // f64: 6142765776545280000
        (50.0, 9223372036854775807),  // f64: 9223372036854775808
        (66.6, 12285531553090559999), // f64: 12285531553090560000
        (75.0, 13835058055282163711), // f64: 13835058055282163712
        (99.9, 18428297329635844095), // f64: 18428297329635844096
        (99.99999999999999, 18446744073709549567),
        (100.0, 18446744073709551615),
        (1e-9, 184467440),
        (1e-300, 0),
        (5e-322, 0),
    ];

    /// (trace id, salt, FNV-1a 64 of salt then id).
    const HASHES: &[(&str, &str, u64)] = &[
        (
            "0102030405060708090a0b0c0d0e0f10",
            "default-hash-seed",
            0xdbcf64d5420f4cad,
        ),
        (
            "0102030405060708090a0b0c0d0e0f10",
            "tailgate-parity",
            0x770748613c150f86,
        ),
        (
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "default-hash-seed",
            0xa54533ba2e4970b5,
        ),
        (
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "tailgate-parity",
            0x8abdb11f003d604a,
        ),
        (
            "0af7651916cd43dd8448eb211c80319c",
            "default-hash-seed",
            0x33bf83d45f51634c,
        ),
        (
            "0af7651916cd43dd8448eb211c80319c",
            "tailgate-parity",
            0xa24c05e0edc6ce2b,
        ),
        (
            "ffffffffffffffffffffffffffffffff",
            "default-hash-seed",
            0x17bec3739634fe2d,
        ),
        (
            "ffffffffffffffffffffffffffffffff",
            "tailgate-parity",
            0xba1019c05fd037a6,
        ),
        (
            "00000000000000000000000000000001",
            "default-hash-seed",
            0xe19535eed1bbaa8a,
        ),
        (
            "00000000000000000000000000000001",
            "tailgate-parity",
            0x8bc04c8f40793f69,
        ),
        (
            "deadbeefdeadbeefdeadbeefdeadbeef",
            "default-hash-seed",
            0x21bae8f93346b6ed,
        ),
        (
            "deadbeefdeadbeefdeadbeefdeadbeef",
            "tailgate-parity",
            0x061be49c23268386,
        ),
        (
            "79c8c2926b94b5b5749882321e35049e",
            "default-hash-seed",
            0xddc40b9f0c4f879a,
        ),
        (
            "79c8c2926b94b5b5749882321e35049e",
            "tailgate-parity",
            0x1d490c7e2a9a227d,
        ),
        (
            "eb7a79959588532d4242aadbc8f429a4",
            "default-hash-seed",
            0x7b7732475c38ad39,
        ),
        (
            "eb7a79959588532d4242aadbc8f429a4",
            "tailgate-parity",
            0xcb29329885643886,
        ),
        (
            "515c61236c88c5373cf3bd58da60fb1c",
            "default-hash-seed",
            0xfa3874be2c480649,
        ),
        (
            "515c61236c88c5373cf3bd58da60fb1c",
            "tailgate-parity",
            0x56c0765c83bf396e,
        ),
        (
            "88718c966f3d88f7f4b1b64633be40f5",
            "default-hash-seed",
            0x4c66316c16d247f4,
        ),
        (
            "88718c966f3d88f7f4b1b64633be40f5",
            "tailgate-parity",
            0x1e7c2482d35d0cdf,
        ),
        (
            "5b08acc213a5bf07da1b195060c40eb7",
            "default-hash-seed",
            0xc2c7bc39d841e85f,
        ),
        (
            "5b08acc213a5bf07da1b195060c40eb7",
            "tailgate-parity",
            0xd397358f5bdca404,
        ),
        (
            "4a894db7e48f12b96a5d670af9a3638e",
            "default-hash-seed",
            0x2a0cff3d28704691,
        ),
        (
            "4a894db7e48f12b96a5d670af9a3638e",
            "tailgate-parity",
            0xf0394fa2f99021ee,
        ),
    ];

    /// (sampling_percentage, sampled) at 0, 10, 33.3 and 100 %.
    type Outcomes = [(f64, bool); 4];

    /// (trace id, salt, outcomes).
    #[rustfmt::skip]
    const SAMPLED: &[(&str, &str, Outcomes)] = &[
        ("0102030405060708090a0b0c0d0e0f10", "default-hash-seed", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("0102030405060708090a0b0c0d0e0f10", "tailgate-parity", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("4bf92f3577b34da6a3ce929d0e0e4736", "default-hash-seed", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("4bf92f3577b34da6a3ce929d0e0e4736", "tailgate-parity", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("0af7651916cd43dd8448eb211c80319c", "default-hash-seed", [(0.0, false), (10.0, false), (33.3, true), (100.0, true)]),
        ("0af7651916cd43dd8448eb211c80319c", "tailgate-parity", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("ffffffffffffffffffffffffffffffff", "default-hash-seed", [(0.0, false), (10.0, true), (33.3, true), (100.0, true)]),
        ("ffffffffffffffffffffffffffffffff", "tailgate-parity", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("00000000000000000000000000000001", "default-hash-seed", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("00000000000000000000000000000001", "tailgate-parity", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("deadbeefdeadbeefdeadbeefdeadbeef", "default-hash-seed", [(0.0, false), (10.0, false), (33.3, true), (100.0, true)]),
        ("deadbeefdeadbeefdeadbeefdeadbeef", "tailgate-parity", [(0.0, false), (10.0, true), (33.3, true), (100.0, true)]),
        ("79c8c2926b94b5b5749882321e35049e", "default-hash-seed", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("79c8c2926b94b5b5749882321e35049e", "tailgate-parity", [(0.0, false), (10.0, false), (33.3, true), (100.0, true)]),
        ("eb7a79959588532d4242aadbc8f429a4", "default-hash-seed", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("eb7a79959588532d4242aadbc8f429a4", "tailgate-parity", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("515c61236c88c5373cf3bd58da60fb1c", "default-hash-seed", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("515c61236c88c5373cf3bd58da60fb1c", "tailgate-parity", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("88718c966f3d88f7f4b1b64633be40f5", "default-hash-seed", [(0.0, false), (10.0, false), (33.3, true), (100.0, true)]),
        ("88718c966f3d88f7f4b1b64633be40f5", "tailgate-parity", [(0.0, false), (10.0, false), (33.3, true), (100.0, true)]),
        ("5b08acc213a5bf07da1b195060c40eb7", "default-hash-seed", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("5b08acc213a5bf07da1b195060c40eb7", "tailgate-parity", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
        ("4a894db7e48f12b96a5d670af9a3638e", "default-hash-seed", [(0.0, false), (10.0, false), (33.3, true), (100.0, true)]),
        ("4a894db7e48f12b96a5d670af9a3638e", "tailgate-parity", [(0.0, false), (10.0, false), (33.3, false), (100.0, true)]),
    ];

    #[test]
    fn thresholds_match_the_big_float_oracle() {
        for &(pct, expected) in THRESHOLDS {
            assert_eq!(threshold(pct), expected, "sampling_percentage {pct}");
        }
    }

    #[test]
    fn hashes_match_the_oracle() {
        for &(trace_id, salt, expected) in HASHES {
            assert_eq!(
                hash(salt, &id(trace_id)),
                expected,
                "{trace_id} salted {salt}"
            );
        }
    }

    #[test]
    fn decisions_match_the_oracle() {
        for &(trace_id, salt, cases) in SAMPLED {
            for (pct, expected) in cases {
                let policy = Probabilistic::new(salt, pct);
                assert_eq!(
                    policy.samples(&id(trace_id)),
                    expected,
                    "{trace_id} salted {salt} at {pct} %"
                );
            }
        }
    }

    #[test]
    fn threshold_is_the_floor_of_the_exact_product_across_ratios() {
        // For ratios in [0, 1] the 64-bit rounding never carries into the integer part, so the
        // Collector's threshold is floor((2^64 − 1) × ratio): check that against a direct exact
        // computation over many percentages, including subnormal ratios.
        let mut pct = 1e-310_f64;
        while pct <= 100.0 {
            let ratio = pct / 100.0;
            let bits = ratio.to_bits();
            let biased = ((bits >> 52) & 0x7ff) as i32;
            let fraction = u128::from(bits & ((1 << 52) - 1));
            let (m, e) = if biased == 0 {
                (fraction, -1074)
            } else {
                (fraction | 1 << 52, biased - 1075)
            };
            let exact = u128::from(u64::MAX) * m;
            let shift = e.unsigned_abs();
            let floor = if shift >= 128 { 0 } else { exact >> shift };
            assert_eq!(
                u128::from(threshold(pct)),
                floor,
                "sampling_percentage {pct}"
            );
            pct = pct * 1.37 + 1e-12;
        }
    }

    #[test]
    fn rounding_is_to_nearest_with_ties_to_even() {
        // 66 significant bits rounded to 64: the two dropped bits decide.
        let base = 1u128 << 65;
        assert_eq!(round_to_significant_bits(base | 0b01, 64), base); // below half: down
        assert_eq!(round_to_significant_bits(base | 0b11, 64), base | 0b100); // above: up
        assert_eq!(round_to_significant_bits(base | 0b10, 64), base); // tie, even: down
        assert_eq!(round_to_significant_bits(base | 0b110, 64), base | 0b1000); // tie, odd: up
        let all_ones = (1u128 << 66) - 1;
        assert_eq!(round_to_significant_bits(all_ones, 64), 1 << 66); // carries out
        assert_eq!(round_to_significant_bits(12345, 64), 12345);
    }

    #[test]
    fn zero_percent_keeps_only_a_zero_hash_and_hundred_percent_keeps_all() {
        assert_eq!(threshold(0.0), 0);
        assert_eq!(threshold(100.0), u64::MAX);
        let all = Probabilistic::new("default-hash-seed", 100.0);
        assert!(all.samples(&[0xab; 16]));
    }
}
