//! The SQL this crate gives auditors and the store: a sample's re-draw query draws the same
//! rows in the same order as the Rust code, and the chain's rows digest computed by ClickHouse
//! equals the Rust one; on a real ClickHouse 18.16 and on chdb's 26.9.
#![allow(clippy::unwrap_used)]

use gatelog_report::chain::{row_hash, rows_digest, rows_digest_sql};
use gatelog_report::sample::{draw, quote, redraw_sql};
use gatelog_store::testing::TestClickHouse;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// A population with awkward ids (quotes, backslashes, unicode, numbers as text) and roles.
struct Row {
    event_id: String,
    n: u64,
    principal: String,
    roles: Vec<String>,
    batch: String,
}

fn rows() -> Vec<Row> {
    (0..600u64)
        .map(|n| Row {
            event_id: match n % 5 {
                0 => format!("{:032x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                1 => format!("o'brien-{n}"),
                2 => format!("back\\slash-{n}"),
                3 => format!("ünï-{n}"),
                _ => n.to_string(),
            },
            n,
            principal: format!("user{}@example.com", n % 17),
            roles: (0..n % 3).map(|r| format!("role:{r}|{}", n % 4)).collect(),
            batch: format!("b{}", n % 4),
        })
        .collect()
}

const SEED: &str = "2026Q1 'cc6.1' \\ seed";

fn table_ddl(db: &str, engine: &str) -> String {
    format!(
        "CREATE TABLE {db}.population (event_id String, n UInt64, principal String, roles Array(String), batch String) ENGINE = {engine}"
    )
}

fn insert_sql(db: &str) -> String {
    let values: Vec<String> = rows()
        .iter()
        .map(|r| {
            let roles: Vec<String> = r.roles.iter().map(|x| quote(x)).collect();
            format!(
                "({}, {}, {}, [{}], {})",
                quote(&r.event_id),
                r.n,
                quote(&r.principal),
                roles.join(", "),
                quote(&r.batch)
            )
        })
        .collect();
    format!("INSERT INTO {db}.population (event_id, n, principal, roles, batch) VALUES {}", values.join(", "))
}

fn population_sql(db: &str) -> String {
    format!("SELECT event_id, n, principal FROM {db}.population WHERE n % 3 != 0 ORDER BY n")
}

fn population() -> Vec<Row> {
    rows().into_iter().filter(|r| r.n % 3 != 0).collect()
}

const ROLES: &str = "arrayStringConcat(arrayMap(r -> concat(toString(length(r)), ':', r), roles), '')";

fn digest_sql(db: &str) -> String {
    format!(
        "SELECT batch, {} FROM {db}.population GROUP BY batch ORDER BY batch",
        rows_digest_sql(&["event_id", "toString(n)", "principal", ROLES])
    )
}

/// (rank, id) pairs the Rust code draws, and the per-batch digests it computes.
fn expected(k: u64) -> (Vec<String>, Vec<String>, String) {
    let pop = population();
    let by_id: Vec<String> = draw(SEED, pop.iter().map(|r| r.event_id.as_str()), k)
        .unwrap()
        .into_iter()
        .map(|d| format!("{}\t{}", d.rank, d.id))
        .collect();
    let numbers: Vec<String> = pop.iter().map(|r| r.n.to_string()).collect();
    let by_n: Vec<String> = draw(SEED, numbers.iter().map(String::as_str), k)
        .unwrap()
        .into_iter()
        .map(|d| format!("{}\t{}", d.rank, d.id))
        .collect();
    let mut batches: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows() {
        let roles: String = r.roles.iter().map(|x| format!("{}:{x}", x.len())).collect();
        let h = row_hash(&[&r.event_id, &r.n.to_string(), &r.principal, &roles]);
        batches.entry(r.batch.clone()).or_default().push(h);
    }
    let digests: String = batches.into_iter().map(|(b, hs)| format!("{b}\t{}\n", rows_digest(hs))).collect();
    (by_id, by_n, digests)
}

/// The queries whose first two columns (rank, id) are compared, with k = 40.
fn queries(db: &str) -> [String; 2] {
    let by_id = redraw_sql(&population_sql(db), "event_id", SEED, 40).unwrap();
    let by_n = redraw_sql(&population_sql(db), "n", SEED, 40).unwrap();
    [format!("SELECT sample_rank, event_id FROM ({by_id})"), format!("SELECT sample_rank, toString(n) FROM ({by_n})")]
}

fn lines(tsv: &str) -> Vec<String> {
    tsv.lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn the_sample_and_the_rows_digest_are_the_same_on_clickhouse_18_16() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap(); // creates the test's database
    drop(store);
    let db = ch.database().to_owned();
    let client = clickhouse::Client::default().with_url(ch.url()).with_validation(false);
    let run = |sql: String| {
        let client = client.clone();
        async move {
            let bytes = client.query_raw(&sql).fetch_bytes("TabSeparatedRaw").unwrap().collect().await;
            String::from_utf8(bytes.unwrap_or_else(|e| panic!("{e}\n{sql}")).to_vec()).unwrap()
        }
    };
    let version = run("SELECT version()".into()).await;
    assert!(version.starts_with("18.16"), "expected the 18.16 test server, got {version}");
    client.query_raw(&table_ddl(&db, "MergeTree ORDER BY event_id")).execute().await.unwrap();
    client.query_raw(&insert_sql(&db)).execute().await.unwrap();

    let (by_id, by_n, digests) = expected(40);
    let [q_id, q_n] = queries(&db);
    assert_eq!(lines(&run(q_id).await), by_id, "18.16 drew another sample by event_id");
    assert_eq!(lines(&run(q_n).await), by_n, "18.16 drew another sample by a number id");
    assert_eq!(run(digest_sql(&db)).await, digests, "18.16 computed other rows digests");
    drop(client);
    ch.stop().await.unwrap();
}

const CHDB_SCRIPT: &str = r#"
import json, sys
from chdb import session
job = json.load(sys.stdin)
s = session.Session()
print(json.dumps({
    "version": str(s.query("SELECT version()", "TabSeparatedRaw")).strip(),
    "results": [str(s.query(q, "TabSeparatedRaw")) if run else (s.query(q), "")[1]
                for q, run in job],
}))
"#;

/// The python that has chdb, if any (the store's one finder of it; this test skips without).
fn chdb_python() -> Option<String> {
    gatelog_store::testing::chdb_python().ok().flatten()
}

#[test]
fn the_sample_and_the_rows_digest_are_the_same_in_chdb() {
    let Some(python) = chdb_python() else {
        if std::env::var("GATELOG_SKIP_CHDB").as_deref() == Ok("1") {
            eprintln!("skipping the chdb check: GATELOG_SKIP_CHDB=1");
            return;
        }
        panic!("chdb is not importable: run ./x deps, or point GATELOG_CHDB_PYTHON at a python that has chdb-core");
    };
    let db = "gatelog_report_sql";
    let [q_id, q_n] = queries(db);
    let job = serde_json::json!([
        [format!("CREATE DATABASE {db}"), false],
        [table_ddl(db, "MergeTree ORDER BY event_id"), false],
        [insert_sql(db), false],
        [q_id, true],
        [q_n, true],
        [digest_sql(db), true],
    ]);
    let mut child = Command::new(&python)
        .args(["-c", CHDB_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(job.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "chdb failed: {}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("chdb {}", got["version"]);
    let results: Vec<String> =
        got["results"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
    let (by_id, by_n, digests) = expected(40);
    assert_eq!(lines(&results[3]), by_id, "chdb drew another sample by event_id");
    assert_eq!(lines(&results[4]), by_n, "chdb drew another sample by a number id");
    assert_eq!(results[5], digests, "chdb computed other rows digests");
}
