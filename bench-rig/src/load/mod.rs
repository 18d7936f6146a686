//! `tailgate-bench load`: OTLP load at a fixed rate or at the maximum, with latency measured
//! honestly.
//!
//! The traces come from `traces`: shapes drawn from `--seed` before the run, reported in
//! waves `--trace-spread-ms` apart and interleaved in requests. An uncompressed load builds each
//! request at send time by copying pre-encoded waves and patching their ids, so the generator
//! spends its CPU on sending, not encoding. A compressed load (`--compression`) builds all its
//! requests before the clock starts and compresses them on every CPU (`pool.rs`), so the timed
//! run only sends bytes: compressing at send time had capped one thread near 30 K spans/s. The oracle (`oracle`, `--oracle-policy`) decides each trace as it starts;
//! with `--expect-out` the load writes what a sink downstream of a tail-sampling gateway must see.
//!
//! The load runs one glommio executor thread per `--cpus` entry (pinned), or `--threads N`
//! unpinned, or one (`--cpu N` pins it). The connections are dealt out over the threads, and each
//! connection is one task of its thread's executor, with the load's own OTLP client
//! (`client.rs`: no queue, no retries): one request in flight per connection. At `--rate max`
//! every connection sends as fast as answers come back (closed loop). At a fixed rate each
//! connection sends on a schedule, the same share of `--rate` for every connection (so each
//! thread offers the rate in proportion to its connections), and a request's latency is measured
//! from when it was *due*, not from when it was sent: a stall that delays the schedule shows in
//! the percentiles instead of hiding (coordinated omission). After `--duration` no new trace
//! starts; the waves still owed are sent when due, so every trace started is sent whole. A
//! pooled load sends its pool's requests in order; at the deadline it sends the owed waves of
//! the traces it started at once (composed and compressed then), and the oracle forgets the
//! traces pooled but not started; a pool that runs dry before the deadline ends the run early
//! (`pool_exhausted_at_s`) — ids are never sent twice.
//!
//! The threads share nothing while they run but the drawn trace shapes (read-only) and their own
//! running totals, which only the main thread reads, for a line of progress on stderr every
//! second. Each thread starts the trace numbers of its `Partition` (thread `t` of `T`: `t`,
//! `t + T`, …), so no two send the same trace; it records what the oracle decided for them and
//! keeps its own latency histogram. At the end the main thread sums the counts, adds the
//! histograms, and writes one expectation for the union of the threads' traces.

mod client;
mod pool;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

use bytes::Bytes;

use self::client::{Client, ClientSettings, Encoder, NotAccepted};
use self::pool::{Pool, PoolPlan};
use crate::corpus::Corpus;
use crate::oracle::{Oracle, Partition, Recorder, PARTS_MAX};
use crate::tls::ClientTlsArgs;
use crate::traces::{Next, Part, TraceSettings, TraceStream, GRPC_PREFIX_BYTES};

/// The seed when none is given.
pub const SEED_DEFAULT: u64 = 0x7a11_9a7e;
/// How often the progress line is written.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// The most connections one run opens.
const CONNECTIONS_MAX: usize = 4096;
/// The rate a pool's virtual clock advances at when the load runs at `max`.
pub const POOL_RATE_DEFAULT: f64 = 1_000_000.0;
/// The most spans a pool holds by default: about 600 MB gzip-compressed for the semantic corpus,
/// 3.5 GB for the benchmark's random text.
pub const POOL_SPANS_DEFAULT: u64 = 10_000_000;

/// What `tailgate-bench load` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The gateway's OTLP endpoint, e.g. `http://127.0.0.1:4317` (gRPC) or
    /// `http://127.0.0.1:4318` (HTTP); `https://` with `--tls-ca`.
    #[arg(long)]
    pub endpoint: String,
    /// TLS towards the endpoint (`--tls-ca` turns it on).
    #[command(flatten)]
    pub tls: ClientTlsArgs,
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
    /// gzip or zstd request compression; a compressed load sends requests built and
    /// compressed before the clock starts (the pool).
    #[arg(long)]
    pub compression: Option<String>,
    /// The compression level (gzip 1-12 with libdeflate, default 6; zstd 1-22, default 3).
    #[arg(long)]
    pub compression_level: Option<i32>,
    /// Send each gRPC request in HTTP/2 DATA frames of at most this many bytes (grpc-go and
    /// grpc-java send 16384); by default as large as the peer takes.
    #[arg(long)]
    pub frame_size: Option<usize>,
    /// Spread the connections over this many tenants: connection `k` sends every request with
    /// `x-tenant: tenant-K` (`K` = `k` mod this), as agents of several teams behind one
    /// gateway do; 0: no such header.
    #[arg(long, default_value_t = 0)]
    pub tenants: usize,
    /// At `--rate max`, the rate in spans/s the pool's traces are composed at: their waves
    /// come due on a clock of this rate, and the pool holds this rate times `--duration` spans.
    #[arg(long, default_value_t = POOL_RATE_DEFAULT)]
    pub pool_rate: f64,
    /// The most spans the pool holds (about 60 bytes a span gzip-compressed for the semantic
    /// corpus, 350 for the benchmark's); the run ends early if it runs dry.
    #[arg(long, default_value_t = POOL_SPANS_DEFAULT)]
    pub pool_spans: u64,
    /// What the spans' attributes say: `benchmark` (the SDK benchmark's random text) or
    /// `semantic` (semantic-convention attributes, compressing like real traffic).
    #[arg(long, default_value = "benchmark")]
    pub corpus: String,
    /// Where to write the JSON report.
    #[arg(long)]
    pub report: PathBuf,
    /// The CPU the generator's one thread is pinned to; unpinned when absent.
    #[arg(long, conflicts_with_all = ["cpus", "threads"])]
    pub cpu: Option<usize>,
    /// One generator thread pinned to each of these CPUs, comma-separated (`0,1,2`).
    #[arg(long, value_delimiter = ',', conflicts_with = "threads")]
    pub cpus: Option<Vec<usize>>,
    /// This many generator threads, unpinned.
    #[arg(long)]
    pub threads: Option<usize>,
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
    /// `probabilistic:PCT[:SALT]`, `consistent:PCT` (OTEP 235, as stress relief keeps),
    /// comma-separated.
    #[arg(long, default_value = "always")]
    pub oracle_policy: String,
    /// Where to write the oracle's expectation, for `tailgate-bench sink --expect`.
    #[arg(long)]
    pub expect_out: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl LoadArgs {
    /// The command line's defaults, sending to `endpoint` and reporting to `report`: what a
    /// test starts from before it sets what it needs.
    pub fn new(endpoint: &str, report: &std::path::Path) -> LoadArgs {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: LoadArgs,
        }
        let report = report.to_string_lossy();
        <Command as clap::Parser>::parse_from([
            "load",
            "--endpoint",
            endpoint,
            "--report",
            report.as_ref(),
        ])
        .args
    }
}

/// One thread's running totals: written only by that thread, once per request, and read by the
/// main thread for the progress line and the report. Aligned to its own cache lines so threads
/// never write a line another thread writes.
#[derive(Default)]
#[repr(align(128))]
struct Totals {
    spans_sent: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    traces_started: AtomicU64,
    /// Request bytes sent (gRPC messages without their prefix, HTTP bodies).
    wire_bytes: AtomicU64,
}

impl Totals {
    /// (spans sent, accepted, refused, traces started) summed over `all`.
    fn sum(all: &[Arc<Totals>]) -> [u64; 4] {
        all.iter().fold([0; 4], |sum, t| {
            let [a, b, c, d] = [&t.spans_sent, &t.accepted, &t.refused, &t.traces_started]
                .map(|n| n.load(Ordering::Relaxed));
            [sum[0] + a, sum[1] + b, sum[2] + c, sum[3] + d]
        })
    }
}

/// A latency histogram: 1 µs to a minute, three significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// CPU time (user + system) of this process (`libc::RUSAGE_SELF`: every thread) or of the
/// calling thread (`libc::RUSAGE_THREAD`).
fn cpu_time(who: libc::c_int) -> Duration {
    crate::sys::cpu_time(who)
}

/// Where the load's threads run, one entry a thread: `Some(cpu)` pinned, `None` unpinned.
fn thread_cpus(args: &LoadArgs) -> Result<Vec<Option<usize>>, String> {
    let cpus: Vec<Option<usize>> = match (&args.cpus, args.threads) {
        (Some(cpus), _) => {
            let mut sorted = cpus.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != cpus.len() {
                return Err(format!("--cpus {cpus:?}: each CPU once"));
            }
            cpus.iter().copied().map(Some).collect()
        }
        (None, Some(threads)) => vec![None; threads],
        (None, None) => vec![args.cpu],
    };
    if !(1..=PARTS_MAX).contains(&cpus.len()) {
        return Err(format!("threads must be 1..={PARTS_MAX}"));
    }
    if args.connections < cpus.len() {
        return Err(format!(
            "{} connections for {} threads: each thread needs one",
            args.connections,
            cpus.len()
        ));
    }
    Ok(cpus)
}

/// Connections of thread `thread` of `threads` when `connections` are dealt out: as even as can
/// be, the first threads taking one more.
fn connections_of(thread: usize, threads: usize, connections: usize) -> std::ops::Range<usize> {
    let start = |t: usize| t * (connections / threads) + t.min(connections % threads);
    start(thread)..start(thread + 1)
}

/// Where one thread's requests come from.
enum Source {
    /// Composed at send time (an uncompressed load).
    Stream,
    /// Taken from the pool in order, then the owed waves composed after the deadline.
    Pool(PoolSource),
}

/// A pooled thread's position in its pool.
struct PoolSource {
    pool: Pool,
    /// The next request to take.
    next: Cell<usize>,
    /// The owed waves still to send, once the deadline has passed (`None` before).
    tail: RefCell<Option<VecDeque<Part>>>,
    /// When the pool ran dry before the deadline.
    exhausted_at: Cell<Option<Instant>>,
}

/// Which waves a request taken holds, for recording a refusal.
enum Parts {
    /// Those of the pool's request of this index.
    Pooled(usize),
    Owned(Vec<Part>),
}

/// A request taken to send.
struct Outgoing {
    wire: Bytes,
    spans: u64,
    parts: Parts,
}

/// What a connection does next.
enum Take {
    Send(Outgoing),
    WaitUntil(Instant),
    Done,
}

/// What every connection of one thread shares: its part of the traces (and its pool), the
/// encoder, the latency histogram, and the thread's totals.
struct Shared {
    stream: RefCell<TraceStream>,
    source: Source,
    encoder: RefCell<Encoder>,
    histogram: RefCell<Histogram<u64>>,
    requests_sent: Cell<u64>,
    totals: Arc<Totals>,
    /// Why the thread's first failed request failed, for the report.
    first_failure: RefCell<Option<String>>,
    /// Why TLS with the endpoint cannot work, once a connection found out: every connection of
    /// the thread stops, and the load with them.
    tls_misconfigured: RefCell<Option<String>>,
}

impl Shared {
    /// The next request of about `spans_target` spans; `start_new` is false after the deadline.
    fn take(&self, spans_target: usize, start_new: bool) -> Result<Take, String> {
        let Source::Pool(source) = &self.source else {
            let next = self
                .stream
                .borrow_mut()
                .next(Instant::now(), spans_target, start_new);
            let request = match next {
                Next::Request(request) => request,
                Next::WaitUntil(at) => return Ok(Take::WaitUntil(at)),
                Next::Done => return Ok(Take::Done),
            };
            self.totals
                .traces_started
                .store(self.stream.borrow().traces_started(), Ordering::Relaxed);
            return Ok(Take::Send(Outgoing {
                wire: self.encoder.borrow_mut().encode(&request.framed)?,
                spans: request.spans,
                parts: Parts::Owned(request.parts),
            }));
        };
        let requests = &source.pool.requests;
        let mut tail = source.tail.borrow_mut();
        if start_new && tail.is_none() {
            let index = source.next.get();
            let Some(request) = requests.get(index) else {
                if source.exhausted_at.get().is_none() {
                    source.exhausted_at.set(Some(Instant::now()));
                }
                return Ok(Take::Done);
            };
            source.next.set(index + 1);
            self.totals
                .traces_started
                .store(request.traces_started, Ordering::Relaxed);
            return Ok(Take::Send(Outgoing {
                wire: request.wire.clone(),
                spans: u64::from(request.spans),
                parts: Parts::Pooled(index),
            }));
        }
        let tail = tail.get_or_insert_with(|| self.owed_waves(source));
        let mut parts = Vec::new();
        let mut spans = 0;
        while spans < spans_target as u64 {
            let Some(part) = tail.pop_front() else { break };
            spans += u64::from(part.spans);
            parts.push(part);
        }
        if parts.is_empty() {
            return Ok(Take::Done);
        }
        let framed = self.stream.borrow().compose(&parts);
        Ok(Take::Send(Outgoing {
            wire: self.encoder.borrow_mut().encode(&framed)?,
            spans,
            parts: Parts::Owned(parts),
        }))
    }

    /// At the deadline: the waves, in pool order, of the traces started by the requests taken
    /// so far that those requests did not hold; the oracle forgets the traces not started.
    fn owed_waves(&self, source: &PoolSource) -> VecDeque<Part> {
        let requests = &source.pool.requests;
        let taken = source.next.get();
        if taken == requests.len() {
            return VecDeque::new();
        }
        let (traces, spans) = taken.checked_sub(1).map_or((0, 0), |last| {
            (requests[last].traces_started, requests[last].spans_started)
        });
        let mut stream = self.stream.borrow_mut();
        stream.record.truncate(traces, spans);
        let partition = stream.partition();
        requests[taken..]
            .iter()
            .flat_map(|r| r.parts.iter())
            .filter(|part| (part.k - partition.index) / partition.count < traces)
            .copied()
            .collect()
    }

    /// Records that the gateway refused `parts`' waves: their traces are not judged.
    fn refused(&self, parts: &Parts) {
        let mut stream = self.stream.borrow_mut();
        let parts = match (parts, &self.source) {
            (Parts::Owned(parts), _) => &parts[..],
            (Parts::Pooled(index), Source::Pool(source)) => &source.pool.requests[*index].parts,
            (Parts::Pooled(_), Source::Stream) => unreachable!("a pooled request from a pool"),
        };
        for part in parts {
            stream.record.refused(part.k, part.spans);
        }
    }
}

/// One connection: requests from its thread's stream or pool, one in flight, until they end.
async fn connection(
    shared: Rc<Shared>,
    mut client: Client,
    deadline: Instant,
    interval: Option<Duration>,
    spans_per_request: usize,
) {
    let mut due = Instant::now();
    loop {
        if shared.tls_misconfigured.borrow().is_some() {
            break;
        }
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
        let request = match shared.take(spans_per_request, start_new) {
            Ok(Take::Send(request)) => request,
            Ok(Take::WaitUntil(at)) => {
                glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await;
                continue;
            }
            Ok(Take::Done) => break,
            Err(why) => {
                eprintln!("load: encoding a request failed: {why}");
                break;
            }
        };
        let spans = request.spans;
        let wire_bytes = request.wire.len() - GRPC_PREFIX_BYTES;
        let refused = match client.send(request.wire).await {
            Ok(rejected) => rejected.min(spans),
            Err(NotAccepted::Failed(why)) => {
                shared.first_failure.borrow_mut().get_or_insert(why);
                spans
            }
            Err(NotAccepted::TlsMisconfigured(why)) => {
                shared.tls_misconfigured.borrow_mut().get_or_insert(why);
                spans
            }
        };
        let totals = &shared.totals;
        totals
            .accepted
            .fetch_add(spans - refused, Ordering::Relaxed);
        totals.refused.fetch_add(refused, Ordering::Relaxed);
        totals
            .wire_bytes
            .fetch_add(wire_bytes as u64, Ordering::Relaxed);
        if refused > 0 {
            // The gateway took none (or not all) of these spans: their traces are not judged.
            shared.refused(&request.parts);
        }
        shared.requests_sent.set(shared.requests_sent.get() + 1);
        shared.totals.spans_sent.fetch_add(spans, Ordering::Relaxed);
        let latency_us = due.elapsed().as_micros() as u64;
        let _ = shared.histogram.borrow_mut().record(latency_us.max(1));
        if let Some(interval) = interval {
            due += interval.mul_f64(spans as f64 / spans_per_request as f64);
        }
    }
}

/// What one thread hands back when its connections have ended.
struct ThreadResult {
    requests_sent: u64,
    first_failure: Option<String>,
    histogram: Histogram<u64>,
    record: Recorder,
    cpu_s: f64,
    /// When its pool ran dry before the deadline.
    pool_exhausted_at: Option<Instant>,
}

/// What one thread is given.
struct ThreadPlan {
    stream: TraceStream,
    pool: Option<Pool>,
    connections: std::ops::Range<usize>,
    /// `--tenants`.
    tenants: usize,
    settings: ClientSettings,
    deadline: Instant,
    interval: Option<Duration>,
    spans_per_request: usize,
    totals: Arc<Totals>,
}

/// Runs one thread's connections to the end.
async fn thread_main(plan: ThreadPlan) -> Result<ThreadResult, String> {
    let cpu_before = cpu_time(libc::RUSAGE_THREAD);
    let source = match plan.pool {
        None => Source::Stream,
        Some(pool) => Source::Pool(PoolSource {
            pool,
            next: Cell::new(0),
            tail: RefCell::new(None),
            exhausted_at: Cell::new(None),
        }),
    };
    let shared = Rc::new(Shared {
        stream: RefCell::new(plan.stream),
        source,
        encoder: RefCell::new(Encoder::new(&plan.settings)?),
        histogram: RefCell::new(latency_histogram()),
        requests_sent: Cell::new(0),
        totals: plan.totals.clone(),
        first_failure: RefCell::new(None),
        tls_misconfigured: RefCell::new(None),
    });
    let mut tasks = Vec::new();
    for k in plan.connections {
        let settings = match plan.tenants {
            0 => plan.settings.clone(),
            tenants => plan
                .settings
                .clone()
                .with_tenant(&format!("tenant-{}", k % tenants)),
        };
        tasks.push(glommio::spawn_local(connection(
            shared.clone(),
            Client::new(settings),
            plan.deadline,
            plan.interval,
            plan.spans_per_request,
        )));
    }
    for task in tasks {
        task.await;
    }
    let shared = Rc::into_inner(shared).expect("every connection has ended");
    if let Some(why) = shared.tls_misconfigured.into_inner() {
        return Err(format!("the load stopped: {why}"));
    }
    let pool_exhausted_at = match &shared.source {
        Source::Pool(source) => source.exhausted_at.get(),
        Source::Stream => None,
    };
    Ok(ThreadResult {
        requests_sent: shared.requests_sent.get(),
        first_failure: shared.first_failure.into_inner(),
        histogram: shared.histogram.into_inner(),
        record: shared.stream.into_inner().record,
        cpu_s: (cpu_time(libc::RUSAGE_THREAD) - cpu_before).as_secs_f64(),
        pool_exhausted_at,
    })
}

/// Writes a line of progress (the sum over `totals`) to stderr every second until every sender
/// of `running` is gone, that is until every thread has ended; returns the spans accepted by
/// then at each second, as (seconds since `started`, spans).
fn progress(
    totals: &[Arc<Totals>],
    running: &mpsc::Receiver<Infallible>,
    started: Instant,
    quiet: bool,
) -> Vec<(f64, u64)> {
    let mut timeline = Vec::new();
    let mut last = (started, 0u64);
    let mut next = started + PROGRESS_INTERVAL;
    loop {
        match running.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(mpsc::RecvTimeoutError::Disconnected) => return timeline,
            Ok(never) => match never {},
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        next += PROGRESS_INTERVAL;
        let now = Instant::now();
        let [sent, accepted, refused, traces] = Totals::sum(totals);
        timeline.push(((now - started).as_secs_f64(), accepted));
        if quiet {
            continue;
        }
        let rate = (accepted - last.1) as f64 / (now - last.0).as_secs_f64();
        eprintln!(
            "load: {:>5.1}s sent {sent} accepted {accepted} refused {refused} rate {rate:.0} spans/s traces {traces}",
            (now - started).as_secs_f64(),
        );
        last = (now, accepted);
    }
}

/// What the pool held and cost to build, for the report.
struct PoolFigures {
    requests: usize,
    spans: u64,
    bytes: usize,
    rate_spans_per_s: f64,
    build_s: f64,
    build_cpu_s: f64,
}

/// The client's settings from the arguments.
fn client_settings(args: &LoadArgs) -> Result<ClientSettings, String> {
    let mut settings =
        ClientSettings::new(&args.endpoint, &args.protocol, args.compression.as_deref())?
            .with_tls(&args.tls)?;
    if let Some(level) = args.compression_level {
        settings = settings.with_level(level)?;
    }
    if let Some(bytes) = args.frame_size {
        settings = settings.with_frame_bytes(bytes)?;
    }
    Ok(settings)
}

/// Builds the pools of a compressed load, one per thread, and says what they hold.
fn build_pools(
    args: &LoadArgs,
    rate: Option<f64>,
    settings: &ClientSettings,
    streams: &mut [TraceStream],
) -> io::Result<(Vec<Pool>, PoolFigures)> {
    let began = Instant::now();
    let cpu_before = cpu_time(libc::RUSAGE_SELF);
    let rate_spans_per_s = rate.unwrap_or(args.pool_rate);
    // At a fixed rate each connection's schedule starts with a request and may end one past the
    // rate (requests are whole): a request a connection more, so the deadline ends the run.
    let headroom = match rate {
        Some(_) => (args.connections * args.spans_per_request) as f64,
        None => 0.0,
    };
    let spans = ((rate_spans_per_s * args.duration + headroom) as u64).min(args.pool_spans);
    let threads = streams.len();
    // Each thread offers the rate in proportion to its connections.
    let plans = streams
        .iter_mut()
        .enumerate()
        .map(|(thread, stream)| {
            let share = connections_of(thread, threads, args.connections).len() as f64
                / args.connections as f64;
            PoolPlan {
                stream,
                spans: (spans as f64 * share).ceil() as u64,
                rate_spans_per_s: rate_spans_per_s * share,
            }
        })
        .collect();
    let pools = pool::build(plans, settings, args.spans_per_request)?;
    let figures = PoolFigures {
        requests: pools.iter().map(|p| p.requests.len()).sum(),
        spans: pools.iter().map(Pool::spans).sum(),
        bytes: pools.iter().map(Pool::bytes).sum(),
        rate_spans_per_s,
        build_s: began.elapsed().as_secs_f64(),
        build_cpu_s: (cpu_time(libc::RUSAGE_SELF) - cpu_before).as_secs_f64(),
    };
    if !args.quiet {
        eprintln!(
            "load: pool of {} requests, {} spans, {:.1} MB ({:.0} bytes a span) built in {:.1} s",
            figures.requests,
            figures.spans,
            figures.bytes as f64 / 1e6,
            figures.bytes as f64 / figures.spans.max(1) as f64,
            figures.build_s
        );
    }
    Ok((pools, figures))
}

/// Runs the load and writes the report.
pub fn run(args: LoadArgs) -> io::Result<()> {
    let entered = Instant::now();
    let rate = check_args(&args)?;
    let cpus = thread_cpus(&args).map_err(invalid)?;
    let threads = cpus.len();
    let oracle = Oracle::parse(&args.oracle_policy).map_err(invalid)?;
    let settings = client_settings(&args).map_err(invalid)?;
    let trace_settings = TraceSettings {
        seed: args.seed,
        error_rate: args.error_rate,
        slow_rate: args.slow_rate,
        spread: Duration::from_millis(args.trace_spread_ms),
        oracle,
        corpus: Corpus::parse(&args.corpus).map_err(invalid)?,
    };
    // Drawn before the clock starts: the generator's CPU figure is about sending.
    let stream = TraceStream::new(trace_settings)?;
    let mut streams: Vec<TraceStream> = Partition::all(threads as u64)
        .map(|partition| stream.part(partition))
        .collect();
    let (mut pools, pool_figures) = if settings.compressed() {
        let (pools, figures) = build_pools(&args, rate, &settings, &mut streams)?;
        (pools.into_iter().map(Some).collect(), Some(figures))
    } else {
        ((0..threads).map(|_| None).collect::<Vec<_>>(), None)
    };
    let duration = Duration::from_secs_f64(args.duration);
    // Each connection's share of the rate: one request every `interval`, so a thread offers the
    // rate in proportion to its connections.
    let interval = rate.map(|r| {
        Duration::from_secs_f64(args.spans_per_request as f64 * args.connections as f64 / r)
    });
    let totals: Vec<Arc<Totals>> = (0..threads).map(|_| Arc::default()).collect();
    let cpu_before = cpu_time(libc::RUSAGE_SELF);
    let started = Instant::now();
    let deadline = started + duration;
    // Each thread holds a sender until it ends; the progress loop ends when all are gone.
    let (running, ended) = mpsc::channel::<Infallible>();
    let mut handles = Vec::with_capacity(threads);
    for (thread, (&cpu, stream)) in cpus.iter().zip(streams).enumerate() {
        let plan = ThreadPlan {
            stream,
            pool: pools[thread].take(),
            connections: connections_of(thread, threads, args.connections),
            tenants: args.tenants,
            settings: settings.clone(),
            deadline,
            interval,
            spans_per_request: args.spans_per_request,
            totals: totals[thread].clone(),
        };
        let running = running.clone();
        let handle = LocalExecutorBuilder::new(cpu.map_or(Placement::Unbound, Placement::Fixed))
            .name(&format!("tailgate-bench-load-{thread}"))
            .spawn(move || async move {
                let result = thread_main(plan).await;
                drop(running);
                result
            })?;
        handles.push(handle);
    }
    drop(running);
    let accepted_by_second = progress(&totals, &ended, started, args.quiet);
    let mut results = Vec::with_capacity(threads);
    for handle in handles {
        let result = handle
            .join()
            .map_err(|err| io::Error::other(err.to_string()))?;
        results.push(result.map_err(invalid)?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_time(libc::RUSAGE_SELF) - cpu_before).as_secs_f64();
    let run = Run {
        elapsed,
        cpu,
        started_after_s: (started - entered).as_secs_f64(),
        accepted_by_second,
        pool: pool_figures,
        pool_exhausted_at_s: results
            .iter()
            .filter_map(|r| r.pool_exhausted_at)
            .min()
            .map(|at| (at - started).as_secs_f64()),
    };
    // Every thread has ended: its last writes are visible after the join.
    let report = report(&args, rate, threads, &run, &totals, results)?;
    std::fs::write(&args.report, serde_json::to_vec_pretty(&report)?)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// How the run went, beside the threads' counts.
struct Run {
    /// Wall and CPU seconds from the clock's start to the last thread's end.
    elapsed: f64,
    cpu: f64,
    /// Seconds from the command's start to the clock's (the pool's build, mostly).
    started_after_s: f64,
    /// Spans accepted by each second of the clock, as (seconds, spans).
    accepted_by_second: Vec<(f64, u64)>,
    pool: Option<PoolFigures>,
    /// When the first thread's pool ran dry before the deadline, seconds after the start.
    pool_exhausted_at_s: Option<f64>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Checks what the arguments cannot say by their types; returns the target rate in spans a
/// second (`None`: as fast as the connections go).
fn check_args(args: &LoadArgs) -> io::Result<Option<f64>> {
    if !(1..=CONNECTIONS_MAX).contains(&args.connections) || args.spans_per_request == 0 {
        return Err(invalid(format!(
            "connections must be 1..={CONNECTIONS_MAX}, spans per request at least 1"
        )));
    }
    if !(0.0..=1.0).contains(&args.error_rate) || !(0.0..=1.0).contains(&args.slow_rate) {
        return Err(invalid("error and slow rates are shares, 0 to 1".into()));
    }
    if !(args.pool_rate > 0.0 && args.pool_rate.is_finite()) || args.pool_spans == 0 {
        return Err(invalid(
            "the pool's rate must be positive spans/s, its spans at least 1".into(),
        ));
    }
    Ok(match args.rate.as_str() {
        "max" => None,
        n => Some(
            n.parse()
                .ok()
                .filter(|r: &f64| *r > 0.0)
                .ok_or_else(|| invalid(format!("rate {n:?}: spans/s or max")))?,
        ),
    })
}

/// The load's report: what it sent and was answered, its CPU and latency, its pool, and the
/// oracle's expectation; writes the expectation to `--expect-out` when given. `totals` and
/// `results` are every thread's, all ended.
fn report(
    args: &LoadArgs,
    rate: Option<f64>,
    threads: usize,
    run: &Run,
    totals: &[Arc<Totals>],
    mut results: Vec<ThreadResult>,
) -> io::Result<serde_json::Value> {
    let mut histogram = latency_histogram();
    for result in &results {
        histogram
            .add(&result.histogram)
            .map_err(|err| io::Error::other(format!("merging latency histograms: {err}")))?;
    }
    let [spans_sent, accepted, refused, _] = Totals::sum(totals);
    let wire_bytes: u64 = totals
        .iter()
        .map(|t| t.wire_bytes.load(Ordering::Relaxed))
        .sum();
    let requests_sent: u64 = results.iter().map(|r| r.requests_sent).sum();
    let records: Vec<Recorder> = results
        .iter_mut()
        .map(|r| std::mem::take(&mut r.record))
        .collect();
    if let Some(path) = &args.expect_out {
        Recorder::write(&records, path, args.seed, &args.oracle_policy)?;
    }
    let (elapsed, cpu) = (run.elapsed, run.cpu);
    let pool = run.pool.as_ref().map(|pool| {
        serde_json::json!({
            "requests": pool.requests,
            "spans": pool.spans,
            "bytes": pool.bytes,
            "bytes_per_span": pool.bytes as f64 / pool.spans.max(1) as f64,
            "rate_spans_per_s": pool.rate_spans_per_s,
            "build_s": pool.build_s,
            "build_cpu_s": pool.build_cpu_s,
        })
    });
    let mut report = serde_json::json!({
        "protocol": args.protocol,
        "compression": args.compression.as_deref().unwrap_or("none"),
        "compression_level": args.compression_level,
        "frame_size": args.frame_size,
        "tls": args.tls.enabled(),
        "pool": pool,
        "pool_exhausted_at_s": run.pool_exhausted_at_s,
        "started_after_s": run.started_after_s,
        "accepted_by_second": run.accepted_by_second,
        "corpus": args.corpus,
        "connections": args.connections,
        "threads": threads,
        "cpus": args.cpus.clone().or_else(|| args.cpu.map(|c| vec![c])),
        "spans_per_request": args.spans_per_request,
        "rate_target": rate,
        "duration_s": elapsed,
        "requests_sent": requests_sent,
        "first_failure": results.iter().find_map(|r| r.first_failure.clone()),
        "spans_sent": spans_sent,
        "spans_accepted": accepted,
        "spans_refused": refused,
        "spans_per_s": accepted as f64 / elapsed,
        "wire_bytes_sent": wire_bytes,
        "wire_bytes_per_span": wire_bytes as f64 / spans_sent.max(1) as f64,
        "generator_cpu_s": cpu,
        "generator_cpu_ns_per_span": cpu * 1e9 / spans_sent.max(1) as f64,
        "generator_thread_cpu_s": results.iter().map(|r| r.cpu_s).collect::<Vec<_>>(),
        "seed": args.seed,
        "trace_spread_ms": args.trace_spread_ms,
        "error_rate": args.error_rate,
        "slow_rate": args.slow_rate,
        "oracle_policy": args.oracle_policy,
        "traces_sent": records.iter().map(|r| r.traces_sent).sum::<u64>(),
        "traces_kept_expected": records.iter().map(Recorder::kept).sum::<usize>(),
        "spans_kept_expected": records.iter().map(|r| r.spans_kept).sum::<u64>(),
        "latency_us": {
            "p50": histogram.value_at_quantile(0.50),
            "p90": histogram.value_at_quantile(0.90),
            "p99": histogram.value_at_quantile(0.99),
            "p999": histogram.value_at_quantile(0.999),
            "max": histogram.max(),
        },
    });
    report["tenants"] = args.tenants.into();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn placed(flags: &str) -> Result<Vec<Option<usize>>, String> {
        let base = ["load", "--endpoint", "http://x", "--report", "r"];
        let args = base.iter().copied().chain(flags.split_whitespace());
        let cli = Cli::try_parse_from(args).map_err(|err| err.to_string())?;
        thread_cpus(&cli.load)
    }

    #[test]
    fn threads_are_placed_as_told() {
        assert_eq!(placed(""), Ok(vec![None]));
        assert_eq!(placed("--cpu 3"), Ok(vec![Some(3)]));
        assert_eq!(placed("--cpus 2,0,1"), Ok(vec![Some(2), Some(0), Some(1)]));
        assert_eq!(placed("--threads 3"), Ok(vec![None; 3]));
        // One way at a time, each CPU once, and a connection for every thread.
        assert!(placed("--cpu 1 --cpus 0,1").is_err());
        assert!(placed("--cpu 1 --threads 2").is_err());
        assert!(placed("--cpus 0,1 --threads 2").is_err());
        assert!(placed("--cpus 1,1").is_err());
        assert!(placed("--threads 0").is_err());
        assert!(placed("--threads 5 --connections 4").is_err());
        assert_eq!(
            placed("--threads 4 --connections 4").map(|c| c.len()),
            Ok(4)
        );
    }

    #[test]
    fn connections_are_dealt_out_evenly_and_all_of_them() {
        for threads in 1..=9 {
            for connections in threads..=40 {
                let ranges: Vec<_> = (0..threads)
                    .map(|t| connections_of(t, threads, connections))
                    .collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[threads - 1].end, connections);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                }
                let sizes: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(*min >= 1 && max - min <= 1, "{sizes:?}");
            }
        }
    }
}
