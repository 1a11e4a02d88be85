//! Generic reverse-proxy routes for BI tools (Metabase, Looker, Tableau, …).
//!
//! A route maps a path prefix to an upstream. Each request is authenticated like a SQL
//! request; the role's `http_allow`/`http_deny` prefixes decide (deny wins, default deny).
//! Browsers without a valid session (`Accept: text/html`) are redirected to the configured
//! login URL; API clients get 401/403 with a reason. Identity headers are set for the
//! upstream and any incoming copies (and the proxy's own token headers) are stripped.

use crate::clickhouse::{finish, new_decision};
use crate::config::BiRoute;
use crate::server::{Shared, error_response};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use gatelog_model::Decision;
use http::{HeaderName, HeaderValue, StatusCode};
use std::sync::Arc;
use std::time::Instant;

const DEFAULT_PRINCIPAL_HEADER: &str = "x-gatelog-principal";
const DEFAULT_ROLES_HEADER: &str = "x-gatelog-roles";
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn route_for<'a>(routes: &'a [BiRoute], path: &str) -> Option<&'a BiRoute> {
    routes
        .iter()
        .filter(|r| path.starts_with(r.prefix.as_str()) || path == r.prefix.trim_end_matches('/'))
        .max_by_key(|r| r.prefix.len())
}

fn wants_html(req: &Request) -> bool {
    req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

/// Handles every path that is not a ClickHouse route.
pub async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let Some(route) = route_for(&shared.config.bi.routes, &path).cloned() else {
        return error_response(StatusCode::NOT_FOUND, "not_found", "routes", "no route for this path", "");
    };
    let started = Instant::now();
    let (id, mut d) = new_decision(&shared, &req, &path);
    d.action = req.method().to_string();
    let host = if d.host.is_empty() { "proxy".to_owned() } else { d.host.clone() };
    d.resource = format!("http://{host}{path}");

    let identity = match shared.auth.authenticate(req.headers()).await {
        Ok(i) => i,
        Err(e) => {
            d.policy = "identity".into();
            d.reason = e.to_string();
            if let (true, Some(login)) = (wants_html(&req), shared.config.bi.login_url.as_deref()) {
                let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let sep = if login.contains('?') { '&' } else { '?' };
                let location = format!(
                    "{login}{sep}{}",
                    form_urlencoded::Serializer::new(String::new()).append_pair("return_to", target).finish()
                );
                finish(&shared, d, Decision::Deny, StatusCode::FOUND, started);
                return Response::builder()
                    .status(StatusCode::FOUND)
                    .header(http::header::LOCATION, location)
                    .body(Body::empty())
                    .unwrap_or_default();
            }
            let reason = e.to_string();
            finish(&shared, d, Decision::Deny, StatusCode::UNAUTHORIZED, started);
            return error_response(StatusCode::UNAUTHORIZED, "unauthenticated", "identity", &reason, &id);
        }
    };
    let policy = shared.policy();
    let roles = policy.roles_for(&identity);
    d.principal = identity.principal.clone();
    d.principal_type = identity.principal_type;
    d.roles = roles.clone();
    d.auth_method = identity.auth_method.clone();
    let verdict = policy.evaluate_http(&roles, &path);
    d.policy = verdict.rule.clone();
    d.reason = verdict.reason.clone();
    if !verdict.allowed {
        finish(&shared, d, Decision::Deny, StatusCode::FORBIDDEN, started);
        return error_response(StatusCode::FORBIDDEN, "forbidden", &verdict.rule, &verdict.reason, &id);
    }

    let (mut parts, body) = req.into_parts();
    let rest =
        if route.strip_prefix { path.strip_prefix(route.prefix.trim_end_matches('/')).unwrap_or(&path) } else { &path };
    let rest = if rest.is_empty() { "/" } else { rest };
    let query = parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let target = format!("{}{rest}{query}", route.upstream.trim_end_matches('/'));
    let Ok(uri) = target.parse::<http::Uri>() else {
        finish(&shared, d, Decision::Error, StatusCode::BAD_GATEWAY, started);
        return error_response(StatusCode::BAD_GATEWAY, "upstream_error", "forward", "bad upstream URL", &id);
    };
    parts.uri = uri;
    let principal_header = shared.config.bi.principal_header.as_deref().unwrap_or(DEFAULT_PRINCIPAL_HEADER);
    let roles_header = shared.config.bi.roles_header.as_deref().unwrap_or(DEFAULT_ROLES_HEADER);
    let headers = &mut parts.headers;
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
    headers.remove(http::header::HOST);
    headers.remove(http::header::AUTHORIZATION);
    let strip: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            k.starts_with("x-gatelog-")
                || k.eq_ignore_ascii_case(principal_header)
                || k.eq_ignore_ascii_case(roles_header)
                || k == "cf-access-jwt-assertion"
                || shared.config.issuers.iter().any(|i| i.header.eq_ignore_ascii_case(k))
        })
        .cloned()
        .collect();
    for k in strip {
        headers.remove(k);
    }
    let set = |headers: &mut http::HeaderMap, name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            headers.insert(n, v);
        }
    };
    set(headers, principal_header, &identity.principal);
    set(headers, roles_header, &roles.join(","));
    set(headers, "x-gatelog-decision-id", &id);
    let upstream_req = http::Request::from_parts(parts, body);
    match shared.bi_upstream.send(upstream_req).await {
        Ok(resp) => {
            let status = resp.status();
            finish(&shared, d, Decision::Allow, status, started);
            let (mut parts, body) = resp.into_parts();
            for h in HOP_BY_HOP {
                parts.headers.remove(*h);
            }
            Response::from_parts(parts, body)
        }
        Err(e) => {
            tracing::error!(error = %e, request_id = %id, route = %route.name, "bi upstream unreachable");
            d.error = e;
            finish(&shared, d, Decision::Error, StatusCode::BAD_GATEWAY, started);
            error_response(StatusCode::BAD_GATEWAY, "upstream_error", "forward", "the upstream is unreachable", &id)
        }
    }
}
