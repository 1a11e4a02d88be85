#![allow(clippy::unwrap_used)]

use super::*;
use gatelog_model::Finding;

const GOOD: &str = r#"
id = "foo"
version = 2
title = "Foo"
description = "What foo means."
runbook = "What to do."
severity = "high"
soc2 = ["CC7.2"]
schedule = "5m"
window = "1h"
threshold = 3
query = "SELECT principal, count() AS count FROM {db}.decisions WHERE received_at_ms >= {from} AND received_at_ms < {to} AND time >= {time_from} AND time < {time_to} GROUP BY principal HAVING count() >= {threshold}"
dedup_key = "{rule}:{principal}"
summary = "{principal}: {count}"

[[fixtures]]
name = "one"
from = "2025-03-03T08:00:00Z"
to = "2025-03-03T09:00:00Z"
decisions = [{ event_id = "e1", time = "2025-03-03T08:01:00Z", principal = "p" }]

[[fixtures.expect]]
principal = "p"
count = 1
"#;

fn parse(text: &str) -> Result<SqlRule, RuleError> {
    SqlRule::parse("rules/foo.toml", text)
}

fn error_of(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    parse(&GOOD.replacen(from, to, 1)).unwrap_err().to_string()
}

#[test]
fn a_good_rule_parses_and_renders() {
    let r = parse(GOOD).unwrap();
    assert_eq!((r.id.as_str(), r.version, r.severity), ("foo", 2, Severity::High));
    assert_eq!(r.schedule, Duration::from_secs(300));
    let f = &r.fixtures[0];
    assert_eq!(f.decisions[0].received_at, f.decisions[0].time, "received_at defaults to time");
    assert_eq!(f.decisions[0].tenant, "default");
    let sql = r.render("gl", UnixMillis(1000), UnixMillis(2000));
    assert!(sql.contains("FROM gl.decisions WHERE received_at_ms >= 1000 AND received_at_ms < 2000"), "{sql}");
    assert!(sql.ends_with("HAVING count() >= 3"), "{sql}");
    // The event-time bound: a day of lateness before, an hour of clock skew after, whole
    // seconds widened outwards.
    let sql = r.render("gl", UnixMillis(90_000_500), UnixMillis(90_001_500));
    assert!(sql.contains("AND time >= toDateTime(3600, 'UTC') AND time < toDateTime(93602, 'UTC')"), "{sql}");
    let tight = SqlRulesConfig { max_lateness: Duration::ZERO, max_clock_skew: Duration::ZERO, ..Default::default() };
    let sql = r.render_with("gl", UnixMillis(90_000_500), UnixMillis(90_001_500), &tight);
    assert!(sql.contains("AND time >= toDateTime(90000, 'UTC') AND time < toDateTime(90002, 'UTC')"), "{sql}");
}

#[test]
fn a_query_without_the_time_bound_is_refused() {
    let e = error_of(" AND time >= {time_from}", "");
    assert!(e.starts_with("rules/foo.toml: query: must use {time_from}"), "{e}");
    assert!(e.contains("AND time >= {time_from} AND time < {time_to}"), "{e}");
}

#[test]
fn every_builtin_rule_is_valid_with_fixtures() {
    let rules = builtin().unwrap();
    assert_eq!(rules.len(), BUILTIN.len());
    check_unique(&rules).unwrap();
    for r in &rules {
        assert!(!r.fixtures.is_empty(), "{} has no fixtures", r.file);
        assert!(r.fixtures.iter().any(|f| !f.expect.is_empty()), "{}: no fixture expects a finding", r.file);
    }
}

#[test]
fn not_toml_names_the_file_and_line() {
    let e = parse("id = \"foo\"\nversion = \n").unwrap_err().to_string();
    assert!(e.starts_with("rules/foo.toml: "), "{e}");
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn an_unknown_key_is_named() {
    let e = error_of("threshold = 3", "threshold = 3\nthreshhold = 4");
    assert!(e.starts_with("rules/foo.toml: threshhold: unknown field `threshhold`"), "{e}");
    let e = error_of("principal = \"p\" }", "princpal = \"p\" }");
    assert_eq!(e, "rules/foo.toml: fixtures[0].decisions[0].princpal: not a field of a decision");
    let e = error_of("count = 1", "count = 1\ncuont = 2");
    assert!(e.contains("cuont"), "{e}");
}

#[test]
fn a_missing_placeholder_is_refused() {
    let e = error_of("received_at_ms >= {from}", "received_at_ms >= 0");
    assert!(e.starts_with("rules/foo.toml: query: must use {from}"), "{e}");
    let e = error_of("FROM {db}.decisions", "FROM gatelog.decisions");
    assert!(e.starts_with("rules/foo.toml: query: must use {db}"), "{e}");
    let e = error_of("{threshold}\"", "{limit}\"");
    assert_eq!(
        e,
        "rules/foo.toml: query: unknown placeholder {limit} (known: {db}, {from}, {to}, {time_from}, {time_to}, {threshold})"
    );
    let e = error_of("threshold = 3\n", "");
    assert_eq!(e, "rules/foo.toml: query: uses {threshold} but the rule sets no threshold");
    let e = error_of("received_at_ms >= {from} AND received_at_ms < {to}", "time_ms >= {from} AND time_ms < {to}");
    assert!(e.contains("must bound received_at_ms"), "{e}");
}

#[test]
fn a_bad_severity_schedule_or_id_is_named() {
    assert_eq!(
        error_of("\"high\"", "\"urgent\""),
        "rules/foo.toml: severity: must be one of info, low, medium, high, critical, got \"urgent\""
    );
    assert_eq!(error_of("\"5m\"", "\"10s\""), "rules/foo.toml: schedule: must be between 1m and 1day, got 10s");
    assert!(error_of("\"1h\"", "\"1m\"").starts_with("rules/foo.toml: window: must be at least the schedule (5m"));
    assert_eq!(
        error_of("id = \"foo\"", "id = \"bar\""),
        "rules/foo.toml: id: must be the file's name (\"foo\"), got \"bar\""
    );
    assert_eq!(
        error_of("soc2 = [\"CC7.2\"]", "soc2 = []"),
        "rules/foo.toml: soc2: must name at least one criterion (e.g. \"CC7.2\")"
    );
    let e = error_of("{rule}:{principal}", "{rule}:{principal");
    assert!(e.starts_with("rules/foo.toml: dedup_key: unclosed {"), "{e}");
    let e = error_of("to = \"2025-03-03T09:00:00Z\"", "to = \"2025-03-03T07:00:00Z\"");
    assert!(e.starts_with("rules/foo.toml: fixtures[0].to: must be after from"), "{e}");
    let e = error_of("\"5m\"", "\"soon\"");
    assert_eq!(e, "rules/foo.toml: schedule: invalid value: string \"soon\", expected a duration (line 9)");
    let e = error_of("version = 2", "version = \"two\"");
    assert_eq!(e, "rules/foo.toml: version: invalid type: string \"two\", expected u32 (line 3)");
    assert_eq!(error_of("version = 2\n", ""), "rules/foo.toml: version: missing");
}

#[test]
fn duplicate_ids_are_refused() {
    let a = parse(GOOD).unwrap();
    let mut b = a.clone();
    b.file = "/etc/gatelog/rules/foo.toml".into();
    let e = check_unique(&[a, b]).unwrap_err().to_string();
    assert_eq!(e, "/etc/gatelog/rules/foo.toml: id: \"foo\" is already the id of rules/foo.toml");
}

fn row(json: serde_json::Value) -> Row {
    match json {
        serde_json::Value::Object(m) => m,
        _ => Row::new(),
    }
}

#[test]
fn rows_become_findings() {
    let r = parse(GOOD).unwrap();
    let window = (UnixMillis(1000), UnixMillis(2000));
    let f = row_to_finding(
        &r,
        &row(serde_json::json!({"principal": "p", "count": "12", "event_ids": ["a", "b"], "window_end_ms": "1500"})),
        window,
    )
    .unwrap();
    assert_eq!(f.dedup_key, "foo:p");
    assert_eq!(f.summary, "p: 12");
    assert_eq!((f.window_start, f.window_end), (UnixMillis(1000), UnixMillis(1500)));
    assert_eq!(f.event_ids, ["a", "b"]);
    assert_eq!(f.evidence.get("count").map(String::as_str), Some("12"));
    assert_eq!((f.tenant.as_str(), f.rule_version, f.finding_id.len()), ("default", 2, 32));
    let mut with_threshold = r.clone();
    with_threshold.summary = "{principal}: {count} (threshold {threshold})".into();
    let f = row_to_finding(&with_threshold, &row(serde_json::json!({"principal": "p", "count": 4})), window).unwrap();
    assert_eq!(f.summary, "p: 4 (threshold 3)");
    let e = row_to_finding(&r, &row(serde_json::json!({"count": 1})), window).unwrap_err();
    assert_eq!(e, "dedup_key: {principal} is not a column of the result (count)");
}

#[test]
fn fixtures_compare_as_multisets_and_show_a_diff() {
    let expect = vec![Expected { principal: Some("p".into()), count: Some(3), ..Expected::default() }];
    let got = |p: &str, n: &str| Finding {
        principal: p.into(),
        evidence: [("count".to_owned(), n.to_owned())].into_iter().collect(),
        ..Finding::default()
    };
    assert!(compare(&expect, &[got("p", "3")]).passed);
    let o = compare(&expect, &[got("p", "4"), got("q", "3")]);
    assert!(!o.passed);
    assert_eq!(
        o.diff,
        [
            "- expected { evidence.count = \"3\", principal = \"p\" }",
            "+ got      { evidence.count = \"3\", principal = \"q\" }",
            "+ got      { evidence.count = \"4\", principal = \"p\" }",
        ]
    );
    assert!(compare(&[], &[]).passed);
    assert!(!compare(&[], &[got("p", "1")]).passed);
}
