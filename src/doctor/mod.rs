//! `tailgate doctor`: checks this machine against what the gateway needs, and explains each
//! finding with the reason it matters and the fix.
//!
//! # Model
//!
//! The doctor runs once, on the calling thread, before (or instead of) the gateway: it starts no
//! executor and opens no listener. Each check looks at one concern and returns one [`Finding`]
//! under a stable name (`check`), so a script reading `--json` can rely on every name being
//! present whatever the machine: a file that cannot be read is itself a finding, never a missing
//! entry. A finding is at one of three [`Level`]s, and the [`Report`]'s exit code is the worst of
//! them: 0 when every check is ok, 1 with warnings (the gateway runs, but slower or with less
//! headroom than it could), 2 with failures (the gateway would not start, or not as configured).
//!
//! Two kinds of evidence are read:
//!
//! - **Files** under `/proc/sys` and `/sys` (sysctls, transparent huge pages, the CPU frequency
//!   governor, the clock source, the NUMA layout) are read under a root directory, `/` on a live
//!   machine, so tests run the checks on a fake tree laid out like a real machine's.
//! - **The process itself** (creating an io_uring and probing its opcodes, the resource limits,
//!   the CPU affinity mask, its capabilities) is always the live one: those facts belong to the
//!   process that would run the gateway, not to a tree of files.
//!
//! A check never fails for want of an optional kernel feature that the gateway can do without (a
//! VM with no `cpufreq`, a kernel without NUMA or transparent huge pages): the doctor reports
//! what it found, and keeps `Fail` for what stops the gateway.

mod clock;
mod cpu;
mod hugepages;
mod io_uring;
mod limits;
mod numa;
mod report;
mod sysctl;
mod tree;

use std::path::Path;

use serde::Serialize;

use crate::config::{Config, Cpus, Shards};

pub use numa::{numa_against_profile, NumaLayout};
pub use tree::{parse_cpu_list, ReadError, Tree};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// As the gateway wants it, or an optional feature it can do without.
    Ok,
    /// The gateway runs, but slower or with less headroom than this machine could give it.
    Warn,
    /// The gateway would not start, or not as configured.
    Fail,
}

impl Level {
    /// The word the text report prints: `ok`, `warn` or `FAIL` (upper case to stand out).
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }

    /// The process exit code a report at this level gives: 0, 1 or 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Warn => 1,
            Level::Fail => 2,
        }
    }
}

/// One check's outcome: what was found, why it matters, and how to fix it when it is not ok.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check's stable name (`io_uring`, `net.core.somaxconn`, `shards.cpus`, ...).
    pub check: &'static str,
    /// How it came out.
    pub level: Level,
    /// What the machine has, in a line.
    pub found: String,
    /// Why this matters to the gateway (and, for ok, why the value is fine).
    pub why: String,
    /// What to run or change; `None` when the finding is ok.
    pub fix: Option<String>,
}

impl Finding {
    /// An ok finding: nothing to fix.
    fn ok(check: &'static str, found: impl Into<String>, why: impl Into<String>) -> Finding {
        Finding {
            check,
            level: Level::Ok,
            found: found.into(),
            why: why.into(),
            fix: None,
        }
    }

    /// A warning or failure, with its fix.
    fn flag(
        check: &'static str,
        level: Level,
        found: impl Into<String>,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            level,
            found: found.into(),
            why: why.into(),
            fix: Some(fix.into()),
        }
    }

    /// A warning that `found` (a file that could not be read, or read but not understood)
    /// leaves the check unmade.
    fn unreadable(
        check: &'static str,
        found: impl Into<String>,
        why: impl Into<String>,
    ) -> Finding {
        Finding::flag(
            check,
            Level::Warn,
            found,
            why,
            "run the doctor where /proc and /sys are mounted and readable",
        )
    }
}

/// Every check's name, in the order the report lists them.
pub const CHECKS: [&str; 16] = [
    io_uring::CHECK_RING,
    io_uring::CHECK_OPCODES,
    limits::CHECK_MEMLOCK,
    limits::CHECK_NOFILE,
    sysctl::CHECK_SOMAXCONN,
    sysctl::CHECK_TCP_RMEM,
    sysctl::CHECK_TCP_WMEM,
    sysctl::CHECK_RMEM_MAX,
    sysctl::CHECK_WMEM_MAX,
    sysctl::CHECK_NETDEV_BACKLOG,
    sysctl::CHECK_PORT_RANGE,
    hugepages::CHECK,
    cpu::CHECK_GOVERNOR,
    clock::CHECK,
    cpu::CHECK_AFFINITY,
    numa::CHECK,
];

/// All the findings of one run of the doctor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// One finding per name in [`CHECKS`], in that order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The worst level among the findings (`Ok` for none).
    pub fn level(&self) -> Level {
        self.findings
            .iter()
            .map(|f| f.level)
            .max()
            .unwrap_or(Level::Ok)
    }

    /// The process exit code: 0 all ok, 1 warnings, 2 failures.
    pub fn exit_code(&self) -> u8 {
        self.level().exit_code()
    }

    /// How many findings are at `level`.
    pub fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }
}

/// The CPUs the configuration runs shards on, resolved against this process's affinity mask
/// the way start-up resolves them.
#[derive(Debug)]
struct ShardCpus {
    /// The shard CPUs: the list as written, or for `all` the allowed CPUs (up to the runtime's
    /// shard maximum). Empty when `all` and the mask cannot be read.
    cpus: Vec<usize>,
    /// The CPUs this process may run on, or why they could not be read.
    allowed: std::io::Result<Vec<usize>>,
}

impl ShardCpus {
    fn resolve(shards: &Shards) -> ShardCpus {
        let allowed = tailgate_shards::runtime::allowed_cpus();
        let cpus = match &shards.cpus {
            Cpus::All => allowed.as_ref().map_or_else(
                |_| Vec::new(),
                |allowed| shards.all_cpus_within(allowed, tailgate_shards::route::SHARDS_MAX),
            ),
            Cpus::List(list) => list.iter().map(|&cpu| usize::from(cpu)).collect(),
        };
        ShardCpus { cpus, allowed }
    }
}

/// Runs every check for `config`, reading `/proc` and `/sys` files under `root` (`/` for this
/// machine).
pub fn run(config: &Config, root: &Path) -> Report {
    let tree = Tree::new(root);
    let shards = ShardCpus::resolve(&config.shards);
    let (ring, opcodes) = io_uring::check();
    let layout = NumaLayout::read(&tree);
    let findings = vec![
        ring,
        opcodes,
        limits::memlock(shards.cpus.len()),
        limits::nofile(),
        sysctl::somaxconn(&tree),
        sysctl::tcp_rmem(&tree),
        sysctl::tcp_wmem(&tree),
        sysctl::rmem_max(&tree, u64::from(config.shards.socket_receive_buffer_bytes)),
        sysctl::wmem_max(&tree, u64::from(config.shards.socket_send_buffer_bytes)),
        sysctl::netdev_backlog(&tree),
        sysctl::port_range(&tree),
        hugepages::check(&tree),
        cpu::governor(&tree, &shards.cpus),
        clock::check(&tree),
        cpu::affinity(&config.shards.cpus, &shards),
        numa_against_profile(&layout, &shards.cpus, config.shards.numa_bind),
    ];
    debug_assert!(findings.iter().map(|f| f.check).eq(CHECKS));
    Report { findings }
}

/// The report as text: one line per check, `why:` and `fix:` under each that is not ok, and a
/// summary line.
pub fn render_text(report: &Report) -> String {
    report::text(report)
}

/// The report as a JSON object: `{"findings": [...], "summary": {...}}`.
pub fn render_json(report: &Report) -> String {
    report::json(report)
}
