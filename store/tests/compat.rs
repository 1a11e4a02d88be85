//! Every statement the store emits runs on the real 18.16 (legacy profile) and, through
//! `tests/compat/run_chdb.py`, on chdb's ClickHouse 26.9 (both profiles; cluster dumps parsed).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_store::SchemaProfile;
use gatelog_store::read::rows::type_matches;
use gatelog_store::read::{Registered, registered};
use gatelog_store::sql::{SchemaOptions, render_dump, sample_payloads, statements};
use gatelog_store::testing::TestClickHouse;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[tokio::test]
async fn every_legacy_statement_runs_on_clickhouse_18_16() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let opts = SchemaOptions { database: ch.database().to_owned(), cluster: None, retention_days: Some(30) };
    let client = clickhouse::Client::default().with_url(ch.url()).with_validation(false);
    let all = statements(SchemaProfile::Legacy, &opts);
    assert!(all.len() >= 20, "{} statements", all.len());
    for s in &all {
        if let Err(e) = client.query_raw(&s.exec).execute().await {
            panic!("statement {} failed on 18.16: {e}\n{}", s.name, s.exec);
        }
    }
    // The encoder's bytes, inserted with the column list the store sends, read back as expected.
    for p in sample_payloads(SchemaProfile::Legacy, &opts) {
        let sql = format!("INSERT INTO {}.{} ({}) FORMAT RowBinary", p.database, p.table, p.columns.join(", "));
        let mut insert = client.insert_formatted_with(sql);
        insert.send(p.rowbinary.clone().into()).await.unwrap();
        insert.end().await.unwrap();
        let got = client.query_raw(&p.check).fetch_bytes("CSV").unwrap().collect().await.unwrap();
        assert_eq!(String::from_utf8_lossy(&got).trim(), p.expect, "payload {}", p.table);
    }
    // Every read query returns the columns, in the order and types, its row type decodes.
    for r in registered(SchemaProfile::Legacy, &opts) {
        let sql = format!("DESCRIBE TABLE ({})", r.sql);
        let got = client.query_raw(&sql).fetch_bytes("TSV").unwrap().collect().await.unwrap();
        let got: Vec<(String, String)> = String::from_utf8_lossy(&got)
            .lines()
            .map(|l| {
                let mut f = l.split('\t');
                (f.next().unwrap_or_default().to_owned(), f.next().unwrap_or_default().to_owned())
            })
            .collect();
        check_columns(&r, &got, "18.16");
    }
    drop(client);
    ch.stop().await.unwrap();
}

/// `got` (name, type) must be `r`'s declared columns, `LowCardinality` allowed.
fn check_columns(r: &Registered, got: &[(String, String)], server: &str) {
    let names: Vec<&str> = got.iter().map(|c| c.0.as_str()).collect();
    let expected: Vec<&str> = r.columns.iter().map(|c| c.0).collect();
    assert_eq!(names, expected, "{} on {server}: column names", r.name);
    for ((name, actual), (_, want)) in got.iter().zip(r.columns) {
        assert!(
            type_matches(want, actual),
            "{} on {server}: column {name} is {actual}, the row decodes {want}",
            r.name
        );
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/compat/run_chdb.py")
}

/// The python that has chdb: `$GATELOG_CHDB_PYTHON`, else `python3`/`python` if they import it.
fn chdb_python() -> Option<String> {
    let candidates: Vec<String> = match std::env::var("GATELOG_CHDB_PYTHON") {
        Ok(p) if !p.is_empty() => vec![p],
        _ => vec!["python3".into(), "python".into()],
    };
    candidates.into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import chdb"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn run_script(python: &str, dump: &str, extra: &[&str]) -> String {
    let mut child = Command::new(python)
        .arg(script())
        .args(extra)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(dump.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run_chdb.py {extra:?} failed:\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn every_statement_runs_in_chdb() {
    let Some(python) = chdb_python() else {
        if std::env::var("GATELOG_SKIP_CHDB").as_deref() == Ok("1") {
            eprintln!("skipping the chdb compatibility check: GATELOG_SKIP_CHDB=1");
            return;
        }
        panic!(
            "chdb is not importable: install it with `python3 -m pip install chdb-core` (or point \
             GATELOG_CHDB_PYTHON at a python that has it, e.g. a venv's bin/python); \
             set GATELOG_SKIP_CHDB=1 to skip this check"
        );
    };
    for profile in [SchemaProfile::Modern, SchemaProfile::Legacy] {
        let opts = SchemaOptions {
            database: "gatelog".into(),
            cluster: None,
            retention_days: Some(3650), // the 2025 sample rows must not expire by TTL meanwhile
        };
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = Vec::new();
        for p in sample_payloads(profile, &opts) {
            let file = format!("{}.rowbinary", p.table);
            std::fs::write(dir.path().join(&file), &p.rowbinary).unwrap();
            manifest.push(serde_json::json!({
                "database": p.database, "table": p.table, "columns": p.columns, "file": file,
                "check": p.check, "expect": p.expect,
            }));
        }
        std::fs::write(dir.path().join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
        let rowbinary = dir.path().to_string_lossy().into_owned();
        let out =
            run_script(&python, &render_dump(profile, &opts), &["--rowbinary", &rowbinary, "--describe", "read."]);
        println!("{profile}: {}", out.lines().last().unwrap_or_default());
        assert!(out.contains("4 RowBinary payloads checked"), "{out}");
        let described: std::collections::BTreeMap<String, Vec<(String, String)>> = out
            .lines()
            .filter_map(|l| l.strip_prefix("DESCRIBE\t"))
            .map(|l| {
                let (name, json) = l.split_once('\t').unwrap();
                (name.to_owned(), serde_json::from_str(json).unwrap())
            })
            .collect();
        let reads = registered(profile, &opts);
        assert_eq!(described.len(), reads.len(), "{out}");
        for r in &reads {
            check_columns(r, &described[&r.name], "chdb");
        }

        // Cluster DDL: chdb has no cluster or ZooKeeper, so it can only parse it.
        let cluster = SchemaOptions { cluster: Some("gatelog_cluster".into()), ..opts };
        let out = run_script(&python, &render_dump(profile, &cluster), &["--parse-only"]);
        println!("{profile} cluster: {out}");
    }
}
