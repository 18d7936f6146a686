//! One shard's stress relief state: on or off, from the bytes the shard holds, with hysteresis.
//! Time is passed in, so tests drive it with an injected clock.

use std::time::{Duration, Instant};

use crate::config::{StressRelief, StressReliefMode};

/// A change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Stress relief started.
    Activated,
    /// Stress relief ended, after being on this long.
    Deactivated {
        /// How long it was on.
        active_for: Duration,
    },
}

/// Whether one shard is in stress relief, and when it started.
#[derive(Debug, Clone)]
pub struct ReliefState {
    mode: StressReliefMode,
    /// The levels as percentages of the budget, for [`ReliefState::set_budget`].
    activation_level: f64,
    deactivation_level: f64,
    /// Held bytes at or above which `monitor` turns stress relief on.
    activate_bytes: u64,
    /// Held bytes below which it may turn off again.
    deactivate_bytes: u64,
    minimum: Duration,
    /// When it was turned on; `None` while off.
    since: Option<Instant>,
}

/// `percent` of `budget` bytes.
fn level_bytes(budget: u64, percent: f64) -> u64 {
    // Below 100 % of a u64, so the cast does not saturate.
    (budget as f64 * percent / 100.0) as u64
}

impl ReliefState {
    /// The state of a shard whose share of the memory budget is `budget` bytes, at `now`: on from
    /// the start with `always`, off otherwise.
    pub fn new(config: &StressRelief, budget: u64, now: Instant) -> Self {
        ReliefState {
            mode: config.mode,
            activation_level: config.activation_level,
            deactivation_level: config.deactivation_level,
            activate_bytes: level_bytes(budget, config.activation_level),
            deactivate_bytes: level_bytes(budget, config.deactivation_level),
            minimum: config.minimum_activation_duration,
            since: (config.mode == StressReliefMode::Always).then_some(now),
        }
    }

    /// Whether stress relief is on.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.since.is_some()
    }

    /// Whether the state can change: only `monitor` watches the held bytes.
    #[inline]
    pub fn watches(&self) -> bool {
        self.mode == StressReliefMode::Monitor
    }

    /// Takes the shard's held bytes at `now`: turns on at the activation level, off below the
    /// deactivation level once on for the minimum duration. Returns the change, if any.
    #[inline]
    pub fn update(&mut self, held: u64, now: Instant) -> Option<Transition> {
        if !self.watches() {
            return None;
        }
        match self.since {
            None if held >= self.activate_bytes => {
                self.since = Some(now);
                Some(Transition::Activated)
            }
            Some(since)
                if held < self.deactivate_bytes
                    && now.saturating_duration_since(since) >= self.minimum =>
            {
                self.since = None;
                Some(Transition::Deactivated {
                    active_for: now.saturating_duration_since(since),
                })
            }
            _ => None,
        }
    }

    /// The shard's limit is `budget` bytes now (it follows the process's overhead): the levels
    /// become the same percentages of it. The state itself does not change until the next
    /// [`ReliefState::update`], which compares against the new levels.
    pub fn set_budget(&mut self, budget: u64) {
        self.activate_bytes = level_bytes(budget, self.activation_level);
        self.deactivate_bytes = level_bytes(budget, self.deactivation_level);
    }

    /// The activation and deactivation levels, in bytes.
    pub fn levels(&self) -> (u64, u64) {
        (self.activate_bytes, self.deactivate_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn config(mode: StressReliefMode) -> StressRelief {
        StressRelief {
            mode,
            activation_level: 90.0,
            deactivation_level: 75.0,
            sampling_percentage: 10.0,
            minimum_activation_duration: 10 * SECOND,
        }
    }

    #[test]
    fn monitor_turns_on_at_the_activation_level() {
        let t0 = Instant::now();
        let mut state = ReliefState::new(&config(StressReliefMode::Monitor), 1000, t0);
        assert_eq!(state.levels(), (900, 750));
        assert!(!state.is_active());
        assert_eq!(state.update(899, t0), None);
        assert_eq!(state.update(900, t0 + SECOND), Some(Transition::Activated));
        assert!(state.is_active());
        assert_eq!(state.update(1000, t0 + 2 * SECOND), None, "already on");
    }

    #[test]
    fn monitor_turns_off_below_the_deactivation_level_after_the_minimum_duration() {
        let t0 = Instant::now();
        let mut state = ReliefState::new(&config(StressReliefMode::Monitor), 1000, t0);
        assert_eq!(state.update(950, t0), Some(Transition::Activated));
        // Between the levels: stays on, however long.
        assert_eq!(state.update(800, t0 + 60 * SECOND), None);
        assert_eq!(
            state.update(750, t0 + 61 * SECOND),
            None,
            "750 is not below 750"
        );
        assert!(state.is_active());
        // Below the deactivation level, but before the minimum duration: stays on.
        let mut early = ReliefState::new(&config(StressReliefMode::Monitor), 1000, t0);
        early.update(950, t0);
        assert_eq!(early.update(0, t0 + 9 * SECOND), None);
        assert_eq!(
            early.update(0, t0 + 10 * SECOND),
            Some(Transition::Deactivated {
                active_for: 10 * SECOND
            })
        );
        assert!(!early.is_active());
        // Both: off, and on again at the activation level only.
        assert_eq!(
            state.update(749, t0 + 62 * SECOND),
            Some(Transition::Deactivated {
                active_for: 62 * SECOND
            })
        );
        assert_eq!(state.update(899, t0 + 63 * SECOND), None);
        assert_eq!(
            state.update(900, t0 + 64 * SECOND),
            Some(Transition::Activated)
        );
        // The minimum duration counts from the latest activation.
        assert_eq!(state.update(0, t0 + 70 * SECOND), None);
        assert!(state.update(0, t0 + 74 * SECOND).is_some());
    }

    #[test]
    fn the_levels_follow_the_budget_and_keep_their_hysteresis() {
        let t0 = Instant::now();
        let mut state = ReliefState::new(&config(StressReliefMode::Monitor), 1000, t0);
        assert_eq!(state.update(800, t0), None, "below 900");
        // The overhead takes 400 bytes off the limit: 800 held is past 90 % of 600.
        state.set_budget(600);
        assert_eq!(state.levels(), (540, 450));
        assert_eq!(state.update(800, t0), Some(Transition::Activated));
        // Below the old deactivation level (750) but not the new one (450): stays on.
        assert_eq!(state.update(500, t0 + 20 * SECOND), None);
        // The overhead goes away: 500 is below 75 % of 1000, so it ends.
        state.set_budget(1000);
        assert_eq!(
            state.update(500, t0 + 21 * SECOND),
            Some(Transition::Deactivated {
                active_for: 21 * SECOND
            })
        );
        // Between the new levels (450, 540) neither turns it on nor, once on, off.
        state.set_budget(600);
        assert_eq!(state.update(500, t0 + 22 * SECOND), None);
        assert!(!state.is_active());
        assert_eq!(
            state.update(540, t0 + 23 * SECOND),
            Some(Transition::Activated)
        );
        assert_eq!(state.update(450, t0 + 40 * SECOND), None, "not below 450");
        assert!(state.update(449, t0 + 41 * SECOND).is_some());
    }

    #[test]
    fn a_clock_that_steps_back_does_not_end_the_minimum_duration() {
        let t0 = Instant::now() + 100 * SECOND;
        let mut state = ReliefState::new(&config(StressReliefMode::Monitor), 1000, t0);
        state.update(950, t0);
        assert_eq!(state.update(0, t0 - 50 * SECOND), None);
    }

    #[test]
    fn never_and_always_do_not_watch() {
        let t0 = Instant::now();
        let mut never = ReliefState::new(&config(StressReliefMode::Never), 1000, t0);
        assert!(!never.watches() && !never.is_active());
        assert_eq!(never.update(u64::MAX, t0), None);
        assert!(!never.is_active());
        let mut always = ReliefState::new(&config(StressReliefMode::Always), 1000, t0);
        assert!(!always.watches() && always.is_active());
        assert_eq!(always.update(0, t0 + 60 * SECOND), None);
        assert!(always.is_active());
    }
}
