//! Trace ownership: `xxh3_64(trace_id)` mapped to a shard by jump consistent hashing.
//!
//! xxh3 spreads trace ids evenly whatever their structure (some SDKs put timestamps or counters
//! in them). Jump consistent hashing (Lamping and Veach, 2014) maps the 64-bit hash to one of `n`
//! shards so that growing from `n` to `n + 1` shards moves only `1 / (n + 1)` of the traces,
//! which keeps a restart with another shard count from scattering most buffered traces. It costs
//! O(ln n) multiply-adds and no table.
//!
//! A [`Router`] is a plain value, copied into every shard at start-up; it never changes while the
//! shards run.

use xxhash_rust::xxh3::xxh3_64;

/// The most shards a router spreads traces over.
pub const SHARDS_MAX: usize = 4096;

/// Maps trace ids to the shard that owns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Router {
    shards: u32,
}

impl Router {
    /// A router over `shards` shards, 1 to [`SHARDS_MAX`].
    pub fn new(shards: usize) -> Self {
        assert!(
            (1..=SHARDS_MAX).contains(&shards),
            "shard count {shards} outside 1..={SHARDS_MAX}"
        );
        Router {
            shards: shards as u32,
        }
    }

    /// How many shards this router spreads traces over.
    pub fn shards(&self) -> usize {
        self.shards as usize
    }

    /// The shard that owns `trace_id`.
    #[inline]
    pub fn owner(&self, trace_id: &[u8; 16]) -> usize {
        jump(trace_hash(trace_id), self.shards) as usize
    }
}

/// The routing hash of a trace id.
#[inline]
pub fn trace_hash(trace_id: &[u8; 16]) -> u64 {
    xxh3_64(trace_id)
}

/// Jump consistent hash: the bucket in `0..buckets` for `key`.
#[inline]
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < i64::from(buckets) {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    bucket as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(count: u64) -> impl Iterator<Item = [u8; 16]> {
        (0..count).map(|i| {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&i.to_be_bytes());
            id
        })
    }

    #[test]
    fn one_shard_owns_everything() {
        let router = Router::new(1);
        assert!(ids(1000).all(|id| router.owner(&id) == 0));
    }

    #[test]
    fn sequential_ids_spread_evenly() {
        let router = Router::new(8);
        let mut counts = [0u32; 8];
        for id in ids(80_000) {
            counts[router.owner(&id)] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn adding_a_shard_moves_few_traces() {
        let (before, after) = (Router::new(7), Router::new(8));
        let moved = ids(80_000)
            .filter(|id| before.owner(id) != after.owner(id))
            .count();
        // Ideal is 1/8 of the traces; allow sampling noise.
        assert!((9_000..11_000).contains(&moved), "{moved} moved");
        // Those that move, move to the new shard only.
        assert!(ids(80_000)
            .filter(|id| before.owner(id) != after.owner(id))
            .all(|id| after.owner(&id) == 7));
    }

    #[test]
    fn jump_matches_published_values() {
        // Buckets for key 0..: jump(k, 1) is always 0; a key's bucket never exceeds n - 1.
        for key in 0..1000u64 {
            assert_eq!(jump(key, 1), 0);
            for n in [2, 3, 10, 100] {
                assert!(jump(key, n) < n);
            }
        }
    }
}
