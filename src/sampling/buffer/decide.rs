//! Deciding a round: the due traces, oldest first, each read by the policies (through span
//! views built only when a policy reads spans), the kept ones' spans framed as one export
//! request under the headers they arrived with (one per client metadata they came with), and
//! every decided trace freed.
//!
//! A round is taken first, then decided. Usually each trace is decided on its own; under the
//! tracestate gate with a rate or bytes limiter, the round is decided as a whole: the `drop`
//! policies pass over every trace, the limiters budget the traces left, then each of those is
//! decided (see `crate::sampling::consistent`). A kept trace's threshold is then written into
//! its spans' tracestates.

use std::time::Instant;

use tailgate_wire::{span_with_trace_state, Framer, Item, Piece, SpanView};

use super::arena::Arena;
use super::interner::{Headers, NO_METADATA};
use super::queues::Due;
use super::slots::{SpanSlot, TraceEntry, NIL};
use super::{TraceBuffer, SPAN_OVERHEAD, TRACE_OVERHEAD};
use crate::metadata::Metadata;
use crate::sampling::consistent::{write_threshold, Threshold, Written};
use crate::sampling::trace::{Trace, TraceSpan};
use crate::sampling::{Decision, FinalDecision, PolicySet};
use crate::telemetry::{EarlyReason, SamplingMetrics};

/// The most traces one decision round takes, and the most span bytes: a round becomes one
/// export request, which must stay well under the usual 4 MiB message limit.
const ROUND_TRACES_MAX: usize = 1024;
const ROUND_BYTES_MAX: u64 = 1 << 20;

/// What a decision round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Traces decided.
    pub traces: u64,
    /// Spans of kept traces, framed into the caller's request.
    pub kept_spans: u64,
    /// Spans of traces not kept.
    pub discarded_spans: u64,
    /// Kept spans whose tracestate could not take the trace's threshold, as it does not parse
    /// (forwarded as they were).
    pub unparseable_tracestates: u64,
}

/// Spans framed as export requests, back to back, each with the client metadata its spans came
/// with: what a round keeps, and what a request's late spans are.
#[derive(Debug, Default)]
pub struct Framed {
    /// The requests, back to back.
    pub bytes: Vec<u8>,
    parts: Vec<Part>,
}

/// One of [`Framed`]'s requests.
#[derive(Debug)]
struct Part {
    end: usize,
    spans: u64,
    metadata: Metadata,
}

impl Framed {
    /// Records that what was framed since the last part, `spans` spans, came with `metadata`.
    /// A part of the same metadata as the one before joins it: two export requests back to
    /// back are one (their resource groups, one after the other).
    pub(super) fn close_part(&mut self, metadata: &Metadata, spans: u64) {
        let end = self.bytes.len();
        if let Some(last) = self.parts.last_mut() {
            if last.metadata == *metadata {
                last.end = end;
                last.spans += spans;
                return;
            }
        }
        self.parts.push(Part {
            end,
            spans,
            metadata: metadata.clone(),
        });
    }

    /// Each request: its bytes, its spans and its metadata.
    pub fn requests(&self) -> impl Iterator<Item = (&[u8], u64, &Metadata)> + '_ {
        let mut start = 0;
        self.parts.iter().map(move |part| {
            let bytes = &self.bytes[start..part.end];
            start = part.end;
            (bytes, part.spans, &part.metadata)
        })
    }

    /// The spans framed.
    pub fn spans(&self) -> u64 {
        self.parts.iter().map(|part| part.spans).sum()
    }

    /// Whether nothing was framed.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Forgets what was framed, keeping the allocation.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.parts.clear();
    }
}

/// The buffered spans, read-only: where each span's bytes and headers are.
#[derive(Clone, Copy)]
pub(super) struct Spans<'a> {
    pub(super) arena: &'a Arena,
    pub(super) slots: &'a [SpanSlot],
    pub(super) headers: &'a Headers,
}

impl<'a> Spans<'a> {
    /// The slots of a trace's spans, in arrival order, from its `head`.
    pub(super) fn walk(self, mut at: u32) -> impl Iterator<Item = u32> + 'a {
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

    /// The view of the span in slot `s`, with its resource.
    pub(super) fn view(self, s: u32) -> TraceSpan<'a> {
        TraceSpan {
            span: SpanView::new(Item {
                bytes: self.bytes(s),
                offset: 0,
            }),
            resource: self.headers.resource(self.slots[s as usize].header),
            scope: self.headers.scope(self.slots[s as usize].header),
        }
    }

    /// `trace` as the policies see it, its span views built into `views` when they read spans.
    fn trace<'v>(
        self,
        trace: &TraceEntry,
        policies: &PolicySet,
        views: &'v mut Vec<TraceSpan<'a>>,
    ) -> Trace<'v> {
        views.clear();
        if policies.reads_spans(trace.facts.has_zero_times()) {
            views.extend(self.walk(trace.head).map(|s| self.view(s)));
        }
        Trace::with_facts(trace.id.to_le_bytes(), trace.facts, views)
    }
}

/// Records a trace's decision in the metrics; returns whether it is kept, and with what
/// threshold.
fn record(
    decision: &FinalDecision<'_>,
    trace: &TraceEntry,
    metrics: &SamplingMetrics,
    now: Instant,
) -> (bool, Option<Threshold>) {
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
    (decision.sampled, decision.threshold)
}

/// A round's kept spans, and the rewritten bytes of those whose tracestate took a threshold.
#[derive(Debug, Default)]
pub(super) struct KeptSpans {
    /// (metadata class, header, slot, rewrite): `rewrite` is [`NIL`] or an index into
    /// `ranges`.
    spans: Vec<(u32, u32, u32, u32)>,
    /// Rewritten spans, back to back, and where each is.
    rewritten: Vec<u8>,
    ranges: Vec<(u32, u32)>,
    /// Scratch: a new tracestate.
    state: String,
}

impl KeptSpans {
    pub(super) fn clear(&mut self) {
        self.spans.clear();
        self.rewritten.clear();
        self.ranges.clear();
    }

    /// Adds a kept trace's spans, `views` being their views when built; with a threshold
    /// (which comes with views: the gate reads spans), each span's tracestate takes it.
    /// Returns the spans whose tracestate did not parse.
    pub(super) fn add(
        &mut self,
        spans: Spans<'_>,
        trace: &TraceEntry,
        views: &[TraceSpan<'_>],
        threshold: Option<Threshold>,
    ) -> u64 {
        let mut unparseable = 0;
        // Without client metadata (the usual gateway), every span is of class 0.
        let classes = spans.headers.has_classes();
        for (i, s) in spans.walk(trace.head).enumerate() {
            let header = spans.slots[s as usize].header;
            let mut rewrite = NIL;
            if let (Some(threshold), Some(view)) = (threshold, views.get(i)) {
                match write_threshold(view.span.trace_state(), threshold, &mut self.state) {
                    Written::Changed => {
                        let start = self.rewritten.len();
                        span_with_trace_state(
                            spans.bytes(s),
                            self.state.as_bytes(),
                            &mut self.rewritten,
                        );
                        rewrite = self.ranges.len() as u32;
                        self.ranges
                            .push((start as u32, (self.rewritten.len() - start) as u32));
                    }
                    Written::Unparseable => unparseable += 1,
                    Written::Same | Written::Stricter => {}
                }
            }
            let class = if classes {
                spans.headers.class(header)
            } else {
                NO_METADATA
            };
            self.spans.push((class, header, s, rewrite));
        }
        unparseable
    }

    /// Frames the kept spans into `out`, one request per client metadata, sorted so that
    /// spans under one header pair sit together and each header is written once.
    pub(super) fn frame(&mut self, spans: Spans<'_>, framer: &mut Framer, out: &mut Framed) {
        self.spans.sort_unstable();
        let (rewritten, ranges) = (&self.rewritten, &self.ranges);
        let classes = spans.headers.has_classes();
        let mut rest = &self.spans[..];
        while let Some(&(class, ..)) = rest.first() {
            let run = if classes {
                rest.iter()
                    .position(|&(c, ..)| c != class)
                    .unwrap_or(rest.len())
            } else {
                rest.len()
            };
            let (request, after) = rest.split_at(run);
            rest = after;
            framer.frame(
                request.iter().map(|&(_, header, s, rewrite)| {
                    let (resource, scope) = spans.headers.get(header);
                    let item = if rewrite == NIL {
                        spans.bytes(s)
                    } else {
                        let (start, len) = ranges[rewrite as usize];
                        &rewritten[start as usize..(start + len) as usize]
                    };
                    Piece {
                        resource,
                        scope,
                        item,
                    }
                }),
                &mut out.bytes,
            );
            out.close_part(spans.headers.metadata(class), run as u64);
        }
    }
}

impl TraceBuffer {
    /// Decides one round of due traces (at most [`ROUND_TRACES_MAX`], and [`ROUND_BYTES_MAX`]
    /// of span bytes), frames the kept spans into `out` (an export request per client metadata,
    /// appended) and
    /// frees every decided trace. Returns what it did; call again while it decided something.
    /// `early` counts the traces decided before their wait, by reason.
    pub fn decide_round(
        &mut self,
        now: Instant,
        shutdown: bool,
        policies: &mut PolicySet,
        metrics: &SamplingMetrics,
        early: &mut impl FnMut(EarlyReason),
        out: &mut Framed,
    ) -> Round {
        self.take_round(now, shutdown, early);
        let spans = Spans {
            arena: &self.arena,
            slots: &self.slots,
            headers: &self.headers,
        };
        let mut views: Vec<TraceSpan<'_>> = Vec::new();
        let outcomes = &mut self.outcomes;
        outcomes.clear();
        if policies.decides_rounds() {
            // The drop policies on every trace, the budgets on those left, then the decisions.
            let entered = &mut self.entered;
            entered.clear();
            for &e in &self.decided {
                let trace = &self.entries[e as usize];
                let view = spans.trace(trace, policies, &mut views);
                match policies.enter_round(&view, now) {
                    Some(dropped) => outcomes.push((e, record(&dropped, trace, metrics, now))),
                    None => entered.push(e),
                }
            }
            policies.close_round(now);
            for &e in entered.iter() {
                let trace = &self.entries[e as usize];
                let view = spans.trace(trace, policies, &mut views);
                let decision = policies.decide_entered(&view, now);
                outcomes.push((e, record(&decision, trace, metrics, now)));
            }
        } else if policies.decides_at_ingest() {
            // span-ingest: what no request's spans decided is not sampled, unevaluated.
            for &e in &self.decided {
                let trace = &self.entries[e as usize];
                metrics.trace_decided(
                    Decision::NotSampled.metric(),
                    trace.facts.span_count(),
                    now.saturating_duration_since(trace.first),
                );
                outcomes.push((e, (false, None)));
            }
        } else {
            for &e in &self.decided {
                let trace = &self.entries[e as usize];
                let view = spans.trace(trace, policies, &mut views);
                let decision = policies.decide(&view, now);
                outcomes.push((e, record(&decision, trace, metrics, now)));
            }
        }
        let mut round = Round {
            traces: self.decided.len() as u64,
            ..Round::default()
        };
        self.kept.clear();
        for &(e, (kept, threshold)) in self.outcomes.iter() {
            let trace = &self.entries[e as usize];
            let count = trace.facts.span_count();
            let mark = self.decided_mark(trace, now);
            if kept {
                // A threshold comes with the gate, under which the policies read spans.
                if threshold.is_some() {
                    spans.trace(trace, policies, &mut views);
                }
                round.unparseable_tracestates += self.kept.add(spans, trace, &views, threshold);
                round.kept_spans += count;
                self.decisions.insert_sampled(trace.id, mark, threshold);
            } else {
                round.discarded_spans += count;
                self.decisions.insert_not_sampled(trace.id, mark);
            }
        }
        drop(views);
        self.kept.frame(spans, &mut self.framer, out);
        let decided = std::mem::take(&mut self.decided);
        for &e in &decided {
            self.release(e);
        }
        self.decided = decided;
        self.decided.clear();
        metrics
            .policy_evaluation_errors
            .add(policies.take_evaluation_errors());
        round
    }

    /// Takes the round's traces into `self.decided`, marking each decided (so that the other
    /// queue's entry for it is stale from now on).
    fn take_round(&mut self, now: Instant, shutdown: bool, early: &mut impl FnMut(EarlyReason)) {
        self.decided.clear();
        let mut taken_bytes = 0;
        // An estimate of what the round frees, for the memory test of the traces after it.
        let mut released = 0;
        while self.decided.len() < ROUND_TRACES_MAX && taken_bytes < ROUND_BYTES_MAX {
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
            let trace = &mut self.entries[e as usize];
            trace.live = false;
            let count = trace.facts.span_count();
            released += trace.facts.bytes() + count * SPAN_OVERHEAD + TRACE_OVERHEAD;
            taken_bytes += trace.facts.bytes();
        }
    }
}
