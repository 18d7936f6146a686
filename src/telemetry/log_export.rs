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
//! export are counted failed. A failing processor logs once, and once again when it recovers.
//! What the pushers' own threads log (their failures, and the HTTP/2 and TLS libraries' lines
//! at `debug`) is written to the log's stream only, never queued: exporting it would make more
//! of it.
//!
//! At shutdown ([`shutdown`], the last thing the process does) every pusher is told to stop at
//! once and sends what is queued, all within [`LAST_EXPORT_MAX`] together: an export under way
//! is cut off at that deadline, and what is left then is counted dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::encoding::WireType;
use prost::Message;
use tracing_subscriber::layer::Context;

use super::cell::Counter;
use crate::export::{Batch, ExporterSettings, OneShot};
use tailgate_wire::Signal;

/// The most the last export, at shutdown, may take.
pub const LAST_EXPORT_MAX: Duration = Duration::from_secs(5);

/// How often a pusher with an export under way looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// How long a pusher with nothing to send waits before it looks at its queue again.
const POLL: Duration = Duration::from_millis(50);

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

/// The running pushers, until [`shutdown`].
static PUSHERS: Mutex<Vec<LogPusher>> = Mutex::new(Vec::new());

thread_local! {
    /// Set on a pusher's thread: what it logs is not queued.
    static PUSHER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

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
        if self.queues.is_empty() || PUSHER_THREAD.with(std::cell::Cell::get) {
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
    /// The client: `otlp` for gRPC, `otlphttp` for HTTP; `None`: the console, one JSON line a
    /// record on standard output.
    pub settings: Option<ExporterSettings>,
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

/// One processor's thread, running until [`shutdown`].
pub struct LogPusher {
    stop: Arc<AtomicBool>,
    thread: Option<ExecutorJoinHandle<()>>,
}

/// Keeps `pusher` running until [`shutdown`].
pub fn keep(pusher: LogPusher) {
    PUSHERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(pusher);
}

/// Stops every pusher at once, each sending what is queued within [`LAST_EXPORT_MAX`] of this
/// call, and waits for them: the process's last step, after its last log line.
pub fn shutdown() {
    let pushers = std::mem::take(&mut *PUSHERS.lock().unwrap_or_else(|e| e.into_inner()));
    for pusher in &pushers {
        pusher.stop.store(true, Ordering::Release);
    }
    drop(pushers);
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
                PUSHER_THREAD.with(|on| on.set(true));
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
    // The records are encoded already: framed into their scope as they are (field 2 of
    // ScopeLogs), not decoded and encoded again. Encoding a message's fields one after the
    // other is encoding the message.
    let mut scope_logs = ScopeLogs {
        scope: Some(InstrumentationScope {
            name: "tailgate".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..InstrumentationScope::default()
        }),
        ..ScopeLogs::default()
    }
    .encode_to_vec();
    for record in records {
        prost::encoding::encode_key(2, WireType::LengthDelimited, &mut scope_logs);
        prost::encoding::encode_varint(record.len() as u64, &mut scope_logs);
        scope_logs.extend_from_slice(record);
    }
    let mut resource_logs = ResourceLogs {
        resource: Some(Resource {
            attributes: resource.iter().map(|(k, v)| string(k, v.clone())).collect(),
            ..Resource::default()
        }),
        ..ResourceLogs::default()
    }
    .encode_to_vec();
    prost::encoding::encode_key(2, WireType::LengthDelimited, &mut resource_logs);
    prost::encoding::encode_varint(scope_logs.len() as u64, &mut resource_logs);
    resource_logs.extend_from_slice(&scope_logs);
    // ExportLogsServiceRequest: its one field, resource_logs (1).
    let mut request = Vec::with_capacity(resource_logs.len() + 8);
    prost::encoding::encode_key(1, WireType::LengthDelimited, &mut request);
    prost::encoding::encode_varint(resource_logs.len() as u64, &mut request);
    request.extend_from_slice(&resource_logs);
    request
}

async fn run(target: LogTarget, queue: LogQueue, resource: &[(String, String)], stop: &AtomicBool) {
    let client = match target.settings.as_ref().map(OneShot::new) {
        None => None,
        Some(Ok(client)) => Some(client),
        Some(Err(err)) => {
            tracing::error!("{}: cannot push the log: {err}", target.label);
            return;
        }
    };
    let mut failing = false;
    let mut counted_drops = 0u64;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(target.batch_size);
    let mut first_at: Option<Instant> = None;
    // Set when the stop is first seen: everything left must go out by then.
    let mut deadline: Option<Instant> = None;
    loop {
        if deadline.is_none() && stop.load(Ordering::Acquire) {
            deadline = Some(Instant::now() + LAST_EXPORT_MAX);
        }
        let mut disconnected = false;
        while batch.len() < target.batch_size {
            match queue.records.try_recv() {
                Ok(record) => {
                    first_at.get_or_insert_with(Instant::now);
                    batch.push(record);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        let drops = queue.dropped.load(Ordering::Relaxed);
        target.dropped.add(drops - counted_drops);
        counted_drops = drops;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // Past the stop's bound: what is left is lost, and counted so.
            let left = batch.len() as u64 + queue.records.try_iter().count() as u64;
            target.dropped.add(left);
            return;
        }
        let full = batch.len() >= target.batch_size;
        let late = first_at.is_some_and(|at| at + target.schedule_delay <= Instant::now());
        let stopping = deadline.is_some();
        if !batch.is_empty() && (full || late || stopping || disconnected) {
            let items = batch.len() as u64;
            let Some(client) = &client else {
                match print_records(&batch, resource) {
                    Ok(()) => target.sent.add(items),
                    // Standard output closed: the records are lost with it, and counted so.
                    Err(_) => target.failed.add(items),
                }
                batch.clear();
                first_at = None;
                continue;
            };
            let request = Batch {
                signal: Signal::Logs,
                bytes: export_request(&batch, resource).into(),
                items,
                metadata: Default::default(),
            };
            batch.clear();
            first_at = None;
            match export(client, &request, target.timeout, stop, deadline).await {
                Ok(()) => {
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
        // Nothing to send yet: wait a little, on the executor's timer, for more.
        let wait = first_at
            .map(|at| (at + target.schedule_delay).saturating_duration_since(Instant::now()))
            .unwrap_or(POLL)
            .min(POLL);
        glommio::timer::sleep(wait).await;
    }
}

/// The console exporter: each of `records` as one JSON line on standard output, with its
/// resource and scope (the OpenTelemetry SDK's stdout exporter writes the same fields).
fn print_records(records: &[Vec<u8>], resource: &[(String, String)]) -> std::io::Result<()> {
    use std::io::Write;
    let resource: serde_json::Map<String, serde_json::Value> = resource
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
        .collect();
    let mut out = std::io::stdout().lock();
    for record in records
        .iter()
        .filter_map(|bytes| LogRecord::decode(bytes.as_slice()).ok())
    {
        let text = |value: Option<&AnyValue>| match value.and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(text)) => text.clone(),
            _ => String::new(),
        };
        let attributes: serde_json::Map<String, serde_json::Value> = record
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), text(kv.value.as_ref()).into()))
            .collect();
        let line = serde_json::json!({
            "timestamp": record.time_unix_nano,
            "severity_number": record.severity_number,
            "severity_text": record.severity_text,
            "body": text(record.body.as_ref()),
            "attributes": attributes,
            "resource": resource,
            "scope": "tailgate",
        });
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// One export of `request`, bounded by `timeout` and, once the stop is seen, by the stop's
/// deadline (`deadline`, or the one the stop sets while the export is under way).
async fn export(
    client: &OneShot,
    request: &Batch,
    timeout: Duration,
    stop: &AtomicBool,
    deadline: Option<Instant>,
) -> Result<(), String> {
    let send = async {
        client
            .send(request)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let bounded = async {
        glommio::timer::sleep(timeout).await;
        Err(format!("no response within {timeout:?}"))
    };
    let stopped = async {
        let deadline = match deadline {
            Some(deadline) => deadline,
            None => {
                while !stop.load(Ordering::Acquire) {
                    glommio::timer::sleep(STOP_POLL).await;
                }
                Instant::now() + LAST_EXPORT_MAX
            }
        };
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        Err("cut off at shutdown".to_string())
    };
    futures_lite::future::or(send, futures_lite::future::or(bounded, stopped)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

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
        let scope_logs = &request.resource_logs[0].scope_logs[0];
        assert_eq!(scope_logs.log_records.len(), 1);
        assert_eq!(scope_logs.log_records[0].severity_number, 9);
        assert_eq!(
            scope_logs.scope.as_ref().map(|s| s.name.as_str()),
            Some("tailgate")
        );
        assert_eq!(
            request.resource_logs[0]
                .resource
                .as_ref()
                .map(|r| r.attributes.len()),
            Some(1)
        );
    }

    fn record_bytes() -> Vec<u8> {
        LogRecord {
            severity_number: 9,
            ..LogRecord::default()
        }
        .encode_to_vec()
    }
}
