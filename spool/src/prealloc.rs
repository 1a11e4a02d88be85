//! Preallocated segments: a spare, zero-filled segment kept ready by a background thread.
//!
//! # Why
//!
//! Appending to a file and then `fdatasync`ing it must also make the new file size and the
//! newly allocated blocks durable, and that metadata costs more than the data. On a
//! journaling file system (ext4's default) it is a journal commit, which in ordered mode also
//! waits for other files' data (ClickHouse parts, the index); on an ext4 without a journal
//! (the bench machine's: its fsyncs go through `ext4_fsync_nojournal`) it is the inode and
//! block bitmap buffers, written and waited for one by one. Overwriting blocks that are
//! already allocated and written changes neither, so `fdatasync` writes only the data. On the
//! 2-core bench machine, a 4 MB `pwrite` + `fdatasync` took p50 8.9 ms appending and 2.3 ms
//! overwriting a zero-filled file (p90 11.0 vs 2.5 ms).
//!
//! # How
//!
//! - A thread at background priority fills `spare.tmp` with zeros up to the spare's size
//!   ([`crate::SpoolOptions`]: a segment, at most a sixteenth of `max_bytes`), fsyncs it and
//!   renames it to `spare`, so `spare` exists only once it is complete. A crash in between
//!   leaves `spare.tmp`, which the next `open` deletes; a `spare` of the wrong size (the
//!   options changed) is deleted too.
//! - When the writer starts a segment it renames `spare` to the segment's name (one rename;
//!   the directory fsync follows as for any new segment) and asks for the next spare. With no
//!   spare ready it creates an empty file, as without preallocation: slower fsyncs, nothing
//!   else changes. It takes the spare ahead of time when it is idle and the active segment
//!   has no room for another record like the last ones (see `writer`), so none of this
//!   waits inside an append at moderate load.
//! - The segment it leaves is longer than its records. The same thread trims it to its
//!   records (`ftruncate` + `fdatasync`) off the writer's path. A crash before that leaves
//!   zeros after the last record of a sealed segment; readers never reach them (a sealed
//!   segment is read up to the next segment's first sequence number) and they go when the
//!   segment is deleted.
//! - The last segment after a restart: records, then zeros to the end of the file. Recovery
//!   tells this apart from a torn write (see `recovery`) and the writer continues after the
//!   last record.
//!
//! # Space
//!
//! The spare is the spool's: it counts in `max_bytes` from the moment its filling starts
//! (a spare that would not fit under `max_bytes` is not made), and so do the zeros of the
//! segment it becomes until they are written over or trimmed. It is never allowed to take
//! the disk: one is made only while the file system has at least twice its size free
//! (`statvfs`), and when an append fails with ENOSPC the writer releases it at once
//! ([`Spares::release`]: deleted, or its filling stopped) and retries the append in the
//! space it leaves. No new one is made until the disk has room again.
//!
//! Filling costs one extra write of each segment's size, at low priority and synced every
//! 8 MiB so it never queues a large burst in front of the writer's fsyncs.
//! It is on by default ([`crate::SpoolOptions::preallocate`]).

use crate::recovery::remove_if_present;
use crate::{Shared, lock};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;

/// The ready spare segment: it exists only once complete and durable.
pub(crate) const SPARE_FILE: &str = "spare";
/// A spare being filled.
pub(crate) const SPARE_TMP: &str = "spare.tmp";
/// Zeros written per call.
const CHUNK: usize = 1 << 20;
/// The filling thread's nice value (the lowest).
const FILLER_NICE: i32 = 19;
/// Bytes written between two `fdatasync`s while filling.
const SYNC_EVERY: u64 = 8 << 20;
/// A spare is made only while the file system has this many times its size free.
const FREE_SPACE_FACTOR: u64 = 2;

#[derive(Debug)]
enum Job {
    /// Make a spare if none is ready.
    Prepare,
    /// Cut a sealed segment's zero tail: its records end at `len`.
    Trim { first: u64, path: PathBuf, len: u64 },
}

#[derive(Debug)]
struct Filler {
    shared: Arc<Shared>,
    /// Size of every spare.
    bytes: u64,
    stop: AtomicBool,
    /// Set by [`Spares::release`]: a fill in progress gives up.
    released: AtomicBool,
    /// Held while `spare` appears (the fill's rename) or is released, so a release never
    /// misses a spare that appears at the same moment.
    publish: Mutex<()>,
    /// Notified (with the state's mutex) when the spare's space is given back.
    unreserved: Condvar,
}

/// The spare segment and the thread that prepares it. Owned by the writer thread; dropping it
/// stops the thread (an unfinished `spare.tmp` is deleted at the next `open`).
#[derive(Debug)]
pub(crate) struct Spares {
    filler: Arc<Filler>,
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Spares {
    /// Cleans up what an earlier run left (keeping a complete spare of the right size if it
    /// fits under `max_bytes`, and counting it) and starts the thread, which prepares a spare
    /// at once if there is none.
    pub(crate) fn start(shared: &Arc<Shared>) -> io::Result<Spares> {
        let dir = &shared.dir;
        let bytes = shared.opts.spare_bytes().unwrap_or(0);
        remove_if_present(&dir.join(SPARE_TMP))?;
        let spare = dir.join(SPARE_FILE);
        match fs::metadata(&spare) {
            Ok(meta) => {
                let mut st = lock(&shared.state);
                if meta.len() == bytes && st.bytes_on_disk + bytes <= shared.opts.max_bytes {
                    st.bytes_on_disk += bytes;
                    st.spare_bytes = bytes;
                } else {
                    drop(st);
                    remove_if_present(&spare)?;
                }
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        let filler = Arc::new(Filler {
            shared: Arc::clone(shared),
            bytes,
            stop: AtomicBool::new(false),
            released: AtomicBool::new(false),
            publish: Mutex::new(()),
            unreserved: Condvar::new(),
        });
        let (tx, rx) = mpsc::channel();
        let worker = Arc::clone(&filler);
        let thread =
            std::thread::Builder::new().name("gatelog-spool-prealloc".into()).spawn(move || worker.run(&rx))?;
        let spares = Spares { filler, tx: Some(tx), thread: Some(thread) };
        spares.send(Job::Prepare);
        Ok(spares)
    }

    fn send(&self, job: Job) {
        if let Some(tx) = &self.tx {
            // The thread only ends when `Spares` is dropped, so this cannot fail before.
            let _ = tx.send(job);
        }
    }

    /// Moves the ready spare to `path` and opens it: the file and its length, which moves
    /// from the spare's share of `bytes_on_disk` to the segment's (the caller records the
    /// segment). `None` if no spare is ready, or if it could not be moved (logged): the
    /// caller then creates the segment as usual. Either way the next spare is asked for.
    pub(crate) fn take(&self, path: &Path) -> Option<(File, u64)> {
        let spare = self.filler.shared.dir.join(SPARE_FILE);
        let moved = fs::rename(&spare, path);
        if moved.is_ok() {
            // Before the next spare is asked for, which needs the spare's share free.
            let mut st = lock(&self.filler.shared.state);
            st.spare_bytes = st.spare_bytes.saturating_sub(self.filler.bytes);
        }
        self.send(Job::Prepare);
        let opened = moved.and_then(|()| OpenOptions::new().read(true).write(true).open(path));
        match opened {
            Ok(file) => {
                self.filler.shared.metrics.segment_preallocated();
                Some((file, self.filler.bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(spare = %spare.display(), segment = %path.display(), error = %e,
                    "cannot use the preallocated spool segment; creating an empty one");
                // If it moved, the segment is recorded at length 0 and its length stays in
                // `bytes_on_disk` (over-counted) until the spool reopens.
                None
            }
        }
    }

    /// Asks for a sealed segment's zeros after `len` to be cut.
    pub(crate) fn trim(&self, first: u64, path: PathBuf, len: u64) {
        self.send(Job::Trim { first, path, len });
    }

    /// Gives the spare's space back (the disk or the spool is full, `why`): deletes a ready
    /// spare and stops a fill in progress. True if that freed space. The next spare is made
    /// once there is room for it again (see the module docs).
    pub(crate) fn release(&self, why: &'static str) -> bool {
        let filler = &self.filler;
        filler.released.store(true, Ordering::SeqCst);
        let publishing = lock(&filler.publish);
        let spare = filler.shared.dir.join(SPARE_FILE);
        match fs::remove_file(&spare) {
            Ok(()) => {
                filler.unreserve();
                tracing::info!(dir = %filler.shared.dir.display(), bytes = filler.bytes, why,
                    "spool: released the preallocated spare segment");
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                drop(publishing);
                // A fill in progress notices within one chunk; wait (bounded) for its space.
                let st = lock(&filler.shared.state);
                let filling = st.spare_bytes > 0;
                let timeout = std::time::Duration::from_secs(1);
                drop(filler.unreserved.wait_timeout_while(st, timeout, |st| st.spare_bytes > 0));
                filling
            }
            Err(e) => {
                tracing::warn!(spare = %spare.display(), error = %e, "cannot delete the spool's spare segment");
                false
            }
        }
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        self.filler.stop.store(true, Ordering::SeqCst);
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Filler {
    fn run(&self, rx: &mpsc::Receiver<Job>) {
        // Filling only prepares the next segment: it yields the CPU to everything else.
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), FILLER_NICE) {
            tracing::debug!(error = %e, "cannot lower the spool preallocation thread's priority");
        }
        while let Ok(job) = rx.recv() {
            match job {
                Job::Trim { first, path, len } => self.trim(first, &path, len),
                Job::Prepare => self.prepare(),
            }
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Makes a spare, if none is ready and there is room for one.
    fn prepare(&self) {
        let dir = &self.shared.dir;
        if dir.join(SPARE_FILE).exists() {
            return;
        }
        // Cleared first: a release from now on stops this fill.
        self.released.store(false, Ordering::SeqCst);
        match free_bytes(dir) {
            Ok(free) if free >= FREE_SPACE_FACTOR * self.bytes => {}
            Ok(free) => {
                tracing::debug!(dir = %dir.display(), free, spare = self.bytes,
                    "spool: disk short of space; no spare segment for now");
                return;
            }
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot read the free space of the spool's disk")
            }
        }
        {
            let mut st = lock(&self.shared.state);
            if st.spare_bytes > 0 || st.bytes_on_disk + self.bytes > self.shared.opts.max_bytes {
                return;
            }
            st.bytes_on_disk += self.bytes;
            st.spare_bytes = self.bytes;
        }
        if let Err(e) = self.fill() {
            let _ = fs::remove_file(dir.join(SPARE_TMP));
            self.unreserve();
            let quiet = self.stop.load(Ordering::SeqCst)
                || self.released.load(Ordering::SeqCst)
                || matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded);
            if quiet {
                tracing::debug!(dir = %dir.display(), error = %e, "spool: spare segment not made");
            } else {
                tracing::warn!(dir = %dir.display(), bytes = self.bytes, error = %e,
                    "cannot preallocate the next spool segment; it will grow as it is written (slower fsyncs)");
            }
        }
    }

    /// Gives the spare's share of `bytes_on_disk` back.
    fn unreserve(&self) {
        let mut st = lock(&self.shared.state);
        st.bytes_on_disk -= st.spare_bytes;
        st.spare_bytes = 0;
        self.unreserved.notify_all();
    }

    /// Writes `spare.tmp` full of zeros, makes it durable and renames it to `spare`.
    fn fill(&self) -> io::Result<()> {
        let dir = &self.shared.dir;
        let size = self.bytes;
        let tmp = dir.join(SPARE_TMP);
        let file = File::create(&tmp)?;
        let zeros = vec![0u8; CHUNK];
        let mut written = 0u64;
        let stopped = || self.stop.load(Ordering::SeqCst) || self.released.load(Ordering::SeqCst);
        while written < size {
            if stopped() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "the spool is closing or short of space"));
            }
            let n = usize::try_from(size - written).map_or(CHUNK, |left| left.min(CHUNK));
            file.write_all_at(&zeros[..n], written)?;
            written += n as u64;
            if written.is_multiple_of(SYNC_EVERY) {
                file.sync_data()?;
            }
        }
        file.sync_all()?;
        drop(file);
        let publishing = lock(&self.publish);
        if stopped() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "the spool is closing or short of space"));
        }
        let renamed = fs::rename(&tmp, dir.join(SPARE_FILE));
        drop(publishing);
        renamed
    }

    /// Cuts a sealed segment back to its records. A segment already deleted (every consumer
    /// was done with it) needs nothing.
    fn trim(&self, first: u64, path: &Path, len: u64) {
        let result =
            OpenOptions::new().write(true).open(path).and_then(|f| f.set_len(len).and_then(|()| f.sync_data()));
        match result {
            Ok(()) => lock(&self.shared.state).set_file_len(first, len),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %path.display(), len, error = %e,
                "cannot trim the preallocated zeros of a sealed spool segment; they stay until it is deleted"),
        }
    }
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
fn free_bytes(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}
