//! The consumer against a real spool: order, acknowledgements, lag, the undecodable-record
//! policy and the position-gone choices.

use super::*;
use crate::{Phase, Statuses};
use gatelog_model::{AccessDecision, RawRecord, Source, UnixMillis};
use gatelog_spool::SpoolOptions;
use std::time::Duration;

fn options() -> SpoolOptions {
    // Small segments, so a few records make several files and acknowledgements delete some.
    SpoolOptions { segment_bytes: 400, max_bytes: 1 << 20, max_record_bytes: 1 << 16, fsync: true, preallocate: false }
}

fn batch(n: u64) -> Batch {
    let mut d = AccessDecision::new(format!("ev-{n}"), UnixMillis(1_000 * n as i64), "proxy", Source::Proxy);
    d.principal = format!("user{n}@example.com");
    Batch {
        batch_id: format!("b{n}"),
        dataset: "proxy".into(),
        received_at: UnixMillis(10_000 + 1_000 * n as i64),
        lines: 1,
        decisions: vec![d],
        raw: vec![RawRecord::new(format!("ev-{n}"), "proxy", UnixMillis(0), UnixMillis(0), &format!("line {n}"))],
        ..Batch::default()
    }
}

async fn append(spool: &Spool, n: u64) -> u64 {
    spool.append(batch(n).encode().unwrap()).await.unwrap()
}

fn acked(spool: &Spool, name: &str) -> Option<u64> {
    spool.stats().consumers.iter().find(|c| c.name == name).map(|c| c.committed_seq)
}

#[tokio::test]
async fn reads_decodes_and_acknowledges_in_order_with_lag() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), options()).unwrap();
    for n in 1..=3 {
        append(&spool, n).await;
    }
    let statuses = Statuses::default();
    let status = statuses.add("test");
    let mut c = Consumer::register(&spool, status.clone(), 1, WhenGone::Fail, Decode::Full).await.unwrap();
    let now = UnixMillis(20_000);
    assert_eq!(status.snapshot(3, now).phase, Phase::Running);
    assert_eq!(status.snapshot(3, now).lag_records, 2);

    let d2 = c.next().await.unwrap().unwrap();
    assert_eq!((d2.seq, d2.batch.batch_id.as_str(), d2.batch.raw.len()), (2, "b2", 1));
    assert_eq!(status.snapshot(3, now).lag_seconds, Some(8.0), "received at 12 s, now 20 s");
    let d3 = c.try_next().await.unwrap().unwrap();
    assert_eq!(d3.seq, 3);
    assert_eq!(c.try_next().await.unwrap(), None, "caught up");
    let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
    assert_eq!(c.next_until(deadline).await.unwrap(), None, "nothing within the deadline");

    let acker = c.acker();
    acker.ack(3).unwrap();
    assert_eq!(acked(&spool, "test"), Some(3));
    let snap = status.snapshot(3, now);
    assert_eq!((snap.phase, snap.position, snap.lag_records, snap.lag_seconds), (Phase::CaughtUp, 3, 0, Some(0.0)));
    spool.close().await.unwrap();
}

#[tokio::test]
async fn without_raw_leaves_the_raw_lines_out() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), options()).unwrap();
    append(&spool, 1).await;
    let status = Arc::new(Status::new("index"));
    let mut c = Consumer::register(&spool, status, 0, WhenGone::Fail, Decode::WithoutRaw).await.unwrap();
    let d = c.next().await.unwrap().unwrap();
    assert_eq!((d.batch.decisions.len(), d.batch.raw.len()), (1, 0));
    spool.close().await.unwrap();
}

#[tokio::test]
async fn an_undecodable_record_stops_the_consumer_naming_file_offset_and_seq() {
    for decode in [Decode::Full, Decode::WithoutRaw] {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), options()).unwrap();
        append(&spool, 1).await;
        let bad = spool.append(b"GLB1 this is not postcard".to_vec()).await.unwrap();
        append(&spool, 3).await;
        let status = Arc::new(Status::new("test"));
        let mut c = Consumer::register(&spool, status.clone(), 0, WhenGone::Fail, decode).await.unwrap();
        assert_eq!(c.next().await.unwrap().unwrap().seq, 1);
        let err = c.next().await.unwrap_err();
        let ConsumerError::Undecodable { seq, at: Some(at), .. } = &err else { panic!("{err:?}") };
        assert_eq!(*seq, bad);
        let expected = spool.locate(bad).unwrap();
        assert_eq!(at, &expected);
        let text = err.to_string();
        assert!(text.contains(&format!("spool record {bad}")), "{text}");
        assert!(
            text.contains(&at.file.display().to_string()) && text.contains(&format!("offset {}", at.offset)),
            "{text}"
        );
        // No step past it: every later read is the same error, and record 3 is never delivered.
        for _ in 0..2 {
            assert!(matches!(c.try_next().await, Err(ConsumerError::Undecodable { seq: 2, .. })));
            assert!(matches!(c.next().await, Err(ConsumerError::Undecodable { seq: 2, .. })));
        }
        assert_eq!(acked(&spool, "test"), Some(0), "nothing acknowledged past it");
        spool.close().await.unwrap();
    }
}

#[tokio::test]
async fn damage_the_spool_finds_stops_the_consumer_too() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), options()).unwrap();
    for n in 1..=6 {
        append(&spool, n).await;
    }
    spool.close().await.unwrap();
    // Flip a payload byte of the first record of the first (sealed) segment.
    let mut segments: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let first = segments[0].clone();
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[gatelog_spool::HEADER_LEN + 3] ^= 0x20;
    std::fs::write(&first, bytes).unwrap();

    let spool = Spool::open(dir.path(), options()).unwrap();
    let mut c =
        Consumer::register(&spool, Arc::new(Status::new("test")), 0, WhenGone::Fail, Decode::Full).await.unwrap();
    let err = c.next().await.unwrap_err();
    match err.spool_error() {
        Some(SpoolError::Corrupt { file, offset, .. }) => assert_eq!((file, *offset), (&first, 0)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(c.next().await.is_err(), "the error sticks");
    spool.close().await.unwrap();
}

#[tokio::test]
async fn a_position_whose_records_are_gone_fails_or_resumes_at_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), options()).unwrap();
    spool.register_consumer("other", 0).unwrap();
    for n in 1..=8 {
        append(&spool, n).await;
    }
    spool.ack("other", 8).unwrap();
    let oldest = spool.stats().first_seq;
    assert!(oldest > 1, "segments were deleted");

    let failing = Arc::new(Status::new("index"));
    let err = Consumer::register(&spool, failing.clone(), 0, WhenGone::Fail, Decode::Full).await.unwrap_err();
    assert!(err.is_position_gone(), "{err}");
    assert_eq!(failing.state(), crate::State::Starting, "a failed registration does not claim to run");

    let resuming = Arc::new(Status::new("clickhouse"));
    let mut c = Consumer::register(&spool, resuming.clone(), 0, WhenGone::ResumeAtOldest, Decode::Full).await.unwrap();
    assert_eq!(resuming.position(), oldest - 1);
    assert_eq!(acked(&spool, "clickhouse"), Some(oldest - 1));
    assert_eq!(c.next().await.unwrap().unwrap().seq, oldest);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn a_held_consumer_keeps_the_spool_from_deleting_what_it_has_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), options()).unwrap();
    for n in 1..=8 {
        append(&spool, n).await;
    }
    assert!(hold(&spool, "late").unwrap());
    assert!(hold(&spool, "other").unwrap());
    assert_eq!(acked(&spool, "late"), Some(0));
    spool.ack("other", 8).unwrap();
    assert_eq!(spool.stats().first_seq, 1, "nothing deleted while `late` holds");
    assert!(!hold(&spool, "late").unwrap(), "a known consumer keeps its position");
    // It registers at its own position when it can; then the spool may let go.
    let status = Arc::new(Status::new("late"));
    let mut c = Consumer::register(&spool, status, 6, WhenGone::Fail, Decode::Full).await.unwrap();
    assert_eq!(c.next().await.unwrap().unwrap().seq, 7);
    c.acker().ack(8).unwrap();
    assert!(spool.stats().first_seq > 1, "segments both consumers are done with are deleted");
    spool.close().await.unwrap();
}
