//! gatelog's own audit trail read back: who read the evidence through gatelog's HTTP routes,
//! allowed or denied ([`Store::access_log`]). The rows are written by the ClickHouse sink like
//! every other record of the spool (a batch of [`gatelog_model::Source::Gatelog`] decisions
//! goes to `access_log` instead of `decisions`); each is read once (`FINAL`), newest first.

use crate::profile::SchemaProfile;
use crate::sql::{Lit, SchemaOptions, Statement, render};
use crate::{Store, StoreError};
use gatelog_model::UnixMillis;
use serde::Serialize;

/// The most rows one [`Store::access_log`] call returns.
pub const MAX_ACCESS_ROWS: u64 = 1000;

/// Which audit records to read: `[from, to)` of the time of the read, optionally one
/// principal (the credential's name) and one outcome (`allow`, `deny`, `error`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessQuery {
    pub from: UnixMillis,
    pub to: UnixMillis,
    pub principal: Option<String>,
    pub decision: Option<String>,
    /// At most [`MAX_ACCESS_ROWS`].
    pub limit: u64,
}

/// One answer of a read route, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct AccessEntry {
    pub event_id: String,
    pub time_ms: i64,
    /// The credential's name; empty when the request carried no known credential.
    pub principal: String,
    pub roles: Vec<String>,
    pub auth_method: String,
    pub client_ip: String,
    /// The HTTP method.
    pub action: String,
    /// The route as matched (`/v1/alerts/{id}`).
    pub resource: String,
    pub path: String,
    /// The URL's query string (what was searched).
    pub query: String,
    pub user_agent: String,
    pub status: u16,
    pub decision: String,
    pub reason: String,
}

const COLUMNS: &str = "event_id, time_ms, principal, roles, auth_method, client_ip, action, resource, path, query, user_agent, \
     status, decision, reason";

/// The query behind [`Store::access_log`]. Params: the partition bounds of `time` (seconds on
/// the legacy profile, milliseconds on the modern one, inclusive), then `from_ms`, `to_ms`,
/// principal twice, decision twice (empty: any), limit.
pub(crate) fn access_log_sql(profile: SchemaProfile, opts: &SchemaOptions) -> String {
    let between = crate::sql::time_between(profile);
    format!(
        "SELECT {COLUMNS} FROM {}.access_log FINAL WHERE {between} AND time_ms >= ? AND time_ms < ? \
         AND (? = '' OR principal = ?) AND (? = '' OR decision = ?) ORDER BY time_ms DESC, event_id LIMIT ?",
        opts.database
    )
}

/// `[from, to)` in milliseconds as the inclusive bounds `time_between` compares with.
fn partition_bounds(profile: SchemaProfile, from: UnixMillis, to: UnixMillis) -> (i64, i64) {
    let last = to.0.saturating_sub(1).max(from.0);
    match profile {
        SchemaProfile::Legacy => (from.0.div_euclid(1000), last.div_euclid(1000)),
        SchemaProfile::Modern => (from.0, last),
    }
}

fn params(profile: SchemaProfile, q: &AccessQuery) -> Vec<Lit<'_>> {
    let (lo, hi) = partition_bounds(profile, q.from, q.to);
    let principal = q.principal.as_deref().unwrap_or_default();
    let decision = q.decision.as_deref().unwrap_or_default();
    vec![
        Lit::I64(lo),
        Lit::I64(hi),
        Lit::I64(q.from.0),
        Lit::I64(q.to.0),
        Lit::Str(principal),
        Lit::Str(principal),
        Lit::Str(decision),
        Lit::Str(decision),
        Lit::I64(i64::try_from(q.limit.clamp(1, MAX_ACCESS_ROWS)).unwrap_or(1)),
    ]
}

/// The statement for `gatelog sql dump` and the compatibility tests.
pub(crate) fn example_statement(profile: SchemaProfile, opts: &SchemaOptions) -> Statement {
    let template = access_log_sql(profile, opts);
    let q = AccessQuery {
        from: UnixMillis(1_740_990_000_000),
        to: UnixMillis(1_741_000_000_000),
        principal: Some("alice-laptop".into()),
        decision: None,
        limit: 100,
    };
    let exec = render(&template, &params(profile, &q));
    Statement { name: "query.access_log".to_owned(), sql: template, exec }
}

impl Store {
    /// gatelog's own audit records matching `q`, newest first.
    pub async fn access_log(&self, q: &AccessQuery) -> Result<Vec<AccessEntry>, StoreError> {
        if q.to <= q.from {
            return Ok(Vec::new());
        }
        let sql = render(&access_log_sql(self.profile(), &self.inner.options), &params(self.profile(), q));
        self.fetch_all("SELECT", &self.qualified("access_log"), &sql).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_cover_the_period_in_the_profiles_unit() {
        let (from, to) = (UnixMillis(1_500), UnixMillis(3_000));
        assert_eq!(partition_bounds(SchemaProfile::Legacy, from, to), (1, 2));
        assert_eq!(partition_bounds(SchemaProfile::Modern, from, to), (1_500, 2_999));
    }

    #[test]
    fn the_limit_is_capped_and_filters_are_optional() {
        let q = AccessQuery { to: UnixMillis(10), limit: 1_000_000, ..AccessQuery::default() };
        let sql = render(
            &access_log_sql(SchemaProfile::Modern, &SchemaOptions::default()),
            &params(SchemaProfile::Modern, &q),
        );
        assert!(sql.ends_with("LIMIT 1000"), "{sql}");
        assert!(sql.contains("('' = '' OR principal = '')"), "{sql}");
    }
}
