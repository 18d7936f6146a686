//! The buffer's slabs' elements: a buffered span's slot (where its bytes are, the header it
//! arrived under, the next span of its trace) and a buffered trace's entry (its facts and its
//! list of spans). Freed slots and entries are reused, so neither slab allocates per span.

use std::time::Instant;

use crate::sampling::trace::Facts;

/// "No slot".
pub(super) const NIL: u32 = u32::MAX;

/// One buffered span.
#[derive(Debug, Clone, Copy)]
pub(super) struct SpanSlot {
    pub(super) chunk: u32,
    pub(super) offset: u32,
    pub(super) len: u32,
    pub(super) header: u32,
    /// The trace's next span.
    pub(super) next: u32,
}

/// One buffered trace.
#[derive(Debug, Clone)]
pub(super) struct TraceEntry {
    pub(super) id: u128,
    pub(super) first: Instant,
    pub(super) facts: Facts,
    pub(super) head: u32,
    pub(super) tail: u32,
    /// Bumped each time the slot is reused, so stale queue entries are recognised.
    pub(super) generation: u32,
    /// Whether the entry is a buffered trace awaiting its decision (not a decided trace or a
    /// free slot).
    pub(super) live: bool,
    /// Whether its root span arrived (queued in `roots`).
    pub(super) root_seen: bool,
    /// Whether it passed the oversized bound (queued in `oversized`, decided at once).
    pub(super) oversized: bool,
    /// Under `sampling_strategy: span-ingest`, the first slot the resource group being
    /// inserted added to it, or [`NIL`] (the entry's size is unchanged: it fits the padding).
    pub(super) ingest_first: u32,
}
