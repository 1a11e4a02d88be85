//! `/readyz` asks the checks the binary adds (its sinks) besides the receiver's own reasons,
//! and ingest keeps its own answers whatever they say.

mod receiver_support;

use axum::http::StatusCode;
use gatelog_edge::ReadinessCheck;
use receiver_support::*;
use std::sync::{Arc, Mutex};

/// A check whose reasons the test sets.
#[derive(Debug, Default)]
struct Reasons(Mutex<Vec<String>>);

impl ReadinessCheck for Reasons {
    fn not_ready(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[tokio::test]
async fn added_checks_make_readyz_fail_with_every_reason_while_ingest_goes_on() {
    let h = Harness::new();
    let sinks = Arc::new(Reasons::default());
    h.state.add_readiness_check(sinks.clone());
    assert_eq!(h.get("/readyz").await.status, StatusCode::OK);

    *sinks.0.lock().unwrap() =
        vec!["clickhouse: waiting: ClickHouse is unreachable".into(), "index: stopped: record 7".into()];
    let ready = h.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.text, "not ready: clickhouse: waiting: ClickHouse is unreachable; index: stopped: record 7");
    let a = h.post("/v1/logpush/http_requests", sample_lines("http_requests.ndjson", 0, 2)).await;
    assert_eq!(a.status, StatusCode::OK, "ingest keeps its own backpressure rules: {}", a.text);

    sinks.0.lock().unwrap().clear();
    assert_eq!(h.get("/readyz").await.status, StatusCode::OK);
}
