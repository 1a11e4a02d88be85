//! `GET /search?q=&from=&to=&cursor=`: the tantivy index, newest first, with the query
//! language's fields explained, matches highlighted and the next page by cursor; each hit
//! links to its event. `GET /events/{id}`: one event, every field as stored (the copy
//! `decisions FINAL` keeps) and its exact original line ([`gatelog_store::Store::raw_line`]:
//! from the batch's body, checked against its SHA-256; an altered body is shown as such).

use crate::WebState;
use crate::common::{gated_page, reader, url_encode};
use crate::session::Viewer;
use axum::extract::{Extension, OriginalUri, Path, Query, State};
use axum::response::Response;
use gatelog_edge::{Access, ApiError};
use gatelog_index::SearchRequest;
use gatelog_read::search::{incomplete_reason, time};
use gatelog_store::raw::{RawError, RawLine};
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};

/// Hits per page.
const PAGE: usize = 50;

/// The fields the help lists: name, what it holds, an example.
const FIELDS: [(&str, &str, &str); 11] = [
    ("principal", "who, exact (lower case)", "principal:alice@example.com"),
    ("decision", "allow, deny, challenge, log, error", "decision:deny"),
    ("resource", "what was asked for, by words", "resource:orders"),
    ("query", "the SQL, by words; quotes for a phrase", "query:\"select *\""),
    ("reason", "why the edge decided so", "reason:mfa"),
    ("client_ip", "the client address, exact", "client_ip:203.0.113.7"),
    ("country", "two-letter code", "country:br"),
    ("dataset", "the Logpush dataset or source", "dataset:access_requests"),
    ("status", "HTTP status, also ranges", "status:[500 TO 599]"),
    ("roles", "a role the principal held", "roles:admin"),
    ("event_id", "one event, exact", "event_id:0f3c9a2e4b1d7a65"),
];

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    #[serde(default)]
    q: String,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

/// An event's original line as the page shows it.
#[derive(Debug, Serialize)]
struct RawView {
    text: String,
    batch_id: String,
    line: u32,
    received_at: gatelog_model::UnixMillis,
    checked_sha256: String,
    table: &'static str,
}

impl From<&RawLine> for RawView {
    fn from(l: &RawLine) -> RawView {
        RawView {
            // Logpush lines are UTF-8 JSON; anything else is shown with replacement marks
            // (`gatelog raw` prints the bytes as they are).
            text: String::from_utf8_lossy(&l.bytes).into_owned(),
            batch_id: l.batch_id.clone(),
            line: l.line,
            received_at: l.received_at,
            checked_sha256: l.checked_sha256.clone(),
            table: l.table,
        }
    }
}

async fn search_context(state: &WebState, p: SearchParams) -> Result<minijinja::Value, ApiError> {
    let help: Vec<_> = FIELDS
        .iter()
        .map(|(name, what, example)| minijinja::context! { name => *name, what => *what, example => *example })
        .collect();
    let base = minijinja::context! {
        title => "Search", q => p.q.clone(), from => p.from.clone(), to => p.to.clone(), help,
    };
    if !state.read.search.enabled {
        return Ok(minijinja::context! { disabled => true, ..base });
    }
    if p.q.trim().is_empty() {
        return Ok(base);
    }
    let request = SearchRequest {
        q: p.q.clone(),
        from: time("from", p.from.as_deref())?,
        to: time("to", p.to.as_deref())?,
        limit: PAGE,
        cursor: p.cursor.clone().filter(|c| !c.is_empty()),
    };
    let searcher = state.read.search.searcher.clone();
    let found = tokio::task::spawn_blocking(move || searcher.search(&request)).await;
    let found = match found {
        Ok(Ok(page)) => page,
        Ok(Err(gatelog_index::IndexError::BadQuery(message))) => {
            return Ok(minijinja::context! { bad_query => message, ..base });
        }
        Ok(Err(e)) => return Err(ApiError::unavailable(1, "search is unavailable", format!("search: {e}"))),
        Err(e) => return Err(ApiError::unavailable(1, "search is unavailable", format!("search task: {e}"))),
    };
    let incomplete = state.read.search.index_status.as_deref().and_then(incomplete_reason);
    let next = found.next_cursor.as_ref().map(|c| {
        let mut href = format!("/search?q={}&cursor={}", url_encode(&p.q), url_encode(c));
        for (name, value) in [("from", &p.from), ("to", &p.to)] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                href.push_str(&format!("&{name}={}", url_encode(v)));
            }
        }
        href
    });
    // The API's own page of hits (with their highlights), as `/v1/search` answers it.
    let hits = gatelog_read::search::PageJson::from(found).hits;
    Ok(minijinja::context! {
        hits => Serde(&hits), searched => true, next, incomplete, paged => p.cursor.is_some(), ..base
    })
}

/// The handler of `GET /search`.
pub(crate) async fn search(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<SearchParams>,
) -> Response {
    gated_page(viewer.map(|e| e.0), &uri, Access::Read, "search.html", |_| search_context(&state, p)).await
}

/// The handler of `GET /events/{id}`.
pub(crate) async fn event(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
) -> Response {
    gated_page(viewer.map(|e| e.0), &uri, Access::Read, "event.html", |_| event_context(state, id)).await
}

async fn event_context(state: WebState, id: String) -> Result<minijinja::Value, ApiError> {
    {
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(ApiError::bad_request("an event id is letters, digits, '-' and '_'"));
        }
        let unavailable = |e: String| ApiError::unavailable(5, "ClickHouse did not answer; retry later", e);
        let found = reader(&state)?.event(&id).await.map_err(|e| unavailable(format!("event {id}: {e}")))?;
        if found.is_empty() {
            return Err(ApiError::not_found(format!("no event {id} is stored")));
        }
        let (store, _) = gatelog_read::alerts::store(&state.read)?;
        let mut copies = Vec::with_capacity(found.len());
        for d in found {
            // The line, checked against the hash the chain links; a mismatch is shown as such.
            let (raw, integrity) = match store.raw_line(&d.tenant, &d.event_id).await {
                Ok(line) => (line.map(|l| RawView::from(&l)), None),
                Err(RawError::Integrity { .. }) => (
                    None,
                    Some(
                        "The stored batch holding this event's line does not match its SHA-256: it was changed after it was received.",
                    ),
                ),
                Err(RawError::Store(e)) => return Err(unavailable(format!("raw line of {id}: {e}"))),
            };
            let fields = match serde_json::to_value(&d).unwrap_or_default() {
                serde_json::Value::Object(map) => {
                    map.into_iter().map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
                }
                _ => Vec::new(),
            };
            copies.push(minijinja::context! { d => Serde(&d), fields, raw => Serde(&raw), integrity });
        }
        Ok(minijinja::context! { title => format!("Event {id}"), id, copies })
    }
}
