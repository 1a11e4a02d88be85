//! Copies of one event whose times differ (as the Tail and Logpush copies of one invocation
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
//! may), and the queries that count them, for the dedup and rekey tests.

use gatelog_model::{AccessDecision, Source, UnixMillis};
use gatelog_store::{Store, WriteBatch};

pub const MIDNIGHT: i64 = 1_741_046_400_000; // 2025-03-04T00:00:00Z
pub const MONTH: i64 = 1_740_787_200_000; // 2025-03-01T00:00:00Z

/// One batch holding one copy of each event: `(event_id, time)`; its rows' `principal` is
/// `<batch_id>@example.com`, so a test can tell which copy it reads.
pub fn copies(batch_id: &str, events: &[(&str, i64)]) -> WriteBatch {
    let mut b = super::batch(batch_id, 0, 0);
    for (id, ms) in events {
        let mut d = AccessDecision::new((*id).into(), UnixMillis(*ms), "workers_trace_events", Source::Tail);
        d.principal = format!("{batch_id}@example.com");
        b.decisions.push(d);
    }
    b.lines = events.len() as u64;
    b
}

/// The same events as another batch would carry them: each a little off in time.
pub fn events(offset_ms: i64) -> Vec<(&'static str, i64)> {
    vec![
        ("ev-ms", 1_740_990_713_712 + offset_ms),  // 1 ms apart within a day
        ("ev-midnight", MIDNIGHT - 1 + offset_ms), // 23:59:59.999 / 00:00:00.000
        ("ev-month", MONTH - 1 + offset_ms),       // February / March
        ("ev-hours", MIDNIGHT - 3_600_000 + offset_ms * 7_200_000), // 23:00 / 01:00
    ]
}

/// `(rows, distinct event ids)` of `decisions FINAL`.
pub async fn final_counts(store: &Store) -> (u64, u64) {
    let db = store.database();
    let sql = format!("SELECT count(), uniqExact(event_id) FROM {db}.decisions FINAL");
    store.client().query(&sql).fetch_one::<(u64, u64)>().await.unwrap()
}

/// Rows of `decisions` as stored (copies not yet merged away included).
pub async fn raw_count(store: &Store) -> u64 {
    let sql = format!("SELECT count() FROM {}.decisions", store.database());
    store.client().query(&sql).fetch_one::<u64>().await.unwrap()
}

/// `engine_full` of a table of the store's database.
pub async fn engine(store: &Store, table: &str) -> Option<String> {
    let sql =
        format!("SELECT engine_full FROM system.tables WHERE database = '{}' AND name = '{table}'", store.database());
    store.client().query(&sql).fetch_all::<String>().await.unwrap().into_iter().next()
}
