//! A shard-local stop signal: many tasks wait on it, one call releases them all.

use std::cell::Cell;

use glommio::sync::Semaphore;

/// Released once, when the shard starts draining; every waiter wakes.
pub struct Stop {
    // A semaphore that is never given permits: waiting is acquiring, and closing it wakes every
    // waiter with an error, which is the signal.
    gate: Semaphore,
    triggered: Cell<bool>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            gate: Semaphore::new(0),
            triggered: Cell::new(false),
        }
    }
}

impl Stop {
    /// Resolves once [`Stop::trigger`] has been called (at once if it already was).
    pub async fn wait(&self) {
        if !self.triggered.get() {
            let _ = self.gate.acquire(1).await;
        }
    }

    pub fn trigger(&self) {
        self.triggered.set(true);
        self.gate.close();
    }

    pub fn is_triggered(&self) -> bool {
        self.triggered.get()
    }
}
