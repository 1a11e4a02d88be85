//! The alert routes, over [`gatelog_watch::service`] (the same functions `gatelog alerts`
//! prints around):
//!
//! | route | access | body | answer |
//! | --- | --- | --- | --- |
//! | `GET /v1/alerts?state=&limit=` | read | | `{"alerts":[…]}`: the alerts seen last, newest first, each with its state and events (`limit` 1–1000, default 50; `state` `open`, `acknowledged` or `resolved`) |
//! | `GET /v1/alerts/{id}` | read | | the alert (id or an unambiguous beginning of it) with its events and findings |
//! | `POST /v1/alerts/{id}/ack` | respond | `{"note":"…"}` (optional) | the alert as it now is |
//! | `POST /v1/alerts/{id}/resolve` | respond | `{"disposition":"true_positive"\|"false_positive"\|"benign"\|"duplicate","note":"…"}` | the alert as it now is |
//!
//! Who acts is the credential's name ([`Principal::name`](gatelog_edge::auth::Principal)),
//! never a field of the body. Errors: 404 no such alert, 400 an ambiguous id or a bad body,
//! 409 a transition the alert's state does not allow (acknowledging a resolved alert), 503
//! while ClickHouse is not connected yet.

use crate::ReadState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use gatelog_edge::ApiError;
use gatelog_edge::auth::Access;
use gatelog_model::{AlertAction, AlertState, Clock, Disposition};
use gatelog_store::Store;
use gatelog_watch::service::{self, AlertsError, Transition};
use serde::Deserialize;
use std::sync::Arc;

/// The most alerts one list answers.
pub const MAX_LIST: u64 = 1000;
/// The largest body a transition may send.
const MAX_BODY: usize = 16 * 1024;

/// Where the alert routes find ClickHouse (connected in the background: `None` until it is
/// migrated), and the clock transitions are stamped with.
#[derive(Debug, Clone)]
pub struct AlertsStore {
    pub store: tokio::sync::watch::Receiver<Option<Store>>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    state: Option<AlertState>,
    limit: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionBody {
    #[serde(default)]
    note: String,
    disposition: Option<Disposition>,
}

pub fn store(state: &ReadState) -> Result<(Store, Arc<dyn Clock>), ApiError> {
    let source = state.alerts.as_ref().ok_or_else(|| ApiError::not_found("alerts are not served here"))?;
    let store = source.store.borrow().clone();
    let store = store.ok_or_else(|| {
        ApiError::unavailable(5, "ClickHouse is not connected yet; see /readyz", "alerts: no store yet")
    })?;
    Ok((store, source.clock.clone()))
}

/// The API's answer to a failed alert operation (404, 400, 409, 503).
pub fn alerts_error(e: AlertsError) -> ApiError {
    match e {
        AlertsError::NotFound(_) => ApiError::not_found(e.to_string()),
        AlertsError::Ambiguous(_) | AlertsError::Invalid(_) => ApiError::bad_request(e.to_string()),
        AlertsError::Transition(_) => ApiError::conflict(e.to_string()),
        AlertsError::Store(inner) => {
            ApiError::unavailable(5, "ClickHouse did not answer; retry later", format!("alerts: {inner}"))
        }
    }
}

pub(crate) async fn list(
    State(state): State<ReadState>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        state.edge.authorize(&headers, Access::Read).await?;
        let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let limit = p.limit.unwrap_or(50);
        if !(1..=MAX_LIST).contains(&limit) {
            return Err(ApiError::bad_request(format!("limit: must be between 1 and {MAX_LIST}")));
        }
        let (store, _) = store(&state)?;
        let alerts = service::list(&store, limit, p.state).await.map_err(alerts_error)?;
        Ok(Json(serde_json::json!({ "alerts": alerts })).into_response())
    }
    .await;
    state.edge.finish("alerts", result)
}

pub(crate) async fn show(State(state): State<ReadState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let result = async {
        state.edge.authorize(&headers, Access::Read).await?;
        let (store, _) = store(&state)?;
        let detail = service::show(&store, &id).await.map_err(alerts_error)?;
        Ok(Json(detail).into_response())
    }
    .await;
    state.edge.finish("alerts", result)
}

pub(crate) async fn ack(state: State<ReadState>, headers: HeaderMap, id: Path<String>, body: Bytes) -> Response {
    act(state, headers, id, body, AlertAction::Ack).await
}

pub(crate) async fn resolve(state: State<ReadState>, headers: HeaderMap, id: Path<String>, body: Bytes) -> Response {
    act(state, headers, id, body, AlertAction::Resolve).await
}

async fn act(
    State(state): State<ReadState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
    action: AlertAction,
) -> Response {
    let result = async {
        let principal = state.edge.authorize(&headers, Access::Respond).await?;
        if body.len() > MAX_BODY {
            return Err(ApiError::too_large(format!("the body is larger than {MAX_BODY} bytes")));
        }
        let body: TransitionBody = if body.iter().all(u8::is_ascii_whitespace) {
            TransitionBody::default()
        } else {
            serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?
        };
        let view = apply(&state, principal, &id, action, body.disposition, body.note).await?;
        Ok(Json(view).into_response())
    }
    .await;
    state.edge.finish("alerts", result)
}

/// Moves alert `id` on by `action` as `principal`: the one implementation of a transition,
/// behind both `POST /v1/alerts/{id}/…` and the dashboard's forms. A resolution needs a
/// disposition; an acknowledgement takes none.
pub async fn apply(
    state: &ReadState,
    principal: gatelog_edge::Principal,
    id: &str,
    action: AlertAction,
    disposition: Option<Disposition>,
    note: String,
) -> Result<service::AlertView, ApiError> {
    let disposition = match (action, disposition) {
        (AlertAction::Resolve, None) => {
            return Err(ApiError::bad_request(
                "disposition: required (true_positive, false_positive, benign or duplicate)",
            ));
        }
        (AlertAction::Resolve, d) => d,
        (_, Some(_)) => return Err(ApiError::bad_request("disposition: belongs to a resolution")),
        (_, None) => None,
    };
    let (store, clock) = store(state)?;
    let t = Transition { action, disposition, note, actor: principal.name };
    service::transition(&store, id, t, clock.as_ref()).await.map_err(alerts_error)
}
