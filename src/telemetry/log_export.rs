//! Log processors (`service.telemetry.logs.processors`): the gateway's own log records pushed
//! over OTLP, as the Collector's batch log processor pushes its logs.
//!
//! # Who does what
//!
//! [`install`] gives the process's log subscriber a [`LogLayer`]: every event the log's level
//! lets through becomes an OTLP `LogRecord` (time, severity, the message as its body, the other
//! fields as string attributes), encoded once and offered to each processor's queue, a bounded
//! channel of `max_queue_size` records. A full queue drops the record and counts it: logging
//! never waits. The queues are filled from the first line on, before the gateway has planned
//! anything; [`take_queues`] hands them to the gateway, which starts one [`LogPusher`] thread
//! a processor once its clients are built ([`crate::export::OneShot`], so TLS, proxies and
//! gzip behave as for every exporter).
//!
//! A pusher sends a batch when it holds `max_export_batch_size` records or the oldest has
//! waited `schedule_delay` (a `simple` processor: each at once), each export bounded by the
//! processor's timeout and not retried, as the SDK's batch processor does; records of a failed
//! export are counted failed. A failing processor logs once, and once again when it recovers —
//! lines that go to its own queue too, so a failure adds one record, not a record per failure.
//! At shutdown what is queued goes out within [`LAST_EXPORT_MAX`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tracing_subscriber::layer::Context;

use super::cell::Counter;
use crate::export::{Batch, ExporterSettings, OneShot};
use tailgate_wire::Signal;

/// The most the last export, at shutdown, may take.
pub const LAST_EXPORT_MAX: Duration = Duration::from_secs(5);

/// How often a waiting pusher looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// One processor's queue: encoded records, and how many a full queue dropped.
struct Queue {
    sender: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

/// A processor's queue as the gateway takes it: its records, and the drop count.
pub struct LogQueue {
    records: Receiver<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

/// The queues [`install`] made, until the gateway takes them.
static QUEUES: Mutex<Vec<LogQueue>> = Mutex::new(Vec::new());

/// The log subscriber's layer that offers every record to the processors' queues.
pub struct LogLayer {
    queues: Vec<Queue>,
}

/// A layer offering the log's records to a queue of each of `sizes` records (one per
/// processor); the queues wait for [`take_queues`].
pub fn install(sizes: &[usize]) -> LogLayer {
    let mut queues = Vec::with_capacity(sizes.len());
    let mut taken = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    for &size in sizes {
        let (sender, records) = sync_channel(size.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        queues.push(Queue {
            sender,
            dropped: dropped.clone(),
        });
        taken.push(LogQueue { records, dropped });
    }
    LogLayer { queues }
}

/// The queues [`install`] made, in the processors' order (empty after the first call).
pub fn take_queues() -> Vec<LogQueue> {
    std::mem::take(&mut *QUEUES.lock().unwrap_or_else(|e| e.into_inner()))
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if self.queues.is_empty() {
            return;
        }
        let record = encode_record(event);
        for queue in &self.queues {
            match queue.sender.try_send(record.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    queue.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The severity number and text of a level, as the OpenTelemetry log data model maps them.
fn severity(level: &tracing::Level) -> (i32, &'static str) {
    match *level {
        tracing::Level::TRACE => (1, "TRACE"),
        tracing::Level::DEBUG => (5, "DEBUG"),
        tracing::Level::INFO => (9, "INFO"),
        tracing::Level::WARN => (13, "WARN"),
        tracing::Level::ERROR => (17, "ERROR"),
    }
}

/// An event's fields: the message as the body, the others as string attributes.
#[derive(Default)]
struct Fields {
    message: String,
    attributes: Vec<KeyValue>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.record_text(field, text);
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.record_text(field, value.to_string());
    }
}

impl Fields {
    fn record_text(&mut self, field: &tracing::field::Field, text: String) {
        if field.name() == "message" {
            self.message = text;
        } else {
            self.attributes.push(string(field.name(), text));
        }
    }
}

fn string(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..KeyValue::default()
    }
}

/// The encoded `LogRecord` of `event`, now.
fn encode_record(event: &tracing::Event<'_>) -> Vec<u8> {
    let mut fields = Fields::default();
    event.record(&mut fields);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let (number, text) = severity(event.metadata().level());
    LogRecord {
        time_unix_nano: now,
        observed_time_unix_nano: now,
        severity_number: number,
        severity_text: text.to_string(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(fields.message)),
        }),
        attributes: fields.attributes,
        ..LogRecord::default()
    }
    .encode_to_vec()
}

/// One processor: where and how its records go.
pub struct LogTarget {
    /// For logs: `telemetry log processor N (ENDPOINT)`.
    pub label: String,
    /// The client: `otlp` for gRPC, `otlphttp` for HTTP.
    pub settings: ExporterSettings,
    /// `schedule_delay` (zero: each record at once).
    pub schedule_delay: Duration,
    /// The bound on one export.
    pub timeout: Duration,
    /// `max_export_batch_size`.
    pub batch_size: usize,
    /// `tailgate_telemetry_log_records{outcome="sent"}`.
    pub sent: Counter,
    /// `tailgate_telemetry_log_records{outcome="failed"}`.
    pub failed: Counter,
    /// `tailgate_telemetry_log_records{outcome="dropped"}`: a full queue's.
    pub dropped: Counter,
}

/// One processor's thread; dropping it sends what is queued (within [`LAST_EXPORT_MAX`]) and
/// stops it.
pub struct LogPusher {
    stop: Arc<AtomicBool>,
    thread: Option<ExecutorJoinHandle<()>>,
}

impl LogPusher {
    /// Starts pushing `queue`'s records to `target`, under `resource`.
    pub fn start(
        target: LogTarget,
        queue: LogQueue,
        resource: Vec<(String, String)>,
    ) -> std::io::Result<LogPusher> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = LocalExecutorBuilder::new(Placement::Unbound)
            .name("tailgate-logs")
            .ring_depth(32)
            .spawn(move || async move {
                run(target, queue, &resource, &flag).await;
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(LogPusher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LogPusher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The export request of `records` under `resource`, scope `tailgate`.
fn export_request(records: &[Vec<u8>], resource: &[(String, String)]) -> Vec<u8> {
    let log_records = records
        .iter()
        .filter_map(|bytes| LogRecord::decode(bytes.as_slice()).ok())
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| string(k, v.clone())).collect(),
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "tailgate".to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..InstrumentationScope::default()
                }),
                log_records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
    .encode_to_vec()
}

async fn run(target: LogTarget, queue: LogQueue, resource: &[(String, String)], stop: &AtomicBool) {
    let client = match OneShot::new(&target.settings) {
        Ok(client) => client,
        Err(err) => {
            tracing::error!("{}: cannot push the log: {err}", target.label);
            return;
        }
    };
    let mut failing = false;
    let mut counted_drops = 0u64;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(target.batch_size);
    let mut first_at: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        // Gather until the batch is full, its delay is up, or the stop comes; the channel is
        // waited on in short steps so the executor stays responsive to nothing else (it runs
        // this task alone).
        let due = first_at.map(|at| at + target.schedule_delay);
        let wait = match due {
            Some(due) => due.saturating_duration_since(Instant::now()).min(STOP_POLL),
            None => STOP_POLL,
        };
        let mut disconnected = false;
        if batch.len() < target.batch_size {
            match queue.records.recv_timeout(wait) {
                Ok(record) => {
                    first_at.get_or_insert_with(Instant::now);
                    batch.push(record);
                    while batch.len() < target.batch_size {
                        match queue.records.try_recv() {
                            Ok(record) => batch.push(record),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => disconnected = true,
            }
        }
        let drops = queue.dropped.load(Ordering::Relaxed);
        target.dropped.add(drops - counted_drops);
        counted_drops = drops;
        let full = batch.len() >= target.batch_size;
        let late = first_at.is_some_and(|at| at + target.schedule_delay <= Instant::now());
        if !batch.is_empty() && (full || late || stopping || disconnected) {
            let timeout = if stopping {
                target.timeout.min(LAST_EXPORT_MAX)
            } else {
                target.timeout
            };
            let items = batch.len() as u64;
            let request = Batch {
                signal: Signal::Logs,
                bytes: export_request(&batch, resource).into(),
                items,
                metadata: Default::default(),
            };
            batch.clear();
            first_at = None;
            let send = async { client.send(&request).await.map_err(|e| e.to_string()) };
            let deadline = async {
                glommio::timer::sleep(timeout).await;
                Err(format!("no response within {timeout:?}"))
            };
            match futures_lite::future::or(send, deadline).await {
                Ok(_) => {
                    target.sent.add(items);
                    if failing {
                        failing = false;
                        tracing::info!("{}: pushing the log works again", target.label);
                    }
                }
                Err(err) => {
                    target.failed.add(items);
                    if err.starts_with("no response within") {
                        client.forget_connection();
                    }
                    if !failing {
                        failing = true;
                        tracing::warn!(
                            "{}: pushing the log failed: {err}; its records are counted failed \
                             and the next batch tries again (logged once until it works)",
                            target.label
                        );
                    }
                }
            }
            continue;
        }
        if (stopping || disconnected) && batch.is_empty() {
            return;
        }
        // Let the executor breathe between waits.
        glommio::yield_if_needed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_encoding_carries_time_severity_body_and_fields() {
        use tracing_subscriber::layer::SubscriberExt;
        let (sender, records) = sync_channel(1);
        let dropped = Arc::new(AtomicU64::new(0));
        let layer = LogLayer {
            queues: vec![Queue {
                sender,
                dropped: dropped.clone(),
            }],
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(upstream = "central:4317", "the upstream is failing");
            tracing::info!("a second record, past the queue's one place");
        });
        let record = LogRecord::decode(records.try_recv().expect("one record").as_slice())
            .expect("a LogRecord");
        assert_eq!(record.severity_number, 13);
        assert_eq!(record.severity_text, "WARN");
        assert!(record.time_unix_nano > 0);
        assert_eq!(
            record.body.and_then(|b| b.value),
            Some(any_value::Value::StringValue(
                "the upstream is failing".into()
            ))
        );
        assert_eq!(record.attributes.len(), 1);
        assert_eq!(record.attributes[0].key, "upstream");
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            1,
            "the full queue's drop is counted"
        );
        let request = ExportLogsServiceRequest::decode(
            export_request(
                &[record_bytes()],
                &[("service.name".into(), "tailgate".into())],
            )
            .as_slice(),
        )
        .expect("a request");
        assert_eq!(request.resource_logs[0].scope_logs[0].log_records.len(), 1);
    }

    fn record_bytes() -> Vec<u8> {
        LogRecord {
            severity_number: 9,
            ..LogRecord::default()
        }
        .encode_to_vec()
    }
}
