//! `tailgate-bench sink`: an OTLP/gRPC and OTLP/HTTP receiver that counts what it receives.
//!
//! It runs one glommio shard per CPU it is given, each with its own SO_REUSEPORT listeners and
//! its own receivers: OTLP/gRPC with `h2` (`grpc.rs`) and OTLP/HTTP with `httparse` (`http.rs`),
//! written for the sink alone: it measures the gateway, so it shares none of the gateway's code
//! but the wire crate. Both hand each request to the shard's `Recorder`, which only scans a
//! traces request ([`crate::verify::scan_span_ids`]: trace and span ids are read in place,
//! nothing else), so the sink costs far less a span than the gateway it measures; metrics and
//! logs requests are validated and their items counted. The shards exchange nothing while they
//! run. Every span's ids are appended to its shard's [`SpanLog`]; at exit the logs are
//! merged and sorted to count each trace's distinct spans and the duplicates (a (trace id, span
//! id) seen before, on any shard). With `--expect`, that is judged against the expectation the
//! load wrote ([`crate::verify`]): kept traces complete, partial or missing, traces kept wrongly.
//! With `--dump` (one shard only), every request is also appended to a file (one byte of signal,
//! a little-endian u32 length, the protobuf bytes) so a test can decode exactly what arrived;
//! requests dumped or kept are validated in full first. It runs until SIGTERM or SIGINT, then
//! writes its report as JSON.
//!
//! With `--tls-cert` and `--tls-key` both listeners speak TLS (rustls, `crate::tls`): ALPN `h2`
//! on gRPC, `http/1.1` on HTTP, and with `--tls-client-ca` a client certificate from that
//! authority is required. The configuration is built before the shards start and shared by them
//! read-only; each connection's handshake runs in its own task on its shard, bounded in time.
//! What arrives over TLS is recorded and judged exactly as in the clear; handshakes completed
//! and refused are counted beside it.

mod grpc;
mod http;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tailgate_wire::{item_count, Request, Signal, WireError};

use crate::net::{listen, signal_flag, Accepted, Stop};
use crate::oracle::Expectation;
use crate::tls::{ServerTlsArgs, ALPN_H2, ALPN_HTTP1};
use crate::verify::{scan_span_ids, verify, SpanLog};

/// The largest request the sink accepts, compressed or not.
const MESSAGE_BYTES_MAX: usize = 64 << 20;

/// The shards runtime joins its shards by a channel mesh; the sink's shards send nothing over
/// it, so each channel holds one message.
const MESH_CAPACITY: usize = 1;

/// How long a stopping shard waits for the calls in flight on its connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Record every request received into this file (with one shard only).
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// The CPU the sink's one shard is pinned to.
    #[arg(long, default_value_t = 0)]
    pub cpu: usize,
    /// One shard pinned to each of these CPUs, comma-separated (`8,9`); overrides `--cpu`.
    #[arg(long, value_delimiter = ',', conflicts_with = "cpu")]
    pub cpus: Vec<usize>,
    /// The most spans tracked for trace and duplicate counts (24 bytes a span), all shards
    /// together.
    #[arg(long, default_value_t = TRACKED_SPANS_DEFAULT)]
    pub track_max: usize,
}

impl SinkArgs {
    /// The CPUs the sink's shards run on: `--cpus`, else `--cpu`.
    pub fn shard_cpus(&self) -> Vec<usize> {
        if self.cpus.is_empty() {
            vec![self.cpu]
        } else {
            self.cpus.clone()
        }
    }
}

/// `tailgate-bench sink`'s command line: the sink, and what to verify at exit.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkCommand {
    /// The sink itself.
    #[command(flatten)]
    pub sink: SinkArgs,
    /// TLS on its listeners.
    #[command(flatten)]
    pub tls: ServerTlsArgs,
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
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// What one shard counted beyond the requests and spans ([`Progress`] counts those for all
/// shards); merged across shards at exit.
struct Tally {
    /// The (trace id, span id) of every span received, up to its bound.
    log: SpanLog,
    /// Spans received past the log's bound.
    untracked: u64,
    /// Spans whose trace id is not 16 bytes (counted, not tracked).
    spans_bad_trace_id: u64,
    /// Requests refused as undecodable (broken framing, corrupt compression, invalid OTLP).
    malformed_requests: u64,
    metric_points: u64,
    log_records: u64,
    /// Traces requests' bodies as received (the gRPC message without its prefix, the HTTP
    /// body), and after decompression.
    traces_wire_bytes: u64,
    traces_decoded_bytes: u64,
    /// gRPC DATA frames received (every call's), and the largest one's payload.
    data_frames: u64,
    data_frame_bytes_max: usize,
    /// gRPC connections accepted, open now, and open at once at most.
    connections: u64,
    connections_open: u64,
    connections_open_max: u64,
    /// TLS handshakes completed, and refused or timed out (both listeners).
    tls_handshakes: u64,
    tls_handshakes_failed: u64,
}

impl Tally {
    fn new(track_max: usize) -> Tally {
        Tally {
            log: SpanLog::new(track_max),
            untracked: 0,
            spans_bad_trace_id: 0,
            malformed_requests: 0,
            metric_points: 0,
            log_records: 0,
            traces_wire_bytes: 0,
            traces_decoded_bytes: 0,
            data_frames: 0,
            data_frame_bytes_max: 0,
            connections: 0,
            connections_open: 0,
            connections_open_max: 0,
            tls_handshakes: 0,
            tls_handshakes_failed: 0,
        }
    }

    fn absorb(&mut self, other: Tally) {
        self.log.absorb(other.log);
        self.untracked += other.untracked;
        self.spans_bad_trace_id += other.spans_bad_trace_id;
        self.malformed_requests += other.malformed_requests;
        self.metric_points += other.metric_points;
        self.log_records += other.log_records;
        self.traces_wire_bytes += other.traces_wire_bytes;
        self.traces_decoded_bytes += other.traces_decoded_bytes;
        self.data_frames += other.data_frames;
        self.data_frame_bytes_max = self.data_frame_bytes_max.max(other.data_frame_bytes_max);
        self.connections += other.connections;
        // Each shard's peak: their sum bounds the sink's (exact with one shard).
        self.connections_open_max += other.connections_open_max;
        self.tls_handshakes += other.tls_handshakes;
        self.tls_handshakes_failed += other.tls_handshakes_failed;
    }
}

/// Spans and requests received by all shards: for `--progress-file` while the sink runs, and for
/// the report at exit.
#[derive(Default)]
struct Progress {
    spans: AtomicU64,
    requests: AtomicU64,
}

/// Requests kept for the test that started the sink, with their signal.
type Kept = Vec<(Signal, Vec<u8>)>;

/// Why the sink refused a request.
#[derive(Debug)]
enum Refusal {
    /// Broken protobuf framing, gRPC or HTTP framing, compression or JSON: nothing of it kept.
    Malformed(String),
    /// Not valid OTLP: metrics and logs requests are validated in full, and traces requests
    /// when they are kept or dumped for a test.
    Invalid(WireError),
    /// Over [`MESSAGE_BYTES_MAX`], compressed or not.
    TooLarge,
    /// A compression the sink does not read.
    Unsupported(String),
}

impl Refusal {
    /// Whether the request was unreadable (counted in `malformed_requests`).
    fn is_malformed(&self) -> bool {
        matches!(self, Refusal::Malformed(_) | Refusal::Invalid(_))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(why) => write!(f, "malformed request: {why}"),
            Refusal::Invalid(err) => write!(f, "invalid OTLP: {err}"),
            Refusal::TooLarge => write!(f, "request over {MESSAGE_BYTES_MAX} bytes"),
            Refusal::Unsupported(what) => write!(f, "unsupported {what}"),
        }
    }
}

/// How a request body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
    Zstd,
}

impl Coding {
    /// A `grpc-encoding` or `Content-Encoding` value.
    fn parse(value: &[u8]) -> Option<Coding> {
        match value {
            b"identity" => Some(Coding::Identity),
            b"gzip" => Some(Coding::Gzip),
            b"zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }
}

/// The most a deflate stream expands: 258 bytes from about 2 bits (RFC 1951's longest match
/// in the shortest code), rounded up.
const DEFLATE_RATIO_MAX: usize = 1032;

thread_local! {
    /// Each shard's libdeflate state, reused from request to request.
    static INFLATER: std::cell::RefCell<libdeflater::Decompressor> =
        std::cell::RefCell::new(libdeflater::Decompressor::new());
}

/// Inflates a one-member gzip body whole with libdeflate (half the CPU of streaming: see
/// docs/BENCHMARKS.md), into a buffer of the size its trailer states — believed only up to
/// [`MESSAGE_BYTES_MAX`] and what deflate can expand the body to. `None` when that does not
/// give the body (several members, a cut or corrupt body, a trailer that lies): the streaming
/// path decides then.
fn inflate_whole(bytes: &[u8]) -> Option<Vec<u8>> {
    let trailer = bytes.len().checked_sub(4).map(|at| &bytes[at..])?;
    let size = u32::from_le_bytes(trailer.try_into().expect("4 bytes")) as usize;
    if size > MESSAGE_BYTES_MAX || size > bytes.len().saturating_mul(DEFLATE_RATIO_MAX) {
        return None;
    }
    let mut out = vec![0; size];
    let inflated = INFLATER.with(|inflater| inflater.borrow_mut().gzip_decompress(bytes, &mut out));
    match inflated {
        Ok(n) if n == size => Some(out),
        _ => None,
    }
}

/// Decompresses `bytes`, refusing output over [`MESSAGE_BYTES_MAX`] (reading stops there, so a
/// compression bomb costs no more).
fn decompress(coding: Coding, bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    if coding == Coding::Gzip {
        if let Some(inflated) = inflate_whole(bytes) {
            return Ok(inflated);
        }
    }
    let limit = MESSAGE_BYTES_MAX as u64 + 1;
    let mut out = Vec::new();
    let read = match coding {
        Coding::Identity => return Ok(bytes.to_vec()),
        Coding::Gzip => flate2::read::GzDecoder::new(bytes)
            .take(limit)
            .read_to_end(&mut out),
        Coding::Zstd => zstd::stream::read::Decoder::new(bytes)
            .and_then(|decoder| decoder.take(limit).read_to_end(&mut out)),
    };
    match read {
        Ok(_) if out.len() > MESSAGE_BYTES_MAX => Err(Refusal::TooLarge),
        Ok(_) => Ok(out),
        Err(err) => Err(Refusal::Malformed(format!("{coding:?} body: {err}"))),
    }
}

/// One shard's recording of what arrived.
struct Recorder {
    tally: RefCell<Tally>,
    progress: Arc<Progress>,
    dump: Option<RefCell<BufWriter<File>>>,
    kept: Option<RefCell<Kept>>,
}

impl Recorder {
    /// Records one request, `wire_bytes` long as received and `bytes` decoded: a traces request
    /// is scanned (validated in full first when requests are kept or dumped), a metrics or logs
    /// request validated and its items counted. An unreadable request is refused whole, with
    /// nothing of it recorded.
    fn record(&self, signal: Signal, bytes: &[u8], wire_bytes: usize) -> Result<(), Refusal> {
        let strict = self.dump.is_some() || self.kept.is_some();
        let spans = match signal {
            Signal::Traces => {
                if strict {
                    Request::parse(signal, bytes).map_err(Refusal::Invalid)?;
                }
                let spans = self.record_spans(bytes)?;
                let mut tally = self.tally.borrow_mut();
                tally.traces_wire_bytes += wire_bytes as u64;
                tally.traces_decoded_bytes += bytes.len() as u64;
                spans
            }
            Signal::Metrics | Signal::Logs => {
                let items = item_count(&Request::parse(signal, bytes).map_err(Refusal::Invalid)?);
                let mut tally = self.tally.borrow_mut();
                match signal {
                    Signal::Metrics => tally.metric_points += items,
                    _ => tally.log_records += items,
                }
                0
            }
        };
        self.progress.spans.fetch_add(spans, Ordering::Relaxed);
        self.progress.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(kept) = &self.kept {
            kept.borrow_mut().push((signal, bytes.to_vec()));
        }
        if let Some(dump) = &self.dump {
            let mut dump = dump.borrow_mut();
            let tag = match signal {
                Signal::Traces => 0u8,
                Signal::Metrics => 1,
                Signal::Logs => 2,
            };
            let written = dump
                .write_all(&[tag])
                .and_then(|()| dump.write_all(&(bytes.len() as u32).to_le_bytes()))
                .and_then(|()| dump.write_all(bytes));
            if let Err(err) = written {
                eprintln!("sink: writing the dump failed: {err}");
            }
        }
        Ok(())
    }

    /// Counts one gRPC DATA frame of `bytes` payload.
    fn count_data_frame(&self, bytes: usize) {
        let mut tally = self.tally.borrow_mut();
        tally.data_frames += 1;
        tally.data_frame_bytes_max = tally.data_frame_bytes_max.max(bytes);
    }

    /// Counts a gRPC connection accepted.
    fn connection_opened(&self) {
        let mut tally = self.tally.borrow_mut();
        tally.connections += 1;
        tally.connections_open += 1;
        tally.connections_open_max = tally.connections_open_max.max(tally.connections_open);
    }

    /// Counts a gRPC connection ended.
    fn connection_closed(&self) {
        self.tally.borrow_mut().connections_open -= 1;
    }

    /// Counts how a TLS handshake ended; the stream when it was established. The shard's first
    /// failure is told on stderr, the rest only counted.
    fn tls_handshake(
        &self,
        accepted: Accepted,
    ) -> Option<Box<futures_rustls::server::TlsStream<glommio::net::TcpStream>>> {
        let mut tally = self.tally.borrow_mut();
        let why = match accepted {
            Accepted::Established(stream) => {
                tally.tls_handshakes += 1;
                return Some(stream);
            }
            Accepted::Abandoned => return None,
            Accepted::Refused(err) => err.to_string(),
            Accepted::BrokenOff(err) => format!("the client broke it off ({err})"),
            Accepted::TimedOut => "not finished within the time allowed".into(),
        };
        tally.tls_handshakes_failed += 1;
        if tally.tls_handshakes_failed == 1 {
            eprintln!("sink: a TLS handshake failed: {why} (further failures are only counted)");
        }
        None
    }

    /// Counts a request refused as unreadable.
    fn count_malformed(&self) {
        self.tally.borrow_mut().malformed_requests += 1;
    }

    /// Scans a traces request's span ids into the log; returns how many spans it held. A
    /// request found malformed part-way is taken back out of the log.
    fn record_spans(&self, bytes: &[u8]) -> Result<u64, Refusal> {
        let mut tally = self.tally.borrow_mut();
        let tally = &mut *tally;
        let logged = tally.log.len();
        let (untracked, bad) = (tally.untracked, tally.spans_bad_trace_id);
        let scanned = scan_span_ids(bytes, |trace_id, span_id| {
            let Ok(trace_id) = <[u8; 16]>::try_from(trace_id) else {
                tally.spans_bad_trace_id += 1;
                return;
            };
            if !tally.log.push(&trace_id, span_id) {
                tally.untracked += 1;
            }
        });
        match scanned {
            Some(spans) => Ok(spans),
            None => {
                tally.log.truncate(logged);
                tally.untracked = untracked;
                tally.spans_bad_trace_id = bad;
                Err(Refusal::Malformed(
                    "the traces request's protobuf framing is broken".into(),
                ))
            }
        }
    }
}

/// What the sink counted, and (when asked to keep them) every request it received.
#[derive(Debug)]
pub struct SinkResult {
    /// The report, as `tailgate-bench sink --report` writes it.
    pub report: serde_json::Value,
    /// Every request received, with its signal, in arrival order per shard (empty unless kept).
    pub requests: Vec<(Signal, Vec<u8>)>,
}

/// What one shard hands back when it ends.
struct ShardResult {
    tally: Tally,
    kept: Kept,
}

/// A sink running on its own shard threads.
pub struct Sink {
    flag: Arc<AtomicBool>,
    shards: tailgate_shards::runtime::Shards,
    count: usize,
    results: mpsc::Receiver<ShardResult>,
    expect: Option<PathBuf>,
    progress: Arc<Progress>,
    progress_writer: Option<(std::thread::JoinHandle<()>, Arc<AtomicBool>)>,
    started: Instant,
    cpu_before: Duration,
}

impl Sink {
    /// Starts a sink listening on `args`' addresses; with `keep_requests`, it keeps every
    /// request it receives in memory for [`Sink::stop`] to return.
    pub fn start(args: SinkArgs, keep_requests: bool) -> io::Result<Sink> {
        let options = ServeOptions {
            keep_requests,
            expect: None,
            progress_file: None,
            tls: None,
        };
        Self::start_with_flag(args, options, Arc::new(AtomicBool::new(false)))
    }

    /// Starts a sink whose listeners speak TLS as `tls` says, judging what it received against
    /// the expectation at `expect`, when given, when stopped.
    pub fn start_tls(
        args: SinkArgs,
        tls: &ServerTlsArgs,
        keep_requests: bool,
        expect: Option<PathBuf>,
    ) -> io::Result<Sink> {
        let options = ServeOptions {
            keep_requests,
            expect,
            progress_file: None,
            tls: SinkTls::new(tls)?,
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
            tls: None,
        };
        Self::start_with_flag(args, options, Arc::new(AtomicBool::new(false)))
    }

    fn start_with_flag(
        args: SinkArgs,
        options: ServeOptions,
        flag: Arc<AtomicBool>,
    ) -> io::Result<Sink> {
        let started = Instant::now();
        let cpus = args.shard_cpus();
        if args.dump.is_some() && cpus.len() > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--dump writes one file from one shard: give the sink one CPU",
            ));
        }
        let count = cpus.len();
        let progress = Arc::new(Progress::default());
        let (result_tx, results) = mpsc::channel();
        let (bound_tx, bound) = mpsc::channel();
        let shard_flag = flag.clone();
        let shard_progress = progress.clone();
        let keep_requests = options.keep_requests;
        let tls = options.tls.clone();
        let shards = tailgate_shards::runtime::start::<(), _, _>(
            &cpus,
            MESH_CAPACITY,
            &tailgate_shards::runtime::Executor::default(),
            move |shard| async move {
                let track_max = args.track_max / shard.count;
                let recorder = Recorder {
                    tally: RefCell::new(Tally::new(track_max)),
                    progress: shard_progress,
                    dump: None,
                    kept: keep_requests.then(|| RefCell::new(Vec::new())),
                };
                serve(shard, args, tls, recorder, shard_flag, bound_tx, result_tx).await;
            },
        )?;
        // Return once every shard's listeners are bound, so a client may connect at once.
        for _ in 0..count {
            let bound = bound
                .recv()
                .map_err(|_| io::Error::other("a sink shard ended before binding"))
                .and_then(|bound| bound);
            if let Err(err) = bound {
                flag.store(true, Ordering::Relaxed);
                let _ = shards.join();
                return Err(err);
            }
        }
        let progress_writer = options
            .progress_file
            .map(|path| write_progress(progress.clone(), path));
        Ok(Sink {
            flag,
            shards,
            count,
            results,
            expect: options.expect,
            progress,
            progress_writer,
            started,
            cpu_before: own_cpu_time(),
        })
    }

    /// Spans received so far by all shards (what `--progress-file` writes), for a caller
    /// waiting for an export to drain before it stops the sink.
    pub fn spans_received(&self) -> u64 {
        self.progress.spans.load(Ordering::Relaxed)
    }

    /// Requests of every signal received so far, for a caller waiting on metrics or logs.
    pub fn requests_received(&self) -> u64 {
        self.progress.requests.load(Ordering::Relaxed)
    }

    /// Stops the sink and returns what it received.
    pub fn stop(self) -> io::Result<SinkResult> {
        self.flag.store(true, Ordering::Relaxed);
        self.wait()
    }

    fn wait(self) -> io::Result<SinkResult> {
        self.shards.join()?;
        let cpu_s = (own_cpu_time() - self.cpu_before).as_secs_f64();
        if let Some((writer, done)) = self.progress_writer {
            done.store(true, Ordering::Relaxed);
            let _ = writer.join();
        }
        let mut merged: Option<Tally> = None;
        let mut requests = Vec::new();
        for _ in 0..self.count {
            let shard = self
                .results
                .recv()
                .map_err(|_| io::Error::other("a sink shard ended without a report"))?;
            requests.extend(shard.kept);
            match &mut merged {
                Some(tally) => tally.absorb(shard.tally),
                None => merged = Some(shard.tally),
            }
        }
        let mut tally = merged.expect("at least one shard");
        let counts = tally.log.count();
        let spans = self.progress.spans.load(Ordering::Relaxed);
        let mut report = serde_json::json!({
            "shards": self.count,
            "requests_received": self.progress.requests.load(Ordering::Relaxed),
            "malformed_requests": tally.malformed_requests,
            "spans_received": spans,
            "spans_bad_trace_id": tally.spans_bad_trace_id,
            "traces_received": counts.traces.len(),
            "duplicates": counts.duplicates,
            "spans_untracked": tally.untracked,
            "tracking_limit_reached": tally.untracked > 0,
            "metric_points_received": tally.metric_points,
            "log_records_received": tally.log_records,
            "cpu_s": cpu_s,
            "cpu_ns_per_span": cpu_s * 1e9 / spans.max(1) as f64,
            "traces_wire_bytes": tally.traces_wire_bytes,
            "traces_decoded_bytes": tally.traces_decoded_bytes,
            "wire_bytes_per_span": tally.traces_wire_bytes as f64 / spans.max(1) as f64,
            "decoded_bytes_per_span": tally.traces_decoded_bytes as f64 / spans.max(1) as f64,
            "data_frames": tally.data_frames,
            "data_frame_bytes_max": tally.data_frame_bytes_max,
            "grpc_connections": tally.connections,
            "grpc_connections_open_max": tally.connections_open_max,
            "tls_handshakes": tally.tls_handshakes,
            "tls_handshakes_failed": tally.tls_handshakes_failed,
            "duration_s": self.started.elapsed().as_secs_f64(),
        });
        if let Some(path) = &self.expect {
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
        Ok(SinkResult { report, requests })
    }
}

/// What a sink does beyond its command line's listening.
#[derive(Clone)]
struct ServeOptions {
    keep_requests: bool,
    expect: Option<PathBuf>,
    progress_file: Option<PathBuf>,
    tls: Option<SinkTls>,
}

/// The listeners' TLS, one configuration each (they differ in ALPN), shared by every shard.
#[derive(Clone)]
struct SinkTls {
    grpc: Arc<rustls::ServerConfig>,
    http: Arc<rustls::ServerConfig>,
}

impl SinkTls {
    /// The listeners' TLS from `args`; `None` without `--tls-cert`.
    fn new(args: &ServerTlsArgs) -> io::Result<Option<SinkTls>> {
        let (Some(grpc), Some(http)) = (args.server(ALPN_H2)?, args.server(ALPN_HTTP1)?) else {
            return Ok(None);
        };
        Ok(Some(SinkTls { grpc, http }))
    }
}

/// Starts a thread that rewrites `path` with the spans and requests received every
/// [`PROGRESS_INTERVAL`], and once more when told to stop; written beside and renamed, so a
/// reader never sees half a line.
fn write_progress(
    progress: Arc<Progress>,
    path: PathBuf,
) -> (std::thread::JoinHandle<()>, Arc<AtomicBool>) {
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let writer = std::thread::spawn(move || {
        let mut temporary = path.clone().into_os_string();
        temporary.push(".tmp");
        loop {
            let finished = stop.load(Ordering::Relaxed);
            let line = format!(
                "{} {}\n",
                progress.spans.load(Ordering::Relaxed),
                progress.requests.load(Ordering::Relaxed)
            );
            let written =
                std::fs::write(&temporary, line).and_then(|()| std::fs::rename(&temporary, &path));
            if let Err(err) = written {
                eprintln!("sink: writing {}: {err}", path.display());
            }
            if finished {
                return;
            }
            std::thread::sleep(PROGRESS_INTERVAL);
        }
    });
    (writer, done)
}

/// One sink shard: its listeners (over TLS when `tls` is given) until the stop flag, then a
/// drain, then its tally.
async fn serve(
    shard: tailgate_shards::runtime::Shard<()>,
    args: SinkArgs,
    tls: Option<SinkTls>,
    mut recorder: Recorder,
    flag: Arc<AtomicBool>,
    bound: mpsc::Sender<io::Result<()>>,
    result: mpsc::Sender<ShardResult>,
) {
    // The mesh's ends are dropped: nothing travels between the sink's shards.
    drop(shard);
    if let Some(path) = &args.dump {
        match File::create(path) {
            Ok(file) => recorder.dump = Some(RefCell::new(BufWriter::new(file))),
            Err(err) => {
                let _ = bound.send(Err(err));
                return;
            }
        }
    }
    let recorder = Rc::new(recorder);
    let stop = Rc::new(Stop::default());
    let open = Rc::new(Cell::new(0));
    let mut tasks = Vec::new();
    let addresses = [Some(args.listen), args.http_listen];
    for (index, address) in addresses.into_iter().enumerate() {
        let Some(address) = address else { continue };
        let listener = match listen(address) {
            Ok(listener) => listener,
            Err(err) => {
                let _ = bound.send(Err(err));
                return;
            }
        };
        let (recorder, stop, open) = (recorder.clone(), stop.clone(), open.clone());
        tasks.push(if index == 0 {
            let tls = tls.as_ref().map(|tls| tls.grpc.clone());
            glommio::spawn_local(grpc::serve(listener, recorder, stop, open, tls))
        } else {
            let tls = tls.as_ref().map(|tls| tls.http.clone());
            glommio::spawn_local(http::serve(listener, recorder, stop, open, tls))
        });
    }
    let _ = bound.send(Ok(()));
    stop.follow(flag).await;
    for task in tasks {
        task.await;
    }
    // Let the calls in flight finish and be counted.
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while open.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    if let Some(dump) = &recorder.dump {
        let _ = dump.borrow_mut().flush();
    }
    let kept = recorder
        .kept
        .as_ref()
        .map(|kept| kept.take())
        .unwrap_or_default();
    let tally = recorder.tally.replace(Tally::new(0));
    let _ = result.send(ShardResult { tally, kept });
}

/// This process's CPU time (user + system): the sink's shard is its only busy thread.
fn own_cpu_time() -> std::time::Duration {
    crate::sys::cpu_time(libc::RUSAGE_SELF)
}

/// Runs the sink until SIGTERM or SIGINT; then writes the report.
pub fn run(command: SinkCommand) -> io::Result<()> {
    let flag = signal_flag()?;
    let args = command.sink;
    let report_path = args.report.clone();
    let options = ServeOptions {
        keep_requests: false,
        expect: command.expect,
        progress_file: command.progress_file,
        tls: SinkTls::new(&command.tls)?,
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
        // Recorded requests were validated before they were dumped; check again all the same.
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

    impl Recorder {
        fn spans(&self) -> u64 {
            self.progress.spans.load(Ordering::Relaxed)
        }
    }

    fn recorder(track_max: usize) -> Recorder {
        Recorder {
            tally: RefCell::new(Tally::new(track_max)),
            progress: Arc::default(),
            dump: None,
            kept: None,
        }
    }

    #[test]
    fn tracking_stops_at_its_bound_and_says_so() {
        let recorder = recorder(3);
        let bytes = sdk_shaped_request(&mut Rng(9), 5);
        recorder.record(Signal::Traces, &bytes, 0).unwrap();
        // The same spans again: all past the bound, so counted but not checked.
        recorder.record(Signal::Traces, &bytes, 0).unwrap();
        let mut tally = recorder.tally.borrow_mut();
        assert_eq!(recorder.spans(), 10);
        assert_eq!(tally.log.len(), 3);
        assert_eq!(tally.untracked, 7);
        assert_eq!(tally.log.count().duplicates, 0);
        assert_eq!(recorder.progress.spans.load(Ordering::Relaxed), 10);
        assert_eq!(recorder.progress.requests.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_malformed_request_is_refused_and_leaves_nothing_behind() {
        let recorder = recorder(100);
        let whole = sdk_shaped_request(&mut Rng(4), 8);
        recorder.record(Signal::Traces, &whole, 0).unwrap();
        // Cut inside its last span: the spans before the cut were scanned, then taken back.
        let cut = &whole[..whole.len() - 3];
        let refused = recorder.record(Signal::Traces, cut, cut.len());
        assert!(matches!(refused, Err(Refusal::Malformed(_))), "{refused:?}");
        let mut tally = recorder.tally.borrow_mut();
        let requests = recorder.progress.requests.load(Ordering::Relaxed);
        assert_eq!((requests, recorder.spans(), tally.log.len()), (1, 8, 8));
        assert_eq!(tally.log.count().duplicates, 0);
    }

    /// An `ExportTraceServiceRequest` of one resource, one scope and one span.
    fn one_span_request(span: &[u8]) -> Vec<u8> {
        let scope = [&[0x12, span.len() as u8][..], span].concat();
        let resource = [&[0x12, scope.len() as u8][..], &scope].concat();
        [&[0x0a, resource.len() as u8][..], &resource].concat()
    }

    #[test]
    fn kept_requests_are_validated_in_full() {
        let mut recorder = recorder(100);
        recorder.kept = Some(RefCell::new(Vec::new()));
        // Ids first, then an attribute whose KeyValue is a truncated varint: the scan reads the
        // ids and skips the rest, the full validation finds it.
        let mut span = vec![0x0a, 16];
        span.extend_from_slice(&[5; 16]);
        span.extend_from_slice(&[0x12, 8]);
        span.extend_from_slice(&[7; 8]);
        span.extend_from_slice(&[0x4a, 1, 0xff]);
        let request = one_span_request(&span);
        let refused = recorder.record(Signal::Traces, &request, 0);
        assert!(matches!(refused, Err(Refusal::Invalid(_))), "{refused:?}");
        assert!(recorder.kept.as_ref().unwrap().borrow().is_empty());
        assert_eq!(recorder.spans(), 0);
        recorder.kept = None;
        recorder.record(Signal::Traces, &request, 0).unwrap();
        assert_eq!(recorder.spans(), 1);
    }

    #[test]
    fn gzip_bodies_inflate_whole_and_lying_trailers_are_refused() {
        let request = sdk_shaped_request(&mut Rng(5), 50);
        let mut compressor = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
        let mut body = vec![0; compressor.gzip_compress_bound(request.len())];
        let n = compressor.gzip_compress(&request, &mut body).unwrap();
        body.truncate(n);
        assert_eq!(decompress(Coding::Gzip, &body).unwrap(), request);
        let at = body.len() - 4;
        // A trailer claiming more than was compressed: the whole-buffer inflate gives way to the
        // streaming one, which finds the lie.
        let mut lying = body.clone();
        lying[at..].copy_from_slice(&(request.len() as u32 + 1).to_le_bytes());
        let refused = decompress(Coding::Gzip, &lying);
        assert!(matches!(refused, Err(Refusal::Malformed(_))), "{refused:?}");
        let mut huge = body.clone();
        huge[at..].copy_from_slice(&(MESSAGE_BYTES_MAX as u32 + 1).to_le_bytes());
        let refused = decompress(Coding::Gzip, &huge);
        assert!(matches!(refused, Err(Refusal::Malformed(_))), "{refused:?}");
        let refused = decompress(Coding::Gzip, &body[..body.len() / 2]);
        assert!(matches!(refused, Err(Refusal::Malformed(_))), "{refused:?}");
    }

    #[test]
    fn spans_with_bad_trace_ids_are_counted_apart() {
        let recorder = recorder(100);
        let mut span = vec![0x0a, 3, 1, 2, 3, 0x12, 8];
        span.extend_from_slice(&[7; 8]);
        recorder
            .record(Signal::Traces, &one_span_request(&span), 0)
            .unwrap();
        let tally = recorder.tally.borrow();
        assert_eq!(
            (recorder.spans(), tally.spans_bad_trace_id, tally.log.len()),
            (1, 1, 0)
        );
    }
}
