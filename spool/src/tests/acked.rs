//! What was acknowledged must be there at `open`: every shape of a damaged or missing tail
//! below the acknowledged mark or a consumer's position is refused as corruption, naming the
//! file and offset and changing nothing; sequence numbers are never reused.

use super::*;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use tempfile::TempDir;

/// Four 100-byte records a segment: records 1-4, 5-8, 9-10 for ten records.
pub(super) fn four_a_segment() -> SpoolOptions {
    SpoolOptions { segment_bytes: record_size(100) * 4, ..opts() }
}

pub(super) fn rec() -> u64 {
    record_size(100)
}

pub(super) fn seg(dir: &Path, first: u64) -> PathBuf {
    dir.join(format::segment_file_name(first))
}

/// Ten records; `consumed` acknowledged by a consumer (deleting what it can). Closed cleanly
/// if `clean`, else dropped as a crash would leave it.
pub(super) async fn ten_records(dir: &Path, consumed: Option<u64>, clean: bool) {
    let spool = Spool::open(dir, four_a_segment()).unwrap();
    spool.register_consumer("clickhouse", 0).unwrap();
    for i in 1..=10 {
        assert_eq!(spool.append(payload(i, 100)).await.unwrap(), i);
    }
    if let Some(seq) = consumed {
        spool.ack("clickhouse", seq).unwrap();
    }
    if clean {
        spool.close().await.unwrap();
    }
}

/// Every file of the spool directory and its bytes, to show a refused open changed nothing.
pub(super) fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap()))
        .collect()
}

/// Opens, expects `Corrupt` at `file`/`offset` with every `words` in the detail, and checks
/// nothing was changed. Returns the report.
fn refused(dir: &Path, file: &Path, offset: u64, words: &[&str]) -> String {
    let before = snapshot(dir);
    let report = match Spool::open(dir, four_a_segment()) {
        Err(e @ SpoolError::Corrupt { .. }) => {
            let SpoolError::Corrupt { file: f, offset: o, detail } = &e else { unreachable!() };
            assert_eq!((f.as_path(), *o), (file, offset), "{detail}");
            for w in words {
                assert!(detail.contains(w), "{w:?} missing from: {detail}");
            }
            assert!(detail.contains("nothing was changed") && detail.contains("gatelog spool repair"), "{detail}");
            e.to_string()
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(spool) => panic!("opened at last_seq {} although acknowledged records are gone", spool.last_seq()),
    };
    assert_eq!(snapshot(dir), before, "a refused open changes nothing");
    eprintln!("{report}");
    report
}

pub(super) fn truncate(path: &Path, len: u64) {
    OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

pub(super) fn flip(path: &Path, at: u64) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
}

#[tokio::test]
async fn every_damaged_tail_below_what_appenders_were_answered_is_refused() {
    for clean in [true, false] {
        let shape = |what: &str| eprintln!("-- {what} (closed cleanly: {clean})");
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        ten_records(d, None, clean).await;
        let pristine = fs::read(seg(d, 9)).unwrap();
        let restore = || fs::write(seg(d, 9), &pristine).unwrap();

        shape("damaged last record");
        flip(&seg(d, 9), rec() + HEADER_LEN as u64 + 40);
        refused(d, &seg(d, 9), rec(), &["record 10 is damaged", "payload checksum", "up to 10 were acknowledged"]);
        restore();

        shape("last segment truncated mid-record");
        truncate(&seg(d, 9), rec() + 50);
        refused(d, &seg(d, 9), rec(), &["record 10 is damaged", "extends past the end", "appends answered up to 10"]);
        truncate(&seg(d, 9), rec() + 10);
        refused(d, &seg(d, 9), rec(), &["record 10 is damaged", "partial record header"]);
        restore();

        shape("last segment truncated at a record boundary");
        truncate(&seg(d, 9), rec());
        refused(
            d,
            &seg(d, 9),
            rec(),
            &["the spool ends at record 9", "up to 10 were acknowledged", "records 10..=10 are missing"],
        );
        truncate(&seg(d, 9), 0);
        refused(d, &seg(d, 9), 0, &["the spool ends at record 8", "records 9..=10 are missing"]);
        restore();

        shape("whole last segment lost");
        fs::remove_file(seg(d, 9)).unwrap();
        refused(d, &seg(d, 5), 4 * rec(), &["ends at record 8", "a later segment was lost"]);
        restore();

        // Restored, it opens, and numbering goes on after everything acknowledged.
        let spool = Spool::open(d, four_a_segment()).unwrap();
        assert_eq!(spool.append(b"eleven".to_vec()).await.unwrap(), 11);
    }
}

#[tokio::test]
async fn damage_after_the_consumers_acknowledged_and_deleted_is_refused_too() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    // Everything consumed: segments 1 and 5 are deleted, 9 (the active one) holds 9-10.
    ten_records(d, Some(10), false).await;
    assert!(!seg(d, 1).exists() && !seg(d, 5).exists());
    let pristine = fs::read(seg(d, 9)).unwrap();

    truncate(&seg(d, 9), rec());
    refused(d, &seg(d, 9), rec(), &["ends at record 9", "consumer clickhouse committed up to 10"]);
    flip(&seg(d, 9), 3);
    truncate(&seg(d, 9), pristine.len() as u64);
    refused(d, &seg(d, 9), 0, &["record 9 is damaged", "bad record magic"]);
    // The only segment lost: nothing holds the numbering any more but the acks file.
    fs::remove_file(seg(d, 9)).unwrap();
    refused(d, d, 0, &["the spool holds no segment", "up to 10 were acknowledged"]);
    fs::write(seg(d, 9), &pristine).unwrap();
    let spool = Spool::open(d, four_a_segment()).unwrap();
    assert_eq!(spool.append(b"eleven".to_vec()).await.unwrap(), 11);
}

#[tokio::test]
async fn a_consumers_position_alone_is_enough_to_refuse() {
    // A spool from before the acks file: its consumers file is all that says what was
    // acknowledged (the mark starts at the highest position).
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    ten_records(d, None, true).await;
    fs::remove_file(d.join(crate::acks::ACKS_FILE)).unwrap();
    let legacy: BTreeMap<String, u64> = [("clickhouse".to_string(), 9), ("index".to_string(), 2)].into();
    fs::write(d.join(crate::acks::LEGACY_CONSUMERS_FILE), crate::recovery::encode_legacy_consumers(&legacy)).unwrap();
    truncate(&seg(d, 9), 0);
    // The acks file is made from the old one before the check: that is the only change.
    let report = match Spool::open(d, four_a_segment()) {
        Err(e @ SpoolError::Corrupt { .. }) => e.to_string(),
        other => panic!("expected Corrupt, got {other:?}"),
    };
    assert!(
        report.contains("ends at record 8") && report.contains("consumer clickhouse committed up to 9"),
        "{report}"
    );
    // Records 10.. were never acknowledged as far as this spool knows: with 9 back, it opens.
    let mut nine = Vec::new();
    format::encode_into(&mut nine, 9, &payload(9, 100));
    fs::write(seg(d, 9), &nine).unwrap();
    let spool = Spool::open(d, four_a_segment()).unwrap();
    assert_eq!(spool.last_seq(), 9);
}

#[tokio::test]
async fn records_a_consumer_never_read_must_not_be_gone_from_the_front_either() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    ten_records(d, Some(2), true).await;
    // Segment 1 still holds 3 and 4, which clickhouse has not committed; someone deletes it.
    fs::remove_file(seg(d, 1)).unwrap();
    refused(d, &seg(d, 5), 0, &["consumer clickhouse committed up to record 2", "records 3..=4 were deleted"]);
}

#[tokio::test]
async fn sequence_numbers_are_never_reused_across_restarts_and_crashes() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let mut answered = Vec::new();
    for round in 0..6 {
        let spool = Spool::open(d, four_a_segment()).unwrap();
        if round == 0 {
            spool.register_consumer("s", 0).unwrap();
        }
        for i in 0..3 {
            answered.push(spool.append(payload(round * 10 + i, 100)).await.unwrap());
        }
        spool.ack("s", spool.last_seq() - 1).unwrap();
        match round % 3 {
            0 => spool.close().await.unwrap(),
            1 => drop(spool), // a crash after the fsync
            _ => {
                // A crash that tore a write nobody was answered for: cut, its number free.
                drop(spool);
                let last = fs::read_dir(d)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "seg"))
                    .max()
                    .unwrap();
                let len = fs::metadata(&last).unwrap().len();
                OpenOptions::new().write(true).open(&last).unwrap().write_all_at(b"GLSP\x01torn", len).unwrap();
            }
        }
    }
    let expected: Vec<u64> = (1..=18).collect();
    assert_eq!(answered, expected, "dense, and never handed out twice");
}

#[tokio::test]
async fn records_missing_before_a_later_segment_are_refused_too() {
    // Records 1-4 and 5-8 in two segments, then segment 9 started ahead of time (the idle
    // writer takes the spare when a segment is full): it holds no record, only a name.
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let spool = Spool::open(d, SpoolOptions { preallocate: true, ..four_a_segment() }).unwrap();
    for i in 1..=8 {
        spool.append(payload(i, 100)).await.unwrap();
    }
    for _ in 0..1000 {
        if seg(d, 9).exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    spool.close().await.unwrap();
    assert!(seg(d, 9).exists(), "segment 9 was started ahead of time");
    let pristine = fs::read(seg(d, 5)).unwrap();
    let restore = || fs::write(seg(d, 5), &pristine).unwrap();

    // The segment with the last records lost, the empty one after it kept (the same as a
    // segment lost between two others).
    fs::remove_file(seg(d, 5)).unwrap();
    refused(d, &seg(d, 1), 4 * rec(), &["stop at record 4", "starts at record 9", "records 5..=8 are missing"]);
    restore();
    // Cut at a record boundary and inside a record.
    truncate(&seg(d, 5), 3 * rec());
    refused(d, &seg(d, 5), 3 * rec(), &["stop at record 7 (the file ends there)", "records 8..=8 are missing"]);
    restore();
    truncate(&seg(d, 5), 0);
    refused(d, &seg(d, 5), 0, &["this sealed segment holds no record (the file ends there)", "records 5..=8"]);
    restore();
    truncate(&seg(d, 5), 3 * rec() + 30);
    refused(d, &seg(d, 5), 3 * rec(), &["runs past the end of the file", "up to 8 were acknowledged"]);
    restore();
    // A damaged header anywhere in a sealed segment.
    flip(&seg(d, 5), rec() + 9);
    refused(d, &seg(d, 5), rec(), &["header checksum mismatch in a sealed segment (record 6 expected)"]);
    restore();
    // The last record damaged: the newest records are read in full, in the segment before an
    // empty last one too.
    flip(&seg(d, 5), 3 * rec() + HEADER_LEN as u64 + 40);
    refused(d, &seg(d, 5), 3 * rec(), &["record 8 is damaged (payload checksum mismatch)", "were acknowledged"]);
    restore();
    // Repaired, the missing records are a gap and numbering goes on after them.
    fs::remove_file(seg(d, 5)).unwrap();
    let report = repair(d).unwrap();
    assert_eq!(report.lost.iter().map(|l| (l.first, l.last)).collect::<Vec<_>>(), [(5, 8)], "{report}");
    let spool = Spool::open(d, four_a_segment()).unwrap();
    assert_eq!(read_all(&spool, 0).await.unwrap().iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(spool.append(b"nine".to_vec()).await.unwrap(), 9);
}
