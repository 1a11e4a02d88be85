//! Every statement the store emits runs on the real 18.16 (legacy profile) and, through
//! `tests/compat/run_chdb.py`, on chdb's ClickHouse 26.9 (both profiles; cluster dumps parsed).
//! On 26.9 also: migration 5 moves old-keyed rows to the `(tenant, event_id)` key from every
//! point an interrupted attempt can stop at (the 18.16 side is `rekey.rs`), and which copy of
//! an event survives a merge (the 18.16 side is `dedup.rs`).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::chdb::Chdb;
use gatelog_store::SchemaProfile;
use gatelog_store::read::rows::type_matches;
use gatelog_store::read::{Registered, registered};
use gatelog_store::sql::{
    REKEY_LOOKS, Rekey, RekeySeen, RekeyStep, SchemaOptions, migrations, render_dump, sample_payloads, statements,
};
use gatelog_store::testing::TestClickHouse;
use std::io::Write as _;
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

fn run_script(python: &str, dump: &str, extra: &[&str]) -> String {
    let mut child = Command::new(python)
        .arg(common::chdb::script())
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
    let Some(python) = common::chdb::python() else { return };
    for profile in [SchemaProfile::Modern, SchemaProfile::Legacy] {
        let opts = SchemaOptions {
            database: "gatelog".into(),
            cluster: None,
            retention_days: Some(3650), // the 2025 sample rows must not expire by TTL meanwhile
        };
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = Vec::new();
        for (i, p) in sample_payloads(profile, &opts).into_iter().enumerate() {
            let file = format!("{i}-{}.rowbinary", p.table);
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
        assert!(out.contains("7 RowBinary payloads checked"), "{out}");
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

/// `engine_full` of `db.table` in chdb; `None` when it does not exist.
fn chdb_engine(chdb: &mut Chdb, db: &str, table: &str) -> Option<String> {
    let out = chdb.run(&format!("SELECT engine_full FROM system.tables WHERE database = '{db}' AND name = '{table}'"));
    (!out.is_empty()).then(|| out.trim_matches('"').replace("\"\"", "\""))
}

/// Takes the steps the store's runner would take ([`Rekey::next_step`]) from what chdb holds.
fn finish_rekey(chdb: &mut Chdb, db: &str, plan: &Rekey) -> Vec<RekeyStep> {
    let mut steps = Vec::new();
    for _ in 0..REKEY_LOOKS {
        let seen = RekeySeen {
            table: chdb_engine(chdb, db, &plan.table),
            new_table: chdb_engine(chdb, db, &plan.new_table).is_some(),
            old_table: chdb_engine(chdb, db, &plan.old_table).is_some(),
        };
        let step = plan.next_step(&seen).unwrap();
        steps.push(step);
        if step == RekeyStep::Done {
            return steps;
        }
        for sql in plan.statements_of(step) {
            chdb.run(sql);
        }
    }
    panic!("the move did not finish: {steps:?}");
}

/// Migration 5 on 26.9, both profiles: a database made by migrations 1–4 holding old-keyed
/// rows (copies of one event 1 ms apart across a month boundary, and 1 s apart in a day),
/// stopped after each statement of the move in turn and reopened on the same data dir, is
/// finished by the runner's own step choice (read from 26.9's `engine_full`) with every event
/// once and nothing left aside.
#[test]
fn the_move_to_the_event_id_key_runs_in_chdb_from_every_stop_point() {
    let Some(python) = common::chdb::python() else { return };
    let mut chdb = Chdb::start(&python);
    let db = "gatelog";
    let opts = SchemaOptions { database: db.into(), cluster: None, retention_days: None };
    let final_counts = format!("SELECT count(), uniqExact(event_id) FROM {db}.decisions FINAL");
    for profile in [SchemaProfile::Modern, SchemaProfile::Legacy] {
        let all = migrations(profile, &opts);
        let plan = all[4].rekey().unwrap().clone();
        let payloads: Vec<_> = sample_payloads(profile, &opts).into_iter().filter(|p| p.table == "decisions").collect();
        assert_eq!(payloads.len(), 2, "the sample row and the copies");
        for done in 0..=plan.statements().len() - 1 {
            let dir = tempfile::tempdir().unwrap();
            let version = chdb.open(dir.path());
            chdb.run(&format!("CREATE DATABASE IF NOT EXISTS {db}"));
            for m in &all[..4] {
                for sql in &m.statements {
                    chdb.run(sql);
                }
            }
            for (i, p) in payloads.iter().enumerate() {
                let file = dir.path().join(format!("decisions-{i}.rowbinary"));
                std::fs::write(&file, &p.rowbinary).unwrap();
                let types = chdb.run(&format!(
                    "SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 'decisions'"
                ));
                let types: std::collections::HashMap<String, String> = types
                    .lines()
                    .map(|l| {
                        let (name, ty) = l.split_once(',').unwrap();
                        (name.trim_matches('"').to_owned(), ty.trim_matches('"').replace("\"\"", "\""))
                    })
                    .collect();
                let structure: Vec<String> = p.columns.iter().map(|c| format!("{c} {}", types[c])).collect();
                chdb.run(&format!(
                    "INSERT INTO {db}.decisions ({}) SELECT * FROM file('{}', 'RowBinary', '{}')",
                    p.columns.join(", "),
                    file.display(),
                    structure.join(", ").replace('\'', "\\'")
                ));
            }
            assert_eq!(chdb.run(&final_counts), "5,3", "{profile}: the old key keeps copies whose times differ");
            for sql in &plan.statements()[..done] {
                chdb.run(sql);
            }
            chdb.open(dir.path()); // a restart on the data dir as the interrupted attempt left it
            let steps = finish_rekey(&mut chdb, db, &plan);
            let what = format!("{profile} on chdb {version}, stopped after {done} statements ({steps:?})");
            assert!(steps.len() <= 4, "{what}");
            assert!(plan.is_rekeyed(&chdb_engine(&mut chdb, db, &plan.table).unwrap()), "{what}");
            assert_eq!(chdb_engine(&mut chdb, db, &plan.new_table), None, "{what}");
            assert_eq!(chdb_engine(&mut chdb, db, &plan.old_table), None, "{what}");
            assert_eq!(chdb.run(&final_counts), "3,3", "{what}: every event kept, once");
            // Under FINAL: a copy run twice (stopped after `copy`) holds the rows twice until
            // a merge, as copies that arrive twice do.
            for p in &payloads {
                let check =
                    p.check.replace(&format!("FROM {db}.decisions WHERE"), &format!("FROM {db}.decisions FINAL WHERE"));
                assert_eq!(chdb.run(&check), p.expect, "{what}: {check}");
            }
            println!("{what}: done");
        }
    }
}

/// What `dedup.rs` pins on 18.16 holds on 26.9 too (ARCHITECTURE.md, "Which copy survives"):
/// no version column; within a month partition the copy inserted last survives `FINAL` and a
/// merge; across months both stay on disk and `FINAL` returns the later month's.
#[test]
fn which_copy_survives_a_merge_in_chdb() {
    let Some(python) = common::chdb::python() else { return };
    let mut chdb = Chdb::start(&python);
    let db = "gatelog";
    let opts = SchemaOptions { database: db.into(), cluster: None, retention_days: None };
    let (day, month) = (1_740_990_713_712_i64, 1_740_787_200_000_i64); // 2025-03-03, 2025-03-01
    for profile in [SchemaProfile::Modern, SchemaProfile::Legacy] {
        let dir = tempfile::tempdir().unwrap();
        chdb.open(dir.path());
        chdb.run(&format!("CREATE DATABASE IF NOT EXISTS {db}"));
        let all = migrations(profile, &opts);
        for sql in all.iter().flat_map(|m| &m.statements) {
            chdb.run(sql);
        }
        let insert = |chdb: &mut Chdb, event: &str, batch: &str, ms: i64| {
            let (columns, values) = match profile {
                SchemaProfile::Modern => ("time", format!("fromUnixTimestamp64Milli(toInt64({ms}), 'UTC')")),
                SchemaProfile::Legacy => ("time, time_ms", format!("toDateTime(intDiv({ms}, 1000), 'UTC'), {ms}")),
            };
            chdb.run(&format!(
                "INSERT INTO {db}.decisions (tenant, event_id, batch_id, {columns}) SELECT 'default', '{event}', '{batch}', {values}"
            ));
        };
        insert(&mut chdb, "same-month", "b1-first", day + 1);
        insert(&mut chdb, "same-month", "b2-second", day);
        insert(&mut chdb, "march-first", "b1-march", month);
        insert(&mut chdb, "march-first", "b2-february", month - 1);
        insert(&mut chdb, "february-first", "b1-february", month - 1);
        insert(&mut chdb, "february-first", "b2-march", month);
        let rows = |chdb: &mut Chdb, event: &str, fin: &str| {
            chdb.run(&format!("SELECT batch_id FROM {db}.decisions {fin} WHERE event_id = '{event}' ORDER BY batch_id"))
        };
        for round in ["before a merge", "after OPTIMIZE FINAL"] {
            let what = format!("{profile}, {round}");
            assert_eq!(rows(&mut chdb, "same-month", "FINAL"), "\"b2-second\"", "{what}");
            assert_eq!(rows(&mut chdb, "march-first", "FINAL"), "\"b1-march\"", "{what}");
            assert_eq!(rows(&mut chdb, "february-first", "FINAL"), "\"b2-march\"", "{what}");
            chdb.run(&format!("OPTIMIZE TABLE {db}.decisions FINAL"));
        }
        assert_eq!(rows(&mut chdb, "same-month", ""), "\"b2-second\"", "{profile}: the merge dropped b1's row");
        assert_eq!(rows(&mut chdb, "march-first", "").lines().count(), 2, "{profile}: partitions merge apart");
        assert_eq!(rows(&mut chdb, "february-first", "").lines().count(), 2, "{profile}");
    }
}

/// The read side's counting rule on 26.9, both profiles: its populations keep the copy of
/// each `(tenant, event_id)` that `FINAL` and a merge keep (the later month's; within a month
/// the one inserted last, whatever its spool position), and the independent count
/// (`read.event_count`, no `FINAL`) agrees, before and after a merge (the 18.16 side is
/// `tests/read`).
#[test]
fn read_queries_count_the_copy_that_survives_in_chdb() {
    use gatelog_model::UnixMillis;
    use gatelog_store::read::{Catalog, DecisionFilter, Period};
    let Some(python) = common::chdb::python() else { return };
    let mut chdb = Chdb::start(&python);
    let db = "gatelog";
    let opts = SchemaOptions { database: db.into(), cluster: None, retention_days: None };
    let (day, month) = (1_740_990_713_712_i64, 1_740_787_200_000_i64); // 2025-03-03, 2025-03-01
    let hour = 3_600_000;
    for profile in [SchemaProfile::Modern, SchemaProfile::Legacy] {
        let dir = tempfile::tempdir().unwrap();
        chdb.open(dir.path());
        chdb.run(&format!("CREATE DATABASE IF NOT EXISTS {db}"));
        for sql in migrations(profile, &opts).iter().flat_map(|m| &m.statements) {
            chdb.run(sql);
        }
        let insert = |chdb: &mut Chdb, tenant: &str, event: &str, batch: &str, ms: i64, seq: u64| {
            let (columns, values) = match profile {
                SchemaProfile::Modern => ("time", format!("fromUnixTimestamp64Milli(toInt64({ms}), 'UTC')")),
                SchemaProfile::Legacy => ("time, time_ms", format!("toDateTime(intDiv({ms}, 1000), 'UTC'), {ms}")),
            };
            chdb.run(&format!(
                "INSERT INTO {db}.decisions (tenant, event_id, batch_id, spool_seq, dataset, decision, {columns}) \
                 SELECT '{tenant}', '{event}', '{batch}', {seq}, 'tail', 'deny', {values}"
            ));
        };
        insert(&mut chdb, "default", "same-month", "b1-first", day + 1, 1);
        insert(&mut chdb, "default", "same-month", "b2-second", day, 2);
        insert(&mut chdb, "default", "march-first", "b1-march", month, 3);
        insert(&mut chdb, "default", "march-first", "b2-february", month - 1, 4);
        insert(&mut chdb, "default", "new-spool", "b1-old-spool", day, 9);
        insert(&mut chdb, "default", "new-spool", "b2-new-spool", day + 5, 1);
        insert(&mut chdb, "acme", "same-month", "b1-acme", day, 5);
        let catalog = Catalog::new(profile, &opts);
        let period = |from: i64, to: i64| Period::new(UnixMillis(from), UnixMillis(to)).unwrap();
        let (february, march) = (period(month - hour, month), period(month, month + 10 * 24 * hour));
        let all = DecisionFilter::default();
        for round in ["before a merge", "after OPTIMIZE FINAL"] {
            let what = format!("{profile}, {round}");
            let population = |chdb: &mut Chdb, p: Period| {
                let sql = catalog.decisions(p, &all).unwrap();
                chdb.run(&format!("SELECT tenant, event_id, batch_id FROM ({}) FORMAT CSV", sql.sql()))
            };
            let count = |chdb: &mut Chdb, p: Period| chdb.run(catalog.event_count(p, &all).unwrap().sql());
            assert_eq!(
                population(&mut chdb, march),
                "\"default\",\"march-first\",\"b1-march\"\n\"acme\",\"same-month\",\"b1-acme\"\n\
                 \"default\",\"same-month\",\"b2-second\"\n\"default\",\"new-spool\",\"b2-new-spool\"",
                "{what}"
            );
            assert_eq!(count(&mut chdb, march), "4", "{what}");
            assert_eq!(population(&mut chdb, february), "", "{what}: February's copy lost to March's");
            assert_eq!(count(&mut chdb, february), "0", "{what}");
            let counts = chdb.run(catalog.decision_counts(march).unwrap().sql());
            assert_eq!(counts, "\"tail\",\"deny\",4", "{what}");
            chdb.run(&format!("OPTIMIZE TABLE {db}.decisions FINAL"));
        }
    }
}
