//! The at-arrival decision: OTEP-235 consistent sampling on a W3C random trace id.
//!
//! A trace id's last 56 bits (bytes 9 to 15, big-endian; byte 8 is masked off) are its
//! randomness `R`, uniform in `[0, 2^56)` for ids made as the W3C "random" trace-id flag
//! promises. Sampling with probability `p` keeps the trace when `R >= T`, with the threshold
//! `T = round((1 - p) * 2^56)`: a share `p` of ids clears it, and any two deciders with the same
//! `p` agree on every id, with no state and no coordination.

/// How many values a trace id's randomness takes: 2^56.
pub const RANDOMNESS_VALUES: u64 = 1 << 56;

/// The rejection threshold for one sampling probability: a trace is kept when its randomness is
/// at least this (0 keeps every trace, [`RANDOMNESS_VALUES`] none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold(u64);

impl Threshold {
    /// The threshold that keeps `percentage` percent of traces (clamped to 0..=100).
    ///
    /// Computed as `2^56 - round(p * 2^56)`: `p * 2^56` is exact in floating point (a power of
    /// two scales without rounding), so this is `round((1 - p) * 2^56)` without the rounding
    /// error of `1 - p`.
    pub fn from_percentage(percentage: f64) -> Threshold {
        let p = (percentage / 100.0).clamp(0.0, 1.0);
        // In 0..=2^56: the cast is exact.
        let kept = (p * RANDOMNESS_VALUES as f64).round() as u64;
        Threshold(RANDOMNESS_VALUES - kept.min(RANDOMNESS_VALUES))
    }

    /// The threshold's value, in `0..=2^56`.
    pub fn value(self) -> u64 {
        self.0
    }
}

/// A trace id's 56 bits of randomness: bytes 8 to 15 big-endian, masked to 56 bits.
#[inline]
pub fn randomness(trace_id: &[u8; 16]) -> u64 {
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    u64::from_be_bytes(low) & (RANDOMNESS_VALUES - 1)
}

/// Whether stress relief keeps the trace `trace_id` at `threshold`.
#[inline]
pub fn keeps(trace_id: &[u8; 16], threshold: Threshold) -> bool {
    randomness(trace_id) >= threshold.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> [u8; 16] {
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        id
    }

    #[test]
    fn the_randomness_is_the_last_seven_bytes_big_endian() {
        // The W3C Trace Context example id.
        let w3c = id("4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(randomness(&w3c), 0xce_929d_0e0e_4736);
        // Byte 8 is not randomness; the first half of the id is not read.
        assert_eq!(randomness(&id("ffffffffffffffffff00000000000000")), 0);
        assert_eq!(
            randomness(&id("0000000000000000ffffffffffffffff")),
            RANDOMNESS_VALUES - 1
        );
    }

    #[test]
    fn thresholds_are_otep_235s() {
        assert_eq!(Threshold::from_percentage(100.0).value(), 0);
        assert_eq!(Threshold::from_percentage(0.0).value(), RANDOMNESS_VALUES);
        assert_eq!(Threshold::from_percentage(50.0).value(), 1 << 55);
        // The full-precision thresholds behind `th:e666…` (10 %) and `th:cccc…` (20 %).
        assert_eq!(
            Threshold::from_percentage(10.0).value(),
            0xe6_6666_6666_6666
        );
        assert_eq!(
            Threshold::from_percentage(20.0).value(),
            0xcc_cccc_cccc_cccc
        );
        assert_eq!(Threshold::from_percentage(1.0).value(), 0xfd_70a3_d70a_3d71);
        // Out-of-range percentages clamp.
        assert_eq!(Threshold::from_percentage(150.0).value(), 0);
        assert_eq!(Threshold::from_percentage(-1.0).value(), RANDOMNESS_VALUES);
    }

    #[test]
    fn known_ids_are_kept_at_and_above_their_threshold() {
        // Randomness 0.8069…: kept at 20 %, not at 19 %.
        let w3c = id("4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(keeps(&w3c, Threshold::from_percentage(20.0)));
        assert!(!keeps(&w3c, Threshold::from_percentage(19.0)));
        // At 50 % the threshold is 2^55: the boundary id is kept, the one below is not.
        let half = Threshold::from_percentage(50.0);
        assert!(keeps(&id("00000000000000000080000000000000"), half));
        assert!(!keeps(&id("ffffffffffffffffff7fffffffffffff"), half));
        // 100 % keeps the lowest randomness; 0 % keeps not even the highest.
        let lowest = id("ffffffffffffffffff00000000000000");
        let highest = id("000000000000000000ffffffffffffff");
        assert!(keeps(&lowest, Threshold::from_percentage(100.0)));
        assert!(!keeps(&highest, Threshold::from_percentage(0.0)));
        assert!(keeps(&highest, Threshold::from_percentage(0.000_001)));
    }

    #[test]
    fn the_share_kept_is_the_percentage() {
        // Ids spread evenly over the randomness: a keeps-share of exactly p, give or take one.
        let n = 10_000u64;
        for pct in [1.0, 10.0, 33.3, 50.0, 90.0] {
            let threshold = Threshold::from_percentage(pct);
            let kept = (0..n)
                .filter(|i| {
                    let r = i * (RANDOMNESS_VALUES / n);
                    let mut trace = [0u8; 16];
                    trace[8..].copy_from_slice(&r.to_be_bytes());
                    keeps(&trace, threshold)
                })
                .count() as f64;
            let expected = pct / 100.0 * n as f64;
            assert!((kept - expected).abs() <= 1.0, "{pct} %: {kept} of {n}");
        }
    }
}
