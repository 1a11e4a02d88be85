//! Deduplication without time equality, against the real 18.16: copies of one event whose
//! times differ (by 1 ms, across midnight, across a month, i.e. two partitions) count once in
//! `decisions FINAL` and in the counts the store reports; and which copy is the one that
//! remains (ARCHITECTURE.md, "Which copy survives"), pinned here because an evidence digest
//! over `decisions` rows must be designed around it. The move of an existing database to the
//! new key is in `rekey.rs`.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::copies::{MONTH, copies, events, final_counts, raw_count};
use gatelog_store::Store;
use gatelog_store::testing::TestClickHouse;

#[tokio::test]
async fn copies_whose_times_differ_count_once() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    store.write_batch(&copies("tail-copy", &events(0))).await.unwrap();
    store.write_batch(&copies("logpush-copy", &events(1))).await.unwrap();
    assert_eq!(raw_count(&store).await, 8, "both copies are stored");
    assert_eq!(final_counts(&store).await, (4, 4), "FINAL counts each event once, across days and months");
    let summary = store.summary().await.unwrap();
    assert_eq!(summary.total_decisions(), 4);
    let u = store.decision_uniqueness().await.unwrap();
    assert_eq!((u.rows, u.unique_event_ids), (4, 4));
    drop(store);
    ch.stop().await.unwrap();
}

/// `(batch_id, time_ms)` of each row of `event_id`, as stored and under `FINAL`.
async fn rows_of(store: &Store, event_id: &str, fin: bool) -> Vec<(String, i64)> {
    let sql = format!(
        "SELECT batch_id, time_ms FROM {}.decisions {} WHERE event_id = '{event_id}' ORDER BY batch_id",
        store.database(),
        if fin { "FINAL" } else { "" }
    );
    store.client().query(&sql).fetch_all::<(String, i64)>().await.unwrap()
}

async fn optimize_final(store: &Store) {
    let sql = format!("OPTIMIZE TABLE {}.decisions FINAL", store.database());
    store.client().query(&sql).execute().await.unwrap();
}

/// There is no version column: within a month partition the copy inserted last is the one
/// `FINAL` returns and the one a merge keeps; copies in two month partitions are never merged
/// (both stay on disk) and `FINAL` returns the one in the later month, whichever came last.
#[tokio::test]
async fn which_copy_survives_a_merge() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let day = 1_740_990_713_712; // 2025-03-03
    // Same month: the later insert carries the earlier time, so "last inserted" and "latest
    // time" disagree.
    store.write_batch(&copies("b1-first", &[("same-month", day + 1)])).await.unwrap();
    store.write_batch(&copies("b2-second", &[("same-month", day)])).await.unwrap();
    // Two months, in both insert orders.
    store.write_batch(&copies("b1-march", &[("march-first", MONTH)])).await.unwrap();
    store.write_batch(&copies("b2-february", &[("march-first", MONTH - 1)])).await.unwrap();
    store.write_batch(&copies("b1-february", &[("february-first", MONTH - 1)])).await.unwrap();
    store.write_batch(&copies("b2-march", &[("february-first", MONTH)])).await.unwrap();

    for round in ["before a merge", "after OPTIMIZE FINAL"] {
        assert_eq!(rows_of(&store, "same-month", true).await, [("b2-second".into(), day)], "{round}");
        assert_eq!(rows_of(&store, "march-first", true).await, [("b1-march".into(), MONTH)], "{round}");
        assert_eq!(rows_of(&store, "february-first", true).await, [("b2-march".into(), MONTH)], "{round}");
        optimize_final(&store).await;
    }
    assert_eq!(rows_of(&store, "same-month", false).await, [("b2-second".into(), day)], "the merge dropped b1's row");
    assert_eq!(rows_of(&store, "march-first", false).await.len(), 2, "partitions are merged apart");
    assert_eq!(rows_of(&store, "february-first", false).await.len(), 2);
    drop(store);
    ch.stop().await.unwrap();
}
