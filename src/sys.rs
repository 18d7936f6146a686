//! The gateway's system calls that Rust cannot check: the only module of this crate with
//! `unsafe` (the crate root denies `unsafe_code` everywhere else).
//!
//! Each function here wraps one call to the operating system behind a safe signature, and each
//! `unsafe` block carries its own `// SAFETY:` argument: why the pointers it passes are valid
//! for what the kernel does with them, and who owns what afterwards.

use std::io;

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

/// The process's `RLIMIT_MEMLOCK` in bytes: (soft limit, hard limit); `libc::RLIM_INFINITY`
/// for no limit.
pub(crate) fn locked_memory_limits() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the `rlimit` struct passed by pointer, which lives on this
    // stack frame for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
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

/// Why one gzip member could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GzipMemberError {
    /// The bytes are not a valid gzip member (header, DEFLATE data, CRC-32 or size).
    BadData,
    /// The member inflates to more than the room it was given.
    InsufficientSpace,
}

/// libdeflate's whole-buffer gzip decoder, one member at a time.
///
/// libdeflate inflates about twice as fast as a streaming inflater (docs/BENCHMARKS.md,
/// "Compression"), because it decodes a whole member into one buffer. Its safe wrapper crate
/// calls the variant that does not report how much input a member used, so bytes after the
/// first member would go unseen; this calls `libdeflate_gzip_decompress_ex`, which does, so a
/// body of several members (which RFC 1952 allows) is read whole.
pub(crate) struct GzipInflater {
    decompressor: std::ptr::NonNull<libdeflate_sys::libdeflate_decompressor>,
}

impl GzipInflater {
    /// A new decompressor (about 10 KiB of tables, allocated once and reused).
    pub(crate) fn new() -> GzipInflater {
        // SAFETY: takes no arguments; returns an owned decompressor or null when out of memory.
        let raw = unsafe { libdeflate_sys::libdeflate_alloc_decompressor() };
        let decompressor = std::ptr::NonNull::new(raw)
            .unwrap_or_else(|| std::alloc::handle_alloc_error(std::alloc::Layout::new::<u64>()));
        GzipInflater { decompressor }
    }

    /// Inflates the gzip member at the start of `input`, appending at most `room` bytes to
    /// `out` (reserving them first): the count of input bytes the member took, header and
    /// trailer included. On an error nothing is appended.
    pub(crate) fn member(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        room: usize,
    ) -> Result<usize, GzipMemberError> {
        out.reserve_exact(room);
        let spare = out.spare_capacity_mut();
        let room = room.min(spare.len());
        let mut consumed = 0usize;
        let mut produced = 0usize;
        // SAFETY: the decompressor is this value's own, live until drop, and used by one thread
        // at a time (`&mut self`). `input` is valid for reads of its length for the call. The
        // output pointer and `room` describe part of `out`'s spare capacity, which the call may
        // write and which nothing reads meanwhile; libdeflate writes at most `room` bytes there
        // and reads no output byte it has not written. The two counts are locals it writes.
        let result = unsafe {
            libdeflate_sys::libdeflate_gzip_decompress_ex(
                self.decompressor.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                spare.as_mut_ptr().cast(),
                room,
                &mut consumed,
                &mut produced,
            )
        };
        match result {
            libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS => {
                assert!(produced <= room && consumed <= input.len());
                let len = out.len() + produced;
                // SAFETY: on success libdeflate wrote exactly `produced` bytes from the start of
                // the spare capacity (checked to lie within `room`, itself within the spare
                // capacity), so the first `len` bytes of `out` are initialised.
                unsafe { out.set_len(len) };
                Ok(consumed)
            }
            libdeflate_sys::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => {
                Err(GzipMemberError::InsufficientSpace)
            }
            // BAD_DATA, and SHORT_OUTPUT, which the `_ex` form with an output count never
            // returns.
            _ => Err(GzipMemberError::BadData),
        }
    }
}

impl Drop for GzipInflater {
    fn drop(&mut self) {
        // SAFETY: the decompressor was allocated by `libdeflate_alloc_decompressor`, is owned by
        // this value alone, and is freed once, here.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.decompressor.as_ptr()) }
    }
}

/// mimalloc's `mi_option_purge_delay`, by its place in `mi_option_e` (mimalloc v3's
/// `include/mimalloc.h`, the version libmimalloc-sys 0.1.49 builds; its Rust bindings name
/// the options before and after it, 14 and 16, but not this one).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc v3's default purge delay, in milliseconds: what the option reads before it is set,
/// which tells that [`MI_OPTION_PURGE_DELAY`] is the option meant.
pub(crate) const MI_PURGE_DELAY_DEFAULT_MS: std::os::raw::c_long = 1000;

/// Tells the allocator to keep the memory the gateway frees instead of returning it to the
/// system a second later (mimalloc's purge), unless `MIMALLOC_PURGE_DELAY` says otherwise.
///
/// Tail sampling frees what it buffered a decision wait after allocating it, and allocates as
/// much again for new traces. Returned to the system, that memory came back as fresh pages the
/// kernel had to zero: on the realistic scenario, 20 times the page faults, and page zeroing
/// was the largest single cost of the gateway (docs/BENCHMARKS.md). What the gateway holds is
/// bounded by its memory budget, so what the allocator keeps is bounded by the budget's peak.
/// Returns the delay the allocator had, or `None` when the option did not read as expected
/// (another mimalloc), in which case nothing is changed.
pub(crate) fn keep_freed_memory() -> Option<std::os::raw::c_long> {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return None;
    }
    // SAFETY: reads one option by index; any index below the option count is valid, and 15
    // is below mimalloc v3's 40-odd options.
    let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
    if before != MI_PURGE_DELAY_DEFAULT_MS {
        return None;
    }
    // SAFETY: sets that same option; mimalloc reads the purge delay on each purge, so setting it
    // while threads allocate is allowed (options are plain integers it reads atomically).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    Some(before)
}

/// Sets the allocator's purge delay to `delay_ms` (-1: keep freed memory; 0: return it at
/// once). Only for a process where [`keep_freed_memory`] found the option it expects.
pub(crate) fn set_purge_delay(delay_ms: std::os::raw::c_long) {
    // SAFETY: as in `keep_freed_memory`: sets one option, by an index below the option count,
    // which mimalloc reads atomically on each purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, delay_ms) };
}

/// The kernel's clock ticks a second (`sysconf(_SC_CLK_TCK)`), the unit of `/proc` CPU times;
/// 100 when the call fails.
pub(crate) fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a configuration value; it takes no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// The size of a memory page in bytes (`sysconf(_SC_PAGESIZE)`), the unit of
/// `/proc/self/statm`; 4096 when the call fails.
pub(crate) fn page_bytes() -> u64 {
    // SAFETY: sysconf reads a configuration value; it takes no pointers.
    let bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(bytes).ok().filter(|&b| b > 0).unwrap_or(4096)
}

/// `socket` as a glommio socket of the calling shard: its reads go through the shard's ring.
/// Must be called on a glommio executor.
pub(crate) fn glommio_unix_stream(
    socket: std::os::unix::net::UnixStream,
) -> glommio::net::UnixStream {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: `into_raw_fd` hands over the descriptor of an open, connected Unix stream socket
    // that nothing else owns any more; glommio's stream takes ownership and closes it on drop.
    unsafe { glommio::net::UnixStream::from_raw_fd(socket.into_raw_fd()) }
}

/// Takes an exclusive `flock` on `file` without waiting: `Err` with `WouldBlock` if another
/// open file description holds it. Released when the file is closed.
pub(crate) fn try_lock_exclusive(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock takes a descriptor and flags, no pointers; `file` keeps the descriptor open
    // for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `parts`, one after the other, at `offset` of the open file `fd`, with `pwritev`:
/// the kernel copies straight from them, so a caller holding a record's header and body apart
/// needs no buffer joining them. A short write (a disk nearly full) goes on with the rest; a
/// write that takes nothing is an error. Blocks the calling thread for the copy into the page
/// cache (and, on a filesystem that needs it, block allocation).
pub(crate) fn pwrite_all(fd: std::os::fd::RawFd, parts: &[&[u8]], offset: u64) -> io::Result<()> {
    const IOVECS_MAX: usize = 8;
    assert!(parts.len() <= IOVECS_MAX, "at most {IOVECS_MAX} parts");
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut done = 0usize;
    while done < total {
        let mut iovecs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; IOVECS_MAX];
        let mut count = 0;
        let mut skip = done;
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            let rest = &part[skip..];
            skip = 0;
            iovecs[count] = libc::iovec {
                iov_base: rest.as_ptr() as *mut libc::c_void,
                iov_len: rest.len(),
            };
            count += 1;
        }
        let at = libc::off_t::try_from(offset + done as u64)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset past off_t"))?;
        // SAFETY: each iovec points into a slice of `parts`, borrowed for the whole call, with
        // its exact length; pwritev only reads through them. `count` ≤ IOVECS_MAX entries are
        // initialised.
        let written = unsafe { libc::pwritev(fd, iovecs.as_ptr(), count as libc::c_int, at) };
        if written < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if written == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("the file took no bytes after {done} of {total} (is the disk full?)"),
            ));
        }
        done += written as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_set_and_it_is_set_once() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            assert_eq!(keep_freed_memory(), None);
            return;
        }
        // The first call finds mimalloc v3's default purge delay at index 15, and sets it.
        assert_eq!(keep_freed_memory(), Some(MI_PURGE_DELAY_DEFAULT_MS));
        // SAFETY: reads the option just set.
        let now = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(now, -1);
        // Set already: a second call changes nothing.
        assert_eq!(keep_freed_memory(), None);
    }
}
