//! Reconciliation: a figure a report shows (a population's row count, a breakdown's total)
//! against the same figure counted independently from `decisions`
//! ([`super::Catalog::event_count`]: one group per `(tenant, event_id)`, `argMax` of the
//! copy's position in the table, where the populations take the copy `FINAL` keeps).

use super::period::{DecisionFilter, Period};
use super::run::Reader;
use crate::StoreError;
use gatelog_model::{IpeRecord, Reconciliation};

/// A figure waiting to be reconciled by [`Reader::reconcile_many`]: what it is, its value, and
/// the events whose independent count it must equal: those passing `filter` and, when not
/// empty, `condition` (SQL over one `decisions` row, its `{placeholders}` bound from `params`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReconciliation {
    pub name: String,
    pub what: String,
    pub figure: u64,
    pub filter: DecisionFilter,
    pub condition: String,
    pub params: Vec<super::query::Param>,
}

impl PendingReconciliation {
    /// `figure` against the count of the events passing `filter`.
    pub fn new(name: &str, what: &str, figure: u64, filter: DecisionFilter) -> Self {
        PendingReconciliation {
            name: name.to_owned(),
            what: what.to_owned(),
            figure,
            filter,
            condition: String::new(),
            params: Vec::new(),
        }
    }

    /// Only the events that also pass `condition` (with its own parameters).
    pub fn with_condition(mut self, condition: &str, params: Vec<super::query::Param>) -> Self {
        self.condition = condition.to_owned();
        self.params = params;
        self
    }
}

impl Reader {
    /// Counts the events of `period` passing `filter` independently, compares `figure` with
    /// it, and appends the result (named `name`) to `ipe.reconciliations`. A mismatch is a
    /// failed reconciliation, not an error; errors are the count's query failing.
    pub async fn reconcile(
        &self,
        ipe: &mut IpeRecord,
        name: &str,
        what: &str,
        figure: u64,
        period: Period,
        filter: &DecisionFilter,
    ) -> Result<Reconciliation, StoreError> {
        let counted = self.fetch(&self.catalog().event_count(period, filter)?).await?;
        let actual = counted.rows.first().map_or(0, |r| r.events);
        let scope = if filter.is_empty() { String::new() } else { " passing the same filter".to_owned() };
        let r = Reconciliation {
            name: name.to_owned(),
            description: format!(
                "{what} against the events of {period}{scope} counted from {}.decisions once per \
                 (tenant, event_id) without FINAL (GROUP BY tenant, event_id; the copy a merge keeps \
                 by argMax of its month partition, part and spool position)",
                counted.ipe.database
            ),
            expected: figure.to_string(),
            actual: actual.to_string(),
            sql: Some(counted.ipe.sql),
            passed: figure == actual,
        };
        if !r.passed {
            tracing::warn!(reconciliation = name, expected = figure, actual, "reconciliation failed");
        }
        ipe.reconciliations.push(r.clone());
        Ok(r)
    }

    /// Many [`Reader::reconcile`]s with one query ([`super::Catalog::event_counts`]): each
    /// item's figure against its filter's count; returns the results in `items`' order.
    pub async fn reconcile_many(
        &self,
        period: Period,
        items: &[PendingReconciliation],
    ) -> Result<Vec<Reconciliation>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        // Items counting the same events share one element of the query.
        let mut unique: Vec<PendingReconciliation> = Vec::new();
        let mut slot = Vec::with_capacity(items.len());
        for item in items {
            let same = |u: &PendingReconciliation| {
                u.filter == item.filter
                    && u.condition == item.condition
                    && format!("{:?}", u.params) == format!("{:?}", item.params)
            };
            match unique.iter().position(same) {
                Some(i) => slot.push(i),
                None => {
                    slot.push(unique.len());
                    unique.push(item.clone());
                }
            }
        }
        let counted = self.fetch(&self.catalog().event_counts(period, &unique)?).await?;
        let counts = counted.rows.first().map(|r| r.counts.clone()).unwrap_or_default();
        let mut out = Vec::with_capacity(items.len());
        for (item, i) in items.iter().zip(slot) {
            let actual = counts.get(i).copied().unwrap_or(0);
            let scope = if item.filter.is_empty() { String::new() } else { " passing the same filter".to_owned() };
            let r = Reconciliation {
                name: item.name.clone(),
                description: format!(
                    "{} against the events of {period}{scope} counted from {}.decisions once per \
                     (tenant, event_id) without FINAL (GROUP BY tenant, event_id; the copy a merge keeps \
                     by argMax of its month partition, part and spool position): element {} of `counts`",
                    item.what,
                    counted.ipe.database,
                    i + 1
                ),
                expected: item.figure.to_string(),
                actual: actual.to_string(),
                sql: Some(counted.ipe.sql.clone()),
                passed: item.figure == actual,
            };
            if !r.passed {
                tracing::warn!(reconciliation = %item.name, expected = item.figure, actual, "reconciliation failed");
            }
            out.push(r);
        }
        Ok(out)
    }

    /// [`Reader::reconcile`] of a population's row count (`population_count_matches_decisions`):
    /// `ipe` is the record of [`super::Catalog::decisions`] over `period` and `filter`.
    pub async fn reconcile_population(
        &self,
        ipe: &mut IpeRecord,
        period: Period,
        filter: &DecisionFilter,
    ) -> Result<Reconciliation, StoreError> {
        let rows = ipe.row_count;
        self.reconcile(ipe, "population_count_matches_decisions", "the population's rows", rows, period, filter).await
    }
}
