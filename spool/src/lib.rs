//! gatelog's write-ahead spool: every batch the receiver accepts is appended here and made
//! durable (fsynced) before the HTTP answer; the ClickHouse writer and the tantivy indexer each
//! read it from their own position and commit that position with their data. The design follows
//! Quickwit's record log and Vector's disk buffer.
//!
//! # Design
//!
//! - A directory of **segments**, append-only files named by the sequence number of their first
//!   record (`00000000000000000001.seg`, 20 digits, so names sort like numbers), plus `LOCK`
//!   (an exclusive `flock` held by the writer thread: one process per spool) and
//!   `consumers.ack` (the last acknowledgement of each registered consumer).
//! - **Sequence numbers** are dense, start at 1 and never go back, across restarts: the last
//!   segment is never deleted, so its name and contents always say where numbering stands.
//! - **One writer thread** owns the active (last) segment. [`Spool::append`] queues the payload
//!   (or [`Spool::append_parts`], a payload in parts that are never joined in memory) and
//!   awaits a oneshot. The thread takes everything queued at that moment (group commit: up to
//!   32 MiB / 8192 records), frames each record with its header, writes headers and payloads
//!   as they are with `pwritev` (no copy into a group buffer) at the end of the valid data,
//!   calls `fdatasync` once, publishes the new last sequence to readers (a `watch` channel)
//!   and only then answers the callers. While one fsync runs, the next group queues up, so
//!   the fsync count per append falls as concurrency rises.
//! - **Readers** ([`Spool::reader`]) only ever see records whose fsync completed. A sink that
//!   commits position N therefore never loses record N to a crash and never sees a number
//!   re-used for a different record.
//! - **Deletion**: a sealed (non-last) segment is deleted once every registered consumer has
//!   acknowledged its last record ([`Spool::ack`]). With no consumer registered nothing is
//!   deleted. Deletion goes oldest first, so the files left are always a contiguous range.
//! - **Preallocation** (`prealloc`, on by default): a background thread keeps `spare`, a
//!   zero-filled file of `segment_bytes`, ready; a new segment is that file renamed. Appends
//!   then overwrite allocated blocks, and their `fdatasync` has no size or allocation
//!   metadata to write (no journal commit, or no metadata buffers without a journal), which
//!   is what made fsync latency depend on everything else the disk was writing. A segment may
//!   therefore end in zeros after its last record. When a group leaves too little room for
//!   another record of its size and nothing else is queued, the writer starts the next
//!   segment at once, so taking the spare (a rename and a directory fsync) and the trim and
//!   fill it sets off happen between requests. A last segment may therefore hold no record:
//!   its name says where numbering stands.
//!
//! # Record format
//!
//! ```text
//! offset size field
//!  0      4   magic     b"GLSP"
//!  4      1   version   1
//!  5      1   flags     0 (reserved)
//!  6      2   reserved  0
//!  8      8   seq       u64 little-endian
//! 16      4   len       u32 little-endian, payload length (≤ max_record_bytes < 4 GiB)
//! 20      4   crc       crc32c(seq ‖ len ‖ payload), seq and len little-endian as stored
//! 24      4   hcrc      crc32c(bytes 0..24 of the header)
//! 28    len   payload   the bytes given to `append` (or the parts given to `append_parts`, joined), untouched
//! ```
//!
//! `hcrc` protects `len` on its own, so a damaged length is never mistaken for "the record runs
//! past the end of the file" (which would look like a torn tail and hide the damage).
//!
//! `consumers.ack`: `b"GLCA" ‖ version u8 ‖ count u32 ‖ (name_len u16 ‖ name ‖ seq u64)* ‖
//! crc32c(everything before)`, replaced atomically (temp file, fsync, rename, directory fsync).
//!
//! # What fsync covers
//!
//! - Every group commit: `fdatasync` of the active segment (data and the file size) before any
//!   caller in the group is answered and before readers can see the records.
//! - Creating a segment: the directory is fsynced before the first record in it is written.
//! - Deleting segments: `consumers.ack` is made durable first, then the files are unlinked and
//!   the directory fsynced.
//! - Torn-tail truncation at open: `ftruncate` then `fsync` of the segment.
//!
//! With `SpoolOptions::fsync = false` (benchmarks only) nothing is fsynced and a machine crash
//! can lose acknowledged records; a process crash still cannot.
//!
//! # Recovery (`Spool::open`)
//!
//! The last segment is scanned record by record (magic, version, header checksum, expected
//! sequence, payload checksum). Where the records end, only zeros up to the end of the file
//! are the unwritten part of a preallocated segment: kept, and written next. Otherwise, at
//! the first bad record:
//! - fewer bytes left than a header, or a valid header whose record runs past the end of the
//!   file: a **torn tail** (a write after the last fsync that the crash cut). It is truncated
//!   away with a `warn!` naming the file and offset. Nothing there was acknowledged.
//! - a bad header or payload checksum: a torn tail only if no valid record follows anywhere
//!   after it (zeros and garbage from an interrupted write). If a valid record follows, the
//!   damage is in the middle of acknowledged data: [`SpoolError::Corrupt`] with file and
//!   offset, and the spool refuses to open. Never repaired silently.
//! - a valid header with the wrong sequence number: always `Corrupt`.
//!
//! Sealed segments are checked cheaply at open (non-empty, first record's number matches the
//! name) and verified record by record as readers read them; damage there is `Corrupt` from
//! the reader. A sealed segment whose preallocated zeros were not trimmed yet when the
//! process died keeps them: readers stop at the next segment's first sequence number, before
//! the zeros. Caveat: a payload checksum failure on the very last record of the last segment
//! cannot be told from a torn write and is cut (with the warning).
//!
//! # Failure modes
//!
//! - **kill -9 / power loss**: every acknowledged record survives (it was fsynced); an
//!   unacknowledged partial write is cut at open. A record whose append was written but not
//!   yet answered may survive: the client saw no 2xx, retries, and the batch appears twice.
//!   Receivers de-duplicate retried batches by content (PRODUCT §3), not the spool.
//! - **Disk full (ENOSPC/EDQUOT)**: the group fails with [`SpoolError::NoSpace`]; whatever part
//!   reached the file is cut back (`ftruncate` + fsync) so the segment ends at the last good
//!   record, sequence numbers are handed out again, and later appends work once space is back.
//!   If the cut itself fails it is retried before the next write (which fails until then).
//! - **fsync error**: the fsync is not retried (the kernel may have dropped the dirty pages,
//!   "fsyncgate"); the records are cut back as for ENOSPC and the callers get an error.
//! - **Spool full** (`max_bytes`): [`SpoolError::Full`] at once, never a wait. If every consumer
//!   has acknowledged everything, the active segment is sealed first so it can be deleted.
//! - **Dropping an `append` future** does not cancel the write: the record may still be stored.
//!
//! # Metrics
//!
//! [`Spool::metrics`] returns counters (appends, bytes, group commits, fsyncs, errors, full
//! rejections, segments created/deleted, torn tails) and an fsync latency histogram.

mod error;
mod format;
mod locate;
mod metrics;
mod options;
mod prealloc;
mod reader;
mod recovery;
mod writer;

pub use error::SpoolError;
pub use format::{HEADER_LEN, record_size};
pub use locate::RecordLocation;
pub use metrics::{FSYNC_BUCKETS_SECS, Histogram, MetricsSnapshot};
pub use options::{ConsumerStats, SpoolOptions, SpoolStats};
pub use reader::{Record, SpoolReader};

use metrics::Metrics;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use tokio::sync::{oneshot, watch};
use writer::{Active, Cmd, Writer};

#[derive(Debug)]
pub(crate) struct SegmentInfo {
    pub path: PathBuf,
    pub bytes: u64,
}

#[derive(Debug)]
pub(crate) struct State {
    /// first seq → segment; the last entry is the active segment.
    pub segments: BTreeMap<u64, SegmentInfo>,
    pub last_seq: u64,
    pub bytes_on_disk: u64,
    pub consumers: BTreeMap<String, u64>,
}

#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Make the next group write fail with ENOSPC after this many bytes reached the file.
    pub fail_write_after: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub opts: SpoolOptions,
    pub state: Mutex<State>,
    /// Last durable sequence number; readers wait on it.
    pub durable: watch::Sender<u64>,
    pub closed: AtomicBool,
    pub metrics: Metrics,
    /// Serialises writes of `consumers.ack` and segment deletion.
    pub gc_lock: Mutex<()>,
    #[cfg(test)]
    pub faults: Mutex<Faults>,
}

impl Shared {
    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.durable.send_modify(|_| {});
    }
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the state consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Deletes every sealed segment whose records are all acknowledged by every consumer.
pub(crate) fn gc(shared: &Shared) -> Result<(), SpoolError> {
    let _g = lock(&shared.gc_lock);
    let (victims, consumers) = {
        let st = lock(&shared.state);
        let Some(min) = st.consumers.values().min().copied() else {
            return Ok(());
        };
        let firsts: Vec<u64> = st.segments.keys().copied().collect();
        let mut victims = Vec::new();
        for pair in firsts.windows(2) {
            if pair[1] - 1 > min {
                break;
            }
            if let Some(seg) = st.segments.get(&pair[0]) {
                victims.push((pair[0], seg.path.clone()));
            }
        }
        (victims, st.consumers.clone())
    };
    if victims.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    recovery::store_consumers(&shared.dir, &consumers)?;
    let mut deleted = 0;
    let mut result = Ok(());
    for (first, path) in victims {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                result = Err(SpoolError::io("deleting segment", path, e));
                break;
            }
        }
        let mut st = lock(&shared.state);
        if let Some(seg) = st.segments.remove(&first) {
            st.bytes_on_disk -= seg.bytes;
        }
        deleted += 1;
    }
    if deleted > 0 {
        shared.metrics.segments_deleted(deleted);
        recovery::sync_dir(&shared.dir)?;
        tracing::debug!(
            segments = deleted,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "spool: consumed segments deleted"
        );
    }
    result
}

#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Cmd>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Without `close` this is what a crash leaves behind, minus the torn write: the writer
        // finishes what is queued and stops; nothing else is flushed.
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.mark_closed();
    }
}

/// The spool. Cheap to clone; every clone is the same spool.
#[derive(Debug, Clone)]
pub struct Spool {
    handle: Arc<Handle>,
}

impl Spool {
    /// Opens or creates the spool in `dir`, recovering after a crash (see the crate docs).
    /// Blocking file I/O: call it at start-up or from `spawn_blocking`.
    pub fn open(dir: &Path, opts: SpoolOptions) -> Result<Spool, SpoolError> {
        opts.validate()?;
        fs::create_dir_all(dir).map_err(|e| SpoolError::io("creating directory", dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| SpoolError::io("opening", &lock_path, e))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(SpoolError::Locked(dir.to_path_buf())),
            Err(TryLockError::Error(e)) => return Err(SpoolError::io("locking", &lock_path, e)),
        }
        let tmp = dir.join(format!("{}.tmp", recovery::CONSUMERS_FILE));
        recovery::remove_if_present(&tmp).map_err(|e| SpoolError::io("removing", &tmp, e))?;

        let mut found = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| SpoolError::io("listing", dir, e))? {
            let entry = entry.map_err(|e| SpoolError::io("listing", dir, e))?;
            if let Some(first) = entry.file_name().to_str().and_then(format::parse_segment_file_name) {
                found.push((first, entry.path()));
            }
        }
        found.sort();
        let metrics = Metrics::default();
        let mut segments = BTreeMap::new();
        let mut bytes_on_disk = 0;
        let (last_first, last_path) = match found.pop() {
            Some(last) => last,
            None => {
                let path = dir.join(format::segment_file_name(1));
                File::create(&path).map_err(|e| SpoolError::io("creating segment", &path, e))?;
                recovery::sync_dir(dir)?;
                metrics.segment_created();
                (1, path)
            }
        };
        for (first, path) in found {
            let bytes = recovery::check_sealed(&path, first)?;
            bytes_on_disk += bytes;
            segments.insert(first, SegmentInfo { path, bytes });
        }
        let scan = recovery::scan_segment(&last_path, last_first, true)?;
        if let Some((offset, detail)) = &scan.torn {
            tracing::warn!(file = %last_path.display(), offset, detail = %detail,
                "spool: cutting a torn tail left by a crash (a write that was never acknowledged)");
            let f = OpenOptions::new()
                .write(true)
                .open(&last_path)
                .map_err(|e| SpoolError::io("opening", &last_path, e))?;
            f.set_len(scan.valid_len)
                .and_then(|()| f.sync_all())
                .map_err(|e| SpoolError::io("truncating torn tail of", &last_path, e))?;
            metrics.torn_tail();
        }
        bytes_on_disk += scan.valid_len;
        segments.insert(last_first, SegmentInfo { path: last_path.clone(), bytes: scan.valid_len });
        let consumers = recovery::load_consumers(dir)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&last_path)
            .map_err(|e| SpoolError::io("opening segment", &last_path, e))?;
        // Past `valid_len` there may be the zeros of a preallocated segment: written next.
        let file_len = file.metadata().map_err(|e| SpoolError::io("reading metadata of", &last_path, e))?.len();

        let last_seq = scan.last_seq;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            opts,
            state: Mutex::new(State { segments, last_seq, bytes_on_disk, consumers }),
            durable: watch::Sender::new(last_seq),
            closed: AtomicBool::new(false),
            metrics,
            gc_lock: Mutex::new(()),
            #[cfg(test)]
            faults: Mutex::new(Faults::default()),
        });
        let spares = if opts.preallocate {
            let started = prealloc::Spares::start(&shared);
            Some(started.map_err(|e| SpoolError::io("preparing a spare segment in", dir, e))?)
        } else {
            None
        };
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            shared: Arc::clone(&shared),
            rx,
            active: Active { first_seq: last_first, path: last_path, file, len: scan.valid_len, file_len },
            next_seq: last_seq + 1,
            needs_truncate: false,
            staged_bytes: 0,
            pending: Vec::new(),
            spares,
            _lock: lock_file,
        };
        let thread = std::thread::Builder::new()
            .name("gatelog-spool-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| SpoolError::io("starting the writer thread for", dir, e))?;
        Ok(Spool { handle: Arc::new(Handle { shared, tx: Some(tx), thread: Some(thread) }) })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Appends one record and resolves with its sequence number once it is durable.
    pub async fn append(&self, payload: Vec<u8>) -> Result<u64, SpoolError> {
        self.append_parts(vec![payload]).await
    }

    /// Appends one record whose payload is `parts` joined, in order, without joining them in
    /// memory first (the writer copies each into its group buffer); readers see one payload.
    pub async fn append_parts(&self, parts: Vec<Vec<u8>>) -> Result<u64, SpoolError> {
        let max = self.shared().opts.max_record_bytes;
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        if len > max {
            return Err(SpoolError::RecordTooLarge { len, max });
        }
        let tx = self.handle.tx.as_ref().ok_or(SpoolError::Closed)?;
        let (reply, answer) = oneshot::channel();
        tx.send(Cmd::Append { parts, reply }).map_err(|_| SpoolError::Closed)?;
        answer.await.map_err(|_| SpoolError::Closed)?
    }

    /// A reader of the records after `after_seq`, in order.
    pub fn reader(&self, after_seq: u64) -> SpoolReader {
        SpoolReader::new(Arc::clone(&self.handle.shared), after_seq)
    }

    /// Registers (or re-registers) a consumer at its committed position, which is the
    /// source of truth (the sink's own store). Fails with `PositionGone` if records after it
    /// were deleted, and `PositionAhead` if it is beyond the last record. Blocking file I/O
    /// (a small fsynced write).
    pub fn register_consumer(&self, name: &str, committed_seq: u64) -> Result<(), SpoolError> {
        if name.is_empty() || name.len() > 255 {
            return Err(SpoolError::InvalidOptions(format!("consumer name must be 1..=255 bytes, got {name:?}")));
        }
        let shared = self.shared();
        {
            let mut st = lock(&shared.state);
            let oldest = st.segments.keys().next().copied().unwrap_or(st.last_seq + 1);
            if committed_seq + 1 < oldest {
                return Err(SpoolError::PositionGone { consumer: name.into(), requested: committed_seq, oldest });
            }
            if committed_seq > st.last_seq {
                return Err(SpoolError::PositionAhead {
                    consumer: name.into(),
                    requested: committed_seq,
                    last_seq: st.last_seq,
                });
            }
            st.consumers.insert(name.to_string(), committed_seq);
        }
        self.persist_consumers()?;
        gc(shared)
    }

    /// Records that `name` committed everything up to `committed_seq` and deletes the segments
    /// every consumer is done with. Lower values than a previous ack are ignored. May do
    /// blocking file I/O (the consumers file, unlinks, a directory fsync) when it deletes.
    pub fn ack(&self, name: &str, committed_seq: u64) -> Result<(), SpoolError> {
        let shared = self.shared();
        {
            let mut st = lock(&shared.state);
            let last_seq = st.last_seq;
            let Some(pos) = st.consumers.get_mut(name) else {
                return Err(SpoolError::UnknownConsumer(name.into()));
            };
            if committed_seq > last_seq {
                return Err(SpoolError::PositionAhead { consumer: name.into(), requested: committed_seq, last_seq });
            }
            *pos = (*pos).max(committed_seq);
        }
        gc(shared)
    }

    /// Forgets a consumer (a sink that was removed), so it no longer holds back deletion.
    pub fn unregister_consumer(&self, name: &str) -> Result<(), SpoolError> {
        let removed = lock(&self.shared().state).consumers.remove(name).is_some();
        if !removed {
            return Err(SpoolError::UnknownConsumer(name.into()));
        }
        self.persist_consumers()?;
        gc(self.shared())
    }

    fn persist_consumers(&self) -> Result<(), SpoolError> {
        let shared = self.shared();
        let _g = lock(&shared.gc_lock);
        let consumers = lock(&shared.state).consumers.clone();
        recovery::store_consumers(&shared.dir, &consumers)
    }

    /// The last durable sequence number (0 if nothing was ever appended).
    pub fn last_seq(&self) -> u64 {
        *self.shared().durable.borrow()
    }

    pub fn stats(&self) -> SpoolStats {
        let st = lock(&self.shared().state);
        SpoolStats {
            bytes_on_disk: st.bytes_on_disk,
            segments: st.segments.len(),
            first_seq: st.segments.keys().next().copied().unwrap_or(st.last_seq + 1),
            last_seq: st.last_seq,
            consumers: st
                .consumers
                .iter()
                .map(|(name, seq)| ConsumerStats {
                    name: name.clone(),
                    committed_seq: *seq,
                    lag: st.last_seq.saturating_sub(*seq),
                })
                .collect(),
        }
    }

    /// Counters and the fsync latency histogram since `open`.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared().metrics.snapshot()
    }

    /// Completes every queued append, persists the consumers file and stops the writer thread.
    /// Appends through other clones fail with `Closed` afterwards; readers drain and end.
    pub async fn close(self) -> Result<(), SpoolError> {
        let Some(tx) = self.handle.tx.as_ref() else {
            return Ok(());
        };
        let (reply, answer) = oneshot::channel();
        if tx.send(Cmd::Close { reply }).is_err() {
            return Ok(()); // already closed through another clone
        }
        answer.await.unwrap_or(Ok(()))
    }

    #[cfg(test)]
    pub(crate) fn inject_write_failure(&self, after_bytes: usize) {
        lock(&self.shared().faults).fail_write_after = Some(after_bytes);
    }

    #[cfg(test)]
    pub(crate) fn segment_paths(&self) -> Vec<PathBuf> {
        lock(&self.shared().state).segments.values().map(|s| s.path.clone()).collect()
    }
}

#[cfg(test)]
mod tests;
