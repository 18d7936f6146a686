//! One shard's trace buffer: the spans of the traces it owns, held as their original bytes until
//! each trace's decision.
//!
//! # Layout
//!
//! - **Span bytes** are appended, in arrival order, to an arena of large chunks ([`Arena`]). A
//!   chunk counts its live spans and is freed when the last one goes; since traces are decided
//!   in the order their first span arrived, and a trace's spans arrive within its wait, chunks
//!   die roughly in order, and the arena holds little besides live spans. There is no per-span
//!   allocation.
//! - **A span's index** is a 20-byte [`SpanSlot`] in a slab: where its bytes are, which interned
//!   header it arrived under, and the next span of its trace. A trace's spans form a list in
//!   arrival order.
//! - **Headers** (a resource group's and a scope group's fields other than their children) are
//!   interned ([`Headers`]), counted by the spans that use them: a kept trace is framed under
//!   the resources and scopes its spans came with, each written once per request.
//! - **A trace** is a [`TraceEntry`] in a slab, found by id through a hash map, holding the
//!   [`Facts`] the policies read (kept up to date as spans arrive) and the instant of its first
//!   span. Entries are queued in first-arrival order ([`TraceBuffer::order`]); as every trace
//!   waits the same `decision_wait`, that queue is also deadline order, so finding what is due
//!   is O(1) per trace, with no scan or timer per trace. Traces whose root span arrived may be
//!   due sooner (`decision_wait_after_root_received`); they are queued a second time, in root
//!   arrival order, and an entry that was decided through one queue is skipped in the other.
//! - **Decided trace ids** go into two fixed-size caches (sampled, not sampled), so spans that
//!   arrive after the decision follow it: those of a kept trace are forwarded at once, those of
//!   a dropped one are dropped and counted.
//!
//! # Budget
//!
//! [`TraceBuffer::bytes`] is what the buffer holds: arena chunks (allocated capacity), span
//! slots, trace entries with their map and queue slots, and header bytes; besides, up to
//! [`SPARE_CHUNKS_MAX`] emptied chunks (4 MiB) are kept for reuse. The shard's memory
//! budget is enforced on it: above the soft limit the oldest traces are decided early; at the
//! hard limit the shard refuses new data (see [`super::sampler`]).
//!
//! The buffer itself never awaits and never allocates per span; deciding a round of traces
//! returns the kept spans framed as one export request for the caller to push downstream.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::mem::size_of;
use std::time::{Duration, Instant};

use super::trace::{Facts, Trace, TraceSpan};
use super::{Decision, PolicySet};
use crate::telemetry::SamplingMetrics;
use tailgate_wire::{
    Framer, Item, Piece, Request, ResourceGroup, ResourceView, Signal, SpanFacts, SpanView,
};

/// "No slot".
const NIL: u32 = u32::MAX;

/// Arena chunk size. Large enough that chunk bookkeeping is negligible per span, small enough
/// that the one partly filled chunk per shard is negligible against any budget.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// The most traces one decision round takes, and the most kept span bytes it frames: a round
/// becomes one export request, which must stay well under the usual 4 MiB message limit.
const ROUND_TRACES_MAX: usize = 1024;
const ROUND_KEPT_BYTES_MAX: u64 = 1 << 20;

/// What one buffered span costs besides its bytes.
pub const SPAN_OVERHEAD: u64 = size_of::<SpanSlot>() as u64;
/// What one buffered trace costs: its entry, its map slot (key, value and control byte, at
/// hashbrown's worst load factor of 7/8, rounded up), its queue slot and its cache slot.
pub const TRACE_OVERHEAD: u64 = size_of::<TraceEntry>() as u64 + 24 * 8 / 7 + 4 + 16;

/// The limits a buffer works within (its shard's share of the node's).
#[derive(Debug, Clone, Copy)]
pub struct BufferLimits {
    pub decision_wait: Duration,
    pub decision_wait_after_root: Option<Duration>,
    /// Traces held before the oldest is decided early (when `evict_at_num_traces`).
    pub num_traces: usize,
    /// Whether reaching `num_traces` decides the oldest trace early (not with
    /// `block_on_overflow`, where the shard refuses new data instead).
    pub evict_at_num_traces: bool,
    /// Bytes held before the oldest traces are decided early. (Where the shard refuses new
    /// data is the shard's memory budget, [`crate::memory::ShardMemory`].)
    pub soft_bytes: u64,
    pub sampled_cache: usize,
    pub not_sampled_cache: usize,
    /// A trace past this many span bytes is dropped, with its later spans.
    pub max_trace_bytes: Option<u64>,
}

/// Why a trace was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Its wait ended.
    Wait,
    /// The buffer held `num_traces` traces.
    NumTraces,
    /// The buffer held more bytes than its soft limit.
    Memory,
    /// The gateway is shutting down.
    Shutdown,
}

/// Per-process random keys for hashing trace ids, so a client cannot choose ids that collide.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdHash {
    k0: u64,
    k1: u64,
}

impl IdHash {
    pub(crate) fn random() -> Self {
        let state = RandomState::new();
        IdHash {
            k0: state.hash_one(0x7461_696c_6761_7465u64),
            k1: state.hash_one(0x6964_6861_7368_0001u64) | 1,
        }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { keys: *self, h: 0 }
    }
}

/// A folded multiply over 64-bit words: `(h ^ word ^ k0) * k1` in 128 bits, high half xor low.
#[derive(Debug, Clone)]
pub(crate) struct IdHasher {
    keys: IdHash,
    h: u64,
}

impl IdHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        let m = u128::from(self.h ^ word ^ self.keys.k0) * u128::from(self.keys.k1);
        self.h = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }

    #[inline]
    fn write_u128(&mut self, v: u128) {
        self.mix(v as u64);
        self.mix((v >> 64) as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.h
    }
}

/// A chunk of span bytes and how many live spans it holds.
#[derive(Debug)]
struct Chunk {
    data: Vec<u8>,
    live: u32,
}

/// Span bytes in arrival order, in chunks addressed by a sequence number.
#[derive(Debug, Default)]
struct Arena {
    chunks: VecDeque<Chunk>,
    /// The sequence number of `chunks[0]` (wrapping).
    first: u32,
    /// Capacity of every chunk in use (the spares, at most [`SPARE_CHUNKS_MAX`] of them, are
    /// a fixed allowance outside the budget).
    allocated: u64,
    /// Emptied chunks of [`CHUNK_BYTES`] kept for reuse: new chunks are needed as fast as old
    /// ones die, and reusing them spares the allocator returning pages to the kernel and the
    /// kernel zeroing fresh ones.
    spare: Vec<Vec<u8>>,
}

/// The most spare chunks a shard keeps (4 MiB).
const SPARE_CHUNKS_MAX: usize = 16;

impl Arena {
    /// Copies `bytes` in; returns the chunk and offset they are at.
    #[inline]
    fn push(&mut self, bytes: &[u8]) -> (u32, u32) {
        let fits = self
            .chunks
            .back()
            .is_some_and(|c| c.data.capacity() - c.data.len() >= bytes.len());
        if !fits {
            let data = match self.spare.pop() {
                Some(data) if bytes.len() <= CHUNK_BYTES => data,
                spare => {
                    self.spare.extend(spare);
                    Vec::with_capacity(CHUNK_BYTES.max(bytes.len()))
                }
            };
            self.allocated += data.capacity() as u64;
            self.chunks.push_back(Chunk { data, live: 0 });
        }
        let seq = self.first.wrapping_add(self.chunks.len() as u32 - 1);
        let chunk = self.chunks.back_mut().expect("a chunk was just ensured");
        let offset = chunk.data.len() as u32;
        chunk.data.extend_from_slice(bytes);
        chunk.live += 1;
        (seq, offset)
    }

    #[inline]
    fn get(&self, seq: u32, offset: u32, len: u32) -> &[u8] {
        let chunk = &self.chunks[seq.wrapping_sub(self.first) as usize];
        &chunk.data[offset as usize..(offset + len) as usize]
    }

    /// One span of chunk `seq` is gone.
    #[inline]
    fn release(&mut self, seq: u32) {
        let index = seq.wrapping_sub(self.first) as usize;
        let last = index + 1 == self.chunks.len();
        let chunk = &mut self.chunks[index];
        chunk.live -= 1;
        if chunk.live > 0 {
            return;
        }
        if last {
            // The chunk being filled is kept and refilled from the start.
            chunk.data.clear();
            return;
        }
        let mut data = std::mem::take(&mut chunk.data);
        self.allocated -= data.capacity() as u64;
        if data.capacity() == CHUNK_BYTES && self.spare.len() < SPARE_CHUNKS_MAX {
            data.clear();
            self.spare.push(data);
        }
        while self
            .chunks
            .front()
            .is_some_and(|c| c.live == 0 && c.data.capacity() == 0)
        {
            self.chunks.pop_front();
            self.first = self.first.wrapping_add(1);
        }
    }
}

/// An interned header pair.
#[derive(Debug)]
struct Header {
    /// The resource group's header, then the scope group's.
    bytes: Box<[u8]>,
    resource_len: u32,
    hash: u64,
    /// Whether `by_hash` points here (not when another header with the same hash was there
    /// first).
    mapped: bool,
    /// Spans using it.
    refs: u32,
}

/// Interned headers, counted by the spans using them.
#[derive(Debug)]
struct Headers {
    entries: Vec<Header>,
    free: Vec<u32>,
    by_hash: HashMap<u64, u32, IdHash>,
    /// Header bytes held.
    bytes: u64,
}

impl Headers {
    fn new(hash: IdHash) -> Self {
        Headers {
            entries: Vec::new(),
            free: Vec::new(),
            by_hash: HashMap::with_hasher(hash),
            bytes: 0,
        }
    }

    /// The id of the header pair `bytes` (resource header, then scope header, split at
    /// `resource_len`), interned if new; the caller adds its references.
    fn intern(&mut self, bytes: &[u8], resource_len: usize) -> u32 {
        let hash = xxhash_rust::xxh3::xxh3_64(bytes);
        if let Some(&id) = self.by_hash.get(&hash) {
            let entry = &self.entries[id as usize];
            if &*entry.bytes == bytes && entry.resource_len as usize == resource_len {
                return id;
            }
        }
        let mapped = !self.by_hash.contains_key(&hash);
        let header = Header {
            bytes: bytes.into(),
            resource_len: resource_len as u32,
            hash,
            mapped,
            refs: 0,
        };
        self.bytes += bytes.len() as u64;
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = header;
                id
            }
            None => {
                self.entries.push(header);
                (self.entries.len() - 1) as u32
            }
        };
        if mapped {
            self.by_hash.insert(hash, id);
        }
        id
    }

    #[inline]
    fn add_ref(&mut self, id: u32) {
        self.entries[id as usize].refs += 1;
    }

    #[inline]
    fn release(&mut self, id: u32) {
        let entry = &mut self.entries[id as usize];
        entry.refs -= 1;
        if entry.refs == 0 {
            self.forget(id);
        }
    }

    /// Frees a header no span uses.
    fn forget(&mut self, id: u32) {
        let entry = &mut self.entries[id as usize];
        debug_assert_eq!(entry.refs, 0);
        if entry.mapped {
            self.by_hash.remove(&entry.hash);
        }
        self.bytes -= entry.bytes.len() as u64;
        entry.bytes = Box::default();
        self.free.push(id);
    }

    /// The resource and scope headers of `id`.
    #[inline]
    fn get(&self, id: u32) -> (&[u8], &[u8]) {
        let entry = &self.entries[id as usize];
        entry.bytes.split_at(entry.resource_len as usize)
    }

    fn resource(&self, id: u32) -> Option<ResourceView<'_>> {
        ResourceGroup::from_header(self.get(id).0).resource()
    }
}

/// One buffered span.
#[derive(Debug, Clone, Copy)]
struct SpanSlot {
    chunk: u32,
    offset: u32,
    len: u32,
    header: u32,
    /// The trace's next span, or the next free slot.
    next: u32,
}

/// One buffered trace.
#[derive(Debug, Clone)]
struct TraceEntry {
    id: u128,
    first: Instant,
    facts: Facts,
    head: u32,
    tail: u32,
    /// Bumped each time the slot is reused, so stale queue entries are recognised.
    generation: u32,
    /// Whether the entry is a buffered trace awaiting its decision (not a decided trace or a
    /// free slot).
    live: bool,
    /// Whether its root span arrived (queued in `roots`).
    root_seen: bool,
}

/// A fixed-size set of trace ids, forgetting the oldest first.
#[derive(Debug)]
struct DecisionCache {
    ring: Vec<u128>,
    next: usize,
    capacity: usize,
    set: HashSet<u128, IdHash>,
}

impl DecisionCache {
    fn new(capacity: usize, hash: IdHash) -> Self {
        DecisionCache {
            ring: Vec::new(),
            next: 0,
            capacity,
            set: HashSet::with_hasher(hash),
        }
    }

    #[inline]
    fn contains(&self, id: u128) -> bool {
        self.capacity > 0 && self.set.contains(&id)
    }

    fn insert(&mut self, id: u128) {
        if self.capacity == 0 || !self.set.insert(id) {
            return;
        }
        if self.ring.len() < self.capacity {
            self.ring.push(id);
        } else {
            let old = std::mem::replace(&mut self.ring[self.next], id);
            self.set.remove(&old);
        }
        self.next = (self.next + 1) % self.capacity;
    }
}

/// Drops queue heads whose trace was already decided through the other queue.
fn skip_stale(
    order: &mut VecDeque<(u32, u32)>,
    roots: &mut VecDeque<(u32, u32, Instant)>,
    entries: &[TraceEntry],
) {
    let live = |e: u32, g: u32| {
        let t = &entries[e as usize];
        t.live && t.generation == g
    };
    while let Some(&(e, g)) = order.front() {
        if live(e, g) {
            break;
        }
        order.pop_front();
    }
    while let Some(&(e, g, _)) = roots.front() {
        if live(e, g) {
            break;
        }
        roots.pop_front();
    }
}

/// The next trace to decide at `now`, and why, given the traces and bytes still held; the
/// queues' heads must be live (see [`skip_stale`]). `shutdown` makes every trace due.
fn next_to_decide(
    order: &mut VecDeque<(u32, u32)>,
    roots: &mut VecDeque<(u32, u32, Instant)>,
    entries: &[TraceEntry],
    limits: &BufferLimits,
    (traces, bytes): (usize, u64),
    now: Instant,
    shutdown: bool,
) -> Option<(u32, Due)> {
    if let Some(&(e, _, due)) = roots.front() {
        if due <= now {
            roots.pop_front();
            return Some((e, Due::Wait));
        }
    }
    let &(e, _) = order.front()?;
    let due = if entries[e as usize].first + limits.decision_wait <= now {
        Due::Wait
    } else if shutdown {
        Due::Shutdown
    } else if limits.evict_at_num_traces && traces > limits.num_traces {
        Due::NumTraces
    } else if bytes > limits.soft_bytes {
        Due::Memory
    } else {
        return None;
    };
    order.pop_front();
    Some((e, due))
}

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
}

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

/// A late span of a kept trace, to be framed at the end of its request.
#[derive(Debug, Clone, Copy)]
struct LateSpan {
    /// Its headers in `late_headers`: resource `[at, split)`, scope `[split, end)`.
    at: u32,
    split: u32,
    end: u32,
    /// Its bytes in the request.
    start: u32,
    len: u32,
}

/// One shard's trace buffer.
pub struct TraceBuffer {
    limits: BufferLimits,
    traces: HashMap<u128, u32, IdHash>,
    entries: Vec<TraceEntry>,
    free_entries: Vec<u32>,
    /// Buffered traces by first arrival: (entry, generation).
    order: VecDeque<(u32, u32)>,
    /// Traces whose root arrived, by root arrival: (entry, generation, deadline).
    roots: VecDeque<(u32, u32, Instant)>,
    slots: Vec<SpanSlot>,
    free_slot: u32,
    arena: Arena,
    headers: Headers,
    sampled: DecisionCache,
    not_sampled: DecisionCache,
    /// Buffered spans, and their bytes.
    spans: u64,
    span_bytes: u64,
    framer: Framer,
    /// Scratch: the current request's headers.
    scratch: Vec<u8>,
    late_headers: Vec<u8>,
    late: Vec<LateSpan>,
    /// Scratch: a round's kept spans, as (header, slot).
    kept: Vec<(u32, u32)>,
    /// Scratch: a round's decided entries.
    decided: Vec<u32>,
}

impl TraceBuffer {
    pub fn new(limits: BufferLimits, expected_traces: usize) -> Self {
        let hash = IdHash::random();
        TraceBuffer {
            traces: HashMap::with_capacity_and_hasher(expected_traces.min(limits.num_traces), hash),
            entries: Vec::new(),
            free_entries: Vec::new(),
            order: VecDeque::new(),
            roots: VecDeque::new(),
            slots: Vec::new(),
            free_slot: NIL,
            arena: Arena::default(),
            headers: Headers::new(hash),
            sampled: DecisionCache::new(limits.sampled_cache, hash),
            not_sampled: DecisionCache::new(limits.not_sampled_cache, hash),
            spans: 0,
            span_bytes: 0,
            framer: Framer::new(),
            scratch: Vec::new(),
            late_headers: Vec::new(),
            late: Vec::new(),
            kept: Vec::new(),
            decided: Vec::new(),
            limits,
        }
    }

    pub(crate) fn limits(&self) -> &BufferLimits {
        &self.limits
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
    /// their peak (freed slots are reused), which the budget itself bounded; counting that peak
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

    /// Buffers the spans of `request`, an export request this process validated, all of whose
    /// traces this shard owns. Late spans of kept traces are framed into `late` (one export
    /// request, appended); late spans of traces not kept are dropped.
    pub fn insert(&mut self, request: &[u8], now: Instant, late: &mut Vec<u8>) -> Inserted {
        let mut done = Inserted::default();
        self.late_headers.clear();
        self.late.clear();
        let request_view = Request::trusted(Signal::Traces, request);
        let base = request.as_ptr() as usize;
        for resource_group in request_view.resource_groups() {
            self.scratch.clear();
            resource_group.header().write_to(&mut self.scratch);
            let resource_len = self.scratch.len();
            for scope_group in resource_group.scope_groups() {
                self.scratch.truncate(resource_len);
                scope_group.header().write_to(&mut self.scratch);
                // Interned on the group's first buffered span; copied for its first late one.
                let mut header = NIL;
                let mut late_header = None;
                for item in scope_group.items() {
                    let span = SpanFacts::scan(item.bytes)
                        .unwrap_or_else(|| SpanFacts::from(&SpanView::new(item)));
                    let Some(id) = span.trace_id_array() else {
                        // Receivers set such spans aside before routing; should one get here,
                        // it is counted, not lost silently.
                        done.invalid += 1;
                        continue;
                    };
                    let id = u128::from_le_bytes(id);
                    let entry = match self.traces.get(&id) {
                        Some(&entry) => entry,
                        None if self.sampled.contains(id) => {
                            let (at, split, end) = *late_header.get_or_insert_with(|| {
                                let at = self.late_headers.len() as u32;
                                self.late_headers.extend_from_slice(&self.scratch);
                                (at, at + resource_len as u32, self.late_headers.len() as u32)
                            });
                            self.late.push(LateSpan {
                                at,
                                split,
                                end,
                                start: (item.bytes.as_ptr() as usize - base) as u32,
                                len: item.bytes.len() as u32,
                            });
                            done.late_sampled += 1;
                            continue;
                        }
                        None if self.not_sampled.contains(id) => {
                            done.late_not_sampled += 1;
                            continue;
                        }
                        None => {
                            done.new_traces += 1;
                            self.new_trace(id, now)
                        }
                    };
                    if header == NIL {
                        header = self.headers.intern(&self.scratch, resource_len);
                    }
                    self.append(entry, item.bytes, &span, header);
                    done.buffered += 1;
                    if !span.has_parent {
                        self.root_arrived(entry, now);
                    }
                    if let Some(max) = self.limits.max_trace_bytes {
                        if self.entries[entry as usize].facts.bytes() > max {
                            let trace = &self.entries[entry as usize];
                            let (spans, id) = (trace.facts.span_count(), trace.id);
                            self.release(entry);
                            self.not_sampled.insert(id);
                            done.too_large += spans;
                        }
                    }
                }
                // A group's header interned for spans that were all dropped again.
                if header != NIL && self.headers.entries[header as usize].refs == 0 {
                    self.headers.forget(header);
                }
            }
        }
        if !self.late.is_empty() {
            let (headers, late_spans) = (&self.late_headers, &self.late);
            self.framer.frame(
                late_spans.iter().map(|l| Piece {
                    resource: &headers[l.at as usize..l.split as usize],
                    scope: &headers[l.split as usize..l.end as usize],
                    item: &request[l.start as usize..(l.start + l.len) as usize],
                }),
                late,
            );
        }
        done
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
        self.order
            .push_back((index, self.entries[index as usize].generation));
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
        let index = if self.free_slot != NIL {
            let index = self.free_slot;
            self.free_slot = self.slots[index as usize].next;
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
        self.roots.push_back((entry, trace.generation, now + wait));
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
            self.slots[at as usize].next = self.free_slot;
            self.free_slot = at;
            self.spans -= 1;
            self.span_bytes -= u64::from(slot.len);
            at = slot.next;
        }
        self.traces.remove(&id);
        self.free_entries.push(entry);
    }

    /// When the next trace is due, if any is buffered.
    pub fn next_due(&mut self) -> Option<Instant> {
        skip_stale(&mut self.order, &mut self.roots, &self.entries);
        let by_wait = self
            .order
            .front()
            .map(|&(e, _)| self.entries[e as usize].first + self.limits.decision_wait);
        let by_root = self.roots.front().map(|&(_, _, due)| due);
        match (by_wait, by_root) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

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
        early: &mut impl FnMut(Due),
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
            skip_stale(&mut self.order, &mut self.roots, &self.entries);
            let unreleased = self.bytes().saturating_sub(released);
            let pending = self.traces.len() - self.decided.len();
            let Some((e, due)) = next_to_decide(
                &mut self.order,
                &mut self.roots,
                &self.entries,
                &self.limits,
                (pending, unreleased),
                now,
                shutdown,
            ) else {
                break;
            };
            if due != Due::Wait {
                early(due);
            }
            self.decided.push(e);
            // Decided: the other queue's entry for it is stale from now on.
            self.entries[e as usize].live = false;
            let trace = &self.entries[e as usize];
            let (arena, slots, headers) = (&self.arena, &self.slots, &self.headers);
            let walk = |mut at: u32| {
                std::iter::from_fn(move || {
                    (at != NIL).then(|| {
                        let index = at;
                        at = slots[at as usize].next;
                        index
                    })
                })
            };
            views.clear();
            if policies.reads_spans(trace.facts.has_zero_times()) {
                views.extend(walk(trace.head).map(|s| {
                    let slot = &slots[s as usize];
                    TraceSpan {
                        span: SpanView::new(Item {
                            bytes: arena.get(slot.chunk, slot.offset, slot.len),
                            offset: 0,
                        }),
                        resource: headers.resource(slot.header),
                    }
                }));
            }
            let decision = policies.decide(
                &Trace::with_facts(trace.id.to_le_bytes(), trace.facts, &views),
                now,
            );
            for (i, d) in decision.per_policy.iter().enumerate() {
                if let Some(d) = d {
                    metrics.policy_evaluated(i, decision.latencies_us[i], d.metric());
                }
            }
            let spans = trace.facts.span_count();
            metrics.trace_decided(decision.decision.metric(), spans);
            released += trace.facts.bytes() + spans * SPAN_OVERHEAD + TRACE_OVERHEAD;
            round.traces += 1;
            if decision.sampled {
                self.kept
                    .extend(walk(trace.head).map(|s| (slots[s as usize].header, s)));
                kept_bytes += trace.facts.bytes();
                round.kept_spans += spans;
                self.sampled.insert(trace.id);
            } else {
                debug_assert!(matches!(
                    decision.decision,
                    Decision::NotSampled | Decision::Dropped
                ));
                round.discarded_spans += spans;
                self.not_sampled.insert(trace.id);
            }
        }
        drop(views);
        if !self.kept.is_empty() {
            // Spans under one header pair sit together, so each is written once.
            self.kept.sort_unstable();
            let (arena, slots, headers) = (&self.arena, &self.slots, &self.headers);
            self.framer.frame(
                self.kept.iter().map(|&(header, s)| {
                    let slot = &slots[s as usize];
                    let (resource, scope) = headers.get(header);
                    Piece {
                        resource,
                        scope,
                        item: arena.get(slot.chunk, slot.offset, slot.len),
                    }
                }),
                out,
            );
        }
        let decided = std::mem::take(&mut self.decided);
        for &e in &decided {
            self.release(e);
        }
        self.decided = decided;
        self.decided.clear();
        round
    }

    /// Frees every buffered trace undecided; returns the spans dropped.
    pub(crate) fn drop_all(&mut self) -> u64 {
        let spans = self.spans;
        let entries: Vec<u32> = self.traces.values().copied().collect();
        for e in entries {
            self.release(e);
        }
        self.order.clear();
        self.roots.clear();
        spans
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;

    use super::super::testing::{config, policy, str_attr, MS, T0};
    use super::*;
    use crate::config::{PolicyKind, StatusCode, StatusCodePolicy, StringAttributePolicy};
    use crate::telemetry::{self, RegistryBuilder};

    const WAIT: Duration = Duration::from_secs(2);

    fn limits() -> BufferLimits {
        BufferLimits {
            decision_wait: WAIT,
            decision_wait_after_root: None,
            num_traces: 1000,
            evict_at_num_traces: true,
            soft_bytes: u64::MAX,
            sampled_cache: 100,
            not_sampled_cache: 100,
            max_trace_bytes: None,
        }
    }

    fn id(trace: u8) -> Vec<u8> {
        let mut id = vec![0x11; 16];
        id[0] = trace;
        id[15] = trace;
        id
    }

    /// Span `n` of trace `trace`; an error span when `error`; a root when `n` is 0.
    fn span(trace: u8, n: u8, error: bool) -> Span {
        Span {
            trace_id: id(trace),
            span_id: vec![n + 1, trace, 0, 0, 0, 0, 0, 1],
            parent_span_id: if n == 0 {
                vec![]
            } else {
                vec![1, trace, 0, 0, 0, 0, 0, 1]
            },
            name: format!("t{trace}-s{n}"),
            start_time_unix_nano: T0 + u64::from(n) * MS,
            end_time_unix_nano: T0 + (u64::from(n) + 1) * MS,
            status: error.then(|| Status {
                code: status::StatusCode::Error as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A request with one resource group per service, each holding `spans`.
    fn request(groups: Vec<(&str, Vec<Span>)>) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: groups
                .into_iter()
                .map(|(service, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![str_attr("service.name", service)],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
        .encode_to_vec()
    }

    /// Span names by service in an export request.
    fn names(bytes: &[u8]) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for group in ExportTraceServiceRequest::decode(bytes)
            .unwrap()
            .resource_spans
        {
            let service = match &group.resource.unwrap().attributes[0].value {
                Some(v) => format!("{v:?}"),
                None => String::new(),
            };
            let service = service.split('"').nth(1).unwrap_or_default().to_string();
            for scope in group.scope_spans {
                out.entry(service.clone())
                    .or_default()
                    .extend(scope.spans.into_iter().map(|s| s.name));
            }
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }

    fn errors_policy() -> PolicySet {
        PolicySet::new(
            &config(vec![policy(
                "errors",
                PolicyKind::StatusCode(StatusCodePolicy {
                    status_codes: vec![StatusCode::Error],
                }),
            )]),
            1,
        )
        .unwrap()
    }

    fn metrics() -> SamplingMetrics {
        SamplingMetrics::register(&mut RegistryBuilder::new(), 0, &["errors"])
    }

    struct Rounds {
        out: Vec<u8>,
        round: Round,
        early: Vec<Due>,
    }

    /// Decides every round due at `now`.
    fn decide(
        buffer: &mut TraceBuffer,
        policies: &mut PolicySet,
        metrics: &SamplingMetrics,
        now: Instant,
        shutdown: bool,
    ) -> Rounds {
        let mut all = Rounds {
            out: Vec::new(),
            round: Round::default(),
            early: Vec::new(),
        };
        loop {
            let r = buffer.decide_round(
                now,
                shutdown,
                policies,
                metrics,
                &mut |d| all.early.push(d),
                &mut all.out,
            );
            if r.traces == 0 {
                return all;
            }
            all.round.traces += r.traces;
            all.round.kept_spans += r.kept_spans;
            all.round.discarded_spans += r.discarded_spans;
        }
    }

    #[test]
    fn traces_wait_then_keep_whole_under_their_resources() {
        let mut buffer = TraceBuffer::new(limits(), 0);
        let (mut policies, metrics) = (errors_policy(), metrics());
        let t0 = Instant::now();
        let mut late = Vec::new();
        // Trace 1 (kept: one error span) and trace 2 (not kept), in two waves, from two
        // services.
        let first = request(vec![
            ("api", vec![span(1, 0, false), span(2, 0, false)]),
            ("db", vec![span(1, 1, false)]),
        ]);
        let second = request(vec![
            ("db", vec![span(2, 1, false), span(1, 2, true)]),
            ("api", vec![span(1, 3, false)]),
        ]);
        let done = buffer.insert(&first, t0, &mut late);
        assert_eq!((done.buffered, done.new_traces), (3, 2));
        let done = buffer.insert(&second, t0 + Duration::from_secs(1), &mut late);
        assert_eq!((done.buffered, done.new_traces), (3, 0));
        assert!(late.is_empty());
        assert_eq!((buffer.trace_count(), buffer.span_count()), (2, 6));

        let before = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT / 2, false);
        assert_eq!(before.round.traces, 0);
        assert_eq!(buffer.next_due(), Some(t0 + WAIT));

        let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
        assert_eq!(
            due.round,
            Round {
                traces: 2,
                kept_spans: 4,
                discarded_spans: 2
            }
        );
        assert!(due.early.is_empty());
        let kept = names(&due.out);
        assert_eq!(kept["api"], ["t1-s0", "t1-s3"]);
        assert_eq!(kept["db"], ["t1-s1", "t1-s2"]);
        // Each service's resource group is written once.
        let groups = ExportTraceServiceRequest::decode(&due.out[..])
            .unwrap()
            .resource_spans;
        assert_eq!(groups.len(), 2);
        assert_eq!((buffer.trace_count(), buffer.span_count()), (0, 0));
        assert_eq!(buffer.next_due(), None);
        assert_eq!(metrics.decided_spans(telemetry::Decision::Sampled), 4);
        assert_eq!(metrics.decided_spans(telemetry::Decision::NotSampled), 2);

        // Late spans follow their trace's decision.
        let third = request(vec![("api", vec![span(1, 4, false), span(2, 2, true)])]);
        let done = buffer.insert(&third, t0 + WAIT * 2, &mut late);
        assert_eq!(
            done,
            Inserted {
                late_sampled: 1,
                late_not_sampled: 1,
                ..Inserted::default()
            }
        );
        assert_eq!(names(&late)["api"], ["t1-s4"]);
        assert_eq!(buffer.trace_count(), 0);
    }

    #[test]
    fn kept_spans_are_the_bytes_received() {
        let mut buffer = TraceBuffer::new(limits(), 0);
        let (mut policies, metrics) = (errors_policy(), metrics());
        let t0 = Instant::now();
        let spans = vec![span(7, 0, true), span(7, 1, false)];
        let bytes = request(vec![("api", spans.clone())]);
        buffer.insert(&bytes, t0, &mut Vec::new());
        let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
        let back = ExportTraceServiceRequest::decode(&due.out[..]).unwrap();
        assert_eq!(back, ExportTraceServiceRequest::decode(&bytes[..]).unwrap());
    }

    #[test]
    fn num_traces_decides_the_oldest_early() {
        let mut buffer = TraceBuffer::new(
            BufferLimits {
                num_traces: 2,
                ..limits()
            },
            0,
        );
        let (mut policies, metrics) = (errors_policy(), metrics());
        let t0 = Instant::now();
        for trace in 1..=3u8 {
            let at = t0 + Duration::from_millis(u64::from(trace));
            buffer.insert(
                &request(vec![("api", vec![span(trace, 0, trace == 1)])]),
                at,
                &mut Vec::new(),
            );
        }
        let now = t0 + Duration::from_millis(10);
        let early = decide(&mut buffer, &mut policies, &metrics, now, false);
        // Trace 1, the oldest, decided with what it had: its error span, so kept.
        assert_eq!(early.early, [Due::NumTraces]);
        assert_eq!(early.round.kept_spans, 1);
        assert_eq!(names(&early.out)["api"], ["t1-s0"]);
        assert_eq!(buffer.trace_count(), 2);
    }

    #[test]
    fn the_soft_limit_decides_early_and_the_arena_gives_memory_back() {
        let mut buffer = TraceBuffer::new(limits(), 0);
        let (mut policies, metrics) = (errors_policy(), metrics());
        let t0 = Instant::now();
        let empty = buffer.bytes();
        // About 3 MB of spans in 200 traces.
        let big = |trace: u8, n: u8| Span {
            attributes: vec![str_attr("payload", &"x".repeat(1000))],
            ..span(trace, n, false)
        };
        for trace in 0..200u8 {
            let spans: Vec<Span> = (0..15).map(|n| big(trace, n)).collect();
            buffer.insert(&request(vec![("api", spans)]), t0, &mut Vec::new());
        }
        let raw = buffer.span_bytes();
        assert!(raw > 3_000_000);
        let held = buffer.bytes() - empty;
        // Chunks are filled: what the buffer holds is the span bytes, their slots and traces,
        // plus at most the chunk being filled.
        assert!(
            held <= raw + buffer.span_count() * 64 + CHUNK_BYTES as u64,
            "held {held} for {raw} span bytes"
        );
        let limit = buffer.bytes() / 2;
        buffer.limits.soft_bytes = limit;
        let early = decide(&mut buffer, &mut policies, &metrics, t0, false);
        assert!(early.early.iter().all(|&d| d == Due::Memory));
        assert!(!early.early.is_empty());
        assert!(buffer.bytes() <= limit, "{} > {limit}", buffer.bytes());
        // Everything decided: at most the chunk being filled and the spares are left.
        decide(&mut buffer, &mut policies, &metrics, t0, true);
        assert_eq!(buffer.span_count(), 0);

        assert!(buffer.arena.allocated <= CHUNK_BYTES as u64);
        assert!(buffer.arena.spare.len() <= SPARE_CHUNKS_MAX);
    }

    #[test]
    fn a_peak_that_has_passed_does_not_keep_the_buffer_over_its_limit() {
        let mut buffer = TraceBuffer::new(limits(), 0);
        let (mut policies, metrics) = (errors_policy(), metrics());
        let t0 = Instant::now();
        // A peak of 20,000 spans in 2,000 traces, all decided: the slabs keep that length.
        for round in 0..200u32 {
            let spans = (0..10u8)
                .flat_map(|trace| (0..10u8).map(move |n| (trace, n)))
                .map(|(trace, n)| Span {
                    trace_id: [&round.to_le_bytes()[..], &[trace; 12]].concat(),
                    ..span(trace, n, false)
                })
                .collect();
            buffer.insert(&request(vec![("api", spans)]), t0, &mut Vec::new());
        }
        assert_eq!(buffer.trace_count(), 2000);
        decide(&mut buffer, &mut policies, &metrics, t0, true);
        let peak = buffer.slots.len() as u64 * SPAN_OVERHEAD
            + buffer.entries.len() as u64 * TRACE_OVERHEAD;
        // A soft limit below that peak but above one chunk: a new trace waits its turn.
        buffer.limits.soft_bytes = CHUNK_BYTES as u64 + 64 * 1024;
        assert!(peak > buffer.limits.soft_bytes, "{peak}");
        buffer.insert(
            &request(vec![("api", vec![span(1, 0, true)])]),
            t0,
            &mut Vec::new(),
        );
        let calm = decide(&mut buffer, &mut policies, &metrics, t0, false);
        assert_eq!(
            calm.round.traces,
            0,
            "decided on arrival at {} bytes",
            buffer.bytes()
        );
        assert_eq!(buffer.trace_count(), 1);
    }

    #[test]
    fn a_root_span_can_make_its_trace_due_sooner() {
        let mut buffer = TraceBuffer::new(
            BufferLimits {
                decision_wait_after_root: Some(Duration::from_millis(100)),
                ..limits()
            },
            0,
        );
        let (mut policies, metrics) = (errors_policy(), metrics());
        let t0 = Instant::now();
        // Trace 1 gets its root at once; trace 2 (first seen later) never gets one.
        buffer.insert(
            &request(vec![("api", vec![span(1, 1, true)])]),
            t0,
            &mut Vec::new(),
        );
        buffer.insert(
            &request(vec![("api", vec![span(2, 1, true)])]),
            t0 + Duration::from_millis(1),
            &mut Vec::new(),
        );
        let root_at = t0 + Duration::from_millis(50);
        buffer.insert(
            &request(vec![("api", vec![span(1, 0, false)])]),
            root_at,
            &mut Vec::new(),
        );
        assert_eq!(
            buffer.next_due(),
            Some(root_at + Duration::from_millis(100))
        );
        let soon = decide(
            &mut buffer,
            &mut policies,
            &metrics,
            root_at + Duration::from_millis(100),
            false,
        );
        assert_eq!(soon.round.traces, 1);
        assert_eq!(names(&soon.out)["api"], ["t1-s0", "t1-s1"]);
        // Trace 1's first-arrival queue entry is stale now; trace 2 waits its full time.
        assert_eq!(
            buffer.next_due(),
            Some(t0 + Duration::from_millis(1) + WAIT)
        );
        let rest = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT * 2, false);
        assert_eq!(rest.round.traces, 1);
        assert_eq!(names(&rest.out)["api"], ["t2-s1"]);
    }

    #[test]
    fn a_trace_past_its_size_limit_is_dropped_with_its_later_spans() {
        let mut buffer = TraceBuffer::new(
            BufferLimits {
                max_trace_bytes: Some(100),
                ..limits()
            },
            0,
        );
        let t0 = Instant::now();
        let mut late = Vec::new();
        let spans: Vec<Span> = (0..4).map(|n| span(3, n, true)).collect();
        let done = buffer.insert(&request(vec![("api", spans)]), t0, &mut late);
        assert!(done.too_large >= 2, "{done:?}");
        assert!(done.late_not_sampled >= 1, "{done:?}");
        assert_eq!(done.too_large + done.late_not_sampled, 4);
        assert_eq!(buffer.span_count(), 0);
        assert_eq!(buffer.headers.bytes, 0);
    }

    #[test]
    fn attribute_policies_see_span_and_resource_attributes() {
        let route = |key: &str, value: &str| {
            PolicyKind::StringAttribute(StringAttributePolicy {
                key: key.to_string(),
                values: vec![value.to_string()],
                enabled_regex_matching: false,
                cache_max_size: 128,
                invert_match: false,
            })
        };
        let mut policies = PolicySet::new(
            &config(vec![
                policy("by-span", route("http.route", "/checkout")),
                policy("by-resource", route("service.name", "billing")),
            ]),
            1,
        )
        .unwrap();
        let metrics = SamplingMetrics::register(&mut RegistryBuilder::new(), 0, &["a", "b"]);
        let mut buffer = TraceBuffer::new(limits(), 0);
        let t0 = Instant::now();
        let checkout = Span {
            attributes: vec![str_attr("http.route", "/checkout")],
            ..span(1, 0, false)
        };
        buffer.insert(
            &request(vec![
                ("api", vec![checkout, span(2, 0, false)]),
                ("billing", vec![span(3, 0, false)]),
            ]),
            t0,
            &mut Vec::new(),
        );
        let due = decide(&mut buffer, &mut policies, &metrics, t0 + WAIT, false);
        let kept = names(&due.out);
        assert_eq!(kept["api"], ["t1-s0"]);
        assert_eq!(kept["billing"], ["t3-s0"]);
        assert_eq!(due.round.discarded_spans, 1);
    }

    #[test]
    fn a_span_without_a_trace_id_is_counted_not_buffered() {
        let mut buffer = TraceBuffer::new(limits(), 0);
        let short = Span {
            trace_id: vec![7; 15],
            ..span(9, 0, true)
        };
        let done = buffer.insert(
            &request(vec![("api", vec![short, span(1, 0, false)])]),
            Instant::now(),
            &mut Vec::new(),
        );
        assert_eq!((done.invalid, done.buffered), (1, 1));
        assert_eq!(buffer.span_count(), 1);
    }

    #[test]
    fn drop_all_frees_everything() {
        let mut buffer = TraceBuffer::new(limits(), 0);
        let t0 = Instant::now();
        for trace in 0..10u8 {
            buffer.insert(
                &request(vec![(
                    "api",
                    vec![span(trace, 0, false), span(trace, 1, false)],
                )]),
                t0,
                &mut Vec::new(),
            );
        }
        assert_eq!(buffer.drop_all(), 20);
        assert_eq!((buffer.trace_count(), buffer.span_count()), (0, 0));
        assert_eq!(buffer.headers.bytes, 0);
        assert_eq!(buffer.next_due(), None);
    }

    #[test]
    fn the_decision_caches_forget_the_oldest() {
        let mut cache = DecisionCache::new(2, IdHash::random());
        for id in 1..=3u128 {
            cache.insert(id);
        }
        assert!(!cache.contains(1));
        assert!(cache.contains(2) && cache.contains(3));
        cache.insert(3);
        cache.insert(4);
        assert!(!cache.contains(2));
        assert!(cache.contains(3) && cache.contains(4));
        assert!(!DecisionCache::new(0, IdHash::random()).contains(0));
    }
}
