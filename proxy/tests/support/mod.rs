//! Shared test support: test keys and token minting, an in-memory and a loopback OIDC
//! issuer, a recording fake upstream, decision sinks (in-memory and a loopback collector).
#![allow(dead_code, clippy::unwrap_used)]

use axum::body::Body;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use gatelog_model::AccessDecision;
use gatelog_proxy::emit::DecisionSink;
use gatelog_proxy::forward::Upstream;
use gatelog_proxy::identity::Fetch;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "gatelog-proxy";
/// The fixed "now" of tests that use a `FixedClock` (2025-03-03T00:00:00Z).
pub const NOW: i64 = 1_740_960_000;

pub fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys").join(name)
}

pub fn key_bytes(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).unwrap()
}

pub fn jwks() -> Value {
    serde_json::from_slice(&key_bytes("jwks.json")).unwrap()
}

/// Claims of a valid analyst token at `now`.
pub fn claims(issuer: &str, now: i64, email: &str, groups: &[&str]) -> serde_json::Map<String, Value> {
    let v = json!({
        "iss": issuer, "aud": AUDIENCE, "sub": format!("sub-{email}"), "email": email,
        "groups": groups, "iat": now - 10, "nbf": now - 10, "exp": now + 600,
    });
    v.as_object().unwrap().clone()
}

/// Signs `claims` with a test key: `rsa` (kid rsa-1, RS256), `ec` (kid ec-1, ES256) or `rsa_other`.
pub fn sign(claims: &serde_json::Map<String, Value>, key: &str, alg: Algorithm, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let pem = key_bytes(&format!("{key}.pem"));
    let enc = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => EncodingKey::from_secret(&pem),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &enc).unwrap()
}

pub fn token(email: &str, groups: &[&str]) -> String {
    sign(&claims(ISSUER, NOW, email, groups), "rsa", Algorithm::RS256, Some("rsa-1"))
}

pub fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A [`Fetch`] serving discovery and JWKS documents from memory, counting JWKS fetches.
#[derive(Debug, Default)]
pub struct StaticFetch {
    pub docs: Mutex<BTreeMap<String, Bytes>>,
    pub jwks_hits: AtomicUsize,
}

impl StaticFetch {
    pub fn for_issuer(issuer: &str) -> Arc<StaticFetch> {
        let f = StaticFetch::default();
        {
            let mut docs = f.docs.lock().unwrap();
            let disco = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
            docs.insert(format!("{issuer}/.well-known/openid-configuration"), Bytes::from(disco.to_string()));
            docs.insert(format!("{issuer}/jwks"), Bytes::from(jwks().to_string()));
        }
        Arc::new(f)
    }
}

impl Fetch for StaticFetch {
    fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Bytes, String>> {
        Box::pin(async move {
            if url.ends_with("/jwks") {
                self.jwks_hits.fetch_add(1, Ordering::SeqCst);
            }
            self.docs.lock().unwrap().get(url).cloned().ok_or_else(|| format!("404 {url}"))
        })
    }
}

/// What a [`RecordingUpstream`] saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// An upstream that records requests and answers `200 1\n`.
#[derive(Debug, Default)]
pub struct RecordingUpstream {
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl RecordingUpstream {
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Upstream for RecordingUpstream {
    fn send(&self, req: http::Request<Body>) -> BoxFuture<'static, Result<http::Response<Body>, String>> {
        let seen = self.seen.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = http_body_util::BodyExt::collect(body).await.map(|b| b.to_bytes()).unwrap_or_default();
            seen.lock().unwrap().push(Seen {
                uri: parts.uri.to_string(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            Ok(http::Response::builder()
                .status(200)
                .header("content-type", "text/tab-separated-values; charset=UTF-8")
                .body(Body::from("1\n"))
                .unwrap())
        })
    }
}

/// A sink that keeps decisions in memory; `fail` makes it answer like an unreachable pipeline.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub received: Mutex<Vec<AccessDecision>>,
    pub fail: AtomicBool,
    pub batches: AtomicUsize,
}

impl MemorySink {
    pub fn decisions(&self) -> Vec<AccessDecision> {
        self.received.lock().unwrap().clone()
    }
}

impl DecisionSink for MemorySink {
    fn send(&self, ndjson: Bytes) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) {
                return Err("pipeline down".into());
            }
            self.batches.fetch_add(1, Ordering::SeqCst);
            let mut r = self.received.lock().unwrap();
            for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                r.push(serde_json::from_slice(line).unwrap());
            }
            Ok(())
        })
    }
}

/// The test policy: analyst, admin, and a BI route. `extra` is appended verbatim.
pub fn config_toml(issuer: &str, clickhouse_url: &str, data_dir: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
data_dir = "{data_dir}"

[clickhouse]
url = "{clickhouse_url}"

[[issuers]]
name = "idp"
issuer = "{issuer}"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256", "ES256"]
leeway = "30s"
jwks_min_refresh = "30s"

[[issuers]]
name = "cloudflare"
issuer = "{issuer}/cf"
jwks_url = "{issuer}/jwks"
audiences = ["cf-aud"]
header = "cf-access-jwt-assertion"
cookie = "CF_Authorization"

[[role_mappings]]
role = "admin"
groups = ["admins"]

[[role_mappings]]
role = "analyst"
groups = ["analysts"]
email_domains = ["example.com"]

[roles.analyst]
allow = ["analytics.*"]
deny = ["analytics.salaries"]
statements = ["select", "show", "describe"]
table_functions = ["numbers"]
default_database = "analytics"
max_execution_time = "20s"
max_rows_to_read = 1000
max_result_rows = 500
http_allow = ["/bi/metabase/"]
http_deny = ["/bi/metabase/admin"]

[roles.admin]
allow = ["*.*"]
statements = ["select", "show", "describe", "insert", "create", "drop", "alter", "truncate"]
table_functions = ["numbers"]

[decisions]
flush_interval = "20ms"
retry_interval = "100ms"
{extra}
"#,
        data_dir = data_dir.display()
    )
}

/// An OIDC issuer on loopback: discovery at `/.well-known/openid-configuration`, keys at
/// `/jwks`. Stopped when dropped.
pub struct LoopbackIssuer {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl LoopbackIssuer {
    pub async fn start() -> LoopbackIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let (h1, h2, u) = (hits.clone(), hits.clone(), url.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move {
                    h1.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({"issuer": u, "jwks_uri": format!("{u}/jwks")}))
                }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || async move {
                    h2.fetch_add(1, Ordering::SeqCst);
                    axum::Json(jwks())
                }),
            );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LoopbackIssuer { url, hits, task }
    }
}

impl Drop for LoopbackIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback decision collector (`POST /v1/decisions`, bearer `collector-token`).
/// `fail` makes it answer 503, like a pipeline that is down.
pub struct Collector {
    pub url: String,
    pub received: Arc<Mutex<Vec<AccessDecision>>>,
    pub fail: Arc<AtomicBool>,
    pub refused: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    pub async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/decisions", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let fail = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let (r, f, n) = (received.clone(), fail.clone(), refused.clone());
        let app = axum::Router::new().route(
            "/v1/decisions",
            axum::routing::post(move |headers: http::HeaderMap, body: Bytes| async move {
                if f.load(Ordering::SeqCst) {
                    n.fetch_add(1, Ordering::SeqCst);
                    return http::StatusCode::SERVICE_UNAVAILABLE;
                }
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer collector-token") {
                    return http::StatusCode::UNAUTHORIZED;
                }
                let mut r = r.lock().unwrap();
                for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    r.push(serde_json::from_slice(line).unwrap());
                }
                http::StatusCode::ACCEPTED
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector { url, received, fail, refused, task }
    }

    pub fn decisions(&self) -> Vec<AccessDecision> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` decisions arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<AccessDecision> {
        for _ in 0..200 {
            if self.received.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        self.decisions()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs SQL directly against ClickHouse's HTTP interface (test setup only).
pub async fn ch_exec(url: &str, sql: &str) -> String {
    let resp = http_client().post(format!("{url}/")).body(sql.to_owned()).send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{sql}: {status} {text}");
    text
}

/// A reqwest client (installs the rustls provider the proxy uses).
pub fn http_client() -> reqwest::Client {
    gatelog_proxy::install_crypto_provider();
    reqwest::Client::new()
}
