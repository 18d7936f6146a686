//! The sending queue: a bounded FIFO between `submit` and the exporter's consumer tasks.
//!
//! It is bounded in units of the exporter's `sizer` — batches, items or bytes — and each item
//! weighs what it measures in them (at most the whole capacity, so one batch larger than the
//! queue still goes through, alone). Two glommio semaphores count it: `free` holds a unit per
//! unit of room, `filled` one per queued item. A producer takes its item's weight of `free`
//! before it may push (so it waits, FIFO, while the item does not fit: the backpressure), a
//! consumer takes a `filled` unit before it may pop and gives the item's weight back to `free`.
//! Units are taken and the deque changed with no await in between, so at every await point
//! `filled == len` and `free == capacity - weight of what is queued`. glommio's semaphores are shard-local (`Rc`,
//! no atomics) and drop a cancelled waiter from their list, so a producer that gives up leaves
//! no trace.
//!
//! Closing closes both semaphores: waiting producers wake with their item handed back, and
//! consumers keep popping what is left without waiting, then see the end. That is how shutdown
//! drains.

use std::cell::RefCell;
use std::collections::VecDeque;

use glommio::sync::Semaphore;

#[derive(Debug)]
pub(crate) struct SendingQueue<T> {
    /// Each item with the units it took from `free` (none for one pushed past the bound).
    items: RefCell<VecDeque<(T, u64)>>,
    free: Semaphore,
    filled: Semaphore,
    capacity: u64,
    closed: std::cell::Cell<bool>,
}

/// How many items to reserve room for up front: a queue bounded in bytes or items may hold many
/// more, and grows to them as needed.
const PREALLOCATED_MAX: usize = 1024;

impl<T> SendingQueue<T> {
    /// A queue of `capacity` units.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a sending queue needs room for one item");
        SendingQueue {
            items: RefCell::new(VecDeque::with_capacity(capacity.min(PREALLOCATED_MAX))),
            free: Semaphore::new(capacity as u64),
            filled: Semaphore::new(0),
            capacity: capacity as u64,
            closed: std::cell::Cell::new(false),
        }
    }

    /// Appends `item`, of `weight` units, waiting until it fits; hands it back if the queue is
    /// closed. An item heavier than the whole queue weighs the whole queue.
    pub async fn push(&self, item: T, weight: usize) -> Result<(), T> {
        let units = (weight as u64).clamp(1, self.capacity);
        if self.free.acquire(units).await.is_err() {
            return Err(item);
        }
        self.items.borrow_mut().push_back((item, units));
        self.filled.signal(1);
        Ok(())
    }

    /// Appends `item`, of `weight` units, if it fits now; hands it back if it does not, or if
    /// the queue is closed.
    pub fn try_push(&self, item: T, weight: usize) -> Result<(), T> {
        let units = (weight as u64).clamp(1, self.capacity);
        if !self.free.try_acquire(units).unwrap_or(false) {
            return Err(item);
        }
        self.items.borrow_mut().push_back((item, units));
        self.filled.signal(1);
        Ok(())
    }

    /// Takes room for `weight` units, waiting until it is there (`wait`) or not at all; the
    /// units for [`SendingQueue::push_reserved`] or [`SendingQueue::unreserve`]. `None` if the
    /// room is not there now (without `wait`) or the queue is closed. For producers that must
    /// do something slow between taking room and queueing (the persistent queue's write).
    pub async fn reserve(&self, weight: usize, wait: bool) -> Option<u64> {
        let units = (weight as u64).clamp(1, self.capacity);
        let taken = if wait {
            self.free.acquire(units).await.is_ok()
        } else {
            self.free.try_acquire(units).unwrap_or(false)
        };
        taken.then_some(units)
    }

    /// Appends `item` into room taken by [`SendingQueue::reserve`].
    pub fn push_reserved(&self, item: T, units: u64) {
        self.items.borrow_mut().push_back((item, units));
        self.filled.signal(1);
    }

    /// Gives back room taken by [`SendingQueue::reserve`] and not used.
    pub fn unreserve(&self, units: u64) {
        self.free.signal(units);
    }

    /// Appends `item`, of `weight` units, taking what room there is and never waiting: for a
    /// backlog read back at start, which is sent whatever the bound says now.
    pub fn push_recovered(&self, item: T, weight: usize) {
        let units = (weight as u64).min(self.free.available());
        if units > 0 {
            let _ = self.free.try_acquire(units);
        }
        self.push_reserved(item, units);
    }

    /// The oldest item if there is one, without waiting: what a queue that drops its oldest
    /// on overflow gives up.
    pub fn pop_now(&self) -> Option<T> {
        if !self.filled.try_acquire(1).unwrap_or(false) {
            return None;
        }
        let (item, units) = self.items.borrow_mut().pop_front()?;
        self.free.signal(units);
        Some(item)
    }

    /// Appends `item` without waiting for room, past the bound: only for the batcher's final
    /// flush at shutdown, which is at most one batch per signal per pipeline.
    pub fn push_unbounded(&self, item: T) {
        self.items.borrow_mut().push_back((item, 0));
        self.filled.signal(1);
    }

    /// The oldest item, waiting while the queue is empty and open; `None` once it is closed
    /// and empty.
    pub async fn pop(&self) -> Option<T> {
        let popped = match self.filled.acquire(1).await {
            Ok(()) => {
                let popped = self.items.borrow_mut().pop_front();
                debug_assert!(popped.is_some(), "a filled unit stands for a queued item");
                popped
            }
            // Closed: no producer can add anything, so what is left is drained as it is.
            Err(_) => self.items.borrow_mut().pop_front(),
        };
        popped.map(|(item, units)| {
            self.free.signal(units);
            item
        })
    }

    /// Units taken by what is queued now (batches, items or bytes, as the queue counts): the
    /// room the free semaphore lacks.
    pub fn used(&self) -> usize {
        (self.capacity - self.free.available()) as usize
    }

    /// Refuses producers from now on (waiting ones get their items back) and lets consumers
    /// drain without waiting.
    pub fn close(&self) {
        self.closed.set(true);
        self.free.close();
        self.filled.close();
    }

    /// Takes everything still queued.
    pub fn drain(&self) -> Vec<T> {
        let drained: Vec<(T, u64)> = self.items.borrow_mut().drain(..).collect();
        self.free
            .signal(drained.iter().map(|(_, units)| units).sum());
        drained.into_iter().map(|(item, _)| item).collect()
    }

    pub fn len(&self) -> usize {
        self.items.borrow().len()
    }

    /// Whether [`SendingQueue::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::time::Duration;

    use futures_lite::future;
    use glommio::LocalExecutor;

    #[test]
    fn full_queue_makes_producers_wait_in_order() {
        LocalExecutor::default().run(async {
            let q = Rc::new(SendingQueue::new(2));
            q.push(1, 1).await.unwrap();
            q.push(2, 1).await.unwrap();
            let waiting = {
                let q = q.clone();
                glommio::spawn_local(async move { q.push(3, 1).await })
            };
            glommio::timer::sleep(Duration::from_millis(5)).await;
            assert_eq!(q.len(), 2, "the third push waits");
            assert_eq!(q.pop().await, Some(1));
            waiting.await.unwrap();
            assert_eq!(q.pop().await, Some(2));
            assert_eq!(q.pop().await, Some(3));
        });
    }

    #[test]
    fn close_hands_back_waiting_items_and_drains() {
        LocalExecutor::default().run(async {
            let q = Rc::new(SendingQueue::new(1));
            q.push(1, 1).await.unwrap();
            let waiting = {
                let q = q.clone();
                glommio::spawn_local(async move { q.push(2, 1).await })
            };
            glommio::timer::sleep(Duration::from_millis(5)).await;
            q.close();
            assert_eq!(waiting.await, Err(2));
            assert_eq!(q.push(3, 1).await, Err(3));
            assert_eq!(q.pop().await, Some(1));
            assert_eq!(q.pop().await, None);
        });
    }

    #[test]
    fn items_weigh_what_they_measure_and_a_huge_one_passes_alone() {
        LocalExecutor::default().run(async {
            let q = Rc::new(SendingQueue::new(100));
            q.push("a", 60).await.unwrap();
            assert_eq!(q.used(), 60);
            let waiting = {
                let q = q.clone();
                glommio::spawn_local(async move { q.push("b", 50).await })
            };
            glommio::timer::sleep(Duration::from_millis(5)).await;
            assert_eq!(q.len(), 1, "50 more does not fit in the 40 left");
            assert_eq!(q.pop().await, Some("a"));
            waiting.await.unwrap();
            assert_eq!(q.used(), 50);
            assert_eq!(q.pop().await, Some("b"));
            // Heavier than the queue: it takes the whole queue, once empty.
            q.push("huge", 1_000).await.unwrap();
            assert_eq!(q.used(), 100);
            assert_eq!(q.pop().await, Some("huge"));
            assert_eq!(q.used(), 0);
        });
    }

    #[test]
    fn a_cancelled_producer_leaves_no_trace() {
        LocalExecutor::default().run(async {
            let q = SendingQueue::new(1);
            q.push(1, 1).await.unwrap();
            let gave_up = future::or(
                async {
                    q.push(2, 1).await.unwrap();
                    false
                },
                async {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                    true
                },
            )
            .await;
            assert!(gave_up);
            assert_eq!(q.pop().await, Some(1));
            q.push(3, 1).await.unwrap();
            assert_eq!(q.drain(), vec![3]);
        });
    }
}
