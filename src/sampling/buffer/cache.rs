//! The decision caches: fixed-size sets of decided trace ids (one for sampled, one for not
//! sampled), so spans that arrive after their trace's decision follow it; each id with the
//! second it was decided at, for the late spans' age, and under the tracestate gate the
//! threshold its kept spans carry, for its late ones.
//!
//! Both caches share one map, each id marked with its decision, and keep a ring each, so each
//! forgets its own oldest ids within its own size. A span whose trace is not buffered (a new
//! trace's first span, or a late one) is then looked up once, not once in each cache: over
//! hundreds of thousands of ids each lookup is a cache miss or two, and a new trace paid for
//! both. An id is in at most one of the two: a decided trace's spans follow its decision and
//! are never buffered again, so it cannot be decided a second time while it is cached. (An id
//! and its value take 32 bytes, the id's alignment, as the id and the second alone did.)

use std::collections::hash_map::Entry;
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

/// A cached decision: the second (of the buffer's clock, with the [`OVERSIZED`] and [`RELIEF`]
/// marks) the trace was decided at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cached {
    /// Kept, with the threshold its spans carry under the tracestate gate.
    Sampled {
        at: u32,
        threshold: Option<Threshold>,
    },
    /// Not kept.
    NotSampled { at: u32 },
}

/// What the map keeps for an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decided {
    at: u32,
    sampled: bool,
    /// The threshold's bits, or [`NO_THRESHOLD`].
    threshold: u64,
}

/// The ids one cache holds, oldest forgotten first.
#[derive(Debug)]
struct Ring {
    ids: Vec<u128>,
    next: usize,
    capacity: usize,
}

impl Ring {
    fn new(capacity: usize) -> Self {
        Ring {
            ids: Vec::new(),
            next: 0,
            capacity,
        }
    }

    /// Adds `id` (the ring has room for some); returns the oldest id, when it made room.
    fn push(&mut self, id: u128) -> Option<u128> {
        let old = if self.ids.len() < self.capacity {
            self.ids.push(id);
            None
        } else {
            Some(std::mem::replace(&mut self.ids[self.next], id))
        };
        self.next = (self.next + 1) % self.capacity;
        old
    }
}

/// The two decision caches, sampled and not sampled, over one map.
#[derive(Debug)]
pub(super) struct DecisionCaches {
    sampled: Ring,
    not_sampled: Ring,
    map: HashMap<u128, Decided, IdHash>,
}

impl DecisionCaches {
    /// Empty caches of `sampled` and `not_sampled` ids (a size of 0 caches nothing), keyed with
    /// `hash`.
    pub(super) fn new(sampled: usize, not_sampled: usize, hash: IdHash) -> Self {
        DecisionCaches {
            sampled: Ring::new(sampled),
            not_sampled: Ring::new(not_sampled),
            map: HashMap::with_hasher(hash),
        }
    }

    /// The decision cached for `id`, if any.
    #[inline]
    pub(super) fn decided(&self, id: u128) -> Option<Cached> {
        let &Decided {
            at,
            sampled,
            threshold,
        } = self.map.get(&id)?;
        Some(if sampled {
            Cached::Sampled {
                at,
                threshold: (threshold != NO_THRESHOLD).then(|| Threshold::from_bits(threshold)),
            }
        } else {
            Cached::NotSampled { at }
        })
    }

    /// Caches `id` as not sampled at second `at`, forgetting the oldest such id when full.
    pub(super) fn insert_not_sampled(&mut self, id: u128, at: u32) {
        self.insert(
            id,
            Decided {
                at,
                sampled: false,
                threshold: NO_THRESHOLD,
            },
        );
    }

    /// Caches `id` as sampled at second `at` with `threshold`, forgetting the oldest such id
    /// when full.
    pub(super) fn insert_sampled(&mut self, id: u128, at: u32, threshold: Option<Threshold>) {
        let threshold = threshold.map_or(NO_THRESHOLD, Threshold::bits);
        self.insert(
            id,
            Decided {
                at,
                sampled: true,
                threshold,
            },
        );
    }

    fn insert(&mut self, id: u128, decided: Decided) {
        let ring = if decided.sampled {
            &mut self.sampled
        } else {
            &mut self.not_sampled
        };
        if ring.capacity == 0 {
            return;
        }
        match self.map.entry(id) {
            Entry::Occupied(mut cached) => {
                // Decided again the same way (a second decision updates the time): its place
                // in the ring stays.
                debug_assert_eq!(
                    cached.get().sampled,
                    decided.sampled,
                    "a cached trace decided the other way"
                );
                cached.insert(decided);
                return;
            }
            Entry::Vacant(slot) => {
                slot.insert(decided);
            }
        }
        if let Some(old) = ring.push(id) {
            self.map.remove(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(caches: &DecisionCaches, id: u128) -> Option<u32> {
        caches.decided(id).map(|cached| match cached {
            Cached::Sampled { at, .. } | Cached::NotSampled { at } => at,
        })
    }

    #[test]
    fn the_decision_caches_forget_the_oldest() {
        let mut caches = DecisionCaches::new(2, 2, IdHash::random());
        for id in 1..=3u128 {
            caches.insert_not_sampled(id, id as u32);
        }
        assert_eq!(at(&caches, 1), None);
        assert!(at(&caches, 2).is_some() && at(&caches, 3).is_some());
        caches.insert_not_sampled(3, 9);
        caches.insert_not_sampled(4, 4);
        assert_eq!(at(&caches, 2), None);
        assert_eq!(
            at(&caches, 3),
            Some(9),
            "a second decision updates the time"
        );
        assert_eq!(at(&caches, 4), Some(4));
        assert_eq!(DecisionCaches::new(0, 0, IdHash::random()).decided(0), None);
    }

    #[test]
    fn each_cache_forgets_within_its_own_size() {
        let mut caches = DecisionCaches::new(1, 3, IdHash::random());
        caches.insert_sampled(10, 1, None);
        for id in 1..=3u128 {
            caches.insert_not_sampled(id, 2);
        }
        assert_eq!(
            caches.decided(10),
            Some(Cached::Sampled {
                at: 1,
                threshold: None
            }),
            "not-sampled ids do not push sampled ones out"
        );
        caches.insert_sampled(11, 3, None);
        assert_eq!(caches.decided(10), None);
        assert_eq!(caches.decided(1), Some(Cached::NotSampled { at: 2 }));
        let mut none = DecisionCaches::new(0, 1, IdHash::random());
        none.insert_sampled(5, 1, None);
        assert_eq!(none.decided(5), None, "a size of 0 caches nothing");
    }
}
