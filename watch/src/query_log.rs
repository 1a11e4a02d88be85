//! The query-log job of `gatelog serve` (`[detect.query_log]`): every `interval`, the queries
//! that finished on the ClickHouse server `gatelog proxy` fronts since the last run are read
//! from its `system.query_log` (only those at or above the runaway floors), joined on
//! `query_id` to the decisions the proxy emitted (the proxy stamps `query_id` = the
//! decision's id, and asks the server to log it), and judged with the real figures
//! ([`gatelog_detect::query_log::judge`]). Findings and alerts are stored as scheduled rules
//! store theirs, so on-call is mailed the same way.
//!
//! Progress is stored with the data: each run is a `detector_runs` row (kind `query_log`,
//! rule [`RULE_ID`], the window of `event_time` seconds it covered). A start resumes after
//! the newest `ok` window, so a restart neither repeats nor skips (finding and alert ids
//! derive from content: a window judged twice stores nothing new). A failed run (either
//! server down, a refused query) is recorded as `failed` with its cause when gatelog's
//! ClickHouse answers, and its window is tried again after a backoff; nothing is skipped.
//! Queries the proxy did not forward (other clients of that server) match no decision.

use crate::rules::{RulesError, store_findings};
use gatelog_detect::config::RunawayConfig;
use gatelog_detect::query_log::{QueryLogRow, RULE_ID, floors, judge};
use gatelog_detect::{AlertGrouper, AlertsConfig, QueryLogConfig};
use gatelog_model::decision::DEFAULT_TENANT;
use gatelog_model::{AccessDecision, Clock};
use gatelog_store::Store;
use gatelog_store::sql::detection::DetectorRun;
use gatelog_store::sql::query_log::{Floors, finished_queries};
use std::sync::Arc;
use std::time::Instant;

/// The `detector_runs` kind of this job's runs.
pub const KIND: &str = "query_log";
/// The version its runs are recorded under (the position does not depend on thresholds).
const VERSION: &str = "1";
/// Rows read from the query log per run; a fuller window is finished by the next run.
pub const MAX_ROWS: u64 = 100_000;
/// Decisions looked up per query.
const IDS_PER_LOOKUP: usize = 1000;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryLogError {
    /// The fronted server did not answer or refused (the message never holds the password).
    #[error("fronted clickhouse {url}: {message}")]
    Fronted { url: String, message: String },
    #[error(transparent)]
    Store(#[from] gatelog_store::StoreError),
    #[error(transparent)]
    Rules(#[from] RulesError),
}

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub from_s: i64,
    pub to_s: i64,
    pub rows: u64,
    pub matched: u64,
    pub findings: u64,
    pub alerts_opened: u64,
}

/// The job; [`QueryLogJob::run_once`] is one run, [`QueryLogJob::run`] the loop.
pub struct QueryLogJob {
    config: QueryLogConfig,
    runaway: RunawayConfig,
    grouper: AlertGrouper,
    store: Store,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for QueryLogJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryLogJob").field("config", &self.config).finish_non_exhaustive()
    }
}

impl QueryLogJob {
    pub fn new(
        config: QueryLogConfig,
        runaway: RunawayConfig,
        alerts: &AlertsConfig,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, QueryLogError> {
        // reqwest is built without a crypto provider (an https:// fronted server needs one).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().timeout(config.timeout).build().map_err(|e| QueryLogError::Fronted {
            url: config.url.clone(),
            message: format!("cannot build an HTTP client: {e}"),
        })?;
        Ok(QueryLogJob { grouper: AlertGrouper::new(alerts), config, runaway, store, http, clock })
    }

    /// Where the next run starts (seconds): after the newest `ok` window, else
    /// `first_lookback` before now.
    async fn resume_from(&self, now_s: i64) -> Result<i64, QueryLogError> {
        let done = self.store.completed_windows(KIND).await?;
        let last = done.iter().filter(|w| w.rule_id == RULE_ID && w.ok_runs > 0).map(|w| w.last_ok_end_ms).max();
        let lookback = i64::try_from(self.config.first_lookback.as_secs()).unwrap_or(i64::MAX);
        Ok(last.map_or(now_s.saturating_sub(lookback), |ms| ms.div_euclid(1000)))
    }

    /// One run: the window from the stored position to `lag` before now, judged and
    /// recorded. `None` when there is nothing new to read yet.
    pub async fn run_once(&mut self) -> Result<Option<RunSummary>, QueryLogError> {
        let now = self.clock.now();
        let now_s = now.0.div_euclid(1000);
        let from_s = self.resume_from(now_s).await?;
        let to_s = now_s - i64::try_from(self.config.lag.as_secs()).unwrap_or(0);
        if to_s <= from_s {
            return Ok(None);
        }
        let started = Instant::now();
        let result = self.judge_window(from_s, to_s).await;
        let (end_s, rows, findings) = match &result {
            Ok(s) => (s.to_s, s.rows, s.findings),
            Err(_) => (to_s, 0, 0),
        };
        let run = DetectorRun {
            run_id: uuid::Uuid::new_v4().simple().to_string(),
            kind: KIND.into(),
            rule_id: RULE_ID.into(),
            rule_version: VERSION.into(),
            window_start_ms: from_s * 1000,
            window_end_ms: end_s * 1000,
            rows_scanned: rows,
            findings,
            started_at_ms: now.0,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            outcome: if result.is_ok() { "ok" } else { "failed" }.into(),
            error: result.as_ref().err().map(ToString::to_string).unwrap_or_default(),
            ..DetectorRun::default()
        };
        self.store.write_detector_run(&run).await?;
        result.map(Some)
    }

    async fn judge_window(&mut self, from_s: i64, to_s: i64) -> Result<RunSummary, QueryLogError> {
        let rows = self.fetch(from_s, to_s).await?;
        // A full page ends the window at its last second (read again next time: judging is
        // idempotent); a second holding more than a page is passed, with a warning.
        let end_s = match rows.last() {
            Some((_, at)) if rows.len() as u64 >= MAX_ROWS => {
                if *at > from_s {
                    *at
                } else {
                    tracing::warn!(
                        second = from_s,
                        rows = MAX_ROWS,
                        "query log: more finished queries in one second than a run reads; the rest of that second is not judged"
                    );
                    from_s + 1
                }
            }
            _ => to_s,
        };
        let rows: Vec<QueryLogRow> = rows.into_iter().filter(|(_, at)| *at < end_s).map(|(r, _)| r).collect();
        let decisions = self.decisions_of(&rows).await?;
        let mut findings = Vec::new();
        let mut matched = 0;
        for row in &rows {
            if let Some(d) = decisions.get(&row.query_id) {
                matched += 1;
                findings.extend(judge(&self.runaway, d, row));
            }
        }
        let opened = store_findings(&self.store, RULE_ID, &mut self.grouper, &findings, self.clock.now()).await?;
        Ok(RunSummary {
            from_s,
            to_s: end_s,
            rows: rows.len() as u64,
            matched,
            findings: findings.len() as u64,
            alerts_opened: opened,
        })
    }

    /// The finished queries of `[from_s, to_s)` at or above the floors, with their second.
    async fn fetch(&self, from_s: i64, to_s: i64) -> Result<Vec<(QueryLogRow, i64)>, QueryLogError> {
        let (read_rows, read_bytes, duration_ms, result_rows) = floors(&self.runaway);
        let floors = Floors { read_rows, read_bytes, duration_ms, result_rows };
        let sql = finished_queries("system.query_log", from_s, to_s, floors, MAX_ROWS);
        let fronted = |message: String| QueryLogError::Fronted { url: self.config.url.clone(), message };
        let mut request = self.http.post(&self.config.url).body(format!("{sql} FORMAT TabSeparated"));
        request = request.header("X-ClickHouse-User", &self.config.user);
        if !self.config.password.is_empty() {
            request = request.header("X-ClickHouse-Key", &self.config.password);
        }
        let response = request.send().await.map_err(|e| fronted(e.without_url().to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| fronted(e.without_url().to_string()))?;
        if !status.is_success() {
            return Err(fronted(format!("answered {status}: {}", text.chars().take(300).collect::<String>().trim())));
        }
        text.lines().filter(|l| !l.is_empty()).map(parse_line).collect::<Result<_, _>>().map_err(fronted)
    }

    /// The decisions the proxy emitted for `rows`, by event id (= query id).
    async fn decisions_of(
        &self,
        rows: &[QueryLogRow],
    ) -> Result<std::collections::HashMap<String, AccessDecision>, QueryLogError> {
        let ids: Vec<&str> = rows.iter().map(|r| r.query_id.as_str()).collect();
        let mut out = std::collections::HashMap::new();
        for chunk in ids.chunks(IDS_PER_LOOKUP) {
            let found = self.store.decisions_by_ids(DEFAULT_TENANT, chunk, chunk.len() as u64).await?;
            out.extend(found.into_iter().map(|d| (d.event_id.clone(), d)));
        }
        Ok(out)
    }

    /// Runs every `interval` until `stop` is true; a failed run is logged and retried with
    /// a doubling backoff (up to 10 × `interval`).
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut pause = self.config.interval;
        loop {
            match self.run_once().await {
                Ok(Some(s)) => {
                    pause = self.config.interval;
                    tracing::debug!(
                        from = s.from_s,
                        to = s.to_s,
                        rows = s.rows,
                        matched = s.matched,
                        findings = s.findings,
                        "query log judged"
                    );
                }
                Ok(None) => pause = self.config.interval,
                Err(e) => {
                    pause = (pause * 2).min(self.config.interval * 10);
                    tracing::warn!(error = %e, retry_in = ?pause, "query log run failed; the window is retried");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

/// One `TabSeparated` line of [`gatelog_store::sql::query_log::COLUMNS`].
fn parse_line(line: &str) -> Result<(QueryLogRow, i64), String> {
    let f: Vec<&str> = line.split('\t').collect();
    let [query_id, kind, read_rows, read_bytes, duration, result_rows, memory, exception, at] = f[..] else {
        return Err(format!("expected 9 columns, got {}", f.len()));
    };
    let num = |name: &str, v: &str| v.parse::<u64>().map_err(|_| format!("{name}: not a number: {v:?}"));
    let row = QueryLogRow {
        query_id: unescape(query_id),
        kind: u8::try_from(num("type", kind)?).map_err(|_| "type out of range".to_owned())?,
        read_rows: num("read_rows", read_rows)?,
        read_bytes: num("read_bytes", read_bytes)?,
        query_duration_ms: num("query_duration_ms", duration)?,
        result_rows: num("result_rows", result_rows)?,
        memory_usage: num("memory_usage", memory)?,
        exception: unescape(exception),
    };
    Ok((row, i64::try_from(num("event_time", at)?).unwrap_or(i64::MAX)))
}

/// `TabSeparated`'s escapes undone (`\t`, `\n`, `\\` and the other backslash forms).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_unescape() {
        let (row, at) =
            parse_line("q-1\t2\t5000\t40960\t12\t3\t4096\tCode: 159, e.what() = \\\\timeout\\n\t1740990001").unwrap();
        assert_eq!((row.query_id.as_str(), row.kind, row.read_rows, at), ("q-1", 2, 5000, 1_740_990_001));
        assert_eq!(row.exception, "Code: 159, e.what() = \\timeout\n");
        assert!(parse_line("q-1\t2").unwrap_err().contains("9 columns"));
        assert!(parse_line("q\tx\t1\t1\t1\t1\t1\t\t1").unwrap_err().contains("type"));
    }
}
