//! Deciding a round: the due traces, oldest first, each read by the policies (through span
//! views built only when a policy reads spans), the kept ones' spans framed as one export
//! request under the headers they arrived with, and every decided trace freed.

use std::time::Instant;

use tailgate_wire::{Item, Piece, SpanView};

use super::arena::Arena;
use super::interner::Headers;
use super::queues::Due;
use super::slots::{SpanSlot, TraceEntry, NIL};
use super::{TraceBuffer, SPAN_OVERHEAD, TRACE_OVERHEAD};
use crate::sampling::trace::{Trace, TraceSpan};
use crate::sampling::{Decision, PolicySet};
use crate::telemetry::{EarlyReason, SamplingMetrics};

/// The most traces one decision round takes, and the most kept span bytes it frames: a round
/// becomes one export request, which must stay well under the usual 4 MiB message limit.
const ROUND_TRACES_MAX: usize = 1024;
const ROUND_KEPT_BYTES_MAX: u64 = 1 << 20;

/// What a decision round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Traces decided.
    pub traces: u64,
    /// Spans of kept traces, framed into the caller's request.
    pub kept_spans: u64,
    /// Spans of traces not kept.
    pub discarded_spans: u64,
}

/// The buffered spans, read-only: where each span's bytes and headers are.
#[derive(Clone, Copy)]
struct Spans<'a> {
    arena: &'a Arena,
    slots: &'a [SpanSlot],
    headers: &'a Headers,
}

impl<'a> Spans<'a> {
    /// The slots of a trace's spans, in arrival order, from its `head`.
    fn walk(self, mut at: u32) -> impl Iterator<Item = u32> + 'a {
        let slots = self.slots;
        std::iter::from_fn(move || {
            (at != NIL).then(|| {
                let index = at;
                at = slots[at as usize].next;
                index
            })
        })
    }

    /// The bytes of the span in slot `s`.
    fn bytes(self, s: u32) -> &'a [u8] {
        let slot = &self.slots[s as usize];
        self.arena.get(slot.chunk, slot.offset, slot.len)
    }

    /// The policies' verdict on `trace` at `now`, recorded in `metrics`; `views` is scratch.
    #[inline]
    fn decide(
        self,
        trace: &TraceEntry,
        views: &mut Vec<TraceSpan<'a>>,
        policies: &mut PolicySet,
        metrics: &SamplingMetrics,
        now: Instant,
    ) -> bool {
        views.clear();
        if policies.reads_spans(trace.facts.has_zero_times()) {
            views.extend(self.walk(trace.head).map(|s| {
                let slot = &self.slots[s as usize];
                TraceSpan {
                    span: SpanView::new(Item {
                        bytes: self.arena.get(slot.chunk, slot.offset, slot.len),
                        offset: 0,
                    }),
                    resource: self.headers.resource(slot.header),
                }
            }));
        }
        let decision = policies.decide(
            &Trace::with_facts(trace.id.to_le_bytes(), trace.facts, views),
            now,
        );
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
        metrics.trace_decided(
            decision.decision.metric(),
            trace.facts.span_count(),
            now.saturating_duration_since(trace.first),
        );
        if !decision.sampled {
            debug_assert!(matches!(
                decision.decision,
                Decision::NotSampled | Decision::Dropped
            ));
        }
        decision.sampled
    }
}

impl TraceBuffer {
    /// Decides one round of due traces (at most [`ROUND_TRACES_MAX`]; fewer when the kept spans
    /// reach [`ROUND_KEPT_BYTES_MAX`]), frames the kept spans into `out` (one export request,
    /// appended) and frees every decided trace. Returns what it did; call again while it decided
    /// something. `early` counts the traces decided before their wait, by reason.
    pub fn decide_round(
        &mut self,
        now: Instant,
        shutdown: bool,
        policies: &mut PolicySet,
        metrics: &SamplingMetrics,
        early: &mut impl FnMut(EarlyReason),
        out: &mut Vec<u8>,
    ) -> Round {
        let mut round = Round::default();
        self.kept.clear();
        self.decided.clear();
        let mut kept_bytes = 0;
        // An estimate of what the round frees, for the memory test of the traces after it.
        let mut released = 0;
        let mut views: Vec<TraceSpan<'_>> = Vec::new();
        while self.decided.len() < ROUND_TRACES_MAX && kept_bytes < ROUND_KEPT_BYTES_MAX {
            self.queues.skip_stale(&self.entries);
            let unreleased = self.bytes().saturating_sub(released);
            let pending = self.traces.len() - self.decided.len();
            let load = (pending, unreleased);
            let Some((e, due)) = self
                .queues
                .next(&self.entries, &self.limits, load, now, shutdown)
            else {
                break;
            };
            if let Due::Early(reason) = due {
                early(reason);
            }
            self.decided.push(e);
            // Decided: the other queue's entry for it is stale from now on.
            self.entries[e as usize].live = false;
            let trace = &self.entries[e as usize];
            let spans = Spans {
                arena: &self.arena,
                slots: &self.slots,
                headers: &self.headers,
            };
            let count = trace.facts.span_count();
            released += trace.facts.bytes() + count * SPAN_OVERHEAD + TRACE_OVERHEAD;
            round.traces += 1;
            if spans.decide(trace, &mut views, policies, metrics, now) {
                self.kept.extend(
                    spans
                        .walk(trace.head)
                        .map(|s| (spans.slots[s as usize].header, s)),
                );
                kept_bytes += trace.facts.bytes();
                round.kept_spans += count;
                self.sampled.insert(trace.id, self.decided_mark(trace, now));
            } else {
                round.discarded_spans += count;
                self.not_sampled
                    .insert(trace.id, self.decided_mark(trace, now));
            }
        }
        drop(views);
        self.frame_kept(out);
        let decided = std::mem::take(&mut self.decided);
        for &e in &decided {
            self.release(e);
        }
        self.decided = decided;
        self.decided.clear();
        round
    }

    /// Frames the round's kept spans into `out`, sorted so that spans under one header pair
    /// sit together and each header is written once.
    fn frame_kept(&mut self, out: &mut Vec<u8>) {
        if self.kept.is_empty() {
            return;
        }
        self.kept.sort_unstable();
        let spans = Spans {
            arena: &self.arena,
            slots: &self.slots,
            headers: &self.headers,
        };
        self.framer.frame(
            self.kept.iter().map(|&(header, s)| {
                let (resource, scope) = spans.headers.get(header);
                Piece {
                    resource,
                    scope,
                    item: spans.bytes(s),
                }
            }),
            out,
        );
    }
}
