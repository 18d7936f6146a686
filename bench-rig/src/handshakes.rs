//! `tailgate-bench handshakes`: full TLS 1.3 handshakes against a server as fast as it takes
//! them, or many connections handshaken and held open at once.
//!
//! The client runs `--threads` glommio executors (unpinned; pin the process with `taskset` to
//! keep it off the server's cores), and deals the `--connections` out over them, each one a task
//! of its thread. In the default mode each task loops until `--duration` has passed: TCP
//! connect, a full TLS 1.3 handshake, close_notify and close, then the next — so that many
//! handshakes are in flight at once, always. Nothing resumes: the client keeps no session
//! cache and offers no ticket, so the server can only do the full handshake, which is what a
//! fleet of agents reconnecting costs it. The client verifies the server's chain in full once
//! and then remembers it (`tls::RememberingVerifier`), checking each handshake's signature:
//! the server does all its work every time, the client a fifth less. With `--hold` each task handshakes once and keeps its
//! connection open to the end, reading and dropping whatever the server sends; the connections
//! still open at the end were all open at once (`connections_held`), which is how a test shows
//! a server takes 1,000 concurrent TLS connections. A server that closes one early is counted as
//! a failure, with the reason.
//!
//! Every attempt is bounded ([`ATTEMPT_TIMEOUT`]), and a failed one waits [`FAILURE_PAUSE`]
//! before the next, so a server that refuses is not hammered in a tight loop. Failures are
//! counted by reason (the first [`REASONS_MAX`] distinct reasons, the rest as `other`). The
//! threads share nothing while they run but their running totals, which only the main thread
//! reads, for a line of progress every second; each keeps its own latency histogram and
//! failures, added at the end. The report (JSON on stdout, and in `--report`) says handshakes
//! completed and a second, failures by reason, handshake latency, what was negotiated (version,
//! cipher suite, key exchange group, ALPN) and the client's own CPU a handshake, so a run whose
//! client was the bottleneck shows it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use rustls::crypto::CryptoProvider;

use crate::tls::{self, ClientTls, ClientTlsArgs};

/// How long one attempt (connect and handshake) may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing a connection (close_notify, FIN) may take before it is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a task waits after a failed attempt.
const FAILURE_PAUSE: Duration = Duration::from_millis(10);
/// The most distinct failure reasons a thread tells apart.
const REASONS_MAX: usize = 16;
/// The most connections (each one a socket of this process, and one of the server's).
const CONNECTIONS_MAX: usize = 16_384;
/// The most client threads.
const THREADS_MAX: usize = 64;
/// What a held connection reads at a time (and drops).
const HOLD_READ_BYTES: usize = 1024;
/// How often the progress line is written.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// What `tailgate-bench handshakes` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct HandshakeArgs {
    /// The server's address, HOST:PORT; its host is the server name unless
    /// `--tls-server-name` says otherwise.
    #[arg(long)]
    pub addr: String,
    /// TLS: `--tls-ca` is required; `--tls-cert` and `--tls-key` present a client certificate.
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    /// Offer this ALPN protocol (`h2` for a gRPC server); none by default.
    #[arg(long)]
    pub alpn: Option<String>,
    /// Offer only this key exchange group: x25519, secp256r1, secp384r1 or x25519mlkem768; by
    /// default rustls's list, X25519MLKEM768 first.
    #[arg(long)]
    pub key_exchange: Option<String>,
    /// Client threads (glommio executors, unpinned).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Handshakes in flight at once, all threads together; with `--hold`, connections held.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds to run; with `--hold`, to hold the connections.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Handshake once a connection and hold every connection open until the end.
    #[arg(long)]
    pub hold: bool,
    /// Also write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// One thread's running totals: written only by that thread, read by the main thread for the
/// progress line. Aligned to its own cache lines so threads never write a line another writes.
#[derive(Default)]
#[repr(align(128))]
struct Totals {
    completed: AtomicU64,
    failed: AtomicU64,
    /// Connections open after their handshake (`--hold`).
    open: AtomicU64,
}

impl Totals {
    /// (completed, failed, open) summed over `all`.
    fn sum(all: &[Arc<Totals>]) -> [u64; 3] {
        all.iter().fold([0; 3], |sum, t| {
            let [a, b, c] = [&t.completed, &t.failed, &t.open].map(|n| n.load(Ordering::Relaxed));
            [sum[0] + a, sum[1] + b, sum[2] + c]
        })
    }
}

/// What a completed handshake agreed on.
#[derive(Debug, Clone)]
struct Negotiated {
    version: String,
    cipher_suite: String,
    key_exchange: String,
    alpn: Option<String>,
}

impl Negotiated {
    fn of(stream: &TlsStream<TcpStream>) -> Negotiated {
        let connection = stream.get_ref().1;
        let name = |v: Option<String>| v.unwrap_or_else(|| "none".into());
        Negotiated {
            version: name(connection.protocol_version().map(|v| format!("{v:?}"))),
            cipher_suite: name(
                connection
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite())),
            ),
            key_exchange: name(
                connection
                    .negotiated_key_exchange_group()
                    .map(|g| format!("{:?}", g.name())),
            ),
            alpn: connection
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        }
    }
}

/// What one thread's connections share, and hand back at the end.
struct Tally {
    histogram: Histogram<u64>,
    failures: BTreeMap<String, u64>,
    negotiated: Option<Negotiated>,
    /// Connections still open at the end (`--hold`).
    held: u64,
}

impl Tally {
    fn fail(&mut self, reason: String, totals: &Totals) {
        totals.failed.fetch_add(1, Ordering::Relaxed);
        let known = self.failures.len() < REASONS_MAX || self.failures.contains_key(&reason);
        let key = if known { reason } else { "other".into() };
        *self.failures.entry(key).or_default() += 1;
    }
}

/// A handshake latency histogram: 1 µs to a minute, three significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// What one thread is given.
struct Plan {
    addr: SocketAddr,
    tls: ClientTls,
    connections: usize,
    deadline: Instant,
    hold: bool,
    totals: Arc<Totals>,
}

/// One thread's result.
struct ThreadResult {
    tally: Tally,
    cpu_s: f64,
}

/// Runs the benchmark and prints (and writes) the report; an error when no handshake completed.
pub fn run(args: HandshakeArgs) -> io::Result<()> {
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
    if !(1..=THREADS_MAX).contains(&args.threads)
        || !(args.threads..=CONNECTIONS_MAX).contains(&args.connections)
    {
        return Err(invalid(format!(
            "threads must be 1..={THREADS_MAX}, connections threads..={CONNECTIONS_MAX}"
        )));
    }
    if !(args.duration > 0.0 && args.duration.is_finite()) {
        return Err(invalid(format!(
            "--duration {}: positive seconds",
            args.duration
        )));
    }
    if !args.tls.enabled() {
        return Err(invalid(
            "handshakes need --tls-ca, the authority to trust".into(),
        ));
    }
    let addr = args
        .addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| invalid(format!("--addr {:?}: no address", args.addr)))?;
    let alpn: Vec<&[u8]> = args.alpn.iter().map(|p| p.as_bytes()).collect();
    let provider = provider(args.key_exchange.as_deref()).map_err(invalid)?;
    let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let tls = args
        .tls
        .client(tls::host_of(&args.addr), &alpn, provider.clone(), tls13)?
        .expect("--tls-ca was given")
        .remembering(&args.tls, provider)?;

    let totals: Vec<Arc<Totals>> = (0..args.threads).map(|_| Arc::default()).collect();
    let cpu_before = crate::sys::cpu_time(libc::RUSAGE_SELF);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let (running, ended) = mpsc::channel::<Infallible>();
    let mut handles = Vec::with_capacity(args.threads);
    for (thread, totals) in totals.iter().enumerate() {
        let plan = Plan {
            addr,
            tls: tls.clone(),
            connections: share(thread, args.threads, args.connections),
            deadline,
            hold: args.hold,
            totals: totals.clone(),
        };
        let running = running.clone();
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("tailgate-bench-handshakes-{thread}"))
            .spawn(move || async move {
                let result = thread_main(plan).await;
                drop(running);
                result
            })?;
        handles.push(handle);
    }
    drop(running);
    progress(&totals, &ended, started, args.hold, args.quiet);
    let mut results = Vec::with_capacity(args.threads);
    for handle in handles {
        results.push(
            handle
                .join()
                .map_err(|err| io::Error::other(err.to_string()))?,
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_s = (crate::sys::cpu_time(libc::RUSAGE_SELF) - cpu_before).as_secs_f64();
    let report = report(&args, &tls, elapsed, cpu_s, results)?;
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    println!("{}", serde_json::to_string(&report)?);
    if report["handshakes_completed"] == 0 {
        return Err(io::Error::other(format!(
            "no handshake completed with {addr}: {}",
            report["failures"]
        )));
    }
    Ok(())
}

/// Connections of thread `thread` of `threads`: as even as can be, the first threads taking one
/// more.
fn share(thread: usize, threads: usize, connections: usize) -> usize {
    connections / threads + usize::from(thread < connections % threads)
}

/// rustls's aws-lc-rs provider, offering only `group` when one is named.
fn provider(group: Option<&str>) -> Result<CryptoProvider, String> {
    let mut provider = tls::provider();
    let Some(group) = group else {
        return Ok(provider);
    };
    let names: Vec<String> = provider
        .kx_groups
        .iter()
        .map(|g| format!("{:?}", g.name()).to_ascii_lowercase())
        .collect();
    let wanted = group.to_ascii_lowercase();
    if !names.contains(&wanted) {
        return Err(format!(
            "--key-exchange {group}: one of {}",
            names.join(", ")
        ));
    }
    provider
        .kx_groups
        .retain(|g| format!("{:?}", g.name()).to_ascii_lowercase() == wanted);
    Ok(provider)
}

/// Runs one thread's connections to the end.
async fn thread_main(plan: Plan) -> ThreadResult {
    let cpu_before = crate::sys::cpu_time(libc::RUSAGE_THREAD);
    let plan = Rc::new(plan);
    let tally = Rc::new(RefCell::new(Tally {
        histogram: latency_histogram(),
        failures: BTreeMap::new(),
        negotiated: None,
        held: 0,
    }));
    let tasks: Vec<_> = (0..plan.connections)
        .map(|_| {
            let (plan, tally) = (plan.clone(), tally.clone());
            glommio::spawn_local(async move {
                if plan.hold {
                    hold(&plan, &tally).await;
                } else {
                    repeat(&plan, &tally).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
    let tally = Rc::into_inner(tally).expect("every task has ended");
    ThreadResult {
        tally: tally.into_inner(),
        cpu_s: (crate::sys::cpu_time(libc::RUSAGE_THREAD) - cpu_before).as_secs_f64(),
    }
}

/// One connection and its handshake, bounded by [`ATTEMPT_TIMEOUT`]; the reason on failure.
async fn attempt(plan: &Plan) -> Result<TlsStream<TcpStream>, String> {
    let handshake = async {
        let stream = TcpStream::connect(plan.addr)
            .await
            .map_err(|err| format!("connect: {err}"))?;
        let _ = stream.set_nodelay(true);
        TlsConnector::from(plan.tls.config.clone())
            .connect(plan.tls.server_name.clone(), stream)
            .await
            .map_err(|err| match tls::rustls_error(&err) {
                Some(tls) => format!("tls: {tls}"),
                None => format!("tls: {err}"),
            })
    };
    let timeout = async {
        glommio::timer::sleep(ATTEMPT_TIMEOUT).await;
        Err(format!("no handshake within {ATTEMPT_TIMEOUT:?}"))
    };
    futures_lite::future::or(handshake, timeout).await
}

/// Records a completed handshake that took from `began`.
fn completed(plan: &Plan, tally: &mut Tally, stream: &TlsStream<TcpStream>, began: Instant) {
    plan.totals.completed.fetch_add(1, Ordering::Relaxed);
    let micros = began.elapsed().as_micros() as u64;
    let _ = tally.histogram.record(micros.max(1));
    if tally.negotiated.is_none() {
        tally.negotiated = Some(Negotiated::of(stream));
    }
}

/// Sends close_notify and closes, for at most [`CLOSE_TIMEOUT`].
async fn close(mut stream: TlsStream<TcpStream>) {
    let closing = async {
        let _ = stream.close().await;
    };
    futures_lite::future::or(closing, glommio::timer::sleep(CLOSE_TIMEOUT)).await;
}

/// Handshakes one after another until the deadline, each connection closed after its handshake.
async fn repeat(plan: &Plan, tally: &RefCell<Tally>) {
    while Instant::now() < plan.deadline {
        let began = Instant::now();
        match attempt(plan).await {
            Ok(stream) => {
                completed(plan, &mut tally.borrow_mut(), &stream, began);
                close(stream).await;
            }
            Err(reason) => {
                tally.borrow_mut().fail(reason, &plan.totals);
                glommio::timer::sleep(FAILURE_PAUSE).await;
            }
        }
    }
}

/// One handshake, then the connection held open (what the server sends read and dropped) until
/// the deadline; counted as held if it is still open then.
async fn hold(plan: &Plan, tally: &RefCell<Tally>) {
    let began = Instant::now();
    let mut stream = match attempt(plan).await {
        Ok(stream) => stream,
        Err(reason) => return tally.borrow_mut().fail(reason, &plan.totals),
    };
    completed(plan, &mut tally.borrow_mut(), &stream, began);
    plan.totals.open.fetch_add(1, Ordering::Relaxed);
    let closed = async {
        let mut buffer = [0u8; HOLD_READ_BYTES];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) => return "closed by the server while held".to_string(),
                Ok(_) => {}
                Err(err) => {
                    return match tls::rustls_error(&err) {
                        Some(tls) => format!("held, then tls: {tls}"),
                        None => format!("held, then: {err}"),
                    }
                }
            }
        }
    };
    let until = async {
        glommio::timer::sleep(plan.deadline.saturating_duration_since(Instant::now())).await;
        None
    };
    let ended = futures_lite::future::or(async { Some(closed.await) }, until).await;
    plan.totals.open.fetch_sub(1, Ordering::Relaxed);
    match ended {
        None => {
            tally.borrow_mut().held += 1;
            close(stream).await;
        }
        Some(reason) => tally.borrow_mut().fail(reason, &plan.totals),
    }
}

/// Writes a line of progress to stderr every second until every sender of `running` is gone.
fn progress(
    totals: &[Arc<Totals>],
    running: &mpsc::Receiver<Infallible>,
    started: Instant,
    hold: bool,
    quiet: bool,
) {
    let mut last = (started, 0u64);
    let mut next = started + PROGRESS_INTERVAL;
    loop {
        match running.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Ok(never) => match never {},
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        next += PROGRESS_INTERVAL;
        if quiet {
            continue;
        }
        let now = Instant::now();
        let [completed, failed, open] = Totals::sum(totals);
        let rate = (completed - last.1) as f64 / (now - last.0).as_secs_f64();
        let held = if hold {
            format!(" open {open}")
        } else {
            String::new()
        };
        eprintln!(
            "handshakes: {:>5.1}s completed {completed} failed {failed} rate {rate:.0}/s{held}",
            (now - started).as_secs_f64(),
        );
        last = (now, completed);
    }
}

/// The report: what completed, what failed and why, how fast and at what cost to the client.
fn report(
    args: &HandshakeArgs,
    tls: &ClientTls,
    elapsed: f64,
    cpu_s: f64,
    results: Vec<ThreadResult>,
) -> io::Result<serde_json::Value> {
    let mut histogram = latency_histogram();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut negotiated = None;
    let mut held = 0;
    let mut thread_cpu_s = Vec::with_capacity(results.len());
    for result in results {
        let tally = result.tally;
        histogram
            .add(&tally.histogram)
            .map_err(|err| io::Error::other(format!("merging latency histograms: {err}")))?;
        for (reason, count) in tally.failures {
            *failures.entry(reason).or_default() += count;
        }
        negotiated = negotiated.or(tally.negotiated);
        held += tally.held;
        thread_cpu_s.push(result.cpu_s);
    }
    let completed = histogram.len();
    let failed: u64 = failures.values().sum();
    let negotiated = negotiated.map(|n| {
        serde_json::json!({
            "protocol_version": n.version,
            "cipher_suite": n.cipher_suite,
            "key_exchange": n.key_exchange,
            "alpn": n.alpn,
        })
    });
    Ok(serde_json::json!({
        "addr": args.addr,
        "server_name": tls.server_name.to_str(),
        "alpn": args.alpn,
        "key_exchange_offered": args.key_exchange.as_deref().unwrap_or("default"),
        "client_certificate": args.tls.tls_cert.is_some(),
        "threads": args.threads,
        "connections": args.connections,
        "hold": args.hold,
        "duration_s": elapsed,
        "handshakes_completed": completed,
        "handshakes_failed": failed,
        "failures": failures,
        "handshakes_per_s": completed as f64 / elapsed,
        "connections_held": args.hold.then_some(held),
        "handshake_us": {
            "p50": histogram.value_at_quantile(0.50),
            "p90": histogram.value_at_quantile(0.90),
            "p99": histogram.value_at_quantile(0.99),
            "max": histogram.max(),
        },
        "negotiated": negotiated,
        "client_cpu_s": cpu_s,
        "client_cpu_us_per_handshake": cpu_s * 1e6 / completed.max(1) as f64,
        "client_thread_cpu_s": thread_cpu_s,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_shared_out_whole() {
        for threads in 1..=7 {
            for connections in threads..=50 {
                let shares: Vec<usize> = (0..threads)
                    .map(|t| share(t, threads, connections))
                    .collect();
                assert_eq!(shares.iter().sum::<usize>(), connections);
                assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
            }
        }
    }

    #[test]
    fn a_key_exchange_group_is_chosen_by_name() {
        let only = provider(Some("X25519")).unwrap();
        assert_eq!(only.kx_groups.len(), 1);
        assert_eq!(
            only.kx_groups[0].name(),
            rustls::NamedGroup::X25519,
            "{only:?}"
        );
        assert!(provider(None).unwrap().kx_groups.len() > 1);
        let err = provider(Some("ffdhe2048")).unwrap_err();
        assert!(err.contains("secp256r1"), "{err}");
    }
}
