//! The `failover` connector on one shard: everything to the highest priority level that works,
//! down a level when it fails, back up when it works again.
//!
//! # Model
//!
//! The connector sends each batch to every pipeline of its *current* level. It learns whether
//! a level works from the send results of that level's exporters: each of them reports to the
//! connector (as its [`Fallback`]) every batch it delivered and every batch it gave up on (out
//! of retries, a permanent error, or no room in a queue that drops) — a batch it gave up on is
//! not dropped but handed back, so accepted data is not lost while the connector switches. The
//! states and moves are the Collector's (`failoverconnector`'s pipeline selector):
//!
//! - A failure at the *stable* level moves stable and current one level down (past levels that
//!   used up `max_retries`), counts `otelcol_connector_failover_count{level}`, logs the change
//!   once, and starts the retry timer.
//! - Every `retry_interval`, the connector tries the higher levels again, one every
//!   `retry_gap`: it makes that level current, for the data that comes. A delivery there makes
//!   it the stable level (logged); a failure there counts a retry of that level and returns to
//!   the stable one. A level that failed `max_retries` tries is not tried again (0: no limit).
//! - Before it tries a level, it asks the `grpc.health.v1` service of the level's `otlp`
//!   exporters' upstreams: a level one of whose centrals does not answer `SERVING` (or does not
//!   answer) is not tried this round, and that counts as a failed retry. Where no upstream has
//!   the service (or the exporters are not `otlp`), the data itself is the test.
//! - A batch a level gave up on goes to the current level if that is lower, otherwise to the
//!   next level down; never back to the level that failed it. Past the last level it is
//!   dropped and counted (`failover_exhausted`).
//!
//! Unlike the Collector, the stable level never moves past the last one: the last level keeps
//! getting data (and its exporters keep retrying) rather than everything being refused until
//! a retry succeeds.
//!
//! Only results from the current level move the state: a late result from a level the
//! connector already left says nothing about the level data goes to now. A level's health comes
//! from its pipelines' own exporters; a pipeline that only feeds other connectors reports none.
//!
//! # Who runs what
//!
//! One connector per shard, on its executor, with its own state: shards fail over each on
//! their own results (a central that is down fails every shard's sends, so they agree within a
//! batch each). Exporters hold the connector weakly; the retry timer is a task that holds it
//! weakly too and ends when it is gone or a newer failure started a newer timer. A batch handed
//! back travels to the lower level in a task of its own, so the exporter that gave up on it
//! goes on at once; such tasks are bounded by the batches the failed level held.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::time::Duration;

use tailgate_wire::Signal;

use crate::export::{Batch, Connect, Exporter, Fallback};
use crate::ingest::Delivery;
use crate::telemetry::{DropMetrics, DropReason, FailoverMetrics};

use super::dispatch::Stage;

/// `retry_interval`, `retry_gap` and `max_retries`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retry {
    pub(super) interval: Duration,
    pub(super) gap: Duration,
    /// 0: no limit.
    pub(super) max_retries: u32,
}

/// The connector's state on one shard (the Collector's pipeline selector).
#[derive(Debug)]
struct State {
    /// The level data goes to now.
    current: usize,
    /// The level known to work (or the last one).
    stable: usize,
    /// Failed retries of each level since it last worked.
    retries: Vec<u32>,
    /// Bumped by each failure that starts a retry timer; an older timer sees it and ends.
    timer: u64,
}

/// What a result at a level changed.
#[derive(Debug, PartialEq, Eq)]
enum Move {
    /// Nothing.
    None,
    /// The stable level failed: down from `from` to `to`; a new retry timer starts.
    Down { from: usize, to: usize },
    /// A retried level failed: back to the stable level `to`.
    Back { from: usize, to: usize },
    /// A retried level worked: it is the stable level now.
    Up { from: usize, to: usize },
}

impl State {
    fn new(levels: usize) -> State {
        State {
            current: 0,
            stable: 0,
            retries: vec![0; levels],
            timer: 0,
        }
    }

    fn exhausted(&self, level: usize, max_retries: u32) -> bool {
        max_retries > 0 && self.retries[level] >= max_retries
    }

    /// A level of this connector delivered.
    fn delivered(&mut self, level: usize) -> Move {
        if level != self.current || level == self.stable {
            return Move::None;
        }
        let from = self.stable;
        self.stable = level;
        self.retries[level] = 0;
        Move::Up { from, to: level }
    }

    /// A level of this connector gave up on a batch.
    fn failed(&mut self, level: usize, max_retries: u32) -> Move {
        let last = self.retries.len() - 1;
        if level != self.current {
            return Move::None;
        }
        if level != self.stable {
            self.retries[level] += 1;
            self.current = self.stable;
            return Move::Back {
                from: level,
                to: self.stable,
            };
        }
        if level == last {
            return Move::None;
        }
        let mut to = level + 1;
        while to < last && self.exhausted(to, max_retries) {
            to += 1;
        }
        self.stable = to;
        self.current = to;
        self.timer += 1;
        Move::Down { from: level, to }
    }

    /// Whether some level above the stable one may still be retried.
    fn worth_retrying(&self, max_retries: u32) -> bool {
        (0..self.stable).any(|level| !self.exhausted(level, max_retries))
    }
}

/// A failover connector on one shard.
pub(super) struct Failover {
    name: String,
    signal: Signal,
    levels: Vec<Vec<Rc<Stage>>>,
    /// Each level's pipelines, for the log.
    names: Vec<String>,
    retry: Retry,
    state: RefCell<State>,
    metrics: Option<FailoverMetrics>,
    drops: DropMetrics,
    me: Weak<Failover>,
}

impl Failover {
    /// The connector `name` over `levels` (highest priority first; at least one; `names`
    /// lists each level's pipelines), and each level's exporters told to report to it.
    pub(super) fn new(
        name: String,
        signal: Signal,
        levels: Vec<Vec<Rc<Stage>>>,
        names: Vec<String>,
        retry: Retry,
        metrics: Option<FailoverMetrics>,
        drops: DropMetrics,
    ) -> Rc<Failover> {
        assert!(!levels.is_empty(), "the configuration requires a level");
        let failover = Rc::new_cyclic(|me| Failover {
            name,
            signal,
            state: RefCell::new(State::new(levels.len())),
            levels,
            names,
            retry,
            metrics,
            drops,
            me: me.clone(),
        });
        let fallback: Weak<dyn Fallback> = failover.me.clone();
        for (level, stages) in failover.levels.iter().enumerate() {
            for exporter in stages.iter().flat_map(|stage| stage.exporters()) {
                exporter.set_fallback(fallback.clone(), level);
            }
        }
        if let Some(metrics) = &failover.metrics {
            metrics.level.set(0);
        }
        failover
    }

    /// Sends `delivery` to every pipeline of `level`.
    async fn send(&self, level: usize, delivery: &Delivery) {
        for stage in &self.levels[level] {
            stage.deliver(delivery, &self.drops).await;
        }
    }

    /// Logs and counts what a result changed.
    fn apply(&self, change: Move) {
        let level = |l: usize| &self.names[l];
        match change {
            Move::None => return,
            Move::Down { from, to } => {
                tracing::warn!(
                    connector = %self.name,
                    "failover: priority level {from} ({}) failed; sending to level {to} ({}) \
                     and retrying level {from} every {:?}",
                    level(from),
                    level(to),
                    self.retry.interval
                );
                if let Some(metrics) = &self.metrics {
                    metrics.failed[from].inc();
                }
                self.start_retries();
            }
            Move::Back { from, to } => {
                tracing::info!(
                    connector = %self.name,
                    "failover: priority level {from} ({}) still fails; back to level {to} ({})",
                    level(from),
                    level(to)
                );
                if let Some(metrics) = &self.metrics {
                    metrics.failed[from].inc();
                }
            }
            Move::Up { from, to } => tracing::warn!(
                connector = %self.name,
                "failover: priority level {to} ({}) works again; sending there instead of \
                 level {from} ({})",
                level(to),
                level(from)
            ),
        }
        if let Some(metrics) = &self.metrics {
            metrics.level.set(self.state.borrow().current as i64);
        }
    }

    /// Spawns the retry timer of the failure just recorded.
    fn start_retries(&self) {
        let me = self.me.clone();
        let timer = self.state.borrow().timer;
        let retry = self.retry;
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(retry.interval).await;
                let mut level = 0;
                loop {
                    // The next level worth a try; the connector is not held while asleep.
                    {
                        let Some(failover) = me.upgrade() else { return };
                        let state = failover.state.borrow();
                        if state.timer != timer || !state.worth_retrying(retry.max_retries) {
                            return;
                        }
                        while level < state.stable && state.exhausted(level, retry.max_retries) {
                            level += 1;
                        }
                        if level >= state.stable {
                            break;
                        }
                    }
                    glommio::timer::sleep(retry.gap).await;
                    // Where the level's centrals serve grpc.health.v1, ask them first: no data
                    // is risked on one that says it does not serve.
                    let exporters: Vec<Rc<Exporter>> = match me.upgrade() {
                        Some(failover) => failover.levels[level]
                            .iter()
                            .flat_map(|stage| stage.exporters().iter().cloned())
                            .collect(),
                        None => return,
                    };
                    let mut serving = true;
                    for exporter in &exporters {
                        if exporter.upstream_serving().await == Some(false) {
                            serving = false;
                            break;
                        }
                    }
                    drop(exporters);
                    let Some(failover) = me.upgrade() else { return };
                    let mut state = failover.state.borrow_mut();
                    if state.timer != timer {
                        return;
                    }
                    if level >= state.stable {
                        break;
                    }
                    if !serving {
                        state.retries[level] += 1;
                        drop(state);
                        tracing::info!(
                            connector = %failover.name,
                            "failover: priority level {level} ({}) does not serve \
                             (grpc.health.v1); not trying it this round",
                            failover.names[level]
                        );
                        if let Some(metrics) = &failover.metrics {
                            metrics.failed[level].inc();
                        }
                        level += 1;
                        continue;
                    }
                    state.current = level;
                    drop(state);
                    tracing::info!(
                        connector = %failover.name,
                        "failover: trying priority level {level} ({}) again",
                        failover.names[level]
                    );
                    if let Some(metrics) = &failover.metrics {
                        metrics.level.set(level as i64);
                    }
                    level += 1;
                }
            }
        })
        .detach();
    }
}

impl Connect for Failover {
    fn consume<'a>(&'a self, batch: &'a Batch) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
        Box::pin(async move {
            let level = self.state.borrow().current;
            let delivery = Delivery {
                signal: self.signal,
                bytes: batch.bytes.clone(),
                items: batch.items,
                metadata: batch.metadata.clone(),
            };
            self.send(level, &delivery).await;
        })
    }
}

impl Fallback for Failover {
    fn delivered(&self, level: usize) {
        let change = self.state.borrow_mut().delivered(level);
        self.apply(change);
    }

    fn failed(&self, level: usize, batch: Batch, reason: &'static str) {
        let change = self
            .state
            .borrow_mut()
            .failed(level, self.retry.max_retries);
        self.apply(change);
        let next = self.state.borrow().current.max(level + 1);
        if next >= self.levels.len() {
            tracing::warn!(
                connector = %self.name,
                items = batch.items,
                reason,
                "failover: the last priority level failed a batch too; dropping it"
            );
            self.drops
                .add(self.signal, DropReason::FailoverExhausted, batch.items);
            return;
        }
        let Some(me) = self.me.upgrade() else {
            self.drops
                .add(self.signal, DropReason::FailoverExhausted, batch.items);
            return;
        };
        glommio::spawn_local(async move {
            let delivery = Delivery {
                signal: me.signal,
                bytes: batch.bytes,
                items: batch.items,
                metadata: batch.metadata,
            };
            me.send(next, &delivery).await;
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_stable_level_moves_down_past_exhausted_levels() {
        let mut state = State::new(4);
        state.retries[1] = 3;
        assert_eq!(state.failed(0, 3), Move::Down { from: 0, to: 2 });
        assert_eq!((state.current, state.stable, state.timer), (2, 2, 1));
        // Unlimited retries: the next level, whatever its count.
        let mut state = State::new(4);
        state.retries[1] = 3;
        assert_eq!(state.failed(0, 0), Move::Down { from: 0, to: 1 });
    }

    #[test]
    fn the_last_level_is_never_left() {
        let mut state = State::new(2);
        assert_eq!(state.failed(0, 10), Move::Down { from: 0, to: 1 });
        assert_eq!(state.failed(1, 10), Move::None);
        assert_eq!((state.current, state.stable), (1, 1));
    }

    #[test]
    fn a_retried_level_goes_back_on_failure_and_becomes_stable_on_delivery() {
        let mut state = State::new(3);
        state.failed(0, 10);
        state.failed(1, 10);
        assert_eq!((state.current, state.stable), (2, 2));
        state.current = 0;
        assert_eq!(state.failed(0, 10), Move::Back { from: 0, to: 2 });
        assert_eq!(state.retries[0], 1);
        assert_eq!(state.current, 2);
        state.current = 1;
        assert_eq!(state.delivered(1), Move::Up { from: 2, to: 1 });
        assert_eq!((state.current, state.stable, state.retries[1]), (1, 1, 0));
        assert!(state.worth_retrying(10));
        state.retries[0] = 10;
        assert!(!state.worth_retrying(10));
        assert!(state.worth_retrying(0));
    }

    #[test]
    fn results_from_a_level_data_no_longer_goes_to_change_nothing() {
        let mut state = State::new(3);
        state.failed(0, 10);
        // A batch queued at level 0 before the move is delivered, or fails, late.
        assert_eq!(state.delivered(0), Move::None);
        assert_eq!(state.failed(0, 10), Move::None);
        assert_eq!((state.current, state.stable), (1, 1));
        // Deliveries at the stable level change nothing either.
        assert_eq!(state.delivered(1), Move::None);
    }
}
