//! The alert routes against real ClickHouse (a managed 18.16, one database per test): a
//! viewer lists and shows an alert but cannot act on it, a responder acknowledges it and is
//! recorded as the actor by its credential's name, a second acknowledgement conflicts, a
//! resolution needs a disposition, and every transition is appended to `alert_events`; an
//! identity token (Cloudflare Access's header, the proxy's test issuer) resolves it as the
//! identity's email.
#![allow(clippy::unwrap_used)] // a failure is a test failure

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use gatelog_edge::Edge;
use gatelog_edge::auth::{Credentials, Role};
use gatelog_edge::config::OpsAccess;
use gatelog_edge::identity::IdentityVerifier;
use gatelog_identity::testing as id;
use gatelog_index::Searcher;
use gatelog_model::{Alert, AlertEvent, FixedClock, Severity, UnixMillis};
use gatelog_read::ReadState;
use gatelog_read::alerts::AlertsStore;
use gatelog_read::search::SearchIndex;
use gatelog_store::testing::TestClickHouse;
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

const NOW: UnixMillis = UnixMillis(1_750_000_000_000);

fn token(role: Role) -> String {
    format!("{role}-alerts-token-0123456789")
}

fn alert() -> Alert {
    Alert {
        alert_id: Alert::derive_id("default", "deny_burst_ip:203.0.113.9", "f-1"),
        tenant: "default".into(),
        dedup_key: "deny_burst_ip:203.0.113.9".into(),
        rule_id: "deny_burst_ip".into(),
        severity: Severity::High,
        first_seen: UnixMillis(NOW.0 - 60_000),
        last_seen: NOW,
        count: 3,
        summary: "30 denies from 203.0.113.9 within 5m".into(),
        principal: String::new(),
        client_ip: "203.0.113.9".into(),
        resource: "app.example.com".into(),
        first_finding_id: "f-1".into(),
        last_finding_id: "f-3".into(),
    }
}

async fn call(
    app: &axum::Router,
    method: Method,
    path: &str,
    role: Role,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", token(role)))
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn viewers_read_responders_act_as_themselves_and_transitions_are_checked() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let alert = alert();
    store.write_alerts(std::slice::from_ref(&alert), NOW).await.unwrap();
    store.append_alert_events(&[AlertEvent::opened(&alert, NOW)]).await.unwrap();

    let mut credentials = Credentials::new(None);
    for role in Role::ALL {
        credentials.add_token(format!("{role}-person"), role, &token(role));
    }
    let identity: gatelog_edge::identity::IdentityConfig = toml::from_str(&format!(
        "{}\n[[roles]]\nrole = \"admin\"\ngroups = [\"admins\"]\n",
        id::issuers_toml("issuers", id::ISSUER)
    ))
    .unwrap();
    identity.validate().unwrap();
    let id_clock = Arc::new(FixedClock::new(UnixMillis(id::NOW * 1000)));
    let verifier = IdentityVerifier::new(&identity, id::StaticFetch::for_issuer(id::ISSUER), id_clock);
    let edge = Edge::with_identity(credentials, verifier, OpsAccess::Loopback);
    let dir = tempfile::tempdir().unwrap();
    let search =
        SearchIndex { searcher: Arc::new(Searcher::open(dir.path(), "gatelog")), enabled: true, index_status: None };
    let (_keep, store_rx) = tokio::sync::watch::channel(Some(store.clone()));
    let clock = Arc::new(FixedClock::new(UnixMillis(NOW.0 + 1000)));
    let alerts = AlertsStore { store: store_rx, clock: clock.clone() };
    let app = gatelog_read::router(ReadState { edge, search, alerts: Some(alerts), audit: None, reports: None });
    let id = alert.alert_id.clone();
    let short = &id[..12];

    let (status, list) = call(&app, Method::GET, "/v1/alerts?state=open", Role::Viewer, "").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["alerts"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["alerts"][0]["alert_id"], id.as_str());
    assert_eq!(list["alerts"][0]["state"], "open");
    let (status, shown) = call(&app, Method::GET, &format!("/v1/alerts/{short}"), Role::Auditor, "").await;
    assert_eq!((status, shown["alert_id"].as_str()), (StatusCode::OK, Some(id.as_str())), "{shown}");
    let (status, _) = call(&app, Method::GET, "/v1/alerts?limit=0", Role::Viewer, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&app, Method::GET, "/v1/alerts/ffffffffffff", Role::Viewer, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let ack = format!("/v1/alerts/{short}/ack");
    for role in [Role::Viewer, Role::Auditor, Role::Ingest] {
        let (status, body) = call(&app, Method::POST, &ack, role, "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}: {body}");
    }
    let (status, acked) = call(&app, Method::POST, &ack, Role::Responder, "{\"note\":\"looking\"}").await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["state"], "acknowledged");
    let last = acked["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["actor"].as_str(), last["note"].as_str()), (Some("responder-person"), Some("looking")), "{acked}");
    let (status, again) = call(&app, Method::POST, &ack, Role::Admin, "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (status, _) = call(&app, Method::POST, &ack, Role::Responder, "{\"by\":\"someone else\"}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "who acts is never taken from the body");

    clock.advance_ms(1000);
    let resolve = format!("/v1/alerts/{short}/resolve");
    let (status, _) = call(&app, Method::POST, &resolve, Role::Admin, "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a resolution needs a disposition");
    let cf = id::sign(
        &id::cf_claims(id::ISSUER, id::NOW, "ana@example.com", &["admins"]),
        "rsa",
        jsonwebtoken::Algorithm::RS256,
        Some("rsa-1"),
    );
    let request = Request::builder()
        .method(Method::POST)
        .uri(&resolve)
        .header("cf-access-jwt-assertion", cf)
        .body(Body::from("{\"disposition\":\"benign\"}"))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let resolved: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!((resolved["state"].as_str(), resolved["disposition"].as_str()), (Some("resolved"), Some("benign")));

    let events = store.alert_events(&[&id]).await.unwrap();
    let actors: Vec<(&str, &str)> = events.iter().map(|e| (e.action.as_str(), e.actor.as_str())).collect();
    assert_eq!(actors, [("open", "gatelog"), ("ack", "responder-person"), ("resolve", "ana@example.com")]);
    ch.stop().await.unwrap();
}
