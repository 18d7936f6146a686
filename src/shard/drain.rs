//! A shard's shutdown, in order, each step bounded by [`DRAIN_TIMEOUT`]: stop accepting and let
//! in-flight requests finish; close the mesh and wait for every peer's deliveries; settle the
//! stages (decide or drop buffered traces); flush the batchers and drain the exporters.

use std::time::{Duration, Instant};

use glommio::Task;

use crate::ingest::Ingest;

use super::dispatch::Pipelines;
use super::listeners::Listeners;

/// How long each shutdown step may take before the shard moves on.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Drains shard `id` once its stop signal is released; `mesh_tasks` hand its peers'
/// deliveries to `pipelines`.
pub(super) async fn drain(
    id: usize,
    listeners: Listeners,
    ingest: &Ingest,
    mesh_tasks: Vec<Task<()>>,
    pipelines: &Pipelines,
) {
    // 1. Stop accepting; let in-flight requests finish; send on what they left for the tier's
    //    other members.
    listeners.close(DRAIN_TIMEOUT).await;
    if let Some(tier) = ingest.tier() {
        tier.shutdown(Instant::now() + DRAIN_TIMEOUT).await;
    }
    // 2. Close this shard's senders; wait until every peer closed theirs and all was delivered.
    ingest.close_mesh();
    if !super::join_by(Instant::now() + DRAIN_TIMEOUT, mesh_tasks).await {
        tracing::warn!("shard {id}: a peer did not finish its deliveries in time");
    }
    // 3. Decide (or drop) the traces still buffered and push the kept ones.
    pipelines.settle(Instant::now() + DRAIN_TIMEOUT).await;
    // 4. Flush the batchers into the exporters, then drain the exporters.
    pipelines.flush(Instant::now() + DRAIN_TIMEOUT).await;
}
