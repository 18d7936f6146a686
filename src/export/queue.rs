//! The sending queue: a bounded FIFO between `submit` and the exporter's consumer tasks.
//!
//! Two glommio semaphores count it: `free` holds a unit per empty slot, `filled` a unit per
//! queued item. A producer takes a `free` unit before it may push (so it waits, FIFO, while the
//! queue is full: the backpressure), a consumer takes a `filled` unit before it may pop. Units
//! are taken and the deque changed with no await in between, so at every await point
//! `filled == len` and `free == capacity - len`. glommio's semaphores are shard-local (`Rc`,
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
    items: RefCell<VecDeque<T>>,
    free: Semaphore,
    filled: Semaphore,
}

impl<T> SendingQueue<T> {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a sending queue needs room for one item");
        SendingQueue {
            items: RefCell::new(VecDeque::with_capacity(capacity)),
            free: Semaphore::new(capacity as u64),
            filled: Semaphore::new(0),
        }
    }

    /// Appends `item`, waiting while the queue is full; hands it back if the queue is closed.
    pub async fn push(&self, item: T) -> Result<(), T> {
        if self.free.acquire(1).await.is_err() {
            return Err(item);
        }
        self.items.borrow_mut().push_back(item);
        self.filled.signal(1);
        Ok(())
    }

    /// Appends `item` without waiting for room, past the bound: only for the batcher's final
    /// flush at shutdown, which is at most one batch per signal per pipeline.
    pub fn push_unbounded(&self, item: T) {
        self.items.borrow_mut().push_back(item);
        self.filled.signal(1);
    }

    /// The oldest item, waiting while the queue is empty and open; `None` once it is closed
    /// and empty.
    pub async fn pop(&self) -> Option<T> {
        match self.filled.acquire(1).await {
            Ok(()) => {
                let item = self.items.borrow_mut().pop_front();
                debug_assert!(item.is_some(), "a filled unit stands for a queued item");
                self.free.signal(1);
                item
            }
            // Closed: no producer can add anything, so what is left is drained as it is.
            Err(_) => self.items.borrow_mut().pop_front(),
        }
    }

    /// Refuses producers from now on (waiting ones get their items back) and lets consumers
    /// drain without waiting.
    pub fn close(&self) {
        self.free.close();
        self.filled.close();
    }

    /// Takes everything still queued.
    pub fn drain(&self) -> Vec<T> {
        self.items.borrow_mut().drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.items.borrow().len()
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
            q.push(1).await.unwrap();
            q.push(2).await.unwrap();
            let waiting = {
                let q = q.clone();
                glommio::spawn_local(async move { q.push(3).await })
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
            q.push(1).await.unwrap();
            let waiting = {
                let q = q.clone();
                glommio::spawn_local(async move { q.push(2).await })
            };
            glommio::timer::sleep(Duration::from_millis(5)).await;
            q.close();
            assert_eq!(waiting.await, Err(2));
            assert_eq!(q.push(3).await, Err(3));
            assert_eq!(q.pop().await, Some(1));
            assert_eq!(q.pop().await, None);
        });
    }

    #[test]
    fn a_cancelled_producer_leaves_no_trace() {
        LocalExecutor::default().run(async {
            let q = SendingQueue::new(1);
            q.push(1).await.unwrap();
            let gave_up = future::or(
                async {
                    q.push(2).await.unwrap();
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
            q.push(3).await.unwrap();
            assert_eq!(q.drain(), vec![3]);
        });
    }
}
