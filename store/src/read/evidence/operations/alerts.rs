//! Evidence queries of CC7.3 and CC7.4: the alerts raised in a period with their lifecycle
//! as of an instant, their states counted another way, and the timeline of chosen alerts.
//!
//! An alert is raised in the period when its `open` event is. Its lifecycle comes from
//! `alert_events FINAL` (a replayed event, same `event_id`, is one row) up to `as_of`:
//! opened at the first `open`; responded to at the first `ack` or `resolve` (resolving is a
//! response); resolved at the first `resolve`, its disposition and who from the last one.
//! The alert's attributes are its row of highest `version` updated up to `as_of`
//! (`argMax`, so a re-written row counts once and a later count does not change the figure).
//! The independent count ([`Catalog::alert_states`]) reads `alert_events` without `FINAL`
//! and decides the state with `max()`, which duplicates cannot move.

use super::super::super::catalog::{Catalog, Registered, register as reg};
use super::super::super::period::Period;
use super::super::super::query::{Param, ReadQuery, Value};
use super::super::super::rows::ReadRow;
use crate::StoreError;
use serde::{Deserialize, Serialize};

/// One alert raised in the period, with its lifecycle as of the report's instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct AlertRecord {
    pub tenant: String,
    pub alert_id: String,
    pub rule_id: String,
    pub severity: String,
    pub principal: String,
    pub client_ip: String,
    pub resource: String,
    /// Findings folded into it.
    pub count: u64,
    pub summary: String,
    pub opened_ms: i64,
    /// The first `ack` or `resolve` (0: none yet).
    pub responded_ms: i64,
    pub responded_by: String,
    /// The first `resolve` (0: not resolved).
    pub resolved_ms: i64,
    pub resolved_by: String,
    /// Of the last `resolve`; empty when not resolved.
    pub disposition: String,
    /// `open`, `acknowledged` or `resolved`, as of the report's instant.
    pub state: String,
    /// Lifecycle rows (each event once).
    pub events: u64,
}

impl ReadRow for AlertRecord {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("tenant", "String"),
        ("alert_id", "String"),
        ("rule_id", "String"),
        ("severity", "String"),
        ("principal", "String"),
        ("client_ip", "String"),
        ("resource", "String"),
        ("count", "UInt64"),
        ("summary", "String"),
        ("opened_ms", "Int64"),
        ("responded_ms", "Int64"),
        ("responded_by", "String"),
        ("resolved_ms", "Int64"),
        ("resolved_by", "String"),
        ("disposition", "String"),
        ("state", "String"),
        ("events", "UInt64"),
    ];
}

/// Alerts in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct StateCount {
    pub state: String,
    pub alerts: u64,
}

impl ReadRow for StateCount {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[("state", "String"), ("alerts", "UInt64")];
}

/// One entry of an alert's timeline: a lifecycle event or a delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct TimelineRow {
    pub alert_id: String,
    pub at_ms: i64,
    /// `alert_events` or `alert_deliveries`.
    pub source: String,
    /// The action (`open`, `ack`, `resolve`), or `<kind> <outcome>` of a delivery.
    pub what: String,
    /// The actor, or `<channel> <target>` of a delivery.
    pub who: String,
    /// Disposition and note, or the message id and error of a delivery.
    pub detail: String,
    /// The event's or the delivery's id.
    pub id: String,
}

impl ReadRow for TimelineRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("alert_id", "String"),
        ("at_ms", "Int64"),
        ("source", "String"),
        ("what", "String"),
        ("who", "String"),
        ("detail", "String"),
        ("id", "String"),
    ];
}

/// The severities whose alerts are escalated (CC7.4), besides a `true_positive` disposition.
pub const ESCALATED_SEVERITIES: [&str; 2] = ["high", "critical"];

impl Catalog {
    /// The alerts whose `open` is in `period`, their lifecycle as of `as_of_ms`, oldest
    /// first; with `escalated`, only those of [`ESCALATED_SEVERITIES`] or disposed
    /// `true_positive`.
    pub fn alerts_raised(
        &self,
        period: Period,
        as_of_ms: i64,
        escalated: bool,
    ) -> Result<ReadQuery<AlertRecord>, StoreError> {
        let sql = format!(
            "SELECT tenant, alert_id, rule_id, severity, principal, client_ip, resource, count, summary, opened_ms, \
             responded_ms, responded_by,\n    resolved_ms, resolved_by, disposition, \
             multiIf(resolved_ms != 0, 'resolved', responded_ms != 0, 'acknowledged', 'open') AS state, events\n\
             FROM\n(\n    \
             SELECT tenant, alert_id, minIf(at_ms, action = 'open') AS opened_ms,\n        \
             minIf(at_ms, action IN ('ack', 'resolve')) AS responded_ms, argMinIf(who, at_ms, action IN ('ack', 'resolve')) AS responded_by,\n        \
             minIf(at_ms, action = 'resolve') AS resolved_ms, argMaxIf(who, at_ms, action = 'resolve') AS resolved_by,\n        \
             argMaxIf(disp, at_ms, action = 'resolve') AS disposition, toUInt64(count()) AS events\n    \
             FROM\n    (\n        SELECT tenant, alert_id, action, at_ms, actor AS who, disposition AS disp\n        FROM {events} FINAL\n    )\n    \
             WHERE at_ms <= {{as_of_ms}}\n    GROUP BY tenant, alert_id\n    \
             HAVING countIf(action = 'open') > 0 AND opened_ms >= {{from_ms}} AND opened_ms < {{to_ms}}\n) AS lifecycle\n\
             ANY LEFT JOIN\n(\n    \
             SELECT tenant, alert_id, argMax(a_rule, version) AS rule_id, argMax(a_severity, version) AS severity,\n        \
             argMax(a_principal, version) AS principal, argMax(a_ip, version) AS client_ip, argMax(a_resource, version) AS resource,\n        \
             max(a_count) AS count, argMax(a_summary, version) AS summary\n    \
             FROM\n    (\n        SELECT tenant, alert_id, version, updated_at_ms, rule_id AS a_rule, severity AS a_severity, \
             principal AS a_principal,\n            client_ip AS a_ip, resource AS a_resource, count AS a_count, summary AS a_summary\n        \
             FROM {alerts}\n    )\n    \
             WHERE updated_at_ms <= {{as_of_ms}}\n    GROUP BY tenant, alert_id\n) AS latest USING (tenant, alert_id)\n\
             WHERE {{escalated}} = 0 OR has({{severities}}, severity) OR disposition = 'true_positive'\n\
             ORDER BY opened_ms, tenant, alert_id",
            events = self.table("alert_events"),
            alerts = self.table("alerts"),
        );
        let mut params = period.params().to_vec();
        params.push(Param::new("as_of_ms", Value::Int64(as_of_ms)));
        params.push(Param::new("escalated", Value::UInt64(u64::from(escalated))));
        params.push(Param::new("severities", Value::Strs(ESCALATED_SEVERITIES.map(str::to_owned).to_vec())));
        ReadQuery::new("read.evidence.alerts_raised", self.table("alert_events"), sql, params)
    }

    /// The alerts opened in `period` by state as of `as_of_ms`, from `alert_events`
    /// without `FINAL`: the independent count of [`Catalog::alerts_raised`].
    pub fn alert_states(&self, period: Period, as_of_ms: i64) -> Result<ReadQuery<StateCount>, StoreError> {
        let sql = format!(
            "SELECT state, toUInt64(count()) AS alerts\nFROM\n(\n    \
             SELECT tenant, alert_id, multiIf(max(action = 'resolve') = 1, 'resolved', max(action = 'ack') = 1, 'acknowledged', 'open') AS state,\n        \
             max(action = 'open') AS has_open, minIf(at_ms, action = 'open') AS opened\n    FROM {}\n    \
             WHERE at_ms <= {{as_of_ms}}\n    GROUP BY tenant, alert_id\n)\n\
             WHERE has_open = 1 AND opened >= {{from_ms}} AND opened < {{to_ms}}\nGROUP BY state\nORDER BY state",
            self.table("alert_events")
        );
        let mut params = period.params().to_vec();
        params.push(Param::new("as_of_ms", Value::Int64(as_of_ms)));
        ReadQuery::new("read.evidence.alert_states", self.table("alert_events"), sql, params)
    }

    /// Every lifecycle event and delivery attempt of `alert_ids` up to `as_of_ms`, each once
    /// (`FINAL`), by alert and time.
    pub fn alert_timeline(&self, alert_ids: &[String], as_of_ms: i64) -> Result<ReadQuery<TimelineRow>, StoreError> {
        let sql = format!(
            "SELECT alert_id, at_ms, source, what, who, detail, id\nFROM\n(\n    \
             SELECT alert_id, at_ms, 'alert_events' AS source, action AS what, actor AS who,\n        \
             concat(disposition, if(note = '', '', concat(if(disposition = '', '', ': '), note))) AS detail, event_id AS id\n    \
             FROM {} FINAL\n    WHERE has({{alert_ids}}, alert_id) AND at_ms <= {{as_of_ms}}\n    \
             UNION ALL\n    \
             SELECT alert_id, at_ms, 'alert_deliveries' AS source, concat(kind, ' ', outcome) AS what, \
             concat(channel, ' ', target) AS who,\n        \
             concat(message_id, if(error = '', '', concat(': ', error))) AS detail, delivery_id AS id\n    \
             FROM {} FINAL\n    WHERE has({{alert_ids}}, alert_id) AND at_ms <= {{as_of_ms}}\n)\n\
             ORDER BY alert_id, at_ms, source, id",
            self.table("alert_events"),
            self.table("alert_deliveries")
        );
        let params = vec![
            Param::new("alert_ids", Value::Strs(alert_ids.to_vec())),
            Param::new("as_of_ms", Value::Int64(as_of_ms)),
        ];
        ReadQuery::new("read.evidence.alert_timeline", self.table("alert_events"), sql, params)
    }
}

/// Registers this module's queries.
pub(crate) fn register(c: &Catalog, period: Period, out: &mut Vec<Registered>) {
    let as_of = period.to().0 + 86_400_000;
    reg(out, "", c.alerts_raised(period, as_of, false));
    reg(out, ".escalated", c.alerts_raised(period, as_of, true));
    reg(out, "", c.alert_states(period, as_of));
    reg(out, "", c.alert_timeline(&["example-alert".to_owned(), "o'ther".to_owned()], as_of));
}
