//! tailgate's thread-per-core side: which shard owns a trace, the runtime, the signals between
//! a shard's tasks, and (as it is built) the trace buffer and sampling policies each shard runs.
//!
//! Every span is owned by exactly one shard, chosen from its trace id alone, so every span of a
//! trace meets the others on one core and a tail-sampling decision sees the whole trace without
//! any cross-shard state. The runtime's CPU-affinity system calls, `numa`'s memory-policy call and
//! the socket primitives of `net` are the crate's only `unsafe`.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod net;
#[allow(unsafe_code)]
pub mod numa;
pub mod route;
#[allow(unsafe_code)]
pub mod runtime;
pub mod sync;
