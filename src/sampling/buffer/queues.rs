//! The decision queues: buffered traces in first-arrival order, and those whose root span
//! arrived in root-arrival order. Every trace waits the same `decision_wait`, so the first queue
//! is deadline order and finding what is due is O(1) a trace, with no scan or timer per trace;
//! the second holds the sooner deadlines of `decision_wait_after_root_received`. An entry
//! decided through one queue is skipped in the other, recognised by its generation.

use std::collections::VecDeque;
use std::time::Instant;

use crate::telemetry::EarlyReason;

use super::slots::TraceEntry;
use super::BufferLimits;

/// Why a trace is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// Its wait ended.
    Wait,
    /// It is decided before its wait ended.
    Early(EarlyReason),
}

/// The two queues of buffered traces, as (entry, generation).
#[derive(Debug, Default)]
pub(super) struct Queues {
    /// Buffered traces by first arrival.
    order: VecDeque<(u32, u32)>,
    /// Traces whose root arrived, by root arrival, with their deadline.
    roots: VecDeque<(u32, u32, Instant)>,
    /// Traces past the oversized bound, due at once.
    oversized: VecDeque<(u32, u32)>,
}

impl Queues {
    /// Queues a new trace, by its first arrival.
    pub(super) fn arrived(&mut self, entry: u32, generation: u32) {
        self.order.push_back((entry, generation));
    }

    /// Queues a trace whose root arrived, due at `due`.
    pub(super) fn root_arrived(&mut self, entry: u32, generation: u32, due: Instant) {
        self.roots.push_back((entry, generation, due));
    }

    /// Queues a trace that passed the oversized bound, to be decided at once.
    pub(super) fn oversized(&mut self, entry: u32, generation: u32) {
        self.oversized.push_back((entry, generation));
    }

    /// Forgets every queued trace.
    pub(super) fn clear(&mut self) {
        self.order.clear();
        self.roots.clear();
        self.oversized.clear();
    }

    /// When the next trace is due, if any is queued.
    pub(super) fn next_due(
        &mut self,
        entries: &[TraceEntry],
        limits: &BufferLimits,
    ) -> Option<Instant> {
        self.skip_stale(entries);
        if let Some(&(e, _)) = self.oversized.front() {
            // Due already: its first arrival is in the past.
            return Some(entries[e as usize].first);
        }
        let by_wait = self
            .order
            .front()
            .map(|&(e, _)| entries[e as usize].first + limits.decision_wait);
        let by_root = self.roots.front().map(|&(_, _, due)| due);
        match (by_wait, by_root) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Drops queue heads whose trace was already decided through the other queue.
    pub(super) fn skip_stale(&mut self, entries: &[TraceEntry]) {
        let live = |e: u32, g: u32| {
            let t = &entries[e as usize];
            t.live && t.generation == g
        };
        while let Some(&(e, g)) = self.order.front() {
            if live(e, g) {
                break;
            }
            self.order.pop_front();
        }
        while let Some(&(e, g, _)) = self.roots.front() {
            if live(e, g) {
                break;
            }
            self.roots.pop_front();
        }
        while let Some(&(e, g)) = self.oversized.front() {
            if live(e, g) {
                break;
            }
            self.oversized.pop_front();
        }
    }

    /// The next trace to decide at `now`, and why, given the traces and bytes still held; the
    /// queues' heads must be live (see [`Queues::skip_stale`]). `shutdown` makes every trace
    /// due.
    pub(super) fn next(
        &mut self,
        entries: &[TraceEntry],
        limits: &BufferLimits,
        (traces, bytes): (usize, u64),
        now: Instant,
        shutdown: bool,
    ) -> Option<(u32, Due)> {
        if let Some((e, _)) = self.oversized.pop_front() {
            return Some((e, Due::Early(EarlyReason::TraceSize)));
        }
        if let Some(&(e, _, due)) = self.roots.front() {
            if due <= now {
                self.roots.pop_front();
                return Some((e, Due::Wait));
            }
        }
        let &(e, _) = self.order.front()?;
        let due = if entries[e as usize].first + limits.decision_wait <= now {
            Due::Wait
        } else if shutdown {
            Due::Early(EarlyReason::Shutdown)
        } else if limits.evict_at_num_traces && traces > limits.num_traces {
            Due::Early(EarlyReason::NumTraces)
        } else if bytes > limits.soft_bytes {
            Due::Early(EarlyReason::Memory)
        } else {
            return None;
        };
        self.order.pop_front();
        Some((e, due))
    }
}
