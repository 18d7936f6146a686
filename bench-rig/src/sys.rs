//! The rig's system calls that Rust cannot check: the only module of this crate with `unsafe`
//! (the crate root denies `unsafe_code` everywhere else).
//!
//! Each function wraps one call to the operating system behind a safe signature, and each
//! `unsafe` block carries its own `// SAFETY:` argument: why the pointers it passes are valid
//! for what the kernel does with them, and who owns what afterwards.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::Duration;

/// CPU time (user + system) of this process (`libc::RUSAGE_SELF`: every thread) or of the
/// calling thread (`libc::RUSAGE_THREAD`).
pub(crate) fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: `rusage` is plain integers, for which all zero bytes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the rusage struct passed by pointer, which lives on this
    // stack frame for the call.
    unsafe { libc::getrusage(who, &mut usage) };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// The set of `cpus`, each checked to be below `CPU_SETSIZE`.
fn cpu_set(cpus: &[usize]) -> io::Result<libc::cpu_set_t> {
    // SAFETY: `cpu_set_t` is a plain bit array; all zero bytes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cpu {cpu}"),
            ));
        }
        // SAFETY: CPU_SET writes one bit of `set`, which lives on this frame, at an index
        // checked just above to be below CPU_SETSIZE, the set's size in bits.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    Ok(set)
}

/// Pins the calling thread to `cpu`.
pub(crate) fn pin_thread(cpu: usize) -> io::Result<()> {
    let set = cpu_set(&[cpu])?;
    // SAFETY: sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of `set`, which lives on
    // this frame for the call, and applies them to the calling thread (pid 0).
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The CPUs online, whatever this process is pinned to.
pub(crate) fn online_cpus() -> usize {
    // SAFETY: sysconf only reads a system setting.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    (online.max(1) as usize).min(libc::CPU_SETSIZE as usize)
}

/// Lets the calling thread run on every online CPU, whatever its process was pinned to.
pub(crate) fn unpin_thread() -> io::Result<()> {
    let cpus: Vec<usize> = (0..online_cpus()).collect();
    let set = cpu_set(&cpus)?;
    // SAFETY: as in `pin_thread`: the set lives on this frame for the call.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes `command` run on `cpus` only: the child pins itself between fork and exec.
pub(crate) fn pin_child(command: &mut Command, cpus: &[usize]) -> io::Result<()> {
    let set = cpu_set(cpus)?;
    // SAFETY: `pre_exec` is unsafe because the closure runs in the forked child, where only
    // async-signal-safe work is sound; this one only makes the sched_setaffinity system call on
    // a set moved into the closure (no allocation, no locks).
    unsafe {
        command.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    Ok(())
}

/// Makes `command` run at `niceness`: the child sets its own priority between fork and exec.
pub(crate) fn nice_child(command: &mut Command, niceness: i32) {
    // SAFETY: `pre_exec` is unsafe because the closure runs in the forked child, where only
    // async-signal-safe work is sound; this one only makes the setpriority system call for the
    // child itself (no allocation, no locks).
    unsafe {
        command.pre_exec(move || {
            if libc::setpriority(libc::PRIO_PROCESS, 0, niceness) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
}

/// The CPUs this process may run on.
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    let mut set = cpu_set(&[])?;
    // SAFETY: sched_getaffinity writes at most `size_of::<cpu_set_t>()` bytes into `set`, which
    // lives on this frame for the call.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads one bit of `set` at an index below CPU_SETSIZE, its size in
        // bits.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Sends SIGTERM to `child`, which the caller has just seen running (not yet reaped).
pub(crate) fn terminate(child: &Child) {
    // SAFETY: kill takes no pointers; the pid is of a child this process has not reaped yet
    // (the caller's try_wait saw it running), so the pid cannot have been reused.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
}

/// The kernel's clock ticks per second (the unit of `/proc/PID/stat` CPU times), at least 1.
pub(crate) fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf takes no pointers and only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks.max(1) as f64
}
