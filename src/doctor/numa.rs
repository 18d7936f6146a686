//! The NUMA layout, and where the shard CPUs fall on it.
//!
//! Traces are spread evenly over shards by hash, and the memory budget is split evenly per
//! shard, so each NUMA node's share of the work and of the buffered data follows the number of
//! shards it runs. Shards on several nodes want the tuning profile's `numa_bind` (each shard's
//! memory on its own node: a remote access costs about half as much again as a local one, on
//! every span a shard scans), and a like number of shards per node, or one node's memory
//! fills while the other's idles.

use std::collections::BTreeMap;

use super::tree::{format_cpu_list, parse_cpu_list, Tree};
use super::{Finding, Level};

/// The NUMA check.
pub const CHECK: &str = "numa";

/// The most nodes read (Linux's `MAX_NUMNODES` is at most 1024).
const NODES_MAX: usize = 1024;

/// The most one node's shard count may exceed another's, as a multiple, before the split is
/// called uneven (12 and 16 is even enough; 4 and 12 is not).
const NODE_SHARE_RATIO_MAX: usize = 2;

const NODES: &str = "/sys/devices/system/node";

/// The machine's NUMA nodes and their CPUs, from `/sys/devices/system/node/node*/cpulist`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumaLayout {
    /// (node id, its CPUs), by node id; empty when the kernel exposes no nodes.
    pub nodes: Vec<(usize, Vec<usize>)>,
}

impl NumaLayout {
    /// The layout under `tree`; nodes whose `cpulist` cannot be read or parsed are left out.
    pub fn read(tree: &Tree) -> NumaLayout {
        let mut nodes: Vec<(usize, Vec<usize>)> = tree
            .list(NODES)
            .iter()
            .filter_map(|name| name.strip_prefix("node")?.parse::<usize>().ok())
            .take(NODES_MAX)
            .filter_map(|node| {
                let text = tree.read(&format!("{NODES}/node{node}/cpulist")).ok()?;
                Some((node, parse_cpu_list(&text)?))
            })
            .collect();
        nodes.sort_unstable_by_key(|(node, _)| *node);
        NumaLayout { nodes }
    }

    /// The node CPU `cpu` belongs to.
    pub fn node_of(&self, cpu: usize) -> Option<usize> {
        self.nodes
            .iter()
            .find(|(_, cpus)| cpus.binary_search(&cpu).is_ok())
            .map(|(node, _)| *node)
    }
}

/// The shard CPUs against the layout and the tuning profile's `numa_bind`: ok on one node;
/// a warning when shards span nodes unevenly, or span them without `numa_bind`.
pub fn numa_against_profile(layout: &NumaLayout, shard_cpus: &[usize], numa_bind: bool) -> Finding {
    let why = "traces and the memory budget are spread evenly over shards, so each node's \
               share of work and of buffered data follows its shard count; shards on several \
               nodes want numa_bind, or their memory may sit on the other node";
    if layout.nodes.is_empty() {
        let found = if numa_bind {
            "no NUMA nodes exposed (one memory domain): numa_bind has nothing to bind"
        } else {
            "no NUMA nodes exposed (one memory domain)"
        };
        return Finding::ok(CHECK, found, why);
    }
    let mut per_node: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut unplaced = Vec::new();
    for &cpu in shard_cpus {
        match layout.node_of(cpu) {
            Some(node) => per_node.entry(node).or_default().push(cpu),
            None => unplaced.push(cpu),
        }
    }
    let nodes_text = layout
        .nodes
        .iter()
        .map(|(node, cpus)| format!("node{node} CPU {}", format_cpu_list(cpus)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut shards_text = per_node
        .iter()
        .map(|(node, cpus)| format!("{} on node{node}", cpus.len()))
        .collect::<Vec<_>>()
        .join(", ");
    if !unplaced.is_empty() {
        if !shards_text.is_empty() {
            shards_text.push_str(", ");
        }
        shards_text.push_str(&format!("CPU {} on no node", format_cpu_list(&unplaced)));
    }
    let found = format!(
        "{} node(s): {nodes_text}; shards: {shards_text}{}",
        layout.nodes.len(),
        if numa_bind { "; numa_bind on" } else { "" }
    );
    if per_node.len() <= 1 {
        return Finding::ok(CHECK, found, why);
    }
    let counts = per_node.values().map(Vec::len);
    let (fewest, most) = (counts.clone().min().unwrap_or(0), counts.max().unwrap_or(0));
    if most > fewest.saturating_mul(NODE_SHARE_RATIO_MAX) {
        return Finding::flag(
            CHECK,
            Level::Warn,
            found,
            why,
            "list shard CPUs so each node runs a like number of shards (tailgate tune writes \
             such a list), or keep every shard on one node",
        );
    }
    if !numa_bind {
        return Finding::flag(
            CHECK,
            Level::Warn,
            found,
            why,
            "set numa_bind: true in the tuning profile (shards.profile), or keep every shard \
             on one node",
        );
    }
    Finding::ok(CHECK, found, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_nodes() -> NumaLayout {
        NumaLayout {
            nodes: vec![(0, (0..8).collect()), (1, (8..16).collect())],
        }
    }

    #[test]
    fn shards_on_one_node_are_ok() {
        let f = numa_against_profile(&two_nodes(), &[2, 3, 4, 5], false);
        assert_eq!(f.level, Level::Ok);
        assert!(f.found.contains("4 on node0"), "{}", f.found);
    }

    #[test]
    fn an_uneven_split_warns_even_with_numa_bind() {
        let f = numa_against_profile(&two_nodes(), &[1, 2, 3, 4, 5, 6, 7, 8], true);
        assert_eq!(f.level, Level::Warn);
        assert!(f.fix.unwrap().contains("like number"));
    }

    #[test]
    fn an_even_split_wants_numa_bind() {
        let shards: Vec<usize> = (2..14).collect();
        assert_eq!(
            numa_against_profile(&two_nodes(), &shards, false).level,
            Level::Warn
        );
        assert_eq!(
            numa_against_profile(&two_nodes(), &shards, true).level,
            Level::Ok
        );
    }

    #[test]
    fn no_layout_is_one_memory_domain() {
        let f = numa_against_profile(&NumaLayout::default(), &[0, 1], true);
        assert_eq!(f.level, Level::Ok);
        assert!(f.found.contains("nothing to bind"));
    }

    #[test]
    fn the_layout_is_read_from_node_cpulists() {
        let dir = std::env::temp_dir().join(format!("tailgate-numa-{}", std::process::id()));
        for (node, list) in [(0, "0-3"), (1, "4-7"), (2, "")] {
            let path = dir.join(format!("sys/devices/system/node/node{node}"));
            std::fs::create_dir_all(&path).unwrap();
            std::fs::write(path.join("cpulist"), format!("{list}\n")).unwrap();
        }
        std::fs::write(dir.join("sys/devices/system/node/online"), "0-2\n").unwrap();
        let layout = NumaLayout::read(&Tree::new(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            layout.nodes,
            vec![(0, vec![0, 1, 2, 3]), (1, vec![4, 5, 6, 7]), (2, vec![])]
        );
        assert_eq!(layout.node_of(5), Some(1));
        assert_eq!(layout.node_of(9), None);
    }
}
