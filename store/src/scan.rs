//! Every stored decision read back, a UTC day at a time, for what is rebuilt from ClickHouse
//! (the tantivy index): [`Store::decision_days`] lists the days that hold decisions (with
//! counts, for progress), [`Store::scan_day`] streams one day's decisions. Rows are read as
//! stored, copies included (the Tail and Logpush copies of one event, rows a merge has not
//! collapsed yet): whatever is rebuilt replaces by `event_id`, as the index does.

use crate::sql::{Lit, render};
use crate::{Store, StoreError};
use gatelog_model::{AccessDecision, Decision, UnixMillis};

const MS_PER_DAY: i64 = 86_400_000;

/// One decision as [`Store::scan_day`] reads it: what the index needs.
#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct ScannedRow {
    event_id: String,
    time_ms: i64,
    received_at_ms: i64,
    dataset: String,
    decision: String,
    principal: String,
    roles: Vec<String>,
    client_ip: String,
    country: String,
    user_agent: String,
    resource: String,
    action: String,
    policy: String,
    reason: String,
    query: String,
    rows_read: u64,
    status: u16,
    ray_id: String,
    request_id: String,
    host: String,
    path: String,
    tenant: String,
    spool_seq: u64,
}

/// The columns [`ScannedRow`] reads, in its order.
pub(crate) const SCANNED_COLUMNS: &str = "event_id, time_ms, received_at_ms, dataset, decision, principal, roles, \
     client_ip, country, user_agent, resource, action, policy, reason, query, rows_read, status, ray_id, request_id, \
     host, path, tenant, spool_seq";

impl From<ScannedRow> for AccessDecision {
    fn from(r: ScannedRow) -> AccessDecision {
        let mut d = AccessDecision::new(r.event_id, UnixMillis(r.time_ms), &r.dataset, Default::default());
        d.received_at = UnixMillis(r.received_at_ms);
        d.decision = Decision::parse(&r.decision).unwrap_or_default();
        d.principal = r.principal;
        d.roles = r.roles;
        d.client_ip = r.client_ip;
        d.country = r.country;
        d.user_agent = r.user_agent;
        d.resource = r.resource;
        d.action = r.action;
        d.policy = r.policy;
        d.reason = r.reason;
        d.query = r.query;
        d.rows_read = r.rows_read;
        d.status = r.status;
        d.ray_id = r.ray_id;
        d.request_id = r.request_id;
        d.host = r.host;
        d.path = r.path;
        d.tenant = r.tenant;
        d.spool_seq = r.spool_seq;
        d
    }
}

/// A stream of one day's decisions.
pub struct DecisionScan {
    cursor: clickhouse::query::RowCursor<ScannedRow>,
    table: String,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for DecisionScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionScan").field("table", &self.table).finish_non_exhaustive()
    }
}

impl DecisionScan {
    /// The next decision; `None` at the end of the day. Each row is bounded by the request
    /// timeout (a server that stops answering mid-stream is a retryable timeout).
    pub async fn next(&mut self) -> Result<Option<AccessDecision>, StoreError> {
        match tokio::time::timeout(self.timeout, self.cursor.next()).await {
            Ok(Ok(row)) => Ok(row.map(AccessDecision::from)),
            Ok(Err(e)) => Err(StoreError::from_clickhouse("SELECT", &self.table, e)),
            Err(_) => Err(StoreError::timeout("SELECT", &self.table, self.timeout)),
        }
    }
}

impl Store {
    /// The UTC days (days since 1970-01-01) that hold decisions, oldest first, with how many
    /// rows each holds (copies not yet merged included).
    pub async fn decision_days(&self) -> Result<Vec<(i64, u64)>, StoreError> {
        let rows: Vec<(u32, u64)> =
            self.fetch_all("SELECT", &self.qualified("decisions"), &self.inner.queries.decision_days).await?;
        Ok(rows.into_iter().map(|(day, n)| (i64::from(day), n)).collect())
    }

    /// Streams the decisions whose `time` falls on UTC day `day` (days since 1970-01-01).
    pub fn scan_day(&self, day: i64) -> Result<DecisionScan, StoreError> {
        let (lo, hi) = self.day_bounds(day);
        let sql = render(&self.inner.queries.scan_day, &[Lit::I64(lo), Lit::I64(hi)]);
        let table = self.qualified("decisions");
        let cursor = self
            .inner
            .client
            .query_raw(&sql)
            .fetch::<ScannedRow>()
            .map_err(|e| StoreError::from_clickhouse("SELECT", &table, e))?;
        Ok(DecisionScan { cursor, table, timeout: self.inner.config.request_timeout })
    }

    /// The first and last instant of a day in the profile's time type (see `time_between`).
    pub(crate) fn day_bounds(&self, day: i64) -> (i64, i64) {
        let (start, end) = (day.saturating_mul(MS_PER_DAY), day.saturating_add(1).saturating_mul(MS_PER_DAY) - 1);
        match self.profile() {
            crate::SchemaProfile::Legacy => (start.div_euclid(1000), end.div_euclid(1000)),
            crate::SchemaProfile::Modern => (start, end),
        }
    }
}
