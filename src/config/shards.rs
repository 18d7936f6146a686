//! `shards`: tailgate's own section, with no Collector counterpart: which CPUs run a shard, and
//! the depth of the channels between shards.
//!
//! ```yaml
//! shards:
//!   cpus: all            # or a list of CPU ids: [2, 3, 4, 5]
//!   channel_capacity: 64 # batches per cross-shard channel
//! ```

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use tailgate_shards::runtime::CHANNEL_CAPACITY_MAX;

use super::component::{in_range, Ctx};
use super::error::ConfigError;
use super::scalar::UInt;
use super::values::KeyPath;

/// The highest CPU id accepted (Linux's default `NR_CPUS` ceiling is 4096 CPUs).
pub const CPU_ID_MAX: u16 = 4095;
/// `channel_capacity` when not given.
pub const CHANNEL_CAPACITY_DEFAULT: u32 = 64;

/// The `shards` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shards {
    /// The CPUs that run a shard, one shard each.
    pub cpus: Cpus,
    /// Batches each cross-shard channel holds before pushing back (default 64).
    pub channel_capacity: u32,
}

impl Default for Shards {
    fn default() -> Self {
        Shards {
            cpus: Cpus::All,
            channel_capacity: CHANNEL_CAPACITY_DEFAULT,
        }
    }
}

/// `shards.cpus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cpus {
    /// `all`: one shard per CPU the process may run on.
    All,
    /// These CPU ids, in the order written: unique, each at most `CPU_ID_MAX`.
    List(Vec<u16>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawShards {
    cpus: Option<RawCpus>,
    channel_capacity: Option<UInt>,
}

/// `all` or a list of integers, told apart by the node's kind so that errors keep their place.
enum RawCpus {
    All,
    List(Vec<UInt>),
}

impl<'de> Deserialize<'de> for RawCpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CpusVisitor)
    }
}

struct CpusVisitor;

impl<'de> Visitor<'de> for CpusVisitor {
    type Value = RawCpus;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`all` or a list of CPU ids")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCpus, E> {
        if v == "all" {
            Ok(RawCpus::All)
        } else {
            Err(E::custom(format!(
                "expected `all` or a list of CPU ids, found `{v}`"
            )))
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawCpus, A::Error> {
        let mut ids = Vec::new();
        while let Some(id) = seq.next_element::<UInt>()? {
            ids.push(id);
        }
        Ok(RawCpus::List(ids))
    }
}

pub(crate) fn check(raw: Option<RawShards>, ctx: &Ctx<'_>) -> Result<Shards, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Shards::default());
    };
    let path = KeyPath::root().key("shards");
    let cpus = match raw.cpus {
        None | Some(RawCpus::All) => Cpus::All,
        Some(RawCpus::List(ids)) => {
            let cpus_path = path.key("cpus");
            if ids.is_empty() {
                return Err(ctx.invalid(&cpus_path, "lists no CPUs; write `all` or CPU ids"));
            }
            let mut seen = HashSet::new();
            let mut out = Vec::with_capacity(ids.len());
            for (i, UInt(id)) in ids.into_iter().enumerate() {
                let id = in_range(ctx, &cpus_path.index(i), id, 0, u64::from(CPU_ID_MAX))? as u16;
                if !seen.insert(id) {
                    return Err(
                        ctx.invalid(&cpus_path.index(i), format!("CPU {id} is listed twice"))
                    );
                }
                out.push(id);
            }
            Cpus::List(out)
        }
    };
    let channel_capacity = match raw.channel_capacity {
        Some(UInt(v)) => in_range(
            ctx,
            &path.key("channel_capacity"),
            v,
            1,
            CHANNEL_CAPACITY_MAX as u64,
        )? as u32,
        None => CHANNEL_CAPACITY_DEFAULT,
    };
    Ok(Shards {
        cpus,
        channel_capacity,
    })
}
