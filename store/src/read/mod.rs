//! The read side: typed, named queries whose every run returns its rows together with an
//! [`IpeRecord`] of what ran (the SQL exactly as sent, its parameters with their ClickHouse
//! types, server and version, database, row count, `ran_at` and `elapsed_ms` from an
//! injected [`gatelog_model::Clock`]): the record a report prints beside every table.
//!
//! ```no_run
//! # async fn f(store: gatelog_store::Store) -> Result<(), gatelog_store::StoreError> {
//! use gatelog_model::{SystemClock, UnixMillis};
//! use gatelog_store::read::{DecisionFilter, Period};
//! use std::sync::Arc;
//!
//! let reader = store.reader(Arc::new(SystemClock));
//! let march = Period::new(UnixMillis(1_740_787_200_000), UnixMillis(1_743_465_600_000))?;
//!
//! // A small result: all rows at once, with the record.
//! let counts = reader.decision_counts(march).await?;
//! println!("{} rows from {}", counts.ipe.row_count, counts.ipe.sql);
//!
//! // A large one: one row at a time, the record once every row was read.
//! let denies = gatelog_store::read::DecisionFilter::decisions(&[gatelog_model::Decision::Deny]);
//! let mut stream = reader.stream_decisions(march, &denies)?;
//! while let Some(row) = stream.next().await? {
//!     let decision = gatelog_model::AccessDecision::try_from(row)?;
//!     # let _ = decision;
//! }
//! let mut ipe = stream.finish()?;
//! // The population's count against an independent count from `decisions`.
//! let check = reader.reconcile_population(&mut ipe, march, &denies).await?;
//! assert!(check.passed && ipe.reconciled());
//! # Ok(()) }
//! ```
//!
//! Module map:
//! - [`query`]: [`ReadQuery`] (a name, SQL with `{name}` placeholders, typed [`Param`]s bound
//!   client-side with the store's one escaping).
//! - [`catalog`]: [`Catalog`], every read query's SQL per schema profile, the rule that counts
//!   each event (`tenant`, `event_id`) once, as the copy `decisions FINAL` keeps whatever the
//!   copies' times (ARCHITECTURE.md, "Which copy survives"), and [`registered`],
//!   the examples `gatelog sql dump` and the compatibility tests run.
//! - [`rows`]: the typed rows ([`ReadRow`] declares each one's columns and types).
//! - `run`: [`Reader`] ([`Reader::fetch`], [`Reader::stream`] → [`RowStream`]), the settings
//!   every read is sent with, and the record.
//! - `reconcile`: [`Reader::reconcile`] / [`Reader::reconcile_population`], which fill a
//!   [`gatelog_model::Reconciliation`].
//! - [`period`]: [`Period`] and [`DecisionFilter`].
//! - [`coverage`]: completeness and gaps per dataset from the batches of a period.
//! - [`history`]: [`PrincipalHistory`] from the rows of the history query.
//! - [`lookup`]: one event, one principal's facts (the dashboard's
//!   event and principal pages).
//! - [`overview`]: the dashboard's [`Overview`] of a window, from `decisions_by_time`.
//! - [`evidence`]: the queries of the SOC 2 report's criteria (`gatelog report soc2`), one
//!   module per group of criteria.
//!
//! A new read query goes in [`Catalog`] (its SQL, with a row type in [`rows`]) and in
//! [`registered`] (so `gatelog sql dump` prints it and the compatibility tests run and
//! `DESCRIBE` it on 18.16 and 26.9); callers run it with [`Reader::fetch`] or
//! [`Reader::stream`].

pub mod catalog;
pub mod coverage;
pub mod evidence;
pub mod history;
pub mod lookup;
pub mod overview;
pub mod period;
pub mod query;
mod reconcile;
pub use reconcile::PendingReconciliation;
pub mod rows;
mod run;

pub use catalog::{COPY_SKEW_MS, Catalog, POSITION, Registered, registered};
pub use coverage::{Coverage, Gap, coverage, gaps_reconciliation};
pub use history::{Activity, PrincipalHistory, PrincipalProfile};
pub use overview::{Bucket, DatasetHealth, Overview, OverviewRequest, OverviewSource, Ranked, bucket_ms_for};
pub use period::{DecisionFilter, Period};
pub use query::{Param, ReadQuery, Value};
pub use rows::{
    BatchRow, ChainHeadRow, DecisionCount, DecisionRow, EventCount, EventCounts, HistoryRow, LatestArrival, ReadRow,
    StoreCounts,
};
pub use run::{Fetched, Reader, RowStream};

use crate::{Store, StoreError};
use gatelog_model::{Clock, IpeRecord, SystemClock};
use serde::Serialize;
use std::sync::Arc;

/// What the store holds, each event, raw line and batch counted once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreSummary {
    /// Events by dataset and outcome.
    pub decisions: Vec<DecisionCount>,
    pub raw_records: u64,
    pub dead_letters: u64,
    pub batches: u64,
}

impl StoreSummary {
    /// All events, across datasets and outcomes.
    pub fn total_decisions(&self) -> u64 {
        self.decisions.iter().map(|d| d.count).sum()
    }
}

impl Store {
    /// A [`Reader`] of this store, stamping records with `clock`.
    pub fn reader(&self, clock: Arc<dyn Clock>) -> Reader {
        Reader::new(self.clone(), clock)
    }

    /// Events by dataset × outcome, raw records, dead letters and batches, all time
    /// ([`Reader::summary`] without the records).
    pub async fn summary(&self) -> Result<StoreSummary, StoreError> {
        Ok(self.reader(Arc::new(SystemClock)).summary().await?.0)
    }
}

impl Reader {
    /// The events of `period` passing `filter`, all at once (see [`Catalog::decisions`]).
    pub async fn decisions(&self, period: Period, filter: &DecisionFilter) -> Result<Fetched<DecisionRow>, StoreError> {
        self.fetch(&self.catalog().decisions(period, filter)?).await
    }

    /// The events of `period` passing `filter`, one at a time, oldest first.
    pub fn stream_decisions(
        &self,
        period: Period,
        filter: &DecisionFilter,
    ) -> Result<RowStream<DecisionRow>, StoreError> {
        self.stream(self.catalog().decisions(period, filter)?)
    }

    /// Events of `period` by dataset and outcome.
    pub async fn decision_counts(&self, period: Period) -> Result<Fetched<DecisionCount>, StoreError> {
        self.fetch(&self.catalog().decision_counts(period)?).await
    }

    /// Each principal's and client IP's history over `period`, with the record.
    pub async fn principal_history(&self, period: Period) -> Result<(PrincipalHistory, IpeRecord), StoreError> {
        let fetched = self.fetch(&self.catalog().principal_history(period)?).await?;
        Ok((PrincipalHistory::from_rows(&fetched.rows)?, fetched.ipe))
    }

    /// The batches received in `period`, each once (see [`coverage()`] for gaps).
    pub async fn ingest_batches(&self, period: Period) -> Result<Fetched<BatchRow>, StoreError> {
        self.fetch(&self.catalog().ingest_batches(period)?).await
    }

    /// What the store holds, all time, with the records of the two queries behind it.
    pub async fn summary(&self) -> Result<(StoreSummary, Vec<IpeRecord>), StoreError> {
        let counts = self.decision_counts(Period::everything()).await?;
        let other = self.fetch(&self.catalog().store_counts()?).await?;
        let StoreCounts { raw_records, dead_letters, batches } =
            other.rows.first().copied().unwrap_or(StoreCounts { raw_records: 0, dead_letters: 0, batches: 0 });
        let summary = StoreSummary { decisions: counts.rows, raw_records, dead_letters, batches };
        Ok((summary, vec![counts.ipe, other.ipe]))
    }
}
