//! Child processes for a run: started pinned to CPUs, watched through `/proc`, stopped politely.
//!
//! Pinning is `sched_setaffinity` in the child between fork and exec, so every thread the
//! program starts inherits the set. A `Sampler` thread reads the system's CPU time (utime +
//! stime from `/proc/PID/stat`) and resident memory (`VmRSS` from `/proc/PID/status`) every
//! `SAMPLE_INTERVAL` until stopped.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How often the sampler reads `/proc`.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_millis(50);
/// How long a stopped process has to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A free loopback address (bound, read, released: another process could take it meanwhile, a
/// risk a benchmark on its own machine takes).
pub(crate) fn free_addr() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Waits until `addr` accepts a connection, for at most `timeout`.
pub(crate) fn wait_listening(
    addr: SocketAddr,
    timeout: Duration,
    child: &mut Child,
) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "exited ({status}) before listening on {addr}"
            )));
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing listening on {addr} after {timeout:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The body of `GET /metrics` at `addr` (HTTP/1.0, at most `SCRAPE_BYTES_MAX` bytes, 2 s).
pub(crate) fn scrape_metrics(addr: SocketAddr) -> io::Result<String> {
    const SCRAPE_BYTES_MAX: u64 = 16 << 20;
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream
        .take(SCRAPE_BYTES_MAX)
        .read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.to_string())
        }
        _ => Err(io::Error::other(format!(
            "GET /metrics on {addr}: no 200 answer"
        ))),
    }
}

/// Makes `command` run on `cpus` only.
pub(crate) fn pin(command: &mut Command, cpus: &[usize]) -> io::Result<()> {
    crate::sys::pin_child(command, cpus)
}

/// Makes `command` run at `niceness` (a positive value yields the CPU to other processes on it).
pub(crate) fn nice(command: &mut Command, niceness: i32) {
    crate::sys::nice_child(command, niceness)
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    crate::sys::allowed_cpus()
}

/// Sends SIGTERM and waits for the exit, then SIGKILL after [`STOP_GRACE`].
pub(crate) fn stop(child: &mut Child) -> io::Result<std::process::ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    crate::sys::terminate(child);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()
}

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub at: Instant,
    /// User + system CPU time.
    pub cpu_s: f64,
    pub rss_bytes: u64,
}

/// Reads `pid`'s CPU time and RSS; `None` once it is gone.
pub(crate) fn read_proc(pid: u32) -> Option<Sample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // utime and stime are fields 14 and 15; `fields[0]` is field 3 (state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = crate::sys::clock_ticks_per_second();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(Sample {
        at,
        cpu_s: (utime + stime) as f64 / ticks,
        rss_bytes: rss_kib * 1024,
    })
}

/// Samples a process on a thread of its own until stopped.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> io::Result<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::Builder::new()
            .name("sampler".into())
            .spawn(move || {
                let mut samples = Vec::new();
                while !flag.load(Ordering::Relaxed) {
                    match read_proc(pid) {
                        Some(sample) => samples.push(sample),
                        None => break,
                    }
                    thread::sleep(SAMPLE_INTERVAL);
                }
                samples
            })?;
        Ok(Sampler { stop, thread })
    }

    /// Stops sampling; returns the samples in time order.
    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The last sample at or before `at`, else the first.
pub(crate) fn sample_at(samples: &[Sample], at: Instant) -> Option<Sample> {
    samples
        .iter()
        .rev()
        .find(|s| s.at <= at)
        .or(samples.first())
        .copied()
}

/// The first sample at or after `at`, else the last.
pub(crate) fn sample_after(samples: &[Sample], at: Instant) -> Option<Sample> {
    samples
        .iter()
        .find(|s| s.at >= at)
        .or(samples.last())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn some_cpu_is_allowed() {
        assert!(!allowed_cpus().unwrap().is_empty());
    }

    #[test]
    fn reads_this_process() {
        let sample = read_proc(std::process::id()).expect("this process is readable");
        assert!(sample.rss_bytes > 0);
        assert!(sample.cpu_s >= 0.0);
    }

    #[test]
    fn pinned_children_run_on_their_cpus() {
        let mut command = Command::new("sh");
        command.args(["-c", "grep Cpus_allowed_list /proc/self/status"]);
        pin(&mut command, &[0]).unwrap();
        let out = command.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.trim().ends_with("\t0"), "{text}");
    }

    #[test]
    fn niced_children_run_at_their_niceness() {
        let mut command = Command::new("sh");
        command.args(["-c", "cat /proc/self/stat"]);
        nice(&mut command, 10);
        let out = command.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // Field 19, counted after the parenthesised command name.
        let after_name = &text[text.rfind(')').unwrap() + 2..];
        let niceness: i32 = after_name.split(' ').nth(16).unwrap().parse().unwrap();
        assert_eq!(niceness, 10, "{text}");
    }
}
