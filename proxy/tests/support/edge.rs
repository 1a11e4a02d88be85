//! Support for the edge tests (disconnects, BI routes, cross-site requests, flooding): the
//! proxy on a real loopback socket with an in-memory decision sink, raw HTTP/1.1 clients
//! that can close or stall at will, and a loopback upstream that records what it received.
#![allow(dead_code, clippy::unwrap_used)]

use super::support::*;
use gatelog_model::{AccessDecision, FixedClock, UnixMillis};
use gatelog_proxy::forward::{HyperUpstream, Upstream};
use gatelog_proxy::server::Shared;
use gatelog_proxy::{Proxy, ProxyConfig, ProxyDeps};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy serving on loopback, with its state and decision sink.
pub struct Running {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    pub sink: Arc<MemorySink>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Starts the proxy for `config` (the fixed test clock and issuer, a real hyper
    /// upstream unless one is given).
    pub async fn start(config: &str, upstream: Option<Arc<dyn Upstream>>) -> Running {
        let config = ProxyConfig::parse(config).unwrap();
        let upstream = upstream.unwrap_or_else(|| Arc::new(HyperUpstream::new(Duration::from_secs(5))));
        let sink = Arc::new(MemorySink::default());
        let deps = ProxyDeps {
            clock: Arc::new(FixedClock::new(UnixMillis(NOW * 1000))),
            bi_upstream: upstream.clone(),
            upstream,
            fetch: StaticFetch::for_issuer(ISSUER),
            sink: Some(sink.clone()),
        };
        let proxy = Proxy::bind(config, None, deps).await.unwrap();
        let addr = proxy.local_addr().unwrap();
        let shared = proxy.shared();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            proxy
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Running { addr, shared, sink, stop: Some(tx), task: Some(task) }
    }

    /// Waits (bounded) for the decision of `request_id`.
    pub async fn decision(&self, request_id: &str) -> AccessDecision {
        for _ in 0..400 {
            if let Some(d) = self.sink.decisions().into_iter().find(|d| d.request_id == request_id) {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no decision for {request_id}; have {:?}", self.sink.decisions());
    }

    /// Waits (bounded) until `n` decisions arrived, and returns them.
    pub async fn decisions(&self, n: usize) -> Vec<AccessDecision> {
        for _ in 0..400 {
            if self.sink.decisions().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.sink.decisions()
    }

    /// Stops the proxy (its decisions flushed).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

/// The proxy's state for `text`, in process (for the router): the fixed test clock and
/// issuer, one recording upstream for ClickHouse and the BI routes.
pub fn in_process(text: &str, sink: Option<Arc<MemorySink>>) -> (Arc<Shared>, Arc<RecordingUpstream>) {
    let upstream = Arc::new(RecordingUpstream::default());
    let deps = ProxyDeps {
        clock: Arc::new(FixedClock::new(UnixMillis(NOW * 1000))),
        upstream: upstream.clone(),
        bi_upstream: upstream.clone(),
        fetch: StaticFetch::for_issuer(ISSUER),
        sink: sink.map(|s| s as Arc<dyn gatelog_proxy::emit::DecisionSink>),
    };
    (Shared::new(ProxyConfig::parse(text).unwrap(), deps).unwrap(), upstream)
}

/// A raw HTTP/1.1 request: `method path`, headers, body (Content-Length set).
pub fn raw_request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: proxy.test\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

/// Connects and writes `request`.
pub async fn send_raw(addr: SocketAddr, request: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    s
}

/// Reads from `s` until `n` bytes (headers included) arrived or the peer closed.
pub async fn read_some(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(k)) => out.extend_from_slice(&buf[..k]),
        }
    }
    out
}

/// The status and headers of a raw response (whatever of it was read).
pub fn head_of(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head)
}

/// A header's value in a raw response head.
pub fn header_in(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
}

/// A loopback HTTP server recording every request it receives (method, raw target,
/// headers) and answering `200 upstream`. Stopped when dropped.
pub struct RecordingServer {
    pub addr: SocketAddr,
    pub seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingServer {
    pub async fn start() -> RecordingServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<std::sync::Mutex<Vec<Seen>>> = Arc::default();
        let s2 = seen.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let seen = s2.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = http_body_util::BodyExt::collect(body).await.map(|b| b.to_bytes()).unwrap_or_default();
                seen.lock().unwrap().push(Seen {
                    uri: format!("{} {}", parts.method, parts.uri),
                    headers: parts.headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                "upstream"
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RecordingServer { addr, seen, task }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
