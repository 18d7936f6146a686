//! `sampling_strategy: span-ingest`: deciding a trace as its spans arrive.
//!
//! Each resource group of a request is a batch, as the Collector's processor sees it: once the
//! group's spans are buffered, every trace it added to is evaluated on those spans alone (with
//! the trace's running span count; see [`PolicySet::decide_at_ingest`]). A trace sampled or
//! dropped there is decided: all its buffered spans are framed into the caller's request (or
//! discarded), its id goes into a decision cache and its later spans follow. A trace no batch
//! decided stays buffered, and when its wait ends it is not sampled, without evaluation.

use std::time::Instant;

use super::decide::{Framed, Spans};
use super::slots::NIL;
use super::TraceBuffer;
use crate::sampling::trace::{Facts, Trace, TraceSpan};
use crate::sampling::{Decision, PolicySet};
use crate::telemetry::SamplingMetrics;

use super::insert::Inserted;

impl TraceBuffer {
    /// Notes that the resource group being inserted added the span in `entry`'s tail slot.
    #[inline]
    pub(super) fn touched_at_ingest(&mut self, entry: u32) {
        let trace = &mut self.entries[entry as usize];
        if trace.ingest_first == NIL {
            trace.ingest_first = trace.tail;
            self.ingest_touched.push(entry);
        }
    }

    /// Evaluates the traces the resource group just inserted added to, on the group's spans;
    /// the spans of traces it samples are framed into `out`.
    pub(super) fn decide_group(
        &mut self,
        now: Instant,
        policies: &mut PolicySet,
        metrics: &SamplingMetrics,
        out: &mut Framed,
        done: &mut Inserted,
    ) {
        let touched = std::mem::take(&mut self.ingest_touched);
        self.kept.clear();
        let mut decided = std::mem::take(&mut self.decided);
        decided.clear();
        let spans = Spans {
            arena: &self.arena,
            slots: &self.slots,
            headers: &self.headers,
        };
        let mut views: Vec<TraceSpan<'_>> = Vec::new();
        for &e in &touched {
            let trace = &self.entries[e as usize];
            // A trace released in this group (too large) is gone, or its entry reused.
            if !trace.live || trace.ingest_first == NIL {
                continue;
            }
            views.clear();
            views.extend(spans.walk(trace.ingest_first).map(|s| spans.view(s)));
            let facts = Facts::of_batch(&views, &trace.facts);
            let batch = Trace::batch(trace.id.to_le_bytes(), facts, &views);
            let decision = policies.decide_at_ingest(&batch, now);
            for (i, d) in decision.per_policy.iter().enumerate() {
                if let Some(d) = d {
                    metrics.policy_evaluated(
                        i,
                        decision.latencies_us[i],
                        d.metric(),
                        trace.facts.span_count(),
                    );
                }
            }
            if decision.decision == Decision::NotSampled {
                continue;
            }
            let (sampled, threshold) = (decision.sampled, decision.threshold);
            metrics.trace_decided(
                decision.decision.metric(),
                trace.facts.span_count(),
                now.saturating_duration_since(trace.first),
            );
            let mark = self.decided_mark(trace, now);
            let count = trace.facts.span_count();
            if sampled {
                if threshold.is_some() {
                    views.clear();
                    views.extend(spans.walk(trace.head).map(|s| spans.view(s)));
                }
                done.unparseable_tracestates += self.kept.add(spans, trace, &views, threshold);
                done.ingest_sampled += count;
                self.decisions.insert_sampled(trace.id, mark, threshold);
            } else {
                self.decisions.insert_not_sampled(trace.id, mark);
            }
            decided.push(e);
        }
        drop(views);
        self.kept.frame(spans, &mut self.framer, out);
        for &e in &touched {
            self.entries[e as usize].ingest_first = NIL;
        }
        for &e in &decided {
            self.release(e);
        }
        decided.clear();
        self.decided = decided;
        metrics
            .policy_evaluation_errors
            .add(policies.take_evaluation_errors());
        self.ingest_touched = touched;
        self.ingest_touched.clear();
    }
}
