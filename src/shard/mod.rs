//! One shard's data path, from the spans it owns to its exporters.
//!
//! Each shard runs all of this on its own executor and shares none of it: the dispatcher that
//! hands a delivery (from the shard's receivers or over the mesh) to the stages of its signal
//! ([`dispatch`]), the stages themselves (the tail sampler, then a batcher and exporters), the
//! connectors between them ([`routing`], [`failover`]), its
//! listeners ([`listeners`]), the observer that counts what its exporters send and drop
//! ([`observer`]) and the metric cells it alone writes ([`telemetry`]). [`run`] builds a shard
//! from the plan and runs it; [`drain`] is its shutdown, step by step.

mod dispatch;
mod drain;
mod failover;
mod listeners;
mod observer;
mod reload;
mod routing;
mod run;
mod telemetry;

pub(crate) use reload::{Reloads, ShardAnswer, ShardReload};

use std::future::Future;
use std::time::Instant;

/// Awaits `tasks` in turn until `deadline`; whether all of them finished by then.
async fn join_by<T>(deadline: Instant, tasks: impl IntoIterator<Item = T>) -> bool
where
    T: Future,
{
    for task in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        let finished = glommio::timer::timeout(left, async {
            task.await;
            Ok(())
        })
        .await;
        if finished.is_err() {
            return false;
        }
    }
    true
}
pub(crate) use run::{run, Node};
pub(crate) use telemetry::ShardTelemetry;
