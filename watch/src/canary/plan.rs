//! The pure parts of a canary run: when the next one is due, the decision it sends, how a
//! run is judged from the alert detection stored (or did not), and the rows a verdict
//! writes. No I/O, no clock: times come in as arguments, so each rule is a unit test.

use super::state::{CanaryState, InFlight};
use gatelog_model::canary::{CANARY_DATASET, CANARY_MISSED_RULE, CANARY_POLICY, CANARY_PRINCIPAL, canary_event_id};
use gatelog_model::decision::DEFAULT_TENANT;
use gatelog_model::{
    AccessDecision, Alert, AlertEvent, Decision, Finding, PrincipalType, Severity, Source, UnixMillis,
};
use gatelog_store::sql::canary::{CanaryAlert, CanaryRun};

/// How a run ended (`canary_runs.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Its alert was stored within the deadline.
    Ok,
    /// It was sent and its alert was not stored within the deadline: pages.
    Missed,
    /// The receiver did not take it: pages.
    FailedToSend,
    /// `gatelog serve` stopped during the run and its alert did not come in time after the
    /// restart (or it was never sent): recorded, not paged (the next run judges afresh).
    Interrupted,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Ok, Outcome::Missed, Outcome::FailedToSend, Outcome::Interrupted];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Missed => "missed",
            Outcome::FailedToSend => "failed_to_send",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// Whether this outcome opens a `canary_missed` alert (which pages).
    pub fn pages(self) -> bool {
        matches!(self, Outcome::Missed | Outcome::FailedToSend)
    }
}

/// When the next canary goes: one `interval` after the last one sent, or after the first
/// start when none was; never before `now` (a long stop is followed by one canary, no
/// catching up).
pub fn next_due(state: &CanaryState, interval_ms: i64, now: UnixMillis) -> UnixMillis {
    let from = state.last_sent_ms.unwrap_or(state.first_start_ms);
    UnixMillis(from.saturating_add(interval_ms).max(now.0))
}

/// The canary decision of run `run_id` (see `gatelog_model::canary` for its marks).
pub fn decision(run_id: &str, now: UnixMillis) -> AccessDecision {
    let mut d = AccessDecision::new(canary_event_id(run_id), now, CANARY_DATASET, Source::Proxy);
    d.decision = Decision::Log;
    d.principal = CANARY_PRINCIPAL.to_owned();
    d.principal_type = PrincipalType::Service;
    d.client_ip = "127.0.0.1".to_owned();
    d.resource = "gatelog:canary".to_owned();
    d.action = "canary".to_owned();
    d.policy = CANARY_POLICY.to_owned();
    d.reason = format!("gatelog canary run {run_id}: a synthetic decision that tests monitoring");
    d.tenant = DEFAULT_TENANT.to_owned();
    d
}

/// The run's verdict, or `None` while it should still wait. `found` is the canary's alert
/// as stored (first stored time); `resumed_at` is set when the run was in flight across a
/// restart of `gatelog serve` (it then gets a deadline from the restart too, and is never
/// `missed`).
pub fn judge(
    f: &InFlight,
    found: Option<&CanaryAlert>,
    now: UnixMillis,
    resumed_at: Option<UnixMillis>,
) -> Option<CanaryRun> {
    let run = |outcome: Outcome, error: String| CanaryRun {
        run_id: f.run_id.clone(),
        event_id: f.event_id.clone(),
        sent_at_ms: f.sent_at_ms.unwrap_or(f.attempted_at_ms),
        deadline_ms: f.deadline_ms,
        latency_ms: -1,
        outcome: outcome.as_str().to_owned(),
        error,
        recorded_at_ms: now.0,
        ..CanaryRun::default()
    };
    let Some(sent) = f.sent_at_ms else {
        // Only a restart finds a run that was never answered: the send was cut short.
        return Some(run(Outcome::Interrupted, "gatelog serve stopped before the canary was sent".into()));
    };
    let due = sent.saturating_add(f.deadline_ms);
    if let Some(a) = found {
        let latency = a.stored_ms.saturating_sub(sent).max(0);
        let (outcome, error) = match (latency <= f.deadline_ms, resumed_at) {
            (true, _) => (Outcome::Ok, String::new()),
            (false, Some(_)) => (
                Outcome::Interrupted,
                format!(
                    "gatelog serve stopped during the run; its alert was stored {latency} ms after the canary, past the {} ms deadline",
                    f.deadline_ms
                ),
            ),
            (false, None) => (
                Outcome::Missed,
                format!("its alert was stored {latency} ms after the canary, past the {} ms deadline", f.deadline_ms),
            ),
        };
        return Some(CanaryRun {
            alert_id: a.alert_id.clone(),
            alert_at_ms: a.stored_ms,
            latency_ms: latency,
            ..run(outcome, error)
        });
    }
    let wait_until = match resumed_at {
        Some(r) => due.max(r.0.saturating_add(f.deadline_ms)),
        None => due,
    };
    if now.0 < wait_until {
        return None;
    }
    Some(match resumed_at {
        Some(_) => run(
            Outcome::Interrupted,
            "gatelog serve stopped during the run, and no alert came within the deadline after the restart".into(),
        ),
        None => {
            run(Outcome::Missed, format!("detection stored no alert for it within the {} ms deadline", f.deadline_ms))
        }
    })
}

/// A run that the receiver refused or could not be reached for.
pub fn failed_to_send(f: &InFlight, error: &str, now: UnixMillis) -> CanaryRun {
    CanaryRun {
        run_id: f.run_id.clone(),
        event_id: f.event_id.clone(),
        sent_at_ms: f.attempted_at_ms,
        deadline_ms: f.deadline_ms,
        latency_ms: -1,
        outcome: Outcome::FailedToSend.as_str().to_owned(),
        error: format!("the receiver did not take the canary: {error}"),
        recorded_at_ms: now.0,
        ..CanaryRun::default()
    }
}

/// The paging alert of a `missed` or `failed_to_send` run: its finding, the alert and its
/// `open` event, every id derived from the run (written again after a crash, one of each).
pub fn missed_alert(run: &CanaryRun, now: UnixMillis) -> (Finding, Alert, AlertEvent) {
    let summary = match run.outcome.as_str() {
        "failed_to_send" => {
            format!("canary {} could not be sent: monitoring is not receiving ({})", run.run_id, run.error)
        }
        _ => format!("canary {} was not detected: monitoring did not operate ({})", run.run_id, run.error),
    };
    let finding = Finding {
        rule_id: CANARY_MISSED_RULE.to_owned(),
        rule_version: 1,
        severity: Severity::High,
        dedup_key: format!("{CANARY_MISSED_RULE}:{}", run.run_id),
        tenant: DEFAULT_TENANT.to_owned(),
        window_start: UnixMillis(run.sent_at_ms),
        window_end: UnixMillis(run.sent_at_ms.saturating_add(run.deadline_ms)),
        principal: CANARY_PRINCIPAL.to_owned(),
        client_ip: "127.0.0.1".to_owned(),
        resource: "gatelog:canary".to_owned(),
        dataset: CANARY_DATASET.to_owned(),
        event_ids: vec![run.event_id.clone()],
        summary: summary.clone(),
        evidence: [
            ("canary_run".to_owned(), run.run_id.clone()),
            ("outcome".to_owned(), run.outcome.clone()),
            ("deadline_ms".to_owned(), run.deadline_ms.to_string()),
            ("error".to_owned(), run.error.clone()),
        ]
        .into_iter()
        .collect(),
        ..Finding::default()
    }
    .seal();
    let alert = Alert {
        alert_id: Alert::derive_id(&finding.tenant, &finding.dedup_key, &finding.finding_id),
        tenant: finding.tenant.clone(),
        dedup_key: finding.dedup_key.clone(),
        rule_id: finding.rule_id.clone(),
        severity: finding.severity,
        first_seen: finding.window_start,
        last_seen: finding.window_end,
        count: 1,
        summary,
        principal: finding.principal.clone(),
        client_ip: finding.client_ip.clone(),
        resource: finding.resource.clone(),
        first_finding_id: finding.finding_id.clone(),
        last_finding_id: finding.finding_id.clone(),
    };
    let opened = AlertEvent::opened(&alert, now);
    (finding, alert, opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_740_990_713_712;

    fn inflight(sent: Option<i64>) -> InFlight {
        InFlight {
            run_id: "r1".into(),
            event_id: canary_event_id("r1"),
            attempted_at_ms: T,
            sent_at_ms: sent,
            deadline_ms: 5000,
            verdict: None,
        }
    }

    fn alert(stored: i64) -> CanaryAlert {
        CanaryAlert { alert_id: "a1".into(), stored_ms: stored }
    }

    #[test]
    fn the_next_canary_is_an_interval_after_the_last_or_the_first_start() {
        let mut s = CanaryState { first_start_ms: T, ..CanaryState::default() };
        assert_eq!(next_due(&s, 60_000, UnixMillis(T)), UnixMillis(T + 60_000));
        s.last_sent_ms = Some(T + 100_000);
        assert_eq!(next_due(&s, 60_000, UnixMillis(T + 100_500)), UnixMillis(T + 160_000));
        assert_eq!(next_due(&s, 60_000, UnixMillis(T + 999_000)), UnixMillis(T + 999_000), "no catching up");
    }

    #[test]
    fn an_alert_within_the_deadline_is_ok_with_its_latency() {
        let f = inflight(Some(T + 10));
        let run = judge(&f, Some(&alert(T + 1210)), UnixMillis(T + 1500), None).unwrap();
        assert_eq!((run.outcome.as_str(), run.latency_ms, run.alert_id.as_str()), ("ok", 1200, "a1"));
        assert_eq!((run.sent_at_ms, run.alert_at_ms, run.recorded_at_ms), (T + 10, T + 1210, T + 1500));
        let edge = judge(&f, Some(&alert(T + 5010)), UnixMillis(T + 9000), None).unwrap();
        assert_eq!(edge.outcome, "ok", "the deadline itself is in time");
    }

    #[test]
    fn no_alert_waits_until_the_deadline_then_is_missed() {
        let f = inflight(Some(T));
        assert_eq!(judge(&f, None, UnixMillis(T + 4999), None), None);
        let run = judge(&f, None, UnixMillis(T + 5000), None).unwrap();
        assert_eq!((run.outcome.as_str(), run.latency_ms), ("missed", -1));
        assert!(run.error.contains("5000 ms deadline"), "{}", run.error);
        let late = judge(&f, Some(&alert(T + 5001)), UnixMillis(T + 6000), None).unwrap();
        assert_eq!((late.outcome.as_str(), late.latency_ms, late.alert_id.as_str()), ("missed", 5001, "a1"));
        assert!(Outcome::Missed.pages() && Outcome::FailedToSend.pages());
        assert!(!Outcome::Ok.pages() && !Outcome::Interrupted.pages());
    }

    #[test]
    fn a_run_across_a_restart_gets_a_deadline_from_the_restart_and_is_never_missed() {
        let f = inflight(Some(T));
        let restart = UnixMillis(T + 60_000);
        assert_eq!(judge(&f, None, UnixMillis(T + 64_000), Some(restart)), None, "waits after the restart");
        let run = judge(&f, None, UnixMillis(T + 65_000), Some(restart)).unwrap();
        assert_eq!(run.outcome, "interrupted");
        let seen = judge(&f, Some(&alert(T + 61_000)), UnixMillis(T + 61_500), Some(restart)).unwrap();
        assert_eq!((seen.outcome.as_str(), seen.latency_ms), ("interrupted", 61_000));
        let in_time = judge(&f, Some(&alert(T + 900)), UnixMillis(T + 61_500), Some(restart)).unwrap();
        assert_eq!(in_time.outcome, "ok", "stored before serve stopped");
        let unsent = judge(&inflight(None), None, UnixMillis(T + 61_000), Some(restart)).unwrap();
        assert_eq!((unsent.outcome.as_str(), unsent.sent_at_ms), ("interrupted", T));
    }

    #[test]
    fn a_missed_run_opens_one_high_alert_with_ids_from_the_run() {
        let run = judge(&inflight(Some(T)), None, UnixMillis(T + 5000), None).unwrap();
        let (f, a, e) = missed_alert(&run, UnixMillis(T + 5000));
        let (f2, a2, e2) = missed_alert(&run, UnixMillis(T + 9000));
        assert_eq!(
            (f.finding_id.as_str(), a.alert_id.as_str(), e.event_id.as_str()),
            (f2.finding_id.as_str(), a2.alert_id.as_str(), e2.event_id.as_str())
        );
        assert_eq!((a.rule_id.as_str(), a.severity, a.count), (CANARY_MISSED_RULE, Severity::High, 1));
        assert!(a.summary.contains("was not detected") && a.summary.contains("r1"), "{}", a.summary);
        let failed = failed_to_send(&inflight(None), "connection refused", UnixMillis(T + 1));
        assert_eq!(failed.outcome, "failed_to_send");
        assert!(missed_alert(&failed, UnixMillis(T + 1)).1.summary.contains("could not be sent"));
    }

    #[test]
    fn the_canary_decision_carries_every_mark() {
        let d = decision("r9", UnixMillis(T));
        assert_eq!(
            (d.dataset.as_str(), d.principal.as_str(), d.policy.as_str()),
            (CANARY_DATASET, CANARY_PRINCIPAL, CANARY_POLICY)
        );
        assert_eq!(d.event_id, canary_event_id("r9"));
        assert_eq!(d.decision, Decision::Log, "a log decision: no baseline learns from it, no deny counts");
    }
}
