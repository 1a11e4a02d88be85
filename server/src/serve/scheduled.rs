//! Rules as code on their schedule in `gatelog serve` (`gatelog_watch::schedule`, when
//! `detect.enabled` and `detect.sql_rules.scheduled`): the rules are loaded at start (a rule
//! file that does not parse fails the start, naming the file and key), and the scheduler runs
//! on a background thread of its own. Its watermark is the ClickHouse sink's: a window runs
//! only once the sink has stored every record received before its end. Stopped at shutdown
//! before the sinks; a window interrupted then runs again at the next start (its findings
//! keep their ids).
//!
//! Its families on `/metrics` (`rule` is a rule id from the built-ins and
//! `detect.rules_dir`: a closed set fixed at start):
//!
//! | family | meaning |
//! | --- | --- |
//! | `gatelog_scheduled_runs_total{outcome}` | scheduled windows run since the start, `ok` or `failed` (each failure is retried) |
//! | `gatelog_scheduled_findings_total` | findings scheduled rules stored since the start |
//! | `gatelog_scheduled_alerts_opened_total` | alerts scheduled rules opened since the start |
//! | `gatelog_scheduled_rule_lag_seconds{rule}` | now minus the end of the rule's newest completed window (absent until it has one) |

use super::background::spawn_background;
use super::store_link::StoreLink;
use crate::config::Config;
use anyhow::Context;
use gatelog_consumer::Status;
use gatelog_edge::{MetricsCollector, TextWriter};
use gatelog_model::Clock;
use gatelog_spool::Spool;
use gatelog_watch::schedule::{ScheduleStats, Scheduler, Watermark};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long the scheduler gets to stop at shutdown.
/// The running scheduler.
#[derive(Debug)]
pub struct Scheduled {
    pub stats: Arc<ScheduleStats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Scheduled {
    /// Loads the rules and starts the scheduler, or `None` when disabled. `ch_sink` is the
    /// ClickHouse sink's status (the watermark).
    pub fn start(
        config: &Config,
        link: &StoreLink,
        ch_sink: Arc<Status>,
        spool: Spool,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Option<Scheduled>> {
        if !config.detect.enabled || !config.detect.sql_rules.scheduled {
            return Ok(None);
        }
        let rules = gatelog_watch::rules::load(config.detect.rules_dir.as_deref())
            .context("cannot load the rules to schedule (rules/*.toml, detect.rules_dir)")?;
        let stats = Arc::new(ScheduleStats::default());
        let watermark: Watermark = {
            let clock = clock.clone();
            Arc::new(move || ch_sink.stored_through(spool.last_seq(), clock.now()))
        };
        let scheduler = Scheduler::new(rules, config.detect.clone(), clock, watermark, stats.clone());
        let (stop, stop_rx) = watch::channel(false);
        let task = spawn_background("gatelog-rules", scheduler.run(link.subscribe(), stop_rx))
            .context("cannot start the scheduled rules thread")?;
        Ok(Some(Scheduled { stats, stop, task }))
    }

    /// The `/metrics` collector.
    pub fn metrics(&self, clock: Arc<dyn Clock>) -> ScheduleMetrics {
        ScheduleMetrics { stats: self.stats.clone(), clock }
    }

    /// Stops the scheduler ([`STOP_GRACE`] at most).
    pub async fn stop(self) {
        let late = "scheduled rules did not stop in time; the window they ran runs again at the next start";
        super::background::stop_job(&self.stop, self.task, Some(late)).await;
    }
}

#[derive(Debug)]
pub struct ScheduleMetrics {
    stats: Arc<ScheduleStats>,
    clock: Arc<dyn Clock>,
}

impl MetricsCollector for ScheduleMetrics {
    fn collect(&self, out: &mut TextWriter) {
        let s = &self.stats;
        let name = "gatelog_scheduled_runs_total";
        out.family(
            name,
            "counter",
            "Scheduled rule windows run since gatelog started, by outcome (failed ones are retried).",
        );
        out.sample(name, &[("outcome", "ok")], s.runs_ok.load(Ordering::Relaxed));
        out.sample(name, &[("outcome", "failed")], s.runs_failed.load(Ordering::Relaxed));
        let counters = [
            ("gatelog_scheduled_findings_total", "Findings scheduled rules stored since gatelog started.", &s.findings),
            (
                "gatelog_scheduled_alerts_opened_total",
                "Alerts scheduled rules opened since gatelog started.",
                &s.alerts_opened,
            ),
        ];
        for (name, help, value) in counters {
            out.family(name, "counter", help);
            out.sample(name, &[], value.load(Ordering::Relaxed));
        }
        let name = "gatelog_scheduled_rule_lag_seconds";
        out.family(name, "gauge", "Now minus the end of the rule's newest completed scheduled window.");
        let now = self.clock.now().0;
        for (rule, end) in s.completed() {
            if end > 0 {
                out.sample(name, &[("rule", &rule)], (now - end).max(0) as f64 / 1000.0);
            }
        }
    }
}
