//! The thread-per-core runtime: one glommio executor per configured CPU, and the bounded channel
//! mesh between them.
//!
//! [`start`] spawns one OS thread per entry of the CPU list, pins it to that CPU, and runs a
//! glommio `LocalExecutor` (its own io_uring ring) on it. Each executor first joins the mesh —
//! a full graph of bounded single-producer/single-consumer channels, one per ordered pair of
//! shards, `channel_capacity` messages each — and then runs the shard's main future. From then on
//! a shard shares nothing mutable with the others: what one shard hands another travels as a
//! message, and a full channel makes the sender wait (backpressure), never drops.
//!
//! The message type is the caller's: the gateway sends one message per (request, destination
//! shard), carrying all of that request's spans the destination owns, never one per span.

use std::future::Future;
use std::io;
use std::time::Duration;

use glommio::channels::channel_mesh::{MeshBuilder, Receivers, Senders};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

use crate::route::{Router, SHARDS_MAX};

/// The most messages one cross-shard channel may hold: each shard has a channel to every other,
/// so the mesh's memory grows with shards² × capacity.
pub const CHANNEL_CAPACITY_MAX: usize = 65_536;

/// What a shard's main future is given: who it is, who owns which trace, and its ends of the
/// channel mesh.
pub struct Shard<M: Send> {
    /// This shard's index, `0..count`.
    pub id: usize,
    /// How many shards run.
    pub count: usize,
    /// The CPU this shard's thread is pinned to.
    pub cpu: usize,
    /// Trace ownership, the same value in every shard.
    pub router: Router,
    /// Senders to every shard (index = shard id); sending to oneself is not allowed by the mesh,
    /// so a shard handles its own traces directly.
    pub senders: Senders<M>,
    /// Receivers from every other shard.
    pub receivers: Receivers<M>,
}

/// Running shards: wait for them with [`Shards::join`].
pub struct Shards {
    handles: Vec<ExecutorJoinHandle<()>>,
}

impl Shards {
    /// Waits for every shard's main future to finish; reports the first shard that panicked.
    pub fn join(self) -> io::Result<()> {
        let mut first_error = None;
        for (id, handle) in self.handles.into_iter().enumerate() {
            if let Err(err) = handle.join() {
                first_error.get_or_insert(io::Error::other(format!("shard {id} failed: {err}")));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The CPUs `cpus: all` means: every CPU this process may run on — its affinity mask, which
/// `taskset`, systemd's `CPUAffinity=` and a cgroup cpuset narrow — at most [`SHARDS_MAX`]
/// of them, lowest first.
pub fn all_cpus() -> io::Result<Vec<usize>> {
    let mut cpus = allowed_cpus()?;
    cpus.truncate(SHARDS_MAX);
    Ok(cpus)
}

/// The CPU ids a mask can name: `shards.cpus` accepts ids up to 4095, so the mask passed to
/// the kernel has room for 4096 CPUs (the kernel refuses a mask smaller than its own).
const MASK_CPUS: usize = 4096;

/// The CPUs the calling thread may run on (`sched_getaffinity(2)`), in increasing order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let mut mask = vec![0u64; MASK_CPUS / 64];
    // SAFETY: `mask` is a live, 8-byte-aligned buffer of exactly the size passed, which is what
    // the kernel writes at most; `cpu_set_t` is itself an array of 64-bit words, so the pointer
    // cast matches its layout. Pid 0 means the calling thread.
    let rc = unsafe {
        libc::sched_getaffinity(
            0,
            mask.len() * std::mem::size_of::<u64>(),
            mask.as_mut_ptr().cast::<libc::cpu_set_t>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cpus_in_mask(&mask))
}

/// The CPU ids whose bits are set in an affinity mask of 64-bit words (CPU `n` is bit `n % 64`
/// of word `n / 64`, the kernel's layout on 64-bit machines).
fn cpus_in_mask(mask: &[u64]) -> Vec<usize> {
    let mut cpus = Vec::new();
    for (index, &word) in mask.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            cpus.push(index * 64 + bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
    }
    cpus
}

/// The bounds of [`Executor::ring_depth`]: io_uring rings are powers of two up to 32768 entries.
pub const RING_DEPTH_MIN: usize = 8;
/// See [`RING_DEPTH_MIN`].
pub const RING_DEPTH_MAX: usize = 32_768;

/// How each shard's executor is set up: the tuning profile's part of the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executor {
    /// io_uring submission entries of each shard's ring.
    pub ring_depth: usize,
    /// How long an idle shard busy-polls its ring before parking in the kernel: trades a CPU
    /// that spins for fewer wake-ups and syscalls under steady load.
    pub spin_before_park: Duration,
    /// The NUMA node each shard's memory is bound to, by position in the CPU list; `None`
    /// leaves placement to first touch.
    pub memory_nodes: Option<Vec<usize>>,
}

impl Default for Executor {
    fn default() -> Self {
        Executor {
            ring_depth: 128,
            spin_before_park: Duration::ZERO,
            memory_nodes: None,
        }
    }
}

/// Starts one shard per entry of `cpus`, each pinned to its CPU and set up as `executor` says,
/// joined by channels of `channel_capacity` messages, each running `shard_main`.
pub fn start<M, F, Fut>(
    cpus: &[usize],
    channel_capacity: usize,
    executor: &Executor,
    shard_main: F,
) -> io::Result<Shards>
where
    M: Send + 'static,
    F: FnOnce(Shard<M>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    if cpus.is_empty() || cpus.len() > SHARDS_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("shard count {} outside 1..={SHARDS_MAX}", cpus.len()),
        ));
    }
    if !(1..=CHANNEL_CAPACITY_MAX).contains(&channel_capacity) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("channel capacity {channel_capacity} outside 1..={CHANNEL_CAPACITY_MAX}"),
        ));
    }
    if !(RING_DEPTH_MIN..=RING_DEPTH_MAX).contains(&executor.ring_depth)
        || !executor.ring_depth.is_power_of_two()
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "ring depth {} is not a power of two in {RING_DEPTH_MIN}..={RING_DEPTH_MAX}",
                executor.ring_depth
            ),
        ));
    }
    if let Some(nodes) = &executor.memory_nodes {
        assert_eq!(nodes.len(), cpus.len(), "one memory node per shard CPU");
    }
    let count = cpus.len();
    let router = Router::new(count);
    let mesh = MeshBuilder::<M, _>::full(count, channel_capacity);
    let mut handles = Vec::with_capacity(count);
    for (id, &cpu) in cpus.iter().enumerate() {
        let mesh = mesh.clone();
        let shard_main = shard_main.clone();
        let node = executor.memory_nodes.as_ref().map(|nodes| nodes[id]);
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("tailgate-shard-{id}"))
            .ring_depth(executor.ring_depth)
            .spin_before_park(executor.spin_before_park)
            .spawn(move || async move {
                if let Some(node) = node {
                    // Checked on the main thread before the shards start, so a refusal here is
                    // a surprise worth a log line, not a reason to stop a running shard.
                    if let Err(err) = crate::numa::bind_thread_memory(node) {
                        tracing::warn!(
                            "shard {id}: binding its memory to NUMA node {node} failed ({err}); \
                             it allocates as the kernel places pages"
                        );
                    }
                }
                let (senders, receivers) = mesh.join().await.expect("mesh join");
                // The mesh numbers peers in join order; shard ids follow the mesh so that
                // `senders.send_to(owner)` reaches the shard `router` names.
                let id = senders.peer_id();
                shard_main(Shard {
                    id,
                    count,
                    cpu,
                    router,
                    senders,
                    receivers,
                })
                .await;
            })
            .map_err(|err| io::Error::other(format!("starting shard {id} on CPU {cpu}: {err}")))?;
        handles.push(handle);
    }
    Ok(Shards { handles })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn shards_reach_each_other_through_the_mesh() {
        let cpus = vec![0; 3];
        let (done, results) = mpsc::channel();
        let shards =
            start::<(usize, u64), _, _>(&cpus, 4, &Executor::default(), move |shard| async move {
                for peer in 0..shard.count {
                    if peer != shard.id {
                        shard.senders.send_to(peer, (shard.id, 7)).await.unwrap();
                    }
                }
                let mut got = Vec::new();
                for peer in 0..shard.count {
                    if peer != shard.id {
                        got.push(shard.receivers.recv_from(peer).await.unwrap().unwrap());
                    }
                }
                done.send((shard.id, got)).unwrap();
            })
            .unwrap();
        shards.join().unwrap();
        let mut all: Vec<_> = results.try_iter().collect();
        all.sort();
        assert_eq!(all.len(), 3);
        for (id, got) in all {
            let mut senders: Vec<usize> = got.iter().map(|m| m.0).collect();
            senders.sort();
            let expected: Vec<usize> = (0..3).filter(|&p| p != id).collect();
            assert_eq!(senders, expected);
        }
    }

    #[test]
    fn a_mask_names_the_cpus_of_its_set_bits() {
        assert_eq!(cpus_in_mask(&[0, 0]), Vec::<usize>::new());
        assert_eq!(cpus_in_mask(&[0b1011]), vec![0, 1, 3]);
        assert_eq!(cpus_in_mask(&[1 << 63, 1 << 2]), vec![63, 66]);
        assert_eq!(cpus_in_mask(&[0, 0, 0, u64::MAX]).len(), 64);
        assert_eq!(cpus_in_mask(&[0, 0, 0, u64::MAX])[0], 192);
    }

    #[test]
    fn the_allowed_cpus_include_the_one_this_thread_runs_on() {
        let allowed = allowed_cpus().unwrap();
        // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
        let current = unsafe { libc::sched_getcpu() };
        assert!(current >= 0);
        assert!(allowed.contains(&(current as usize)), "{allowed:?}");
        assert!(allowed.windows(2).all(|w| w[0] < w[1]), "{allowed:?}");
    }

    #[test]
    fn bounds_are_checked() {
        assert!(start::<(), _, _>(&[], 4, &Executor::default(), |_| async {}).is_err());
        assert!(start::<(), _, _>(&[0], 0, &Executor::default(), |_| async {}).is_err());
        for ring_depth in [4, 100, 65_536] {
            let executor = Executor {
                ring_depth,
                ..Executor::default()
            };
            assert!(start::<(), _, _>(&[0], 4, &executor, |_| async {}).is_err());
        }
    }
}
