//! The tier's own families (`crate::tier`), per shard: spans forwarded to the members that own
//! them, spans received from members, and whether this node is in the membership. What the
//! forwarder sends, fails, queues and resolves is counted as the exporter named `tier`
//! (`otelcol_exporter_*{exporter="tier"}`, `otelcol_loadbalancer_*{exporter="tier"}`).

use super::cell::{Counter, Gauge};
use super::registry::RegistryBuilder;

/// One shard's tier cells.
#[derive(Debug, Clone)]
pub struct TierMetrics {
    /// `tailgate_tier_forwarded_spans`: spans received from clients that another member owns,
    /// handed to the forwarder.
    pub forwarded: Counter,
    /// `tailgate_tier_received_spans{owner="self"}`: spans forwarded here by a member that this
    /// node's ring also gives to this node.
    pub received_owned: Counter,
    /// `tailgate_tier_received_spans{owner="other"}`: spans forwarded here that this node's
    /// ring gives to another member (the two disagree while membership changes); they are
    /// decided here, never forwarded again.
    pub received_other: Counter,
    /// `tailgate_tier_member`: 1 while this node is in the current membership.
    pub member: Gauge,
}

impl TierMetrics {
    /// Registers shard `shard`'s cells.
    pub fn register(builder: &mut RegistryBuilder, shard: usize) -> Self {
        let shard = shard.to_string();
        let labels = [("shard", shard.as_str())];
        let received = |builder: &mut RegistryBuilder, owner: &str| {
            builder.counter(
                "tailgate_tier_received_spans",
                "Spans forwarded to this node by another member of the tier, by whether this \
                 node's ring owns their trace too.",
                &[("owner", owner), ("shard", shard.as_str())],
            )
        };
        TierMetrics {
            forwarded: builder.counter(
                "tailgate_tier_forwarded_spans",
                "Spans received from clients whose trace another member of the tier owns, \
                 handed to the forwarder.",
                &labels,
            ),
            received_owned: received(builder, "self"),
            received_other: received(builder, "other"),
            member: builder.gauge(
                "tailgate_tier_member",
                "1 while this node is a member of the tier's current membership.",
                &labels,
            ),
        }
    }
}
