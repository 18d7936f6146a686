//! A bounded least-recently-used cache of regular-expression match results, keyed by the
//! attribute value matched: the Collector keeps one per regex `string_attribute` policy
//! (`cache_max_size` entries, `groupcache/lru`) so a value seen before skips the regexes.
//!
//! Entries live in a slab linked from most to least recently used; the map points into the
//! slab. A lookup allocates nothing; an insert allocates the key (twice: slab and map) and, once
//! the cache is full, reuses the least recently used slot.

use std::collections::HashMap;

/// Values longer than this are matched without being cached, which bounds the cache's memory
/// at `capacity × MATCH_CACHE_KEY_LEN_MAX` bytes of keys (times two).
pub(crate) const MATCH_CACHE_KEY_LEN_MAX: usize = 256;

/// "No slot".
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Slot {
    key: Box<[u8]>,
    matched: bool,
    /// Toward the most recently used end.
    prev: u32,
    /// Toward the least recently used end.
    next: u32,
}

/// The cache.
#[derive(Debug, Clone)]
pub(crate) struct MatchCache {
    capacity: usize,
    map: HashMap<Box<[u8]>, u32>,
    slots: Vec<Slot>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
}

impl MatchCache {
    /// A cache of at most `capacity` entries (at least one; at most `u32::MAX - 1`).
    pub(crate) fn new(capacity: usize) -> Self {
        MatchCache {
            capacity: capacity.clamp(1, NIL as usize - 1),
            map: HashMap::new(),
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// The cached result for `key`, which becomes the most recently used.
    pub(crate) fn get(&mut self, key: &[u8]) -> Option<bool> {
        let at = *self.map.get(key)?;
        self.unlink(at);
        self.push_front(at);
        Some(self.slots[at as usize].matched)
    }

    /// Caches `matched` for `key`, which must not be cached yet, evicting the least recently
    /// used entry when full. Keys longer than [`MATCH_CACHE_KEY_LEN_MAX`] are not cached.
    pub(crate) fn insert(&mut self, key: &[u8], matched: bool) {
        if key.len() > MATCH_CACHE_KEY_LEN_MAX {
            return;
        }
        debug_assert!(!self.map.contains_key(key), "key cached twice");
        let at = if self.slots.len() < self.capacity {
            self.slots.push(Slot {
                key: key.into(),
                matched,
                prev: NIL,
                next: NIL,
            });
            (self.slots.len() - 1) as u32
        } else {
            let at = self.tail;
            self.unlink(at);
            let slot = &mut self.slots[at as usize];
            self.map.remove(&slot.key);
            slot.key = key.into();
            slot.matched = matched;
            at
        };
        self.map.insert(key.into(), at);
        self.push_front(at);
    }

    /// How many entries are cached.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn unlink(&mut self, at: u32) {
        let Slot { prev, next, .. } = self.slots[at as usize];
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, at: u32) {
        let old_head = self.head;
        let slot = &mut self.slots[at as usize];
        slot.prev = NIL;
        slot.next = old_head;
        match old_head {
            NIL => self.tail = at,
            h => self.slots[h as usize].prev = at,
        }
        self.head = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut cache = MatchCache::new(2);
        cache.insert(b"a", true);
        cache.insert(b"b", false);
        assert_eq!(cache.get(b"a"), Some(true)); // "b" is now the oldest
        cache.insert(b"c", true);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(b"b"), None);
        assert_eq!(cache.get(b"a"), Some(true));
        assert_eq!(cache.get(b"c"), Some(true));
        cache.insert(b"d", false); // evicts "a"
        assert_eq!(cache.get(b"a"), None);
        assert_eq!(cache.get(b"d"), Some(false));
    }

    #[test]
    fn a_cache_of_one_keeps_the_latest() {
        let mut cache = MatchCache::new(1);
        for (i, key) in [b"x", b"y", b"z"].iter().enumerate() {
            cache.insert(*key, i % 2 == 0);
            assert_eq!(cache.len(), 1);
            assert_eq!(cache.get(*key), Some(i % 2 == 0));
        }
        assert_eq!(cache.get(b"x"), None);
    }

    #[test]
    fn long_values_are_not_cached() {
        let mut cache = MatchCache::new(8);
        let long = vec![b'a'; MATCH_CACHE_KEY_LEN_MAX + 1];
        cache.insert(&long, true);
        assert_eq!(cache.get(&long), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn many_inserts_stay_within_capacity() {
        let mut cache = MatchCache::new(16);
        for i in 0..1000u32 {
            let key = i.to_be_bytes();
            if cache.get(&key).is_none() {
                cache.insert(&key, i % 3 == 0);
            }
            assert!(cache.len() <= 16);
        }
        // The last 16 keys are cached, in order.
        for i in 984..1000u32 {
            assert_eq!(cache.get(&i.to_be_bytes()), Some(i % 3 == 0));
        }
    }
}
