//! The `otlp` exporter's transport: OTLP/gRPC over HTTP/2, with `h2` as the client.
//!
//! # Connection model
//!
//! One HTTP/2 connection per exporter per shard, shared by all of the exporter's consumer
//! tasks: every batch is one stream, and the server's `SETTINGS_MAX_CONCURRENT_STREAMS` bounds
//! how many are open at once ([`h2::client::SendRequest::ready`] waits for a slot). `h2` is
//! runtime-agnostic but speaks tokio's `AsyncRead`/`AsyncWrite`; the glommio `TcpStream` is
//! adapted with [`crate::io::Stream`] (traits only: no tokio runtime runs), and the connection's
//! driver future runs as a task on the shard's executor.
//!
//! A connection is replaced when its driver ends (the server closed it or sent `GOAWAY`), when
//! an attempt fails with an I/O or `GOAWAY` error, and when an attempt times out (a
//! black-holed connection shows no other symptom). Only one task connects at a time; the others
//! wait for its result rather than opening connections of their own.
//!
//! # The exchange
//!
//! `POST /opentelemetry.proto.collector.<signal>.v1.<Service>/Export` with `content-type:
//! application/grpc`, `te: trailers`, `grpc-timeout`, `grpc-encoding` when compressing, the
//! user's headers, and the authenticator's header (`auth.authenticator`), taken per request so
//! that a rotated token is used from the next export on. The body is one length-prefixed
//! message: a compressed flag, a big-endian `u32` length, then the request (the batch, or its
//! compressed form, built once and reused by every retry). The status comes in the trailers,
//! or in the response headers of a trailers-only response; a non-OK status carries
//! `grpc-message` and possibly `grpc-status-details-bin`, whose `RetryInfo` is the server's
//! retry delay.
//!
//! # Keepalive
//!
//! With `keepalive` (on by default, as in the Collector: 10 s and 10 s), a connection on which
//! nothing has arrived for `time` is pinged — only while an export is in flight unless
//! `permit_without_stream` — and if nothing at all arrives within `timeout` of the ping, the
//! connection is closed: its calls in flight fail at once (and are retried on a new
//! connection) rather than at their deadline, and an idle connection to a central that went
//! away silently is replaced before the next export needs it rather than during it. What the
//! connection receives is noted as it passes the socket adapter ([`crate::io::Observe`]).
//!
//! # Health
//!
//! [`GrpcClient::health`] asks the upstream's `grpc.health.v1.Health/Check` (service `""`, the
//! server as a whole) over the same connection, for the failover connector: whether a central
//! that failed is worth trying again. A server without the health service (`UNIMPLEMENTED`)
//! says nothing either way.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future;
use glommio::sync::Semaphore;
use h2::client::SendRequest;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, TE, USER_AGENT};
use http::{Method, Request, Uri};

use super::batch::Batch;
use super::compression::compress;
use super::connect::connect;
use super::error::SendError;
use super::settings::{
    grpc_target, parse_headers, Balancer, ClientKeepalive, Compression, OtlpGrpcSettings, Target,
};
use super::status::{delivered_from_proto, grpc_message, retry_delay_from_details, Delivered};
use super::{SettingsError, RESPONSE_BYTES_MAX};
use crate::auth::{AuthHeader, ClientAuth, HeaderSetter};
use crate::ingest::body::{decompress, Coding};
use crate::ingest::keepalive::deadline;
use crate::metadata::Metadata;
use tailgate_wire::grpc::{message_prefix, split_message, GrpcCode, PREFIX_BYTES};
use tailgate_wire::Signal;

/// The receive window for responses: export responses are small; the default is plenty.
const RESPONSE_WINDOW_BYTES: u32 = 64 * 1024;

/// What an upstream's `grpc.health.v1` service said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// `SERVING`.
    Serving,
    /// `NOT_SERVING`, or the call failed: the upstream is not worth data now.
    NotServing,
    /// No health service (`UNIMPLEMENTED`), or a status that says neither (`UNKNOWN`,
    /// `SERVICE_UNKNOWN`).
    Unknown,
}

/// The exporter's HTTP/2 client.
pub(crate) struct GrpcClient {
    target: Target,
    /// The request URI per signal, built once.
    uris: [Uri; 3],
    /// The headers every export carries (content type, encoding, user headers).
    headers: HeaderMap,
    /// The authenticator's header, when the exporter has one.
    auth: Option<AuthHeader>,
    /// The `headers_setter`'s headers, per batch, when the exporter has one.
    setter: Option<std::sync::Arc<HeaderSetter>>,
    /// Whether each batch's client metadata goes on as headers (the tier's forwarder).
    pass_metadata: bool,
    compression: Compression,
    /// `compression_params.level`.
    compression_level: Option<i32>,
    timeout: Duration,
    /// `keepalive`: `None`, never pinged.
    keepalive: Option<ClientKeepalive>,
    /// `wait_for_ready`: an attempt keeps trying to connect until its deadline.
    wait_for_ready: bool,
    connection: RefCell<Option<Connection>>,
    /// One unit: held by the task that is connecting.
    connecting: Semaphore,
}

/// The current connection, as the tasks that send on it hold it.
#[derive(Clone)]
struct Connection {
    send: SendRequest<Bytes>,
    /// Cleared by the connection's driver task when it ends.
    alive: Rc<Cell<bool>>,
    /// What the connection received last, and how many calls are in flight on it: what its
    /// keepalive watches.
    activity: Rc<Activity>,
}

/// A connection's activity, for its keepalive.
struct Activity {
    /// When anything last arrived.
    last_read: Cell<Instant>,
    /// Calls in flight.
    calls: Cell<usize>,
    /// The keepalive task, while it waits for a call on an idle connection.
    waiting: Cell<Option<std::task::Waker>>,
}

impl crate::io::Observe for Activity {
    fn received(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.last_read.set(Instant::now());
        }
    }
}

/// Counts a call in flight on a connection for as long as it lives.
struct InFlight(Rc<Activity>);

impl InFlight {
    fn start(activity: &Rc<Activity>) -> Self {
        activity.calls.set(activity.calls.get().saturating_add(1));
        if let Some(waker) = activity.waiting.take() {
            waker.wake();
        }
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.calls.set(self.0.calls.get().saturating_sub(1));
    }
}

/// How long a `wait_for_ready` attempt waits before it tries to connect again, at first and at
/// most (doubling in between); the attempt's deadline bounds the whole.
const READY_PAUSE_MIN: Duration = Duration::from_millis(50);
const READY_PAUSE_MAX: Duration = Duration::from_secs(1);

/// A batch framed for gRPC, kept across retries.
pub(crate) struct Prepared {
    prefix: Bytes,
    message: Bytes,
    /// The `headers_setter`'s headers for this batch.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The batch's client metadata, passed on (the tier's forwarder).
    metadata: Vec<(HeaderName, HeaderValue)>,
}

impl GrpcClient {
    /// Shard `n`'s first connection starts at the endpoint's `n`th address.
    pub fn spread_from(&self, shard: usize) {
        self.target.resolver.start_at(shard);
    }

    pub fn new(settings: &OtlpGrpcSettings) -> Result<Self, SettingsError> {
        let mut target = grpc_target(&settings.endpoint, settings.tls.as_ref())?;
        if settings.balancer == Balancer::PickFirst {
            target.resolver.pick_first();
        }
        // grpc-go asks the environment for the proxy of `https://host:port`, TLS or not.
        let proxy = super::proxy::env()
            .for_target(true, target.resolver.host(), target.resolver.port())
            .map_err(SettingsError::Proxy)?;
        target.via(proxy);
        let not_authority = || SettingsError::Endpoint {
            endpoint: settings.endpoint.clone(),
            reason: "not a valid authority",
        };
        // `authority` replaces the endpoint's in every request, and names the server TLS
        // checks (as grpc-go's WithAuthority does) unless `server_name_override` names one.
        let authority = match &settings.authority {
            Some(authority) => {
                let parsed: http::uri::Authority =
                    authority.parse().map_err(|_| not_authority())?;
                let host = parsed.host();
                target.host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host)
                    .to_string();
                authority.clone()
            }
            None => target.authority.clone(),
        };
        let uri = |service: &str| -> Result<Uri, SettingsError> {
            format!("http://{authority}/{service}/Export")
                .parse()
                .map_err(|_| not_authority())
        };
        let uris = [
            uri("opentelemetry.proto.collector.trace.v1.TraceService")?,
            uri("opentelemetry.proto.collector.metrics.v1.MetricsService")?,
            uri("opentelemetry.proto.collector.logs.v1.LogsService")?,
        ];
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("tailgate/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some(token) = settings.compression.token() {
            headers.insert(
                HeaderName::from_static("grpc-encoding"),
                HeaderValue::from_static(token),
            );
        }
        for (name, value) in parse_headers(&settings.headers)? {
            headers.append(name, value);
        }
        Ok(GrpcClient {
            target,
            uris,
            headers,
            auth: settings.auth.as_ref().map(ClientAuth::for_shard),
            setter: settings.setter.clone(),
            pass_metadata: settings.pass_metadata,
            compression: settings.compression,
            compression_level: settings.compression_level,
            timeout: settings.timeout,
            keepalive: settings.keepalive,
            wait_for_ready: settings.wait_for_ready,
            connection: RefCell::new(None),
            connecting: Semaphore::new(1),
        })
    }

    /// Frames (and compresses) a batch once for all its attempts.
    pub fn prepare(&self, batch: &Batch) -> Result<Prepared, SendError> {
        let (compressed, message) = match self.compression {
            Compression::None => (false, batch.bytes.clone()),
            kind => (
                true,
                Bytes::from(
                    compress(kind, self.compression_level, &batch.bytes)
                        .map_err(|e| SendError::Encode(e.to_string()))?,
                ),
            ),
        };
        let prefix = message_prefix(compressed, message.len())
            .ok_or_else(|| SendError::Encode("batch exceeds a gRPC message's 4 GiB".into()))?;
        let headers = match &self.setter {
            Some(setter) => setter
                .headers(&batch.metadata)
                .map_err(|e| SendError::Encode(e.to_string()))?,
            None => Vec::new(),
        };
        let metadata = if self.pass_metadata {
            metadata_headers(&batch.metadata)?
        } else {
            Vec::new()
        };
        Ok(Prepared {
            prefix: Bytes::copy_from_slice(&prefix),
            message,
            headers,
            metadata,
        })
    }

    /// One export call.
    pub async fn attempt(
        &self,
        batch: &Batch,
        prepared: &Prepared,
    ) -> Result<Delivered, SendError> {
        let connection = self.ready_sender().await?;
        let in_flight = InFlight::start(&connection.activity);
        let result = self
            .exchange(connection.send.clone(), batch.signal, prepared)
            .await;
        drop(in_flight);
        if let Err(err) = &result {
            if err.breaks_connection() {
                self.forget(&connection.alive);
            }
        }
        result
    }

    /// The connection to send on; with `wait_for_ready`, a failure to connect is tried again
    /// (after a pause that doubles from [`READY_PAUSE_MIN`] to [`READY_PAUSE_MAX`]) until the
    /// attempt's deadline ends the wait, as a gRPC call that waits for its channel to be ready.
    async fn ready_sender(&self) -> Result<Connection, SendError> {
        let mut pause = READY_PAUSE_MIN;
        loop {
            match self.sender().await {
                Err(SendError::Connect { .. } | SendError::Tls { .. }) if self.wait_for_ready => {
                    glommio::timer::sleep(pause).await;
                    pause = (pause * 2).min(READY_PAUSE_MAX);
                }
                other => return other,
            }
        }
    }

    /// Asks the upstream's `grpc.health.v1` service whether it serves (see the module
    /// documentation); a failed call is [`Health::NotServing`]. Bounded by the exporter's
    /// `timeout` as an export is.
    pub async fn health(&self) -> Health {
        let call = async {
            let connection = self.sender().await?;
            let in_flight = InFlight::start(&connection.activity);
            let result = self.check(connection.send.clone()).await;
            drop(in_flight);
            if let Err(err) = &result {
                if err.breaks_connection() {
                    self.forget(&connection.alive);
                }
            }
            result
        };
        let timeout = self.timeout;
        let answer = futures_lite::future::or(call, async {
            glommio::timer::sleep(timeout).await;
            Err(SendError::Timeout { after: timeout })
        })
        .await;
        match answer {
            Ok(health) => health,
            Err(SendError::Grpc {
                code: GrpcCode::Unimplemented,
                ..
            }) => Health::Unknown,
            Err(err) => {
                tracing::debug!(upstream = %self.target.authority, error = %err, "health check failed");
                Health::NotServing
            }
        }
    }

    async fn check(&self, send: SendRequest<Bytes>) -> Result<Health, SendError> {
        let mut send = send.ready().await.map_err(SendError::from_h2)?;
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        // Built per call (a failover retry at most every `retry_gap`), from the authority the
        // export URIs were built from.
        *request.uri_mut() = format!(
            "http://{}/grpc.health.v1.Health/Check",
            self.target.authority
        )
        .parse()
        .map_err(|_| SendError::Protocol("health: not a valid authority".into()))?;
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        headers.insert(
            HeaderName::from_static("grpc-timeout"),
            grpc_timeout(self.timeout),
        );
        if let Some(auth) = &self.auth {
            headers.insert(auth.name().clone(), auth.value());
        }
        let (response, mut stream) = send
            .send_request(request, false)
            .map_err(SendError::from_h2)?;
        // An empty HealthCheckRequest: the server as a whole.
        stream
            .send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
            .map_err(SendError::from_h2)?;
        let Some((data, _)) = reply(response).await? else {
            return Ok(Health::Unknown);
        };
        let (compressed, message) =
            split_message(&data).map_err(|e| SendError::Protocol(format!("health: {e}")))?;
        if compressed {
            return Ok(Health::Unknown);
        }
        // HealthCheckResponse { status = 1 }: the last varint of field 1.
        let mut status = 0;
        let mut at = 0;
        while at < message.len() {
            let (tag, n) = varint(&message[at..])?;
            at += n;
            match tag {
                8 => {
                    let (value, n) = varint(&message[at..])?;
                    status = value;
                    at += n;
                }
                _ => return Ok(Health::Unknown),
            }
        }
        Ok(match status {
            1 => Health::Serving,
            2 => Health::NotServing,
            _ => Health::Unknown,
        })
    }

    /// Drops the current connection, so the next attempt makes a new one: after an attempt ran
    /// out of time (the connection may be black-holed), and at shutdown. Streams still open on
    /// the old connection finish or time out on it; it closes when they are done.
    pub fn forget_connection(&self) {
        self.connection.borrow_mut().take();
    }

    /// The current connection, connecting first if there is none.
    async fn sender(&self) -> Result<Connection, SendError> {
        if let Some(live) = self.live() {
            return Ok(live);
        }
        // The semaphore is never closed, so the permit always comes.
        let _permit = self.connecting.acquire_permit(1).await;
        if let Some(live) = self.live() {
            return Ok(live);
        }
        let stream = connect(&self.target).await?;
        let activity = Rc::new(Activity {
            last_read: Cell::new(Instant::now()),
            calls: Cell::new(0),
            waiting: Cell::new(None),
        });
        let (send, mut driver) = h2::client::Builder::new()
            .initial_window_size(RESPONSE_WINDOW_BYTES)
            .enable_push(false)
            .handshake::<_, Bytes>(crate::io::Stream::conn(stream).observed_by(activity.clone()))
            .await
            .map_err(SendError::from_h2)?;
        let alive = Rc::new(Cell::new(true));
        let flag = alive.clone();
        let authority = self.target.authority.clone();
        let watch = self
            .keepalive
            .zip(driver.ping_pong())
            .map(|(keepalive, pings)| silence(keepalive, pings, activity.clone()));
        glommio::spawn_local(async move {
            let run = async {
                if let Err(err) = driver.await {
                    tracing::debug!(upstream = %authority, error = %err, "OTLP/gRPC connection ended");
                }
            };
            match watch {
                None => run.await,
                // The watch ends only when a ping went unanswered: the driver is dropped, which
                // closes the socket and fails the calls still on it.
                Some(watch) => {
                    future::or(run, async {
                        let timeout = watch.await;
                        tracing::warn!(
                            upstream = %authority,
                            "nothing received within {timeout:?} of a keepalive ping; closing \
                             the connection (the next export opens another)"
                        );
                    })
                    .await
                }
            }
            flag.set(false);
        })
        .detach();
        let connection = Connection {
            send,
            alive,
            activity,
        };
        *self.connection.borrow_mut() = Some(connection.clone());
        Ok(connection)
    }

    fn live(&self) -> Option<Connection> {
        let connection = self.connection.borrow();
        connection.as_ref().filter(|c| c.alive.get()).cloned()
    }

    /// Drops the connection `alive` belongs to, if it is still the current one.
    fn forget(&self, alive: &Rc<Cell<bool>>) {
        let mut connection = self.connection.borrow_mut();
        if connection
            .as_ref()
            .is_some_and(|c| Rc::ptr_eq(&c.alive, alive))
        {
            *connection = None;
        }
    }

    async fn exchange(
        &self,
        send: SendRequest<Bytes>,
        signal: Signal,
        prepared: &Prepared,
    ) -> Result<Delivered, SendError> {
        let mut send = send.ready().await.map_err(SendError::from_h2)?;
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uris[signal.index()].clone();
        *request.headers_mut() = self.headers.clone();
        for (name, value) in &prepared.metadata {
            request.headers_mut().append(name.clone(), value.clone());
        }
        if let Some(auth) = &self.auth {
            request
                .headers_mut()
                .insert(auth.name().clone(), auth.value());
        }
        for (name, value) in &prepared.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        request.headers_mut().insert(
            HeaderName::from_static("grpc-timeout"),
            grpc_timeout(self.timeout),
        );
        let (response, mut stream) = send
            .send_request(request, false)
            .map_err(SendError::from_h2)?;
        stream
            .send_data(prepared.prefix.clone(), false)
            .map_err(SendError::from_h2)?;
        stream
            .send_data(prepared.message.clone(), true)
            .map_err(SendError::from_h2)?;
        let Some((data, headers)) = reply(response).await? else {
            return Ok(Delivered::default());
        };
        let encoding = headers
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        response_message(&data, encoding)
    }
}

/// Watches a connection under `keepalive` (see the module documentation); returns, with the
/// timeout, only when a ping's answer and everything else failed to arrive within it.
async fn silence(
    keepalive: ClientKeepalive,
    mut pings: h2::PingPong,
    activity: Rc<Activity>,
) -> Duration {
    let time = keepalive.time.max(ClientKeepalive::TIME_MIN);
    loop {
        let quiet_until = deadline(activity.last_read.get(), time);
        let now = Instant::now();
        if now < quiet_until {
            glommio::timer::sleep(quiet_until - now).await;
            continue;
        }
        if activity.calls.get() == 0 && !keepalive.permit_without_stream {
            // Idle, and not to be pinged while idle: wait for a call (a connection silent for
            // `time` is pinged as soon as one starts, as grpc-go wakes from dormancy).
            std::future::poll_fn(|cx| {
                if activity.calls.get() > 0 {
                    return std::task::Poll::Ready(());
                }
                activity.waiting.set(Some(cx.waker().clone()));
                std::task::Poll::Pending
            })
            .await;
            continue;
        }
        if pings.send_ping(h2::Ping::opaque()).is_err() {
            // The connection is ending of itself.
            return future::pending().await;
        }
        let mut sent = Instant::now();
        loop {
            let answered = future::or(
                async {
                    match std::future::poll_fn(|cx| pings.poll_pong(cx)).await {
                        Ok(_) => true,
                        // The connection is ending of itself; its driver reports that.
                        Err(_) => future::pending().await,
                    }
                },
                async {
                    glommio::timer::sleep(keepalive.timeout).await;
                    false
                },
            )
            .await;
            if answered {
                break;
            }
            if activity.last_read.get() <= sent {
                return keepalive.timeout;
            }
            // Other frames arrive, only not the answer yet: give it another timeout.
            sent = Instant::now();
        }
    }
}

/// `metadata` as request headers, every value of each key in order. The receiver that kept it
/// read each as a header, so each is one again; should one not be, the batch cannot be sent
/// (and is counted failed with the reason).
fn metadata_headers(metadata: &Metadata) -> Result<Vec<(HeaderName, HeaderValue)>, SendError> {
    let mut headers = Vec::new();
    for (name, values) in metadata.entries() {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            SendError::Encode(format!("client metadata key `{name}`: not a header name"))
        })?;
        for value in values {
            let mut value = HeaderValue::from_bytes(value).map_err(|_| {
                SendError::Encode(format!(
                    "client metadata `{name}`: a value that is not a header value"
                ))
            })?;
            // Tenants' values can be credentials: kept out of HTTP/2's header table.
            value.set_sensitive(true);
            headers.push((header.clone(), value));
        }
    }
    Ok(headers)
}

/// A unary call's reply: its message bytes (length prefix included) and response headers, or
/// `None` for an OK trailers-only response; a non-OK status as an error.
async fn reply(
    response: h2::client::ResponseFuture,
) -> Result<Option<(Vec<u8>, HeaderMap)>, SendError> {
    let (head, mut body) = response.await.map_err(SendError::from_h2)?.into_parts();
    if head.headers.contains_key("grpc-status") {
        // Trailers-only: the status is all there is.
        check_status(&head.headers)?;
        return Ok(None);
    }
    if head.status != http::StatusCode::OK {
        return Err(SendError::Grpc {
            code: GrpcCode::from_http_status(head.status.as_u16()),
            message: format!("HTTP status {} without grpc-status", head.status),
            retry_delay: None,
        });
    }
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(SendError::from_h2)?;
        // Flow control: hand the window back as the bytes are taken.
        let _ = body.flow_control().release_capacity(chunk.len());
        if data.len() + chunk.len() > RESPONSE_BYTES_MAX + PREFIX_BYTES {
            return Err(SendError::Protocol(format!(
                "response exceeds {RESPONSE_BYTES_MAX} bytes"
            )));
        }
        data.extend_from_slice(&chunk);
    }
    let trailers = body
        .trailers()
        .await
        .map_err(SendError::from_h2)?
        .ok_or_else(|| SendError::Protocol("response without grpc-status".into()))?;
    check_status(&trailers)?;
    Ok(Some((data, head.headers)))
}

/// A protobuf varint at the start of `bytes` and its length.
fn varint(bytes: &[u8]) -> Result<(u64, usize), SendError> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(SendError::Protocol("health: a truncated varint".into()))
}

/// `Ok(())` for `grpc-status: 0`, the status as an error otherwise.
fn check_status(headers: &HeaderMap) -> Result<(), SendError> {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or_else(|| SendError::Protocol("unreadable grpc-status".into()))?;
    let code = GrpcCode::from_i32(code);
    if code == GrpcCode::Ok {
        return Ok(());
    }
    Err(SendError::Grpc {
        code,
        message: headers
            .get("grpc-message")
            .map(|v| grpc_message(v.as_bytes()))
            .unwrap_or_default(),
        retry_delay: headers
            .get("grpc-status-details-bin")
            .and_then(|v| retry_delay_from_details(v.as_bytes())),
    })
}

/// Reads the length-prefixed `Export*ServiceResponse` of an OK call. No message at all is a
/// full success too.
fn response_message(data: &[u8], encoding: &str) -> Result<Delivered, SendError> {
    if data.is_empty() {
        return Ok(Delivered::default());
    }
    let protocol = |what: &str| SendError::Protocol(what.to_string());
    let (compressed, message) =
        split_message(data).map_err(|e| SendError::Protocol(format!("response: {e}")))?;
    let decoded;
    let message = if compressed {
        let coding = Coding::parse(encoding)
            .ok_or_else(|| protocol("response compressed with an unknown grpc-encoding"))?;
        decoded = decompress(coding, message, RESPONSE_BYTES_MAX)
            .map_err(|e| SendError::Protocol(format!("cannot decompress the response: {e}")))?;
        &decoded[..]
    } else {
        message
    };
    delivered_from_proto(message)
        .map_err(|e| SendError::Protocol(format!("unreadable export response: {e}")))
}

/// The `grpc-timeout` value for `timeout`: at most 8 digits, in the finest unit that fits.
fn grpc_timeout(timeout: Duration) -> HeaderValue {
    const DIGITS_VALUE_MAX: u128 = 99_999_999;
    let units: [(u128, char); 5] = [
        (timeout.as_micros(), 'u'),
        (timeout.as_millis(), 'm'),
        (u128::from(timeout.as_secs()), 'S'),
        (u128::from(timeout.as_secs() / 60), 'M'),
        (u128::from(timeout.as_secs() / 3600), 'H'),
    ];
    let (value, unit) = units
        .into_iter()
        .find(|(value, _)| *value <= DIGITS_VALUE_MAX)
        .unwrap_or((DIGITS_VALUE_MAX, 'H'));
    HeaderValue::from_str(&format!("{value}{unit}")).expect("digits and a letter are a valid value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_uses_the_finest_unit_that_fits() {
        assert_eq!(grpc_timeout(Duration::from_secs(5)), "5000000u");
        assert_eq!(grpc_timeout(Duration::from_secs(1000)), "1000000m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(grpc_timeout(Duration::from_secs(u64::MAX)), "99999999H");
    }

    #[test]
    fn status_in_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(check_status(&headers).is_ok());
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        headers.insert("grpc-message", HeaderValue::from_static("try%20later"));
        match check_status(&headers) {
            Err(SendError::Grpc {
                code: GrpcCode::Unavailable,
                message,
                retry_delay: None,
            }) => assert_eq!(message, "try later"),
            other => panic!("unexpected {other:?}"),
        }
        headers.insert("grpc-status", HeaderValue::from_static("x"));
        assert!(matches!(
            check_status(&headers),
            Err(SendError::Protocol(_))
        ));
    }

    #[test]
    fn response_messages() {
        assert_eq!(response_message(&[], "").unwrap(), Delivered::default());
        assert_eq!(
            response_message(&[0, 0, 0, 0, 0], "").unwrap(),
            Delivered::default()
        );
        assert!(response_message(&[0, 0, 0, 0, 9, 1], "").is_err());
        assert!(response_message(&[0, 0], "").is_err());
        assert!(response_message(&[1, 0, 0, 0, 1, 1], "br").is_err());
    }
}
