//! Consistent probability sampling (OpenTelemetry's OTEP 235), as the Collector's
//! `processor.tailsamplingprocessor.usetracestate` feature gate applies it to tail sampling.
//!
//! With the gate on, every kept span says in its tracestate (`ot=th:…`) with what probability
//! it was kept, so a backend can count what the samplers threw away: a span kept with
//! threshold T stands for `2^56 / (2^56 - T)` spans. The policies report the threshold they
//! kept a trace with: `probabilistic` its configured share (deciding on the trace's randomness
//! instead of its salted hash when the trace carries OpenTelemetry sampling fields),
//! `rate_limiting` and `bytes_limiting` the cut where a round's budget ran out (the traces of
//! highest randomness are kept first), `and` the greatest of its sub-policies', any other
//! policy 0 (kept for certain). A kept trace's spans carry the least threshold among the
//! policies that sampled it, unless a span already carries a greater one.
//!
//! - [`threshold`]: thresholds, randomness and their text forms.
//! - [`tracestate`]: the `ot` entry of a W3C tracestate, read and rewritten.
//! - [`trace`]: a trace's randomness, from its spans.

mod threshold;
mod trace;
mod tracestate;

pub(crate) use threshold::{Randomness, Threshold};
pub(crate) use trace::TraceRandomness;
pub(crate) use tracestate::{write_threshold, Written};
