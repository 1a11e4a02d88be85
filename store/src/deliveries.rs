//! The outbox side of the store: delivery attempts written to `alert_deliveries` and what
//! the mailer reads to decide what to send ([`crate::sql::deliveries`] has the SQL and why).

use crate::detection::{AlertRow, HistoryRow};
use crate::sql::deliveries::{AlertDelivery, DeliveryQueries, delivery_row};
use crate::sql::{Lit, render};
use crate::store::with_retries;
use crate::{Store, StoreError};
use gatelog_model::{AccessDecision, Alert, Severity, UnixMillis};

/// Ids per `IN (…)` list.
const IDS_PER_QUERY: usize = 1000;

/// An alert whose `open` event has no `sent` delivery yet.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, serde::Deserialize)]
pub struct UndeliveredOpen {
    pub alert_id: String,
    /// When it was opened (the `open` event's time, ms).
    pub opened_ms: i64,
}

impl Store {
    fn delivery_queries(&self) -> DeliveryQueries {
        DeliveryQueries::new(&self.inner.options)
    }

    /// Records delivery attempts (each sealed with its id; one recorded twice is one row).
    pub async fn record_deliveries(&self, rows: &[AlertDelivery]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let q = self.delivery_queries();
        let values: Vec<String> = rows.iter().map(|d| delivery_row(&d.clone().seal())).collect();
        let sql = format!("{}{}", q.insert_deliveries, values.join(", "));
        let table = self.qualified("alert_deliveries");
        with_retries(&self.inner.config, "insert", || self.execute("INSERT", &table, &sql)).await
    }

    /// Opened alerts of `severities` with no `sent` delivery, oldest first, at most `limit`.
    pub async fn undelivered_opens(
        &self,
        severities: &[Severity],
        limit: u64,
    ) -> Result<Vec<UndeliveredOpen>, StoreError> {
        let names: Vec<&str> = severities.iter().map(|s| s.as_str()).collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = render(&self.delivery_queries().undelivered_opens, &[Lit::StrList(&names), Lit::I64(limit)]);
        self.fetch_all("SELECT", &self.qualified("alert_events"), &sql).await
    }

    /// These alerts as they are now (unknown ids are left out).
    pub async fn alerts_by_ids(&self, alert_ids: &[&str]) -> Result<Vec<Alert>, StoreError> {
        let mut out = Vec::new();
        for chunk in alert_ids.chunks(IDS_PER_QUERY) {
            let sql = render(&self.delivery_queries().alerts_by_ids, &[Lit::StrList(chunk)]);
            let rows: Vec<AlertRow> = self.fetch_all("SELECT", &self.qualified("alerts"), &sql).await?;
            out.extend(rows.into_iter().map(Alert::from));
        }
        Ok(out)
    }

    /// Every delivery row of these alerts, oldest first.
    pub async fn deliveries_of(&self, alert_ids: &[&str]) -> Result<Vec<AlertDelivery>, StoreError> {
        let mut out = Vec::new();
        for chunk in alert_ids.chunks(IDS_PER_QUERY) {
            let sql = render(&self.delivery_queries().deliveries_of, &[Lit::StrList(chunk)]);
            let rows: Vec<AlertDelivery> = self.fetch_all("SELECT", &self.qualified("alert_deliveries"), &sql).await?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// `(rule_id, alerts)` whose own mail was first attempted at or after `since`.
    pub async fn deliveries_begun_since(&self, since: UnixMillis) -> Result<Vec<(String, u64)>, StoreError> {
        let sql = render(&self.delivery_queries().begun_since, &[Lit::I64(since.0)]);
        self.fetch_all("SELECT", &self.qualified("alert_deliveries"), &sql).await
    }

    /// The decisions of `tenant` with these event ids (each once), in time order, at most `limit`.
    pub async fn decisions_by_ids(
        &self,
        tenant: &str,
        event_ids: &[&str],
        limit: u64,
    ) -> Result<Vec<AccessDecision>, StoreError> {
        if event_ids.is_empty() {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let ids = &event_ids[..event_ids.len().min(IDS_PER_QUERY)];
        let sql =
            render(&self.delivery_queries().decisions_by_ids, &[Lit::Str(tenant), Lit::StrList(ids), Lit::I64(limit)]);
        let rows: Vec<HistoryRow> = self.fetch_all("SELECT", &self.qualified("decisions"), &sql).await?;
        Ok(rows.into_iter().map(AccessDecision::from).collect())
    }
}
