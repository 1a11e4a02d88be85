//! Reads of one thing rather than a population: an event by its id ([`Reader::event`]; its
//! original line is [`crate::Store::raw_line`]'s), and what a principal did over a period ([`Reader::principal_facts`]).
//! The dashboard's event and principal pages are built on them; each follows the
//! catalogue's rule that an event counts once, as the copy `decisions FINAL` keeps.

use super::catalog::{Catalog, in_period, register};
use super::period::Period;
use super::query::{Param, ReadQuery, Value};
use super::rows::{DecisionRow, HistoryRow, ReadRow};
use super::{Fetched, Reader, Registered};
use crate::StoreError;
use gatelog_model::UnixMillis;
use serde::{Deserialize, Serialize};

/// The most copies of one event id a lookup returns (one per tenant holding it).
pub const MAX_EVENT_COPIES: u64 = 20;

/// The newest event time stored (0 when nothing is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct NewestRow {
    pub newest_ms: i64,
}

impl ReadRow for NewestRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[("newest_ms", "Int64")];
}

impl Catalog {
    /// Event `event_id`: the copy `decisions FINAL` keeps, per tenant holding the id.
    pub fn event(&self, event_id: &str) -> Result<ReadQuery<DecisionRow>, StoreError> {
        let cols: Vec<&str> = DecisionRow::COLUMNS.iter().map(|c| c.0).collect();
        let sql = format!(
            "SELECT {}\nFROM {} FINAL\nWHERE event_id = {{event_id}}\nORDER BY tenant\nLIMIT {MAX_EVENT_COPIES}",
            cols.join(", "),
            self.table("decisions")
        );
        let params = vec![Param::new("event_id", Value::Str(event_id.to_owned()))];
        ReadQuery::new("read.event", self.table("decisions"), sql, params)
    }

    /// The time of the newest stored event outside `exclude_datasets` (to point a page whose
    /// window is empty at where the data is).
    pub fn newest_event(&self, exclude_datasets: &[String]) -> Result<ReadQuery<NewestRow>, StoreError> {
        let sql = format!(
            "SELECT toInt64(ifNull(max(time_ms), 0)) AS newest_ms\nFROM {}\nWHERE NOT has({{exclude_datasets}}, dataset)",
            self.table("decisions_by_time")
        );
        let params = vec![Param::new("exclude_datasets", Value::Strs(exclude_datasets.to_vec()))];
        ReadQuery::new("read.newest_event", self.table("decisions_by_time"), sql, params)
    }

    /// What `principal` did in `period`, one row per dimension and value ([`HistoryRow`],
    /// subject `principal`): `country`, `asn`, `role` (each role the decisions carried),
    /// `dataset`, `resource` and `client_ip`, each with its events, denials and first and
    /// last time.
    pub fn principal_facts(&self, period: Period, principal: &str) -> Result<ReadQuery<HistoryRow>, StoreError> {
        let facts = [
            "('country', country)",
            "('asn', toString(asn))",
            "('dataset', toString(dataset))",
            "('resource', resource)",
            "('client_ip', client_ip)",
        ];
        let sql = format!(
            "SELECT 'principal' AS subject, principal AS key, tupleElement(fact, 1) AS dimension, \
             tupleElement(fact, 2) AS value,\n    \
             count() AS events, countIf(decision = 'deny') AS denies, min(time_ms) AS first_ms, max(time_ms) AS last_ms\n\
             FROM\n(\n{}\n)\nARRAY JOIN arrayConcat([\n    {}\n], arrayMap(r -> ('role', r), roles)) AS fact\n\
             WHERE {} AND principal = {{principal}}\n\
             GROUP BY subject, key, dimension, value\nORDER BY dimension, events DESC, value",
            self.events(&["principal", "country", "asn", "dataset", "resource", "client_ip", "roles", "decision"]),
            facts.join(",\n    "),
            in_period()
        );
        let mut params = Catalog::period_params(period);
        params.push(Param::new("principal", Value::Str(principal.to_owned())));
        ReadQuery::new("read.principal_facts", self.table("decisions"), sql, params)
    }
}

/// The lookups, for [`super::registered`].
pub(crate) fn register_lookups(c: &Catalog, period: Period, out: &mut Vec<Registered>) {
    register(out, "", c.event("0f3c9a2e4b1d7a65"));
    register(out, "", c.principal_facts(period, "alice@example.com"));
    register(out, "", c.newest_event(&["gatelog".to_owned(), "gatelog_canary".to_owned()]));
}

impl Reader {
    /// Event `event_id`: the copy per tenant `FINAL` keeps (none when no tenant holds it).
    /// Its original line is [`crate::Store::raw_line`]'s.
    pub async fn event(&self, event_id: &str) -> Result<Vec<DecisionRow>, StoreError> {
        Ok(self.fetch(&self.catalog().event(event_id)?).await?.rows)
    }

    /// The time of the newest stored event outside `exclude_datasets`, if any.
    pub async fn newest_event(&self, exclude_datasets: &[String]) -> Result<Option<UnixMillis>, StoreError> {
        let rows = self.fetch(&self.catalog().newest_event(exclude_datasets)?).await?.rows;
        Ok(rows.first().map(|r| r.newest_ms).filter(|ms| *ms > 0).map(UnixMillis))
    }

    /// What `principal` did in `period` ([`Catalog::principal_facts`]).
    pub async fn principal_facts(&self, period: Period, principal: &str) -> Result<Fetched<HistoryRow>, StoreError> {
        self.fetch(&self.catalog().principal_facts(period, principal)?).await
    }
}
