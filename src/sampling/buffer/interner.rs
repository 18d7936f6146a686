//! The header interner: each resource group's and scope group's header (every field but their
//! children) held once per shard, counted by the spans that arrived under it, so kept spans are
//! framed under exactly the resource and scope bytes they came with.

use std::collections::HashMap;

use tailgate_wire::{ResourceGroup, ResourceView, ScopeGroup, ScopeView};

use super::hasher::IdHash;

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
pub(super) struct Headers {
    entries: Vec<Header>,
    free: Vec<u32>,
    by_hash: HashMap<u64, u32, IdHash>,
    /// Header bytes held.
    pub(super) bytes: u64,
}

impl Headers {
    /// No headers; the map keyed with `hash`.
    pub(super) fn new(hash: IdHash) -> Self {
        Headers {
            entries: Vec::new(),
            free: Vec::new(),
            by_hash: HashMap::with_hasher(hash),
            bytes: 0,
        }
    }

    /// The id of the header pair `bytes` (resource header, then scope header, split at
    /// `resource_len`), interned if new; the caller adds its references.
    pub(super) fn intern(&mut self, bytes: &[u8], resource_len: usize) -> u32 {
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

    /// One more span uses header `id`.
    #[inline]
    pub(super) fn add_ref(&mut self, id: u32) {
        self.entries[id as usize].refs += 1;
    }

    /// One span less uses header `id`; the last one frees it.
    #[inline]
    pub(super) fn release(&mut self, id: u32) {
        let entry = &mut self.entries[id as usize];
        entry.refs -= 1;
        if entry.refs == 0 {
            self.forget(id);
        }
    }

    /// Frees a header no span uses.
    pub(super) fn forget(&mut self, id: u32) {
        let entry = &mut self.entries[id as usize];
        debug_assert_eq!(entry.refs, 0);
        if entry.mapped {
            self.by_hash.remove(&entry.hash);
        }
        self.bytes -= entry.bytes.len() as u64;
        entry.bytes = Box::default();
        self.free.push(id);
    }

    /// Whether no span uses header `id`.
    pub(super) fn unused(&self, id: u32) -> bool {
        self.entries[id as usize].refs == 0
    }

    /// The resource and scope headers of `id`.
    #[inline]
    pub(super) fn get(&self, id: u32) -> (&[u8], &[u8]) {
        let entry = &self.entries[id as usize];
        entry.bytes.split_at(entry.resource_len as usize)
    }

    /// The resource of header `id`, when it has one.
    pub(super) fn resource(&self, id: u32) -> Option<ResourceView<'_>> {
        ResourceGroup::from_header(self.get(id).0).resource()
    }

    /// The instrumentation scope of header `id`, when it has one.
    pub(super) fn scope(&self, id: u32) -> Option<ScopeView<'_>> {
        ScopeGroup::from_header(self.get(id).1).scope()
    }
}
