//! `/alerts` (by state, most severe first) and `/alerts/{id}` (timeline, findings and their
//! events), with the acknowledge and resolve forms for responders, which call the API's own
//! transition ([`gatelog_read::alerts::apply`]).

use crate::session::{Viewer, same};
use crate::{WebState, error_page, gate, page};
use axum::Form;
use axum::extract::{Extension, OriginalUri, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatelog_edge::{Access, ApiError};
use gatelog_model::{AlertAction, AlertState, Disposition};
use serde::Deserialize;

fn failed(v: &Viewer, e: ApiError) -> Response {
    let title = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::SERVICE_UNAVAILABLE => "ClickHouse did not answer",
        _ => "Refused",
    };
    error_page(e.status, Some(v), title, &e.message)
}

pub(crate) async fn list(State(state): State<WebState>, viewer: Option<Extension<Viewer>>, OriginalUri(uri): OriginalUri) -> Response {
    let v = match gate(viewer.map(|e| e.0), Access::Read, &uri.to_string()) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let result = async {
        let (store, _) = gatelog_read::alerts::store(&state.read)?;
        gatelog_watch::service::list(&store, 500, None).await.map_err(gatelog_read::alerts::alerts_error)
    }
    .await;
    let mut alerts = match result {
        Ok(a) => a,
        Err(e) => return failed(&v, e),
    };
    alerts.sort_by(|a, b| b.alert.severity.cmp(&a.alert.severity).then(b.alert.last_seen.cmp(&a.alert.last_seen)));
    let groups: Vec<_> = [AlertState::Open, AlertState::Acknowledged, AlertState::Resolved]
        .into_iter()
        .map(|s| {
            let of: Vec<_> = alerts.iter().filter(|a| a.state == s).collect();
            minijinja::context! { state => s.as_str(), alerts => minijinja::Value::from(minijinja::value::Serde(&of)) }
        })
        .collect();
    page(StatusCode::OK, "alerts.html", Some(&v), minijinja::context! { title => "Alerts", groups })
}

pub(crate) async fn show(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
) -> Response {
    let v = match gate(viewer.map(|e| e.0), Access::Read, &uri.to_string()) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let result = async {
        let (store, _) = gatelog_read::alerts::store(&state.read)?;
        gatelog_watch::service::show(&store, &id).await.map_err(gatelog_read::alerts::alerts_error)
    }
    .await;
    match result {
        Ok(a) => {
            let may_respond = v.principal.role.may(Access::Respond);
            page(StatusCode::OK, "alert.html", Some(&v), minijinja::context! { title => "Alert", a => minijinja::Value::from(minijinja::value::Serde(&a)), may_respond })
        }
        Err(e) => failed(&v, e),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TransitionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
    disposition: Option<Disposition>,
}

pub(crate) async fn ack(state: State<WebState>, viewer: Option<Extension<Viewer>>, uri: OriginalUri, id: Path<String>, form: Form<TransitionForm>) -> Response {
    act(state, viewer, uri, id, form, AlertAction::Ack).await
}

pub(crate) async fn resolve(state: State<WebState>, viewer: Option<Extension<Viewer>>, uri: OriginalUri, id: Path<String>, form: Form<TransitionForm>) -> Response {
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
    let v = match gate(viewer.map(|e| e.0), Access::Respond, &uri.to_string()) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !same(&v.csrf, &f.csrf) {
        return error_page(StatusCode::FORBIDDEN, Some(&v), "Form expired", "The form's CSRF token does not match; reload the page.");
    }
    let disposition = if action == AlertAction::Resolve { f.disposition } else { None };
    match gatelog_read::alerts::apply(&state.read, v.principal.clone(), &id, action, disposition, f.note).await {
        Ok(view) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(loc) = HeaderValue::from_str(&format!("/alerts/{}", view.alert.alert_id)) {
                r.headers_mut().insert(header::LOCATION, loc);
            }
            r
        }
        Err(e) => failed(&v, e),
    }
}
