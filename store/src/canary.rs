//! The canary side of the store: `canary_runs` written and read back, and the alert a
//! canary's decision raised ([`crate::sql::canary`] has the SQL).

use crate::sql::canary::{CanaryAlert, CanaryQueries, CanaryRun, run_row};
use crate::sql::{Lit, render};
use crate::store::with_retries;
use crate::{Store, StoreError};

impl Store {
    fn canary_queries(&self) -> CanaryQueries {
        CanaryQueries::new(&self.inner.options)
    }

    /// Records canary runs (one recorded twice, same `run_id`, is one row).
    pub async fn record_canary_runs(&self, runs: &[CanaryRun]) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        let q = self.canary_queries();
        let rows: Vec<String> = runs.iter().map(run_row).collect();
        let sql = format!("{}{}", q.insert_runs, rows.join(", "));
        let table = self.qualified("canary_runs");
        with_retries(&self.inner.config, "insert", || self.execute("INSERT", &table, &sql)).await
    }

    /// The alert of rule `rule_id` under `dedup_key`, with when it was first stored; `None`
    /// while there is none.
    pub async fn canary_alert(&self, rule_id: &str, dedup_key: &str) -> Result<Option<CanaryAlert>, StoreError> {
        let sql = render(&self.canary_queries().canary_alert, &[Lit::Str(rule_id), Lit::Str(dedup_key)]);
        let rows: Vec<CanaryAlert> = self.fetch_all("SELECT", &self.qualified("alerts"), &sql).await?;
        Ok(rows.into_iter().next())
    }

    /// The `limit` canary runs sent last, newest first.
    pub async fn recent_canary_runs(&self, limit: u64) -> Result<Vec<CanaryRun>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = render(&self.canary_queries().recent_runs, &[Lit::I64(limit)]);
        self.fetch_all("SELECT", &self.qualified("canary_runs"), &sql).await
    }
}
