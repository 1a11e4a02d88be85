//! Detection's families on `/metrics` (when `detect.enabled`). Closed label sets: `rule` is
//! one of the built-in rule ids or `other`, `state` one of `open`, `acknowledged`,
//! `resolved`, `outcome` `ok` or `failed`. Its spool position, state and lag as a consumer
//! are the `gatelog_sink_*{sink="detect"}` families.
//!
//! | family | meaning |
//! | --- | --- |
//! | `gatelog_detect_findings_total{rule}` | findings stored since the start |
//! | `gatelog_detect_alerts_opened_total` | alerts opened since the start |
//! | `gatelog_detect_decisions_total` | decisions judged since the start |
//! | `gatelog_detect_runs_total{outcome}` | streaming runs (checkpoints) stored, and attempts that failed |
//! | `gatelog_alerts{state}` | alerts by lifecycle state, as ClickHouse last said (every tick) |
//! | `gatelog_detect_lag_seconds` | 0 once detection judged and checkpointed the spool's last record; else the age of the oldest record it has not |
//! | `gatelog_detect_warming_up` | 1 while baselines warm up from ClickHouse history |

use gatelog_consumer::Statuses;
use gatelog_edge::{MetricsCollector, TextWriter};
use gatelog_model::Clock;
use gatelog_spool::Spool;
use gatelog_watch::{DETECT_CONSUMER, WatchStats};
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[derive(Debug)]
pub struct DetectMetrics {
    pub stats: Arc<WatchStats>,
    pub statuses: Statuses,
    pub spool: Spool,
    pub clock: Arc<dyn Clock>,
}

impl MetricsCollector for DetectMetrics {
    fn collect(&self, out: &mut TextWriter) {
        let s = &self.stats;
        let name = "gatelog_detect_findings_total";
        out.family(name, "counter", "Findings detection stored since gatelog started, by rule.");
        for (rule, n) in s.findings_by_rule() {
            out.sample(name, &[("rule", rule)], n);
        }
        let counters = [
            ("gatelog_detect_alerts_opened_total", "Alerts detection opened since gatelog started.", &s.alerts_opened),
            ("gatelog_detect_decisions_total", "Decisions detection judged since gatelog started.", &s.decisions),
        ];
        for (name, help, value) in counters {
            out.family(name, "counter", help);
            out.sample(name, &[], value.load(Ordering::Relaxed));
        }
        let name = "gatelog_detect_runs_total";
        out.family(name, "counter", "Streaming detection runs stored (ok) and write attempts that failed.");
        out.sample(name, &[("outcome", "ok")], s.runs_ok.load(Ordering::Relaxed));
        out.sample(name, &[("outcome", "failed")], s.runs_failed.load(Ordering::Relaxed));
        if let Some(states) = s.alert_states() {
            let name = "gatelog_alerts";
            out.family(
                name,
                "gauge",
                "Alerts by lifecycle state (open, acknowledged, resolved), as ClickHouse last said.",
            );
            for (state, n) in states {
                out.sample(name, &[("state", state)], n);
            }
        }
        let snapshot =
            self.statuses.get(DETECT_CONSUMER).map(|status| status.snapshot(self.spool.last_seq(), self.clock.now()));
        if let Some(lag) = snapshot.and_then(|s| s.lag_seconds) {
            let name = "gatelog_detect_lag_seconds";
            out.family(
                name,
                "gauge",
                "0 once detection judged and checkpointed the spool's last record; else the age of the oldest record it has not.",
            );
            out.sample(name, &[], lag);
        }
        let name = "gatelog_detect_warming_up";
        out.family(name, "gauge", "1 while detection's baselines warm up from ClickHouse history.");
        out.sample(name, &[], u8::from(s.warming.load(Ordering::Relaxed)));
    }
}
