//! Exactly-once through crashes: a real spool, [`run_sink`], and crashes injected after
//! adding documents, half-way through a commit round, and after mid-batch forced commits.
//! Every decision must end up in the index exactly once (counted by `event_id` term).

use crate::{IndexError, IndexSinkStats, Indexer, IndexerOptions, Searcher, run_sink};
use gatelog_consumer::{ConsumerError, Phase, Status};
use gatelog_model::{AccessDecision, Batch, Decision, Source, UnixMillis};
use gatelog_spool::{Spool, SpoolOptions};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const BASE: i64 = 1_740_960_000_000; // 2025-03-03T00:00:00Z
const HOUR: i64 = 3_600_000;

/// Batch `seq`: 6 decisions spread over ~3 days; decision 0 repeats an id of the previous
/// batch (a Tail/Logpush pair arriving in two batches).
fn batch(seq: u64) -> Batch {
    let mut decisions: Vec<AccessDecision> = (0..6)
        .map(|i| {
            let n = seq * 6 + i;
            let mut d = AccessDecision::new(
                format!("ev-{seq}-{i}"),
                UnixMillis(BASE + (n as i64 * 5 % 72) * HOUR + n as i64),
                "proxy",
                Source::Proxy,
            );
            d.principal = format!("user{}@example.com", n % 5);
            d.decision = if n.is_multiple_of(3) { Decision::Deny } else { Decision::Allow };
            d.query = format!("SELECT * FROM db.t{n}");
            d
        })
        .collect();
    if seq > 1 {
        let mut dup = AccessDecision::new(
            format!("ev-{}-5", seq - 1),
            UnixMillis(BASE + ((seq - 1) * 6 + 5) as i64 * 5 % 72 * HOUR + ((seq - 1) * 6 + 5) as i64),
            "proxy",
            Source::Tail,
        );
        dup.principal = "copy@example.com".into();
        decisions.push(dup);
    }
    // And a duplicate inside the batch.
    decisions.push(decisions[1].clone());
    Batch { batch_id: format!("b{seq}"), dataset: "proxy".into(), decisions, ..Batch::default() }
}

fn all_ids(n: u64) -> BTreeSet<String> {
    (1..=n).flat_map(|s| batch(s).decisions.into_iter().map(|d| d.event_id)).collect()
}

fn assert_exactly_once(dir: &Path, n: u64) {
    let searcher = Searcher::open(dir, "gatelog");
    let ids = all_ids(n);
    for id in &ids {
        assert_eq!(searcher.count(&format!("event_id:{id}"), None, None).unwrap(), 1, "event {id}");
    }
    assert_eq!(searcher.count("", None, None).unwrap(), ids.len() as u64, "total documents");
}

fn opts(max_open_writers: usize) -> IndexerOptions {
    IndexerOptions {
        commit_docs: 1_000_000,
        commit_interval: Duration::from_secs(3600),
        max_open_writers,
        writer_memory_bytes: 15_000_000,
        ..IndexerOptions::default()
    }
}

async fn append(spool: &Spool, seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        assert_eq!(spool.append(batch(seq).encode().unwrap()).await.unwrap(), seq);
    }
}

/// Runs the sink until the consumer acknowledged `until`, then shuts it down; returns its
/// stats and status.
async fn sink_until(
    index_dir: &Path,
    spool: &Spool,
    until: u64,
    opts: IndexerOptions,
) -> (Arc<IndexSinkStats>, Arc<Status>) {
    let indexer = Indexer::open(index_dir, opts).unwrap();
    let watcher = spool.clone();
    let shutdown = async move {
        loop {
            let acked = watcher.stats().consumers.iter().find(|c| c.name == "index").map_or(0, |c| c.committed_seq);
            if acked >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let stats = Arc::new(IndexSinkStats::default());
    let status = Arc::new(Status::new("index"));
    run_sink(indexer, spool.clone(), status.clone(), stats.clone(), shutdown).await.unwrap();
    (stats, status)
}

/// Reads records after the indexer's position up to `until` into it, without committing.
async fn feed(indexer: &mut Indexer, spool: &Spool, until: u64) {
    let mut reader = spool.reader(indexer.position());
    while let Some(record) = reader.try_next().await.unwrap() {
        if record.seq > until {
            break;
        }
        indexer.index_batch(record.seq, &Batch::decode(&record.payload).unwrap()).unwrap();
    }
}

async fn crash_scenario(fail_after_commits: usize, max_open_writers: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let (spool_dir, index_dir) = (tmp.path().join("spool"), tmp.path().join("index"));
    let n = 12;
    let spool =
        Spool::open(&spool_dir, SpoolOptions { fsync: false, preallocate: false, ..SpoolOptions::default() }).unwrap();
    append(&spool, 1..=4).await;
    let o = IndexerOptions { commit_interval: Duration::from_millis(20), ..opts(max_open_writers) };

    // 1..=4 through the sink, committed and acknowledged, and counted.
    let (stats, status) = sink_until(&index_dir, &spool, 4, o).await;
    let sent: u64 = (1..=4).map(|s| batch(s).decisions.len() as u64).sum();
    assert_eq!(status.position(), 4);
    assert_eq!(stats.batches.load(Ordering::Relaxed), 4);
    assert_eq!(stats.decisions.load(Ordering::Relaxed), sent, "every added decision counts, replacements too");
    assert_eq!(stats.decisions_by_dataset().get("proxy"), Some(&sent));
    assert!(stats.commits.load(Ordering::Relaxed) >= 1);
    let snapshot = status.snapshot(4, UnixMillis(0));
    assert_eq!((snapshot.phase, snapshot.lag_seconds), (Phase::CaughtUp, Some(0.0)));
    let committed = Indexer::open(&index_dir, o).unwrap().position();
    assert_eq!(committed, 4);
    assert_exactly_once(&index_dir, 4);
    append(&spool, 5..=n).await;

    // Crash after adding documents: nothing committed.
    {
        let mut indexer = Indexer::open(&index_dir, o).unwrap();
        feed(&mut indexer, &spool, 7).await;
        assert!(indexer.pending_docs() > 0);
    }
    let after_add_crash = Indexer::open(&index_dir, o).unwrap().position();
    assert!(after_add_crash >= committed && after_add_crash <= 7, "position {after_add_crash}");

    // Crash half-way through a commit round.
    {
        let mut indexer = Indexer::open(&index_dir, o).unwrap();
        let before = indexer.position();
        feed(&mut indexer, &spool, 10).await;
        indexer.fail_after_commits = Some(fail_after_commits);
        let err = indexer.commit().unwrap_err();
        assert!(matches!(err, IndexError::Injected), "{err}");
        assert!(matches!(indexer.commit(), Err(IndexError::Poisoned)));
        drop(indexer);
        let reopened = Indexer::open(&index_dir, o).unwrap().position();
        assert!(reopened >= before && reopened <= 10, "half-committed round must resume at or before it: {reopened}");
    }

    // Replay everything through the sink.
    sink_until(&index_dir, &spool, n, o).await;
    assert_eq!(Indexer::open(&index_dir, o).unwrap().position(), n);
    assert_exactly_once(&index_dir, n);
    spool.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_first_index_of_a_round() {
    crash_scenario(1, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_before_any_index_of_a_round() {
    crash_scenario(0, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_two_indexes_of_a_round() {
    crash_scenario(2, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_with_mid_batch_forced_commits() {
    // One open writer: every change of day inside a batch forces a commit round.
    crash_scenario(0, 1).await;
}

#[test]
fn half_committed_round_is_detected_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let o = opts(8);
    let mut indexer = Indexer::open(tmp.path(), o).unwrap();
    indexer.index_batch(1, &batch(1)).unwrap();
    assert_eq!(indexer.commit().unwrap(), 1);
    indexer.index_batch(2, &batch(2)).unwrap();
    indexer.fail_after_commits = Some(1);
    assert!(indexer.commit().is_err());
    drop(indexer);
    // batch 2 touches several days; one of them committed round 2, the others did not.
    assert_eq!(Indexer::open(tmp.path(), o).unwrap().position(), 1);
    let mut indexer = Indexer::open(tmp.path(), o).unwrap();
    indexer.index_batch(2, &batch(2)).unwrap();
    assert_eq!(indexer.commit().unwrap(), 2);
    drop(indexer);
    assert_eq!(Indexer::open(tmp.path(), o).unwrap().position(), 2);
    assert_exactly_once(tmp.path(), 2);
}

#[test]
fn records_without_decisions_still_move_the_position() {
    let tmp = tempfile::tempdir().unwrap();
    let mut indexer = Indexer::open(tmp.path(), opts(8)).unwrap();
    indexer.index_batch(1, &Batch::default()).unwrap();
    indexer.skip_record(2);
    assert!(indexer.has_pending());
    assert_eq!(indexer.commit().unwrap(), 2);
    assert!(!indexer.has_pending());
    drop(indexer);
    assert_eq!(Indexer::open(tmp.path(), opts(8)).unwrap().position(), 2);
    assert!(tmp.path().join("position").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_record_stops_the_index_sink_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let spool =
        Spool::open(&tmp.path().join("spool"), SpoolOptions { preallocate: false, ..SpoolOptions::default() }).unwrap();
    append(&spool, 1..=1).await;
    let bad = spool.append(b"not a batch".to_vec()).await.unwrap();
    spool.append(batch(3).encode().unwrap()).await.unwrap();
    let o = IndexerOptions { commit_interval: Duration::from_millis(20), ..opts(8) };
    let indexer = Indexer::open(&tmp.path().join("index"), o).unwrap();
    let status = Arc::new(Status::new("index"));
    let stats = Arc::new(IndexSinkStats::default());
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        run_sink(indexer, spool.clone(), status.clone(), stats, std::future::pending()),
    )
    .await
    .expect("the sink stops by itself");
    match result {
        Err(IndexError::Consumer(ConsumerError::Undecodable { seq, at: Some(at), .. })) => {
            assert_eq!(seq, bad);
            assert_eq!(at, spool.locate(bad).unwrap());
        }
        other => panic!("expected an undecodable record, got {other:?}"),
    }
    let committed = Indexer::open(&tmp.path().join("index"), o).unwrap().position();
    assert_eq!(committed, 1, "what came before it is committed; nothing at or after it");
    let acked = spool.stats().consumers.iter().find(|c| c.name == "index").map(|c| c.committed_seq);
    assert_eq!(acked, Some(1));
    spool.close().await.unwrap();
}

#[test]
fn a_deleted_or_replaced_index_directory_is_noticed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let mut indexer = Indexer::open(&dir, opts(8)).unwrap();
    assert!(indexer.is_fresh());
    indexer.index_batch(1, &batch(1)).unwrap();
    indexer.check_intact().unwrap();
    indexer.commit().unwrap();
    assert!(!indexer.is_fresh());
    std::fs::remove_dir_all(&dir).unwrap();
    let err = indexer.check_intact().unwrap_err();
    assert!(matches!(err, IndexError::Lost { .. }) && err.needs_rebuild(), "{err}");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(matches!(indexer.check_intact(), Err(IndexError::Lost { .. })), "replaced by another directory");
    drop(indexer);
    assert!(Indexer::open(&dir, opts(8)).unwrap().is_fresh());
}

/// An index deleted between two ticks is found by the next commit, which fails: the sink
/// must say the index is lost (so the caller rebuilds it), not report tantivy's I/O error
/// (which would stop it for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_into_a_deleted_index_reports_a_lost_index() {
    let tmp = tempfile::tempdir().unwrap();
    let spool =
        Spool::open(&tmp.path().join("spool"), SpoolOptions { preallocate: false, ..SpoolOptions::default() }).unwrap();
    let dir = tmp.path().join("index");
    // No tick within the test: only a write can find the index gone.
    let o = IndexerOptions { commit_docs: 1, commit_interval: Duration::from_secs(3600), ..opts(8) };
    append(&spool, 1..=1).await;
    let indexer = Indexer::open(&dir, o).unwrap();
    let status = Arc::new(Status::new("index"));
    let stats = Arc::new(IndexSinkStats::default());
    let sink = tokio::spawn(run_sink(indexer, spool.clone(), status.clone(), stats, std::future::pending()));
    for _ in 0..2000 {
        if status.position() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status.position(), 1, "the first record is committed and acknowledged");
    std::fs::remove_dir_all(&dir).unwrap();
    append(&spool, 2..=2).await;
    let result = tokio::time::timeout(Duration::from_secs(30), sink).await.expect("the sink stops by itself").unwrap();
    match result {
        Err(e @ IndexError::Lost { .. }) => assert!(e.needs_rebuild(), "{e}"),
        other => panic!("expected a lost index, got {other:?}"),
    }
    assert_eq!(spool.stats().consumers.iter().find(|c| c.name == "index").map(|c| c.committed_seq), Some(1));
    spool.close().await.unwrap();
}
