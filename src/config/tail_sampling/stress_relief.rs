//! `processors.tail_sampling.stress_relief`: tailgate's own key (the Collector has no such
//! setting; Refinery's `StressRelief` is the model). While a shard's held bytes are high, new
//! traces are decided as they arrive, by trace id, instead of being buffered; see
//! `crate::sampling::stress_relief` for the behaviour.
//!
//! The levels are percentages of a shard's share of the memory budget. A shard refuses new data
//! when what it holds reaches 100 % of its share, so the activation level must be below 100:
//! stress relief exists to start before refusing does. The deactivation level must be below the
//! activation level, so that the two make a band that the state does not flap across.

use std::time::Duration;

use serde::Deserialize;

use super::super::component::Ctx;
use super::super::error::ConfigError;
use super::super::processors::duration_at_most;
use super::super::scalar::{Dur, Float};
use super::super::values::KeyPath;

/// `activation_level` when not given (Refinery's default).
pub const ACTIVATION_LEVEL_DEFAULT: f64 = 90.0;
/// `deactivation_level` when not given (Refinery's default).
pub const DEACTIVATION_LEVEL_DEFAULT: f64 = 75.0;
/// `minimum_activation_duration` when not given (Refinery's default).
pub const MINIMUM_ACTIVATION_DURATION_DEFAULT: Duration = Duration::from_secs(10);
/// The longest `minimum_activation_duration`.
pub const MINIMUM_ACTIVATION_DURATION_MAX: Duration = Duration::from_secs(3600);
/// The level (percent of a shard's budget) at which a shard refuses new data.
pub const REFUSING_LEVEL: f64 = 100.0;

/// When stress relief decides new traces at arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StressReliefMode {
    /// Never (the default): every trace is buffered and decided by the policies.
    #[default]
    Never,
    /// While a shard's held bytes are at or above `activation_level`, until they fall below
    /// `deactivation_level` and `minimum_activation_duration` has passed.
    Monitor,
    /// Always: no trace is buffered; every new trace is decided at arrival.
    Always,
}

impl StressReliefMode {
    /// The value as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            StressReliefMode::Never => "never",
            StressReliefMode::Monitor => "monitor",
            StressReliefMode::Always => "always",
        }
    }
}

/// `stress_relief`'s settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StressRelief {
    /// When stress relief is on (default `never`).
    pub mode: StressReliefMode,
    /// Percent of a shard's memory budget held at which stress relief starts (default 90;
    /// above 0, below 100).
    pub activation_level: f64,
    /// Percent below which it ends again (default 75; above 0, below `activation_level`).
    pub deactivation_level: f64,
    /// Percent of new traces kept while active, by trace id (required unless `never`).
    pub sampling_percentage: f64,
    /// Stress relief lasts at least this long once started (default 10s).
    pub minimum_activation_duration: Duration,
}

impl Default for StressRelief {
    fn default() -> Self {
        StressRelief {
            mode: StressReliefMode::Never,
            activation_level: ACTIVATION_LEVEL_DEFAULT,
            deactivation_level: DEACTIVATION_LEVEL_DEFAULT,
            sampling_percentage: 0.0,
            minimum_activation_duration: MINIMUM_ACTIVATION_DURATION_DEFAULT,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStressRelief {
    mode: Option<String>,
    activation_level: Option<Float>,
    deactivation_level: Option<Float>,
    sampling_percentage: Option<Float>,
    minimum_activation_duration: Option<Dur>,
}

pub(super) fn check_stress_relief(
    raw: RawStressRelief,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<StressRelief, ConfigError> {
    let mode = match raw.mode.as_deref() {
        None | Some("never") => StressReliefMode::Never,
        Some("monitor") => StressReliefMode::Monitor,
        Some("always") => StressReliefMode::Always,
        Some(other) => {
            return Err(ctx.invalid(
                &path.key("mode"),
                format!("`{other}` is not a stress relief mode; use never, monitor or always"),
            ))
        }
    };
    let activation_level = match raw.activation_level {
        Some(Float(level)) if level <= 0.0 || level >= REFUSING_LEVEL => {
            return Err(ctx.invalid(
                &path.key("activation_level"),
                format!(
                    "{level} is out of range: a shard refuses new data at {REFUSING_LEVEL} % of \
                     its memory budget, so stress relief must start above 0 and below that"
                ),
            ))
        }
        Some(Float(level)) => level,
        None => ACTIVATION_LEVEL_DEFAULT,
    };
    let deactivation_level = match raw.deactivation_level {
        Some(Float(level)) if level <= 0.0 || level >= activation_level => {
            return Err(ctx.invalid(
                &path.key("deactivation_level"),
                format!(
                    "{level} is out of range: it must be above 0 and below activation_level \
                     ({activation_level})"
                ),
            ))
        }
        Some(Float(level)) => level,
        // An activation level at or below the default deactivation level leaves no band.
        None if DEACTIVATION_LEVEL_DEFAULT >= activation_level => {
            return Err(ctx.invalid(
                &path.key("activation_level"),
                format!(
                    "{activation_level} is not above the default deactivation_level \
                     ({DEACTIVATION_LEVEL_DEFAULT}); set deactivation_level below it"
                ),
            ))
        }
        None => DEACTIVATION_LEVEL_DEFAULT,
    };
    let sampling_percentage = match raw.sampling_percentage {
        Some(Float(pct)) if !(0.0..=100.0).contains(&pct) => {
            return Err(ctx.invalid(
                &path.key("sampling_percentage"),
                format!("{pct} is not a percentage; allowed: 0 to 100"),
            ))
        }
        Some(Float(pct)) => pct,
        // What stress relief keeps is its whole cost in fidelity: the user chooses it.
        None if mode != StressReliefMode::Never => {
            return Err(ctx.missing(path, "sampling_percentage"))
        }
        None => 0.0,
    };
    let minimum_activation_duration = match raw.minimum_activation_duration {
        Some(Dur(d)) => duration_at_most(
            ctx,
            &path.key("minimum_activation_duration"),
            d,
            MINIMUM_ACTIVATION_DURATION_MAX,
        )?,
        None => MINIMUM_ACTIVATION_DURATION_DEFAULT,
    };
    Ok(StressRelief {
        mode,
        activation_level,
        deactivation_level,
        sampling_percentage,
        minimum_activation_duration,
    })
}
