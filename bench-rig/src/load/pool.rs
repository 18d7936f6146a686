//! The pre-compressed request pool: a compressed load's requests, built before the clock starts,
//! so the timed run only sends bytes.
//!
//! Compressing at send time cost the load tens of microseconds a request per core and capped
//! what one thread could offer; real agents send compressed requests at whatever rate their
//! services make spans. So before the run, every load thread's [`TraceStream`] part is composed
//! in full, as it would be sent: its waves come due on a *virtual* clock that advances at the
//! thread's share of the offered rate (`--rate`, or `--pool-rate` at `max`), so the traces
//! arrive spread and interleaved as they do at send time, each trace with its own id, and the
//! oracle records each trace as it starts. After the pool's span target the stream starts no
//! new trace and its owed waves are composed as they come due, so the pool as a whole holds
//! every span of every trace it started. Each request keeps its waves ([`Part`]s) — to record a
//! refusal, and to finish, after the deadline, the traces whose later waves were not sent — and
//! the counts its stream had started by then, to truncate the oracle's record to what was sent.
//!
//! The calling thread composes; one thread per CPU (unpinned, whatever the load's own pinning)
//! compresses, each taking requests from a bounded queue ([`QUEUED_REQUESTS_MAX`]) with its own
//! compressor, so the build runs on every CPU. The pool's bound is its span target (`--pool-spans`
//! at most), about 60 bytes a span gzip-compressed for the semantic corpus and 350 for the
//! benchmark's random text, plus 16 bytes a wave for the parts.

use std::io;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::client::{ClientSettings, Encoder};
use crate::traces::{Composed, Next, Part, TraceStream};

/// Composed requests waiting for a compressor: bounds the uncompressed bytes held during the
/// build (about 200 KB a request of 500 semantic spans).
const QUEUED_REQUESTS_MAX: usize = 256;

/// One request of the pool.
pub(super) struct Pooled {
    /// The request in its wire form ([`Encoder::encode`]).
    pub wire: Bytes,
    pub spans: u32,
    /// The waves it holds.
    pub parts: Box<[Part]>,
    /// Traces and spans its stream had started once it was composed: what the oracle must
    /// expect when the run stops after this request.
    pub traces_started: u64,
    pub spans_started: u64,
}

/// One load thread's requests, in sending order.
pub(super) struct Pool {
    pub requests: Vec<Pooled>,
}

impl Pool {
    /// Wire bytes held.
    pub fn bytes(&self) -> usize {
        self.requests.iter().map(|r| r.wire.len()).sum()
    }

    /// Spans held.
    pub fn spans(&self) -> u64 {
        self.requests.iter().map(|r| u64::from(r.spans)).sum()
    }
}

/// What one thread's pool is made of: its stream part, how many spans it starts traces for,
/// and the rate its virtual clock advances at.
pub(super) struct PoolPlan<'a> {
    pub stream: &'a mut TraceStream,
    pub spans: u64,
    pub rate_spans_per_s: f64,
}

/// Builds one pool per plan (composing each stream in full, see the module doc) and encodes
/// every request as `settings` say, on every CPU.
pub(super) fn build(
    plans: Vec<PoolPlan<'_>>,
    settings: &ClientSettings,
    spans_per_request: usize,
) -> io::Result<Vec<Pool>> {
    // Every CPU online, not only those the load is pinned to.
    let workers = crate::sys::online_cpus();
    let (jobs, queue) = mpsc::sync_channel::<(usize, usize, Bytes)>(QUEUED_REQUESTS_MAX);
    let queue = Mutex::new(queue);
    // One message a request: bounded by the pool itself.
    let (done, results) = mpsc::channel::<(usize, usize, Result<Bytes, String>)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (queue, done) = (&queue, done.clone());
            let mut encoder = Encoder::new(settings).map_err(io::Error::other)?;
            scope.spawn(move || {
                // The load may be pinned to one CPU; the build is not part of what it measures.
                let _ = crate::sys::unpin_thread();
                loop {
                    let job = queue.lock().expect("no worker panics").recv();
                    let Ok((pool, index, framed)) = job else {
                        return;
                    };
                    let _ = done.send((pool, index, encoder.encode(&framed)));
                }
            });
        }
        drop(done);
        let mut pools = Vec::with_capacity(plans.len());
        for (pool, plan) in plans.into_iter().enumerate() {
            pools.push(compose(pool, plan, spans_per_request, &jobs)?);
        }
        drop(jobs);
        for (pool, index, wire) in results {
            pools[pool].requests[index].wire = wire.map_err(io::Error::other)?;
        }
        Ok(pools)
    })
}

/// Composes `plan`'s stream into pool number `pool`, each request sent to the compressors as
/// it is made; the pool's requests get their wire bytes when those come back.
fn compose(
    pool: usize,
    plan: PoolPlan<'_>,
    spans_per_request: usize,
    jobs: &mpsc::SyncSender<(usize, usize, Bytes)>,
) -> io::Result<Pool> {
    let stream = plan.stream;
    let t0 = Instant::now();
    let mut now = t0;
    let mut requests = Vec::new();
    loop {
        let start_new = stream.record.spans_sent < plan.spans;
        if start_new {
            let composed = stream.record.spans_sent as f64 / plan.rate_spans_per_s;
            now = now.max(t0 + Duration::from_secs_f64(composed));
        }
        let Composed {
            framed,
            spans,
            parts,
        } = match stream.next(now, spans_per_request, start_new) {
            Next::Request(request) => request,
            // Only owed waves are left: the virtual clock jumps to the next one's due time.
            Next::WaitUntil(due) => {
                now = due;
                continue;
            }
            Next::Done => break,
        };
        jobs.send((pool, requests.len(), framed))
            .map_err(|_| io::Error::other("the pool's compressors ended"))?;
        requests.push(Pooled {
            wire: Bytes::new(),
            spans: spans as u32,
            parts: parts.into_boxed_slice(),
            traces_started: stream.record.traces_sent,
            spans_started: stream.record.spans_sent,
        });
    }
    Ok(Pool { requests })
}
