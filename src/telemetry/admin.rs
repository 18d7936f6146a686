//! The admin HTTP endpoint: `/metrics`, `/healthz`, `/readyz`; and the same server, on an
//! address of its own, for the `health_check` extension (its configured path only; see
//! `health_check`).
//!
//! It runs on std threads with blocking sockets, far from the shards: a scrape costs the shards
//! nothing but the relaxed loads of their cells. One thread (`tailgate-admin`) accepts; each
//! connection is served on a thread of its own, one request each (`Connection: close`), so a
//! slow scraper or a client that connects and sends nothing never holds up a health probe.
//! At most [`ADMIN_CONNECTIONS_MAX`] connections are served at once; one more is answered
//! 503 with `Retry-After` at once, without a thread, and closed. Everything else a client can
//! influence is bounded too: the request head ([`ADMIN_HEADER_BYTES_MAX`], 64 headers), the
//! time to send it ([`ADMIN_READ_TIMEOUT_MS`]), the time to take the response, and what is
//! read and discarded after responding. A client that breaks a bound gets an error status and
//! is closed.
//!
//! Requests are parsed with `httparse`. Any method but GET on a known path is 405; an unknown
//! path is 404.
//!
//! Shutdown: [`AdminServer::shutdown`] sets a stop flag and connects to the listener itself,
//! which wakes the blocking `accept`; the accepting thread sees the flag and exits. Reads on a
//! connection time out every [`POLL_INTERVAL_MS`] to look at the flag, so a client holding a
//! connection open delays shutdown by at most that long; `shutdown` then waits for the
//! connection threads to end. This costs nothing while idle, unlike a non-blocking accept loop
//! that would wake up on a timer.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::exposition;
use super::health::Health;
use super::health_check;
use super::process;
use super::registry::{CounterSuffix, PublishedRegistry};
use crate::config::HealthCheck;
use crate::tls::ServerTls;

/// The most bytes a request line and headers may take; larger requests get 431.
pub const ADMIN_HEADER_BYTES_MAX: usize = 8 * 1024;

/// How long a client may take to send its request head; slower clients get 408.
pub const ADMIN_READ_TIMEOUT_MS: u64 = 5_000;

/// The most headers a request may carry; more get 431.
const HEADERS_MAX: usize = 64;

/// How long a client may take to accept the response.
const WRITE_TIMEOUT_MS: u64 = 5_000;

/// How often a blocked read looks at the stop flag.
const POLL_INTERVAL_MS: u64 = 100;

/// After responding, how much of what the client still sends is read and discarded, and for
/// how long. Closing a socket with unread input makes the kernel send a reset, which can
/// destroy the response before the client reads it (a 431 to an oversized request, a 405 to a
/// request with a body); draining first lets the response arrive.
const DRAIN_BYTES_MAX: usize = 64 * 1024;
const DRAIN_TIME_MS: u64 = 1_000;

/// Pause after a failed `accept` (out of file descriptors, say), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF_MS: u64 = 100;

/// How long `shutdown` waits to connect to its own listener.
const WAKE_CONNECT_TIMEOUT_MS: u64 = 1_000;

/// The most connections served at once, each on its own thread: a scraper or two, probes, and
/// room for clients that hold a connection without finishing their request.
pub const ADMIN_CONNECTIONS_MAX: usize = 32;

/// Stack of a connection thread: parsing and rendering keep their data on the heap.
const CONNECTION_STACK_BYTES: usize = 256 * 1024;

/// How long `shutdown` waits for connection threads after the accepting thread has ended: a
/// read notices the stop flag within [`POLL_INTERVAL_MS`], a blocked write ends within
/// [`WRITE_TIMEOUT_MS`], and the drain after a response within [`DRAIN_TIME_MS`].
const CONNECTIONS_END_WAIT_MS: u64 = WRITE_TIMEOUT_MS + DRAIN_TIME_MS;

/// The admin endpoint's thread; see the module documentation.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Connections being served now, one thread each.
    active: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `addr` and starts serving on a new thread named `tailgate-admin`. Bind to port 0 to
    /// let the kernel pick one, then ask [`AdminServer::local_addr`].
    /// Without a registry (`service.telemetry.metrics.level: none`) `/metrics` is 404.
    pub fn start(
        addr: SocketAddr,
        registry: Option<Arc<PublishedRegistry>>,
        health: Arc<Health>,
    ) -> io::Result<AdminServer> {
        Self::start_serving(
            addr,
            Serves::Admin(registry),
            None,
            health,
            "tailgate-admin",
        )
    }

    /// Binds `addr` and serves the `health_check` extension `config` there, on a thread named
    /// `tailgate-health`, with the admin endpoint's bounds; with `tls`, over HTTPS (the
    /// handshake within the time a request head has).
    pub fn start_health_check(
        addr: SocketAddr,
        config: HealthCheck,
        tls: Option<Arc<ServerTls>>,
        health: Arc<Health>,
    ) -> io::Result<AdminServer> {
        Self::start_serving(
            addr,
            Serves::HealthCheck(Arc::new(config)),
            tls,
            health,
            "tailgate-health",
        )
    }

    fn start_serving(
        addr: SocketAddr,
        serves: Serves,
        tls: Option<Arc<ServerTls>>,
        health: Arc<Health>,
        name: &str,
    ) -> io::Result<AdminServer> {
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let thread = thread::Builder::new().name(name.into()).spawn({
            let shared = Shared {
                stop: Arc::clone(&stop),
                active: Arc::clone(&active),
                serves,
                tls,
                health,
                started: Instant::now(),
            };
            move || serve(&listener, &shared)
        })?;
        Ok(AdminServer {
            local_addr,
            stop,
            active,
            thread: Some(thread),
        })
    }

    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the threads and waits for them: within about 100 ms, even while a client holds a
    /// connection open without sending (longer only while a client does not take a response:
    /// at most `WRITE_TIMEOUT_MS` plus `DRAIN_TIME_MS`).
    ///
    /// If the thread cannot be woken (connecting to its own listener failed), the error is
    /// returned and the thread is left to exit on the next connection it accepts.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::Release);
        // The listener's own address, with an unspecified IP (0.0.0.0, ::) made loopback.
        let ip = match self.local_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        TcpStream::connect_timeout(
            &SocketAddr::new(ip, self.local_addr.port()),
            Duration::from_millis(WAKE_CONNECT_TIMEOUT_MS),
        )?;
        thread
            .join()
            .map_err(|_| io::Error::other("the admin thread panicked"))?;
        let deadline = Instant::now() + Duration::from_millis(CONNECTIONS_END_WAIT_MS);
        while self.active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        // Nothing to report to from a destructor; `shutdown` is the way to see the error.
        let _ = self.stop_and_join();
    }
}

/// What every connection thread reads: the stop flag, the count of connections being served,
/// and what it serves.
#[derive(Clone)]
struct Shared {
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    serves: Serves,
    /// TLS on every connection (a `health_check` with `tls`).
    tls: Option<Arc<ServerTls>>,
    health: Arc<Health>,
    /// When the server started (at the process's start): `otelcol_process_uptime`.
    started: Instant,
}

/// What a server answers.
#[derive(Clone)]
enum Serves {
    /// The admin endpoint; without a registry (`service.telemetry.metrics.level: none`)
    /// `/metrics` is 404.
    Admin(Option<Arc<PublishedRegistry>>),
    /// A `health_check` extension.
    HealthCheck(Arc<HealthCheck>),
}

impl Serves {
    fn route(&self, method: &str, target: &str) -> Route {
        match self {
            Serves::Admin(_) => route(method, target),
            // Any method, as the Collector's handler answers.
            Serves::HealthCheck(config) => {
                let path = target.split_once('?').map_or(target, |(path, _)| path);
                if config.answers(path) {
                    Route::HealthCheck
                } else {
                    Route::NotFound
                }
            }
        }
    }
}

/// A connection's buffers: the request head, the body and the response.
struct Buffers {
    head: Box<[u8]>,
    body: String,
    response: Vec<u8>,
}

/// One served connection in [`Shared::active`], for as long as this lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The answer to a connection over [`ADMIN_CONNECTIONS_MAX`].
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; \
    charset=utf-8\r\nContent-Length: 34\r\nRetry-After: 1\r\nConnection: close\r\n\r\n\
    too many admin connections; retry\n";

fn serve(listener: &TcpListener, shared: &Shared) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            Ok((stream, _)) => {
                if shared.active.fetch_add(1, Ordering::AcqRel) >= ADMIN_CONNECTIONS_MAX {
                    shared.active.fetch_sub(1, Ordering::AcqRel);
                    refuse_busy(stream, shared.tls.is_some());
                    continue;
                }
                let slot = Slot(Arc::clone(&shared.active));
                let connection = shared.clone();
                let spawned = thread::Builder::new()
                    .name("tailgate-admin-conn".into())
                    .stack_size(CONNECTION_STACK_BYTES)
                    .spawn(move || {
                        let _slot = slot;
                        let mut bufs = Buffers {
                            head: vec![0; ADMIN_HEADER_BYTES_MAX].into_boxed_slice(),
                            body: String::new(),
                            response: Vec::new(),
                        };
                        // A connection that fails (reset, timeout) concerns that client only.
                        let _ = serve_connection(stream, &connection, &mut bufs);
                    });
                // Out of threads: the connection (moved into the closure) is closed and its
                // slot released; the next one may find a thread again.
                if spawned.is_err() {
                    thread::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS));
                }
            }
            Err(_) => thread::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)),
        }
    }
}

/// Answers 503 without waiting on the client: one non-blocking write of a response that fits
/// any socket buffer, then close. What the client already sent is read first (without
/// waiting, at most [`DRAIN_BYTES_MAX`]): closing over unread input would make the kernel send
/// a reset that can destroy the response. On a TLS port, where a plaintext answer would only
/// be a handshake failure to the client, the connection is closed without one.
fn refuse_busy(stream: TcpStream, tls: bool) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    if !tls {
        let _ = (&stream).write(BUSY_RESPONSE);
    }
    let _ = stream.shutdown(Shutdown::Write);
    let mut scratch = [0u8; 1024];
    let mut drained = 0;
    while drained < DRAIN_BYTES_MAX {
        match (&stream).read(&mut scratch) {
            Ok(n) if n > 0 => drained += n,
            _ => return,
        }
    }
}

/// What a request asked for, or what was wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics,
    Healthz,
    Readyz,
    HealthCheck,
    NotFound,
    MethodNotAllowed,
    BadRequest,
    HeadTooLarge,
    Timeout,
}

fn route(method: &str, target: &str) -> Route {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let known = match path {
        "/metrics" => Route::Metrics,
        "/healthz" => Route::Healthz,
        "/readyz" => Route::Readyz,
        _ => return Route::NotFound,
    };
    if method == "GET" {
        known
    } else {
        Route::MethodNotAllowed
    }
}

/// The socket, with a deadline on reads: past it, a read fails with `TimedOut` before it
/// reads. A client that trickles bytes never leaves a read waiting long enough for the socket's
/// own timeout, and rustls reads on for as long as a handshake's bytes keep coming; the deadline
/// cuts either off at the bound however steadily it sends.
struct Timed {
    socket: TcpStream,
    until: Instant,
    /// The same for writes: a client that takes the answer a few bytes at a time is cut off
    /// when the answer's time is up, not only when one write stalls that long.
    write_until: Instant,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() >= self.until {
            return Err(io::Error::from(ErrorKind::TimedOut));
        }
        self.socket.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if Instant::now() >= self.write_until {
            return Err(io::Error::from(ErrorKind::TimedOut));
        }
        self.socket.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

/// A served connection: the socket, or a TLS session over it.
enum Client {
    Plain(Timed),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, Timed>>),
}

impl Client {
    fn timed(&mut self) -> &mut Timed {
        match self {
            Client::Plain(timed) => timed,
            Client::Tls(session) => &mut session.sock,
        }
    }

    fn socket(&self) -> &TcpStream {
        match self {
            Client::Plain(timed) => &timed.socket,
            Client::Tls(session) => &session.sock.socket,
        }
    }

    /// Reads fail with `TimedOut` from `until` on.
    fn read_until(&mut self, until: Instant) {
        self.timed().until = until;
    }

    /// Writes fail with `TimedOut` from `until` on.
    fn write_until(&mut self, until: Instant) {
        self.timed().write_until = until;
    }

    /// Ends the response: TLS's `close_notify` first, then the socket's write side.
    fn finish(&mut self) -> io::Result<()> {
        if let Client::Tls(session) = self {
            session.conn.send_close_notify();
            session.flush()?;
        }
        self.socket().shutdown(Shutdown::Write)
    }
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Client::Plain(stream) => stream.read(buf),
            Client::Tls(session) => session.read(buf),
        }
    }
}

impl Write for Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Client::Plain(stream) => stream.write(buf),
            Client::Tls(session) => session.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Client::Plain(stream) => stream.flush(),
            Client::Tls(session) => session.flush(),
        }
    }
}

/// Reads one request head, within the bounds; `None` when the client went away or shutdown
/// began. Over TLS the handshake happens within the same reads and the same deadline.
fn read_request(
    stream: &mut Client,
    stop: &AtomicBool,
    serves: &Serves,
    head: &mut [u8],
) -> Option<Route> {
    let deadline = Instant::now() + Duration::from_millis(ADMIN_READ_TIMEOUT_MS);
    stream.read_until(deadline);
    let mut filled = 0;
    loop {
        if filled == head.len() {
            return Some(Route::HeadTooLarge);
        }
        match stream.read(&mut head[filled..]) {
            Ok(0) => return None,
            Ok(n) => {
                filled += n;
                let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
                let mut request = httparse::Request::new(&mut headers);
                match request.parse(&head[..filled]) {
                    Ok(httparse::Status::Complete(_)) => {
                        // A complete parse has both; their absence would be an httparse bug.
                        let (Some(method), Some(path)) = (request.method, request.path) else {
                            return Some(Route::BadRequest);
                        };
                        return Some(serves.route(method, path));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => return Some(Route::HeadTooLarge),
                    Err(_) => return Some(Route::BadRequest),
                }
            }
            Err(e) if is_timeout(&e) => {
                if stop.load(Ordering::Acquire) {
                    return None;
                }
                if Instant::now() >= deadline {
                    return Some(Route::Timeout);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared, bufs: &mut Buffers) -> io::Result<()> {
    let (stop, health) = (&*shared.stop, &*shared.health);
    // The registry of this scrape: a reload replaces it between scrapes.
    let registry = match &shared.serves {
        Serves::Admin(registry) => registry.as_deref().map(PublishedRegistry::current),
        Serves::HealthCheck(_) => None,
    };
    stream.set_read_timeout(Some(Duration::from_millis(POLL_INTERVAL_MS)))?;
    stream.set_write_timeout(Some(Duration::from_millis(WRITE_TIMEOUT_MS)))?;
    stream.set_nodelay(true)?;
    let timed = Timed {
        socket: stream,
        until: Instant::now() + Duration::from_millis(ADMIN_READ_TIMEOUT_MS),
        // The handshake's writes are bounded with its reads; the answer's are set below.
        write_until: Instant::now() + Duration::from_millis(ADMIN_READ_TIMEOUT_MS),
    };
    let mut stream = match &shared.tls {
        None => Client::Plain(timed),
        Some(tls) => {
            let session = rustls::ServerConnection::new(tls.config()).map_err(io::Error::other)?;
            Client::Tls(Box::new(rustls::StreamOwned::new(session, timed)))
        }
    };

    let Some(route) = read_request(&mut stream, stop, &shared.serves, &mut bufs.head) else {
        return Ok(());
    };

    bufs.body.clear();
    let (status, content_type) = match route {
        Route::Metrics => match registry.as_deref() {
            Some(registry) => {
                registry.render_prometheus(&mut bufs.body);
                let suffix = match registry.counter_suffix() {
                    CounterSuffix::None => "",
                    CounterSuffix::Total => "_total",
                };
                process::render(&mut bufs.body, shared.started, suffix);
                ("200 OK", exposition::CONTENT_TYPE)
            }
            None => {
                bufs.body
                    .push_str("metrics are off (service.telemetry.metrics.level: none)\n");
                ("404 Not Found", TEXT)
            }
        },
        Route::Healthz => {
            bufs.body.push_str("ok\n");
            ("200 OK", TEXT)
        }
        Route::Readyz => match health.readiness() {
            Ok(()) => {
                bufs.body.push_str("ready\n");
                ("200 OK", TEXT)
            }
            Err(why) => {
                bufs.body.push_str("not ready: ");
                bufs.body.push_str(&why.to_string());
                bufs.body.push('\n');
                ("503 Service Unavailable", TEXT)
            }
        },
        Route::HealthCheck => match &shared.serves {
            Serves::HealthCheck(config) => {
                health_check::answer(config, health, std::time::SystemTime::now(), &mut bufs.body)
            }
            Serves::Admin(_) => unreachable!("the admin endpoint has no health_check route"),
        },
        Route::NotFound => {
            match &shared.serves {
                Serves::Admin(_) => bufs
                    .body
                    .push_str("not found; try /metrics, /healthz or /readyz\n"),
                Serves::HealthCheck(config) => {
                    bufs.body.push_str("not found; the health check is at ");
                    bufs.body.push_str(&config.path);
                    bufs.body.push('\n');
                }
            }
            ("404 Not Found", TEXT)
        }
        Route::MethodNotAllowed => {
            bufs.body.push_str("only GET is served here\n");
            ("405 Method Not Allowed", TEXT)
        }
        Route::BadRequest => {
            bufs.body.push_str("malformed HTTP request\n");
            ("400 Bad Request", TEXT)
        }
        Route::HeadTooLarge => {
            bufs.body
                .push_str("request head over 8 KiB or 64 headers\n");
            ("431 Request Header Fields Too Large", TEXT)
        }
        Route::Timeout => {
            bufs.body.push_str("request head not received in time\n");
            ("408 Request Timeout", TEXT)
        }
    };

    let response = &mut bufs.response;
    response.clear();
    write!(
        response,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        bufs.body.len()
    )?;
    if route == Route::MethodNotAllowed {
        response.extend_from_slice(b"Allow: GET\r\n");
    }
    response.extend_from_slice(b"Connection: close\r\n\r\n");
    response.extend_from_slice(bufs.body.as_bytes());
    stream.write_until(Instant::now() + Duration::from_millis(WRITE_TIMEOUT_MS));
    stream.write_all(response)?;
    stream.flush()?;

    stream.finish()?;
    drain(&mut stream, stop, &mut bufs.head);
    Ok(())
}

const TEXT: &str = "text/plain; charset=utf-8";

/// Reads and discards what the client still sends, until it closes or a bound is reached.
fn drain(stream: &mut Client, stop: &AtomicBool, scratch: &mut [u8]) {
    let deadline = Instant::now() + Duration::from_millis(DRAIN_TIME_MS);
    stream.read_until(deadline);
    let mut drained = 0;
    while drained < DRAIN_BYTES_MAX && Instant::now() < deadline {
        match stream.read(scratch) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if is_timeout(&e) => {
                if stop.load(Ordering::Acquire) {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// A read timeout shows as `WouldBlock` on Unix and `TimedOut` on Windows.
fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/metrics"), Route::Metrics);
        assert_eq!(route("GET", "/metrics?name[]=x"), Route::Metrics);
        assert_eq!(route("GET", "/healthz"), Route::Healthz);
        assert_eq!(route("GET", "/readyz"), Route::Readyz);
        assert_eq!(route("GET", "/"), Route::NotFound);
        assert_eq!(route("POST", "/nope"), Route::NotFound);
        assert_eq!(route("POST", "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route("HEAD", "/healthz"), Route::MethodNotAllowed);
    }
}
