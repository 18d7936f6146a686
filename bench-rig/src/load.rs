//! `tailgate-bench load`: OTLP load at a fixed rate or at the maximum, with latency measured
//! honestly.
//!
//! Requests are generated before the run ([`crate::generate`]: SDK-shaped spans) and only their
//! ids are patched at send time, so every span sent is distinct (the sink's duplicate count means
//! something) while the generator spends its CPU on sending, not encoding. Each connection is one
//! task of one glommio executor, using tailgate's own OTLP exporter with its queue and retries
//! off: one request in flight per connection. At `--rate max` every connection sends as fast as answers
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
use tailgate::wire::{Signal, TracesRequest};

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

/// A pre-encoded request and where its ids sit, so each send can carry fresh ids.
struct Template {
    bytes: Vec<u8>,
    /// Offsets of every span's 16-byte trace id and 8-byte span id.
    trace_ids: Vec<usize>,
    span_ids: Vec<usize>,
}

impl Template {
    fn new(bytes: Vec<u8>) -> io::Result<Template> {
        let request = TracesRequest::parse(&bytes)
            .map_err(|err| io::Error::other(format!("generated request: {err}")))?;
        let base = bytes.as_ptr() as usize;
        let mut trace_ids = Vec::new();
        let mut span_ids = Vec::new();
        for span in request.spans() {
            trace_ids.push(span.trace_id().as_ptr() as usize - base);
            span_ids.push(span.span_id().as_ptr() as usize - base);
        }
        Ok(Template {
            bytes,
            trace_ids,
            span_ids,
        })
    }

    /// The `n`th send of this request: every trace id and span id XORed with a value derived
    /// from `n`, so ids never repeat across sends while the spans of a trace keep one trace id.
    /// Costs one copy of the request, a few hundred bytes a span.
    fn instance(&self, n: u64) -> Bytes {
        let mut bytes = self.bytes.clone();
        let salt = Rng(n).next_u64().to_le_bytes();
        for &at in &self.trace_ids {
            bytes[at..at + 8]
                .iter_mut()
                .zip(salt)
                .for_each(|(b, s)| *b ^= s);
        }
        for &at in &self.span_ids {
            bytes[at..at + 8]
                .iter_mut()
                .zip(salt)
                .for_each(|(b, s)| *b ^= s);
        }
        Bytes::from(bytes)
    }
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
    let requests: Vec<Template> = (0..DISTINCT_REQUESTS)
        .map(|_| Template::new(sdk_shaped_request(&mut rng, args.spans_per_request)))
        .collect::<Result<_, _>>()?;
    let requests = std::sync::Arc::new(requests);
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
                            bytes: requests[i % requests.len()].instance(i as u64),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn ids(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        TracesRequest::parse(bytes)
            .expect("a patched request stays valid")
            .spans()
            .map(|s| (s.trace_id().to_vec(), s.span_id().to_vec()))
            .collect()
    }

    #[test]
    fn each_send_carries_fresh_ids_and_keeps_traces_together() {
        let template = Template::new(sdk_shaped_request(&mut Rng(1), 50)).unwrap();
        let original = ids(&template.bytes);
        let first = ids(&template.instance(1));
        let second = ids(&template.instance(2));
        assert_eq!(first.len(), 50);
        // Spans that shared a trace id still share one, and only those.
        for sends in [&first, &second] {
            let mut traces: HashMap<&[u8], &[u8]> = HashMap::new();
            for ((orig_trace, _), (trace, _)) in original.iter().zip(sends.iter()) {
                assert_eq!(*traces.entry(orig_trace).or_insert(trace), trace.as_slice());
            }
            assert_eq!(traces.len(), 50 / crate::generate::SPANS_PER_TRACE);
        }
        // No span id or trace id repeats across sends.
        let a: HashSet<_> = first.iter().collect();
        assert!(second.iter().all(|id| !a.contains(id)));
        assert!(first.iter().zip(&second).all(|(x, y)| x.0 != y.0));
        // Only the ids changed: the rest of every span is as generated.
        assert_eq!(template.instance(3).len(), template.bytes.len());
    }
}
