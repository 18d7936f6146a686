//! The `otlphttp` exporter's transport: OTLP/HTTP over HTTP/1.1.
//!
//! # Connection model
//!
//! HTTP/1.1 carries one request at a time per connection, so each attempt takes a connection
//! of its own: an idle one from the exporter's pool when one to the same upstream is there,
//! otherwise a new one. After a complete response that allows it (no `Connection: close`, a
//! delimited body) the connection goes back to the pool, which keeps at most
//! `num_consumers` of them (the most that can be busy at once) — fewer with confighttp's
//! `max_idle_conns` or `max_idle_conns_per_host` — for at most `idle_conn_timeout` unused (a
//! sweeper task closes what outlived it); anything else closes it. With keep-alives off
//! (`keepalive.enabled: false`, `disable_keep_alives`) every request says `Connection: close`.
//!
//! An upstream may close an idle connection just as it is reused. When an attempt on a reused
//! connection fails before a single response byte arrives, it is made again at once on a new
//! connection, rather than waiting out a backoff for what was never a failure of the upstream.
//!
//! # The exchange
//!
//! `POST <path>` with `Content-Type: application/x-protobuf` (or `application/json` with
//! `encoding: json`, converted by `tailgate_wire::json`), `Content-Encoding` when compressing,
//! the user's headers and the authenticator's header (taken per request, so a rotated token is
//! used from the next export on); the body is built once per batch and reused by every retry.
//! Responses are parsed with `httparse`: the head up to [`HEAD_BYTES_MAX`], then a body delimited by
//! `Content-Length`, by chunked coding, or by the end of the connection, up to
//! [`RESPONSE_BYTES_MAX`].

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::tls;
use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use httparse::Status;

use super::batch::Batch;
use super::compression::compress;
use super::connect::connect;
use super::error::SendError;
use super::retry::parse_retry_after;
use super::settings::{
    http_target, parse_headers, Compression, Encoding, OtlpHttpSettings, Target,
};
use super::status::{delivered_from_json, delivered_from_proto, http_error_message, Delivered};
use super::{SettingsError, RESPONSE_BYTES_MAX};
use crate::auth::{AuthHeader, ClientAuth, HeaderSetter};
use crate::ingest::body::{decompress, Coding};
use tailgate_wire::{json, Signal};

/// Bound on a response's status line and headers.
const HEAD_BYTES_MAX: usize = 64 * 1024;
/// Bound on the number of response header fields.
const HEADERS_MAX: usize = 64;
/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Bodies up to this size are copied behind the head and written with it in one send.
const COALESCE_BODY_BYTES: usize = 16 * 1024;
/// Bound on the 1xx interim responses skipped before the final one.
const INTERIM_RESPONSES_MAX: usize = 8;

/// The exporter's HTTP/1.1 client.
pub(crate) struct HttpClient {
    /// Per signal: where it is posted; `None` for a signal the exporter has no URL for.
    targets: [Option<Target>; 3],
    /// Per signal: the request head up to (not including) `Content-Length`.
    heads: [String; 3],
    /// The authenticator's header, when the exporter has one.
    auth: Option<AuthHeader>,
    /// The `headers_setter`'s headers, per batch, when the exporter has one.
    setter: Option<std::sync::Arc<HeaderSetter>>,
    compression: Compression,
    /// `compression_params.level`.
    compression_level: Option<i32>,
    encoding: Encoding,
    idle: Rc<Pool>,
}

/// Idle connections, newest last.
struct Pool {
    conns: RefCell<Vec<Idle>>,
    /// The most kept in all, and per authority.
    max: usize,
    max_per_host: usize,
    /// How long one may stay unused; `None`: until the upstream closes it.
    timeout: Option<Duration>,
    /// Whether keep-alives are on at all.
    keep_alives: bool,
    /// The sweeper task is running.
    sweeping: Cell<bool>,
}

struct Idle {
    authority: String,
    conn: Conn,
    since: Instant,
}

impl Pool {
    /// The newest idle connection to `authority` not past the timeout; expired ones are closed.
    fn take(&self, authority: &str) -> Option<Conn> {
        let mut conns = self.conns.borrow_mut();
        if let Some(timeout) = self.timeout {
            conns.retain(|idle| idle.since.elapsed() < timeout);
        }
        let at = conns.iter().rposition(|idle| idle.authority == authority)?;
        Some(conns.remove(at).conn)
    }

    /// Keeps `conn` for the next request to `authority`, if there is room; starts the sweeper.
    fn put(self: &Rc<Self>, authority: &str, conn: Conn) {
        if !self.keep_alives {
            return;
        }
        {
            let mut conns = self.conns.borrow_mut();
            let to_host = conns.iter().filter(|i| i.authority == authority).count();
            if conns.len() >= self.max || to_host >= self.max_per_host {
                return;
            }
            conns.push(Idle {
                authority: authority.to_string(),
                conn,
                since: Instant::now(),
            });
        }
        if let (Some(timeout), false) = (self.timeout, self.sweeping.get()) {
            self.sweeping.set(true);
            glommio::spawn_local(sweep(Rc::downgrade(self), timeout)).detach();
        }
    }
}

/// Closes idle connections as they pass `timeout`; ends when the pool is empty (the next
/// connection kept starts it again) or gone.
async fn sweep(pool: Weak<Pool>, timeout: Duration) {
    loop {
        let next = {
            let Some(pool) = pool.upgrade() else { return };
            let mut conns = pool.conns.borrow_mut();
            conns.retain(|idle| idle.since.elapsed() < timeout);
            match conns.iter().map(|idle| idle.since).min() {
                Some(oldest) => timeout.saturating_sub(oldest.elapsed()),
                None => {
                    pool.sweeping.set(false);
                    return;
                }
            }
        };
        glommio::timer::sleep(next.max(Duration::from_millis(10))).await;
    }
}

/// A body ready to send, kept across retries.
pub(crate) struct Prepared {
    body: Bytes,
    /// The `headers_setter`'s headers for this batch, as header lines.
    headers: Vec<u8>,
}

struct Conn {
    stream: tls::Conn,
    /// Bytes read from the socket and not yet consumed.
    buf: Vec<u8>,
}

/// What came back.
struct Response {
    status: u16,
    keep_alive: bool,
    retry_after: Option<String>,
    json: bool,
    encoding: Option<String>,
    body: Vec<u8>,
}

/// A failed exchange, and whether anything of a response had arrived when it failed.
struct Failure {
    error: SendError,
    before_response: bool,
}

impl HttpClient {
    /// Shard `n`'s first connections start at each endpoint's `n`th address.
    pub fn spread_from(&self, shard: usize) {
        for target in self.targets.iter().flatten() {
            target.resolver.start_at(shard);
        }
    }

    pub fn new(settings: &OtlpHttpSettings, max_idle: usize) -> Result<Self, SettingsError> {
        let mut targets = [
            http_target(settings, Signal::Traces)?,
            http_target(settings, Signal::Metrics)?,
            http_target(settings, Signal::Logs)?,
        ];
        for target in targets.iter_mut().flatten() {
            // `proxy_url` serves every target; the environment's proxy depends on the scheme
            // and on NO_PROXY, as Go's ProxyFromEnvironment decides.
            let proxy = match &settings.proxy {
                Some(proxy) => Some(proxy),
                None => super::proxy::env()
                    .for_target(
                        target.tls.is_some(),
                        target.resolver.host(),
                        target.resolver.port(),
                    )
                    .map_err(SettingsError::Proxy)?,
            };
            target.via(proxy);
        }
        let mut fixed = String::new();
        let content_type = match settings.encoding {
            Encoding::Proto => "application/x-protobuf",
            Encoding::Json => "application/json",
        };
        let _ = write!(fixed, "Content-Type: {content_type}\r\n");
        if let Some(token) = settings.compression.token() {
            let _ = write!(fixed, "Content-Encoding: {token}\r\n");
        }
        let _ = write!(
            fixed,
            "User-Agent: tailgate/{}\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if !settings.pool.keep_alives {
            fixed.push_str("Connection: close\r\n");
        }
        for (name, value) in parse_headers(&settings.headers)? {
            // Checked by `http`'s types: no CR or LF can smuggle a header in.
            let value = value.to_str().map_err(|_| SettingsError::Header {
                name: name.to_string(),
            })?;
            let _ = write!(fixed, "{name}: {value}\r\n");
        }
        let heads = targets.clone().map(|t| {
            t.map_or_else(String::new, |t| {
                format!(
                    "POST {} HTTP/1.1\r\nHost: {}\r\n{fixed}",
                    t.path, t.authority
                )
            })
        });
        Ok(HttpClient {
            targets,
            heads,
            auth: settings.auth.as_ref().map(ClientAuth::for_shard),
            setter: settings.setter.clone(),
            compression: settings.compression,
            compression_level: settings.compression_level,
            encoding: settings.encoding,
            idle: Rc::new(Pool {
                conns: RefCell::new(Vec::new()),
                max: settings
                    .pool
                    .max_idle
                    .map_or(max_idle, |max| max.min(max_idle))
                    .max(1),
                max_per_host: settings.pool.max_idle_per_host.unwrap_or(usize::MAX).max(1),
                timeout: settings.pool.idle_timeout,
                keep_alives: settings.pool.keep_alives,
                sweeping: Cell::new(false),
            }),
        })
    }

    /// Encodes (JSON) and compresses a batch once for all its attempts.
    pub fn prepare(&self, batch: &Batch) -> Result<Prepared, SendError> {
        let encoded = match self.encoding {
            Encoding::Proto => batch.bytes.clone(),
            Encoding::Json => Bytes::from(json::from_protobuf(batch.signal, &batch.bytes)?),
        };
        let body = match self.compression {
            Compression::None => encoded,
            kind => Bytes::from(
                compress(kind, self.compression_level, &encoded)
                    .map_err(|e| SendError::Encode(e.to_string()))?,
            ),
        };
        let mut headers = Vec::new();
        if let Some(setter) = &self.setter {
            for (name, value) in setter
                .headers(&batch.metadata)
                .map_err(|e| SendError::Encode(e.to_string()))?
            {
                // Checked by `http`'s types: no CR or LF can smuggle a header in.
                headers.extend_from_slice(name.as_str().as_bytes());
                headers.extend_from_slice(b": ");
                headers.extend_from_slice(value.as_bytes());
                headers.extend_from_slice(b"\r\n");
            }
        }
        Ok(Prepared { body, headers })
    }

    /// One export request.
    pub async fn attempt(
        &self,
        batch: &Batch,
        prepared: &Prepared,
    ) -> Result<Delivered, SendError> {
        let index = batch.signal.index();
        let Some(target) = &self.targets[index] else {
            // The configuration check gives a URL to every signal a pipeline sends here.
            return Err(SendError::Protocol(format!(
                "no URL for {}: give endpoint or {}_endpoint",
                batch.signal.as_str(),
                batch.signal.as_str()
            )));
        };
        let mut reused = self.idle.take(&target.authority);
        loop {
            let was_reused = reused.is_some();
            let mut conn = match reused.take() {
                Some(conn) => conn,
                None => Conn {
                    stream: connect(target).await?,
                    buf: Vec::new(),
                },
            };
            let (head, auth) = (&self.heads[index], self.auth.as_ref());
            match exchange(&mut conn, head, auth, prepared).await {
                Ok(response) => {
                    if response.keep_alive {
                        self.idle.put(&target.authority, conn);
                    }
                    return self.outcome(response);
                }
                Err(failure) if was_reused && failure.before_response => {
                    tracing::debug!(
                        upstream = %target.authority,
                        error = %failure.error,
                        "idle OTLP/HTTP connection was closed; retrying on a new one"
                    );
                    continue;
                }
                Err(failure) => return Err(failure.error),
            }
        }
    }

    /// Closes the idle connections (at shutdown).
    pub fn close_idle(&self) {
        self.idle.conns.borrow_mut().clear();
    }

    fn outcome(&self, response: Response) -> Result<Delivered, SendError> {
        let body = match response.encoding.as_deref().map(Coding::parse) {
            None => response.body,
            Some(Some(coding)) => decompress(coding, &response.body, RESPONSE_BYTES_MAX)
                .map_err(|e| SendError::Protocol(format!("cannot decompress the response: {e}")))?,
            Some(None) => {
                return Err(SendError::Protocol(
                    "response with an unknown Content-Encoding".into(),
                ))
            }
        };
        if (200..300).contains(&response.status) {
            return if response.json {
                delivered_from_json(&body)
                    .map_err(|e| SendError::Protocol(format!("unreadable export response: {e}")))
            } else {
                delivered_from_proto(&body)
                    .map_err(|e| SendError::Protocol(format!("unreadable export response: {e}")))
            };
        }
        let retry_after = response
            .retry_after
            .and_then(|v| parse_retry_after(&v, SystemTime::now()));
        Err(SendError::Http {
            status: response.status,
            message: http_error_message(&body, response.json),
            retry_after,
        })
    }
}

/// Writes one request (its fixed head, then the authenticator's header when there is one, and
/// the `headers_setter`'s) and reads its response.
async fn exchange(
    conn: &mut Conn,
    head: &str,
    auth: Option<&AuthHeader>,
    prepared: &Prepared,
) -> Result<Response, Failure> {
    let body = &prepared.body[..];
    let early = |error| Failure {
        error,
        before_response: true,
    };
    let late = |error| Failure {
        error,
        before_response: false,
    };
    let mut request = Vec::with_capacity(head.len() + 32 + body.len().min(COALESCE_BODY_BYTES));
    request.extend_from_slice(head.as_bytes());
    if let Some(auth) = auth {
        auth.write_line(&mut request);
    }
    request.extend_from_slice(&prepared.headers);
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    if body.len() <= COALESCE_BODY_BYTES {
        request.extend_from_slice(body);
    }
    conn.stream
        .write_all(&request)
        .await
        .map_err(|e| early(SendError::Io(e)))?;
    if body.len() > COALESCE_BODY_BYTES {
        conn.stream
            .write_all(body)
            .await
            .map_err(|e| early(SendError::Io(e)))?;
    }
    conn.stream
        .flush()
        .await
        .map_err(|e| early(SendError::Io(e)))?;

    let mut interim = 0;
    let head = loop {
        if conn.buf.is_empty() {
            match read_more(conn).await {
                Ok(0) => return Err(early(SendError::Io(io::ErrorKind::UnexpectedEof.into()))),
                Ok(_) => {}
                Err(e) => return Err(early(SendError::Io(e))),
            }
        }
        let head = read_head(conn).await.map_err(late)?;
        if (100..200).contains(&head.status) && head.status != 101 {
            interim += 1;
            if interim > INTERIM_RESPONSES_MAX {
                return Err(late(SendError::Protocol("too many 1xx responses".into())));
            }
            continue;
        }
        break head;
    };
    let mut keep_alive = head.keep_alive;
    let body = match head.framing {
        Framing::Empty => Vec::new(),
        Framing::Length(len) => read_exact_body(conn, len).await.map_err(late)?,
        Framing::Chunked => read_chunked_body(conn).await.map_err(late)?,
        Framing::UntilClose => {
            keep_alive = false;
            read_to_close(conn).await.map_err(late)?
        }
    };
    if !conn.buf.is_empty() {
        // Bytes past the response: the connection's framing cannot be trusted any more.
        keep_alive = false;
    }
    Ok(Response {
        status: head.status,
        keep_alive,
        // `Retry-After` means "retry then" only on the statuses that may be retried.
        retry_after: head
            .retry_after
            .filter(|_| matches!(head.status, 429 | 502 | 503 | 504)),
        json: head.json,
        encoding: head.encoding,
        body,
    })
}

enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

struct Head {
    status: u16,
    keep_alive: bool,
    framing: Framing,
    retry_after: Option<String>,
    json: bool,
    encoding: Option<String>,
}

/// Parses a response head from the connection's buffer, reading more as needed, and consumes
/// it from the buffer.
async fn read_head(conn: &mut Conn) -> Result<Head, SendError> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&conn.buf) {
            Ok(Status::Complete(head_len)) => {
                let head = interpret(&response)?;
                conn.buf.drain(..head_len);
                return Ok(head);
            }
            Ok(Status::Partial) => {
                if conn.buf.len() >= HEAD_BYTES_MAX {
                    return Err(SendError::Protocol(format!(
                        "response head exceeds {HEAD_BYTES_MAX} bytes"
                    )));
                }
                if read_more(conn).await.map_err(SendError::Io)? == 0 {
                    return Err(SendError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
            }
            Err(err) => {
                return Err(SendError::Protocol(format!("bad response head: {err}")));
            }
        }
    }
}

fn interpret(response: &httparse::Response<'_, '_>) -> Result<Head, SendError> {
    let status = response.code.unwrap_or(0);
    let mut keep_alive = response.version == Some(1);
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut retry_after = None;
    let mut json = false;
    let mut encoding = None;
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or("").trim();
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let parsed: usize = value
                .parse()
                .map_err(|_| SendError::Protocol("bad Content-Length".into()))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(SendError::Protocol("conflicting Content-Length".into()));
            }
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            if value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
            {
                keep_alive = false;
            }
        } else if name.eq_ignore_ascii_case("retry-after") {
            retry_after = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-type") {
            json = value
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        } else if name.eq_ignore_ascii_case("content-encoding")
            && !value.eq_ignore_ascii_case("identity")
        {
            encoding = Some(value.to_ascii_lowercase());
        }
    }
    let framing = if status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(len) = length {
        if len > RESPONSE_BYTES_MAX {
            return Err(SendError::Protocol(format!(
                "response body of {len} bytes exceeds {RESPONSE_BYTES_MAX}"
            )));
        }
        Framing::Length(len)
    } else {
        Framing::UntilClose
    };
    Ok(Head {
        status,
        keep_alive,
        framing,
        retry_after,
        json,
        encoding,
    })
}

/// Reads up to [`READ_CHUNK_BYTES`] more into the connection's buffer; 0 at end of stream.
async fn read_more(conn: &mut Conn) -> io::Result<usize> {
    let start = conn.buf.len();
    conn.buf.resize(start + READ_CHUNK_BYTES, 0);
    let read = conn.stream.read(&mut conn.buf[start..]).await;
    conn.buf.truncate(start + *read.as_ref().unwrap_or(&0));
    read
}

async fn read_exact_body(conn: &mut Conn, len: usize) -> Result<Vec<u8>, SendError> {
    while conn.buf.len() < len {
        if read_more(conn).await.map_err(SendError::Io)? == 0 {
            return Err(SendError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
    }
    Ok(conn.buf.drain(..len).collect())
}

async fn read_to_close(conn: &mut Conn) -> Result<Vec<u8>, SendError> {
    while read_more(conn).await.map_err(SendError::Io)? > 0 {
        if conn.buf.len() > RESPONSE_BYTES_MAX {
            return Err(SendError::Protocol(format!(
                "response exceeds {RESPONSE_BYTES_MAX} bytes"
            )));
        }
    }
    Ok(std::mem::take(&mut conn.buf))
}

/// Decodes a chunked body (and skips its trailer section), consuming it from the buffer.
async fn read_chunked_body(conn: &mut Conn) -> Result<Vec<u8>, SendError> {
    let mut body = Vec::new();
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&conn.buf) {
            Ok(Status::Complete(parsed)) => parsed,
            Ok(Status::Partial) => {
                more(conn).await?;
                continue;
            }
            Err(_) => return Err(SendError::Protocol("bad chunk size".into())),
        };
        if size == 0 {
            conn.buf.drain(..size_len);
            return skip_trailers(conn).await.map(|()| body);
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|s| body.len() + s <= RESPONSE_BYTES_MAX)
            .ok_or_else(|| {
                SendError::Protocol(format!("response exceeds {RESPONSE_BYTES_MAX} bytes"))
            })?;
        while conn.buf.len() < size_len + size + 2 {
            more(conn).await?;
        }
        if &conn.buf[size_len + size..size_len + size + 2] != b"\r\n" {
            return Err(SendError::Protocol("chunk not followed by CRLF".into()));
        }
        body.extend_from_slice(&conn.buf[size_len..size_len + size]);
        conn.buf.drain(..size_len + size + 2);
    }
}

async fn skip_trailers(conn: &mut Conn) -> Result<(), SendError> {
    loop {
        let mut trailers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        match httparse::parse_headers(&conn.buf, &mut trailers) {
            Ok(Status::Complete((len, _))) => {
                conn.buf.drain(..len);
                return Ok(());
            }
            Ok(Status::Partial) => more(conn).await?,
            Err(_) => return Err(SendError::Protocol("bad trailer section".into())),
        }
    }
}

/// Reads more for the chunked decoder, within the head bound (a chunk-size line or trailer
/// section longer than that is not an OTLP response).
async fn more(conn: &mut Conn) -> Result<(), SendError> {
    if conn.buf.len() > RESPONSE_BYTES_MAX + HEAD_BYTES_MAX {
        return Err(SendError::Protocol("chunked framing too long".into()));
    }
    match read_more(conn).await.map_err(SendError::Io)? {
        0 => Err(SendError::Io(io::ErrorKind::UnexpectedEof.into())),
        _ => Ok(()),
    }
}
