//! The operator routes every gatelog server answers: `GET /healthz`, `GET /readyz` and
//! `GET /metrics`, over an [`Edge`](crate::Edge)'s readiness checks and metrics registry.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /healthz` | 200 `ok` while the process runs |
//! | `GET /readyz` | 200 `ready`, or 503 `not ready: <reason>; <reason>…` with every [`ReadinessCheck`]'s reasons, in the order they were added |
//! | `GET /metrics` | Prometheus text ([`MetricsRegistry`](crate::MetricsRegistry)) |
//!
//! Who may read them without a token is `auth.ops_without_token`
//! ([`OpsAccess`]): by default peers on a loopback address; everyone else needs a reading
//! role's token ([`Access::Operate`]), or gets 401/403 like any other route. The peer is
//! the `ConnectInfo<SocketAddr>` extension [`HttpServer`](crate::serve::HttpServer) puts on
//! every request; a request without it did not come through a socket gatelog accepted (an
//! in-process call, as in tests) and counts as local.

use crate::Edge;
use crate::auth::Access;
use crate::config::OpsAccess;
use crate::error::ApiError;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;

/// Something `/readyz` asks: the receiver (spool failing, sinks lagging), the binary's sinks
/// (a sink stopped, waiting, rebuilding). A reason takes the server out of rotation.
pub trait ReadinessCheck: Send + Sync + std::fmt::Debug {
    /// One line per reason not to send traffic here now; empty when all is well.
    fn not_ready(&self) -> Vec<String>;
}

/// `/healthz`, `/readyz` and `/metrics` over `edge`. No fallback route is installed, so
/// this merges with the receiver's and the read routes.
pub fn router(edge: Edge) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(edge)
}

/// Whether `request` may read an operator route: its peer is one `ops` opens them to, or it
/// carries a token of a reading role.
async fn admit(edge: &Edge, request: Request) -> Result<(), ApiError> {
    // The head only: a body is not `Sync`, so a reference to it cannot be held across the
    // identity check's await.
    let request = request.into_parts().0;
    let peer = request.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let open = match edge.ops_access() {
        OpsAccess::Anywhere => true,
        OpsAccess::Loopback => peer.is_none_or(|p| p.ip().to_canonical().is_loopback()),
        OpsAccess::Nowhere => false,
    };
    if open {
        return Ok(());
    }
    edge.authorize(&request.headers, Access::Operate).await.map(|_| ())
}

async fn healthz(State(edge): State<Edge>, request: Request) -> Response {
    let result = admit(&edge, request).await.map(|()| "ok".into_response());
    edge.finish("ops", result)
}

async fn readyz(State(edge): State<Edge>, request: Request) -> Response {
    let result = admit(&edge, request).await.map(|()| match edge.not_ready_reason() {
        None => (StatusCode::OK, "ready").into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}")).into_response(),
    });
    edge.finish("ops", result)
}

async fn metrics(State(edge): State<Edge>, request: Request) -> Response {
    let result = admit(&edge, request).await.map(|()| {
        let text = edge.metrics().render();
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
    });
    edge.finish("ops", result)
}
