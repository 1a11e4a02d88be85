//! [`Mailer`]: the outbox loop of `gatelog serve`. Every `poll_interval` it reads from
//! ClickHouse what is undelivered, asks [`crate::plan`] what to do, and does it, recording
//! each attempt in `alert_deliveries` as it goes:
//!
//! 1. folds (one insert), so a digest's membership is fixed before anything is sent;
//! 2. each mail due: render, hand over, then record `sent` (or `failed` with the error). A
//!    crash between the hand-over and the record sends the mail again at the next start,
//!    with the same Message-ID: at least once to the server, recognisably one message.
//!
//! After a failed hand-over the round stops and no mail is tried until the retry backoff
//! has passed (doubling while failures go on): an SMTP outage costs one attempt per backoff,
//! not one per alert. ClickHouse unreachable: the round fails, is logged, and the next round
//! tries again; nothing is lost, since what is undelivered is always read from ClickHouse.

use crate::config::{ConfigError, NotifyConfig};
use crate::mail::{Mail, MailKind};
use crate::plan::{Outcome, Pending, Step, backoff, plan, window_start};
use crate::render::{AlertFacts, RenderError, Renderer};
use crate::stats::NotifyStats;
use crate::transport::{FileTransport, SendError, SmtpTransport, Transport};
use gatelog_model::{Alert, Clock, UnixMillis};
use gatelog_store::sql::deliveries::AlertDelivery;
use gatelog_store::{Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::watch;

/// Undelivered alerts read per round (the oldest first; the rest come in later rounds).
pub const PENDING_LIMIT: u64 = 10_000;
/// Findings of an alert read for its mail.
const FINDINGS_PER_MAIL: u64 = 20;

/// Why the mailer cannot go on (or a round failed).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the outbox cannot use clickhouse: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Undelivered alerts at the start of the round.
    pub pending: usize,
    pub sent: usize,
    pub failed: usize,
    pub folded: usize,
    /// Alert mails left for a later round: the decisions behind them are not stored yet.
    pub postponed: usize,
    /// The first failure's message.
    pub error: Option<String>,
    /// When something not due now becomes due.
    pub next_due: Option<UnixMillis>,
}

/// The outbox loop (see the module docs).
#[derive(Debug)]
pub struct Mailer {
    config: NotifyConfig,
    renderer: Renderer,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    stats: Arc<NotifyStats>,
    /// Consecutive failed hand-overs, and no attempt before this instant.
    transport_failures: u32,
    paused_until: Option<UnixMillis>,
}

fn record(
    alert: &Alert,
    mail: &Mail,
    attempt: u32,
    channel: &str,
    result: &Result<String, SendError>,
    at: UnixMillis,
) -> AlertDelivery {
    let (outcome, target, error) = match result {
        Ok(target) => (Outcome::Sent, target.clone(), String::new()),
        Err(e) => (Outcome::Failed, String::new(), e.to_string()),
    };
    AlertDelivery {
        alert_id: alert.alert_id.clone(),
        tenant: alert.tenant.clone(),
        rule_id: alert.rule_id.clone(),
        kind: mail.kind.as_str().into(),
        message_id: mail.message_id.clone(),
        attempt,
        channel: channel.into(),
        target,
        outcome: outcome.as_str().into(),
        error,
        at_ms: at.0,
        ..AlertDelivery::default()
    }
    .seal()
}

impl Mailer {
    /// A mailer over `transport`; links point at `base_url`.
    pub fn new(
        config: NotifyConfig,
        base_url: &str,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        stats: Arc<NotifyStats>,
    ) -> Result<Mailer, NotifyError> {
        config.validate()?;
        let renderer = Renderer::new(&config, base_url)?;
        Ok(Mailer { config, renderer, transport, clock, stats, transport_failures: 0, paused_until: None })
    }

    /// The transport `config` asks for: SMTP with `[notify.smtp]`, else `.eml` files under
    /// `outbox_dir` (default `<data_dir>/outbox`).
    pub fn transport_for(config: &NotifyConfig, data_dir: &Path) -> Result<Arc<dyn Transport>, ConfigError> {
        Ok(match &config.smtp {
            Some(smtp) => Arc::new(SmtpTransport::new(smtp)?),
            None => Arc::new(FileTransport::new(config.outbox_dir.clone().unwrap_or_else(|| data_dir.join("outbox")))),
        })
    }

    /// Where mails go: `host:port`, or the outbox directory.
    pub fn destination(&self) -> String {
        self.transport.destination()
    }

    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Reads the outbox and does what is due (see the module docs).
    pub async fn round(&mut self, store: &Store) -> Result<RoundReport, NotifyError> {
        let now = self.clock.now();
        let opens = store.undelivered_opens(&self.config.severities(), PENDING_LIMIT).await?;
        self.stats.pending.store(opens.len() as u64, Ordering::Relaxed);
        let mut report = RoundReport { pending: opens.len(), ..RoundReport::default() };
        if opens.is_empty() {
            return Ok(report);
        }
        let ids: Vec<&str> = opens.iter().map(|o| o.alert_id.as_str()).collect();
        let mut alerts: BTreeMap<String, Alert> =
            store.alerts_by_ids(&ids).await?.into_iter().map(|a| (a.alert_id.clone(), a)).collect();
        let mut rows: BTreeMap<String, Vec<AlertDelivery>> = BTreeMap::new();
        for d in store.deliveries_of(&ids).await? {
            rows.entry(d.alert_id.clone()).or_default().push(d);
        }
        let pending: Vec<Pending> = opens
            .iter()
            .filter_map(|o| {
                let alert = alerts.remove(&o.alert_id)?;
                Some(Pending {
                    alert,
                    opened: UnixMillis(o.opened_ms),
                    deliveries: rows.remove(&o.alert_id).unwrap_or_default(),
                })
            })
            .collect();
        let begun = store.deliveries_begun_since(window_start(now, self.config.rate_limit.window)).await?;
        let plan = plan(&pending, &begun, now, &self.config);
        report.next_due = plan.next_due;
        let by_id: BTreeMap<&str, &Pending> = pending.iter().map(|p| (p.alert.alert_id.as_str(), p)).collect();
        let channel = self.transport.channel();

        let folds: Vec<AlertDelivery> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Fold { alert_id, message_id } => by_id.get(alert_id.as_str()).map(|p| {
                    AlertDelivery {
                        alert_id: alert_id.clone(),
                        tenant: p.alert.tenant.clone(),
                        rule_id: p.alert.rule_id.clone(),
                        kind: MailKind::Digest.as_str().into(),
                        message_id: message_id.clone(),
                        attempt: 0,
                        channel: channel.as_str().into(),
                        outcome: Outcome::Folded.as_str().into(),
                        at_ms: now.0,
                        ..AlertDelivery::default()
                    }
                    .seal()
                }),
                _ => None,
            })
            .collect();
        store.record_deliveries(&folds).await?;
        self.stats.add(MailKind::Digest, channel, Outcome::Folded, folds.len() as u64);
        report.folded = folds.len();
        if !folds.is_empty() {
            tracing::info!(alerts = folds.len(), "rate limit reached: alerts folded into the window's digest");
        }

        for step in &plan.steps {
            if self.paused_until.is_some_and(|until| self.clock.now() < until) {
                break;
            }
            let sent = match step {
                Step::Fold { .. } => continue,
                Step::Send { alert_id, attempt } => match by_id.get(alert_id.as_str()) {
                    Some(p) => self.send_alert(store, p, *attempt).await?,
                    None => continue,
                },
                Step::SendDigest { message_id, alert_ids, window_start, attempt } => {
                    let listed: Vec<(Alert, UnixMillis)> = alert_ids
                        .iter()
                        .filter_map(|id| by_id.get(id.as_str()).map(|p| (p.alert.clone(), p.opened)))
                        .collect();
                    self.send_digest(store, message_id, &listed, *window_start, *attempt).await?
                }
            };
            match sent {
                None => report.postponed += 1,
                Some(Ok(())) => report.sent += 1,
                Some(Err(e)) => {
                    report.failed += 1;
                    report.error.get_or_insert(e);
                    break;
                }
            }
        }
        Ok(report)
    }

    /// `None`: postponed (the decisions behind it are not stored yet, see `events_grace`).
    async fn send_alert(
        &mut self,
        store: &Store,
        p: &Pending,
        attempt: u32,
    ) -> Result<Option<Result<(), String>>, NotifyError> {
        let alert = &p.alert;
        let findings = store.alert_findings(&alert.alert_id, FINDINGS_PER_MAIL).await?;
        let mut seen = BTreeSet::new();
        let event_ids: Vec<&str> = findings
            .iter()
            .flat_map(|f| f.finding.event_ids.iter())
            .map(String::as_str)
            .filter(|id| seen.insert(*id))
            .collect();
        let n = self.config.events_per_mail;
        let wanted = &event_ids[..event_ids.len().min(n)];
        let events = store.decisions_by_ids(&alert.tenant, wanted, n as u64).await?;
        let grace = i64::try_from(self.config.events_grace.as_millis()).unwrap_or(i64::MAX);
        if events.len() < wanted.len() && self.clock.now().0 < p.opened.0.saturating_add(grace) {
            // The ClickHouse sink has not stored them yet: the next round looks again.
            return Ok(None);
        }
        let facts =
            AlertFacts { alert, opened: p.opened, findings: &findings, events: &events, total_events: event_ids.len() };
        let mail = self.renderer.alert_mail(facts, self.clock.now())?;
        let result = self.transport.send(&mail).await;
        let row = record(alert, &mail, attempt, self.transport.channel().as_str(), &result, self.clock.now());
        store.record_deliveries(std::slice::from_ref(&row)).await?;
        Ok(Some(self.after_attempt(MailKind::Alert, 1, &mail, attempt, result)))
    }

    async fn send_digest(
        &mut self,
        store: &Store,
        message_id: &str,
        listed: &[(Alert, UnixMillis)],
        window_start: UnixMillis,
        attempt: u32,
    ) -> Result<Option<Result<(), String>>, NotifyError> {
        if listed.is_empty() {
            return Ok(None);
        }
        let mail = self.renderer.digest_mail(message_id, listed, window_start, self.clock.now())?;
        let result = self.transport.send(&mail).await;
        let at = self.clock.now();
        let channel = self.transport.channel().as_str();
        let rows: Vec<AlertDelivery> =
            listed.iter().map(|(a, _)| record(a, &mail, attempt, channel, &result, at)).collect();
        store.record_deliveries(&rows).await?;
        Ok(Some(self.after_attempt(MailKind::Digest, listed.len(), &mail, attempt, result)))
    }

    /// Counts the attempt, logs a failure, and pauses the transport after one.
    fn after_attempt(
        &mut self,
        kind: MailKind,
        alerts: usize,
        mail: &Mail,
        attempt: u32,
        result: Result<String, SendError>,
    ) -> Result<(), String> {
        let channel = self.transport.channel();
        match result {
            Ok(target) => {
                self.stats.add(kind, channel, Outcome::Sent, 1);
                self.stats.transport_failing.store(false, Ordering::Relaxed);
                self.stats.set_last_error(None);
                self.transport_failures = 0;
                self.paused_until = None;
                tracing::info!(kind = kind.as_str(), message_id = %mail.message_id, alerts, attempt, to = %target, "alert mail delivered");
                Ok(())
            }
            Err(e) => {
                self.stats.add(kind, channel, Outcome::Failed, 1);
                self.stats.transport_failing.store(true, Ordering::Relaxed);
                self.transport_failures = self.transport_failures.saturating_add(1);
                let wait = backoff(self.transport_failures, &self.config.retry);
                let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                self.paused_until = Some(UnixMillis(self.clock.now().0.saturating_add(wait_ms)));
                let message = e.to_string();
                tracing::warn!(kind = kind.as_str(), message_id = %mail.message_id, attempt, error = %message, retry_in = %humantime::format_duration(wait), "cannot deliver an alert mail; retrying later");
                self.stats.set_last_error(Some(message.clone()));
                Err(message)
            }
        }
    }

    /// Runs rounds every `poll_interval` until `stop` says so. Waits for the store first.
    pub async fn run(mut self, mut store: watch::Receiver<Option<Store>>, stop: watch::Receiver<bool>) {
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let connected = tokio::select! {
            biased;
            () = stopped(stop.clone()) => return,
            s = store.wait_for(Option::is_some) => s.ok().and_then(|s| s.clone()),
        };
        let Some(store) = connected else { return };
        tracing::info!(to = %self.destination(), channel = self.transport.channel().as_str(), "alert mailer started");
        let mut failing = false;
        loop {
            let round = tokio::select! {
                biased;
                () = stopped(stop.clone()) => return,
                r = self.round(&store) => r,
            };
            match round {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("the alert outbox can read clickhouse again");
                }
                Ok(_) => {}
                Err(e) => {
                    self.stats.rounds_failed.fetch_add(1, Ordering::Relaxed);
                    if !failing {
                        tracing::warn!(error = %e, "the alert outbox cannot read or record deliveries; retrying");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                biased;
                () = stopped(stop.clone()) => return,
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }
}
