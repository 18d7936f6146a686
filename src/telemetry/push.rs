//! Periodic readers (`service.telemetry.metrics.readers[].periodic`): the self-metrics pushed
//! over OTLP every interval, as the Collector's own periodic reader pushes them.
//!
//! Each reader is a thread of its own (`tailgate-push`) with a small glommio executor, far from
//! the shards, sending through the exporters' clients ([`crate::export::OneShot`]): TLS,
//! proxies and compression as they are there. A push is bounded by the reader's timeout and not
//! retried: the next interval sends fresh cumulative values. A push that fails is logged once,
//! and once again when pushing works again. At shutdown a last push goes out (every reader's at
//! once, each within [`LAST_PUSH_MAX`] at most), as the SDK's reader collects once more when it
//! stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

use super::cell::Counter;
use super::otlp::export_request;
use super::registry::PublishedRegistry;
use crate::export::{Batch, ExporterSettings, OneShot};
use tailgate_wire::Signal;

/// How often a waiting reader looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// One periodic reader's thread; dropping it stops the thread after a last push.
pub struct MetricsPusher {
    stop: Arc<AtomicBool>,
    thread: Option<ExecutorJoinHandle<()>>,
}

/// The most the last push, at shutdown, may take: a central that is down does not hold the
/// process's exit for a reader's whole timeout.
const LAST_PUSH_MAX: Duration = Duration::from_secs(5);

/// Every periodic reader of the node; dropping it stops them all first, so their last pushes
/// go out together, then waits for each.
#[derive(Default)]
pub struct Pushers(pub Vec<MetricsPusher>);

impl Drop for Pushers {
    fn drop(&mut self) {
        for pusher in &self.0 {
            pusher.stop();
        }
        self.0.clear();
    }
}

/// What a reader pushes, where and how often.
pub struct PushTarget {
    /// For logs: `telemetry reader N (ENDPOINT)`.
    pub label: String,
    /// The client: `otlp` for gRPC, `otlphttp` for HTTP.
    pub settings: ExporterSettings,
    /// How often.
    pub interval: Duration,
    /// The bound on one push.
    pub timeout: Duration,
    /// `tailgate_telemetry_pushes{outcome="sent"}`.
    pub sent: Counter,
    /// `tailgate_telemetry_pushes{outcome="failed"}`.
    pub failed: Counter,
}

impl MetricsPusher {
    /// Starts pushing `registry` (the current one at each push) to `target`, under `resource`;
    /// `started` is the process's start, the start of every cumulative point.
    pub fn start(
        target: PushTarget,
        registry: Arc<PublishedRegistry>,
        resource: Vec<(String, String)>,
        started: (Instant, SystemTime),
    ) -> std::io::Result<MetricsPusher> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = LocalExecutorBuilder::new(Placement::Unbound)
            .name("tailgate-push")
            .ring_depth(32)
            .spawn(move || async move {
                run(target, &registry, &resource, started, &flag).await;
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(MetricsPusher {
            stop,
            thread: Some(thread),
        })
    }
}

impl MetricsPusher {
    /// Tells the thread to push once more and end, without waiting for it: stopping every
    /// reader first lets their last pushes go out together.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Drop for MetricsPusher {
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn run(
    target: PushTarget,
    registry: &PublishedRegistry,
    resource: &[(String, String)],
    started: (Instant, SystemTime),
    stop: &AtomicBool,
) {
    let client = match OneShot::new(&target.settings) {
        Ok(client) => client,
        Err(err) => {
            tracing::error!("{}: cannot push self-metrics: {err}", target.label);
            return;
        }
    };
    let mut failing = false;
    let mut next = Instant::now() + target.interval;
    loop {
        let stopping = loop {
            if stop.load(Ordering::Acquire) {
                break true;
            }
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            glommio::timer::sleep(left.min(STOP_POLL)).await;
        };
        next = (next + target.interval).max(Instant::now());
        let encoded = export_request(&registry.current(), resource, started);
        let batch = Batch {
            signal: Signal::Metrics,
            bytes: encoded.bytes.into(),
            items: encoded.points,
            metadata: Default::default(),
        };
        let timeout = if stopping {
            target.timeout.min(LAST_PUSH_MAX)
        } else {
            target.timeout
        };
        let send = async { client.send(&batch).await.map_err(|e| e.to_string()) };
        let deadline = async {
            glommio::timer::sleep(timeout).await;
            Err(format!("no response within {timeout:?}"))
        };
        // A regular push gives way to the stop signal, which makes the last one at once.
        let stopped = async {
            if stopping {
                return std::future::pending().await;
            }
            while !stop.load(Ordering::Acquire) {
                glommio::timer::sleep(STOP_POLL).await;
            }
            Err("stopped".to_string())
        };
        let sent =
            futures_lite::future::or(send, futures_lite::future::or(deadline, stopped)).await;
        if sent.as_ref().is_err_and(|e| e == "stopped") {
            continue;
        }
        match &sent {
            Ok(_) => target.sent.inc(),
            Err(_) => target.failed.inc(),
        }
        match sent {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("{}: pushing self-metrics works again", target.label);
            }
            Ok(_) => {}
            Err(err) => {
                if err.starts_with("no response within") {
                    // The connection may be black-holed; the clients drop it themselves on
                    // the errors that break one.
                    client.forget_connection();
                }
                if !failing {
                    failing = true;
                    tracing::warn!(
                        "{}: pushing self-metrics failed: {err}; the next interval tries again \
                         (logged once until it works)",
                        target.label
                    );
                }
            }
        }
        if stopping {
            return;
        }
    }
}
