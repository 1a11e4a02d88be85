//! Backtest: stored history through the detectors, to see what would have fired in a period
//! (`gatelog detect --from --to`). Nothing is written and nothing is sent.
//!
//! The engine first learns from `detect.runtime.warmup_lookback` before `from` exactly as a
//! warm-up does (findings dropped), then judges `[from, to)` as the streaming runtime would
//! have: decisions in event-time order, batch arrivals (`ingest_batches`) interleaved by
//! receipt time, and a tick every [`TICK`] of event time so source silence is judged too.
//! Findings are grouped into alerts by the same [`AlertGrouper`] as in `gatelog serve`.
//!
//! Each event counts once: ClickHouse may still hold an unmerged second copy of a row (a
//! re-delivery in another batch), so a day's `(tenant, event_id)` seen before is skipped,
//! as `decisions FINAL` would.

use gatelog_detect::{AlertGrouper, Arrival, DetectConfig, Engine};
use gatelog_model::{AccessDecision, Alert, Finding, UnixMillis};
use gatelog_store::{Store, StoreError};
use std::collections::{BTreeMap, HashSet};

const MS_PER_DAY: i64 = 86_400_000;
/// How often (in event time) time-driven detectors are asked about the present.
pub const TICK: i64 = 60_000;

/// What to backtest.
#[derive(Debug, Clone)]
pub struct BacktestRequest {
    pub from: UnixMillis,
    pub to: UnixMillis,
    /// Only findings of these rule ids (all when empty); the engine still runs every enabled
    /// detector, so baselines are the same as in `serve`.
    pub rules: Vec<String>,
}

/// What a backtest found.
#[derive(Debug, Default)]
pub struct BacktestReport {
    /// Decisions learnt from before `from`.
    pub warmed: u64,
    /// Decisions judged in `[from, to)`.
    pub judged: u64,
    /// Second copies of an event skipped.
    pub duplicates: u64,
    pub days: u64,
    pub findings: Vec<Finding>,
    /// The alerts the findings would have raised, in the order they opened.
    pub alerts: Vec<Alert>,
}

impl BacktestReport {
    /// Findings per rule id.
    pub fn findings_by_rule(&self) -> BTreeMap<&str, u64> {
        let mut out = BTreeMap::new();
        for f in &self.findings {
            *out.entry(f.rule_id.as_str()).or_insert(0) += 1;
        }
        out
    }
}

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("detect config: {0}")]
    Config(String),
    #[error("unknown rule {rule:?}; the streaming rules (built-in and Sigma) are: {known}")]
    UnknownRule { rule: String, known: String },
    #[error("--from ({from}) must be before --to ({to})")]
    EmptyPeriod { from: UnixMillis, to: UnixMillis },
}

/// Checks the request against the rule catalogue.
/// Checks the request against the rule catalogue: the built-in rule ids and the ids of the
/// Sigma rules of `config` (`detect.sigma_dir`).
pub fn validate(request: &BacktestRequest, config: &DetectConfig) -> Result<(), BacktestError> {
    if request.from.0 >= request.to.0 {
        return Err(BacktestError::EmptyPeriod { from: request.from, to: request.to });
    }
    let sigma = config.sigma_rules.rules();
    for rule in &request.rules {
        let known_id = gatelog_detect::rules::RULE_IDS.contains(&rule.as_str()) || sigma.iter().any(|s| &s.id == rule);
        if !known_id {
            let mut known: Vec<&str> = gatelog_detect::rules::RULE_IDS.to_vec();
            known.extend(sigma.iter().map(|s| s.id.as_str()));
            return Err(BacktestError::UnknownRule { rule: rule.clone(), known: known.join(", ") });
        }
    }
    Ok(())
}

/// The state of one backtest as it walks through history.
struct Walk<'a> {
    engine: Engine,
    grouper: AlertGrouper,
    arrivals: Vec<Arrival>,
    next_arrival: usize,
    next_tick: i64,
    request: &'a BacktestRequest,
    report: BacktestReport,
    scratch: Vec<Finding>,
}

impl Walk<'_> {
    /// Everything that happened up to event time `t` (exclusive) besides decisions.
    fn advance_to(&mut self, t: i64) {
        loop {
            let arrival_at = self.arrivals.get(self.next_arrival).map(|a| a.received_at.0);
            let tick_at = (self.next_tick < self.request.to.0).then_some(self.next_tick);
            match (arrival_at.filter(|a| *a < t), tick_at.filter(|k| *k < t)) {
                (Some(a), k) if k.is_none_or(|k| a <= k) => {
                    let arrival = &self.arrivals[self.next_arrival];
                    if a < self.request.from.0 {
                        self.engine.warm_arrivals(std::iter::once(arrival));
                    } else {
                        self.engine.observe_arrival(arrival, &mut self.scratch);
                    }
                    self.next_arrival += 1;
                }
                (_, Some(k)) => {
                    self.engine.tick(UnixMillis(k), &mut self.scratch);
                    self.next_tick = k + TICK;
                }
                _ => break,
            }
            self.collect();
        }
    }

    fn decision(&mut self, d: &AccessDecision) {
        self.advance_to(d.time.0);
        if d.time.0 < self.request.from.0 {
            self.engine.warm(std::iter::once(d));
            self.report.warmed += 1;
        } else {
            self.engine.process(d, &mut self.scratch);
            self.report.judged += 1;
            self.collect();
        }
    }

    fn collect(&mut self) {
        for f in self.scratch.drain(..) {
            if !self.request.rules.is_empty() && !self.request.rules.contains(&f.rule_id) {
                continue;
            }
            let grouped = self.grouper.add(&f);
            if grouped.opened {
                self.report.alerts.push(grouped.alert);
            } else if let Some(a) = self.report.alerts.iter_mut().rev().find(|a| a.alert_id == grouped.alert.alert_id) {
                *a = grouped.alert;
            }
            self.report.findings.push(f);
        }
    }
}

/// Runs the backtest; `progress` is told each day as it is read.
pub async fn backtest(
    store: &Store,
    config: &DetectConfig,
    request: &BacktestRequest,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<BacktestReport, BacktestError> {
    validate(request, config)?;
    let engine = Engine::new(config.clone()).map_err(|e| BacktestError::Config(e.to_string()))?;
    let lookback = i64::try_from(config.runtime.warmup_lookback.as_millis()).unwrap_or(i64::MAX);
    let start = request.from.0.saturating_sub(lookback);
    let arrivals = store.history_arrivals(UnixMillis(start), u64::MAX).await?;
    let arrivals: Vec<Arrival> = arrivals
        .iter()
        .filter(|a| a.received_at_ms < request.to.0)
        .map(|a| Arrival::new(&a.dataset, "", UnixMillis(a.received_at_ms), a.decisions))
        .collect();
    let mut walk = Walk {
        engine,
        grouper: AlertGrouper::new(&config.alerts),
        arrivals,
        next_arrival: 0,
        next_tick: request.from.0,
        request,
        report: BacktestReport::default(),
        scratch: Vec::new(),
    };
    let (first_day, last_day) = (start.div_euclid(MS_PER_DAY), (request.to.0 - 1).div_euclid(MS_PER_DAY));
    let days: Vec<i64> = store
        .decision_days()
        .await?
        .into_iter()
        .map(|(day, _)| day)
        .filter(|day| (first_day..=last_day).contains(day))
        .collect();
    for (i, day) in days.iter().enumerate() {
        progress(format!(
            "day {} of {} ({}): {} decisions learnt, {} judged, {} findings",
            i + 1,
            days.len(),
            UnixMillis(day * MS_PER_DAY),
            walk.report.warmed,
            walk.report.judged,
            walk.report.findings.len()
        ));
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut scan = store.history_day(*day, u64::MAX)?;
        while let Some(d) = scan.next().await? {
            if d.time.0 < start || d.time.0 >= request.to.0 {
                continue;
            }
            if !d.event_id.is_empty() && !seen.insert((d.tenant.clone(), d.event_id.clone())) {
                walk.report.duplicates += 1;
                continue;
            }
            walk.decision(&d);
        }
        walk.report.days += 1;
    }
    walk.advance_to(request.to.0);
    Ok(walk.report)
}
