//! systemd's service notification protocol (sd_notify(3)), for `Type=notify` units: READY=1
//! once every shard serves, WATCHDOG=1 while every shard runs its tasks, STOPPING=1 when the
//! drain begins, with a STATUS= line a `systemctl status` shows.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the Unix socket named by
//! `NOTIFY_SOCKET`: a path, or an abstract name written with a leading `@`. Without the
//! variable (not run by systemd, or another `Type=`) nothing is sent and nothing else changes.
//!
//! One thread, the notifier, does all of it. It reads [`Health`] — shard counts, the draining
//! flag and each shard's heartbeat — every [`POLL`], so readiness is reported within that of
//! the last shard coming up. The watchdog ping goes out every half `WATCHDOG_USEC` (the
//! interval systemd documents) only if every shard's heartbeat moved since the previous ping;
//! a shard stuck in one task makes the ping stop and systemd restart the service after
//! `WatchdogSec`, which `/readyz` alone would not. While draining, pings continue unchecked —
//! shards stop beating by design then, and the drain has its own bound (`TimeoutStopSec`).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::telemetry::Health;

/// How often the notifier looks at the shards' health.
pub const POLL: Duration = Duration::from_millis(50);

/// The shortest watchdog ping interval honoured (a `WatchdogSec` of at least twice it): each
/// ping checks that every shard beat since the last one, and shards beat every
/// [`HEARTBEAT`](crate::lifecycle::HEARTBEAT), seen by this thread within a [`POLL`].
const WATCHDOG_PING_MIN: Duration = crate::lifecycle::HEARTBEAT.saturating_add(POLL);

/// Where notifications go: the socket systemd named.
pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
}

impl Notifier {
    /// The notifier for `NOTIFY_SOCKET` in this process's environment, or `None` when unset
    /// or empty.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(name) if !name.is_empty() => Notifier::to(&name.to_string_lossy()).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for the socket `name`: a path, or `@name` for the abstract namespace.
    pub fn to(name: &str) -> io::Result<Notifier> {
        let to = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
            None if name.starts_with('/') => SocketAddr::from_pathname(name)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("NOTIFY_SOCKET={name:?} is neither an absolute path nor @abstract"),
                ))
            }
        };
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            to,
        })
    }

    /// Sends one notification: `KEY=VALUE` lines.
    pub fn send(&self, state: &str) -> io::Result<()> {
        self.socket.send_to_addr(state.as_bytes(), &self.to)?;
        Ok(())
    }
}

/// The watchdog ping interval systemd asks for: half of `WATCHDOG_USEC`, when it is set and
/// `WATCHDOG_PID` (if set) is this process.
pub fn watchdog_ping_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| (Duration::from_micros(usec) / 2).max(WATCHDOG_PING_MIN))
}

/// Whether every shard's heartbeat moved between `before` and `now`, or which one did not.
fn stalled_shard(before: &[u64], now: &[u64]) -> Option<usize> {
    before.iter().zip(now).position(|(b, n)| b == n)
}

/// The running notifier thread; stopping it (or dropping it) sends nothing more.
pub struct NotifierThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NotifierThread {
    /// Starts the notifier thread for `notifier`, reading `health`; pings the watchdog every
    /// `watchdog` if given.
    pub fn start(
        notifier: Notifier,
        health: Arc<Health>,
        watchdog: Option<Duration>,
    ) -> io::Result<NotifierThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("tailgate-notify".into())
            .spawn({
                let stop = stop.clone();
                move || notify_loop(&notifier, &health, watchdog, &stop)
            })?;
        Ok(NotifierThread {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for NotifierThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn notify_loop(
    notifier: &Notifier,
    health: &Health,
    watchdog: Option<Duration>,
    stop: &AtomicBool,
) {
    let send = |state: &str| {
        if let Err(err) = notifier.send(state) {
            tracing::warn!("systemd notification {state:?} not sent: {err}");
        }
    };
    let mut ready = false;
    let mut stopping = false;
    let mut last_ping = Instant::now();
    let mut beats_at_ping = health.heartbeats();
    let mut stall_logged = false;
    while !stop.load(Ordering::Relaxed) {
        if !ready && health.readiness().is_ok() {
            ready = true;
            send(&format!(
                "READY=1\nSTATUS=serving on {} shard(s)\nMAINPID={}",
                health.shards_total(),
                std::process::id()
            ));
        }
        if !stopping && health.is_draining() {
            stopping = true;
            send("STOPPING=1\nSTATUS=draining: finishing buffered traces and queued batches");
        }
        if let Some(interval) = watchdog {
            if last_ping.elapsed() >= interval {
                let beats = health.heartbeats();
                match stalled_shard(&beats_at_ping, &beats) {
                    // Before every shard is up, a shard still starting has not beaten yet;
                    // systemd's start timeout covers that phase, not the watchdog.
                    Some(shard) if ready && !stopping => {
                        if !stall_logged {
                            tracing::error!(
                                "shard {shard} has not run its tasks for {interval:?}; the \
                                 systemd watchdog ping is withheld, so the service is restarted \
                                 if it stays stuck for WatchdogSec"
                            );
                            stall_logged = true;
                        }
                    }
                    _ => {
                        send("WATCHDOG=1");
                        stall_logged = false;
                    }
                }
                beats_at_ping = beats;
                last_ping = Instant::now();
            }
        }
        std::thread::sleep(POLL);
    }
    // A drain shorter than one poll ends before the loop sees it: say so on the way out.
    if !stopping {
        send("STOPPING=1\nSTATUS=stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_shard_is_the_one_whose_heartbeat_did_not_move() {
        assert_eq!(stalled_shard(&[1, 5, 9], &[2, 6, 10]), None);
        assert_eq!(stalled_shard(&[1, 5, 9], &[2, 5, 10]), Some(1));
        assert_eq!(stalled_shard(&[], &[]), None);
    }

    #[test]
    fn notify_socket_names_are_paths_or_abstract() {
        assert!(Notifier::to("/run/systemd/notify").is_ok());
        assert!(Notifier::to("@tailgate-test").is_ok());
        let err = Notifier::to("relative/path").err().expect("refused");
        assert!(
            err.to_string().contains("neither an absolute path"),
            "{err}"
        );
    }

    #[test]
    fn a_notification_is_one_datagram() {
        let path = std::env::temp_dir().join(format!("tailgate-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        Notifier::to(path.to_str().unwrap())
            .unwrap()
            .send("READY=1\nSTATUS=x")
            .unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=x");
        std::fs::remove_file(&path).unwrap();
    }
}
