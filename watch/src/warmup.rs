//! Warm-up: without a usable checkpoint, the engine learns from ClickHouse history before it
//! judges the stream, so a restart (or a first start over a backfilled database) does not
//! greet every principal as new. It reads, for `detect.runtime.warmup_lookback` back from
//! now, the batches' arrivals (`ingest_batches`, for source cadence) and the decisions, a UTC
//! day at a time in time order, both only up to the spool position the stream then starts
//! after (backfilled rows, position 0, included): what comes later comes from the spool, so
//! nothing is learnt twice. The findings warm-up would raise are dropped
//! ([`Engine::warm`]): history was judged when it arrived, or is for a backtest.

use gatelog_detect::{AlertGrouper, Arrival, DetectConfig, Engine};
use gatelog_model::{Clock, UnixMillis};
use gatelog_store::sql::detection::DetectorRun;
use gatelog_store::{Store, StoreError};
use std::sync::Arc;
use std::time::Instant;

const MS_PER_DAY: i64 = 86_400_000;
/// Decisions read per query at most (whole days; a day larger than this is one query): one
/// query per day would read the parts holding each day once per day (`decisions` is ordered
/// by event id, not time), while ClickHouse sorts each query's rows in memory (~0.5 KB a row).
pub const WARM_CHUNK_DECISIONS: u64 = 1_000_000;

/// What a warm-up learnt from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmReport {
    pub decisions: u64,
    pub arrivals: u64,
    pub days: u64,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
}

/// A fresh engine and grouper taught by the history up to spool position `position`.
/// `progress` is told each day as it is read.
pub async fn warm_up(
    store: &Store,
    config: &DetectConfig,
    position: u64,
    clock: &Arc<dyn Clock>,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<(Engine, AlertGrouper, WarmReport), WarmError> {
    let mut engine = Engine::new(config.clone()).map_err(|e| WarmError::Config(e.to_string()))?;
    let grouper = AlertGrouper::new(&config.alerts);
    let now = clock.now().0;
    let lookback = i64::try_from(config.runtime.warmup_lookback.as_millis()).unwrap_or(i64::MAX);
    let from = now.saturating_sub(lookback);
    let mut report = WarmReport { window_start_ms: from, window_end_ms: from, ..WarmReport::default() };
    if lookback == 0 {
        return Ok((engine, grouper, report));
    }
    let arrivals = store.history_arrivals(UnixMillis(from), position).await?;
    let arrivals: Vec<Arrival> =
        arrivals.iter().map(|a| Arrival::new(&a.dataset, "", UnixMillis(a.received_at_ms), a.decisions)).collect();
    engine.warm_arrivals(&arrivals);
    report.arrivals = arrivals.len() as u64;
    let first_day = from.div_euclid(MS_PER_DAY);
    let days: Vec<(i64, u64)> = store.decision_days().await?.into_iter().filter(|(day, _)| *day >= first_day).collect();
    let chunks = chunk_days(&days, WARM_CHUNK_DECISIONS);
    let mut done_days = 0;
    for (first, last, n) in chunks {
        progress(format!(
            "warming up from ClickHouse history: day {} of {}, {} decisions so far",
            done_days + 1,
            days.len(),
            report.decisions
        ));
        done_days += n;
        let mut scan = store.history_days(first, last, position)?;
        while let Some(d) = scan.next().await? {
            if d.time.0 < from {
                continue;
            }
            report.window_end_ms = report.window_end_ms.max(d.time.0);
            engine.warm(std::iter::once(&d));
            report.decisions += 1;
        }
        report.days += n as u64;
    }
    Ok((engine, grouper, report))
}

/// Consecutive runs of `(day, decisions)` holding at most `max` decisions each (a larger day
/// alone): `(first day, last day, days)`.
pub fn chunk_days(days: &[(i64, u64)], max: u64) -> Vec<(i64, i64, usize)> {
    let mut out: Vec<(i64, i64, usize)> = Vec::new();
    let mut held = 0;
    for &(day, n) in days {
        match out.last_mut() {
            Some(chunk) if held + n <= max => {
                chunk.1 = day;
                chunk.2 += 1;
                held += n;
            }
            _ => {
                out.push((day, day, 1));
                held = n;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::chunk_days;

    #[test]
    fn days_are_read_in_chunks_of_whole_days() {
        let days = [(1, 400), (2, 400), (3, 400), (5, 2000), (6, 100), (7, 100)];
        assert_eq!(chunk_days(&days, 1000), vec![(1, 2, 2), (3, 3, 1), (5, 5, 1), (6, 7, 2)]);
        assert_eq!(chunk_days(&[], 1000), vec![]);
    }
}

/// Why a warm-up failed.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("detect config: {0}")]
    Config(String),
}

impl WarmError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, WarmError::Store(e) if e.is_retryable())
    }
}

/// The run record of a warm-up.
pub fn warm_run(
    report: &WarmReport,
    rule_version: &str,
    started: (UnixMillis, Instant),
    error: Option<String>,
) -> DetectorRun {
    DetectorRun {
        run_id: uuid::Uuid::new_v4().simple().to_string(),
        kind: "warmup".into(),
        rule_id: crate::runtime::STREAMING_RULE.into(),
        rule_version: rule_version.to_owned(),
        window_start_ms: report.window_start_ms,
        window_end_ms: report.window_end_ms,
        spool_from: 0,
        spool_to: 0,
        rows_scanned: report.decisions + report.arrivals,
        findings: 0,
        started_at_ms: started.0.0,
        duration_ms: u64::try_from(started.1.elapsed().as_millis()).unwrap_or(u64::MAX),
        outcome: if error.is_some() { "failed".into() } else { "ok".into() },
        error: error.unwrap_or_default(),
    }
}
