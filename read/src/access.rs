//! `GET /v1/audit?from=&to=&principal=&decision=&limit=` (auditor, admin): gatelog's own
//! audit trail, who read the evidence through these routes, allowed or denied, newest first
//! (`{"entries":[…]}`, from ClickHouse's `access_log`; see [`crate::audit`] for what each
//! entry holds). `from`/`to` are RFC 3339 or epoch milliseconds (default: the last 24 hours
//! up to now), `decision` is `allow`, `deny` or `error`, `limit` 1–1000 (default 100).
//! Reading the trail is itself recorded in it.

use crate::ReadState;
use crate::alerts::store;
use crate::search::time;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use gatelog_edge::ApiError;
use gatelog_edge::auth::Access;
use gatelog_model::UnixMillis;
use gatelog_store::access_log::{AccessQuery, MAX_ACCESS_ROWS};
use serde::Deserialize;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    from: Option<String>,
    to: Option<String>,
    principal: Option<String>,
    decision: Option<String>,
    limit: Option<u64>,
}

pub(crate) async fn list(
    State(state): State<ReadState>,
    headers: HeaderMap,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        state.edge.authorize(&headers, Access::Audit).await?;
        let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let (store, clock) = store(&state)?;
        let query = access_query(p, clock.now())?;
        let entries = store
            .access_log(&query)
            .await
            .map_err(|e| ApiError::unavailable(5, "ClickHouse did not answer; retry later", format!("audit: {e}")))?;
        Ok(Json(serde_json::json!({ "entries": entries })).into_response())
    }
    .await;
    state.edge.finish("audit", result)
}

fn access_query(p: Params, now: UnixMillis) -> Result<AccessQuery, ApiError> {
    let to = time("to", p.to.as_deref())?.unwrap_or(UnixMillis(now.0 + 1));
    let from = time("from", p.from.as_deref())?.unwrap_or(UnixMillis(to.0 - DAY_MS));
    if from >= to {
        return Err(ApiError::bad_request("from: must be before to"));
    }
    let limit = p.limit.unwrap_or(100);
    if !(1..=MAX_ACCESS_ROWS).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit: must be between 1 and {MAX_ACCESS_ROWS}")));
    }
    let decision = p.decision.filter(|d| !d.is_empty());
    if decision.as_deref().is_some_and(|d| !["allow", "deny", "error"].contains(&d)) {
        return Err(ApiError::bad_request("decision: must be allow, deny or error"));
    }
    Ok(AccessQuery { from, to, principal: p.principal.filter(|s| !s.is_empty()), decision, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(from: Option<&str>, to: Option<&str>, decision: Option<&str>, limit: Option<u64>) -> Params {
        Params {
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            principal: Some(String::new()),
            decision: decision.map(str::to_owned),
            limit,
        }
    }

    #[test]
    fn defaults_to_the_last_day() {
        let q = access_query(params(None, None, None, None), UnixMillis(10 * DAY_MS)).unwrap();
        assert_eq!((q.from, q.to, q.limit), (UnixMillis(9 * DAY_MS + 1), UnixMillis(10 * DAY_MS + 1), 100));
        assert_eq!((q.principal, q.decision), (None, None));
    }

    #[test]
    fn bad_parameters_are_named() {
        let now = UnixMillis(DAY_MS);
        let e = |p| access_query(p, now).unwrap_err().to_string();
        assert!(e(params(Some("2000"), Some("1000"), None, None)).contains("from"));
        assert!(e(params(None, None, Some("maybe"), None)).contains("decision"));
        assert!(e(params(None, None, None, Some(0))).contains("limit"));
        assert!(e(params(Some("yesterday"), None, None, None)).contains("from"));
    }
}
