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
//!
//! # Under the tracestate gate
//!
//! With `processor.tailsamplingprocessor.usetracestate`, a [`Limiter`] at the top level (or in
//! a top-level `and`) spends its budget on a whole decision round at once, as the Collector's
//! budget limiter does per tick: the round's candidates are sorted by randomness, highest first,
//! and kept while the tokens last; the cut is the threshold just above the first trace that did
//! not fit, so the kept traces are exactly those whose randomness reaches it, and a backend can
//! weigh each by `1 / p`. Traces tied with the first rejected one go with it (a threshold
//! cannot split them). A trace larger than the burst never passes and takes no part.

use std::time::Instant;

use super::consistent::{Randomness, Threshold};

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
        self.level = self.level_at(now);
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

    /// The level at `now`, in units, without changing the bucket. A `now` older than the last
    /// update refills nothing (x/time/rate does the same).
    fn level_at(&self, now: Instant) -> u128 {
        match self.updated {
            Some(updated) => {
                let elapsed_ns = now.saturating_duration_since(updated).as_nanos();
                self.level
                    .saturating_add(elapsed_ns.saturating_mul(self.refill_per_ns))
                    .min(self.capacity)
            }
            None => self.level,
        }
    }

    /// `TokensAt(now)` in whole tokens of this shard's share.
    fn tokens_at(&self, now: Instant) -> u64 {
        u64::try_from(self.level_at(now) / self.token_units).unwrap_or(u64::MAX)
    }

    /// Whether `tokens` fit in a full bucket.
    fn fits(&self, tokens: u64) -> bool {
        u128::from(tokens).saturating_mul(self.token_units) <= self.capacity
    }
}

/// `rate_limiting` (tokens are spans) or `bytes_limiting` (tokens are bytes).
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    bucket: TokenBucket,
    /// The last round's cut, once a round has been budgeted (under the tracestate gate).
    cut: Option<Threshold>,
    /// The round being budgeted: each candidate's randomness and cost.
    round: Vec<(Randomness, u64)>,
}

impl Limiter {
    pub(crate) fn new(bucket: TokenBucket) -> Self {
        Limiter {
            bucket,
            cut: None,
            round: Vec::new(),
        }
    }

    /// Whether a trace of `cost` tokens is kept, taking them when it is: the token bucket.
    pub(crate) fn allow(&mut self, cost: u64, now: Instant) -> bool {
        self.bucket.allow(cost, now)
    }

    /// The decision under the tracestate gate, and the threshold it reports: against the
    /// round's cut once rounds are budgeted (the tokens were taken then), by the token bucket
    /// before (reporting 0, kept for certain).
    pub(crate) fn allow_consistently(
        &mut self,
        cost: u64,
        randomness: Randomness,
        now: Instant,
    ) -> (bool, Threshold) {
        if !self.bucket.fits(cost) {
            return (false, Threshold::ALWAYS);
        }
        match self.cut {
            Some(cut) if cut.keeps(randomness) => (true, cut),
            Some(_) => (false, Threshold::ALWAYS),
            None => (self.bucket.allow(cost, now), Threshold::ALWAYS),
        }
    }

    /// Adds a candidate of the round being budgeted (one that can never fit takes no part).
    pub(crate) fn add_candidate(&mut self, randomness: Randomness, cost: u64) {
        if self.bucket.fits(cost) {
            self.round.push((randomness, cost));
        }
    }

    /// Budgets the round: sets the cut and takes the tokens of the traces above it.
    pub(crate) fn close_round(&mut self, now: Instant) {
        let budget = self.bucket.tokens_at(now);
        let round = &mut self.round;
        // Highest randomness first; equal randomness in arrival order.
        round.sort_by_key(|&(randomness, _)| std::cmp::Reverse(randomness));
        let mut spent = 0u64;
        let mut kept = round.len();
        for (i, &(_, cost)) in round.iter().enumerate() {
            if spent.saturating_add(cost) > budget {
                kept = i;
                break;
            }
            spent += cost;
        }
        let cut = if kept == round.len() {
            Threshold::ALWAYS
        } else {
            let first_rejected = round[kept].0;
            while kept > 0 && round[kept - 1].0 == first_rejected {
                kept -= 1;
                spent -= round[kept].1;
            }
            if kept == 0 {
                Threshold::NEVER
            } else {
                Threshold::above(first_rejected)
            }
        };
        if spent > 0 {
            let taken = self.bucket.allow(spent, now);
            debug_assert!(taken, "the round spent more than the bucket held");
        }
        self.cut = Some(cut);
        round.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_round_keeps_the_highest_randomness_while_the_budget_lasts() {
        let t0 = Instant::now();
        // 10 spans/s, burst 20; the bucket starts full.
        let mut limiter = Limiter::new(TokenBucket::new(10, 20, 1));
        let r = Randomness::from_u56;
        for (value, cost) in [(100, 8), (400, 8), (300, 8), (200, 2), (500, 30)] {
            limiter.add_candidate(r(value), cost);
        }
        limiter.close_round(t0);
        // By randomness: 400, 300 and 200 take 18 of the 20 tokens, 100 needs 8 more; 500 is
        // above the burst and takes no part.
        assert_eq!(limiter.cut, Some(Threshold::above(r(100))));
        assert_eq!(
            limiter.allow_consistently(2, r(200), t0),
            (true, Threshold::above(r(100)))
        );
        assert_eq!(
            limiter.allow_consistently(8, r(100), t0),
            (false, Threshold::ALWAYS)
        );
        assert_eq!(
            limiter.allow_consistently(30, r(500), t0),
            (false, Threshold::ALWAYS),
            "above the burst"
        );
        // The 18 tokens were taken: 2 left, so a round of one 3-span trace keeps nothing.
        limiter.add_candidate(r(900), 3);
        limiter.close_round(t0);
        assert_eq!(limiter.cut, Some(Threshold::NEVER));
        // Everything fits: keep all.
        limiter.add_candidate(r(1), 2);
        limiter.close_round(t0);
        assert_eq!(limiter.cut, Some(Threshold::ALWAYS));
    }

    #[test]
    fn ties_with_the_first_rejected_trace_go_with_it() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(TokenBucket::new(5, 10, 1));
        let r = Randomness::from_u56;
        for (value, cost) in [(9, 4), (7, 4), (7, 4)] {
            limiter.add_candidate(r(value), cost);
        }
        limiter.close_round(t0);
        assert_eq!(limiter.cut, Some(Threshold::above(r(7))));
        // Only 9's 4 tokens were taken.
        assert!(limiter.allow(6, t0));
        assert!(!limiter.allow(1, t0));
    }

    #[test]
    fn before_any_round_the_bucket_decides() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(TokenBucket::new(5, 10, 1));
        let r = Randomness::from_u56(1);
        assert_eq!(
            limiter.allow_consistently(10, r, t0),
            (true, Threshold::ALWAYS)
        );
        assert_eq!(
            limiter.allow_consistently(1, r, t0),
            (false, Threshold::ALWAYS)
        );
    }

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
