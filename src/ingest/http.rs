//! The OTLP/HTTP receiver: HTTP/1.1 on the shard's io_uring sockets, parsed with `httparse`.
//!
//! Each connection is one task on the shard that accepted it. Requests are read one at a time
//! (pipelined bytes wait in the buffer): the header block within [`MAX_HEADER_BYTES`] and
//! [`HEADER_TIMEOUT`], the body by `Content-Length` or chunked coding within the size limit —
//! before decompression, and again after it, so a gzip bomb is refused at the limit — and the
//! next read only after the request has been handed over, which is how a busy shard slows its
//! clients. Paths are `/v1/traces`, `/v1/metrics` and `/v1/logs` (configurable); bodies are
//! `application/x-protobuf` or `application/json`, plain, gzip or zstd. Errors answer with the
//! OTLP status codes and a `google.rpc.Status` body in the request's encoding.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use super::body::{self, BodyError, Coding};
use super::status::{rpc_status, IngestError};
use super::stop::Stop;
use super::{Ingest, Limits, Outcome};
use crate::telemetry::ReceiverMetrics;
use tailgate_wire::{encode::export_response, json, Signal};

/// The largest request head (request line and headers) accepted.
pub const MAX_HEADER_BYTES: usize = 16 << 10;
/// The most headers one request may carry.
const MAX_HEADERS: usize = 64;
/// How long a client has to send a whole request head once it has started.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a kept-alive connection may sit idle between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one read of a body may wait for bytes.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// How long a client is asked to wait before retrying a refused request.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Settings of one shard's HTTP receiver.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub limits: Limits,
    pub traces_path: String,
    pub metrics_path: String,
    pub logs_path: String,
}

/// One shard's HTTP receiver.
pub struct HttpReceiver {
    ingest: Rc<Ingest>,
    metrics: ReceiverMetrics,
    settings: HttpSettings,
    stop: Rc<Stop>,
    connections: Rc<Cell<usize>>,
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
}

/// Why a connection ends.
enum Close {
    /// The peer closed, timed out or broke the connection: nothing more to say.
    Quietly,
    /// Answer this, then close.
    After(Reply),
}

impl HttpReceiver {
    pub fn new(
        ingest: Rc<Ingest>,
        metrics: ReceiverMetrics,
        settings: HttpSettings,
        stop: Rc<Stop>,
    ) -> Rc<Self> {
        Rc::new(HttpReceiver {
            ingest,
            metrics,
            settings,
            stop,
            connections: Rc::new(Cell::new(0)),
        })
    }

    /// Accepts connections until the stop signal; open connections finish their request.
    pub async fn serve(self: Rc<Self>, listener: TcpListener) {
        super::serve_connections(&listener, &self.stop, &self.connections, |stream| {
            let receiver = self.clone();
            async move { receiver.serve_connection(stream).await }
        })
        .await;
    }

    /// Number of connections this shard has open. Once the stop signal is given, idle ones close
    /// at once and the others after answering the request they are in, so shutdown waits for
    /// this to reach zero before it closes the mesh: a request read whole is always answered.
    pub fn open_connections(&self) -> usize {
        self.connections.get()
    }

    async fn serve_connection(&self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(BODY_READ_TIMEOUT));
        let mut buffer: Vec<u8> = Vec::with_capacity(8 << 10);
        loop {
            match self.serve_request(&mut stream, &mut buffer).await {
                Ok(keep_alive) if keep_alive && !self.stop.is_triggered() => continue,
                Ok(_) | Err(Close::Quietly) => return,
                Err(Close::After(reply)) => {
                    let _ = write_reply(&mut stream, &reply, false).await;
                    return;
                }
            }
        }
    }

    /// Reads, serves and answers one request; returns whether the connection stays open.
    async fn serve_request(
        &self,
        stream: &mut TcpStream,
        buffer: &mut Vec<u8>,
    ) -> Result<bool, Close> {
        let head_len = read_head(stream, buffer, &self.stop).await?;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buffer[..head_len]) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => {
                return Err(Close::After(error_reply(
                    &bad_request("malformed HTTP request"),
                    Encoding::Protobuf,
                )))
            }
        }
        let head = Head::read(&request);
        buffer.drain(..head_len);

        let signal = if head.path == self.settings.traces_path {
            Some(Signal::Traces)
        } else if head.path == self.settings.metrics_path {
            Some(Signal::Metrics)
        } else if head.path == self.settings.logs_path {
            Some(Signal::Logs)
        } else {
            None
        };
        let Some(signal) = signal else {
            let err = IngestError::UnknownMethod(head.path.clone());
            return Err(Close::After(error_reply(&err, Encoding::Protobuf)));
        };
        if head.method != "POST" {
            let mut reply = error_reply(
                &IngestError::Unsupported(format!("method {}", head.method)),
                Encoding::Protobuf,
            );
            reply.status = 405;
            reply.allow_post = true;
            return Err(Close::After(reply));
        }
        let encoding = match head.content_type.as_deref().map(media_type) {
            Some("application/x-protobuf") => Encoding::Protobuf,
            Some("application/json") => Encoding::Json,
            other => {
                let err =
                    IngestError::Unsupported(format!("content type {:?}", other.unwrap_or("")));
                return Err(Close::After(error_reply(&err, Encoding::Protobuf)));
            }
        };
        let Some(coding) = Coding::parse(head.content_encoding.as_deref().unwrap_or("")) else {
            let err = IngestError::Unsupported(format!(
                "content encoding {:?}",
                head.content_encoding.unwrap_or_default()
            ));
            return Err(Close::After(error_reply(&err, encoding)));
        };
        if head.expect_continue {
            stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|_| Close::Quietly)?;
        }
        let limit = self.settings.limits.max_message_bytes;
        let raw = read_body(stream, buffer, &head, limit)
            .await
            .map_err(|err| Close::After(error_reply(&err, encoding)))?;

        let result = self.export(signal, encoding, coding, raw).await;
        let reply = match result {
            Ok(outcome) => Reply {
                status: 200,
                encoding,
                body: success_body(signal, encoding, &outcome),
                retry_after: None,
                allow_post: false,
            },
            Err(err) => error_reply(&err, encoding),
        };
        write_reply(stream, &reply, head.keep_alive)
            .await
            .map_err(|_| Close::Quietly)?;
        Ok(head.keep_alive)
    }

    async fn export(
        &self,
        signal: Signal,
        encoding: Encoding,
        coding: Coding,
        raw: Vec<u8>,
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
            .export(signal, bytes::Bytes::from(protobuf), &self.metrics)
            .await
    }
}

/// What the receiver needs from a request head.
struct Head {
    method: String,
    path: String,
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
    expect_continue: bool,
    bad_length: bool,
}

impl Head {
    fn read(request: &httparse::Request<'_, '_>) -> Head {
        let mut head = Head {
            method: request.method.unwrap_or("").to_string(),
            // The query string does not select the signal.
            path: request
                .path
                .unwrap_or("")
                .split('?')
                .next()
                .unwrap_or("")
                .to_string(),
            content_type: None,
            content_encoding: None,
            content_length: None,
            chunked: false,
            keep_alive: request.version == Some(1),
            expect_continue: false,
            bad_length: false,
        };
        for header in request.headers.iter() {
            let value = String::from_utf8_lossy(header.value).trim().to_string();
            match header.name.to_ascii_lowercase().as_str() {
                "content-type" => head.content_type = Some(value),
                "content-encoding" => head.content_encoding = Some(value),
                "content-length" => match value.parse::<usize>() {
                    Ok(n) if head.content_length.is_none_or(|m| m == n) => {
                        head.content_length = Some(n)
                    }
                    _ => head.bad_length = true,
                },
                "transfer-encoding" => {
                    head.chunked = value.to_ascii_lowercase().ends_with("chunked")
                }
                "connection" => {
                    let value = value.to_ascii_lowercase();
                    if value.contains("close") {
                        head.keep_alive = false;
                    } else if value.contains("keep-alive") {
                        head.keep_alive = true;
                    }
                }
                "expect" => head.expect_continue = value.eq_ignore_ascii_case("100-continue"),
                _ => {}
            }
        }
        head
    }
}

/// The media type of a `Content-Type` value, without parameters.
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

/// Reads until `buffer` holds a whole request head; returns the head's length.
async fn read_head(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    stop: &Stop,
) -> Result<usize, Close> {
    // Wait for the first byte of the next request as long as the connection may idle; after
    // that the whole head must come within the header timeout.
    if buffer.is_empty() {
        let first = future::or(
            async {
                Some(
                    glommio::timer::timeout(IDLE_TIMEOUT, async {
                        Ok(read_more(stream, buffer).await)
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
        match first {
            Some(Ok(Ok(n))) if n > 0 => {}
            _ => return Err(Close::Quietly),
        }
    }
    let deadline = glommio::timer::timeout(HEADER_TIMEOUT, async {
        loop {
            if let Some(end) = find_head_end(buffer) {
                return Ok(Ok(end));
            }
            // Bytes that cannot begin a request are refused now, rather than held until the
            // header timeout while waiting for a blank line that garbage may never contain.
            if cannot_be_a_request(buffer) {
                return Ok(Err(Close::After(error_reply(
                    &bad_request("malformed HTTP request"),
                    Encoding::Protobuf,
                ))));
            }
            if buffer.len() >= MAX_HEADER_BYTES {
                let reply = error_reply(
                    &bad_request(&format!("request head over {MAX_HEADER_BYTES} bytes")),
                    Encoding::Protobuf,
                );
                return Ok(Err(Close::After(Reply {
                    status: 431,
                    ..reply
                })));
            }
            match read_more(stream, buffer).await {
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

/// Whether the start of a head already fails to parse (`httparse` reports a partial head that
/// is valid so far as incomplete, not as an error).
fn cannot_be_a_request(partial: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    httparse::Request::new(&mut headers).parse(partial).is_err()
}

/// The end of the head (after its blank line), if the buffer holds it.
fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .take(MAX_HEADER_BYTES)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// Reads whatever the socket has into the buffer's tail.
async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
    let start = buffer.len();
    buffer.resize(start + READ_CHUNK_BYTES, 0);
    let result = stream.read(&mut buffer[start..]).await;
    buffer.truncate(start + *result.as_ref().unwrap_or(&0));
    result
}

/// Reads the body the head announces, at most `limit` bytes of it; leaves what follows (a
/// pipelined request) in `buffer`.
async fn read_body(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    head: &Head,
    limit: usize,
) -> Result<Vec<u8>, IngestError> {
    if head.bad_length || (head.chunked && head.content_length.is_some()) {
        return Err(bad_request("conflicting or invalid Content-Length"));
    }
    if head.chunked {
        return read_chunked(stream, buffer, limit).await;
    }
    let len = head.content_length.unwrap_or(0);
    if len > limit {
        return Err(IngestError::TooLarge { limit });
    }
    while buffer.len() < len {
        match read_more(stream, buffer).await {
            Ok(n) if n > 0 => {}
            _ => return Err(bad_request("connection closed inside the body")),
        }
    }
    let rest = buffer.split_off(len);
    Ok(std::mem::replace(buffer, rest))
}

async fn read_chunked(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    limit: usize,
) -> Result<Vec<u8>, IngestError> {
    let mut body = Vec::new();
    loop {
        // The chunk-size line.
        let (header_len, size) = loop {
            match httparse::parse_chunk_size(buffer) {
                Ok(httparse::Status::Complete((n, size))) => break (n, size as usize),
                Ok(httparse::Status::Partial) if buffer.len() < 1024 => {
                    match read_more(stream, buffer).await {
                        Ok(n) if n > 0 => {}
                        _ => return Err(bad_request("connection closed inside a chunk")),
                    }
                }
                _ => return Err(bad_request("malformed chunk size")),
            }
        };
        if body.len() + size > limit {
            return Err(IngestError::TooLarge { limit });
        }
        // The chunk and its CRLF.
        while buffer.len() < header_len + size + 2 {
            match read_more(stream, buffer).await {
                Ok(n) if n > 0 => {}
                _ => return Err(bad_request("connection closed inside a chunk")),
            }
        }
        if &buffer[header_len + size..header_len + size + 2] != b"\r\n" {
            return Err(bad_request("chunk not followed by CRLF"));
        }
        body.extend_from_slice(&buffer[header_len..header_len + size]);
        buffer.drain(..header_len + size + 2);
        if size == 0 {
            // Trailer fields are not used by OTLP; the last chunk's CRLF ended the body.
            return Ok(body);
        }
    }
}

fn bad_request(message: &str) -> IngestError {
    IngestError::Corrupt(message.to_string())
}

fn error_reply(err: &IngestError, encoding: Encoding) -> Reply {
    let message = err.to_string();
    let body = match encoding {
        Encoding::Protobuf => rpc_status(err.grpc_code(), &message, err.retry_after()),
        Encoding::Json => serde_json::to_vec(&serde_json::json!({
            "code": err.grpc_code() as u8,
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
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

async fn write_reply(
    stream: &mut TcpStream,
    reply: &Reply,
    keep_alive: bool,
) -> std::io::Result<()> {
    let content_type = match reply.encoding {
        Encoding::Protobuf => "application/x-protobuf",
        Encoding::Json => "application/json",
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    if let Some(delay) = reply.retry_after {
        head.push_str(&format!("Retry-After: {}\r\n", delay.as_secs().max(1)));
    }
    if reply.allow_post {
        head.push_str("Allow: POST\r\n");
    }
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
    fn heads_are_found_and_media_types_read() {
        assert_eq!(
            find_head_end(b"POST / HTTP/1.1\r\nA: b\r\n\r\nbody"),
            Some(25)
        );
        assert_eq!(find_head_end(b"POST / HTTP/1.1\r\nA: b\r\n"), None);
        assert!(!cannot_be_a_request(b"POST /v1/traces HTTP/1."));
        assert!(!cannot_be_a_request(
            b"POST /v1/traces HTTP/1.1\r\nContent-Ty"
        ));
        assert!(cannot_be_a_request(b"\x16\x03\x01\x02\x00\x01"));
        assert!(cannot_be_a_request(
            b"POST /v1/traces HTTP/1.1\r\nBad Name: x\r\n"
        ));
        assert_eq!(
            media_type("application/json; charset=utf-8"),
            "application/json"
        );
    }
}
