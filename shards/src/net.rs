//! Socket primitives the gateway and the bench rig both build on: a glommio listener from a
//! socket configured with socket2, and a non-blocking `recv(2)` into tokio's uninitialised read
//! buffers (h2 lends its spare capacity uninitialised; glommio reads only into initialised
//! slices, and zeroing that capacity on every read cost measurable CPU).

use std::io;
use std::os::fd::RawFd;

use glommio::net::TcpListener;
use tokio::io::ReadBuf;

/// A glommio listener that takes over `socket`, which must be bound and listening.
pub fn listener_from_socket(socket: socket2::Socket) -> TcpListener {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: the descriptor is the caller's open TCP socket; `into_raw_fd` ends socket2's
    // ownership of it, so the glommio listener built from it is its only owner and the only
    // one to close it.
    unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) }
}

/// A non-blocking `recv(2)` on `fd` into `buf`'s unfilled (uninitialised) part, never zeroing
/// it: `None` when the socket has nothing now.
pub fn recv_uninit(fd: RawFd, buf: &mut ReadBuf<'_>) -> Option<io::Result<()>> {
    // SAFETY: `unfilled_mut` is unsafe because it hands out possibly uninitialised bytes, which
    // must not be de-initialised again; this slice is only passed to `recv` below as a raw
    // pointer and length, which the kernel writes to and never reads from.
    let unfilled = unsafe { buf.unfilled_mut() };
    // SAFETY: the pointer and length describe `unfilled`, memory this call may write for its
    // whole duration (it is borrowed from `buf` until then); `recv` writes at most `len` bytes
    // and returns how many, or -1 having written nothing that is counted.
    let n = unsafe {
        libc::recv(
            fd,
            unfilled.as_mut_ptr().cast(),
            unfilled.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => None,
            _ => Some(Err(err)),
        };
    }
    let n = n as usize;
    // SAFETY: `recv` returned `n` (non-negative, at most `unfilled.len()`): it wrote the first
    // `n` bytes of the unfilled part, so they are initialised.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Some(Ok(()))
}
