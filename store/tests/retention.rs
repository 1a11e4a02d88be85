//! Retention on a real ClickHouse 18.16 (the legacy profile, which has no TTL): `Store::expire`
//! drops the month partitions of `decisions`, `raw_records`, `raw_batches` (by the month a
//! body was received) and `dead_letters` that lie wholly
//! before the cutoff and keeps the rest, rows of the cutoff's own month included; the
//! `ingest_batches` ledger keeps every batch, so an expired batch sent again stays a duplicate.
//! The same statements run on 26.9 in `compat.rs` (`gatelog sql dump`).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use gatelog_model::UnixMillis;
use gatelog_store::retention::{DroppedPartition, cutoff};
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{Store, WriteBatch, WriteOutcome};

const DAY: i64 = 86_400_000;
/// "Now" for this test: 2026-06-15T12:00:00Z.
const NOW: i64 = 1_781_524_800_000;

/// `common::batch` with every time moved to `at` (its decisions `at + 7 ms · i`).
fn batch_at(id: &str, decisions: usize, dead: usize, at: i64) -> WriteBatch {
    let mut b = common::batch(id, decisions, dead);
    let shift = at - common::T0;
    let moved = |t: UnixMillis| UnixMillis(t.0 + shift);
    b.received_at = moved(b.received_at);
    for d in &mut b.decisions {
        d.time = moved(d.time);
        d.received_at = moved(d.received_at);
    }
    for r in &mut b.raw {
        r.time = moved(r.time);
        r.received_at = moved(r.received_at);
    }
    // Its body (any bytes: the writer stores them as they are), received at `at`.
    b.body = format!("body of {id}").into_bytes();
    for l in &mut b.dead_letters {
        l.received_at = moved(l.received_at);
    }
    b
}

async fn rows(store: &Store, table: &str, batch: &str) -> u64 {
    store.count_rows_of_batch(table, batch).await.unwrap()
}

#[tokio::test]
async fn expired_months_go_and_newer_rows_stay_on_18_16() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    assert_eq!(store.profile(), gatelog_store::SchemaProfile::Legacy);
    let before = cutoff(UnixMillis(NOW), 90); // 2026-03-17T12:00Z
    assert_eq!(before, UnixMillis(NOW - 90 * DAY));
    let batches = [
        ("long_ago", NOW - 700 * DAY, true),           // 2024-07: expired
        ("last_year", NOW - 400 * DAY, true),          // 2025-05: expired
        ("month_before", NOW - 120 * DAY, true),       // 2026-02-15: expired
        ("cutoff_month_older", NOW - 95 * DAY, false), // 2026-03-12: older than the cutoff, its month is not
        ("cutoff_month_newer", NOW - 80 * DAY, false), // 2026-03-27
        ("yesterday", NOW - DAY, false),
    ];
    for (id, at, _) in batches {
        let outcome = store.write_batch(&batch_at(id, 30, 2, at)).await.unwrap();
        assert!(matches!(outcome, WriteOutcome::Written { decisions: 30, .. }), "{id}: {outcome:?}");
        assert_eq!(rows(&store, "decisions", id).await, 30, "{id}");
        assert_eq!(rows(&store, "raw_records", id).await, 30, "{id}");
        assert_eq!(rows(&store, "raw_batches", id).await, 1, "{id}");
        assert_eq!(rows(&store, "dead_letters", id).await, 2, "{id}");
    }

    let report = store.expire(before).await.unwrap();
    let mut dropped: Vec<(String, u32)> =
        report.dropped.iter().map(|DroppedPartition { table, month }| (table.clone(), *month)).collect();
    dropped.sort();
    let mut want = Vec::new();
    // `decisions_by_time` (the overview's companion of `decisions`) goes with it.
    for table in ["dead_letters", "decisions", "decisions_by_time", "raw_batches", "raw_records"] {
        for month in [202407, 202505, 202602] {
            want.push((table.to_owned(), month));
        }
    }
    assert_eq!(dropped, want);

    for (id, _, expired) in batches {
        let (decisions, raw, dead) = if expired { (0, 0, 0) } else { (30, 30, 2) };
        assert_eq!(rows(&store, "decisions", id).await, decisions, "{id}");
        assert_eq!(rows(&store, "raw_records", id).await, raw, "{id}");
        assert_eq!(rows(&store, "raw_batches", id).await, u64::from(!expired), "{id}: bodies go by month received");
        assert_eq!(rows(&store, "dead_letters", id).await, dead, "{id}");
        // The ledger keeps every batch: sent again, an expired batch is not stored again.
        assert!(store.batch_exists(id).await.unwrap(), "{id}");
    }
    let count = |table: &str| format!("SELECT count() FROM {}.{table}", store.database());
    let kept: u64 = store.client().query(&count("decisions")).fetch_one().await.unwrap();
    let kept_by_time: u64 = store.client().query(&count("decisions_by_time")).fetch_one().await.unwrap();
    assert_eq!(kept_by_time, kept);
    let again = batch_at("last_year", 30, 2, NOW - 400 * DAY);
    assert_eq!(store.write_batch(&again).await.unwrap(), WriteOutcome::AlreadyStored);
    assert_eq!(rows(&store, "decisions", "last_year").await, 0);

    // Nothing more is expired: a second run drops nothing; a later one drops the next month.
    assert!(store.expire(before).await.unwrap().dropped.is_empty());
    let later = store.expire(cutoff(UnixMillis(NOW + 30 * DAY), 90)).await.unwrap();
    let months: std::collections::BTreeSet<u32> = later.dropped.iter().map(|d| d.month).collect();
    assert_eq!(months, [202603].into());
    for id in ["cutoff_month_older", "cutoff_month_newer"] {
        assert_eq!(rows(&store, "decisions", id).await, 0, "{id}");
    }
    assert_eq!(rows(&store, "decisions", "yesterday").await, 30);
    drop(store);
    ch.stop().await.unwrap();
}
