//! `canary_runs` (migration 12): one row per canary run of `gatelog serve` (see
//! `gatelog_model::canary`), the evidence that monitoring operated. `ReplacingMergeTree` keyed
//! by `run_id`: a run recorded again (a crash between recording it and forgetting it locally)
//! is one row, read with `FINAL`. The same types in both profiles.
//!
//! Columns: `run_id`; `event_id` of the canary decision; `sent_at_ms` (its 2xx, or the
//! attempt when it failed); `deadline_ms` (the configured deadline); `alert_id` and
//! `alert_at_ms` (when detection first stored it, `alerts.updated_at_ms`; 0 without one);
//! `latency_ms` (`alert_at_ms - sent_at_ms`, -1 without an alert); `outcome` `ok`, `missed`,
//! `failed_to_send` or `interrupted` (serve stopped during the run); `error`;
//! `missed_alert_id` (the paging alert a `missed`/`failed_to_send` run opened);
//! `recorded_at_ms`.
//!
//! Queries: `canary_alert` (the alert a run's decision raised, with when it was first
//! stored: the minimum over its rows, so a replay that stores it again moves nothing) and
//! `recent_canary_runs` (`gatelog canary list`).

use super::SchemaOptions;
use super::Statement;
use super::detection::{PlainTable, Val, insert_prefix, values_row};
use super::queries::{Lit, render};

pub(crate) const CANARY_RUNS: PlainTable = PlainTable {
    name: "canary_runs",
    columns: &[
        ("run_id", "String"),
        ("event_id", "String"),
        ("sent_at_ms", "Int64"),
        ("deadline_ms", "Int64"),
        ("alert_id", "String"),
        ("alert_at_ms", "Int64"),
        ("latency_ms", "Int64"),
        ("outcome", "String"),
        ("error", "String"),
        ("missed_alert_id", "String"),
        ("recorded_at_ms", "Int64"),
    ],
    time_from: "sent_at_ms",
    replacing: Some(""),
    order_by: "run_id",
    shard_key: "cityHash64(run_id)",
};

const RUN_COLUMNS: &str = "run_id, event_id, sent_at_ms, deadline_ms, alert_id, alert_at_ms, latency_ms, outcome, \
     error, missed_alert_id, recorded_at_ms";

/// One row of `canary_runs` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clickhouse::Row)]
pub struct CanaryRun {
    pub run_id: String,
    pub event_id: String,
    pub sent_at_ms: i64,
    pub deadline_ms: i64,
    pub alert_id: String,
    pub alert_at_ms: i64,
    pub latency_ms: i64,
    pub outcome: String,
    pub error: String,
    pub missed_alert_id: String,
    pub recorded_at_ms: i64,
}

/// The alert a canary's decision raised: `(alert_id, stored_ms)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, clickhouse::Row)]
pub struct CanaryAlert {
    pub alert_id: String,
    pub stored_ms: i64,
}

pub(crate) fn run_row(r: &CanaryRun) -> String {
    values_row(&[
        Val::Str(&r.run_id),
        Val::Str(&r.event_id),
        Val::I64(r.sent_at_ms),
        Val::I64(r.deadline_ms),
        Val::Str(&r.alert_id),
        Val::I64(r.alert_at_ms),
        Val::I64(r.latency_ms),
        Val::Str(&r.outcome),
        Val::Str(&r.error),
        Val::Str(&r.missed_alert_id),
        Val::I64(r.recorded_at_ms),
    ])
}

/// The canary statements, with `?` placeholders.
#[derive(Debug, Clone)]
pub(crate) struct CanaryQueries {
    pub insert_runs: String,
    /// Params: rule id, dedup key. Rows: [`CanaryAlert`].
    pub canary_alert: String,
    /// Params: limit. Rows: [`CanaryRun`], newest first.
    pub recent_runs: String,
}

impl CanaryQueries {
    pub(crate) fn new(opts: &SchemaOptions) -> Self {
        let db = opts.database.as_str();
        CanaryQueries {
            insert_runs: insert_prefix(&CANARY_RUNS, opts),
            canary_alert: format!(
                "SELECT alert_id, min(updated_at_ms) AS stored_ms FROM {db}.alerts \
                 WHERE rule_id = ? AND dedup_key = ? GROUP BY alert_id ORDER BY stored_ms, alert_id LIMIT 1"
            ),
            recent_runs: format!(
                "SELECT {RUN_COLUMNS} FROM {db}.canary_runs FINAL ORDER BY sent_at_ms DESC, run_id LIMIT ?"
            ),
        }
    }
}

/// The canary statements for `gatelog sql dump` and the compatibility tests.
pub(crate) fn example_statements(opts: &SchemaOptions) -> Vec<Statement> {
    let q = CanaryQueries::new(opts);
    let run = CanaryRun {
        run_id: "example-run".into(),
        event_id: "canary-example-run".into(),
        sent_at_ms: 1_740_990_713_712,
        deadline_ms: 300_000,
        alert_id: "example-alert".into(),
        alert_at_ms: 1_740_990_714_912,
        latency_ms: 1200,
        outcome: "ok".into(),
        recorded_at_ms: 1_740_990_715_000,
        ..CanaryRun::default()
    };
    vec![
        Statement {
            name: "insert.canary_runs".to_owned(),
            sql: format!("{}(…)", q.insert_runs),
            exec: format!("{}{}", q.insert_runs, run_row(&run)),
        },
        Statement {
            name: "query.canary_alert".to_owned(),
            sql: q.canary_alert.clone(),
            exec: render(&q.canary_alert, &[Lit::Str("canary"), Lit::Str("canary:example-run")]),
        },
        Statement {
            name: "query.recent_canary_runs".to_owned(),
            sql: q.recent_runs.clone(),
            exec: render(&q.recent_runs, &[Lit::I64(20)]),
        },
    ]
}
