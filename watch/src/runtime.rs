//! [`DetectRuntime`]: the third spool consumer of `gatelog serve`. It reads every spool
//! record (without raw lines), runs the [`Engine`] over it, groups the findings into alerts,
//! and commits a group of records at a time, in this order:
//!
//! 1. findings (`findings`, idempotent by id), alerts as they now are (`alerts`), the `open`
//!    event of each new alert (`alert_events`, id derived from the alert), and the run
//!    record (`detector_runs`);
//! 2. with managed ClickHouse, a `syncfs` of its data dir (its parts are not fsynced);
//! 3. the checkpoint file: engine state + alert groups + the spool position they cover
//!    ([`crate::checkpoint`]), atomically;
//! 4. the spool acknowledgement.
//!
//! A crash anywhere replays from the last checkpoint: the engine and grouper are
//! deterministic and every row is keyed by an id derived from what it is about, so the
//! replay rewrites the same rows (one finding, one alert, one `open` event each) and loses
//! none. A group closes after `detect.runtime.max_batches` records or `max_linger`, so a
//! finding is stored within about a second of the batch's 2xx (plus the write).
//!
//! At start: the checkpoint is restored; without one (or with one that cannot be used, which
//! is logged) the engine warms up from ClickHouse history ([`crate::warmup`]) and a
//! checkpoint is written at once. Meanwhile the status says `rebuilding`. Every
//! `tick_interval` the engine is asked about the present ([`Engine::tick`]: source silence)
//! and the alert counts by state are refreshed for `/metrics`.
//!
//! ClickHouse unreachable: the group's writes are retried with backoff (status `waiting`),
//! nothing is acknowledged meanwhile and the spool keeps the records; a failed attempt is
//! recorded as a `failed` run once ClickHouse is back. What no retry fixes (a refused
//! statement, a checkpoint that cannot be written) stops the consumer with the reason.

use crate::checkpoint::{Checkpoint, CheckpointFileError};
use crate::stats::WatchStats;
use crate::warmup::{WarmError, warm_run, warm_up};
use gatelog_consumer::{Acker, Consumer, ConsumerError, Decode, Delivery, Status, WhenGone};
use gatelog_detect::{AlertGrouper, DetectConfig, Engine};
use gatelog_model::{Alert, AlertEvent, Clock, Finding, UnixMillis};
use gatelog_spool::Spool;
use gatelog_store::durability::Durability;
use gatelog_store::sql::detection::DetectorRun;
use gatelog_store::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The spool consumer's name and its `sink` label.
pub const DETECT_CONSUMER: &str = "detect";
/// `detector_runs.rule_id` of the streaming engine (its rule set as a whole).
pub const STREAMING_RULE: &str = "streaming";
/// How often `next_until` returns to look at the stop flag and the tick.
const POLL: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Why the runtime stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error("clickhouse refused detection's {what}: {source}")]
    Store { what: &'static str, source: StoreError },
    #[error("cannot write the detection checkpoint: {0}")]
    Checkpoint(#[from] CheckpointFileError),
    #[error("detection engine: {0}")]
    Engine(String),
    #[error("cannot make the findings up to spool position {seq} durable: {source}")]
    Durability { seq: u64, source: std::io::Error },
}

/// Everything the runtime needs (see the module docs).
#[derive(Debug)]
pub struct DetectRuntime {
    pub config: DetectConfig,
    pub data_dir: PathBuf,
    pub spool: Spool,
    pub status: Arc<Status>,
    pub stats: Arc<WatchStats>,
    pub store: watch::Receiver<Option<Store>>,
    pub clock: Arc<dyn Clock>,
    pub durability: Option<Arc<dyn Durability>>,
}

/// Findings and figures of one group of spool records.
#[derive(Debug, Default)]
struct Group {
    from: u64,
    to: u64,
    records: usize,
    decisions: u64,
    findings: Vec<Finding>,
    window: Option<(i64, i64)>,
    newest_received: i64,
    started: Option<(UnixMillis, Instant)>,
}

/// The rule set's version for run records: the enabled rules' ids and versions and the
/// configuration, hashed.
pub fn rule_set_version(config: &DetectConfig) -> String {
    let mut hasher = Sha256::new();
    for (id, version) in gatelog_detect::rules::enabled_versions(config) {
        hasher.update(format!("{id}@{version};").as_bytes());
    }
    hasher.update(postcard::to_allocvec(config).unwrap_or_default());
    hasher.update(config.sigma_rules.hash().as_bytes());
    hex::encode(&hasher.finalize()[..8])
}

fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl DetectRuntime {
    /// Runs until `stop` says so (`Ok`), or detection cannot go on.
    pub async fn run(self, stop: watch::Receiver<bool>) -> Result<(), WatchError> {
        let mut link = self.store.clone();
        let store = tokio::select! {
            biased;
            () = stopped(stop.clone()) => return Ok(()),
            store = link.wait_for(Option::is_some) => match store { Ok(s) => s.clone(), Err(_) => None },
        };
        let Some(store) = store else { return Ok(()) };
        let version = rule_set_version(&self.config);
        let Some((mut engine, mut grouper, position)) = self.start_state(&store, &version, &stop).await? else {
            return Ok(());
        };
        let mut consumer = Consumer::register(
            &self.spool,
            self.status.clone(),
            position,
            WhenGone::ResumeAtOldest,
            Decode::WithoutRaw,
        )
        .await?;
        self.status.set_running();
        let acker = consumer.acker();
        let mut position = consumer.read_position();
        let tick = self.config.runtime.tick_interval;
        let mut next_tick = Instant::now();
        loop {
            if stopping(&stop) {
                return Ok(());
            }
            let mut group = Group { from: position, to: position, ..Group::default() };
            let wait = tokio::time::Instant::now() + POLL.min(next_tick.saturating_duration_since(Instant::now()));
            if let Some(first) = consumer.next_until(wait).await? {
                self.judge(&mut engine, first, &mut group);
                let linger = tokio::time::Instant::now() + self.config.runtime.max_linger;
                while group.records < self.config.runtime.max_batches {
                    match consumer.next_until(linger).await? {
                        Some(d) => self.judge(&mut engine, d, &mut group),
                        None => break,
                    }
                }
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + tick;
                let before = group.findings.len();
                engine.tick(self.clock.now(), &mut group.findings);
                if group.findings.len() > before && group.started.is_none() {
                    group.started = Some((self.clock.now(), Instant::now()));
                }
                self.refresh_alert_states(&store).await;
            }
            if group.records == 0 && group.findings.is_empty() {
                continue;
            }
            if !self.commit(&store, &mut engine, &mut grouper, group, &version, &acker, &stop).await? {
                return Ok(()); // stopped while ClickHouse was away: the spool keeps the group
            }
            position = consumer.read_position();
        }
    }

    fn judge(&self, engine: &mut Engine, d: Delivery, group: &mut Group) {
        if group.started.is_none() {
            group.started = Some((self.clock.now(), Instant::now()));
        }
        engine.process_batch(&d.batch, &mut group.findings);
        group.to = d.seq;
        group.records += 1;
        if d.batch.is_audit() {
            return;
        }
        group.decisions += d.batch.decisions.len() as u64;
        group.newest_received = group.newest_received.max(d.batch.received_at.0);
        for t in d.batch.decisions.iter().map(|x| x.time.0) {
            group.window = Some(match group.window {
                Some((lo, hi)) => (lo.min(t), hi.max(t)),
                None => (t, t),
            });
        }
    }

    /// Restores the checkpoint, or warms up; `None` when stopped meanwhile.
    async fn start_state(
        &self,
        store: &Store,
        version: &str,
        stop: &watch::Receiver<bool>,
    ) -> Result<Option<(Engine, AlertGrouper, u64)>, WatchError> {
        let last = self.spool.last_seq();
        match Checkpoint::load(&self.data_dir) {
            Ok(Some(cp)) if cp.position <= last => {
                let engine = Engine::restore(self.config.clone(), &cp.engine);
                let grouper = AlertGrouper::load(&self.config.alerts, &cp.alerts);
                match (engine, grouper) {
                    (Ok((engine, report)), Ok(grouper)) => {
                        for fresh in &report.fresh {
                            tracing::info!(detector = %fresh, "detector starts fresh");
                        }
                        tracing::info!(position = cp.position, "detection resumes from its checkpoint");
                        return Ok(Some((engine, grouper, cp.position)));
                    }
                    (Err(e), _) => {
                        tracing::warn!(error = %e, "detection checkpoint unusable; warming up from clickhouse history instead")
                    }
                    (_, Err(e)) => {
                        tracing::warn!(error = %e, "detection checkpoint unusable; warming up from clickhouse history instead")
                    }
                }
            }
            Ok(Some(cp)) => tracing::warn!(
                position = cp.position,
                spool_last = last,
                "detection checkpoint is ahead of the spool (another spool?); warming up from clickhouse history instead"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "warming up from clickhouse history instead"),
        }
        let position = self.spool.stats().first_seq.saturating_sub(1);
        let mut backoff = Duration::from_millis(200);
        loop {
            self.stats.warming.store(true, Ordering::Relaxed);
            self.status.set_rebuilding("warming up the baselines from ClickHouse history");
            let started = (self.clock.now(), Instant::now());
            let status = self.status.clone();
            let progress = move |line: String| status.set_rebuilding(line);
            let attempt = tokio::select! {
                biased;
                () = stopped(stop.clone()) => return Ok(None),
                attempt = warm_up(store, &self.config, position, &self.clock, &progress) => attempt,
            };
            self.stats.warming.store(false, Ordering::Relaxed);
            match attempt {
                Ok((engine, grouper, report)) => {
                    tracing::info!(
                        decisions = report.decisions,
                        arrivals = report.arrivals,
                        days = report.days,
                        position,
                        seconds = started.1.elapsed().as_secs_f64(),
                        "detection warmed up from clickhouse history"
                    );
                    let run = warm_run(&report, version, started, None);
                    if let Err(e) = store.write_detector_run(&run).await {
                        tracing::warn!(error = %e, "cannot record the warm-up run");
                    }
                    let cp = Self::checkpoint_of(&engine, &grouper, position)?;
                    self.store_checkpoint(cp).await?;
                    return Ok(Some((engine, grouper, position)));
                }
                Err(WarmError::Config(e)) => return Err(WatchError::Engine(e)),
                Err(e) if e.is_retryable() => {
                    self.status.set_waiting(format!("cannot read ClickHouse history to warm up; retrying: {e}"));
                    tokio::select! {
                        biased;
                        () = stopped(stop.clone()) => return Ok(None),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(WarmError::Store(source)) => return Err(WatchError::Store { what: "history read", source }),
            }
        }
    }

    /// The checkpoint of this state (computed before any `await`: the engine is not `Sync`).
    fn checkpoint_of(engine: &Engine, grouper: &AlertGrouper, position: u64) -> Result<Checkpoint, WatchError> {
        Ok(Checkpoint {
            position,
            engine: engine.checkpoint().map_err(|e| WatchError::Engine(e.to_string()))?,
            alerts: grouper.save().map_err(|e| WatchError::Engine(e.to_string()))?,
        })
    }

    async fn store_checkpoint(&self, cp: Checkpoint) -> Result<(), WatchError> {
        let dir = self.data_dir.clone();
        tokio::task::spawn_blocking(move || cp.store(&dir))
            .await
            .map_err(|e| WatchError::Engine(format!("checkpoint writer: {e}")))??;
        Ok(())
    }

    /// Stores a group (see the module docs); `Ok(false)` when stopped before it was stored.
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        store: &Store,
        engine: &mut Engine,
        grouper: &mut AlertGrouper,
        group: Group,
        version: &str,
        acker: &Acker,
        stop: &watch::Receiver<bool>,
    ) -> Result<bool, WatchError> {
        let now = self.clock.now();
        let mut grouped: Vec<(Finding, String)> = Vec::with_capacity(group.findings.len());
        let mut alerts: BTreeMap<String, Alert> = BTreeMap::new();
        let mut opened: Vec<AlertEvent> = Vec::new();
        for f in &group.findings {
            let g = grouper.add(f);
            if g.opened {
                opened.push(AlertEvent::opened(&g.alert, now));
            }
            grouped.push((f.clone(), g.alert.alert_id.clone()));
            alerts.insert(g.alert.alert_id.clone(), g.alert);
        }
        let alerts: Vec<Alert> = alerts.into_values().collect();
        let (started_at, started) = group.started.unwrap_or((now, Instant::now()));
        let (lo, hi) = group.window.unwrap_or((0, 0));
        let mut run = DetectorRun {
            run_id: uuid::Uuid::new_v4().simple().to_string(),
            kind: "streaming".into(),
            rule_id: STREAMING_RULE.into(),
            rule_version: version.to_owned(),
            window_start_ms: lo,
            window_end_ms: hi,
            spool_from: group.from,
            spool_to: group.to,
            rows_scanned: group.decisions,
            findings: grouped.len() as u64,
            started_at_ms: started_at.0,
            duration_ms: 0,
            outcome: "ok".into(),
            error: String::new(),
        };
        let mut backoff = Duration::from_millis(200);
        let mut failed: Option<String> = None;
        loop {
            run.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            match self.write(store, &grouped, &alerts, &opened, &run, group.to, now, failed.as_deref()).await {
                Ok(()) => break,
                Err((what, e)) if e.is_retryable() => {
                    tracing::debug!(error = %e, what, "detection: clickhouse write failed; retrying");
                    self.status.set_waiting(format!("cannot store findings in ClickHouse, retrying: {e}"));
                    self.stats.runs_failed.fetch_add(u64::from(failed.is_none()), Ordering::Relaxed);
                    failed = Some(e.to_string());
                    tokio::select! {
                        biased;
                        () = stopped(stop.clone()) => return Ok(false),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err((what, source)) => return Err(WatchError::Store { what, source }),
            }
        }
        if let Some(durability) = &self.durability {
            let durability = durability.clone();
            let synced = tokio::task::spawn_blocking(move || durability.sync()).await;
            match synced {
                Ok(Ok(())) => {}
                Ok(Err(source)) => return Err(WatchError::Durability { seq: group.to, source }),
                Err(e) => return Err(WatchError::Engine(format!("sync thread: {e}"))),
            }
        }
        let cp = Self::checkpoint_of(engine, grouper, group.to)?;
        self.store_checkpoint(cp).await?;
        if group.records > 0 {
            acker.ack(group.to)?;
        }
        if failed.is_some() {
            self.status.set_running();
        }
        let stats = &self.stats;
        for (f, _) in &grouped {
            stats.add_finding(&f.rule_id);
        }
        stats.alerts_opened.fetch_add(opened.len() as u64, Ordering::Relaxed);
        stats.decisions.fetch_add(group.decisions, Ordering::Relaxed);
        stats.runs_ok.fetch_add(1, Ordering::Relaxed);
        stats.newest_event_ms.fetch_max(hi, Ordering::Relaxed);
        stats.newest_received_ms.fetch_max(group.newest_received, Ordering::Relaxed);
        if !opened.is_empty() {
            tracing::info!(alerts = opened.len(), findings = grouped.len(), position = group.to, "alerts opened");
        }
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        store: &Store,
        findings: &[(Finding, String)],
        alerts: &[Alert],
        opened: &[AlertEvent],
        run: &DetectorRun,
        seq: u64,
        now: UnixMillis,
        failed: Option<&str>,
    ) -> Result<(), (&'static str, StoreError)> {
        if !findings.is_empty() {
            store.write_findings(findings, seq, now).await.map_err(|e| ("findings", e))?;
            store.write_alerts(alerts, now).await.map_err(|e| ("alerts", e))?;
        }
        if !opened.is_empty() {
            store.append_alert_events(opened).await.map_err(|e| ("alert events", e))?;
        }
        if let Some(error) = failed {
            let failed_run = DetectorRun {
                run_id: format!("{}-failed", run.run_id),
                outcome: "failed".into(),
                error: error.to_owned(),
                ..run.clone()
            };
            store.write_detector_run(&failed_run).await.map_err(|e| ("detector run", e))?;
        }
        store.write_detector_run(run).await.map_err(|e| ("detector run", e))
    }

    async fn refresh_alert_states(&self, store: &Store) {
        match tokio::time::timeout(Duration::from_secs(5), store.alert_state_counts()).await {
            Ok(Ok(counts)) => self.stats.set_alert_states(&counts),
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot count alerts by state"),
            Err(_) => tracing::debug!("counting alerts by state timed out"),
        }
    }
}
