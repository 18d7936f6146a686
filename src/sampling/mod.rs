//! Tail-sampling decisions: the OpenTelemetry Collector contrib `tail_sampling` processor's
//! policies and final-decision rules, applied to a whole trace read in place.
//!
//! # Model
//!
//! Each shard builds its own [`PolicySet`] from the checked `processors.tail_sampling`
//! configuration and the shard count, and is its only user: the set holds the policies' state
//! (token buckets, per-second windows, regex result caches), mutated by [`PolicySet::decide`]
//! without locks. The rates in the configuration (`rate_limiting.spans_per_second`,
//! `bytes_limiting`, `composite.max_total_spans_per_second`) are node-wide figures, as a user
//! of the Collector means them; every shard enforces its share of them on the traces it owns
//! (see `limiter.rs` and `composite.rs` for how the shares are computed). Time is passed in
//! ([`Instant`](std::time::Instant)), so tests drive the rate windows with an injected clock.
//!
//! The shard's trace buffer assembles a [`Trace`]: the trace id and the spans as
//! [`tailgate_wire::SpanView`]s, each with the [`tailgate_wire::ResourceView`] it arrived under.
//! Facts several policies need (span count, bytes, earliest start and latest end, statuses,
//! trace flags) are computed once when the trace is assembled; policies read attributes and
//! trace states from the views in place; `ottl_condition` policies evaluate conditions parsed at
//! start ([`crate::ottl`]). Evaluation allocates nothing, except the key of a regex result when
//! it is first cached, and an `ottl_condition` policy's scratch buffer while it grows.
//!
//! # Decisions
//!
//! Every top-level policy gives a [`Decision`]; the Collector's rules, which [`PolicySet`]
//! follows, make the final one:
//!
//! 1. `drop` policies are evaluated first, whatever their place in the list; a Dropped decision
//!    stops the evaluation and wins.
//! 2. Otherwise, an InvertNotSampled decision (from an attribute policy with `invert_match`)
//!    means not sampled, even if another policy sampled.
//! 3. Otherwise, any Sampled decision samples.
//! 4. Otherwise, an InvertSampled decision samples when no policy said NotSampled.
//! 5. Otherwise the trace is not sampled.
//!
//! With `sample_on_first_match`, evaluation stops at the first Sampled decision (an
//! InvertSampled one does not stop it); the policies after it are not evaluated, so their state
//! (a rate limiter's tokens) is left untouched. Inside `and`, `drop` and `composite` the
//! inverted decisions count as their plain counterparts, and `and` answers Sampled or
//! NotSampled only; `not` flips Sampled and NotSampled and passes inverted decisions through.
//!
//! The inverted decisions are deprecated in the Collector; its
//! `processor.tailsamplingprocessor.disableinvertdecisions` feature gate (alpha, off by default)
//! turns them into plain ones. tailgate follows the default.

mod attribute;
mod buffer;
mod composite;
mod consistent;
mod limiter;
mod lru;
mod ottl_condition;
mod policy;
mod policy_set;
mod probabilistic;
mod sampler;
pub mod stress_relief;
mod trace;
pub(crate) mod trace_state;

pub use buffer::{oversized_bytes, BufferLimits, Framed, Inserted, Round, TraceBuffer};
pub use policy_set::{FinalDecision, PolicyError, PolicySet};
pub use sampler::{Sampler, SamplerSettings};
pub use trace::{Trace, TraceSpan};

use crate::telemetry;

/// A policy's decision, as the Collector's evaluators answer (its `Error`, `Pending` and
/// `Unspecified` have no use here: the one policy that can fail to evaluate, `ottl_condition`
/// with `error_mode: propagate`, answers NotSampled instead, and the failure is counted; see
/// `ottl_condition.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The policy keeps the trace.
    Sampled,
    /// The policy does not keep the trace (another policy still may).
    NotSampled,
    /// `invert_match` found no match: sampled unless another policy said NotSampled.
    InvertSampled,
    /// `invert_match` found a match: not sampled, whatever other policies said (except Dropped).
    InvertNotSampled,
    /// A `drop` policy matched: not sampled, and this wins over everything.
    Dropped,
}

impl Decision {
    /// The decision as the Collector's metrics label it: inverted decisions count as their
    /// plain counterparts.
    pub fn metric(self) -> telemetry::Decision {
        match self {
            Decision::Sampled | Decision::InvertSampled => telemetry::Decision::Sampled,
            Decision::NotSampled | Decision::InvertNotSampled => telemetry::Decision::NotSampled,
            Decision::Dropped => telemetry::Decision::Dropped,
        }
    }
}

#[cfg(test)]
mod testing;
