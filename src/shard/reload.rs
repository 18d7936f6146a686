//! Live reload, the shards' side: a mailbox per shard that the main thread fills with the new
//! plan and metric cells, and a task on each shard that builds the new stages there and swaps
//! them in ([`super::dispatch::Pipelines::replace`]).
//!
//! The main thread is not on any executor, so it cannot use glommio's channels; like the
//! shutdown ([`crate::lifecycle`]), a reload is a flag per shard with its message in a slot
//! beside it, and a bell ([`crate::bell`]) the main thread rings after posting, which wakes the
//! shard's reload task. Each shard answers on a channel the main thread waits on. Shards switch
//! one after the other, each as soon as it gets to its message; a trace's spans all meet one
//! shard, so a trace is never decided half by the old policies and half by the new.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use tailgate_shards::sync::Stop;

use crate::bell::Bell;
use crate::memory::ShardMemory;
use crate::plan::Plan;

use super::dispatch::{Pipelines, RETIRING_MAX};
use super::run::build_stages;
use super::ShardTelemetry;

/// What one shard switches to.
pub(crate) struct ShardReload {
    /// The new plan (the same for every shard).
    pub(crate) plan: Plan,
    /// This shard's cells in the new registry (the old cells, for series that stay).
    pub(crate) telemetry: ShardTelemetry,
    /// The exporter names the cells are registered under, in their order.
    pub(crate) exporter_names: Arc<Vec<String>>,
}

/// A shard's answer: switched, or why it kept the running configuration.
pub(crate) type ShardAnswer = (usize, Result<(), String>);

/// The node's reload mailboxes, one per shard.
pub(crate) struct Reloads {
    slots: Vec<Mutex<Option<ShardReload>>>,
    pending: Vec<AtomicBool>,
    bells: Vec<Bell>,
    answers: Mutex<Sender<ShardAnswer>>,
}

impl Reloads {
    /// Mailboxes for `shards` shards, answering on `answers`.
    pub(crate) fn new(shards: usize, answers: Sender<ShardAnswer>) -> std::io::Result<Reloads> {
        Ok(Reloads {
            slots: (0..shards).map(|_| Mutex::new(None)).collect(),
            pending: (0..shards).map(|_| AtomicBool::new(false)).collect(),
            bells: Bell::per_shard(shards)?,
            answers: Mutex::new(answers),
        })
    }

    /// Gives shard `shard` its reload; it answers once it switched (or could not).
    pub(crate) fn post(&self, shard: usize, reload: ShardReload) {
        *self.slots[shard].lock().expect("reload slot") = Some(reload);
        self.pending[shard].store(true, Ordering::Release);
        self.bells[shard].ring();
    }

    fn take(&self, shard: usize) -> Option<ShardReload> {
        if !self.pending[shard].swap(false, Ordering::Acquire) {
            return None;
        }
        self.slots[shard].lock().expect("reload slot").take()
    }

    fn answer(&self, answer: ShardAnswer) {
        // The main thread may have given up waiting (it says so); a late answer is moot.
        let _ = self.answers.lock().expect("answers").send(answer);
    }
}

/// Shard `id`'s reload task: until `stop`, switches `pipelines` to each reload posted for it.
pub(super) async fn serve(
    id: usize,
    reloads: Arc<Reloads>,
    pipelines: Rc<Pipelines>,
    memory: Rc<ShardMemory>,
    stop: Rc<Stop>,
) {
    let mut bell = reloads.bells[id]
        .take_ear()
        .expect("each shard's one reload task takes its bell");
    while !stop.is_triggered() {
        if let Some(reload) = reloads.take(id) {
            let draining = pipelines.retiring();
            if draining >= RETIRING_MAX {
                reloads.answer((
                    id,
                    Err(format!(
                        "{draining} earlier reloads' exporters are still sending what they \
                         hold (at most {RETIRING_MAX} at once); reload again once they have"
                    )),
                ));
                continue;
            }
            let (stages, errors) = build_stages(
                id,
                &reload.plan,
                &reload.telemetry,
                &reload.exporter_names,
                &memory,
                Some(&pipelines.current()),
            );
            let answer = if errors.is_empty() {
                pipelines.replace(stages);
                Ok(())
            } else {
                Err(errors.join("; "))
            };
            reloads.answer((id, answer));
        }
        futures_lite::future::or(bell.heard(), stop.wait()).await;
    }
}
