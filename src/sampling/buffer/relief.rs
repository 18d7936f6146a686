//! Stress relief's part of the buffer: a new trace decided at its arrival, by trace id, instead
//! of being buffered (the model is in `crate::sampling::stress_relief`).
//!
//! The decision goes into the decision caches like any other, marked [`RELIEF`], so the trace's
//! later spans follow it — forwarded at once when kept, dropped when not — and are counted as
//! stress relief's, not as late spans. While stress relief is off nothing here runs: a new trace
//! meets one `Option` test on its way into the buffer.

use std::time::Instant;

use tailgate_wire::Item;

use super::cache::RELIEF;
use super::insert::GroupHeader;
use super::{Inserted, TraceBuffer};
use crate::sampling::stress_relief::ArrivalSampling;

impl TraceBuffer {
    /// From now on, decides new traces at arrival with `sampling`; with `None`, buffers them
    /// again. Traces already buffered are not touched either way.
    pub fn set_stress_relief(&mut self, sampling: Option<ArrivalSampling>) {
        self.relief = sampling;
    }

    /// How new traces are decided at arrival, while stress relief is on.
    pub fn stress_relief(&self) -> Option<ArrivalSampling> {
        self.relief
    }

    /// Decides the trace `id`, neither buffered nor decided, with `sampling` on the arrival of
    /// its first span, `item` at `now`: remembers the decision (with the threshold its kept
    /// spans carry, under the tracestate gate), sets the span aside to be framed when kept, and
    /// counts the trace and the span in `done`.
    ///
    /// Not inlined: it runs once a trace and only in stress relief, and kept out of line it
    /// leaves the insert loop, which every span runs, as it was.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decide_at_arrival(
        &mut self,
        item: Item<'_>,
        base: usize,
        header: &mut GroupHeader<'_>,
        id: u128,
        sampling: ArrivalSampling,
        now: Instant,
        done: &mut Inserted,
    ) {
        done.new_traces += 1;
        let at = self.second_of(now) | RELIEF;
        // The id's bytes as they came: the buffer keys traces by `u128::from_le_bytes`.
        if sampling.keeps(id.to_le_bytes()) {
            let threshold = sampling.tracestate_threshold();
            self.decisions.insert_sampled(id, at, threshold);
            if !self.late_span(item, base, header, threshold) {
                done.unparseable_tracestates += 1;
            }
            done.relief_traces_sampled += 1;
            done.relief_sampled += 1;
        } else {
            self.decisions.insert_not_sampled(id, at);
            done.relief_traces_not_sampled += 1;
            done.relief_not_sampled += 1;
        }
    }
}
