//! What the guard's ClickHouse tests share: a managed ClickHouse 18.16 logging at debug level
//! (its log names every MergeTree table a query reads, tagged with the query id: the oracle
//! that does not trust the guard), the schema of `tests/corpus/schema.sql`, and the markers
//! of the denied tables.
#![allow(dead_code, clippy::unwrap_used)]

use gatelog_store::managed::ManagedOptions;
use gatelog_store::testing::TestClickHouse;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Values only the denied tables hold.
pub const MARKERS: &[&str] = &["987654321987", "98765432123", "VAULT-7f3a9c"];
/// The denied tables.
pub const DENIED: &[&str] = &["analytics.salaries", "secret.vault"];

pub fn corpus_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus"))
}

/// The statements of `tests/corpus/schema.sql`.
pub fn schema() -> Vec<String> {
    let text = std::fs::read_to_string(corpus_dir().join("schema.sql")).unwrap();
    text.split("\n;;\n")
        .map(|s| s.lines().filter(|l| !l.starts_with("--")).collect::<Vec<_>>().join("\n"))
        .filter(|s| !s.trim().is_empty())
        .collect()
}

/// A managed 18.16 at debug log level, with the schema loaded.
pub async fn clickhouse(client: &reqwest::Client) -> TestClickHouse {
    let opts = ManagedOptions { log_level: "debug".into(), ..ManagedOptions::default() };
    let ch = TestClickHouse::start_with(opts).await.unwrap();
    for sql in schema() {
        exec(client, &format!("{}/", ch.url()), &sql).await.unwrap_or_else(|e| panic!("schema: {sql}: {e}"));
    }
    ch
}

/// POSTs `sql` to `url` (with its query string); the body, or the first line of the error.
pub async fn exec(client: &reqwest::Client, url: &str, sql: &str) -> Result<String, String> {
    let resp = client.post(url).body(sql.to_owned()).send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if status.is_success() { Ok(text) } else { Err(text.lines().next().unwrap_or_default().to_owned()) }
}

/// The server's log so far.
pub fn server_log(ch: &TestClickHouse) -> String {
    std::fs::read_to_string(ch.server().dir().join("log/clickhouse-server.log")).unwrap_or_default()
}

/// Query ids that appear in the log.
pub fn logged_query_ids(log: &str) -> BTreeSet<String> {
    log.lines().filter_map(|l| Some(l.split_once("} <")?.0.rsplit_once('{')?.1.to_owned())).collect()
}

/// The MergeTree tables each query read, by query id, as ClickHouse logged them
/// (`{id} <Debug> db.table (SelectExecutor): …`).
pub fn tables_read(log: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in log.lines() {
        let Some((head, rest)) = line.split_once("} <Debug> ") else { continue };
        let Some((_, id)) = head.rsplit_once('{') else { continue };
        let Some((table, _)) = rest.split_once(" (SelectExecutor)") else { continue };
        out.entry(id.to_owned()).or_default().insert(table.to_owned());
    }
    out
}

/// The marker a text holds, if any.
pub fn marker_in(text: &str) -> Option<&'static str> {
    MARKERS.iter().copied().find(|m| text.contains(m))
}
