//! The consistent-hash ring: which backend owns a routing key.
//!
//! Every backend is placed at [`POINTS_PER_BACKEND`] points of a 64-bit circle, each point the
//! xxh3 hash of the backend's endpoint under a seed (the point's number). A key is hashed onto
//! the same circle and owned by the backend of the first point at or after it, wrapping round.
//! The points depend on the endpoint text alone, so every node and every shard given the same
//! backends builds the same ring and agrees on every owner, whatever order the backends were
//! listed or resolved in.
//!
//! Adding a backend gives it the keys between its points and the points before them — about
//! 1/(N+1) of all keys, taken from the others in proportion — and moves no other key; removing
//! one hands its keys to the next points clockwise and moves no other key. With 256 points per
//! backend the share each backend owns is within a few percent of 1/N (the standard deviation
//! is about 1/√256 of the share).
//!
//! A backend taken out (failing) keeps its points: [`Ring::owner`] walks clockwise past the
//! points of backends the caller refuses, so each of its keys goes to the backend that would
//! own it had it left, and comes back to it when it recovers.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Points on the circle per backend.
pub(super) const POINTS_PER_BACKEND: usize = 256;

/// The seed routing keys are hashed with: a trace's owning backend and its owning shard on that
/// backend (`xxh3_64(trace_id)`, unseeded) come from unrelated hashes, so the traces a backend
/// gets still spread evenly over its shards.
const KEY_SEED: u64 = 0x6c62_5f72_696e_6721;

/// The circle position of a routing key (a trace id, a service name, a resource).
pub(super) fn key_of(bytes: &[u8]) -> u64 {
    xxh3_64_with_seed(bytes, KEY_SEED)
}

/// The circle is cut into `1 << SLICE_BITS` slices by the top bits of a position, each
/// indexed, so that a lookup searches one slice's few points instead of all of them.
const SLICE_BITS: u32 = 12;

/// Backends placed on the circle; a backend is its index in the list the ring was built from.
#[derive(Debug, Clone, Default)]
pub(super) struct Ring {
    /// (position, backend), sorted by position.
    points: Vec<(u64, u32)>,
    /// For each slice, the index of its first point; one more entry, `points.len()`, ends the
    /// last slice. Empty for an empty ring.
    slices: Vec<u32>,
}

impl Ring {
    /// The ring of `endpoints` (at most `u32::MAX` of them; the configuration bounds it far
    /// lower).
    pub(super) fn new<S: AsRef<str>>(endpoints: &[S]) -> Ring {
        let mut points = Vec::with_capacity(endpoints.len() * POINTS_PER_BACKEND);
        for (backend, endpoint) in endpoints.iter().enumerate() {
            let backend = u32::try_from(backend).expect("backends are bounded");
            for point in 0..POINTS_PER_BACKEND {
                points.push((
                    xxh3_64_with_seed(endpoint.as_ref().as_bytes(), point as u64),
                    backend,
                ));
            }
        }
        // Two endpoints landing on one position (a 64-bit collision) are ordered by their
        // index; endpoints are kept sorted, so every node orders them alike.
        points.sort_unstable();
        let slices = if points.is_empty() {
            Vec::new()
        } else {
            (0..=1u64 << SLICE_BITS)
                .map(|slice| {
                    let first =
                        points.partition_point(|&(at, _)| (at >> (64 - SLICE_BITS)) < slice);
                    u32::try_from(first).expect("points are bounded")
                })
                .collect()
        };
        Ring { points, slices }
    }

    /// The index of the first point at or after `key` (`points.len()` past the last): within
    /// `key`'s slice, whose points are the only ones that can be on either side of it.
    fn first_at_or_after(&self, key: u64) -> usize {
        let slice = (key >> (64 - SLICE_BITS)) as usize;
        let (from, to) = (self.slices[slice] as usize, self.slices[slice + 1] as usize);
        from + self.points[from..to].partition_point(|&(at, _)| at < key)
    }

    /// The backend that owns `key`, or — where `usable` refuses it — the first backend after it
    /// clockwise that `usable` accepts; the owner itself when `usable` accepts none. `None`
    /// for an empty ring.
    pub(super) fn owner(&self, key: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        // Past the last point is round to the first (a compare: a division costs more than the
        // rest of the lookup).
        let start = match self.first_at_or_after(key) {
            at if at == len => 0,
            at => at,
        };
        let first = self.points[start].1 as usize;
        if usable(first) {
            return Some(first);
        }
        // At most once round the circle: bounded by the number of points.
        (1..len)
            .map(|step| self.points[(start + step) % len].1 as usize)
            .find(|&backend| backend != first && usable(backend))
            .or(Some(first))
    }
}

/// The share of `keys` whose owner changes from the ring of `before` to the ring of `after`
/// (owners compared by endpoint).
#[cfg(test)]
pub(super) fn moved_share(before: &[String], after: &[String], keys: &[u64]) -> f64 {
    let (old, new) = (Ring::new(before), Ring::new(after));
    let moved = keys
        .iter()
        .filter(|&&key| {
            let a = old.owner(key, |_| true).map(|i| &before[i]);
            let b = new.owner(key, |_| true).map(|i| &after[i]);
            a != b
        })
        .count();
    moved as f64 / keys.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("10.0.0.{i}:4317")).collect()
    }

    /// Random 16-byte trace ids, hashed as the balancer hashes them.
    fn trace_keys(count: usize) -> Vec<u64> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..count)
            .map(|_| {
                let mut id = [0u8; 16];
                for chunk in id.chunks_mut(8) {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    chunk.copy_from_slice(&state.to_le_bytes());
                }
                key_of(&id)
            })
            .collect()
    }

    /// The slice index finds the point a search over the whole circle finds, for keys at
    /// points, just before and after them, at slice bounds and at both ends of the circle.
    #[test]
    fn the_sliced_lookup_finds_the_point_a_whole_search_finds() {
        for n in [1, 3, 17] {
            let ring = Ring::new(&endpoints(n));
            let mut keys = trace_keys(20_000);
            for &(at, _) in &ring.points {
                keys.extend([at, at.wrapping_sub(1), at.wrapping_add(1)]);
            }
            for slice in 0..(1u64 << SLICE_BITS) {
                let start = slice << (64 - SLICE_BITS);
                keys.extend([start, start.wrapping_sub(1)]);
            }
            keys.extend([0, u64::MAX]);
            for key in keys {
                let whole = ring.points.partition_point(|&(at, _)| at < key);
                assert_eq!(ring.first_at_or_after(key), whole, "key {key:#x}");
            }
        }
    }

    #[test]
    fn every_backend_owns_about_an_equal_share() {
        let keys = trace_keys(200_000);
        for n in [2, 3, 5, 10] {
            let list = endpoints(n);
            let ring = Ring::new(&list);
            let mut owned = vec![0usize; n];
            for &key in &keys {
                owned[ring.owner(key, |_| true).unwrap()] += 1;
            }
            let fair = keys.len() as f64 / n as f64;
            for (backend, &count) in owned.iter().enumerate() {
                let off = (count as f64 - fair).abs() / fair;
                assert!(
                    off < 0.2,
                    "{n} backends: backend {backend} owns {count}, fair {fair}"
                );
            }
        }
    }

    /// The figure the issue asks for: one backend joining N, or one of N + 1 leaving, moves
    /// about 1/(N + 1) of the trace ids, and only those to or from that backend.
    #[test]
    fn one_backend_joining_or_leaving_moves_about_one_nth() {
        let keys = trace_keys(200_000);
        for n in [2, 3, 4, 9] {
            let (small, big) = (endpoints(n), endpoints(n + 1));
            let joined = moved_share(&small, &big, &keys);
            let left = moved_share(&big, &small, &keys);
            let ideal = 1.0 / (n + 1) as f64;
            eprintln!(
                "{n} -> {} backends: {:.2} % of trace ids moved (ideal {:.2} %); {} -> {n}: \
                 {:.2} %",
                n + 1,
                joined * 100.0,
                ideal * 100.0,
                n + 1,
                left * 100.0
            );
            assert_eq!(joined, left, "the same keys move either way");
            assert!(
                (joined - ideal).abs() < ideal * 0.25,
                "{n} -> {}: moved {joined}, ideal {ideal}",
                n + 1
            );
        }
    }

    #[test]
    fn only_keys_of_the_leaving_backend_move() {
        let keys = trace_keys(50_000);
        let before = endpoints(4);
        let after: Vec<String> = before
            .iter()
            .filter(|e| *e != &before[2])
            .cloned()
            .collect();
        let (old, new) = (Ring::new(&before), Ring::new(&after));
        for key in keys {
            let was = &before[old.owner(key, |_| true).unwrap()];
            let is = &after[new.owner(key, |_| true).unwrap()];
            if was != &before[2] {
                assert_eq!(was, is, "a key of a staying backend moved");
            }
        }
    }

    /// A backend taken out hands each of its keys to the backend that would own it had it
    /// left the ring, and no other key moves.
    #[test]
    fn a_refused_backend_s_keys_go_where_its_leaving_would_send_them() {
        let keys = trace_keys(50_000);
        let all = endpoints(5);
        let without: Vec<String> = all.iter().filter(|e| *e != &all[1]).cloned().collect();
        let (ring, smaller) = (Ring::new(&all), Ring::new(&without));
        for key in keys {
            let skipping = &all[ring.owner(key, |b| b != 1).unwrap()];
            let gone = &without[smaller.owner(key, |_| true).unwrap()];
            assert_eq!(skipping, gone);
        }
        assert_eq!(
            ring.owner(7, |_| false),
            ring.owner(7, |_| true),
            "none usable"
        );
        assert_eq!(Ring::new::<String>(&[]).owner(7, |_| true), None);
    }

    #[test]
    fn the_order_backends_are_listed_in_does_not_matter() {
        let mut list = endpoints(6);
        let ring = Ring::new(&list);
        let owners: Vec<String> = trace_keys(1000)
            .into_iter()
            .map(|k| list[ring.owner(k, |_| true).unwrap()].clone())
            .collect();
        list.reverse();
        let reversed = Ring::new(&list);
        let again: Vec<String> = trace_keys(1000)
            .into_iter()
            .map(|k| list[reversed.owner(k, |_| true).unwrap()].clone())
            .collect();
        assert_eq!(owners, again);
    }
}
