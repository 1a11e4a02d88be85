//! The built-in SQL rules' fixtures on ClickHouse 26.9 (chdb), both schema profiles: the
//! same decisions, the same query, the same expected findings as `gatelog rules test` checks
//! on 18.16 (`tests/tests/rules_cli.rs`). Needs `GATELOG_CHDB_PYTHON` (see `store/tests`).
#![allow(clippy::unwrap_used)]

#[path = "../../store/tests/common/chdb.rs"]
mod chdb;

use gatelog_detect::sql_rule::{self, Row};
use gatelog_model::{AccessDecision, UnixMillis};
use gatelog_store::SchemaProfile;
use gatelog_store::sql::{SchemaOptions, migrations};

/// `2025-03-03 08:01:00.000` (modern, DateTime64(3)) or `2025-03-03 08:01:00` (legacy).
fn clickhouse_time(t: UnixMillis, profile: SchemaProfile) -> String {
    let text = t.to_rfc3339().replace('T', " ").replace('Z', "");
    match profile {
        SchemaProfile::Modern => text,
        SchemaProfile::Legacy => text.split('.').next().unwrap_or_default().to_owned(),
    }
}

fn json_row(d: &AccessDecision, profile: SchemaProfile) -> String {
    let mut v = serde_json::to_value(d).unwrap();
    v["time"] = clickhouse_time(d.time, profile).into();
    v["received_at"] = clickhouse_time(d.received_at, profile).into();
    if profile == SchemaProfile::Legacy {
        v["time_ms"] = d.time.0.into();
        v["received_at_ms"] = d.received_at.0.into();
    }
    v.to_string()
}

#[test]
fn builtin_fixtures_pass_on_chdb() {
    let Some(python) = chdb::python() else { return };
    let mut session = chdb::Chdb::start(&python);
    let opts = SchemaOptions { database: "gatelog".into(), cluster: None, retention_days: None };
    let rules = sql_rule::builtin().unwrap();
    let mut checked = 0;
    for profile in [SchemaProfile::Modern, SchemaProfile::Legacy] {
        for rule in &rules {
            for fixture in &rule.fixtures {
                let dir = tempfile::tempdir().unwrap();
                session.open(dir.path());
                session.run("CREATE DATABASE IF NOT EXISTS gatelog");
                for m in migrations(profile, &opts) {
                    for sql in &m.statements {
                        session.run(sql);
                    }
                }
                let rows: Vec<String> = fixture.decisions.iter().map(|d| json_row(d, profile)).collect();
                session.run(&format!(
                    "INSERT INTO gatelog.decisions SETTINGS input_format_skip_unknown_fields = 1 FORMAT JSONEachRow\n{}",
                    rows.join("\n")
                ));
                let sql = rule.render("gatelog", fixture.from, fixture.to);
                let out = session.run(&format!("{sql}\nFORMAT JSONEachRow"));
                let got: Vec<_> = out
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| {
                        let row: Row = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                        sql_rule::row_to_finding(rule, &row, (fixture.from, fixture.to)).unwrap()
                    })
                    .collect();
                let outcome = sql_rule::compare(&fixture.expect, &got);
                assert!(outcome.passed, "{profile} {} / {}:\n{}", rule.id, fixture.name, outcome.diff.join("\n"));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 8, "4 fixtures, 2 profiles");
}
