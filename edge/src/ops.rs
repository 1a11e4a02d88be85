//! The operator routes every gatelog server answers: `GET /healthz`, `GET /readyz` and
//! `GET /metrics`, over an [`Edge`](crate::Edge)'s readiness checks and metrics registry.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /healthz` | 200 `ok` while the process runs |
//! | `GET /readyz` | 200 `ready`, or 503 `not ready: <reason>; <reason>…` with every [`ReadinessCheck`]'s reasons, in the order they were added |
//! | `GET /metrics` | Prometheus text ([`MetricsRegistry`](crate::MetricsRegistry)) |

use crate::Edge;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

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

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(edge): State<Edge>) -> Response {
    match edge.not_ready_reason() {
        None => (StatusCode::OK, "ready").into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}")).into_response(),
    }
}

async fn metrics(State(edge): State<Edge>) -> Response {
    let text = edge.metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}
