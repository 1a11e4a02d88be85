//! Evidence queries of CC7.2 (monitoring operates) and CC8.1 (changes): detector runs per
//! rule and version, failed runs, the versions that ran, canary runs, events per dataset and
//! zone with their silences, and recorded versions of rule, Sigma and policy files. The
//! alerts of CC7.3/CC7.4 are in [`alerts`].
//!
//! Counting once: `detector_runs` is a `MergeTree` (a run written twice would be two rows),
//! so runs are taken `LIMIT 1 BY run_id`; `canary_runs` and `config_versions` are
//! `ReplacingMergeTree`s read with `FINAL`, the period applied outside it (as the catalog
//! does for `decisions`); events per zone take the copy `decisions FINAL` keeps
//! ([`Catalog::events`]). Instants of these tables are `*_ms Int64` in both profiles.

use super::super::catalog::{Catalog, Registered, in_period, register as reg};
use super::super::period::Period;
use super::super::query::{Param, ReadQuery, Value};
use super::super::rows::ReadRow;
use crate::StoreError;
use crate::sql::canary::CanaryRun;
use crate::sql::config_versions::ConfigVersion;
use serde::{Deserialize, Serialize};

pub mod alerts;

pub use alerts::{AlertRecord, StateCount, TimelineRow};

const RUN_COLUMNS: &str = "run_id, kind, rule_id, rule_version, window_start_ms, window_end_ms, rows_scanned, \
     findings, started_at_ms, duration_ms, outcome, error";

/// `{col} in [from, to)` for an `Int64` epoch-millisecond column.
pub(crate) fn ms_in_period(col: &str) -> String {
    format!("{col} >= {{from_ms}} AND {col} < {{to_ms}}")
}

/// The runs of one detector kind, rule and version in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct RunsByVersion {
    pub kind: String,
    pub rule_id: String,
    pub rule_version: String,
    pub runs: u64,
    pub ok_runs: u64,
    pub failed_runs: u64,
    /// The event time the runs covered: oldest window start, newest window end.
    pub window_from_ms: i64,
    pub window_to_ms: i64,
    /// The sum of the runs' window lengths, in seconds.
    pub covered_seconds: i64,
    pub rows_scanned: u64,
    pub findings: u64,
    pub first_run_ms: i64,
    pub last_run_ms: i64,
}

impl ReadRow for RunsByVersion {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("kind", "String"),
        ("rule_id", "String"),
        ("rule_version", "String"),
        ("runs", "UInt64"),
        ("ok_runs", "UInt64"),
        ("failed_runs", "UInt64"),
        ("window_from_ms", "Int64"),
        ("window_to_ms", "Int64"),
        ("covered_seconds", "Int64"),
        ("rows_scanned", "UInt64"),
        ("findings", "UInt64"),
        ("first_run_ms", "Int64"),
        ("last_run_ms", "Int64"),
    ];
}

/// One detector run (a failed one, in the report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct RunRecord {
    pub run_id: String,
    pub kind: String,
    pub rule_id: String,
    pub rule_version: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub rows_scanned: u64,
    pub findings: u64,
    pub started_at_ms: i64,
    pub duration_ms: u64,
    pub outcome: String,
    pub error: String,
}

impl ReadRow for RunRecord {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("run_id", "String"),
        ("kind", "String"),
        ("rule_id", "String"),
        ("rule_version", "String"),
        ("window_start_ms", "Int64"),
        ("window_end_ms", "Int64"),
        ("rows_scanned", "UInt64"),
        ("findings", "UInt64"),
        ("started_at_ms", "Int64"),
        ("duration_ms", "UInt64"),
        ("outcome", "String"),
        ("error", "String"),
    ];
}

/// A detector version that ran in a period: when it first ran (ever, up to the period's
/// end) and last ran in the period; `new_in_period` when it never ran before the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct VersionRan {
    pub kind: String,
    pub rule_id: String,
    pub rule_version: String,
    pub first_run_ms: i64,
    pub last_run_ms: i64,
    pub runs: u64,
    pub runs_before: u64,
    pub new_in_period: u8,
}

impl ReadRow for VersionRan {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("kind", "String"),
        ("rule_id", "String"),
        ("rule_version", "String"),
        ("first_run_ms", "Int64"),
        ("last_run_ms", "Int64"),
        ("runs", "UInt64"),
        ("runs_before", "UInt64"),
        ("new_in_period", "UInt8"),
    ];
}

impl ReadRow for CanaryRun {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("run_id", "String"),
        ("event_id", "String"),
        ("sent_at_ms", "Int64"),
        ("deadline_ms", "Int64"),
        ("alert_id", "String"),
        ("alert_at_ms", "Int64"),
        ("latency_ms", "Int64"),
        ("outcome", "String"),
        ("error", "String"),
        ("missed_alert_id", "String"),
        ("recorded_at_ms", "Int64"),
    ];
}

impl ReadRow for ConfigVersion {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("version_id", "String"),
        ("kind", "String"),
        ("name", "String"),
        ("path", "String"),
        ("sha256", "String"),
        ("content", "String"),
        ("recorded_at_ms", "Int64"),
        ("recorded_by", "String"),
    ];
}

/// A count taken independently of a population, for its reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct Tally {
    pub n: u64,
}

impl ReadRow for Tally {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[("n", "UInt64")];
}

/// The events of one dataset and zone in a period, and the silences between them: minutes
/// (UTC, whole) with no event, longer than the allowed silence, counting from the period's
/// start and to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct ZoneActivity {
    pub dataset: String,
    pub zone: String,
    pub events: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub silences: u64,
    pub longest_silence_minutes: i64,
}

impl ReadRow for ZoneActivity {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("dataset", "String"),
        ("zone", "String"),
        ("events", "UInt64"),
        ("first_ms", "Int64"),
        ("last_ms", "Int64"),
        ("silences", "UInt64"),
        ("longest_silence_minutes", "Int64"),
    ];
}

/// Each run of `detector_runs` once (`LIMIT 1 BY run_id`) with `columns`, where `condition`.
fn runs_once(c: &Catalog, columns: &str, condition: &str) -> String {
    format!(
        "    SELECT {columns}\n    FROM {}\n    WHERE {condition}\n    ORDER BY run_id, started_at_ms\n    LIMIT 1 BY run_id",
        c.table("detector_runs")
    )
}

impl Catalog {
    /// Detector runs started in `period`, per kind, rule and version.
    pub fn runs_by_version(&self, period: Period) -> Result<ReadQuery<RunsByVersion>, StoreError> {
        let sql = format!(
            "SELECT kind, rule_id, rule_version, toUInt64(count()) AS runs, toUInt64(countIf(outcome = 'ok')) AS ok_runs, \
             toUInt64(countIf(outcome != 'ok')) AS failed_runs,\n    min(window_start_ms) AS window_from_ms, \
             max(window_end_ms) AS window_to_ms, toInt64(intDiv(sum(window_end_ms - window_start_ms), 1000)) AS covered_seconds,\n    \
             toUInt64(sum(scanned)) AS rows_scanned, toUInt64(sum(found)) AS findings, \
             min(started_at_ms) AS first_run_ms, max(started_at_ms) AS last_run_ms\nFROM\n(\n{}\n)\n\
             GROUP BY kind, rule_id, rule_version\nORDER BY kind, rule_id, rule_version",
            runs_once(
                self,
                "run_id, kind, rule_id, rule_version, window_start_ms, window_end_ms, rows_scanned AS scanned, \
                 findings AS found, started_at_ms, outcome",
                &ms_in_period("started_at_ms")
            )
        );
        ReadQuery::new("read.evidence.runs_by_version", self.table("detector_runs"), sql, period.params().to_vec())
    }

    /// Detector runs started in `period` that did not end `ok`, oldest first.
    pub fn failed_runs(&self, period: Period) -> Result<ReadQuery<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS}\nFROM\n(\n{}\n)\nWHERE outcome != 'ok'\nORDER BY started_at_ms, run_id",
            runs_once(self, RUN_COLUMNS, &ms_in_period("started_at_ms"))
        );
        ReadQuery::new("read.evidence.failed_runs", self.table("detector_runs"), sql, period.params().to_vec())
    }

    /// Runs started in `period`, each once, counted independently of
    /// [`Catalog::runs_by_version`] (`uniqExact(run_id)`).
    pub fn run_count(&self, period: Period) -> Result<ReadQuery<Tally>, StoreError> {
        let sql = format!(
            "SELECT toUInt64(uniqExact(run_id)) AS n\nFROM {}\nWHERE {}",
            self.table("detector_runs"),
            ms_in_period("started_at_ms")
        );
        ReadQuery::new("read.evidence.run_count", self.table("detector_runs"), sql, period.params().to_vec())
    }

    /// The detector versions that ran in `period`, with their first run ever (up to the
    /// period's end) and their last in the period.
    pub fn versions_ran(&self, period: Period) -> Result<ReadQuery<VersionRan>, StoreError> {
        let sql = format!(
            "SELECT kind, rule_id, rule_version, min(started_at_ms) AS first_run_ms, \
             maxIf(started_at_ms, started_at_ms >= {{from_ms}}) AS last_run_ms,\n    \
             toUInt64(countIf(started_at_ms >= {{from_ms}})) AS runs, toUInt64(countIf(started_at_ms < {{from_ms}})) AS runs_before, \
             toUInt8(runs_before = 0) AS new_in_period\nFROM\n(\n{}\n)\n\
             GROUP BY kind, rule_id, rule_version\nHAVING runs > 0\nORDER BY kind, rule_id, rule_version",
            runs_once(self, "run_id, kind, rule_id, rule_version, started_at_ms", "started_at_ms < {to_ms}")
        );
        ReadQuery::new("read.evidence.versions_ran", self.table("detector_runs"), sql, period.params().to_vec())
    }

    /// The canary runs sent in `period` (each once: `FINAL`), oldest first.
    pub fn canary_runs(&self, period: Period) -> Result<ReadQuery<CanaryRun>, StoreError> {
        let cols: Vec<&str> = CanaryRun::COLUMNS.iter().map(|c| c.0).collect();
        let cols = cols.join(", ");
        let sql = format!(
            "SELECT {cols}\nFROM\n(\n    SELECT {cols}\n    FROM {} FINAL\n)\nWHERE {}\nORDER BY sent_at_ms, run_id",
            self.table("canary_runs"),
            ms_in_period("sent_at_ms")
        );
        ReadQuery::new("read.evidence.canary_runs", self.table("canary_runs"), sql, period.params().to_vec())
    }

    /// Canary runs sent in `period`, counted without `FINAL` (`uniqExact(run_id)`).
    pub fn canary_run_count(&self, period: Period) -> Result<ReadQuery<Tally>, StoreError> {
        let sql = format!(
            "SELECT toUInt64(uniqExact(run_id)) AS n\nFROM {}\nWHERE {}",
            self.table("canary_runs"),
            ms_in_period("sent_at_ms")
        );
        ReadQuery::new("read.evidence.canary_run_count", self.table("canary_runs"), sql, period.params().to_vec())
    }

    /// Events of `period` per dataset and zone (datasets in `exclude` left out), with the
    /// silences longer than `silence_minutes` between the minutes that had an event.
    pub fn zone_activity(
        &self,
        period: Period,
        exclude: &[String],
        silence_minutes: u64,
    ) -> Result<ReadQuery<ZoneActivity>, StoreError> {
        let steps =
            "arrayDifference(arrayConcat([intDiv({from_ms}, 60000)], arraySort(minutes), [intDiv({to_ms}, 60000)]))";
        let sql = format!(
            "SELECT dataset, zone, events, first_ms, last_ms,\n    \
             toUInt64(length(arrayFilter(d -> d > {{silence_minutes}}, {steps}))) AS silences,\n    \
             toInt64(arrayReduce('max', {steps})) AS longest_silence_minutes\nFROM\n(\n    \
             SELECT dataset, zone, toUInt64(count()) AS events, min(time_ms) AS first_ms, max(time_ms) AS last_ms, \
             groupUniqArray(intDiv(time_ms, 60000)) AS minutes\n    FROM\n    (\n{}\n    )\n    \
             WHERE {} AND NOT has({{exclude}}, dataset)\n    GROUP BY dataset, zone\n)\nORDER BY dataset, zone",
            self.events(&["dataset", "zone"]),
            in_period()
        );
        let mut params = Self::period_params(period);
        params.push(Param::new("exclude", Value::Strs(exclude.to_vec())));
        params.push(Param::new("silence_minutes", Value::UInt64(silence_minutes)));
        ReadQuery::new("read.evidence.zone_activity", self.table("decisions"), sql, params)
    }

    /// The versions of rule, Sigma and policy files recorded in `period` (each once:
    /// `FINAL`), by kind, name and time.
    pub fn config_versions(&self, period: Period) -> Result<ReadQuery<ConfigVersion>, StoreError> {
        let cols: Vec<&str> = ConfigVersion::COLUMNS.iter().map(|c| c.0).collect();
        let cols = cols.join(", ");
        let sql = format!(
            "SELECT {cols}\nFROM\n(\n    SELECT {cols}\n    FROM {} FINAL\n)\nWHERE {}\n\
             ORDER BY kind, name, recorded_at_ms, version_id",
            self.table("config_versions"),
            ms_in_period("recorded_at_ms")
        );
        ReadQuery::new("read.evidence.config_versions", self.table("config_versions"), sql, period.params().to_vec())
    }

    /// Per kind and name, the version recorded last before `period` (what the first version
    /// of the period changed).
    pub fn config_versions_before(&self, period: Period) -> Result<ReadQuery<ConfigVersion>, StoreError> {
        let cols: Vec<&str> = ConfigVersion::COLUMNS.iter().map(|c| c.0).collect();
        let sql = format!(
            "SELECT {}\nFROM {}\nWHERE recorded_at_ms < {{from_ms}}\n\
             ORDER BY kind, name, recorded_at_ms DESC, version_id DESC\nLIMIT 1 BY kind, name",
            cols.join(", "),
            self.table("config_versions")
        );
        let params = vec![Param::new("from_ms", Value::Int64(period.from().0))];
        ReadQuery::new("read.evidence.config_versions_before", self.table("config_versions"), sql, params)
    }

    /// Versions recorded in `period`, counted without `FINAL` (`uniqExact(version_id)`).
    pub fn config_version_count(&self, period: Period) -> Result<ReadQuery<Tally>, StoreError> {
        let sql = format!(
            "SELECT toUInt64(uniqExact(version_id)) AS n\nFROM {}\nWHERE {}",
            self.table("config_versions"),
            ms_in_period("recorded_at_ms")
        );
        ReadQuery::new(
            "read.evidence.config_version_count",
            self.table("config_versions"),
            sql,
            period.params().to_vec(),
        )
    }
}

/// Registers this module's queries (see [`super::register`]).
pub(crate) fn register(c: &Catalog, period: Period, out: &mut Vec<Registered>) {
    reg(out, "", c.runs_by_version(period));
    reg(out, "", c.failed_runs(period));
    reg(out, "", c.run_count(period));
    reg(out, "", c.versions_ran(period));
    reg(out, "", c.canary_runs(period));
    reg(out, "", c.canary_run_count(period));
    reg(out, "", c.zone_activity(period, &["gatelog".to_owned(), "gatelog_canary".to_owned()], 60));
    reg(out, "", c.config_versions(period));
    reg(out, "", c.config_versions_before(period));
    reg(out, "", c.config_version_count(period));
    alerts::register(c, period, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_columns_follow_the_struct_fields() {
        fn names<R: ReadRow>() -> Vec<&'static str> {
            R::COLUMNS.iter().map(|c| c.0).collect()
        }
        assert_eq!(names::<RunsByVersion>(), <RunsByVersion as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<RunRecord>(), <RunRecord as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<VersionRan>(), <VersionRan as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<CanaryRun>(), <CanaryRun as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<ConfigVersion>(), <ConfigVersion as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<Tally>(), <Tally as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<ZoneActivity>(), <ZoneActivity as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<AlertRecord>(), <AlertRecord as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<StateCount>(), <StateCount as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<TimelineRow>(), <TimelineRow as clickhouse::Row>::COLUMN_NAMES);
    }
}
