//! Canaries: the proof that monitoring operated. Every `detect.canary.interval`,
//! [`CanaryRunner`] posts one marked synthetic decision (see `gatelog_model::canary`) through
//! `gatelog serve`'s own receiver (a [`Sender`]: the server's loopback HTTP client with an
//! ingest token only it holds), so the canary takes the road every decision takes: receiver
//! → spool → detection consumer → finding and alert in ClickHouse. It then polls ClickHouse
//! for the alert the built-in `canary` rule raised and judges the run ([`plan::judge`]) by
//! when detection first *stored* the alert (not when the poll saw it), so a slow poll or a
//! ClickHouse outage while judging does not change the verdict.
//!
//! Each run is one row of `canary_runs` (outcome `ok`, `missed`, `failed_to_send`,
//! `interrupted`); the canary's own alert is resolved (`benign`, by `gatelog-canary`) and never
//! mailed; a `missed` or `failed_to_send` run opens an alert of rule `canary_missed`
//! (severity high), which the mailer sends to on-call like any other. The run in flight is
//! kept in [`state`]'s file at every step, so one that `gatelog serve` stopped during is
//! judged after the restart (`interrupted` unless its alert came in time), never forgotten.

pub mod plan;
pub mod state;

use crate::service::{self, AlertsError, Transition};
use gatelog_detect::CanaryConfig;
use gatelog_model::canary::{CANARY_ACTOR, CANARY_RULE, canary_dedup_key, canary_event_id};
use gatelog_model::{AlertAction, Clock, Disposition, UnixMillis};
use gatelog_store::sql::canary::CanaryRun;
use gatelog_store::{Store, StoreError};
use plan::{Outcome, decision, failed_to_send, judge, missed_alert, next_due};
use state::{CanaryState, InFlight, state_path};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// A fresh ingest token for the canary's sender, held only in memory by `gatelog serve`
/// (never configured, logged or written): two random v4 UUIDs, 244 random bits.
pub fn internal_token() -> String {
    format!("gatelog-canary-{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// How a canary decision reaches the receiver: one NDJSON body, `Ok` on a 2xx.
pub trait Sender: Send + Sync + std::fmt::Debug {
    fn send(&self, ndjson: Vec<u8>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// What `/metrics` shows of the canaries.
#[derive(Debug)]
pub struct CanaryStats {
    runs: [AtomicU64; 4],
    /// The last `ok` run's latency (ms), -1 before one.
    last_latency_ms: AtomicI64,
}

impl Default for CanaryStats {
    fn default() -> Self {
        CanaryStats { runs: Default::default(), last_latency_ms: AtomicI64::new(-1) }
    }
}

impl CanaryStats {
    /// Runs recorded since the start, by outcome.
    pub fn runs(&self) -> Vec<(&'static str, u64)> {
        Outcome::ALL.iter().zip(&self.runs).map(|(o, n)| (o.as_str(), n.load(Ordering::Relaxed))).collect()
    }

    /// The latency of the last run that saw its alert, if any (ms).
    pub fn last_latency_ms(&self) -> Option<i64> {
        Some(self.last_latency_ms.load(Ordering::Relaxed)).filter(|l| *l >= 0)
    }

    fn record(&self, run: &CanaryRun) {
        if let Some(i) = Outcome::ALL.iter().position(|o| o.as_str() == run.outcome) {
            self.runs[i].fetch_add(1, Ordering::Relaxed);
        }
        if run.latency_ms >= 0 {
            self.last_latency_ms.store(run.latency_ms, Ordering::Relaxed);
        }
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct CanaryRunner {
    pub config: CanaryConfig,
    pub data_dir: PathBuf,
    pub store: watch::Receiver<Option<Store>>,
    pub clock: Arc<dyn Clock>,
    pub sender: Arc<dyn Sender>,
    pub stats: Arc<CanaryStats>,
    /// How often ClickHouse is asked for the canary's alert.
    pub poll: Duration,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Sleeps `d`; false when `stop` came first.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let stopped = tokio::select! {
        _ = stop.wait_for(|s| *s) => true,
        () = tokio::time::sleep(d) => false,
    };
    !stopped && !*stop.borrow()
}

impl CanaryRunner {
    /// Runs canaries until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let path = state_path(&self.data_dir);
        let now = self.clock.now();
        let mut state = match CanaryState::load(&path) {
            Ok(Some(s)) => s,
            Ok(None) => CanaryState { first_start_ms: now.0, ..CanaryState::default() },
            Err(e) => {
                tracing::warn!(error = %e, "canary state unreadable; starting afresh");
                CanaryState { first_start_ms: now.0, ..CanaryState::default() }
            }
        };
        self.save(&state);
        let mut resumed_at = state.inflight.as_ref().map(|_| now);
        if let Some(f) = &state.inflight {
            tracing::info!(run = %f.run_id, "judging the canary that was in flight when gatelog serve stopped");
        }
        loop {
            if let Some(f) = state.inflight.clone() {
                if !self.finish(&mut state, f, resumed_at, &mut stop).await {
                    return;
                }
                resumed_at = None;
                continue;
            }
            let due = next_due(&state, ms(self.config.interval), self.clock.now());
            loop {
                let left = due.0.saturating_sub(self.clock.now().0);
                if left <= 0 {
                    break;
                }
                let wait = Duration::from_millis(u64::try_from(left).unwrap_or(0)).min(Duration::from_secs(1));
                if !pause(&mut stop, wait).await {
                    return;
                }
            }
            self.send(&mut state).await;
        }
    }

    fn save(&self, state: &CanaryState) {
        if let Err(e) = state.save(&state_path(&self.data_dir)) {
            tracing::warn!(error = %e, "cannot write the canary state");
        }
    }

    /// Sends a new canary; the run is in flight afterwards (with its verdict when refused).
    async fn send(&self, state: &mut CanaryState) {
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let attempted = self.clock.now();
        let mut f = InFlight {
            run_id: run_id.clone(),
            event_id: canary_event_id(&run_id),
            attempted_at_ms: attempted.0,
            sent_at_ms: None,
            deadline_ms: ms(self.config.deadline),
            verdict: None,
        };
        state.inflight = Some(f.clone());
        self.save(state);
        let mut body = serde_json::to_vec(&decision(&run_id, attempted)).unwrap_or_default();
        body.push(b'\n');
        match self.sender.send(body).await {
            Ok(()) => {
                let sent = self.clock.now();
                tracing::debug!(run = %run_id, "canary sent");
                f.sent_at_ms = Some(sent.0);
            }
            Err(e) => {
                tracing::warn!(run = %run_id, error = %e, "canary not taken by the receiver");
                f.verdict = Some(failed_to_send(&f, &e, self.clock.now()));
            }
        }
        state.last_sent_ms = Some(attempted.0);
        state.inflight = Some(f);
        self.save(state);
    }

    /// Judges (unless judged) and records the run in flight; false when stopped first (it
    /// stays in flight for the next start).
    async fn finish(
        &self,
        state: &mut CanaryState,
        mut f: InFlight,
        resumed_at: Option<UnixMillis>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut verdict = match f.verdict.clone() {
            Some(v) => v,
            None => loop {
                let store = self.store.borrow().clone();
                if let Some(store) = store {
                    match store.canary_alert(CANARY_RULE, &canary_dedup_key(&f.run_id)).await {
                        Ok(found) => {
                            if let Some(v) = judge(&f, found.as_ref(), self.clock.now(), resumed_at) {
                                break v;
                            }
                        }
                        Err(e) => {
                            tracing::debug!(run = %f.run_id, error = %e, "cannot look for the canary's alert yet")
                        }
                    }
                }
                if !pause(stop, self.poll).await {
                    return false;
                }
            },
        };
        if Outcome::ALL.iter().any(|o| o.pages() && o.as_str() == verdict.outcome) {
            verdict.missed_alert_id = missed_alert(&verdict, UnixMillis(verdict.recorded_at_ms)).1.alert_id;
        }
        f.verdict = Some(verdict.clone());
        state.inflight = Some(f);
        self.save(state);
        loop {
            let store = self.store.borrow().clone();
            if let Some(store) = store {
                match self.record(&store, &verdict).await {
                    Ok(()) => break,
                    Err(e) => tracing::warn!(run = %verdict.run_id, error = %e, "cannot record the canary run yet"),
                }
            }
            if !pause(stop, Duration::from_secs(1)).await {
                return false;
            }
        }
        self.stats.record(&verdict);
        tracing::info!(run = %verdict.run_id, outcome = %verdict.outcome, latency_ms = verdict.latency_ms,
            alert = %verdict.alert_id, missed_alert = %verdict.missed_alert_id, error = %verdict.error, "canary run recorded");
        state.inflight = None;
        self.save(state);
        true
    }

    /// Writes the paging alert of a missed run, the run's row, and resolves the canary's own
    /// alert; every write is idempotent, so a crash in between is repaired by doing it again.
    async fn record(&self, store: &Store, run: &CanaryRun) -> Result<(), StoreError> {
        if !run.missed_alert_id.is_empty() {
            let at = UnixMillis(run.recorded_at_ms);
            let (finding, alert, opened) = missed_alert(run, at);
            store.write_findings(&[(finding, alert.alert_id.clone())], 0, at).await?;
            store.write_alerts(std::slice::from_ref(&alert), at).await?;
            store.append_alert_events(std::slice::from_ref(&opened)).await?;
        }
        store.record_canary_runs(std::slice::from_ref(run)).await?;
        if !run.alert_id.is_empty() {
            let note = match run.outcome.as_str() {
                "ok" => format!(
                    "canary run {}: detected {} ms after it was sent; monitoring operated",
                    run.run_id, run.latency_ms
                ),
                _ => format!("canary run {} ({}): {}", run.run_id, run.outcome, run.error),
            };
            let t = Transition {
                action: AlertAction::Resolve,
                disposition: Some(Disposition::Benign),
                note,
                actor: CANARY_ACTOR.to_owned(),
            };
            match service::transition(store, &run.alert_id, t, self.clock.as_ref()).await {
                Ok(_) | Err(AlertsError::Transition(_)) => {}
                Err(AlertsError::Store(e)) => return Err(e),
                Err(e) => tracing::warn!(run = %run.run_id, error = %e, "cannot resolve the canary's alert"),
            }
        }
        Ok(())
    }
}
