//! `repair`: after `open` refused, the loss is accepted explicitly; every intact record
//! stays with its number, lost numbers become gaps readers skip, and numbering goes on after
//! everything acknowledged.

use super::acked::{flip, four_a_segment, rec, seg, snapshot, ten_records, truncate};
use super::*;
use tempfile::TempDir;

/// The sequence numbers a reader from `after` returns.
async fn seqs(spool: &Spool, after: u64) -> Vec<u64> {
    read_all(spool, after).await.unwrap().iter().map(|r| r.seq).collect()
}

/// Repairs, checks the lost runs, opens, and checks what reads back and what comes next.
async fn repaired(dir: &Path, lost: &[(u64, u64)], readable: &[u64]) -> Spool {
    assert!(matches!(Spool::open(dir, four_a_segment()), Err(SpoolError::Corrupt { .. })), "open refuses first");
    let report = repair(dir).unwrap();
    eprintln!("{report}");
    assert_eq!(report.lost.iter().map(|l| (l.first, l.last)).collect::<Vec<_>>(), lost, "{report}");
    assert_eq!(report.last_seq, 10);
    // Nothing more to do a second time.
    let again = repair(dir).unwrap();
    assert!(again.lost.is_empty() && again.set_aside.is_empty(), "{again}");
    let spool = Spool::open(dir, four_a_segment()).unwrap();
    assert_eq!(seqs(&spool, 0).await, readable);
    for r in read_all(&spool, 0).await.unwrap() {
        assert_eq!(r.payload, payload(r.seq, 100), "record {} kept as it was", r.seq);
    }
    // A reader from inside a gap starts after it.
    for (first, last) in lost {
        let after: Vec<u64> = readable.iter().copied().filter(|s| s > last).collect();
        assert_eq!(seqs(&spool, *first).await, after);
    }
    assert_eq!(spool.append(b"eleven".to_vec()).await.unwrap(), 11, "no acknowledged number is reused");
    spool
}

#[tokio::test]
async fn every_damaged_tail_shape_is_repaired_keeping_every_intact_record() {
    let all: Vec<u64> = (1..=10).collect();
    let but = |lost: &[u64]| all.iter().copied().filter(|s| !lost.contains(s)).collect::<Vec<_>>();

    let dir = TempDir::new().unwrap();
    ten_records(dir.path(), None, true).await;
    flip(&seg(dir.path(), 9), rec() + HEADER_LEN as u64 + 40);
    let spool = repaired(dir.path(), &[(10, 10)], &but(&[10])).await;
    assert!(dir.path().join("00000000000000000009.seg.damaged").exists(), "the original is kept aside");
    drop(spool);

    let dir = TempDir::new().unwrap();
    ten_records(dir.path(), None, false).await;
    truncate(&seg(dir.path(), 9), rec() + 50);
    drop(repaired(dir.path(), &[(10, 10)], &but(&[10])).await);

    let dir = TempDir::new().unwrap();
    ten_records(dir.path(), None, true).await;
    truncate(&seg(dir.path(), 9), 0);
    drop(repaired(dir.path(), &[(9, 10)], &but(&[9, 10])).await);

    let dir = TempDir::new().unwrap();
    ten_records(dir.path(), None, true).await;
    fs::remove_file(seg(dir.path(), 9)).unwrap();
    drop(repaired(dir.path(), &[(9, 10)], &but(&[9, 10])).await);

    // Damage with intact records after it, in the last segment and in a sealed one.
    let dir = TempDir::new().unwrap();
    ten_records(dir.path(), None, true).await;
    flip(&seg(dir.path(), 9), 20);
    flip(&seg(dir.path(), 1), rec() + 5);
    flip(&seg(dir.path(), 1), 2 * rec() + 60);
    drop(repaired(dir.path(), &[(2, 3), (9, 9)], &but(&[2, 3, 9])).await);

    // A sealed segment that ends early, and one lost from the middle.
    let dir = TempDir::new().unwrap();
    ten_records(dir.path(), None, true).await;
    truncate(&seg(dir.path(), 1), 3 * rec());
    fs::remove_file(seg(dir.path(), 5)).unwrap();
    let report = repair(dir.path()).unwrap();
    assert_eq!(report.lost.iter().map(|l| (l.first, l.last)).collect::<Vec<_>>(), [(4, 8)], "{report}");
    let spool = Spool::open(dir.path(), four_a_segment()).unwrap();
    assert_eq!(seqs(&spool, 0).await, [1, 2, 3, 9, 10]);
}

#[tokio::test]
async fn records_gone_from_the_front_become_a_gap_the_consumer_moves_past() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    ten_records(d, Some(2), true).await;
    fs::remove_file(seg(d, 1)).unwrap();
    assert!(matches!(Spool::open(d, four_a_segment()), Err(SpoolError::Corrupt { .. })));
    let report = repair(d).unwrap();
    assert_eq!(report.lost.iter().map(|l| (l.first, l.last)).collect::<Vec<_>>(), [(3, 4)], "{report}");
    let spool = Spool::open(d, four_a_segment()).unwrap();
    spool.register_consumer("clickhouse", 2).unwrap();
    assert_eq!(seqs(&spool, 2).await, [5, 6, 7, 8, 9, 10]);
    // Acknowledging past the gap deletes it like any segment.
    spool.ack("clickhouse", 8).unwrap();
    assert_eq!(spool.stats().first_seq, 9);
}

#[tokio::test]
async fn an_intact_spool_is_left_alone_and_an_open_one_is_not_touched() {
    let dir = TempDir::new().unwrap();
    ten_records(dir.path(), None, true).await;
    let before = snapshot(dir.path());
    let report = repair(dir.path()).unwrap();
    assert!(report.lost.is_empty() && report.to_string().contains("intact"), "{report}");
    assert_eq!(snapshot(dir.path()), before);
    let _spool = Spool::open(dir.path(), four_a_segment()).unwrap();
    assert!(matches!(repair(dir.path()), Err(SpoolError::Locked(_))));
}

#[tokio::test]
async fn an_acks_file_damaged_in_both_copies_is_set_aside_and_made_again() {
    let dir = TempDir::new().unwrap();
    ten_records(dir.path(), None, true).await;
    let acks = dir.path().join(crate::acks::ACKS_FILE);
    let mut bytes = fs::read(&acks).unwrap();
    for at in [0, 4096] {
        bytes[at] ^= 0xff;
    }
    fs::write(&acks, &bytes).unwrap();
    assert!(matches!(Spool::open(dir.path(), four_a_segment()), Err(SpoolError::Corrupt { .. })));
    let report = repair(dir.path()).unwrap();
    assert_eq!(report.set_aside, [dir.path().join("acks.damaged")], "{report}");
    let spool = Spool::open(dir.path(), four_a_segment()).unwrap();
    assert_eq!(spool.append(b"eleven".to_vec()).await.unwrap(), 11);
}
