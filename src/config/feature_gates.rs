//! The Collector's feature gates, given as it takes them: `--feature-gates=ID,+ID,-ID` on the
//! command line (an ID alone or with `+` turns the gate on, with `-` off).
//!
//! Only gates whose behaviour tailgate has are accepted; any other ID is refused by name, so a
//! gate the user relies on is never silently ignored.

use std::fmt;

/// `processor.tailsamplingprocessor.usetracestate`: consistent probability sampling (OTEP 235)
/// in tail sampling (see `crate::sampling`).
pub const USE_TRACESTATE: &str = "processor.tailsamplingprocessor.usetracestate";
/// `processor.tailsamplingprocessor.metricstatcountspanssampled`: tailgate always exports
/// `otelcol_processor_tail_sampling_count_spans_sampled`, so the gate changes nothing.
pub const COUNT_SPANS_SAMPLED: &str = "processor.tailsamplingprocessor.metricstatcountspanssampled";

/// The most gates one flag may list.
const GATES_MAX: usize = 64;

/// The gates set on the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeatureGates {
    /// [`USE_TRACESTATE`].
    pub use_tracestate: bool,
}

/// A `--feature-gates` value that names a gate tailgate does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownGate(pub String);

impl fmt::Display for UnknownGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--feature-gates: tailgate has no feature gate `{}`; it has {USE_TRACESTATE} and \
             {COUNT_SPANS_SAMPLED}",
            self.0
        )
    }
}

impl std::error::Error for UnknownGate {}

impl FeatureGates {
    /// Applies one `--feature-gates` value (flags given several times apply in order).
    pub fn apply(&mut self, value: &str) -> Result<(), UnknownGate> {
        for (n, item) in value.split(',').map(str::trim).enumerate() {
            if n >= GATES_MAX {
                return Err(UnknownGate(format!("(more than {GATES_MAX} gates)")));
            }
            if item.is_empty() {
                continue;
            }
            let (on, id) = match item.as_bytes()[0] {
                b'+' => (true, &item[1..]),
                b'-' => (false, &item[1..]),
                _ => (true, item),
            };
            match id {
                USE_TRACESTATE => self.use_tracestate = on,
                COUNT_SPANS_SAMPLED => {}
                other => return Err(UnknownGate(other.to_string())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_are_set_as_the_collector_reads_them() {
        let mut gates = FeatureGates::default();
        gates.apply(USE_TRACESTATE).unwrap();
        assert!(gates.use_tracestate);
        gates
            .apply(&format!("-{USE_TRACESTATE}, {COUNT_SPANS_SAMPLED}"))
            .unwrap();
        assert!(!gates.use_tracestate);
        gates.apply(&format!("+{USE_TRACESTATE},")).unwrap();
        assert!(gates.use_tracestate);
        let err = gates.apply("exporter.otlp.fancy").unwrap_err();
        assert!(err
            .to_string()
            .contains("no feature gate `exporter.otlp.fancy`"));
    }
}
