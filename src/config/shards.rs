//! `shards`: tailgate's own section, with no Collector counterpart: which CPUs run a shard and
//! which are left for interrupts, how each shard's executor and sockets are set up, and the
//! depth of the channels between shards — the machine profile.
//!
//! ```yaml
//! shards:
//!   profile: tuning/server-16core.yaml  # optional: a profile file whose `shards` keys fill in
//!                                       # those this section leaves out
//!   cpus: all                   # or a list of CPU ids: [2, 3, 4, 5]
//!   irq_cpus: [0, 1]            # left for NIC interrupts and the OS, never a shard's
//!   numa_bind: false            # bind each shard's memory to its CPU's NUMA node
//!   memory_per_shard_mib: 4096  # caps the memory budget at this × shards
//!   memory_budget_whole_process: true  # the budget bounds resident memory, not only held bytes
//!   ring_depth: 128             # io_uring entries per shard ring
//!   spin_before_park_us: 0      # busy-poll this long before an idle shard parks
//!   socket_receive_buffer_bytes: 0  # SO_RCVBUF of received connections; 0: the kernel's
//!   socket_send_buffer_bytes: 0     # SO_SNDBUF; 0: the kernel's
//!   incoming_cpu: false         # SO_INCOMING_CPU on each shard's listeners
//!   channel_capacity: 64        # batches per cross-shard channel
//! ```
//!
//! A profile (`tuning/`, or what `tailgate tune` writes) is a file whose only key is `shards`,
//! with the keys above but `profile`. The configuration's own keys win over the profile's, so a
//! shipped profile can be used with one knob changed. Each document is checked on its own, so an
//! error in a profile names the profile's file, line and key.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use tailgate_shards::runtime::CHANNEL_CAPACITY_MAX;

use super::component::{in_range, Ctx};
use super::error::ConfigError;
use super::scalar::UInt;
use super::values::KeyPath;
use super::Reading;

/// The highest CPU id accepted (Linux's default `NR_CPUS` ceiling is 4096 CPUs).
pub const CPU_ID_MAX: u16 = 4095;
/// `channel_capacity` when not given.
pub const CHANNEL_CAPACITY_DEFAULT: u32 = 64;
/// `ring_depth` when not given: glommio's own default.
pub const RING_DEPTH_DEFAULT: u32 = 128;
/// The `ring_depth` bounds: io_uring takes powers of two up to 32768 submission entries.
pub const RING_DEPTH_MIN: u32 = 8;
/// See [`RING_DEPTH_MIN`].
pub const RING_DEPTH_MAX: u32 = 32_768;
/// The longest `spin_before_park_us` (10 ms): past that a spinning shard is a busy loop, not a
/// latency trade.
pub const SPIN_BEFORE_PARK_US_MAX: u32 = 10_000;
/// The largest socket buffer asked for (256 MiB; the kernel caps it at `net.core.rmem_max` /
/// `wmem_max` anyway).
pub const SOCKET_BUFFER_BYTES_MAX: u32 = 256 << 20;
/// The largest `memory_per_shard_mib` (1 TiB).
pub const MEMORY_PER_SHARD_MIB_MAX: u32 = 1 << 20;

/// The `shards` section, with its profile's keys filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shards {
    /// The profile file the section named, if any.
    pub profile: Option<PathBuf>,
    /// The CPUs that run a shard, one shard each.
    pub cpus: Cpus,
    /// CPUs left for NIC interrupts and the OS: `cpus: all` leaves them out, unless they are
    /// every CPU (then interrupts and shards share them, the small-machine plan).
    pub irq_cpus: Vec<u16>,
    /// Whether each shard's memory is bound to the NUMA node of its CPU.
    pub numa_bind: bool,
    /// A cap on the memory budget: this many MiB per shard.
    pub memory_per_shard_mib: Option<u32>,
    /// Whether the memory budget bounds the process's resident memory (the default: what the
    /// shards do not hold is taken off their limits, see `crate::memory`) or only the bytes the
    /// shards hold.
    pub memory_budget_whole_process: bool,
    /// io_uring submission entries per shard ring.
    pub ring_depth: u32,
    /// How long an idle shard busy-polls before it parks in the kernel.
    pub spin_before_park: Duration,
    /// SO_RCVBUF of the receivers' sockets; 0 leaves the kernel's default (and autotuning).
    pub socket_receive_buffer_bytes: u32,
    /// SO_SNDBUF of the receivers' sockets; 0 leaves the kernel's default.
    pub socket_send_buffer_bytes: u32,
    /// SO_INCOMING_CPU on each shard's listeners: a connection whose packets this CPU handles
    /// goes to the shard on it.
    pub incoming_cpu: bool,
    /// Batches each cross-shard channel holds before pushing back (default 64).
    pub channel_capacity: u32,
}

impl Default for Shards {
    fn default() -> Self {
        Shards {
            profile: None,
            cpus: Cpus::All,
            irq_cpus: Vec::new(),
            numa_bind: false,
            memory_per_shard_mib: None,
            memory_budget_whole_process: true,
            ring_depth: RING_DEPTH_DEFAULT,
            spin_before_park: Duration::ZERO,
            socket_receive_buffer_bytes: 0,
            socket_send_buffer_bytes: 0,
            incoming_cpu: false,
            channel_capacity: CHANNEL_CAPACITY_DEFAULT,
        }
    }
}

impl Shards {
    /// The CPUs `cpus: all` runs shards on, among the CPUs this process may run on (`allowed`):
    /// all of them but the `irq_cpus`, or all of them where the `irq_cpus` leave none (a small
    /// machine, whose interrupts and shards share every CPU); the first `max`.
    pub fn all_cpus_within(&self, allowed: &[usize], max: usize) -> Vec<usize> {
        let mut cpus: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|&cpu| u16::try_from(cpu).map_or(true, |cpu| !self.irq_cpus.contains(&cpu)))
            .collect();
        if cpus.is_empty() {
            cpus = allowed.to_vec();
        }
        cpus.truncate(max);
        cpus
    }
}

/// `shards.cpus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cpus {
    /// `all`: one shard per CPU the process may run on, but the `irq_cpus`.
    All,
    /// These CPU ids, in the order written: unique, each at most `CPU_ID_MAX`.
    List(Vec<u16>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawShards {
    profile: Option<String>,
    cpus: Option<RawCpus>,
    irq_cpus: Option<Vec<UInt>>,
    numa_bind: Option<bool>,
    memory_per_shard_mib: Option<UInt>,
    memory_budget_whole_process: Option<bool>,
    ring_depth: Option<UInt>,
    spin_before_park_us: Option<UInt>,
    socket_receive_buffer_bytes: Option<UInt>,
    socket_send_buffer_bytes: Option<UInt>,
    incoming_cpu: Option<bool>,
    channel_capacity: Option<UInt>,
}

/// A profile file: a `shards` section and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    shards: RawShards,
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

/// One document's `shards` keys, checked: what it leaves out stays `None`.
#[derive(Default)]
struct Given {
    cpus: Option<Cpus>,
    irq_cpus: Option<Vec<u16>>,
    numa_bind: Option<bool>,
    memory_per_shard_mib: Option<u32>,
    memory_budget_whole_process: Option<bool>,
    ring_depth: Option<u32>,
    spin_before_park: Option<Duration>,
    socket_receive_buffer_bytes: Option<u32>,
    socket_send_buffer_bytes: Option<u32>,
    incoming_cpu: Option<bool>,
    channel_capacity: Option<u32>,
}

impl Given {
    /// These keys, with `under`'s filling in the ones left out.
    fn over(self, under: Given) -> Given {
        Given {
            cpus: self.cpus.or(under.cpus),
            irq_cpus: self.irq_cpus.or(under.irq_cpus),
            numa_bind: self.numa_bind.or(under.numa_bind),
            memory_per_shard_mib: self.memory_per_shard_mib.or(under.memory_per_shard_mib),
            memory_budget_whole_process: self
                .memory_budget_whole_process
                .or(under.memory_budget_whole_process),
            ring_depth: self.ring_depth.or(under.ring_depth),
            spin_before_park: self.spin_before_park.or(under.spin_before_park),
            socket_receive_buffer_bytes: self
                .socket_receive_buffer_bytes
                .or(under.socket_receive_buffer_bytes),
            socket_send_buffer_bytes: self
                .socket_send_buffer_bytes
                .or(under.socket_send_buffer_bytes),
            incoming_cpu: self.incoming_cpu.or(under.incoming_cpu),
            channel_capacity: self.channel_capacity.or(under.channel_capacity),
        }
    }
}

pub(crate) fn check(
    raw: Option<RawShards>,
    ctx: &Ctx<'_>,
    reading: &Reading<'_>,
) -> Result<Shards, ConfigError> {
    let Some(mut raw) = raw else {
        return Ok(Shards::default());
    };
    let path = KeyPath::root().key("shards");
    let (profile, from_profile) = match raw.profile.take() {
        None => (None, Given::default()),
        Some(name) => {
            let file = match reading.base {
                Some(base) if Path::new(&name).is_relative() => base.join(&name),
                _ => PathBuf::from(&name),
            };
            // A file that cannot be read is the configuration's error, at its `profile` key; a
            // profile that reads but is wrong is the profile's, at its own line.
            let text = super::read_text(&file, &file.display().to_string()).map_err(|err| {
                ctx.invalid(
                    &path.key("profile"),
                    format!("the profile {} cannot be used: {err}", file.display()),
                )
            })?;
            let given = check_profile(&text, &file, reading)?;
            (Some(file), given)
        }
    };
    let given = check_given(raw, ctx)?.over(from_profile);
    let cpus = given.cpus.unwrap_or(Cpus::All);
    let irq_cpus = given.irq_cpus.unwrap_or_default();
    if let Cpus::List(list) = &cpus {
        if let Some(both) = list.iter().find(|cpu| irq_cpus.contains(cpu)) {
            return Err(ctx.invalid(
                &path.key("cpus"),
                format!(
                    "CPU {both} is both a shard's and in irq_cpus (left for interrupts{}); a \
                     listed shard CPU cannot be shared",
                    match &profile {
                        Some(file) => format!(", set in {}", file.display()),
                        None => String::new(),
                    }
                ),
            ));
        }
    }
    Ok(Shards {
        profile,
        cpus,
        irq_cpus,
        numa_bind: given.numa_bind.unwrap_or(false),
        memory_per_shard_mib: given.memory_per_shard_mib,
        memory_budget_whole_process: given.memory_budget_whole_process.unwrap_or(true),
        ring_depth: given.ring_depth.unwrap_or(RING_DEPTH_DEFAULT),
        spin_before_park: given.spin_before_park.unwrap_or(Duration::ZERO),
        socket_receive_buffer_bytes: given.socket_receive_buffer_bytes.unwrap_or(0),
        socket_send_buffer_bytes: given.socket_send_buffer_bytes.unwrap_or(0),
        incoming_cpu: given.incoming_cpu.unwrap_or(false),
        channel_capacity: given.channel_capacity.unwrap_or(CHANNEL_CAPACITY_DEFAULT),
    })
}

/// Checks a profile file's text; its errors name the profile's own lines.
fn check_profile(text: &str, file: &Path, reading: &Reading<'_>) -> Result<Given, ConfigError> {
    let source = file.display().to_string();
    super::parse_document(text, &source, reading.lookup, |raw: RawProfile, ctx| {
        if raw.shards.profile.is_some() {
            return Err(ctx.invalid(
                &KeyPath::root().key("shards").key("profile"),
                "a profile cannot name another profile",
            ));
        }
        check_given(raw.shards, ctx)
    })
}

/// A list of unique CPU ids, each at most [`CPU_ID_MAX`].
fn cpu_list(ids: Vec<UInt>, path: &KeyPath, ctx: &Ctx<'_>) -> Result<Vec<u16>, ConfigError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for (i, UInt(id)) in ids.into_iter().enumerate() {
        let id = in_range(ctx, &path.index(i), id, 0, u64::from(CPU_ID_MAX))? as u16;
        if !seen.insert(id) {
            return Err(ctx.invalid(&path.index(i), format!("CPU {id} is listed twice")));
        }
        out.push(id);
    }
    Ok(out)
}

fn check_given(raw: RawShards, ctx: &Ctx<'_>) -> Result<Given, ConfigError> {
    let path = KeyPath::root().key("shards");
    let uint = |value: Option<UInt>, key: &str, min: u32, max: u32| {
        value
            .map(|UInt(v)| {
                in_range(ctx, &path.key(key), v, u64::from(min), u64::from(max)).map(|v| v as u32)
            })
            .transpose()
    };
    let cpus = match raw.cpus {
        None => None,
        Some(RawCpus::All) => Some(Cpus::All),
        Some(RawCpus::List(ids)) => {
            let cpus_path = path.key("cpus");
            if ids.is_empty() {
                return Err(ctx.invalid(&cpus_path, "lists no CPUs; write `all` or CPU ids"));
            }
            Some(Cpus::List(cpu_list(ids, &cpus_path, ctx)?))
        }
    };
    let irq_cpus = raw
        .irq_cpus
        .map(|ids| cpu_list(ids, &path.key("irq_cpus"), ctx))
        .transpose()?;
    let ring_depth = uint(raw.ring_depth, "ring_depth", RING_DEPTH_MIN, RING_DEPTH_MAX)?;
    if let Some(depth) = ring_depth.filter(|depth| !depth.is_power_of_two()) {
        return Err(ctx.invalid(
            &path.key("ring_depth"),
            format!("{depth} is not a power of two (io_uring rings are sized in powers of two)"),
        ));
    }
    let spin_us = uint(
        raw.spin_before_park_us,
        "spin_before_park_us",
        0,
        SPIN_BEFORE_PARK_US_MAX,
    )?;
    Ok(Given {
        cpus,
        irq_cpus,
        numa_bind: raw.numa_bind,
        memory_per_shard_mib: uint(
            raw.memory_per_shard_mib,
            "memory_per_shard_mib",
            1,
            MEMORY_PER_SHARD_MIB_MAX,
        )?,
        memory_budget_whole_process: raw.memory_budget_whole_process,
        ring_depth,
        spin_before_park: spin_us.map(|us| Duration::from_micros(u64::from(us))),
        socket_receive_buffer_bytes: uint(
            raw.socket_receive_buffer_bytes,
            "socket_receive_buffer_bytes",
            0,
            SOCKET_BUFFER_BYTES_MAX,
        )?,
        socket_send_buffer_bytes: uint(
            raw.socket_send_buffer_bytes,
            "socket_send_buffer_bytes",
            0,
            SOCKET_BUFFER_BYTES_MAX,
        )?,
        incoming_cpu: raw.incoming_cpu,
        channel_capacity: uint(
            raw.channel_capacity,
            "channel_capacity",
            1,
            CHANNEL_CAPACITY_MAX as u32,
        )?,
    })
}
