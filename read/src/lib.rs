//! gatelog's read routes: what people and tools read out of gatelog over HTTP, on the HTTP
//! edge (`gatelog_edge`: credentials, error answers, metrics), beside the receiver's ingest
//! routes. The binary only wires: it builds a [`ReadState`] and merges [`router`] with the
//! receiver's.
//!
//! | route | module | access | answer |
//! | --- | --- | --- | --- |
//! | `GET /v1/search?q=&from=&to=&limit=&cursor=` | [`search`] | read | a page of the tantivy index, newest first |
//! | `GET /v1/alerts`, `GET /v1/alerts/{id}` | [`alerts`] | read | alerts with their state and history |
//! | `POST /v1/alerts/{id}/ack`, `…/resolve` | [`alerts`] | respond | the transition, by the credential's name |
//! | `GET /v1/raw/{event_id}?tenant=` | [`raw`] | read | the event's exact original line, byte for byte, from its stored batch |
//! | `GET /v1/audit?from=&to=&principal=&decision=&limit=` | [`access`] | audit | gatelog's own audit trail: who read the evidence |
//! | `GET /v1/reports/soc2?from=&to=&format=&seed=&as_of=` | [`reports`] | audit | the SOC 2 report (html, md, json) or its signed bundle (zip) |
//!
//! Every handler first asks the edge for the caller ([`Edge::authorize`] with the route's
//! [`Access`](gatelog_edge::Access): 401/403 before anything is read) and answers errors
//! through [`Edge::finish`]. Every answer of these routes, allowed or refused, is recorded
//! first in gatelog's own audit trail ([`audit`], a `route_layer`), so a new route is audited
//! without a line of its own. A new read route (reports, pages) is a module here with its
//! handler, its state in [`ReadState`] and one `.route(…)` line in [`router`].

pub mod access;
pub mod alerts;
pub mod audit;
pub mod raw;
pub mod reports;
pub mod search;

use axum::Router;
use gatelog_edge::Edge;

/// What the read routes share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReadState {
    /// Credentials and the metrics registry, shared with the receiver.
    pub edge: Edge,
    pub search: search::SearchIndex,
    /// `None`: the alert routes answer 404 (a server without ClickHouse).
    pub alerts: Option<alerts::AlertsStore>,
    /// Where every answer is recorded ([`audit`]); `None` records nothing (unit tests).
    pub audit: Option<audit::Audit>,
    /// `None`: the report route answers 404. It reads the store of [`ReadState::alerts`].
    pub reports: Option<reports::Reports>,
}

/// Every read route, with `state` attached. No fallback route is installed, so this merges
/// with the receiver's router.
pub fn router(state: ReadState) -> Router {
    use axum::routing::{get, post};
    let audit = state.audit.clone();
    let routes = Router::new()
        .route("/v1/search", get(search::search))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/alerts/{id}", get(alerts::show))
        .route("/v1/alerts/{id}/ack", post(alerts::ack))
        .route("/v1/alerts/{id}/resolve", post(alerts::resolve))
        .route("/v1/raw/{event_id}", get(raw::line))
        .route("/v1/audit", get(access::list))
        .route("/v1/reports/soc2", get(reports::soc2));
    let routes = match audit {
        Some(audit) => routes.route_layer(axum::middleware::from_fn_with_state(audit, audit::audited)),
        None => routes,
    };
    routes.with_state(state)
}
