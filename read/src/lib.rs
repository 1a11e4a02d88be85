//! gatelog's read routes: what people and tools read out of gatelog over HTTP, on the HTTP
//! edge (`gatelog_edge`: credentials, error answers, metrics), beside the receiver's ingest
//! routes. The binary only wires: it builds a [`ReadState`] and merges [`router`] with the
//! receiver's.
//!
//! | route | module | answer |
//! | --- | --- | --- |
//! | `GET /v1/search?q=&from=&to=&limit=&cursor=` | [`search`] | a page of the tantivy index, newest first |
//!
//! A new read route (alerts, reports, pages) is a module here with its handler, its state in
//! [`ReadState`] and one `.route(…)` line in [`router`]; it authorises through the edge
//! like search does.

pub mod search;

use axum::Router;
use gatelog_edge::Edge;

/// What the read routes share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReadState {
    /// Credentials and the metrics registry, shared with the receiver.
    pub edge: Edge,
    pub search: search::SearchIndex,
}

/// Every read route, with `state` attached. No fallback route is installed, so this merges
/// with the receiver's router.
pub fn router(state: ReadState) -> Router {
    Router::new().route("/v1/search", axum::routing::get(search::search)).with_state(state)
}
