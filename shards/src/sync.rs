//! Signals between the tasks of one shard: [`Stop`] (one trigger, every waiter wakes) and
//! [`Wakeup`] (many notifications, one waiter wakes).
//!
//! # The model
//!
//! A shard is a single-threaded glommio executor, so these are built on `Cell`s and an
//! executor-local semaphore: no atomics, no locks, and neither type is `Send` — a value lives on
//! the shard that made it and is shared between that shard's tasks by reference or `Rc`. What
//! must cross threads (a signal handler's flag, another shard's state) does not travel through
//! these; a task of the shard looks at it and triggers or notifies here.
//!
//! Who wakes whom:
//!
//! - [`Stop`]: the shard's signal watcher triggers the shard's stop once, when draining starts;
//!   every task waiting on it (each acceptor, each connection) wakes, and a later wait returns at
//!   once. A component may hold a stop of its own for its background task (the sampler's
//!   decision task looks at one between rounds).
//! - [`Wakeup`]: the tasks that make work (pushes into a pipeline, the sampler taking spans)
//!   notify the one task that does it (the pipeline's flush timer, the decision task). A
//!   notification given while that task is busy is kept for its next wait, so none is lost;
//!   notifications given meanwhile merge into one.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

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

    /// Releases every waiter, now and later.
    pub fn trigger(&self) {
        self.triggered.set(true);
        self.gate.close();
    }

    /// Whether [`Stop::trigger`] has been called.
    pub fn is_triggered(&self) -> bool {
        self.triggered.get()
    }
}

/// Wakes one waiting task; a notification given while it is not waiting is kept for its next
/// wait, so none is lost.
#[derive(Default)]
pub struct Wakeup {
    pending: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Wakeup {
    /// Wakes the waiting task, or lets its next [`Wakeup::wait`] return at once.
    pub fn notify(&self) {
        self.pending.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Resolves at the first notification since the last wait returned.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.pending.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Context;

    fn ready(future: std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
        future
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    }

    #[test]
    fn stop_releases_waiters_now_and_later() {
        let stop = Stop::default();
        let mut early = pin!(stop.wait());
        assert!(!ready(early.as_mut()));
        stop.trigger();
        assert!(stop.is_triggered());
        assert!(ready(early.as_mut()));
        assert!(ready(pin!(stop.wait())));
    }

    #[test]
    fn a_notification_is_kept_for_the_next_wait_and_merges_with_others() {
        let wakeup = Wakeup::default();
        wakeup.notify();
        wakeup.notify();
        assert!(ready(pin!(wakeup.wait())));
        let mut next = pin!(wakeup.wait());
        assert!(!ready(next.as_mut()));
        wakeup.notify();
        assert!(ready(next.as_mut()));
    }
}
