//! The dashboard's overview of a window: decisions over time by outcome, the top principals,
//! denied resources and denied client IPs, and the health of each dataset's ingest
//! ([`Reader::overview`] → [`Overview`]).
//!
//! The queries read `decisions_by_time` (migration 16), the time-ordered narrow companion of
//! `decisions` a materialized view fills on every insert, so a window reads only its own
//! granules (±[`COPY_SKEW_MS`](super::COPY_SKEW_MS)) rather than every row of its month partitions.
//!
//! Each event counts once, as the rest of the read side counts it (`catalog`'s module docs):
//! the rows of one `(tenant, event_id)` near the window are grouped, and the copy that counts is
//! the one of the latest month partition, then the latest arrival (`received_at`): the copy
//! `decisions FINAL` keeps when batches are stored in the order they arrive, as the writer
//! stores them (copies that arrived in the same millisecond and month: either). The event is
//! in the window, a bucket, a dataset when that copy is. Events are grouped on
//! `cityHash64(tenant, event_id)` (see `Catalog::overview_events`: the speed that buys, and the
//! odds of a collision). The ingest lag is over the rows stored for the window: each copy is
//! a delivery of its own.
//!
//! Speed (`./x bench-overview`, 10M decisions over 30 days, 18.16 on the 2-core machine,
//! quiet): the last day in 239 ms median, 259 ms p95 (20 runs; 257 / 274 ms with a build
//! running beside it), the last 7 days in 1.8 s. Reading the window is cheap; the cost is the exact per-event
//! grouping, done once for the series and the top principals together
//! ([`Catalog::overview_counts`]; as two queries each grouping every event it was 301 ms
//! median, 376 ms p95 in the same conditions), and once more for the denied rows only. It
//! grows with the window: long windows would need a rollup of closed days (not built).
//!
//! gatelog's own datasets ([`INTERNAL_DATASETS`]: the audit trail and the canaries, which the
//! SOC 2 report also leaves out of its populations) are left out of the series and the top
//! lists by default ([`OverviewRequest::exclude_datasets`]); they keep their row in
//! [`Overview::datasets`], marked [`DatasetHealth::internal`], since their arrivals show
//! that gatelog itself is running.

use super::coverage::coverage;
use super::period::Period;
use super::query::{Param, ReadQuery, Value};
use super::rows::ReadRow;
use super::{Catalog, Reader};
use crate::StoreError;
use gatelog_model::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// gatelog's own datasets: its audit trail and its canaries.
pub const INTERNAL_DATASETS: [&str; 2] =
    [gatelog_model::decision::AUDIT_DATASET, gatelog_model::canary::CANARY_DATASET];

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The bucket width for a window: 5 minutes up to 6 hours, 1 hour up to 7 days, 1 day beyond.
/// Buckets are aligned on multiples of the width since the epoch (UTC midnight for days).
pub fn bucket_ms_for(period: Period) -> i64 {
    match period.to().0 - period.from().0 {
        w if w <= 6 * HOUR_MS => 5 * MINUTE_MS,
        w if w <= 7 * DAY_MS => HOUR_MS,
        _ => DAY_MS,
    }
}

/// What an overview shows besides its window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverviewRequest {
    /// Only these tenants' events (all when empty).
    pub tenants: Vec<String>,
    /// Only these principals' events (all when empty): a principal's own overview.
    pub principals: Vec<String>,
    /// How many entries each top list has.
    pub top: u64,
    /// Datasets left out of the series and the top lists (default: [`INTERNAL_DATASETS`]).
    pub exclude_datasets: Vec<String>,
    /// A silence between two batches of a dataset longer than this is a gap.
    #[serde(with = "humantime_serde")]
    pub max_silence: Duration,
}

impl Default for OverviewRequest {
    fn default() -> Self {
        OverviewRequest {
            tenants: Vec::new(),
            principals: Vec::new(),
            top: 10,
            exclude_datasets: INTERNAL_DATASETS.iter().map(|d| (*d).to_owned()).collect(),
            max_silence: Duration::from_secs(15 * 60),
        }
    }
}

/// The overview of `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overview {
    pub from: UnixMillis,
    pub to: UnixMillis,
    /// The width of each bucket of `series` ([`bucket_ms_for`]).
    pub bucket_ms: i64,
    /// Every bucket that overlaps the window, oldest first, empty ones included.
    pub series: Vec<Bucket>,
    /// Principals by events (anonymous events left out), with their denials.
    pub top_principals: Vec<Ranked>,
    /// Resources by denied events.
    pub top_denied_resources: Vec<Ranked>,
    /// Client IPs by denied events.
    pub top_denied_ips: Vec<Ranked>,
    /// Per dataset (sorted by name): events and ingest health.
    pub datasets: Vec<DatasetHealth>,
}

/// Events per outcome whose time is in `[start, start + bucket_ms)` (and in the window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub start: UnixMillis,
    pub allow: u64,
    pub deny: u64,
    pub challenge: u64,
    pub log: u64,
    pub error: u64,
}

/// An entry of a top list: events, and how many of them were denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ranked {
    pub key: String,
    pub count: u64,
    pub denied: u64,
}

/// One dataset in the window: its events (from `decisions_by_time`) and its batches (from
/// `ingest_batches`, through [`coverage()`], as the SOC 2 report's CC7.2 reads them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DatasetHealth {
    pub dataset: String,
    /// One of [`INTERNAL_DATASETS`].
    pub internal: bool,
    /// Events whose time is in the window.
    pub events: u64,
    /// The newest of those events' times.
    pub newest_event: Option<UnixMillis>,
    /// The newest arrival: the last batch received in the window, else the latest
    /// `received_at` of the rows stored for the window.
    pub newest_arrival: Option<UnixMillis>,
    /// Ingest lag (arrival − event time) of the rows stored for the window (every copy):
    /// median, 95th percentile, max.
    pub lag_p50_ms: i64,
    pub lag_p95_ms: i64,
    pub lag_max_ms: i64,
    /// Batches received in the window, and the dead letters they held.
    pub batches: u64,
    pub dead_letters: u64,
    /// Silences longer than [`OverviewRequest::max_silence`] between those batches.
    pub gaps: u64,
}

/// One row of [`Catalog::overview_counts`]: kind `series`, the events of one dataset, bucket
/// and outcome (`key` empty); or kind `principal`, one of the top principals (`key`) with its
/// events and denials (`dataset`, `start_ms`, `decision` empty). `newest_ms`: the newest event
/// time of the row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct CountRow {
    pub kind: String,
    pub dataset: String,
    pub start_ms: i64,
    pub decision: String,
    pub key: String,
    pub events: u64,
    pub denied: u64,
    pub newest_ms: i64,
}

impl ReadRow for CountRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("kind", "String"),
        ("dataset", "String"),
        ("start_ms", "Int64"),
        ("decision", "String"),
        ("key", "String"),
        ("events", "UInt64"),
        ("denied", "UInt64"),
        ("newest_ms", "Int64"),
    ];
}

/// An entry of one of the top lists (`kind`: `principal`, `resource`, `client_ip`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct RankedRow {
    pub kind: String,
    pub key: String,
    pub events: u64,
    pub denied: u64,
}

impl ReadRow for RankedRow {
    const COLUMNS: &'static [(&'static str, &'static str)] =
        &[("kind", "String"), ("key", "String"), ("events", "UInt64"), ("denied", "UInt64")];
}

/// The stored rows of one dataset in the window: the latest arrival and the ingest lag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct LagRow {
    pub dataset: String,
    pub received_ms: i64,
    pub lag_p50_ms: i64,
    pub lag_p95_ms: i64,
    pub lag_max_ms: i64,
}

impl ReadRow for LagRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("dataset", "String"),
        ("received_ms", "Int64"),
        ("lag_p50_ms", "Int64"),
        ("lag_p95_ms", "Int64"),
        ("lag_max_ms", "Int64"),
    ];
}

/// Which table the overview's queries read: `decisions_by_time` (what [`Reader::overview`]
/// uses), or `decisions` itself (the same SQL over the wide table keyed by event, for
/// `./x bench-overview`'s comparison).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverviewSource {
    ByTime,
    Decisions,
}

impl OverviewSource {
    fn table(self) -> &'static str {
        match self {
            OverviewSource::ByTime => "decisions_by_time",
            OverviewSource::Decisions => "decisions",
        }
    }

    fn name(self, by_time: &'static str, from_decisions: &'static str) -> &'static str {
        match self {
            OverviewSource::ByTime => by_time,
            OverviewSource::Decisions => from_decisions,
        }
    }
}

/// Which copy of an event counts: the greatest of these, i.e. the latest month partition, then
/// the latest arrival (`received_at_ms` < 10^13 until the year 2286).
const VERSION: &str = "toInt64(toYYYYMM(time)) * 10000000000000 + received_at_ms";

impl Catalog {
    /// One row per event whose counted copy is in the window, with that copy's `columns` (and
    /// its time as `t`); `rows` narrows the stored rows read (`AND …`), `events` the events
    /// kept (`AND …`). Grouped by `cityHash64(tenant, event_id)`: a 64-bit key is several
    /// times faster to group on 18.16 than the two strings; two events of a window merge
    /// only on a hash collision (about 1 in 10^8 for a window of 350,000 events).
    fn overview_events(&self, source: OverviewSource, columns: &[&str], rows: &str, events: &str) -> String {
        let picks: Vec<String> = columns.iter().map(|c| format!("argMax({c}, v) AS {c}")).collect();
        format!(
            "    SELECT argMax(time_ms, v) AS t, {}\n    FROM\n    (\n        \
             SELECT tenant, event_id, time_ms, {}, {VERSION} AS v\n        FROM {}\n        \
             WHERE {} AND (empty({{tenants}}) OR has({{tenants}}, tenant))\n        \
             AND (empty({{principals}}) OR has({{principals}}, principal)){rows}\n    )\n    \
             GROUP BY cityHash64(tenant, event_id)\n    HAVING t >= {{from_ms}} AND t < {{to_ms}}{events}",
            picks.join(", "),
            columns.join(", "),
            self.table(source.table()),
            self.near_period()
        )
    }

    fn overview_params(period: Period, req: &OverviewRequest, excluding: bool) -> Vec<Param> {
        let mut params = Catalog::period_params(period);
        params.push(Param::new("tenants", Value::Strs(req.tenants.clone())));
        params.push(Param::new("principals", Value::Strs(req.principals.clone())));
        if excluding {
            params.push(Param::new("exclude_datasets", Value::Strs(req.exclude_datasets.clone())));
        }
        params
    }

    /// In one pass over the window's events ([`CountRow`]): the events per dataset, bucket
    /// and outcome with the newest time, every dataset, gatelog's own included (kind `series`;
    /// the chart leaves the excluded ones out), and the top principals by events with their
    /// denials, anonymous events and excluded datasets left out (kind `principal`). Grouping
    /// the window's rows by event is the cost of the overview; one query does it once for
    /// both (`ARRAY JOIN` of each event into its two kinds), and `LIMIT … BY` keeps every
    /// series row (each its own group) but only the top principals.
    pub fn overview_counts(
        &self,
        period: Period,
        req: &OverviewRequest,
        source: OverviewSource,
    ) -> Result<ReadQuery<CountRow>, StoreError> {
        let sql = format!(
            "SELECT kind, ds AS dataset, start AS start_ms, outcome AS decision, who AS key, events, denied, newest_ms\n\
             FROM\n(\n\
             SELECT tupleElement(f, 1) AS kind, tupleElement(f, 2) AS ds, tupleElement(f, 3) AS start, \
             tupleElement(f, 4) AS outcome, tupleElement(f, 5) AS who,\n    \
             count() AS events, countIf(decision = 'deny') AS denied, toInt64(max(t)) AS newest_ms,\n    \
             if(kind = 'series', concat(ds, '|', toString(start), '|', outcome), '') AS limit_group\n\
             FROM\n(\n{}\n)\n\
             ARRAY JOIN [\n    \
             ('series', CAST(dataset AS String), toInt64(intDiv(t, {{bucket_ms}}) * {{bucket_ms}}), CAST(decision AS String), ''),\n    \
             ('principal', '', toInt64(0), '', principal)\n] AS f\n\
             WHERE kind = 'series' OR (principal != '' AND NOT has({{exclude_datasets}}, dataset))\n\
             GROUP BY kind, ds, start, outcome, who\n\
             ORDER BY kind, events DESC, who, ds, start, outcome\n\
             LIMIT {} BY kind, limit_group\n)\n\
             ORDER BY kind, dataset, start_ms, decision, events DESC, key",
            self.overview_events(source, &["dataset", "decision", "principal"], "", ""),
            // `LIMIT` takes a literal, not an expression, on 18.16: a number spliced in.
            req.top
        );
        let mut params = Self::overview_params(period, req, true);
        params.push(Param::new("bucket_ms", Value::Int64(bucket_ms_for(period))));
        let name = source.name("read.overview_counts", "read.overview_counts_from_decisions");
        ReadQuery::new(name, self.table(source.table()), sql, params)
    }

    /// The top denied resources and client IPs ([`RankedRow`], kinds `resource` and
    /// `client_ip`), each by denied events. Only denied rows are read: the copies of an event
    /// are one decision, with one outcome.
    pub fn overview_denied(
        &self,
        period: Period,
        req: &OverviewRequest,
        source: OverviewSource,
    ) -> Result<ReadQuery<RankedRow>, StoreError> {
        let sql = format!(
            "SELECT tupleElement(f, 1) AS kind, tupleElement(f, 2) AS key, count() AS events, count() AS denied\n\
             FROM\n(\n{}\n)\nARRAY JOIN [('resource', resource), ('client_ip', client_ip)] AS f\n\
             WHERE key != ''\nGROUP BY kind, key\nORDER BY kind, events DESC, key\nLIMIT {} BY kind",
            self.overview_events(
                source,
                &["dataset", "resource", "client_ip"],
                " AND decision = 'deny'",
                " AND NOT has({exclude_datasets}, dataset)"
            ),
            req.top
        );
        let name = source.name("read.overview_denied", "read.overview_denied_from_decisions");
        ReadQuery::new(name, self.table(source.table()), sql, Self::overview_params(period, req, true))
    }

    /// Per dataset, over the rows stored for the window (each copy is a delivery of its own):
    /// the latest arrival and the ingest lag, arrival − event time ([`LagRow`]).
    pub fn overview_lag(
        &self,
        period: Period,
        req: &OverviewRequest,
        source: OverviewSource,
    ) -> Result<ReadQuery<LagRow>, StoreError> {
        let sql = format!(
            "SELECT dataset, toInt64(max(received_at_ms)) AS received_ms, \
             toInt64(quantileExact(0.5)(received_at_ms - time_ms)) AS lag_p50_ms, \
             toInt64(quantileExact(0.95)(received_at_ms - time_ms)) AS lag_p95_ms, \
             toInt64(max(received_at_ms - time_ms)) AS lag_max_ms\nFROM {}\n\
             WHERE {} AND (empty({{tenants}}) OR has({{tenants}}, tenant))\n\
             AND (empty({{principals}}) OR has({{principals}}, principal))\nGROUP BY dataset\nORDER BY dataset",
            self.table(source.table()),
            self.range("time", "{from_ms}", "{to_ms}")
        );
        let mut params = period.params().to_vec();
        params.push(Param::new("tenants", Value::Strs(req.tenants.clone())));
        params.push(Param::new("principals", Value::Strs(req.principals.clone())));
        let name = source.name("read.overview_lag", "read.overview_lag_from_decisions");
        ReadQuery::new(name, self.table(source.table()), sql, params)
    }
}

/// The overview queries, for [`super::registered`].
pub(crate) fn register(c: &Catalog, period: Period, out: &mut Vec<super::Registered>) {
    let req = OverviewRequest { tenants: vec!["default".into()], ..OverviewRequest::default() };
    for source in [OverviewSource::ByTime, OverviewSource::Decisions] {
        super::catalog::register(out, "", c.overview_counts(period, &req, source));
        super::catalog::register(out, "", c.overview_denied(period, &req, source));
        super::catalog::register(out, "", c.overview_lag(period, &OverviewRequest::default(), source));
    }
}

impl Reader {
    /// The overview of `period` ([`Overview`]), from `decisions_by_time` and `ingest_batches`.
    /// Five queries, run concurrently.
    pub async fn overview(&self, period: Period, req: &OverviewRequest) -> Result<Overview, StoreError> {
        self.overview_from(period, req, OverviewSource::ByTime).await
    }

    /// [`Reader::overview`] reading `source` (`decisions` itself for a comparison).
    pub async fn overview_from(
        &self,
        period: Period,
        req: &OverviewRequest,
        source: OverviewSource,
    ) -> Result<Overview, StoreError> {
        let c = self.catalog();
        let (counts_q, denied_q, lag_q, batches_q) = (
            c.overview_counts(period, req, source)?,
            c.overview_denied(period, req, source)?,
            c.overview_lag(period, req, source)?,
            c.ingest_batches(period)?,
        );
        let (counts, denied, lag, batches) =
            tokio::try_join!(self.fetch(&counts_q), self.fetch(&denied_q), self.fetch(&lag_q), self.fetch(&batches_q))?;
        let (series, principals): (Vec<CountRow>, Vec<CountRow>) =
            counts.rows.into_iter().partition(|r| r.kind == "series");
        let bucket_ms = bucket_ms_for(period);
        let shown: Vec<&CountRow> = series.iter().filter(|r| !req.exclude_datasets.contains(&r.dataset)).collect();
        let mut overview = Overview {
            from: period.from(),
            to: period.to(),
            bucket_ms,
            series: buckets(period, bucket_ms, &shown),
            top_principals: Vec::new(),
            top_denied_resources: Vec::new(),
            top_denied_ips: Vec::new(),
            datasets: Vec::new(),
        };
        let mut principals = principals;
        principals.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.key.cmp(&b.key)));
        overview.top_principals =
            principals.into_iter().map(|r| Ranked { key: r.key, count: r.events, denied: r.denied }).collect();
        for row in denied.rows {
            let ranked = Ranked { key: row.key, count: row.events, denied: row.denied };
            match row.kind.as_str() {
                "resource" => overview.top_denied_resources.push(ranked),
                _ => overview.top_denied_ips.push(ranked),
            }
        }
        overview.datasets = health(period, req, &series, &lag.rows, &batches.rows);
        Ok(overview)
    }
}

/// Every bucket overlapping `period`, with the rows' counts.
fn buckets(period: Period, bucket_ms: i64, rows: &[&CountRow]) -> Vec<Bucket> {
    let first = period.from().0.div_euclid(bucket_ms) * bucket_ms;
    let mut out: Vec<Bucket> = (first..period.to().0)
        .step_by(usize::try_from(bucket_ms).unwrap_or(usize::MAX))
        .map(|start| Bucket { start: UnixMillis(start), ..Bucket::default() })
        .collect();
    for row in rows {
        let Some(i) = usize::try_from((row.start_ms - first) / bucket_ms).ok() else { continue };
        let Some(b) = out.get_mut(i) else { continue };
        match row.decision.as_str() {
            "allow" => b.allow += row.events,
            "deny" => b.deny += row.events,
            "challenge" => b.challenge += row.events,
            "log" => b.log += row.events,
            _ => b.error += row.events,
        }
    }
    out
}

/// Per dataset: its events, their lag, and its batches ([`coverage()`]).
fn health(
    period: Period,
    req: &OverviewRequest,
    counts: &[CountRow],
    lag: &[LagRow],
    batches: &[super::BatchRow],
) -> Vec<DatasetHealth> {
    let mut out: BTreeMap<String, DatasetHealth> = BTreeMap::new();
    for r in counts {
        let h = out
            .entry(r.dataset.clone())
            .or_insert_with(|| DatasetHealth { dataset: r.dataset.clone(), ..DatasetHealth::default() });
        h.events += r.events;
        h.newest_event = Some(h.newest_event.map_or(UnixMillis(r.newest_ms), |t| t.max(UnixMillis(r.newest_ms))));
    }
    for r in lag {
        let h = out
            .entry(r.dataset.clone())
            .or_insert_with(|| DatasetHealth { dataset: r.dataset.clone(), ..DatasetHealth::default() });
        h.newest_arrival = Some(UnixMillis(r.received_ms));
        (h.lag_p50_ms, h.lag_p95_ms, h.lag_max_ms) = (r.lag_p50_ms, r.lag_p95_ms, r.lag_max_ms);
    }
    for c in coverage(period, batches, &[], req.max_silence) {
        let h = out
            .entry(c.dataset.clone())
            .or_insert_with(|| DatasetHealth { dataset: c.dataset.clone(), ..DatasetHealth::default() });
        h.batches = c.batches;
        h.dead_letters = c.dead_letters;
        h.gaps = c.gaps.len() as u64;
        if c.last_received.is_some() {
            h.newest_arrival = c.last_received;
        }
    }
    out.into_values()
        .map(|mut h| {
            h.internal = INTERNAL_DATASETS.contains(&h.dataset.as_str());
            h
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::SchemaProfile;
    use crate::sql::SchemaOptions;

    #[test]
    fn buckets_follow_the_window() {
        let p = |h: i64| Period::new(UnixMillis(DAY_MS), UnixMillis(DAY_MS + h * HOUR_MS)).unwrap();
        assert_eq!(bucket_ms_for(p(6)), 5 * MINUTE_MS);
        assert_eq!(bucket_ms_for(p(7)), HOUR_MS);
        assert_eq!(bucket_ms_for(p(7 * 24)), HOUR_MS);
        assert_eq!(bucket_ms_for(p(7 * 24 + 1)), DAY_MS);
        let window = Period::new(UnixMillis(90 * MINUTE_MS), UnixMillis(200 * MINUTE_MS)).unwrap();
        let row = |start: i64, decision: &str, events| CountRow {
            kind: "series".into(),
            dataset: "d".into(),
            start_ms: start * MINUTE_MS,
            decision: decision.into(),
            key: String::new(),
            events,
            denied: 0,
            newest_ms: 0,
        };
        let rows = [row(60, "deny", 2), row(180, "allow", 5), row(180, "error", 1)];
        let b = buckets(window, HOUR_MS, &rows.iter().collect::<Vec<_>>());
        let starts: Vec<i64> = b.iter().map(|b| b.start.0 / MINUTE_MS).collect();
        assert_eq!(starts, [60, 120, 180]);
        assert_eq!((b[0].deny, b[1].allow, b[2].allow, b[2].error), (2, 0, 5, 1));
    }

    #[test]
    fn the_queries_group_copies_and_read_the_narrow_table() {
        let c = Catalog::new(SchemaProfile::Legacy, &SchemaOptions { database: "gl".into(), ..Default::default() });
        let p = Period::new(UnixMillis(0), UnixMillis(DAY_MS)).unwrap();
        let req = OverviewRequest::default();
        let q = c.overview_counts(p, &req, OverviewSource::ByTime).unwrap();
        let sql = q.sql();
        assert!(sql.contains("FROM gl.decisions_by_time\n") && sql.contains("GROUP BY cityHash64(tenant, event_id)"));
        assert!(sql.contains("NOT has(['gatelog', 'gatelog_canary'], dataset)"), "{sql}");
        // One pass: the events are grouped once for the series and the principals.
        assert_eq!(sql.matches("GROUP BY cityHash64").count(), 1, "{sql}");
        assert!(sql.contains("intDiv(t, toInt64(3600000))") && sql.contains("LIMIT 10 BY kind, limit_group"), "{sql}");
        let lag = c.overview_lag(p, &req, OverviewSource::Decisions).unwrap();
        assert!(lag.sql().contains("FROM gl.decisions\n") && !lag.sql().contains("GROUP BY cityHash64"));
    }
}
