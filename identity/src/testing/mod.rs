//! Test support for every crate that verifies identities (feature `testing`): the test keys
//! (`testdata/keys`, never used anywhere else), token minting, an in-memory ([`StaticFetch`])
//! and a loopback ([`LoopbackIssuer`]) OIDC issuer, and the JWT attack corpus ([`attacks`])
//! that the proxy's SQL route and serve's read routes both run.
//!
//! The test issuer is [`ISSUER`] with audience [`AUDIENCE`]; its JWKS publishes `rsa-1`
//! (RS256, `rsa.pem`) and `ec-1` (ES256, `ec.pem`); `rsa_other.pem` is a key it does not
//! publish, `rsa_pub.pem` the public half of `rsa.pem` (for the HMAC confusion attack). The
//! corpus also expects a Cloudflare Access issuer `{ISSUER}/cf` with audience [`CF_AUDIENCE`]
//! read from the `Cf-Access-Jwt-Assertion` header (and the `CF_Authorization` cookie where
//! a route takes cookies), its keys at `{ISSUER}/jwks`.

pub mod attacks;

use crate::Fetch;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "gatelog-proxy";
/// The audience of the test's Cloudflare Access application.
pub const CF_AUDIENCE: &str = "cf-aud";
/// The fixed "now" of tests that use a `FixedClock` (2025-03-03T00:00:00Z).
pub const NOW: i64 = 1_740_960_000;

/// The issuers the corpus expects, as TOML array-of-tables entries under `table` (`issuers`
/// in `proxy.toml`, `auth.identity.issuers` in `gatelog.toml`): `idp` at `issuer` (RS256 and
/// ES256, audience [`AUDIENCE`], 30 s leeway, discovery) and `cloudflare` at `{issuer}/cf`
/// (keys at `{issuer}/jwks`, audience [`CF_AUDIENCE`], the Cloudflare Access header and cookie).
pub fn issuers_toml(table: &str, issuer: &str) -> String {
    format!(
        r#"
[[{table}]]
name = "idp"
issuer = "{issuer}"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256", "ES256"]
leeway = "30s"
jwks_min_refresh = "30s"

[[{table}]]
name = "cloudflare"
issuer = "{issuer}/cf"
jwks_url = "{issuer}/jwks"
audiences = ["{CF_AUDIENCE}"]
header = "cf-access-jwt-assertion"
cookie = "CF_Authorization"
"#
    )
}

/// A file of `testdata/keys`.
pub fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/keys").join(name)
}

pub fn key_bytes(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).expect("a test key")
}

/// The test issuer's JWKS document.
pub fn jwks() -> Value {
    serde_json::from_slice(&key_bytes("jwks.json")).expect("jwks.json")
}

/// Claims of a valid token at `now` for `email` in `groups` (sub `sub-{email}`, audience
/// [`AUDIENCE`], issued 10 s ago, expiring in 10 minutes).
pub fn claims(issuer: &str, now: i64, email: &str, groups: &[&str]) -> serde_json::Map<String, Value> {
    let v = json!({
        "iss": issuer, "aud": AUDIENCE, "sub": format!("sub-{email}"), "email": email,
        "groups": groups, "iat": now - 10, "nbf": now - 10, "exp": now + 600,
    });
    v.as_object().cloned().unwrap_or_default()
}

/// Claims of a valid Cloudflare Access token (issuer `{issuer}/cf`, audience [`CF_AUDIENCE`]).
pub fn cf_claims(issuer: &str, now: i64, email: &str, groups: &[&str]) -> serde_json::Map<String, Value> {
    let mut c = claims(&format!("{issuer}/cf"), now, email, groups);
    c.insert("aud".into(), json!([CF_AUDIENCE]));
    c
}

/// Signs `claims` with a test key: `rsa` (kid rsa-1, RS256), `ec` (kid ec-1, ES256) or
/// `rsa_other`; an HS algorithm uses the PEM's bytes as the secret.
pub fn sign(claims: &serde_json::Map<String, Value>, key: &str, alg: Algorithm, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    sign_with(&header, claims, key)
}

/// Signs `claims` under `header` with the test key `key`.
pub fn sign_with(header: &Header, claims: &serde_json::Map<String, Value>, key: &str) -> String {
    let pem = key_bytes(&format!("{key}.pem"));
    let enc = match header.alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem).expect("an EC key"),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => EncodingKey::from_secret(&pem),
        _ => EncodingKey::from_rsa_pem(&pem).expect("an RSA key"),
    };
    jsonwebtoken::encode(header, claims, &enc).expect("a signed token")
}

/// A valid RS256 token of the test issuer at [`NOW`].
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
    /// Discovery at `{issuer}/.well-known/openid-configuration`, the test JWKS at `{issuer}/jwks`.
    pub fn for_issuer(issuer: &str) -> Arc<StaticFetch> {
        let f = StaticFetch::default();
        {
            let mut docs = f.docs.lock().unwrap_or_else(PoisonError::into_inner);
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
            self.docs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(url)
                .cloned()
                .ok_or_else(|| format!("404 {url}"))
        })
    }
}

/// An OIDC issuer on loopback (plain HTTP/1.1, one request per connection): discovery at
/// `/.well-known/openid-configuration`, the test JWKS at `/jwks`, 404 elsewhere. `hits`
/// counts the documents served. Stopped when dropped.
#[derive(Debug)]
pub struct LoopbackIssuer {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl LoopbackIssuer {
    pub async fn start() -> LoopbackIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let hits = Arc::new(AtomicUsize::new(0));
        let (counter, base) = (hits.clone(), url.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counter, base) = (counter.clone(), base.clone());
                tokio::spawn(async move {
                    let _ = answer(stream, &counter, &base).await;
                });
            }
        });
        LoopbackIssuer { url, hits, task }
    }
}

/// Reads one request head (bounded) and answers the document its path names.
async fn answer(mut stream: tokio::net::TcpStream, hits: &AtomicUsize, base: &str) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let body = match path {
        "/.well-known/openid-configuration" => Some(json!({"issuer": base, "jwks_uri": format!("{base}/jwks")})),
        "/jwks" => Some(jwks()),
        _ => None,
    };
    let response = match body {
        Some(body) => {
            hits.fetch_add(1, Ordering::SeqCst);
            let body = body.to_string();
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        None => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

impl Drop for LoopbackIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
