//! A forwarded query's life, supervised by a task of its own.
//!
//! The handler hands the query to [`forward`] and waits for the response head. If the
//! client goes away first, hyper drops the handler, and with it only the receiving end of
//! that wait: the supervisor sees it, stops waiting for ClickHouse, kills the query by its
//! stamped `query_id` ([`crate::forward::kill_query`], bounded by `kill_timeout`), and only
//! then frees the concurrency slot and emits the decision (status 499, saying the client
//! went away and what became of its query). ClickHouse 18.16 does not notice a closed HTTP
//! connection until it writes, so without the kill the query would run on.
//!
//! The same holds while the answer streams: the body reports how it ended; a client that
//! closed the connection half-way, or stopped reading for `stalled_client_timeout`, gets its
//! query killed the same way. A complete answer, or one ClickHouse itself broke off, is
//! recorded as it ended.

use crate::forward::{self, KillOutcome, OnEnd, Outcome, Progress, Tracked};
use crate::limits::Slot;
use crate::metrics::Killed;
use crate::request::{Pending, error_response};
use crate::state::Shared;
use axum::body::Body;
use axum::response::Response;
use gatelog_model::Decision;
use http::StatusCode;
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Response headers from ClickHouse that are passed back to the client.
const PASS_HEADERS: &[&str] =
    &["content-type", "x-clickhouse-format", "x-clickhouse-summary", "x-clickhouse-query-id", "x-clickhouse-timezone"];

/// Sends `req` to ClickHouse under a supervisor task and returns its response.
pub(super) async fn forward(
    shared: Arc<Shared>,
    pending: Pending,
    slot: Slot,
    req: http::Request<Body>,
    role: String,
) -> Response {
    let id = pending.id();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(supervise(shared, pending, slot, req, role, tx));
    rx.await.unwrap_or_else(|_| {
        error_response(StatusCode::BAD_GATEWAY, "upstream_error", "forward", "the proxy lost the query", &id)
    })
}

async fn supervise(
    shared: Arc<Shared>,
    mut pending: Pending,
    slot: Slot,
    req: http::Request<Body>,
    role: String,
    mut tx: oneshot::Sender<Response>,
) {
    let id = pending.id();
    let sent = shared.upstream.send(req);
    let resp = tokio::select! {
        r = sent => r,
        () = tx.closed() => {
            abandon(&shared, pending, slot, &id, "the client went away before ClickHouse answered", None).await;
            return;
        }
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, request_id = %id, "clickhouse unreachable");
            pending.d().error = e;
            drop(slot);
            let r = pending.refuse(StatusCode::BAD_GATEWAY, "upstream_error", "forward", "ClickHouse is unreachable");
            let _ = tx.send(r);
            return;
        }
    };
    let status = resp.status();
    let stats = forward::read_stats(resp.headers());
    let d = pending.d();
    d.rows_read = stats.rows_read;
    d.bytes_read = stats.bytes_read;
    d.result_rows = stats.result_rows;
    if !status.is_success() {
        // ClickHouse refused or failed the query: it is over, nothing to kill.
        let (parts, body) = resp.into_parts();
        let bytes = http_body_util::Limited::new(body, 64 * 1024).collect().await.map(|b| b.to_bytes());
        let failure = forward::classify_error(&String::from_utf8_lossy(&bytes.unwrap_or_default()));
        tracing::warn!(request_id = %id, clickhouse_status = %parts.status, clickhouse_code = ?failure.clickhouse_code, "clickhouse refused the query");
        let d = pending.d();
        d.error = failure.reason.clone();
        let rule = match failure.limit {
            Some(l) => format!("roles.{role}.{l}"),
            None => "clickhouse".to_owned(),
        };
        if failure.limit.is_some() {
            d.reason = failure.reason.clone();
        }
        drop(slot);
        let _ = tx.send(pending.refuse(failure.status, failure.code, &rule, &failure.reason));
        return;
    }

    let (parts, body) = resp.into_parts();
    let mut out = Response::builder().status(status);
    for name in PASS_HEADERS {
        for v in parts.headers.get_all(*name) {
            out = out.header(*name, v);
        }
    }
    out = out.header("x-gatelog-decision-id", id.as_str());
    // The decision and the slot, shared by the body (which finishes them as the answer
    // ends, so a decision is out when the client has its last byte) and this task (which
    // finishes them after killing the query of a client that left).
    let run = Arc::new(Mutex::new(Some((pending, slot))));
    let (end_tx, mut end_rx) = oneshot::channel::<Outcome>();
    let progress = Progress::new();
    let on_end: OnEnd = {
        let run = run.clone();
        Box::new(move |outcome: Outcome| {
            // Complete, or broken off by ClickHouse (a limit reached mid-stream, say), which
            // ended the query itself: finished here. Otherwise the client left: the task kills.
            if (outcome.complete || outcome.error.is_some())
                && let Some((mut pending, slot)) = take(&run)
            {
                drop(slot);
                if let Some(e) = &outcome.error {
                    pending.d().error = e.clone();
                }
                pending.finish(Decision::Allow, status);
            }
            let _ = end_tx.send(outcome);
        })
    };
    let body = Body::new(Tracked::new(body, progress.clone(), on_end));
    match out.body(body) {
        // If the client is gone already, the response is dropped here and the body reports it.
        Ok(resp) => drop(tx.send(resp)),
        Err(_) => {
            if let Some((pending, slot)) = take(&run) {
                drop(slot);
                let reason = "bad upstream response";
                let _ = tx.send(pending.refuse(StatusCode::BAD_GATEWAY, "upstream_error", "forward", reason));
            }
            return;
        }
    }

    let stall = shared.config.clickhouse.stalled_client_timeout;
    let check = (stall / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let what = loop {
        match tokio::time::timeout(check, &mut end_rx).await {
            Ok(_) => break "the client went away during the answer".to_owned(),
            Err(_) if progress.waiting_on_client().is_some_and(|w| w >= stall) => {
                progress.abort();
                break format!("the client stopped reading the answer for {}", humantime::format_duration(stall));
            }
            Err(_) => {}
        }
    };
    // Still here after the body ended: the client left before the end.
    if let Some((pending, slot)) = take(&run) {
        abandon(&shared, pending, slot, &id, &what, Some(status)).await;
    }
}

type Run = Arc<Mutex<Option<(Pending, Slot)>>>;

fn take(run: &Run) -> Option<(Pending, Slot)> {
    run.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Kills the query of a client that went away, then frees its slot and emits its decision
/// (with the status already sent, if any).
async fn abandon(shared: &Shared, pending: Pending, slot: Slot, id: &str, what: &str, sent: Option<StatusCode>) {
    let c = &shared.config.clickhouse;
    let kill =
        forward::kill_query(shared.upstream.as_ref(), &shared.clickhouse, &c.user, shared.own_password.expose(), id);
    let (outcome, note) = match tokio::time::timeout(c.kill_timeout, kill).await {
        Ok(Ok(KillOutcome::Killed)) => (Killed::Killed, "its query was killed".to_owned()),
        Ok(Ok(KillOutcome::NotRunning)) => (Killed::AlreadyDone, "its query had already finished".to_owned()),
        Ok(Err(e)) => {
            tracing::error!(request_id = %id, error = %e, "cannot kill the query of a client that went away");
            (Killed::Failed, "killing its query failed".to_owned())
        }
        Err(_) => {
            tracing::error!(request_id = %id, timeout = ?c.kill_timeout, "the query of a client that went away was still running after kill_timeout");
            (Killed::Failed, "its query was still running after kill_timeout".to_owned())
        }
    };
    shared.metrics.killed(outcome);
    tracing::warn!(request_id = %id, outcome = ?outcome, what, note = %note, "client went away; its query was stopped");
    // Only now: the query is gone (or given up on after kill_timeout).
    drop(slot);
    pending.client_gone(&format!("{what}; {note}"), sent);
}
