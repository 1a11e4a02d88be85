//! The detection tables and their statements: `findings`, `detector_runs`, `alerts` and
//! `alert_events` (migrations 6–9), the same types in both profiles (they run on 18.16 as
//! on 26.9: no JSON, no DateTime64, no LowCardinality). Instants are `*_ms Int64`, and each
//! table has a `time DateTime('UTC')` computed from one of them for partitions and for
//! people reading it with SQL. Evidence (a map) is two parallel arrays.
//!
//! - `findings`: `ReplacingMergeTree` keyed `(tenant, finding_id)`: a finding stored again
//!   by a replay is one row (read with `FINAL`). `alert_id` names the alert it joined.
//! - `detector_runs`: `MergeTree`, one row per run (a streaming checkpoint, a warm-up, a
//!   scheduled window): monitoring evidence of what ran, when, over what, with what outcome.
//! - `alerts`: `ReplacingMergeTree(version)` keyed `(tenant, alert_id)`: a row per change of
//!   its count; the highest version (the count) is the alert.
//! - `alert_events`: the lifecycle, appended and never changed; keyed
//!   `(tenant, alert_id, event_id)` so a replayed `open` (same id) is one row.
//!
//! Inserts are `INSERT … VALUES` with escaped literals ([`values_row`]): a handful of rows per
//! checkpoint, readable in `gatelog sql dump`.

use super::SchemaOptions;
use super::Statement;
use super::ddl::{on_cluster, storage_table};
use super::queries::{Lit, quote_into, render};
use gatelog_model::{Alert, AlertEvent, Disposition, Finding, UnixMillis};

/// A value in a `VALUES` row.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    Str(&'a str),
    I64(i64),
    U64(u64),
    Strs(&'a [String]),
}

/// One parenthesised `VALUES` row of escaped literals.
pub fn values_row(values: &[Val<'_>]) -> String {
    let mut out = String::from("(");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match v {
            Val::Str(s) => quote_into(&mut out, s),
            Val::I64(n) => out.push_str(&n.to_string()),
            Val::U64(n) => out.push_str(&n.to_string()),
            Val::Strs(items) => {
                out.push('[');
                for (j, item) in items.iter().enumerate() {
                    if j > 0 {
                        out.push_str(", ");
                    }
                    quote_into(&mut out, item);
                }
                out.push(']');
            }
        }
    }
    out.push(')');
    out
}

/// One detection table as data.
#[derive(Debug)]
pub(crate) struct PlainTable {
    pub name: &'static str,
    /// `(name, type)`, in insert order.
    pub columns: &'static [(&'static str, &'static str)],
    /// The `time` column's source (`*_ms`).
    pub time_from: &'static str,
    /// `None`: `MergeTree`; `Some("")`: `ReplacingMergeTree`; `Some(col)`: with a version.
    pub replacing: Option<&'static str>,
    pub order_by: &'static str,
    pub shard_key: &'static str,
}

impl PlainTable {
    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(n, _)| *n).collect()
    }
}

pub(crate) const FINDINGS: PlainTable = PlainTable {
    name: "findings",
    columns: &[
        ("finding_id", "String"),
        ("rule_id", "String"),
        ("rule_version", "UInt32"),
        ("severity", "String"),
        ("dedup_key", "String"),
        ("tenant", "String"),
        ("window_start_ms", "Int64"),
        ("window_end_ms", "Int64"),
        ("principal", "String"),
        ("client_ip", "String"),
        ("country", "String"),
        ("resource", "String"),
        ("dataset", "String"),
        ("event_ids", "Array(String)"),
        ("summary", "String"),
        ("evidence_keys", "Array(String)"),
        ("evidence_values", "Array(String)"),
        ("alert_id", "String"),
        ("spool_seq", "UInt64"),
        ("detected_at_ms", "Int64"),
    ],
    time_from: "window_start_ms",
    replacing: Some(""),
    order_by: "tenant, finding_id",
    shard_key: "cityHash64(finding_id)",
};

pub(crate) const DETECTOR_RUNS: PlainTable = PlainTable {
    name: "detector_runs",
    columns: &[
        ("run_id", "String"),
        ("kind", "String"),
        ("rule_id", "String"),
        ("rule_version", "String"),
        ("window_start_ms", "Int64"),
        ("window_end_ms", "Int64"),
        ("spool_from", "UInt64"),
        ("spool_to", "UInt64"),
        ("rows_scanned", "UInt64"),
        ("findings", "UInt64"),
        ("started_at_ms", "Int64"),
        ("duration_ms", "UInt64"),
        ("outcome", "String"),
        ("error", "String"),
    ],
    time_from: "started_at_ms",
    replacing: None,
    order_by: "rule_id, started_at_ms, run_id",
    shard_key: "cityHash64(run_id)",
};

pub(crate) const ALERTS: PlainTable = PlainTable {
    name: "alerts",
    columns: &[
        ("alert_id", "String"),
        ("tenant", "String"),
        ("dedup_key", "String"),
        ("rule_id", "String"),
        ("severity", "String"),
        ("first_seen_ms", "Int64"),
        ("last_seen_ms", "Int64"),
        ("count", "UInt64"),
        ("summary", "String"),
        ("principal", "String"),
        ("client_ip", "String"),
        ("resource", "String"),
        ("first_finding_id", "String"),
        ("last_finding_id", "String"),
        ("updated_at_ms", "Int64"),
        ("version", "UInt64"),
    ],
    time_from: "first_seen_ms",
    replacing: Some("version"),
    order_by: "tenant, alert_id",
    shard_key: "cityHash64(alert_id)",
};

pub(crate) const ALERT_EVENTS: PlainTable = PlainTable {
    name: "alert_events",
    columns: &[
        ("event_id", "String"),
        ("alert_id", "String"),
        ("tenant", "String"),
        ("action", "String"),
        ("at_ms", "Int64"),
        ("actor", "String"),
        ("disposition", "String"),
        ("note", "String"),
    ],
    time_from: "at_ms",
    replacing: Some(""),
    order_by: "tenant, alert_id, event_id",
    shard_key: "cityHash64(alert_id)",
};

/// The tables of migrations 6–9, in order.
pub(crate) const DETECTION_TABLES: [&PlainTable; 4] = [&FINDINGS, &DETECTOR_RUNS, &ALERTS, &ALERT_EVENTS];

/// `CREATE TABLE` of `t` (and its `Distributed` table on a cluster).
pub(crate) fn create_plain(t: &PlainTable, opts: &SchemaOptions) -> Vec<String> {
    let db = &opts.database;
    let local = storage_table(opts, t.name);
    let on = on_cluster(opts);
    let mut columns: Vec<String> = t.columns.iter().map(|(n, ty)| format!("{n} {ty}")).collect();
    columns.push(format!("time DateTime('UTC') DEFAULT toDateTime(intDiv({}, 1000), 'UTC')", t.time_from));
    let (base, version) = match t.replacing {
        None => ("MergeTree", ""),
        Some(v) => ("ReplacingMergeTree", v),
    };
    let engine = match (&opts.cluster, version) {
        (Some(_), "") => format!("Replicated{base}('/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}')"),
        (Some(_), v) => format!("Replicated{base}('/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}', {v})"),
        (None, "") => base.to_owned(),
        (None, v) => format!("{base}({v})"),
    };
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS {db}.{local}{on}\n(\n    {}\n)\nENGINE = {engine}\nPARTITION BY toYYYYMM(time)\nORDER BY ({})\nSETTINGS index_granularity = 8192",
        columns.join(",\n    "),
        t.order_by
    )];
    if let Some(cluster) = &opts.cluster {
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {db}.{}{on} AS {db}.{local}\nENGINE = Distributed({cluster}, {db}, {local}, {})",
            t.name, t.shard_key
        ));
    }
    out
}

/// `INSERT INTO db.t (columns) VALUES ` (rows follow, comma-separated).
pub(crate) fn insert_prefix(t: &PlainTable, opts: &SchemaOptions) -> String {
    format!("INSERT INTO {}.{} ({}) VALUES ", opts.database, t.name, t.column_names().join(", "))
}

/// The columns the detection queries read, in each row type's order.
pub(crate) const FINDING_COLUMNS: &str = "finding_id, rule_id, rule_version, severity, dedup_key, tenant, \
     window_start_ms, window_end_ms, principal, client_ip, country, resource, dataset, event_ids, summary, \
     evidence_keys, evidence_values, alert_id";
pub(crate) const ALERT_COLUMNS: &str = "alert_id, tenant, dedup_key, rule_id, severity, first_seen_ms, last_seen_ms, \
     count, summary, principal, client_ip, resource, first_finding_id, last_finding_id";
pub(crate) const EVENT_COLUMNS: &str = "event_id, alert_id, tenant, action, at_ms, actor, disposition, note";
pub(crate) const RUN_COLUMNS: &str = "run_id, kind, rule_id, rule_version, window_start_ms, window_end_ms, spool_from, \
     spool_to, rows_scanned, findings, started_at_ms, duration_ms, outcome, error";
/// What warm-up reads of a stored decision: every field a detector or baseline looks at.
pub(crate) const HISTORY_COLUMNS: &str = "event_id, time_ms, received_at_ms, source, dataset, decision, principal, \
     principal_type, roles, client_ip, country, asn, user_agent, resource, action, policy, reason, query, \
     query_fingerprint, rows_read, bytes_read, result_rows, duration_ms, status, zone, host, path, tenant, spool_seq";

/// The detection read queries, with `?` placeholders.
#[derive(Debug, Clone)]
pub(crate) struct DetectionQueries {
    pub insert_findings: String,
    pub insert_runs: String,
    pub insert_alerts: String,
    pub insert_events: String,
    /// Params: a `LIKE` pattern for the id (`prefix%`).
    pub alerts_by_id: String,
    /// Params: limit.
    pub recent_alerts: String,
    /// Params: the alert ids (`IN ?`).
    pub events_of: String,
    /// Params: alert id, limit.
    pub findings_of: String,
    /// Params: limit.
    pub recent_runs: String,
    /// `(state, alerts)` for every alert that has an event: the state from the last event.
    pub alert_states: String,
    /// `(rule_id, findings)` over `findings FINAL`.
    pub findings_by_rule: String,
    /// Params: the day's bounds (profile time type), the highest spool position to include.
    pub history_day: String,
    /// Params: received-at lower bound (ms), highest spool position.
    pub history_arrivals: String,
    /// Params: the run kind. `(rule_id, rule_version, last_ok_end_ms, ok_runs,
    /// first_failed_end_ms)`: the end of the newest window each rule version ran to
    /// completion (`outcome = 'ok'`), how many did, and the end of its oldest failed window.
    pub completed_windows: String,
}

impl DetectionQueries {
    pub(crate) fn new(profile: crate::SchemaProfile, opts: &SchemaOptions) -> Self {
        let db = opts.database.as_str();
        let between = super::queries::time_between(profile);
        DetectionQueries {
            insert_findings: insert_prefix(&FINDINGS, opts),
            insert_runs: insert_prefix(&DETECTOR_RUNS, opts),
            insert_alerts: insert_prefix(&ALERTS, opts),
            insert_events: insert_prefix(&ALERT_EVENTS, opts),
            alerts_by_id: format!(
                "SELECT {ALERT_COLUMNS} FROM {db}.alerts FINAL WHERE alert_id LIKE ? ORDER BY alert_id LIMIT 2"
            ),
            recent_alerts: format!(
                "SELECT {ALERT_COLUMNS} FROM {db}.alerts FINAL ORDER BY last_seen_ms DESC, alert_id LIMIT ?"
            ),
            events_of: format!(
                "SELECT {EVENT_COLUMNS} FROM {db}.alert_events FINAL WHERE alert_id IN ? ORDER BY at_ms, event_id"
            ),
            findings_of: format!(
                "SELECT {FINDING_COLUMNS} FROM {db}.findings FINAL WHERE alert_id = ? ORDER BY window_start_ms, finding_id LIMIT ?"
            ),
            recent_runs: format!(
                "SELECT {RUN_COLUMNS} FROM {db}.detector_runs ORDER BY started_at_ms DESC, run_id LIMIT ?"
            ),
            alert_states: format!(
                "SELECT multiIf(resolved = 1, 'resolved', acked = 1, 'acknowledged', 'open') AS state, count() AS n \
                 FROM (SELECT alert_id, max(action = 'resolve') AS resolved, max(action = 'ack') AS acked \
                 FROM {db}.alert_events FINAL GROUP BY alert_id) GROUP BY state ORDER BY state"
            ),
            findings_by_rule: format!(
                "SELECT rule_id, count() AS n FROM {db}.findings FINAL GROUP BY rule_id ORDER BY rule_id"
            ),
            history_day: format!(
                "SELECT {HISTORY_COLUMNS} FROM {db}.decisions WHERE {between} AND spool_seq <= ? ORDER BY time_ms, event_id"
            ),
            history_arrivals: format!(
                "SELECT dataset, received_at_ms, decisions FROM {db}.ingest_batches FINAL \
                 WHERE received_at_ms >= ? AND spool_seq <= ? ORDER BY received_at_ms, batch_id"
            ),
            completed_windows: format!(
                "SELECT rule_id, rule_version, maxIf(window_end_ms, outcome = 'ok') AS last_ok_end_ms, \
                 toUInt64(countIf(outcome = 'ok')) AS ok_runs, \
                 minIf(window_end_ms, outcome = 'failed') AS first_failed_end_ms FROM {db}.detector_runs \
                 WHERE kind = ? GROUP BY rule_id, rule_version ORDER BY rule_id, rule_version"
            ),
        }
    }
}

/// One row of `detector_runs`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct DetectorRun {
    /// Unique per run.
    pub run_id: String,
    /// `streaming` (a checkpoint of the spool consumer), `warmup`, `scheduled`, `manual` (a
    /// SQL rule's window run by `gatelog rules run --store`).
    pub kind: String,
    /// The rule, or `streaming` for the engine's rule set as a whole.
    pub rule_id: String,
    /// The rule's version; for the engine, a hash of its rule ids, versions and config.
    pub rule_version: String,
    /// Event time covered (ms): the oldest and newest decision judged.
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// Spool positions covered (exclusive start, inclusive end); 0, 0 when not from the spool.
    pub spool_from: u64,
    pub spool_to: u64,
    pub rows_scanned: u64,
    pub findings: u64,
    pub started_at_ms: i64,
    pub duration_ms: u64,
    /// `ok` or `failed`.
    pub outcome: String,
    pub error: String,
}

pub(crate) fn finding_row(f: &Finding, alert_id: &str, spool_seq: u64, detected_at_ms: i64) -> String {
    let keys: Vec<String> = f.evidence.keys().cloned().collect();
    let values: Vec<String> = f.evidence.values().cloned().collect();
    values_row(&[
        Val::Str(&f.finding_id),
        Val::Str(&f.rule_id),
        Val::U64(u64::from(f.rule_version)),
        Val::Str(f.severity.as_str()),
        Val::Str(&f.dedup_key),
        Val::Str(&f.tenant),
        Val::I64(f.window_start.0),
        Val::I64(f.window_end.0),
        Val::Str(&f.principal),
        Val::Str(&f.client_ip),
        Val::Str(&f.country),
        Val::Str(&f.resource),
        Val::Str(&f.dataset),
        Val::Strs(&f.event_ids),
        Val::Str(&f.summary),
        Val::Strs(&keys),
        Val::Strs(&values),
        Val::Str(alert_id),
        Val::U64(spool_seq),
        Val::I64(detected_at_ms),
    ])
}

pub(crate) fn run_row(r: &DetectorRun) -> String {
    values_row(&[
        Val::Str(&r.run_id),
        Val::Str(&r.kind),
        Val::Str(&r.rule_id),
        Val::Str(&r.rule_version),
        Val::I64(r.window_start_ms),
        Val::I64(r.window_end_ms),
        Val::U64(r.spool_from),
        Val::U64(r.spool_to),
        Val::U64(r.rows_scanned),
        Val::U64(r.findings),
        Val::I64(r.started_at_ms),
        Val::U64(r.duration_ms),
        Val::Str(&r.outcome),
        Val::Str(&r.error),
    ])
}

pub(crate) fn alert_row(a: &Alert, updated_at_ms: i64) -> String {
    values_row(&[
        Val::Str(&a.alert_id),
        Val::Str(&a.tenant),
        Val::Str(&a.dedup_key),
        Val::Str(&a.rule_id),
        Val::Str(a.severity.as_str()),
        Val::I64(a.first_seen.0),
        Val::I64(a.last_seen.0),
        Val::U64(a.count),
        Val::Str(&a.summary),
        Val::Str(&a.principal),
        Val::Str(&a.client_ip),
        Val::Str(&a.resource),
        Val::Str(&a.first_finding_id),
        Val::Str(&a.last_finding_id),
        Val::I64(updated_at_ms),
        Val::U64(a.count),
    ])
}

pub(crate) fn event_row(e: &AlertEvent) -> String {
    values_row(&[
        Val::Str(&e.event_id),
        Val::Str(&e.alert_id),
        Val::Str(&e.tenant),
        Val::Str(e.action.as_str()),
        Val::I64(e.at.0),
        Val::Str(&e.actor),
        Val::Str(e.disposition.map_or("", Disposition::as_str)),
        Val::Str(&e.note),
    ])
}

/// The detection statements for `gatelog sql dump` and the compatibility tests: each insert
/// with one example row, each query with example parameters. `lo`/`hi` are an instant in the
/// profile's time type.
pub(crate) fn example_statements(
    profile: crate::SchemaProfile,
    opts: &SchemaOptions,
    lo: i64,
    hi: i64,
) -> Vec<Statement> {
    let q = DetectionQueries::new(profile, opts);
    let t = 1_740_990_713_712;
    let finding = Finding {
        finding_id: "example-finding".into(),
        rule_id: "deny_burst_ip".into(),
        rule_version: 1,
        severity: gatelog_model::Severity::High,
        dedup_key: "deny_burst_ip:203.0.113.9".into(),
        tenant: "default".into(),
        window_start: UnixMillis(t),
        window_end: UnixMillis(t + 1000),
        client_ip: "203.0.113.9".into(),
        event_ids: vec!["e1".into(), "e'2".into()],
        summary: "12 denials from 203.0.113.9 within 5m".into(),
        evidence: [("denials".to_owned(), "12".to_owned())].into_iter().collect(),
        ..Finding::default()
    };
    let alert = Alert {
        alert_id: "example-alert".into(),
        tenant: "default".into(),
        dedup_key: finding.dedup_key.clone(),
        rule_id: finding.rule_id.clone(),
        severity: finding.severity,
        first_seen: finding.window_start,
        last_seen: finding.window_end,
        count: 1,
        summary: finding.summary.clone(),
        first_finding_id: finding.finding_id.clone(),
        last_finding_id: finding.finding_id.clone(),
        ..Alert::default()
    };
    let event = AlertEvent::opened(&alert, UnixMillis(t + 2000));
    let run = DetectorRun {
        run_id: "example-run".into(),
        kind: "streaming".into(),
        rule_id: "streaming".into(),
        rule_version: "0123456789abcdef".into(),
        outcome: "ok".into(),
        ..DetectorRun::default()
    };
    let sent = |name: &str, template: &str, exec: String| Statement {
        name: name.to_owned(),
        sql: format!("{template}(…), (…)"),
        exec,
    };
    let query = |name: &str, template: &str, params: &[Lit<'_>]| Statement {
        name: name.to_owned(),
        sql: template.to_owned(),
        exec: render(template, params),
    };
    let ids: &[&str] = &["example-alert", "another-alert"];
    vec![
        sent(
            "insert.findings",
            &q.insert_findings,
            format!("{}{}", q.insert_findings, finding_row(&finding, "example-alert", 7, t)),
        ),
        sent("insert.detector_runs", &q.insert_runs, format!("{}{}", q.insert_runs, run_row(&run))),
        sent("insert.alerts", &q.insert_alerts, format!("{}{}", q.insert_alerts, alert_row(&alert, t))),
        sent("insert.alert_events", &q.insert_events, format!("{}{}", q.insert_events, event_row(&event))),
        query("query.alerts_by_id", &q.alerts_by_id, &[Lit::Str("example%")]),
        query("query.recent_alerts", &q.recent_alerts, &[Lit::I64(50)]),
        query("query.events_of", &q.events_of, &[Lit::StrList(ids)]),
        query("query.findings_of", &q.findings_of, &[Lit::Str("example-alert"), Lit::I64(100)]),
        query("query.recent_runs", &q.recent_runs, &[Lit::I64(20)]),
        query("query.alert_states", &q.alert_states, &[]),
        query("query.findings_by_rule", &q.findings_by_rule, &[]),
        query("query.history_day", &q.history_day, &[Lit::I64(lo), Lit::I64(hi), Lit::I64(42)]),
        query("query.history_arrivals", &q.history_arrivals, &[Lit::I64(t - 86_400_000), Lit::I64(42)]),
        query("query.completed_windows", &q.completed_windows, &[Lit::Str("scheduled")]),
    ]
    .into_iter()
    .chain(rule_statements(opts, t))
    .collect()
}

/// The built-in SQL rules' queries (`rules/*.toml`, `gatelog rules`) over the hour before
/// `t`: `rule.<id>`, the template as written and the query as run. (They read
/// `received_at_ms` and `time_ms`, which both profiles have.) A built-in that does not parse
/// is a bug its unit tests catch; it is left out here rather than failing the dump.
fn rule_statements(opts: &SchemaOptions, t: i64) -> Vec<Statement> {
    let rules = gatelog_detect::sql_rule::builtin().unwrap_or_default();
    rules
        .iter()
        .map(|r| Statement {
            name: format!("rule.{}", r.id),
            sql: r.query.trim().to_owned(),
            exec: r.render(&opts.database, UnixMillis(t - 3_600_000), UnixMillis(t)).trim().to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_rows_escape_every_literal() {
        let ids = vec!["a'b".to_owned(), "c\\d".to_owned()];
        let row = values_row(&[Val::Str("x\ny"), Val::I64(-3), Val::U64(7), Val::Strs(&ids), Val::Strs(&[])]);
        assert_eq!(row, r"('x\ny', -3, 7, ['a\'b', 'c\\d'], [])");
    }

    #[test]
    fn the_builtin_rules_are_statements() {
        let opts = SchemaOptions { database: "gl".into(), ..SchemaOptions::default() };
        let all = example_statements(crate::SchemaProfile::Legacy, &opts, 0, 0);
        let rules: Vec<&Statement> = all.iter().filter(|s| s.name.starts_with("rule.")).collect();
        assert_eq!(rules.len(), gatelog_detect::sql_rule::BUILTIN.len());
        for s in rules {
            assert!(s.exec.contains("FROM gl.decisions") && !s.exec.contains('{'), "{}", s.exec);
            assert!(s.sql.contains("{from}"), "{}", s.sql);
        }
    }

    #[test]
    fn tables_render_per_cluster_and_version() {
        let opts = SchemaOptions::default();
        let ddl = create_plain(&ALERTS, &opts);
        assert_eq!(ddl.len(), 1);
        assert!(ddl[0].contains("ENGINE = ReplacingMergeTree(version)"), "{}", ddl[0]);
        assert!(ddl[0].contains("time DateTime('UTC') DEFAULT toDateTime(intDiv(first_seen_ms, 1000), 'UTC')"));
        let cluster = SchemaOptions { cluster: Some("c1".into()), ..SchemaOptions::default() };
        let ddl = create_plain(&ALERTS, &cluster);
        assert!(ddl[0].contains(
            "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/gatelog/alerts_local', '{replica}', version)"
        ));
        assert!(ddl[1].contains("ENGINE = Distributed(c1, gatelog, alerts_local, cityHash64(alert_id))"));
        assert!(create_plain(&DETECTOR_RUNS, &opts)[0].contains("ENGINE = MergeTree\n"));
    }
}
