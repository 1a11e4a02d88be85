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
//! - A thread at background priority fills `spare.tmp` with zeros up to `segment_bytes`,
//!   fsyncs it and renames it to `spare`, so `spare` exists only once it is complete. A crash in between leaves `spare.tmp`, which the next
//!   `open` deletes; a `spare` of the wrong size (the segment size changed) is deleted too.
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
//! Filling costs one extra write of each segment's size, at low priority and synced every
//! 8 MiB so it never queues a large burst in front of the writer's fsyncs.
//! It is on by default ([`crate::SpoolOptions::preallocate`]).

use crate::Shared;
use crate::recovery::remove_if_present;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

/// The ready spare segment: it exists only once complete and durable.
pub(crate) const SPARE_FILE: &str = "spare";
/// A spare being filled.
const SPARE_TMP: &str = "spare.tmp";
/// Zeros written per call.
const CHUNK: usize = 1 << 20;
/// The filling thread's nice value (the lowest).
const FILLER_NICE: i32 = 19;
/// Bytes written between two `fdatasync`s while filling.
const SYNC_EVERY: u64 = 8 << 20;

#[derive(Debug)]
enum Job {
    /// Make a spare if none is ready.
    Prepare,
    /// Cut a sealed segment's zero tail: its records end at `len`.
    Trim { path: PathBuf, len: u64 },
}

#[derive(Debug)]
struct Filler {
    shared: Arc<Shared>,
    stop: AtomicBool,
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
    /// Cleans up what an earlier run left (keeping a complete spare of the right size) and
    /// starts the thread, which prepares a spare at once if there is none.
    pub(crate) fn start(shared: &Arc<Shared>) -> io::Result<Spares> {
        let dir = &shared.dir;
        remove_if_present(&dir.join(SPARE_TMP))?;
        let spare = dir.join(SPARE_FILE);
        match fs::metadata(&spare) {
            Ok(meta) if meta.len() != shared.opts.segment_bytes => remove_if_present(&spare)?,
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let filler = Arc::new(Filler { shared: Arc::clone(shared), stop: AtomicBool::new(false) });
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

    /// Moves the ready spare to `path` and opens it. `None` if no spare is ready, or if it
    /// could not be moved (logged): the caller then creates the segment as usual. Either way
    /// the next spare is asked for.
    pub(crate) fn take(&self, path: &Path) -> Option<File> {
        let spare = self.filler.shared.dir.join(SPARE_FILE);
        let moved = fs::rename(&spare, path);
        self.send(Job::Prepare);
        let opened = moved.and_then(|()| OpenOptions::new().read(true).write(true).open(path));
        match opened {
            Ok(file) => {
                self.filler.shared.metrics.segment_preallocated();
                Some(file)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(spare = %spare.display(), segment = %path.display(), error = %e,
                    "cannot use the preallocated spool segment; creating an empty one");
                None
            }
        }
    }

    /// Asks for a sealed segment's zeros after `len` to be cut.
    pub(crate) fn trim(&self, path: PathBuf, len: u64) {
        self.send(Job::Trim { path, len });
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
        let dir = &self.shared.dir;
        while let Ok(job) = rx.recv() {
            match job {
                Job::Trim { path, len } => trim(&path, len),
                Job::Prepare if dir.join(SPARE_FILE).exists() => {}
                Job::Prepare => {
                    if let Err(e) = self.fill() {
                        let _ = fs::remove_file(dir.join(SPARE_TMP));
                        if self.stop.load(Ordering::SeqCst) {
                            return;
                        }
                        tracing::warn!(dir = %dir.display(), bytes = self.shared.opts.segment_bytes, error = %e,
                            "cannot preallocate the next spool segment; it will grow as it is written (slower fsyncs)");
                    }
                }
            }
        }
    }

    /// Writes `spare.tmp` full of zeros, makes it durable and renames it to `spare`.
    fn fill(&self) -> io::Result<()> {
        let dir = &self.shared.dir;
        let size = self.shared.opts.segment_bytes;
        let tmp = dir.join(SPARE_TMP);
        let file = File::create(&tmp)?;
        let zeros = vec![0u8; CHUNK];
        let mut written = 0u64;
        while written < size {
            if self.stop.load(Ordering::SeqCst) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "the spool is closing"));
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
        fs::rename(&tmp, dir.join(SPARE_FILE))
    }
}

/// Cuts a sealed segment back to its records. A segment already deleted (every consumer was
/// done with it) needs nothing.
fn trim(path: &Path, len: u64) {
    let result = OpenOptions::new().write(true).open(path).and_then(|f| f.set_len(len).and_then(|()| f.sync_data()));
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(file = %path.display(), len, error = %e,
            "cannot trim the preallocated zeros of a sealed spool segment; they stay until it is deleted"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::segment_file_name;
    use crate::{Record, Spool, SpoolError, SpoolOptions, record_size};
    use tempfile::TempDir;

    fn opts(segment_bytes: u64) -> SpoolOptions {
        SpoolOptions { segment_bytes, max_bytes: 1 << 30, max_record_bytes: 1 << 20, fsync: true, preallocate: true }
    }

    fn payload(i: u64) -> Vec<u8> {
        let mut p = format!("record-{i}-").into_bytes();
        p.resize(100, b'a' + (i % 26) as u8);
        p
    }

    async fn read_all(spool: &Spool) -> Result<Vec<Record>, SpoolError> {
        let mut reader = spool.reader(0);
        let mut out = Vec::new();
        while let Some(record) = reader.try_next().await? {
            out.push(record);
        }
        Ok(out)
    }

    fn len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    /// Waits (at most 10 s) for something the preallocation thread does.
    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// A spool of segments that hold `records` 100-byte records, once its first spare is
    /// ready; with the directory, the options and one record's size.
    async fn spool_with_spare(records: u64) -> (TempDir, Spool, SpoolOptions, u64) {
        let dir = TempDir::new().unwrap();
        let rec = record_size(100);
        let o = opts(rec * records);
        let spool = Spool::open(dir.path(), o).unwrap();
        let spare = dir.path().join(SPARE_FILE);
        eventually("the first spare", || spare.exists()).await;
        (dir, spool, o, rec)
    }

    #[tokio::test]
    async fn new_segments_start_on_the_spare_and_sealed_ones_are_trimmed() {
        let (dir, spool, o, rec) = spool_with_spare(3).await;
        let spare = dir.path().join(SPARE_FILE);
        assert_eq!(len(&spare), rec * 3);
        for i in 1..=4 {
            assert_eq!(spool.append(payload(i)).await.unwrap(), i);
        }
        let [first, second] = &spool.segment_paths()[..] else { panic!("{:?}", spool.segment_paths()) };
        assert_eq!(spool.metrics().segments_preallocated, 1);
        // The active segment is the spare, written over; the sealed one loses its zeros.
        assert_eq!(len(second), rec * 3);
        eventually("the sealed segment's trim", || len(first) == rec * 3).await;
        eventually("the next spare", || spare.exists()).await;
        assert_eq!(spool.stats().bytes_on_disk, rec * 4);
        let all = read_all(&spool).await.unwrap();
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        spool.close().await.unwrap();

        // After a restart the zeros after record 4 are the end of the data, not a torn tail:
        // kept, and written over next.
        let spool = Spool::open(dir.path(), o).unwrap();
        assert_eq!((spool.last_seq(), spool.metrics().torn_tail_truncations), (4, 0));
        assert_eq!(len(second), rec * 3);
        assert_eq!(spool.append(payload(5)).await.unwrap(), 5);
        assert_eq!(len(second), rec * 3);
        drop(spool);
        let spool = Spool::open(dir.path(), o).unwrap();
        let all = read_all(&spool).await.unwrap();
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(all[4].payload, payload(5));
    }

    #[tokio::test]
    async fn a_full_segment_is_followed_by_the_next_before_any_append_asks_for_it() {
        let (dir, spool, o, rec) = spool_with_spare(2).await;
        for i in 1..=2 {
            spool.append(payload(i)).await.unwrap();
        }
        // Records like these no longer fit: the idle writer starts segment 3 on the spare.
        eventually("the next segment", || spool.segment_paths().len() == 2).await;
        let paths = spool.segment_paths();
        assert_eq!(paths[1], dir.path().join(segment_file_name(3)));
        assert_eq!((len(&paths[1]), spool.metrics().segments_preallocated), (rec * 2, 1));
        eventually("the sealed segment's trim", || len(&paths[0]) == rec * 2).await;
        // A crash now leaves a last segment of zeros only: numbering goes on from its name.
        drop(spool);
        let spool = Spool::open(dir.path(), o).unwrap();
        assert_eq!((spool.last_seq(), spool.metrics().torn_tail_truncations), (2, 0));
        assert_eq!(spool.append(payload(3)).await.unwrap(), 3);
        let all = read_all(&spool).await.unwrap();
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(spool.segment_paths()[1], paths[1]);
    }

    #[tokio::test]
    async fn a_reader_that_read_ahead_into_the_zeros_sees_records_written_there_later() {
        let dir = TempDir::new().unwrap();
        let o = SpoolOptions { preallocate: false, ..opts(1 << 20) };
        let spool = Spool::open(dir.path(), o).unwrap();
        spool.append(payload(1)).await.unwrap();
        let seg = spool.segment_paths()[0].clone();
        spool.close().await.unwrap();
        OpenOptions::new().write(true).open(&seg).unwrap().set_len(1 << 20).unwrap();
        let spool = Spool::open(dir.path(), o).unwrap();
        let mut reader = spool.reader(0);
        // Reading record 1 buffers what follows it: zeros, at that moment.
        assert_eq!(reader.try_next().await.unwrap().unwrap().seq, 1);
        assert!(reader.try_next().await.unwrap().is_none());
        for i in 2..=3 {
            spool.append(payload(i)).await.unwrap();
            let record = reader.try_next().await.unwrap().unwrap();
            assert_eq!((record.seq, record.payload), (i, payload(i)));
        }
    }

    #[tokio::test]
    async fn a_sealed_segment_left_untrimmed_by_a_crash_still_reads() {
        let dir = TempDir::new().unwrap();
        let rec = record_size(100);
        let o = SpoolOptions { preallocate: false, ..opts(rec * 2) };
        let spool = Spool::open(dir.path(), o).unwrap();
        for i in 1..=3 {
            spool.append(payload(i)).await.unwrap();
        }
        let first = spool.segment_paths()[0].clone();
        spool.close().await.unwrap();
        // What a crash between sealing and trimming leaves: zeros after record 2.
        OpenOptions::new().write(true).open(&first).unwrap().set_len(rec * 5).unwrap();
        let spool = Spool::open(dir.path(), o).unwrap();
        let all = read_all(&spool).await.unwrap();
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(spool.append(payload(4)).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn leftovers_of_an_earlier_run_are_cleaned_up_or_adopted() {
        let rec = record_size(100);
        let o = opts(rec * 2);
        // An unfinished fill is deleted; a spare of another size too (and a new one made).
        let dir = TempDir::new().unwrap();
        fs::write(dir.path().join(SPARE_TMP), [0u8; 10]).unwrap();
        fs::write(dir.path().join(SPARE_FILE), [0u8; 10]).unwrap();
        let spool = Spool::open(dir.path(), o).unwrap();
        assert!(!dir.path().join(SPARE_TMP).exists() || len(&dir.path().join(SPARE_TMP)) != 10);
        let spare = dir.path().join(SPARE_FILE);
        eventually("a spare of the configured size", || spare.exists() && len(&spare) == rec * 2).await;
        drop(spool);
        // A complete spare of the right size is used as it is.
        let dir = TempDir::new().unwrap();
        fs::write(dir.path().join(SPARE_FILE), vec![0u8; usize::try_from(rec * 2).unwrap()]).unwrap();
        let spool = Spool::open(dir.path(), o).unwrap();
        for i in 1..=3 {
            spool.append(payload(i)).await.unwrap();
        }
        assert!(spool.metrics().segments_preallocated >= 1);
        assert_eq!(read_all(&spool).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_torn_write_into_preallocated_zeros_is_cut() {
        let dir = TempDir::new().unwrap();
        let rec = record_size(100);
        let o = SpoolOptions { preallocate: false, ..opts(rec * 4) };
        let spool = Spool::open(dir.path(), o).unwrap();
        spool.append(payload(1)).await.unwrap();
        let seg = spool.segment_paths()[0].clone();
        spool.close().await.unwrap();
        // Half of record 2 reached the disk, then the preallocated zeros.
        let mut second = Vec::new();
        crate::format::encode_into(&mut second, 2, &payload(2));
        let file = OpenOptions::new().write(true).open(&seg).unwrap();
        file.write_all_at(&second[..60], rec).unwrap();
        file.set_len(rec * 4).unwrap();
        let spool = Spool::open(dir.path(), o).unwrap();
        assert_eq!((spool.last_seq(), spool.metrics().torn_tail_truncations), (1, 1));
        assert_eq!(len(&seg), rec);
        assert_eq!(spool.append(payload(2)).await.unwrap(), 2);
    }
}
