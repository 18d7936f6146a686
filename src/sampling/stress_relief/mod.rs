//! Stress relief: while a shard's memory is high, new traces are decided as they arrive, by their
//! trace id alone, instead of being buffered for their tail-sampling decision (Refinery's idea,
//! with bounds).
//!
//! # Model
//!
//! Each shard runs its own [`ReliefState`], on its own thread, against its own memory account
//! (`crate::memory::ShardMemory`: trace buffer, late spans and exporters' batches, against the
//! shard's effective limit, its share of the budget less its share of the process's other
//! memory; the levels follow that limit on the decision task's tick). In `monitor` mode it turns
//! on when the shard holds `activation_level` percent of that limit and off once it holds less
//! than `deactivation_level` percent and has been on for `minimum_activation_duration`;
//! `always` keeps it on. The state is per shard because the memory it watches, the buffer it
//! relieves and the refusals it prevents are per shard; no shard waits on another's state.
//!
//! While on, a span whose trace is neither buffered nor already decided is decided at once by
//! [`ArrivalSampling`]: the OTEP-235 consistent-sampling rule on the trace id's 56 bits of
//! randomness, against the threshold of `sampling_percentage` (under the tracestate gate, kept
//! spans carry that threshold in their tracestate). Every shard and every node with the same
//! percentage makes the same decision for a trace, whoever is under stress, so a trace split
//! across gateways is kept or dropped whole. The decision goes into the shard's decision caches,
//! marked as stress relief's, so the trace's later spans follow it (kept traces stay complete)
//! and are counted as its. Traces already buffered are decided by the policies as usual.
//!
//! The cost is fidelity: a trace decided at arrival is never seen by the policies, so an error
//! or a slow trace is kept only at `sampling_percentage`. What it buys is that a new trace costs
//! no buffer memory and no policy evaluation, which is what lets a shard under pressure keep
//! accepting instead of refusing.
//!
//! Transitions are logged node-wide through one [`ReliefLog`], at most one line per
//! [`LOG_INTERVAL`], so a node of many shards flapping together writes a few lines, not one a
//! shard a flap.

mod arrival;
mod log;
mod state;

pub use arrival::ArrivalSampling;
pub use log::{ReliefLog, LOG_INTERVAL};
pub use state::{ReliefState, Transition};
