//! Retention in ClickHouse: [`Store::expire`] drops the month partitions of `decisions`
//! (and its companion `decisions_by_time`),
//! `raw_records`, `dead_letters`, `access_log` and `raw_batches` (by the month a body was
//! received) that lie wholly before `now - retention`, on
//! both schema profiles (`ALTER TABLE … DROP PARTITION`, which 18.16 and 26.9 run alike); the modern
//! profile also has a row TTL of the retention (set by [`Store::migrate`]), so there rows
//! go at the day. [`run_retention`] does it once at start and then every
//! [`RETENTION_INTERVAL`] while `gatelog serve` runs.
//!
//! Retention keeps *at least* the retention: a month is dropped once its last day is older
//! than it, so on the legacy profile ClickHouse holds up to a month more. `ingest_batches`
//! (the ledger of arrivals, and what makes a re-sent expired batch a duplicate rather than
//! new rows) and detection's tables (`findings`, `alerts`, `alert_events`, `detector_runs`:
//! monitoring evidence) are never dropped by gatelog.

use crate::sql::{Lit, drop_partition, expired_months, render, retained_tables, storage_table};
use crate::store::with_retries;
use crate::{Store, StoreError};
use gatelog_model::{Clock, UnixMillis};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How often `gatelog serve` looks for expired months (they expire a month at a time).
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// One month partition dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedPartition {
    /// The storage table (`<table>_local` in cluster mode).
    pub table: String,
    /// `YYYYMM`, the partition id.
    pub month: u32,
}

/// What [`Store::expire`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub dropped: Vec<DroppedPartition>,
}

/// The instant before which data is expired: `now - days`.
pub fn cutoff(now: UnixMillis, days: u32) -> UnixMillis {
    UnixMillis(now.0.saturating_sub(i64::from(days) * 86_400_000))
}

impl Store {
    /// Drops every month partition of the retained tables that lies wholly before
    /// `before` (see the module docs). Each drop is retried per the retry policy.
    pub async fn expire(&self, before: UnixMillis) -> Result<RetentionReport, StoreError> {
        let opts = &self.inner.options;
        let mut report = RetentionReport::default();
        let seconds = before.0.div_euclid(1000);
        for def in retained_tables() {
            let sql = render(&expired_months(def, opts), &[Lit::I64(seconds)]);
            let table = self.qualified(def.name);
            let months: Vec<u32> =
                with_retries(&self.inner.config, "retention", || self.fetch_all("SELECT", &table, &sql)).await?;
            let local = storage_table(opts, def.name);
            let qualified = self.qualified(&local);
            for month in months {
                let drop = drop_partition(def, opts, month);
                with_retries(&self.inner.config, "retention", || {
                    self.execute("ALTER TABLE DROP PARTITION", &qualified, &drop)
                })
                .await?;
                tracing::info!(table = %local, month, "retention: dropped an expired month");
                report.dropped.push(DroppedPartition { table: local.clone(), month });
            }
        }
        Ok(report)
    }
}

/// Runs [`Store::expire`] for `days` of retention now and every [`RETENTION_INTERVAL`] until
/// `shutdown` resolves. A failure is logged and tried again at the next round: retention is
/// housekeeping, and nothing else waits for it.
pub async fn run_retention(store: Store, days: u32, clock: Arc<dyn Clock>, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let before = cutoff(clock.now(), days);
        match store.expire(before).await {
            Ok(report) if !report.dropped.is_empty() => {
                tracing::info!(
                    partitions = report.dropped.len(),
                    retention_days = days,
                    "retention: expired months dropped"
                );
            }
            Ok(_) => tracing::debug!(retention_days = days, "retention: nothing expired"),
            Err(e) => tracing::warn!(error = %e, "retention: cannot drop expired months; trying again in an hour"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(RETENTION_INTERVAL) => {}
        }
    }
}
