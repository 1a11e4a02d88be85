//! Runs the SQL attack corpus (`tests/attacks/sql.toml`) twice: through the policy dry-run
//! (`check`) and through the proxy's router with an authenticated analyst, asserting that
//! every case is denied with a JSON error naming the rule, that nothing reaches the
//! upstream, and that each request produced exactly one deny decision.

#![allow(clippy::unwrap_used)]

mod support;

use gatelog_model::{Decision, FixedClock, UnixMillis};
use gatelog_proxy::server::{Shared, router};
use gatelog_proxy::{ProxyConfig, ProxyDeps, check};
use http_body_util::BodyExt;
use serde::Deserialize;
use std::sync::Arc;
use support::*;
use tower::ServiceExt;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default = "analyst")]
    role: String,
    sql: String,
    #[serde(default)]
    rule: Option<String>,
}

fn analyst() -> String {
    "analyst".into()
}

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

fn corpus() -> Vec<Case> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacks/sql.toml"))
        .unwrap();
    toml::from_str::<Corpus>(&text).unwrap().case
}

#[test]
fn every_sql_attack_is_denied_by_the_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = ProxyConfig::parse(&config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), "")).unwrap();
    let cases = corpus();
    let mut failures = Vec::new();
    for case in &cases {
        let report = check(&config, &case.role, &case.sql, None);
        let rule_ok = case.rule.as_ref().is_none_or(|r| report.rule.starts_with(r.as_str()));
        if report.exit_code() != 1 || !rule_ok {
            failures.push(format!(
                "{}: exit {} rule {} ({})",
                case.name,
                report.exit_code(),
                report.rule,
                report.reason
            ));
        }
    }
    println!("sql attack corpus (dry-run): {} cases, {} denied", cases.len(), cases.len() - failures.len());
    assert!(failures.is_empty(), "not denied as expected:\n{}", failures.join("\n"));
}

/// The guard is not a wall: ordinary analyst queries pass.
#[test]
fn ordinary_queries_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = ProxyConfig::parse(&config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), "")).unwrap();
    for sql in [
        "SELECT 1",
        "SELECT count() FROM analytics.events",
        "select user_id, count() from events where day >= '2025-01-01' group by user_id order by 2 desc limit 10",
        "SELECT * FROM analytics.events e JOIN analytics.users u ON e.user_id = u.id FORMAT JSONEachRow",
        "WITH t AS (SELECT user_id FROM events) SELECT count() FROM t",
        "SELECT 'it''s', 'a\\'b' FROM events -- a comment\n",
        "SELECT count() FROM numbers(100)",
        "SHOW TABLES",
        "DESCRIBE TABLE analytics.events",
        "SELECT 1;",
    ] {
        let r = check(&config, "analyst", sql, None);
        assert_eq!(r.exit_code(), 0, "{sql}: {r}");
    }
}

#[tokio::test]
async fn every_sql_attack_is_denied_by_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let config = ProxyConfig::parse(&config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), "")).unwrap();
    let upstream = Arc::new(RecordingUpstream::default());
    let sink = Arc::new(MemorySink::default());
    let deps = ProxyDeps {
        clock: Arc::new(FixedClock::new(UnixMillis(NOW * 1000))),
        upstream: upstream.clone(),
        bi_upstream: upstream.clone(),
        fetch: StaticFetch::for_issuer(ISSUER),
        sink: Some(sink.clone()),
    };
    let shared = Shared::new(config, deps).unwrap();
    let app = router(shared.clone());
    let analyst_token = token("ana@example.com", &["analysts"]);
    let cases: Vec<Case> = corpus().into_iter().filter(|c| c.role == "analyst").collect();
    let mut failures = Vec::new();
    for case in &cases {
        let req = http::Request::post("/")
            .header("authorization", format!("Bearer {analyst_token}"))
            .body(axum::body::Body::from(case.sql.clone()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let rule = body["error"]["rule"].as_str().unwrap_or_default().to_owned();
        let rule_ok = case.rule.as_ref().is_none_or(|r| rule.starts_with(r.as_str()));
        if !(status == 403 || status == 400) || !rule_ok || body["error"]["reason"].as_str().is_none_or(str::is_empty) {
            failures.push(format!("{}: status {status} body {body}", case.name));
        }
    }
    assert!(upstream.requests().is_empty(), "an attack reached the upstream: {:?}", upstream.requests());
    shared.emitter.shutdown().await;
    let decisions = sink.decisions();
    assert_eq!(decisions.len(), cases.len(), "one decision per request");
    assert!(decisions.iter().all(|d| d.decision == Decision::Deny && d.principal == "ana@example.com"));
    println!("sql attack corpus (proxy): {} cases, {} denied", cases.len(), cases.len() - failures.len());
    assert!(failures.is_empty(), "not denied as expected:\n{}", failures.join("\n"));
}
