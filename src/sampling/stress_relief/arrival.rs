//! The at-arrival decision: OTEP-235 consistent sampling on a W3C random trace id.
//!
//! A trace id's last 56 bits (bytes 9 to 15, big-endian; byte 8 is masked off) are its
//! randomness `R`, uniform in `[0, 2^56)` for ids made as the W3C "random" trace-id flag
//! promises. Sampling with probability `p` keeps the trace when `R >= T`, with the threshold
//! `T = round((1 - p) * 2^56)`: a share `p` of ids clears it, and any two deciders with the same
//! `p` agree on every id, with no state and no coordination. The threshold and the randomness
//! are the ones the tracestate gate uses ([`crate::sampling::consistent`]), so stress relief and
//! a `probabilistic` policy under the gate read a trace id alike.

use crate::sampling::consistent::{Randomness, Threshold};

/// Whether a trace whose id is `trace_id` is kept at `threshold`: the decision itself.
#[inline]
pub(crate) fn keeps(trace_id: [u8; 16], threshold: Threshold) -> bool {
    threshold.keeps(Randomness::of_trace_id(trace_id))
}

/// How stress relief decides a new trace at its arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivalSampling {
    threshold: Threshold,
    /// Under the tracestate gate, kept spans carry the threshold in their tracestate, as the
    /// policies' kept spans carry theirs: a backend then counts each as `1 / p` spans.
    tracestate: bool,
}

impl ArrivalSampling {
    /// Keeps `percentage` percent of traces (0 to 100); with `tracestate` (the gate), kept spans
    /// say so in their tracestate.
    pub fn new(percentage: f64, tracestate: bool) -> Self {
        ArrivalSampling {
            threshold: Threshold::from_probability(percentage / 100.0),
            tracestate,
        }
    }

    /// Whether the trace `trace_id` is kept.
    #[inline]
    pub fn keeps(&self, trace_id: [u8; 16]) -> bool {
        keeps(trace_id, self.threshold)
    }

    /// The threshold a kept span's tracestate takes, under the gate.
    #[inline]
    pub(crate) fn tracestate_threshold(&self) -> Option<Threshold> {
        self.tracestate.then_some(self.threshold)
    }
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

    fn at(percentage: f64) -> Threshold {
        Threshold::from_probability(percentage / 100.0)
    }

    #[test]
    fn thresholds_are_otep_235s() {
        assert_eq!(at(100.0), Threshold::ALWAYS);
        assert_eq!(at(0.0), Threshold::NEVER);
        assert_eq!(at(50.0).bits(), 1 << 55);
        // The full-precision thresholds behind `th:e666…` (10 %) and `th:cccc…` (20 %).
        assert_eq!(at(10.0).bits(), 0xe6_6666_6666_6666);
        assert_eq!(at(20.0).bits(), 0xcc_cccc_cccc_cccc);
        assert_eq!(at(1.0).bits(), 0xfd_70a3_d70a_3d71);
    }

    #[test]
    fn known_ids_are_kept_at_and_above_their_threshold() {
        // The W3C Trace Context example id: randomness 0xce929d0e0e4736, 0.8069… of 2^56, so
        // kept at 20 %, not at 19 %.
        let w3c = id("4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(keeps(w3c, at(20.0)));
        assert!(!keeps(w3c, at(19.0)));
        // At 50 % the threshold is 2^55: the boundary id is kept, the one below is not. Byte 8
        // and the first half of the id are not randomness.
        assert!(keeps(id("00000000000000000080000000000000"), at(50.0)));
        assert!(!keeps(id("ffffffffffffffffff7fffffffffffff"), at(50.0)));
        // 100 % keeps the lowest randomness; 0 % keeps not even the highest.
        let lowest = id("ffffffffffffffffff00000000000000");
        let highest = id("000000000000000000ffffffffffffff");
        assert!(keeps(lowest, at(100.0)));
        assert!(!keeps(highest, at(0.0)));
        assert!(keeps(highest, at(0.000_001)));
    }

    #[test]
    fn the_share_kept_is_the_percentage() {
        // Ids spread evenly over the randomness: a share of exactly p, give or take one.
        let n = 10_000u64;
        for pct in [1.0, 10.0, 33.3, 50.0, 90.0] {
            let sampling = ArrivalSampling::new(pct, false);
            let kept = (0..n)
                .filter(|i| {
                    let mut trace = [0u8; 16];
                    trace[8..].copy_from_slice(&(i * ((1 << 56) / n)).to_be_bytes());
                    sampling.keeps(trace)
                })
                .count() as f64;
            let expected = pct / 100.0 * n as f64;
            assert!((kept - expected).abs() <= 1.0, "{pct} %: {kept} of {n}");
        }
    }

    #[test]
    fn kept_spans_carry_the_threshold_under_the_gate_only() {
        assert_eq!(
            ArrivalSampling::new(10.0, false).tracestate_threshold(),
            None
        );
        assert_eq!(
            ArrivalSampling::new(10.0, true).tracestate_threshold(),
            Some(at(10.0))
        );
    }
}
