//! The profile's text: the YAML format agreed for tuning profiles, written by hand rather than
//! through a serializer so that the comments, key order and flow-style lists are exactly what
//! an operator and `deploy-baremetal/irq-affinity.sh` (which reads `irq_cpus:` with a one-line
//! parse) expect.
//!
//! The comment lines at the top say what the machine was, which rule chose the interrupt CPUs
//! and how to use the file. Everything comes from the machine read and the plan; nothing from
//! the clock or the host name, so a recorded tree always gives the same bytes.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::plan::{IrqRule, Plan};
use super::topology::{Irq, Machine, Nic};

/// The defaults of the keys `tune` has no machine-derived value for, written out so that the
/// profile shows every knob (values per the profile format: kernel default buffers, no
/// SO_INCOMING_CPU, 64 batches per cross-shard channel).
const DEFAULT_KEYS: &str = "  socket_receive_buffer_bytes: 0
  socket_send_buffer_bytes: 0
  incoming_cpu: false
  channel_capacity: 64
";

/// The profile for `plan`, made on `machine`.
pub fn render(machine: &Machine, plan: &Plan) -> String {
    let mut out = String::new();
    machine_comment(&mut out, machine, plan);
    plan_comment(&mut out, plan);
    out.push_str(
        "#\n\
         # Use: `shards: { profile: FILE }` in the config (keys in the config's own `shards`\n\
         # section override these); deploy-baremetal/irq-affinity.sh pins the NICs' interrupts to\n\
         # irq_cpus. Each key and its cost: tuning/README.md.\n",
    );
    out.push_str("shards:\n");
    let cpus = if plan.all_cpus {
        "all".to_string()
    } else {
        plan.shard_cpus.to_flow_list()
    };
    // `writeln!` into a String cannot fail.
    let _ = writeln!(out, "  cpus: {cpus}");
    let _ = writeln!(out, "  irq_cpus: {}", plan.irq_cpus.to_flow_list());
    let _ = writeln!(out, "  numa_bind: {}", plan.numa_bind);
    let _ = writeln!(out, "  memory_per_shard_mib: {}", plan.memory_per_shard_mib);
    let _ = writeln!(out, "  ring_depth: {}", plan.ring_depth);
    let _ = writeln!(out, "  spin_before_park_us: {}", plan.spin_before_park_us);
    out.push_str(DEFAULT_KEYS);
    out
}

fn machine_comment(out: &mut String, machine: &Machine, plan: &Plan) {
    let cores: BTreeSet<Vec<u16>> = machine
        .cpus
        .iter()
        .map(|cpu| cpu.siblings.iter().collect())
        .collect();
    let sizes: BTreeSet<usize> = cores.iter().map(Vec::len).collect();
    let packages: BTreeSet<u32> = machine.cpus.iter().map(|cpu| cpu.package).collect();
    let shape = match sizes.iter().collect::<Vec<_>>()[..] {
        [&threads] => format!(
            "{} x {}",
            count(cores.len(), "core"),
            count(threads, "thread")
        ),
        _ => format!("{} cores of unequal thread counts", cores.len()),
    };
    let _ = writeln!(
        out,
        "# tailgate tuning profile, written by `tailgate tune` for a machine of {} CPUs:",
        machine.cpus.len()
    );
    let _ = writeln!(
        out,
        "# {shape}, {}, {}.",
        count(packages.len(), "package"),
        count(machine.nodes.len(), "NUMA node")
    );
    for node in &machine.nodes {
        let _ = writeln!(
            out,
            "#   node {}: CPUs {}, {} MiB",
            node.id,
            node.cpus,
            node.memory_kib / 1024
        );
    }
    if machine.nics.is_empty() {
        out.push_str("#   no NIC backed by a device\n");
    }
    for nic in &machine.nics {
        let _ = writeln!(out, "#   NIC {}: {}", nic.name, nic_interrupts(nic));
    }
    let _ = writeln!(
        out,
        "# This process may use CPUs {}: online, in its affinity mask ({})",
        plan.usable, machine.allowed
    );
    match &machine.cpuset {
        Some(cpuset) => {
            let _ = writeln!(
                out,
                "#   and in the cpuset of cgroup {} ({}).",
                cpuset.cgroup, cpuset.cpus
            );
        }
        None => out.push_str("#   and in no cgroup cpuset.\n"),
    }
    out.push_str("#\n");
}

fn nic_interrupts(nic: &Nic) -> String {
    let label = |irq: &Irq| match &irq.name {
        Some(name) => format!("{name} (IRQ {})", irq.number),
        None => format!("IRQ {}", irq.number),
    };
    match &nic.irqs[..] {
        [] => "no MSI interrupts (legacy INTx: not steered by this profile)".to_string(),
        [only] => format!("1 interrupt, {}", label(only)),
        [first, .., last] => format!(
            "{} interrupts,\n#     {} .. {}",
            nic.irqs.len(),
            label(first),
            label(last)
        ),
    }
}

fn plan_comment(out: &mut String, plan: &Plan) {
    let chosen = match &plan.rule {
        IrqRule::Given => "given with --irq-cpus".to_string(),
        IrqRule::Shared { threads } => format!(
            "{threads} hardware threads, at most 4: every CPU takes interrupts and runs a shard"
        ),
        IrqRule::OneThread { cores } => {
            format!("{cores} cores, at most 4: the first thread takes interrupts")
        }
        IrqRule::OneCore { cores } => {
            format!("{cores} cores, at most 16: the first core, all its threads, takes interrupts")
        }
        IrqRule::CorePerSixteen { cores, per_node } => format!(
            "{cores} cores, above 16: one whole core per 16 cores, {per_node} on each NUMA node"
        ),
    };
    let _ = writeln!(out, "# Interrupt CPUs {}:\n#   {chosen}.", plan.irq_cpus);
    if plan.rule != IrqRule::Given {
        out.push_str(
            "#   The rule is ScyllaDB perftune.py's: every CPU up to 4 hardware threads, one thread\n\
             #   up to 4 cores, one core up to 16 cores, then one core per 16 cores spread evenly\n\
             #   over the NUMA nodes (nodes of unequal size need --irq-cpus). Interrupt CPUs also\n\
             #   run the OS; shards run on the rest, unless every CPU is shared.\n",
        );
    }
    let per_node: Vec<String> = plan
        .nodes
        .iter()
        .map(|node| format!("node {}: {}", node.node, node.shards))
        .collect();
    let _ = writeln!(
        out,
        "# Shards: one per CPU on {}, {} in all ({}).",
        plan.shard_cpus,
        plan.shard_cpus.len(),
        per_node.join(", ")
    );
    let _ = writeln!(
        out,
        "# Memory per shard: {} MiB, the smallest over the nodes of 3/4 of the node's memory over\n\
         #   its shards; the last quarter is room for the kernel, the page cache and the network\n\
         #   buffers of the interrupt CPUs.",
        plan.memory_per_shard_mib
    );
    if plan.numa_bind {
        out.push_str("# numa_bind: shards on more than one node keep their memory on their own.\n");
    }
    if plan.spin_before_park_us > 0 {
        let _ = writeln!(
            out,
            "# spin_before_park_us (--busy-poll): an idle shard spins {} us before parking,\n\
             #   trading CPU time for wake-up latency.",
            plan.spin_before_park_us
        );
    }
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
