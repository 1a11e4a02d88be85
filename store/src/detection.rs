//! The detection side of the store: findings, detector runs, alerts and their lifecycle
//! events written (idempotently: a replay stores nothing twice, see
//! [`crate::sql::detection`]) and read back for `gatelog alerts`, `/metrics` and warm-up
//! (decisions and batch arrivals from history, a UTC day at a time, in time order).

use crate::sql::detection::{DetectionQueries, DetectorRun, alert_row, event_row, finding_row, run_row};
use crate::sql::{Lit, render};
use crate::store::with_retries;
use crate::{Store, StoreError};
use gatelog_model::{
    AccessDecision, Alert, AlertAction, AlertEvent, Decision, Disposition, Finding, PrincipalType, Severity, Source,
    UnixMillis,
};

/// Rows per `INSERT … VALUES` statement.
const ROWS_PER_INSERT: usize = 500;

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
pub(crate) struct AlertRow {
    alert_id: String,
    tenant: String,
    dedup_key: String,
    rule_id: String,
    severity: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
    count: u64,
    summary: String,
    principal: String,
    client_ip: String,
    resource: String,
    first_finding_id: String,
    last_finding_id: String,
}

impl From<AlertRow> for Alert {
    fn from(r: AlertRow) -> Alert {
        Alert {
            alert_id: r.alert_id,
            tenant: r.tenant,
            dedup_key: r.dedup_key,
            rule_id: r.rule_id,
            severity: Severity::parse(&r.severity).unwrap_or_default(),
            first_seen: UnixMillis(r.first_seen_ms),
            last_seen: UnixMillis(r.last_seen_ms),
            count: r.count,
            summary: r.summary,
            principal: r.principal,
            client_ip: r.client_ip,
            resource: r.resource,
            first_finding_id: r.first_finding_id,
            last_finding_id: r.last_finding_id,
        }
    }
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct EventRow {
    event_id: String,
    alert_id: String,
    tenant: String,
    action: String,
    at_ms: i64,
    actor: String,
    disposition: String,
    note: String,
}

impl From<EventRow> for AlertEvent {
    fn from(r: EventRow) -> AlertEvent {
        AlertEvent {
            event_id: r.event_id,
            alert_id: r.alert_id,
            tenant: r.tenant,
            action: AlertAction::parse(&r.action).unwrap_or_default(),
            at: UnixMillis(r.at_ms),
            actor: r.actor,
            disposition: Disposition::parse(&r.disposition),
            note: r.note,
        }
    }
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct FindingRow {
    finding_id: String,
    rule_id: String,
    rule_version: u32,
    severity: String,
    dedup_key: String,
    tenant: String,
    window_start_ms: i64,
    window_end_ms: i64,
    principal: String,
    client_ip: String,
    country: String,
    resource: String,
    dataset: String,
    event_ids: Vec<String>,
    summary: String,
    evidence_keys: Vec<String>,
    evidence_values: Vec<String>,
    alert_id: String,
}

/// A stored finding and the alert it joined.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub alert_id: String,
}

impl From<FindingRow> for StoredFinding {
    fn from(r: FindingRow) -> StoredFinding {
        let finding = Finding {
            finding_id: r.finding_id,
            rule_id: r.rule_id,
            rule_version: r.rule_version,
            severity: Severity::parse(&r.severity).unwrap_or_default(),
            dedup_key: r.dedup_key,
            tenant: r.tenant,
            window_start: UnixMillis(r.window_start_ms),
            window_end: UnixMillis(r.window_end_ms),
            principal: r.principal,
            client_ip: r.client_ip,
            country: r.country,
            resource: r.resource,
            dataset: r.dataset,
            event_ids: r.event_ids,
            summary: r.summary,
            evidence: r.evidence_keys.into_iter().zip(r.evidence_values).collect(),
        };
        StoredFinding { finding, alert_id: r.alert_id }
    }
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct RunRow {
    run_id: String,
    kind: String,
    rule_id: String,
    rule_version: String,
    window_start_ms: i64,
    window_end_ms: i64,
    spool_from: u64,
    spool_to: u64,
    rows_scanned: u64,
    findings: u64,
    started_at_ms: i64,
    duration_ms: u64,
    outcome: String,
    error: String,
}

impl From<RunRow> for DetectorRun {
    fn from(r: RunRow) -> DetectorRun {
        DetectorRun {
            run_id: r.run_id,
            kind: r.kind,
            rule_id: r.rule_id,
            rule_version: r.rule_version,
            window_start_ms: r.window_start_ms,
            window_end_ms: r.window_end_ms,
            spool_from: r.spool_from,
            spool_to: r.spool_to,
            rows_scanned: r.rows_scanned,
            findings: r.findings,
            started_at_ms: r.started_at_ms,
            duration_ms: r.duration_ms,
            outcome: r.outcome,
            error: r.error,
        }
    }
}

/// A stored decision as warm-up reads it.
#[derive(Debug, clickhouse::Row, serde::Deserialize)]
pub(crate) struct HistoryRow {
    event_id: String,
    time_ms: i64,
    received_at_ms: i64,
    source: String,
    dataset: String,
    decision: String,
    principal: String,
    principal_type: String,
    roles: Vec<String>,
    client_ip: String,
    country: String,
    asn: u32,
    user_agent: String,
    resource: String,
    action: String,
    policy: String,
    reason: String,
    query: String,
    query_fingerprint: String,
    rows_read: u64,
    bytes_read: u64,
    result_rows: u64,
    duration_ms: u64,
    status: u16,
    zone: String,
    host: String,
    path: String,
    tenant: String,
    spool_seq: u64,
}

impl From<HistoryRow> for AccessDecision {
    fn from(r: HistoryRow) -> AccessDecision {
        let source = Source::parse(&r.source).unwrap_or_default();
        let mut d = AccessDecision::new(r.event_id, UnixMillis(r.time_ms), &r.dataset, source);
        d.received_at = UnixMillis(r.received_at_ms);
        d.decision = Decision::parse(&r.decision).unwrap_or_default();
        d.principal = r.principal;
        d.principal_type = PrincipalType::parse(&r.principal_type).unwrap_or_default();
        d.roles = r.roles;
        d.client_ip = r.client_ip;
        d.country = r.country;
        d.asn = r.asn;
        d.user_agent = r.user_agent;
        d.resource = r.resource;
        d.action = r.action;
        d.policy = r.policy;
        d.reason = r.reason;
        d.query = r.query;
        d.query_fingerprint = r.query_fingerprint;
        d.rows_read = r.rows_read;
        d.bytes_read = r.bytes_read;
        d.result_rows = r.result_rows;
        d.duration_ms = r.duration_ms;
        d.status = r.status;
        d.zone = r.zone;
        d.host = r.host;
        d.path = r.path;
        d.tenant = r.tenant;
        d.spool_seq = r.spool_seq;
        d
    }
}

/// One day of stored decisions in time order ([`Store::history_day`]).
pub struct HistoryScan {
    cursor: clickhouse::query::RowCursor<HistoryRow>,
    table: String,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for HistoryScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryScan").field("table", &self.table).finish_non_exhaustive()
    }
}

impl HistoryScan {
    /// The next decision; `None` at the end of the day.
    pub async fn next(&mut self) -> Result<Option<AccessDecision>, StoreError> {
        match tokio::time::timeout(self.timeout, self.cursor.next()).await {
            Ok(Ok(row)) => Ok(row.map(AccessDecision::from)),
            Ok(Err(e)) => Err(StoreError::from_clickhouse("SELECT", &self.table, e)),
            Err(_) => Err(StoreError::timeout("SELECT", &self.table, self.timeout)),
        }
    }
}

/// A SQL rule's answer ([`Store::rule_query`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleAnswer {
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Rows ClickHouse read to answer.
    pub rows_read: u64,
}

#[derive(serde::Deserialize)]
struct JsonAnswer {
    data: Vec<serde_json::Value>,
    statistics: Option<JsonStatistics>,
}

#[derive(serde::Deserialize)]
struct JsonStatistics {
    rows_read: u64,
}

/// Where one rule version's scheduled runs stand ([`Store::completed_windows`]).
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, serde::Deserialize)]
pub struct CompletedWindow {
    pub rule_id: String,
    pub rule_version: String,
    /// The end of the newest window it completed (meaningless when `ok_runs` is 0).
    pub last_ok_end_ms: i64,
    pub ok_runs: u64,
    /// The end of its oldest failed window (0 when none failed).
    pub first_failed_end_ms: i64,
}

impl CompletedWindow {
    /// The end of the window before the next to run: the newest completed one; with none
    /// completed, the one before the oldest that failed (it is retried, not skipped).
    pub fn resume_after(&self, schedule_ms: i64) -> Option<i64> {
        match (self.ok_runs, self.first_failed_end_ms) {
            (0, 0) => None,
            (0, failed) => Some(failed - schedule_ms),
            _ => Some(self.last_ok_end_ms),
        }
    }
}

/// A dataset's batch as `ingest_batches` recorded it (warm-up of source cadence).
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, serde::Deserialize)]
pub struct StoredArrival {
    pub dataset: String,
    pub received_at_ms: i64,
    pub decisions: u64,
}

impl Store {
    fn detection_queries(&self) -> DetectionQueries {
        DetectionQueries::new(self.profile(), &self.inner.options)
    }

    async fn insert_values(&self, table: &'static str, prefix: &str, rows: &[String]) -> Result<(), StoreError> {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let sql = format!("{prefix}{}", chunk.join(", "));
            let qualified = self.qualified(table);
            with_retries(&self.inner.config, "insert", || self.execute("INSERT", &qualified, &sql)).await?;
        }
        Ok(())
    }

    /// Stores findings with the alert each joined (`(finding, alert_id)`); one stored again
    /// (same id) stays one finding.
    pub async fn write_findings(
        &self,
        findings: &[(Finding, String)],
        spool_seq: u64,
        detected_at: UnixMillis,
    ) -> Result<(), StoreError> {
        let rows: Vec<String> = findings.iter().map(|(f, a)| finding_row(f, a, spool_seq, detected_at.0)).collect();
        self.insert_values("findings", &self.detection_queries().insert_findings, &rows).await
    }

    /// Records one detector run.
    pub async fn write_detector_run(&self, run: &DetectorRun) -> Result<(), StoreError> {
        self.insert_values("detector_runs", &self.detection_queries().insert_runs, &[run_row(run)]).await
    }

    /// Stores alerts as they are now (a row per change; the highest count is the alert).
    pub async fn write_alerts(&self, alerts: &[Alert], updated_at: UnixMillis) -> Result<(), StoreError> {
        let rows: Vec<String> = alerts.iter().map(|a| alert_row(a, updated_at.0)).collect();
        self.insert_values("alerts", &self.detection_queries().insert_alerts, &rows).await
    }

    /// Appends lifecycle events (an event stored again with its id stays one event).
    pub async fn append_alert_events(&self, events: &[AlertEvent]) -> Result<(), StoreError> {
        let rows: Vec<String> = events.iter().map(event_row).collect();
        self.insert_values("alert_events", &self.detection_queries().insert_events, &rows).await
    }

    /// The alerts whose id starts with `prefix` (at most two: one is the alert, two means
    /// the prefix is ambiguous). `prefix` must be hex digits.
    pub async fn alerts_by_id_prefix(&self, prefix: &str) -> Result<Vec<Alert>, StoreError> {
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::InvalidConfig(format!(
                "alert id {prefix:?}: expected the hex digits of an alert id (or its beginning)"
            )));
        }
        let pattern = format!("{}%", prefix.to_ascii_lowercase());
        let sql = render(&self.detection_queries().alerts_by_id, &[Lit::Str(&pattern)]);
        let rows: Vec<AlertRow> = self.fetch_all("SELECT", &self.qualified("alerts"), &sql).await?;
        Ok(rows.into_iter().map(Alert::from).collect())
    }

    /// The `limit` alerts seen last, newest first.
    pub async fn recent_alerts(&self, limit: u64) -> Result<Vec<Alert>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = render(&self.detection_queries().recent_alerts, &[Lit::I64(limit)]);
        let rows: Vec<AlertRow> = self.fetch_all("SELECT", &self.qualified("alerts"), &sql).await?;
        Ok(rows.into_iter().map(Alert::from).collect())
    }

    /// Every lifecycle event of these alerts, oldest first.
    pub async fn alert_events(&self, alert_ids: &[&str]) -> Result<Vec<AlertEvent>, StoreError> {
        let mut out = Vec::new();
        for chunk in alert_ids.chunks(1000) {
            let sql = render(&self.detection_queries().events_of, &[Lit::StrList(chunk)]);
            let rows: Vec<EventRow> = self.fetch_all("SELECT", &self.qualified("alert_events"), &sql).await?;
            out.extend(rows.into_iter().map(AlertEvent::from));
        }
        Ok(out)
    }

    /// The findings grouped into an alert, oldest first, at most `limit`.
    pub async fn alert_findings(&self, alert_id: &str, limit: u64) -> Result<Vec<StoredFinding>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = render(&self.detection_queries().findings_of, &[Lit::Str(alert_id), Lit::I64(limit)]);
        let rows: Vec<FindingRow> = self.fetch_all("SELECT", &self.qualified("findings"), &sql).await?;
        Ok(rows.into_iter().map(StoredFinding::from).collect())
    }

    /// The `limit` detector runs started last, newest first.
    pub async fn recent_detector_runs(&self, limit: u64) -> Result<Vec<DetectorRun>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = render(&self.detection_queries().recent_runs, &[Lit::I64(limit)]);
        let rows: Vec<RunRow> = self.fetch_all("SELECT", &self.qualified("detector_runs"), &sql).await?;
        Ok(rows.into_iter().map(DetectorRun::from).collect())
    }

    /// `(state, alerts)` by the state their events put them in.
    pub async fn alert_state_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let sql = self.detection_queries().alert_states;
        self.fetch_all("SELECT", &self.qualified("alert_events"), &sql).await
    }

    /// `(rule_id, findings)`, each finding once.
    pub async fn findings_by_rule(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let sql = self.detection_queries().findings_by_rule;
        self.fetch_all("SELECT", &self.qualified("findings"), &sql).await
    }

    /// Streams the decisions of UTC day `day` (days since 1970-01-01) stored at spool
    /// positions up to `max_spool_seq` (backfilled rows, position 0, included), in time order.
    pub fn history_day(&self, day: i64, max_spool_seq: u64) -> Result<HistoryScan, StoreError> {
        self.history_days(day, day, max_spool_seq)
    }

    /// [`Store::history_day`] over the UTC days `first ..= last` in one query, in time
    /// order. Fewer, longer reads cost less: `decisions` is ordered by `(tenant, event_id)`,
    /// so a day's rows are spread over every granule of the parts holding it, and each query
    /// reads those parts whole; ClickHouse sorts the range in memory (about 0.5 KB a row).
    pub fn history_days(&self, first: i64, last: i64, max_spool_seq: u64) -> Result<HistoryScan, StoreError> {
        let (lo, hi) = (self.day_bounds(first).0, self.day_bounds(last.max(first)).1);
        let max = i64::try_from(max_spool_seq).unwrap_or(i64::MAX);
        let sql = render(&self.detection_queries().history_day, &[Lit::I64(lo), Lit::I64(hi), Lit::I64(max)]);
        let table = self.qualified("decisions");
        let cursor = self
            .inner
            .client
            .query_raw(&sql)
            .fetch::<HistoryRow>()
            .map_err(|e| StoreError::from_clickhouse("SELECT", &table, e))?;
        Ok(HistoryScan { cursor, table, timeout: self.inner.config.request_timeout })
    }

    /// Runs a SQL rule's rendered query (`gatelog rules`): each result row as a JSON object
    /// (64-bit integers come as strings), bounded by the request timeout.
    pub async fn rule_rows(&self, sql: &str) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, StoreError> {
        Ok(self.rule_query(sql).await?.rows)
    }

    /// [`Store::rule_rows`] with the rows ClickHouse read to answer (`FORMAT JSON`'s
    /// statistics), for `detector_runs.rows_scanned`.
    pub async fn rule_query(&self, sql: &str) -> Result<RuleAnswer, StoreError> {
        let table = self.qualified("decisions");
        let timeout = self.inner.config.request_timeout;
        let fetch = async {
            let mut bytes = Vec::new();
            let mut cursor = self.inner.client.query_raw(sql).fetch_bytes("JSON")?;
            while let Some(chunk) = cursor.next().await? {
                bytes.extend_from_slice(&chunk);
            }
            Ok::<_, clickhouse::error::Error>(bytes)
        };
        let bytes = crate::store::bounded("SELECT", &table, timeout, fetch).await?;
        let not_json = |what: &str| {
            StoreError::InvalidConfig(format!(
                "a rule's answer is not ClickHouse's JSON ({what}): {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        };
        let answer: JsonAnswer = serde_json::from_slice(&bytes).map_err(|e| not_json(&e.to_string()))?;
        let mut rows = Vec::with_capacity(answer.data.len());
        for row in answer.data {
            match row {
                serde_json::Value::Object(row) => rows.push(row),
                _ => return Err(not_json("a row is not an object")),
            }
        }
        Ok(RuleAnswer { rows, rows_read: answer.statistics.map_or(0, |s| s.rows_read) })
    }

    /// Where each `(rule_id, rule_version)` stands in runs of `kind` (`scheduled`): the end of
    /// its newest completed window, or of its oldest failed one; where the scheduler resumes.
    pub async fn completed_windows(&self, kind: &str) -> Result<Vec<CompletedWindow>, StoreError> {
        let sql = render(&self.detection_queries().completed_windows, &[Lit::Str(kind)]);
        self.fetch_all("SELECT", &self.qualified("detector_runs"), &sql).await
    }

    /// Batches received since `from` at spool positions up to `max_spool_seq`, in receipt order.
    pub async fn history_arrivals(
        &self,
        from: UnixMillis,
        max_spool_seq: u64,
    ) -> Result<Vec<StoredArrival>, StoreError> {
        let max = i64::try_from(max_spool_seq).unwrap_or(i64::MAX);
        let sql = render(&self.detection_queries().history_arrivals, &[Lit::I64(from.0), Lit::I64(max)]);
        self.fetch_all("SELECT", &self.qualified("ingest_batches"), &sql).await
    }
}
