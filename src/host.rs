//! Facts about the machine the gateway runs on, read from `/proc` and `/sys` at start-up.
//!
//! Only start-up (and `check-config`, which reports them as notes) reads these; nothing on the
//! data path does. Every reader takes the root directory it reads under, so tests run it on
//! fixture trees laid out like a real machine's.
//!
//! # Memory
//!
//! The memory a process may use is the machine's (`MemTotal` in `/proc/meminfo`) or, when it
//! runs in a memory cgroup with a limit, the lower of the two. Both cgroup layouts are read:
//!
//! - **v2** (the unified hierarchy, `/sys/fs/cgroup`): `memory.max` of the process's cgroup
//!   (its path is the `0::PATH` line of `/proc/self/cgroup`) and of every ancestor, the
//!   tightest binding; `max` means no limit.
//! - **v1** (`/sys/fs/cgroup/memory`): `memory.limit_in_bytes` of the process's memory cgroup
//!   (the line of `/proc/self/cgroup` whose controllers include `memory`) and its ancestors; no
//!   limit shows as a huge number (`PAGE_COUNTER_MAX` pages, 9223372036854771712 with 4 KiB
//!   pages), so anything at or above [`UNLIMITED_BYTES_MIN`] means none.
//!
//! Inside a container the process's cgroup usually shows as `/`, its namespace's root, so the
//! files at the top of the hierarchy are the container's own.

use std::path::{Path, PathBuf};

/// A cgroup limit at or above this many bytes (2^62, 4 EiB) means "no limit": v1 writes its
/// unlimited value as a page count times the page size, which differs between machines.
pub const UNLIMITED_BYTES_MIN: u64 = 1 << 62;

/// The most ancestors of a cgroup that are read (a bound on a hostile or looping path; real
/// hierarchies are a handful deep).
const CGROUP_DEPTH_MAX: usize = 64;

/// The memory this process may use in bytes, read under `/`: see [`memory_bytes_under`].
pub fn memory_bytes() -> Option<u64> {
    memory_bytes_under(Path::new("/"))
}

/// The memory a process may use, read under `root`: the machine's memory, or the tighter
/// cgroup (v2 or v1) limit; `None` when neither can be read.
pub fn memory_bytes_under(root: &Path) -> Option<u64> {
    let machine = meminfo_total(root);
    let cgroup = cgroup_limit(root);
    match (cgroup, machine) {
        (Some(c), Some(m)) => Some(c.min(m)),
        (c, m) => c.or(m),
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn meminfo_total(root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(root.join("proc/meminfo")).ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The tightest memory limit of the process's cgroup and its ancestors: v2 where the unified
/// hierarchy has the memory controller, else v1.
fn cgroup_limit(root: &Path) -> Option<u64> {
    let membership = std::fs::read_to_string(root.join("proc/self/cgroup")).unwrap_or_default();
    let cgroups = root.join("sys/fs/cgroup");
    if cgroups.join("cgroup.controllers").exists() || cgroups.join("memory.max").exists() {
        let path = membership
            .lines()
            .find_map(|line| line.strip_prefix("0::"))
            .unwrap_or("/");
        return tightest(&cgroups, path, "memory.max");
    }
    let path = membership
        .lines()
        .find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then_some(path)
        })
        .unwrap_or("/");
    tightest(&cgroups.join("memory"), path, "memory.limit_in_bytes")
}

/// The lowest limit in `file` of cgroup `path` under `hierarchy` and of its ancestors.
fn tightest(hierarchy: &Path, path: &str, file: &str) -> Option<u64> {
    let mut dir: PathBuf = hierarchy.to_path_buf();
    let mut dirs = vec![dir.clone()];
    for part in path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
    {
        if dirs.len() > CGROUP_DEPTH_MAX {
            break;
        }
        dir.push(part);
        dirs.push(dir.clone());
    }
    dirs.iter()
        .filter_map(|dir| std::fs::read_to_string(dir.join(file)).ok())
        .filter_map(|text| limit_bytes(&text))
        .min()
}

/// A cgroup limit file's value in bytes; `None` for "no limit" (`max`, or a v1 huge value).
fn limit_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    text.parse::<u64>()
        .ok()
        .filter(|&bytes| bytes < UNLIMITED_BYTES_MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    /// A fresh fixture tree with a 16 GiB machine.
    fn machine(name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("tailgate-host-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        write(
            &root,
            "proc/meminfo",
            "MemTotal:       16777216 kB\nMemFree:         1000000 kB\n",
        );
        root
    }

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn without_a_cgroup_limit_the_machine_memory_counts() {
        let root = machine("none");
        assert_eq!(memory_bytes_under(&root), Some(16 * GIB));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn cgroup_v2_limits_of_the_process_cgroup_and_its_ancestors_bind() {
        let root = machine("v2");
        write(
            &root,
            "sys/fs/cgroup/cgroup.controllers",
            "cpu memory pids\n",
        );
        write(
            &root,
            "proc/self/cgroup",
            "0::/system.slice/tailgate.service\n",
        );
        write(&root, "sys/fs/cgroup/system.slice/memory.max", "max\n");
        write(
            &root,
            "sys/fs/cgroup/system.slice/tailgate.service/memory.max",
            &format!("{}\n", 2 * GIB),
        );
        assert_eq!(memory_bytes_under(&root), Some(2 * GIB));
        write(
            &root,
            "sys/fs/cgroup/system.slice/memory.max",
            &format!("{}\n", GIB),
        );
        assert_eq!(
            memory_bytes_under(&root),
            Some(GIB),
            "the parent is tighter"
        );
        write(
            &root,
            "sys/fs/cgroup/system.slice/tailgate.service/memory.max",
            "max\n",
        );
        write(&root, "sys/fs/cgroup/system.slice/memory.max", "max\n");
        assert_eq!(memory_bytes_under(&root), Some(16 * GIB), "max is no limit");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_container_sees_its_own_v2_limit_at_the_top() {
        let root = machine("v2-container");
        write(&root, "proc/self/cgroup", "0::/\n");
        write(&root, "sys/fs/cgroup/memory.max", &format!("{}\n", 3 * GIB));
        assert_eq!(memory_bytes_under(&root), Some(3 * GIB));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn cgroup_v1_limits_count_and_the_huge_value_means_none() {
        let root = machine("v1");
        write(
            &root,
            "proc/self/cgroup",
            "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n7:memory:/docker/abc\n",
        );
        write(
            &root,
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(
            &root,
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
            &format!("{}\n", 4 * GIB),
        );
        assert_eq!(memory_bytes_under(&root), Some(4 * GIB));
        write(
            &root,
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        assert_eq!(memory_bytes_under(&root), Some(16 * GIB), "unlimited");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_v1_container_sees_its_limit_at_the_top_of_the_memory_hierarchy() {
        let root = machine("v1-container");
        write(&root, "proc/self/cgroup", "7:memory:/\n");
        write(
            &root,
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            &format!("{}\n", 512 << 20),
        );
        assert_eq!(memory_bytes_under(&root), Some(512 << 20));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_cgroup_limit_counts_even_without_meminfo() {
        let root = machine("no-meminfo");
        std::fs::remove_file(root.join("proc/meminfo")).unwrap();
        write(&root, "sys/fs/cgroup/memory.max", &format!("{}\n", GIB));
        assert_eq!(memory_bytes_under(&root), Some(GIB));
        std::fs::remove_file(root.join("sys/fs/cgroup/memory.max")).unwrap();
        assert_eq!(memory_bytes_under(&root), None);
        std::fs::remove_dir_all(root).unwrap();
    }
}
