//! BI routes (login redirect for browsers, 401/403 with reasons for APIs, path policies,
//! identity headers set and spoofed copies stripped, a decision for an unrouted path) and
//! policy reload. The attacker's view of BI routes is in `bi_paths.rs`.

#![allow(clippy::unwrap_used)]

mod support;

use gatelog_model::{Decision, FixedClock, UnixMillis};
use gatelog_proxy::server::{Shared, router};
use gatelog_proxy::{ProxyConfig, ProxyDeps};
use http_body_util::BodyExt;
use std::sync::Arc;
use support::*;
use tower::ServiceExt;

const BI: &str = r#"
[bi]
login_url = "https://login.test/start"

[[bi.routes]]
name = "metabase"
prefix = "/bi/metabase/"
upstream = "http://127.0.0.1:3000"
strip_prefix = true
"#;

fn setup(extra: &str) -> (Arc<Shared>, Arc<RecordingUpstream>, Arc<MemorySink>, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}{extra}", config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), ""));
    let config = ProxyConfig::parse(&text).unwrap();
    let upstream = Arc::new(RecordingUpstream::default());
    let sink = Arc::new(MemorySink::default());
    let deps = ProxyDeps {
        clock: Arc::new(FixedClock::new(UnixMillis(NOW * 1000))),
        upstream: upstream.clone(),
        bi_upstream: upstream.clone(),
        fetch: StaticFetch::for_issuer(ISSUER),
        sink: Some(sink.clone()),
    };
    (Shared::new(config, deps).unwrap(), upstream, sink, dir, text)
}

async fn call(
    shared: &Arc<Shared>,
    req: http::Request<axum::body::Body>,
) -> (http::StatusCode, http::HeaderMap, String) {
    let resp = router(shared.clone()).oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    (parts.status, parts.headers, String::from_utf8_lossy(&body.collect().await.unwrap().to_bytes()).into_owned())
}

#[tokio::test]
async fn bi_routes() {
    let (shared, upstream, sink, _dir, _) = setup(BI);
    let get = |path: &str| http::Request::get(path);
    // Browser without a session: redirected to login with the way back.
    let (s, h, _) = call(
        &shared,
        get("/bi/metabase/dashboard/12").header("accept", "text/html,*/*").body(axum::body::Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, 302);
    assert_eq!(h["location"], "https://login.test/start?return_to=%2Fbi%2Fmetabase%2Fdashboard%2F12");
    // API without a token: 401 with a reason.
    let (s, _, body) = call(&shared, get("/bi/metabase/api/card").body(axum::body::Body::empty()).unwrap()).await;
    assert_eq!(s, 401);
    assert!(body.contains("\"code\":\"unauthenticated\""), "{body}");
    // Allowed: forwarded with identity headers; spoofed ones and the token are stripped.
    let t = token("ana@example.com", &["analysts"]);
    let req = get("/bi/metabase/api/card?x=1")
        .header("authorization", format!("Bearer {t}"))
        .header("x-gatelog-principal", "ceo@example.com")
        .header("x-gatelog-roles", "admin")
        .body(axum::body::Body::empty())
        .unwrap();
    let (s, _, _) = call(&shared, req).await;
    assert_eq!(s, 200);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "http://127.0.0.1:3000/api/card?x=1");
    assert_eq!(seen[0].headers["x-gatelog-principal"], "ana@example.com");
    assert_eq!(seen[0].headers["x-gatelog-roles"], "analyst");
    assert_eq!(seen[0].headers.get_all("x-gatelog-principal").iter().count(), 1);
    assert!(seen[0].headers.get("authorization").is_none());
    // Denied path: 403 with the rule, even for a browser with a session.
    let req = get("/bi/metabase/admin/settings")
        .header("authorization", format!("Bearer {t}"))
        .header("accept", "text/html")
        .body(axum::body::Body::empty())
        .unwrap();
    let (s, _, body) = call(&shared, req).await;
    assert_eq!(s, 403);
    assert!(body.contains("roles.analyst.http_deny[0]"), "{body}");
    // Unknown path: 404, with its decision.
    let (s, _, _) = call(&shared, get("/nothing").body(axum::body::Body::empty()).unwrap()).await;
    assert_eq!(s, 404);
    assert_eq!(upstream.requests().len(), 1);
    shared.emitter.shutdown().await;
    let d = sink.decisions();
    assert_eq!(d.len(), 5);
    assert_eq!(
        d.iter().map(|d| d.decision).collect::<Vec<_>>(),
        [Decision::Deny, Decision::Deny, Decision::Allow, Decision::Deny, Decision::Deny]
    );
    assert_eq!((d[4].status, d[4].policy.as_str(), d[4].path.as_str()), (404, "routes", "/nothing"));
    assert_eq!(d[2].action, "GET");
    assert_eq!(d[2].path, "/bi/metabase/api/card");
}

#[tokio::test]
async fn policy_reloads_and_a_bad_config_keeps_the_running_policy() {
    let (shared, _upstream, _sink, _dir, text) = setup("");
    let t = token("ana@example.com", &["analysts"]);
    let q = |sql: &str| {
        http::Request::post("/")
            .header("authorization", format!("Bearer {t}"))
            .body(axum::body::Body::from(sql.to_owned()))
            .unwrap()
    };
    assert_eq!(call(&shared, q("SELECT * FROM analytics.events")).await.0, 200);
    assert_eq!(call(&shared, q("SELECT * FROM analytics.events")).await.0, 200);
    assert_eq!(shared.policy().cached_sql(), 1, "the second request reuses the cached verdict");
    // The analyst loses analytics.events; the reload must not reuse the cached allow.
    let tightened =
        text.replace("deny = [\"analytics.salaries\"]", "deny = [\"analytics.salaries\", \"analytics.events\"]");
    shared.reload(&ProxyConfig::parse(&tightened).unwrap()).unwrap();
    assert_eq!(shared.policy().cached_sql(), 0);
    let (s, _, body) = call(&shared, q("SELECT * FROM analytics.events")).await;
    assert_eq!(s, 403, "{body}");
    // An invalid config is refused with the key named and the running policy stays.
    let bad = tightened.replace("max_rows_to_read = 1000", "max_rows_to_read = -5");
    let err = ProxyConfig::parse(&bad).unwrap_err();
    assert_eq!(err.to_string(), "roles.analyst.max_rows_to_read: expected a positive integer");
    assert_eq!(call(&shared, q("SELECT * FROM analytics.events")).await.0, 403);
    shared.emitter.shutdown().await;
}
