//! `processors`: `batch`, `filter`, `memory_limiter`, `resource` and `tail_sampling` (each also
//! as `TYPE/NAME`), with the Collector's keys and defaults. `filter`, `resource` and
//! `tail_sampling` have modules of their own.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;

use super::attributes::{check_attributes, AttributesProcessor, RawAttributesProcessor};
use super::component::{in_range, Ctx, RawComponent, RawComponents};
use super::error::{ConfigError, ConfigErrorKind};
use super::filter::{check_filter, FilterProcessor, RawFilter};
use super::locate::Target;
use super::resource::{check_resource, RawResourceProcessor, ResourceProcessor};
use super::scalar::{Dur, UInt};
use super::tail_sampling::{self, RawTailSampling, TailSampling};
use super::values::{format_duration, ComponentId, KeyPath};

/// Processor types tailgate has.
pub const PROCESSOR_KINDS: &[&str] = &[
    "attributes",
    "batch",
    "filter",
    "memory_limiter",
    "resource",
    "tail_sampling",
];

/// `send_batch_size` when not given (the Collector's default).
pub const SEND_BATCH_SIZE_DEFAULT: u32 = 8192;
/// The largest `send_batch_size` and `send_batch_max_size`, in items (spans, data points, log
/// records): a batch is built in memory before it is sent.
pub const SEND_BATCH_SIZE_MAX: u32 = 1 << 20;
/// `timeout` when not given (the Collector's default).
pub const BATCH_TIMEOUT_DEFAULT: Duration = Duration::from_millis(200);
/// The longest batch `timeout`: data waits at most this long for company.
pub const BATCH_TIMEOUT_MAX: Duration = Duration::from_secs(600);
/// `metadata_cardinality_limit` when not given: the Collector's.
pub const METADATA_CARDINALITY_LIMIT_DEFAULT: u32 = 1000;
/// The most `metadata_keys` one `batch` processor takes.
pub const METADATA_KEYS_MAX: usize = 32;
/// The longest `memory_limiter.check_interval`.
pub const CHECK_INTERVAL_MAX: Duration = Duration::from_secs(600);
/// The largest `memory_limiter.limit_mib` (16 TiB).
pub const LIMIT_MIB_MAX: u32 = 16 * 1024 * 1024;

/// The `processors` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Processors {
    /// Every processor defined, by id.
    pub by_id: BTreeMap<ComponentId, Processor>,
}

impl Processors {
    /// The processor with this id.
    pub fn get(&self, id: &ComponentId) -> Option<&Processor> {
        self.by_id.get(id)
    }
}

/// One processor's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Processor {
    /// `attributes`: edits each span's, log record's or data point's attributes (boxed: its
    /// matching is most of a processor's size).
    Attributes(Box<AttributesProcessor>),
    /// `batch`.
    Batch(BatchProcessor),
    /// `filter`: drops what meets its conditions.
    Filter(FilterProcessor),
    /// `memory_limiter`.
    MemoryLimiter(MemoryLimiter),
    /// `resource`: edits each resource's attributes.
    Resource(ResourceProcessor),
    /// `tail_sampling` (traces pipelines only).
    TailSampling(TailSampling),
}

/// `batch`: gathers items into batches by count and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchProcessor {
    /// Items after which a batch is sent regardless of `timeout` (default 8192; 0 leaves only the
    /// timer, as in the Collector).
    pub send_batch_size: u32,
    /// The most items in one batch; larger batches are split (`None`, written 0 or left out as
    /// in the Collector: no split). When set, at least `send_batch_size`.
    pub send_batch_max_size: Option<u32>,
    /// Time after which a batch is sent regardless of size (default 200ms; 0 sends at once).
    pub timeout: Duration,
    /// `metadata_keys`: the client metadata keys whose values batch apart (lower-case, sorted;
    /// empty: one batcher, as in the Collector). See `crate::metadata`.
    pub metadata_keys: Vec<String>,
    /// `metadata_cardinality_limit`: the most combinations of `metadata_keys`' values admitted
    /// on the node (default 1000; 0: no limit).
    pub metadata_cardinality_limit: u32,
}

/// `memory_limiter`: refuses data when memory use nears a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLimiter {
    /// How often memory use is measured (required, above 0).
    pub check_interval: Duration,
    /// The limit, as a size or a share of the machine's memory.
    pub limit: MemoryLimit,
}

/// The memory limit: `limit_mib` or `limit_percentage`, each with its spike allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    /// `limit_mib` and `spike_limit_mib` (default 20 % of the limit); refusing starts at
    /// `limit_mib - spike_limit_mib`.
    Mib {
        /// `limit_mib`: the hard limit, in MiB.
        limit_mib: u32,
        /// `spike_limit_mib`: headroom below the limit where refusing starts, in MiB.
        spike_limit_mib: u32,
    },
    /// `limit_percentage` and `spike_limit_percentage` of total memory (default spike: 20 % of
    /// the limit, rounded down).
    Percentage {
        /// `limit_percentage`: the hard limit, in percent of total memory.
        limit_percentage: u32,
        /// `spike_limit_percentage`: headroom below the limit, in percent of total memory.
        spike_limit_percentage: u32,
    },
}

pub(crate) enum RawProcessor {
    Attributes(Box<RawAttributesProcessor>),
    Batch(RawBatch),
    Filter(Box<RawFilter>),
    MemoryLimiter(RawMemoryLimiter),
    Resource(RawResourceProcessor),
    TailSampling(Box<RawTailSampling>),
    Unknown,
}

impl RawComponent for RawProcessor {
    fn from_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        Ok(match kind {
            "attributes" => RawProcessor::Attributes(Box::new(
                Option::<RawAttributesProcessor>::deserialize(d)?.unwrap_or_default(),
            )),
            "batch" => RawProcessor::Batch(Option::<RawBatch>::deserialize(d)?.unwrap_or_default()),
            "filter" => RawProcessor::Filter(Box::new(
                Option::<RawFilter>::deserialize(d)?.unwrap_or_default(),
            )),
            "memory_limiter" => RawProcessor::MemoryLimiter(
                Option::<RawMemoryLimiter>::deserialize(d)?.unwrap_or_default(),
            ),
            "resource" => RawProcessor::Resource(
                Option::<RawResourceProcessor>::deserialize(d)?.unwrap_or_default(),
            ),
            "tail_sampling" => RawProcessor::TailSampling(Box::new(
                Option::<RawTailSampling>::deserialize(d)?.unwrap_or_default(),
            )),
            _ => {
                IgnoredAny::deserialize(d)?;
                RawProcessor::Unknown
            }
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawBatch {
    send_batch_size: Option<UInt>,
    send_batch_max_size: Option<UInt>,
    timeout: Option<Dur>,
    metadata_keys: Option<Vec<String>>,
    metadata_cardinality_limit: Option<UInt>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMemoryLimiter {
    check_interval: Option<Dur>,
    limit_mib: Option<UInt>,
    spike_limit_mib: Option<UInt>,
    limit_percentage: Option<UInt>,
    spike_limit_percentage: Option<UInt>,
}

pub(crate) fn check(
    raw: RawComponents<RawProcessor>,
    ctx: &Ctx<'_>,
) -> Result<Processors, ConfigError> {
    let section = KeyPath::root().key("processors");
    let mut by_id = BTreeMap::new();
    for (key, raw) in raw.0 {
        let id = ctx.component_id(&section, &key)?;
        let path = section.key(key.as_str());
        let processor = match raw {
            RawProcessor::Attributes(a) => {
                Processor::Attributes(Box::new(check_attributes(*a, &path, ctx)?))
            }
            RawProcessor::Batch(batch) => Processor::Batch(check_batch(batch, &path, ctx)?),
            RawProcessor::Filter(filter) => Processor::Filter(check_filter(*filter, &path, ctx)?),
            RawProcessor::MemoryLimiter(ml) => {
                Processor::MemoryLimiter(check_memory_limiter(ml, &path, ctx)?)
            }
            RawProcessor::Resource(r) => Processor::Resource(check_resource(r, &path, ctx)?),
            RawProcessor::TailSampling(ts) => {
                Processor::TailSampling(tail_sampling::check(*ts, &path, ctx)?)
            }
            RawProcessor::Unknown => {
                return Err(ctx.error(
                    &path,
                    Target::Key,
                    ConfigErrorKind::UnknownComponent {
                        section: "processor",
                        kind: id.kind,
                        supported: PROCESSOR_KINDS,
                    },
                ))
            }
        };
        by_id.insert(id, processor);
    }
    Ok(Processors { by_id })
}

/// A duration at `path` no longer than `max`.
pub(crate) fn duration_at_most(
    ctx: &Ctx<'_>,
    path: &KeyPath,
    value: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    if value > max {
        Err(ctx.invalid(
            path,
            format!(
                "{} is too long; at most {} is allowed",
                format_duration(value),
                format_duration(max)
            ),
        ))
    } else {
        Ok(value)
    }
}

fn check_batch(
    raw: RawBatch,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<BatchProcessor, ConfigError> {
    let max = u64::from(SEND_BATCH_SIZE_MAX);
    let send_batch_size = match raw.send_batch_size {
        Some(UInt(v)) => in_range(ctx, &path.key("send_batch_size"), v, 0, max)? as u32,
        None => SEND_BATCH_SIZE_DEFAULT,
    };
    let send_batch_max_size = match raw.send_batch_max_size {
        Some(UInt(0)) | None => None,
        Some(UInt(v)) => Some(in_range(ctx, &path.key("send_batch_max_size"), v, 1, max)? as u32),
    };
    if let Some(batch_max) = send_batch_max_size.filter(|&m| m < send_batch_size) {
        return Err(ctx.invalid(
            &path.key("send_batch_max_size"),
            format!(
                "{batch_max} is below send_batch_size ({send_batch_size}); it must be 0 (no \
                 maximum) or at least send_batch_size"
            ),
        ));
    }
    let timeout = match raw.timeout {
        Some(Dur(d)) => duration_at_most(ctx, &path.key("timeout"), d, BATCH_TIMEOUT_MAX)?,
        None => BATCH_TIMEOUT_DEFAULT,
    };
    let metadata_keys = metadata_keys(
        raw.metadata_keys.unwrap_or_default(),
        &path.key("metadata_keys"),
        ctx,
    )?;
    let metadata_cardinality_limit = match raw.metadata_cardinality_limit {
        Some(UInt(v)) => in_range(
            ctx,
            &path.key("metadata_cardinality_limit"),
            v,
            0,
            u64::from(u32::MAX),
        )? as u32,
        None => METADATA_CARDINALITY_LIMIT_DEFAULT,
    };
    Ok(BatchProcessor {
        send_batch_size,
        send_batch_max_size,
        timeout,
        metadata_keys,
        metadata_cardinality_limit,
    })
}

/// A list of client metadata keys at `path` (a batch processor's `metadata_keys`, an
/// exporter's `partition.metadata_keys`), as the Collector checks them: each once regardless of
/// case, none empty; at most [`METADATA_KEYS_MAX`]. Lower-case and sorted.
pub(crate) fn metadata_keys(
    raw: Vec<String>,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Vec<String>, ConfigError> {
    if raw.len() > METADATA_KEYS_MAX {
        return Err(ctx.invalid(
            path,
            format!(
                "{} keys; at most {METADATA_KEYS_MAX} are allowed",
                raw.len()
            ),
        ));
    }
    let mut keys: Vec<String> = Vec::with_capacity(raw.len());
    for key in raw {
        let lower = key.to_ascii_lowercase();
        if lower.is_empty() {
            return Err(ctx.invalid(path, "an empty key names no metadata"));
        }
        if keys.contains(&lower) {
            return Err(ctx.invalid(
                path,
                format!("duplicate entry in metadata_keys: {lower:?} (case-insensitive)"),
            ));
        }
        keys.push(lower);
    }
    keys.sort();
    Ok(keys)
}

fn check_memory_limiter(
    raw: RawMemoryLimiter,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<MemoryLimiter, ConfigError> {
    let check_interval = match raw.check_interval {
        Some(Dur(d)) if d.is_zero() => {
            return Err(ctx.invalid(
                &path.key("check_interval"),
                "must be above 0 (1s is typical)",
            ))
        }
        Some(Dur(d)) => duration_at_most(ctx, &path.key("check_interval"), d, CHECK_INTERVAL_MAX)?,
        // The Collector has no default and refuses 0.
        None => return Err(ctx.missing(path, "check_interval")),
    };
    let limit = match (raw.limit_mib, raw.limit_percentage) {
        (Some(_), Some(_)) => {
            return Err(ctx.invalid(
                &path.key("limit_percentage"),
                "set limit_mib or limit_percentage, not both",
            ))
        }
        (Some(UInt(limit)), None) => {
            if raw.spike_limit_percentage.is_some() {
                return Err(ctx.invalid(
                    &path.key("spike_limit_percentage"),
                    "goes with limit_percentage; with limit_mib, use spike_limit_mib",
                ));
            }
            let limit_mib = in_range(
                ctx,
                &path.key("limit_mib"),
                limit,
                1,
                u64::from(LIMIT_MIB_MAX),
            )? as u32;
            let spike_limit_mib = match raw.spike_limit_mib {
                Some(UInt(spike)) if spike >= u64::from(limit_mib) => {
                    return Err(ctx.invalid(
                        &path.key("spike_limit_mib"),
                        format!("{spike} must be below limit_mib ({limit_mib})"),
                    ))
                }
                Some(UInt(spike)) => spike as u32,
                None => limit_mib / 5,
            };
            MemoryLimit::Mib {
                limit_mib,
                spike_limit_mib,
            }
        }
        (None, Some(UInt(limit))) => {
            if raw.spike_limit_mib.is_some() {
                return Err(ctx.invalid(
                    &path.key("spike_limit_mib"),
                    "goes with limit_mib; with limit_percentage, use spike_limit_percentage",
                ));
            }
            let limit_percentage =
                in_range(ctx, &path.key("limit_percentage"), limit, 1, 100)? as u32;
            let spike_limit_percentage = match raw.spike_limit_percentage {
                Some(UInt(spike)) => {
                    let spike = in_range(ctx, &path.key("spike_limit_percentage"), spike, 0, 100)?;
                    if spike >= u64::from(limit_percentage) {
                        return Err(ctx.invalid(
                            &path.key("spike_limit_percentage"),
                            format!("{spike} must be below limit_percentage ({limit_percentage})"),
                        ));
                    }
                    spike as u32
                }
                None => limit_percentage / 5,
            };
            MemoryLimit::Percentage {
                limit_percentage,
                spike_limit_percentage,
            }
        }
        (None, None) => {
            return Err(ctx.error(
                path,
                Target::Key,
                ConfigErrorKind::MissingKey("limit_mib` or `limit_percentage".to_string()),
            ));
        }
    };
    Ok(MemoryLimiter {
        check_interval,
        limit,
    })
}
