//! The token bucket behind `rate_limiting` (tokens are spans) and `bytes_limiting` (tokens are
//! bytes), with a node-wide rate split exactly across shards.
//!
//! The Collector uses `golang.org/x/time/rate`: the bucket starts full, refills continuously at
//! the rate up to its burst capacity, and `AllowN(now, n)` takes `n` tokens when that many are
//! there and otherwise takes nothing, so a trace larger than the burst never passes.
//!
//! The configured rate and burst are node-wide; each shard's bucket holds `1/shards` of them. To
//! keep that exact (no rounding, however small the share), the level is counted in units of
//! `1 / (shards × 10^9)` token: one nanosecond then refills exactly `rate` units, and a token
//! costs `shards × 10^9` units. All arithmetic is `u128` and saturating.

use std::time::Instant;

/// Units in one token for one shard, per shard of the node (see the module docs).
const UNITS_PER_TOKEN_PER_SHARD: u128 = 1_000_000_000;

/// One shard's token bucket.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    /// Units added per nanosecond: the node-wide rate in tokens per second.
    refill_per_ns: u128,
    /// Units one token costs: `shards × 10^9`.
    token_units: u128,
    /// The bucket's size in units: the node-wide burst × 10^9.
    capacity: u128,
    level: u128,
    /// When the level was last brought up to date; `None` until the first request, when the
    /// bucket is full.
    updated: Option<Instant>,
}

impl TokenBucket {
    /// A bucket for one of `shards` shards sharing `rate_per_second` and `burst` node-wide.
    pub(crate) fn new(rate_per_second: u64, burst: u64, shards: u64) -> Self {
        debug_assert!(shards > 0);
        let capacity = u128::from(burst).saturating_mul(UNITS_PER_TOKEN_PER_SHARD);
        TokenBucket {
            refill_per_ns: u128::from(rate_per_second),
            token_units: u128::from(shards).saturating_mul(UNITS_PER_TOKEN_PER_SHARD),
            capacity,
            level: capacity,
            updated: None,
        }
    }

    /// `AllowN(now, tokens)`: takes `tokens` and answers true when the bucket holds them.
    pub(crate) fn allow(&mut self, tokens: u64, now: Instant) -> bool {
        if let Some(updated) = self.updated {
            // A `now` older than the last update refills nothing (x/time/rate does the same).
            let elapsed_ns = now.saturating_duration_since(updated).as_nanos();
            self.level = self
                .level
                .saturating_add(elapsed_ns.saturating_mul(self.refill_per_ns))
                .min(self.capacity);
        }
        if self.updated.is_none_or(|updated| now > updated) {
            self.updated = Some(now);
        }
        let need = u128::from(tokens).saturating_mul(self.token_units);
        if need <= self.level {
            self.level -= need;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn starts_full_and_refuses_what_it_does_not_hold() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100, 200, 1);
        assert!(bucket.allow(150, t0));
        assert!(!bucket.allow(51, t0), "50 left");
        assert!(bucket.allow(50, t0));
        assert!(!bucket.allow(1, t0));
    }

    #[test]
    fn refills_continuously_up_to_the_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100, 200, 1);
        assert!(bucket.allow(200, t0));
        // 10 ms refill 1 token at 100/s.
        assert!(!bucket.allow(2, t0 + Duration::from_millis(10)));
        assert!(bucket.allow(1, t0 + Duration::from_millis(10)));
        // An hour later the bucket is full again, never fuller.
        let later = t0 + Duration::from_secs(3600);
        assert!(!bucket.allow(201, later));
        assert!(bucket.allow(200, later));
    }

    #[test]
    fn a_request_above_the_burst_never_passes() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1_000, 500, 1);
        for s in 0..5 {
            assert!(!bucket.allow(501, t0 + Duration::from_secs(s)));
        }
        assert!(bucket.allow(500, t0 + Duration::from_secs(5)));
    }

    #[test]
    fn a_shard_holds_its_exact_share_of_the_node_figures() {
        // 10 tokens/s and a burst of 20 over 16 shards: 1.25 tokens of burst and 0.625 token/s
        // per shard, with no rounding.
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 20, 16);
        assert!(bucket.allow(1, t0));
        assert!(!bucket.allow(1, t0), "0.25 token left");
        // 1.2 s later: 0.25 + 0.75 = 1 token.
        assert!(!bucket.allow(1, t0 + Duration::from_millis(1_199)));
        assert!(bucket.allow(1, t0 + Duration::from_millis(1_200)));
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(100, 100, 1);
        assert!(bucket.allow(100, t0));
        assert!(!bucket.allow(1, t0 - Duration::from_secs(5)));
        // The later timestamp stays the reference: no double refill.
        assert!(bucket.allow(100, t0 + Duration::from_secs(1)));
        assert!(!bucket.allow(1, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn huge_figures_saturate_instead_of_overflowing() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(u64::MAX, u64::MAX, 1024);
        assert!(bucket.allow(1, t0));
        assert!(bucket.allow(1, t0 + Duration::from_secs(1 << 40)));
    }
}
