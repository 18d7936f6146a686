//! The Collector's `batch` processor families, labelled `processor` with the processor's
//! component id as the Collector's batchprocessor labels them, and `shard`:
//!
//! - `otelcol_processor_batch_batch_size_trigger_send`: batches handed out because they were
//!   full (`send_batch_size`, or a bound on items or bytes), or at once for a `timeout` of 0;
//! - `otelcol_processor_batch_timeout_trigger_send`: batches handed out by the `timeout`;
//! - `otelcol_processor_batch_batch_send_size`: the items of each batch, in the Collector's
//!   buckets;
//! - `otelcol_processor_batch_metadata_cardinality`: the client metadata combinations the
//!   batcher holds data of right now (at least 1, its plain batcher, as the Collector's single
//!   batcher counts 1; see `crate::export::partition`).
//!
//! Batches handed out at shutdown count as timeout triggers, as the Collector counts them.
//! The batching a pipeline takes from its exporters' `sending_queue.batch` has no processor and
//! no series, as there (the exporter's batching has families of its own there, which tailgate
//! does not have). The Collector's `batch_send_size_bytes` is served at its `detailed` level
//! only; tailgate serves `normal`, so not it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::cell::{Counter, Gauge, Histogram};
use super::registry::RegistryBuilder;

/// The Collector's buckets of `otelcol_processor_batch_batch_send_size`.
pub const BATCH_SEND_SIZE_BOUNDS: &[u64] = &[
    10, 25, 50, 75, 100, 250, 500, 750, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000,
    10000, 20000, 30000, 50000, 100_000,
];

/// One `batch` processor's cells on one shard, shared by the pipelines that list it.
#[derive(Debug, Clone)]
pub struct BatchMetrics {
    /// `otelcol_processor_batch_batch_size_trigger_send`.
    pub size_trigger: Counter,
    /// `otelcol_processor_batch_timeout_trigger_send`.
    pub timeout_trigger: Counter,
    /// `otelcol_processor_batch_batch_send_size`.
    pub send_size: Histogram,
    /// `otelcol_processor_batch_metadata_cardinality`: 1 for the batcher without metadata
    /// (added by the first pipeline that counts, on the shard, its only writer), plus what
    /// each pipeline of the processor holds.
    pub cardinality: Gauge,
    /// Whether that 1 was added.
    pub baseline: Arc<AtomicBool>,
}

impl BatchMetrics {
    /// Registers the families of processor `processor` (its component id) on `shard`.
    pub fn register(builder: &mut RegistryBuilder, processor: &str, shard: usize) -> Self {
        let shard = shard.to_string();
        let labels = [("processor", processor), ("shard", shard.as_str())];
        let cardinality = builder.gauge(
            "otelcol_processor_batch_metadata_cardinality",
            "Number of distinct metadata value combinations being processed",
            &labels,
        );
        BatchMetrics {
            size_trigger: builder.counter(
                "otelcol_processor_batch_batch_size_trigger_send",
                "Number of times the batch was sent due to a size trigger",
                &labels,
            ),
            timeout_trigger: builder.counter(
                "otelcol_processor_batch_timeout_trigger_send",
                "Number of times the batch was sent due to a timeout trigger",
                &labels,
            ),
            send_size: builder.histogram(
                "otelcol_processor_batch_batch_send_size",
                "Number of units in the batch",
                BATCH_SEND_SIZE_BOUNDS,
                &labels,
            ),
            cardinality,
            baseline: Arc::new(AtomicBool::new(false)),
        }
    }
}
