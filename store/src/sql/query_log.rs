//! The one statement gatelog sends to the ClickHouse server `gatelog proxy` fronts (not
//! gatelog's own): the queries of `system.query_log` that finished in a window of seconds
//! and read, ran or returned at least the runaway floors ([`finished_queries`]). `type` is
//! compared as a number (`toUInt8`): an integer on 18.16, an `Enum8` of the same values
//! (2 `QueryFinish`, 4 `ExceptionWhileProcessing`) on newer servers. `event_date` is the
//! server's local date, so it is bounded a day wider than the window, for the partition
//! pruning only. Answers are `TabSeparated` (18.16 quotes 64-bit integers in JSON).

use super::Statement;

/// The floors below which no runaway limit can be breached (the lowest of the section's and
/// every role's limits): rows with none of them reached are not read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floors {
    pub read_rows: u64,
    pub read_bytes: u64,
    pub duration_ms: u64,
    pub result_rows: u64,
}

/// The columns [`finished_queries`] returns, in order.
pub const COLUMNS: [&str; 9] = [
    "query_id",
    "kind",
    "read_rows",
    "read_bytes",
    "query_duration_ms",
    "result_rows",
    "memory_usage",
    "exception",
    "at",
];

/// Finished queries of `table` (`system.query_log`) with `event_time` in `[from_s, to_s)`,
/// oldest first, at most `limit`.
pub fn finished_queries(table: &str, from_s: i64, to_s: i64, floors: Floors, limit: u64) -> String {
    let Floors { read_rows, read_bytes, duration_ms, result_rows } = floors;
    format!(
        "SELECT query_id, toUInt8(type) AS kind, read_rows, read_bytes, query_duration_ms, result_rows, \
         memory_usage, substring(exception, 1, 500) AS exception, toUInt32(event_time) AS at \
         FROM {table} \
         WHERE event_date >= toDate(toDateTime({from_s}, 'UTC')) - 1 AND event_date <= toDate(toDateTime({to_s}, 'UTC')) + 1 \
         AND event_time >= toDateTime({from_s}, 'UTC') AND event_time < toDateTime({to_s}, 'UTC') \
         AND toUInt8(type) IN (2, 4) AND query_id != '' \
         AND (read_rows >= {read_rows} OR read_bytes >= {read_bytes} OR query_duration_ms >= {duration_ms} \
         OR result_rows >= {result_rows}) \
         ORDER BY event_time, query_id LIMIT {limit}"
    )
}

/// For `gatelog sql dump` and the compatibility tests, which cannot rely on a server's own
/// query log (chdb has none): a table with `system.query_log`'s types for the columns read
/// (`type` as 26.9's `Enum8`; 18.16's `UInt8` reads the same through `toUInt8`), then the
/// statement over it. The sent text names `system.query_log`.
pub(crate) fn example_statements(db: &str) -> Vec<Statement> {
    let stand_in = format!("{db}.query_log_stand_in");
    let floors = Floors { read_rows: 1_000_000, read_bytes: 1 << 30, duration_ms: 60_000, result_rows: 1_000_000 };
    let (from, to) = (1_740_990_000, 1_740_990_060);
    vec![
        Statement::same(
            "fixture.query_log_stand_in",
            format!(
                "CREATE TABLE IF NOT EXISTS {stand_in} (event_date Date, event_time DateTime, \
                 type Enum8('QueryStart' = 1, 'QueryFinish' = 2, 'ExceptionBeforeStart' = 3, 'ExceptionWhileProcessing' = 4), \
                 query_id String, read_rows UInt64, read_bytes UInt64, query_duration_ms UInt64, result_rows UInt64, \
                 memory_usage UInt64, exception String) ENGINE = MergeTree ORDER BY event_time"
            ),
        ),
        Statement {
            name: "fronted.query_log_finished".to_owned(),
            sql: finished_queries("system.query_log", from, to, floors, 10_000),
            exec: finished_queries(&stand_in, from, to, floors, 10_000),
        },
    ]
}
