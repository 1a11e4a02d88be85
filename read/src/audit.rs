//! gatelog audits itself: every request to a read route (search, alerts: reading evidence and
//! moving alerts on) becomes an [`AccessDecision`] of source `gatelog`, dataset
//! [`AUDIT_DATASET`], allowed or denied, and enters the store by the one road in: the spool,
//! then ClickHouse (the sink writes these batches to `access_log`, a table of their own, so
//! the populations gatelog reports on never mix with reads of them), the index and detection.
//! "Who looked at the evidence" is then `GET /v1/audit`, a query (`SELECT … FROM access_log
//! FINAL`) or a search (`dataset:gatelog`), and a burst of denied reads is a detection like
//! any other. The dashboard's pages are recorded the same way (`gatelog_web`).
//!
//! What a record holds: the credential's name and role (`principal`, `roles`; empty for a
//! request without a known token), the peer address, the route as matched (`resource`,
//! e.g. `/v1/alerts/{id}`), the method (`action`), the URL's query string (`query`: what was
//! searched; credentials never travel there), the path, the user agent, the answer's status,
//! and why: `allowed: role viewer` or the refusal (`401 no known token`, `403 role ingest`).
//!
//! The reader is the [`Principal`] in the request's extensions when a layer put one there
//! (the dashboard's session layer: a browser sends no credential of its own), else the one
//! its credential names ([`Edge::identify`]).
//!
//! Fail closed: the answer is sent only once its record is in the spool (fsynced). If it
//! cannot be recorded (disk full, spool stopped), the caller gets 503 instead of the evidence.

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use gatelog_edge::auth::{Principal, Via};
use gatelog_edge::{ApiError, Edge};
use gatelog_model::{AccessDecision, Batch, Clock, Decision, EventId, PrincipalType, Source};
use gatelog_spool::Spool;
use std::net::SocketAddr;
use std::sync::Arc;

pub use gatelog_model::decision::AUDIT_DATASET;
/// The longest query string kept in a record.
const MAX_QUERY: usize = 4096;

/// Where audit records go. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Audit {
    pub edge: Edge,
    pub spool: Spool,
    pub clock: Arc<dyn Clock>,
}

/// What the middleware saw of a request before it ran.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub principal: Option<Principal>,
    pub peer: Option<SocketAddr>,
    pub method: String,
    pub route: String,
    pub path: String,
    pub query: String,
    pub user_agent: String,
}

impl Seen {
    /// What the request shows, but who sent it ([`Edge::identify`], which may await).
    fn of(request: &Request) -> Seen {
        let headers: &HeaderMap = request.headers();
        let uri = request.uri();
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let mut query = uri.query().unwrap_or_default().to_owned();
        if query.len() > MAX_QUERY {
            let mut cut = MAX_QUERY;
            while !query.is_char_boundary(cut) {
                cut -= 1;
            }
            query.truncate(cut);
        }
        Seen {
            principal: None,
            peer: request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0),
            method: request.method().as_str().to_owned(),
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map_or_else(|| uri.path().to_owned(), |m| m.as_str().into()),
            path: uri.path().to_owned(),
            query,
            user_agent: text(header::USER_AGENT),
        }
    }
}

/// The record of one request that was answered `status` (pure; tested below).
pub fn record(seen: &Seen, status: StatusCode, now: gatelog_model::UnixMillis) -> AccessDecision {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut d = AccessDecision::new(EventId::derive(&["gatelog-audit", &id]), now, AUDIT_DATASET, Source::Gatelog);
    d.received_at = now;
    let (decision, reason) = match (status, &seen.principal) {
        (StatusCode::UNAUTHORIZED, _) => (Decision::Deny, "401 no known token".to_owned()),
        (StatusCode::FORBIDDEN, Some(p)) => (Decision::Deny, format!("403 role {} may not use this route", p.role)),
        (StatusCode::FORBIDDEN, None) => (Decision::Deny, "403".to_owned()),
        (s, Some(p)) if s.is_server_error() => {
            (Decision::Error, format!("allowed: role {}; answered {}", p.role, s.as_u16()))
        }
        (s, Some(p)) => (Decision::Allow, format!("allowed: role {}; answered {}", p.role, s.as_u16())),
        (s, None) => (Decision::Allow, format!("answered {}", s.as_u16())),
    };
    d.decision = decision;
    d.reason = reason;
    if let Some(p) = &seen.principal {
        d.principal = p.name.clone();
        d.roles = vec![p.role.as_str().to_owned()];
        (d.principal_type, d.auth_method) = match &p.via {
            Via::Identity { method, .. } => (PrincipalType::User, method.clone()),
            Via::StaticToken | Via::Unauthenticated => (PrincipalType::Service, "api_token".to_owned()),
        };
    }
    d.client_ip = seen.peer.map(|p| p.ip().to_canonical().to_string()).unwrap_or_default();
    d.action = seen.method.clone();
    d.resource = seen.route.clone();
    d.path = seen.path.clone();
    d.query = seen.query.clone();
    d.user_agent = seen.user_agent.clone();
    d.status = status.as_u16();
    d.policy = "gatelog.read_routes".into();
    d
}

impl Audit {
    /// Appends `d` to the spool as a batch of its own (fsynced when this returns).
    pub async fn append(&self, d: AccessDecision) -> Result<(), String> {
        let batch = Batch {
            batch_id: EventId::derive(&["batch", AUDIT_DATASET, &d.event_id]),
            dataset: AUDIT_DATASET.to_owned(),
            origin: d.resource.clone(),
            received_at: d.received_at,
            lines: 1,
            decisions: vec![d],
            ..Batch::default()
        };
        let bytes = batch.encode().map_err(|e| e.to_string())?;
        self.spool.append(bytes).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

/// The middleware (`route_layer` of the read routes): runs the route, records its answer,
/// and answers 503 instead when the record cannot be made.
pub async fn audited(State(audit): State<Audit>, request: Request, next: Next) -> Response {
    let mut seen = Seen::of(&request);
    let headers = request.headers().clone();
    // A dashboard session's principal (put there by the session layer) first; else who
    // the request's own credential names.
    seen.principal = match request.extensions().get::<Principal>() {
        Some(p) => Some(p.clone()),
        None => audit.edge.identify(&headers).await,
    };
    let response = next.run(request).await;
    let d = record(&seen, response.status(), audit.clock.now());
    match audit.append(d).await {
        Ok(()) => response,
        Err(e) => audit.edge.finish(
            "audit",
            Err(ApiError::unavailable(
                5,
                "this read cannot be recorded in gatelog's audit trail; retry later",
                format!("audit: {e}"),
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_edge::auth::Role;
    use gatelog_model::UnixMillis;

    fn seen(principal: Option<Principal>) -> Seen {
        Seen {
            principal,
            peer: Some("[::ffff:192.0.2.7]:5000".parse().unwrap()),
            method: "GET".into(),
            route: "/v1/search".into(),
            path: "/v1/search".into(),
            query: "q=decision%3Adeny".into(),
            user_agent: "curl/8".into(),
        }
    }

    fn viewer() -> Principal {
        Principal { name: "alice-laptop".into(), role: Role::Viewer, via: Via::StaticToken }
    }

    #[test]
    fn an_allowed_read_names_who_what_and_from_where() {
        let d = record(&seen(Some(viewer())), StatusCode::OK, UnixMillis(1_000));
        assert_eq!((d.source, d.dataset.as_str(), d.decision), (Source::Gatelog, AUDIT_DATASET, Decision::Allow));
        assert_eq!((d.principal.as_str(), d.roles.as_slice()), ("alice-laptop", &["viewer".to_owned()][..]));
        assert_eq!((d.client_ip.as_str(), d.resource.as_str(), d.action.as_str()), ("192.0.2.7", "/v1/search", "GET"));
        assert_eq!(
            (d.query.as_str(), d.status, d.time, d.received_at),
            ("q=decision%3Adeny", 200, UnixMillis(1_000), UnixMillis(1_000))
        );
        assert_eq!(d.reason, "allowed: role viewer; answered 200");
        assert!(!d.event_id.is_empty());
        assert_ne!(d.event_id, record(&seen(Some(viewer())), StatusCode::OK, UnixMillis(1_000)).event_id);
    }

    #[test]
    fn refusals_are_denies_with_the_reason() {
        let d = record(&seen(None), StatusCode::UNAUTHORIZED, UnixMillis(1));
        assert_eq!((d.decision, d.principal.as_str(), d.reason.as_str()), (Decision::Deny, "", "401 no known token"));
        let ingest = Principal { name: "logpush".into(), role: Role::Ingest, via: Via::StaticToken };
        let d = record(&seen(Some(ingest)), StatusCode::FORBIDDEN, UnixMillis(1));
        assert_eq!((d.decision, d.principal.as_str()), (Decision::Deny, "logpush"));
        assert_eq!(d.reason, "403 role ingest may not use this route");
        let d = record(&seen(Some(viewer())), StatusCode::SERVICE_UNAVAILABLE, UnixMillis(1));
        assert_eq!(d.decision, Decision::Error);
    }

    #[test]
    fn a_record_survives_the_spool_codec() {
        let d = record(&seen(Some(viewer())), StatusCode::OK, UnixMillis(5));
        let batch = Batch {
            batch_id: "b".into(),
            dataset: AUDIT_DATASET.into(),
            decisions: vec![d.clone()],
            ..Batch::default()
        };
        let back = Batch::decode(&batch.encode().unwrap()).unwrap();
        assert_eq!(back.decisions, vec![d]);
    }
}
