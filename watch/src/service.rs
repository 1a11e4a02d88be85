//! The alert lifecycle as `gatelog alerts` (and later `/v1/alerts`) uses it: list alerts
//! with their state, show one with its events and findings, and append an acknowledgement
//! or a resolution after checking that the alert is in a state that allows it. An alert is
//! named by its id or an unambiguous beginning of it. Transitions are only ever appended
//! (`alert_events`); the state is derived from them ([`AlertState::from_events`]).
//!
//! Two people resolving one alert at the same moment may both append a resolution; the
//! first in time decides the state and both stay on record.

use gatelog_model::{Alert, AlertAction, AlertEvent, AlertState, Clock, Disposition, TransitionError};
use gatelog_store::detection::StoredFinding;
use gatelog_store::{Store, StoreError};
use serde::Serialize;

/// The longest note a transition may carry (characters).
pub const MAX_NOTE_CHARS: usize = 4096;
/// Findings `show` lists at most.
pub const SHOWN_FINDINGS: u64 = 100;

/// An alert with where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertView {
    #[serde(flatten)]
    pub alert: Alert,
    pub state: AlertState,
    pub disposition: Option<Disposition>,
    pub events: Vec<AlertEvent>,
}

impl AlertView {
    fn new(alert: Alert, events: Vec<AlertEvent>) -> AlertView {
        let (state, disposition) = AlertState::from_events(&events);
        AlertView { alert, state, disposition, events }
    }
}

/// An alert, its events and its findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub view: AlertView,
    pub findings: Vec<StoredFinding>,
}

/// Why an alert operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("no alert {0}")]
    NotFound(String),
    #[error("{0} is the beginning of more than one alert id; give more of it")]
    Ambiguous(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The `limit` alerts seen last (optionally only those in `state`), newest first.
pub async fn list(store: &Store, limit: u64, state: Option<AlertState>) -> Result<Vec<AlertView>, AlertsError> {
    // A state filter looks further back, so `--state open` still finds `limit` of them.
    let fetch = if state.is_some() { limit.saturating_mul(20).max(1000) } else { limit };
    let alerts = store.recent_alerts(fetch).await?;
    let ids: Vec<&str> = alerts.iter().map(|a| a.alert_id.as_str()).collect();
    let mut events = store.alert_events(&ids).await?;
    let mut out = Vec::new();
    for alert in alerts {
        let (mine, rest): (Vec<AlertEvent>, Vec<AlertEvent>) =
            events.into_iter().partition(|e| e.alert_id == alert.alert_id);
        events = rest;
        let view = AlertView::new(alert, mine);
        if state.is_none_or(|s| s == view.state) {
            out.push(view);
        }
        if out.len() as u64 >= limit {
            break;
        }
    }
    Ok(out)
}

async fn find(store: &Store, id: &str) -> Result<AlertView, AlertsError> {
    let id = id.trim();
    let mut found = store.alerts_by_id_prefix(id).await.map_err(|e| match e {
        StoreError::InvalidConfig(m) => AlertsError::Invalid(m),
        e => AlertsError::Store(e),
    })?;
    match found.len() {
        0 => Err(AlertsError::NotFound(id.to_owned())),
        1 => {
            let alert = found.remove(0);
            let events = store.alert_events(&[&alert.alert_id]).await?;
            Ok(AlertView::new(alert, events))
        }
        _ => Err(AlertsError::Ambiguous(id.to_owned())),
    }
}

/// One alert (by id or unambiguous prefix) with its events and findings.
pub async fn show(store: &Store, id: &str) -> Result<AlertDetail, AlertsError> {
    let view = find(store, id).await?;
    let findings = store.alert_findings(&view.alert.alert_id, SHOWN_FINDINGS).await?;
    Ok(AlertDetail { view, findings })
}

/// A transition someone asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub action: AlertAction,
    pub disposition: Option<Disposition>,
    pub note: String,
    /// Who (non-empty).
    pub actor: String,
}

/// Appends `t` to the alert's events if its state allows it; returns the alert as it now is.
pub async fn transition(store: &Store, id: &str, t: Transition, clock: &dyn Clock) -> Result<AlertView, AlertsError> {
    if t.actor.trim().is_empty() {
        return Err(AlertsError::Invalid("--by: who acts must be named".into()));
    }
    if t.note.chars().count() > MAX_NOTE_CHARS {
        return Err(AlertsError::Invalid(format!("--note: at most {MAX_NOTE_CHARS} characters")));
    }
    if t.action != AlertAction::Resolve && t.disposition.is_some() {
        return Err(AlertsError::Invalid("a disposition belongs to a resolution".into()));
    }
    let view = find(store, id).await?;
    view.state.check(&view.alert.alert_id, t.action, t.disposition, view.disposition)?;
    let event = AlertEvent {
        event_id: uuid::Uuid::new_v4().simple().to_string(),
        alert_id: view.alert.alert_id.clone(),
        tenant: view.alert.tenant.clone(),
        action: t.action,
        // After every earlier event, so the order of events is the order of transitions.
        at: clock.now().max(view.events.iter().map(|e| e.at).max().unwrap_or_default()),
        actor: t.actor.trim().to_owned(),
        disposition: t.disposition,
        note: t.note,
    };
    store.append_alert_events(std::slice::from_ref(&event)).await?;
    let mut events = view.events;
    events.push(event);
    Ok(AlertView::new(view.alert, events))
}
