//! Preallocated segments: spares taken and trimmed, zeros after the last record, leftovers,
//! and the spare's place in `max_bytes`.

use crate::format::segment_file_name;
use crate::prealloc::{SPARE_FILE, SPARE_TMP};
use crate::{Record, Spool, SpoolError, SpoolOptions, record_size};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
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
    // The first segment (made before the spare was ready), the active one and the next
    // spare: the zeros count, as on disk.
    assert_eq!(spool.stats().bytes_on_disk, rec * 9);
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

/// Bytes of the segment and spare files in `dir`.
fn files_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg") || e.file_name() == SPARE_FILE)
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[tokio::test]
async fn the_spare_counts_in_max_bytes_and_is_given_back_when_the_spool_is_full() {
    let dir = TempDir::new().unwrap();
    let rec = record_size(100);
    // Segments of 8 records; the spare is a sixteenth of max_bytes: 2 records' worth.
    let o = SpoolOptions { max_bytes: rec * 32, max_record_bytes: 100, ..opts(rec * 8) };
    assert_eq!(o.spare_bytes(), Some(rec * 2));
    let spool = Spool::open(dir.path(), o).unwrap();
    spool.register_consumer("sink", 0).unwrap();
    let spare = dir.path().join(SPARE_FILE);
    eventually("the first spare", || spare.exists()).await;
    assert_eq!((len(&spare), spool.stats().bytes_on_disk), (rec * 2, rec * 2));
    let mut n = 0;
    let full = loop {
        match spool.append(payload(n + 1)).await {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(files_bytes(dir.path()) <= o.max_bytes);
        assert!(n < 64, "never full");
    };
    let SpoolError::Full { used, max, .. } = full else { panic!("{full}") };
    assert!(used <= max, "{used} > {max}");
    // Full: the spare went first, so records took nearly all of max_bytes (less the
    // zeros of sealed segments not trimmed yet).
    assert!(!spare.exists(), "the spare is given back to records when the spool is full");
    assert!(n >= 28, "only {n} records fit in room for 32");
    eventually("counted bytes matching the files", || files_bytes(dir.path()) == spool.stats().bytes_on_disk).await;
    // Consumed: space for records again, and a spare once it fits.
    spool.ack("sink", n).unwrap();
    for i in 0..10 {
        spool.append(payload(n + 1 + i)).await.unwrap();
    }
    eventually("a spare once it fits again", || spare.exists()).await;
    assert!(spool.stats().bytes_on_disk <= o.max_bytes);
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
