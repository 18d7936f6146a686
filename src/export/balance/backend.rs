//! One backend of a load balancer: its exporter, whether it is in service, and the observer
//! that tells the balancer's metrics and the balancer itself how its attempts go.
//!
//! # Taking a failing backend out
//!
//! A backend whose attempts fail [`FAILURES_TO_TAKE_OUT`] times in a row with errors worth
//! retrying (unreachable, timing out, `UNAVAILABLE`, ...) is taken out for a cool-down:
//! [`COOLDOWN_MIN`] the first time, doubled each time it is taken out again without an answered
//! attempt in between, up to [`COOLDOWN_MAX`]. While it is out the ring routes its keys to the
//! next backends clockwise, and its exporter is diverted: what it holds is routed again to them.
//! When the cool-down ends it is back in the ring on trial: an answered attempt restores it (and
//! the cool-down to its minimum), failures take it out again. An answer that refuses data for
//! good (`INVALID_ARGUMENT`, say) is the data's fault, not the backend's, and does not count.

use std::cell::Cell;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use tailgate_wire::Signal;

use super::Shared;
use crate::export::{ExportObserver, Exporter, SendError};

/// Failed attempts in a row that take a backend out.
pub(super) const FAILURES_TO_TAKE_OUT: u32 = 3;
/// The first cool-down of a backend taken out.
pub(super) const COOLDOWN_MIN: Duration = Duration::from_secs(5);
/// The longest cool-down.
pub(super) const COOLDOWN_MAX: Duration = Duration::from_secs(60);

/// A backend in a balancer's current set.
pub(super) struct Backend {
    /// `host:port`, as resolved; also the `endpoint` metric label.
    pub(super) endpoint: String,
    pub(super) exporter: Exporter,
    pub(super) health: Rc<Health>,
}

/// Whether a backend is in service; see the module documentation.
#[derive(Debug)]
pub(super) struct Health {
    failures: Cell<u32>,
    out_until: Cell<Option<Instant>>,
    cooldown: Cell<Duration>,
    /// Batches in the backend's sending queue, as last told.
    pub(super) queued: Cell<usize>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            failures: Cell::new(0),
            out_until: Cell::new(None),
            cooldown: Cell::new(COOLDOWN_MIN),
            queued: Cell::new(0),
        }
    }
}

impl Health {
    /// Whether the ring may route to the backend at `now`.
    pub(super) fn usable(&self, now: Instant) -> bool {
        self.out_until.get().is_none_or(|until| now >= until)
    }

    /// An attempt failed with an error worth retrying; whether that took the backend out.
    pub(super) fn failed(&self, now: Instant) -> bool {
        let failures = self.failures.get().saturating_add(1);
        self.failures.set(failures);
        if failures < FAILURES_TO_TAKE_OUT || !self.usable(now) {
            return false;
        }
        let cooldown = self.cooldown.get();
        self.out_until.set(Some(now + cooldown));
        self.cooldown.set((cooldown * 2).min(COOLDOWN_MAX));
        self.failures.set(0);
        true
    }

    /// An attempt was answered: the backend is in service.
    pub(super) fn answered(&self) {
        self.failures.set(0);
        self.out_until.set(None);
        self.cooldown.set(COOLDOWN_MIN);
    }
}

/// A backend exporter's observer: reports to the balancer's own observer (so the exporter's
/// `otelcol_exporter_*` counts are the balancer's, under its name) and feeds the backend's
/// health and the `otelcol_loadbalancer_backend_*` metrics.
pub(super) struct BackendObserver {
    pub(super) endpoint: String,
    pub(super) parent: Rc<dyn ExportObserver>,
    pub(super) health: Rc<Health>,
    pub(super) balancer: Weak<Shared>,
}

impl ExportObserver for BackendObserver {
    fn sent(&self, signal: Signal, items: u64) {
        self.parent.sent(signal, items);
    }

    fn send_failed(&self, signal: Signal, items: u64, reason: &'static str) {
        self.parent.send_failed(signal, items, reason);
    }

    fn queue_len(&self, len: usize) {
        let before = self.health.queued.replace(len);
        if let Some(balancer) = self.balancer.upgrade() {
            balancer.queued_changed(before, len);
        }
    }

    fn holding(&self, delta: i64) {
        self.parent.holding(delta);
    }

    fn attempt_failed(&self, err: &SendError, queued: usize) {
        self.parent.attempt_failed(err, queued);
        if err.is_retryable() && self.health.failed(Instant::now()) {
            tracing::warn!(
                backend = %self.endpoint,
                error = %err,
                "load balancer backend failing; taken out of the ring, its data goes to the \
                 next backends"
            );
            if let Some(balancer) = self.balancer.upgrade() {
                balancer.taken_out();
            }
        }
    }

    fn attempt_answered(&self) {
        self.parent.attempt_answered();
        if !self.health.usable(Instant::now()) {
            tracing::info!(backend = %self.endpoint, "load balancer backend answers again");
        }
        self.health.answered();
    }

    fn attempt_took(&self, elapsed: Duration, answered: bool) {
        self.parent
            .backend_attempt(&self.endpoint, answered, elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_failures_in_a_row_take_a_backend_out_for_a_growing_cooldown() {
        let health = Health::default();
        let t0 = Instant::now();
        assert!(!health.failed(t0));
        health.answered();
        assert!(
            !health.failed(t0) && !health.failed(t0),
            "the answer reset the count"
        );
        assert!(health.failed(t0), "the third in a row");
        assert!(!health.usable(t0));
        assert!(!health.usable(t0 + COOLDOWN_MIN - Duration::from_millis(1)));
        let back = t0 + COOLDOWN_MIN;
        assert!(health.usable(back), "on trial after the cool-down");
        assert!(!health.failed(back) && !health.failed(back));
        assert!(health.failed(back), "out again");
        assert!(!health.usable(back + COOLDOWN_MIN), "for twice as long");
        assert!(health.usable(back + COOLDOWN_MIN * 2));
        health.answered();
        assert!(health.usable(back));
        for _ in 0..40 {
            health.failed(Instant::now() + COOLDOWN_MAX * 100);
        }
        assert!(health.cooldown.get() <= COOLDOWN_MAX, "bounded");
    }
}
