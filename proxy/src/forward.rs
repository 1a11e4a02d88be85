//! Forwarding to ClickHouse over HTTP: the [`Upstream`] trait (a pooled hyper client in
//! production), the request the proxy builds (its own credentials, only allow-listed client
//! parameters, the role's limits as settings, `query_id`/`log_comment` = decision id), the
//! streamed response body that emits its decision when it ends, and the mapping of
//! ClickHouse errors to the proxy's small set of error codes.

use axum::body::Body;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::pin::Pin;
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

/// Builds `POST {base}/?params` with `sql` as the body.
pub fn clickhouse_request(
    base: &str,
    params: &[(String, String)],
    sql: String,
    user: &str,
    password: &str,
) -> Result<Request<Body>, String> {
    let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let url = format!("{}/?{query}", base.trim_end_matches('/'));
    Request::post(url)
        .header(http::header::AUTHORIZATION, basic_auth(user, password))
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(sql))
        .map_err(|e| format!("cannot build the upstream request: {e}"))
}

/// Runs `SELECT version()` and returns (major, minor).
pub async fn server_version(
    upstream: &dyn Upstream,
    base: &str,
    user: &str,
    password: &str,
) -> Result<(u32, u32), String> {
    let req = clickhouse_request(base, &[], "SELECT version()".into(), user, password)?;
    let resp = upstream.send(req).await?;
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(|e| format!("reading version: {e}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        return Err(format!("SELECT version() failed with {status}: {}", first_line(&text)));
    }
    let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
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

/// A response body that calls `on_end` exactly once: when the stream ends, fails, or is
/// dropped (client gone). Used to emit a streamed query's decision after the last byte.
pub struct Tracked<F: FnOnce(Outcome) + Send + 'static> {
    inner: Body,
    bytes: u64,
    error: Option<String>,
    on_end: Option<F>,
}

impl<F: FnOnce(Outcome) + Send + 'static> std::fmt::Debug for Tracked<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked").field("bytes", &self.bytes).finish_non_exhaustive()
    }
}

/// How a streamed body ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub bytes_sent: u64,
    pub complete: bool,
    pub error: Option<String>,
}

impl<F: FnOnce(Outcome) + Send + 'static> Tracked<F> {
    pub fn new(inner: Body, on_end: F) -> Self {
        Tracked { inner, bytes: 0, error: None, on_end: Some(on_end) }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(f) = self.on_end.take() {
            f(Outcome { bytes_sent: self.bytes, complete, error: self.error.take() });
        }
    }
}

impl<F: FnOnce(Outcome) + Send + 'static> Drop for Tracked<F> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl<F: FnOnce(Outcome) + Send + Unpin + 'static> http_body::Body for Tracked<F> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
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
