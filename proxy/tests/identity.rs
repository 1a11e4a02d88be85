//! Identity: the JWT attack corpus (`gatelog_identity::testing::attacks`, shared with serve's
//! read routes) through the router, positive
//! controls (RS256, ES256, Cloudflare header and cookie, skew inside the leeway), JWKS
//! rotation and the unknown-`kid` refresh rate limit (tokio paused time), and OIDC discovery
//! against an issuer served on loopback.

#![allow(clippy::unwrap_used)]

mod support;

use gatelog_model::{Decision, FixedClock, UnixMillis};
use gatelog_proxy::server::{Shared, router};
use gatelog_proxy::{ProxyConfig, ProxyDeps};
use http_body_util::BodyExt;
use jsonwebtoken::Algorithm;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use support::*;
use tower::ServiceExt;

fn request(case: &attacks::Case) -> http::Request<axum::body::Body> {
    let b = match case.credential() {
        attacks::Credential::Header(name, value) => http::Request::post("/").header(name, value),
        attacks::Credential::Query(token) => http::Request::post(format!("/?access_token={token}")),
    };
    b.body(axum::body::Body::from("SELECT 1")).unwrap()
}

struct Harness {
    shared: Arc<Shared>,
    upstream: Arc<RecordingUpstream>,
    sink: Arc<MemorySink>,
    fetch: Arc<StaticFetch>,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config = ProxyConfig::parse(&config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), "")).unwrap();
    let upstream = Arc::new(RecordingUpstream::default());
    let sink = Arc::new(MemorySink::default());
    let fetch = StaticFetch::for_issuer(ISSUER);
    let deps = ProxyDeps {
        clock: Arc::new(FixedClock::new(UnixMillis(NOW * 1000))),
        upstream: upstream.clone(),
        bi_upstream: upstream.clone(),
        fetch: fetch.clone(),
        sink: Some(sink.clone()),
    };
    Harness { shared: Shared::new(config, deps).unwrap(), upstream, sink, fetch, _dir: dir }
}

async fn send(shared: &Arc<Shared>, req: http::Request<axum::body::Body>) -> (u16, Value) {
    let resp = router(shared.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned())))
}

#[tokio::test]
async fn every_jwt_attack_is_refused() {
    let h = harness();
    let cases = attacks::corpus();
    let mut failures = Vec::new();
    for case in &cases {
        let (status, body) = send(&h.shared, request(case)).await;
        let expected = case.expected_status();
        if status != expected || body["error"]["reason"].as_str().is_none_or(str::is_empty) {
            failures.push(format!("{}: status {status} body {body}", case.name));
        }
    }
    assert!(h.upstream.requests().is_empty(), "an attack reached the upstream");
    h.shared.emitter.shutdown().await;
    let decisions = h.sink.decisions();
    assert_eq!(decisions.len(), cases.len());
    assert!(decisions.iter().all(|d| d.decision == Decision::Deny));
    println!("jwt attack corpus: {} cases, {} refused", cases.len(), cases.len() - failures.len());
    assert!(failures.is_empty(), "not refused as expected:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn valid_tokens_are_accepted() {
    let h = harness();
    let sql = || axum::body::Body::from("SELECT 1");
    let rs = token("ana@example.com", &["analysts"]);
    let es = sign(&claims(ISSUER, NOW, "ana@example.com", &["analysts"]), "ec", Algorithm::ES256, Some("ec-1"));
    let mut skewed = claims(ISSUER, NOW, "ana@example.com", &["analysts"]);
    skewed.insert("exp".into(), Value::from(NOW - 29));
    skewed.insert("nbf".into(), Value::from(NOW + 29));
    let skewed = sign(&skewed, "rsa", Algorithm::RS256, Some("rsa-1"));
    let mut cf = claims(&format!("{ISSUER}/cf"), NOW, "ana@example.com", &[]);
    cf.insert("aud".into(), serde_json::json!(["cf-aud"]));
    let cf = sign(&cf, "rsa", Algorithm::RS256, Some("rsa-1"));
    let reqs = vec![
        http::Request::post("/").header("authorization", format!("Bearer {rs}")).body(sql()).unwrap(),
        http::Request::post("/").header("authorization", format!("bearer {es}")).body(sql()).unwrap(),
        http::Request::post("/").header("authorization", format!("Bearer {skewed}")).body(sql()).unwrap(),
        http::Request::post("/").header("cf-access-jwt-assertion", cf.clone()).body(sql()).unwrap(),
    ];
    for (i, req) in reqs.into_iter().enumerate() {
        let (status, body) = send(&h.shared, req).await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    assert_eq!(h.upstream.requests().len(), 4);
    // The same token in the browser's cookie is no credential on the SQL route (a
    // cross-site request carries cookies); the BI routes take it (see bi_paths.rs).
    let cookie = http::Request::post("/").header("cookie", format!("a=b; CF_Authorization={cf}")).body(sql()).unwrap();
    let (status, body) = send(&h.shared, cookie).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["reason"].as_str().unwrap().contains("headers only"), "{body}");
    assert_eq!(h.upstream.requests().len(), 4);
    h.shared.emitter.shutdown().await;
    let d = h.sink.decisions();
    assert_eq!(d[0].principal, "ana@example.com");
    assert_eq!(d[0].roles, ["analyst"]);
    assert_eq!(d[3].auth_method, "cf_access_jwt");
    // JWKS fetched once for all of it (both issuers share the document URL in this test).
    assert!(h.fetch.jwks_hits.load(Ordering::SeqCst) <= 2);
}

#[tokio::test(start_paused = true)]
async fn unknown_kids_refresh_at_most_once_per_interval_and_rotation_works() {
    let h = harness();
    let ok = token("ana@example.com", &["analysts"]);
    let bearer = |t: &str| {
        http::Request::post("/")
            .header("authorization", format!("Bearer {t}"))
            .body(axum::body::Body::from("SELECT 1"))
            .unwrap()
    };
    assert_eq!(send(&h.shared, bearer(&ok)).await.0, 200);
    assert_eq!(h.fetch.jwks_hits.load(Ordering::SeqCst), 1);
    // A flood of random kids: at most one refresh per interval.
    tokio::time::advance(std::time::Duration::from_secs(31)).await;
    for i in 0..20 {
        let t = sign(
            &claims(ISSUER, NOW, "ana@example.com", &["analysts"]),
            "rsa_other",
            Algorithm::RS256,
            Some(&format!("k{i}")),
        );
        assert_eq!(send(&h.shared, bearer(&t)).await.0, 401);
    }
    assert_eq!(h.fetch.jwks_hits.load(Ordering::SeqCst), 2, "unknown kids must not hammer the issuer");
    // The issuer rotates in a new key; after the refresh interval the new kid is accepted.
    let mut jwks = jwks();
    let mut rotated = jwks["keys"][0].clone();
    rotated["kid"] = Value::from("rsa-2");
    jwks["keys"].as_array_mut().unwrap().push(rotated);
    h.fetch.docs.lock().unwrap().insert(format!("{ISSUER}/jwks"), bytes::Bytes::from(jwks.to_string()));
    let new = sign(&claims(ISSUER, NOW, "ana@example.com", &["analysts"]), "rsa", Algorithm::RS256, Some("rsa-2"));
    assert_eq!(send(&h.shared, bearer(&new)).await.0, 401, "still throttled");
    tokio::time::advance(std::time::Duration::from_secs(31)).await;
    assert_eq!(send(&h.shared, bearer(&new)).await.0, 200);
    assert_eq!(h.fetch.jwks_hits.load(Ordering::SeqCst), 3);
}

/// Discovery and JWKS over real HTTP from an issuer on loopback.
#[tokio::test]
async fn discovery_and_jwks_over_loopback() {
    let issuer = LoopbackIssuer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ProxyConfig::parse(&config_toml(&issuer.url, "http://127.0.0.1:1", dir.path(), "")).unwrap();
    let upstream = Arc::new(RecordingUpstream::default());
    let deps = ProxyDeps {
        clock: Arc::new(FixedClock::new(UnixMillis(NOW * 1000))),
        upstream: upstream.clone(),
        bi_upstream: upstream.clone(),
        fetch: Arc::new(gatelog_proxy::identity::ReqwestFetch::new(std::time::Duration::from_secs(5)).unwrap()),
        sink: None,
    };
    let shared = Shared::new(config, deps).unwrap();
    let t = sign(&claims(&issuer.url, NOW, "ana@example.com", &["analysts"]), "ec", Algorithm::ES256, Some("ec-1"));
    let req = http::Request::post("/")
        .header("authorization", format!("Bearer {t}"))
        .body(axum::body::Body::from("SELECT 1"))
        .unwrap();
    let (status, body) = send(&shared, req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(issuer.hits.load(Ordering::SeqCst), 2, "discovery + jwks");
    shared.emitter.shutdown().await;
}

/// An [`Authenticator`] over the test issuers, with its clock, fetch and a small cache.
fn authenticator(capacity: usize) -> (gatelog_proxy::identity::Authenticator, Arc<FixedClock>, Arc<StaticFetch>) {
    let dir = tempfile::tempdir().unwrap();
    let config = ProxyConfig::parse(&config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), "")).unwrap();
    let clock = Arc::new(FixedClock::new(UnixMillis(NOW * 1000)));
    let fetch = StaticFetch::for_issuer(ISSUER);
    let auth = gatelog_proxy::identity::Authenticator::with_cache_capacity(
        &config.issuers,
        fetch.clone(),
        clock.clone(),
        capacity,
    );
    (auth, clock, fetch)
}

fn bearer_headers(token: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("authorization", format!("Bearer {token}").parse().unwrap());
    h
}

#[tokio::test(start_paused = true)]
async fn verified_tokens_are_cached_until_exp_or_sixty_seconds() {
    let (auth, clock, _) = authenticator(100);
    let long = bearer_headers(&token("ana@example.com", &["analysts"])); // exp = NOW + 600
    assert_eq!(auth.authenticate(&long).await.unwrap().principal, "ana@example.com");
    assert_eq!((auth.verifications(), auth.cached_tokens()), (1, 1));
    clock.advance_ms(59_999);
    auth.authenticate(&long).await.unwrap();
    assert_eq!(auth.verifications(), 1, "served from the cache within 60 s");
    clock.advance_ms(1);
    auth.authenticate(&long).await.unwrap();
    assert_eq!(auth.verifications(), 2, "re-verified after 60 s");
    // The clock moving back before the verification time does not trust the entry either.
    clock.set(UnixMillis(NOW * 1000));
    auth.authenticate(&long).await.unwrap();
    assert_eq!(auth.verifications(), 3);

    // A token expiring in 10 s is trusted from the cache only until its exp...
    let mut c = claims(ISSUER, NOW, "bob@example.com", &["analysts"]);
    c.insert("exp".into(), Value::from(NOW + 10));
    let short = bearer_headers(&sign(&c, "rsa", Algorithm::RS256, Some("rsa-1")));
    auth.authenticate(&short).await.unwrap();
    assert_eq!(auth.verifications(), 4);
    clock.advance_ms(9_999);
    auth.authenticate(&short).await.unwrap();
    assert_eq!(auth.verifications(), 4);
    clock.advance_ms(1);
    auth.authenticate(&short).await.unwrap(); // inside the 30 s leeway: valid, not cached
    assert_eq!(auth.verifications(), 5);
    auth.authenticate(&short).await.unwrap();
    assert_eq!(auth.verifications(), 6);
    // ...and past exp + leeway it is refused, never answered from the cache.
    clock.set(UnixMillis((NOW + 41) * 1000));
    assert_eq!(auth.authenticate(&short).await, Err(gatelog_proxy::identity::AuthError::Expired));
    // Failures are not cached: a bad signature is checked (and refused) every time.
    let bad = bearer_headers(&sign(
        &claims(ISSUER, NOW, "eve@example.com", &[]),
        "rsa_other",
        Algorithm::RS256,
        Some("rsa-1"),
    ));
    for _ in 0..2 {
        assert_eq!(auth.authenticate(&bad).await, Err(gatelog_proxy::identity::AuthError::Signature));
    }
}

#[tokio::test(start_paused = true)]
async fn verified_token_cache_is_bounded() {
    let (auth, _, _) = authenticator(3);
    let tokens: Vec<_> = (0..5).map(|i| bearer_headers(&token(&format!("u{i}@example.com"), &["analysts"]))).collect();
    for t in &tokens {
        auth.authenticate(t).await.unwrap();
        assert!(auth.cached_tokens() <= 3);
    }
    assert_eq!(auth.verifications(), 5);
    auth.authenticate(&tokens[4]).await.unwrap();
    assert_eq!(auth.verifications(), 5, "the most recent token is still cached");
    auth.authenticate(&tokens[0]).await.unwrap();
    assert_eq!(auth.verifications(), 6, "the oldest token was evicted");
}

#[tokio::test(start_paused = true)]
async fn jwks_rotation_evicts_tokens_of_revoked_keys() {
    let (auth, _, fetch) = authenticator(100);
    let old = bearer_headers(&token("ana@example.com", &["analysts"]));
    auth.authenticate(&old).await.unwrap();
    auth.authenticate(&old).await.unwrap();
    assert_eq!(auth.verifications(), 1);
    // The issuer replaces rsa-1 by rsa-2 (same key material, new kid: rsa-1 is revoked).
    let mut jwks = jwks();
    let keys = jwks["keys"].as_array_mut().unwrap();
    keys.retain(|k| k["kid"] != "rsa-1");
    let mut rotated = serde_json::from_slice::<Value>(&key_bytes("jwks.json")).unwrap()["keys"][0].clone();
    rotated["kid"] = Value::from("rsa-2");
    keys.push(rotated);
    fetch.docs.lock().unwrap().insert(format!("{ISSUER}/jwks"), bytes::Bytes::from(jwks.to_string()));
    // A token with the new kid triggers the refresh (after the minimum refresh interval).
    tokio::time::advance(std::time::Duration::from_secs(31)).await;
    let new = bearer_headers(&sign(
        &claims(ISSUER, NOW, "bob@example.com", &["analysts"]),
        "rsa",
        Algorithm::RS256,
        Some("rsa-2"),
    ));
    auth.authenticate(&new).await.unwrap();
    assert_eq!(fetch.jwks_hits.load(Ordering::SeqCst), 2);
    // The cached rsa-1 token is not trusted any more: it is checked again and refused.
    assert_eq!(auth.authenticate(&old).await, Err(gatelog_proxy::identity::AuthError::UnknownKid));
}

#[tokio::test(start_paused = true)]
async fn cached_tokens_need_a_fresh_key_set() {
    let (auth, _, fetch) = authenticator(100);
    let t = bearer_headers(&token("ana@example.com", &["analysts"]));
    auth.authenticate(&t).await.unwrap();
    // Past jwks_ttl (1 h) the cache entry is not used: validation refreshes the keys.
    tokio::time::advance(std::time::Duration::from_secs(3601)).await;
    auth.authenticate(&t).await.unwrap();
    assert_eq!((auth.verifications(), fetch.jwks_hits.load(Ordering::SeqCst)), (2, 2));
}
