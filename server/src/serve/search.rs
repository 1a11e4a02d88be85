//! `GET /v1/search?q=&from=&to=&limit=&cursor=`: the tantivy index, newest first.
//!
//! Every page says whether the index can be trusted to be complete: `incomplete` is `null`
//! while the index sink runs, and the reason otherwise (the index is being rebuilt from
//! ClickHouse, is waiting to be, or stopped), so a search never silently misses hits.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use gatelog_consumer::{State as SinkState, Status};
use gatelog_index::{SearchRequest, Searcher};
use gatelog_ingest::http::{ApiError, ReceiverState};
use gatelog_model::UnixMillis;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct SearchState {
    pub receiver: ReceiverState,
    pub searcher: Arc<Searcher>,
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
struct PageJson {
    hits: Vec<HitJson>,
    next_cursor: Option<String>,
    incomplete: Option<String>,
}

#[derive(Debug, Serialize)]
struct HitJson {
    event_id: String,
    time: UnixMillis,
    principal: String,
    decision: String,
    resource: String,
    action: String,
    status: u16,
    highlights: Vec<(String, String)>,
    clickhouse_sql: String,
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

pub fn router(state: SearchState) -> axum::Router {
    axum::Router::new().route("/v1/search", axum::routing::get(search)).with_state(state)
}

fn time(name: &str, value: Option<&str>) -> Result<Option<UnixMillis>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| UnixMillis::parse_str(v).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))))
        .transpose()
}

async fn search(State(state): State<SearchState>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    if !state.receiver.authorizes(&headers) {
        return ApiError::unauthorized().into_response();
    }
    if !state.enabled {
        return ApiError::not_found("the index is disabled (index.enabled = false)").into_response();
    }
    let request = match (time("from", p.from.as_deref()), time("to", p.to.as_deref())) {
        (Ok(from), Ok(to)) => SearchRequest { q: p.q, from, to, limit: p.limit, cursor: p.cursor },
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let searcher = state.searcher.clone();
    let incomplete = state.index_status.as_deref().and_then(incomplete_reason);
    match tokio::task::spawn_blocking(move || searcher.search(&request)).await {
        Ok(Ok(page)) => Json(PageJson { incomplete, ..PageJson::from(page) }).into_response(),
        Ok(Err(gatelog_index::IndexError::BadQuery(message))) => ApiError::bad_request(message).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "search failed");
            ApiError::unavailable(1, "search is unavailable", e.to_string()).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "search task panicked");
            ApiError::unavailable(1, "search is unavailable", e.to_string()).into_response()
        }
    }
}

/// Why search results may be missing decisions, judging by the index sink's state.
fn incomplete_reason(status: &Status) -> Option<String> {
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

/// `gatelog search QUERY`: reads the index under the data dir directly (no server needed).
pub async fn run_cli(args: crate::cli::SearchArgs) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    use std::fmt::Write as _;
    let config = crate::config::resolve(&args.store)?;
    let dir = config.data_dir.join("index");
    anyhow::ensure!(
        dir.is_dir(),
        "no index in {} (run `gatelog serve` with this --data-dir, which builds it, or `{}`)",
        dir.display(),
        crate::index::rebuild_command(&config.data_dir)
    );
    if dir.with_file_name("index.rebuild").is_dir() {
        tracing::warn!("the index is being rebuilt from ClickHouse; results may be missing decisions until it is done");
    }
    let parse = |name: &str, v: Option<&str>| -> anyhow::Result<Option<UnixMillis>> {
        v.map(|v| UnixMillis::parse_str(v).with_context(|| format!("--{name} {v:?}"))).transpose()
    };
    let request = SearchRequest {
        q: args.query,
        from: parse("from", args.from.as_deref())?,
        to: parse("to", args.to.as_deref())?,
        limit: args.limit,
        cursor: args.cursor,
    };
    let searcher = Searcher::open(&dir, &config.clickhouse.database);
    let page = tokio::task::spawn_blocking(move || searcher.search(&request))
        .await
        .context("the search task panicked")?
        .context("search failed")?;
    let page = PageJson::from(page);
    let text = if args.json {
        serde_json::to_string_pretty(&page).context("cannot render JSON")? + "\n"
    } else {
        let mut out = String::new();
        for h in &page.hits {
            let _ = writeln!(
                out,
                "{}  {:<9} {:<28} {:<8} {}  {}",
                h.time, h.decision, h.principal, h.action, h.resource, h.event_id
            );
        }
        let _ = writeln!(out, "{} hits", page.hits.len());
        if let Some(c) = &page.next_cursor {
            let _ = writeln!(out, "next page: --cursor {c}");
        }
        out
    };
    crate::print_stdout(&text)?;
    Ok(std::process::ExitCode::SUCCESS)
}
