//! The shard CPUs: their frequency governor, and whether the process may run on them.

use std::collections::BTreeMap;

use super::tree::{format_cpu_list, ReadError, Tree};
use super::{Finding, Level, ShardCpus};
use crate::config::Cpus;

/// The CPU frequency governor check.
pub const CHECK_GOVERNOR: &str = "cpufreq.governor";
/// The check of `shards.cpus` against the affinity mask.
pub const CHECK_AFFINITY: &str = "shards.cpus";

/// The governor of each shard CPU, grouped: `performance` is ok, any other a warning, and no
/// `cpufreq` at all (a VM, whose host sets the frequency) is ok.
pub fn governor(tree: &Tree, shard_cpus: &[usize]) -> Finding {
    let why = "a shard that idles between bursts drops to a low clock under an on-demand \
               governor and pays the ramp-up on the next request; `performance` keeps shard \
               cores at full speed";
    let mut by_governor: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut unexposed = Vec::new();
    for &cpu in shard_cpus {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor");
        match tree.read(&path) {
            Ok(governor) => by_governor.entry(governor).or_default().push(cpu),
            Err(ReadError::Missing { .. }) => unexposed.push(cpu),
            Err(err) => return Finding::unreadable(CHECK_GOVERNOR, err.to_string(), why),
        }
    }
    if by_governor.is_empty() {
        return Finding::ok(
            CHECK_GOVERNOR,
            "not exposed (no cpufreq driver: usual on a VM, where the host sets the frequency)",
            why,
        );
    }
    let mut parts: Vec<String> = by_governor
        .iter()
        .map(|(governor, cpus)| format!("{governor} on CPU {}", format_cpu_list(cpus)))
        .collect();
    if !unexposed.is_empty() {
        parts.push(format!(
            "not exposed on CPU {}",
            format_cpu_list(&unexposed)
        ));
    }
    let found = parts.join("; ");
    let slow: Vec<usize> = by_governor
        .iter()
        .filter(|(governor, _)| governor.as_str() != "performance")
        .flat_map(|(_, cpus)| cpus.iter().copied())
        .collect();
    if slow.is_empty() {
        return Finding::ok(CHECK_GOVERNOR, found, why);
    }
    Finding::flag(
        CHECK_GOVERNOR,
        Level::Warn,
        found,
        why,
        format!(
            "cpupower -c {} frequency-set -g performance (or write `performance` to each \
             cpu*/cpufreq/scaling_governor), and persist it with tuned or the cpupower service",
            format_cpu_list(&slow)
        ),
    )
}

/// `shards.cpus` against the CPUs this process may run on: a listed CPU outside the mask stops
/// start-up (pinning a shard there fails).
pub(super) fn affinity(cpus: &Cpus, shards: &ShardCpus) -> Finding {
    let why = "each shard is pinned to its CPU; pinning to a CPU outside the process's \
               affinity mask (taskset, cgroup cpuset, systemd CPUAffinity=) fails, and \
               start-up stops";
    let allowed = match &shards.allowed {
        Ok(allowed) => allowed,
        Err(err) => {
            let level = match cpus {
                // `all` is resolved from the mask: without it start-up stops.
                Cpus::All => Level::Fail,
                // A list is pinned as written; the pinning itself reports a bad CPU.
                Cpus::List(_) => Level::Warn,
            };
            return Finding::flag(
                CHECK_AFFINITY,
                level,
                format!("cannot read the affinity mask: {err}"),
                why,
                "list the shard CPUs in shards.cpus",
            );
        }
    };
    let mask = format_cpu_list(allowed);
    match cpus {
        Cpus::All => Finding::ok(
            CHECK_AFFINITY,
            format!(
                "all: {} shard(s) on CPU {} (affinity mask {mask})",
                shards.cpus.len(),
                format_cpu_list(&shards.cpus)
            ),
            why,
        ),
        Cpus::List(_) => {
            let outside: Vec<usize> = shards
                .cpus
                .iter()
                .filter(|cpu| !allowed.contains(cpu))
                .copied()
                .collect();
            let listed = shards
                .cpus
                .iter()
                .map(|cpu| cpu.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if outside.is_empty() {
                return Finding::ok(
                    CHECK_AFFINITY,
                    format!("[{listed}], all within the affinity mask {mask}"),
                    why,
                );
            }
            let outside_text = outside
                .iter()
                .map(|cpu| cpu.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            Finding::flag(
                CHECK_AFFINITY,
                Level::Fail,
                format!("[{listed}]: CPU {outside_text} outside the affinity mask {mask}"),
                why,
                format!(
                    "list only CPUs in {mask} in shards.cpus (or write `all`), or widen the \
                     mask (systemd CPUAffinity=, the container's cpuset)"
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(cpus: Vec<usize>, allowed: Vec<usize>) -> ShardCpus {
        ShardCpus {
            cpus,
            allowed: Ok(allowed),
        }
    }

    #[test]
    fn a_listed_cpu_outside_the_mask_fails() {
        let f = affinity(
            &Cpus::List(vec![0, 4000]),
            &shards(vec![0, 4000], vec![0, 1]),
        );
        assert_eq!(f.level, Level::Fail);
        assert!(f.found.contains("4000"), "{}", f.found);
        let f = affinity(&Cpus::List(vec![1]), &shards(vec![1], vec![0, 1]));
        assert_eq!(f.level, Level::Ok);
    }

    #[test]
    fn an_unreadable_mask_fails_only_for_all() {
        let unreadable = |cpus: Vec<usize>| ShardCpus {
            cpus,
            allowed: Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
        };
        assert_eq!(affinity(&Cpus::All, &unreadable(vec![])).level, Level::Fail);
        assert_eq!(
            affinity(&Cpus::List(vec![0]), &unreadable(vec![0])).level,
            Level::Warn
        );
    }
}
