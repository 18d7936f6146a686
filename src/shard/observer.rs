//! The shard's export observer: each exporter's outcomes, as its metric cells, the shard's drop
//! counters and the shard's memory account. One per exporter instance, on its shard's executor.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use tailgate_wire::Signal;

use crate::export::upstream::ShardUpstream;
use crate::export::{self, ExportObserver, SendError};
use crate::memory::ShardMemory;
use crate::telemetry::{
    BackendMetrics, DropMetrics, DropReason, ExporterMetrics, LoadBalancerMetrics,
    QUEUE_DISK_OPERATIONS,
};

/// Feeds an exporter's outcomes into its metrics and the shard's drop counters.
pub(super) struct Observer {
    pub(super) metrics: ExporterMetrics,
    pub(super) drops: DropMetrics,
    pub(super) signal: Signal,
    pub(super) memory: Rc<ShardMemory>,
    /// Whether the upstream answers, told to the node's log; none in tests that do not watch.
    pub(super) upstream: Option<ShardUpstream>,
    /// A `loadbalancing` exporter's own cells.
    pub(super) balancer: Option<BalancerCells>,
}

/// A load balancer's cells, with each backend's found once.
pub(super) struct BalancerCells {
    metrics: LoadBalancerMetrics,
    /// Per endpoint; `None` where the late families were full.
    backends: RefCell<HashMap<String, Option<BackendMetrics>>>,
}

impl BalancerCells {
    pub(super) fn new(metrics: LoadBalancerMetrics) -> Self {
        BalancerCells {
            metrics,
            backends: RefCell::new(HashMap::new()),
        }
    }
}

impl ExportObserver for Observer {
    fn sent(&self, signal: Signal, items: u64) {
        self.metrics.signal(signal).sent.add(items);
    }

    fn send_failed(&self, signal: Signal, items: u64, reason: &'static str) {
        let cells = self.metrics.signal(signal);
        let reason = match reason {
            export::reason::NOT_QUEUED => {
                cells.enqueue_failed.add(items);
                DropReason::Shutdown
            }
            export::reason::SHUTDOWN => {
                cells.send_failed.add(items);
                DropReason::Shutdown
            }
            export::reason::QUEUE_FULL => {
                cells.enqueue_failed.add(items);
                DropReason::QueueFull
            }
            export::reason::QUEUE_FULL_OLDEST => {
                cells.send_failed.add(items);
                DropReason::QueueFull
            }
            _ => {
                cells.send_failed.add(items);
                DropReason::ExportFailed
            }
        };
        self.drops.add(signal, reason, items);
    }

    fn handed_on(&self, signal: Signal, items: u64, reason: &'static str) {
        // A failed send (or enqueue) for this exporter; the failover connector it went to
        // counts it if it is lost after all.
        let cells = self.metrics.signal(signal);
        match reason {
            export::reason::QUEUE_FULL => cells.enqueue_failed.add(items),
            _ => cells.send_failed.add(items),
        }
    }

    fn queue_len(&self, len: usize) {
        self.metrics.signal(self.signal).queue_size.set(len as i64);
    }

    fn holding(&self, delta: i64) {
        self.memory.exporting(delta);
    }

    fn attempt_failed(&self, err: &SendError, queued: usize) {
        if let Some(upstream) = &self.upstream {
            upstream.failed(err, queued);
        }
    }

    fn attempt_answered(&self) {
        if let Some(upstream) = &self.upstream {
            upstream.answered();
        }
    }

    fn pending(&self, signal: Signal, delta: i64) {
        self.metrics.signal(signal).pending.add(delta);
    }

    fn queue_recovered(&self, signal: Signal, items: u64) {
        self.metrics.signal(signal).recovered.add(items);
    }

    fn queue_damaged(&self, signal: Option<Signal>, items: u64, bytes: u64) {
        self.metrics.queue_damaged_bytes.add(bytes);
        if let Some(signal) = signal {
            self.drops.add(signal, DropReason::QueueDamaged, items);
        }
    }

    fn queue_disk_error(&self, operation: &'static str) {
        if let Some(at) = QUEUE_DISK_OPERATIONS.iter().position(|op| *op == operation) {
            self.metrics.queue_disk_errors[at].add(1);
        }
    }

    fn queue_disk_usage(&self, bytes: u64, items: u64) {
        let cells = self.metrics.signal(self.signal);
        cells
            .queue_disk_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        cells
            .queue_disk_items
            .set(i64::try_from(items).unwrap_or(i64::MAX));
    }

    fn left_on_disk(&self, signal: Signal, items: u64) {
        self.metrics.signal(signal).left_on_disk.add(items);
    }

    fn backend_attempt(&self, endpoint: &str, answered: bool, elapsed: Duration) {
        let Some(balancer) = &self.balancer else {
            return;
        };
        let mut backends = balancer.backends.borrow_mut();
        if !backends.contains_key(endpoint) {
            let cells = balancer.metrics.backend(endpoint);
            backends.insert(endpoint.to_string(), cells);
        }
        if let Some(Some(cells)) = backends.get(endpoint) {
            if answered {
                cells.succeeded.inc();
            } else {
                cells.failed.inc();
            }
            let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            cells.latency_ms.record(ms);
        }
    }

    fn backends(&self, count: usize, changed: bool) {
        if let Some(balancer) = &self.balancer {
            balancer.metrics.num_backends.set(count as i64);
            if changed {
                balancer.metrics.backend_updates.inc();
            }
        }
    }

    fn resolution(&self, success: bool) {
        if let Some(balancer) = &self.balancer {
            if success {
                balancer.metrics.resolutions_succeeded.inc();
            } else {
                balancer.metrics.resolutions_failed.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::export::{DebugSettings, Exporter, ExporterSettings};
    use crate::memory::Overload;
    use crate::telemetry::RegistryBuilder;

    /// A batch handed to an exporter whose shutdown has begun is the Collector's
    /// `enqueue_failed`, not a failed send, and a drop with reason `shutdown`.
    #[test]
    fn batches_refused_at_shutdown_count_as_enqueue_failed() {
        let mut builder = RegistryBuilder::new();
        let drops = DropMetrics::register(&mut builder, 0);
        let exporter_metrics = ExporterMetrics::register(&mut builder, "debug", 0);
        let _registry = builder.build();
        let (counted_drops, counted) = (drops.clone(), exporter_metrics.clone());
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let observer = Rc::new(Observer {
                    metrics: exporter_metrics,
                    drops,
                    signal: Signal::Traces,
                    memory: Rc::new(ShardMemory::new(
                        0,
                        u64::MAX,
                        Arc::new(Overload::new(1)),
                        Default::default(),
                    )),
                    upstream: None,
                    balancer: None,
                });
                let exporter = Exporter::new(
                    "debug",
                    0,
                    ExporterSettings::Debug(DebugSettings::default()),
                    observer,
                )
                .expect("debug exporter");
                exporter
                    .shutdown(Vec::new(), Instant::now() + Duration::from_secs(1))
                    .await;
                let late = export::Batch {
                    signal: Signal::Traces,
                    bytes: bytes::Bytes::new(),
                    items: 5,
                    metadata: Default::default(),
                };
                assert!(exporter.submit(late).await.is_err());
            })
            .expect("executor")
            .join()
            .expect("test executor");
        let cells = counted.signal(Signal::Traces);
        assert_eq!(cells.enqueue_failed.get(), 5);
        assert_eq!(cells.send_failed.get(), 0);
        assert_eq!(
            counted_drops
                .counter(Signal::Traces, DropReason::Shutdown)
                .get(),
            5
        );
    }
}
