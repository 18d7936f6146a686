//! The server side of a TLS listener: each accepted connection's handshake, bounded in time and
//! in how many run at once.
//!
//! A connection's handshake must complete within [`TLS_HANDSHAKE_TIMEOUT`] of accept. Until the
//! client's first byte arrives the connection holds only its socket (the byte is peeked, not
//! read). A first byte that cannot begin a TLS record (0x16, a handshake) means plaintext or
//! garbage on a TLS port: the connection is refused at once, counted as `not_tls`. Then the
//! handshake waits for one of [`TLS_HANDSHAKES_IN_PROGRESS_MAX`] permits of its listener on this
//! shard, so a flood of stalled or expensive handshakes costs a bounded amount of memory and
//! CPU and cannot starve the connections already served; the wait counts against the same
//! timeout.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;

use crate::telemetry::{ConnectionMetrics, TlsMetrics};
use crate::tls::{failure_reason, Conn, ServerTls};
use tailgate_shards::sync::Stop;

/// How long from accept a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes one listener runs at once on one shard; more wait for a permit.
pub const TLS_HANDSHAKES_IN_PROGRESS_MAX: u64 = 256;
/// A TLS record of type handshake begins with this byte; a ClientHello is one.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How a handshake attempt ended without a session.
pub(crate) enum Refused {
    /// The client closed, or the gateway is stopping: nothing to count but what was counted.
    Closed,
    /// The first byte is not TLS; the socket is handed back so a receiver may answer in
    /// plaintext (an HTTP 400 that says to use https).
    NotTls(TcpStream),
    /// Counted as a failure with its reason (a timeout among them).
    Failed,
}

/// One TLS listener on one shard.
pub(crate) struct TlsAcceptor {
    tls: Arc<ServerTls>,
    permits: Rc<Semaphore>,
    metrics: TlsMetrics,
}

impl TlsAcceptor {
    /// The acceptor of a listener whose configuration is `tls`, counting into the listener's
    /// TLS cells (registered with it whenever it has TLS).
    pub(crate) fn new(tls: Arc<ServerTls>, connections: &ConnectionMetrics) -> TlsAcceptor {
        let metrics = connections
            .tls
            .clone()
            .unwrap_or_else(|| unreachable!("a TLS listener's metrics are registered with it"));
        TlsAcceptor {
            tls,
            permits: Rc::new(Semaphore::new(TLS_HANDSHAKES_IN_PROGRESS_MAX)),
            metrics,
        }
    }

    /// Runs the server side of the handshake on `stream`, accepted at `opened`.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
        opened: Instant,
        stop: &Stop,
    ) -> Result<Conn, Refused> {
        let deadline = opened.checked_add(TLS_HANDSHAKE_TIMEOUT).unwrap_or(opened);
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let timed_out = |metrics: &TlsMetrics| {
            metrics.failed("timeout");
            Refused::Failed
        };
        // The first byte, peeked: the socket keeps it for rustls.
        let mut first = [0u8; 1];
        let peeked = until(stop, remaining(), stream.peek(&mut first)).await;
        match peeked {
            Waited::Done(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => {}
            Waited::Done(Ok(1)) => {
                self.metrics.failed("not_tls");
                return Err(Refused::NotTls(stream));
            }
            Waited::Done(_) | Waited::Stopped => return Err(Refused::Closed),
            Waited::TimedOut => return Err(timed_out(&self.metrics)),
        }
        let permit = match until(stop, remaining(), self.permits.acquire_permit(1)).await {
            Waited::Done(Ok(permit)) => permit,
            Waited::Done(Err(_)) | Waited::Stopped => return Err(Refused::Closed),
            Waited::TimedOut => return Err(timed_out(&self.metrics)),
        };
        self.metrics.in_progress.add(1);
        let acceptor = futures_rustls::TlsAcceptor::from(self.tls.config());
        let handshake = until(stop, remaining(), acceptor.accept(stream)).await;
        self.metrics.in_progress.add(-1);
        drop(permit);
        match handshake {
            Waited::Done(Ok(session)) => {
                self.metrics.handshakes.inc();
                Ok(Conn::Server(Box::new(session)))
            }
            Waited::Done(Err(err)) => {
                self.metrics.failed(failure_reason(&err));
                tracing::debug!("TLS handshake failed: {err}");
                Err(Refused::Failed)
            }
            Waited::Stopped => Err(Refused::Closed),
            Waited::TimedOut => Err(timed_out(&self.metrics)),
        }
    }
}

/// What waiting on a future within a time and until the stop signal gave.
enum Waited<T> {
    Done(T),
    TimedOut,
    Stopped,
}

async fn until<T>(
    stop: &Stop,
    limit: Duration,
    work: impl std::future::Future<Output = T>,
) -> Waited<T> {
    future::or(
        async {
            match glommio::timer::timeout(limit, async { Ok(work.await) }).await {
                Ok(done) => Waited::Done(done),
                Err(_) => Waited::TimedOut,
            }
        },
        async {
            stop.wait().await;
            Waited::Stopped
        },
    )
    .await
}
