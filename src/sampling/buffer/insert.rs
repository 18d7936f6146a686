//! Inserting a request: each span is appended to its trace, or, when its trace was already
//! decided, follows the decision — framed into the caller's request if the trace was kept,
//! dropped and counted if not. In stress relief a new trace is decided at arrival instead of
//! being buffered ([`super::relief`]), and then its spans follow that decision.

use std::time::Instant;

use tailgate_wire::{span_with_trace_state, Item, Piece, Request, Signal, SpanFacts, SpanView};

use super::cache::{Cached, OVERSIZED, RELIEF};
use super::decide::Framed;
use super::slots::NIL;
use super::TraceBuffer;
use crate::metadata::Metadata;
use crate::sampling::consistent::{write_threshold, Threshold, Written};
use crate::sampling::PolicySet;
use crate::telemetry::SamplingMetrics;

/// What inserting a request did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// Spans buffered (some may have been dropped again, see `too_large`).
    pub buffered: u64,
    /// Traces seen for the first time.
    pub new_traces: u64,
    /// Late spans of kept traces, framed into the caller's `late` request.
    pub late_sampled: u64,
    /// Late spans of traces not kept, dropped.
    pub late_not_sampled: u64,
    /// Spans without a 16-byte trace id, dropped (receivers reject them before routing).
    pub invalid: u64,
    /// Buffered spans (of this request or earlier ones) dropped with their trace for passing
    /// `maximum_trace_size_bytes`.
    pub too_large: u64,
    /// Traces that passed the oversized bound with this request, queued to be decided at once.
    pub oversized: u64,
    /// Of the late spans, those of traces decided early for their size: forwarded (kept) and
    /// dropped (not kept).
    pub late_oversized_sampled: u64,
    /// See `late_oversized_sampled`.
    pub late_oversized_not_sampled: u64,
    /// Late spans of kept traces whose tracestate could not take the trace's threshold, as it
    /// does not parse (forwarded as they were).
    pub unparseable_tracestates: u64,
    /// Under `sampling_strategy: span-ingest`, spans of traces sampled as this request
    /// arrived (their buffered spans and the request's), framed into the caller's `late`
    /// request.
    pub ingest_sampled: u64,
    /// Traces decided at arrival by stress relief: kept.
    pub relief_traces_sampled: u64,
    /// Traces decided at arrival by stress relief: not kept.
    pub relief_traces_not_sampled: u64,
    /// Spans of traces stress relief kept (the first span and later ones), framed into the
    /// caller's `late` request with the late spans.
    pub relief_sampled: u64,
    /// Spans of traces stress relief did not keep, dropped.
    pub relief_not_sampled: u64,
}

/// A late span of a kept trace, to be framed at the end of its request.
#[derive(Debug, Clone, Copy)]
pub(super) struct LateSpan {
    /// Its headers in `late_headers`: resource `[at, split)`, scope `[split, end)`.
    at: u32,
    split: u32,
    end: u32,
    /// Its bytes: in the request, or (`rewritten`) in the buffer's `late_rewritten`.
    start: u32,
    len: u32,
    rewritten: bool,
}

/// Where a scope group's header is, once needed: interned on the group's first buffered span,
/// copied for its first late one.
pub(super) struct GroupHeader<'m> {
    /// Length of the resource group's header at the start of the buffer's scratch.
    resource_len: usize,
    /// The request's client metadata, interned (as the buffer's `request_class`) with the
    /// request's first buffered span.
    metadata: &'m Metadata,
    interned: u32,
    late: Option<(u32, u32, u32)>,
}

impl TraceBuffer {
    /// Buffers the spans of `request`, an export request this process validated, all of whose
    /// traces this shard owns, which came with client `metadata`. Late spans of kept traces
    /// are framed into `late` (one export request, appended, with `metadata`); late spans of
    /// traces not kept are dropped.
    pub fn insert(
        &mut self,
        request: &[u8],
        metadata: &Metadata,
        now: Instant,
        late: &mut Framed,
    ) -> Inserted {
        self.insert_with(request, metadata, now, late, None)
    }

    /// [`TraceBuffer::insert`] under `sampling_strategy: span-ingest`: after each resource
    /// group, the traces it added to are evaluated on its spans (see [`super::ingest`]); the
    /// spans of those sampled go into `late` too, each under the metadata it came with.
    pub fn insert_deciding(
        &mut self,
        request: &[u8],
        metadata: &Metadata,
        now: Instant,
        late: &mut Framed,
        policies: &mut PolicySet,
        metrics: &SamplingMetrics,
    ) -> Inserted {
        self.insert_with(request, metadata, now, late, Some((policies, metrics)))
    }

    fn insert_with(
        &mut self,
        request: &[u8],
        metadata: &Metadata,
        now: Instant,
        late: &mut Framed,
        mut ingest: Option<(&mut PolicySet, &SamplingMetrics)>,
    ) -> Inserted {
        let mut done = Inserted::default();
        self.late_headers.clear();
        self.late.clear();
        self.late_rewritten.clear();
        self.late_ages_s.clear();
        let request_view = Request::trusted(Signal::Traces, request);
        let base = request.as_ptr() as usize;
        for resource_group in request_view.resource_groups() {
            self.scratch.clear();
            resource_group.header().write_to(&mut self.scratch);
            let resource_len = self.scratch.len();
            for scope_group in resource_group.scope_groups() {
                self.scratch.truncate(resource_len);
                scope_group.header().write_to(&mut self.scratch);
                let mut header = GroupHeader {
                    resource_len,
                    metadata,
                    interned: NIL,
                    late: None,
                };
                for item in scope_group.items() {
                    self.insert_span(item, base, &mut header, now, &mut done);
                }
                // A group's header interned for spans that were all dropped again.
                if header.interned != NIL && self.headers.unused(header.interned) {
                    self.headers.forget(header.interned);
                }
            }
            if let Some((policies, metrics)) = ingest.as_mut() {
                self.decide_group(now, policies, metrics, late, &mut done);
            }
        }
        if self.request_class != NIL {
            self.request_class = NIL;
            self.headers.unpin();
        }
        if !self.late.is_empty() {
            let (headers, late_spans) = (&self.late_headers, &self.late);
            let rewritten = &self.late_rewritten;
            self.framer.frame(
                late_spans.iter().map(|l| {
                    let bytes = if l.rewritten { &rewritten[..] } else { request };
                    Piece {
                        resource: &headers[l.at as usize..l.split as usize],
                        scope: &headers[l.split as usize..l.end as usize],
                        item: &bytes[l.start as usize..(l.start + l.len) as usize],
                    }
                }),
                &mut late.bytes,
            );
            late.close_part(metadata, self.late.len() as u64);
        }
        done
    }

    /// Inserts one span of the scope group whose header is in the scratch; `base` is where the
    /// request starts.
    #[inline]
    fn insert_span(
        &mut self,
        item: Item<'_>,
        base: usize,
        header: &mut GroupHeader<'_>,
        now: Instant,
        done: &mut Inserted,
    ) {
        let span =
            SpanFacts::scan(item.bytes).unwrap_or_else(|| SpanFacts::from(&SpanView::new(item)));
        let Some(id) = span.trace_id_array() else {
            // Receivers set such spans aside before routing; should one get here, it is
            // counted, not lost silently.
            done.invalid += 1;
            return;
        };
        let id = u128::from_le_bytes(id);
        let entry = match self.traces.get(&id) {
            Some(&entry) => entry,
            None if let Some(cached) = self.decisions.decided(id) => {
                self.follow_decision(item, base, header, cached, now, done);
                return;
            }
            None if let Some(relief) = self.relief => {
                self.decide_at_arrival(item, base, header, id, relief, now, done);
                return;
            }
            None => {
                done.new_traces += 1;
                self.new_trace(id, now)
            }
        };
        if header.interned == NIL {
            if self.request_class == NIL {
                self.request_class = self.headers.pin(header.metadata);
            }
            header.interned =
                self.headers
                    .intern(&self.scratch, header.resource_len, self.request_class);
        }
        self.append(entry, item.bytes, &span, header.interned);
        done.buffered += 1;
        if self.limits.decide_at_ingest {
            self.touched_at_ingest(entry);
        }
        if !span.has_parent {
            self.root_arrived(entry, now);
        }
        let bytes = self.entries[entry as usize].facts.bytes();
        if self.limits.max_trace_bytes.is_none()
            && bytes > self.limits.oversized_bytes
            && !self.entries[entry as usize].oversized
        {
            let trace = &mut self.entries[entry as usize];
            trace.oversized = true;
            self.queues.oversized(entry, trace.generation);
            done.oversized += 1;
        }
        if let Some(max) = self.limits.max_trace_bytes {
            if bytes > max {
                let trace = &self.entries[entry as usize];
                let (spans, id) = (trace.facts.span_count(), trace.id);
                self.release(entry);
                // The group's header may have gone with the trace's spans: the next span of
                // the group interns it again.
                if !self.headers.is_live(header.interned) {
                    header.interned = NIL;
                }
                self.decisions.insert_not_sampled(id, self.second_of(now));
                done.too_large += spans;
            }
        }
    }

    /// A span of a trace decided before it arrived follows the cached decision: set aside to be
    /// framed when the trace was kept, dropped when not, and counted as a late span (or as
    /// stress relief's, when relief decided the trace at its arrival).
    #[inline]
    fn follow_decision(
        &mut self,
        item: Item<'_>,
        base: usize,
        header: &mut GroupHeader<'_>,
        cached: Cached,
        now: Instant,
        done: &mut Inserted,
    ) {
        let (at, sampled) = match cached {
            Cached::Sampled { at, threshold } => {
                if !self.late_span(item, base, header, threshold) {
                    done.unparseable_tracestates += 1;
                }
                (at, true)
            }
            Cached::NotSampled { at } => (at, false),
        };
        if at & RELIEF != 0 {
            if sampled {
                done.relief_sampled += 1;
            } else {
                done.relief_not_sampled += 1;
            }
            return;
        }
        self.late_ages_s
            .push(self.second_of(now).saturating_sub(at & !OVERSIZED));
        let oversized = u64::from(at & OVERSIZED != 0);
        if sampled {
            done.late_sampled += 1;
            done.late_oversized_sampled += oversized;
        } else {
            done.late_not_sampled += 1;
            done.late_oversized_not_sampled += oversized;
        }
    }

    /// Sets a late span of a kept trace aside, to be framed at the end of its request; with
    /// the trace's threshold, its tracestate takes it first (the Collector forwards late spans
    /// as they came; here they carry what their trace's other spans carry, so that a backend
    /// weighs them alike). Returns false when the tracestate does not parse.
    #[inline]
    pub(super) fn late_span(
        &mut self,
        item: Item<'_>,
        base: usize,
        header: &mut GroupHeader<'_>,
        threshold: Option<Threshold>,
    ) -> bool {
        let resource_len = header.resource_len as u32;
        let (at, split, end) = *header.late.get_or_insert_with(|| {
            let at = self.late_headers.len() as u32;
            self.late_headers.extend_from_slice(&self.scratch);
            (at, at + resource_len, self.late_headers.len() as u32)
        });
        let mut span = LateSpan {
            at,
            split,
            end,
            start: (item.bytes.as_ptr() as usize - base) as u32,
            len: item.bytes.len() as u32,
            rewritten: false,
        };
        let mut parsed = true;
        if let Some(threshold) = threshold {
            let state = SpanView::new(item).trace_state();
            match write_threshold(state, threshold, &mut self.late_state) {
                Written::Changed => {
                    let start = self.late_rewritten.len();
                    span_with_trace_state(
                        item.bytes,
                        self.late_state.as_bytes(),
                        &mut self.late_rewritten,
                    );
                    span.start = start as u32;
                    span.len = (self.late_rewritten.len() - start) as u32;
                    span.rewritten = true;
                }
                Written::Unparseable => parsed = false,
                Written::Same | Written::Stricter => {}
            }
        }
        self.late.push(span);
        parsed
    }
}
