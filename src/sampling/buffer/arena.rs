//! The span arena: span bytes appended in arrival order to large chunks, each chunk counting
//! its live spans and freed (or kept as a spare) when the last one goes. No allocation per span.

use std::collections::VecDeque;

/// Arena chunk size. Large enough that chunk bookkeeping is negligible per span, small enough
/// that the one partly filled chunk per shard is negligible against any budget.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// A chunk of span bytes and how many live spans it holds.
#[derive(Debug)]
struct Chunk {
    data: Vec<u8>,
    live: u32,
}

/// Span bytes in arrival order, in chunks addressed by a sequence number.
#[derive(Debug, Default)]
pub(super) struct Arena {
    chunks: VecDeque<Chunk>,
    /// The sequence number of `chunks[0]` (wrapping).
    first: u32,
    /// Capacity of every chunk in use (the spares, at most [`SPARE_CHUNKS_MAX`] of them, are
    /// a fixed allowance outside the budget).
    pub(super) allocated: u64,
    /// Emptied chunks of [`CHUNK_BYTES`] kept for reuse: new chunks are needed as fast as old
    /// ones die, and reusing them spares the allocator returning pages to the kernel and the
    /// kernel zeroing fresh ones.
    pub(super) spare: Vec<Vec<u8>>,
}

/// The most spare chunks a shard keeps (4 MiB).
pub(super) const SPARE_CHUNKS_MAX: usize = 16;

impl Arena {
    /// Copies `bytes` in; returns the chunk and offset they are at.
    #[inline]
    pub(super) fn push(&mut self, bytes: &[u8]) -> (u32, u32) {
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

    /// The `len` bytes at `offset` of chunk `seq`.
    #[inline]
    pub(super) fn get(&self, seq: u32, offset: u32, len: u32) -> &[u8] {
        let chunk = &self.chunks[seq.wrapping_sub(self.first) as usize];
        &chunk.data[offset as usize..(offset + len) as usize]
    }

    /// One span of chunk `seq` is gone.
    #[inline]
    pub(super) fn release(&mut self, seq: u32) {
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
