//! A trace's randomness, read from its spans' tracestates.

use super::threshold::Randomness;
use super::tracestate;
use crate::sampling::Trace;

/// A trace's randomness as the policies read it under the tracestate gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceRandomness {
    /// The first `rv` among its spans' tracestates, in arrival order; without one, its trace
    /// id's.
    pub(crate) value: Randomness,
    /// Whether some span's tracestate carries an `rv` or a `th` (unparseable ones are skipped).
    pub(crate) carries_sampling_fields: bool,
}

impl TraceRandomness {
    /// Reads `trace`'s spans (which must be there: the tracestate gate makes the policy set read
    /// spans).
    pub(crate) fn of(trace: &Trace<'_>) -> Self {
        let mut carries_sampling_fields = false;
        for span in trace.spans() {
            let Some(fields) = tracestate::read(span.span.trace_state()) else {
                continue;
            };
            if let Some(value) = fields.randomness {
                return TraceRandomness {
                    value,
                    carries_sampling_fields: true,
                };
            }
            carries_sampling_fields |= fields.threshold.is_some();
        }
        TraceRandomness {
            value: Randomness::of_trace_id(*trace.trace_id()),
            carries_sampling_fields,
        }
    }
}
