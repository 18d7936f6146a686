//! The sink's OTLP/gRPC receiver: the gateway's HTTP/2 serving and gRPC framing
//! ([`tailgate::ingest::grpc`]), with the sink's [`Recorder`] where the gateway validates and
//! routes. A traces request is only scanned for its span ids, so the sink spends far less a
//! span than the gateway it measures; a request whose protobuf framing is broken is answered
//! INVALID_ARGUMENT and counted. When requests are kept or dumped for a test, they are
//! validated in full first, as the gateway validates what it receives.

use std::rc::Rc;

use bytes::Bytes;
use glommio::net::TcpListener;
use h2::server::SendResponse;
use h2::RecvStream;
use tailgate::ingest::accept::{serve_connections, Connections};
use tailgate::ingest::grpc::{
    read_request, route_call, send_error, send_message, serve_http2, Call, Http2Settings,
};
use tailgate::ingest::keepalive::Keepalive;
use tailgate::ingest::status::IngestError;
use tailgate::ingest::stop::Stop;

use super::{Recorder, MAX_MESSAGE_BYTES};

/// Calls in flight on one connection, and windows wide enough for a whole multi-megabyte export
/// request: a batch of the Collector's default 8,192 spans is about 5.5 MB, and with the
/// gateway's own 1 MiB stream window each one took several flow-control round trips, which in
/// pass-through raised the system's CPU a span by a quarter and its p99 latency from about 9 ms
/// to hundreds (docs/BENCHMARKS.md). The sink stands for an upstream provisioned for such
/// requests; tailgate's own receivers keep 1 MiB windows under their 4 MiB default message
/// limit.
struct Http2Windows {
    max_concurrent_streams: u32,
    stream_window: u32,
    connection_window: u32,
}

const HTTP2: Http2Windows = Http2Windows {
    max_concurrent_streams: 1000,
    stream_window: 16 << 20,
    connection_window: 64 << 20,
};

/// Accepts gRPC connections on `listener` until `stop`, counting them in `open`.
pub(super) async fn serve(
    listener: TcpListener,
    recorder: Rc<Recorder>,
    stop: Rc<Stop>,
    open: Rc<Connections>,
) {
    serve_connections(&listener, &stop, &open, |stream| {
        let recorder = recorder.clone();
        let stop = stop.clone();
        async move {
            let settings = Http2Settings {
                max_concurrent_streams: HTTP2.max_concurrent_streams,
                stream_window: HTTP2.stream_window,
                connection_window: HTTP2.connection_window,
                keepalive: Keepalive::default(),
            };
            serve_http2(stream, settings, &stop, |request, respond| {
                let recorder = recorder.clone();
                async move { call(&recorder, request, respond).await }
            })
            .await;
        }
    })
    .await;
}

async fn call(
    recorder: &Recorder,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let signal = match route_call(&request, &mut respond) {
        Some(Call::Export(signal)) => signal,
        Some(Call::HealthCheck) => {
            // grpc.health.v1.HealthCheckResponse { status: SERVING }.
            return send_message(&mut respond, &[0x08, 1]);
        }
        None => return,
    };
    let recorded = match read_request(request, MAX_MESSAGE_BYTES).await {
        Ok(message) => recorder.record(signal, &message, None),
        Err(err) => Err(err),
    };
    match recorded {
        // An empty Export*ServiceResponse: everything accepted.
        Ok(()) => send_message(&mut respond, &[]),
        Err(err) => {
            if matches!(err, IngestError::Decode(_) | IngestError::Corrupt(_)) {
                recorder.tally.borrow_mut().malformed_requests += 1;
            }
            send_error(&mut respond, &err)
        }
    }
}
