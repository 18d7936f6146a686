//! Glommio sockets as HTTP/2's tokio I/O traits, without zeroing read buffers.
//!
//! h2 reads into the spare capacity of its frame buffer, which it hands over uninitialised;
//! glommio's streams read into initialised `&mut [u8]` only, so an adapter must zero what it
//! lends. `tokio_util::compat` zeroes all of the spare capacity on every read, and with large
//! HTTP/2 frames (the receiver allows 1 MiB) that capacity is far larger than what one read
//! returns: under load the zeroing was 3.4 % of gateway CPU.
//!
//! A [`Stream::socket`] reads with `recv(2)` straight into the uninitialised capacity, as
//! glommio's own non-buffered streams do first (a non-blocking `recv`, and a readiness poll on
//! the ring only when it would block), so nothing is zeroed and a read may fill all of h2's
//! spare capacity. Only when the socket has nothing does it fall back to glommio's read, which
//! registers for readiness; that read gets a zeroed window, which is also what a stream
//! without a descriptor ([`Stream::new`]) always uses: a window that follows what reads return
//! (doubling while reads fill it, else the last read plus 16 KiB; at most the spare capacity),
//! so zeroing stays close to the bytes received. Writes pass straight through.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use tokio::io::ReadBuf;

/// The smallest read window.
const WINDOW_MIN: usize = 16 << 10;

/// Sees every byte read through a [`Stream`], in order (the gRPC receiver's keepalive rules
/// follow the client's frames this way).
pub trait Observe {
    /// Called with the bytes each read returned.
    fn received(&self, bytes: &[u8]);
}

/// A futures-io stream as a tokio-io one.
pub struct Stream<S> {
    inner: S,
    /// How many bytes the next zeroed read may fill.
    window: usize,
    /// The socket, for reads into uninitialised memory.
    fd: Option<RawFd>,
    /// Told of every read.
    observer: Option<Rc<dyn Observe>>,
    /// A byte already read off the socket, returned before anything else.
    first: Option<u8>,
}

impl<S> Stream<S> {
    /// A stream read through its `AsyncRead` only, into zeroed windows.
    pub fn new(inner: S) -> Self {
        Stream {
            inner,
            window: WINDOW_MIN,
            fd: None,
            observer: None,
            first: None,
        }
    }

    /// Returns `byte` first, then what the stream reads: a byte the caller read already (to
    /// learn that the peer speaks before it allocates for the conversation) goes back in front.
    pub fn after(mut self, byte: u8) -> Self {
        self.first = Some(byte);
        self
    }

    /// Tells `observer` of every read from now on.
    pub fn observed_by(mut self, observer: Rc<dyn Observe>) -> Self {
        self.observer = Some(observer);
        self
    }
}

impl Stream<crate::tls::Conn> {
    /// A connection: read like [`Stream::socket`] when it is plaintext, through its `AsyncRead`
    /// (rustls) when it is TLS.
    pub fn conn(conn: crate::tls::Conn) -> Self {
        Stream {
            fd: conn.plain_fd(),
            inner: conn,
            window: WINDOW_MIN,
            observer: None,
            first: None,
        }
    }
}

impl<S: AsRawFd> Stream<S> {
    /// A socket read with `recv(2)` into uninitialised memory while it has data, and through its
    /// `AsyncRead` (which waits for readiness) when it has none. `inner` must be a non-blocking
    /// socket whose reads have no state of their own (glommio's non-buffered streams).
    pub fn socket(inner: S) -> Self {
        Stream {
            fd: Some(inner.as_raw_fd()),
            inner,
            window: WINDOW_MIN,
            observer: None,
            first: None,
        }
    }
}

impl<S: AsyncRead + Unpin> tokio::io::AsyncRead for Stream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = this.read(cx, buf);
        if let (Some(observer), Poll::Ready(Ok(()))) = (&this.observer, &result) {
            observer.received(&buf.filled()[before..]);
        }
        result
    }
}

impl<S: AsyncRead + Unpin> Stream<S> {
    fn read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self;
        if let Some(byte) = this.first.filter(|_| buf.remaining() > 0) {
            this.first = None;
            buf.put_slice(&[byte]);
            return Poll::Ready(Ok(()));
        }
        if let Some(fd) = this.fd.filter(|_| buf.remaining() > 0) {
            if let Some(done) = tailgate_shards::net::recv_uninit(fd, buf) {
                return Poll::Ready(done);
            }
            // The socket has nothing now: wait for readiness through a one-byte read, so no
            // window of the caller's buffer is zeroed (and made resident) for a connection
            // that is only waiting. The next read after the wake-up goes straight to `recv`.
            let mut one = [0u8; 1];
            let read = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut one))?;
            buf.put_slice(&one[..read]);
            return Poll::Ready(Ok(()));
        }
        let want = buf.remaining().min(this.window);
        let slice = buf.initialize_unfilled_to(want);
        let read = ready!(Pin::new(&mut this.inner).poll_read(cx, slice))?;
        buf.advance(read);
        // A read that filled its window may find more: the next may take twice as much. One
        // that did not is what the socket had; the next gets that much and a margin.
        this.window = if read == want && want > 0 {
            want * 2
        } else {
            read + WINDOW_MIN
        };
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> tokio::io::AsyncWrite for Stream<S> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncRead as _;

    /// A reader that returns `chunk` bytes per read, as many as asked up to that.
    struct Chunks {
        left: usize,
        chunk: usize,
        asked: Vec<usize>,
    }

    impl AsyncRead for Chunks {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.asked.push(buf.len());
            let n = buf.len().min(this.chunk).min(this.left);
            buf[..n].fill(7);
            this.left -= n;
            Poll::Ready(Ok(n))
        }
    }

    #[test]
    fn the_window_follows_what_reads_return() {
        let mut stream = Stream::new(Chunks {
            left: 300_000,
            chunk: 100_000,
            asked: Vec::new(),
        });
        let mut storage = vec![std::mem::MaybeUninit::<u8>::uninit(); 1 << 20];
        let mut got = 0;
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        loop {
            let mut buf = ReadBuf::uninit(&mut storage);
            match Pin::new(&mut stream).poll_read(&mut cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
                Poll::Ready(Ok(())) => {
                    assert!(buf.filled().iter().all(|&b| b == 7));
                    got += buf.filled().len();
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, 300_000);
        // 16 KiB, doubling while reads fill it, then what reads return and a margin: never the
        // whole 1 MiB.
        assert_eq!(
            stream.inner.asked[..5],
            [
                16 << 10,
                32 << 10,
                64 << 10,
                128 << 10,
                100_000 + (16 << 10)
            ]
        );
        assert!(stream.inner.asked.iter().all(|&n| n <= 128 << 10));
    }

    /// A real socket read through [`Stream::socket`]: what the socket holds arrives in one
    /// read (a zeroed window would take 16 KiB), every byte arrives in order, and the end of the
    /// stream reads as zero bytes.
    #[test]
    fn a_socket_reads_into_uninitialised_memory() {
        use futures_lite::AsyncWriteExt;
        glommio::LocalExecutor::default().run(async {
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut client = glommio::net::TcpStream::connect(addr).await.unwrap();
            let mut stream = Stream::socket(listener.accept().await.unwrap());
            let mut storage = vec![std::mem::MaybeUninit::<u8>::uninit(); 1 << 20];
            let mut read = async |stream: &mut Stream<_>| {
                let mut buf = ReadBuf::uninit(&mut storage);
                futures_lite::future::poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, &mut buf))
                    .await
                    .unwrap();
                buf.filled().to_vec()
            };

            // Small enough for the socket's buffers, so it is all there before the read.
            client.write_all(&[9u8; 60_000]).await.unwrap();
            client.flush().await.unwrap();
            glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
            let first = read(&mut stream).await;
            assert!(
                first.len() == 60_000 && first.iter().all(|&b| b == 9),
                "the first read took {} bytes",
                first.len()
            );

            let sent: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
            let writer = {
                let sent = sent.clone();
                glommio::spawn_local(async move {
                    client.write_all(&sent).await.unwrap();
                    client.close().await.unwrap();
                })
            };
            let mut got = Vec::new();
            loop {
                let chunk = read(&mut stream).await;
                if chunk.is_empty() {
                    break;
                }
                got.extend_from_slice(&chunk);
            }
            writer.await;
            assert!(
                got == sent,
                "{} bytes, not the {} sent",
                got.len(),
                sent.len()
            );
        });
    }
}
