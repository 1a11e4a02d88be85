//! [`Client`]: what Cloudflare does to a gatelog receiver, over real HTTP: Logpush uploads
//! (gzip NDJSON to `/v1/logpush/{dataset}`) and Tail Worker deliveries (one JSON array of
//! `TraceItem`s to `/v1/tail`), with the ingest token as `Authorization: Bearer`, retrying
//! 429 and 503 after their `Retry-After` as Logpush does (and connection failures, with
//! backoff), for at most [`Client::retry_for`]. `gatelog demo` posts the sample data
//! with it; it also documents, in code, what a sender may rely on.
//!
//! Any other non-2xx answer (400 for bad lines, 401, 413) is a [`ClientError::Refused`]
//! carrying the receiver's JSON error text; nothing is retried that the receiver did not ask
//! to have retried.

use serde::Deserialize;
use std::io::Write as _;
use std::time::{Duration, Instant};

/// The receiver's answer to an accepted batch (the 200 body of the ingest routes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Accepted {
    /// `None` for a validation probe, which is answered without being stored.
    pub batch_id: Option<String>,
    pub spool_seq: Option<u64>,
    pub lines: u64,
    pub decisions: u64,
    pub raw_records: u64,
    pub dead_letters: u64,
    pub probes: u64,
}

/// Why a post did not end in a 2xx.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the http client: {0}")]
    Build(#[source] reqwest::Error),
    #[error("bad receiver url {url}: {detail}")]
    Url { url: String, detail: String },
    #[error("cannot gzip the body: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("{url} answered {status}: {body}")]
    Refused { url: String, status: u16, body: String },
    #[error("{url}: {source}")]
    Send { url: String, source: reqwest::Error },
    #[error("{url} still failing after retrying for {waited:?}: {last}")]
    GaveUp { url: String, waited: Duration, last: String },
    #[error("{url} answered 2xx with a body that is not an ingest answer: {detail}")]
    BadAnswer { url: String, detail: String },
}

/// A sender to one receiver, e.g. `http://127.0.0.1:8080`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    token: String,
    /// How long 429/503 answers and connection failures are retried before giving up.
    pub retry_for: Duration,
    /// Per request.
    pub timeout: Duration,
}

impl Client {
    /// A client for the receiver at `base_url` presenting `token`.
    pub fn new(base_url: &str, token: &str) -> Result<Client, ClientError> {
        // reqwest is built without a default TLS provider; plain HTTP needs one installed too.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().build().map_err(ClientError::Build)?;
        let base = reqwest::Url::parse(base_url)
            .map_err(|e| ClientError::Url { url: base_url.to_owned(), detail: e.to_string() })?;
        Ok(Client {
            http,
            base,
            token: token.to_owned(),
            retry_for: Duration::from_secs(120),
            timeout: Duration::from_secs(60),
        })
    }

    /// `base` + `path` with the query `params` percent-encoded, as a string to print or GET.
    pub fn url(&self, path: &str, params: &[(&str, &str)]) -> String {
        let mut url = self.base.clone();
        url.set_path(path);
        if params.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(params);
        }
        url.into()
    }

    /// One Logpush upload of NDJSON `body` for `dataset`: gzip-compressed unless it already is
    /// (a body as Logpush wrote it to a bucket is sent as it is).
    pub async fn post_logpush(&self, dataset: &str, body: &[u8]) -> Result<Accepted, ClientError> {
        let body = if crate::is_gzip(body) { body.to_vec() } else { gzip(body).map_err(ClientError::Gzip)? };
        self.post(&format!("/v1/logpush/{dataset}"), body).await
    }

    /// One Tail Worker delivery: a JSON array of `TraceItem`s, sent plain.
    pub async fn post_tail(&self, delivery: &[u8]) -> Result<Accepted, ClientError> {
        self.post("/v1/tail", delivery.to_vec()).await
    }

    /// One `/v1/decisions` body: NDJSON of `AccessDecision`s, sent plain (the proxy's route;
    /// `gatelog serve`'s canaries use it too).
    pub async fn post_decisions(&self, ndjson: &[u8]) -> Result<Accepted, ClientError> {
        self.post("/v1/decisions", ndjson.to_vec()).await
    }

    /// GETs `path` with `params` and the token; the body of a 2xx, else `Refused`.
    pub async fn get_text(&self, path: &str, params: &[(&str, &str)]) -> Result<String, ClientError> {
        let url = self.url(path, params);
        let failed = |source: reqwest::Error| ClientError::Send { url: url.clone(), source };
        let response =
            self.http.get(&url).bearer_auth(&self.token).timeout(self.timeout).send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(failed)?;
        if (200..300).contains(&status) { Ok(body) } else { Err(ClientError::Refused { url, status, body }) }
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<Accepted, ClientError> {
        let url = self.url(path, &[]);
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            let sent =
                self.http.post(&url).bearer_auth(&self.token).body(body.clone()).timeout(self.timeout).send().await;
            let last = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let text = response.text().await.unwrap_or_default();
                    match status {
                        200..=299 => {
                            return serde_json::from_str(&text)
                                .map_err(|e| ClientError::BadAnswer { url, detail: e.to_string() });
                        }
                        429 | 503 => {
                            delay = retry_after.map_or(delay, Duration::from_secs);
                            format!("{status}: {}", text.trim())
                        }
                        _ => return Err(ClientError::Refused { url, status, body: text.trim().to_owned() }),
                    }
                }
                Err(e) => e.to_string(),
            };
            if started.elapsed() + delay > self.retry_for {
                return Err(ClientError::GaveUp { url, waited: started.elapsed(), last });
            }
            tracing::debug!(%url, retry_in_ms = delay.as_millis() as u64, %last, "client: retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}

/// gzip at the default level, as Logpush compresses its uploads.
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4), flate2::Compression::default());
    gz.write_all(data)?;
    gz.finish()
}
