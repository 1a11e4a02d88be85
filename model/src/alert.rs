//! [`Alert`] and its lifecycle: findings with one dedup key, grouped while they keep coming
//! (the suppression window), and the [`AlertEvent`]s that move it from open to acknowledged
//! to resolved. Events are appended, never changed; an alert's [`AlertState`] is derived from
//! them ([`AlertState::from_events`]), so who did what and when stays on record.
//!
//! Field names are a contract (the `alerts` and `alert_events` tables, `gatelog alerts`
//! JSON, later `/v1/alerts` and e-mails): add fields, rename none.

use crate::{EventId, Severity, UnixMillis};
use serde::{Deserialize, Serialize};

/// One alert: the findings of one dedup key within the suppression window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Alert {
    /// [`Alert::derive_id`]: from the dedup key and the first finding, so a replay gives the
    /// same alert.
    pub alert_id: String,
    pub tenant: String,
    pub dedup_key: String,
    pub rule_id: String,
    /// The highest severity of its findings.
    pub severity: Severity,
    /// Event time of the first finding's first event, and of the last finding's last.
    pub first_seen: UnixMillis,
    pub last_seen: UnixMillis,
    /// Findings grouped into it.
    pub count: u64,
    /// From the latest finding.
    pub summary: String,
    pub principal: String,
    pub client_ip: String,
    pub resource: String,
    pub first_finding_id: String,
    pub last_finding_id: String,
}

impl Alert {
    /// The id of the alert a finding `first_finding_id` opened under `dedup_key`.
    pub fn derive_id(tenant: &str, dedup_key: &str, first_finding_id: &str) -> String {
        EventId::derive(&["alert", tenant, dedup_key, first_finding_id])
    }
}

/// What an [`AlertEvent`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AlertAction {
    /// Raised by detection (the runtime).
    #[default]
    Open,
    /// Someone is looking at it.
    Ack,
    /// Done, with a disposition.
    Resolve,
}

str_enum!(AlertAction { Open => "open", Ack => "ack", Resolve => "resolve" });

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    #[default]
    Open,
    Acknowledged,
    Resolved,
}

str_enum!(AlertState { Open => "open", Acknowledged => "acknowledged", Resolved => "resolved" });

/// How a resolved alert turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    TruePositive,
    FalsePositive,
    Benign,
    Duplicate,
}

str_enum!(Disposition {
    TruePositive => "true_positive",
    FalsePositive => "false_positive",
    Benign => "benign",
    Duplicate => "duplicate",
});

/// One transition, appended to `alert_events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AlertEvent {
    /// Unique per transition; the `open` event's is derived from the alert, so a replay
    /// appends nothing new.
    pub event_id: String,
    pub alert_id: String,
    pub tenant: String,
    pub action: AlertAction,
    /// Wall time of the transition.
    pub at: UnixMillis,
    /// Who: `gatelog` for detection, else the person or service named.
    pub actor: String,
    /// Set on `resolve`.
    pub disposition: Option<Disposition>,
    pub note: String,
}

impl AlertEvent {
    /// The `open` event of `alert` (its id derived from the alert's).
    pub fn opened(alert: &Alert, at: UnixMillis) -> AlertEvent {
        AlertEvent {
            event_id: EventId::derive(&["alert_event", &alert.alert_id, "open"]),
            alert_id: alert.alert_id.clone(),
            tenant: alert.tenant.clone(),
            action: AlertAction::Open,
            at,
            actor: DETECTION_ACTOR.to_owned(),
            disposition: None,
            note: String::new(),
        }
    }
}

/// The actor of events raised by detection itself.
pub const DETECTION_ACTOR: &str = "gatelog";

/// Why a transition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("alert {alert_id} is already resolved ({disposition}); a resolved alert stays resolved")]
    AlreadyResolved { alert_id: String, disposition: String },
    #[error("alert {alert_id} is already acknowledged")]
    AlreadyAcknowledged { alert_id: String },
    #[error("a resolution needs a disposition (true_positive, false_positive, benign, duplicate)")]
    NoDisposition,
    #[error("an alert is opened by detection only")]
    OpenByHand,
}

impl AlertState {
    /// The state after `events` (any order: they are sorted by time, then event id), with
    /// the resolving event's disposition.
    pub fn from_events(events: &[AlertEvent]) -> (AlertState, Option<Disposition>) {
        let mut sorted: Vec<&AlertEvent> = events.iter().collect();
        sorted.sort_by(|a, b| (a.at, &a.event_id).cmp(&(b.at, &b.event_id)));
        let mut state = (AlertState::Open, None);
        for e in sorted {
            state = match (state.0, e.action) {
                (AlertState::Resolved, _) => state,
                (_, AlertAction::Resolve) => (AlertState::Resolved, e.disposition),
                (AlertState::Open, AlertAction::Ack) => (AlertState::Acknowledged, None),
                (s, _) => (s, None),
            };
        }
        state
    }

    /// Checks that `action` may follow this state: ack an open alert, resolve an open or
    /// acknowledged one (with a disposition). Resolved is final.
    pub fn check(
        self,
        alert_id: &str,
        action: AlertAction,
        disposition: Option<Disposition>,
        resolved_as: Option<Disposition>,
    ) -> Result<(), TransitionError> {
        match (self, action) {
            (_, AlertAction::Open) => Err(TransitionError::OpenByHand),
            (AlertState::Resolved, _) => Err(TransitionError::AlreadyResolved {
                alert_id: alert_id.to_owned(),
                disposition: resolved_as.map_or("no disposition", Disposition::as_str).to_owned(),
            }),
            (AlertState::Acknowledged, AlertAction::Ack) => {
                Err(TransitionError::AlreadyAcknowledged { alert_id: alert_id.to_owned() })
            }
            (_, AlertAction::Resolve) if disposition.is_none() => Err(TransitionError::NoDisposition),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, action: AlertAction, at: i64, disposition: Option<Disposition>) -> AlertEvent {
        AlertEvent {
            event_id: id.into(),
            alert_id: "a1".into(),
            action,
            at: UnixMillis(at),
            disposition,
            ..AlertEvent::default()
        }
    }

    #[test]
    fn state_follows_the_events_in_time_order_and_resolved_is_final() {
        assert_eq!(AlertState::from_events(&[]), (AlertState::Open, None));
        let open = event("e0", AlertAction::Open, 1, None);
        let ack = event("e1", AlertAction::Ack, 2, None);
        let resolve = event("e2", AlertAction::Resolve, 3, Some(Disposition::Benign));
        let late_ack = event("e3", AlertAction::Ack, 4, None);
        assert_eq!(AlertState::from_events(&[ack.clone(), open.clone()]).0, AlertState::Acknowledged);
        let all = [late_ack, resolve, open, ack];
        assert_eq!(AlertState::from_events(&all), (AlertState::Resolved, Some(Disposition::Benign)));
    }

    #[test]
    fn transitions_are_checked() {
        assert!(AlertState::Open.check("a", AlertAction::Ack, None, None).is_ok());
        assert!(AlertState::Open.check("a", AlertAction::Resolve, Some(Disposition::Duplicate), None).is_ok());
        assert_eq!(AlertState::Open.check("a", AlertAction::Resolve, None, None), Err(TransitionError::NoDisposition));
        assert!(matches!(
            AlertState::Acknowledged.check("a", AlertAction::Ack, None, None),
            Err(TransitionError::AlreadyAcknowledged { .. })
        ));
        let err = AlertState::Resolved
            .check("a", AlertAction::Ack, None, Some(Disposition::FalsePositive))
            .unwrap_err()
            .to_string();
        assert!(err.contains("false_positive"), "{err}");
        assert_eq!(AlertState::Open.check("a", AlertAction::Open, None, None), Err(TransitionError::OpenByHand));
    }

    #[test]
    fn names_are_stable() {
        for d in Disposition::ALL {
            assert_eq!(serde_json::to_string(d).unwrap(), format!("\"{}\"", d.as_str()));
        }
        assert_eq!(AlertState::parse("acknowledged"), Some(AlertState::Acknowledged));
        let a = Alert::derive_id("default", "k", "f1");
        assert_eq!(a, Alert::derive_id("default", "k", "f1"));
        assert_ne!(a, Alert::derive_id("default", "k", "f2"));
    }
}
