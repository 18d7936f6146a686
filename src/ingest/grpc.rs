//! The OTLP/gRPC receiver: HTTP/2 (the `h2` crate) on the shard's io_uring sockets.
//!
//! Each shard accepts on its own SO_REUSEPORT listener and runs every connection it accepts as a
//! task of its own executor; the connection task drives HTTP/2 and spawns one task per call.
//! A call's message is read under the size limit (flow-control capacity is released only as the
//! body is consumed, so a shard that stops reading slows its clients), its gRPC framing and
//! `grpc-encoding` decoded, and handed to [`Ingest::export`]. Answers follow the OTLP
//! specification: OK with an `Export*ServiceResponse` (carrying partial success when spans were
//! rejected), INVALID_ARGUMENT for undecodable data, RESOURCE_EXHAUSTED for a message over the
//! limit, UNIMPLEMENTED for other methods and encodings, UNAVAILABLE while draining, and
//! UNAUTHENTICATED for an export without valid credentials when the receiver has an
//! authenticator (checked before the message is read; the health check stays open, as load
//! balancers probe it without credentials).

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::accept::{serve_connections, Connections};
use super::body::{self, BodyError, Coding};
use super::keepalive::{deadline, Inbound, Keepalive, HANDSHAKE_TIMEOUT};
use super::status::{IngestError, RETRY_AFTER};
use super::tls_accept::{Refused, TlsAcceptor};
use super::{Ingest, Limits, Origin};
use crate::auth::Gatekeeper;
use crate::metadata::{Capture, Metadata};
use crate::telemetry::{Health, ReceiverMetrics};
use crate::tls::{Conn, ServerTls};
use tailgate_shards::sync::Stop;
use tailgate_wire::encode::export_response;
use tailgate_wire::grpc::{
    encode_binary_header, encode_grpc_message, encode_status, message_prefix, MessageError,
    MessageReader,
};
use tailgate_wire::Signal;

const TRACE_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const METRICS_EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// HTTP/2 flow-control windows: how much a client may send before the shard has read it.
const STREAM_WINDOW_BYTES: u32 = 1 << 20;
const CONNECTION_WINDOW_BYTES: u32 = 4 << 20;

/// How one HTTP/2 connection is served: calls in flight, the flow-control windows, and the
/// keepalive rules.
#[derive(Debug, Clone, Copy)]
pub struct Http2Settings {
    pub max_concurrent_streams: u32,
    pub stream_window: u32,
    pub connection_window: u32,
    pub keepalive: Keepalive,
}

/// The largest HTTP/2 frame accepted, and the largest header block.
const FRAME_BYTES_MAX: u32 = 1 << 20;
const HEADER_LIST_BYTES_MAX: u32 = 16 << 10;

/// Settings of one shard's gRPC receiver.
#[derive(Debug, Clone)]
pub struct GrpcSettings {
    pub limits: Limits,
    pub max_concurrent_streams: u32,
    pub keepalive: Keepalive,
    /// `include_metadata`: the request headers kept as client metadata; `None`: none.
    pub capture: Option<Arc<Capture>>,
}

/// One shard's gRPC receiver.
pub struct GrpcReceiver {
    ingest: Rc<Ingest>,
    metrics: ReceiverMetrics,
    /// Checks every export's credentials, when the receiver has an authenticator.
    gatekeeper: Option<Gatekeeper>,
    settings: GrpcSettings,
    health: Arc<Health>,
    stop: Rc<Stop>,
    connections: Rc<Connections>,
    /// TLS, on a TLS listener.
    tls: Option<TlsAcceptor>,
}

impl GrpcReceiver {
    /// A receiver; with `tls`, every connection is a TLS session (its handshake counted in the
    /// listener's TLS metrics).
    pub fn new(
        ingest: Rc<Ingest>,
        metrics: ReceiverMetrics,
        gatekeeper: Option<Gatekeeper>,
        settings: GrpcSettings,
        health: Arc<Health>,
        stop: Rc<Stop>,
        tls: Option<Arc<ServerTls>>,
    ) -> Rc<Self> {
        let connections =
            Connections::new(settings.limits.connections_max, metrics.connections.clone());
        let tls = tls.map(|tls| TlsAcceptor::new(tls, &metrics.connections));
        Rc::new(GrpcReceiver {
            ingest,
            metrics,
            gatekeeper,
            settings,
            health,
            stop,
            connections,
            tls,
        })
    }

    /// Accepts connections until the stop signal, then lets the open ones drain.
    pub async fn serve(self: Rc<Self>, listener: TcpListener) {
        serve_connections(&listener, &self.stop, &self.connections, |stream| {
            let receiver = self.clone();
            async move { receiver.serve_connection(stream).await }
        })
        .await;
    }

    /// Number of connections this shard has open.
    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }

    async fn serve_connection(self: &Rc<Self>, stream: TcpStream) {
        let end = serve_http2(
            stream,
            self.tls.as_ref(),
            Http2Settings {
                max_concurrent_streams: self.settings.max_concurrent_streams,
                stream_window: STREAM_WINDOW_BYTES,
                connection_window: CONNECTION_WINDOW_BYTES,
                keepalive: self.settings.keepalive,
            },
            &self.stop,
            |request, respond| {
                let receiver = self.clone();
                async move { receiver.serve_call(request, respond).await }
            },
        )
        .await;
        match end {
            ConnectionEnd::Closed => {}
            ConnectionEnd::TimedOut => self.connections.timed_out(),
            ConnectionEnd::TooManyPings => self.connections.too_many_pings(),
        }
    }

    async fn serve_call(
        &self,
        request: http::Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
    ) {
        let result = match route_call(&request, &mut respond) {
            Some(Call::Export(signal)) => self.export(signal, request).await,
            Some(Call::HealthCheck) => Ok(self.health_check()),
            None => return,
        };
        match result {
            Ok(message) => send_message(&mut respond, &message),
            Err(err) => send_error(&mut respond, &err),
        }
    }

    fn health_check(&self) -> Vec<u8> {
        // grpc.health.v1.HealthCheckResponse { status = 1 }: SERVING 1, NOT_SERVING 2.
        let serving = self.health.readiness().is_ok() && !self.stop.is_triggered();
        vec![0x08, if serving { 1 } else { 2 }]
    }

    async fn export(
        &self,
        signal: Signal,
        request: http::Request<RecvStream>,
    ) -> Result<Vec<u8>, IngestError> {
        if self.stop.is_triggered() {
            return Err(IngestError::Unavailable {
                reason: "the gateway is shutting down",
                retry_after: RETRY_AFTER,
            });
        }
        self.authenticate(&request).await?;
        let origin = if request
            .headers()
            .get(crate::tier::FORWARDED_HEADER)
            .is_some_and(|v| v.as_bytes() == crate::tier::FORWARDED_VALUE.as_bytes())
        {
            Origin::Member
        } else {
            Origin::Client
        };
        let metadata = match &self.settings.capture {
            Some(capture) => capture.from_headers(
                request
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_bytes())),
            ),
            None => Metadata::none(),
        };
        let message = read_request(request, self.settings.limits.max_message_bytes).await?;
        let outcome = self
            .ingest
            .export(signal, message, origin, metadata, &self.metrics)
            .await?;
        Ok(export_response(outcome.rejected, &outcome.message))
    }

    /// Checks the call's credentials (gRPC metadata is HTTP/2 headers), when the receiver has
    /// an authenticator.
    async fn authenticate(&self, request: &http::Request<RecvStream>) -> Result<(), IngestError> {
        let Some(gatekeeper) = &self.gatekeeper else {
            return Ok(());
        };
        let value = request.headers().get(gatekeeper.header());
        gatekeeper
            .check(value.map(HeaderValue::as_bytes))
            .await
            .map_err(|refusal| IngestError::Unauthenticated {
                refusal,
                challenge: None,
            })
    }
}

/// Why an HTTP/2 connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// The client closed it or broke it, or it drained after GOAWAY (stop, age).
    Closed,
    /// The handshake did not complete in time, the connection idled past
    /// `max_connection_idle`, a keepalive ping went unanswered, or the age grace ran out.
    TimedOut,
    /// The client pinged more often than the enforcement policy allows (GOAWAY
    /// `ENHANCE_YOUR_CALM`).
    TooManyPings,
}

/// What woke a connection's task.
enum Event {
    /// A new call (boxed: the request and its responder are large beside the other events).
    Call(Box<(http::Request<RecvStream>, SendResponse<Bytes>)>),
    /// The connection ended, or broke.
    Ended,
    Stop,
    Tick,
    Attention,
}

/// Serves one HTTP/2 connection with `settings` and the receivers' frame limits, running
/// `call(request, respond)` as a task of its own for each call, until the peer closes it.
///
/// The handshake must complete within [`HANDSHAKE_TIMEOUT`] of accept. Then the keepalive
/// rules ([`Keepalive`]) apply: GOAWAY after `max_connection_idle` without a call or at
/// `max_connection_age` (the connection is closed `max_connection_age_grace` later if calls
/// are still in flight), a PING to a client silent for `time` and the connection closed if it
/// is not answered within `timeout`, and GOAWAY `ENHANCE_YOUR_CALM` for a client that pings too
/// often. Once `stop` is triggered the connection is shut down gracefully (GOAWAY) and driven
/// until its calls in flight end.
pub(crate) async fn serve_http2<F, Fut>(
    mut stream: TcpStream,
    tls: Option<&TlsAcceptor>,
    settings: Http2Settings,
    stop: &Stop,
    call: F,
) -> ConnectionEnd
where
    F: FnMut(http::Request<RecvStream>, SendResponse<Bytes>) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let _ = stream.set_nodelay(true);
    let opened = Instant::now();
    if let Some(tls) = tls {
        // The handshake waits for the first byte itself, within its own timeout; its state is
        // boxed with the conversation's.
        return Box::pin(async {
            match tls.accept(stream, opened, stop).await {
                Ok(session) => {
                    serve_conversation(
                        crate::io::Stream::conn(session),
                        opened,
                        settings,
                        stop,
                        call,
                    )
                    .await
                }
                // Counted in the listener's TLS metrics, timeouts among them.
                Err(Refused::Failed | Refused::Closed | Refused::NotTls(_)) => {
                    ConnectionEnd::Closed
                }
            }
        })
        .await;
    }
    // h2 allocates its codec and writes its SETTINGS as soon as the handshake starts: wait for
    // the client's first byte first (in a one-byte slot, holding no buffer), so a connection
    // that never speaks costs its task and socket only, and the handshake timeout still counts
    // from accept.
    let mut first = [0u8; 1];
    let first_byte = future::or(
        async {
            match glommio::timer::timeout(HANDSHAKE_TIMEOUT, async {
                Ok(futures_lite::AsyncReadExt::read(&mut stream, &mut first).await)
            })
            .await
            {
                Ok(Ok(1)) => Ok(Some(first[0])),
                Ok(_) => Ok(None),
                Err(_) => Err(()),
            }
        },
        async {
            stop.wait().await;
            Ok(None)
        },
    );
    let first = match first_byte.await {
        Ok(Some(byte)) => byte,
        Ok(None) => return ConnectionEnd::Closed,
        Err(()) => return ConnectionEnd::TimedOut,
    };
    // The conversation's state (h2's connection among it) is boxed, so a connection waiting
    // for its first byte holds a small task, not room for all of it.
    let io = crate::io::Stream::conn(Conn::Plain(stream)).after(first);
    Box::pin(serve_conversation(io, opened, settings, stop, call)).await
}

/// Serves an HTTP/2 connection on `io` (for plaintext, its first byte put back in front).
async fn serve_conversation<F, Fut>(
    io: crate::io::Stream<Conn>,
    opened: Instant,
    settings: Http2Settings,
    stop: &Stop,
    mut call: F,
) -> ConnectionEnd
where
    F: FnMut(http::Request<RecvStream>, SendResponse<Bytes>) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let inbound = Rc::new(Inbound::new(settings.keepalive));
    let io = io.observed_by(inbound.clone());
    let mut connection = match handshake(io, &settings, opened, stop).await {
        Ok(connection) => connection,
        Err(end) => return end,
    };
    let mut rules = KeepaliveRules {
        keepalive: settings.keepalive,
        inbound,
        opened,
        ping_pong: connection.ping_pong(),
        ping_sent: None,
        goaway_at: None,
        draining: false,
        end: ConnectionEnd::Closed,
    };
    loop {
        match rules.next_event(&mut connection, stop).await {
            Event::Call(started) => {
                let (request, respond) = *started;
                rules.inbound.call_started();
                let call = call(request, respond);
                let inbound = rules.inbound.clone();
                glommio::spawn_local(async move {
                    call.await;
                    inbound.call_ended();
                })
                .detach();
            }
            Event::Ended => return rules.end,
            Event::Stop => {
                rules.draining = true;
                connection.graceful_shutdown();
            }
            Event::Attention | Event::Tick => {}
        }
        if let Some(end) = rules.apply(&mut connection).await {
            return end;
        }
    }
}

/// An h2 server connection on a glommio socket.
type Connection = h2::server::Connection<crate::io::Stream<Conn>, Bytes>;

/// The HTTP/2 handshake with the receivers' frame limits, within what is left of
/// [`HANDSHAKE_TIMEOUT`] since `opened`.
async fn handshake(
    io: crate::io::Stream<Conn>,
    settings: &Http2Settings,
    opened: Instant,
    stop: &Stop,
) -> Result<Connection, ConnectionEnd> {
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(settings.max_concurrent_streams)
        .initial_window_size(settings.stream_window)
        .initial_connection_window_size(settings.connection_window)
        .max_frame_size(FRAME_BYTES_MAX)
        .max_header_list_size(HEADER_LIST_BYTES_MAX)
        .handshake::<_, Bytes>(io);
    let remaining = HANDSHAKE_TIMEOUT.saturating_sub(opened.elapsed());
    let handshake = future::or(
        async { Some(glommio::timer::timeout(remaining, async { Ok(handshake.await) }).await) },
        async {
            stop.wait().await;
            None
        },
    );
    match handshake.await {
        Some(Ok(Ok(connection))) => Ok(connection),
        Some(Err(_)) => Err(ConnectionEnd::TimedOut),
        Some(Ok(Err(_))) | None => Err(ConnectionEnd::Closed),
    }
}

/// One connection's keepalive state: the rules of [`Keepalive`] applied to what [`Inbound`]
/// saw and to the server's own pings.
struct KeepaliveRules {
    keepalive: Keepalive,
    inbound: Rc<Inbound>,
    opened: Instant,
    ping_pong: Option<h2::PingPong>,
    /// When the server's keepalive ping went out, while it waits for the answer.
    ping_sent: Option<Instant>,
    /// When GOAWAY went out for the connection's age (the grace counts from it).
    goaway_at: Option<Instant>,
    /// GOAWAY was sent: no more calls, the connection ends when its calls do.
    draining: bool,
    /// What to report when the connection ends.
    end: ConnectionEnd,
}

impl KeepaliveRules {
    /// Waits for the next call, the connection's end, the stop signal, a rule's deadline or a
    /// note from [`Inbound`]. `accept` also drives the connection's I/O for the calls in
    /// flight, so it is polled until the connection ends, draining or not.
    async fn next_event(&self, connection: &mut Connection, stop: &Stop) -> Event {
        let now = Instant::now();
        let next = self.next_deadline();
        let draining = self.draining;
        future::or(
            async {
                match connection.accept().await {
                    Some(Ok(call)) => Event::Call(Box::new(call)),
                    _ => Event::Ended,
                }
            },
            future::or(
                async {
                    if draining {
                        future::pending::<()>().await;
                    }
                    stop.wait().await;
                    Event::Stop
                },
                future::or(
                    async {
                        glommio::timer::sleep(next.saturating_duration_since(now)).await;
                        Event::Tick
                    },
                    async {
                        self.inbound.attention().await;
                        Event::Attention
                    },
                ),
            ),
        )
        .await
    }

    /// Applies every rule whose moment has come; `Some` when the connection must close now.
    async fn apply(&mut self, connection: &mut Connection) -> Option<ConnectionEnd> {
        let now = Instant::now();
        if self.inbound.abusive() && self.end != ConnectionEnd::TooManyPings {
            self.end = ConnectionEnd::TooManyPings;
            self.draining = true;
            connection.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
        }
        if let (Some(at), Some(grace)) = (self.goaway_at, self.keepalive.max_connection_age_grace) {
            if now >= deadline(at, grace) {
                return Some(ConnectionEnd::TimedOut);
            }
        }
        if let Some(end) = self.ping(now).await {
            return Some(end);
        }
        if self.draining {
            return None;
        }
        let idle_over = self
            .keepalive
            .max_connection_idle
            .zip(self.inbound.idle_since())
            .is_some_and(|(idle, since)| now >= deadline(since, idle));
        let age_over = self
            .keepalive
            .max_connection_age
            .is_some_and(|age| now >= deadline(self.opened, age));
        if idle_over || age_over {
            if idle_over {
                self.end = ConnectionEnd::TimedOut;
            }
            self.goaway_at = Some(now).filter(|_| age_over);
            self.draining = true;
            connection.graceful_shutdown();
        }
        None
    }

    /// Pings a client silent for `time`, and closes the connection if the answer does not
    /// come within `timeout` while the client sends nothing else either.
    async fn ping(&mut self, now: Instant) -> Option<ConnectionEnd> {
        let pings = self.ping_pong.as_mut()?;
        let Some(sent) = self.ping_sent else {
            if now >= deadline(self.inbound.last_read(), self.keepalive.time)
                && pings.send_ping(h2::Ping::opaque()).is_ok()
            {
                self.ping_sent = Some(now);
            }
            return None;
        };
        // `send_ping` and `poll_pong` are h2's non-blocking halves of `PingPong::ping`.
        let pong = future::poll_once(std::future::poll_fn(|cx| pings.poll_pong(cx))).await;
        if pong.is_some() {
            self.ping_sent = None;
        } else if now >= deadline(sent, self.keepalive.timeout) {
            if self.inbound.last_read() <= sent {
                return Some(ConnectionEnd::TimedOut);
            }
            // The client is sending, only not the answer yet: give that another timeout.
            self.ping_sent = Some(now);
        }
        None
    }

    /// The next moment a keepalive rule needs looking at.
    fn next_deadline(&self) -> Instant {
        let keepalive = &self.keepalive;
        let mut next = match self.ping_sent {
            Some(sent) => deadline(sent, keepalive.timeout),
            None => deadline(self.inbound.last_read(), keepalive.time),
        };
        if let (Some(at), Some(grace)) = (self.goaway_at, keepalive.max_connection_age_grace) {
            next = next.min(deadline(at, grace));
        }
        if !self.draining {
            if let (Some(idle), Some(since)) =
                (keepalive.max_connection_idle, self.inbound.idle_since())
            {
                next = next.min(deadline(since, idle));
            }
            if let Some(age) = keepalive.max_connection_age {
                next = next.min(deadline(self.opened, age));
            }
        }
        next
    }
}

/// What a gRPC call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// One of the OTLP `Export` methods.
    Export(Signal),
    /// `grpc.health.v1.Health/Check`.
    HealthCheck,
}

/// Reads which method a call asks for; a call that is not gRPC (415, at the HTTP level, as the
/// gRPC protocol says) or asks for another method (UNIMPLEMENTED) is answered here: `None`.
pub fn route_call(
    request: &http::Request<RecvStream>,
    respond: &mut SendResponse<Bytes>,
) -> Option<Call> {
    let is_grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if !is_grpc {
        let response = Response::builder()
            .status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .body(())
            .expect("static response");
        let _ = respond.send_response(response, true);
        return None;
    }
    match request.uri().path() {
        TRACE_EXPORT => Some(Call::Export(Signal::Traces)),
        METRICS_EXPORT => Some(Call::Export(Signal::Metrics)),
        LOGS_EXPORT => Some(Call::Export(Signal::Logs)),
        HEALTH_CHECK => Some(Call::HealthCheck),
        other => {
            send_error(respond, &IngestError::UnknownMethod(other.to_string()));
            None
        }
    }
}

/// Reads a unary call's request message: its `grpc-encoding`, its one gRPC-framed message under
/// `limit` bytes ([`read_message`]), decompressed when the frame says so (within `limit` too).
pub async fn read_request(
    request: http::Request<RecvStream>,
    limit: usize,
) -> Result<Bytes, IngestError> {
    let coding = match request.headers().get("grpc-encoding") {
        None => Coding::Identity,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(Coding::parse)
            .ok_or_else(|| IngestError::Unsupported(format!("grpc-encoding {value:?}")))?,
    };
    let (compressed, framed) = read_message(request.into_body(), limit).await?;
    let message = if compressed {
        if coding == Coding::Identity {
            return Err(IngestError::Corrupt(
                "compressed message without grpc-encoding".into(),
            ));
        }
        Bytes::from(
            body::decompress(coding, &framed, limit).map_err(|err| match err {
                BodyError::TooLarge { limit } => IngestError::TooLarge { limit },
                BodyError::Corrupt(err) => IngestError::Corrupt(err),
            })?,
        )
    } else {
        framed
    };
    Ok(message)
}

/// Reads a unary call's one message ([`MessageReader`]), releasing flow-control capacity as
/// the body is consumed.
async fn read_message(mut body: RecvStream, limit: usize) -> Result<(bool, Bytes), IngestError> {
    let mut reader = MessageReader::new(limit);
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|err| IngestError::Corrupt(format!("HTTP/2 stream: {err}")))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        reader.push(chunk).map_err(message_error)?;
    }
    reader.finish().map_err(message_error)
}

fn message_error(err: MessageError) -> IngestError {
    match err {
        MessageError::TooLarge { limit } => IngestError::TooLarge { limit },
        other => IngestError::Corrupt(other.to_string()),
    }
}

fn grpc_headers(response: &mut Response<()>) {
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
}

/// Answers OK with one message.
pub fn send_message(respond: &mut SendResponse<Bytes>, message: &[u8]) {
    let mut response = Response::new(());
    grpc_headers(&mut response);
    let Some(prefix) = message_prefix(false, message.len()) else {
        // An export response or health answer is a few bytes; one past 4 GiB is a bug here.
        respond.send_reset(h2::Reason::INTERNAL_ERROR);
        return;
    };
    let Ok(mut stream) = respond.send_response(response, false) else {
        return;
    };
    let mut frame = Vec::with_capacity(message.len().saturating_add(prefix.len()));
    frame.extend_from_slice(&prefix);
    frame.extend_from_slice(message);
    if stream.send_data(Bytes::from(frame), false).is_err() {
        return;
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let _ = stream.send_trailers(trailers);
}

/// Answers with an error status, as a trailers-only response.
pub fn send_error(respond: &mut SendResponse<Bytes>, err: &IngestError) {
    let code = err.grpc_code();
    let message = err.to_string();
    let mut response = Response::new(());
    grpc_headers(&mut response);
    let headers = response.headers_mut();
    headers.insert("grpc-status", HeaderValue::from(u16::from(code.value())));
    if let Ok(value) = HeaderValue::from_str(&encode_grpc_message(&message)) {
        headers.insert("grpc-message", value);
    }
    if let Some(delay) = err.retry_after() {
        let details = encode_status(code, &message, Some(delay));
        if let Ok(value) = HeaderValue::from_str(&encode_binary_header(&details)) {
            headers.insert("grpc-status-details-bin", value);
        }
    }
    let _ = respond.send_response(response, true);
}
