//! Shared helpers for the receiver tests: a router over a real spool in a tempdir with a
//! fixed clock, requests through `oneshot`, reading back what was spooled, sample files.
#![allow(dead_code, clippy::unwrap_used)] // test helpers: a failure is a test failure

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use flate2::Compression;
use flate2::write::GzEncoder;
use gatelog_ingest::http::{ReceiverConfig, ReceiverState, router};
use gatelog_model::{Batch, FixedClock, UnixMillis};
use gatelog_spool::{Spool, SpoolOptions};
use http_body_util::BodyExt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt;

pub const TOKEN: &str = "test-token-0123456789";
pub const OTHER_TOKEN: &str = "rotated-token-9876543210";
/// 2025-03-05T00:00:00Z.
pub const NOW: UnixMillis = UnixMillis(1_741_132_800_000);

/// `$GATELOG_SHARED/formats/samples`, else `shared/` beside the repository.
pub fn samples_dir() -> PathBuf {
    match std::env::var_os("GATELOG_SHARED") {
        Some(shared) => PathBuf::from(shared).join("formats/samples"),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/formats/samples")),
    }
}

pub fn sample(name: &str) -> Vec<u8> {
    let path = samples_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("cannot read sample {} ({e}); set GATELOG_SHARED to the folder holding formats/", path.display())
    })
}

/// The first `n` lines of a sample, each with its newline.
pub fn sample_lines(name: &str, skip: usize, n: usize) -> Vec<u8> {
    let all = sample(name);
    all.split_inclusive(|b| *b == b'\n').skip(skip).take(n).flatten().copied().collect()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub fn config() -> ReceiverConfig {
    ReceiverConfig {
        tokens: vec![TOKEN.into(), OTHER_TOKEN.into()],
        token_header: Some("X-Gatelog-Token".into()),
        ..ReceiverConfig::default()
    }
}

pub fn test_spool_options() -> SpoolOptions {
    SpoolOptions { fsync: false, preallocate: false, ..SpoolOptions::default() }
}

#[derive(Debug)]
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub spool: Spool,
    pub state: ReceiverState,
    pub clock: Arc<FixedClock>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(config(), test_spool_options())
    }

    pub fn with(config: ReceiverConfig, opts: SpoolOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("spool"), opts).unwrap();
        let clock = Arc::new(FixedClock::new(NOW));
        let state = ReceiverState::new(config, spool.clone(), clock.clone()).unwrap();
        Harness { dir, spool, state, clock }
    }

    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// POSTs with `Authorization: Bearer TOKEN`.
    pub async fn post(&self, path: &str, body: impl Into<Vec<u8>>) -> Answer {
        self.request(Request::post(path).header("authorization", format!("Bearer {TOKEN}")), body.into()).await
    }

    pub async fn request(&self, builder: axum::http::request::Builder, body: Vec<u8>) -> Answer {
        let response = self.router().oneshot(builder.body(Body::from(body)).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Answer { status, headers, text, json }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.request(Request::get(path), Vec::new()).await
    }

    /// Every batch in the spool, with its sequence number.
    pub async fn spooled(&self) -> Vec<(u64, Batch)> {
        let mut reader = self.spool.reader(0);
        let mut out = Vec::new();
        while let Some(record) = reader.try_next().await.unwrap() {
            out.push((record.seq, Batch::decode(&record.payload).unwrap()));
        }
        out
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: serde_json::Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }
    pub fn n(&self, key: &str) -> u64 {
        self.json[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {}", self.text))
    }
    pub fn retry_after(&self) -> Option<&str> {
        self.headers.get("retry-after").map(|v| v.to_str().unwrap())
    }
}
