//! The runtime against real ClickHouse 18.16 and a real spool: stopped after any group
//! (the state it checkpointed restored at the next start, the rest of the spool judged
//! then), it stores exactly the alerts (ids, counts) and findings of an uninterrupted run;
//! an alert whose findings straddle the stop keeps counting in one alert. Without a
//! checkpoint the engine warms up from ClickHouse history and a run record says so.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_consumer::Status;
use gatelog_detect::DetectConfig;
use gatelog_model::{Batch, FixedClock, UnixMillis};
use gatelog_spool::{Spool, SpoolOptions};
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{PartialCheck, Store};
use gatelog_watch::{DETECT_CONSUMER, DetectRuntime, WatchStats};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

mod support;

use support::T0;

const BATCHES: i64 = 24;

/// Batch `i` (5 minutes of traffic): ten allowed requests and, in every third batch, a
/// burst of twelve denials from one IP within a minute (a finding each; 15 minutes apart,
/// within the suppression window, so all one alert).
fn batch(i: i64) -> Batch {
    support::batch(i, &format!("batch-{i}"), "203.0.113.77")
}

fn open_spool(dir: &Path) -> Spool {
    Spool::open(dir, SpoolOptions { preallocate: false, ..SpoolOptions::default() }).unwrap()
}

async fn spool_with(dir: &Path, batches: std::ops::Range<i64>) -> Spool {
    let spool = open_spool(dir);
    for i in batches {
        spool.append(batch(i).encode().unwrap()).await.unwrap();
    }
    spool
}

/// Runs the runtime (a checkpoint per spool record) until its position reaches `until`,
/// then stops it.
async fn run_until(store: &Store, spool: &Spool, data_dir: &Path, until: u64) -> Arc<WatchStats> {
    let mut config = DetectConfig::default();
    config.runtime.max_batches = 1;
    let status = Arc::new(Status::new(DETECT_CONSUMER));
    let stats = Arc::new(WatchStats::default());
    let (_tx, store_rx) = watch::channel(Some(store.clone()));
    let runtime = DetectRuntime {
        config,
        data_dir: data_dir.to_owned(),
        spool: spool.clone(),
        status: status.clone(),
        stats: stats.clone(),
        store: store_rx,
        clock: Arc::new(FixedClock::new(UnixMillis(T0 + 86_400_000))),
        durability: None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(runtime.run(stop_rx));
    for _ in 0..1200 {
        if status.position() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(status.position() >= until, "the runtime did not reach {until}: {:?}", status.state());
    stop_tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    stats
}

/// `(alert_id, count)` of every alert, and `(rows, distinct ids)` of findings.
async fn stored(store: &Store) -> (Vec<(String, u64)>, (u64, u64)) {
    let alerts = store.recent_alerts(1000).await.unwrap();
    let mut ids: Vec<(String, u64)> = alerts.into_iter().map(|a| (a.alert_id, a.count)).collect();
    ids.sort();
    let db = store.database();
    let sql = format!("SELECT count(), uniqExact(finding_id) FROM {db}.findings FINAL");
    (ids, store.client().query(&sql).fetch_one::<(u64, u64)>().await.unwrap())
}

async fn fresh_store(ch: &TestClickHouse) -> Store {
    let config =
        gatelog_store::StoreConfig { database: gatelog_store::testing::random_database(), ..ch.store_config() };
    let store = Store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();
    store
}

#[tokio::test]
async fn stopped_anywhere_and_restarted_it_stores_what_an_uninterrupted_run_stores() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let reference_store = fresh_store(&ch).await;
    let spool = spool_with(&dir.path().join("ref/spool"), 0..BATCHES).await;
    run_until(&reference_store, &spool, &dir.path().join("ref"), BATCHES as u64).await;
    let (reference, ref_findings) = stored(&reference_store).await;
    let bursts = (BATCHES as u64).div_ceil(3);
    assert_eq!(reference.len(), 1, "one IP bursting every 15 minutes is one alert: {reference:?}");
    assert_eq!(reference[0].1, bursts, "every burst counts in it");
    assert_eq!(ref_findings, (bursts, bursts));
    spool.close().await.unwrap();

    for stop_at in [1, 4, 11, 17] {
        let store = fresh_store(&ch).await;
        let data_dir = dir.path().join(format!("stopped-{stop_at}"));
        let spool = spool_with(&data_dir.join("spool"), 0..BATCHES).await;
        run_until(&store, &spool, &data_dir, stop_at).await;
        assert!(gatelog_watch::checkpoint::path(&data_dir).is_file());
        let stats = run_until(&store, &spool, &data_dir, BATCHES as u64).await;
        let judged = stats.decisions.load(Ordering::Relaxed);
        assert!(judged < 24 * 10 + 8 * 12, "the second run resumed from the checkpoint: it judged {judged}");
        assert_eq!(stored(&store).await, (reference.clone(), ref_findings), "stopped at {stop_at}");
        spool.close().await.unwrap();
    }
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_checkpoint_it_warms_up_from_history_and_records_the_run() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = fresh_store(&ch).await;
    // History: the first half of the batches, stored as a backfill would (position 0); the
    // spool holds the second half.
    for i in 0..BATCHES / 2 {
        store.write_batches(&[(0, &batch(i))], PartialCheck::Always).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let spool = spool_with(&dir.path().join("spool"), BATCHES / 2..BATCHES).await;
    let stats = run_until(&store, &spool, dir.path(), (BATCHES / 2) as u64).await;
    let runs = store.recent_detector_runs(100).await.unwrap();
    let warm = runs.iter().find(|r| r.kind == "warmup").expect("a warm-up run record");
    assert_eq!(warm.outcome, "ok");
    // 12 batches of history: 120 allowed requests, 4 bursts of 12 denials, 12 arrivals.
    assert_eq!(warm.rows_scanned, 120 + 48 + 12, "{warm:?}");
    assert!(runs.iter().any(|r| r.kind == "streaming" && r.findings > 0), "{runs:?}");
    assert_eq!(stats.decisions.load(Ordering::Relaxed), 120 + 48, "the stream is judged once, after the history");
    spool.close().await.unwrap();
    ch.stop().await.unwrap();
}
