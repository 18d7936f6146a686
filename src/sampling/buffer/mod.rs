//! One shard's trace buffer: the spans of the traces it owns, held as their original bytes until
//! each trace's decision.
//!
//! # Layout
//!
//! - **Span bytes** are appended, in arrival order, to an arena of large chunks ([`arena`]). A
//!   chunk counts its live spans and is freed when the last one goes; since traces are decided
//!   in the order their first span arrived, and a trace's spans arrive within its wait, chunks
//!   die roughly in order, and the arena holds little besides live spans. There is no per-span
//!   allocation.
//! - **A span's index** is a 20-byte span slot in a slab ([`slots`]): where its bytes are,
//!   which interned header it arrived under, and the next span of its trace. A trace's spans
//!   form a list in arrival order.
//! - **Headers** (a resource group's and a scope group's fields other than their children) are
//!   interned ([`interner`]), counted by the spans that use them: a kept trace is framed under
//!   the resources and scopes its spans came with, each written once per request.
//! - **A trace** is an entry in a slab, found by id through a hash map keyed by [`hasher`],
//!   holding the [`Facts`] the policies read (kept up to date as spans arrive) and the instant
//!   of its first span. Entries are queued in first-arrival order ([`queues`]); as every trace
//!   waits the same `decision_wait`, that queue is also deadline order, so finding what is due
//!   is O(1) per trace, with no scan or timer per trace. Traces whose root span arrived may be
//!   due sooner (`decision_wait_after_root_received`); they are queued a second time, in root
//!   arrival order, and an entry that was decided through one queue is skipped in the other.
//! - **Decided trace ids** go into two fixed-size caches (sampled, not sampled) over one map
//!   ([`cache`]), so spans that arrive after the decision follow it: those of a kept trace are
//!   forwarded at once, those of a dropped one are dropped and counted.
//! - **In stress relief** a trace neither buffered nor decided is decided at its arrival, by
//!   trace id ([`relief`]): nothing of it is buffered; its id goes into the decision caches,
//!   and its spans take the late spans' path.
//!
//! # Budget
//!
//! [`TraceBuffer::bytes`] is what the buffer holds: arena chunks (allocated capacity), span
//! slots, trace entries with their map and queue slots, and header bytes; besides, up to
//! [`arena::SPARE_CHUNKS_MAX`] emptied chunks (4 MiB) are kept for reuse. The shard's memory
//! budget is enforced on it: above the soft limit the oldest traces are decided early; at the
//! hard limit the shard refuses new data (see [`super::sampler`]).
//!
//! The buffer itself never awaits and never allocates per span; deciding a round of traces
//! returns the kept spans framed as one export request for the caller to push downstream
//! ([`decide`]); inserting a request ([`insert`]) frames its late spans of kept traces the same
//! way.

mod arena;
mod cache;
mod decide;
mod hasher;
mod ingest;
mod insert;
mod interner;
mod queues;
mod relief;
mod slots;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::mem::size_of;
use std::time::{Duration, Instant};

use tailgate_wire::{Framer, SpanFacts};

use super::consistent::Threshold;
use super::stress_relief::ArrivalSampling;
use super::trace::Facts;
use arena::Arena;
use cache::DecisionCaches;
use hasher::IdHash;
use insert::LateSpan;
use interner::Headers;
use queues::Queues;
use slots::{SpanSlot, TraceEntry, NIL};

#[cfg(test)]
use arena::CHUNK_BYTES;
use decide::KeptSpans;
pub use decide::{Framed, Round};
pub use insert::Inserted;

/// What one buffered span costs besides its bytes.
pub const SPAN_OVERHEAD: u64 = size_of::<SpanSlot>() as u64;
/// What one buffered trace costs: its entry, its map slot (key, value and control byte, at
/// hashbrown's worst load factor of 7/8, rounded up), its queue slot and its cache slot.
pub const TRACE_OVERHEAD: u64 = size_of::<TraceEntry>() as u64 + 24 * 8 / 7 + 4 + 16;

/// The limits a buffer works within (its shard's share of the node's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BufferLimits {
    /// How long after its first span a trace is decided (`decision_wait`).
    pub decision_wait: Duration,
    /// How long after its root span a trace is decided, when that comes sooner
    /// (`decision_wait_after_root_received`).
    pub decision_wait_after_root: Option<Duration>,
    /// Traces held before the oldest is decided early (when `evict_at_num_traces`).
    pub num_traces: usize,
    /// Whether reaching `num_traces` decides the oldest trace early (not with
    /// `block_on_overflow`, where the shard refuses new data instead).
    pub evict_at_num_traces: bool,
    /// Bytes held before the oldest traces are decided early. (Where the shard refuses new
    /// data is the shard's memory budget, `crate::memory::ShardMemory`.)
    pub soft_bytes: u64,
    /// Trace ids remembered as sampled, for late spans (`decision_cache.sampled_cache_size`).
    pub sampled_cache: usize,
    /// Trace ids remembered as not sampled (`decision_cache.non_sampled_cache_size`).
    pub not_sampled_cache: usize,
    /// A trace past this many span bytes is dropped, with its later spans.
    pub max_trace_bytes: Option<u64>,
    /// `sampling_strategy: span-ingest`: each request's spans of a trace are evaluated as they
    /// arrive (see [`ingest`]).
    pub decide_at_ingest: bool,
    /// Without `max_trace_bytes`, a trace past this many span bytes is decided at once (its
    /// later spans follow the decision): one huge trace cannot hold the buffer's memory for
    /// its whole wait. [`oversized_bytes`] of the shard's soft limit.
    pub oversized_bytes: u64,
}

/// The share of a shard's soft byte limit one trace may hold before it is decided early, when
/// no `maximum_trace_size_bytes` is set: an eighth, so that several huge traces at once still
/// leave most of the buffer to the others.
pub const OVERSIZED_SHARE: u64 = 8;

/// The span bytes past which a trace is decided early on a shard whose soft limit is
/// `soft_bytes` (at least 1 MiB, so a tiny budget does not decide ordinary traces early).
pub fn oversized_bytes(soft_bytes: u64) -> u64 {
    (soft_bytes / OVERSIZED_SHARE).max(1 << 20)
}

/// One shard's trace buffer.
pub struct TraceBuffer {
    limits: BufferLimits,
    traces: HashMap<u128, u32, IdHash>,
    entries: Vec<TraceEntry>,
    free_entries: Vec<u32>,
    /// Buffered traces in first-arrival and root-arrival order.
    queues: Queues,
    slots: Vec<SpanSlot>,
    /// Freed slots, to reuse last-freed first. A stack rather than a list threaded through the
    /// slots: taking a slot then reads nothing from it (the list's next link was a cache miss
    /// on every buffered span, 8 % of the insert's time).
    free_slots: Vec<u32>,
    arena: Arena,
    headers: Headers,
    decisions: DecisionCaches,
    /// Buffered spans, and their bytes.
    spans: u64,
    span_bytes: u64,
    framer: Framer,
    /// Scratch: the current request's headers.
    scratch: Vec<u8>,
    late_headers: Vec<u8>,
    late: Vec<LateSpan>,
    /// Scratch: the current request's late spans whose tracestate took a threshold, and a new
    /// tracestate.
    late_rewritten: Vec<u8>,
    late_state: String,
    /// Scratch: the last request's late spans' ages, in whole seconds since their decision.
    late_ages_s: Vec<u32>,
    /// When the buffer was made: the decision caches keep the second since then.
    epoch: Instant,
    /// Scratch: a round's kept spans.
    kept: KeptSpans,
    /// Scratch: a round's decisions: each trace's entry, whether it is kept, and its threshold.
    outcomes: Vec<(u32, (bool, Option<Threshold>))>,
    /// Scratch: a round's decided entries.
    decided: Vec<u32>,
    /// Scratch: of a round decided as a whole, the entries the `drop` policies left.
    entered: Vec<u32>,
    /// Scratch (span-ingest): the entries the resource group being inserted added spans to.
    ingest_touched: Vec<u32>,
    /// In stress relief, how new traces are decided at arrival.
    relief: Option<ArrivalSampling>,
    /// The metadata class of the request being inserted, once one of its spans is buffered;
    /// [`NIL`] before.
    request_class: u32,
}

impl TraceBuffer {
    /// An empty buffer within `limits`, its index sized for `expected_traces` traces.
    pub fn new(limits: BufferLimits, expected_traces: usize) -> Self {
        let hash = IdHash::random();
        TraceBuffer {
            traces: HashMap::with_capacity_and_hasher(expected_traces.min(limits.num_traces), hash),
            entries: Vec::new(),
            free_entries: Vec::new(),
            queues: Queues::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            arena: Arena::default(),
            headers: Headers::new(hash),
            decisions: DecisionCaches::new(limits.sampled_cache, limits.not_sampled_cache, hash),
            spans: 0,
            span_bytes: 0,
            framer: Framer::new(),
            scratch: Vec::new(),
            late_headers: Vec::new(),
            late: Vec::new(),
            late_rewritten: Vec::new(),
            late_state: String::new(),
            late_ages_s: Vec::new(),
            epoch: Instant::now(),
            kept: KeptSpans::default(),
            outcomes: Vec::new(),
            decided: Vec::new(),
            entered: Vec::new(),
            ingest_touched: Vec::new(),
            relief: None,
            request_class: NIL,
            limits,
        }
    }

    /// The ages of the last inserted request's late spans: whole seconds from their trace's
    /// decision to their arrival.
    pub fn late_ages_s(&self) -> &[u32] {
        &self.late_ages_s
    }

    /// `now` as whole seconds of the buffer's clock (from its creation), as the decision caches
    /// keep it (30 bits: 34 years).
    #[inline]
    fn second_of(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.epoch).as_secs())
            .unwrap_or(u32::MAX)
            .min(cache::RELIEF - 1)
    }

    /// What the decision caches keep for `trace` decided at `now`: the second, and whether it
    /// was decided early for its size.
    #[inline]
    fn decided_mark(&self, trace: &TraceEntry, now: Instant) -> u32 {
        let oversized = if trace.oversized { cache::OVERSIZED } else { 0 };
        self.second_of(now) | oversized
    }

    pub(crate) fn limits(&self) -> &BufferLimits {
        &self.limits
    }

    /// Decides the oldest traces early above `bytes` from now on: the soft limit follows the
    /// shard's effective memory limit (`crate::memory::ShardMemory::follow_overhead`).
    /// The oversized-trace bound stays the configured one, so what counts as a huge trace does
    /// not change with the process's overhead.
    pub(crate) fn set_soft_bytes(&mut self, bytes: u64) {
        self.limits.soft_bytes = bytes;
    }

    /// Traces buffered.
    pub fn trace_count(&self) -> usize {
        self.traces.len()
    }

    /// Spans buffered.
    pub fn span_count(&self) -> u64 {
        self.spans
    }

    /// Bytes held: what the memory budget is enforced on (see the module documentation).
    ///
    /// Slots and trace entries count while they are in use. The slabs keep the length of
    /// their peak (freed slots are reused; the stack of free ones adds 4 bytes a slot at most),
    /// which the budget itself bounded; counting that peak
    /// instead would keep a buffer whose load has passed above its soft limit for good, and
    /// every later trace would be decided as soon as it arrived.
    pub fn bytes(&self) -> u64 {
        self.arena.allocated
            + self.spans * SPAN_OVERHEAD
            + self.traces.len() as u64 * TRACE_OVERHEAD
            + self.headers.bytes
    }

    /// Span bytes buffered (what [`TraceBuffer::bytes`] would be with no overhead at all).
    pub fn span_bytes(&self) -> u64 {
        self.span_bytes
    }

    /// Whether traces are held past `num_traces` or the soft byte limit, so the oldest are
    /// to be decided early.
    pub(crate) fn needs_early_decisions(&self) -> bool {
        (self.limits.evict_at_num_traces && self.traces.len() > self.limits.num_traces)
            || self.bytes() > self.limits.soft_bytes
    }

    fn new_trace(&mut self, id: u128, now: Instant) -> u32 {
        let entry = TraceEntry {
            id,
            first: now,
            facts: Facts::default(),
            head: NIL,
            tail: NIL,
            generation: 0,
            live: true,
            root_seen: false,
            oversized: false,
            ingest_first: NIL,
        };
        let index = match self.free_entries.pop() {
            Some(index) => {
                let slot = &mut self.entries[index as usize];
                let generation = slot.generation.wrapping_add(1);
                *slot = TraceEntry {
                    generation,
                    ..entry
                };
                index
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        self.traces.insert(id, index);
        self.queues
            .arrived(index, self.entries[index as usize].generation);
        index
    }

    #[inline]
    fn append(&mut self, entry: u32, bytes: &[u8], span: &SpanFacts<'_>, header: u32) {
        let (chunk, offset) = self.arena.push(bytes);
        let slot = SpanSlot {
            chunk,
            offset,
            len: bytes.len() as u32,
            header,
            next: NIL,
        };
        let index = if let Some(index) = self.free_slots.pop() {
            self.slots[index as usize] = slot;
            index
        } else {
            self.slots.push(slot);
            (self.slots.len() - 1) as u32
        };
        self.headers.add_ref(header);
        let trace = &mut self.entries[entry as usize];
        if trace.tail == NIL {
            trace.head = index;
        } else {
            self.slots[trace.tail as usize].next = index;
        }
        trace.tail = index;
        trace.facts.add(span);
        self.spans += 1;
        self.span_bytes += bytes.len() as u64;
    }

    fn root_arrived(&mut self, entry: u32, now: Instant) {
        let Some(wait) = self.limits.decision_wait_after_root else {
            return;
        };
        let trace = &mut self.entries[entry as usize];
        if trace.root_seen || wait >= self.limits.decision_wait {
            return;
        }
        trace.root_seen = true;
        self.queues
            .root_arrived(entry, trace.generation, now + wait);
    }

    /// Frees a trace and its spans (its id is not cached).
    fn release(&mut self, entry: u32) {
        let trace = &mut self.entries[entry as usize];
        trace.live = false;
        let mut at = trace.head;
        trace.head = NIL;
        trace.tail = NIL;
        let id = trace.id;
        while at != NIL {
            let slot = self.slots[at as usize];
            self.arena.release(slot.chunk);
            self.headers.release(slot.header);
            self.free_slots.push(at);
            self.spans -= 1;
            self.span_bytes -= u64::from(slot.len);
            at = slot.next;
        }
        self.traces.remove(&id);
        self.free_entries.push(entry);
    }

    /// When the next trace is due, if any is buffered.
    pub fn next_due(&mut self) -> Option<Instant> {
        self.queues.next_due(&self.entries, &self.limits)
    }

    /// Frees every buffered trace undecided; returns the spans dropped.
    pub(crate) fn drop_all(&mut self) -> u64 {
        let spans = self.spans;
        let entries: Vec<u32> = self.traces.values().copied().collect();
        for e in entries {
            self.release(e);
        }
        self.queues.clear();
        spans
    }
}
