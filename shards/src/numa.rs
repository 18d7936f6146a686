//! NUMA placement of a shard's memory: binding the calling thread's future allocations to one
//! node (which node a CPU is on is read from sysfs by the gateway, `tailgate::tuning`).
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

/// `MPOL_DEFAULT` and `MPOL_BIND` of the kernel's `uapi/linux/mempolicy.h`.
const MPOL_DEFAULT: libc::c_int = 0;
const MPOL_BIND: libc::c_int = 2;

/// The highest node id accepted: the kernel's `MAX_NUMNODES` is at most 1024.
pub const NODE_ID_MAX: usize = 1023;

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
    fn this_thread_binds_to_a_node_and_back() {
        match bind_thread_memory(0) {
            Ok(()) => unbind_thread_memory().unwrap(),
            // A container's seccomp profile may refuse the call; that is what the gateway's
            // start-up check reports, not a failure of this code.
            Err(err) => assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}"),
        }
        assert!(bind_thread_memory(NODE_ID_MAX + 1).is_err());
    }
}
