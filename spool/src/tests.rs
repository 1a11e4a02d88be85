//! Unit tests that need the crate's internals (fault injection, segment paths).

use super::*;
use std::os::unix::fs::FileExt;
use tempfile::TempDir;

fn opts() -> SpoolOptions {
    SpoolOptions {
        segment_bytes: 64 << 20,
        max_bytes: 1 << 30,
        max_record_bytes: 1 << 20,
        fsync: true,
        // 64 MiB spares for every test would be slow; the tests below that want one say so.
        preallocate: false,
    }
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    let mut p = format!("record-{i}-").into_bytes();
    p.resize(len.max(p.len()), b'a' + (i % 26) as u8);
    p
}

async fn read_all(spool: &Spool, after: u64) -> Result<Vec<Record>, SpoolError> {
    let mut r = spool.reader(after);
    let mut out = Vec::new();
    while let Some(rec) = r.try_next().await? {
        out.push(rec);
    }
    Ok(out)
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs.remove(0)
}

#[tokio::test]
async fn append_then_read_back_in_order() {
    let dir = TempDir::new().unwrap();
    let spool = Spool::open(dir.path(), opts()).unwrap();
    assert_eq!(spool.last_seq(), 0);
    for i in 1..=20 {
        assert_eq!(spool.append(payload(i, 100)).await.unwrap(), i);
    }
    let all = read_all(&spool, 0).await.unwrap();
    assert_eq!(all.len(), 20);
    for (i, rec) in all.iter().enumerate() {
        assert_eq!(rec.seq, i as u64 + 1);
        assert_eq!(rec.payload, payload(rec.seq, 100));
    }
    let tail = read_all(&spool, 15).await.unwrap();
    assert_eq!(
        tail.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![16, 17, 18, 19, 20]
    );
    assert!(read_all(&spool, 20).await.unwrap().is_empty());
    // Empty payloads are records too.
    assert_eq!(spool.append(Vec::new()).await.unwrap(), 21);
    assert_eq!(
        read_all(&spool, 20).await.unwrap()[0].payload,
        Vec::<u8>::new()
    );
    spool.close().await.unwrap();
}

#[tokio::test]
async fn a_record_appended_in_parts_reads_back_joined_and_is_limited_as_a_whole() {
    let dir = TempDir::new().unwrap();
    let small = SpoolOptions {
        max_record_bytes: 100,
        ..opts()
    };
    let spool = Spool::open(dir.path(), small).unwrap();
    let parts = vec![
        b"head|".to_vec(),
        Vec::new(),
        payload(1, 60),
        b"|tail".to_vec(),
    ];
    let joined = parts.concat();
    assert_eq!(spool.append_parts(parts).await.unwrap(), 1);
    assert_eq!(spool.append(payload(2, 10)).await.unwrap(), 2);
    // Each part is under the limit, the record is not.
    let over = spool
        .append_parts(vec![payload(3, 60), payload(3, 60)])
        .await;
    assert!(
        matches!(over, Err(SpoolError::RecordTooLarge { len: 120, max: 100 })),
        "{over:?}"
    );
    let read = |recs: Vec<Record>| {
        recs.into_iter()
            .map(|r| (r.seq, r.payload))
            .collect::<Vec<_>>()
    };
    let expected = vec![(1, joined), (2, payload(2, 10))];
    assert_eq!(read(read_all(&spool, 0).await.unwrap()), expected);
    spool.close().await.unwrap();
    let reopened = Spool::open(dir.path(), small).unwrap();
    assert_eq!(
        read(read_all(&reopened, 0).await.unwrap()),
        expected,
        "and after recovery"
    );
    reopened.close().await.unwrap();
}

#[tokio::test]
async fn torn_tail_is_cut_at_every_byte_offset_of_the_last_record() {
    let src = TempDir::new().unwrap();
    let spool = Spool::open(src.path(), opts()).unwrap();
    for i in 1..=3 {
        spool.append(payload(i, 40)).await.unwrap();
    }
    spool.close().await.unwrap();
    let seg = only_segment(src.path());
    let full = fs::read(&seg).unwrap();
    let last = record_size(payload(3, 40).len() as u64) as usize;
    let good = full.len() - last;
    for cut in good..full.len() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join(seg.file_name().unwrap());
        fs::write(&path, &full[..cut]).unwrap();
        let spool = Spool::open(dir.path(), opts()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(spool.last_seq(), 2, "cut at {cut}");
        assert_eq!(
            fs::metadata(&path).unwrap().len() as usize,
            good,
            "cut at {cut}"
        );
        assert_eq!(spool.metrics().torn_tail_truncations, u64::from(cut > good));
        let recs = read_all(&spool, 0).await.unwrap();
        assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
        // Numbering continues where the durable records end.
        assert_eq!(spool.append(b"after".to_vec()).await.unwrap(), 3);
        drop(spool);
        let again = Spool::open(dir.path(), opts()).unwrap();
        assert_eq!(read_all(&again, 2).await.unwrap()[0].payload, b"after");
    }
}

#[tokio::test]
async fn garbage_tail_is_cut() {
    for tail in [
        b"GLSP\x01garbage-that-is-not-a-record".to_vec(),
        [b"GLSP".as_slice(), &[0u8; 4096]].concat(),
        vec![0xAB; 50],
    ] {
        let dir = TempDir::new().unwrap();
        let spool = Spool::open(dir.path(), opts()).unwrap();
        spool.append(b"one".to_vec()).await.unwrap();
        spool.close().await.unwrap();
        let seg = only_segment(dir.path());
        let len = fs::metadata(&seg).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .write_all_at(&tail, len)
            .unwrap();
        let spool = Spool::open(dir.path(), opts()).unwrap();
        assert_eq!(spool.last_seq(), 1);
        assert_eq!(fs::metadata(&seg).unwrap().len(), len);
    }
}

#[tokio::test]
async fn corruption_in_the_middle_fails_loudly_with_file_and_offset() {
    let dir = TempDir::new().unwrap();
    let spool = Spool::open(dir.path(), opts()).unwrap();
    for i in 1..=3 {
        spool.append(payload(i, 30)).await.unwrap();
    }
    spool.close().await.unwrap();
    let seg = only_segment(dir.path());
    let pristine = fs::read(&seg).unwrap();
    let rec = record_size(payload(1, 30).len() as u64) as usize;
    // A payload byte, the crc, the length, the seq and the magic of record 2.
    for at in [rec + HEADER_LEN + 5, rec + 20, rec + 17, rec + 9, rec] {
        let mut bad = pristine.clone();
        bad[at] ^= 0x10;
        fs::write(&seg, &bad).unwrap();
        match Spool::open(dir.path(), opts()) {
            Err(SpoolError::Corrupt {
                file,
                offset,
                detail,
            }) => {
                assert_eq!(file, seg);
                assert_eq!(offset, rec as u64, "{detail}");
            }
            other => panic!("flip at {at}: expected Corrupt, got {other:?}"),
        }
    }
    // The same damage in the last record is indistinguishable from a torn write: cut.
    let mut bad = pristine.clone();
    let last = pristine.len() - 3;
    bad[last] ^= 0x10;
    fs::write(&seg, &bad).unwrap();
    let spool = Spool::open(dir.path(), opts()).unwrap();
    assert_eq!(spool.last_seq(), 2);
}

#[tokio::test]
async fn corruption_in_a_sealed_segment_is_reported_by_the_reader() {
    let dir = TempDir::new().unwrap();
    let o = SpoolOptions {
        segment_bytes: 200,
        ..opts()
    };
    let spool = Spool::open(dir.path(), o).unwrap();
    for i in 1..=10 {
        spool.append(payload(i, 60)).await.unwrap();
    }
    let first = spool.segment_paths()[0].clone();
    spool.close().await.unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&first)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, (HEADER_LEN + 2) as u64).unwrap();
    f.write_all_at(&[b[0] ^ 1], (HEADER_LEN + 2) as u64)
        .unwrap();
    let spool = Spool::open(dir.path(), o).unwrap();
    match read_all(&spool, 0).await {
        Err(SpoolError::Corrupt { file, offset, .. }) => {
            assert_eq!(file, first);
            assert_eq!(offset, 0);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Past the damaged record reading works.
    assert_eq!(read_all(&spool, 1).await.unwrap().len(), 9);
}

#[tokio::test]
async fn segments_roll_over_and_are_named_by_their_first_seq() {
    let dir = TempDir::new().unwrap();
    let rec = record_size(100);
    let o = SpoolOptions {
        segment_bytes: rec * 3,
        ..opts()
    };
    let spool = Spool::open(dir.path(), o).unwrap();
    for i in 1..=10 {
        spool.append(payload(i, 100)).await.unwrap();
    }
    let names: Vec<String> = spool
        .segment_paths()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
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
    let o = SpoolOptions {
        segment_bytes: rec * 2,
        ..opts()
    };
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
    assert_eq!(
        spool.stats().first_seq,
        3,
        "1-2 deleted, 3-4 kept (4 not acked)"
    );
    spool.ack("tantivy", 4).unwrap();
    assert_eq!(spool.stats().first_seq, 5);
    assert!(!dir.path().join(format::segment_file_name(1)).exists());
    assert!(!dir.path().join(format::segment_file_name(3)).exists());
    // Lower acks are ignored; unknown names are refused; acks beyond the end are refused.
    spool.ack("tantivy", 1).unwrap();
    assert!(matches!(
        spool.ack("nobody", 1),
        Err(SpoolError::UnknownConsumer(_))
    ));
    assert!(matches!(
        spool.ack("tantivy", 11),
        Err(SpoolError::PositionAhead { .. })
    ));
    // The active segment is never deleted, even when fully acknowledged.
    spool.ack("tantivy", 10).unwrap();
    let stats = spool.stats();
    assert_eq!((stats.first_seq, stats.segments), (9, 1));
    assert_eq!(
        stats.consumers.iter().map(|c| c.lag).collect::<Vec<_>>(),
        vec![0, 0]
    );
    // Positions whose next records are gone.
    assert!(matches!(
        spool.register_consumer("late", 3),
        Err(SpoolError::PositionGone {
            oldest: 9,
            requested: 3,
            ..
        })
    ));
    spool.register_consumer("late", 8).unwrap();
    assert!(matches!(
        read_all(&spool, 2).await,
        Err(SpoolError::PositionGone { .. })
    ));
    assert_eq!(read_all(&spool, 8).await.unwrap().len(), 2);
    // Deletion state survives a restart: "late" is remembered and holds back deletion.
    spool.close().await.unwrap();
    let spool = Spool::open(dir.path(), o).unwrap();
    let names: Vec<_> = spool
        .stats()
        .consumers
        .into_iter()
        .map(|c| (c.name, c.committed_seq))
        .collect();
    assert_eq!(
        names,
        [
            ("clickhouse".to_string(), 10),
            ("late".to_string(), 8),
            ("tantivy".to_string(), 10)
        ]
    );
    for i in 11..=14 {
        spool.append(payload(i, 100)).await.unwrap();
    }
    spool.ack("clickhouse", 14).unwrap();
    spool.ack("tantivy", 14).unwrap();
    assert_eq!(
        spool.stats().first_seq,
        9,
        "late (acked 8) still needs 9-10"
    );
    spool.unregister_consumer("late").unwrap();
    assert_eq!(spool.stats().first_seq, 13);
}

#[tokio::test]
async fn restart_keeps_sequence_numbering_even_after_everything_was_deleted() {
    let dir = TempDir::new().unwrap();
    let o = SpoolOptions {
        segment_bytes: record_size(10) * 2,
        ..opts()
    };
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
    assert_eq!(
        read_all(&spool, 5)
            .await
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        vec![6, 7]
    );
}

#[tokio::test]
async fn full_spool_refuses_at_once_then_accepts_after_an_ack_frees_space() {
    let dir = TempDir::new().unwrap();
    let rec = record_size(100);
    let o = SpoolOptions {
        segment_bytes: rec * 2,
        max_bytes: rec * 4,
        max_record_bytes: 120,
        fsync: true,
        preallocate: true,
    };
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
    assert_eq!(
        spool.append(payload(5, 100)).await.unwrap(),
        5,
        "the refused record did not use a number"
    );
    // 5 is acked but shares its segment with 6; 5-8 fill the spool.
    spool.ack("sink", 5).unwrap();
    for i in 6..=8 {
        assert_eq!(spool.append(payload(i, 100)).await.unwrap(), i);
    }
    assert!(matches!(
        spool.append(payload(9, 100)).await,
        Err(SpoolError::Full { .. })
    ));
    assert!(matches!(
        spool.append(vec![0; 121]).await,
        Err(SpoolError::RecordTooLarge { len: 121, max: 120 })
    ));
    assert_eq!(read_all(&spool, 4).await.unwrap().len(), 4);
}

#[tokio::test]
async fn full_spool_seals_a_fully_acknowledged_active_segment_to_free_it() {
    let dir = TempDir::new().unwrap();
    let rec = record_size(100);
    let o = SpoolOptions {
        segment_bytes: rec * 10,
        max_bytes: rec * 4,
        max_record_bytes: 120,
        fsync: true,
        preallocate: true,
    };
    let spool = Spool::open(dir.path(), o).unwrap();
    spool.register_consumer("sink", 0).unwrap();
    for i in 1..=4 {
        spool.append(payload(i, 100)).await.unwrap();
    }
    assert!(matches!(
        spool.append(payload(5, 100)).await,
        Err(SpoolError::Full { .. })
    ));
    spool.ack("sink", 4).unwrap();
    assert_eq!(
        spool.stats().segments,
        1,
        "the active segment is not deleted by ack"
    );
    assert_eq!(spool.append(payload(5, 100)).await.unwrap(), 5);
    let stats = spool.stats();
    assert_eq!(
        (stats.segments, stats.first_seq, stats.bytes_on_disk),
        (1, 5, rec)
    );
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
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        len,
        "partial record cut away"
    );
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
    assert!(
        m.fsyncs < m.appends,
        "{} fsyncs for {} appends",
        m.fsyncs,
        m.appends
    );
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
    assert!(matches!(
        Spool::open(dir.path(), opts()),
        Err(SpoolError::Locked(_))
    ));
    assert!(matches!(
        spool.register_consumer("x", 1),
        Err(SpoolError::PositionAhead { .. })
    ));
    let clone = spool.clone();
    spool.close().await.unwrap();
    assert!(matches!(
        clone.append(b"late".to_vec()).await,
        Err(SpoolError::Closed)
    ));
    drop(clone);
    // Lock released once every handle is gone.
    let spool = Spool::open(dir.path(), opts()).unwrap();
    drop(spool);
    let bad = SpoolOptions {
        max_record_bytes: u64::from(u32::MAX) + 1,
        max_bytes: u64::MAX,
        ..opts()
    };
    assert!(matches!(
        Spool::open(dir.path(), bad),
        Err(SpoolError::InvalidOptions(_))
    ));
    let bad = SpoolOptions {
        segment_bytes: 0,
        ..opts()
    };
    assert!(matches!(
        Spool::open(dir.path(), bad),
        Err(SpoolError::InvalidOptions(_))
    ));
}
