//! Decision emission. Every request's [`AccessDecision`] is logged (structured tracing) and
//! handed to a bounded in-memory buffer without waiting; a worker sends batches as NDJSON to
//! gatelog's `POST /v1/decisions`. When the pipeline is unreachable (or the buffer is full)
//! decisions go to the [`spill::Spill`] file and are replayed in order once it answers.
//! The user's request never waits for, or fails because of, the pipeline.
//!
//! - [`buffer`]: the [`Emitter`] handle and its worker.
//! - [`bound`]: the bound of every field, applied before a decision is logged or queued.
//! - [`spill`]: the bounded, checksummed, append-only spill file with a committed offset.

pub mod bound;
pub mod buffer;
pub mod spill;

pub use buffer::Emitter;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::time::Duration;

/// Where decision batches go (a trait so tests can use a fake or a loopback collector).
pub trait DecisionSink: Send + Sync + std::fmt::Debug + 'static {
    /// Sends one NDJSON batch; `Ok` only for a 2xx.
    fn send(&self, ndjson: Bytes) -> BoxFuture<'_, Result<(), String>>;
}

/// `POST {url}` with `Authorization: Bearer {token}`.
pub struct HttpSink {
    client: reqwest::Client,
    url: String,
    token: crate::config::Secret,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink").field("url", &self.url).field("token", &self.token).finish()
    }
}

impl HttpSink {
    pub fn new(url: String, token: crate::config::Secret, timeout: Duration) -> Result<Self, String> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(HttpSink { client, url, token })
    }
}

impl DecisionSink for HttpSink {
    fn send(&self, ndjson: Bytes) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let mut req =
                self.client.post(&self.url).header(http::header::CONTENT_TYPE, "application/x-ndjson").body(ndjson);
            if !self.token.is_empty() {
                req = req.bearer_auth(self.token.expose());
            }
            let resp = req.send().await.map_err(|e| format!("POST {}: {e}", self.url))?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(format!("POST {}: status {}", self.url, resp.status()))
            }
        })
    }
}
