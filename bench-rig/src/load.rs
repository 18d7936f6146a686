//! `tailgate-bench load`: OTLP load at a fixed rate or at the maximum, with latency measured
//! honestly.
//!
//! Requests are generated before the run (SDK-shaped spans: 10 attributes of 20-character keys
//! and values, one event, 10 spans per trace, distinct trace ids per request) and sent as they
//! are, so the generator spends its CPU on sending, not encoding. Each connection is one task of
//! one glommio executor, using tailgate's own OTLP exporter with its queue and retries off: one
//! request in flight per connection. At `--rate max` every connection sends as fast as answers
//! come back (closed loop). At a fixed rate each connection sends on a schedule, and a request's
//! latency is measured from when it was *due*, not from when it was sent: a stall that delays
//! the schedule shows in the percentiles instead of hiding (coordinated omission).

use std::cell::{Cell, RefCell};
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tailgate::export::{
    self, Batch, ExportObserver, Exporter, ExporterSettings, OtlpGrpcSettings, OtlpHttpSettings,
    QueueSettings, RetrySettings,
};
use tailgate::wire::Signal;

/// How many distinct requests are generated and cycled through.
const DISTINCT_REQUESTS: usize = 64;
/// Spans per trace in generated requests.
const SPANS_PER_TRACE: usize = 10;
/// The most connections one run opens.
const MAX_CONNECTIONS: usize = 4096;

/// What `tailgate-bench load` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The gateway's OTLP endpoint, e.g. `http://127.0.0.1:4317` (gRPC) or
    /// `http://127.0.0.1:4318` (HTTP).
    #[arg(long)]
    pub endpoint: String,
    /// grpc, http-protobuf or http-json.
    #[arg(long, default_value = "grpc")]
    pub protocol: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Spans per second, or `max`.
    #[arg(long, default_value = "max")]
    pub rate: String,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Spans per request.
    #[arg(long, default_value_t = 500)]
    pub spans_per_request: usize,
    /// gzip or zstd request compression.
    #[arg(long)]
    pub compression: Option<String>,
    /// Where to write the JSON report.
    #[arg(long)]
    pub report: PathBuf,
    /// The CPU the generator is pinned to; unpinned when absent.
    #[arg(long)]
    pub cpu: Option<usize>,
}

/// splitmix64, for deterministic ids and text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn text(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| (b'a' + (self.next() % 26) as u8) as char)
            .collect()
    }
}

fn string_kv(key: String, value: String) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// One SDK-shaped request of `spans` spans.
fn sdk_shaped_request(rng: &mut Rng, spans: usize) -> Vec<u8> {
    let base_ns = 1_700_000_000_000_000_000u64;
    let mut out = Vec::with_capacity(spans);
    let mut trace_id = Vec::new();
    for i in 0..spans {
        if i % SPANS_PER_TRACE == 0 {
            trace_id = [rng.next().to_le_bytes(), rng.next().to_le_bytes()].concat();
        }
        let start = base_ns + rng.next() % 1_000_000_000;
        out.push(Span {
            trace_id: trace_id.clone(),
            span_id: (rng.next() | 1).to_le_bytes().to_vec(),
            parent_span_id: rng.next().to_le_bytes().to_vec(),
            name: format!("GET /api/v1/{}", rng.text(8)),
            kind: 2,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_000 + rng.next() % 50_000_000,
            attributes: (0..10)
                .map(|_| string_kv(rng.text(20), rng.text(20)))
                .collect(),
            events: vec![span::Event {
                time_unix_nano: start + 500,
                name: "message".into(),
                attributes: vec![string_kv("message.type".into(), "SENT".into())],
                dropped_attributes_count: 0,
            }],
            status: Some(Status {
                message: String::new(),
                code: if rng.next() % 20 == 0 { 2 } else { 0 },
            }),
            flags: 0x301,
            ..Default::default()
        });
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    string_kv("service.name".into(), "checkout".into()),
                    string_kv("host.name".into(), "ip-10-0-12-34".into()),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.http".into(),
                    version: "1.30.0".into(),
                    ..Default::default()
                }),
                spans: out,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

/// Counts one connection's answers.
#[derive(Default)]
struct Counts {
    accepted: Cell<u64>,
    refused: Cell<u64>,
}

impl ExportObserver for Counts {
    fn sent(&self, _: Signal, items: u64) {
        self.accepted.set(self.accepted.get() + items);
    }
    fn send_failed(&self, _: Signal, items: u64, _: &'static str) {
        self.refused.set(self.refused.get() + items);
    }
    fn queue_len(&self, _: usize) {}
}

fn exporter_settings(args: &LoadArgs) -> io::Result<ExporterSettings> {
    let compression = match args.compression.as_deref() {
        None | Some("none") => export::Compression::None,
        Some("gzip") => export::Compression::Gzip,
        Some("zstd") => export::Compression::Zstd,
        Some(other) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("compression {other}"),
            ))
        }
    };
    let retry = RetrySettings {
        enabled: false,
        ..RetrySettings::default()
    };
    let queue = QueueSettings {
        enabled: false,
        ..QueueSettings::default()
    };
    let timeout = Duration::from_secs(30);
    Ok(match args.protocol.as_str() {
        "grpc" => ExporterSettings::Otlp(OtlpGrpcSettings {
            endpoint: args.endpoint.clone(),
            compression,
            timeout,
            retry,
            queue,
            ..OtlpGrpcSettings::default()
        }),
        "http-protobuf" | "http-json" => ExporterSettings::OtlpHttp(OtlpHttpSettings {
            endpoint: args.endpoint.clone(),
            compression,
            encoding: if args.protocol == "http-json" {
                export::Encoding::Json
            } else {
                export::Encoding::Proto
            },
            timeout,
            retry,
            queue,
            ..OtlpHttpSettings::default()
        }),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("protocol {other}"),
            ))
        }
    })
}

/// This process's CPU time (user + system).
fn own_cpu_time() -> Duration {
    // SAFETY: getrusage only writes the rusage struct passed by pointer, which lives on this
    // stack frame for the call.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// Runs the load and writes the report.
pub fn run(args: LoadArgs) -> io::Result<()> {
    if !(1..=MAX_CONNECTIONS).contains(&args.connections) || args.spans_per_request == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("connections must be 1..={MAX_CONNECTIONS}, spans per request at least 1"),
        ));
    }
    let rate: Option<f64> = match args.rate.as_str() {
        "max" => None,
        n => Some(n.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("rate {n:?}: spans/s or max"),
            )
        })?),
    };
    let settings = exporter_settings(&args)?;
    let mut rng = Rng(0x7a11_9a7e);
    let requests: Vec<Bytes> = (0..DISTINCT_REQUESTS)
        .map(|_| Bytes::from(sdk_shaped_request(&mut rng, args.spans_per_request)))
        .collect();
    let duration = Duration::from_secs_f64(args.duration);
    let placement = args.cpu.map_or(Placement::Unbound, Placement::Fixed);
    let cpu_before = own_cpu_time();
    let connections = args.connections;
    let spans_per_request = args.spans_per_request as u64;
    let started = Instant::now();
    let (accepted, refused, sent_requests, histogram) = LocalExecutorBuilder::new(placement)
        .name("tailgate-bench-load")
        .spawn(move || async move {
            let histogram = Rc::new(RefCell::new(
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            ));
            let sent = Rc::new(Cell::new(0u64));
            let counts = Rc::new(Counts::default());
            let deadline = Instant::now() + duration;
            // Each connection's share of the rate: one request every `interval`.
            let interval = rate.map(|r| {
                Duration::from_secs_f64(spans_per_request as f64 * connections as f64 / r)
            });
            let mut tasks = Vec::new();
            for connection in 0..connections {
                let exporter = Exporter::new("load", connection, settings.clone(), counts.clone())
                    .expect("load exporter settings");
                let requests = requests.clone();
                let histogram = histogram.clone();
                let sent = sent.clone();
                tasks.push(glommio::spawn_local(async move {
                    let mut due = Instant::now();
                    let mut i = connection;
                    while Instant::now() < deadline {
                        if interval.is_some() {
                            let now = Instant::now();
                            if due > now {
                                glommio::timer::sleep(due - now).await;
                            }
                        } else {
                            due = Instant::now();
                        }
                        let batch = Batch {
                            signal: Signal::Traces,
                            bytes: requests[i % requests.len()].clone(),
                            items: spans_per_request,
                        };
                        i += connections;
                        if exporter.submit(batch).await.is_err() {
                            break;
                        }
                        sent.set(sent.get() + 1);
                        let latency_us = due.elapsed().as_micros() as u64;
                        let _ = histogram.borrow_mut().record(latency_us.max(1));
                        if let Some(interval) = interval {
                            due += interval;
                        }
                    }
                    exporter
                        .shutdown(Vec::new(), Instant::now() + Duration::from_secs(5))
                        .await;
                }));
            }
            for task in tasks {
                task.await;
            }
            let histogram = histogram.borrow().clone();
            (
                counts.accepted.get(),
                counts.refused.get(),
                sent.get(),
                histogram,
            )
        })?
        .join()
        .map_err(|err| io::Error::other(err.to_string()))?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (own_cpu_time() - cpu_before).as_secs_f64();
    let report = serde_json::json!({
        "protocol": args.protocol,
        "connections": args.connections,
        "spans_per_request": args.spans_per_request,
        "rate_target": rate,
        "duration_s": elapsed,
        "requests_sent": sent_requests,
        "spans_sent": sent_requests * spans_per_request,
        "spans_accepted": accepted,
        "spans_refused": refused,
        "spans_per_s": accepted as f64 / elapsed,
        "generator_cpu_s": cpu,
        "latency_us": {
            "p50": histogram.value_at_quantile(0.50),
            "p90": histogram.value_at_quantile(0.90),
            "p99": histogram.value_at_quantile(0.99),
            "p999": histogram.value_at_quantile(0.999),
            "max": histogram.max(),
        },
    });
    std::fs::write(&args.report, serde_json::to_vec_pretty(&report)?)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
