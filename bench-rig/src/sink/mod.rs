//! `tailgate-bench sink`: an OTLP/gRPC and OTLP/HTTP receiver that counts what it receives.
//!
//! It runs the gateway's own receivers ([`tailgate::ingest`]) on one glommio shard, with a
//! pipeline that records instead of exporting: every span is counted by scanning its request
//! ([`crate::verify::scan_span_ids`]: trace and span ids are read in place, nothing else) and its
//! ids are appended to a [`SpanLog`]; at exit the log is sorted to count each trace's distinct
//! spans and the duplicates (a (trace id, span id) seen before). With `--expect`, that is judged
//! against the expectation the load wrote ([`crate::verify`]): kept traces complete, partial or
//! missing, traces kept wrongly. With `--dump`, every request
//! is also appended to a file (one byte of signal, a little-endian u32 length, the protobuf
//! bytes) so a test can decode exactly what arrived. It runs until SIGTERM or SIGINT, then writes
//! its report as JSON.

use std::cell::RefCell;
use std::fs::File;
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use tailgate::ingest::grpc::{GrpcReceiver, GrpcSettings};
use tailgate::ingest::http::{HttpReceiver, HttpSettings};
use tailgate::ingest::stop::Stop;
use tailgate::ingest::{Deliver, Delivery, Ingest, Limits};
use tailgate::lifecycle;
use tailgate::telemetry::{Health, ReceiverMetrics, RegistryBuilder, ShardMetrics};
use tailgate::wire::{item_count, Request, Signal};

use crate::oracle::Expectation;
use crate::verify::{scan_span_ids, verify, SpanLog};

/// The largest request the sink accepts.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// How many spans the sink tracks per trace and for duplicates by default: the tracking costs
/// 24 bytes a span (reserved at start, resident as spans arrive), so this bounds it near
/// 480 MiB. Past the limit spans are still counted, and the report says that trace and duplicate
/// counts cover only the tracked ones.
pub const TRACKED_SPANS_DEFAULT: usize = 20_000_000;

/// What `tailgate-bench sink` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// OTLP/gRPC listen address.
    #[arg(long)]
    pub listen: SocketAddr,
    /// OTLP/HTTP listen address.
    #[arg(long)]
    pub http_listen: Option<SocketAddr>,
    /// Where to write the JSON report on exit.
    #[arg(long)]
    pub report: PathBuf,
    /// Record every request received into this file.
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// The CPU the sink's shard is pinned to.
    #[arg(long, default_value_t = 0)]
    pub cpu: usize,
    /// The most spans tracked for trace and duplicate counts (24 bytes a span).
    #[arg(long, default_value_t = TRACKED_SPANS_DEFAULT)]
    pub track_max: usize,
}

/// `tailgate-bench sink`'s command line: the sink, and what to verify at exit.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkCommand {
    #[command(flatten)]
    pub sink: SinkArgs,
    /// The load's expectation (`tailgate-bench load --expect-out`), read at exit, to judge what
    /// arrived against.
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// Rewrite this file every 100 ms with the spans and requests received so far
    /// (`SPANS REQUESTS`), for a runner waiting for an export to drain.
    #[arg(long)]
    pub progress_file: Option<PathBuf>,
}

/// How often `--progress-file` is rewritten.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// What the sink counted.
struct Tally {
    requests: u64,
    spans: u64,
    /// The (trace id, span id) of every span received, up to its bound.
    log: SpanLog,
    /// Spans received past the log's bound.
    untracked: u64,
    metric_points: u64,
    log_records: u64,
}

impl Tally {
    fn new(track_max: usize) -> Tally {
        Tally {
            requests: 0,
            spans: 0,
            log: SpanLog::new(track_max),
            untracked: 0,
            metric_points: 0,
            log_records: 0,
        }
    }
}

/// Requests kept for the test that started the sink, with their signal.
type Kept = Vec<(Signal, Vec<u8>)>;

struct Recorder {
    tally: RefCell<Tally>,
    dump: Option<RefCell<BufWriter<File>>>,
    kept: Option<RefCell<Kept>>,
}

impl Deliver for Recorder {
    fn deliver(&self, delivery: Delivery) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        self.record(&delivery);
        Box::pin(std::future::ready(()))
    }
}

impl Recorder {
    fn record(&self, delivery: &Delivery) {
        let mut tally = self.tally.borrow_mut();
        tally.requests += 1;
        match delivery.signal {
            Signal::Traces => {
                let tally = &mut *tally;
                scan_span_ids(&delivery.bytes, |trace_id, span_id| {
                    let Ok(trace_id) = <[u8; 16]>::try_from(trace_id) else {
                        return;
                    };
                    tally.spans += 1;
                    if !tally.log.push(&trace_id, span_id) {
                        tally.untracked += 1;
                    }
                });
            }
            Signal::Metrics => tally.metric_points += delivery.items,
            Signal::Logs => tally.log_records += delivery.items,
        }
        if let Some(kept) = &self.kept {
            kept.borrow_mut()
                .push((delivery.signal, delivery.bytes.to_vec()));
        }
        if let Some(dump) = &self.dump {
            let mut dump = dump.borrow_mut();
            let tag = match delivery.signal {
                Signal::Traces => 0u8,
                Signal::Metrics => 1,
                Signal::Logs => 2,
            };
            let written = dump
                .write_all(&[tag])
                .and_then(|()| dump.write_all(&(delivery.bytes.len() as u32).to_le_bytes()))
                .and_then(|()| dump.write_all(&delivery.bytes));
            if let Err(err) = written {
                eprintln!("sink: writing the dump failed: {err}");
            }
        }
    }
}

/// What the sink counted, and (when asked to keep them) every request it received.
#[derive(Debug)]
pub struct SinkResult {
    /// The report, as `tailgate-bench sink --report` writes it.
    pub report: serde_json::Value,
    /// Every request received, with its signal, in arrival order (empty unless kept).
    pub requests: Vec<(Signal, Vec<u8>)>,
}

/// A sink running on its own shard thread.
pub struct Sink {
    flag: Arc<AtomicBool>,
    shards: tailgate_shards::runtime::Shards,
    result: mpsc::Receiver<SinkResult>,
    started: Instant,
}

impl Sink {
    /// Starts a sink listening on `args`' addresses; with `keep_requests`, it keeps every
    /// request it receives in memory for [`Sink::stop`] to return.
    pub fn start(args: SinkArgs, keep_requests: bool) -> io::Result<Sink> {
        let options = ServeOptions {
            keep_requests,
            expect: None,
            progress_file: None,
        };
        Self::start_with_flag(args, options, Arc::new(AtomicBool::new(false)))
    }

    /// Starts a sink that judges what it received against the expectation at `expect` when
    /// stopped (the file is read then, so the load may write it after the sink starts).
    pub fn start_expecting(
        args: SinkArgs,
        keep_requests: bool,
        expect: PathBuf,
    ) -> io::Result<Sink> {
        let options = ServeOptions {
            keep_requests,
            expect: Some(expect),
            progress_file: None,
        };
        Self::start_with_flag(args, options, Arc::new(AtomicBool::new(false)))
    }

    fn start_with_flag(
        args: SinkArgs,
        options: ServeOptions,
        flag: Arc<AtomicBool>,
    ) -> io::Result<Sink> {
        let started = Instant::now();
        let (result_tx, result) = mpsc::channel();
        let (bound_tx, bound) = mpsc::channel();
        let shard_flag = flag.clone();
        let shards = tailgate_shards::runtime::start::<Delivery, _, _>(
            &[args.cpu],
            1,
            move |shard| async move {
                serve(shard, args, options, shard_flag, bound_tx, result_tx).await;
            },
        )?;
        // Return once the listeners are bound, so a client may connect at once.
        bound
            .recv()
            .map_err(|_| io::Error::other("the sink's shard ended before binding"))??;
        Ok(Sink {
            flag,
            shards,
            result,
            started,
        })
    }

    /// Stops the sink and returns what it received.
    pub fn stop(self) -> io::Result<SinkResult> {
        self.flag.store(true, Ordering::Relaxed);
        self.wait()
    }

    fn wait(self) -> io::Result<SinkResult> {
        self.shards.join()?;
        let mut result = self
            .result
            .recv()
            .map_err(|_| io::Error::other("the sink's shard ended without a report"))?;
        result.report["duration_s"] = serde_json::json!(self.started.elapsed().as_secs_f64());
        Ok(result)
    }
}

/// What a sink does beyond its command line's listening.
#[derive(Clone)]
struct ServeOptions {
    keep_requests: bool,
    expect: Option<PathBuf>,
    progress_file: Option<PathBuf>,
}

/// Rewrites `path` with the spans and requests received every [`PROGRESS_INTERVAL`] until
/// `done`; written beside and renamed, so a reader never sees half a line.
async fn write_progress(recorder: Rc<Recorder>, path: PathBuf, done: Rc<std::cell::Cell<bool>>) {
    let mut temporary = path.clone().into_os_string();
    temporary.push(".tmp");
    loop {
        let line = {
            let tally = recorder.tally.borrow();
            format!("{} {}\n", tally.spans, tally.requests)
        };
        let written =
            std::fs::write(&temporary, line).and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(err) = written {
            eprintln!("sink: writing {}: {err}", path.display());
        }
        if done.get() {
            return;
        }
        glommio::timer::sleep(PROGRESS_INTERVAL).await;
    }
}

async fn serve(
    shard: tailgate_shards::runtime::Shard<Delivery>,
    args: SinkArgs,
    options: ServeOptions,
    flag: Arc<AtomicBool>,
    bound: mpsc::Sender<io::Result<()>>,
    result: mpsc::Sender<SinkResult>,
) {
    let mut builder = RegistryBuilder::new();
    let grpc_metrics = ReceiverMetrics::register(&mut builder, "otlp", "grpc", shard.id);
    let http_metrics = ReceiverMetrics::register(&mut builder, "otlp", "http", shard.id);
    let shard_metrics = ShardMetrics::register(&mut builder, shard.id);
    let _registry = builder.build();
    let health = Arc::new(Health::new(1));
    health.shard_up();

    let dump = match args.dump.as_ref().map(File::create).transpose() {
        Ok(file) => file.map(|f| RefCell::new(BufWriter::new(f))),
        Err(err) => {
            let _ = bound.send(Err(err));
            return;
        }
    };
    let recorder = Rc::new(Recorder {
        tally: RefCell::new(Tally::new(args.track_max)),
        dump,
        kept: options.keep_requests.then(|| RefCell::new(Vec::new())),
    });
    let ingest = Rc::new(Ingest::new(
        shard.id,
        shard.router,
        shard.senders,
        recorder.clone(),
        shard_metrics,
        None,
    ));
    let stop = Rc::new(Stop::default());
    let limits = Limits {
        max_message_bytes: MAX_MESSAGE_BYTES,
    };
    let grpc = GrpcReceiver::new(
        ingest.clone(),
        grpc_metrics,
        GrpcSettings {
            limits,
            max_concurrent_streams: 1000,
        },
        health,
        stop.clone(),
    );
    let mut tasks = Vec::new();
    match tailgate::ingest::listen(args.listen) {
        Ok(listener) => tasks.push(glommio::spawn_local(grpc.serve(listener))),
        Err(err) => {
            let _ = bound.send(Err(err));
            return;
        }
    }
    if let Some(http_listen) = args.http_listen {
        let http = HttpReceiver::new(
            ingest.clone(),
            http_metrics,
            HttpSettings {
                limits,
                traces_path: "/v1/traces".into(),
                metrics_path: "/v1/metrics".into(),
                logs_path: "/v1/logs".into(),
            },
            stop.clone(),
        );
        match tailgate::ingest::listen(http_listen) {
            Ok(listener) => tasks.push(glommio::spawn_local(http.serve(listener))),
            Err(err) => {
                let _ = bound.send(Err(err));
                return;
            }
        }
    }
    let _ = bound.send(Ok(()));
    let cpu_before = own_cpu_time();
    let done = Rc::new(std::cell::Cell::new(false));
    let progress = options
        .progress_file
        .clone()
        .map(|path| glommio::spawn_local(write_progress(recorder.clone(), path, done.clone())));
    lifecycle::watch(flag, stop).await;
    for task in tasks {
        task.await;
    }
    done.set(true);
    if let Some(progress) = progress {
        progress.await;
    }
    if let Some(dump) = &recorder.dump {
        let _ = dump.borrow_mut().flush();
    }
    let cpu_s = (own_cpu_time() - cpu_before).as_secs_f64();
    let mut tally = recorder.tally.borrow_mut();
    let counts = tally.log.count();
    let mut report = serde_json::json!({
        "requests_received": tally.requests,
        "spans_received": tally.spans,
        "traces_received": counts.traces.len(),
        "duplicates": counts.duplicates,
        "spans_untracked": tally.untracked,
        "tracking_limit_reached": tally.untracked > 0,
        "metric_points_received": tally.metric_points,
        "log_records_received": tally.log_records,
        "cpu_s": cpu_s,
        "cpu_ns_per_span": cpu_s * 1e9 / tally.spans.max(1) as f64,
    });
    if let Some(path) = &options.expect {
        match Expectation::read(path) {
            Ok(expectation) => {
                let verdict = verify(&counts.traces, &expectation);
                let judged = verdict.to_json(counts.duplicates, tally.untracked == 0);
                for (key, value) in judged.as_object().expect("an object") {
                    report[key] = value.clone();
                }
            }
            Err(err) => report["expect_error"] = serde_json::json!(err.to_string()),
        }
    }
    let _ = result.send(SinkResult {
        report,
        requests: recorder
            .kept
            .as_ref()
            .map(|kept| kept.borrow_mut().drain(..).collect())
            .unwrap_or_default(),
    });
}

/// This process's CPU time (user + system): the sink's shard is its only busy thread.
fn own_cpu_time() -> std::time::Duration {
    // SAFETY: getrusage only writes the rusage struct passed by pointer, which lives on this
    // stack frame for the call.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    std::time::Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// Runs the sink until SIGTERM or SIGINT; then writes the report.
pub fn run(command: SinkCommand) -> io::Result<()> {
    let flag = lifecycle::shutdown_flag()?;
    let args = command.sink;
    let report_path = args.report.clone();
    let options = ServeOptions {
        keep_requests: false,
        expect: command.expect,
        progress_file: command.progress_file,
    };
    let sink = Sink::start_with_flag(args, options, flag)?;
    let result = sink.wait()?;
    std::fs::write(&report_path, serde_json::to_vec_pretty(&result.report)?)?;
    Ok(())
}

/// Reads a dump written with `--dump`: each request's signal and bytes.
pub fn read_dump(bytes: &[u8]) -> io::Result<Vec<(Signal, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (&[tag, a, b, c, d], tail) = rest.split_first_chunk::<5>().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "dump ends inside a record header",
            )
        })?;
        let len = u32::from_le_bytes([a, b, c, d]) as usize;
        let signal = match tag {
            0 => Signal::Traces,
            1 => Signal::Metrics,
            2 => Signal::Logs,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "unknown signal tag",
                ))
            }
        };
        if tail.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "dump ends inside a record",
            ));
        }
        let (record, tail) = tail.split_at(len);
        // Recorded requests passed the receivers' validation; check again all the same.
        let request = Request::parse(signal, record)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))?;
        let _ = item_count(&request);
        out.push((signal, record.to_vec()));
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{sdk_shaped_request, Rng};

    #[test]
    fn tracking_stops_at_its_bound_and_says_so() {
        let recorder = Recorder {
            tally: RefCell::new(Tally::new(3)),
            dump: None,
            kept: None,
        };
        let bytes = sdk_shaped_request(&mut Rng(9), 5);
        recorder.record(&Delivery {
            signal: Signal::Traces,
            bytes: bytes.clone().into(),
            items: 5,
        });
        // The same spans again: all past the bound, so counted but not checked.
        recorder.record(&Delivery {
            signal: Signal::Traces,
            bytes: bytes.into(),
            items: 5,
        });
        let mut tally = recorder.tally.borrow_mut();
        assert_eq!(tally.spans, 10);
        assert_eq!(tally.log.len(), 3);
        assert_eq!(tally.untracked, 7);
        assert_eq!(tally.log.count().duplicates, 0);
    }
}
