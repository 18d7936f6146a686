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

use glommio::channels::channel_mesh::{MeshBuilder, Receivers, Senders};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

use crate::route::{Router, MAX_SHARDS};

/// The most messages one cross-shard channel may hold.
pub const MAX_CHANNEL_CAPACITY: usize = 65_536;

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

/// The CPUs `cpus: all` means: every CPU this process may run on.
pub fn all_cpus() -> Vec<usize> {
    let count = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..count.min(MAX_SHARDS)).collect()
}

/// Starts one shard per entry of `cpus`, each pinned to its CPU, joined by channels of
/// `channel_capacity` messages, each running `shard_main`.
pub fn start<M, F, Fut>(
    cpus: &[usize],
    channel_capacity: usize,
    shard_main: F,
) -> io::Result<Shards>
where
    M: Send + 'static,
    F: FnOnce(Shard<M>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    if cpus.is_empty() || cpus.len() > MAX_SHARDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("shard count {} outside 1..={MAX_SHARDS}", cpus.len()),
        ));
    }
    if !(1..=MAX_CHANNEL_CAPACITY).contains(&channel_capacity) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("channel capacity {channel_capacity} outside 1..={MAX_CHANNEL_CAPACITY}"),
        ));
    }
    let count = cpus.len();
    let router = Router::new(count);
    let mesh = MeshBuilder::<M, _>::full(count, channel_capacity);
    let mut handles = Vec::with_capacity(count);
    for (id, &cpu) in cpus.iter().enumerate() {
        let mesh = mesh.clone();
        let shard_main = shard_main.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("tailgate-shard-{id}"))
            .spawn(move || async move {
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
        let shards = start::<(usize, u64), _, _>(&cpus, 4, move |shard| async move {
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
    fn bounds_are_checked() {
        assert!(start::<(), _, _>(&[], 4, |_| async {}).is_err());
        assert!(start::<(), _, _>(&[0], 0, |_| async {}).is_err());
    }
}
