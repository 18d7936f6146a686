//! A whole trace as the policies see it: its id, its spans in arrival order (each with the
//! resource it arrived under), and the facts several policies need, computed once.
//!
//! A [`Trace`] borrows everything: the spans are views into buffered request bytes and the
//! slice holding them belongs to the caller, who can reuse it from one trace to the next, so
//! assembling a trace allocates nothing.

use tailgate_wire::{ResourceView, ScopeView, SpanFacts, SpanView};

/// The status codes a trace's spans carry, one bit per `Status.StatusCode` value (0 unset, 1 ok,
/// 2 error); other values set no bit.
pub(crate) type StatusMask = u8;

/// The bit for an OTLP status code, or 0 for a value outside the enum.
pub(crate) fn status_bit(code: i32) -> StatusMask {
    match code {
        0..=2 => 1 << code,
        _ => 0,
    }
}

/// The W3C `sampled` trace flag, in the low byte of `Span.flags`.
const FLAG_SAMPLED: u32 = 0x01;

/// One span of a trace and the resource it arrived under (`None`: its resource group had no
/// `Resource`, which reads as a resource without attributes, as in the Collector).
#[derive(Debug, Clone, Copy)]
pub struct TraceSpan<'a> {
    /// The span, read in place.
    pub span: SpanView<'a>,
    /// The resource it arrived under.
    pub resource: Option<ResourceView<'a>>,
    /// The instrumentation scope it arrived under (`None`: its scope group had none).
    pub scope: Option<ScopeView<'a>>,
}

/// What the policies need to know of a trace beyond its spans, kept up to date span by span as
/// they arrive (so most policies never walk the spans).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts {
    spans: u64,
    bytes: u64,
    start_min_unix_nano: u64,
    end_max_unix_nano: u64,
    /// Whether some span has a start or end time of 0, which the Collector's latency policy
    /// reads as "not seen yet" (see [`Trace::any_running_duration_ms`]).
    zero_times: bool,
    statuses: StatusMask,
    sampled_flag: bool,
}

impl Default for Facts {
    fn default() -> Self {
        Facts {
            spans: 0,
            bytes: 0,
            start_min_unix_nano: u64::MAX,
            end_max_unix_nano: 0,
            zero_times: false,
            statuses: 0,
            sampled_flag: false,
        }
    }
}

impl Facts {
    /// Adds one span.
    #[inline]
    pub(crate) fn add(&mut self, span: &SpanFacts<'_>) {
        self.spans += 1;
        self.bytes += span.len as u64;
        let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
        self.start_min_unix_nano = self.start_min_unix_nano.min(start);
        self.end_max_unix_nano = self.end_max_unix_nano.max(end);
        self.zero_times |= start == 0 || end == 0;
        self.statuses |= status_bit(span.status_code);
        self.sampled_flag |= span.flags & FLAG_SAMPLED != 0;
    }

    pub(crate) fn span_count(&self) -> u64 {
        self.spans
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn has_zero_times(&self) -> bool {
        self.zero_times
    }

    /// The facts of `spans` alone, but with `total`'s span count and bytes: what
    /// `sampling_strategy: span-ingest` evaluates one request's spans of a trace on (the
    /// Collector gives its evaluators that request's spans and the trace's running counts).
    pub(crate) fn of_batch(spans: &[TraceSpan<'_>], total: &Facts) -> Facts {
        let mut facts = Facts::default();
        for span in spans {
            facts.add(&SpanFacts::from(&span.span));
        }
        facts.spans = total.spans;
        facts.bytes = total.bytes;
        facts
    }
}

/// A trace ready for a decision.
#[derive(Debug, Clone, Copy)]
pub struct Trace<'a> {
    trace_id: [u8; 16],
    spans: &'a [TraceSpan<'a>],
    facts: Facts,
}

impl<'a> Trace<'a> {
    /// A trace of `spans`, in the order they arrived, every one of them with `trace_id`.
    pub fn new(trace_id: [u8; 16], spans: &'a [TraceSpan<'a>]) -> Self {
        let mut facts = Facts::default();
        for s in spans {
            debug_assert_eq!(s.span.trace_id(), &trace_id[..], "span of another trace");
            facts.add(&SpanFacts::from(&s.span));
        }
        Trace::with_facts(trace_id, facts, spans)
    }

    /// A trace whose facts were gathered as its spans arrived. `spans` may be empty when no
    /// policy of the set reads spans (see [`super::PolicySet::reads_spans`]); otherwise it holds
    /// every span the facts were gathered from, in arrival order.
    pub(crate) fn with_facts(trace_id: [u8; 16], facts: Facts, spans: &'a [TraceSpan<'a>]) -> Self {
        debug_assert!(spans.is_empty() || spans.len() as u64 == facts.spans);
        Trace {
            trace_id,
            spans,
            facts,
        }
    }

    /// One batch of a trace's spans with the trace's running span count and bytes (see
    /// [`Facts::of_batch`]): what `sampling_strategy: span-ingest` evaluates.
    pub(crate) fn batch(trace_id: [u8; 16], facts: Facts, spans: &'a [TraceSpan<'a>]) -> Self {
        Trace {
            trace_id,
            spans,
            facts,
        }
    }

    /// The id every span of this trace carries.
    pub fn trace_id(&self) -> &[u8; 16] {
        &self.trace_id
    }

    /// The spans, in arrival order.
    pub fn spans(&self) -> &'a [TraceSpan<'a>] {
        self.spans
    }

    /// What `rate_limiting` and `composite` count.
    pub fn span_count(&self) -> u64 {
        self.facts.spans
    }

    /// What `bytes_limiting` counts: the sum of the spans' encoded lengths. The Collector counts
    /// the protobuf size of the trace's buffered batches, which adds resource and scope
    /// envelopes whose number depends on how the spans were batched; the spans themselves are
    /// the part that does not.
    pub fn bytes(&self) -> u64 {
        self.facts.bytes
    }

    /// The earliest span start (0 for no spans).
    pub fn start_time_unix_nano(&self) -> u64 {
        if self.facts.spans == 0 {
            0
        } else {
            self.facts.start_min_unix_nano
        }
    }

    /// The latest span end (0 for no spans).
    pub fn end_time_unix_nano(&self) -> u64 {
        self.facts.end_max_unix_nano
    }

    /// Earliest start to latest end, in whole milliseconds, computed as the Collector computes
    /// it: nanoseconds read as `int64`, the difference saturated, the division truncated.
    pub fn duration_ms(&self) -> i64 {
        go_duration_ms(self.start_time_unix_nano(), self.facts.end_max_unix_nano)
    }

    /// Whether some span has status ERROR.
    pub fn has_error(&self) -> bool {
        self.facts.statuses & status_bit(tailgate_wire::STATUS_CODE_ERROR) != 0
    }

    /// The status codes present, as a [`StatusMask`].
    pub(crate) fn statuses(&self) -> StatusMask {
        self.facts.statuses
    }

    /// Whether some span has the W3C `sampled` flag.
    pub(crate) fn has_sampled_flag(&self) -> bool {
        self.facts.sampled_flag
    }

    /// Whether some span has a start or end time of 0.
    pub(crate) fn has_zero_times(&self) -> bool {
        self.facts.zero_times
    }

    /// The Collector's latency scan: walking the spans in order, it keeps a running earliest
    /// start and latest end (a value of 0 counts as "none yet", so a span with a zero time
    /// resets it) and asks `satisfied` about the running duration after every span; the trace
    /// matches as soon as one answer is yes.
    pub(crate) fn any_running_duration_ms(&self, mut satisfied: impl FnMut(i64) -> bool) -> bool {
        let (mut min, mut max) = (0u64, 0u64);
        for s in self.spans {
            let (start, end) = (s.span.start_time_unix_nano(), s.span.end_time_unix_nano());
            if min == 0 || start < min {
                min = start;
            }
            if max == 0 || end > max {
                max = end;
            }
            if satisfied(go_duration_ms(min, max)) {
                return true;
            }
        }
        false
    }
}

/// `end - start` in whole milliseconds, as Go computes
/// `pcommon.Timestamp(end).AsTime().Sub(pcommon.Timestamp(start).AsTime()).Milliseconds()`: the
/// nanosecond counts are read as `int64`, the difference saturates at the `time.Duration` range,
/// and the division truncates toward zero.
pub(crate) fn go_duration_ms(start: u64, end: u64) -> i64 {
    let nanos = i128::from(end as i64) - i128::from(start as i64);
    let nanos = nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    nanos / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_truncates_toward_zero_and_saturates() {
        assert_eq!(go_duration_ms(1_000, 1_000 + 1_999_999), 1);
        assert_eq!(go_duration_ms(3_000_000, 1_000_000), -2);
        assert_eq!(go_duration_ms(2_500_000, 1_000_000), -1);
        // Timestamps past i64::MAX read as negative, as `int64(ts)` does in Go.
        assert_eq!(go_duration_ms(0, u64::MAX - 1_999_999), -2);
        assert_eq!(
            go_duration_ms(u64::MAX / 2 + 1, u64::MAX / 2),
            i64::MAX / 1_000_000
        );
    }

    #[test]
    fn status_bits_cover_the_enum_only() {
        assert_eq!(status_bit(0), 1);
        assert_eq!(status_bit(2), 4);
        assert_eq!(status_bit(3), 0);
        assert_eq!(status_bit(-1), 0);
    }
}
