//! The Collector's `memory_limiter` families: `otelcol_processor_memory_limiter_accepted_*` and
//! `_refused_*` (spans, metric points, log records), labelled `processor` with the limiter's
//! component id, as the Collector's memorylimiterprocessor labels them.
//!
//! tailgate enforces one memory budget for the node (see `crate::memory`), sized from the
//! tightest limiter; a request refused because a shard holds its share of it is what a
//! Collector's limiter would have refused. So every limiter in a pipeline of the request's
//! signal counts it: refused when the budget refused it, accepted when it went in. Refusals
//! under queue pressure (a slow exporter, a full mesh channel) are not the limiter's and are
//! counted by the receivers only.

use tailgate_wire::Signal;

use super::cell::Counter;
use super::registry::RegistryBuilder;

/// One limiter's counters for one signal.
#[derive(Debug, Clone)]
struct LimiterCounters {
    accepted: Counter,
    refused: Counter,
}

/// One shard's memory_limiter counters, by signal: the limiters in that signal's pipelines.
#[derive(Debug, Clone, Default)]
pub struct MemoryLimiterMetrics {
    traces: Vec<LimiterCounters>,
    metrics: Vec<LimiterCounters>,
    logs: Vec<LimiterCounters>,
}

impl MemoryLimiterMetrics {
    /// Registers the families for each (signal, limiter id) of `limiters` on `shard`; a limiter
    /// in two pipelines of one signal is one series, as in the Collector.
    pub fn register(
        builder: &mut RegistryBuilder,
        limiters: &[(Signal, String)],
        shard: usize,
    ) -> Self {
        let shard = shard.to_string();
        let mut metrics = MemoryLimiterMetrics::default();
        for (index, (signal, id)) in limiters.iter().enumerate() {
            if limiters[..index].contains(&(*signal, id.clone())) {
                continue;
            }
            let (item, item_help) = match signal {
                Signal::Traces => ("spans", "spans"),
                Signal::Metrics => ("metric_points", "metric points"),
                Signal::Logs => ("log_records", "log records"),
            };
            let labels = [("processor", id.as_str()), ("shard", shard.as_str())];
            let counters = LimiterCounters {
                accepted: builder.counter(
                    &format!("otelcol_processor_memory_limiter_accepted_{item}"),
                    &format!(
                        "Number of {item_help} successfully pushed into the next component in \
                         the pipeline."
                    ),
                    &labels,
                ),
                refused: builder.counter(
                    &format!("otelcol_processor_memory_limiter_refused_{item}"),
                    &format!(
                        "Number of {item_help} that were rejected by the next component in the \
                         pipeline."
                    ),
                    &labels,
                ),
            };
            metrics.of_mut(*signal).push(counters);
        }
        metrics
    }

    fn of(&self, signal: Signal) -> &[LimiterCounters] {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Metrics => &self.metrics,
            Signal::Logs => &self.logs,
        }
    }

    fn of_mut(&mut self, signal: Signal) -> &mut Vec<LimiterCounters> {
        match signal {
            Signal::Traces => &mut self.traces,
            Signal::Metrics => &mut self.metrics,
            Signal::Logs => &mut self.logs,
        }
    }

    /// `items` of `signal` went into the pipelines.
    pub fn accepted(&self, signal: Signal, items: u64) {
        for limiter in self.of(signal) {
            limiter.accepted.add(items);
        }
    }

    /// `items` of `signal` were refused because the memory budget was full.
    pub fn refused(&self, signal: Signal, items: u64) {
        for limiter in self.of(signal) {
            limiter.refused.add(items);
        }
    }
}
