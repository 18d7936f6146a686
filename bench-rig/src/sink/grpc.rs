//! The sink's OTLP/gRPC receiver: HTTP/2 with `h2` on the shard's glommio sockets, one task per
//! connection and one per call, each call's one message read whole and handed to the shard's
//! [`Recorder`], which only scans a traces request for its span ids. It answers OK with an empty
//! `Export*ServiceResponse`, INVALID_ARGUMENT for a request it cannot read (counted in
//! `malformed_requests`), RESOURCE_EXHAUSTED over [`MESSAGE_BYTES_MAX`], UNIMPLEMENTED for
//! other methods and encodings, and SERVING to `grpc.health.v1.Health/Check`.
//!
//! The windows are wide enough for a whole multi-megabyte export request: a batch of the
//! Collector's default 8,192 spans is about 5.5 MB, and with a gateway's usual 1 MiB stream
//! window each one took several flow-control round trips, which in pass-through raised the
//! system's CPU a span by a quarter and its p99 latency from about 9 ms to hundreds
//! (docs/BENCHMARKS.md). The sink stands for an upstream provisioned for such requests.
//!
//! Over TLS (ALPN `h2`) each connection's handshake comes first, in the connection's task; the
//! HTTP/2 connection is then the same code over the TLS stream, and in the clear over the socket
//! itself, each its own monomorphic copy.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use tailgate_wire::Signal;

use super::{decompress, Coding, Recorder, Refusal, MESSAGE_BYTES_MAX};
use crate::net::{accept_tls, accept_until, Socket, Stop, TlsFailure, TlsSocket};

const TRACE_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const METRICS_EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// Calls in flight on one connection.
const STREAMS_MAX: u32 = 1000;
/// Flow-control windows: how much a client may send before the sink has read it.
const STREAM_WINDOW_BYTES: u32 = 16 << 20;
const CONNECTION_WINDOW_BYTES: u32 = 64 << 20;
/// The largest HTTP/2 frame accepted (fewer frames a request), and the largest header block.
const FRAME_BYTES_MAX: u32 = 1 << 20;
const HEADER_LIST_BYTES_MAX: u32 = 16 << 10;

/// gRPC status codes the sink answers with.
const OK: u16 = 0;
const INVALID_ARGUMENT: u16 = 3;
const RESOURCE_EXHAUSTED: u16 = 8;
const UNIMPLEMENTED: u16 = 12;

/// Accepts gRPC connections on `listener` until `stop`, counting them in `open`; over TLS
/// when `tls` is given.
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
            recorder.connection_opened();
            match tls {
                None => connection(Socket::new(stream), recorder.clone(), &stop).await,
                Some(tls) => {
                    let accepted = accept_tls(&tls, stream, &stop).await;
                    if let Some(stream) = recorder.tls_handshake(accepted) {
                        let socket = TlsSocket::new(stream, TlsFailure::default());
                        connection(socket, recorder.clone(), &stop).await;
                    }
                }
            }
            recorder.connection_closed();
        }
    })
    .await;
}

/// Serves one HTTP/2 connection until the peer closes it; once `stop` is triggered it is shut
/// down gracefully (GOAWAY) and driven until its calls in flight end.
async fn connection<T>(io: T, recorder: Rc<Recorder>, stop: &Stop)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(STREAMS_MAX)
        .initial_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(FRAME_BYTES_MAX)
        .max_header_list_size(HEADER_LIST_BYTES_MAX)
        .handshake::<_, Bytes>(io);
    let handshake = future::or(async { Some(handshake.await) }, async {
        stop.wait().await;
        None
    });
    let Some(Ok(mut connection)) = handshake.await else {
        return;
    };
    let mut draining = false;
    loop {
        // `accept` also drives the connection's I/O for the calls in flight, so it is polled
        // until the connection ends, draining or not.
        let next = if draining {
            connection.accept().await
        } else {
            let next = future::or(async { Some(connection.accept().await) }, async {
                stop.wait().await;
                None
            });
            match next.await {
                Some(next) => next,
                None => {
                    draining = true;
                    connection.graceful_shutdown();
                    continue;
                }
            }
        };
        let Some(Ok((request, respond))) = next else {
            return;
        };
        let recorder = recorder.clone();
        glommio::spawn_local(async move { call(&recorder, request, respond).await }).detach();
    }
}

/// One call: which method, its message, the answer.
async fn call(
    recorder: &Recorder,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let is_grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !is_grpc {
        // Not gRPC at all: refused at the HTTP level, as the gRPC protocol says.
        let response = Response::builder()
            .status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .body(())
            .expect("a static response");
        let _ = respond.send_response(response, true);
        return;
    }
    let signal = match request.uri().path() {
        TRACE_EXPORT => Signal::Traces,
        METRICS_EXPORT => Signal::Metrics,
        LOGS_EXPORT => Signal::Logs,
        // grpc.health.v1.HealthCheckResponse { status: SERVING }.
        HEALTH_CHECK => return send_message(&mut respond, &[0x08, 1]),
        other => {
            let message = format!("unknown method {other}");
            return send_status(&mut respond, UNIMPLEMENTED, &message);
        }
    };
    let recorded = match read_request(recorder, request).await {
        Ok((message, wire_bytes)) => recorder.record(signal, &message, wire_bytes),
        Err(refusal) => Err(refusal),
    };
    match recorded {
        // An empty Export*ServiceResponse: everything accepted.
        Ok(()) => send_message(&mut respond, &[]),
        Err(refusal) => {
            if refusal.is_malformed() {
                recorder.count_malformed();
            }
            let code = match refusal {
                Refusal::Malformed(_) | Refusal::Invalid(_) => INVALID_ARGUMENT,
                Refusal::TooLarge => RESOURCE_EXHAUSTED,
                Refusal::Unsupported(_) => UNIMPLEMENTED,
            };
            send_status(&mut respond, code, &refusal.to_string());
        }
    }
}

/// A unary call's request message: its one gRPC-framed message, decompressed as its
/// `grpc-encoding` says when the frame is flagged compressed, and its length as received.
async fn read_request(
    recorder: &Recorder,
    request: http::Request<RecvStream>,
) -> Result<(Bytes, usize), Refusal> {
    let coding = match request.headers().get("grpc-encoding") {
        None => Coding::Identity,
        Some(value) => Coding::parse(value.as_bytes())
            .ok_or_else(|| Refusal::Unsupported(format!("grpc-encoding {value:?}")))?,
    };
    let (compressed, message) = read_message(recorder, request.into_body()).await?;
    let wire_bytes = message.len();
    if !compressed {
        return Ok((message, wire_bytes));
    }
    if coding == Coding::Identity {
        return Err(Refusal::Malformed(
            "a compressed message without grpc-encoding".into(),
        ));
    }
    decompress(coding, &message).map(|decoded| (Bytes::from(decoded), wire_bytes))
}

/// Reads a call's one message: the 5-byte prefix (compressed flag, length), then the message,
/// refusing one over [`MESSAGE_BYTES_MAX`] or whose length disagrees with the prefix. A message
/// that one DATA frame carries whole (the usual case with 1 MiB frames) is kept as a slice of
/// that frame; a longer one is copied once into a buffer sized from the prefix. Flow-control
/// capacity is handed back as the body is read. h2 hands over each DATA frame's payload as one
/// chunk, so the chunks are the frames the client sent: counted in the recorder.
async fn read_message(recorder: &Recorder, mut body: RecvStream) -> Result<(bool, Bytes), Refusal> {
    let mut prefix = [0u8; 5];
    let mut prefix_len = 0;
    let mut declared = 0;
    let mut whole: Option<Bytes> = None;
    let mut gathered = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|err| Refusal::Malformed(format!("HTTP/2 stream: {err}")))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        recorder.count_data_frame(chunk.len());
        let mut start = 0;
        if prefix_len < 5 {
            let n = (5 - prefix_len).min(chunk.len());
            prefix[prefix_len..prefix_len + n].copy_from_slice(&chunk[..n]);
            prefix_len += n;
            start = n;
            if prefix_len == 5 {
                declared =
                    u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
                if declared > MESSAGE_BYTES_MAX {
                    return Err(Refusal::TooLarge);
                }
            }
        }
        let data = &chunk[start..];
        if data.is_empty() {
            continue;
        }
        let held = whole.as_ref().map_or(gathered.len(), Bytes::len);
        if held + data.len() > declared {
            return Err(Refusal::Malformed(format!(
                "the gRPC prefix says {declared} bytes, the stream carries more"
            )));
        }
        if held == 0 && data.len() == declared {
            whole = Some(chunk.slice(start..));
            continue;
        }
        if gathered.capacity() == 0 {
            gathered.reserve_exact(declared);
        }
        gathered.extend_from_slice(data);
    }
    if prefix_len < 5 {
        return Err(Refusal::Malformed(
            "a gRPC message shorter than its 5-byte prefix".into(),
        ));
    }
    let message = whole.unwrap_or_else(|| Bytes::from(gathered));
    if message.len() != declared {
        return Err(Refusal::Malformed(format!(
            "the gRPC prefix says {declared} bytes, the stream carried {}",
            message.len()
        )));
    }
    Ok((prefix[0] & 1 == 1, message))
}

fn grpc_response() -> Response<()> {
    let mut response = Response::new(());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// Answers OK with one message.
fn send_message(respond: &mut SendResponse<Bytes>, message: &[u8]) {
    let Ok(mut stream) = respond.send_response(grpc_response(), false) else {
        return;
    };
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    if stream.send_data(Bytes::from(frame), false).is_err() {
        return;
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(OK));
    let _ = stream.send_trailers(trailers);
}

/// Answers with a status and its message, as a trailers-only response.
fn send_status(respond: &mut SendResponse<Bytes>, code: u16, message: &str) {
    let mut response = grpc_response();
    let headers = response.headers_mut();
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(value) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert("grpc-message", value);
    }
    let _ = respond.send_response(response, true);
}

/// `grpc-message` is percent-encoded: bytes outside printable ASCII, and `%` itself.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode("a 100% é\n"), "a 100%25 %C3%A9%0A");
    }
}
