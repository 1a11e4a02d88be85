//! [`Scheduler`]: rules as code on their schedule inside `gatelog serve`.
//!
//! Each rule judges windows of arrival time `[to - window, to)` whose end `to` is a multiple
//! of its `schedule` ([`plan`]). A window runs once `to` is `detect.sql_rules.lag` in the past
//! *and* the ClickHouse sink has stored every record received before `to` (the
//! [`Watermark`]), so a spool flush that reaches ClickHouse late is still judged in its
//! window. Its findings are stored and grouped into alerts as `gatelog rules run --store`
//! does (ids derive from content: a window run twice stores nothing twice), and the run is
//! recorded in `detector_runs` (kind `scheduled`, the rule's version, the window, rows read,
//! findings, outcome). The notifier mails the alerts like any other.
//!
//! Where to resume comes from ClickHouse: the newest window each rule version completed
//! (`detector_runs`, kind `scheduled`, outcome `ok`), or, before any completed, the oldest
//! that failed, so a restart neither skips nor repeats a window. After downtime, missed windows run oldest first, back to
//! `detect.sql_rules.max_catch_up` before the newest due one; older ones are skipped with a
//! warning naming the `gatelog rules run` command that judges them. A rule without a
//! completed window (new, or a new version) starts at the newest due window.
//!
//! A run that fails (ClickHouse down, a query error, a write that fails) is recorded as a
//! `failed` run with its cause, logged (`scheduled rule run failed`, with rule and error),
//! and its window retried after `retry_initial_backoff`, doubling up to
//! `retry_max_backoff`, until it succeeds; later windows of that rule wait (nothing is
//! skipped). Failed run records that cannot be written (ClickHouse unreachable) are kept in
//! memory (at most [`MAX_PENDING_RUNS`]) and written once it answers again.

mod plan;

pub use plan::{Next, align_down, next_window};

use crate::rules::{RulesError, run_window, store_findings};
use gatelog_detect::{AlertGrouper, DetectConfig, SqlRule};
use gatelog_model::{Clock, UnixMillis};
use gatelog_store::Store;
use gatelog_store::sql::detection::DetectorRun;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// `detector_runs.kind` of a scheduled window.
pub const SCHEDULED_KIND: &str = "scheduled";
/// Failed run records kept while ClickHouse cannot take them; the oldest go first.
pub const MAX_PENDING_RUNS: usize = 10_000;
/// Longest sleep between two looks at the clock and the watermark.
const POLL: Duration = Duration::from_secs(1);

/// The instant before which ClickHouse holds every arrival (`None`: not known yet).
pub type Watermark = Arc<dyn Fn() -> Option<UnixMillis> + Send + Sync>;

/// What the scheduler did since the start, for `/metrics` (rules come from the config: a
/// closed set).
#[derive(Debug, Default)]
pub struct ScheduleStats {
    pub runs_ok: AtomicU64,
    pub runs_failed: AtomicU64,
    pub findings: AtomicU64,
    pub alerts_opened: AtomicU64,
    /// Per rule id: the end (ms) of its newest completed window (0: none yet).
    completed: Mutex<BTreeMap<String, i64>>,
}

impl ScheduleStats {
    fn set_completed(&self, rule: &str, end_ms: i64) {
        let mut map = self.completed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(rule.to_owned(), end_ms);
    }

    /// `(rule, end of its newest completed window)`, by rule id (0: none yet).
    pub fn completed(&self) -> Vec<(String, i64)> {
        let map = self.completed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// One rule's schedule state.
#[derive(Debug)]
struct RuleState {
    rule: SqlRule,
    /// End of the newest completed window.
    done: Option<i64>,
    grouper: AlertGrouper,
    failures: u32,
    /// Clock time (ms) before which a failed window is not retried.
    retry_at: i64,
}

/// See the module docs.
pub struct Scheduler {
    config: DetectConfig,
    clock: Arc<dyn Clock>,
    watermark: Watermark,
    stats: Arc<ScheduleStats>,
    rules: Vec<RuleState>,
    pending: VecDeque<DetectorRun>,
    resumed: bool,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").field("rules", &self.rules.len()).field("pending", &self.pending.len()).finish()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl Scheduler {
    pub fn new(
        rules: Vec<SqlRule>,
        config: DetectConfig,
        clock: Arc<dyn Clock>,
        watermark: Watermark,
        stats: Arc<ScheduleStats>,
    ) -> Scheduler {
        let rules = rules
            .into_iter()
            .map(|rule| {
                stats.set_completed(&rule.id, 0);
                let grouper = AlertGrouper::new(&config.alerts);
                RuleState { rule, done: None, grouper, failures: 0, retry_at: i64::MIN }
            })
            .collect();
        Scheduler { config, clock, watermark, stats, rules, pending: VecDeque::new(), resumed: false }
    }

    /// Failed run records waiting for ClickHouse.
    pub fn pending_runs(&self) -> usize {
        self.pending.len()
    }

    /// Runs until `stop`: waits for the store, resumes from `detector_runs`, then runs what
    /// is due, sleeping at most a second between looks.
    pub async fn run(mut self, mut link: watch::Receiver<Option<Store>>, stop: watch::Receiver<bool>) {
        let store = tokio::select! {
            biased;
            () = stopped(stop.clone()) => return,
            store = link.wait_for(Option::is_some) => match store { Ok(s) => s.clone(), Err(_) => None },
        };
        let Some(store) = store else { return };
        tracing::info!(rules = self.rules.len(), "scheduled rules start");
        while !*stop.borrow() {
            let wake = self.step(&store).await;
            let now = self.clock.now().0;
            let nap = Duration::from_millis(u64::try_from(wake.saturating_sub(now)).unwrap_or(0)).min(POLL);
            tokio::select! {
                biased;
                () = stopped(stop.clone()) => break,
                () = tokio::time::sleep(nap.max(Duration::from_millis(10))) => {}
            }
        }
        if !self.pending.is_empty() {
            tracing::warn!(
                runs = self.pending.len(),
                "failed scheduled runs not recorded: clickhouse did not take them"
            );
        }
    }

    /// Everything due at the clock's present: pending failed runs written, the resume points
    /// read (once), then each rule's due windows, oldest first, until none is due or one
    /// fails. Returns the clock time (ms) at which something may next be due.
    pub async fn step(&mut self, store: &Store) -> i64 {
        self.flush_pending(store).await;
        let now = self.clock.now().0;
        let backoff = self.config.sql_rules.retry_initial_backoff;
        if !self.resumed {
            match store.completed_windows(SCHEDULED_KIND).await {
                Ok(done) => self.resume(&done),
                Err(e) => {
                    tracing::warn!(error = %e, "scheduled rules cannot read where they stopped; retrying");
                    return now.saturating_add(ms(backoff));
                }
            }
        }
        let mut wake = now.saturating_add(ms(POLL));
        for i in 0..self.rules.len() {
            wake = wake.min(self.run_due(store, i).await);
        }
        wake
    }

    fn resume(&mut self, done: &[gatelog_store::detection::CompletedWindow]) {
        for state in &mut self.rules {
            let version = state.rule.version.to_string();
            let found = done.iter().find(|w| w.rule_id == state.rule.id && w.rule_version == version);
            state.done = found.and_then(|w| w.resume_after(ms(state.rule.schedule)));
            if let Some(w) = found.filter(|w| w.ok_runs > 0) {
                self.stats.set_completed(&state.rule.id, w.last_ok_end_ms);
            }
            tracing::info!(rule = %state.rule.id, version = %version, resume_after_ms = ?state.done, "scheduled rule resumes");
        }
        self.resumed = true;
    }

    /// Runs rule `i`'s due windows; returns when its next one may be due (clock ms).
    async fn run_due(&mut self, store: &Store, i: usize) -> i64 {
        let lag = ms(self.config.sql_rules.lag);
        let catch_up = ms(self.config.sql_rules.max_catch_up);
        loop {
            let now = self.clock.now().0;
            let state = &self.rules[i];
            if state.retry_at > now {
                return state.retry_at;
            }
            let due_until = match (self.watermark)() {
                Some(stored) => (now - lag).min(stored.0),
                None => return now.saturating_add(ms(POLL)),
            };
            let (schedule, window) = (ms(state.rule.schedule), ms(state.rule.window));
            match next_window(schedule, window, catch_up, state.done, due_until) {
                Next::Wait { to } => return to.saturating_add(lag),
                Next::Run { from, to, skipped } => {
                    if let Some((lo, hi)) = skipped {
                        tracing::warn!(
                            rule = %state.rule.id,
                            from = %UnixMillis(lo),
                            to = %UnixMillis(hi),
                            "scheduled rule skips arrivals older than detect.sql_rules.max_catch_up; judge them with `gatelog rules run --rule {} --from {} --to {} --store`",
                            state.rule.id, UnixMillis(lo), UnixMillis(hi)
                        );
                    }
                    if !self.run_window(store, i, (from, to)).await {
                        return self.rules[i].retry_at;
                    }
                }
            }
        }
    }

    /// Runs one window of rule `i`; true when it completed (its run recorded `ok`).
    async fn run_window(&mut self, store: &Store, i: usize, (from, to): (i64, i64)) -> bool {
        let started = (self.clock.now(), Instant::now());
        let state = &mut self.rules[i];
        let before = state.grouper.clone();
        let window = (UnixMillis(from), UnixMillis(to));
        let mut run = DetectorRun {
            run_id: uuid::Uuid::new_v4().simple().to_string(),
            kind: SCHEDULED_KIND.into(),
            rule_id: state.rule.id.clone(),
            rule_version: state.rule.version.to_string(),
            window_start_ms: from,
            window_end_ms: to,
            started_at_ms: started.0.0,
            outcome: "ok".into(),
            ..DetectorRun::default()
        };
        let result: Result<u64, RulesError> = async {
            let r = run_window(store, &state.rule, window, &self.config.sql_rules).await?;
            run.rows_scanned = r.rows_read;
            run.findings = r.findings.len() as u64;
            let opened =
                store_findings(store, &state.rule.id, &mut state.grouper, &r.findings, self.clock.now()).await?;
            run.duration_ms = u64::try_from(started.1.elapsed().as_millis()).unwrap_or(u64::MAX);
            store
                .write_detector_run(&run)
                .await
                .map_err(|source| RulesError::Store { rule: state.rule.id.clone(), source })?;
            Ok(opened)
        }
        .await;
        match result {
            Ok(opened) => {
                state.done = Some(to);
                state.failures = 0;
                state.retry_at = i64::MIN;
                self.stats.runs_ok.fetch_add(1, Ordering::Relaxed);
                self.stats.findings.fetch_add(run.findings, Ordering::Relaxed);
                self.stats.alerts_opened.fetch_add(opened, Ordering::Relaxed);
                self.stats.set_completed(&state.rule.id, to);
                tracing::debug!(rule = %state.rule.id, from = %window.0, to = %window.1, findings = run.findings,
                    rows_read = run.rows_scanned, duration_ms = run.duration_ms, "scheduled rule ran");
                true
            }
            Err(e) => {
                // The grouper forgets what this attempt added: the retry opens (and records
                // the `open` events of) the same alerts again, with the same ids.
                state.grouper = before;
                // A rule's first window failed: it is the next to run, whatever the clock.
                state.done = state.done.or(Some(to - ms(state.rule.schedule)));
                state.failures = state.failures.saturating_add(1);
                let initial = self.config.sql_rules.retry_initial_backoff;
                let backoff = initial
                    .saturating_mul(2u32.saturating_pow(state.failures.saturating_sub(1).min(20)))
                    .min(self.config.sql_rules.retry_max_backoff);
                state.retry_at = self.clock.now().0.saturating_add(ms(backoff));
                self.stats.runs_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(rule = %state.rule.id, from = %window.0, to = %window.1, attempt = state.failures,
                    retry_in_s = backoff.as_secs_f64(), error = %e,
                    "scheduled rule run failed; the window is retried");
                run.outcome = "failed".into();
                run.error = e.to_string();
                run.duration_ms = u64::try_from(started.1.elapsed().as_millis()).unwrap_or(u64::MAX);
                if self.pending.len() >= MAX_PENDING_RUNS {
                    self.pending.pop_front();
                }
                self.pending.push_back(run);
                self.flush_pending(store).await;
                false
            }
        }
    }

    /// Writes the failed run records ClickHouse could not take before, oldest first; stops
    /// at the first that fails (kept for the next step).
    async fn flush_pending(&mut self, store: &Store) {
        while let Some(run) = self.pending.front() {
            if let Err(e) = store.write_detector_run(run).await {
                tracing::debug!(error = %e, pending = self.pending.len(), "failed scheduled runs wait for clickhouse");
                return;
            }
            self.pending.pop_front();
        }
    }
}
