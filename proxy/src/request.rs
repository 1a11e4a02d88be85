//! What every routed request goes through, whichever route serves it:
//! - its decision ([`Pending`]), started before anything else and emitted exactly once,
//!   whatever happens: finished by the route, or, if the client goes away first and the
//!   handler is dropped, emitted on drop with status 499 and the reason;
//! - the source address and its rate limit ([`admit`]), before authentication;
//! - the one identity → roles step ([`identify`]);
//! - the JSON error body ([`error_response`]).

use crate::identity::{AuthError, Identity, Sources};
use crate::limits::RetryAfter;
use crate::state::Shared;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use gatelog_model::{AccessDecision, Decision, EventId, Source};
use http::StatusCode;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// The status recorded for a request whose client went away before the answer (nginx's
/// "client closed request").
pub const CLIENT_GONE: u16 = 499;

/// A request's decision until it is emitted (see the module docs).
#[derive(Debug)]
pub struct Pending {
    shared: Arc<Shared>,
    d: Option<AccessDecision>,
    started: Instant,
    ip: Option<IpAddr>,
    /// The policy allowed the request (a drop then records an allow the client left).
    allowed: bool,
}

impl Pending {
    /// A new decision with the request's own facts: id, time, client address, user agent,
    /// host and `path` (the normalised path where the route has one).
    pub fn new(shared: &Arc<Shared>, req: &Request, path: &str) -> Pending {
        let id = uuid::Uuid::new_v4().to_string();
        let now = shared.clock.now();
        let mut d = AccessDecision::new(EventId::for_decision(&id), now, "proxy", Source::Proxy);
        d.received_at = now;
        d.request_id = id;
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let ingress = &shared.config.ingress;
        let ip =
            crate::net::client_ip(peer, req.headers(), ingress.client_ip_header.as_deref(), &shared.trusted_proxies);
        d.client_ip = ip.map(|i| i.to_string()).unwrap_or_default();
        let header = |name: http::HeaderName| {
            req.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()
        };
        d.user_agent = header(http::header::USER_AGENT);
        d.host = header(http::header::HOST);
        d.path = path.to_owned();
        d.resource = if path == "/" {
            "clickhouse:".to_owned()
        } else {
            format!("http://{}{path}", if d.host.is_empty() { "proxy" } else { d.host.as_str() })
        };
        d.action = req.method().to_string();
        Pending { shared: shared.clone(), d: Some(d), started: Instant::now(), ip, allowed: false }
    }

    pub fn id(&self) -> String {
        self.d.as_ref().map(|d| d.request_id.clone()).unwrap_or_default()
    }

    /// The decision being filled in.
    pub fn d(&mut self) -> &mut AccessDecision {
        self.d.get_or_insert_with(AccessDecision::default)
    }

    /// Records that the policy allowed the request.
    pub fn allowed(&mut self) {
        self.allowed = true;
    }

    /// Emits the decision with its outcome and the status the client got.
    pub fn finish(mut self, decision: Decision, status: StatusCode) {
        self.emit(decision, status.as_u16());
    }

    /// Emits the decision of a request whose client went away, saying so in `error` and
    /// after the reason, with the status already sent (`None`: 499, nothing was sent); an
    /// allowed request stays an allow, one the proxy had not decided yet is an error.
    pub fn client_gone(mut self, what: &str, sent: Option<StatusCode>) {
        self.gone(what, sent.map_or(CLIENT_GONE, |s| s.as_u16()));
    }

    fn gone(&mut self, what: &str, status: u16) {
        let allowed = self.allowed;
        let d = self.d();
        d.error = what.to_owned();
        d.reason = if d.reason.is_empty() { what.to_owned() } else { format!("{}; {what}", d.reason) };
        self.emit(if allowed { Decision::Allow } else { Decision::Error }, status);
    }

    fn emit(&mut self, decision: Decision, status: u16) {
        let Some(mut d) = self.d.take() else { return };
        d.decision = decision;
        d.status = status;
        d.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.shared.emitter.emit(d);
    }

    /// Refuses the request: the decision (deny, or error for `query_error`/`upstream_error`)
    /// with `rule` and `reason`, and the JSON error for the client.
    pub fn refuse(mut self, status: StatusCode, code: &str, rule: &str, reason: &str) -> Response {
        let d = self.d();
        d.policy = rule.to_owned();
        if d.reason.is_empty() {
            d.reason = reason.to_owned();
        }
        let id = self.id();
        let decision = if matches!(code, "query_error" | "upstream_error") { Decision::Error } else { Decision::Deny };
        self.finish(decision, status);
        error_response(status, code, rule, reason, &id)
    }

    /// Refuses with 429 and `Retry-After`.
    pub fn rate_limited(self, rule: &str, reason: &str, retry: RetryAfter) -> Response {
        let mut resp = self.refuse(StatusCode::TOO_MANY_REQUESTS, "rate_limited", rule, reason);
        resp.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(retry.0));
        resp
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.d.is_some() {
            let what = if self.allowed {
                "the client went away before the answer"
            } else {
                "the client went away before the proxy decided"
            };
            self.gone(what, CLIENT_GONE);
        }
    }
}

/// The per-source rate limit, before anything else (`ingress.per_ip_requests_per_minute`).
/// A request without a known source (not from a socket: in-process tests) is not limited.
pub fn admit(shared: &Shared, pending: Pending) -> Result<Pending, Box<Response>> {
    let limit = shared.config.ingress.per_ip_requests_per_minute;
    let Some(ip) = pending.ip else { return Ok(pending) };
    match shared.limiter.allow_source(ip, limit) {
        Ok(()) => Ok(pending),
        Err(retry) => {
            shared.metrics.rate_limited(true);
            let reason = format!("more than {limit} requests per minute from this address");
            Err(Box::new(pending.rate_limited("ingress.per_ip_requests_per_minute", &reason, retry)))
        }
    }
}

/// Authenticates the request and maps its roles, recording both in the decision.
pub async fn identify(
    shared: &Shared,
    headers: &http::HeaderMap,
    sources: Sources,
    pending: &mut Pending,
) -> Result<(Identity, Vec<String>), AuthError> {
    let identity = shared.auth.authenticate_from(headers, sources).await?;
    let roles = shared.compiled().mapper.roles_for(&identity);
    let d = pending.d();
    d.principal = identity.principal.clone();
    d.principal_type = identity.principal_type;
    d.roles = roles.clone();
    d.auth_method = identity.auth_method.clone();
    Ok((identity, roles))
}

/// The JSON error body: `{"error":{"code","rule","reason","decision_id"}}`.
pub fn error_response(status: StatusCode, code: &str, rule: &str, reason: &str, decision_id: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "rule": rule, "reason": reason, "decision_id": decision_id}});
    let mut resp = (status, axum::Json(body)).into_response();
    if let Ok(v) = http::HeaderValue::from_str(decision_id)
        && !decision_id.is_empty()
    {
        resp.headers_mut().insert("x-gatelog-decision-id", v);
    }
    resp
}
