//! The failover connector's cells: which priority level each shard sends to, and how often a
//! level failed. (The routing connector has no metrics of its own: what it cannot route is a
//! drop, counted in [`super::DropMetrics`].)

use super::cell::{Counter, Gauge};
use super::registry::RegistryBuilder;

/// One failover connector's cells on one shard.
#[derive(Debug, Clone)]
pub struct FailoverMetrics {
    /// `tailgate_connector_failover_level`: the priority level (0 the highest) data goes to now.
    pub level: Gauge,
    /// `otelcol_connector_failover_count{level}`: the times the connector failed from each
    /// level, per level.
    pub failed: Vec<Counter>,
}

impl FailoverMetrics {
    /// Registers the cells of failover connector `connector` (its id) with `levels` levels on
    /// `shard`.
    pub fn register(
        builder: &mut RegistryBuilder,
        connector: &str,
        levels: usize,
        shard: usize,
    ) -> Self {
        let shard = shard.to_string();
        FailoverMetrics {
            level: builder.gauge(
                "tailgate_connector_failover_level",
                "The failover connector's priority level data goes to now (0 is the highest).",
                &[("connector", connector), ("shard", shard.as_str())],
            ),
            failed: (0..levels)
                .map(|level| {
                    let level = level.to_string();
                    builder.counter(
                        "otelcol_connector_failover_count",
                        "Number of times the connector failed from the respective level",
                        &[
                            ("connector", connector),
                            ("level", level.as_str()),
                            ("shard", shard.as_str()),
                        ],
                    )
                })
                .collect(),
        }
    }
}
