//! The decision caches: fixed-size sets of decided trace ids (one for sampled, one for not
//! sampled), so spans that arrive after their trace's decision follow it.

use std::collections::HashSet;

use super::hasher::IdHash;

/// A fixed-size set of trace ids, forgetting the oldest first.
#[derive(Debug)]
pub(super) struct DecisionCache {
    ring: Vec<u128>,
    next: usize,
    capacity: usize,
    set: HashSet<u128, IdHash>,
}

impl DecisionCache {
    /// An empty cache of `capacity` ids (none when 0), keyed with `hash`.
    pub(super) fn new(capacity: usize, hash: IdHash) -> Self {
        DecisionCache {
            ring: Vec::new(),
            next: 0,
            capacity,
            set: HashSet::with_hasher(hash),
        }
    }

    /// Whether `id` is cached.
    #[inline]
    pub(super) fn contains(&self, id: u128) -> bool {
        self.capacity > 0 && self.set.contains(&id)
    }

    /// Caches `id`, forgetting the oldest id when full.
    pub(super) fn insert(&mut self, id: u128) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
