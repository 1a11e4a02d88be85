//! Shared test support: test keys, token minting and the OIDC issuers (re-exported from
//! `gatelog_identity::testing`), a recording fake upstream, decision sinks (in-memory and a
//! loopback collector).
#![allow(dead_code, clippy::unwrap_used)]

use axum::body::Body;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use gatelog_model::AccessDecision;
use gatelog_proxy::emit::DecisionSink;
use gatelog_proxy::forward::Upstream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

// The test issuer, keys, token minting and the JWT attack corpus are shared with serve's
// identity tests: `gatelog_identity::testing`.
pub use gatelog_identity::testing::*;

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

{issuers}
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
        data_dir = data_dir.display(),
        issuers = issuers_toml("issuers", issuer),
    )
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
