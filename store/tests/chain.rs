//! The hash chain over stored batches against the real 18.16: batches whose events overlap
//! (the Tail and Logpush copies of one invocation, a re-delivered record) verify before and
//! after `OPTIMIZE … FINAL` merged the copies away; a replayed batch and a restarted writer
//! continue the chain without forking it; then each kind of tampering with the stored
//! records is found, naming the batch (and the event for a row).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::batch;
use common::copies::{copies, events};
use gatelog_store::chain::{ChainVerdict, SignatureCheck, VerifyOptions};
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{Store, WriteOutcome};
use std::time::Duration;

/// Verifies everything, in windows of a few rows so that several windows are exercised.
async fn verify(store: &Store) -> ChainVerdict {
    let opts = VerifyOptions { from_ms: 0, to_ms: i64::MAX, window_rows: 25 };
    store.verify_chain(&opts, &|_| SignatureCheck::Unsigned, &|_| {}).await.unwrap()
}

/// Runs a statement and waits for its mutations (18.16 has no `mutations_sync`).
async fn mutate(store: &Store, sql: &str) {
    store.client().query(sql).execute().await.unwrap();
    let pending =
        format!("SELECT count() FROM system.mutations WHERE database = '{}' AND is_done = 0", store.database());
    for _ in 0..600 {
        if store.client().query(&pending).fetch_one::<u64>().await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mutation did not finish: {sql}");
}

fn found(v: &ChainVerdict, what: &str, batch: &str, event: Option<&str>) -> bool {
    v.problems.iter().any(|p| p.what == what && p.batch_id == batch && p.event_id.as_deref() == event)
}

#[tokio::test]
async fn overlapping_batches_verify_after_merges_and_tampering_is_named() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let db = store.database().to_owned();
    let first = batch("b1", 20, 1);
    // A record re-delivered in a differently cut body: events 1..4 of b1 again.
    let mut redelivered = batch("redelivered", 0, 0);
    redelivered.decisions = first.decisions[1..4].to_vec();
    redelivered.lines = 3;
    for b in [&first, &copies("tail", &events(0)), &copies("logpush", &events(1)), &redelivered] {
        assert!(matches!(store.write_batch(b).await.unwrap(), WriteOutcome::Written { .. }));
    }
    let v = verify(&store).await;
    assert!(v.ok(), "{v}");
    assert_eq!((v.first_link, v.last_link, v.ledger_entries), (Some(1), Some(4), 31), "{v}");

    // A replayed batch is not linked again; a restarted writer continues the stored head.
    assert_eq!(store.write_batch(&first).await.unwrap(), WriteOutcome::AlreadyStored);
    let restarted = Store::connect(&ch.store_config()).await.unwrap();
    restarted.write_batch(&batch("b5", 3, 0)).await.unwrap();
    let head = restarted.chain_head().await.unwrap();
    assert_eq!((head.links, head.last_batch_id.as_deref()), (5, Some("b5")));

    // Merges drop the earlier copies; nothing was tampered with.
    mutate(&store, &format!("OPTIMIZE TABLE {db}.decisions FINAL")).await;
    let v = verify(&store).await;
    assert!(v.ok(), "{v}");
    assert!(v.merged_copies >= 5, "the tail copies and b1's re-delivered rows were merged away: {v}");
    assert_eq!(v.exit_code(), 0);

    // A row deleted (b1's event 5 has no later copy).
    let ev = |i: usize| first.decisions[i].event_id.clone();
    mutate(&store, &format!("ALTER TABLE {db}.decisions DELETE WHERE event_id = '{}'", ev(5))).await;
    let v = verify(&store).await;
    assert!(found(&v, "row deleted", "b1", Some(&ev(5))), "{v}");
    assert_eq!(v.exit_code(), 8);
    assert_eq!(v.problems[0].batch_id, "b1", "{v}");

    // A forged row under an existing batch id.
    mutate(&store, &format!(
        "INSERT INTO {db}.decisions (event_id, time, received_at, tenant, decision, batch_id) VALUES ('forged-1', '2025-03-03 08:31:54', '2025-03-03 08:32:53', 'default', 'allow', 'b5')"
    )).await;
    let v = verify(&store).await;
    assert!(found(&v, "row inserted", "b5", Some("forged-1")), "{v}");

    // A row edited: b1's event 10 was a deny.
    mutate(&store, &format!("ALTER TABLE {db}.decisions UPDATE decision = 'allow' WHERE event_id = '{}'", ev(10)))
        .await;
    let v = verify(&store).await;
    assert!(found(&v, "row edited", "b1", Some(&ev(10))), "{v}");

    // A link edited.
    mutate(
        &store,
        &format!("ALTER TABLE {db}.ingest_batches UPDATE chain_hash = 'forged' WHERE batch_id = 'redelivered'"),
    )
    .await;
    let v = verify(&store).await;
    assert!(found(&v, "link", "redelivered", None), "{v}");

    // A marker deleted: its link is missing, and its ledger names the batch.
    mutate(&store, &format!("ALTER TABLE {db}.ingest_batches DELETE WHERE batch_id = 'logpush'")).await;
    let v = verify(&store).await;
    assert!(v.problems.iter().any(|p| p.what == "link missing" && p.link == 3), "{v}");
    assert!(found(&v, "marker", "logpush", None), "{v}");
    let text = v.to_string();
    assert!(text.contains("FAILED") && text.contains("logpush"), "{text}");

    drop((store, restarted));
    ch.stop().await.unwrap();
}

/// What the chain costs, on the managed 18.16: ingest time of `GATELOG_CHAIN_ROWS` decisions
/// (default 200 000) in batches of 2 000 written in groups of 10, the bytes `batch_rows`
/// takes beside `decisions` (per million rows, from `system.parts`), and `verify_chain`'s
/// time over them. Ignored by default:
///
/// ```text
/// GATELOG_CHAIN_ROWS=1000000 cargo test -p gatelog-store --test chain -- --ignored --nocapture
/// ```
#[tokio::test]
#[ignore = "benchmark; run with --ignored --nocapture"]
#[allow(clippy::print_stdout)]
async fn chain_costs() {
    let rows: usize = std::env::var("GATELOG_CHAIN_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let db = store.database().to_owned();
    let per_batch = 2_000;
    let batches: Vec<_> = (0..rows.div_ceil(per_batch)).map(|i| batch(&format!("perf-{i:05}"), per_batch, 0)).collect();
    let started = std::time::Instant::now();
    for (g, group) in batches.chunks(10).enumerate() {
        let tagged: Vec<(u64, &gatelog_store::WriteBatch)> =
            group.iter().enumerate().map(|(i, b)| ((g * 10 + i + 1) as u64, b)).collect();
        store.write_batches(&tagged, gatelog_store::PartialCheck::OnRetry).await.unwrap();
    }
    let ingest = started.elapsed();
    mutate(&store, &format!("OPTIMIZE TABLE {db}.batch_rows FINAL")).await;
    mutate(&store, &format!("OPTIMIZE TABLE {db}.decisions FINAL")).await;
    let sql = format!(
        "SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.parts \
         WHERE database = '{db}' AND active AND table IN ('decisions', 'batch_rows', 'raw_records', 'ingest_batches') GROUP BY table ORDER BY table"
    );
    let parts: Vec<(String, u64, u64, u64)> = store.client().query(&sql).fetch_all().await.unwrap();
    let started = std::time::Instant::now();
    let opts = VerifyOptions { from_ms: 0, to_ms: i64::MAX, ..VerifyOptions::default() };
    let v = store.verify_chain(&opts, &|_| SignatureCheck::Unsigned, &|_| {}).await.unwrap();
    let verify = started.elapsed();
    assert!(v.ok(), "{v}");
    println!(
        "rows {rows}: ingest (decisions, raw records, ledger, links) {:.2} s, {:.0} rows/s",
        ingest.as_secs_f64(),
        rows as f64 / ingest.as_secs_f64()
    );
    for (table, n, compressed, raw) in parts {
        println!(
            "{table}: {n} rows, {compressed} bytes compressed ({:.1} MB per million rows), {raw} uncompressed",
            compressed as f64 / n.max(1) as f64
        );
    }
    println!(
        "verify_chain: {:.2} s ({:.0} rows/s): {v}",
        verify.as_secs_f64(),
        v.rows_checked as f64 / verify.as_secs_f64()
    );
    drop(store);
    ch.stop().await.unwrap();
}
