//! `alert_deliveries` (migration 10): every attempt to tell on-call about an alert, the
//! outbox's progress stored with the data. The mailer (`gatelog-notify`) derives what is
//! still to deliver from it and from `alert_events`, never from a file of its own.
//!
//! One row per attempt: `kind` `alert` (the alert's own mail) or `digest` (a mail listing
//! alerts a rate limit folded), `outcome` `sent`, `failed` or `folded` (the alert will go out
//! in the digest named by `message_id`), `channel` `smtp` or `file`. `delivery_id` is derived
//! from the message, the alert, the attempt and the outcome, so a row written again (a retried
//! insert) collapses: `ReplacingMergeTree`, read with `FINAL`. The same types in both profiles.
//!
//! The mailer's queries:
//! - `undelivered_opens`: `open` events (`alert_events FINAL`) of alerts with no `sent` row, of
//!   the severities that page, oldest first: the outbox. A canary's own alert (rule
//!   `canary`, see `gatelog_model::canary`) never is: it is a test of monitoring, not news.
//! - `alerts_by_ids`: those alerts as they now are (`alerts FINAL`).
//! - `deliveries_of`: the rows of those alerts (failed attempts for the backoff, folds).
//! - `begun_since`: alerts whose own mail was first attempted since an instant, by rule (the
//!   rate limits' count, so limits hold across restarts).
//! - `decisions_by_ids`: the decisions behind a finding, for the mail's event table.

use super::SchemaOptions;
use super::Statement;
use super::detection::{ALERT_COLUMNS, HISTORY_COLUMNS, PlainTable, Val, insert_prefix, values_row};
use super::queries::{Lit, render};
use gatelog_model::EventId;
use gatelog_model::canary::CANARY_RULE;

pub(crate) const ALERT_DELIVERIES: PlainTable = PlainTable {
    name: "alert_deliveries",
    columns: &[
        ("delivery_id", "String"),
        ("alert_id", "String"),
        ("tenant", "String"),
        ("rule_id", "String"),
        ("kind", "String"),
        ("message_id", "String"),
        ("attempt", "UInt32"),
        ("channel", "String"),
        ("target", "String"),
        ("outcome", "String"),
        ("error", "String"),
        ("at_ms", "Int64"),
    ],
    time_from: "at_ms",
    replacing: Some(""),
    order_by: "tenant, alert_id, delivery_id",
    shard_key: "cityHash64(alert_id)",
};

/// The columns [`AlertDelivery`] is read back from, in its order.
pub(crate) const DELIVERY_COLUMNS: &str =
    "delivery_id, alert_id, tenant, rule_id, kind, message_id, attempt, channel, target, outcome, error, at_ms";

/// One row of `alert_deliveries`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clickhouse::Row)]
pub struct AlertDelivery {
    /// [`AlertDelivery::derive_id`] (set by [`AlertDelivery::seal`]).
    pub delivery_id: String,
    pub alert_id: String,
    pub tenant: String,
    pub rule_id: String,
    /// `alert` or `digest`.
    pub kind: String,
    /// The mail's Message-ID (stable per alert, or per digest), without angle brackets.
    pub message_id: String,
    /// 1, 2, … per message; 0 for a fold.
    pub attempt: u32,
    /// `smtp` or `file`.
    pub channel: String,
    /// Where it went: `host:port` for SMTP, the `.eml` file's path.
    pub target: String,
    /// `sent`, `failed` or `folded`.
    pub outcome: String,
    pub error: String,
    pub at_ms: i64,
}

impl AlertDelivery {
    /// From the message, the alert, the attempt and the outcome: the same attempt recorded
    /// twice is one row.
    pub fn derive_id(&self) -> String {
        let attempt = self.attempt.to_string();
        EventId::derive(&["delivery", &self.message_id, &self.alert_id, &attempt, &self.outcome])
    }

    /// Sets [`AlertDelivery::delivery_id`] from the other fields.
    pub fn seal(mut self) -> Self {
        self.delivery_id = self.derive_id();
        self
    }
}

pub(crate) fn delivery_row(d: &AlertDelivery) -> String {
    values_row(&[
        Val::Str(&d.delivery_id),
        Val::Str(&d.alert_id),
        Val::Str(&d.tenant),
        Val::Str(&d.rule_id),
        Val::Str(&d.kind),
        Val::Str(&d.message_id),
        Val::U64(u64::from(d.attempt)),
        Val::Str(&d.channel),
        Val::Str(&d.target),
        Val::Str(&d.outcome),
        Val::Str(&d.error),
        Val::I64(d.at_ms),
    ])
}

/// The outbox's statements, with `?` placeholders.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryQueries {
    pub insert_deliveries: String,
    /// Params: the severities that page (`IN ?`), limit. Rows: `(alert_id, opened_ms)`.
    pub undelivered_opens: String,
    /// Params: alert ids (`IN ?`).
    pub alerts_by_ids: String,
    /// Params: alert ids (`IN ?`).
    pub deliveries_of: String,
    /// Params: the instant (ms). Rows: `(rule_id, alerts)`.
    pub begun_since: String,
    /// Params: tenant, event ids (`IN ?`), limit.
    pub decisions_by_ids: String,
}

impl DeliveryQueries {
    pub(crate) fn new(opts: &SchemaOptions) -> Self {
        let db = opts.database.as_str();
        // A subquery over a Distributed table must be sent to the shards once, whole.
        let in_ = if opts.cluster.is_some() { "GLOBAL IN" } else { "IN" };
        let not_in = if opts.cluster.is_some() { "GLOBAL NOT IN" } else { "NOT IN" };
        DeliveryQueries {
            insert_deliveries: insert_prefix(&ALERT_DELIVERIES, opts),
            undelivered_opens: format!(
                "SELECT alert_id, min(at_ms) AS opened_ms FROM {db}.alert_events FINAL \
                 WHERE action = 'open' \
                 AND alert_id {not_in} (SELECT alert_id FROM {db}.alert_deliveries FINAL WHERE outcome = 'sent') \
                 AND alert_id {in_} (SELECT alert_id FROM {db}.alerts FINAL WHERE severity IN ? AND rule_id != '{CANARY_RULE}') \
                 GROUP BY alert_id ORDER BY opened_ms, alert_id LIMIT ?"
            ),
            alerts_by_ids: format!(
                "SELECT {ALERT_COLUMNS} FROM {db}.alerts FINAL WHERE alert_id IN ? ORDER BY alert_id"
            ),
            deliveries_of: format!(
                "SELECT {DELIVERY_COLUMNS} FROM {db}.alert_deliveries FINAL WHERE alert_id IN ? \
                 ORDER BY at_ms, delivery_id"
            ),
            begun_since: format!(
                "SELECT rule_id, uniqExact(alert_id) AS n FROM {db}.alert_deliveries FINAL \
                 WHERE kind = 'alert' AND attempt = 1 AND at_ms >= ? GROUP BY rule_id ORDER BY rule_id"
            ),
            decisions_by_ids: format!(
                "SELECT {HISTORY_COLUMNS} FROM {db}.decisions FINAL WHERE tenant = ? AND event_id IN ? \
                 ORDER BY time_ms, event_id LIMIT ?"
            ),
        }
    }
}

/// The outbox's statements for `gatelog sql dump` and the compatibility tests.
pub(crate) fn example_statements(opts: &SchemaOptions) -> Vec<Statement> {
    let q = DeliveryQueries::new(opts);
    let delivery = AlertDelivery {
        alert_id: "example-alert".into(),
        tenant: "default".into(),
        rule_id: "deny_burst_ip".into(),
        kind: "alert".into(),
        message_id: "alert.example-alert@gatelog".into(),
        attempt: 1,
        channel: "smtp".into(),
        target: "127.0.0.1:25".into(),
        outcome: "failed".into(),
        error: "smtp server 127.0.0.1:25: Connection error: Connection refused (os error 111)".into(),
        at_ms: 1_740_990_716_000,
        ..AlertDelivery::default()
    }
    .seal();
    let query = |name: &str, template: &str, params: &[Lit<'_>]| Statement {
        name: name.to_owned(),
        sql: template.to_owned(),
        exec: render(template, params),
    };
    let ids: &[&str] = &["example-alert", "another-alert"];
    vec![
        Statement {
            name: "insert.alert_deliveries".to_owned(),
            sql: format!("{}(…), (…)", q.insert_deliveries),
            exec: format!("{}{}", q.insert_deliveries, delivery_row(&delivery)),
        },
        query("query.undelivered_opens", &q.undelivered_opens, &[Lit::StrList(&["high", "critical"]), Lit::I64(100)]),
        query("query.alerts_by_ids", &q.alerts_by_ids, &[Lit::StrList(ids)]),
        query("query.deliveries_of", &q.deliveries_of, &[Lit::StrList(ids)]),
        query("query.deliveries_begun_since", &q.begun_since, &[Lit::I64(1_740_990_000_000)]),
        query("query.decisions_by_ids", &q.decisions_by_ids, &[Lit::Str("default"), Lit::StrList(ids), Lit::I64(20)]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_recorded_twice_has_one_id() {
        let d = AlertDelivery {
            alert_id: "a".into(),
            message_id: "m".into(),
            attempt: 2,
            outcome: "failed".into(),
            ..AlertDelivery::default()
        };
        let (a, b) = (d.clone().seal(), AlertDelivery { at_ms: 99, error: "other".into(), ..d.clone() }.seal());
        assert_eq!(a.delivery_id, b.delivery_id, "when and why do not make another attempt");
        let c = AlertDelivery { attempt: 3, ..d }.seal();
        assert_ne!(a.delivery_id, c.delivery_id);
    }

    #[test]
    fn cluster_queries_send_subqueries_whole() {
        let plain = DeliveryQueries::new(&SchemaOptions::default());
        assert!(
            plain.undelivered_opens.contains("alert_id NOT IN (SELECT") && !plain.undelivered_opens.contains("GLOBAL")
        );
        let cluster = SchemaOptions { cluster: Some("c1".into()), ..SchemaOptions::default() };
        let q = DeliveryQueries::new(&cluster);
        assert!(q.undelivered_opens.contains("GLOBAL NOT IN") && q.undelivered_opens.contains("GLOBAL IN"));
    }
}
