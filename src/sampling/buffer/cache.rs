//! The decision caches: fixed-size sets of decided trace ids (one for sampled, one for not
//! sampled), so spans that arrive after their trace's decision follow it; each id with the
//! second it was decided at, for the late spans' age, and under the tracestate gate the
//! threshold its kept spans carry, for its late ones. (An id and both values take 32 bytes,
//! the id's alignment, as the id and the second alone did.)

use std::collections::HashMap;

use super::hasher::IdHash;
use crate::sampling::consistent::Threshold;

/// No threshold, in a cached value.
const NO_THRESHOLD: u64 = u64::MAX;

/// Set in a cached second when the trace was decided early for its size.
pub(super) const OVERSIZED: u32 = 1 << 31;
/// Set in a cached second when stress relief decided the trace at its arrival. The second itself
/// is in the other 30 bits (34 years).
pub(super) const RELIEF: u32 = 1 << 30;

/// A fixed-size set of trace ids, forgetting the oldest first.
#[derive(Debug)]
pub(super) struct DecisionCache {
    ring: Vec<u128>,
    next: usize,
    capacity: usize,
    /// Each cached id, the second (of the buffer's clock) its trace was decided at, and its
    /// threshold's bits or [`NO_THRESHOLD`].
    set: HashMap<u128, (u32, u64), IdHash>,
}

impl DecisionCache {
    /// An empty cache of `capacity` ids (none when 0), keyed with `hash`.
    pub(super) fn new(capacity: usize, hash: IdHash) -> Self {
        DecisionCache {
            ring: Vec::new(),
            next: 0,
            capacity,
            set: HashMap::with_hasher(hash),
        }
    }

    /// The second `id` was decided at, if it is cached.
    #[inline]
    pub(super) fn decided_at(&self, id: u128) -> Option<u32> {
        self.decided(id).map(|(at, _)| at)
    }

    /// The second `id` was decided at and the threshold it was kept with, if it is cached.
    #[inline]
    pub(super) fn decided(&self, id: u128) -> Option<(u32, Option<Threshold>)> {
        if self.capacity == 0 {
            return None;
        }
        let &(at, bits) = self.set.get(&id)?;
        Some((
            at,
            (bits != NO_THRESHOLD).then(|| Threshold::from_bits(bits)),
        ))
    }

    /// Whether `id` is cached.
    #[cfg(test)]
    fn contains(&self, id: u128) -> bool {
        self.decided_at(id).is_some()
    }

    /// Caches `id`, decided at second `at`, forgetting the oldest id when full.
    pub(super) fn insert(&mut self, id: u128, at: u32) {
        self.insert_kept(id, at, None);
    }

    /// Caches `id`, decided at second `at` and kept with `threshold`.
    pub(super) fn insert_kept(&mut self, id: u128, at: u32, threshold: Option<Threshold>) {
        let bits = threshold.map_or(NO_THRESHOLD, Threshold::bits);
        if self.capacity == 0 || self.set.insert(id, (at, bits)).is_some() {
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
            cache.insert(id, id as u32);
        }
        assert!(!cache.contains(1));
        assert!(cache.contains(2) && cache.contains(3));
        cache.insert(3, 9);
        cache.insert(4, 4);
        assert!(!cache.contains(2));
        assert!(cache.contains(3) && cache.contains(4));
        assert_eq!(
            cache.decided_at(3),
            Some(9),
            "a second decision updates the time"
        );
        assert_eq!(cache.decided_at(4), Some(4));
        assert!(!DecisionCache::new(0, IdHash::random()).contains(0));
    }
}
