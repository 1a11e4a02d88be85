//! [`Catalog`]: every read query's SQL for one schema profile and database, and
//! [`registered`], the examples `gatelog sql dump` prints and the compatibility tests run.
//!
//! Counting each event once (the rule every query here follows, and the store's own:
//! ARCHITECTURE.md, "Which copy survives"):
//! - the rows of one `(tenant, event_id)` (the Tail and Logpush copies of one Worker
//!   invocation, a re-delivered batch, rows a merge has not collapsed yet) are one event,
//!   whatever their times;
//! - the copy that counts is the one `decisions FINAL` returns and a merge keeps: `decisions`
//!   has no version column, so within a month partition the copy inserted last, across month
//!   partitions the later month's. A figure therefore does not change when ClickHouse merges;
//! - an event is in a period when the time of that copy is; copies are looked for up to
//!   [`COPY_SKEW_MS`] on either side of the period, so copies that straddle a boundary land
//!   in exactly one of two adjacent periods.
//!
//! The population queries take that copy from ClickHouse itself: `FINAL` over the rows near
//! the period, in a subquery, with the period and the filter applied outside it (to the copy
//! that survived, never to the rows the merge compares). The reconciliation count
//! ([`Catalog::event_count`]) finds it another way: `GROUP BY tenant, event_id` with `argMax`
//! of the row's position ([`POSITION`]: partition, then the part's first block number, then
//! `spool_seq`), so the two agree only if the store keeps the copy the docs say it keeps.

use super::period::{DecisionFilter, MAX_MS, Period};
use super::query::{Param, ReadQuery, Value};
use super::rows::{
    BatchRow, ChainHeadRow, DecisionCount, DecisionRow, EventCount, EventCounts, HistoryRow, LatestArrival, ReadRow,
    StoreCounts,
};
use crate::StoreError;
use crate::profile::SchemaProfile;
use crate::sql::SchemaOptions;
use gatelog_model::{Decision, Source, UnixMillis};

/// How far apart in time two copies of one event may be and still count once at a period's
/// boundary (inside a period they always count once): 1 hour, as `index.dedup_window`'s
/// default. Tail and Logpush copies differ by milliseconds.
pub const COPY_SKEW_MS: i64 = 3_600_000;

pub(crate) const FROM: &str = "{from_ms}";
pub(crate) const TO: &str = "{to_ms}";
pub(crate) const SKEW: &str = "{copy_skew_ms}";

/// Where a row sits, in the order `FINAL` prefers copies (the greatest wins): its month
/// partition, then its part's first block number (parts of one partition hold disjoint
/// block ranges, numbered in insert order, and a merged part has no two copies left), then
/// `spool_seq` for copies inserted together (the writer keeps a group's batches in spool
/// order, and ClickHouse keeps the last of equal keys in an insert). Read from `_part`
/// (`<partition>_<min block>_<max block>_<level>[_<mutation>]`) on every supported server.
pub const POSITION: &str = "(splitByChar('_', _part)[1], toUInt64(splitByChar('_', _part)[2]), spool_seq)";

/// What the outer query of a population needs from the copy that survived, besides the
/// columns it wants.
const PICK_COLUMNS: [&str; 3] = ["tenant", "event_id", "time_ms"];

/// The read queries of one store (profile and database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    profile: SchemaProfile,
    database: String,
}

impl Catalog {
    pub fn new(profile: SchemaProfile, opts: &SchemaOptions) -> Self {
        Catalog { profile, database: opts.database.clone() }
    }

    pub fn profile(&self) -> SchemaProfile {
        self.profile
    }

    pub(crate) fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.database)
    }

    /// `lo <= col < hi` for a time column, `lo` and `hi` being Int64 epoch-millisecond SQL.
    /// Legacy: the `DateTime` column (seconds, for partition and key pruning) and the stored
    /// `<col>_ms`; modern: the `DateTime64(3)` column itself.
    pub(crate) fn range(&self, col: &str, lo: &str, hi: &str) -> String {
        match self.profile {
            // `DateTime` is unsigned: a bound outside 1970…2106 would wrap around.
            SchemaProfile::Legacy => format!(
                "{col} >= toDateTime(intDiv(greatest({lo}, 0), 1000), 'UTC') \
                 AND {col} <= toDateTime(intDiv(least({hi}, {MAX_MS}), 1000), 'UTC') AND {col}_ms >= {lo} AND {col}_ms < {hi}"
            ),
            SchemaProfile::Modern => {
                format!(
                    "{col} >= fromUnixTimestamp64Milli({lo}, 'UTC') AND {col} < fromUnixTimestamp64Milli({hi}, 'UTC')"
                )
            }
        }
    }

    /// `decisions` rows near the period (`COPY_SKEW_MS` either side).
    pub(crate) fn near_period(&self) -> String {
        self.range("time", &format!("({FROM} - {SKEW})"), &format!("({TO} + {SKEW})"))
    }

    /// One row per event near the period: the copy `FINAL` keeps, with `columns` (and what
    /// the outer query needs). Callers keep the events in the period with [`in_period`],
    /// outside this subquery: a condition inside it also decides which parts `FINAL` reads,
    /// and 18.16 prunes a month partition by it, hiding that month's copy from the merge
    /// (the earlier month's copy would then count in its own period too).
    pub(crate) fn events(&self, columns: &[&str]) -> String {
        let mut cols: Vec<&str> = columns.to_vec();
        for c in PICK_COLUMNS {
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
        format!(
            "    SELECT {}\n    FROM {} FINAL\n    WHERE {}",
            cols.join(", "),
            self.table("decisions"),
            self.near_period()
        )
    }

    pub(crate) fn period_params(period: Period) -> Vec<Param> {
        let mut params = period.params().to_vec();
        params.push(Param::new("copy_skew_ms", Value::Int64(COPY_SKEW_MS)));
        params
    }

    /// The events of `period` that pass `filter`: every column, oldest first (then by
    /// tenant and `event_id`). Stream it ([`super::Reader::stream`]) when it may be large.
    pub fn decisions(&self, period: Period, filter: &DecisionFilter) -> Result<ReadQuery<DecisionRow>, StoreError> {
        let cols: Vec<&str> = DecisionRow::COLUMNS.iter().map(|c| c.0).collect();
        let (condition, mut params) = filter.condition();
        let mut keep = in_period();
        if !filter.is_empty() {
            keep = format!("{keep} AND {condition}");
        }
        let sql = format!(
            "SELECT {}\nFROM\n(\n{}\n)\nWHERE {keep}\nORDER BY time_ms, tenant, event_id",
            cols.join(", "),
            self.events(&cols)
        );
        params.extend(Self::period_params(period));
        ReadQuery::new("read.decisions", self.table("decisions"), sql, params)
    }

    /// Events of `period` by dataset and outcome, sorted by both.
    pub fn decision_counts(&self, period: Period) -> Result<ReadQuery<DecisionCount>, StoreError> {
        let sql = format!(
            "SELECT dataset, decision, count() AS count\nFROM\n(\n{}\n)\nWHERE {}\nGROUP BY dataset, decision\nORDER BY dataset, decision",
            self.events(&["dataset", "decision"]),
            in_period()
        );
        ReadQuery::new("read.decision_counts", self.table("decisions"), sql, Self::period_params(period))
    }

    /// Each principal's and each client IP's history over `period` ([`HistoryRow`]): what
    /// detection's baselines and a usage review start from. Anonymous events (empty
    /// principal) count only for their IP.
    pub fn principal_history(&self, period: Period) -> Result<ReadQuery<HistoryRow>, StoreError> {
        let facts = [
            "('principal', principal, 'events', '')",
            "('principal', principal, 'country', country)",
            "('principal', principal, 'asn', toString(asn))",
            "('principal', principal, 'hour_of_week', toString((toDayOfWeek(time) - 1) * 24 + toHour(time)))",
            "('principal', principal, 'resource', resource)",
            "('client_ip', client_ip, 'events', '')",
        ];
        let sql = format!(
            "SELECT tupleElement(fact, 1) AS subject, tupleElement(fact, 2) AS key, tupleElement(fact, 3) AS dimension, \
             tupleElement(fact, 4) AS value,\n    \
             count() AS events, countIf(decision = 'deny') AS denies, min(time_ms) AS first_ms, max(time_ms) AS last_ms\n\
             FROM\n(\n{}\n)\nARRAY JOIN\n[\n    {}\n] AS fact\nWHERE {} AND key != ''\n\
             GROUP BY subject, key, dimension, value\nORDER BY subject, key, dimension, value",
            self.events(&["time", "principal", "client_ip", "country", "asn", "resource", "decision"]),
            facts.join(",\n    "),
            in_period()
        );
        ReadQuery::new("read.principal_history", self.table("decisions"), sql, Self::period_params(period))
    }

    /// The batches received in `period` (by `received_at`), each once, oldest first: the
    /// completeness evidence ([`super::coverage`]).
    pub fn ingest_batches(&self, period: Period) -> Result<ReadQuery<BatchRow>, StoreError> {
        let cols: Vec<&str> = BatchRow::COLUMNS.iter().map(|c| c.0).collect();
        let sql = format!(
            "SELECT {}\nFROM {}\nWHERE {}\nORDER BY received_at_ms, batch_id, spool_seq DESC\nLIMIT 1 BY batch_id",
            cols.join(", "),
            self.table("ingest_batches"),
            self.range("received_at", FROM, TO)
        );
        ReadQuery::new("read.ingest_batches", self.table("ingest_batches"), sql, period.params().to_vec())
    }

    /// The events of `period` passing `filter`, counted without `FINAL`: one group per
    /// `(tenant, event_id)`, whose copy at the greatest [`POSITION`] (`argMax`) decides
    /// whether it is in. The reconciliation's independent count.
    pub fn event_count(&self, period: Period, filter: &DecisionFilter) -> Result<ReadQuery<EventCount>, StoreError> {
        let (condition, mut params) = filter.condition();
        let mut member = in_period();
        if !filter.is_empty() {
            member = format!("{member} AND {condition}");
        }
        let sql = format!(
            "SELECT toUInt64(countIf(in_population)) AS events\nFROM\n(\n    \
             SELECT argMax({member}, {POSITION}) AS in_population\n    FROM {}\n    WHERE {}\n    \
             GROUP BY tenant, event_id\n)",
            self.table("decisions"),
            self.near_period()
        );
        params.extend(Self::period_params(period));
        ReadQuery::new("read.event_count", self.table("decisions"), sql, params)
    }

    /// When the newest stored batch of any dataset but `exclude` arrived (0 when none): the
    /// default "as of" of a report, so the same data gives the same report whenever it is
    /// made (gatelog's own batches, canaries and the audit trail, keep arriving: exclude them).
    pub fn latest_arrival(&self, exclude: &[String]) -> Result<ReadQuery<LatestArrival>, StoreError> {
        // `received_at_ms` is a column on 18.16 and an alias of the DateTime64 on newer servers.
        let sql = format!(
            "SELECT toInt64(max(received_at_ms)) AS received_at_ms\nFROM {}\nWHERE NOT has({{exclude_datasets}}, dataset)",
            self.table("ingest_batches")
        );
        let params = vec![Param::new("exclude_datasets", Value::Strs(exclude.to_vec()))];
        ReadQuery::new("read.latest_arrival", self.table("ingest_batches"), sql, params)
    }

    /// [`Catalog::event_count`] of several items in one pass over `decisions`: `counts[i]` is
    /// the number of events of `period` passing `items[i]`'s filter and condition (each item's
    /// parameters prefixed `f<i>_`). One grouping of every event near the period, however many figures a
    /// report reconciles.
    pub fn event_counts(
        &self,
        period: Period,
        items: &[super::PendingReconciliation],
    ) -> Result<ReadQuery<EventCounts>, StoreError> {
        if items.is_empty() {
            return Err(StoreError::InvalidQuery { name: "read.event_counts".into(), detail: "no filter".into() });
        }
        let mut params = Self::period_params(period);
        let mut members = Vec::new();
        let mut counts = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let (mut condition, p) = item.filter.condition_named(&format!("f{i}_"));
            params.extend(p);
            if !item.condition.is_empty() {
                // The item's own parameters, renamed like the filter's so items never clash.
                let mut own = item.condition.clone();
                for param in &item.params {
                    let renamed = format!("f{i}_x_{}", param.name);
                    own = own.replace(&format!("{{{}}}", param.name), &format!("{{{renamed}}}"));
                    params.push(Param::new(renamed, param.value.clone()));
                }
                condition = format!("{condition} AND ({own})");
            }
            members.push(format!("argMax({} AND {condition}, {POSITION}) AS m{i}", in_period()));
            counts.push(format!("toUInt64(countIf(m{i}))"));
        }
        let sql = format!(
            "SELECT [{}] AS counts\nFROM\n(\n    SELECT\n        {}\n    FROM {}\n    WHERE {}\n    \
             GROUP BY tenant, event_id\n)",
            counts.join(", "),
            members.join(",\n        "),
            self.table("decisions"),
            self.near_period()
        );
        ReadQuery::new("read.event_counts", self.table("decisions"), sql, params)
    }

    /// The hash chain's head as of `at_ms`: the last link among the batches that arrived by
    /// then (none before the first link). What a report's bundle names, so `gatelog verify
    /// --store` can later check the batches the report saw.
    pub fn chain_head_at(&self, at_ms: i64) -> Result<ReadQuery<ChainHeadRow>, StoreError> {
        let sql = format!(
            "SELECT chain_seq AS links, batch_id AS last_batch_id, chain_hash AS hash\nFROM {}\n\
             WHERE chain_seq > 0 AND received_at_ms <= {{at_ms}}\nORDER BY chain_seq DESC\nLIMIT 1",
            self.table("ingest_batches")
        );
        ReadQuery::new(
            "read.chain_head_at",
            self.table("ingest_batches"),
            sql,
            vec![Param::new("at_ms", Value::Int64(at_ms))],
        )
    }

    /// Events with their original line kept (`raw_records` rows once per dataset and line
    /// hash, plus the events `raw_batches` bodies name), dead letters, batches (once per id).
    /// Each scalar subquery is wrapped in `ifNull(…, 0)`: ClickHouse 26.9 types a scalar
    /// subquery `Nullable`, which RowBinary would send with a null flag the row cannot decode
    /// (an aggregate always gives one row, so the 0 is never used).
    pub fn store_counts(&self) -> Result<ReadQuery<StoreCounts>, StoreError> {
        let sql = format!(
            "SELECT\n    ifNull((SELECT uniqExact(dataset, sha256) FROM {}), 0)\n        \
             + ifNull((SELECT sum(length(event_ids)) FROM {} FINAL), 0) AS raw_records,\n    \
             ifNull((SELECT count() FROM {}), 0) AS dead_letters,\n    \
             ifNull((SELECT uniqExact(batch_id) FROM {}), 0) AS batches",
            self.table("raw_records"),
            self.table("raw_batches"),
            self.table("dead_letters"),
            self.table("ingest_batches")
        );
        ReadQuery::new("read.store_counts", self.table("raw_records"), sql, Vec::new())
    }
}

/// `time_ms` of the counted copy within the period (over the derived table of events).
pub(crate) fn in_period() -> String {
    format!("time_ms >= {FROM} AND time_ms < {TO}")
}

/// A read query as registered: the name `gatelog sql dump` prints, the template, the SQL
/// bound with representative values, and the columns it must return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub name: String,
    pub template: String,
    pub sql: String,
    pub columns: &'static [(&'static str, &'static str)],
}

pub(crate) fn register<R: ReadRow>(out: &mut Vec<Registered>, suffix: &str, q: Result<ReadQuery<R>, StoreError>) {
    // The examples are constants: a failure to bind them is a bug the unit tests catch.
    match q {
        Ok(q) => out.push(Registered {
            name: format!("{}{suffix}", q.name()),
            template: q.template().to_owned(),
            sql: q.sql().to_owned(),
            columns: R::COLUMNS,
        }),
        Err(e) => panic!("a registered read query does not bind: {e}"),
    }
}

/// Every read query, with and without its optional parts, bound with representative values
/// (March 2025; a filter using every list): for `gatelog sql dump` and the compatibility tests.
pub fn registered(profile: SchemaProfile, opts: &SchemaOptions) -> Vec<Registered> {
    let c = Catalog::new(profile, opts);
    let march = Period::new(UnixMillis(1_740_787_200_000), UnixMillis(1_743_465_600_000))
        .unwrap_or_else(|_| Period::everything());
    let filter = DecisionFilter {
        tenants: vec!["default".into()],
        datasets: vec!["http_requests".into(), "access_requests".into()],
        decisions: vec![Decision::Deny, Decision::Challenge],
        sources: vec![Source::Logpush],
        principals: vec!["alice@example.com".into()],
        roles_any: vec!["admin".into()],
        exclude_datasets: vec!["gatelog_canary".into()],
    };
    let none = DecisionFilter::default();
    let mut out = Vec::new();
    register(&mut out, "", c.decisions(march, &none));
    register(&mut out, ".filtered", c.decisions(march, &filter));
    register(&mut out, "", c.decision_counts(march));
    register(&mut out, "", c.principal_history(march));
    register(&mut out, "", c.ingest_batches(march));
    register(&mut out, "", c.event_count(march, &none));
    register(&mut out, ".filtered", c.event_count(march, &filter));
    let pending = [
        super::PendingReconciliation::new("all", "all", 0, none.clone()),
        super::PendingReconciliation::new("filtered", "filtered", 0, filter.clone())
            .with_condition("status = {status}", vec![Param::new("status", Value::UInt64(401))]),
    ];
    register(&mut out, "", c.event_counts(march, &pending));
    register(&mut out, "", c.store_counts());
    register(&mut out, "", c.chain_head_at(1_743_465_600_000));
    register(&mut out, "", c.latest_arrival(&["gatelog".to_owned(), "gatelog_canary".to_owned()]));
    super::evidence::register(&c, march, &mut out);
    super::overview::register(&c, march, &mut out);
    super::lookup::register_lookups(&c, march, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SchemaOptions {
        SchemaOptions { database: "gl".into(), ..SchemaOptions::default() }
    }

    #[test]
    fn every_registered_query_binds_on_both_profiles() {
        for profile in [SchemaProfile::Legacy, SchemaProfile::Modern] {
            let all = registered(profile, &opts());
            assert!(all.len() >= 8, "{}", all.len());
            for r in &all {
                assert!(r.name.starts_with("read."), "{}", r.name);
                assert!(!r.sql.contains('{') && !r.sql.contains('}'), "{}: {}", r.name, r.sql);
                assert!(r.sql.contains("gl."), "{}", r.name);
            }
        }
    }

    #[test]
    fn legacy_prunes_on_seconds_and_compares_milliseconds() {
        let c = Catalog::new(SchemaProfile::Legacy, &opts());
        let q = c.decision_counts(Period::new(UnixMillis(1_500), UnixMillis(2_500)).unwrap()).unwrap();
        let sql = q.sql();
        assert!(
            sql.contains("time >= toDateTime(intDiv(greatest((toInt64(1500) - toInt64(3600000)), 0), 1000), 'UTC')"),
            "{sql}"
        );
        assert!(
            sql.contains(
                "time <= toDateTime(intDiv(least((toInt64(2500) + toInt64(3600000)), 4102444800000), 1000), 'UTC')"
            ),
            "{sql}"
        );
        assert!(sql.contains("time_ms < (toInt64(2500) + toInt64(3600000))"), "{sql}");
        assert!(sql.contains("WHERE time_ms >= toInt64(1500) AND time_ms < toInt64(2500)"), "{sql}");
        assert!(sql.contains("FROM gl.decisions FINAL\n    WHERE time >= "), "{sql}");
        assert!(!sql.contains("DateTime64") && !sql.contains("fromUnixTimestamp64Milli"));
        let modern = Catalog::new(SchemaProfile::Modern, &opts()).decision_counts(Period::everything()).unwrap();
        assert!(modern.sql().contains("time >= fromUnixTimestamp64Milli((toInt64(0) - toInt64(3600000)), 'UTC')"));
    }

    #[test]
    fn the_population_and_its_count_pick_the_same_copy_differently() {
        let c = Catalog::new(SchemaProfile::Legacy, &opts());
        let f = DecisionFilter::decisions(&[Decision::Deny]);
        let population = c.decisions(Period::everything(), &f).unwrap();
        let sql = population.sql();
        assert!(sql.contains("FROM gl.decisions FINAL\n    WHERE time >= "), "{sql}");
        // The period and the filter apply to the copy that survived, outside the subquery.
        assert!(sql.contains(")\nWHERE time_ms >= toInt64(0) AND "), "{sql}");
        assert!(sql.contains("AND has(['deny'], decision)\nORDER BY time_ms, tenant, event_id"), "{sql}");
        let count = c.event_count(Period::everything(), &f).unwrap();
        let sql = count.sql();
        assert!(sql.contains(&format!(
            "argMax(time_ms >= toInt64(0) AND time_ms < toInt64({MAX_MS}) AND has(['deny'], decision), {POSITION})"
        )));
        assert!(sql.contains("GROUP BY tenant, event_id") && !sql.contains("FINAL"), "{sql}");
        let names: Vec<String> = count.ipe_parameters().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["copy_skew_ms", "decisions", "from_ms", "to_ms"]);
        let tenants = DecisionFilter { tenants: vec!["acme".into()], ..DecisionFilter::default() };
        assert!(
            c.decisions(Period::everything(), &tenants).unwrap().sql().contains("AND has(['acme'], tenant)\nORDER BY")
        );
    }
}
