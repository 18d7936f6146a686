//! `composite`: sub-policies in order, each with a share of a span rate.
//!
//! The Collector's algorithm, reproduced:
//!
//! - Each sub-policy gets `percent / 100 × max_total_spans_per_second` spans per second when its
//!   `rate_allocation` percent is above 0, and an equal share
//!   (`max_total_spans_per_second / number of sub-policies`) when its percent is 0 or it has no
//!   allocation (contrib PR #49857; before it, a sub-policy without an allocation got 0). The
//!   figures are computed in `float64` and truncated, as there.
//! - Counting restarts every second. Sub-policies are evaluated in `composite_sub_policy` order
//!   (`policy_order` is checked by the configuration but, as in the Collector, not used). The
//!   first sub-policy that samples (Sampled or InvertSampled) decides: the trace is sampled if
//!   that sub-policy's count this second plus the trace's spans stays within both its
//!   allocation and `max_total_spans_per_second` (compared with that sub-policy's own count, as
//!   the Collector does), and not sampled otherwise — the remaining sub-policies are not asked
//!   (contrib issue #36959).
//!
//! Across shards: each shard counts its own spans against `ceil(allocation / shards)` and
//! `ceil(max_total_spans_per_second / shards)` per second. Rounding up keeps a small share from
//! becoming zero (which would sample nothing on any shard); the node as a whole can then exceed
//! a figure by at most `shards − 1` spans per second.

use super::policy::{Clock, Policy};
use super::trace::Trace;
use super::{Decision, PolicyError};
use crate::config::CompositePolicy;

#[derive(Debug, Clone)]
struct SubPolicy {
    policy: Policy,
    /// This shard's spans per second for the sub-policy.
    allocated: u64,
    /// Spans it sampled in the current second.
    sampled: u64,
}

/// A compiled `composite` policy.
#[derive(Debug, Clone)]
pub(crate) struct Composite {
    subs: Vec<SubPolicy>,
    /// This shard's share of `max_total_spans_per_second`.
    max_total: u64,
    /// The window the counts belong to.
    second: Option<u64>,
}

/// A sub-policy's node-wide spans per second, as the Collector's `getRateAllocationMap`
/// computes it.
fn node_allocation(cfg: &CompositePolicy, name: &str) -> u64 {
    let total = cfg.max_total_spans_per_second as f64;
    let equal_share = total / cfg.sub_policies.len() as f64;
    let share = match cfg.rate_allocation.iter().find(|a| a.policy == name) {
        Some(a) if a.percent > 0 => (f64::from(a.percent) / 100.0) * total,
        _ => equal_share,
    };
    share as u64
}

impl Composite {
    pub(crate) fn compile(cfg: &CompositePolicy, shards: u64) -> Result<Self, PolicyError> {
        let subs = cfg
            .sub_policies
            .iter()
            .map(|sub| {
                Ok(SubPolicy {
                    policy: Policy::compile(sub, shards)?,
                    allocated: node_allocation(cfg, &sub.name).div_ceil(shards),
                    sampled: 0,
                })
            })
            .collect::<Result<_, PolicyError>>()?;
        Ok(Composite {
            subs,
            max_total: cfg.max_total_spans_per_second.div_ceil(shards),
            second: None,
        })
    }

    /// Whether a sub-policy may read the trace's spans (see [`Policy::reads_spans`]).
    pub(crate) fn reads_spans(&self, zero_times: bool) -> bool {
        self.subs.iter().any(|s| s.policy.reads_spans(zero_times))
    }

    /// Whether a sub-policy's evaluation can fail (see [`Policy::may_fail`]).
    pub(crate) fn may_fail(&self) -> bool {
        self.subs.iter().any(|s| s.policy.may_fail())
    }

    /// The sub-policies' failed evaluations since the last call (see [`Policy::take_failures`]).
    pub(crate) fn take_failures(&mut self) -> u64 {
        self.subs.iter_mut().map(|s| s.policy.take_failures()).sum()
    }

    pub(crate) fn evaluate(&mut self, trace: &Trace<'_>, clock: Clock) -> Decision {
        if self.second != Some(clock.second) {
            self.second = Some(clock.second);
            for sub in &mut self.subs {
                sub.sampled = 0;
            }
        }
        for sub in &mut self.subs {
            if matches!(
                sub.policy.evaluate(trace, clock),
                Decision::Sampled | Decision::InvertSampled
            ) {
                let if_sampled = sub.sampled.saturating_add(trace.span_count());
                if if_sampled <= sub.allocated && if_sampled <= self.max_total {
                    sub.sampled = if_sampled;
                    return Decision::Sampled;
                }
                return Decision::NotSampled;
            }
        }
        Decision::NotSampled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Policy as PolicyCfg, PolicyKind, RateAllocation};

    fn cfg(total: u64, subs: &[&str], allocations: &[(&str, u32)]) -> CompositePolicy {
        CompositePolicy {
            max_total_spans_per_second: total,
            policy_order: subs.iter().map(|s| s.to_string()).collect(),
            sub_policies: subs
                .iter()
                .map(|name| PolicyCfg {
                    name: name.to_string(),
                    kind: PolicyKind::AlwaysSample,
                })
                .collect(),
            rate_allocation: allocations
                .iter()
                .map(|(policy, percent)| RateAllocation {
                    policy: policy.to_string(),
                    percent: *percent,
                })
                .collect(),
        }
    }

    #[test]
    fn allocations_follow_the_collector() {
        let c = cfg(
            1000,
            &["a", "b", "c", "d"],
            &[("a", 50), ("b", 0), ("c", 33)],
        );
        assert_eq!(node_allocation(&c, "a"), 500);
        assert_eq!(node_allocation(&c, "b"), 250, "0 % is an equal share");
        assert_eq!(node_allocation(&c, "c"), 330);
        assert_eq!(
            node_allocation(&c, "d"),
            250,
            "no allocation is an equal share"
        );
        // float64 arithmetic truncated: 0.29 × 100 is 28.999999999999996.
        let c = cfg(100, &["a"], &[("a", 29)]);
        assert_eq!(node_allocation(&c, "a"), 28);
    }

    #[test]
    fn shares_round_up_per_shard() {
        let c = cfg(10, &["a", "b"], &[("a", 50)]);
        let composite = Composite::compile(&c, 4).unwrap();
        assert_eq!(composite.max_total, 3);
        assert_eq!(composite.subs[0].allocated, 2);
        assert_eq!(composite.subs[1].allocated, 2);
    }
}
