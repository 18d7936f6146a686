//! The persistent sending queue: an exporter's queue kept in files on one shard, so that a
//! central that is down for longer than memory can hold, a crash, or a restart loses nothing
//! that reached the queue.
//!
//! # The model
//!
//! Each exporter instance (one per shard) owns a directory, `{directory}/{exporter}/shard-N`,
//! and nothing else touches it: a `lock` file held with `flock` keeps a second process out. In
//! it, the queue is a log of numbered **segments** (`{seq}.seg`), each records end to end (see
//! [`record`]), appended one at a time with `pwritev` straight from the batch's bytes (see
//! [`DiskQueue::append`] for why not a ring operation); syncs, reads, opens and deletes go
//! through the shard's io_uring (glommio's file I/O). Beside each segment, `{seq}.ack` lists the records already settled — sent, or
//! dropped and counted — so a restart does not send them again; it is an optimisation, written
//! without `fsync`: losing its tail costs duplicates, never data. A segment is deleted once every
//! record in it is settled, and that is how disk space comes back.
//!
//! In memory the queue keeps only an index — segment, offset, header — in a [`SendingQueue`]
//! bounded by `queue_size` in the exporter's sizer, plus a bounded cache of recent batches'
//! bytes ([`CACHE_BYTES_MAX`]), so a consumer that keeps up sends from memory and one that
//! catches up after an outage reads back from the page cache or the disk. Disk use is bounded by
//! a semaphore of `max_size` bytes, taken per record as it is written and given back per
//! segment as it is deleted.
//!
//! # What is promised
//!
//! A batch counts as queued once its record is written (and, with `fsync`, synced: writers
//! that wait together share one `fdatasync`). From then on it is delivered or counted, across
//! any number of restarts; a crash can only cause it to be sent twice (if it was settled but
//! its ack not yet written). Records are checksummed: at start every segment is read back, and
//! a damaged stretch (a write cut by a crash or a power loss, bytes changed on disk) is skipped
//! up to the next intact record and counted — never a crash, never a silent loss. A write that
//! fails (a full disk, an I/O error) keeps the batch in memory, counted and logged: the
//! exporter goes on as a memory queue while the disk refuses, and its bound then pushes back on
//! the clients.
//!
//! # Who runs what
//!
//! Everything runs on the shard's executor. [`DiskQueue::open`] takes the lock and lists the
//! files on the calling thread (quick metadata calls at start); reading the segments back runs
//! in a task it spawns, and pushes wait for it, so what was on disk is sent first.

mod record;
mod scan;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::io::{BufferedFile, OpenOptions};
use glommio::sync::Semaphore;
use tailgate_shards::sync::{Stop, Wakeup};
use tailgate_wire::Signal;

use self::record::{Header, HEADER_BYTES};
use super::batch::Batch;
use super::queue::SendingQueue;
use super::settings::{QueueSizer, StorageSettings};
use super::ExportObserver;

/// The largest segment: big enough that files are few, small enough that one settled segment
/// gives its space back soon.
const SEGMENT_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// The smallest segment, whatever the disk cap.
const SEGMENT_BYTES_MIN: u64 = 1024 * 1024;
/// The most batch bytes a queue keeps in memory beside their records, so a consumer that keeps
/// up does not read back what it just wrote.
pub(crate) const CACHE_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Batch bytes waiting for the writer (queued, not in a consumer's hands) past which the writer
/// writes them at once instead of at their delay: a backlog goes to disk as it forms. What the
/// queue holds in memory meanwhile is in the shard's memory account, so a disk slower than the
/// ingest ends in the memory budget's refusals, not in unbounded memory.
const UNWRITTEN_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How often a disk that keeps failing is logged again.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

thread_local! {
    /// The queues open on this thread (a shard's), by directory: a reload's new exporter takes
    /// over the queue its predecessor still has open, instead of finding it locked.
    static OPEN: RefCell<HashMap<PathBuf, Weak<DiskQueue>>> = RefCell::new(HashMap::new());
}

/// Why [`DiskQueue::push`] did not queue a batch.
pub(crate) enum Refused {
    /// No room now, and the caller asked not to wait.
    Full(Batch),
    /// The queue is closed.
    Closed(Batch),
}

/// Where a queued batch stands with the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// Waiting for the writer (at most `write_delay`); its bytes are in memory.
    Unwritten,
    /// Its record is in segment `seq` at `offset`.
    Written { seq: u64, offset: u64 },
    /// Settled before the writer reached it: never written.
    SettledUnwritten,
    /// The disk refused its write: held in memory only.
    Failed,
}

/// A queued batch, shared by the index, the writer and the consumer that takes it.
struct Slot {
    header: Header,
    stored: Cell<Stored>,
    /// Disk units taken for it: given to its segment once written, given back otherwise.
    charged: u64,
    /// Its bytes while in memory: until written, and after that while the cache has room.
    bytes: RefCell<Option<Bytes>>,
    /// Counted in the queue's `unwritten_bytes`: unwritten, and not in a consumer's hands
    /// (which hold its bytes whatever the writer does).
    waiting: Cell<bool>,
}

impl Slot {
    fn len(&self) -> usize {
        self.header.body_len as usize
    }
}

/// The record header of `batch`, whose body [`record_body`] makes.
/// With the metadata prefix it starts with (encoded once, here), when the batch has metadata.
fn header_of(batch: &Batch) -> (Header, Option<Vec<u8>>) {
    let prefix = (!batch.metadata.is_none()).then(|| metadata_prefix(&batch.metadata));
    let prefix_len = prefix.as_ref().map_or(0, Vec::len);
    let header = Header {
        body_len: u32::try_from(batch.bytes.len().saturating_add(prefix_len)).unwrap_or(u32::MAX),
        items: batch.items,
        signal: batch.signal,
        with_metadata: prefix.is_some(),
    };
    (header, prefix)
}

/// The encoding of `metadata` a record's body starts with; the encoding of none for metadata
/// past the encoding's lengths, which the receivers' header limits keep it far from.
fn metadata_prefix(metadata: &crate::metadata::Metadata) -> Vec<u8> {
    let mut prefix = Vec::new();
    if metadata.encode(&mut prefix).is_none() {
        prefix.clear();
        let _ = crate::metadata::Metadata::none().encode(&mut prefix);
    }
    prefix
}

/// A record's body: the batch's bytes, after its client metadata's `prefix` when it has some
/// (one copy, for those batches only).
fn record_body(batch: Batch, prefix: Option<Vec<u8>>) -> Bytes {
    let Some(mut body) = prefix else {
        return batch.bytes;
    };
    body.reserve_exact(batch.bytes.len());
    body.extend_from_slice(&batch.bytes);
    Bytes::from(body)
}

/// The batch a record's `body` holds; `None` when its metadata does not decode.
fn batch_of(header: &Header, body: Bytes) -> Option<Batch> {
    let (metadata, bytes) = if header.with_metadata {
        let (metadata, used) = crate::metadata::Metadata::decode(&body)?;
        (metadata, body.slice(used..))
    } else {
        (crate::metadata::Metadata::none(), body)
    };
    Some(Batch {
        signal: header.signal,
        bytes,
        items: header.items,
        metadata,
    })
}

/// A queued batch, as the exporter sees it.
pub(crate) struct Entry {
    slot: Rc<Slot>,
}

impl Entry {
    /// The batch's signal.
    pub fn signal(&self) -> Signal {
        self.slot.header.signal
    }

    /// The batch's items.
    pub fn items(&self) -> u64 {
        self.slot.header.items
    }

    /// Whether the batch's record is on disk (so a shutdown leaves it there rather than
    /// losing it).
    pub fn persisted(&self) -> bool {
        matches!(self.slot.stored.get(), Stored::Written { .. })
    }
}

/// A batch a consumer took: to mark it settled, or hand it back.
pub(crate) struct Ack {
    slot: Rc<Slot>,
}

impl Ack {
    /// Whether the batch's record is on disk (a shutdown leaves it there); otherwise it is in
    /// memory only (not written yet, or refused by the disk).
    pub fn persisted(&self) -> bool {
        matches!(self.slot.stored.get(), Stored::Written { .. })
    }
}

struct Segment {
    path: PathBuf,
    file: Rc<BufferedFile>,
    /// Bytes appended (the next record's offset while it is the current segment).
    len: u64,
    /// Records written or being written that are not settled.
    live: u64,
    /// Disk units taken for its records.
    charged: u64,
    acks: Option<Rc<BufferedFile>>,
    acks_len: u64,
}

#[derive(Default)]
struct Log {
    segments: BTreeMap<u64, Segment>,
    /// The segment appended to; `None` until the next write opens one.
    current: Option<u64>,
    next_seq: u64,
}

/// One exporter's persistent queue on one shard. See the module documentation.
pub(crate) struct DiskQueue {
    exporter: String,
    dir: PathBuf,
    fsync: bool,
    sizer: QueueSizer,
    index: SendingQueue<Rc<Slot>>,
    /// Batches waiting for the writer, oldest first, with when they came.
    unwritten: RefCell<VecDeque<(Rc<Slot>, Instant)>>,
    unwritten_bytes: Cell<usize>,
    /// How long a batch may wait in memory before its record is written.
    write_delay: Duration,
    /// Wakes the writer task when the first batch is waiting.
    writer_wakeup: Wakeup,
    /// Disk bytes left under the cap.
    disk: Semaphore,
    /// Writers waiting for disk room.
    disk_waiting: Cell<usize>,
    disk_cap: u64,
    segment_bytes: u64,
    log: RefCell<Log>,
    /// One append at a time, so a segment is records end to end with no hole.
    write_lock: Semaphore,
    /// One `fdatasync` at a time; writers queued behind one are covered by the next.
    sync_lock: Semaphore,
    /// Records appended, and how many of them are known synced.
    written: Cell<u64>,
    synced: Cell<u64>,
    cache_bytes: Cell<usize>,
    /// Items in records on disk not yet settled.
    disk_items: Cell<u64>,
    /// Triggered when what was on disk at start is back in the index.
    recovered: Stop,
    observer: Rc<dyn ExportObserver>,
    last_error_log: Cell<Option<Instant>>,
    /// Exporter instances using the queue: more than one while a reload's new exporter runs
    /// beside its retiring predecessor.
    users: Cell<usize>,
    /// Held for the queue's life: the `flock` that keeps other processes out.
    _lock: fs::File,
}

fn segment_path(dir: &Path, seq: u64, suffix: &str) -> PathBuf {
    dir.join(format!("{seq:020}.{suffix}"))
}

/// Takes `dir/lock` for this process, or says who has it.
fn lock(dir: &Path) -> io::Result<fs::File> {
    let path = dir.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    if let Err(err) = crate::sys::try_lock_exclusive(&file) {
        return Err(io::Error::new(
            err.kind(),
            format!(
                "{} is locked by another process ({err}); two gateways cannot share a \
                 persistent queue",
                path.display()
            ),
        ));
    }
    Ok(file)
}

/// The segment numbers in `dir`, sorted.
fn segments_in(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = name.strip_suffix(".seg").and_then(|s| s.parse().ok()) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Moves the segments of shard directories that this run has no shard for (a run with more
/// shards left them) into `own`, numbered after `next`, the orphan with number `j` going to
/// shard `j % shards`. Returns the next free number.
fn adopt(root: &Path, own: &Path, shard: usize, shards: usize, mut next: u64) -> io::Result<u64> {
    let mut orphans = Vec::new();
    for entry in fs::read_dir(root)? {
        let name = entry?.file_name();
        let Some(n) = name.to_str().and_then(|n| n.strip_prefix("shard-")) else {
            continue;
        };
        match n.parse::<usize>() {
            Ok(j) if j >= shards && j % shards == shard => orphans.push(j),
            _ => {}
        }
    }
    orphans.sort_unstable();
    for j in orphans {
        let dir = root.join(format!("shard-{j}"));
        let held = lock(&dir)?;
        for seq in segments_in(&dir)? {
            let ack = segment_path(&dir, seq, "ack");
            if ack.exists() {
                fs::rename(&ack, segment_path(own, next, "ack"))?;
            }
            fs::rename(
                segment_path(&dir, seq, "seg"),
                segment_path(own, next, "seg"),
            )?;
            next += 1;
        }
        drop(held);
        fs::remove_file(dir.join("lock"))?;
        fs::remove_dir(&dir)?;
        tracing::info!(
            from = %dir.display(),
            to = %own.display(),
            "persistent queue: took over the segments of a shard this run does not have"
        );
    }
    Ok(next)
}

async fn open_segment(path: &Path, create: bool) -> io::Result<BufferedFile> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if create {
        options.create_new(true);
    }
    Ok(options.buffered_open(path).await?)
}

impl DiskQueue {
    /// Opens shard `shard`'s queue for `exporter` and starts reading back what is on disk.
    /// Must run on the shard's executor.
    pub fn open(
        exporter: &str,
        shard: usize,
        storage: &StorageSettings,
        queue_size: usize,
        sizer: QueueSizer,
        observer: Rc<dyn ExportObserver>,
    ) -> io::Result<Rc<DiskQueue>> {
        let dir = storage.directory.join(format!("shard-{shard}"));
        let open = OPEN.with(|open| open.borrow().get(&dir).and_then(Weak::upgrade));
        if let Some(queue) = open {
            // Settings the open queue was made with stay until the next start.
            queue.users.set(queue.users.get() + 1);
            queue.observer.queue_len(queue.used());
            return Ok(queue);
        }
        fs::create_dir_all(&dir).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("cannot create {}: {err}", dir.display()),
            )
        })?;
        let held = lock(&dir)?;
        let own = segments_in(&dir)?;
        let next = own.last().map_or(0, |last| last + 1);
        let next = adopt(&storage.directory, &dir, shard, storage.shards.max(1), next)?;
        let disk_cap = storage.max_bytes.unwrap_or(u64::MAX >> 2).max(1);
        let queue = Rc::new(DiskQueue {
            exporter: exporter.to_string(),
            fsync: storage.fsync,
            sizer,
            index: SendingQueue::new(queue_size),
            unwritten: RefCell::new(VecDeque::new()),
            unwritten_bytes: Cell::new(0),
            write_delay: storage.write_delay,
            writer_wakeup: Wakeup::default(),
            disk: Semaphore::new(disk_cap),
            disk_waiting: Cell::new(0),
            disk_cap,
            segment_bytes: (disk_cap / 8).clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX),
            log: RefCell::new(Log {
                next_seq: next,
                ..Log::default()
            }),
            write_lock: Semaphore::new(1),
            sync_lock: Semaphore::new(1),
            written: Cell::new(0),
            synced: Cell::new(0),
            cache_bytes: Cell::new(0),
            disk_items: Cell::new(0),
            recovered: Stop::default(),
            observer,
            last_error_log: Cell::new(None),
            users: Cell::new(1),
            _lock: held,
            dir,
        });
        let seqs = segments_in(&queue.dir)?;
        OPEN.with(|open| {
            let mut open = open.borrow_mut();
            open.retain(|_, queue| queue.strong_count() > 0);
            open.insert(queue.dir.clone(), Rc::downgrade(&queue));
        });
        glommio::spawn_local(recover(queue.clone(), seqs)).detach();
        if !queue.write_delay.is_zero() {
            glommio::spawn_local(write_behind(queue.clone())).detach();
        }
        Ok(queue)
    }

    fn weight(&self, header: &Header) -> usize {
        match self.sizer {
            QueueSizer::Requests => 1,
            QueueSizer::Items => usize::try_from(header.items).unwrap_or(usize::MAX),
            QueueSizer::Bytes => header.body_len as usize,
        }
    }

    /// Writes `batch` and queues it, waiting for room (`wait`) or refusing it if there is none.
    pub async fn push(&self, batch: Batch, wait: bool) -> Result<(), Refused> {
        self.recovered.wait().await;
        let (header, prefix) = header_of(&batch);
        let Some(units) = self.index.reserve(self.weight(&header), wait).await else {
            return Err(if self.index.is_closed() {
                Refused::Closed(batch)
            } else {
                Refused::Full(batch)
            });
        };
        let disk_units = header.record_len().min(self.disk_cap);
        let room = if wait {
            if self.disk.available() < disk_units {
                self.disk_waiting.set(self.disk_waiting.get() + 1);
                self.release_current_if_settled().await;
            }
            let room = self.disk.acquire(disk_units).await.is_ok();
            self.disk_waiting
                .set(self.disk_waiting.get().saturating_sub(1));
            room
        } else {
            self.disk.try_acquire(disk_units).unwrap_or(false)
        };
        if !room {
            self.index.unreserve(units);
            return Err(if self.index.is_closed() {
                Refused::Closed(batch)
            } else {
                Refused::Full(batch)
            });
        }
        self.enqueue(batch, prefix, header, disk_units, units).await;
        Ok(())
    }

    /// Queues `batch` past every bound: the batcher's last batches at shutdown.
    pub async fn push_unbounded(&self, batch: Batch) {
        self.recovered.wait().await;
        let (header, prefix) = header_of(&batch);
        self.enqueue(batch, prefix, header, 0, 0).await;
    }

    /// Queues a batch whose room (`units` of the queue, `charged` of the disk) is taken. Its
    /// record is written by the writer task within `write_delay` (at once with more than
    /// [`UNWRITTEN_BYTES_MAX`] waiting), unless it is settled first; with no delay it is
    /// written (and with `fsync`, synced) before this returns.
    async fn enqueue(
        &self,
        batch: Batch,
        prefix: Option<Vec<u8>>,
        header: Header,
        charged: u64,
        units: u64,
    ) {
        let body = record_body(batch, prefix);
        let len = body.len();
        let slot = Rc::new(Slot {
            header,
            stored: Cell::new(Stored::Unwritten),
            charged,
            bytes: RefCell::new(Some(body)),
            waiting: Cell::new(true),
        });
        self.cache_bytes.set(self.cache_bytes.get() + len);
        self.observer.holding(len as i64);
        self.observer.pending(header.signal, header.items as i64);
        let first = self.unwritten.borrow().is_empty();
        self.unwritten
            .borrow_mut()
            .push_back((slot.clone(), Instant::now()));
        self.unwritten_bytes.set(self.unwritten_bytes.get() + len);
        if self.write_delay.is_zero() {
            self.flush(true).await;
        } else if first || self.unwritten_bytes.get() > UNWRITTEN_BYTES_MAX {
            self.writer_wakeup.notify();
        }
        self.index.push_reserved(slot, units);
    }

    /// Writes the waiting batches that are due — all of them with `force` — in order, skipping
    /// those settled meanwhile; with `fsync`, one sync covers the group.
    pub async fn flush(&self, force: bool) {
        let Ok(_permit) = self.write_lock.acquire_permit(1).await else {
            return;
        };
        let now = Instant::now();
        let mut synced_through = None;
        loop {
            let next = {
                let mut unwritten = self.unwritten.borrow_mut();
                match unwritten.front() {
                    Some((_, at)) if force || now.duration_since(*at) >= self.write_delay => {
                        unwritten.pop_front()
                    }
                    _ => None,
                }
            };
            let Some((slot, _)) = next else { break };
            if slot.stored.get() != Stored::Unwritten {
                continue; // Settled before its turn: never written (its ack let go of it).
            }
            let bytes = slot
                .bytes
                .borrow()
                .clone()
                .expect("a batch waiting for the writer is in memory");
            self.stop_waiting(&slot);
            let header = slot.header;
            let appended =
                match record::header_for(header.signal, header.items, header.with_metadata, &bytes)
                {
                    Some(head) => self.append(&slot, &head, &bytes).await,
                    None => Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a batch of 4 GiB or more has no record format",
                    )),
                };
            match appended {
                // Settled while the segment opened: never written after all.
                Ok(None) => {}
                Ok(Some((seq, offset, ticket))) => {
                    slot.stored.set(Stored::Written { seq, offset });
                    self.disk_items.set(self.disk_items.get() + header.items);
                    synced_through = Some(ticket);
                    if self.cache_bytes.get() > CACHE_BYTES_MAX {
                        self.drop_bytes(&slot);
                    }
                }
                Err(err) => {
                    self.disk.signal(slot.charged);
                    slot.stored.set(Stored::Failed);
                    self.disk_failed("write", &err);
                }
            }
        }
        self.report_disk();
        if let (true, Some(ticket)) = (self.fsync, synced_through) {
            if let Err(err) = self.sync_through(ticket).await {
                // Written but maybe not on the device: a power loss could lose it. It stays
                // queued (a crash of the process alone does not lose it); counted and logged.
                self.disk_failed("fsync", &err);
            }
        }
    }

    /// Takes a batch out of the count that makes pushes wait for the writer.
    fn stop_waiting(&self, slot: &Slot) {
        if slot.waiting.replace(false) {
            self.unwritten_bytes
                .set(self.unwritten_bytes.get().saturating_sub(slot.len()));
        }
    }

    /// Lets go of a batch's bytes held in memory.
    fn drop_bytes(&self, slot: &Slot) {
        if let Some(bytes) = slot.bytes.borrow_mut().take() {
            self.cache_bytes
                .set(self.cache_bytes.get().saturating_sub(bytes.len()));
            self.observer.holding(-(bytes.len() as i64));
        }
    }

    /// Appends the record `head` + `body` to the current segment (opening one if needed).
    /// Returns the segment, the offset and the write's number, for [`DiskQueue::sync_through`].
    /// The caller holds the write lock. `None` if `slot` was settled while the segment opened:
    /// then nothing is written.
    ///
    /// The write itself is one `pwritev` on the shard's thread, not a ring operation: the kernel
    /// copies from the batch's own bytes, where glommio's buffered write wants them joined in a
    /// buffer of its own first — an allocation and a copy of every batch, which measured as the
    /// largest cost of the queue (docs/BENCHMARKS.md). The copy into the page cache is the
    /// same work either way, and on the ring it ran on an io_uring worker bound to the shard's
    /// CPU. Syncs, reads, opens and deletes stay on the ring.
    async fn append(
        &self,
        slot: &Slot,
        head: &[u8],
        body: &[u8],
    ) -> io::Result<Option<(u64, u64, u64)>> {
        let len = (head.len() + body.len()) as u64;
        let charged = slot.charged;
        let (seq, file, offset) = self.current_segment(len).await?;
        if slot.stored.get() != Stored::Unwritten {
            return Ok(None);
        }
        // From here to the return nothing awaits: no consumer settles the slot meanwhile.
        {
            let mut log = self.log.borrow_mut();
            let segment = log
                .segments
                .get_mut(&seq)
                .expect("the current segment is listed");
            segment.live += 1;
            segment.charged += charged;
        }
        if let Err(err) = crate::sys::pwrite_all(file.as_raw_fd(), &[head, body], offset) {
            // A failed write may leave part of the record behind: nothing more is appended
            // after it (recovery skips the stretch), and the next write opens a new segment.
            {
                let mut log = self.log.borrow_mut();
                let segment = log.segments.get_mut(&seq).expect("listed while written");
                segment.live -= 1;
                segment.charged -= charged;
                segment.len = offset + len;
                log.current = None;
            }
            self.release_if_settled(seq).await;
            return Err(err);
        }
        {
            let mut log = self.log.borrow_mut();
            let segment = log.segments.get_mut(&seq).expect("listed while written");
            segment.len = offset + len;
        }
        self.written.set(self.written.get() + 1);
        Ok(Some((seq, offset, self.written.get())))
    }

    /// The segment a record of `len` bytes goes to, and its offset there; rolls to a new
    /// segment when the current one is full. Runs under the write lock.
    async fn current_segment(&self, len: u64) -> io::Result<(u64, Rc<BufferedFile>, u64)> {
        let current = {
            let log = self.log.borrow();
            log.current.and_then(|seq| {
                let segment = &log.segments[&seq];
                let fits = segment.len == 0 || segment.len + len <= self.segment_bytes;
                fits.then(|| (seq, segment.file.clone(), segment.len))
            })
        };
        if let Some(current) = current {
            return Ok(current);
        }
        // Seal the full segment: with fsync, what it holds is synced before writes move on,
        // so a sync of the new segment covers every earlier write.
        let sealed = self.log.borrow_mut().current.take();
        if let Some(seq) = sealed {
            if self.fsync {
                let file = self.log.borrow().segments[&seq].file.clone();
                file.fdatasync().await?;
                self.synced.set(self.written.get());
            }
            self.release_if_settled(seq).await;
        }
        let seq = {
            let mut log = self.log.borrow_mut();
            let seq = log.next_seq;
            log.next_seq += 1;
            seq
        };
        let path = segment_path(&self.dir, seq, "seg");
        let file = Rc::new(open_segment(&path, true).await?);
        if self.fsync {
            glommio::io::Directory::open(&self.dir)
                .await?
                .sync()
                .await?;
        }
        let mut log = self.log.borrow_mut();
        log.segments.insert(
            seq,
            Segment {
                path,
                file: file.clone(),
                len: 0,
                live: 0,
                charged: 0,
                acks: None,
                acks_len: 0,
            },
        );
        log.current = Some(seq);
        Ok((seq, file, 0))
    }

    /// Waits until the write numbered `ticket` is synced, syncing if no one else is.
    async fn sync_through(&self, ticket: u64) -> io::Result<()> {
        if self.synced.get() >= ticket {
            return Ok(());
        }
        let _permit = self
            .sync_lock
            .acquire_permit(1)
            .await
            .map_err(|_| io::Error::other("the queue's syncer is closed"))?;
        if self.synced.get() >= ticket {
            return Ok(()); // A sync that began after this write covered it.
        }
        let target = self.written.get();
        let file = {
            let log = self.log.borrow();
            match log.current {
                Some(seq) => log.segments[&seq].file.clone(),
                // Sealed since the write, and sealing synced it.
                None => return Ok(()),
            }
        };
        file.fdatasync().await?;
        self.synced.set(self.synced.get().max(target));
        Ok(())
    }

    /// The oldest queued batch, waiting while there is none and the queue is open; `None`
    /// once it is closed and empty.
    pub async fn pop(&self) -> Option<Entry> {
        self.index.pop().await.map(|slot| Entry { slot })
    }

    /// The oldest queued batch without waiting (to drop it and make room).
    pub fn pop_now(&self) -> Option<Entry> {
        self.index.pop_now().map(|slot| Entry { slot })
    }

    /// The batch of `entry` — from memory, or read back from disk — with the ack that marks it
    /// settled; `None` if its record is damaged (then counted, and marked settled).
    pub async fn load(&self, entry: Entry) -> Option<(Batch, Ack)> {
        let slot = entry.slot;
        let header = slot.header;
        let cached = slot.bytes.borrow().clone();
        if let Some(bytes) = cached {
            let body_len = bytes.len();
            let batch = batch_of(&header, bytes.clone())
                .expect("a body in memory was made by `record_body`");
            // The consumer counts, and lets go of, the batch's bytes: a metadata prefix is
            // the queue's to give back.
            let prefix = body_len - batch.bytes.len();
            if matches!(slot.stored.get(), Stored::Written { .. }) {
                // The batch's memory passes to the consumer, which lets go of it when settled.
                slot.bytes.borrow_mut().take();
                self.cache_bytes
                    .set(self.cache_bytes.get().saturating_sub(body_len));
                self.observer.holding(-(prefix as i64));
            } else {
                // The writer, or a retry after a refused write, still needs the queue's copy:
                // the consumer's counts too (the same memory, counted twice for a while). In
                // a consumer's hands it no longer makes pushes wait for the writer.
                self.observer.holding(batch.bytes.len() as i64);
                self.stop_waiting(&slot);
            }
            return Some((batch, Ack { slot }));
        }
        let Stored::Written { seq, offset } = slot.stored.get() else {
            unreachable!("a batch not in memory is on disk");
        };
        let file = self.log.borrow().segments.get(&seq).map(|s| s.file.clone());
        let read = match file {
            Some(file) => file
                .read_at(offset, header.record_len() as usize)
                .await
                .map_err(io::Error::from),
            None => Err(io::Error::other("the segment is gone")),
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(err) => {
                self.disk_failed("read", &err);
                self.damaged(&header, header.record_len());
                self.ack(Ack { slot }).await;
                return None;
            }
        };
        if record::verify(&bytes).ok() != Some(header) {
            tracing::warn!(
                exporter = %self.exporter,
                segment = %segment_path(&self.dir, seq, "seg").display(),
                offset,
                "persistent queue: a record changed on disk since it was written; skipped and \
                 counted"
            );
            self.damaged(&header, header.record_len());
            self.ack(Ack { slot }).await;
            return None;
        }
        let body = Bytes::copy_from_slice(&bytes[HEADER_BYTES..]);
        let Some(batch) = batch_of(&header, body) else {
            // The checksum held, so this version did not write it: skipped and counted.
            self.damaged(&header, header.record_len());
            self.ack(Ack { slot }).await;
            return None;
        };
        self.observer.holding(batch.bytes.len() as i64);
        Some((batch, Ack { slot }))
    }

    /// Puts back a batch a consumer took and did not settle (a retiring exporter's, cut short
    /// by its deadline) for the queue's other consumers.
    pub fn requeue(&self, ack: Ack) {
        let header = ack.slot.header;
        if ack.slot.stored.get() == Stored::Unwritten && !ack.slot.waiting.replace(true) {
            self.unwritten_bytes
                .set(self.unwritten_bytes.get() + ack.slot.len());
        }
        self.observer.pending(header.signal, header.items as i64);
        self.index.push_recovered(ack.slot, self.weight(&header));
    }

    /// Marks a queued batch settled without sending it: dropped (counted by the caller) to
    /// make room.
    pub async fn discard(&self, entry: Entry) {
        self.ack(Ack { slot: entry.slot }).await;
    }

    fn damaged(&self, header: &Header, bytes: u64) {
        self.observer.pending(header.signal, -(header.items as i64));
        self.observer
            .queue_damaged(Some(header.signal), header.items, bytes);
    }

    /// Marks a batch settled: never written if the writer has not reached it, and otherwise
    /// not sent again after a restart; its segment goes once every record in it is settled.
    pub async fn ack(&self, ack: Ack) {
        let slot = ack.slot;
        let (seq, offset) = match slot.stored.get() {
            Stored::Unwritten => {
                // The writer skips it when its turn comes; its memory and disk room go now.
                slot.stored.set(Stored::SettledUnwritten);
                self.stop_waiting(&slot);
                self.disk.signal(slot.charged);
                self.drop_bytes(&slot);
                return;
            }
            Stored::SettledUnwritten => return,
            Stored::Failed => {
                self.drop_bytes(&slot);
                return;
            }
            Stored::Written { seq, offset } => (seq, offset),
        };
        self.drop_bytes(&slot);
        self.disk_items
            .set(self.disk_items.get().saturating_sub(slot.header.items));
        self.report_disk();
        let last = {
            let mut log = self.log.borrow_mut();
            let Some(segment) = log.segments.get_mut(&seq) else {
                return;
            };
            segment.live -= 1;
            segment.live == 0
        };
        if last && self.release_if_settled(seq).await {
            return;
        }
        if let Err(err) = self.write_ack(seq, offset).await {
            self.disk_failed("ack", &err);
        }
    }

    async fn write_ack(&self, seq: u64, offset: u64) -> io::Result<()> {
        let existing = self.log.borrow().segments[&seq].acks.clone();
        let acks = match existing {
            Some(acks) => acks,
            None => {
                let path = segment_path(&self.dir, seq, "ack");
                let mut options = OpenOptions::new();
                options.read(true).write(true).create(true);
                let acks = Rc::new(options.buffered_open(&path).await?);
                let len = acks.file_size().await?;
                let mut log = self.log.borrow_mut();
                let Some(segment) = log.segments.get_mut(&seq) else {
                    return Ok(()); // Deleted while the file opened.
                };
                match &segment.acks {
                    Some(opened) => opened.clone(),
                    None => {
                        segment.acks = Some(acks.clone());
                        segment.acks_len = len;
                        acks
                    }
                }
            }
        };
        let at = {
            let mut log = self.log.borrow_mut();
            let Some(segment) = log.segments.get_mut(&seq) else {
                return Ok(());
            };
            let at = segment.acks_len;
            segment.acks_len += 8;
            at
        };
        // Offset + 1, so the zeros of a write that never happened read as no ack.
        crate::sys::pwrite_all(acks.as_raw_fd(), &[&(offset + 1).to_le_bytes()], at)
    }

    /// Deletes segment `seq` if no record in it is unsettled. The segment being appended to is
    /// deleted too (the next write opens a new one) once it is half full or a writer waits for
    /// disk room — otherwise a queue that empties after every batch would create and delete a
    /// file per batch, and one whose cap is reached inside its current segment would wait
    /// forever for room that only deleting it gives back.
    /// Returns whether it was deleted.
    async fn release_if_settled(&self, seq: u64) -> bool {
        let segment = {
            let mut log = self.log.borrow_mut();
            let Some(segment) = log.segments.get(&seq) else {
                return false;
            };
            if segment.live > 0 {
                return false;
            }
            if log.current == Some(seq) {
                let worth_it = segment.len >= self.segment_bytes / 2 || self.disk_waiting.get() > 0;
                if !worth_it {
                    return false;
                }
                log.current = None;
            }
            log.segments.remove(&seq).expect("checked above")
        };
        self.disk.signal(segment.charged);
        self.report_disk();
        // Unlinking a file the kernel must free (and, on a filesystem mounted with `discard`,
        // trim) can take a long time; no writer or consumer waits for it.
        let ack = segment_path(&self.dir, seq, "ack");
        let observer = self.observer.clone();
        let exporter = self.exporter.clone();
        glommio::spawn_local(async move {
            for path in [&segment.path, &ack] {
                if let Err(err) = glommio::io::remove(path).await {
                    let err = io::Error::from(err);
                    if err.kind() != io::ErrorKind::NotFound {
                        observer.queue_disk_error("delete");
                        tracing::error!(
                            exporter = %exporter,
                            path = %path.display(),
                            error = %err,
                            "persistent queue: a settled segment could not be deleted; its \
                             space is not given back until it is"
                        );
                    }
                }
            }
            drop(segment);
        })
        .detach();
        true
    }

    async fn release_current_if_settled(&self) {
        let current = self.log.borrow().current;
        if let Some(seq) = current {
            self.release_if_settled(seq).await;
        }
    }

    fn report_disk(&self) {
        self.observer
            .queue_disk_usage(self.disk_bytes(), self.disk_items.get());
    }

    /// Disk bytes held by unsettled segments.
    pub fn disk_bytes(&self) -> u64 {
        self.log
            .borrow()
            .segments
            .values()
            .map(|segment| segment.len)
            .sum()
    }

    fn disk_failed(&self, operation: &'static str, err: &io::Error) {
        self.observer.queue_disk_error(operation);
        let now = Instant::now();
        let due = self
            .last_error_log
            .get()
            .is_none_or(|last| now.duration_since(last) >= ERROR_LOG_INTERVAL);
        if due {
            self.last_error_log.set(Some(now));
            tracing::error!(
                exporter = %self.exporter,
                directory = %self.dir.display(),
                operation,
                error = %err,
                "persistent queue: the disk refused an operation; batches that cannot be \
                 written are held in memory (counted in the queue's bound) and the clients \
                 are pushed back once it is full (logged again every 30 s while it lasts)"
            );
        }
    }

    /// Units queued (in the sizer's unit).
    pub fn used(&self) -> usize {
        self.index.used()
    }

    /// Batches queued.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// An exporter stops using the queue; true if it was the last, which then shuts it down.
    pub fn leave(&self) -> bool {
        let users = self.users.get().saturating_sub(1);
        self.users.set(users);
        users == 0
    }

    /// Whether [`DiskQueue::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.index.is_closed()
    }

    /// Refuses producers from now on and lets consumers drain without waiting.
    pub fn close(&self) {
        self.index.close();
        self.disk.close();
        self.recovered.trigger();
        self.writer_wakeup.notify();
    }

    /// Takes every queued entry: at shutdown, those on disk stay there for the next start.
    pub fn drain(&self) -> Vec<Entry> {
        self.index
            .drain()
            .into_iter()
            .map(|slot| {
                self.drop_bytes(&slot);
                Entry { slot }
            })
            .collect()
    }

    /// The queue's directory, for logs.
    pub fn directory(&self) -> &Path {
        &self.dir
    }
}

/// The writer task: writes each batch `write_delay` after it was queued, unless it was settled
/// first; ends when the queue closes (shutdown writes what is left itself).
async fn write_behind(queue: Rc<DiskQueue>) {
    loop {
        if queue.is_closed() {
            return;
        }
        let due = queue
            .unwritten
            .borrow()
            .front()
            .map(|(_, at)| *at + queue.write_delay);
        match due {
            None => queue.writer_wakeup.wait().await,
            Some(due) => {
                let sleep = glommio::timer::sleep(due.saturating_duration_since(Instant::now()));
                futures_lite::future::or(sleep, queue.writer_wakeup.wait()).await;
            }
        }
        if queue.is_closed() {
            return;
        }
        let urgent = queue.unwritten_bytes.get() > UNWRITTEN_BYTES_MAX;
        queue.flush(urgent).await;
    }
}

/// Reads back the segments `seqs` at start: every intact record not yet settled is queued, in
/// order, before any new batch; damage is counted; settled segments are deleted.
async fn recover(queue: Rc<DiskQueue>, seqs: Vec<u64>) {
    let mut batches = 0u64;
    let mut items = [0u64; 3];
    for seq in seqs {
        match recover_segment(&queue, seq).await {
            Ok(found) => {
                for (signal, n) in found {
                    batches += 1;
                    items[signal.index()] += n;
                    queue.observer.queue_recovered(signal, n);
                }
            }
            Err(err) => {
                // Left where it is for the next start; the gateway goes on without it.
                queue.disk_failed("recover", &err);
            }
        }
    }
    queue.report_disk();
    queue.observer.queue_len(queue.index.used());
    if batches > 0 {
        tracing::info!(
            exporter = %queue.exporter,
            directory = %queue.dir.display(),
            batches,
            spans = items[0],
            metric_points = items[1],
            log_records = items[2],
            "persistent queue: recovered what an earlier run left; it is sent first"
        );
    }
    queue.recovered.trigger();
}

/// Reads segment `seq` back; returns the signal and items of each record it queued.
async fn recover_segment(queue: &DiskQueue, seq: u64) -> io::Result<Vec<(Signal, u64)>> {
    let path = segment_path(&queue.dir, seq, "seg");
    let file = Rc::new(open_segment(&path, false).await?);
    let size = file.file_size().await?;
    let bytes = file.read_at(0, size as usize).await?;
    let scanned = scan::scan(&bytes);
    let acked = read_acks(&segment_path(&queue.dir, seq, "ack")).await?;
    for damaged in &scanned.damaged {
        let claimed = damaged.claimed;
        queue.observer.queue_damaged(
            claimed.map(|h| h.signal),
            damaged.claimed_items,
            damaged.bytes,
        );
        tracing::warn!(
            exporter = %queue.exporter,
            segment = %path.display(),
            offset = damaged.offset,
            bytes = damaged.bytes,
            claimed_items = damaged.claimed_items,
            "persistent queue: a damaged stretch (a write cut short, or bytes changed on disk) \
             was skipped up to the next intact record; its loss is counted"
        );
    }
    let charged = size.min(queue.disk.available());
    let _ = queue.disk.try_acquire(charged);
    let mut found = Vec::new();
    let mut live = 0;
    for (offset, header) in scanned.records {
        if acked.contains(&offset) {
            continue;
        }
        live += 1;
        queue.disk_items.set(queue.disk_items.get() + header.items);
        queue.observer.pending(header.signal, header.items as i64);
        found.push((header.signal, header.items));
        let weight = queue.weight(&header);
        queue.index.push_recovered(
            Rc::new(Slot {
                header,
                stored: Cell::new(Stored::Written { seq, offset }),
                charged: 0,
                bytes: RefCell::new(None),
                waiting: Cell::new(false),
            }),
            weight,
        );
    }
    queue.log.borrow_mut().segments.insert(
        seq,
        Segment {
            path,
            file,
            len: size,
            live,
            charged,
            acks: None,
            acks_len: 0,
        },
    );
    if live == 0 {
        queue.release_if_settled(seq).await;
    }
    Ok(found)
}

/// The offsets an ack file lists (zeros — writes that never happened — skipped).
async fn read_acks(path: &Path) -> io::Result<HashSet<u64>> {
    let file = match BufferedFile::open(path).await {
        Ok(file) => file,
        Err(err) => {
            let err = io::Error::from(err);
            if err.kind() == io::ErrorKind::NotFound {
                return Ok(HashSet::new());
            }
            return Err(err);
        }
    };
    let size = file.file_size().await?;
    let bytes = file.read_at(0, size as usize).await?;
    let _ = file.close().await;
    Ok(bytes
        .chunks_exact(8)
        .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
        .filter(|&n| n > 0)
        .map(|n| n - 1)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell as StdRefCell;

    use glommio::LocalExecutor;

    use crate::export::SendError;
    use crate::metadata::Metadata;

    #[derive(Default)]
    struct Seen {
        recovered: Cell<u64>,
        damaged_items: Cell<u64>,
        damaged_bytes: Cell<u64>,
        errors: StdRefCell<Vec<&'static str>>,
        holding: Cell<i64>,
    }

    impl ExportObserver for Seen {
        fn sent(&self, _: Signal, _: u64) {}
        fn send_failed(&self, _: Signal, _: u64, _: &'static str) {}
        fn queue_len(&self, _: usize) {}
        fn holding(&self, delta: i64) {
            self.holding.set(self.holding.get() + delta);
        }
        fn attempt_failed(&self, _: &SendError, _: usize) {}
        fn queue_recovered(&self, _: Signal, items: u64) {
            self.recovered.set(self.recovered.get() + items);
        }
        fn queue_damaged(&self, _: Option<Signal>, items: u64, bytes: u64) {
            self.damaged_items.set(self.damaged_items.get() + items);
            self.damaged_bytes.set(self.damaged_bytes.get() + bytes);
        }
        fn queue_disk_error(&self, operation: &'static str) {
            self.errors.borrow_mut().push(operation);
        }
    }

    fn storage(dir: &Path, max_bytes: Option<u64>) -> StorageSettings {
        StorageSettings {
            extension: "file_storage".into(),
            directory: dir.to_path_buf(),
            fsync: true,
            write_delay: Duration::ZERO,
            max_bytes,
            shards: 1,
        }
    }

    fn batch(n: u64) -> Batch {
        Batch {
            signal: Signal::Traces,
            bytes: Bytes::from(format!("batch number {n}").into_bytes()),
            items: n,
            metadata: Default::default(),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tailgate-persist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Runs `f` with a queue opened on `dir` (recovery done), then drops the queue.
    fn with_queue<F, Fut>(dir: &Path, max_bytes: Option<u64>, seen: Rc<Seen>, f: F)
    where
        F: FnOnce(Rc<DiskQueue>) -> Fut + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let settings = storage(dir, max_bytes);
        LocalExecutor::default().run(async move {
            let queue =
                DiskQueue::open("otlp", 0, &settings, 1000, QueueSizer::Requests, seen).unwrap();
            queue.recovered.wait().await;
            f(queue).await;
        });
    }

    async fn pop_items(queue: &DiskQueue, n: usize) -> Vec<(u64, Ack)> {
        let mut out = Vec::new();
        for _ in 0..n {
            let entry = queue.pop().await.unwrap();
            let (batch, ack) = queue.load(entry).await.unwrap();
            assert_eq!(batch.bytes, batch_bytes(batch.items));
            out.push((batch.items, ack));
        }
        out
    }

    fn batch_bytes(n: u64) -> Bytes {
        batch(n).bytes
    }

    #[test]
    fn what_is_queued_survives_a_restart_and_what_is_settled_does_not_return() {
        let dir = temp_dir("restart");
        let seen = Rc::new(Seen::default());
        with_queue(&dir, None, seen.clone(), |queue| async move {
            for n in 1..=5 {
                queue.push(batch(n), true).await.ok().unwrap();
            }
            // Settle the first two; the other three stay queued.
            for (_, ack) in pop_items(&queue, 2).await {
                queue.ack(ack).await;
            }
        });
        let again = Rc::new(Seen::default());
        with_queue(&dir, None, again.clone(), |queue| async move {
            assert_eq!(queue.len(), 3);
            let items: Vec<u64> = pop_items(&queue, 3)
                .await
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            assert_eq!(
                items,
                vec![3, 4, 5],
                "read back in order, settled ones skipped"
            );
        });
        assert_eq!(again.recovered.get(), 3 + 4 + 5);
        assert_eq!(again.damaged_bytes.get(), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_batchs_client_metadata_is_kept_in_memory_and_on_disk() {
        let dir = temp_dir("metadata");
        let tenant = |t: &'static str| {
            crate::metadata::Capture::new(["x-tenant"])
                .from_headers([("x-tenant", t.as_bytes())].into_iter())
        };
        let with = move |n: u64, t: &'static str| Batch {
            metadata: tenant(t),
            ..batch(n)
        };
        let seen = Rc::new(Seen::default());
        with_queue(&dir, None, seen.clone(), move |queue| async move {
            queue.push(with(1, "acme"), true).await.ok().unwrap();
            queue.push(batch(2), true).await.ok().unwrap();
            queue.push(with(3, "globex"), true).await.ok().unwrap();
            // From memory: the first, as pushed.
            let entry = queue.pop().await.unwrap();
            let (first, ack) = queue.load(entry).await.unwrap();
            assert_eq!((first.items, first.bytes.clone()), (1, batch_bytes(1)));
            assert_eq!(first.metadata, tenant("acme"));
            queue.ack(ack).await;
        });
        assert!(seen.holding.get() > 0, "batches 2 and 3 still held");
        // The consumer lets go of the batch's bytes (its claim), the queue of the rest.
        let held = Rc::new(Seen::default());
        let dir2 = temp_dir("metadata-held");
        with_queue(&dir2, None, held.clone(), {
            let held = held.clone();
            move |queue| async move {
                queue.push(with(4, "acme"), true).await.ok().unwrap();
                let (batch, ack) = queue.load(queue.pop().await.unwrap()).await.unwrap();
                queue.ack(ack).await;
                held.holding
                    .set(held.holding.get() - batch.bytes.len() as i64);
                assert_eq!(
                    held.holding.get(),
                    0,
                    "nothing of the metadata prefix left counted"
                );
            }
        });
        let _ = fs::remove_dir_all(&dir2);
        let again = Rc::new(Seen::default());
        with_queue(&dir, None, again.clone(), move |queue| async move {
            let mut read = Vec::new();
            for _ in 0..2 {
                let entry = queue.pop().await.unwrap();
                let (batch, _ack) = queue.load(entry).await.unwrap();
                assert_eq!(
                    batch.bytes,
                    batch_bytes(batch.items),
                    "the body after the metadata"
                );
                read.push((batch.items, batch.metadata));
            }
            assert_eq!(
                read,
                [(2, Metadata::none()), (3, tenant("globex"))],
                "from disk after a restart"
            );
        });
        assert_eq!(again.damaged_bytes.get(), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_segment_is_deleted_once_everything_in_it_is_settled() {
        let dir = temp_dir("delete");
        let seen = Rc::new(Seen::default());
        let shard_dir = dir.join("shard-0");
        with_queue(&dir, None, seen.clone(), move |queue| async move {
            queue.push(batch(1), true).await.ok().unwrap();
            assert_eq!(segments_in(&shard_dir).unwrap().len(), 1);
            assert!(queue.disk_bytes() > 0);
            // Roll to a new segment so the first is sealed, then settle everything.
            queue.log.borrow_mut().current = None;
            queue.push(batch(2), true).await.ok().unwrap();
            for (_, ack) in pop_items(&queue, 2).await {
                queue.ack(ack).await;
            }
            // The files are unlinked by a task of their own (no writer waits for it): wait
            // for it to have run, within a bound.
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut left = segments_in(&shard_dir).unwrap();
            while left.len() > 1 && Instant::now() < deadline {
                glommio::timer::sleep(Duration::from_millis(5)).await;
                left = segments_in(&shard_dir).unwrap();
            }
            assert_eq!(
                left.len(),
                1,
                "the sealed segment is gone, the current one stays"
            );
        });
        let again = Rc::new(Seen::default());
        with_queue(&dir, None, again.clone(), |queue| async move {
            assert_eq!(queue.len(), 0);
        });
        assert_eq!(again.recovered.get(), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_record_is_skipped_and_counted_and_the_rest_is_sent() {
        let dir = temp_dir("damage");
        let seen = Rc::new(Seen::default());
        with_queue(&dir, None, seen, |queue| async move {
            for n in 1..=3 {
                queue.push(batch(n), true).await.ok().unwrap();
            }
        });
        // Flip a byte in the second record's body.
        let shard_dir = dir.join("shard-0");
        let seq = segments_in(&shard_dir).unwrap()[0];
        let path = segment_path(&shard_dir, seq, "seg");
        let mut bytes = fs::read(&path).unwrap();
        let second = record::encode(Signal::Traces, 1, &batch_bytes(1))
            .unwrap()
            .len();
        bytes[second + HEADER_BYTES + 2] ^= 0xff;
        // And cut the file in the middle of the third.
        bytes.truncate(bytes.len() - 3);
        fs::write(&path, &bytes).unwrap();
        let again = Rc::new(Seen::default());
        with_queue(&dir, None, again.clone(), |queue| async move {
            let items: Vec<u64> = pop_items(&queue, 1)
                .await
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            assert_eq!(items, vec![1]);
            assert_eq!(queue.len(), 0);
        });
        assert_eq!(again.recovered.get(), 1);
        assert_eq!(
            again.damaged_items.get(),
            2 + 3,
            "what the damaged headers claimed"
        );
        assert!(again.damaged_bytes.get() > 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_disk_cap_refuses_or_waits_until_a_segment_is_settled() {
        let dir = temp_dir("cap");
        let seen = Rc::new(Seen::default());
        let cap = SEGMENT_BYTES_MIN;
        with_queue(&dir, Some(cap), seen, move |queue| async move {
            let big = move |n: u64| Batch {
                signal: Signal::Traces,
                bytes: Bytes::from(vec![n as u8; (cap / 3) as usize]),
                items: n,
                metadata: Default::default(),
            };
            queue.push(big(1), false).await.ok().unwrap();
            queue.push(big(2), false).await.ok().unwrap();
            assert!(matches!(
                queue.push(big(3), false).await,
                Err(Refused::Full(_))
            ));
            // A waiting writer gets room once the consumer settles what is queued.
            let writer = {
                let queue = queue.clone();
                glommio::spawn_local(async move { queue.push(big(3), true).await.is_ok() })
            };
            for _ in 0..2 {
                let entry = queue.pop().await.unwrap();
                let (_, ack) = queue.load(entry).await.unwrap();
                queue.ack(ack).await;
            }
            assert!(writer.await, "room came back");
            assert_eq!(queue.len(), 1);
        });
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_batch_settled_within_the_write_delay_is_never_written() {
        let dir = temp_dir("behind");
        let settings = StorageSettings {
            write_delay: Duration::from_millis(50),
            ..storage(&dir, None)
        };
        let seen = Rc::new(Seen::default());
        LocalExecutor::default().run({
            let seen = seen.clone();
            async move {
                let queue =
                    DiskQueue::open("otlp", 0, &settings, 100, QueueSizer::Requests, seen).unwrap();
                queue.recovered.wait().await;
                for n in 1..=3 {
                    queue.push(batch(n), true).await.ok().unwrap();
                }
                assert_eq!(queue.disk_items.get(), 0, "nothing written yet");
                // The first is sent at once; the other two wait out the delay.
                let (_, ack) = pop_items(&queue, 1).await.pop().unwrap();
                queue.ack(ack).await;
                glommio::timer::sleep(Duration::from_millis(200)).await;
                assert_eq!(
                    queue.disk_items.get(),
                    2 + 3,
                    "the two unsettled were written"
                );
                queue.close();
            }
        });
        let again = Rc::new(Seen::default());
        with_queue(&dir, None, again.clone(), |queue| async move {
            let items: Vec<u64> = pop_items(&queue, 2)
                .await
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            assert_eq!(items, vec![2, 3]);
        });
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_process_cannot_share_the_directory() {
        let dir = temp_dir("lock");
        let shard_dir = dir.join("shard-0");
        fs::create_dir_all(&shard_dir).unwrap();
        let held = lock(&shard_dir).unwrap();
        let err = lock(&shard_dir).unwrap_err();
        assert!(
            err.to_string().contains("locked by another process"),
            "{err}"
        );
        drop(held);
        assert!(lock(&shard_dir).is_ok());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_shard_takes_over_the_queues_of_shards_a_smaller_run_lacks() {
        let dir = temp_dir("adopt");
        // A run with two shards leaves a batch on shard 1.
        let two = StorageSettings {
            shards: 2,
            ..storage(&dir, None)
        };
        LocalExecutor::default().run({
            let two = two.clone();
            async move {
                let seen: Rc<dyn ExportObserver> = Rc::new(Seen::default());
                let queue =
                    DiskQueue::open("otlp", 1, &two, 10, QueueSizer::Requests, seen).unwrap();
                queue.recovered.wait().await;
                queue.push(batch(7), true).await.ok().unwrap();
            }
        });
        // A run with one shard finds it.
        let seen = Rc::new(Seen::default());
        with_queue(&dir, None, seen.clone(), |queue| async move {
            let items: Vec<u64> = pop_items(&queue, 1)
                .await
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            assert_eq!(items, vec![7]);
        });
        assert!(!dir.join("shard-1").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
