//! The ordinary-SQL corpus (`tests/corpus/ordinary.toml`): analyst, BI-tool (Metabase,
//! Superset, Grafana, Tableau, IDEs), ClickHouse-specific, write and schema SQL.
//!
//! - Every query is allowed for its role (zero false denies).
//! - On a real ClickHouse 18.16 and in chdb (ClickHouse 26.9), each query the server
//!   supports runs as the guard forwards it, and a read gives the same answer as the
//!   client's own text: rendering changes nothing but layout.

#![allow(clippy::unwrap_used)]

#[path = "support/chdb.rs"]
mod chdb;
#[path = "support/guard_env.rs"]
mod guard_env;
mod support;

use gatelog_proxy::ProxyConfig;
use gatelog_proxy::policy::Policy;
use gatelog_store::testing::TestClickHouse;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    name: String,
    sql: String,
    #[serde(default = "analyst")]
    role: String,
    #[serde(default)]
    modern: bool,
}

fn analyst() -> String {
    "analyst".into()
}

#[derive(Debug, Deserialize)]
struct Corpus {
    query: Vec<Query>,
}

/// The corpus roles.
pub const ROLES: &str = r#"
[roles.analyst]
allow = ["analytics.*"]
deny = ["analytics.salaries"]
statements = ["select", "show", "describe", "explain"]
table_functions = ["numbers"]
default_database = "analytics"

[roles.bi]
allow = ["analytics.*", "system.tables", "system.columns", "system.databases"]
deny = ["analytics.salaries"]
statements = ["select", "show", "describe"]
default_database = "analytics"

[roles.writer]
allow = ["analytics.scratch", "analytics.events"]
statements = ["select", "insert"]
table_functions = ["numbers"]
default_database = "analytics"

[roles.admin]
allow = ["analytics.*"]
deny = ["analytics.salaries"]
statements = ["select", "show", "describe", "insert", "create", "alter", "drop", "truncate", "rename", "optimize"]
table_functions = ["numbers"]
default_database = "analytics"
"#;

fn corpus() -> Vec<Query> {
    let text = std::fs::read_to_string(guard_env::corpus_dir().join("ordinary.toml")).unwrap();
    toml::from_str::<Corpus>(&text).unwrap().query
}

/// (query, forwarded SQL, is a read) for every query; panics listing every false deny.
fn decided() -> Vec<(Query, String, bool)> {
    let config = ProxyConfig::parse(ROLES).unwrap();
    let policy = Policy::compile_without_secrets(&config).unwrap();
    let mut out = Vec::new();
    let mut denied = Vec::new();
    for q in corpus() {
        let outcome = policy.check_sql(std::slice::from_ref(&q.role), "analytics", &q.sql);
        match outcome.as_ref() {
            Ok((a, v)) if v.allowed => {
                out.push((q, a.sql.clone(), a.kind.is_read_only()));
            }
            Ok((_, v)) => denied.push(format!("{} ({}): {} {}", q.name, q.role, v.rule, v.reason)),
            Err(e) => denied.push(format!("{} ({}): {} {e}", q.name, q.role, e.rule())),
        }
    }
    assert!(denied.is_empty(), "{} false denies of {}:\n{}", denied.len(), out.len() + denied.len(), denied.join("\n"));
    out
}

#[test]
fn every_ordinary_query_is_allowed() {
    let d = decided();
    println!("ordinary corpus: {} queries, all allowed", d.len());
    assert!(d.len() >= 140, "the corpus shrank to {}", d.len());
}

/// JSON statistics differ between two runs of one query.
fn normalise(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains("\"elapsed\"") && !l.contains("\"rows_read\"") && !l.contains("\"bytes_read\""))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn run(client: &reqwest::Client, url: &str, sql: &str) -> Result<String, String> {
    guard_env::exec(client, &format!("{url}/?database=analytics"), sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_queries_run_alike_on_clickhouse_18_16() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let url = ch.url();
    let client = support::http_client();
    for sql in guard_env::schema() {
        guard_env::exec(&client, &format!("{url}/"), &sql).await.unwrap_or_else(|e| panic!("schema: {sql}: {e}"));
    }
    let mut failures = Vec::new();
    let mut ran = 0;
    for (q, rendered, read) in decided().into_iter().filter(|(q, ..)| !q.modern) {
        ran += 1;
        match run(&client, &url, &rendered).await {
            Err(e) => failures.push(format!("{}: forwarded SQL failed: {e}\n  {rendered}", q.name)),
            Ok(got) if read => match run(&client, &url, &q.sql).await {
                Ok(want) if normalise(&want) == normalise(&got) => {}
                Ok(want) => failures.push(format!("{}: answers differ:\n  sent {want:?}\n  forwarded {got:?}", q.name)),
                Err(e) => failures.push(format!("{}: the original failed: {e}", q.name)),
            },
            Ok(_) => {}
        }
    }
    println!("ordinary corpus on 18.16: {ran} queries run, {} failed", failures.len());
    ch.stop().await.unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ordinary_queries_run_alike_in_chdb_26_9() {
    let Some(python) = chdb::python() else { return };
    let cases: Vec<serde_json::Value> = decided()
        .into_iter()
        .map(|(q, rendered, read)| serde_json::json!({"name": q.name, "original": q.sql, "rendered": rendered, "compare": read}))
        .collect();
    let job = serde_json::json!({"schema": guard_env::schema(), "cases": cases});
    let results = chdb::run(&python, &guard_env::corpus_dir().join("run_chdb.py"), &job);
    let failures: Vec<String> = results
        .iter()
        .filter(|r| r["ok"] != true || r["same"] == false)
        .map(|r| format!("{}: {}", r["name"], r["error"]))
        .collect();
    println!("ordinary corpus in chdb: {} queries run, {} failed", results.len(), failures.len());
    assert_eq!(results.len(), cases.len(), "chdb answered for every query");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
