//! The `loadbalancing` exporter's families, with the Collector's names and labels:
//! `otelcol_loadbalancer_num_backends{resolver}`, `_num_backend_updates{resolver}`,
//! `_num_resolutions{success,resolver}`, and per backend `_backend_outcome{endpoint,success}`
//! and `_backend_latency{endpoint}` (ms, the Collector's buckets). Every series also carries
//! `exporter` (a node may run several balancers) and `shard`.
//!
//! The per-backend families are late ([`LateFamily`]): a DNS resolver's backends are known
//! only while running, so each shard registers a backend's series when it first routes to it.

use super::cell::{Counter, Gauge, Histogram};
use super::registry::{LateFamily, RegistryBuilder};

/// The Collector's `loadbalancer_backend_latency` bucket bounds, in ms.
pub static BACKEND_LATENCY_MS_BOUNDS: [u64; 10] = [5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/// One load balancer's cells on one shard.
#[derive(Debug, Clone)]
pub struct LoadBalancerMetrics {
    /// `otelcol_loadbalancer_num_backends`: backends in the ring now.
    pub num_backends: Gauge,
    /// `otelcol_loadbalancer_num_backend_updates`: times the backend set changed.
    pub backend_updates: Counter,
    /// `otelcol_loadbalancer_num_resolutions{success="true"}`.
    pub resolutions_succeeded: Counter,
    /// `otelcol_loadbalancer_num_resolutions{success="false"}`.
    pub resolutions_failed: Counter,
    outcome: LateFamily,
    latency: LateFamily,
    exporter: String,
    shard: String,
}

/// One backend's cells on one shard.
#[derive(Debug, Clone)]
pub struct BackendMetrics {
    /// `otelcol_loadbalancer_backend_outcome{success="true"}`: attempts answered.
    pub succeeded: Counter,
    /// `otelcol_loadbalancer_backend_outcome{success="false"}`: attempts that failed.
    pub failed: Counter,
    /// `otelcol_loadbalancer_backend_latency`: each attempt's time, in ms.
    pub latency_ms: Histogram,
}

impl LoadBalancerMetrics {
    /// Registers the families of load balancer `exporter` (its component id) using `resolver`
    /// (`static` or `dns`) on `shard`.
    pub fn register(
        builder: &mut RegistryBuilder,
        exporter: &str,
        resolver: &str,
        shard: usize,
    ) -> Self {
        let shard = shard.to_string();
        let labels = [
            ("exporter", exporter),
            ("resolver", resolver),
            ("shard", shard.as_str()),
        ];
        let resolutions = |builder: &mut RegistryBuilder, success: &str| {
            builder.counter(
                "otelcol_loadbalancer_num_resolutions",
                "Number of times the resolver has triggered new resolutions.",
                &[
                    ("exporter", exporter),
                    ("success", success),
                    ("resolver", resolver),
                    ("shard", shard.as_str()),
                ],
            )
        };
        LoadBalancerMetrics {
            num_backends: builder.gauge(
                "otelcol_loadbalancer_num_backends",
                "Current number of backends in use.",
                &labels,
            ),
            backend_updates: builder.counter(
                "otelcol_loadbalancer_num_backend_updates",
                "Number of times the list of backends was updated.",
                &labels,
            ),
            resolutions_succeeded: resolutions(builder, "true"),
            resolutions_failed: resolutions(builder, "false"),
            outcome: builder.late_counter(
                "otelcol_loadbalancer_backend_outcome",
                "Number of successes and failures for each endpoint.",
            ),
            latency: builder.late_histogram(
                "otelcol_loadbalancer_backend_latency",
                "Response latency in ms for the backends.",
                &BACKEND_LATENCY_MS_BOUNDS,
            ),
            exporter: exporter.to_string(),
            shard,
        }
    }

    /// The cells of backend `endpoint`, registered now if new; `None` once the families hold
    /// as many series as they may (the backend's attempts then go uncounted there).
    pub fn backend(&self, endpoint: &str) -> Option<BackendMetrics> {
        let outcome = |success: &str| {
            self.outcome.counter(&[
                ("endpoint", endpoint),
                ("success", success),
                ("exporter", self.exporter.as_str()),
                ("shard", self.shard.as_str()),
            ])
        };
        Some(BackendMetrics {
            succeeded: outcome("true")?,
            failed: outcome("false")?,
            latency_ms: self.latency.histogram(&[
                ("endpoint", endpoint),
                ("exporter", self.exporter.as_str()),
                ("shard", self.shard.as_str()),
            ])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_balancer_families_have_the_collector_names() {
        let mut builder = RegistryBuilder::new();
        let metrics = LoadBalancerMetrics::register(&mut builder, "loadbalancing", "dns", 1);
        let registry = builder.build();
        metrics.num_backends.set(3);
        metrics.resolutions_succeeded.inc();
        let backend = metrics.backend("10.0.0.2:4317").unwrap();
        backend.failed.inc();
        backend.latency_ms.record(12);
        let mut out = String::new();
        registry.render_prometheus(&mut out);
        for line in [
            "otelcol_loadbalancer_num_backends{exporter=\"loadbalancing\",resolver=\"dns\",shard=\"1\"} 3\n",
            "otelcol_loadbalancer_num_resolutions{exporter=\"loadbalancing\",success=\"true\",resolver=\"dns\",shard=\"1\"} 1\n",
            "otelcol_loadbalancer_backend_outcome{endpoint=\"10.0.0.2:4317\",success=\"false\",exporter=\"loadbalancing\",shard=\"1\"} 1\n",
            "otelcol_loadbalancer_backend_latency_bucket{endpoint=\"10.0.0.2:4317\",exporter=\"loadbalancing\",shard=\"1\",le=\"20\"} 1\n",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
    }
}
