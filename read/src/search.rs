//! `GET /v1/search?q=&from=&to=&limit=&cursor=`: the tantivy index, newest first.
//!
//! Every page says whether the index can be trusted to be complete: `incomplete` is `null`
//! while the index sink runs, and the reason otherwise (the index is being rebuilt from
//! ClickHouse, is waiting to be, or stopped), so a search never silently misses hits.
//! [`PageJson`] is also what `gatelog search --json` prints.

use crate::ReadState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use gatelog_consumer::{State as SinkState, Status};
use gatelog_edge::ApiError;
use gatelog_index::{SearchRequest, Searcher};
use gatelog_model::UnixMillis;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The index `/v1/search` reads, and what says whether it is complete.
#[derive(Debug, Clone)]
pub struct SearchIndex {
    pub searcher: Arc<Searcher>,
    /// `index.enabled`: false answers 404.
    pub enabled: bool,
    /// The index sink's status: what `incomplete` says.
    pub index_status: Option<Arc<Status>>,
}

#[derive(Debug, Deserialize)]
pub struct Params {
    #[serde(default)]
    q: String,
    from: Option<String>,
    to: Option<String>,
    #[serde(default)]
    limit: usize,
    cursor: Option<String>,
}

/// The JSON of one page: hits newest first, the cursor of the next page, and why the index
/// may be missing decisions right now (`null` when it is not).
#[derive(Debug, Serialize)]
pub struct PageJson {
    pub hits: Vec<HitJson>,
    pub next_cursor: Option<String>,
    pub incomplete: Option<String>,
}

/// One hit of a [`PageJson`].
#[derive(Debug, Serialize)]
pub struct HitJson {
    pub event_id: String,
    pub time: UnixMillis,
    pub principal: String,
    pub decision: String,
    pub resource: String,
    pub action: String,
    pub status: u16,
    pub highlights: Vec<(String, String)>,
    pub clickhouse_sql: String,
}

impl From<gatelog_index::SearchPage> for PageJson {
    fn from(page: gatelog_index::SearchPage) -> Self {
        PageJson {
            next_cursor: page.next_cursor,
            incomplete: None,
            hits: page
                .hits
                .into_iter()
                .map(|h| HitJson {
                    event_id: h.event_id,
                    time: h.time,
                    principal: h.principal,
                    decision: h.decision,
                    resource: h.resource,
                    action: h.action,
                    status: h.status,
                    highlights: h.highlights,
                    clickhouse_sql: h.clickhouse_sql,
                })
                .collect(),
        }
    }
}

/// An optional `from`/`to`-style parameter (RFC 3339 or epoch milliseconds), 400 naming it.
pub fn time(name: &str, value: Option<&str>) -> Result<Option<UnixMillis>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| UnixMillis::parse_str(v).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))))
        .transpose()
}

pub(crate) async fn search(State(state): State<ReadState>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    let result = run(&state, &headers, p).await;
    state.edge.finish("search", result)
}

async fn run(state: &ReadState, headers: &HeaderMap, p: Params) -> Result<Response, ApiError> {
    state.edge.authorize(headers, gatelog_edge::Access::Read).await?;
    let index = &state.search;
    if !index.enabled {
        return Err(ApiError::not_found("the index is disabled (index.enabled = false)"));
    }
    let request = SearchRequest {
        q: p.q,
        from: time("from", p.from.as_deref())?,
        to: time("to", p.to.as_deref())?,
        limit: p.limit,
        cursor: p.cursor,
    };
    let searcher = index.searcher.clone();
    let incomplete = index.index_status.as_deref().and_then(incomplete_reason);
    match tokio::task::spawn_blocking(move || searcher.search(&request)).await {
        Ok(Ok(page)) => Ok(Json(PageJson { incomplete, ..PageJson::from(page) }).into_response()),
        Ok(Err(gatelog_index::IndexError::BadQuery(message))) => Err(ApiError::bad_request(message)),
        Ok(Err(e)) => Err(ApiError::unavailable(1, "search is unavailable", format!("search failed: {e}"))),
        Err(e) => Err(ApiError::unavailable(1, "search is unavailable", format!("search task panicked: {e}"))),
    }
}

/// Why search results may be missing decisions, judging by the index sink's state.
pub fn incomplete_reason(status: &Status) -> Option<String> {
    match status.state() {
        SinkState::Running => None,
        SinkState::Starting => Some("the index is starting; results may be missing decisions".to_owned()),
        SinkState::Rebuilding(progress) => {
            Some(format!("the index is being rebuilt {progress}; results may be missing decisions until it is done"))
        }
        SinkState::Waiting(why) => Some(format!("the index is waiting ({why}); results may be missing decisions")),
        SinkState::Stopped(_) => {
            Some("the index stopped (see /readyz); results may be missing decisions since then".to_owned())
        }
    }
}
