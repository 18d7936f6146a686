//! Whether an exporter's upstream answers, told once for the node: the first failure, a
//! reminder at most every [`REMINDER_INTERVAL`] while it lasts, and the recovery.
//!
//! Without this an unreachable central shows nothing until its batches run out of retries
//! (`retry_on_failure.max_elapsed_time`, 300 s by default): retries are quiet on purpose, one per
//! batch per backoff step on every shard. Here each exporter instance ([`ShardUpstream`], on its
//! shard) knows whether its last attempt was answered; the exporter's node-wide
//! [`UpstreamHealth`] counts how many shards are failing and logs only the changes that matter
//! to an operator: the first shard to fail, the last to recover, and a rate-limited reminder
//! naming the error, how many shards fail and what the reporting shard holds queued. The
//! `tailgate_exporter_upstream_failing` gauge shows the same per shard.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::SendError;
use crate::telemetry::Gauge;

/// The least time between two "still failing" lines for one exporter.
pub const REMINDER_INTERVAL: Duration = Duration::from_secs(30);

/// One exporter's upstream, for the whole node.
#[derive(Debug)]
pub struct UpstreamHealth {
    exporter: String,
    endpoint: String,
    shards: usize,
    failing: AtomicUsize,
    /// When the first of the failing shards began failing, and the last line logged.
    times: Mutex<Times>,
}

#[derive(Debug, Default)]
struct Times {
    failing_since: Option<Instant>,
    last_line: Option<Instant>,
}

impl UpstreamHealth {
    /// The upstream `endpoint` of exporter `exporter`, on a node of `shards` shards.
    pub fn new(exporter: &str, endpoint: &str, shards: usize) -> Arc<Self> {
        Arc::new(UpstreamHealth {
            exporter: exporter.to_string(),
            endpoint: endpoint.to_string(),
            shards,
            failing: AtomicUsize::new(0),
            times: Mutex::new(Times::default()),
        })
    }

    /// How many shards are failing to reach it now.
    pub fn failing_shards(&self) -> usize {
        self.failing.load(Ordering::Relaxed)
    }
}

/// One exporter instance's view of its upstream, on its shard.
pub struct ShardUpstream {
    health: Arc<UpstreamHealth>,
    shard: usize,
    failing_since: Cell<Option<Instant>>,
    failed_attempts: Cell<u64>,
    gauge: Gauge,
}

impl ShardUpstream {
    /// Shard `shard`'s instance of the exporter `health` watches; `gauge` is its
    /// `tailgate_exporter_upstream_failing` cell.
    pub fn new(health: Arc<UpstreamHealth>, shard: usize, gauge: Gauge) -> Self {
        ShardUpstream {
            health,
            shard,
            failing_since: Cell::new(None),
            failed_attempts: Cell::new(0),
            gauge,
        }
    }

    /// An attempt failed with `err`; the exporter's queue holds `queued` batches.
    pub fn failed(&self, err: &SendError, queued: usize) {
        self.failed_attempts.set(self.failed_attempts.get() + 1);
        let health = &self.health;
        let now = Instant::now();
        if self.failing_since.get().is_none() {
            self.failing_since.set(Some(now));
            self.gauge.set(1);
            let before = health.failing.fetch_add(1, Ordering::Relaxed);
            if before == 0 {
                let mut times = health.times.lock().expect("upstream times");
                times.failing_since = Some(now);
                times.last_line = Some(now);
                drop(times);
                tracing::warn!(
                    "exporter {} ({}): the upstream is failing: {err}; retrying \
                     (retry_on_failure), batches wait in the sending queue (shard {} holds {queued}); \
                     a batch out of retries is counted in otelcol_exporter_send_failed_*",
                    health.exporter,
                    health.endpoint,
                    self.shard,
                );
                return;
            }
        }
        let mut times = health.times.lock().expect("upstream times");
        if times
            .last_line
            .is_some_and(|last| now.duration_since(last) < REMINDER_INTERVAL)
        {
            return;
        }
        times.last_line = Some(now);
        let for_how_long = times
            .failing_since
            .map_or(Duration::ZERO, |since| now - since);
        drop(times);
        tracing::warn!(
            "exporter {} ({}): still failing after {:.0} s: {err}; {} of {} shard(s) failing, \
             shard {} holds {queued} batch(es) queued",
            health.exporter,
            health.endpoint,
            for_how_long.as_secs_f64(),
            health.failing.load(Ordering::Relaxed),
            health.shards,
            self.shard,
        );
    }

    /// An attempt was answered: the upstream is reachable again from this shard.
    pub fn answered(&self) {
        let Some(since) = self.failing_since.take() else {
            return;
        };
        self.gauge.set(0);
        let failed = self.failed_attempts.replace(0);
        let health = &self.health;
        let before = health.failing.fetch_sub(1, Ordering::Relaxed);
        if before == 1 {
            let mut times = health.times.lock().expect("upstream times");
            let since = times.failing_since.take().unwrap_or(since);
            times.last_line = None;
            drop(times);
            tracing::info!(
                "exporter {} ({}): the upstream answers again after {:.1} s of failures \
                 (shard {} saw {failed} failed attempt(s))",
                health.exporter,
                health.endpoint,
                since.elapsed().as_secs_f64(),
                self.shard,
            );
        }
    }
}

impl Drop for ShardUpstream {
    /// An instance replaced by a reload (or shut down) while failing stops counting as failing.
    fn drop(&mut self) {
        if self.failing_since.get().is_some() {
            self.health.failing.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> SendError {
        SendError::Connect {
            endpoint: "127.0.0.1:1".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        }
    }

    #[test]
    fn shards_failing_and_recovering_are_counted_for_the_node() {
        let health = UpstreamHealth::new("otlp/central", "127.0.0.1:1", 2);
        let gauges = [Gauge::default(), Gauge::default()];
        let shards = [
            ShardUpstream::new(health.clone(), 0, gauges[0].clone()),
            ShardUpstream::new(health.clone(), 1, gauges[1].clone()),
        ];
        shards[0].failed(&refused(), 3);
        shards[0].failed(&refused(), 4);
        assert_eq!(health.failing_shards(), 1);
        assert_eq!(gauges[0].get(), 1);
        shards[1].failed(&refused(), 0);
        assert_eq!(health.failing_shards(), 2);
        shards[0].answered();
        assert_eq!((health.failing_shards(), gauges[0].get()), (1, 0));
        shards[0].answered();
        assert_eq!(health.failing_shards(), 1, "answering twice counts once");
        let [_, failing] = shards;
        drop(failing);
        assert_eq!(
            health.failing_shards(),
            0,
            "a dropped instance stops counting"
        );
    }
}
