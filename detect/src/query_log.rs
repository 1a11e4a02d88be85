//! Runaway SELECTs judged on the fronted ClickHouse's own figures: a finished query of its
//! `system.query_log` ([`QueryLogRow`]), joined on `query_id` to the decision `gatelog proxy`
//! emitted for it (the proxy stamps `query_id` = decision id), against the same
//! `[detect.runaway_select]` limits, per-role raises included, as the streaming
//! `runaway_select` detector ([`judge`]).
//!
//! Pure: the scheduled job that reads `system.query_log` since its stored position and
//! looks the decisions up is `gatelog_watch::query_log`; it asks only for queries at or
//! above the [`floors`]. Findings carry
//! rule id [`RULE_ID`], the dedup key `runaway_select_query_log:<principal>:<fingerprint>`,
//! the decision's event id, and the real figures (`read_rows`, `read_bytes`,
//! `query_duration_ms`, `result_rows`, `memory_usage`) as evidence.

use crate::config::RunawayConfig;
use crate::detector::{Context, Detector};
use crate::rules::runaway::Runaway;
use gatelog_model::{AccessDecision, Decision, Finding};

/// The findings' rule id.
pub const RULE_ID: &str = "runaway_select_query_log";

/// One finished query of `system.query_log` (`type` 2, QueryFinish, or 4, an exception while
/// processing: both ran and read). Field names are the query log's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct QueryLogRow {
    pub query_id: String,
    /// `type` as a number (18.16 stores an integer; newer servers an enum of the same values).
    pub kind: u8,
    pub read_rows: u64,
    pub read_bytes: u64,
    pub query_duration_ms: u64,
    pub result_rows: u64,
    pub memory_usage: u64,
    pub exception: String,
}

/// The lowest limit of each figure over the section and every role (a query below all four
/// breaches none): `(read_rows, read_bytes, duration_ms, result_rows)`, what the job asks the
/// query log for. A disabled section asks for nothing.
pub fn floors(cfg: &RunawayConfig) -> (u64, u64, u64, u64) {
    if !cfg.enabled {
        return (u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    }
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut f = (cfg.rows_read.min(cfg.no_limit_rows_read), cfg.bytes_read.as_u64(), ms(cfg.duration), cfg.result_rows);
    for l in cfg.roles.values() {
        let rows = l.rows_read.unwrap_or(cfg.rows_read).min(l.no_limit_rows_read.unwrap_or(cfg.no_limit_rows_read));
        f.0 = f.0.min(rows);
        f.1 = f.1.min(l.bytes_read.map_or(f.1, |b| b.as_u64()));
        f.2 = f.2.min(l.duration.map_or(f.2, ms));
        f.3 = f.3.min(l.result_rows.unwrap_or(f.3));
    }
    f
}

/// The runaway finding for `row`, the query `decision` stands for, if a limit is breached.
pub fn judge(cfg: &RunawayConfig, decision: &AccessDecision, row: &QueryLogRow) -> Option<Finding> {
    if !cfg.enabled || !matches!(row.kind, 2 | 4) {
        return None;
    }
    let mut real = decision.clone();
    real.rows_read = row.read_rows;
    real.bytes_read = row.read_bytes;
    real.duration_ms = row.query_duration_ms;
    real.result_rows = row.result_rows;
    if real.decision == Decision::Allow && row.kind == 4 {
        real.decision = Decision::Error;
    }
    let baselines = crate::Baselines::default();
    let profile = crate::ProfileConfig::default();
    let cx = Context { baselines: &baselines, profile: &profile, principal: None };
    let mut out = Vec::new();
    Runaway::new(cfg.clone()).on_decision(&cx, &real, &mut out);
    let mut f = out.pop()?;
    let key = f.dedup_key.split_once(':').map_or(String::new(), |(_, k)| k.to_owned());
    f.rule_id = RULE_ID.to_owned();
    f.dedup_key = format!("{RULE_ID}:{key}");
    f.summary = format!("{} (system.query_log)", f.summary);
    for (k, v) in [
        ("query_id", row.query_id.clone()),
        ("read_rows", row.read_rows.to_string()),
        ("read_bytes", row.read_bytes.to_string()),
        ("query_duration_ms", row.query_duration_ms.to_string()),
        ("result_rows", row.result_rows.to_string()),
        ("memory_usage", row.memory_usage.to_string()),
        ("figures_from", "system.query_log".to_owned()),
    ] {
        f.evidence.insert(k.to_owned(), v);
    }
    if !row.exception.is_empty() {
        f.evidence.insert("exception".into(), row.exception.chars().take(500).collect());
    }
    Some(f.seal())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunawayLimits;
    use gatelog_model::{Source, UnixMillis};

    fn decision() -> AccessDecision {
        let mut d = AccessDecision::new("q-1".into(), UnixMillis(1_741_564_800_000), "proxy", Source::Proxy);
        d.decision = Decision::Allow;
        d.principal = "bob@example.com".into();
        d.action = "select".into();
        d.resource = "clickhouse:analytics.events".into();
        d.query = "SELECT * FROM analytics.events LIMIT 10".into();
        d.query_fingerprint = "fp1".into();
        d.roles = vec!["analyst".into()];
        d
    }

    fn row(read_rows: u64) -> QueryLogRow {
        QueryLogRow { query_id: "q-1".into(), kind: 2, read_rows, memory_usage: 4096, ..QueryLogRow::default() }
    }

    #[test]
    fn the_real_figures_are_judged_against_the_runaway_limits() {
        let cfg = RunawayConfig { rows_read: 1_000, ..RunawayConfig::default() };
        // The decision the proxy emitted knew nothing of the rows read; the query log does.
        assert!(judge(&cfg, &decision(), &row(999)).is_none());
        let f = judge(&cfg, &decision(), &row(5_000)).expect("over the limit");
        assert_eq!(f.rule_id, RULE_ID);
        assert_eq!(f.dedup_key, "runaway_select_query_log:bob@example.com:fp1");
        assert_eq!(f.event_ids, vec!["q-1".to_owned()]);
        assert_eq!(f.evidence["read_rows"], "5000");
        assert_eq!(f.evidence["memory_usage"], "4096");
        assert!(f.summary.contains("read 5000 rows (limit 1000)"), "{}", f.summary);
        assert_eq!(f.finding_id, f.clone().seal().finding_id);
        assert!(judge(&cfg, &decision(), &QueryLogRow { kind: 1, ..row(5_000) }).is_none(), "a start is no finish");
        let failed = judge(&cfg, &decision(), &QueryLogRow { kind: 4, exception: "timeout".into(), ..row(5_000) });
        assert_eq!(failed.expect("a query killed mid-way still read").evidence["exception"], "timeout");
    }

    #[test]
    fn floors_are_the_lowest_limit_of_any_role() {
        let mut cfg = RunawayConfig { rows_read: 1_000, no_limit_rows_read: 5_000, ..RunawayConfig::default() };
        cfg.roles.insert("bi".into(), RunawayLimits { result_rows: Some(10), ..RunawayLimits::default() });
        cfg.roles.insert("etl".into(), RunawayLimits { rows_read: Some(500), ..RunawayLimits::default() });
        let (rows, _, duration_ms, result_rows) = floors(&cfg);
        assert_eq!((rows, duration_ms, result_rows), (500, 60_000, 10));
        let off = RunawayConfig { enabled: false, ..cfg };
        assert_eq!(floors(&off).0, u64::MAX);
    }

    #[test]
    fn a_role_raise_applies_as_in_the_stream() {
        let mut cfg = RunawayConfig { rows_read: 1_000, ..RunawayConfig::default() };
        cfg.roles.insert("analyst".into(), RunawayLimits { rows_read: Some(10_000), ..RunawayLimits::default() });
        assert!(judge(&cfg, &decision(), &row(5_000)).is_none());
        assert!(judge(&cfg, &decision(), &row(10_000)).is_some());
        let off = RunawayConfig { enabled: false, ..cfg };
        assert!(judge(&off, &decision(), &row(1_000_000)).is_none());
    }
}
