//! The sink's OTLP/HTTP receiver: HTTP/1.1 parsed with `httparse` on the shard's glommio
//! sockets, one task per connection, requests one after another on it (keep-alive).
//!
//! `POST /v1/traces`, `/v1/metrics` or `/v1/logs` with a `Content-Length` body of
//! `application/x-protobuf` or `application/json` (converted to protobuf by the wire crate), gzip
//! or zstd `Content-Encoding`, is handed to the shard's [`Recorder`] and answered 200 with an
//! empty `Export*ServiceResponse` in the request's content type. What it cannot take is answered
//! with the matching status (400 unreadable, 404, 405, 411 without a length, 413 over
//! [`MESSAGE_BYTES_MAX`], 415) and the connection closed.
//!
//! Over TLS (ALPN `http/1.1`) each connection's handshake comes first, in the connection's
//! task; the exchange is then the same code over the TLS stream, and in the clear over the
//! socket itself, each its own monomorphic copy.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use tailgate_wire::Signal;

use super::{decompress, Coding, Recorder, Refusal, MESSAGE_BYTES_MAX};
use crate::net::{accept_tls, accept_until, Stop};

/// The largest request head read.
const HEAD_BYTES_MAX: usize = 16 << 10;
/// The most headers a request head may have.
const HEADERS_MAX: usize = 32;
/// How much one read of a head takes.
const READ_BYTES: usize = 4 << 10;

/// Accepts OTLP/HTTP connections on `listener` until `stop`, counting them in `open`; over
/// TLS when `tls` is given.
pub(super) async fn serve(
    listener: TcpListener,
    recorder: Rc<Recorder>,
    stop: Rc<Stop>,
    open: Rc<Cell<usize>>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    accept_until(&listener, &stop, &open, |stream: TcpStream| {
        let recorder = recorder.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        async move {
            match tls {
                None => connection(stream, &recorder, &stop).await,
                Some(tls) => {
                    let accepted = accept_tls(&tls, stream, &stop).await;
                    if let Some(stream) = recorder.tls_handshake(accepted) {
                        connection(stream, &recorder, &stop).await;
                    }
                }
            }
        }
    })
    .await;
}

/// What a request head says, as far as the sink needs it.
struct Head {
    signal: Option<Signal>,
    post: bool,
    json: Option<bool>,
    coding: Option<Coding>,
    length: Option<usize>,
    close: bool,
    /// Bytes of the buffer the head took.
    len: usize,
}

/// An answer: a status line, and a body with its content type.
struct Answer {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    close: bool,
}

impl Answer {
    fn refused(status: &'static str, why: String) -> Answer {
        Answer {
            status,
            content_type: "text/plain",
            body: why.into_bytes(),
            close: true,
        }
    }
}

/// Serves requests on one connection until the peer closes it, a request is refused, or `stop`
/// is triggered while the connection is idle.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    recorder: &Recorder,
    stop: &Stop,
) {
    let mut buffer = Vec::with_capacity(READ_BYTES);
    loop {
        let head = match read_head(&mut stream, &mut buffer, stop).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(answer) => {
                let _ = respond(&mut stream, answer).await;
                return;
            }
        };
        buffer.drain(..head.len);
        let answer = match exchange(&mut stream, &mut buffer, recorder, &head).await {
            Ok(answer) => answer,
            Err(answer) => answer,
        };
        if respond(&mut stream, answer).await.is_err() {
            return;
        }
    }
}

/// Reads one request's head into `buffer`; `None` when the peer closed the connection, or
/// `stop` came, between requests.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut Vec<u8>,
    stop: &Stop,
) -> Result<Option<Head>, Answer> {
    loop {
        if !buffer.is_empty() {
            if let Some(head) = parse_head(buffer)? {
                return Ok(Some(head));
            }
            if buffer.len() >= HEAD_BYTES_MAX {
                let why = format!("a request head over {HEAD_BYTES_MAX} bytes");
                return Err(Answer::refused("431 Request Header Fields Too Large", why));
            }
        }
        let filled = buffer.len();
        buffer.resize(filled + READ_BYTES, 0);
        let read = if filled == 0 {
            let read = futures_lite::future::or(
                async { Some(stream.read(&mut buffer[filled..]).await) },
                async {
                    stop.wait().await;
                    None
                },
            );
            read.await
        } else {
            Some(stream.read(&mut buffer[filled..]).await)
        };
        let read = match read {
            Some(Ok(read)) => read,
            Some(Err(_)) | None => 0,
        };
        buffer.truncate(filled + read);
        if read == 0 {
            return Ok(None);
        }
    }
}

/// Parses a request head at the start of `buffer`: `None` while it is incomplete.
fn parse_head(buffer: &[u8]) -> Result<Option<Head>, Answer> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(Answer::refused("400 Bad Request", format!("HTTP: {err}"))),
    };
    let signal = match request.path {
        Some("/v1/traces") => Some(Signal::Traces),
        Some("/v1/metrics") => Some(Signal::Metrics),
        Some("/v1/logs") => Some(Signal::Logs),
        _ => None,
    };
    let mut head = Head {
        signal,
        post: request.method == Some("POST"),
        json: None,
        coding: Some(Coding::Identity),
        length: None,
        close: request.version == Some(0),
        len,
    };
    let bad = |why: &str| Answer::refused("400 Bad Request", why.to_string());
    for header in request.headers.iter() {
        let value = header.value;
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| bad("an unreadable Content-Length"))?;
            head.length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.length = None;
            head.close = true;
        } else if name.eq_ignore_ascii_case("content-type") {
            head.json = if value.starts_with(b"application/x-protobuf") {
                Some(false)
            } else if value.starts_with(b"application/json") {
                Some(true)
            } else {
                None
            };
        } else if name.eq_ignore_ascii_case("content-encoding") {
            head.coding = Coding::parse(value);
        } else if name.eq_ignore_ascii_case("connection") {
            head.close |= value.eq_ignore_ascii_case(b"close");
        }
    }
    Ok(Some(head))
}

/// Reads the body `head` announces (part of it may be in `buffer` already, which keeps what
/// follows it) and records it.
async fn exchange<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut Vec<u8>,
    recorder: &Recorder,
    head: &Head,
) -> Result<Answer, Answer> {
    let Some(length) = head.length else {
        let why = "the sink reads bodies of a Content-Length only".into();
        return Err(Answer::refused("411 Length Required", why));
    };
    if length > MESSAGE_BYTES_MAX {
        let why = format!("a body over {MESSAGE_BYTES_MAX} bytes");
        return Err(Answer::refused("413 Content Too Large", why));
    }
    // The body is read before anything else is refused, so the connection closes cleanly
    // after the answer, with nothing unread that would make the kernel reset it.
    let mut body = vec![0; length];
    let early = buffer.len().min(length);
    body[..early].copy_from_slice(&buffer[..early]);
    buffer.drain(..early);
    let unreadable = |err: std::io::Error| Answer::refused("400 Bad Request", err.to_string());
    stream
        .read_exact(&mut body[early..])
        .await
        .map_err(unreadable)?;
    let Some(signal) = head.signal else {
        return Err(Answer::refused("404 Not Found", "no such path".into()));
    };
    if !head.post {
        let why = "OTLP/HTTP takes POST".into();
        return Err(Answer::refused("405 Method Not Allowed", why));
    }
    let Some(json) = head.json else {
        let why = "Content-Type must be application/x-protobuf or application/json".into();
        return Err(Answer::refused("415 Unsupported Media Type", why));
    };
    let Some(coding) = head.coding else {
        let why = "Content-Encoding must be gzip, zstd or none".into();
        return Err(Answer::refused("415 Unsupported Media Type", why));
    };
    let wire_bytes = body.len();
    let recorded = decode(signal, coding, json, body)
        .and_then(|bytes| recorder.record(signal, &bytes, wire_bytes));
    if let Err(refusal) = recorded {
        if refusal.is_malformed() {
            recorder.count_malformed();
        }
        let status = match refusal {
            Refusal::TooLarge => "413 Content Too Large",
            Refusal::Unsupported(_) => "415 Unsupported Media Type",
            Refusal::Malformed(_) | Refusal::Invalid(_) => "400 Bad Request",
        };
        return Err(Answer::refused(status, refusal.to_string()));
    }
    // An empty Export*ServiceResponse: everything accepted.
    Ok(Answer {
        status: "200 OK",
        content_type: if json {
            "application/json"
        } else {
            "application/x-protobuf"
        },
        body: if json { b"{}".to_vec() } else { Vec::new() },
        close: head.close,
    })
}

/// A request body as protobuf bytes: decompressed, and converted from OTLP/JSON.
fn decode(signal: Signal, coding: Coding, json: bool, body: Vec<u8>) -> Result<Vec<u8>, Refusal> {
    let body = match coding {
        Coding::Identity => body,
        coding => decompress(coding, &body)?,
    };
    if !json {
        return Ok(body);
    }
    tailgate_wire::json::to_protobuf(signal, &body)
        .map_err(|err| Refusal::Malformed(format!("OTLP/JSON: {err}")))
}

/// Writes `answer`; an error when the connection should end (it failed, or the answer closes it).
async fn respond<S: AsyncWrite + Unpin>(stream: &mut S, answer: Answer) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
        answer.status,
        answer.content_type,
        answer.body.len(),
        if answer.close {
            "Connection: close\r\n"
        } else {
            ""
        },
    )
    .into_bytes();
    out.extend_from_slice(&answer.body);
    stream.write_all(&out).await?;
    stream.flush().await?;
    if answer.close {
        return Err(std::io::ErrorKind::ConnectionAborted.into());
    }
    Ok(())
}
