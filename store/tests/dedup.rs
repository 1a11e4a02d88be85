//! Deduplication without time equality, against the real 18.16: copies of one event whose
//! times differ (by 1 ms, across midnight, across a month, i.e. two partitions) count once in
//! `decisions FINAL` and in the counts the store reports; and a database made by an earlier
//! build (decisions keyed by time) is moved to the new key by migration 5, keeping its rows,
//! from a clean start and from every point an interrupted attempt can stop at.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use gatelog_model::{AccessDecision, Source, UnixMillis};
use gatelog_store::sql::{SchemaOptions, migrations};
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{SchemaProfile, Store, WriteBatch};

const MIDNIGHT: i64 = 1_741_046_400_000; // 2025-03-04T00:00:00Z
const MONTH: i64 = 1_740_787_200_000; // 2025-03-01T00:00:00Z

/// One batch holding one copy of each event: `(event_id, time)`.
fn copies(batch_id: &str, events: &[(&str, i64)]) -> WriteBatch {
    let mut b = common::batch(batch_id, 0, 0);
    for (id, ms) in events {
        let mut d = AccessDecision::new((*id).into(), UnixMillis(*ms), "workers_trace_events", Source::Tail);
        d.principal = format!("{batch_id}@example.com");
        b.decisions.push(d);
    }
    b.lines = events.len() as u64;
    b
}

/// The same events as a Logpush batch would carry them: each a little off in time.
fn events(offset_ms: i64) -> Vec<(&'static str, i64)> {
    vec![
        ("ev-ms", 1_740_990_713_712 + offset_ms),  // 1 ms apart within a day
        ("ev-midnight", MIDNIGHT - 1 + offset_ms), // 23:59:59.999 / 00:00:00.000
        ("ev-month", MONTH - 1 + offset_ms),       // February / March
        ("ev-hours", MIDNIGHT - 3_600_000 + offset_ms * 7_200_000), // 23:00 / 01:00
    ]
}

async fn final_counts(store: &Store) -> (u64, u64) {
    let db = store.database();
    let sql = format!("SELECT count(), uniqExact(event_id) FROM {db}.decisions FINAL");
    store.client().query(&sql).fetch_one::<(u64, u64)>().await.unwrap()
}

async fn raw_count(store: &Store) -> u64 {
    let sql = format!("SELECT count() FROM {}.decisions", store.database());
    store.client().query(&sql).fetch_one::<u64>().await.unwrap()
}

async fn engine(store: &Store, table: &str) -> Option<String> {
    let sql =
        format!("SELECT engine_full FROM system.tables WHERE database = '{}' AND name = '{table}'", store.database());
    store.client().query(&sql).fetch_all::<String>().await.unwrap().into_iter().next()
}

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

/// A database as an earlier build left it: migrations 1–4 applied (decisions keyed by time),
/// recorded in `schema_migrations`, and rows with copies whose times differ.
async fn old_database(ch: &TestClickHouse) -> Store {
    let store = Store::connect(&ch.store_config()).await.unwrap();
    let db = store.database().to_owned();
    let opts = SchemaOptions { database: db.clone(), cluster: None, retention_days: None };
    let client = store.client();
    client.query(&format!("CREATE DATABASE IF NOT EXISTS {db}")).execute().await.unwrap();
    for m in migrations(SchemaProfile::Legacy, &opts).into_iter().take(4) {
        for sql in &m.statements {
            client.query(sql).execute().await.unwrap();
        }
    }
    let schema_migrations = gatelog_store::sql::statements(SchemaProfile::Legacy, &opts)
        .into_iter()
        .find(|s| s.name == "bootstrap.create_schema_migrations")
        .unwrap();
    client.query(&schema_migrations.sql).execute().await.unwrap();
    for m in migrations(SchemaProfile::Legacy, &opts).into_iter().take(4) {
        let sql = format!(
            "INSERT INTO {db}.schema_migrations (version, name, checksum, profile) VALUES ({}, '{}', '{}', 'legacy')",
            m.version,
            m.name,
            m.checksum()
        );
        client.query(&sql).execute().await.unwrap();
    }
    assert!(engine(&store, "decisions").await.unwrap().contains("ORDER BY (tenant, time, event_id)"));
    // Reconnect: the store reads the recorded profile.
    let store = Store::connect(&ch.store_config()).await.unwrap();
    store.write_batch(&copies("tail-copy", &events(0))).await.unwrap();
    store.write_batch(&copies("logpush-copy", &events(1))).await.unwrap();
    store.write_batch(&common::batch("plain", 30, 2)).await.unwrap();
    // 18.16's old key had the time in seconds: only the copies 1 ms apart in one second met.
    assert_eq!(final_counts(&store).await, (37, 34), "the old key keeps copies whose times differ");
    store
}

async fn assert_migrated(store: &Store) {
    assert!(engine(store, "decisions").await.unwrap().contains("ORDER BY (tenant, event_id)"));
    assert_eq!(engine(store, "decisions_rekeyed").await, None);
    assert_eq!(engine(store, "decisions_before_rekey").await, None);
    assert_eq!(final_counts(store).await, (34, 34), "every event kept, once");
    let plain = format!("SELECT count() FROM {}.decisions FINAL WHERE batch_id = 'plain'", store.database());
    assert_eq!(store.client().query(&plain).fetch_one::<u64>().await.unwrap(), 30);
    assert_eq!(store.summary().await.unwrap().total_decisions(), 34);
    let again = store.migrate().await.unwrap();
    assert!(again.applied.is_empty(), "{again:?}");
    // New copies after the move collapse too.
    store.write_batch(&copies("late-copy", &events(-1))).await.unwrap();
    assert_eq!(final_counts(store).await, (34, 34));
}

#[tokio::test]
async fn an_old_database_moves_to_the_event_id_key_keeping_its_rows() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = old_database(&ch).await;
    let report = store.migrate().await.unwrap();
    assert_eq!(report.applied, ["0005_decisions_keyed_by_event_id"]);
    assert_eq!(report.already_applied, 4);
    assert_migrated(&store).await;
    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn an_interrupted_move_is_finished_from_wherever_it_stopped() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = old_database(&ch).await;
    let db = store.database().to_owned();
    let opts = SchemaOptions { database: db, cluster: None, retention_days: None };
    let plan = migrations(SchemaProfile::Legacy, &opts).remove(4).statements;
    assert_eq!(plan.len(), 5, "create, retire, promote, copy, cleanup");
    // Stopped after each of the first four steps in turn (a fresh old database each time
    // would need a new server; instead every stop point is reached by running the steps
    // and undoing nothing: the runner must take it from each state).
    for done in 1..=4 {
        let state = Store::connect(&ch.store_config()).await.unwrap();
        for sql in &plan[..done] {
            state.client().query(sql).execute().await.unwrap();
        }
        let report = state.migrate().await.unwrap();
        assert_eq!(report.applied, ["0005_decisions_keyed_by_event_id"], "stopped after step {done}");
        assert_migrated(&state).await;
        // Back to the old key for the next round: a database an earlier build made.
        if done < 4 {
            reset_to_old_key(&state).await;
        }
    }
    drop(store);
    ch.stop().await.unwrap();
}

/// Puts the rows back into a time-keyed `decisions` and forgets migration 5.
async fn reset_to_old_key(store: &Store) {
    let db = store.database().to_owned();
    let opts = SchemaOptions { database: db.clone(), cluster: None, retention_days: None };
    let first = migrations(SchemaProfile::Legacy, &opts).remove(0).statements.remove(0);
    let c = store.client();
    c.query(&format!("RENAME TABLE {db}.decisions TO {db}.decisions_keyed")).execute().await.unwrap();
    c.query(&first).execute().await.unwrap();
    c.query(&format!("INSERT INTO {db}.decisions SELECT * FROM {db}.decisions_keyed")).execute().await.unwrap();
    c.query(&format!("DROP TABLE {db}.decisions_keyed")).execute().await.unwrap();
    c.query(&format!("ALTER TABLE {db}.schema_migrations DELETE WHERE version = 5")).execute().await.unwrap();
    for _ in 0..500 {
        let pending: u64 = c
            .query(&format!("SELECT count() FROM system.mutations WHERE database = '{db}' AND is_done = 0"))
            .fetch_one()
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The late copies written by `assert_migrated` stay: they are rows like any other.
    let (rows, events) = final_counts(store).await;
    assert!(rows > events, "the old key again keeps copies apart: {rows} rows for {events} events");
}
