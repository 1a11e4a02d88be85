//! Segments and their deletion, restarts, a full spool or disk, group commit, closing.

use super::*;
use tempfile::TempDir;

#[tokio::test]
async fn segments_roll_over_and_are_named_by_their_first_seq() {
    let dir = TempDir::new().unwrap();
    let rec = record_size(100);
    let o = SpoolOptions { segment_bytes: rec * 3, ..opts() };
    let spool = Spool::open(dir.path(), o).unwrap();
    for i in 1..=10 {
        spool.append(payload(i, 100)).await.unwrap();
    }
    let names: Vec<String> =
        spool.segment_paths().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        [
            "00000000000000000001.seg",
            "00000000000000000004.seg",
            "00000000000000000007.seg",
            "00000000000000000010.seg"
        ]
    );
    let stats = spool.stats();
    assert_eq!(stats.segments, 4);
    assert_eq!(stats.bytes_on_disk, rec * 10);
    assert_eq!((stats.first_seq, stats.last_seq), (1, 10));
    // A record larger than a segment gets one of its own.
    assert_eq!(spool.append(payload(11, 1000)).await.unwrap(), 11);
    assert_eq!(spool.append(payload(12, 100)).await.unwrap(), 12);
    assert_eq!(spool.stats().segments, 6);
    let all = read_all(&spool, 0).await.unwrap();
    assert_eq!(all.len(), 12);
    assert_eq!(all[10].payload, payload(11, 1000));
    spool.close().await.unwrap();
    let spool = Spool::open(dir.path(), o).unwrap();
    assert_eq!(read_all(&spool, 0).await.unwrap(), all);
}

#[tokio::test]
async fn segments_are_deleted_only_below_every_consumers_ack() {
    let dir = TempDir::new().unwrap();
    let rec = record_size(100);
    let o = SpoolOptions { segment_bytes: rec * 2, ..opts() };
    let spool = Spool::open(dir.path(), o).unwrap();
    for i in 1..=10 {
        spool.append(payload(i, 100)).await.unwrap();
    }
    // Segments: 1-2, 3-4, 5-6, 7-8, 9-10. Nothing registered: nothing deleted.
    assert_eq!(spool.stats().segments, 5);
    spool.register_consumer("clickhouse", 0).unwrap();
    spool.register_consumer("tantivy", 0).unwrap();
    spool.ack("clickhouse", 10).unwrap();
    assert_eq!(spool.stats().segments, 5, "tantivy still needs everything");
    spool.ack("tantivy", 3).unwrap();
    assert_eq!(spool.stats().first_seq, 3, "1-2 deleted, 3-4 kept (4 not acked)");
    spool.ack("tantivy", 4).unwrap();
    assert_eq!(spool.stats().first_seq, 5);
    assert!(!dir.path().join(format::segment_file_name(1)).exists());
    assert!(!dir.path().join(format::segment_file_name(3)).exists());
    // Lower acks are ignored; unknown names are refused; acks beyond the end are refused.
    spool.ack("tantivy", 1).unwrap();
    assert!(matches!(spool.ack("nobody", 1), Err(SpoolError::UnknownConsumer(_))));
    assert!(matches!(spool.ack("tantivy", 11), Err(SpoolError::PositionAhead { .. })));
    // The active segment is never deleted, even when fully acknowledged.
    spool.ack("tantivy", 10).unwrap();
    let stats = spool.stats();
    assert_eq!((stats.first_seq, stats.segments), (9, 1));
    assert_eq!(stats.consumers.iter().map(|c| c.lag).collect::<Vec<_>>(), vec![0, 0]);
    // Positions whose next records are gone.
    assert!(matches!(
        spool.register_consumer("late", 3),
        Err(SpoolError::PositionGone { oldest: 9, requested: 3, .. })
    ));
    spool.register_consumer("late", 8).unwrap();
    assert!(matches!(read_all(&spool, 2).await, Err(SpoolError::PositionGone { .. })));
    assert_eq!(read_all(&spool, 8).await.unwrap().len(), 2);
    // Deletion state survives a restart: "late" is remembered and holds back deletion.
    spool.close().await.unwrap();
    let spool = Spool::open(dir.path(), o).unwrap();
    let names: Vec<_> = spool.stats().consumers.into_iter().map(|c| (c.name, c.committed_seq)).collect();
    assert_eq!(names, [("clickhouse".to_string(), 10), ("late".to_string(), 8), ("tantivy".to_string(), 10)]);
    for i in 11..=14 {
        spool.append(payload(i, 100)).await.unwrap();
    }
    spool.ack("clickhouse", 14).unwrap();
    spool.ack("tantivy", 14).unwrap();
    assert_eq!(spool.stats().first_seq, 9, "late (acked 8) still needs 9-10");
    spool.unregister_consumer("late").unwrap();
    assert_eq!(spool.stats().first_seq, 13);
}

#[tokio::test]
async fn restart_keeps_sequence_numbering_even_after_everything_was_deleted() {
    let dir = TempDir::new().unwrap();
    let o = SpoolOptions { segment_bytes: record_size(10) * 2, ..opts() };
    let spool = Spool::open(dir.path(), o).unwrap();
    for i in 1..=5 {
        assert_eq!(spool.append(payload(i, 10)).await.unwrap(), i);
    }
    spool.register_consumer("s", 0).unwrap();
    spool.ack("s", 5).unwrap();
    spool.close().await.unwrap();
    let spool = Spool::open(dir.path(), o).unwrap();
    assert_eq!(spool.last_seq(), 5);
    assert_eq!(spool.append(b"six".to_vec()).await.unwrap(), 6);
    drop(spool); // no close: a crash after the fsync
    let spool = Spool::open(dir.path(), o).unwrap();
    assert_eq!(spool.append(b"seven".to_vec()).await.unwrap(), 7);
    assert_eq!(read_all(&spool, 5).await.unwrap().iter().map(|r| r.seq).collect::<Vec<_>>(), vec![6, 7]);
}

/// A spool with room for four records of 100-byte payloads, `segment_records` of them a
/// segment, refusing payloads over 120 bytes.
fn room_for_four_100_byte_records(segment_records: u64) -> SpoolOptions {
    let rec = record_size(100);
    SpoolOptions {
        segment_bytes: rec * segment_records,
        max_bytes: rec * 4,
        max_record_bytes: 120,
        fsync: true,
        // A spare would take part of the room (see `the_spare_counts_in_max_bytes`).
        preallocate: false,
    }
}

#[tokio::test]
async fn full_spool_refuses_at_once_then_accepts_after_an_ack_frees_space() {
    let dir = TempDir::new().unwrap();
    let o = room_for_four_100_byte_records(2);
    let spool = Spool::open(dir.path(), o).unwrap();
    spool.register_consumer("sink", 0).unwrap();
    for i in 1..=4 {
        spool.append(payload(i, 100)).await.unwrap();
    }
    match spool.append(payload(5, 100)).await {
        Err(e @ SpoolError::Full { .. }) => assert!(e.is_retryable()),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(spool.metrics().full_rejections, 1);
    spool.ack("sink", 2).unwrap();
    assert_eq!(spool.append(payload(5, 100)).await.unwrap(), 5, "the refused record did not use a number");
    // 5 is acked but shares its segment with 6; 5-8 fill the spool.
    spool.ack("sink", 5).unwrap();
    for i in 6..=8 {
        assert_eq!(spool.append(payload(i, 100)).await.unwrap(), i);
    }
    assert!(matches!(spool.append(payload(9, 100)).await, Err(SpoolError::Full { .. })));
    assert!(matches!(spool.append(vec![0; 121]).await, Err(SpoolError::RecordTooLarge { len: 121, max: 120 })));
    assert_eq!(read_all(&spool, 4).await.unwrap().len(), 4);
}

#[tokio::test]
async fn full_spool_seals_a_fully_acknowledged_active_segment_to_free_it() {
    let dir = TempDir::new().unwrap();
    let rec = record_size(100);
    let o = room_for_four_100_byte_records(10);
    let spool = Spool::open(dir.path(), o).unwrap();
    spool.register_consumer("sink", 0).unwrap();
    for i in 1..=4 {
        spool.append(payload(i, 100)).await.unwrap();
    }
    assert!(matches!(spool.append(payload(5, 100)).await, Err(SpoolError::Full { .. })));
    spool.ack("sink", 4).unwrap();
    assert_eq!(spool.stats().segments, 1, "the active segment is not deleted by ack");
    assert_eq!(spool.append(payload(5, 100)).await.unwrap(), 5);
    let stats = spool.stats();
    assert_eq!((stats.segments, stats.first_seq, stats.bytes_on_disk), (1, 5, rec));
}

#[tokio::test]
async fn disk_full_cuts_the_partial_write_and_later_appends_work() {
    let dir = TempDir::new().unwrap();
    let spool = Spool::open(dir.path(), opts()).unwrap();
    spool.append(payload(1, 50)).await.unwrap();
    let seg = only_segment(dir.path());
    let len = fs::metadata(&seg).unwrap().len();
    spool.inject_write_failure(40);
    match spool.append(payload(2, 50)).await {
        Err(e @ SpoolError::NoSpace { .. }) => {
            assert!(e.is_retryable());
            assert!(e.to_string().contains("disk full"), "{e}");
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert_eq!(fs::metadata(&seg).unwrap().len(), len, "partial record cut away");
    assert_eq!(spool.last_seq(), 1);
    assert_eq!(spool.metrics().append_errors, 1);
    assert_eq!(spool.append(payload(2, 50)).await.unwrap(), 2);
    drop(spool);
    let spool = Spool::open(dir.path(), opts()).unwrap();
    let recs = read_all(&spool, 0).await.unwrap();
    assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(recs[1].payload, payload(2, 50));
    assert_eq!(spool.metrics().torn_tail_truncations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_uses_fewer_fsyncs_than_appends() {
    let dir = TempDir::new().unwrap();
    let spool = Spool::open(dir.path(), opts()).unwrap();
    let n = 200;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let spool = spool.clone();
        tasks.spawn(async move { spool.append(payload(i, 512)).await });
    }
    let mut seqs = Vec::new();
    while let Some(res) = tasks.join_next().await {
        seqs.push(res.unwrap().unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    let m = spool.metrics();
    assert_eq!(m.appends, n);
    assert!(m.fsyncs < m.appends, "{} fsyncs for {} appends", m.fsyncs, m.appends);
    assert_eq!(m.fsync_latency.count, m.fsyncs);
    assert_eq!(m.fsyncs, m.group_commits);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn reader_waits_for_new_records_and_ends_after_close() {
    let dir = TempDir::new().unwrap();
    let spool = Spool::open(dir.path(), opts()).unwrap();
    let mut reader = spool.reader(0);
    let waiting = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(r) = reader.next().await.unwrap() {
            got.push(r.seq);
        }
        got
    });
    for i in 1..=5 {
        spool.append(payload(i, 10)).await.unwrap();
        tokio::task::yield_now().await;
    }
    spool.close().await.unwrap();
    assert_eq!(waiting.await.unwrap(), vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn closed_locked_and_invalid() {
    let dir = TempDir::new().unwrap();
    let spool = Spool::open(dir.path(), opts()).unwrap();
    assert!(matches!(Spool::open(dir.path(), opts()), Err(SpoolError::Locked(_))));
    assert!(matches!(spool.register_consumer("x", 1), Err(SpoolError::PositionAhead { .. })));
    let clone = spool.clone();
    spool.close().await.unwrap();
    assert!(matches!(clone.append(b"late".to_vec()).await, Err(SpoolError::Closed)));
    drop(clone);
    // Lock released once every handle is gone.
    let spool = Spool::open(dir.path(), opts()).unwrap();
    drop(spool);
    let bad = SpoolOptions { max_record_bytes: u64::from(u32::MAX) + 1, max_bytes: u64::MAX, ..opts() };
    assert!(matches!(Spool::open(dir.path(), bad), Err(SpoolError::InvalidOptions(_))));
    let bad = SpoolOptions { segment_bytes: 0, ..opts() };
    assert!(matches!(Spool::open(dir.path(), bad), Err(SpoolError::InvalidOptions(_))));
}
