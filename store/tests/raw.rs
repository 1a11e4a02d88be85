//! `raw_batches` and `Store::raw_line` against the real Debian clickhouse-server 18.16: a
//! batch's body is stored once (a replay stores nothing, a half-written attempt's body is
//! removed first), each event's line comes back byte for byte, events stored before
//! migration 18 are found in `raw_records`, and a changed body is an integrity error.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::batch;
use gatelog_store::raw::RawError;
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{Store, WriteBatch, WriteOutcome};
use std::io::Write as _;
use std::time::Duration;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// `common::batch` as a new receiver spools it: the lines in its body (every third with
/// CRLF, a blank line first), none as rows of their own.
fn with_body(id: &str, n: usize) -> (WriteBatch, Vec<Vec<u8>>) {
    let mut b = batch(id, n, 0);
    let mut body = b"\n".to_vec();
    let mut lines = Vec::new();
    for (i, raw) in b.raw.iter().enumerate() {
        body.extend_from_slice(raw.line.as_bytes());
        body.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
        lines.push(raw.line.as_bytes().to_vec());
    }
    b.decision_lines = (0..n).map(|i| u32::try_from(i + 2).unwrap()).collect();
    b.sha256 = gatelog_model::sha256_hex(&body);
    b.bytes = body.len() as u64;
    b.body = gzip(&body);
    b.raw.clear();
    (b, lines)
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
async fn each_body_is_stored_once_and_each_events_line_comes_back() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let db = store.database().to_owned();
    let (b, lines) = with_body("rb-1", 40);

    // A previous attempt died after the body and some rows, before the marker.
    let mut first = b.clone();
    first.decisions.truncate(10);
    first.decision_lines.truncate(10);
    store.write_batch(&first).await.unwrap();
    store
        .execute("ALTER", "ingest_batches", &format!("ALTER TABLE {db}.ingest_batches DELETE WHERE batch_id = 'rb-1'"))
        .await
        .unwrap();
    wait_mutations(&store).await;
    assert!(matches!(store.write_batch(&b).await.unwrap(), WriteOutcome::Written { decisions: 40, .. }));
    assert_eq!(store.write_batch(&b).await.unwrap(), WriteOutcome::AlreadyStored);
    assert_eq!(store.count_rows_of_batch("raw_batches", "rb-1").await.unwrap(), 1, "one body, without FINAL");
    assert_eq!(store.count_rows_of_batch("raw_records", "rb-1").await.unwrap(), 0);

    for (d, line) in b.decisions.iter().zip(&lines) {
        let raw = store.raw_line(&d.tenant, &d.event_id).await.unwrap().unwrap();
        assert_eq!(raw.bytes, *line, "{}", d.event_id);
        assert_eq!((raw.batch_id.as_str(), raw.table), ("rb-1", "raw_batches"));
    }
    assert!(store.raw_line("default", "no-such-event").await.unwrap().is_none());

    // Stored before migration 18: the line is a `raw_records` row.
    let old = batch("rb-old", 5, 0);
    store.write_batch(&old).await.unwrap();
    for (d, r) in old.decisions.iter().zip(&old.raw) {
        let raw = store.raw_line(&d.tenant, &d.event_id).await.unwrap().unwrap();
        assert_eq!((raw.bytes, raw.table), (r.line.as_bytes().to_vec(), "raw_records"));
    }

    // A changed body (another valid gzip) is detected, never given.
    let other = gzip(b"{\"RayID\":\"x\"}\n");
    let sql = format!("ALTER TABLE {db}.raw_batches UPDATE body = unhex('{}') WHERE batch_id = 'rb-1'", hex(&other));
    store.execute("ALTER", "raw_batches", &sql).await.unwrap();
    wait_mutations(&store).await;
    let d = &b.decisions[0];
    assert!(matches!(store.raw_line(&d.tenant, &d.event_id).await, Err(RawError::Integrity { .. })));
    drop(store);
    ch.stop().await.unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
