//! Migration 5 (`decisions` keyed `(tenant, event_id)`) against the real 18.16 (legacy
//! profile): a database an earlier build made (decisions keyed by time, copies whose times
//! differ kept apart) is moved to the new key keeping every event once, from a clean start,
//! from every point an interrupted attempt can stop at, and from an existing data dir whose
//! server was killed mid-move and started again. The modern profile's statements run the same
//! move in chdb (`compat.rs`).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::copies::{copies, engine, events, final_counts};
use gatelog_store::managed::{ManagedClickHouse, ManagedOptions};
use gatelog_store::sql::{SchemaOptions, migrations};
use gatelog_store::testing::{TestClickHouse, random_database};
use gatelog_store::{SchemaProfile, Store, StoreConfig};

fn opts(db: &str) -> SchemaOptions {
    SchemaOptions { database: db.to_owned(), cluster: None, retention_days: None }
}

/// The five statements of migration 5: create, retire, promote, copy, cleanup.
fn plan(db: &str) -> Vec<String> {
    let m = migrations(SchemaProfile::Legacy, &opts(db)).remove(4);
    assert_eq!(m.rekey().unwrap().statements(), m.statements);
    assert_eq!(m.statements.len(), 5, "create, retire, promote, copy, cleanup");
    m.statements
}

/// A database as an earlier build left it: migrations 1–4 applied (decisions keyed by time),
/// recorded in `schema_migrations`, and rows with copies whose times differ, some merged on
/// disk (the old key kept their copies apart), some in parts of their own.
async fn old_database(config: &StoreConfig) -> Store {
    let store = Store::connect(config).await.unwrap();
    let db = store.database().to_owned();
    let client = store.client();
    client.query(&format!("CREATE DATABASE IF NOT EXISTS {db}")).execute().await.unwrap();
    for m in migrations(SchemaProfile::Legacy, &opts(&db)).into_iter().take(4) {
        for sql in &m.statements {
            client.query(sql).execute().await.unwrap();
        }
    }
    // Today's writer (which stands in for the old one below) also links every batch into the
    // hash chain and stores each batch's body in `raw_batches`: give it migrations 13's and 18's
    // columns and tables, unrecorded, as the runner later applies them again (it skips columns
    // and tables that exist).
    for m in migrations(SchemaProfile::Legacy, &opts(&db)).into_iter().filter(|m| [13, 18].contains(&m.version)) {
        for sql in &m.statements {
            client.query(sql).execute().await.unwrap();
        }
    }
    let schema_migrations = gatelog_store::sql::statements(SchemaProfile::Legacy, &opts(&db))
        .into_iter()
        .find(|s| s.name == "bootstrap.create_schema_migrations")
        .unwrap();
    client.query(&schema_migrations.sql).execute().await.unwrap();
    for m in migrations(SchemaProfile::Legacy, &opts(&db)).into_iter().take(4) {
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
    let store = Store::connect(config).await.unwrap();
    store.write_batch(&copies("tail-copy", &events(0))).await.unwrap();
    store.write_batch(&copies("logpush-copy", &events(1))).await.unwrap();
    store.write_batch(&common::batch("plain", 30, 2)).await.unwrap();
    store.client().query(&format!("OPTIMIZE TABLE {db}.decisions FINAL")).execute().await.unwrap();
    store.write_batch(&copies("late-tail-copy", &events(2))).await.unwrap();
    // 18.16's old key had the time in seconds: only copies in one second met.
    let (rows, ids) = final_counts(&store).await;
    assert_eq!(ids, 34, "4 copied events and 30 plain ones");
    assert!(rows > ids, "the old key keeps copies whose times differ: {rows} rows");
    store
}

/// Every event once, the new key, nothing left aside, and a second run has nothing to do.
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
    store.write_batch(&copies("later-copy", &events(-1))).await.unwrap();
    assert_eq!(final_counts(store).await, (34, 34));
}

/// The move (migration 5) and every migration after it were applied, in order.
fn assert_applied_from_the_move(store: &Store, report: &gatelog_store::MigrationReport, context: &str) {
    let all = gatelog_store::sql::migrations(store.profile(), &gatelog_store::sql::SchemaOptions::default());
    let expected: Vec<String> = all[4..].iter().map(|m| format!("{:04}_{}", m.version, m.name)).collect();
    assert_eq!(report.applied, expected, "{context}");
    assert_eq!(report.applied.first().map(String::as_str), Some("0005_decisions_keyed_by_event_id"), "{context}");
}

#[tokio::test]
async fn an_old_database_moves_to_the_event_id_key_keeping_its_rows() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = old_database(&ch.store_config()).await;
    let report = store.migrate().await.unwrap();
    assert_applied_from_the_move(&store, &report, "");
    assert_eq!(report.already_applied, 4);
    assert_migrated(&store).await;
    drop(store);
    ch.stop().await.unwrap();
}

/// Stopped after each statement in turn (one database per stop point), the next migrate
/// finishes the move.
#[tokio::test]
async fn an_interrupted_move_is_finished_from_wherever_it_stopped() {
    let mut ch = TestClickHouse::start().await.unwrap();
    for done in 0..=4 {
        let config = StoreConfig { database: random_database(), ..ch.store_config() };
        let store = old_database(&config).await;
        for sql in &plan(store.database())[..done] {
            store.client().query(sql).execute().await.unwrap();
        }
        let report = store.migrate().await.unwrap();
        assert_applied_from_the_move(&store, &report, &format!("stopped after {done} statements"));
        assert_migrated(&store).await;
    }
    ch.stop().await.unwrap();
}

/// An earlier build's data dir: its ClickHouse killed (SIGKILL) with old-keyed rows on disk,
/// after each statement of the move in turn, and started again on the same dir, as an upgraded
/// gatelog would start it. The move finishes with every event once.
#[tokio::test]
async fn an_existing_data_dir_killed_mid_move_is_migrated_after_a_restart() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = TestClickHouse::config_for;
    for done in 0..=4 {
        let database = random_database();
        let server = ManagedClickHouse::start(dir.path(), ManagedOptions::default()).await.unwrap();
        let store = old_database(&config(&server, &database)).await;
        for sql in &plan(&database)[..done] {
            store.client().query(sql).execute().await.unwrap();
        }
        drop(store);
        drop(server); // SIGKILL: no shutdown, whatever was in flight is as the kill left it
        let mut server = ManagedClickHouse::start(dir.path(), ManagedOptions::default()).await.unwrap();
        let store = Store::connect(&config(&server, &database)).await.unwrap();
        assert_eq!(store.profile(), SchemaProfile::Legacy);
        let report = store.migrate().await.unwrap();
        assert_applied_from_the_move(&store, &report, &format!("killed after {done} statements"));
        assert_migrated(&store).await;
        drop(store);
        server.stop().await.unwrap();
    }
}
