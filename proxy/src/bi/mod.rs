//! Generic reverse-proxy routes for BI tools (Metabase, Grafana, Superset, Tableau, …).
//!
//! The request path is normalised first ([`crate::http_path`]): a path upstreams could read
//! differently is refused with 400; otherwise the normal form is what picks the route
//! (prefixes start and end with `/`, matched by whole segments; lowercased for a
//! `case_insensitive` route), what the role's `http_allow`/`http_deny` prefixes decide
//! (deny wins, default deny; a deny also holds in any other case of the path, since an
//! upstream may ignore case), what the decision records, and what is forwarded. The
//! upstream URL is built from the route's parsed scheme and authority ([`crate::net`]), so
//! no path can send the request elsewhere.
//!
//! Each request is authenticated like a SQL request, but may also carry its token in the
//! issuer's cookie (browser sessions). Browsers without a valid session (`Accept:
//! text/html`) are redirected to the configured login URL; API clients get 401/403 with a
//! reason. The upstream receives the proxy's identity headers and nothing a client could
//! pass off as one ([`headers`]). An unrouted path is a 404, with its decision.

mod headers;

use crate::config::BiRoute;
use crate::http_path;
use crate::identity::Sources;
use crate::request::{Pending, identify};
use crate::state::{Compiled, Shared};
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use gatelog_model::Decision;
use http::{HeaderName, HeaderValue, StatusCode};
use std::sync::Arc;

const DEFAULT_PRINCIPAL_HEADER: &str = "x-gatelog-principal";
const DEFAULT_ROLES_HEADER: &str = "x-gatelog-roles";

/// The route for a normalised path: the longest prefix matching whole segments, and the
/// path as that route sees it (lowercased for a `case_insensitive` route).
fn route_for<'a>(routes: &'a [BiRoute], path: &str) -> Option<(usize, &'a BiRoute, String)> {
    let lower = http_path::lowercase(path);
    routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let p = if r.case_insensitive { lower.clone() } else { path.to_owned() };
            let hit = p.starts_with(r.prefix.as_str()) || p == r.prefix.trim_end_matches('/');
            hit.then_some((i, r, p))
        })
        .max_by_key(|(_, r, _)| r.prefix.len())
}

/// An `http_deny` prefix of one of `roles` that matches `path` in another case: a deny
/// holds whatever case an upstream that ignores it is sent (allows stay exact).
fn folded_deny(compiled: &Compiled, roles: &[String], path: &str) -> Option<(String, String)> {
    let lower = http_path::lowercase(path);
    roles.iter().find_map(|role| {
        let prefixes = compiled.http_deny_folded.get(role)?;
        let i = prefixes
            .iter()
            .position(|p| lower.starts_with(p.as_str()) || (p.ends_with('/') && lower == p.trim_end_matches('/')))?;
        Some((format!("roles.{role}.http_deny[{i}]"), format!("path {path} is denied to role {role} (in any case)")))
    })
}

fn wants_html(req: &Request) -> bool {
    req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

/// Handles every path that is not the ClickHouse route or the proxy's own.
pub async fn handle(shared: Arc<Shared>, req: Request, mut pending: Pending) -> Response {
    let path = match http_path::normalize(req.uri().path()) {
        Ok(p) => p,
        Err(e) => {
            pending.d().resource = "http:".into();
            return pending.refuse(StatusCode::BAD_REQUEST, "bad_request", "path", &e.to_string());
        }
    };
    pending.d().path = path.clone();
    let Some((index, route, path)) = route_for(&shared.config.bi.routes, &path) else {
        pending.d().resource = format!("http://{}{path}", host(&mut pending));
        return pending.refuse(StatusCode::NOT_FOUND, "not_found", "routes", "no route for this path");
    };
    let route = route.clone();
    pending.d().path = path.clone();
    pending.d().resource = format!("http://{}{path}", host(&mut pending));

    let roles = match identify(&shared, req.headers(), Sources::HeadersAndCookies, &mut pending).await {
        Ok((_, roles)) => roles,
        Err(e) => {
            let reason = e.to_string();
            if let (true, Some(login)) = (wants_html(&req), shared.config.bi.login_url.as_deref()) {
                let target = match req.uri().query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path.clone(),
                };
                let sep = if login.contains('?') { '&' } else { '?' };
                let location = format!(
                    "{login}{sep}{}",
                    form_urlencoded::Serializer::new(String::new()).append_pair("return_to", &target).finish()
                );
                let d = pending.d();
                d.policy = "identity".into();
                d.reason = reason;
                pending.finish(Decision::Deny, StatusCode::FOUND);
                return Response::builder()
                    .status(StatusCode::FOUND)
                    .header(http::header::LOCATION, location)
                    .body(Body::empty())
                    .unwrap_or_default();
            }
            return pending.refuse(StatusCode::UNAUTHORIZED, "unauthenticated", "identity", &reason);
        }
    };
    let compiled = shared.compiled();
    let verdict = compiled.policy.evaluate_http(&roles, &path);
    pending.d().policy = verdict.rule.clone();
    pending.d().reason = verdict.reason.clone();
    if !verdict.allowed {
        return pending.refuse(StatusCode::FORBIDDEN, "forbidden", &verdict.rule, &verdict.reason);
    }
    if let Some((rule, reason)) = folded_deny(&compiled, &roles, &path) {
        return pending.refuse(StatusCode::FORBIDDEN, "forbidden", &rule, &reason);
    }

    let (mut parts, body) = req.into_parts();
    let rest = if route.strip_prefix { &path[route.prefix.len() - 1..] } else { path.as_str() };
    let rest = if rest.is_empty() { "/" } else { rest };
    let Some(upstream) = shared.bi_upstreams.get(index) else {
        return pending.refuse(StatusCode::BAD_GATEWAY, "upstream_error", "forward", "bad upstream URL");
    };
    parts.uri = match upstream.uri(rest, parts.uri.query()) {
        Ok(uri) => uri,
        Err(e) => {
            tracing::error!(error = %e, route = %route.name, "cannot build the upstream URL");
            return pending.refuse(StatusCode::BAD_GATEWAY, "upstream_error", "forward", "bad upstream URL");
        }
    };
    let principal_header = shared.config.bi.principal_header.as_deref().unwrap_or(DEFAULT_PRINCIPAL_HEADER);
    let roles_header = shared.config.bi.roles_header.as_deref().unwrap_or(DEFAULT_ROLES_HEADER);
    headers::strip(&mut parts.headers, &shared.config, principal_header, roles_header);
    let set = |headers: &mut http::HeaderMap, name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            headers.insert(n, v);
        }
    };
    let principal = pending.d().principal.clone();
    let id = pending.id();
    set(&mut parts.headers, principal_header, &principal);
    set(&mut parts.headers, roles_header, &roles.join(","));
    set(&mut parts.headers, "x-gatelog-decision-id", &id);
    let client_ip = pending.d().client_ip.clone();
    if !client_ip.is_empty() {
        set(&mut parts.headers, "x-forwarded-for", &client_ip);
    }
    pending.allowed();
    match shared.bi_upstream.send(http::Request::from_parts(parts, body)).await {
        Ok(resp) => {
            let status = resp.status();
            pending.finish(Decision::Allow, status);
            let (mut parts, body) = resp.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers);
            if let Ok(v) = HeaderValue::from_str(&id) {
                parts.headers.insert("x-gatelog-decision-id", v);
            }
            Response::from_parts(parts, body)
        }
        Err(e) => {
            tracing::error!(error = %e, request_id = %id, route = %route.name, "bi upstream unreachable");
            pending.d().error = e;
            pending.refuse(StatusCode::BAD_GATEWAY, "upstream_error", "forward", "the upstream is unreachable")
        }
    }
}

fn host(pending: &mut Pending) -> String {
    let h = &pending.d().host;
    if h.is_empty() { "proxy".to_owned() } else { h.clone() }
}
