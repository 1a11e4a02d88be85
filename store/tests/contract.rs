//! The writer's contract against the real Debian clickhouse-server 18.16.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{T0, batch};
use gatelog_model::{AccessDecision, Decision, PrincipalType, Source, UnixMillis};
use gatelog_store::managed::{ManagedOptions, ManagedUser};
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{SchemaProfile, Store, StoreConfig, StoreError, WriteOutcome};
use std::time::{Duration, Instant};

async fn counts(store: &Store, batch_id: &str) -> (u64, u64, u64, u64) {
    (
        store.count_rows_of_batch("decisions", batch_id).await.unwrap(),
        store.count_rows_of_batch("raw_records", batch_id).await.unwrap(),
        store.count_rows_of_batch("dead_letters", batch_id).await.unwrap(),
        store.count_rows_of_batch("ingest_batches", batch_id).await.unwrap(),
    )
}

#[tokio::test]
async fn writes_a_batch_once_and_reports_already_stored() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    assert_eq!(store.profile(), SchemaProfile::Legacy);
    assert_eq!(store.server_version().to_string(), "18.16.1");

    let b = batch("b1", 120, 3);
    let out = store.write_batch(&b).await.unwrap();
    assert_eq!(
        out,
        WriteOutcome::Written { decisions: 120, raw_records: 120, dead_letters: 3, removed_partial_rows: 0 }
    );
    assert_eq!(counts(&store, "b1").await, (120, 120, 3, 1));
    assert!(store.batch_exists("b1").await.unwrap());
    assert!(!store.batch_exists("nope").await.unwrap());
    let existing = store.existing_batches(&["b1", "b2", "it's"]).await.unwrap();
    assert_eq!(existing.into_iter().collect::<Vec<_>>(), vec!["b1".to_owned()]);

    assert_eq!(store.write_batch(&b).await.unwrap(), WriteOutcome::AlreadyStored);
    assert_eq!(counts(&store, "b1").await, (120, 120, 3, 1));

    let summary = store.summary().await.unwrap();
    assert_eq!(summary.total_decisions(), 120);
    assert_eq!((summary.raw_records, summary.dead_letters, summary.batches), (120, 3, 1));
    let deny = summary.decisions.iter().find(|d| d.decision == "deny").unwrap();
    assert_eq!((deny.dataset.as_str(), deny.count), ("http_requests", 12));
    let u = store.decision_uniqueness().await.unwrap();
    assert_eq!((u.rows, u.unique_event_ids), (120, 120));
    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn replaces_the_rows_of_a_half_written_batch() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let b = batch("half", 50, 2);
    // A previous attempt died after the data and before the marker: write it to a scratch
    // batch id, then relabel those rows as `half` and drop the marker.
    let mut first = b.clone();
    first.decisions.truncate(30); // it got part of the way
    first.raw.truncate(30);
    store.write_batch(&first).await.unwrap();
    let db = store.database().to_owned();
    store
        .execute("ALTER", "ingest_batches", &format!("ALTER TABLE {db}.ingest_batches DELETE WHERE batch_id = 'half'"))
        .await
        .unwrap();
    wait_mutations(&store).await;
    assert_eq!(counts(&store, "half").await, (30, 30, 2, 0));
    assert!(!store.batch_exists("half").await.unwrap());

    let out = store.write_batch(&b).await.unwrap();
    assert_eq!(
        out,
        WriteOutcome::Written { decisions: 50, raw_records: 50, dead_letters: 2, removed_partial_rows: 62 }
    );
    assert_eq!(counts(&store, "half").await, (50, 50, 2, 1), "every row exactly once, without FINAL");
    assert_eq!(store.write_batch(&b).await.unwrap(), WriteOutcome::AlreadyStored);
    drop(store);
    ch.stop().await.unwrap();
}

async fn wait_mutations(store: &Store) {
    let sql = format!("SELECT count() FROM system.mutations WHERE database = '{}' AND is_done = 0", store.database());
    for _ in 0..500 {
        let pending: u64 = store.client().query(&sql).fetch_one().await.unwrap();
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("mutations did not finish");
}

#[tokio::test]
async fn a_fatal_error_is_not_retried_and_names_the_table() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let mut config = ch.store_config();
    config.retry.max_attempts = 5;
    config.retry.initial_backoff = Duration::from_millis(500);
    let store = Store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();
    let db = store.database().to_owned();
    store.execute("DROP", "raw_records", &format!("DROP TABLE {db}.raw_records")).await.unwrap();

    let started = Instant::now();
    let err = store.write_batch(&batch("fatal", 5, 0)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500), "a fatal error must not wait for a backoff");
    assert!(!err.is_retryable(), "{err}");
    assert!(matches!(err, StoreError::ClickHouse { .. }), "not wrapped in a retry: {err}");
    assert_eq!(err.code(), Some(60));
    let msg = err.to_string();
    assert!(msg.contains(&format!("{db}.raw_records")), "{msg}");
    assert!(msg.contains("code 60"), "{msg}");
    assert!(!store.batch_exists("fatal").await.unwrap(), "no marker after a failure");
    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn a_readonly_user_gets_a_fatal_error_naming_the_table() {
    let opts = ManagedOptions {
        users: vec![ManagedUser { name: "reader".into(), password: "s3cret".into(), readonly: true }],
        ..ManagedOptions::default()
    };
    let mut ch = TestClickHouse::start_with(opts).await.unwrap();
    ch.store().await.unwrap(); // migrated as `default`
    let config = StoreConfig { user: "reader".into(), password: "s3cret".into(), ..ch.store_config() };
    let reader = Store::connect(&config).await.unwrap();
    let err = reader.write_batch(&batch("ro", 3, 0)).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.code(), Some(164), "{err}");
    // The three data tables are inserted concurrently; whichever refused first is named.
    let text = err.to_string();
    assert!(
        ["decisions", "raw_records", "dead_letters"].iter().any(|t| text.contains(&format!("{}.{t}", ch.database()))),
        "{err}"
    );
    let wrong = StoreConfig { password: "wrong".into(), ..config };
    let err = Store::connect(&wrong).await.unwrap_err();
    assert!(!err.is_retryable(), "bad credentials are fatal: {err}");
    drop(reader);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn a_stopped_server_is_retried_then_fails_clearly_in_bounded_time() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap(); // 3 attempts, 10–100 ms backoff
    ch.stop().await.unwrap();
    let started = Instant::now();
    let err = store.write_batch(&batch("down", 5, 0)).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(err.is_retryable(), "{err}");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::RetriesExhausted { attempts: 3, .. }), "{msg}");
    assert!(msg.contains("gave up after 3 attempts") && msg.contains("network error"), "{msg}");
    println!("{msg}");
}

#[tokio::test]
async fn migrations_are_idempotent_across_runs_and_stores() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let a = Store::connect(&ch.store_config()).await.unwrap();
    let b = Store::connect(&ch.store_config()).await.unwrap();
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let all = gatelog_store::sql::migrations(a.profile(), &gatelog_store::sql::SchemaOptions::default()).len();
    assert_eq!(ra.applied.len() + ra.already_applied, all);
    assert_eq!(rb.applied.len() + rb.already_applied, all);
    let again = a.migrate().await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.already_applied, all);
    let c = Store::connect(&ch.store_config()).await.unwrap();
    assert_eq!(c.migrate().await.unwrap().applied.len(), 0);

    // A changed statement under an applied migration is a loud, fatal error.
    let db = a.database().to_owned();
    a.execute(
        "ALTER",
        "schema_migrations",
        &format!("ALTER TABLE {db}.schema_migrations UPDATE checksum = 'tampered' WHERE version = 2"),
    )
    .await
    .unwrap();
    wait_mutations(&a).await;
    let err = a.migrate().await.unwrap_err();
    assert!(matches!(err, StoreError::MigrationChanged { version: 2, .. }), "{err}");
    assert!(err.to_string().contains("create_raw_records") && err.to_string().contains("tampered"), "{err}");
    drop((a, b, c));
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn a_recorded_profile_is_kept_and_an_unsupported_one_refused() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let modern = StoreConfig { profile: Some(SchemaProfile::Modern), ..ch.store_config() };
    let err = Store::connect(&modern).await.unwrap_err();
    assert!(matches!(err, StoreError::ProfileNotSupported { .. }), "{err}");
    let bad = StoreConfig { database: "x-y".into(), ..ch.store_config() };
    assert!(matches!(Store::connect(&bad).await.unwrap_err(), StoreError::InvalidConfig(_)));
    let store = ch.store().await.unwrap();
    let sql = format!("SELECT DISTINCT profile FROM {}.schema_migrations", store.database());
    let profiles: Vec<String> = store.client().query(&sql).fetch_all().await.unwrap();
    assert_eq!(profiles, vec!["legacy".to_owned()]);
    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_writers_store_each_batch_once() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        // Two tasks per batch id: the second must find it stored (or wait for the first).
        let b = batch(&format!("c{}", i / 2), 40, 1);
        tasks.push(tokio::spawn(async move { store.write_batch(&b).await }));
    }
    let mut written = 0;
    for t in tasks {
        if matches!(t.await.unwrap().unwrap(), WriteOutcome::Written { .. }) {
            written += 1;
        }
    }
    assert_eq!(written, 4);
    for i in 0..4 {
        assert_eq!(counts(&store, &format!("c{i}")).await, (40, 40, 1, 1));
    }
    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn every_field_round_trips_and_copies_collapse() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let mut config = ch.store_config();
    config.compression = gatelog_store::InsertCompression::None; // the default is LZ4: test uncompressed too
    config.insert_chunk_rows = 7; // several INSERTs per table
    let store = Store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();

    let mut d = AccessDecision::new("ev-1".into(), UnixMillis(T0), "proxy", Source::Proxy);
    d.received_at = UnixMillis(T0 + 1500);
    d.decision = Decision::Deny;
    d.principal = "alice@example.com".into();
    d.principal_type = PrincipalType::Service;
    d.roles = vec!["analyst".into(), "it's \"quoted\"".into()];
    d.client_ip = "2001:db8::1".into();
    d.country = "DE".into();
    d.asn = 3320;
    d.user_agent = "curl/8 ünïcödé".into();
    d.resource = "clickhouse:analytics.events".into();
    d.action = "select".into();
    d.policy = "analysts-read".into();
    d.reason = "table not allowed\nfor role".into();
    d.query = "SELECT * FROM t WHERE x = ?".into();
    d.query_fingerprint = "abc123".into();
    d.rows_read = u64::MAX;
    d.bytes_read = 2;
    d.result_rows = 3;
    d.duration_ms = 4;
    d.status = 403;
    d.ray_id = "ray".into();
    d.request_id = "req".into();
    d.zone = "example.com".into();
    d.host = "bi.example.com".into();
    d.path = "/dashboards/12".into();
    d.auth_method = "oidc".into();
    d.error = "none".into();
    d.tenant = "acme".into();
    d.spool_seq = 42;
    d.raw_sha256 = "ff".into();
    let mut b = batch("rt", 20, 0);
    b.decisions.push(d.clone());
    store.write_batch(&b).await.unwrap();
    // The Tail copy of the same decision arrives in another batch: it collapses under FINAL.
    let mut copy = batch("rt-copy", 0, 0);
    copy.decisions.push(d.clone());
    store.write_batch(&copy).await.unwrap();
    let u = store.decision_uniqueness().await.unwrap();
    assert_eq!((u.rows, u.unique_event_ids), (21, 21));

    let sql = format!(
        "SELECT * EXCEPT (batch_id, time, received_at, time_ms, received_at_ms), time_ms, received_at_ms FROM {}.decisions FINAL WHERE event_id = 'ev-1' FORMAT JSONEachRow",
        store.database()
    )
    .replace("* EXCEPT (batch_id, time, received_at, time_ms, received_at_ms)", &columns_except_times());
    let bytes = store.client().query(&sql).fetch_bytes("JSONEachRow").unwrap().collect().await.unwrap();
    let row: serde_json::Value = serde_json::from_slice(bytes.trim_ascii()).unwrap();
    let want = serde_json::to_value(&d).unwrap();
    for (key, value) in want.as_object().unwrap() {
        let got = &row[if key == "time" || key == "received_at" { format!("{key}_ms") } else { key.clone() }];
        let expected = match key.as_str() {
            "time" => serde_json::json!(T0.to_string()),
            "received_at" => serde_json::json!((T0 + 1500).to_string()),
            _ => value.clone(),
        };
        // 18.16 quotes 64-bit integers in JSON.
        let same = got == &expected
            || got.as_str().is_some_and(|s| Some(s.to_owned()) == expected.as_u64().map(|n| n.to_string()));
        assert!(same, "{key}: got {got}, want {expected}");
    }
    drop(store);
    ch.stop().await.unwrap();
}

fn columns_except_times() -> String {
    [
        "event_id",
        "source",
        "dataset",
        "decision",
        "principal",
        "principal_type",
        "roles",
        "client_ip",
        "country",
        "asn",
        "user_agent",
        "resource",
        "action",
        "policy",
        "reason",
        "query",
        "query_fingerprint",
        "rows_read",
        "bytes_read",
        "result_rows",
        "duration_ms",
        "status",
        "ray_id",
        "request_id",
        "zone",
        "host",
        "path",
        "auth_method",
        "error",
        "tenant",
        "spool_seq",
        "raw_sha256",
    ]
    .join(", ")
}
