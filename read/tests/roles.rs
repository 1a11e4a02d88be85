//! Every route × every role, no credential and a wrong one, on the composed router the
//! binary serves (the receiver's routes, the read routes, the operator routes, one edge):
//! each caller gets exactly what its role allows (0 unexpected allows, 0 unexpected
//! refusals), from a remote peer and from loopback; then the same over a real socket on
//! port 0 through the edge's `HttpServer`, where every answer (errors included) carries the
//! security headers and no answer or metric holds a token.
#![allow(clippy::unwrap_used)] // a failure is a test failure

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use gatelog_edge::Edge;
use gatelog_edge::auth::{Access, Credentials, Role};
use gatelog_edge::config::OpsAccess;
use gatelog_index::Searcher;
use gatelog_ingest::http::{ReceiverConfig, ReceiverState};
use gatelog_model::{FixedClock, UnixMillis};
use gatelog_read::ReadState;
use gatelog_read::alerts::AlertsStore;
use gatelog_read::search::SearchIndex;
use gatelog_spool::{Spool, SpoolOptions};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

const INGEST_HEADER: &str = "X-Gatelog-Token";

/// The token of `role` in these tests (two per role: rotation).
fn token(role: Role, n: usize) -> String {
    format!("{role}-secret-token-{n}-0123456789")
}
const WRONG: &str = "wrong-secret-token-0123456789";

/// A route, what it needs, and what an allowed caller gets here (no ClickHouse: the alert
/// routes answer 503 once the caller is through).
struct Route {
    method: Method,
    path: &'static str,
    body: &'static str,
    need: Access,
    allowed: StatusCode,
}

fn routes() -> Vec<Route> {
    let r = |method, path, body, need, allowed| Route { method, path, body, need, allowed };
    vec![
        r(Method::POST, "/v1/logpush/http_requests", "test", Access::Ingest, StatusCode::OK),
        r(Method::POST, "/v1/tail", "test", Access::Ingest, StatusCode::OK),
        r(Method::POST, "/v1/decisions", "{\"event_id\":\"d1\"}\n", Access::Ingest, StatusCode::OK),
        r(Method::GET, "/v1/search?q=decision:deny", "", Access::Read, StatusCode::OK),
        r(Method::GET, "/v1/alerts", "", Access::Read, StatusCode::SERVICE_UNAVAILABLE),
        r(Method::GET, "/v1/alerts/0123abcd", "", Access::Read, StatusCode::SERVICE_UNAVAILABLE),
        r(Method::POST, "/v1/alerts/0123abcd/ack", "", Access::Respond, StatusCode::SERVICE_UNAVAILABLE),
        r(
            Method::POST,
            "/v1/alerts/0123abcd/resolve",
            "{\"disposition\":\"benign\"}",
            Access::Respond,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        r(Method::GET, "/v1/raw/0123abcd", "", Access::Read, StatusCode::SERVICE_UNAVAILABLE),
        r(Method::GET, "/v1/audit", "", Access::Audit, StatusCode::SERVICE_UNAVAILABLE),
        // No report service in this state: an allowed caller learns the route is not served.
        r(
            Method::GET,
            "/v1/reports/soc2?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
            "",
            Access::Audit,
            StatusCode::NOT_FOUND,
        ),
        r(Method::GET, "/healthz", "", Access::Operate, StatusCode::OK),
        r(Method::GET, "/readyz", "", Access::Operate, StatusCode::OK),
        r(Method::GET, "/metrics", "", Access::Operate, StatusCode::OK),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Caller {
    Nobody,
    Wrong,
    Role(Role, usize),
}

fn callers() -> Vec<Caller> {
    let mut all = vec![Caller::Nobody, Caller::Wrong];
    for role in Role::ALL {
        all.push(Caller::Role(role, 0));
        all.push(Caller::Role(role, 1));
    }
    all
}

struct Server {
    _dir: tempfile::TempDir,
    app: Router,
    /// The receiver's spool, which gatelog's audit records of the read routes enter too.
    spool: Spool,
}

fn server(ops: OpsAccess) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(
        &dir.path().join("spool"),
        SpoolOptions { fsync: false, preallocate: false, ..SpoolOptions::default() },
    )
    .unwrap();
    let mut credentials = Credentials::new(Some(INGEST_HEADER));
    for role in Role::ALL {
        for n in 0..2 {
            credentials.add_token(format!("{role}-{n}"), role, &token(role, n));
        }
    }
    let edge = Edge::new(credentials, ops);
    let clock = Arc::new(FixedClock::new(UnixMillis(1_741_132_800_000)));
    let receiver =
        ReceiverState::on_edge(ReceiverConfig::default(), spool.clone(), clock.clone(), edge.clone()).unwrap();
    let audit = Some(gatelog_read::audit::Audit { edge: edge.clone(), spool: spool.clone(), clock: clock.clone() });
    std::fs::create_dir_all(dir.path().join("index")).unwrap();
    let search = SearchIndex {
        searcher: Arc::new(Searcher::open(&dir.path().join("index"), "gatelog")),
        enabled: true,
        index_status: None,
    };
    let (_, store) = tokio::sync::watch::channel(None);
    let alerts = Some(AlertsStore { store, clock });
    let read = ReadState { edge, search, alerts, audit, reports: None };
    let app = gatelog_ingest::http::router(receiver).merge(gatelog_read::router(read));
    Server { _dir: dir, app, spool }
}

fn request(route: &Route, caller: Caller, peer: SocketAddr) -> Request<Body> {
    let mut builder = Request::builder().method(route.method.clone()).uri(route.path);
    match caller {
        Caller::Nobody => {}
        Caller::Wrong => builder = builder.header("authorization", format!("Bearer {WRONG}")),
        // The receiver's header for ingest tokens (Logpush sets headers, not Authorization).
        Caller::Role(Role::Ingest, n) => builder = builder.header(INGEST_HEADER, token(Role::Ingest, n)),
        Caller::Role(role, n) => builder = builder.header("authorization", format!("Bearer {}", token(role, n))),
    }
    let mut request = builder.body(Body::from(route.body)).unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

/// What `caller` should get on `route` when the operator routes are `open` to it.
fn expected(route: &Route, caller: Caller, open: bool) -> StatusCode {
    if route.need == Access::Operate && open {
        return route.allowed;
    }
    match caller {
        Caller::Nobody | Caller::Wrong => StatusCode::UNAUTHORIZED,
        Caller::Role(role, _) if role.may(route.need) => route.allowed,
        Caller::Role(..) => StatusCode::FORBIDDEN,
    }
}

/// Runs the matrix; returns every mismatch as a line.
async fn matrix(server: &Server, peer: SocketAddr, ops_open: bool) -> Vec<String> {
    let mut wrong = Vec::new();
    for route in routes() {
        for caller in callers() {
            let response = server.app.clone().oneshot(request(&route, caller, peer)).await.unwrap();
            let status = response.status();
            let want = expected(&route, caller, ops_open);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8_lossy(&body);
            if status != want {
                wrong.push(format!(
                    "{} {} as {caller:?} from {peer}: {status}, want {want}: {text}",
                    route.method, route.path
                ));
            }
            if text.contains("secret-token") {
                wrong.push(format!("{} {} as {caller:?}: the answer holds a token: {text}", route.method, route.path));
            }
        }
    }
    wrong
}

#[tokio::test]
async fn every_route_times_every_role_gets_exactly_what_the_role_allows() {
    let remote: SocketAddr = "10.1.2.3:40000".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mapped: SocketAddr = "[::ffff:127.0.0.1]:40000".parse().unwrap();
    let cases = [
        (OpsAccess::Loopback, remote, false),
        (OpsAccess::Loopback, local, true),
        (OpsAccess::Loopback, mapped, true),
        (OpsAccess::Nowhere, local, false),
        (OpsAccess::Anywhere, remote, true),
    ];
    for (ops, peer, open) in cases {
        let server = server(ops);
        let wrong = matrix(&server, peer, open).await;
        assert!(wrong.is_empty(), "ops {ops:?}, {} mismatches:\n{}", wrong.len(), wrong.join("\n"));
    }
}

/// Every answer of a read route, allowed or refused, entered the spool as a decision of
/// source `gatelog` (who, what, allowed or denied, why) before it was sent; the operator and
/// ingest routes are not audited this way, and no record holds a token.
#[tokio::test]
async fn every_read_route_answer_is_recorded_in_gatelogs_own_audit_trail() {
    let server = server(OpsAccess::Loopback);
    let peer: SocketAddr = "10.1.2.3:40000".parse().unwrap();
    let wrong = matrix(&server, peer, false).await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let read_routes =
        routes().iter().filter(|r| matches!(r.need, Access::Read | Access::Respond | Access::Audit)).count();
    let status = std::sync::Arc::new(gatelog_consumer::Status::new("audit-test"));
    let mut consumer = gatelog_consumer::Consumer::register(
        &server.spool,
        status,
        0,
        gatelog_consumer::WhenGone::Fail,
        gatelog_consumer::Decode::Full,
    )
    .await
    .unwrap();
    let mut audit = Vec::new();
    while let Some(d) = consumer.try_next().await.unwrap() {
        audit.extend(d.batch.decisions.into_iter().filter(|d| d.source == gatelog_model::Source::Gatelog));
    }
    assert_eq!(audit.len(), read_routes * callers().len(), "one record per read-route request");
    assert!(audit.iter().all(|d| d.dataset == "gatelog" && d.client_ip == "10.1.2.3"));
    let denied = |reason: &str| {
        audit.iter().filter(|d| d.decision == gatelog_model::Decision::Deny && d.reason.starts_with(reason)).count()
    };
    assert_eq!(denied("401"), read_routes * 2, "no token and a wrong token, on every read route");
    let viewer_search = audit
        .iter()
        .find(|d| d.principal == "viewer-0" && d.resource == "/v1/search")
        .expect("the viewer's search is recorded");
    assert_eq!((viewer_search.decision, viewer_search.status), (gatelog_model::Decision::Allow, 200));
    assert_eq!(viewer_search.query, "q=decision:deny");
    let refused = audit.iter().find(|d| d.principal == "ingest-0" && d.resource == "/v1/search").expect("refused");
    assert_eq!(refused.reason, "403 role ingest may not use this route");
    let ack = audit.iter().find(|d| d.principal == "viewer-1" && d.resource == "/v1/alerts/{id}/ack").expect("ack");
    assert_eq!((ack.decision, ack.path.as_str()), (gatelog_model::Decision::Deny, "/v1/alerts/0123abcd/ack"));
    for d in &audit {
        let text = serde_json::to_string(d).unwrap();
        assert!(!text.contains("secret-token"), "a record holds a token: {text}");
    }
}

#[tokio::test]
async fn the_acting_credential_is_named_and_a_refusal_says_why_without_it() {
    let server = server(OpsAccess::Loopback);
    let route =
        Route { method: Method::GET, path: "/v1/search?q=", body: "", need: Access::Read, allowed: StatusCode::OK };
    let peer: SocketAddr = "10.1.2.3:1".parse().unwrap();
    let response = server.app.clone().oneshot(request(&route, Caller::Role(Role::Ingest, 0), peer)).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["code"], "forbidden");
    assert!(json["error"]["message"].as_str().unwrap().contains("ingest role"), "{json}");
    let response = server.app.clone().oneshot(request(&route, Caller::Nobody, peer)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
}

/// Over a real socket on port 0 through `HttpServer`: the peer is the socket's (loopback
/// here, so the operator routes are open by default and closed with `nowhere`), every answer
/// carries the security headers, and neither answers nor `/metrics` hold a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_socket_answers_carry_security_headers_and_no_token() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    for ops in [OpsAccess::Loopback, OpsAccess::Nowhere] {
        let server = server(ops);
        let listener = gatelog_edge::serve::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let http = gatelog_edge::serve::HttpServer::new(gatelog_edge::serve::ServerLimits::default());
        let app = server.app.clone();
        let task = tokio::spawn(http.serve(listener, app, async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let mut seen = Vec::new();
        for route in routes() {
            for caller in callers() {
                let url = format!("http://{addr}{}", route.path);
                let mut r = client.request(route.method.clone(), url).body(route.body);
                match caller {
                    Caller::Nobody => {}
                    Caller::Wrong => r = r.bearer_auth(WRONG),
                    Caller::Role(role, n) => r = r.bearer_auth(token(role, n)),
                }
                let response = r.send().await.unwrap();
                let status = response.status();
                let want = expected(&route, caller, ops == OpsAccess::Loopback);
                assert_eq!(status, want, "{} {} as {caller:?} with ops {ops:?}", route.method, route.path);
                for (name, value) in gatelog_edge::headers::SECURITY_HEADERS {
                    assert_eq!(
                        response.headers().get(&name).map(|v| v.to_str().unwrap()),
                        Some(value),
                        "{name} on {status} {}",
                        route.path
                    );
                }
                seen.push(response.text().await.unwrap());
            }
        }
        let unknown = client.get(format!("http://{addr}/v1/nothing-here")).bearer_auth(WRONG).send().await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert_eq!(unknown.headers()["x-content-type-options"], "nosniff", "a route nobody serves too");
        let metrics =
            client.get(format!("http://{addr}/metrics")).bearer_auth(token(Role::Viewer, 0)).send().await.unwrap();
        seen.push(metrics.text().await.unwrap());
        for text in &seen {
            assert!(!text.contains("secret-token"), "a token in an answer: {text}");
        }
        let forbidden = gatelog_edge::ErrorCode::Forbidden.as_str();
        assert!(seen.last().unwrap().contains(&format!("gatelog_rejected_requests_total{{code=\"{forbidden}\"}}")));
        let _ = stop.send(());
        task.await.unwrap();
    }
}
