//! Backoff between attempts, and reading the delays upstreams ask for.
//!
//! The schedule is the Collector's exporter helper's (the `cenkalti/backoff` exponential
//! policy): the interval starts at `initial_interval` and is multiplied by `multiplier`
//! (default [`BACKOFF_MULTIPLIER_DEFAULT`]) after each attempt, up to `max_interval`; each wait
//! is drawn uniformly from `interval × [1 − f, 1 + f]` where `f` is `randomization_factor`
//! (default [`BACKOFF_RANDOMIZATION_DEFAULT`]), so that shards and gateways that failed together
//! do not retry together. When the upstream names a delay (`RetryInfo`, `Retry-After`) the wait
//! is the longer of the two, as in the Collector.
//!
//! The randomness is a per-exporter xorshift generator seeded from the shard, the exporter's
//! name and the clock: no global RNG, nothing shared between shards.

use std::time::{Duration, SystemTime};

use super::settings::RetrySettings;

/// Growth of the backoff interval after each attempt, when `multiplier` is not given (the
/// Collector's default).
pub const BACKOFF_MULTIPLIER_DEFAULT: f64 = 1.5;
/// Half-width of the jitter around the interval, as a fraction of it, when
/// `randomization_factor` is not given (the Collector's default).
pub const BACKOFF_RANDOMIZATION_DEFAULT: f64 = 0.5;

/// The most a `Retry-After` in seconds is believed: a day. A larger value is more likely a
/// misconfiguration than a plan, and `max_elapsed_time` bounds the wait anyway.
const RETRY_AFTER_SECS_MAX: u64 = 24 * 60 * 60;

/// xorshift64*: tiny, fast, and good enough for jitter.
#[derive(Debug, Clone)]
pub(crate) struct Xorshift(u64);

impl Xorshift {
    /// A generator whose stream differs per shard, per exporter and per process start.
    pub fn seeded(shard: usize, name: &str) -> Xorshift {
        let clock = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let name_hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Xorshift::from_seed(clock ^ name_hash ^ (shard as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    pub fn from_seed(seed: u64) -> Xorshift {
        // splitmix64 of the seed, so that close seeds give unrelated streams; xorshift must not
        // start at zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Xorshift(if z == 0 { 1 } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The backoff schedule of one batch's attempts.
#[derive(Debug)]
pub(crate) struct Backoff {
    interval: Duration,
    max_interval: Duration,
    multiplier: f64,
    randomization_factor: f64,
}

impl Backoff {
    pub fn new(settings: &RetrySettings) -> Backoff {
        Backoff {
            interval: settings.initial_interval,
            max_interval: settings.max_interval,
            // The config layer keeps both in range; clamped again so no setting can make the
            // waits shrink toward a busy loop or go negative.
            multiplier: settings.multiplier.max(1.0),
            randomization_factor: settings.randomization_factor.clamp(0.0, 1.0),
        }
    }

    /// The wait before the next attempt; advances the schedule.
    pub fn next_delay(&mut self, rng: &mut Xorshift) -> Duration {
        let interval = self.interval.as_secs_f64();
        let low = interval * (1.0 - self.randomization_factor);
        let high = interval * (1.0 + self.randomization_factor);
        let delay = Duration::from_secs_f64(low + rng.next_f64() * (high - low));
        let next = interval * self.multiplier;
        self.interval = if next >= self.max_interval.as_secs_f64() {
            self.max_interval
        } else {
            Duration::from_secs_f64(next)
        };
        delay
    }
}

/// Reads `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date in the past is
/// a zero delay; anything unreadable is ignored, leaving the backoff to decide.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs.min(RETRY_AFTER_SECS_MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(initial_ms: u64, max_ms: u64) -> RetrySettings {
        RetrySettings {
            enabled: true,
            initial_interval: Duration::from_millis(initial_ms),
            max_interval: Duration::from_millis(max_ms),
            max_elapsed_time: Duration::from_secs(60),
            ..RetrySettings::default()
        }
    }

    #[test]
    fn the_multiplier_sets_the_growth_and_a_zero_factor_removes_the_jitter() {
        let mut rng = Xorshift::from_seed(3);
        let mut backoff = Backoff::new(&RetrySettings {
            multiplier: 2.0,
            randomization_factor: 0.0,
            ..settings(100, 1000)
        });
        let delays_ms: Vec<u128> = (0..6)
            .map(|_| backoff.next_delay(&mut rng).as_millis())
            .collect();
        assert_eq!(delays_ms, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn the_randomization_factor_sets_the_jitter_width() {
        let mut rng = Xorshift::from_seed(5);
        let delays: Vec<f64> = (0..256)
            .map(|_| {
                let mut backoff = Backoff::new(&RetrySettings {
                    randomization_factor: 0.1,
                    ..settings(1000, 1000)
                });
                backoff.next_delay(&mut rng).as_secs_f64()
            })
            .collect();
        assert!(delays
            .iter()
            .all(|&d| (0.9 - 1e-9..=1.1 + 1e-9).contains(&d)));
        let spread = delays.iter().cloned().fold(f64::MIN, f64::max)
            - delays.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 0.1, "uses the width it has: {spread}");
    }

    #[test]
    fn backoff_grows_by_half_and_stays_within_jitter() {
        let mut rng = Xorshift::from_seed(7);
        let mut backoff = Backoff::new(&settings(1000, 4000));
        let intervals_ms = [1000.0, 1500.0, 2250.0, 3375.0, 4000.0, 4000.0];
        for interval in intervals_ms {
            let d = backoff.next_delay(&mut rng).as_secs_f64() * 1000.0;
            assert!(
                d >= interval * 0.5 - 1e-6 && d <= interval * 1.5 + 1e-6,
                "{d} outside jitter of {interval}"
            );
        }
    }

    #[test]
    fn jitter_spreads() {
        let mut rng = Xorshift::from_seed(1);
        let delays: Vec<Duration> = (0..64)
            .map(|_| Backoff::new(&settings(1000, 1000)).next_delay(&mut rng))
            .collect();
        let min = delays.iter().min().unwrap();
        let max = delays.iter().max().unwrap();
        assert!(*max - *min > Duration::from_millis(500));
    }

    #[test]
    fn seeds_differ_per_shard() {
        let a = Xorshift::seeded(0, "otlp").next_u64();
        let b = Xorshift::seeded(1, "otlp").next_u64();
        assert_ne!(a, b);
        let mut zero = Xorshift::from_seed(0);
        assert_ne!(zero.next_u64(), 0);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(RETRY_AFTER_SECS_MAX))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
