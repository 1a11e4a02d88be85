//! `Spool::open`: the lock, the `acks` file, the segments checked against what was
//! acknowledged, the torn tail, and the threads.

use crate::acks::AcksFile;
use crate::metrics::Metrics;
use crate::recovery::{self, Acked};
use crate::writer::{Active, Writer};
use crate::{Handle, SegmentInfo, Shared, Spool, SpoolError, SpoolOptions, State, format, prealloc};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::watch;

pub(crate) fn open(dir: &Path, opts: SpoolOptions) -> Result<Spool, SpoolError> {
    opts.validate()?;
    fs::create_dir_all(dir).map_err(|e| SpoolError::io("creating directory", dir, e))?;
    let lock_file = lock_dir(dir)?;
    let acks = AcksFile::open(dir, opts.fsync)?;
    let acked = Acked::new(acks.mark, &acks.consumers);

    let mut found = list_segments(dir)?;
    let metrics = Metrics::default();
    let (last_first, last_path) = match found.pop() {
        Some(last) => last,
        None if acked.seq > 0 => {
            return Err(SpoolError::Corrupt {
                file: dir.to_path_buf(),
                offset: 0,
                detail: format!(
                    "the spool holds no segment, but records up to {} were acknowledged ({}); {}",
                    acked.seq,
                    acked.why,
                    recovery::lost_advice(acked.seq)
                ),
            });
        }
        None => {
            let path = dir.join(format::segment_file_name(1));
            File::create(&path).map_err(|e| SpoolError::io("creating segment", &path, e))?;
            recovery::sync_dir(dir)?;
            metrics.segment_created();
            (1, path)
        }
    };
    // Everything is checked before anything is changed: a refused open leaves the files as
    // they were, for the operator (or `repair`) to look at.
    let scan = recovery::scan_last(&last_path, last_first, &acked)?;
    let mut segments = BTreeMap::new();
    let mut bytes_on_disk = 0;
    let nexts: Vec<u64> = found.iter().skip(1).map(|(first, _)| *first).chain([last_first]).collect();
    let newest_sealed = found.len().checked_sub(1);
    for (i, ((first, path), next_first)) in found.into_iter().zip(nexts).enumerate() {
        // The newest records are read in full: the last segment's above, and the segment
        // before it when the last holds none yet (the writer starts one ahead of time).
        let payloads = Some(i) == newest_sealed && scan.last_seq < last_first;
        let sealed = recovery::check_sealed(&path, first, next_first, &acked, payloads)?;
        bytes_on_disk += sealed.file_len;
        segments.insert(first, SegmentInfo { path, bytes: sealed.records_end, file_len: sealed.file_len });
    }
    let oldest = segments.keys().next().copied().unwrap_or(last_first);
    check_consumers_have_their_records(&acks.consumers, oldest, &segments, &last_path, acked.seq)?;

    let mut file_len = scan.file_len;
    if let Some((offset, detail)) = &scan.torn {
        // Above everything acknowledged: a write the crash interrupted, never answered.
        tracing::info!(file = %last_path.display(), offset, detail = %detail, acknowledged_up_to = acked.seq,
            "spool: cutting a torn tail left by a crash (a write that was never acknowledged)");
        let f =
            OpenOptions::new().write(true).open(&last_path).map_err(|e| SpoolError::io("opening", &last_path, e))?;
        f.set_len(scan.valid_len)
            .and_then(|()| f.sync_all())
            .map_err(|e| SpoolError::io("truncating torn tail of", &last_path, e))?;
        file_len = scan.valid_len;
        metrics.torn_tail();
    }
    let last_seq = scan.last_seq;
    let (acks_file, mut mark_slots, consumers, consumer_slots) =
        (acks.file, acks.mark_slots, acks.consumers, acks.consumer_slots);
    // Every record here is readable from now on: acknowledged, whether or not its appender
    // heard so before a crash. Its number is never handed out again.
    if last_seq > acks.mark {
        mark_slots.write_mark(&acks_file, last_seq)?;
        acks_file.sync()?;
        mark_slots.synced();
    }
    bytes_on_disk += file_len;
    segments.insert(last_first, SegmentInfo { path: last_path.clone(), bytes: scan.valid_len, file_len });
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&last_path)
        .map_err(|e| SpoolError::io("opening segment", &last_path, e))?;

    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        opts,
        state: Mutex::new(State { segments, last_seq, bytes_on_disk, spare_bytes: 0, consumers }),
        durable: watch::Sender::new(last_seq),
        closed: AtomicBool::new(false),
        metrics,
        acks: acks_file,
        gc_lock: Mutex::new(consumer_slots),
        #[cfg(test)]
        faults: Mutex::new(crate::Faults::default()),
    });
    let spares = match opts.spare_bytes() {
        Some(_) => {
            let started = prealloc::Spares::start(&shared);
            Some(started.map_err(|e| SpoolError::io("preparing a spare segment in", dir, e))?)
        }
        None => {
            recovery::remove_if_present(&dir.join(prealloc::SPARE_FILE))
                .map_err(|e| SpoolError::io("removing the spare segment in", dir, e))?;
            None
        }
    };
    let (tx, rx) = mpsc::channel();
    // Past `valid_len` there may be the zeros of a preallocated segment: written next.
    let active = Active { first_seq: last_first, path: last_path, file, len: scan.valid_len, file_len };
    let writer = Writer::new(Arc::clone(&shared), rx, active, mark_slots, spares, lock_file);
    let thread = std::thread::Builder::new()
        .name("gatelog-spool-writer".into())
        .spawn(move || writer.run())
        .map_err(|e| SpoolError::io("starting the writer thread for", dir, e))?;
    Ok(Spool { handle: Arc::new(Handle { shared, tx: Some(tx), thread: Some(thread) }) })
}

/// The segment files in `dir`, by first sequence number.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| SpoolError::io("listing", dir, e))? {
        let entry = entry.map_err(|e| SpoolError::io("listing", dir, e))?;
        if let Some(first) = entry.file_name().to_str().and_then(format::parse_segment_file_name) {
            found.push((first, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Takes the directory's `LOCK` (one process per spool).
pub(crate) fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    let lock_path = dir.join("LOCK");
    let lock_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| SpoolError::io("opening", &lock_path, e))?;
    match lock_file.try_lock() {
        Ok(()) => Ok(lock_file),
        Err(TryLockError::WouldBlock) => Err(SpoolError::Locked(dir.to_path_buf())),
        Err(TryLockError::Error(e)) => Err(SpoolError::io("locking", &lock_path, e)),
    }
}

/// A consumer's records are deleted only once it acknowledged them, so the records after
/// each recorded position must all still be there: from `oldest` on.
fn check_consumers_have_their_records(
    consumers: &BTreeMap<String, u64>,
    oldest: u64,
    segments: &BTreeMap<u64, SegmentInfo>,
    last_path: &Path,
    acked: u64,
) -> Result<(), SpoolError> {
    let Some((name, seq)) = consumers.iter().filter(|(_, seq)| **seq + 1 < oldest).min_by_key(|(_, seq)| **seq) else {
        return Ok(());
    };
    let file: PathBuf = segments.values().next().map_or_else(|| last_path.to_path_buf(), |s| s.path.clone());
    Err(SpoolError::Corrupt {
        file,
        offset: 0,
        detail: format!(
            "consumer {name} committed up to record {seq}, but the oldest record in the spool is {oldest}: \
             records {}..={} were deleted before it read them (a segment file was removed?); {}",
            seq + 1,
            oldest - 1,
            recovery::lost_advice(acked)
        ),
    })
}
