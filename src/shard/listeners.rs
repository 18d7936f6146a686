//! A shard's receivers: its own SO_REUSEPORT listeners, bound at start, and their accept loops,
//! which end when the shard's stop signal is released.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::Task;

use crate::auth::Gatekeeper;
use crate::ingest::accept::{listen, ListenOptions};
use crate::ingest::grpc::GrpcReceiver;
use crate::ingest::http::HttpReceiver;
use crate::ingest::Ingest;
use crate::plan::ReceiverPlan;
use crate::telemetry::{Health, ReceiverMetrics};
use tailgate_shards::sync::Stop;

/// The shard's bound receivers and the tasks accepting their connections.
pub(super) struct Listeners {
    grpc: Vec<Rc<GrpcReceiver>>,
    http: Vec<Rc<HttpReceiver>>,
    tasks: Vec<Task<()>>,
}

impl Listeners {
    /// Binds every receiver of `plans` on shard `id` with `options` and starts accepting;
    /// returns the listeners and whether any failed to bind (each failure is logged).
    pub(super) fn bind(
        id: usize,
        plans: &[ReceiverPlan],
        options: ListenOptions,
        metrics: Vec<(ReceiverMetrics, ReceiverMetrics)>,
        ingest: &Rc<Ingest>,
        health: &Arc<Health>,
        stop: &Rc<Stop>,
    ) -> (Listeners, bool) {
        let mut listeners = Listeners {
            grpc: Vec::new(),
            http: Vec::new(),
            tasks: Vec::new(),
        };
        let mut failed = false;
        for (receiver, (grpc_metrics, http_metrics)) in plans.iter().zip(metrics) {
            if let Some((addr, settings, tls)) = &receiver.grpc {
                match listen(*addr, options) {
                    Ok(listener) => {
                        let gatekeeper = receiver.auth.grpc.clone().map(|auth| {
                            let metrics = grpc_metrics.auth.clone();
                            Gatekeeper::new(auth, metrics, &receiver.name, "grpc", id)
                        });
                        let grpc = GrpcReceiver::new(
                            ingest.clone(),
                            grpc_metrics,
                            gatekeeper,
                            settings.clone(),
                            health.clone(),
                            stop.clone(),
                            tls.clone(),
                        );
                        listeners.grpc.push(grpc.clone());
                        listeners
                            .tasks
                            .push(glommio::spawn_local(grpc.serve(listener)));
                    }
                    Err(err) => {
                        tracing::error!(
                            "shard {id}: receiver {}: binding gRPC on {addr}: {err}",
                            receiver.name
                        );
                        failed = true;
                    }
                }
            }
            if let Some((addr, settings, tls)) = &receiver.http {
                match listen(*addr, options) {
                    Ok(listener) => {
                        let gatekeeper = receiver.auth.http.clone().map(|auth| {
                            let metrics = http_metrics.auth.clone();
                            Gatekeeper::new(auth, metrics, &receiver.name, "http", id)
                        });
                        let http = HttpReceiver::new(
                            ingest.clone(),
                            http_metrics,
                            gatekeeper,
                            settings.clone(),
                            stop.clone(),
                            tls.clone(),
                        );
                        listeners.http.push(http.clone());
                        listeners
                            .tasks
                            .push(glommio::spawn_local(http.serve(listener)));
                    }
                    Err(err) => {
                        tracing::error!(
                            "shard {id}: receiver {}: binding HTTP on {addr}: {err}",
                            receiver.name
                        );
                        failed = true;
                    }
                }
            }
        }
        (listeners, failed)
    }

    /// Once the stop signal is released: waits for the accept loops to end, then, for at most
    /// `timeout`, for open connections to finish their requests.
    pub(super) async fn close(self, timeout: Duration) {
        for task in self.tasks {
            task.await;
        }
        let deadline = Instant::now() + timeout;
        // An HTTP connection reading a request when the signal came answers it (503, retryable)
        // before it closes; without this wait the process could end first and reset it.
        while (self.grpc.iter().any(|r| r.open_connections() > 0)
            || self.http.iter().any(|r| r.open_connections() > 0))
            && Instant::now() < deadline
        {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
    }
}
