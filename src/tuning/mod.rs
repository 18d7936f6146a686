//! Tuning profiles: `tailgate tune` reads a machine and writes the `shards:` settings that
//! place the gateway on it.
//!
//! The model: [`Machine::read`] reads the machine's CPUs, cores, NUMA nodes, NIC interrupts and
//! the CPUs this process may use from a tree laid out like `/` (the live one, or a recorded one
//! under `tuning/fixtures/`); [`plan()`] chooses the interrupt CPUs by ScyllaDB perftune.py's
//! rule and puts a shard on every other usable CPU; [`render`] writes the profile in the agreed
//! YAML format. It all runs once, on the main thread of the `tune` subcommand, before and
//! without any shard: nothing here is on the data path. Applying a profile is the runtime's
//! job, and pinning interrupts is `deploy-baremetal/irq-affinity.sh`'s.

mod cpulist;
mod plan;
mod profile;
mod topology;

use std::fmt;
use std::path::Path;

pub use cpulist::{CpuListError, CpuSet, CPU_ID_MAX};
pub use plan::{plan, IrqRule, NodeShards, Options, Plan, PlanError};
pub use profile::render;
pub use topology::{Cpu, Cpuset, Irq, Machine, Nic, Node, TopologyError};

/// Why `tune` made no profile.
#[derive(Debug)]
pub enum TuneError {
    /// The machine could not be read.
    Topology(TopologyError),
    /// The machine was read but no plan fits it.
    Plan(PlanError),
}

impl fmt::Display for TuneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TuneError::Topology(err) => err.fmt(f),
            TuneError::Plan(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for TuneError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TuneError::Topology(err) => Some(err),
            TuneError::Plan(err) => Some(err),
        }
    }
}

/// The profile for the machine laid out under `root`: [`Machine::read`], [`plan()`], [`render`].
pub fn tune(root: &Path, options: &Options) -> Result<String, TuneError> {
    let machine = Machine::read(root).map_err(TuneError::Topology)?;
    let plan = plan(&machine, options).map_err(TuneError::Plan)?;
    Ok(render(&machine, &plan))
}
