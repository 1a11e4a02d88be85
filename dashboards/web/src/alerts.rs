//! `GET /alerts?state=&severity=` (counts by state and severity, the alerts most severe
//! first) and `GET /alerts/{id}` (its timeline, findings and their events, linked), with the
//! acknowledge and resolve forms for responders. The forms call the API's own transition
//! ([`gatelog_read::alerts::apply`]), so the page and `POST /v1/alerts/{id}/…` cannot differ;
//! the actor is the session's principal.

use crate::WebState;
use crate::common::{failed, gate, gated_page, redirect, url_encode};
use crate::session::{Viewer, same};
use axum::Form;
use axum::extract::{Extension, OriginalUri, Path, Query, State};
use axum::response::Response;
use gatelog_edge::{Access, ApiError};
use gatelog_model::{AlertAction, AlertState, Disposition, Severity};
use gatelog_watch::service::AlertView;
use minijinja::value::Serde;
use serde::Deserialize;

/// The most alerts the list reads.
const LISTED: u64 = 500;

const STATES: [AlertState; 3] = [AlertState::Open, AlertState::Acknowledged, AlertState::Resolved];
const SEVERITIES: [Severity; 5] = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low, Severity::Info];

#[derive(Debug, Deserialize)]
pub struct ListParams {
    state: Option<String>,
    severity: Option<String>,
}

fn parse<T: Copy>(
    name: &str,
    value: Option<&str>,
    all: &[T],
    text: fn(T) -> &'static str,
) -> Result<Option<T>, ApiError> {
    match value.filter(|v| !v.is_empty() && *v != "any") {
        None => Ok(None),
        Some(v) => all.iter().copied().find(|x| text(*x) == v).map(Some).ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|x| text(*x)).collect();
            ApiError::bad_request(format!("{name}: must be one of {}", names.join(", ")))
        }),
    }
}

/// A filter's links: "any", then each value, with how many alerts each leads to and its URL.
fn filter_links<T: Copy + PartialEq>(
    all: &[T],
    text: fn(T) -> &'static str,
    chosen: Option<T>,
    link: impl Fn(Option<T>) -> (usize, String),
) -> Vec<minijinja::Value> {
    std::iter::once(None)
        .chain(all.iter().copied().map(Some))
        .map(|x| {
            let (n, href) = link(x);
            minijinja::context! { name => x.map_or("any", text), n, href, on => x == chosen }
        })
        .collect()
}

async fn list_context(state: &WebState, p: ListParams) -> Result<minijinja::Value, ApiError> {
    let want_state = parse("state", p.state.as_deref(), &STATES, AlertState::as_str)?;
    let want_severity = parse("severity", p.severity.as_deref(), &SEVERITIES, Severity::as_str)?;
    let (store, _) = gatelog_read::alerts::store(&state.read)?;
    let mut alerts =
        gatelog_watch::service::list(&store, LISTED, None).await.map_err(gatelog_read::alerts::alerts_error)?;
    let matches = |a: &AlertView, s: Option<AlertState>, v: Option<Severity>| {
        s.is_none_or(|s| a.state == s) && v.is_none_or(|v| a.alert.severity == v)
    };
    // Counts over everything read, so each filter link says what it leads to.
    let link = |s: Option<AlertState>, v: Option<Severity>| {
        let n = alerts.iter().filter(|a| matches(a, s, v)).count();
        let href = format!(
            "/alerts?state={}&severity={}",
            s.map_or("any", AlertState::as_str),
            v.map_or("any", Severity::as_str)
        );
        (n, href)
    };
    let states = filter_links(&STATES, AlertState::as_str, want_state, |s| link(s, want_severity));
    let severities = filter_links(&SEVERITIES, Severity::as_str, want_severity, |v| link(want_state, v));
    alerts.retain(|a| matches(a, want_state, want_severity));
    alerts.sort_by(|a, b| {
        let rank = |s: AlertState| STATES.iter().position(|x| *x == s);
        rank(a.state)
            .cmp(&rank(b.state))
            .then(b.alert.severity.cmp(&a.alert.severity))
            .then(b.alert.last_seen.cmp(&a.alert.last_seen))
    });
    Ok(minijinja::context! { title => "Alerts", states, severities, alerts => Serde(&alerts), listed => LISTED })
}

/// The handler of `GET /alerts`.
pub(crate) async fn list(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> Response {
    gated_page(viewer.map(|e| e.0), &uri, Access::Read, "alerts.html", |_| list_context(&state, p)).await
}

/// The handler of `GET /alerts/{id}`.
pub(crate) async fn show(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
) -> Response {
    gated_page(viewer.map(|e| e.0), &uri, Access::Read, "alert.html", |v| show_context(state, v, id)).await
}

async fn show_context(state: WebState, v: Viewer, id: String) -> Result<minijinja::Value, ApiError> {
    let (store, _) = gatelog_read::alerts::store(&state.read)?;
    let a = gatelog_watch::service::show(&store, &id).await.map_err(gatelog_read::alerts::alerts_error)?;
    let dispositions: Vec<&str> =
        [Disposition::TruePositive, Disposition::FalsePositive, Disposition::Benign, Disposition::Duplicate]
            .into_iter()
            .map(Disposition::as_str)
            .collect();
    Ok(minijinja::context! {
        title => format!("Alert: {}", a.view.alert.summary),
        principal_href => format!("/principal?name={}", url_encode(&a.view.alert.principal)),
        a => Serde(&a),
        dispositions,
        may_respond => v.principal.role.may(Access::Respond),
    })
}

#[derive(Deserialize)]
pub(crate) struct TransitionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    disposition: String,
}

impl std::fmt::Debug for TransitionForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitionForm").field("disposition", &self.disposition).finish_non_exhaustive()
    }
}

pub(crate) async fn ack(
    state: State<WebState>,
    viewer: Option<Extension<Viewer>>,
    uri: OriginalUri,
    id: Path<String>,
    form: Form<TransitionForm>,
) -> Response {
    act(state, viewer, uri, id, form, AlertAction::Ack).await
}

pub(crate) async fn resolve(
    state: State<WebState>,
    viewer: Option<Extension<Viewer>>,
    uri: OriginalUri,
    id: Path<String>,
    form: Form<TransitionForm>,
) -> Response {
    act(state, viewer, uri, id, form, AlertAction::Resolve).await
}

async fn act(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    Form(f): Form<TransitionForm>,
    action: AlertAction,
) -> Response {
    let v = match gate(viewer.map(|e| e.0), Access::Respond, &uri) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if !same(&v.csrf, &f.csrf) {
        let e = ApiError::forbidden("the form expired or came from another site; reload the alert and try again");
        return failed(&v, "alert transition", e);
    }
    let disposition = match f.disposition.as_str() {
        "" => None,
        d => match Disposition::parse(d) {
            Some(d) => Some(d),
            None => {
                return failed(&v, "alert transition", ApiError::bad_request(format!("disposition: unknown {d:?}")));
            }
        },
    };
    match gatelog_read::alerts::apply(&state.read, v.principal.clone(), &id, action, disposition, f.note).await {
        Ok(view) => redirect(&format!("/alerts/{}", url_encode(&view.alert.alert_id))),
        Err(e) => failed(&v, "alert transition", e),
    }
}
