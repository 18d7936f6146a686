//! `tailgate-bench load`: OTLP load at a fixed rate or at the maximum, with latency measured
//! honestly.
//!
//! Requests are generated before the run ([`crate::generate`]: SDK-shaped spans, distinct trace
//! ids per request) and sent as they
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
use tailgate::export::{
    self, Batch, ExportObserver, Exporter, ExporterSettings, OtlpGrpcSettings, OtlpHttpSettings,
    QueueSettings, RetrySettings,
};
use tailgate::wire::Signal;

use crate::generate::{sdk_shaped_request, Rng};

/// How many distinct requests are generated and cycled through.
const DISTINCT_REQUESTS: usize = 64;
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
