//! Bells: how another thread, or a signal handler, wakes one task on a shard at once, without
//! the task looking at a flag on a timer.
//!
//! A shard is a single-threaded executor that sleeps in `io_uring_enter` while it has nothing
//! to do. Shutdown and reload begin off the shards (a signal, the main thread), so each shard
//! used to look at a flag every 20 ms: two tasks waking 50 times a second on every shard of an
//! idle gateway, each wake a system call or two. A bell is one end of a Unix socket pair: the
//! ringer writes a byte (never blocking: a full socket already holds a ring), and the task on
//! the shard awaits a byte on the other end through the shard's ring like any socket read, so
//! it sleeps until rung. A signal handler rings it too: the handler's write is async-signal-safe
//! (`signal_hook::low_level::pipe`).
//!
//! A bell wakes; it carries nothing. What it announces (the shutdown flag, a posted reload) is
//! set before the ring and read after the wake, so a ring is never lost: a byte written before
//! the task reads is read by it, and a ring between the task's look at its flag and its next
//! wait leaves a byte that ends that wait at once.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Duration;

/// How long a task waits before looking again when its bell cannot be read (a socket error it
/// should never see): it falls back to polling rather than missing a ring or spinning.
const UNREADABLE_RETRY: Duration = Duration::from_millis(20);

/// One bell: rung from any thread, heard by one task on one shard.
pub(crate) struct Bell {
    /// The ringing end (non-blocking).
    ringer: UnixStream,
    /// The hearing end, until a shard's task takes it ([`Bell::take_ear`]).
    ear: Mutex<Option<UnixStream>>,
}

impl Bell {
    /// One bell for each of `shards` shards.
    pub(crate) fn per_shard(shards: usize) -> io::Result<Vec<Bell>> {
        (0..shards).map(|_| Bell::new()).collect()
    }

    /// A new bell, not rung.
    pub(crate) fn new() -> io::Result<Bell> {
        let (ringer, ear) = UnixStream::pair()?;
        ringer.set_nonblocking(true)?;
        Ok(Bell {
            ringer,
            ear: Mutex::new(Some(ear)),
        })
    }

    /// Rings the bell: the task hearing it wakes (now, or at once when it next waits). Never
    /// blocks; rings before the task reads fold into one wake.
    pub(crate) fn ring(&self) {
        match (&self.ringer).write(&[1]) {
            Ok(_) => {}
            // Full: the task has rings it has not read yet, which will wake it.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => tracing::warn!("a shard's bell could not be rung: {err}"),
        }
    }

    /// Rings the bell whenever the process receives `signal` (from the signal handler).
    pub(crate) fn ring_on_signal(&self, signal: i32) -> io::Result<()> {
        signal_hook::low_level::pipe::register(signal, self.ringer.try_clone()?)?;
        Ok(())
    }

    /// The hearing end, for the one task that waits on this bell; `None` once taken. Call it on
    /// the shard whose task will wait: the socket joins that shard's ring.
    pub(crate) fn take_ear(&self) -> Option<Ear> {
        let ear = self.ear.lock().expect("bell's ear").take()?;
        Some(Ear {
            socket: crate::sys::glommio_unix_stream(ear),
            failed: false,
        })
    }
}

/// A bell's hearing end, on the shard whose task waits on it.
pub(crate) struct Ear {
    socket: glommio::net::UnixStream,
    /// Whether a read failed: from then on [`Ear::heard`] waits [`UNREADABLE_RETRY`] instead.
    failed: bool,
}

impl Ear {
    /// Waits until the bell is rung (returns at once if it was rung since the last wait), and
    /// reads every ring so far.
    pub(crate) async fn heard(&mut self) {
        use futures_lite::AsyncReadExt;
        if !self.failed {
            let mut rings = [0u8; 64];
            match self.socket.read(&mut rings).await {
                Ok(n) if n > 0 => return,
                Ok(_) => tracing::warn!(
                    "a shard's bell was closed; looking every {UNREADABLE_RETRY:?} instead"
                ),
                Err(err) => tracing::warn!(
                    "a shard's bell cannot be read ({err}); looking every {UNREADABLE_RETRY:?} \
                     instead"
                ),
            }
            self.failed = true;
        }
        glommio::timer::sleep(UNREADABLE_RETRY).await;
    }
}

/// The next instant after now on the shard's beat: every multiple of `period` since the first
/// call in this process. Periodic tasks that sleep to it (heartbeat, memory, the sampler's idle
/// tick) wake together, so an idle shard wakes once a `period` instead of once a task.
pub(crate) fn next_beat(period: Duration) -> std::time::Instant {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    let period_ns = period.as_nanos().max(1);
    let since = origin.elapsed().as_nanos();
    let beats = since / period_ns + 1;
    origin + Duration::from_nanos(u64::try_from(beats * period_ns).unwrap_or(u64::MAX))
}

/// Sleeps until [`next_beat`] of `period`.
pub(crate) async fn sleep_to_beat(period: Duration) {
    let at = next_beat(period);
    glommio::timer::sleep(at.saturating_duration_since(std::time::Instant::now())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring wakes the waiting task; rings before a wait are not lost; many rings fold.
    #[test]
    fn a_ring_wakes_the_ear_and_none_is_lost() {
        let bell = std::sync::Arc::new(Bell::new().unwrap());
        glommio::LocalExecutor::default().run({
            let bell = bell.clone();
            async move {
                let mut ear = bell.take_ear().expect("the ear");
                assert!(bell.take_ear().is_none(), "one task hears a bell");
                // Rung before the wait: the wait returns at once.
                bell.ring();
                ear.heard().await;
                // Rung from another thread while waiting.
                let ringer = std::thread::spawn({
                    let bell = bell.clone();
                    move || {
                        std::thread::sleep(Duration::from_millis(30));
                        bell.ring();
                    }
                });
                ear.heard().await;
                ringer.join().unwrap();
                // More rings than the socket holds: the ringer never blocks, the ear wakes.
                for _ in 0..100_000 {
                    bell.ring();
                }
                ear.heard().await;
                assert!(!ear.failed);
            }
        });
    }

    /// The beat is on a grid: two calls within one period give the same instant, after now.
    #[test]
    fn beats_are_shared_instants() {
        let period = Duration::from_millis(100);
        let a = next_beat(period);
        let b = next_beat(period);
        let now = std::time::Instant::now();
        assert!(a > now - Duration::from_millis(1) && a <= now + period);
        assert!(b == a || b == a + period, "{a:?} {b:?}");
    }
}
