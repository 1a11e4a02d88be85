//! Appending and reading back; torn tails and corruption.

use super::*;
use std::os::unix::fs::FileExt;
use tempfile::TempDir;

/// Records 1 to 3, `len` bytes each, appended to a new spool in `dir` and closed: the path of
/// the one segment holding them.
async fn three_records(dir: &Path, len: usize) -> PathBuf {
    let spool = Spool::open(dir, opts()).unwrap();
    for i in 1..=3 {
        spool.append(payload(i, len)).await.unwrap();
    }
    spool.close().await.unwrap();
    only_segment(dir)
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
    assert_eq!(tail.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![16, 17, 18, 19, 20]);
    assert!(read_all(&spool, 20).await.unwrap().is_empty());
    // Empty payloads are records too.
    assert_eq!(spool.append(Vec::new()).await.unwrap(), 21);
    assert_eq!(read_all(&spool, 20).await.unwrap()[0].payload, Vec::<u8>::new());
    spool.close().await.unwrap();
}

#[tokio::test]
async fn a_record_appended_in_parts_reads_back_joined_and_is_limited_as_a_whole() {
    let dir = TempDir::new().unwrap();
    let small = SpoolOptions { max_record_bytes: 100, ..opts() };
    let spool = Spool::open(dir.path(), small).unwrap();
    let parts = vec![b"head|".to_vec(), Vec::new(), payload(1, 60), b"|tail".to_vec()];
    let joined = parts.concat();
    assert_eq!(spool.append_parts(parts).await.unwrap(), 1);
    assert_eq!(spool.append(payload(2, 10)).await.unwrap(), 2);
    // Each part is under the limit, the record is not.
    let over = spool.append_parts(vec![payload(3, 60), payload(3, 60)]).await;
    assert!(matches!(over, Err(SpoolError::RecordTooLarge { len: 120, max: 100 })), "{over:?}");
    let read = |recs: Vec<Record>| recs.into_iter().map(|r| (r.seq, r.payload)).collect::<Vec<_>>();
    let expected = vec![(1, joined), (2, payload(2, 10))];
    assert_eq!(read(read_all(&spool, 0).await.unwrap()), expected);
    spool.close().await.unwrap();
    let reopened = Spool::open(dir.path(), small).unwrap();
    assert_eq!(read(read_all(&reopened, 0).await.unwrap()), expected, "and after recovery");
    reopened.close().await.unwrap();
}

#[tokio::test]
async fn a_torn_write_above_everything_acknowledged_is_cut_quietly_at_every_byte_offset() {
    let src = TempDir::new().unwrap();
    let seg = three_records(src.path(), 40).await;
    let full = fs::read(&seg).unwrap();
    let last = record_size(payload(3, 40).len() as u64) as usize;
    let good = full.len() - last;
    // Records 1 and 2 acknowledged (the spool's own acks file says so), then the crash cut
    // the write of record 3 anywhere: it was never answered.
    let two = TempDir::new().unwrap();
    {
        let spool = Spool::open(two.path(), opts()).unwrap();
        for i in 1..=2 {
            spool.append(payload(i, 40)).await.unwrap();
        }
        spool.close().await.unwrap();
    }
    let acks = fs::read(two.path().join(crate::acks::ACKS_FILE)).unwrap();
    for cut in good..full.len() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join(seg.file_name().unwrap());
        fs::write(&path, &full[..cut]).unwrap();
        fs::write(dir.path().join(crate::acks::ACKS_FILE), &acks).unwrap();
        let spool = Spool::open(dir.path(), opts()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(spool.last_seq(), 2, "cut at {cut}");
        assert_eq!(fs::metadata(&path).unwrap().len() as usize, good, "cut at {cut}");
        assert_eq!(spool.metrics().torn_tail_truncations, u64::from(cut > good));
        let recs = read_all(&spool, 0).await.unwrap();
        assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
        // Numbering continues where the acknowledged records end: 3 was never answered.
        assert_eq!(spool.append(b"after".to_vec()).await.unwrap(), 3);
        drop(spool);
        let again = Spool::open(dir.path(), opts()).unwrap();
        assert_eq!(read_all(&again, 2).await.unwrap()[0].payload, b"after");
    }
    // A spool from before the acks file (none there): the tail is judged by its bytes alone.
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join(seg.file_name().unwrap()), &full[..full.len() - 1]).unwrap();
    assert_eq!(Spool::open(dir.path(), opts()).unwrap().last_seq(), 2);
}

#[tokio::test]
async fn garbage_tail_is_cut() {
    for tail in
        [b"GLSP\x01garbage-that-is-not-a-record".to_vec(), [b"GLSP".as_slice(), &[0u8; 4096]].concat(), vec![0xAB; 50]]
    {
        let dir = TempDir::new().unwrap();
        let spool = Spool::open(dir.path(), opts()).unwrap();
        spool.append(b"one".to_vec()).await.unwrap();
        spool.close().await.unwrap();
        let seg = only_segment(dir.path());
        let len = fs::metadata(&seg).unwrap().len();
        fs::OpenOptions::new().write(true).open(&seg).unwrap().write_all_at(&tail, len).unwrap();
        let spool = Spool::open(dir.path(), opts()).unwrap();
        assert_eq!(spool.last_seq(), 1);
        assert_eq!(fs::metadata(&seg).unwrap().len(), len);
    }
}

#[tokio::test]
async fn corruption_in_the_middle_fails_loudly_with_file_and_offset() {
    let dir = TempDir::new().unwrap();
    let seg = three_records(dir.path(), 30).await;
    let pristine = fs::read(&seg).unwrap();
    let rec = record_size(payload(1, 30).len() as u64) as usize;
    // A payload byte, the crc, the length, the seq and the magic of record 2.
    for at in [rec + HEADER_LEN + 5, rec + 20, rec + 17, rec + 9, rec] {
        let mut bad = pristine.clone();
        bad[at] ^= 0x10;
        fs::write(&seg, &bad).unwrap();
        match Spool::open(dir.path(), opts()) {
            Err(SpoolError::Corrupt { file, offset, detail }) => {
                assert_eq!(file, seg);
                assert_eq!(offset, rec as u64, "{detail}");
            }
            other => panic!("flip at {at}: expected Corrupt, got {other:?}"),
        }
    }
    // The same damage in the last record: it was acknowledged, so it is no torn write.
    let mut bad = pristine.clone();
    let last = pristine.len() - 3;
    bad[last] ^= 0x10;
    fs::write(&seg, &bad).unwrap();
    match Spool::open(dir.path(), opts()) {
        Err(SpoolError::Corrupt { file, offset, detail }) => {
            assert_eq!((file, offset), (seg.clone(), 2 * rec as u64));
            assert!(detail.contains("record 3 is damaged") && detail.contains("acknowledged"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(fs::read(&seg).unwrap(), bad, "a refused open changes nothing");
}

#[tokio::test]
async fn corruption_in_a_sealed_segment_is_reported_by_the_reader() {
    let dir = TempDir::new().unwrap();
    let o = SpoolOptions { segment_bytes: 200, ..opts() };
    let spool = Spool::open(dir.path(), o).unwrap();
    for i in 1..=10 {
        spool.append(payload(i, 60)).await.unwrap();
    }
    let first = spool.segment_paths()[0].clone();
    spool.close().await.unwrap();
    let f = fs::OpenOptions::new().read(true).write(true).open(&first).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, (HEADER_LEN + 2) as u64).unwrap();
    f.write_all_at(&[b[0] ^ 1], (HEADER_LEN + 2) as u64).unwrap();
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
