//! The header interner: each resource group's and scope group's header (every field but their
//! children) held once per shard, counted by the spans that arrived under it, so kept spans are
//! framed under exactly the resource and scope bytes they came with.
//!
//! A header also says which client metadata its spans' request carried (see
//! [`crate::metadata`]): a class, interned too, counted by the headers under it. Class 0 is no
//! metadata, so a gateway that keeps none interns exactly what it did before, and every kept
//! span goes out under the metadata it came with.

use std::collections::HashMap;

use tailgate_wire::{ResourceGroup, ResourceView, ScopeGroup, ScopeView};

use super::hasher::IdHash;
use crate::metadata::Metadata;

/// The class of spans that came without client metadata.
pub(super) const NO_METADATA: u32 = 0;

/// One client metadata the buffered spans came with, and the headers under it.
#[derive(Debug, Default)]
struct Class {
    metadata: Metadata,
    /// Headers under it.
    refs: u32,
}

/// An interned header pair.
#[derive(Debug)]
struct Header {
    /// The resource group's header, then the scope group's.
    bytes: Box<[u8]>,
    resource_len: u32,
    /// The client metadata its spans came with.
    class: u32,
    hash: u64,
    /// Whether `by_hash` points here (not when another header with the same hash was there
    /// first).
    mapped: bool,
    /// Spans using it.
    refs: u32,
    /// Whether it is interned (not on the free list).
    live: bool,
}

/// Interned headers, counted by the spans using them.
#[derive(Debug)]
pub(super) struct Headers {
    entries: Vec<Header>,
    free: Vec<u32>,
    by_hash: HashMap<u64, u32, IdHash>,
    /// Client metadata classes; 0 is none, and stays.
    classes: Vec<Class>,
    free_classes: Vec<u32>,
    by_metadata: HashMap<Metadata, u32>,
    /// The class of the request being inserted, kept while none of its headers uses it.
    pinned: u32,
    /// Header and metadata bytes held.
    pub(super) bytes: u64,
}

impl Headers {
    /// No headers; the map keyed with `hash`.
    pub(super) fn new(hash: IdHash) -> Self {
        Headers {
            entries: Vec::new(),
            free: Vec::new(),
            by_hash: HashMap::with_hasher(hash),
            classes: vec![Class::default()],
            free_classes: Vec::new(),
            by_metadata: HashMap::new(),
            pinned: NO_METADATA,
            bytes: 0,
        }
    }

    /// The class of `metadata`, kept (while no header uses it) until [`Headers::unpin`]: call
    /// once for each request inserted, before interning its headers.
    pub(super) fn pin(&mut self, metadata: &Metadata) -> u32 {
        if metadata.is_none() {
            return NO_METADATA;
        }
        let class = match self.by_metadata.get(metadata) {
            Some(&class) => class,
            None => self.new_class(metadata),
        };
        self.pinned = class;
        class
    }

    #[cold]
    fn new_class(&mut self, metadata: &Metadata) -> u32 {
        self.bytes += metadata_bytes(metadata);
        let class = Class {
            metadata: metadata.clone(),
            refs: 0,
        };
        let id = match self.free_classes.pop() {
            Some(id) => {
                self.classes[id as usize] = class;
                id
            }
            None => {
                self.classes.push(class);
                (self.classes.len() - 1) as u32
            }
        };
        self.by_metadata.insert(metadata.clone(), id);
        id
    }

    /// After a request's headers: its class goes when none of them stayed.
    pub(super) fn unpin(&mut self) {
        let class = std::mem::replace(&mut self.pinned, NO_METADATA);
        if class != NO_METADATA && self.classes[class as usize].refs == 0 {
            self.forget_class(class);
        }
    }

    fn forget_class(&mut self, class: u32) {
        let entry = std::mem::take(&mut self.classes[class as usize]);
        self.by_metadata.remove(&entry.metadata);
        self.bytes -= metadata_bytes(&entry.metadata);
        self.free_classes.push(class);
    }

    /// The id of the header pair `bytes` (resource header, then scope header, split at
    /// `resource_len`) of spans that came with the metadata of `class`, interned if new; the
    /// caller adds its references.
    pub(super) fn intern(&mut self, bytes: &[u8], resource_len: usize, class: u32) -> u32 {
        let hash = xxhash_rust::xxh3::xxh3_64(bytes) ^ u64::from(class).wrapping_mul(CLASS_MIX);
        if let Some(&id) = self.by_hash.get(&hash) {
            let entry = &self.entries[id as usize];
            if &*entry.bytes == bytes
                && entry.resource_len as usize == resource_len
                && entry.class == class
            {
                return id;
            }
        }
        let mapped = !self.by_hash.contains_key(&hash);
        let header = Header {
            bytes: bytes.into(),
            resource_len: resource_len as u32,
            class,
            hash,
            mapped,
            refs: 0,
            live: true,
        };
        self.bytes += bytes.len() as u64;
        if class != NO_METADATA {
            self.classes[class as usize].refs += 1;
        }
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
        assert!(entry.live, "header {id} forgotten twice");
        entry.live = false;
        if entry.mapped {
            self.by_hash.remove(&entry.hash);
        }
        self.bytes -= entry.bytes.len() as u64;
        entry.bytes = Box::default();
        let class = std::mem::replace(&mut entry.class, NO_METADATA);
        self.free.push(id);
        if class != NO_METADATA {
            let refs = &mut self.classes[class as usize].refs;
            *refs -= 1;
            if *refs == 0 && class != self.pinned {
                self.forget_class(class);
            }
        }
    }

    /// Whether header `id` is interned and no span uses it.
    pub(super) fn unused(&self, id: u32) -> bool {
        let entry = &self.entries[id as usize];
        entry.live && entry.refs == 0
    }

    /// Whether header `id` is interned (it may have been freed with the last span using it).
    pub(super) fn is_live(&self, id: u32) -> bool {
        self.entries[id as usize].live
    }

    /// Whether any header has client metadata: while none has, every kept span is of class 0.
    #[inline]
    pub(super) fn has_classes(&self) -> bool {
        self.classes.len() > self.free_classes.len() + 1
    }

    /// The resource and scope headers of `id`.
    #[inline]
    pub(super) fn get(&self, id: u32) -> (&[u8], &[u8]) {
        let entry = &self.entries[id as usize];
        entry.bytes.split_at(entry.resource_len as usize)
    }

    /// The metadata class of header `id`.
    #[inline]
    pub(super) fn class(&self, id: u32) -> u32 {
        self.entries[id as usize].class
    }

    /// The client metadata of `class`.
    pub(super) fn metadata(&self, class: u32) -> &Metadata {
        &self.classes[class as usize].metadata
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

/// Mixes a class into a header's hash (an odd constant: distinct classes, distinct hashes).
const CLASS_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// What a class's metadata holds, for the buffer's byte count: its names and values, and a
/// pointer's worth for each.
fn metadata_bytes(metadata: &Metadata) -> u64 {
    let bytes: usize = metadata
        .entries()
        .iter()
        .map(|(name, values)| {
            name.len() + 16 + values.iter().map(|value| value.len() + 16).sum::<usize>()
        })
        .sum();
    (bytes + 64) as u64
}
