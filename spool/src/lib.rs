//! gatelog's write-ahead spool: every batch the receiver accepts is appended here and made
//! durable (fsynced) before the HTTP answer; the ClickHouse writer and the tantivy indexer each
//! read it from their own position and commit that position with their data. The design follows
//! Quickwit's record log and Vector's disk buffer.
//!
//! # Design
//!
//! - A directory of **segments**, append-only files named by the sequence number of their first
//!   record (`00000000000000000001.seg`, 20 digits, so names sort like numbers), plus `LOCK`
//!   (an exclusive `flock` held by the writer thread: one process per spool), `acks` (what was
//!   acknowledged, below) and `spare` (a preallocated segment, below).
//! - **Sequence numbers** are dense, start at 1 and never go back, across restarts: the last
//!   segment is never deleted, so its name and contents say where numbering stands, and the
//!   acknowledged mark in `acks` says it too (so losing that segment is noticed).
//! - **One writer thread** owns the active (last) segment. [`Spool::append`] queues the payload
//!   (or [`Spool::append_parts`], a payload in parts that are never joined in memory) and
//!   awaits a oneshot. The thread takes everything queued at that moment (group commit: up to
//!   32 MiB / 8192 records), frames each record with its header, writes headers and payloads
//!   as they are with `pwritev` (no copy into a group buffer) at the end of the valid data,
//!   calls `fdatasync` once, publishes the new last sequence to readers (a `watch` channel),
//!   writes the **acknowledged mark** (that last sequence) to `acks` with a `pwrite`, and only
//!   then answers the callers. While one fsync runs, the next group queues up, so the fsync
//!   count per append falls as concurrency rises.
//! - **Readers** ([`Spool::reader`]) only ever see records whose fsync completed. A sink that
//!   commits position N therefore never loses record N to a crash and never sees a number
//!   re-used for a different record.
//! - **Deletion**: a sealed (non-last) segment is deleted once every registered consumer has
//!   acknowledged its last record ([`Spool::ack`]). With no consumer registered nothing is
//!   deleted. Deletion goes oldest first, so the files left are always a contiguous range.
//! - **Preallocation** (`prealloc`, on by default): a background thread keeps `spare`, a
//!   zero-filled file (a segment, at most a sixteenth of `max_bytes`), ready; a new segment is
//!   that file renamed. Appends then overwrite allocated blocks, and their `fdatasync` has no
//!   size or allocation metadata to write (no journal commit, or no metadata buffers without
//!   a journal), which is what made fsync latency depend on everything else the disk was
//!   writing. A segment may therefore end in zeros after its last record. When a group leaves
//!   too little room for another record of its size and nothing else is queued, the writer
//!   starts the next segment at once, so taking the spare (a rename and a directory fsync)
//!   and the trim and fill it sets off happen between requests. A last segment may therefore
//!   hold no record: its name says where numbering stands.
//! - **Space**: `max_bytes` caps what the spool's files take on disk, the spare and the
//!   preallocated zeros included ([`SpoolStats::bytes_on_disk`]); the `acks` file (40 KiB)
//!   and `LOCK` are not counted.
//!
//! # Record format
//!
//! ```text
//! offset size field
//!  0      4   magic     b"GLSP"
//!  4      1   version   1
//!  5      1   flags     0; FLAG_GAP (1) for a gap record; other bits are damage
//!  6      2   reserved  0
//!  8      8   seq       u64 little-endian
//! 16      4   len       u32 little-endian, payload length (≤ max_record_bytes < 4 GiB)
//! 20      4   crc       crc32c(seq ‖ len ‖ payload), seq and len little-endian as stored
//! 24      4   hcrc      crc32c(bytes 0..24 of the header)
//! 28    len   payload   the bytes given to `append` (or the parts given to `append_parts`, joined), untouched
//! ```
//!
//! `hcrc` protects `len` on its own, so a damaged length is never mistaken for "the record runs
//! past the end of the file" (which would look like a torn tail and hide the damage). A **gap
//! record** (only [`repair`] writes one) stands for the numbers `seq..=last` whose records
//! were lost and whose loss an operator accepted: its payload is `last` (u64 LE); readers skip
//! it, and the record after it is numbered `last + 1`.
//!
//! # The `acks` file
//!
//! What the spool acknowledged, in fixed slots written in place (layout and proof in `acks`):
//! the **mark**, the highest sequence number answered to an appender, and each registered
//! **consumer's position**. Two slots per value, each with a generation and a crc32c; the
//! slot holding the last durable state is never overwritten before the other one's newer
//! state is fsynced, so a torn write loses at most the newest update, never the file. The file
//! is created whole (zeros, fsync, rename) before the spool opens, so every later update
//! overwrites allocated blocks: **acknowledging never needs free space**, which is what lets
//! a full disk recover (below). An older spool's `consumers.ack` is taken over at open.
//!
//! # What fsync covers
//!
//! - Every group commit: `fdatasync` of the active segment (data and the file size) before any
//!   caller in the group is answered and before readers can see the records. The mark's
//!   `pwrite` after it costs no fsync: a process crash keeps it (the page cache survives), and
//!   the writer fsyncs `acks` after a second without appends and at close.
//! - An ack: the position's `pwrite`. Deleting segments: `acks` is fsynced first (so the
//!   positions that allow the deletion are durable), then the files are unlinked and the
//!   directory fsynced.
//! - Creating a segment: the directory is fsynced before the first record in it is written.
//! - Open: `acks` is fsynced before it is read; a torn tail is cut with `ftruncate` + `fsync`.
//!
//! With `SpoolOptions::fsync = false` (benchmarks only) nothing is fsynced and a machine crash
//! can lose acknowledged records (which `open` then reports); a process crash still cannot.
//!
//! # Recovery (`Spool::open`)
//!
//! What was acknowledged is read first: `acked` = the larger of the mark and every consumer's
//! position. Everything up to it must be there. Then the last segment is scanned record by
//! record (magic, version, flags, header checksum, expected sequence, payload checksum). Where
//! the records end:
//! - at the end of the file, or where only zeros follow (the unwritten part of a preallocated
//!   segment, kept and written next): the end of the data;
//! - fewer bytes left than a header, a header whose record runs past the end of the file, or a
//!   bad header or payload checksum with no valid record anywhere after it: a **torn tail**, a
//!   write after the last fsync that the crash cut;
//! - a bad record followed by a valid one, or a valid header with the wrong sequence number:
//!   damage in the middle, always [`SpoolError::Corrupt`].
//!
//! If records up to `acked` are damaged or missing there (the last record damaged, the file
//! cut inside a record or at a record boundary, the last segment or every segment gone), that
//! is not a torn tail: the spool **refuses to open** with `Corrupt`, naming the file and the
//! offset where the acknowledged records end, what was acknowledged and by whom, and what to
//! do (restore a backup, or accept the loss with [`repair`]); it changes nothing. So does a
//! consumer position below the oldest segment (records it never read were deleted). Only
//! what lies above `acked` is a torn tail; it is cut (an info log, `torn_tail_truncations`),
//! and its numbers, which nobody was ever given, are used again. After a clean open the mark
//! is raised to the last record found: everything readable counts as acknowledged.
//!
//! Why a genuine torn tail is still cut quietly, and an acknowledged record never is: the
//! writer pwrites the mark only after the group's fdatasync returned, so the mark never
//! exceeds a durable record, and a crash during a group's write or fsync leaves it at the
//! previous group, below every record of the torn one (tested at every byte offset of a torn
//! record, by the model test's crashes and by SIGKILL in `tests/crash.rs`). Conversely, after
//! a process crash every record answered is at or below the mark (it is written before any
//! answer); after a machine crash the mark is at least its last fsynced value (a second of
//! idleness ago, the last deletion, or the kernel's writeback since), so detection can lag by
//! that window but never refuses a spool that lost nothing.
//!
//! Sealed segments are checked at open by their headers alone (checksums and numbers, not
//! payloads): each must hold every record from its name's number up to the next segment's,
//! so a segment lost between two others, or the one holding the last records lost while an
//! empty segment started ahead of time follows it, is refused like a cut last segment,
//! naming the file and offset where the records stop. That reads a page per record at most
//! (on a loaded 2-core machine, from the page cache: 0.22 s for 1 GiB of 1 KiB records,
//! 0.09 s for 2 GiB of 64 KiB records, the last segment's full scan included). Payloads are
//! verified as readers read them; damage there is `Corrupt` from the reader (and [`repair`]
//! mends it too). A sealed segment whose preallocated zeros were not trimmed yet when the
//! process died keeps them: readers stop at the next segment's first sequence number, before
//! the zeros.
//!
//! # Failure modes
//!
//! - **kill -9 / power loss**: every acknowledged record survives (it was fsynced); an
//!   unacknowledged partial write is cut at open. A record whose append was written but not
//!   yet answered may survive: the client saw no 2xx, retries, and the batch appears twice.
//!   Receivers de-duplicate retried batches by content (PRODUCT §3), not the spool.
//! - **Disk full (ENOSPC/EDQUOT)**: the group's partial write is cut back (`ftruncate` +
//!   fsync, which also frees the active segment's preallocated zeros), the spare is released
//!   and the consumed segments deleted, and the group is tried once more; if it still fails,
//!   its callers get [`SpoolError::NoSpace`] and its sequence numbers are handed out again
//!   (nobody saw them). While the disk stays full, each new group first seals a fully
//!   consumed active segment so it can be deleted too, and no spare is made until the disk
//!   has twice its size free. Since acknowledging needs no space, the sinks keep
//!   acknowledging, segments are deleted, and appends succeed again by themselves once the
//!   sinks catch up. If cutting the failed write back itself fails it is retried before the
//!   next write (which fails until then).
//! - **fsync error**: the fsync is not retried (the kernel may have dropped the dirty pages,
//!   "fsyncgate"); the records are cut back as for ENOSPC and the callers get an error.
//! - **Spool full** (`max_bytes`): [`SpoolError::Full`] at once, never a wait. The spare is
//!   released first; if every consumer has acknowledged everything, the active segment is
//!   sealed so it can be deleted.
//! - **Acknowledged records damaged or lost** (a disk error, an operator's mistake): `open`
//!   refuses as above. [`repair`] accepts the loss: it keeps every intact record with its
//!   number, turns each run of lost numbers into a gap record (readers skip it), sets the
//!   damaged originals aside as `*.damaged`, and numbering continues after everything
//!   acknowledged, so no number a caller or consumer saw is ever given to another record.
//! - **Dropping an `append` future** does not cancel the write: the record may still be stored.
//!
//! # Metrics
//!
//! [`Spool::metrics`] returns counters (appends, bytes, group commits, fsyncs, errors, full
//! rejections, segments created/deleted, torn tails) and an fsync latency histogram.

mod acks;
pub mod config;
mod error;
mod format;
mod gc;
mod locate;
mod metrics;
mod open;
mod options;
mod prealloc;
mod reader;
mod recovery;
mod repair;
mod writer;

pub use config::SpoolConfig;
pub use error::SpoolError;
pub use format::{HEADER_LEN, record_size};
pub use locate::RecordLocation;
pub use metrics::{FSYNC_BUCKETS_SECS, Histogram, MetricsSnapshot};
pub use options::{ConsumerStats, SpoolOptions, SpoolStats};
pub use reader::{Record, SpoolReader};
pub use repair::{Lost, Repair, repair};

use acks::{AcksFile, Slots};
use metrics::Metrics;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use tokio::sync::{oneshot, watch};
use writer::Cmd;

#[derive(Debug)]
pub(crate) struct SegmentInfo {
    pub path: PathBuf,
    /// Bytes of records.
    pub bytes: u64,
    /// Length of the file: more than `bytes` while it holds preallocated zeros.
    pub file_len: u64,
}

#[derive(Debug)]
pub(crate) struct State {
    /// first seq → segment; the last entry is the active segment.
    pub segments: BTreeMap<u64, SegmentInfo>,
    pub last_seq: u64,
    /// What the spool's files take, the cap `max_bytes` applies to: every segment file
    /// (preallocated zeros included) and the spare (from the moment its filling starts).
    pub bytes_on_disk: u64,
    /// The part of `bytes_on_disk` that is the spare.
    pub spare_bytes: u64,
    pub consumers: BTreeMap<String, u64>,
}

impl State {
    /// Sets a segment's file length, keeping `bytes_on_disk` in step.
    pub(crate) fn set_file_len(&mut self, first: u64, file_len: u64) {
        if let Some(seg) = self.segments.get_mut(&first) {
            self.bytes_on_disk = self.bytes_on_disk - seg.file_len + file_len;
            seg.file_len = file_len;
        }
    }
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
    /// The `acks` file: the writer thread owns its mark slots, `gc_lock` the consumers' slots.
    pub acks: AcksFile,
    /// The consumers' slots of `acks`; held while they are written and segments deleted.
    pub gc_lock: Mutex<Slots>,
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
    /// Fails with [`SpoolError::Corrupt`] (naming the file and offset, changing nothing) when
    /// records it had acknowledged are damaged or missing. Blocking file I/O: call it at
    /// start-up or from `spawn_blocking`.
    pub fn open(dir: &Path, opts: SpoolOptions) -> Result<Spool, SpoolError> {
        open::open(dir, opts)
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
        if let Err(e) = gc::persist_consumers(shared) {
            lock(&shared.state).consumers.remove(name);
            return Err(e);
        }
        gc::gc(shared).map(|_| ())
    }

    /// Records that `name` committed everything up to `committed_seq` and deletes the segments
    /// every consumer is done with. Lower values than a previous ack are ignored. Writes the
    /// position in place in the `acks` file (no free space needed, no fsync); when it deletes
    /// segments, also an fsync of that file, the unlinks and a directory fsync.
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
        gc::gc(shared).map(|_| ())
    }

    /// Forgets a consumer (a sink that was removed), so it no longer holds back deletion.
    pub fn unregister_consumer(&self, name: &str) -> Result<(), SpoolError> {
        let removed = lock(&self.shared().state).consumers.remove(name).is_some();
        if !removed {
            return Err(SpoolError::UnknownConsumer(name.into()));
        }
        gc::persist_consumers(self.shared())?;
        gc::gc(self.shared()).map(|_| ())
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

    /// Completes every queued append, makes the `acks` file durable and stops the writer
    /// thread. Appends through other clones fail with `Closed` afterwards; readers drain and
    /// end.
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
