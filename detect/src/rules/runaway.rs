//! `runaway_select`: a query that read too many rows or bytes, ran too long, returned too
//! many rows, or scanned a large table without an outer `LIMIT`.
//!
//! Judged per decision on the figures the decision carries (`rows_read`, `bytes_read`,
//! `duration_ms`, `result_rows`, and the masked `query` for the `LIMIT` check), for
//! decisions whose `action` is a query action and that ran (`allow`, or `error`: a query
//! killed by a timeout still ran). Limits come from `[detect.runaway_select]`, raised per
//! role by `[detect.runaway_select.roles.<role>]`. Stateless.
//!
//! Dedup key: `runaway_select:<principal>:<query fingerprint>` (the resource when there is
//! no fingerprint), so the same query run again joins the same alert.

use crate::checkpoint::CheckpointError;
use crate::config::{RunawayConfig, RunawayLimits};
use crate::detector::{Context, Detector, Draft, Rule, in_list, who};
use gatelog_model::query::has_outer_limit;
use gatelog_model::{AccessDecision, Decision, Finding};
use std::time::Duration;

const RULE: Rule = Rule { id: "runaway_select", version: 1 };

/// The limits that apply to one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    rows_read: u64,
    bytes_read: u64,
    duration_ms: u64,
    result_rows: u64,
    no_limit_rows_read: u64,
}

#[derive(Debug)]
pub(crate) struct Runaway {
    cfg: RunawayConfig,
}

impl Runaway {
    pub(crate) fn new(cfg: RunawayConfig) -> Self {
        Runaway { cfg }
    }

    /// The section's limits, each raised to the highest any of `roles` sets.
    fn limits(&self, roles: &[String]) -> Limits {
        let c = &self.cfg;
        let mut l = Limits {
            rows_read: c.rows_read,
            bytes_read: c.bytes_read.as_u64(),
            duration_ms: millis(c.duration),
            result_rows: c.result_rows,
            no_limit_rows_read: c.no_limit_rows_read,
        };
        let overrides: Vec<&RunawayLimits> = roles.iter().filter_map(|r| c.roles.get(r.as_str())).collect();
        let raise = |base: u64, values: Vec<Option<u64>>| -> u64 {
            let set: Vec<u64> = values.into_iter().flatten().collect();
            if set.is_empty() {
                return base;
            }
            // 0 means "off": a role that turns a check off wins.
            if set.contains(&0) { 0 } else { set.into_iter().max().unwrap_or(base) }
        };
        l.rows_read = raise(l.rows_read, overrides.iter().map(|o| o.rows_read).collect());
        l.bytes_read = raise(l.bytes_read, overrides.iter().map(|o| o.bytes_read.map(|b| b.as_u64())).collect());
        l.duration_ms = raise(l.duration_ms, overrides.iter().map(|o| o.duration.map(millis)).collect());
        l.result_rows = raise(l.result_rows, overrides.iter().map(|o| o.result_rows).collect());
        l.no_limit_rows_read = raise(l.no_limit_rows_read, overrides.iter().map(|o| o.no_limit_rows_read).collect());
        l
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Over a limit that is on (non-zero)?
fn over(value: u64, limit: u64) -> bool {
    limit > 0 && value >= limit
}

impl Detector for Runaway {
    fn rule(&self) -> Rule {
        RULE
    }

    fn on_decision(&mut self, _cx: &Context<'_>, d: &AccessDecision, out: &mut Vec<Finding>) {
        if !matches!(d.decision, Decision::Allow | Decision::Error) || !in_list(&self.cfg.actions, &d.action) {
            return;
        }
        let l = self.limits(&d.roles);
        let mut breached: Vec<String> = Vec::new();
        if over(d.rows_read, l.rows_read) {
            breached.push(format!("read {} rows (limit {})", d.rows_read, l.rows_read));
        }
        if over(d.bytes_read, l.bytes_read) {
            breached.push(format!(
                "read {} (limit {})",
                bytesize::ByteSize(d.bytes_read),
                bytesize::ByteSize(l.bytes_read)
            ));
        }
        if over(d.duration_ms, l.duration_ms) {
            breached.push(format!("ran {:.1}s (limit {:.1}s)", secs(d.duration_ms), secs(l.duration_ms)));
        }
        if over(d.result_rows, l.result_rows) {
            breached.push(format!("returned {} rows (limit {})", d.result_rows, l.result_rows));
        }
        let has_limit = has_outer_limit(&d.query);
        if !d.query.is_empty() && !has_limit && over(d.rows_read, l.no_limit_rows_read) {
            breached.push(format!("scanned {} rows without a LIMIT (limit {})", d.rows_read, l.no_limit_rows_read));
        }
        if breached.is_empty() {
            return;
        }
        let shape = if d.query_fingerprint.is_empty() { d.resource.as_str() } else { d.query_fingerprint.as_str() };
        let principal = if d.principal.is_empty() { d.client_ip.as_str() } else { d.principal.as_str() };
        let query: String = d.query.chars().take(500).collect();
        out.push(
            Draft::about(RULE, self.cfg.severity, &format!("{}:{shape}", who(d)), d)
                .summary(format!("{principal} ran a runaway {} on {}: {}", d.action, d.resource, breached.join(", ")))
                .evidence("breached", breached.join("; "))
                .evidence("rows_read", d.rows_read)
                .evidence("bytes_read", d.bytes_read)
                .evidence("duration_ms", d.duration_ms)
                .evidence("result_rows", d.result_rows)
                .evidence("has_limit", has_limit)
                .evidence("status", d.status)
                .evidence("roles", d.roles.join(","))
                .evidence("query", query)
                .evidence("query_fingerprint", &d.query_fingerprint)
                .evidence("request_id", &d.request_id)
                .finish(),
        );
    }

    fn save(&self) -> Result<Vec<u8>, CheckpointError> {
        Ok(Vec::new())
    }

    fn load(&mut self, _state: &[u8]) -> Result<(), CheckpointError> {
        Ok(())
    }
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{cx_none, decision};
    use bytesize::ByteSize;
    use std::collections::BTreeMap;

    fn query(rows: u64, duration_ms: u64, sql: &str) -> AccessDecision {
        let mut d = decision("alice@example.com", 1_000, "192.0.2.1", "US");
        d.action = "select".into();
        d.resource = "clickhouse:analytics.events".into();
        d.rows_read = rows;
        d.duration_ms = duration_ms;
        d.query = sql.into();
        d.query_fingerprint = gatelog_model::query::fingerprint(sql);
        d.roles = vec!["analyst".into()];
        d
    }

    fn run(det: &mut Runaway, d: &AccessDecision) -> Vec<Finding> {
        let mut out = Vec::new();
        det.on_decision(&cx_none(), d, &mut out);
        out
    }

    #[test]
    fn fires_at_each_limit_and_not_below() {
        let mut det = Runaway::new(RunawayConfig::default());
        let limited = "SELECT * FROM t LIMIT 10";
        assert!(run(&mut det, &query(999_999_999, 59_999, limited)).is_empty(), "just under");
        let f = run(&mut det, &query(1_000_000_000, 0, limited));
        assert_eq!(f.len(), 1, "rows_read at the limit");
        assert!(f[0].summary.contains("read 1000000000 rows"), "{}", f[0].summary);
        assert_eq!(run(&mut det, &query(0, 60_000, limited)).len(), 1, "duration at the limit");
        let mut d = query(0, 0, limited);
        d.result_rows = 1_000_000;
        assert_eq!(run(&mut det, &d).len(), 1, "result rows");
        let mut d = query(0, 0, limited);
        d.bytes_read = ByteSize::gib(100).as_u64();
        assert_eq!(run(&mut det, &d).len(), 1, "bytes");
    }

    #[test]
    fn a_large_scan_without_limit_fires_and_with_limit_does_not() {
        let mut det = Runaway::new(RunawayConfig::default());
        assert!(run(&mut det, &query(100_000_000, 10, "SELECT * FROM t LIMIT 5")).is_empty());
        assert!(run(&mut det, &query(99_999_999, 10, "SELECT * FROM t")).is_empty());
        let f = run(&mut det, &query(100_000_000, 10, "SELECT * FROM t WHERE x IN (SELECT x FROM u LIMIT 3)"));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].evidence["has_limit"], "false");
        assert_eq!(f[0].principal, "alice@example.com");
        assert!(f[0].dedup_key.starts_with("runaway_select:alice@example.com:"));
    }

    #[test]
    fn only_queries_that_ran_count() {
        let mut det = Runaway::new(RunawayConfig::default());
        let mut d = query(5_000_000_000, 0, "SELECT 1");
        d.decision = Decision::Deny;
        assert!(run(&mut det, &d).is_empty());
        d.decision = Decision::Error;
        assert_eq!(run(&mut det, &d).len(), 1, "a timed-out query still ran");
        d.action = "insert".into();
        assert!(run(&mut det, &d).is_empty());
        d.action = "SELECT".into();
        assert_eq!(run(&mut det, &d).len(), 1, "actions compare case-insensitively");
    }

    #[test]
    fn roles_raise_limits_and_the_highest_wins() {
        let cfg = RunawayConfig {
            roles: BTreeMap::from([
                ("etl".into(), RunawayLimits { rows_read: Some(10_000_000_000), ..RunawayLimits::default() }),
                ("big".into(), RunawayLimits { rows_read: Some(50_000_000_000), ..RunawayLimits::default() }),
                ("batch".into(), RunawayLimits { duration: Some(Duration::ZERO), ..RunawayLimits::default() }),
            ]),
            ..RunawayConfig::default()
        };
        let mut det = Runaway::new(cfg);
        let mut d = query(20_000_000_000, 0, "SELECT 1 LIMIT 1");
        d.roles = vec!["etl".into()];
        assert_eq!(run(&mut det, &d).len(), 1, "over etl's limit");
        d.roles = vec!["etl".into(), "big".into()];
        assert!(run(&mut det, &d).is_empty(), "big's higher limit applies");
        let mut slow = query(0, 3_600_000, "SELECT 1 LIMIT 1");
        slow.roles = vec!["batch".into()];
        assert!(run(&mut det, &slow).is_empty(), "0 turns the duration check off for the role");
    }
}
