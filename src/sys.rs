//! The gateway's system calls that Rust cannot check: the only module of this crate with
//! `unsafe` (the crate root denies `unsafe_code` everywhere else).
//!
//! Each function here wraps one call to the operating system behind a safe signature, and each
//! `unsafe` block carries its own `// SAFETY:` argument: why the pointers it passes are valid
//! for what the kernel does with them, and who owns what afterwards.

use std::io;
use std::os::fd::RawFd;

use glommio::net::TcpListener;
use tokio::io::ReadBuf;

/// The process's `RLIMIT_NOFILE`: (soft limit, hard limit).
pub(crate) fn open_files_limits() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the `rlimit` struct passed by pointer, which lives on this
    // stack frame for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// Sets the process's `RLIMIT_NOFILE` to `soft` (and `hard`).
pub(crate) fn set_open_files_limits(soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the `rlimit` struct passed by pointer, which lives on this
    // stack frame for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A glommio listener that takes over `socket`, which must be bound and listening.
pub(crate) fn listener_from_socket(socket: socket2::Socket) -> TcpListener {
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    // SAFETY: the descriptor is the caller's open TCP socket; `into_raw_fd` ends socket2's
    // ownership of it, so the glommio listener built from it is its only owner and the only
    // one to close it.
    unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) }
}

/// A non-blocking `recv(2)` on `fd` into `buf`'s unfilled (uninitialised) part, never zeroing
/// it: `None` when the socket has nothing now.
pub(crate) fn recv_uninit(fd: RawFd, buf: &mut ReadBuf<'_>) -> Option<io::Result<()>> {
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
