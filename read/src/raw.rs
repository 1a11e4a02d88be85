//! `GET /v1/raw/{event_id}?tenant=` (read: viewer and up): an event's exact original line,
//! byte for byte, as `application/octet-stream`, through the one store lookup
//! ([`Store::raw_line`](gatelog_store::Store::raw_line)) `gatelog raw` and the web UI use.
//! Headers name where it was found: `x-gatelog-batch-id`, `x-gatelog-line`,
//! `x-gatelog-dataset`, `x-gatelog-sha256` (the content hash the bytes were checked
//! against). Errors: 404 no such event (or no stored line for it), 500 `integrity` when the
//! stored batch does not hash to its stored SHA-256 (the details are logged, not sent), 503
//! while ClickHouse is not connected or does not answer.

use crate::ReadState;
use crate::alerts::store;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gatelog_edge::ApiError;
use gatelog_edge::auth::Access;
use gatelog_store::raw::RawError;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    tenant: Option<String>,
}

pub(crate) async fn line(
    State(state): State<ReadState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        state.edge.authorize(&headers, Access::Read).await?;
        let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let tenant =
            p.tenant.filter(|t| !t.is_empty()).unwrap_or_else(|| gatelog_model::decision::DEFAULT_TENANT.to_owned());
        let (store, _) = store(&state)?;
        let found = store.raw_line(&tenant, &event_id).await.map_err(|e| match e {
            RawError::Integrity { .. } => {
                ApiError::integrity("the stored batch does not match its SHA-256", format!("raw: {e}"))
            }
            RawError::Store(e) => {
                ApiError::unavailable(5, "ClickHouse did not answer; retry later", format!("raw: {e}"))
            }
        })?;
        let raw = found.ok_or_else(|| ApiError::not_found("no stored line for this event"))?;
        let mut response = raw.bytes.into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        let mut put = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        };
        put("x-gatelog-batch-id", raw.batch_id);
        put("x-gatelog-line", raw.line.to_string());
        put("x-gatelog-dataset", raw.dataset);
        put("x-gatelog-sha256", raw.checked_sha256);
        Ok(response)
    }
    .await;
    state.edge.finish("raw", result)
}
