//! `write_batches`: several batches in one insert per table, each still stored exactly once,
//! against the real Debian clickhouse-server 18.16.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::batch;
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{PartialCheck, Store, WriteOutcome};

async fn rows(store: &Store, table: &str, batch_id: &str) -> u64 {
    store.count_rows_of_batch(table, batch_id).await.unwrap()
}

#[tokio::test]
async fn a_group_stores_each_batch_once_with_its_own_marker_and_position() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    assert_eq!(store.max_spool_seq().await.unwrap(), 0, "an empty store resumes from the start");

    let (a, b, c) = (batch("g-a", 40, 1), batch("g-b", 25, 0), batch("g-c", 10, 2));
    store.write_batch(&b).await.unwrap(); // stored earlier (a Logpush retry of the same body)

    // `a` twice: Logpush retried it while the first copy was still in the spool.
    let group = [(5, &a), (6, &b), (7, &c), (8, &a)];
    let outcomes = store.write_batches(&group, PartialCheck::OnRetry).await.unwrap();
    assert_eq!(
        outcomes,
        [
            WriteOutcome::Written { decisions: 40, raw_records: 40, dead_letters: 1, removed_partial_rows: 0 },
            WriteOutcome::AlreadyStored,
            WriteOutcome::Written { decisions: 10, raw_records: 10, dead_letters: 2, removed_partial_rows: 0 },
            WriteOutcome::AlreadyStored,
        ]
    );
    for (id, n, dead) in [("g-a", 40, 1), ("g-b", 25, 0), ("g-c", 10, 2)] {
        assert_eq!(rows(&store, "decisions", id).await, n, "{id}");
        assert_eq!(rows(&store, "raw_records", id).await, n, "{id}");
        assert_eq!(rows(&store, "dead_letters", id).await, dead, "{id}");
        assert_eq!(rows(&store, "ingest_batches", id).await, 1, "{id}: one marker");
    }
    // The markers carry the spool position of the record that stored them.
    assert_eq!(store.max_spool_seq().await.unwrap(), 7);

    // Replaying the group (a restart before the spool ack) stores nothing.
    let again = store.write_batches(&group, PartialCheck::Always).await.unwrap();
    assert!(again.iter().all(|o| *o == WriteOutcome::AlreadyStored), "{again:?}");
    assert_eq!(rows(&store, "decisions", "g-a").await, 40);
    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn a_group_after_a_crash_replaces_half_written_rows() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    // An earlier process wrote part of `h`'s rows and died before its marker.
    let h = batch("g-half", 30, 0);
    let mut part = h.clone();
    part.decisions.truncate(12);
    part.raw.truncate(12);
    store.write_batch(&part).await.unwrap();
    let db = store.database().to_owned();
    store
        .execute(
            "ALTER",
            "ingest_batches",
            &format!("ALTER TABLE {db}.ingest_batches DELETE WHERE batch_id = 'g-half'"),
        )
        .await
        .unwrap();
    for _ in 0..500 {
        if !store.batch_exists("g-half").await.unwrap() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!store.batch_exists("g-half").await.unwrap());

    let fresh = batch("g-fresh", 5, 0);
    let outcomes = store.write_batches(&[(3, &h), (4, &fresh)], PartialCheck::Always).await.unwrap();
    assert_eq!(
        outcomes[0],
        WriteOutcome::Written { decisions: 30, raw_records: 30, dead_letters: 0, removed_partial_rows: 24 }
    );
    assert_eq!(rows(&store, "decisions", "g-half").await, 30, "every row once, without FINAL");
    assert_eq!(rows(&store, "raw_records", "g-half").await, 30);
    assert_eq!(rows(&store, "decisions", "g-fresh").await, 5);
    assert_eq!(store.max_spool_seq().await.unwrap(), 4);
    drop(store);
    ch.stop().await.unwrap();
}
