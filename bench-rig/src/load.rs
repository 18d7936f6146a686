//! `tailgate-bench load`: OTLP load at a fixed rate or at the maximum, with latency measured
//! honestly.
//!
//! The traces come from [`crate::traces`]: shapes drawn from `--seed` before the run, reported in
//! waves `--trace-spread-ms` apart and interleaved in requests, built at send time by copying
//! pre-encoded waves and patching their ids, so the generator spends its CPU on sending, not
//! encoding. The oracle ([`crate::oracle`], `--oracle-policy`) decides each trace as it starts;
//! with `--expect-out` the load writes what a sink downstream of a tail-sampling gateway must see.
//!
//! Each connection is one task of one glommio executor, using tailgate's own OTLP exporter with
//! its queue and retries off: one request in flight per connection. At `--rate max` every
//! connection sends as fast as answers come back (closed loop). At a fixed rate each connection
//! sends on a schedule, and a request's latency is measured from when it was *due*, not from when
//! it was sent: a stall that delays the schedule shows in the percentiles instead of hiding
//! (coordinated omission). After `--duration` no new trace starts; the waves still owed are sent
//! when due, so every trace started is sent whole. A line of progress goes to stderr every second.

use std::cell::{Cell, RefCell};
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use tailgate::export::{
    self, Batch, ExportObserver, Exporter, ExporterSettings, OtlpGrpcSettings, OtlpHttpSettings,
    QueueSettings, RetrySettings,
};
use tailgate::wire::Signal;

use crate::oracle::{Oracle, Recorder};
use crate::traces::{Next, TraceSettings, TraceStream};

/// The seed when none is given.
pub const SEED_DEFAULT: u64 = 0x7a11_9a7e;
/// How often the progress line is written.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
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
    /// The seed traces and their ids are drawn from.
    #[arg(long, default_value_t = SEED_DEFAULT)]
    pub seed: u64,
    /// Share of traces with a span whose status is ERROR.
    #[arg(long, default_value_t = 0.02)]
    pub error_rate: f64,
    /// Share of traces in the slow tail (10 to 40 times a log-normal duration).
    #[arg(long, default_value_t = 0.02)]
    pub slow_rate: f64,
    /// Milliseconds between a trace's waves (each trace is reported in 2 or 3 waves).
    #[arg(long, default_value_t = 0)]
    pub trace_spread_ms: u64,
    /// The policies the oracle applies: `always`, or any of `errors`, `latency:MS`,
    /// `probabilistic:PCT[:SALT]`, comma-separated.
    #[arg(long, default_value = "always")]
    pub oracle_policy: String,
    /// Where to write the oracle's expectation, for `tailgate-bench sink --expect`.
    #[arg(long)]
    pub expect_out: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
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

/// What every connection shares: the trace stream, the counts, the latency histogram.
struct Shared {
    stream: RefCell<TraceStream>,
    histogram: RefCell<Histogram<u64>>,
    requests_sent: Cell<u64>,
    spans_sent: Cell<u64>,
    counts: Vec<Rc<Counts>>,
}

impl Shared {
    fn accepted(&self) -> u64 {
        self.counts.iter().map(|c| c.accepted.get()).sum()
    }
    fn refused(&self) -> u64 {
        self.counts.iter().map(|c| c.refused.get()).sum()
    }
}

/// One connection: requests from the shared stream, one in flight, until the stream is done.
async fn connection(
    shared: Rc<Shared>,
    exporter: Exporter,
    counts: Rc<Counts>,
    deadline: Instant,
    interval: Option<Duration>,
    spans_per_request: usize,
) {
    let mut due = Instant::now();
    loop {
        let start_new = Instant::now() < deadline;
        match interval {
            Some(_) if start_new => {
                let now = Instant::now();
                if due > now {
                    glommio::timer::sleep(due - now).await;
                }
            }
            // At the maximum, and for the waves owed after the deadline: no schedule.
            _ => due = Instant::now(),
        }
        let start_new = Instant::now() < deadline;
        let next = shared
            .stream
            .borrow_mut()
            .next(Instant::now(), spans_per_request, start_new);
        let request = match next {
            Next::Request(request) => request,
            Next::WaitUntil(at) => {
                glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await;
                continue;
            }
            Next::Done => break,
        };
        let refused_before = counts.refused.get();
        let spans = request.spans;
        let batch = Batch {
            signal: Signal::Traces,
            bytes: request.bytes,
            items: spans,
        };
        let submitted = exporter.submit(batch).await;
        if submitted.is_err() || counts.refused.get() > refused_before {
            // The gateway saw none (or not all) of these spans: their traces are not judged.
            let mut stream = shared.stream.borrow_mut();
            for &(k, n) in &request.parts {
                stream.record.refused(k, n);
            }
        }
        if submitted.is_err() {
            break;
        }
        shared.requests_sent.set(shared.requests_sent.get() + 1);
        shared.spans_sent.set(shared.spans_sent.get() + spans);
        let latency_us = due.elapsed().as_micros() as u64;
        let _ = shared.histogram.borrow_mut().record(latency_us.max(1));
        if let Some(interval) = interval {
            due += interval.mul_f64(spans as f64 / spans_per_request as f64);
        }
    }
    exporter
        .shutdown(Vec::new(), Instant::now() + Duration::from_secs(5))
        .await;
}

/// Writes a line of progress to stderr every second until `done`.
async fn progress(shared: Rc<Shared>, done: Rc<Cell<bool>>, started: Instant) {
    let mut last = (started, 0u64);
    while !done.get() {
        glommio::timer::sleep(PROGRESS_INTERVAL).await;
        let now = Instant::now();
        let accepted = shared.accepted();
        let rate = (accepted - last.1) as f64 / (now - last.0).as_secs_f64();
        eprintln!(
            "load: {:>5.1}s sent {} accepted {} refused {} rate {:.0} spans/s traces {}",
            (now - started).as_secs_f64(),
            shared.spans_sent.get(),
            accepted,
            shared.refused(),
            rate,
            shared.stream.borrow().traces_started(),
        );
        last = (now, accepted);
    }
}

/// Runs the load and writes the report.
pub fn run(args: LoadArgs) -> io::Result<()> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    if !(1..=MAX_CONNECTIONS).contains(&args.connections) || args.spans_per_request == 0 {
        return Err(invalid(format!(
            "connections must be 1..={MAX_CONNECTIONS}, spans per request at least 1"
        )));
    }
    if !(0.0..=1.0).contains(&args.error_rate) || !(0.0..=1.0).contains(&args.slow_rate) {
        return Err(invalid("error and slow rates are shares, 0 to 1".into()));
    }
    let rate: Option<f64> = match args.rate.as_str() {
        "max" => None,
        n => Some(
            n.parse()
                .ok()
                .filter(|r: &f64| *r > 0.0)
                .ok_or_else(|| invalid(format!("rate {n:?}: spans/s or max")))?,
        ),
    };
    let oracle = Oracle::parse(&args.oracle_policy).map_err(invalid)?;
    let settings = exporter_settings(&args)?;
    let trace_settings = TraceSettings {
        seed: args.seed,
        error_rate: args.error_rate,
        slow_rate: args.slow_rate,
        spread: Duration::from_millis(args.trace_spread_ms),
        oracle,
    };
    // Drawn before the clock starts: the generator's CPU figure is about sending.
    let stream = TraceStream::new(trace_settings)?;
    let duration = Duration::from_secs_f64(args.duration);
    let placement = args.cpu.map_or(Placement::Unbound, Placement::Fixed);
    let cpu_before = own_cpu_time();
    let connections = args.connections;
    let spans_per_request = args.spans_per_request;
    let quiet = args.quiet;
    let started = Instant::now();
    let (accepted, refused, sent_requests, spans_sent, histogram, stream) =
        LocalExecutorBuilder::new(placement)
            .name("tailgate-bench-load")
            .spawn(move || async move {
                let counts: Vec<Rc<Counts>> = (0..connections)
                    .map(|_| Rc::new(Counts::default()))
                    .collect();
                let shared = Rc::new(Shared {
                    stream: RefCell::new(stream),
                    histogram: RefCell::new(
                        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                            .expect("histogram bounds"),
                    ),
                    requests_sent: Cell::new(0),
                    spans_sent: Cell::new(0),
                    counts: counts.clone(),
                });
                let deadline = Instant::now() + duration;
                // Each connection's share of the rate: one request every `interval`.
                let interval = rate.map(|r| {
                    Duration::from_secs_f64(spans_per_request as f64 * connections as f64 / r)
                });
                let done = Rc::new(Cell::new(false));
                let reporter = (!quiet)
                    .then(|| glommio::spawn_local(progress(shared.clone(), done.clone(), started)));
                let mut tasks = Vec::new();
                for (connection_index, counts) in counts.into_iter().enumerate() {
                    let exporter =
                        Exporter::new("load", connection_index, settings.clone(), counts.clone())
                            .expect("load exporter settings");
                    tasks.push(glommio::spawn_local(connection(
                        shared.clone(),
                        exporter,
                        counts,
                        deadline,
                        interval,
                        spans_per_request,
                    )));
                }
                for task in tasks {
                    task.await;
                }
                done.set(true);
                if let Some(reporter) = reporter {
                    reporter.await;
                }
                let shared = Rc::into_inner(shared).expect("every connection has ended");
                (
                    shared.accepted(),
                    shared.refused(),
                    shared.requests_sent.get(),
                    shared.spans_sent.get(),
                    shared.histogram.into_inner(),
                    shared.stream.into_inner(),
                )
            })?
            .join()
            .map_err(|err| io::Error::other(err.to_string()))?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (own_cpu_time() - cpu_before).as_secs_f64();
    if let Some(path) = &args.expect_out {
        Recorder::write(
            std::slice::from_ref(&stream.record),
            path,
            args.seed,
            &args.oracle_policy,
        )?;
    }
    let report = serde_json::json!({
        "protocol": args.protocol,
        "compression": args.compression.as_deref().unwrap_or("none"),
        "connections": args.connections,
        "spans_per_request": args.spans_per_request,
        "rate_target": rate,
        "duration_s": elapsed,
        "requests_sent": sent_requests,
        "spans_sent": spans_sent,
        "spans_accepted": accepted,
        "spans_refused": refused,
        "spans_per_s": accepted as f64 / elapsed,
        "generator_cpu_s": cpu,
        "seed": args.seed,
        "trace_spread_ms": args.trace_spread_ms,
        "error_rate": args.error_rate,
        "slow_rate": args.slow_rate,
        "oracle_policy": args.oracle_policy,
        "traces_sent": stream.record.traces_sent,
        "traces_kept_expected": stream.record.kept(),
        "spans_kept_expected": stream.record.spans_kept,
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
