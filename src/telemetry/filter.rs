//! The Collector's filter processor families: `otelcol_processor_filter_spans_filtered`,
//! `otelcol_processor_filter_logs_filtered` and `otelcol_processor_filter_datapoints_filtered`
//! (the data points of the metrics dropped), labelled `filter` with the processor's component
//! id, as contrib's filterprocessor labels them.

use tailgate_wire::Signal;

use super::cell::Counter;
use super::registry::RegistryBuilder;

/// One shard's filter counters: one per (processor id, signal) a pipeline filters.
#[derive(Debug, Clone, Default)]
pub struct FilterMetrics {
    counters: Vec<((String, Signal), Counter)>,
}

impl FilterMetrics {
    /// Registers a counter for each (signal, processor id) of `filters` on `shard`; a processor
    /// in two pipelines of one signal is one series, as in the Collector.
    pub fn register(
        builder: &mut RegistryBuilder,
        filters: &[(Signal, String)],
        shard: usize,
    ) -> Self {
        let shard = shard.to_string();
        let mut metrics = FilterMetrics::default();
        for (signal, id) in filters {
            let key = (id.clone(), *signal);
            if metrics.counters.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let (item, help) = match signal {
                Signal::Traces => ("spans", "spans"),
                Signal::Metrics => ("datapoints", "metric data points"),
                Signal::Logs => ("logs", "logs"),
            };
            let counter = builder.counter(
                &format!("otelcol_processor_filter_{item}_filtered"),
                &format!("Number of {help} dropped by the filter processor"),
                &[("filter", id.as_str()), ("shard", shard.as_str())],
            );
            metrics.counters.push((key, counter));
        }
        metrics
    }

    /// The counter of processor `id` on `signal`.
    pub fn counter(&self, id: &str, signal: Signal) -> Option<&Counter> {
        self.counters
            .iter()
            .find(|((i, s), _)| i == id && *s == signal)
            .map(|(_, c)| c)
    }
}
