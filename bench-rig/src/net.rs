//! The rig's own sockets on glommio: listening sockets shared by the sink's shards, the sockets
//! (in the clear or over TLS) as the tokio I/O traits `h2` drives, and a shard's stop signal.
//!
//! None of this is the gateway's: the rig measures the gateway, so it shares no code with its
//! receivers or exporters, only the wire crate, the shards runtime and published crates.
//! Everything here runs on one shard's executor and is owned by it.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;
use tokio::io::ReadBuf;

/// The listen backlog of each shard's sockets.
const LISTEN_BACKLOG: i32 = 1024;

/// The most connections one listener of one shard serves at once; more are closed as soon as
/// they are accepted.
const CONNECTIONS_MAX: usize = 16_384;

/// How much a read that must wait for the socket may fill: it goes through glommio, which
/// takes an initialised buffer, so this much is zeroed first.
const WAITING_READ_BYTES: usize = 16 << 10;

/// How much of h2's read buffer one read of a TLS stream may fill: rustls reads into an
/// initialised slice, so this much is zeroed first. A TLS record carries at most 16 KiB of
/// plaintext, so a longer read would rarely fill.
const TLS_READ_BYTES: usize = 16 << 10;

/// How long a client has to finish its TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a shard looks at the process-wide stop flag.
const FLAG_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Binds one shard's listening socket on `addr`: SO_REUSEPORT so every shard binds the same
/// address and the kernel spreads connections over them, SO_REUSEADDR so a sink restarted on
/// its port is not refused while the last run's connections sit in TIME_WAIT. Must run on the
/// shard's executor, which the listener belongs to.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(tailgate_shards::net::listener_from_socket(socket))
}

/// Accepts connections on `listener` until `stop`, running `serve(stream)` for each as a task
/// of this shard and counting it in `open` until its task ends (a stopping shard waits for
/// `open` to reach zero). A failed accept is skipped.
pub async fn accept_until<F, Fut>(
    listener: &TcpListener,
    stop: &Stop,
    open: &Rc<Cell<usize>>,
    mut serve: F,
) where
    F: FnMut(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stop.wait().await;
            None
        })
        .await;
        let stream = match accepted {
            Some(Ok(stream)) => stream,
            Some(Err(_)) => continue,
            None => return,
        };
        if open.get() >= CONNECTIONS_MAX {
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.set(open.get() + 1);
        let connection = serve(stream);
        let open = open.clone();
        glommio::spawn_local(async move {
            connection.await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}

/// How a server's TLS handshake with a client ended.
pub enum Accepted {
    /// The connection speaks TLS now.
    Established(Box<futures_rustls::server::TlsStream<TcpStream>>),
    /// TLS refused the client, or the client the server (a certificate missing or not trusted,
    /// nothing in common), after its ClientHello.
    Refused(rustls::Error),
    /// The client closed the connection after its ClientHello, before the handshake ended (a
    /// rustls client that distrusts the server's certificate closes without a word).
    BrokenOff(io::Error),
    /// The client did not finish within [`HANDSHAKE_TIMEOUT`].
    TimedOut,
    /// The client went away before saying hello, or the shard is stopping: no TLS failure (a
    /// readiness probe connects and closes).
    Abandoned,
}

/// Performs the server's side of a TLS handshake on `stream` with `config`, for at most
/// [`HANDSHAKE_TIMEOUT`] and no longer than until `stop`. The ClientHello is read first, so a
/// connection that never said hello is told from a handshake that failed.
pub async fn accept_tls(
    config: &Arc<rustls::ServerConfig>,
    stream: TcpStream,
    stop: &Stop,
) -> Accepted {
    let handshake = async {
        let acceptor = rustls::server::Acceptor::default();
        let hello = match futures_rustls::LazyConfigAcceptor::new(acceptor, stream).await {
            Ok(hello) => hello,
            Err(err) => {
                return match crate::tls::rustls_error(&err) {
                    Some(tls) => Accepted::Refused(tls.clone()),
                    None => Accepted::Abandoned,
                }
            }
        };
        match hello.into_stream(config.clone()).await {
            Ok(tls) => Accepted::Established(Box::new(tls)),
            Err(err) => match crate::tls::rustls_error(&err) {
                Some(tls) => Accepted::Refused(tls.clone()),
                None => Accepted::BrokenOff(err),
            },
        }
    };
    let timeout = async {
        glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
        Accepted::TimedOut
    };
    let stopped = async {
        stop.wait().await;
        Accepted::Abandoned
    };
    futures_lite::future::or(handshake, futures_lite::future::or(timeout, stopped)).await
}

/// A shard's stop signal: many tasks wait on it, one call releases them all.
pub struct Stop {
    // A semaphore never given a permit: waiting is acquiring, and closing it wakes every waiter.
    gate: Semaphore,
    stopped: Cell<bool>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            gate: Semaphore::new(0),
            stopped: Cell::new(false),
        }
    }
}

impl Stop {
    /// Resolves once [`Stop::trigger`] has been called (at once if it has).
    pub async fn wait(&self) {
        if !self.stopped.get() {
            let _ = self.gate.acquire(1).await;
        }
    }

    /// Releases every waiter, now and later.
    pub fn trigger(&self) {
        self.stopped.set(true);
        self.gate.close();
    }

    /// Triggers this stop once `flag` (set from another thread, or by a signal) is set.
    pub async fn follow(&self, flag: Arc<AtomicBool>) {
        while !flag.load(Ordering::Relaxed) {
            glommio::timer::sleep(FLAG_POLL_INTERVAL).await;
        }
        self.trigger();
    }
}

/// A flag that SIGTERM and SIGINT set.
pub fn signal_flag() -> io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, flag.clone())?;
    }
    Ok(flag)
}

/// A glommio socket as the tokio I/O traits `h2` needs. h2 lends the spare capacity of its
/// read buffer uninitialised; glommio reads only into initialised slices. So a read first tries
/// a non-blocking `recv(2)` straight into the uninitialised capacity (nothing zeroed, and all of
/// it may fill), and only when the socket has nothing goes through glommio, which waits for
/// readiness on the ring, into [`WAITING_READ_BYTES`] zeroed. Writes pass straight through.
pub struct Socket {
    inner: TcpStream,
    fd: RawFd,
}

impl Socket {
    /// Wraps a connected glommio socket.
    pub fn new(inner: TcpStream) -> Self {
        Socket {
            fd: inner.as_raw_fd(),
            inner,
        }
    }
}

impl tokio::io::AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Some(done) = tailgate_shards::net::recv_uninit(this.fd, buf) {
            return Poll::Ready(done);
        }
        let want = buf.remaining().min(WAITING_READ_BYTES);
        let read =
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf.initialize_unfilled_to(want)))?;
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// A TLS stream (either side, futures-io) as the tokio I/O traits `h2` needs. A read goes
/// through the TLS stream, which decrypts into an initialised slice, so up to
/// [`TLS_READ_BYTES`] of h2's spare capacity is zeroed first ([`Socket`]'s read into
/// uninitialised memory is for a plain socket alone). The TLS error that ended the stream, if
/// one did, is kept in its [`TlsFailure`]: h2 passes I/O errors on as text, and the load must
/// tell a certificate refused from a connection lost.
pub struct TlsSocket<S> {
    inner: S,
    failure: TlsFailure,
}

/// The TLS error that ended a [`TlsSocket`], read by whoever owns the connection.
#[derive(Clone, Default)]
pub struct TlsFailure(Rc<Cell<Option<rustls::Error>>>);

impl TlsFailure {
    /// The error, once the stream has failed with one.
    pub fn take(&self) -> Option<rustls::Error> {
        self.0.take()
    }
}

impl<S> TlsSocket<S> {
    /// Wraps an established TLS stream; its failure is told to `failure`.
    pub fn new(inner: S, failure: TlsFailure) -> Self {
        TlsSocket { inner, failure }
    }

    /// `result`, its TLS error (if any) kept first.
    fn noted<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(err)) = &result {
            if let Some(tls) = crate::tls::rustls_error(err) {
                self.failure.0.set(Some(tls.clone()));
            }
        }
        result
    }
}

impl<S: AsyncRead + Unpin> tokio::io::AsyncRead for TlsSocket<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let want = buf.remaining().min(TLS_READ_BYTES);
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf.initialize_unfilled_to(want));
        let read = ready!(this.noted(polled))?;
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> tokio::io::AsyncWrite for TlsSocket<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.noted(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.noted(polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.noted(polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_close(cx);
        this.noted(polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::AsyncWriteExt;
    use tokio::io::AsyncRead as _;

    /// What a connected socket is sent arrives through [`Socket`] whole and in order, read
    /// both straight from the socket and after waiting for it, and the end reads as zero bytes.
    #[test]
    fn a_socket_reads_every_byte_in_order() {
        glommio::LocalExecutor::default().run(async {
            let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let mut client = TcpStream::connect(addr).await.unwrap();
            let mut socket = Socket::new(listener.accept().await.unwrap());
            let sent: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
            let writer = {
                let sent = sent.clone();
                glommio::spawn_local(async move {
                    client.write_all(&sent).await.unwrap();
                    client.close().await.unwrap();
                })
            };
            let mut storage = vec![std::mem::MaybeUninit::<u8>::uninit(); 1 << 20];
            let mut got = Vec::new();
            loop {
                let mut buf = ReadBuf::uninit(&mut storage);
                futures_lite::future::poll_fn(|cx| Pin::new(&mut socket).poll_read(cx, &mut buf))
                    .await
                    .unwrap();
                if buf.filled().is_empty() {
                    break;
                }
                got.extend_from_slice(buf.filled());
            }
            writer.await;
            assert!(got == sent, "{} bytes of {}", got.len(), sent.len());
        });
    }

    #[test]
    fn a_stop_releases_waiters_now_and_later() {
        glommio::LocalExecutor::default().run(async {
            let stop = Rc::new(Stop::default());
            let flag = Arc::new(AtomicBool::new(false));
            let waiter = {
                let stop = stop.clone();
                glommio::spawn_local(async move { stop.wait().await })
            };
            let follower = {
                let (stop, flag) = (stop.clone(), flag.clone());
                glommio::spawn_local(async move { stop.follow(flag).await })
            };
            flag.store(true, Ordering::Relaxed);
            follower.await;
            waiter.await;
            stop.wait().await;
        });
    }
}
