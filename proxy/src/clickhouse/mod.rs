//! The ClickHouse HTTP route (`GET|POST /`): cross-site check → identity (headers only) →
//! guard → policy → limits → forwarding, with exactly one decision per request.
//!
//! - [`csrf`]: why a request looks cross-site (and why headers-only credentials plus that
//!   check, rather than either alone).
//! - [`run`]: the forwarded query's life, in a task of its own so that a client that goes
//!   away cannot cut it short: its query is killed in ClickHouse, its concurrency slot held
//!   until then, and its decision emitted either way.
//!
//! A GET is forwarded as a GET, the SQL in the `query` parameter: ClickHouse runs GETs
//! read-only, whatever the role may do. The proxy also refuses a statement that writes
//! on GET itself, with a clear message, before ClickHouse would.

mod csrf;
mod run;

use crate::forward;
use crate::guard;
use crate::identity::Sources;
use crate::request::{Pending, identify};
use crate::state::Shared;
use axum::extract::Request;
use axum::response::Response;
use gatelog_model::query;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;

/// ClickHouse 18.16 refuses request lines over 16 KiB (newer servers allow 1 MiB); a GET
/// forwarded with a longer URL is refused here with a way out.
pub const MAX_GET_URL: usize = 16 * 1024;

/// Handles one ClickHouse HTTP request.
pub async fn handle(shared: Arc<Shared>, req: Request, mut pending: Pending) -> Response {
    pending.d().resource = "clickhouse:".into();
    let method = req.method().clone();
    if method != Method::GET && method != Method::POST {
        let reason = format!("the SQL route takes GET (read-only) and POST, not {method}");
        let mut resp = pending.refuse(StatusCode::METHOD_NOT_ALLOWED, "bad_request", "method", &reason);
        resp.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static("GET, POST"));
        return resp;
    }
    if let Some(why) = csrf::cross_site(req.headers()) {
        return pending.refuse(StatusCode::FORBIDDEN, "forbidden", "cross_site", &why);
    }
    let roles = match identify(&shared, req.headers(), Sources::Headers, &mut pending).await {
        Ok((_, roles)) => roles,
        Err(e) => return pending.refuse(StatusCode::UNAUTHORIZED, "unauthenticated", "identity", &e.to_string()),
    };
    let principal = pending.d().principal.clone();
    let policy = shared.policy();

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
                return pending.refuse(StatusCode::FORBIDDEN, "forbidden", "guard.format", &reason);
            }
            passed.push((k.into_owned(), v.into_owned()));
        }
    }
    let limit = usize::try_from(shared.config.max_query_size.as_u64()).unwrap_or(usize::MAX);
    let body = match http_body_util::Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let reason = format!("the query is larger than max_query_size ({})", shared.config.max_query_size);
            return pending.refuse(StatusCode::PAYLOAD_TOO_LARGE, "bad_request", "max_query_size", &reason);
        }
        Err(_) => {
            return pending.refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "request",
                "the request body could not be read",
            );
        }
    };
    let Ok(body_text) = std::str::from_utf8(&body) else {
        return pending.refuse(StatusCode::BAD_REQUEST, "bad_request", "guard.parse", "the query is not UTF-8");
    };
    let sql = match (query_param.is_empty(), body_text.trim().is_empty()) {
        (false, false) => format!("{query_param}\n{body_text}"),
        (false, true) => query_param,
        (true, _) => body_text.to_owned(),
    };
    pending.d().query = query::mask(&sql);
    pending.d().query_fingerprint = query::fingerprint(&sql);

    let db = policy.default_database(&roles, database.as_deref());
    let outcome = policy.check_sql(&roles, &db, &sql);
    let (analysis, verdict) = match outcome.as_ref() {
        Ok((a, v)) => (a, v),
        Err(rejection) => {
            let status =
                if *rejection == guard::Rejection::Empty { StatusCode::BAD_REQUEST } else { StatusCode::FORBIDDEN };
            let code = if status == StatusCode::BAD_REQUEST { "bad_request" } else { "forbidden" };
            return pending.refuse(status, code, rejection.rule(), &rejection.to_string());
        }
    };
    let d = pending.d();
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
        return pending.refuse(StatusCode::FORBIDDEN, "forbidden", &verdict.rule, &verdict.reason);
    }
    if method == Method::GET && !analysis.kind.is_read_only() {
        let reason = format!(
            "a GET is read-only (ClickHouse runs it with readonly): send {} statements with POST",
            analysis.kind.as_str()
        );
        return pending.refuse(StatusCode::FORBIDDEN, "forbidden", "method.get", &reason);
    }
    let Some(role) = verdict.role.as_deref().and_then(|r| policy.role(r)) else {
        return pending.refuse(StatusCode::FORBIDDEN, "forbidden", &verdict.rule, "no role decided");
    };
    if let Err(retry) = shared.limiter.allow_request(&role.name, &principal, role.limits.requests_per_minute) {
        shared.metrics.rate_limited(false);
        let rule = format!("roles.{}.requests_per_minute", role.name);
        let reason = format!("more than {} requests per minute", role.limits.requests_per_minute.unwrap_or(0));
        pending.d().reason.clear();
        return pending.rate_limited(&rule, &reason, retry);
    }
    let Some(slot) = shared.limiter.acquire(&role.name, &principal, role.limits.max_concurrent_queries) else {
        let rule = format!("roles.{}.max_concurrent_queries", role.name);
        let reason = format!("more than {} concurrent queries", role.limits.max_concurrent_queries.unwrap_or(0));
        pending.d().reason.clear();
        return pending.refuse(StatusCode::TOO_MANY_REQUESTS, "rate_limited", &rule, &reason);
    };
    pending.d().policy = verdict.rule.clone();

    // ClickHouse resolves unqualified names against the same database the guard used.
    passed.push(("database".into(), db.clone()));
    // The proxy's own settings come last and are the only settings sent.
    if role.read_only() {
        passed.push(("readonly".into(), "2".into()));
    }
    let id = pending.id();
    passed.push(("query_id".into(), id.clone()));
    // Logged under that id whatever the server's default (18.16 logs nothing unless asked),
    // so gatelog serve's query-log job can judge the query on what it really read.
    passed.push(("log_queries".into(), "1".into()));
    if shared.log_comment_supported() {
        passed.push(("log_comment".into(), id.clone()));
    }
    for (k, v) in role.limits.clickhouse_settings() {
        passed.push((k.to_owned(), v));
    }
    let upstream_req = match forward::clickhouse_request(
        &shared.clickhouse,
        &method,
        &passed,
        analysis.sql.clone(),
        &role.clickhouse_user,
        role.clickhouse_password.expose(),
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, request_id = %id, "cannot build upstream request");
            let reason = "the proxy could not forward the query";
            return pending.refuse(StatusCode::BAD_GATEWAY, "upstream_error", "forward", reason);
        }
    };
    if method == Method::GET && upstream_req.uri().to_string().len() > MAX_GET_URL {
        let reason =
            format!("a GET query must fit ClickHouse's URL limit ({} KiB): send it with POST", MAX_GET_URL / 1024);
        return pending.refuse(StatusCode::URI_TOO_LONG, "bad_request", "method.get", &reason);
    }
    pending.allowed();
    run::forward(shared, pending, slot, upstream_req, role.name.clone()).await
}
