//! The receiver and exporter families, with the Collector's names, labels and help texts.
//!
//! The Collector counts per component instance: `receiver` and `transport` label the receiver
//! families, `exporter` the exporter families, and the queue gauges also carry `data_type`
//! (`traces`, `metrics`, `logs`) because a Collector exporter has one queue per pipeline signal.
//! Each shard registers its own set with its `shard` label and is the only writer of it.
//! Items are counted as the Collector counts them: spans, metric data points, log records.

use tailgate_wire::Signal;

use super::auth::AuthMetrics;
use super::cell::{Counter, Gauge};
use super::connections::ConnectionMetrics;
use super::registry::RegistryBuilder;

/// The receiver counters of one signal.
#[derive(Debug, Clone)]
pub struct ReceiverSignalMetrics {
    /// Items successfully pushed into the pipeline.
    pub accepted: Counter,
    /// Items refused: not pushed into the pipeline, the sender told to retry or give up.
    pub refused: Counter,
}

/// One receiver's counters on one shard, per signal.
#[derive(Debug, Clone)]
pub struct ReceiverMetrics {
    /// `otelcol_receiver_{accepted,refused}_spans`. (The Collector's `failed_*` counts internal
    /// errors after a receiver took data; a tailgate receiver hands everything it accepts to
    /// the pipelines, waiting for room, so it has no such event and no such series.)
    pub spans: ReceiverSignalMetrics,
    /// `otelcol_receiver_{accepted,refused}_metric_points`.
    pub metric_points: ReceiverSignalMetrics,
    /// `otelcol_receiver_{accepted,refused}_log_records`.
    pub log_records: ReceiverSignalMetrics,
    /// `tailgate_receiver_connections_*` and `tailgate_receiver_accept_errors`.
    pub connections: ConnectionMetrics,
    /// `tailgate_receiver_auth_failures`.
    pub auth: AuthMetrics,
}

impl ReceiverMetrics {
    /// Registers the receiver families for `receiver` (the component id, e.g. `otlp`) over
    /// `transport` (`grpc` or `http`) on `shard`.
    pub fn register(
        builder: &mut RegistryBuilder,
        receiver: &str,
        transport: &str,
        shard: usize,
    ) -> Self {
        let shard = shard.to_string();
        let labels = [
            ("receiver", receiver),
            ("transport", transport),
            ("shard", shard.as_str()),
        ];
        let mut signal = |item: &str, item_help: &str| ReceiverSignalMetrics {
            accepted: builder.counter(
                &format!("otelcol_receiver_accepted_{item}"),
                &format!("Number of {item_help} successfully pushed into the pipeline."),
                &labels,
            ),
            refused: builder.counter(
                &format!("otelcol_receiver_refused_{item}"),
                &format!("Number of {item_help} that could not be pushed into the pipeline."),
                &labels,
            ),
        };
        let spans = signal("spans", "spans");
        let metric_points = signal("metric_points", "metric points");
        let log_records = signal("log_records", "log records");
        ReceiverMetrics {
            spans,
            metric_points,
            log_records,
            connections: ConnectionMetrics::register(builder, receiver, transport, &shard),
            auth: AuthMetrics::register(builder, receiver, transport, &shard),
        }
    }

    /// The counters of `signal`.
    pub fn signal(&self, signal: Signal) -> &ReceiverSignalMetrics {
        match signal {
            Signal::Traces => &self.spans,
            Signal::Metrics => &self.metric_points,
            Signal::Logs => &self.log_records,
        }
    }
}

/// The exporter cells of one signal.
#[derive(Debug, Clone)]
pub struct ExporterSignalMetrics {
    /// Items successfully sent to the destination.
    pub sent: Counter,
    /// Items in failed attempts to send to the destination.
    pub send_failed: Counter,
    /// Items that could not be added to the sending queue: handed to the exporter after its
    /// shutdown had begun (a full queue makes the caller wait instead).
    pub enqueue_failed: Counter,
    /// Current size of the sending queue, in batches.
    pub queue_size: Gauge,
    /// Fixed capacity of the sending queue, in batches.
    pub queue_capacity: Gauge,
    /// Items a persistent queue read back at start, left by an earlier run.
    pub recovered: Counter,
    /// Items a shutdown left in a persistent queue for the next start.
    pub left_on_disk: Counter,
    /// `tailgate_exporter_pending_*`: items handed to the exporter and not yet settled
    /// (queued in memory or on disk, or being sent): the accounting's "still queued" term.
    pub pending: Gauge,
    /// `tailgate_exporter_queue_disk_bytes`: what a persistent queue's segments take on disk.
    pub queue_disk_bytes: Gauge,
    /// `tailgate_exporter_queue_disk_items`: items in a persistent queue's records not yet
    /// settled (the backlog an outage left).
    pub queue_disk_items: Gauge,
}

/// The operations of a persistent queue's disk that can fail, in the order of their series.
pub const QUEUE_DISK_OPERATIONS: [&str; 6] = ["write", "fsync", "read", "ack", "delete", "recover"];

/// One exporter's cells on one shard, per signal.
#[derive(Debug, Clone)]
pub struct ExporterMetrics {
    /// `otelcol_exporter_*_spans` and the queue gauges with `data_type="traces"`.
    pub spans: ExporterSignalMetrics,
    /// `otelcol_exporter_*_metric_points` and the queue gauges with `data_type="metrics"`.
    pub metric_points: ExporterSignalMetrics,
    /// `otelcol_exporter_*_log_records` and the queue gauges with `data_type="logs"`.
    pub log_records: ExporterSignalMetrics,
    /// `tailgate_exporter_upstream_failing`: 1 while the exporter's last attempt on this shard
    /// failed (see `crate::export::upstream`).
    pub upstream_failing: Gauge,
    /// `tailgate_exporter_queue_damaged_bytes`: damaged records a persistent queue skipped.
    pub queue_damaged_bytes: Counter,
    /// `tailgate_exporter_queue_disk_errors{operation}`, in [`QUEUE_DISK_OPERATIONS`] order.
    pub queue_disk_errors: Vec<Counter>,
}

impl ExporterMetrics {
    /// Registers the exporter families for `exporter` (the component id, e.g. `otlp/central`)
    /// on `shard`.
    pub fn register(builder: &mut RegistryBuilder, exporter: &str, shard: usize) -> Self {
        let shard = shard.to_string();
        let labels = [("exporter", exporter), ("shard", shard.as_str())];
        let mut signal = |item: &str, item_help: &str, data_type: Signal| {
            let queue_labels = [
                ("exporter", exporter),
                ("data_type", data_type.as_str()),
                ("shard", shard.as_str()),
            ];
            ExporterSignalMetrics {
                sent: builder.counter(
                    &format!("otelcol_exporter_sent_{item}"),
                    &format!("Number of {item_help} successfully sent to destination."),
                    &labels,
                ),
                send_failed: builder.counter(
                    &format!("otelcol_exporter_send_failed_{item}"),
                    &format!("Number of {item_help} in failed attempts to send to destination."),
                    &labels,
                ),
                enqueue_failed: builder.counter(
                    &format!("otelcol_exporter_enqueue_failed_{item}"),
                    &format!("Number of {item_help} failed to be added to the sending queue."),
                    &labels,
                ),
                queue_size: builder.gauge(
                    "otelcol_exporter_queue_size",
                    "Current size of the retry queue (in batches).",
                    &queue_labels,
                ),
                queue_capacity: builder.gauge(
                    "otelcol_exporter_queue_capacity",
                    "Fixed capacity of the retry queue (in batches).",
                    &queue_labels,
                ),
                recovered: builder.counter(
                    &format!("tailgate_exporter_queue_recovered_{item}"),
                    &format!(
                        "Number of {item_help} a persistent sending queue read back at start, \
                         left by an earlier run."
                    ),
                    &labels,
                ),
                pending: builder.gauge(
                    &format!("tailgate_exporter_pending_{item}"),
                    &format!(
                        "Number of {item_help} handed to the exporter and not yet settled: \
                         queued in memory or on disk, or being sent."
                    ),
                    &labels,
                ),
                queue_disk_bytes: builder.gauge(
                    "tailgate_exporter_queue_disk_bytes",
                    "Bytes a persistent sending queue's segments take on disk.",
                    &queue_labels,
                ),
                queue_disk_items: builder.gauge(
                    "tailgate_exporter_queue_disk_items",
                    "Spans, metric points or log records in a persistent sending queue's \
                     records not yet settled: the backlog on disk.",
                    &queue_labels,
                ),
                left_on_disk: builder.counter(
                    &format!("tailgate_exporter_queue_left_on_disk_{item}"),
                    &format!(
                        "Number of {item_help} a shutdown left in a persistent sending queue \
                         for the next start: not sent, not lost."
                    ),
                    &labels,
                ),
            }
        };
        let spans = signal("spans", "spans", Signal::Traces);
        let metric_points = signal("metric_points", "metric points", Signal::Metrics);
        let log_records = signal("log_records", "log records", Signal::Logs);
        ExporterMetrics {
            spans,
            metric_points,
            log_records,
            upstream_failing: builder.gauge(
                "tailgate_exporter_upstream_failing",
                "1 while this exporter's last attempt to send on this shard failed (the upstream \
                 unreachable, timing out or refusing), 0 once it answers.",
                &labels,
            ),
            queue_damaged_bytes: builder.counter(
                "tailgate_exporter_queue_damaged_bytes",
                "Bytes of damaged records (a write cut short, bytes changed on disk) a \
                 persistent sending queue skipped; their items are in tailgate_dropped_* with \
                 reason queue_damaged.",
                &labels,
            ),
            queue_disk_errors: QUEUE_DISK_OPERATIONS
                .iter()
                .map(|operation| {
                    builder.counter(
                        "tailgate_exporter_queue_disk_errors",
                        "Operations a persistent sending queue's disk refused (a full disk, an \
                         I/O error), by operation.",
                        &[
                            ("exporter", exporter),
                            ("shard", shard.as_str()),
                            ("operation", operation),
                        ],
                    )
                })
                .collect(),
        }
    }

    /// The cells of `signal`.
    pub fn signal(&self, signal: Signal) -> &ExporterSignalMetrics {
        match signal {
            Signal::Traces => &self.spans,
            Signal::Metrics => &self.metric_points,
            Signal::Logs => &self.log_records,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_and_exporter_families_have_the_collector_names() {
        let mut b = RegistryBuilder::new();
        let r = ReceiverMetrics::register(&mut b, "otlp", "grpc", 3);
        let e = ExporterMetrics::register(&mut b, "otlp/central", 3);
        r.signal(Signal::Traces).accepted.add(5);
        r.signal(Signal::Logs).refused.add(2);
        e.signal(Signal::Traces).sent.add(4);
        e.signal(Signal::Metrics).queue_capacity.set(1000);
        let mut out = String::new();
        b.build().render_prometheus(&mut out);
        for line in [
            "# TYPE otelcol_receiver_accepted_spans counter\n",
            "otelcol_receiver_accepted_spans{receiver=\"otlp\",transport=\"grpc\",shard=\"3\"} 5\n",
            "otelcol_receiver_refused_log_records{receiver=\"otlp\",transport=\"grpc\",shard=\"3\"} 2\n",
            "otelcol_receiver_accepted_metric_points{receiver=\"otlp\",transport=\"grpc\",shard=\"3\"} 0\n",
            "otelcol_exporter_sent_spans{exporter=\"otlp/central\",shard=\"3\"} 4\n",
            "otelcol_exporter_send_failed_log_records{exporter=\"otlp/central\",shard=\"3\"} 0\n",
            "otelcol_exporter_enqueue_failed_metric_points{exporter=\"otlp/central\",shard=\"3\"} 0\n",
            "# TYPE otelcol_exporter_queue_size gauge\n",
            "otelcol_exporter_queue_capacity{exporter=\"otlp/central\",data_type=\"metrics\",shard=\"3\"} 1000\n",
            "otelcol_exporter_queue_size{exporter=\"otlp/central\",data_type=\"logs\",shard=\"3\"} 0\n",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
        // One family per name: the queue gauges of three signals share one TYPE line.
        assert_eq!(
            out.matches("# TYPE otelcol_exporter_queue_size ").count(),
            1
        );
    }
}
