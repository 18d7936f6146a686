//! NUMA placement of a shard's memory: which node a CPU belongs to, and binding the calling
//! thread's future allocations to one node.
//!
//! A shard is pinned to one CPU, and on a multi-socket machine memory on another socket costs a
//! trip over the interconnect on every access. First touch already places most pages on the
//! toucher's node, but the allocator hands a thread pages that another thread first touched, and
//! the kernel falls back to any node when the local one is short. `numa_bind` makes the rule
//! strict: the shard thread's policy is `MPOL_BIND` to its CPU's node (set_mempolicy(2)), so its
//! buffers, decision caches and queues stay local, and a node running out of memory shows as
//! the shard's allocation failing rather than as slow remote memory. The memory budget keeps
//! each shard far below its node's size.
//!
//! The policy is per thread; it is set on the shard's own thread after pinning, and applies to
//! pages allocated from then on.

use std::io;
use std::path::Path;

/// `MPOL_DEFAULT` and `MPOL_BIND` of the kernel's `uapi/linux/mempolicy.h`.
const MPOL_DEFAULT: libc::c_int = 0;
const MPOL_BIND: libc::c_int = 2;

/// The highest node id accepted: the kernel's `MAX_NUMNODES` is at most 1024.
pub const NODE_ID_MAX: usize = 1023;

/// The NUMA node of each CPU in `cpus`, from `ROOT/sys/devices/system/node/node*/cpulist`; a
/// machine without that tree (no NUMA support in the kernel) is one node, node 0.
pub fn nodes_of(root: &Path, cpus: &[usize]) -> io::Result<Vec<usize>> {
    let nodes_dir = root.join("sys/devices/system/node");
    let mut node_cpus: Vec<(usize, Vec<usize>)> = Vec::new();
    let entries = match std::fs::read_dir(&nodes_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(vec![0; cpus.len()]),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix("node"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if id > NODE_ID_MAX {
            continue;
        }
        let list = std::fs::read_to_string(entry.path().join("cpulist"))?;
        let parsed = parse_cpu_list(list.trim()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}/cpulist: not a CPU list: {:?}",
                    entry.path().display(),
                    list.trim()
                ),
            )
        })?;
        node_cpus.push((id, parsed));
    }
    cpus.iter()
        .map(|cpu| {
            node_cpus
                .iter()
                .find(|(_, list)| list.contains(cpu))
                .map(|(node, _)| *node)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("CPU {cpu} is on no NUMA node under {}", nodes_dir.display()),
                    )
                })
        })
        .collect()
}

/// The largest CPU id a list may name (the kernel's `NR_CPUS` ceiling is 8192).
const CPU_ID_MAX: usize = 8191;

/// A kernel CPU list (`0-3,8,10-11`; empty for none); `None` if malformed or beyond
/// [`CPU_ID_MAX`].
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    if text.is_empty() {
        return Some(out);
    }
    for part in text.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let one = part.parse::<usize>().ok()?;
                (one, one)
            }
        };
        if first > last || last > CPU_ID_MAX {
            return None;
        }
        out.extend(first..=last);
    }
    Some(out)
}

/// Binds the calling thread's future page allocations to `node` (`MPOL_BIND`).
pub fn bind_thread_memory(node: usize) -> io::Result<()> {
    if node > NODE_ID_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NUMA node {node} is above {NODE_ID_MAX}"),
        ));
    }
    let mut mask = [0 as libc::c_ulong; (NODE_ID_MAX + 1) / libc::c_ulong::BITS as usize];
    let bits = libc::c_ulong::BITS as usize;
    mask[node / bits] |= 1 << (node % bits);
    set_mempolicy(MPOL_BIND, &mask)
}

/// Returns the calling thread to the default policy (allocate on the local node, fall back to
/// any).
pub fn unbind_thread_memory() -> io::Result<()> {
    set_mempolicy(MPOL_DEFAULT, &[])
}

fn set_mempolicy(mode: libc::c_int, mask: &[libc::c_ulong]) -> io::Result<()> {
    let maxnode = (mask.len() * libc::c_ulong::BITS as usize) as libc::c_ulong;
    let ptr = if mask.is_empty() {
        std::ptr::null()
    } else {
        mask.as_ptr()
    };
    // SAFETY: set_mempolicy reads at most `maxnode` bits from `ptr`, which points into `mask`
    // of exactly that many bits (or is null with maxnode 0, allowed for MPOL_DEFAULT); it
    // changes only the calling thread's policy and touches no other memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("1,,2"), None);
        assert_eq!(parse_cpu_list("0-99999"), None);
        assert_eq!(parse_cpu_list("a"), None);
    }

    #[test]
    fn nodes_come_from_the_node_tree() {
        let root = std::env::temp_dir().join(format!("tailgate-numa-{}", std::process::id()));
        for (node, list) in [(0, "0-1,4-5"), (1, "2-3,6-7")] {
            let dir = root.join(format!("sys/devices/system/node/node{node}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cpulist"), format!("{list}\n")).unwrap();
        }
        assert_eq!(nodes_of(&root, &[0, 2, 5, 7]).unwrap(), vec![0, 1, 0, 1]);
        assert!(nodes_of(&root, &[9]).is_err());
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(nodes_of(&root, &[0, 1]).unwrap(), vec![0, 0]);
    }

    #[test]
    fn this_thread_binds_to_its_node_and_back() {
        let node = nodes_of(Path::new("/"), &[0]).unwrap()[0];
        match bind_thread_memory(node) {
            Ok(()) => unbind_thread_memory().unwrap(),
            // A container's seccomp profile may refuse the call; that is what the gateway's
            // start-up check reports, not a failure of this code.
            Err(err) => assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}"),
        }
    }
}
