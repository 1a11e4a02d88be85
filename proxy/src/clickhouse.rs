//! The ClickHouse HTTP route (`GET|POST /`): identity → guard → policy → limits →
//! forwarding, with exactly one decision emitted per request (for streamed answers, when
//! the last byte has gone or the client has left).

use crate::forward::{self, Outcome, Tracked};
use crate::guard;
use crate::server::{Shared, error_response};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use gatelog_model::{AccessDecision, Decision, EventId, Source, query};
use http::StatusCode;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Response headers from ClickHouse that are passed back to the client.
const PASS_HEADERS: &[&str] =
    &["content-type", "x-clickhouse-format", "x-clickhouse-summary", "x-clickhouse-query-id", "x-clickhouse-timezone"];

/// A new decision for one request, with the request's own facts filled in.
pub(crate) fn new_decision(shared: &Shared, req: &Request, resource_path: &str) -> (String, AccessDecision) {
    let id = uuid::Uuid::new_v4().to_string();
    let now = shared.clock.now();
    let mut d = AccessDecision::new(EventId::for_decision(&id), now, "proxy", Source::Proxy);
    d.received_at = now;
    d.request_id = id.clone();
    d.client_ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default();
    let header =
        |name: http::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    d.user_agent = header(http::header::USER_AGENT);
    d.host = header(http::header::HOST);
    d.path = resource_path.to_owned();
    (id, d)
}

pub(crate) fn finish(shared: &Shared, mut d: AccessDecision, decision: Decision, status: StatusCode, started: Instant) {
    d.decision = decision;
    d.status = status.as_u16();
    d.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    shared.emitter.emit(d);
}

fn deny(
    shared: &Shared,
    mut d: AccessDecision,
    status: StatusCode,
    code: &str,
    rule: &str,
    reason: &str,
    started: Instant,
) -> Response {
    d.policy = rule.to_owned();
    if d.reason.is_empty() {
        d.reason = reason.to_owned();
    }
    let id = d.request_id.clone();
    let decision = if matches!(code, "query_error" | "upstream_error") { Decision::Error } else { Decision::Deny };
    finish(shared, d, decision, status, started);
    error_response(status, code, rule, reason, &id)
}

/// Handles one ClickHouse HTTP request.
pub async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let started = Instant::now();
    let (id, mut d) = new_decision(&shared, &req, "/");
    d.resource = "clickhouse:".into();

    let identity = match shared.auth.authenticate(req.headers()).await {
        Ok(i) => i,
        Err(e) => {
            return deny(&shared, d, StatusCode::UNAUTHORIZED, "unauthenticated", "identity", &e.to_string(), started);
        }
    };
    let policy = shared.policy();
    let roles = policy.roles_for(&identity);
    d.principal = identity.principal.clone();
    d.principal_type = identity.principal_type;
    d.roles = roles.clone();
    d.auth_method = identity.auth_method.clone();

    // Client parameters: `query`, and the allow-listed pass-through ones; the rest is dropped.
    let mut query_param = String::new();
    let mut passed: Vec<(String, String)> = Vec::new();
    let mut database = None;
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
        if k == "query" {
            query_param = v.into_owned();
        } else if shared.config.clickhouse.pass_params.iter().any(|p| *p == k) {
            if k == "database" {
                // Sent below as the database the guard resolved unqualified names against.
                database = Some(v.into_owned());
                continue;
            }
            if k == "default_format" && !guard::format_allowed(&v) {
                let reason = format!("default_format {v} is not allowed");
                return deny(&shared, d, StatusCode::FORBIDDEN, "forbidden", "guard.format", &reason, started);
            }
            passed.push((k.into_owned(), v.into_owned()));
        }
    }
    let limit = usize::try_from(shared.config.max_query_size.as_u64()).unwrap_or(usize::MAX);
    let body = match http_body_util::Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let reason = format!("the query is larger than max_query_size ({})", shared.config.max_query_size);
            return deny(&shared, d, StatusCode::PAYLOAD_TOO_LARGE, "bad_request", "max_query_size", &reason, started);
        }
    };
    let Ok(body_text) = std::str::from_utf8(&body) else {
        return deny(
            &shared,
            d,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "guard.parse",
            "the query is not UTF-8",
            started,
        );
    };
    let sql = match (query_param.is_empty(), body_text.trim().is_empty()) {
        (false, false) => format!("{query_param}\n{body_text}"),
        (false, true) => query_param,
        (true, _) => body_text.to_owned(),
    };
    d.query = query::mask(&sql);
    d.query_fingerprint = query::fingerprint(&sql);

    let db = policy.default_database(&roles, database.as_deref());
    let outcome = policy.check_sql(&roles, &db, &sql);
    let (analysis, verdict) = match outcome.as_ref() {
        Ok((a, v)) => (a, v),
        Err(rejection) => {
            let status =
                if *rejection == guard::Rejection::Empty { StatusCode::BAD_REQUEST } else { StatusCode::FORBIDDEN };
            let code = if status == StatusCode::BAD_REQUEST { "bad_request" } else { "forbidden" };
            return deny(&shared, d, status, code, rejection.rule(), &rejection.to_string(), started);
        }
    };
    d.action = analysis.kind.as_str().to_owned();
    d.resource = match (analysis.tables.first(), analysis.table_functions.first()) {
        (Some(t), _) => format!("clickhouse:{t}"),
        (None, Some(f)) => format!("clickhouse:{f}()"),
        (None, None) => format!("clickhouse:{db}"),
    };
    let tables: Vec<String> = analysis.tables.iter().map(|t| t.to_string()).collect();
    d.reason = if tables.len() > 1 {
        format!("{} (tables: {})", verdict.reason, tables.join(", "))
    } else {
        verdict.reason.clone()
    };
    if !verdict.allowed {
        return deny(&shared, d, StatusCode::FORBIDDEN, "forbidden", &verdict.rule, &verdict.reason, started);
    }
    let Some(role) = verdict.role.as_deref().and_then(|r| policy.role(r)) else {
        return deny(&shared, d, StatusCode::FORBIDDEN, "forbidden", &verdict.rule, "no role decided", started);
    };
    if !shared.limiter.allow_request(&role.name, &identity.principal, role.limits.requests_per_minute) {
        let rule = format!("roles.{}.requests_per_minute", role.name);
        let reason = format!("more than {} requests per minute", role.limits.requests_per_minute.unwrap_or(0));
        d.reason.clear();
        return deny(&shared, d, StatusCode::TOO_MANY_REQUESTS, "rate_limited", &rule, &reason, started);
    }
    let Some(slot) = shared.limiter.acquire(&role.name, &identity.principal, role.limits.max_concurrent_queries) else {
        let rule = format!("roles.{}.max_concurrent_queries", role.name);
        let reason = format!("more than {} concurrent queries", role.limits.max_concurrent_queries.unwrap_or(0));
        d.reason.clear();
        return deny(&shared, d, StatusCode::TOO_MANY_REQUESTS, "rate_limited", &rule, &reason, started);
    };
    d.policy = verdict.rule.clone();

    // ClickHouse resolves unqualified names against the same database the guard used.
    passed.push(("database".into(), db.clone()));
    // The proxy's own settings come last and are the only settings sent.
    if role.read_only() {
        passed.push(("readonly".into(), "2".into()));
    }
    passed.push(("query_id".into(), id.clone()));
    if shared.log_comment_supported() {
        passed.push(("log_comment".into(), id.clone()));
    }
    for (k, v) in role.limits.clickhouse_settings() {
        passed.push((k.to_owned(), v));
    }
    let upstream_req = match forward::clickhouse_request(
        &shared.config.clickhouse.url,
        &passed,
        analysis.sql.clone(),
        &role.clickhouse_user,
        role.clickhouse_password.expose(),
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, request_id = %id, "cannot build upstream request");
            return deny(
                &shared,
                d,
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "forward",
                "the proxy could not forward the query",
                started,
            );
        }
    };
    let resp = match shared.upstream.send(upstream_req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, request_id = %id, "clickhouse unreachable");
            d.error = e;
            return deny(
                &shared,
                d,
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "forward",
                "ClickHouse is unreachable",
                started,
            );
        }
    };
    let status = resp.status();
    let stats = forward::read_stats(resp.headers());
    d.rows_read = stats.rows_read;
    d.bytes_read = stats.bytes_read;
    d.result_rows = stats.result_rows;
    if !status.is_success() {
        let (parts, body) = resp.into_parts();
        let bytes =
            http_body_util::Limited::new(body, 64 * 1024).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let failure = forward::classify_error(&String::from_utf8_lossy(&bytes));
        tracing::warn!(request_id = %id, clickhouse_status = %parts.status, clickhouse_code = ?failure.clickhouse_code, "clickhouse refused the query");
        d.error = failure.reason.clone();
        let rule = match failure.limit {
            Some(l) => format!("roles.{}.{l}", role.name),
            None => "clickhouse".to_owned(),
        };
        if failure.limit.is_some() {
            d.reason = failure.reason.clone();
        }
        drop(slot);
        return deny(&shared, d, failure.status, failure.code, &rule, &failure.reason, started);
    }

    let (parts, body) = resp.into_parts();
    let mut out = Response::builder().status(status);
    for name in PASS_HEADERS {
        for v in parts.headers.get_all(*name) {
            out = out.header(*name, v);
        }
    }
    out = out.header("x-gatelog-decision-id", id.as_str());
    let shared2 = shared.clone();
    let tracked = Tracked::new(body, move |outcome: Outcome| {
        let _slot = slot;
        let mut d = d;
        if let Some(e) = outcome.error {
            d.error = e;
        } else if !outcome.complete {
            d.error = "the client left before the end of the response".into();
        }
        finish(&shared2, d, Decision::Allow, status, started);
    });
    out.body(Body::new(tracked)).unwrap_or_else(|_| {
        error_response(StatusCode::BAD_GATEWAY, "upstream_error", "forward", "bad upstream response", &id)
    })
}
