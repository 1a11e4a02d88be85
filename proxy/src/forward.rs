//! Forwarding to ClickHouse over HTTP: the [`Upstream`] trait (a pooled hyper client in
//! production), the request the proxy builds (its own credentials, only allow-listed client
//! parameters, the role's limits as settings, `query_id`/`log_comment` = decision id; a
//! client's GET stays a GET, which ClickHouse runs read-only), `KILL QUERY` by that id for
//! a query whose client left ([`kill_query`]), the streamed response body that reports how
//! it ended ([`Tracked`]), and the mapping of ClickHouse errors to the proxy's small set of
//! error codes.

use crate::net::UpstreamBase;
use axum::body::Body;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// Client URL parameters that may be passed through to ClickHouse when configured.
const PASSABLE_PARAMS: &[&str] = &["database", "default_format", "compress", "decompress"];

/// Whether a client parameter may never be passed through (settings, credentials, ids).
pub fn is_forbidden_param(name: &str) -> bool {
    !PASSABLE_PARAMS.contains(&name)
}

/// An HTTP upstream (ClickHouse or a BI tool).
pub trait Upstream: Send + Sync + std::fmt::Debug + 'static {
    fn send(&self, req: Request<Body>) -> BoxFuture<'static, Result<Response<Body>, String>>;
}

/// A pooled hyper HTTP/1 client.
#[derive(Debug, Clone)]
pub struct HyperUpstream {
    client: Client<HttpConnector, Body>,
}

impl HyperUpstream {
    pub fn new(connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(connector);
        HyperUpstream { client }
    }
}

impl Upstream for HyperUpstream {
    fn send(&self, req: Request<Body>) -> BoxFuture<'static, Result<Response<Body>, String>> {
        let fut = self.client.request(req);
        Box::pin(async move {
            let resp = fut.await.map_err(|e| format!("upstream request failed: {e}"))?;
            Ok(resp.map(Body::new))
        })
    }
}

/// Basic auth header value for the proxy's own ClickHouse credentials.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// Builds the request for `sql`: `POST {base}/?params` with the SQL as the body, or for
/// `GET`, `GET {base}/?params&query=SQL` (ClickHouse runs a GET read-only).
pub fn clickhouse_request(
    base: &UpstreamBase,
    method: &Method,
    params: &[(String, String)],
    sql: String,
    user: &str,
    password: &str,
) -> Result<Request<Body>, String> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(params);
    let body = if *method == Method::GET {
        query.append_pair("query", &sql);
        Body::empty()
    } else {
        Body::from(sql)
    };
    let uri = base.uri("/", Some(&query.finish()))?;
    let method = if *method == Method::GET { Method::GET } else { Method::POST };
    Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::AUTHORIZATION, basic_auth(user, password))
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .map_err(|e| format!("cannot build the upstream request: {e}"))
}

/// Runs one statement with the proxy's own credentials; returns ClickHouse's answer text.
async fn run(
    upstream: &dyn Upstream,
    base: &UpstreamBase,
    user: &str,
    password: &str,
    sql: &str,
) -> Result<String, String> {
    let req = clickhouse_request(base, &Method::POST, &[], sql.to_owned(), user, password)?;
    let resp = upstream.send(req).await?;
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(resp.into_body(), 1 << 20))
        .await
        .map_err(|e| format!("reading the answer to {sql}: {e}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        return Err(format!("{sql} failed with {status}: {}", first_line(&text)));
    }
    Ok(text)
}

/// Runs `SELECT version()` and returns (major, minor).
pub async fn server_version(
    upstream: &dyn Upstream,
    base: &UpstreamBase,
    user: &str,
    password: &str,
) -> Result<(u32, u32), String> {
    let text = run(upstream, base, user, password, "SELECT version()").await?;
    let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
}

/// What [`kill_query`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    /// The query was running and is gone now.
    Killed,
    /// It was not running any more.
    NotRunning,
}

/// `KILL QUERY WHERE query_id = '…' SYNC`, then `system.processes` until the query is no
/// longer listed, with the proxy's own credentials (a user that may kill other users'
/// queries: not `readonly` on 18.16, the `KILL QUERY` grant on modern servers). The caller
/// bounds it in time.
pub async fn kill_query(
    upstream: &dyn Upstream,
    base: &UpstreamBase,
    user: &str,
    password: &str,
    query_id: &str,
) -> Result<KillOutcome, String> {
    if query_id.is_empty() || !query_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!("refusing to kill by an unexpected query id {query_id:?}"));
    }
    let killed = run(upstream, base, user, password, &format!("KILL QUERY WHERE query_id = '{query_id}' SYNC")).await?;
    let listed = format!("SELECT count() FROM system.processes WHERE query_id = '{query_id}'");
    let mut pause = std::time::Duration::from_millis(20);
    loop {
        if run(upstream, base, user, password, &listed).await?.trim() == "0" {
            return Ok(if killed.trim().is_empty() { KillOutcome::NotRunning } else { KillOutcome::Killed });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(500));
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Rows and bytes ClickHouse reported for a query (`X-ClickHouse-Summary`, or the last
/// `X-ClickHouse-Progress` header when the server sends progress headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub rows_read: u64,
    pub bytes_read: u64,
    pub result_rows: u64,
}

pub fn read_stats(headers: &HeaderMap) -> ReadStats {
    let value =
        headers.get("x-clickhouse-summary").or_else(|| headers.get_all("x-clickhouse-progress").iter().next_back());
    let Some(json) =
        value.and_then(|v| v.to_str().ok()).and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
    else {
        return ReadStats::default();
    };
    let n = |k: &str| match json.get(k) {
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        Some(v) => v.as_u64().unwrap_or(0),
        None => 0,
    };
    ReadStats { rows_read: n("read_rows"), bytes_read: n("read_bytes"), result_rows: n("result_rows") }
}

/// A ClickHouse error, classified for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFailure {
    /// `limit_exceeded`, `query_error` or `upstream_error`.
    pub code: &'static str,
    /// The limit that stopped the query (`max_rows_to_read`), when known.
    pub limit: Option<&'static str>,
    pub status: http::StatusCode,
    /// Safe to show to the client.
    pub reason: String,
    /// ClickHouse's error code, if any.
    pub clickhouse_code: Option<u32>,
}

/// Classifies a non-2xx ClickHouse response body.
pub fn classify_error(body: &str) -> UpstreamFailure {
    let code = body
        .trim_start()
        .strip_prefix("Code: ")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u32>().ok());
    let message = body.split_once("DB::Exception: ").map(|(_, m)| m).unwrap_or(body).lines().next().unwrap_or_default();
    let message = message.split(", e.what()").next().unwrap_or(message);
    let message = message.split(" (version ").next().unwrap_or(message);
    let message: String = message.chars().take(300).collect();
    let limit = match code {
        Some(158 | 396) if message.contains("result") => Some("max_result_rows"),
        Some(158 | 396) => Some("max_rows_to_read"),
        Some(307) => Some("max_bytes_to_read"),
        Some(159 | 160) => Some("max_execution_time"),
        _ => None,
    };
    if let Some(limit) = limit {
        return UpstreamFailure {
            code: "limit_exceeded",
            limit: Some(limit),
            status: http::StatusCode::FORBIDDEN,
            reason: format!("ClickHouse stopped the query at the role's {limit}: {message}"),
            clickhouse_code: code,
        };
    }
    if code == Some(164) {
        // READONLY: a write on a GET, or by a read-only role.
        return UpstreamFailure {
            code: "forbidden",
            limit: None,
            status: http::StatusCode::FORBIDDEN,
            reason: format!("ClickHouse refused to write in read-only mode: {message}"),
            clickhouse_code: code,
        };
    }
    // Errors about the client's own query are worth showing; the rest stays in the log.
    const QUERY_ERRORS: &[u32] = &[
        6, 8, 10, 16, 27, 36, 38, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 53, 60, 62, 69, 70, 73, 81, 117, 179, 184,
        215, 352, 386,
    ];
    match code {
        Some(c) if QUERY_ERRORS.contains(&c) => UpstreamFailure {
            code: "query_error",
            limit: None,
            status: http::StatusCode::BAD_REQUEST,
            reason: message,
            clickhouse_code: code,
        },
        _ => UpstreamFailure {
            code: "upstream_error",
            limit: None,
            status: http::StatusCode::BAD_GATEWAY,
            reason: match code {
                Some(c) => format!("ClickHouse failed the query (code {c})"),
                None => "ClickHouse failed the query".to_owned(),
            },
            clickhouse_code: code,
        },
    }
}

/// How a streamed body ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub bytes_sent: u64,
    /// The upstream's last byte went to the client.
    pub complete: bool,
    /// The upstream body failed (ClickHouse broke off the answer).
    pub error: Option<String>,
}

/// Whether a streamed answer waits on its client: the time a frame was handed over and
/// not yet followed by a request for the next one. A client that stops reading leaves the
/// body unpolled; one waiting on ClickHouse leaves it polled and pending, which is not a
/// stall.
#[derive(Debug)]
pub struct Progress {
    base: tokio::time::Instant,
    /// Milliseconds after `base` of the last hand-over; `u64::MAX` while polled.
    handed_at: AtomicU64,
    aborted: AtomicBool,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress {
            base: tokio::time::Instant::now(),
            handed_at: AtomicU64::new(u64::MAX),
            aborted: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// How long the client has left a handed-over frame untaken, if it has.
    pub fn waiting_on_client(&self) -> Option<std::time::Duration> {
        let at = self.handed_at.load(Ordering::Relaxed);
        (at != u64::MAX).then(|| std::time::Duration::from_millis(self.now_ms().saturating_sub(at)))
    }

    /// Makes the body fail on its next poll (its query was killed).
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Relaxed);
    }
}

/// Called once with how a [`Tracked`] body ended.
pub type OnEnd = Box<dyn FnOnce(Outcome) + Send>;

/// A response body that reports how it ended exactly once, as it ends: when the stream
/// ends, fails, or is dropped (the client left); and that records its [`Progress`].
pub struct Tracked {
    inner: Body,
    bytes: u64,
    error: Option<String>,
    on_end: Option<OnEnd>,
    progress: Arc<Progress>,
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked").field("bytes", &self.bytes).finish_non_exhaustive()
    }
}

impl Tracked {
    pub fn new(inner: Body, progress: Arc<Progress>, on_end: OnEnd) -> Self {
        Tracked { inner, bytes: 0, error: None, on_end: Some(on_end), progress }
    }

    fn finish(&mut self, complete: bool) {
        self.progress.handed_at.store(u64::MAX, Ordering::Relaxed);
        if let Some(on_end) = self.on_end.take() {
            on_end(Outcome { bytes_sent: self.bytes, complete, error: self.error.take() });
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let complete = http_body::Body::is_end_stream(&self.inner);
        self.finish(complete);
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.progress.aborted.load(Ordering::Relaxed) {
            this.finish(false);
            return Poll::Ready(Some(Err(axum::Error::new("the query was stopped: the client stopped reading"))));
        }
        this.progress.handed_at.store(u64::MAX, Ordering::Relaxed);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    // The last frame: hyper may drop a body of known length without
                    // polling it again, so it ends here.
                    this.finish(true);
                } else {
                    this.progress.handed_at.store(this.progress.now_ms(), Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.error = Some(e.to_string());
                this.finish(false);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_clickhouse_errors() {
        let f = classify_error(
            "Code: 158, e.displayText() = DB::Exception: Limit for rows to read exceeded: 1048576 rows read (or to read), maximum: 1000, e.what() = DB::Exception\n",
        );
        assert_eq!((f.code, f.limit), ("limit_exceeded", Some("max_rows_to_read")));
        assert!(!f.reason.contains("e.what"), "{}", f.reason);
        let f = classify_error(
            "Code: 60, e.displayText() = DB::Exception: Table analytics.nope doesn't exist., e.what() = DB::Exception\n",
        );
        assert_eq!(f.code, "query_error");
        assert_eq!(f.reason, "Table analytics.nope doesn't exist.");
        let f = classify_error(
            "Code: 192, e.displayText() = DB::Exception: Unknown user proxy, e.what() = DB::Exception\n",
        );
        assert_eq!(f.code, "upstream_error");
        assert!(!f.reason.contains("proxy"));
    }

    #[test]
    fn summary_header() {
        let mut h = HeaderMap::new();
        h.insert("x-clickhouse-summary", r#"{"read_rows":"10","read_bytes":"80","result_rows":"1"}"#.parse().unwrap());
        assert_eq!(read_stats(&h), ReadStats { rows_read: 10, bytes_read: 80, result_rows: 1 });
        assert_eq!(read_stats(&HeaderMap::new()), ReadStats::default());
    }
}
