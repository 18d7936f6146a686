//! Glommio sockets as HTTP/2's tokio I/O traits, without zeroing read buffers.
//!
//! h2 reads into the spare capacity of its frame buffer, which it hands over uninitialised;
//! glommio's streams read into initialised `&mut [u8]` only, so an adapter must zero what it
//! lends. `tokio_util::compat` zeroes all of the spare capacity on every read, and with large
//! HTTP/2 frames (the receiver allows 1 MiB) that capacity is far larger than what one read
//! returns: under load the zeroing was 3.4 % of gateway CPU. [`Stream`] zeroes a window that
//! follows what reads return (doubling while reads fill it, else the last read plus 16 KiB; at
//! most the spare capacity), so zeroing stays close to the bytes received. Writes pass straight
//! through.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use tokio::io::ReadBuf;

/// The smallest read window.
const WINDOW_MIN: usize = 16 << 10;

/// A futures-io stream as a tokio-io one.
pub struct Stream<S> {
    inner: S,
    /// How many bytes the next read may fill.
    window: usize,
}

impl<S> Stream<S> {
    pub fn new(inner: S) -> Self {
        Stream {
            inner,
            window: WINDOW_MIN,
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
}
