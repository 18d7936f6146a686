//! The OTLP/HTTP receiver: HTTP/1.1 on the shard's io_uring sockets, parsed with `httparse`.
//!
//! Each connection is one task on the shard that accepted it. Requests are read one at a time
//! (pipelined bytes wait in the buffer): the header block within
//! [`HEAD_BYTES_MAX`](super::http1::HEAD_BYTES_MAX) and `read_header_timeout`, the body by
//! `Content-Length` or chunked coding within the size limit — before decompression, and again
//! after it, so a gzip bomb is refused at the limit — and the next read only after the request
//! has been handed over, which is how a busy shard slows its clients. Framing is decided in
//! [`super::http1`], which does no I/O; this module reads the socket and answers.
//!
//! Memory: a connection between requests holds no read buffer (it waits for the next request's
//! first byte in a one-byte slot), a head is read 4 KiB at a time, and a body is read into a
//! buffer of its announced, checked size. Timeouts ([`HttpTimeouts`]): `idle_timeout` between
//! requests, `read_header_timeout` for a whole head (408), `read_timeout` for a whole body
//! (408), `write_timeout` for a whole response; a slow client cannot hold a connection longer
//! than their sum per request. Paths are `/v1/traces`, `/v1/metrics` and `/v1/logs`
//! (configurable); bodies are `application/x-protobuf` or `application/json`, plain, gzip, zstd
//! or snappy. Errors answer with the OTLP status codes and a `google.rpc.Status` body in the
//! request's encoding.
//!
//! With an authenticator, a request's credentials are checked as soon as its head is read; a
//! refused request's body is still read (within the same limits) and discarded, so that the
//! 401 arrives on a connection that stays usable rather than one reset under the client's
//! unsent bytes. A refused `Expect: 100-continue` request is answered 401 at once instead.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use super::accept::{serve_connections, Connections};
use super::body::{self, BodyError, Coding};
use super::cors::CorsPolicy;
use super::http1::{header_value, parse_head, BodyFraming, ChunkedDecoder, FramingError, Head};
use super::status::{IngestError, RETRY_AFTER};
use super::tls_accept::{Refused, TlsAcceptor};
use super::{Ingest, Limits, Outcome};
use crate::auth::Gatekeeper;
use crate::metadata::{Capture, Metadata};
use crate::telemetry::ReceiverMetrics;
use crate::tls::{Conn, ServerTls};
use tailgate_shards::sync::Stop;
use tailgate_wire::grpc::encode_status;
use tailgate_wire::{encode::export_response, json, Signal};

/// `read_header_timeout` when not given: a whole request head within it.
pub const READ_HEADER_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// `read_timeout` when not given: a whole body within it.
pub const READ_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);
/// `write_timeout` when not given: a whole response within it.
pub const WRITE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// `idle_timeout` when not given: a kept-alive connection idle between requests.
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(120);

/// The OTLP/HTTP receiver's timeouts, with the Collector's (confighttp) key names. Go's server
/// counts `read_timeout` from the start of the request; here the head has
/// `read_header_timeout` of its own and `read_timeout` bounds the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// `read_header_timeout`: a request head must arrive whole within it (default 10 s).
    pub read_header: Duration,
    /// `read_timeout`: a request body must arrive whole within it (default 60 s).
    pub read: Duration,
    /// `write_timeout`: a response must be written within it (default 30 s).
    pub write: Duration,
    /// `idle_timeout`: a kept-alive connection may wait this long for its next request
    /// (default 120 s).
    pub idle: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            read_header: READ_HEADER_TIMEOUT_DEFAULT,
            read: READ_TIMEOUT_DEFAULT,
            write: WRITE_TIMEOUT_DEFAULT,
            idle: IDLE_TIMEOUT_DEFAULT,
        }
    }
}

/// The first read window for a request head: OTLP heads are a few hundred bytes, and a slow
/// one should hold little; the window doubles while a longer head arrives.
const HEAD_READ_BYTES: usize = 512;
/// Bytes asked of the socket per read of a chunked body.
const BODY_READ_BYTES: usize = 64 << 10;
/// A buffer larger than this is given back after a request rather than kept for the next.
const KEPT_BUFFER_BYTES_MAX: usize = HEAD_READ_BYTES;

/// Settings of one shard's HTTP receiver.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub limits: Limits,
    pub timeouts: HttpTimeouts,
    pub traces_path: String,
    pub metrics_path: String,
    pub logs_path: String,
    /// The `Content-Encoding`s read, by name (`""`: none, which `identity` also names);
    /// `None`: all.
    pub compression_algorithms: Option<Vec<String>>,
    /// `cors`: answers for browsers on pages of other origins; `None`: off.
    pub cors: Option<Arc<CorsPolicy>>,
    /// Whether a connection stays open after a response (`keepalive.enabled`,
    /// `keep_alives_enabled`); off, every response says `Connection: close` and ends it.
    pub keep_alives: bool,
    /// `response_headers`, as header lines each ending in CRLF: written on every response.
    pub response_headers: Arc<str>,
    /// `include_metadata`: the request headers kept as client metadata; `None`: none.
    pub capture: Option<Arc<Capture>>,
}

impl HttpSettings {
    /// Whether `compression_algorithms` lets a body in `content_encoding` through.
    fn reads(&self, content_encoding: &str) -> bool {
        let Some(names) = &self.compression_algorithms else {
            return true;
        };
        let name = content_encoding.trim();
        let name = if name.eq_ignore_ascii_case("identity") {
            ""
        } else {
            name
        };
        names
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }
}

/// One shard's HTTP receiver.
pub struct HttpReceiver {
    ingest: Rc<Ingest>,
    metrics: ReceiverMetrics,
    /// Checks every request's credentials, when the receiver has an authenticator.
    gatekeeper: Option<Gatekeeper>,
    settings: HttpSettings,
    stop: Rc<Stop>,
    connections: Rc<Connections>,
    /// TLS, on a TLS listener.
    tls: Option<TlsAcceptor>,
}

/// How a body is encoded, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// A response to write.
struct Reply {
    status: u16,
    encoding: Encoding,
    body: Vec<u8>,
    retry_after: Option<Duration>,
    allow_post: bool,
    /// `WWW-Authenticate`, on a 401.
    challenge: Option<Rc<str>>,
    /// CORS header lines, each ending in CRLF, for a browser's request.
    cors: Option<String>,
}

/// Why a connection ends.
enum Close {
    /// The peer closed or broke the connection: nothing more to say.
    Quietly,
    /// The connection idled past `idle_timeout`: closed without a word, counted.
    Idle,
    /// Answer this, then close.
    After(Reply),
}

/// The answer to plaintext sent to a TLS port.
const PLAINTEXT_ON_TLS_PORT: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
    Content-Length: 45\r\nConnection: close\r\n\r\nThis port speaks TLS: send OTLP to https://\r\n\r\n";

/// How long, and how much, a plaintext request on a TLS port is read before the connection
/// closes.
const PLAINTEXT_DRAIN_TIME: Duration = Duration::from_millis(200);
const PLAINTEXT_DRAIN_BYTES: usize = 64 << 10;

impl HttpReceiver {
    /// A receiver; with `tls`, every connection is a TLS session (its handshake counted in the
    /// listener's TLS metrics).
    pub fn new(
        ingest: Rc<Ingest>,
        metrics: ReceiverMetrics,
        gatekeeper: Option<Gatekeeper>,
        settings: HttpSettings,
        stop: Rc<Stop>,
        tls: Option<Arc<ServerTls>>,
    ) -> Rc<Self> {
        let connections =
            Connections::new(settings.limits.connections_max, metrics.connections.clone());
        let tls = tls.map(|tls| TlsAcceptor::new(tls, &metrics.connections));
        Rc::new(HttpReceiver {
            ingest,
            metrics,
            gatekeeper,
            settings,
            stop,
            connections,
            tls,
        })
    }

    /// Accepts connections until the stop signal; open connections finish their request.
    pub async fn serve(self: Rc<Self>, listener: TcpListener) {
        serve_connections(&listener, &self.stop, &self.connections, |stream| {
            let receiver = self.clone();
            async move { receiver.serve_connection(stream).await }
        })
        .await;
    }

    /// Number of connections this shard has open. Once the stop signal is given, idle ones close
    /// at once and the others after answering the request they are in, so shutdown waits for
    /// this to reach zero before it closes the mesh: a request read whole is always answered.
    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }

    async fn serve_connection(&self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        // The TLS handshake's state is boxed and gone once it is done: an idle connection's
        // task holds only the session.
        let mut stream = match &self.tls {
            None => Conn::Plain(stream),
            Some(tls) => match Box::pin(start_tls(tls, stream, &self.stop)).await {
                Some(session) => session,
                None => return,
            },
        };
        // Empty until a request's first byte arrives: an idle connection holds no buffer.
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            // Between requests the task holds only this wait; the state of serving a request
            // is boxed, and allocated once a request has begun.
            let served = match wait_for_request(
                &mut stream,
                &mut buffer,
                &self.stop,
                &self.settings.timeouts,
            )
            .await
            {
                Ok(()) => Box::pin(self.serve_request(&mut stream, &mut buffer)).await,
                Err(close) => Err(close),
            };
            match served {
                Ok(keep_alive) if keep_alive && !self.stop.is_triggered() => {
                    if buffer.is_empty() || buffer.capacity() > KEPT_BUFFER_BYTES_MAX {
                        buffer.shrink_to(0);
                    }
                }
                Ok(_) | Err(Close::Quietly) => return,
                Err(Close::Idle) => {
                    self.connections.timed_out();
                    return;
                }
                Err(Close::After(reply)) => {
                    if reply.status == 408 {
                        self.connections.timed_out();
                    }
                    let _ = self.write_reply(&mut stream, &reply, false).await;
                    return;
                }
            }
        }
    }

    /// Reads, serves and answers one request; returns whether the connection stays open.
    async fn serve_request(&self, stream: &mut Conn, buffer: &mut Vec<u8>) -> Result<bool, Close> {
        let timeouts = &self.settings.timeouts;
        let (head, head_len) = read_head(stream, buffer, timeouts).await?;
        if let (Some(policy), "OPTIONS", Some(method)) = (
            &self.settings.cors,
            head.method.as_str(),
            head.access_control_request_method.as_deref(),
        ) {
            // A browser's preflight: answered before authentication, which it carries none for.
            buffer.drain(..head_len);
            let reply = Reply {
                status: 204,
                encoding: Encoding::Protobuf,
                body: Vec::new(),
                retry_after: None,
                allow_post: false,
                challenge: None,
                cors: Some(policy.preflight_headers(
                    head.origin.as_deref(),
                    method,
                    head.access_control_request_headers.as_deref(),
                )),
            };
            // A preflight has no body; one that says otherwise is not read, and ends the
            // connection.
            let keep_alive = head.keep_alive
                && self.settings.keep_alives
                && matches!(head.body, BodyFraming::Length(0));
            self.write_reply(stream, &reply, keep_alive)
                .await
                .map_err(|_| Close::Quietly)?;
            return Ok(keep_alive);
        }
        let cors = self
            .settings
            .cors
            .as_ref()
            .and_then(|policy| policy.answer_headers(head.origin.as_deref()));
        let with_cors = |reply: Reply| Reply {
            cors: cors.clone(),
            ..reply
        };
        // Boxed: the check's state (a bcrypt hand-off among it) is allocated while it runs, not
        // carried by every connection that is reading a head.
        let auth = Box::pin(self.authenticate(&buffer[..head_len])).await;
        let metadata = match &self.settings.capture {
            Some(capture) => super::http1::metadata_of(capture, &buffer[..head_len]),
            None => Metadata::none(),
        };
        buffer.drain(..head_len);
        #[cfg(debug_assertions)]
        if crate::lifecycle::fault_injected(&head.path) {
            panic!("fault injection: a request for {}", head.path);
        }

        let (signal, encoding, coding) = self
            .classify(&head)
            .map_err(|reply| Close::After(with_cors(reply)))?;
        if let (Err(err), true) = (&auth, head.expect_continue) {
            return Err(Close::After(with_cors(error_reply(err, encoding))));
        }
        if head.expect_continue {
            stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|_| Close::Quietly)?;
        }
        let limit = self.settings.limits.max_message_bytes;
        let raw = read_body_within(stream, buffer, head.body, limit, timeouts.read)
            .await
            .map_err(|err| Close::After(with_cors(framing_reply(&err, encoding))))?;

        let result = match auth {
            // Boxed, as the credential check is: a request still reading its head does not carry
            // room for the hand-off's state.
            Ok(()) => Box::pin(self.export(signal, encoding, coding, raw, metadata)).await,
            Err(err) => Err(err),
        };
        let reply = match result {
            Ok(outcome) => Reply {
                status: 200,
                encoding,
                body: success_body(signal, encoding, &outcome),
                retry_after: None,
                allow_post: false,
                challenge: None,
                cors: None,
            },
            Err(err) => error_reply(&err, encoding),
        };
        let reply = with_cors(reply);
        let keep_alive = head.keep_alive && self.settings.keep_alives;
        self.write_reply(stream, &reply, keep_alive)
            .await
            .map_err(|_| Close::Quietly)?;
        Ok(keep_alive)
    }

    /// What a request head asks for: its signal (by path), the body's encoding (by content
    /// type) and compression; or the refusal to answer with (404, 405, 415).
    fn classify(&self, head: &Head) -> Result<(Signal, Encoding, Coding), Reply> {
        let signal = if head.path == self.settings.traces_path {
            Signal::Traces
        } else if head.path == self.settings.metrics_path {
            Signal::Metrics
        } else if head.path == self.settings.logs_path {
            Signal::Logs
        } else {
            let err = IngestError::UnknownMethod(head.path.clone());
            return Err(error_reply(&err, Encoding::Protobuf));
        };
        if head.method != "POST" {
            let unsupported = IngestError::Unsupported(format!("method {}", head.method));
            return Err(Reply {
                status: 405,
                allow_post: true,
                ..error_reply(&unsupported, Encoding::Protobuf)
            });
        }
        let encoding = match head.content_type.as_deref().map(media_type) {
            Some("application/x-protobuf") => Encoding::Protobuf,
            Some("application/json") => Encoding::Json,
            other => {
                let err =
                    IngestError::Unsupported(format!("content type {:?}", other.unwrap_or("")));
                return Err(error_reply(&err, Encoding::Protobuf));
            }
        };
        let content_encoding = head.content_encoding.as_deref().unwrap_or("");
        let Some(coding) = Coding::parse(content_encoding) else {
            let err = IngestError::Unsupported(format!("content encoding {content_encoding:?}"));
            return Err(error_reply(&err, encoding));
        };
        if !self.settings.reads(content_encoding) {
            let err = IngestError::Unsupported(format!(
                "content encoding {content_encoding:?}: not in this receiver's \
                 compression_algorithms"
            ));
            return Err(error_reply(&err, encoding));
        }
        Ok((signal, encoding, coding))
    }

    /// Checks the credentials in a request head, when the receiver has an authenticator.
    async fn authenticate(&self, head: &[u8]) -> Result<(), IngestError> {
        let Some(gatekeeper) = &self.gatekeeper else {
            return Ok(());
        };
        gatekeeper
            .check(header_value(head, gatekeeper.header()))
            .await
            .map_err(|refusal| IngestError::Unauthenticated {
                refusal,
                challenge: gatekeeper.challenge(),
            })
    }

    /// Writes a response within `write_timeout`.
    async fn write_reply(
        &self,
        stream: &mut Conn,
        reply: &Reply,
        keep_alive: bool,
    ) -> std::io::Result<()> {
        glommio::timer::timeout(self.settings.timeouts.write, async {
            Ok(write_reply(stream, reply, &self.settings.response_headers, keep_alive).await)
        })
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }

    async fn export(
        &self,
        signal: Signal,
        encoding: Encoding,
        coding: Coding,
        raw: Vec<u8>,
        metadata: Metadata,
    ) -> Result<Outcome, IngestError> {
        if self.stop.is_triggered() {
            return Err(IngestError::Unavailable {
                reason: "the gateway is shutting down",
                retry_after: RETRY_AFTER,
            });
        }
        let limit = self.settings.limits.max_message_bytes;
        let decoded = body::decode(coding, raw, limit).map_err(|err| match err {
            BodyError::TooLarge { limit } => IngestError::TooLarge { limit },
            BodyError::Corrupt(err) => IngestError::Corrupt(err),
        })?;
        let protobuf = match encoding {
            Encoding::Protobuf => decoded,
            Encoding::Json => json::to_protobuf(signal, &decoded)
                .map_err(|err| IngestError::Json(err.to_string()))?,
        };
        self.ingest
            .export(
                signal,
                bytes::Bytes::from(protobuf),
                super::Origin::Client,
                metadata,
                &self.metrics,
            )
            .await
    }
}

/// The server side of a TLS handshake on `stream`; `None` when it failed (counted) or the
/// client sent plaintext, which is answered in plaintext and closed.
async fn start_tls(tls: &TlsAcceptor, stream: TcpStream, stop: &Stop) -> Option<Conn> {
    match tls.accept(stream, Instant::now(), stop).await {
        Ok(session) => Some(session),
        Err(Refused::NotTls(mut plain)) => {
            // Plaintext HTTP (or garbage) on a TLS port: say so, in plaintext, as Go's servers
            // do, and close. What the client sent is read first (a little, for a moment):
            // closing on unread bytes would reset the connection, and the client could lose
            // the answer.
            let _ = plain.write_all(PLAINTEXT_ON_TLS_PORT).await;
            let _ = glommio::timer::timeout(PLAINTEXT_DRAIN_TIME, async {
                let mut scratch = [0u8; 4096];
                let mut drained = 0usize;
                while drained < PLAINTEXT_DRAIN_BYTES {
                    match plain.read(&mut scratch).await {
                        Ok(n) if n > 0 => drained = drained.saturating_add(n),
                        _ => break,
                    }
                }
                Ok(())
            })
            .await;
            let _ = plain.close().await;
            None
        }
        Err(Refused::Failed | Refused::Closed) => None,
    }
}

/// The media type of a `Content-Type` value, without parameters.
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

/// Waits for the next request on a connection whose buffer is empty: for its first byte, for up
/// to `idle_timeout` (or until the stop signal), holding no buffer at all — the byte is read into
/// a one-byte slot — so an idle connection costs its task and its socket, not a read buffer.
/// Pipelined bytes already in `buffer` are a request begun.
async fn wait_for_request(
    stream: &mut Conn,
    buffer: &mut Vec<u8>,
    stop: &Stop,
    timeouts: &HttpTimeouts,
) -> Result<(), Close> {
    if buffer.is_empty() {
        let mut first = [0u8; 1];
        let read = future::or(
            async {
                Some(
                    glommio::timer::timeout(timeouts.idle, async {
                        Ok(stream.read(&mut first).await)
                    })
                    .await,
                )
            },
            async {
                stop.wait().await;
                None
            },
        )
        .await;
        match read {
            Some(Ok(Ok(1))) => {
                buffer.reserve(HEAD_READ_BYTES);
                buffer.push(first[0]);
            }
            Some(Err(_)) => return Err(Close::Idle),
            _ => return Err(Close::Quietly),
        }
    }
    Ok(())
}

/// Reads until `buffer` (which holds the request's first bytes, [`wait_for_request`]) holds a
/// whole request head, and reads it: the whole head must come within `read_header_timeout`.
async fn read_head(
    stream: &mut Conn,
    buffer: &mut Vec<u8>,
    timeouts: &HttpTimeouts,
) -> Result<(Head, usize), Close> {
    let deadline = glommio::timer::timeout(timeouts.read_header, async {
        loop {
            match parse_head(buffer) {
                Ok(Some(head)) => return Ok(Ok(head)),
                Ok(None) => {}
                Err(err) => return Ok(Err(Close::After(framing_reply(&err, Encoding::Protobuf)))),
            }
            // Heads are small: start with a small window and double it while a head grows.
            let window = buffer.len().max(HEAD_READ_BYTES);
            match read_more(stream, buffer, window).await {
                Ok(n) if n > 0 => {}
                _ => return Ok(Err(Close::Quietly)),
            }
        }
    });
    match deadline.await {
        Ok(result) => result,
        Err(_) => {
            let reply = error_reply(
                &bad_request("request head not received in time"),
                Encoding::Protobuf,
            );
            Err(Close::After(Reply {
                status: 408,
                ..reply
            }))
        }
    }
}

/// The answer to a request whose framing is refused: 431 for an oversized head, 413 for an
/// oversized body, 501 for a transfer coding tailgate does not implement, else 400.
fn framing_reply(err: &FramingError, encoding: Encoding) -> Reply {
    let ingest_error = match err {
        FramingError::BodyTooLarge { limit } => IngestError::TooLarge { limit: *limit },
        other => bad_request(&other.to_string()),
    };
    let reply = error_reply(&ingest_error, encoding);
    let status = match err {
        FramingError::HeadTooLarge => 431,
        FramingError::TimedOut => 408,
        FramingError::UnsupportedTransferCoding(_) => 501,
        _ => reply.status,
    };
    Reply { status, ..reply }
}

/// Reads whatever the socket has into the buffer's spare capacity, or, when there is none, into
/// `window` bytes grown onto it. Only that window is zeroed, so a slow head costs a few KiB, not
/// a large read buffer.
async fn read_more(
    stream: &mut Conn,
    buffer: &mut Vec<u8>,
    window: usize,
) -> std::io::Result<usize> {
    let start = buffer.len();
    let spare = buffer.capacity().saturating_sub(start);
    buffer.resize(
        start.saturating_add(if spare > 0 { spare } else { window }),
        0,
    );
    let result = stream.read(&mut buffer[start..]).await;
    buffer.truncate(start.saturating_add(*result.as_ref().unwrap_or(&0)));
    result
}

/// Reads the body the head announces, at most `limit` bytes of it; leaves what follows (a
/// pipelined request) in `buffer`.
async fn read_body(
    stream: &mut Conn,
    buffer: &mut Vec<u8>,
    framing: BodyFraming,
    limit: usize,
) -> Result<Vec<u8>, FramingError> {
    let len = match framing {
        BodyFraming::Chunked => return read_chunked(stream, buffer, limit).await,
        BodyFraming::Length(len) if len > limit => {
            return Err(FramingError::BodyTooLarge { limit })
        }
        BodyFraming::Length(len) => len,
    };
    if buffer.len() >= len {
        let rest = buffer.split_off(len);
        return Ok(std::mem::replace(buffer, rest));
    }
    // The body is read straight into a buffer of its announced (and checked) size.
    let mut body = std::mem::take(buffer);
    let mut filled = body.len();
    body.resize(len, 0);
    while filled < len {
        match stream.read(&mut body[filled..]).await {
            Ok(n) if n > 0 => filled = filled.saturating_add(n),
            _ => return Err(FramingError::Truncated),
        }
    }
    Ok(body)
}

/// [`read_body`] within `timeout` for the whole body.
async fn read_body_within(
    stream: &mut Conn,
    buffer: &mut Vec<u8>,
    framing: BodyFraming,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, FramingError> {
    glommio::timer::timeout(timeout, async {
        Ok(read_body(stream, buffer, framing, limit).await)
    })
    .await
    .unwrap_or(Err(FramingError::TimedOut))
}

async fn read_chunked(
    stream: &mut Conn,
    buffer: &mut Vec<u8>,
    limit: usize,
) -> Result<Vec<u8>, FramingError> {
    let mut decoder = ChunkedDecoder::new(limit);
    let mut body = Vec::new();
    loop {
        let decoded = decoder.decode(buffer, &mut body)?;
        buffer.drain(..decoded.consumed);
        if decoded.done {
            return Ok(body);
        }
        match read_more(stream, buffer, BODY_READ_BYTES).await {
            Ok(n) if n > 0 => {}
            _ => return Err(FramingError::Truncated),
        }
    }
}

fn bad_request(message: &str) -> IngestError {
    IngestError::Corrupt(message.to_string())
}

fn error_reply(err: &IngestError, encoding: Encoding) -> Reply {
    let message = err.to_string();
    let body = match encoding {
        Encoding::Protobuf => encode_status(err.grpc_code(), &message, err.retry_after()),
        Encoding::Json => serde_json::to_vec(&serde_json::json!({
            "code": err.grpc_code().value(),
            "message": message,
        }))
        .unwrap_or_default(),
    };
    Reply {
        status: err.http_status(),
        encoding,
        body,
        retry_after: err.retry_after(),
        allow_post: false,
        challenge: err.challenge(),
        cors: None,
    }
}

fn success_body(signal: Signal, encoding: Encoding, outcome: &Outcome) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => export_response(outcome.rejected, &outcome.message),
        Encoding::Json if outcome.rejected == 0 => b"{}".to_vec(),
        Encoding::Json => {
            let rejected_key = match signal {
                Signal::Traces => "rejectedSpans",
                Signal::Metrics => "rejectedDataPoints",
                Signal::Logs => "rejectedLogRecords",
            };
            serde_json::to_vec(&serde_json::json!({
                "partialSuccess": {
                    rejected_key: outcome.rejected.to_string(),
                    "errorMessage": outcome.message,
                }
            }))
            .unwrap_or_default()
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

async fn write_reply(
    stream: &mut Conn,
    reply: &Reply,
    extra_headers: &str,
    keep_alive: bool,
) -> std::io::Result<()> {
    let content_type = match reply.encoding {
        Encoding::Protobuf => "application/x-protobuf",
        Encoding::Json => "application/json",
    };
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    // 204 (a CORS preflight's answer) has neither a body nor a length (RFC 9110, 8.6).
    if reply.status != 204 {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            reply.body.len()
        ));
    }
    if let Some(delay) = reply.retry_after {
        head.push_str(&format!("Retry-After: {}\r\n", delay.as_secs().max(1)));
    }
    if reply.allow_post {
        head.push_str("Allow: POST\r\n");
    }
    if let Some(challenge) = &reply.challenge {
        head.push_str(&format!("WWW-Authenticate: {challenge}\r\n"));
    }
    if let Some(cors) = &reply.cors {
        head.push_str(cors);
    }
    head.push_str(extra_headers);
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut out = head.into_bytes();
    out.extend_from_slice(&reply.body);
    stream.write_all(&out).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_drop_their_parameters() {
        assert_eq!(
            media_type("application/json; charset=utf-8"),
            "application/json"
        );
        assert_eq!(
            media_type(" application/x-protobuf"),
            "application/x-protobuf"
        );
    }
}
