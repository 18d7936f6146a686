//! The plan: which CPUs take NIC interrupts, which run shards, and the per-shard settings that
//! follow from the machine.
//!
//! Interrupt CPUs are chosen by the rule ScyllaDB's `perftune.py` uses for Seastar, another
//! thread-per-core runtime (`auto_detect_irq_mask`, with its default of one interrupt core per
//! 16 cores). The facts taken from it:
//!
//! - it counts only the CPUs it may use (its `--cpu-mask`; here: online ∩ affinity ∩ cpuset);
//! - up to 4 hardware threads: interrupts go to every CPU, and the compute set is every CPU too
//!   (reserving one of so few would cost a quarter of the machine or more);
//! - up to 4 cores: one thread, the first, takes interrupts;
//! - up to 16 cores: one core, the first, with all its threads;
//! - above: `nodes × ⌈cores per node / 16⌉` whole cores, dealt round-robin over the NUMA nodes
//!   (node 0 core 0, node 1 core 0, node 0 core 1, …), so each node takes the same number;
//! - nodes that differ in cores or threads make the rule refuse, asking for an explicit mask,
//!   because "one core per 16" cannot be split evenly over them;
//! - an explicit interrupt mask equal to the whole set shares every CPU; otherwise the compute
//!   set is what the interrupt mask leaves.
//!
//! Shards then run on the compute set, one per CPU. The code is ours; only the rule is theirs.

use std::fmt;

use super::cpulist::CpuSet;
use super::topology::Machine;

/// Cores per interrupt core on machines above that many cores (perftune's default).
const CORES_PER_IRQ_CORE: usize = 16;
/// Up to this many hardware threads, every CPU both takes interrupts and runs a shard.
const SHARED_THREADS_MAX: usize = 4;
/// Up to this many cores, one thread takes interrupts.
const ONE_THREAD_CORES_MAX: usize = 4;
/// io_uring entries per shard ring: glommio's default. Depth is per shard and a shard's load
/// does not grow with the number of shards, so the machine's size gives no reason to change it.
pub const RING_DEPTH: u32 = 128;
/// Busy-poll time before an idle shard parks, with `--busy-poll`: long enough to catch the next
/// packet of a steady stream (tens of µs apart at 10⁵ requests/s per shard), short enough that
/// an idle shard costs little CPU.
pub const BUSY_POLL_SPIN_US: u32 = 50;
/// The share of a node's memory given to its shards, in quarters: the last quarter is room for
/// the kernel, the page cache and what the interrupt CPUs' network stack buffers.
const MEMORY_SHARE_QUARTERS: u128 = 3;

/// What the caller chose beyond the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Interrupt CPUs given with `--irq-cpus`, replacing the rule.
    pub irq_cpus: Option<CpuSet>,
    /// `--busy-poll`: spin [`BUSY_POLL_SPIN_US`] before parking an idle shard.
    pub busy_poll: bool,
}

/// Which branch of the rule chose the interrupt CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IrqRule {
    /// `--irq-cpus` gave them.
    Given,
    /// At most 4 hardware threads: every CPU, shared with shards.
    Shared {
        /// Usable hardware threads.
        threads: usize,
    },
    /// At most 4 cores: the first thread.
    OneThread {
        /// Usable cores.
        cores: usize,
    },
    /// At most 16 cores: the first core.
    OneCore {
        /// Usable cores.
        cores: usize,
    },
    /// More than 16 cores: whole cores, one per 16, spread over the nodes.
    CorePerSixteen {
        /// Usable cores.
        cores: usize,
        /// Interrupt cores taken on each node.
        per_node: usize,
    },
}

/// The shards on one NUMA node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeShards {
    /// The node.
    pub node: u16,
    /// Shards (CPUs) on it.
    pub shards: usize,
}

/// The profile's values and how they were reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Online ∩ affinity ∩ cpuset.
    pub usable: CpuSet,
    /// The CPUs that run a shard, one each.
    pub shard_cpus: CpuSet,
    /// Whether `shard_cpus` is every usable CPU, written `cpus: all`: the runtime reads `all`
    /// as every CPU the process may use, and the profile format allows `irq_cpus` to overlap
    /// `cpus` only in that form.
    pub all_cpus: bool,
    /// The CPUs left for NIC interrupts and the OS.
    pub irq_cpus: CpuSet,
    /// How `irq_cpus` was chosen.
    pub rule: IrqRule,
    /// Shards per node with shards.
    pub nodes: Vec<NodeShards>,
    /// Bind each shard's memory to its node: more than one node runs shards.
    pub numa_bind: bool,
    /// The smallest node's share of memory per shard, in MiB.
    pub memory_per_shard_mib: u64,
    /// io_uring entries per shard ring.
    pub ring_depth: u32,
    /// Busy-poll time before parking, in µs.
    pub spin_before_park_us: u32,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// No CPU is online, allowed by the affinity mask and in the cpuset at once.
    NoUsableCpus {
        /// The process's affinity mask.
        allowed: CpuSet,
        /// The cgroup cpuset, if any.
        cpuset: Option<CpuSet>,
    },
    /// NUMA nodes differ in cores or threads, and no `--irq-cpus` was given.
    AsymmetricNuma {
        /// Each node: id, usable cores, usable threads.
        nodes: Vec<(u16, usize, usize)>,
    },
    /// `--irq-cpus` names CPUs this process cannot use.
    IrqCpusNotUsable {
        /// The CPUs named that are not usable.
        outside: CpuSet,
        /// The usable CPUs.
        usable: CpuSet,
    },
    /// Usable CPUs that belong to no NUMA node.
    CpusOutsideNodes {
        /// Those CPUs.
        cpus: CpuSet,
    },
    /// A node's memory gives its shards less than 1 MiB each.
    TooLittleMemory {
        /// The node.
        node: u16,
        /// Its memory, in KiB.
        memory_kib: u64,
        /// Its shards.
        shards: usize,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoUsableCpus { allowed, cpuset } => {
                write!(f, "no usable CPU: the affinity mask allows {allowed}")?;
                if let Some(cpuset) = cpuset {
                    write!(f, " and the cgroup cpuset {cpuset}")?;
                }
                write!(f, ", and none of them is online")
            }
            PlanError::AsymmetricNuma { nodes } => {
                let shapes: Vec<String> = nodes
                    .iter()
                    .map(|(id, cores, threads)| {
                        format!("node {id}: {cores} cores, {threads} threads")
                    })
                    .collect();
                write!(
                    f,
                    "asymmetric NUMA ({}): one interrupt core per {CORES_PER_IRQ_CORE} cores \
                     cannot be spread evenly over these nodes; give the interrupt CPUs with \
                     --irq-cpus LIST (for example the first core of each node)",
                    shapes.join("; ")
                )
            }
            PlanError::IrqCpusNotUsable { outside, usable } => write!(
                f,
                "--irq-cpus names CPUs {outside} that are not usable here (usable: {usable})"
            ),
            PlanError::CpusOutsideNodes { cpus } => {
                write!(f, "CPUs {cpus} belong to no NUMA node")
            }
            PlanError::TooLittleMemory {
                node,
                memory_kib,
                shards,
            } => write!(
                f,
                "node {node} has {memory_kib} KiB of memory, less than 1 MiB for each of its \
                 {shards} shards"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

/// Plans `machine` with `options`.
pub fn plan(machine: &Machine, options: &Options) -> Result<Plan, PlanError> {
    let usable = machine.usable();
    if usable.is_empty() {
        return Err(PlanError::NoUsableCpus {
            allowed: machine.allowed.clone(),
            cpuset: machine.cpuset.as_ref().map(|c| c.cpus.clone()),
        });
    }
    // Shards and memory are counted per node, so a CPU outside every node would escape both.
    // `Machine::read` refuses such trees; a machine assembled another way is checked here.
    let in_nodes = machine
        .nodes
        .iter()
        .fold(CpuSet::new(), |set, node| set.union(&node.cpus));
    let outside = usable.difference(&in_nodes);
    if !outside.is_empty() {
        return Err(PlanError::CpusOutsideNodes { cpus: outside });
    }
    let cores = usable_cores(machine, &usable);
    let node_cores: Vec<(u16, Vec<CpuSet>)> = machine
        .nodes
        .iter()
        .map(|node| {
            let cores: Vec<CpuSet> = cores
                .iter()
                .filter(|core| core.first().is_some_and(|cpu| node.cpus.contains(cpu)))
                .cloned()
                .collect();
            (node.id, cores)
        })
        .filter(|(_, cores)| !cores.is_empty())
        .collect();

    let (irq_cpus, rule) = match &options.irq_cpus {
        Some(given) => {
            let outside = given.difference(&usable);
            if !outside.is_empty() {
                return Err(PlanError::IrqCpusNotUsable { outside, usable });
            }
            (given.clone(), IrqRule::Given)
        }
        None => choose_irq_cpus(&usable, &cores, &node_cores)?,
    };
    let shard_cpus = if irq_cpus == usable {
        usable.clone()
    } else {
        usable.difference(&irq_cpus)
    };

    let mut nodes = Vec::new();
    let mut memory_per_shard_mib = u64::MAX;
    for node in &machine.nodes {
        let shards = shard_cpus.intersection(&node.cpus).len();
        if shards == 0 {
            continue;
        }
        let share_mib = u128::from(node.memory_kib) * MEMORY_SHARE_QUARTERS / 4 / 1024;
        let per_shard_mib = u64::try_from(share_mib / shards as u128).unwrap_or(u64::MAX);
        if per_shard_mib == 0 {
            return Err(PlanError::TooLittleMemory {
                node: node.id,
                memory_kib: node.memory_kib,
                shards,
            });
        }
        memory_per_shard_mib = memory_per_shard_mib.min(per_shard_mib);
        nodes.push(NodeShards {
            node: node.id,
            shards,
        });
    }

    Ok(Plan {
        all_cpus: shard_cpus == usable,
        numa_bind: nodes.len() > 1,
        nodes,
        usable,
        shard_cpus,
        irq_cpus,
        rule,
        memory_per_shard_mib,
        ring_depth: RING_DEPTH,
        spin_before_park_us: if options.busy_poll {
            BUSY_POLL_SPIN_US
        } else {
            0
        },
    })
}

/// The usable part of each core, cores in order of their lowest CPU (hwloc's logical order on
/// the machines perftune runs on, so "the first core" means the same CPUs to both).
fn usable_cores(machine: &Machine, usable: &CpuSet) -> Vec<CpuSet> {
    let mut cores: Vec<CpuSet> = Vec::new();
    for cpu in machine.cpus.iter().filter(|cpu| usable.contains(cpu.id)) {
        let core = cpu.siblings.intersection(usable);
        if !cores.contains(&core) {
            cores.push(core);
        }
    }
    cores.sort_by_key(CpuSet::first);
    cores
}

fn choose_irq_cpus(
    usable: &CpuSet,
    cores: &[CpuSet],
    node_cores: &[(u16, Vec<CpuSet>)],
) -> Result<(CpuSet, IrqRule), PlanError> {
    let shape = |cores: &[CpuSet]| (cores.len(), cores.iter().map(CpuSet::len).sum::<usize>());
    let first_shape = shape(&node_cores[0].1);
    if node_cores
        .iter()
        .any(|(_, cores)| shape(cores) != first_shape)
    {
        return Err(PlanError::AsymmetricNuma {
            nodes: node_cores
                .iter()
                .map(|(id, cores)| {
                    let (cores, threads) = shape(cores);
                    (*id, cores, threads)
                })
                .collect(),
        });
    }
    let threads = usable.len();
    if threads <= SHARED_THREADS_MAX {
        return Ok((usable.clone(), IrqRule::Shared { threads }));
    }
    if cores.len() <= ONE_THREAD_CORES_MAX {
        let first: CpuSet = usable.first().into_iter().collect();
        return Ok((first, IrqRule::OneThread { cores: cores.len() }));
    }
    if cores.len() <= CORES_PER_IRQ_CORE {
        return Ok((cores[0].clone(), IrqRule::OneCore { cores: cores.len() }));
    }
    // Every node has `first_shape.0` cores (checked above), so perftune's round-robin deal of
    // `nodes × ⌈cores per node / 16⌉` cores takes the first `per_node` cores of each node.
    let per_node = first_shape.0.div_ceil(CORES_PER_IRQ_CORE);
    let irq_cpus = node_cores
        .iter()
        .flat_map(|(_, cores)| cores.iter().take(per_node))
        .fold(CpuSet::new(), |set, core| set.union(core));
    Ok((
        irq_cpus,
        IrqRule::CorePerSixteen {
            cores: cores.len(),
            per_node,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuning::topology::{Cpu, Cpuset, Node};

    const GIB_KIB: u64 = 1024 * 1024;

    /// A machine of `threads` threads per core whose CPU `c` of core `k` is `k + c × cores`
    /// (Intel's numbering), split into `nodes` equal nodes of consecutive cores.
    fn machine(cores: u16, threads: u16, nodes: u16, memory_per_node_kib: u64) -> Machine {
        let cpu_count = cores * threads;
        let cpus = (0..cpu_count)
            .map(|id| {
                let core = id % cores;
                Cpu {
                    id,
                    package: u32::from(core / (cores / nodes)),
                    siblings: (0..threads).map(|t| core + t * cores).collect(),
                }
            })
            .collect();
        let per_node = cores / nodes;
        let nodes = (0..nodes)
            .map(|n| Node {
                id: n,
                cpus: (0..cpu_count)
                    .filter(|id| (id % cores) / per_node == n)
                    .collect(),
                memory_kib: memory_per_node_kib,
            })
            .collect();
        Machine {
            cpus,
            nodes,
            nics: Vec::new(),
            allowed: (0..cpu_count).collect(),
            cpuset: None,
        }
    }

    fn list(text: &str) -> CpuSet {
        CpuSet::parse(text).unwrap()
    }

    #[test]
    fn up_to_four_threads_share_every_cpu() {
        let plan = plan(&machine(2, 1, 1, 8 * GIB_KIB), &Options::default()).unwrap();
        assert_eq!(plan.rule, IrqRule::Shared { threads: 2 });
        assert_eq!(plan.irq_cpus, list("0-1"));
        assert_eq!(plan.shard_cpus, list("0-1"));
        assert!(plan.all_cpus);
        assert!(!plan.numa_bind);
        assert_eq!(plan.memory_per_shard_mib, 3072);
        assert_eq!(plan.spin_before_park_us, 0);
    }

    #[test]
    fn up_to_four_cores_reserve_one_thread() {
        let plan = plan(&machine(4, 2, 1, 16 * GIB_KIB), &Options::default()).unwrap();
        assert_eq!(plan.rule, IrqRule::OneThread { cores: 4 });
        assert_eq!(plan.irq_cpus, list("0"));
        assert_eq!(plan.shard_cpus, list("1-7"));
        assert!(!plan.all_cpus);
    }

    #[test]
    fn up_to_sixteen_cores_reserve_one_core_with_its_siblings() {
        let plan = plan(&machine(16, 2, 1, 64 * GIB_KIB), &Options::default()).unwrap();
        assert_eq!(plan.rule, IrqRule::OneCore { cores: 16 });
        assert_eq!(plan.irq_cpus, list("0,16"));
        assert_eq!(plan.shard_cpus.len(), 30);
        // 64 GiB × 3/4 over 30 shards.
        assert_eq!(plan.memory_per_shard_mib, 49152 / 30);
    }

    #[test]
    fn above_sixteen_cores_one_core_per_sixteen_on_every_node() {
        let plan = plan(&machine(64, 2, 2, 256 * GIB_KIB), &Options::default()).unwrap();
        assert_eq!(
            plan.rule,
            IrqRule::CorePerSixteen {
                cores: 64,
                per_node: 2
            }
        );
        assert_eq!(plan.irq_cpus, list("0-1,32-33,64-65,96-97"));
        assert_eq!(plan.shard_cpus.len(), 120);
        assert!(plan.numa_bind);
        assert_eq!(plan.nodes.len(), 2);
        assert_eq!(plan.nodes[0].shards, 60);
        assert_eq!(plan.memory_per_shard_mib, 196608 / 60);
    }

    #[test]
    fn seventeen_cores_per_node_round_up() {
        let plan = plan(&machine(34, 1, 2, 64 * GIB_KIB), &Options::default()).unwrap();
        assert_eq!(
            plan.rule,
            IrqRule::CorePerSixteen {
                cores: 34,
                per_node: 2
            }
        );
        assert_eq!(plan.irq_cpus, list("0-1,17-18"));
    }

    #[test]
    fn asymmetric_nodes_need_an_explicit_mask() {
        let mut machine = machine(16, 1, 1, 8 * GIB_KIB);
        machine.nodes = vec![
            Node {
                id: 0,
                cpus: list("0-11"),
                memory_kib: 24 * GIB_KIB,
            },
            Node {
                id: 1,
                cpus: list("12-15"),
                memory_kib: 8 * GIB_KIB,
            },
        ];
        let err = plan(&machine, &Options::default()).unwrap_err();
        assert_eq!(
            err,
            PlanError::AsymmetricNuma {
                nodes: vec![(0, 12, 12), (1, 4, 4)]
            }
        );
        assert!(err.to_string().contains("--irq-cpus"));

        let given = Options {
            irq_cpus: Some(list("0,12")),
            busy_poll: true,
        };
        let plan = plan(&machine, &given).unwrap();
        assert_eq!(plan.rule, IrqRule::Given);
        assert_eq!(plan.shard_cpus, list("1-11,13-15"));
        assert!(plan.numa_bind);
        // Node 0's 24 GiB × 3/4 over 11 shards is a smaller share than node 1's 8 GiB × 3/4
        // over 3: the smallest is what every shard gets.
        assert_eq!(plan.memory_per_shard_mib, 18432 / 11);
        assert_eq!(plan.spin_before_park_us, BUSY_POLL_SPIN_US);
    }

    #[test]
    fn only_cpus_in_the_affinity_mask_and_cpuset_count() {
        let mut machine = machine(16, 2, 1, 64 * GIB_KIB);
        machine.allowed = list("0-27");
        machine.cpuset = Some(Cpuset {
            cgroup: "/tailgate".into(),
            cpus: list("4-11,20-31"),
        });
        let plan = plan(&machine, &Options::default()).unwrap();
        assert_eq!(plan.usable, list("4-11,20-27"));
        assert_eq!(plan.rule, IrqRule::OneCore { cores: 8 });
        assert_eq!(plan.irq_cpus, list("4,20"));
        assert!(!plan.all_cpus);

        let outside = Options {
            irq_cpus: Some(list("0-4")),
            busy_poll: false,
        };
        assert!(matches!(
            super::plan(&machine, &outside),
            Err(PlanError::IrqCpusNotUsable { .. })
        ));

        machine.allowed = list("0-3");
        assert!(matches!(
            super::plan(&machine, &Options::default()),
            Err(PlanError::NoUsableCpus { .. })
        ));
    }

    #[test]
    fn a_cpuset_of_four_threads_or_fewer_shares_them_as_all() {
        let mut machine = machine(16, 2, 1, 64 * GIB_KIB);
        machine.cpuset = Some(Cpuset {
            cgroup: "/small".into(),
            cpus: list("4,20"),
        });
        let plan = plan(&machine, &Options::default()).unwrap();
        assert_eq!(plan.rule, IrqRule::Shared { threads: 2 });
        assert_eq!(plan.irq_cpus, list("4,20"));
        assert!(plan.all_cpus);
    }

    #[test]
    fn a_given_mask_of_every_cpu_shares_them() {
        let given = Options {
            irq_cpus: Some(list("0-7")),
            busy_poll: false,
        };
        let plan = plan(&machine(8, 1, 1, GIB_KIB), &given).unwrap();
        assert_eq!(plan.shard_cpus, list("0-7"));
        assert!(plan.all_cpus);
    }

    #[test]
    fn cpus_in_no_node_are_refused() {
        let mut machine = machine(8, 1, 1, GIB_KIB);
        machine.nodes[0].cpus = list("0-5");
        assert_eq!(
            plan(&machine, &Options::default()),
            Err(PlanError::CpusOutsideNodes { cpus: list("6-7") })
        );
    }

    #[test]
    fn too_little_memory_is_refused() {
        let err = plan(&machine(2, 1, 1, 1024), &Options::default()).unwrap_err();
        assert!(matches!(err, PlanError::TooLittleMemory { shards: 2, .. }));
    }
}
