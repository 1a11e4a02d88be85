//! Who is asking: tokens from several issuers at once (OIDC providers such as Okta, Azure AD,
//! Google, and Cloudflare Access's `Cf-Access-Jwt-Assertion`), validated strictly. One
//! verifier for both binaries: `gatelog proxy` (`gatelog-proxy`) and the read routes of
//! `gatelog serve` (through `gatelog-edge`) depend on this crate, neither on the other.
//!
//! - [`config`]: the issuers ([`IssuerConfig`]) and claims → roles mappings ([`RoleMapping`])
//!   as both configurations write them, with the checks serde cannot express.
//! - [`oidc`]: discovery (`/.well-known/openid-configuration` → `jwks_uri`).
//! - [`jwks`]: the per-issuer key cache with `kid`-driven, rate-limited refresh.
//! - [`jwt`]: signature and claim validation against the injected clock.
//! - [`roles`]: claims → role names ([`RoleMapper`]); what a name grants is the caller's.
//! - [`cache`]: the bounded LRU of the verified-token cache (the proxy's verdict cache too).
//! - `testing` (feature): test keys, token minting, the JWT attack corpus, test issuers.
//!
//! Claims become an [`Identity`]. The `email` claim counts only as far as the issuer's
//! `email_verified` setting trusts it (by default: unless the token says
//! `email_verified: false`); an untrusted email neither names the principal nor maps roles.
//! Where a token may come from is the caller's choice ([`Sources`]): the proxy's SQL route
//! reads headers only, so a browser's cookie cannot carry a cross-site request. No token is
//! ever logged or put in an error: [`AuthError`]'s texts are safe to show to the client.

pub mod cache;
pub mod config;
pub mod jwks;
pub mod jwt;
pub mod oidc;
pub mod roles;

pub use config::{ConfigError, EmailVerified, IssuerConfig, RoleMapping};
pub use roles::RoleMapper;

#[cfg(feature = "testing")]
pub mod testing;

use crate::cache::{Lru, key_of};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use gatelog_model::{Clock, PrincipalType};
use http::HeaderMap;
use jsonwebtoken::Algorithm;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Installs rustls' ring provider for HTTPS clients (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// HTTP GET for discovery and JWKS documents (a trait so tests can serve fakes).
pub trait Fetch: Send + Sync + std::fmt::Debug + 'static {
    fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Bytes, String>>;
}

/// [`Fetch`] over reqwest (HTTPS with rustls).
#[derive(Debug, Clone)]
pub struct ReqwestFetch {
    client: reqwest::Client,
}

impl ReqwestFetch {
    pub fn new(timeout: std::time::Duration) -> Result<Self, String> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(ReqwestFetch { client })
    }
}

impl Fetch for ReqwestFetch {
    fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Bytes, String>> {
        Box::pin(async move {
            let resp = self.client.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("GET {url}: status {}", resp.status()));
            }
            resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))
        })
    }
}

/// Why a request is not authenticated. The text is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send Authorization: Bearer <jwt> or a configured token header/cookie")]
    Missing,
    #[error("no token in a header: this route takes credentials from headers only, not cookies")]
    CookieNotAccepted,
    #[error("the token has critical header parameters (crit) gatelog does not understand")]
    Critical,
    #[error("the token lives longer than the issuer's max_token_lifetime")]
    TooLongLived,
    #[error("the token is malformed")]
    Malformed,
    #[error("token algorithm not accepted: {0}")]
    Algorithm(String),
    #[error("the token's issuer is not accepted")]
    UnknownIssuer,
    #[error("the token has no kid")]
    MissingKid,
    #[error("the token's kid is not in the issuer's JWKS")]
    UnknownKid,
    #[error("the issuer's keys are unavailable")]
    KeysUnavailable,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("invalid claim: {0}")]
    Claim(&'static str),
}

/// An authenticated principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The issuer's configured name.
    pub issuer: String,
    pub subject: String,
    /// The `email` claim, only when the issuer's `email_verified` setting trusts it.
    pub email: Option<String>,
    /// The name recorded in decisions (first configured principal claim present).
    pub principal: String,
    pub principal_type: PrincipalType,
    pub groups: Vec<String>,
    /// `oidc` or `cf_access_jwt`.
    pub auth_method: String,
}

/// How long a verified token is trusted without verifying its signature again (capped by
/// its `exp`). Short, so that revocation through a JWKS rotation the proxy (or serve) has not seen yet
/// takes effect quickly.
pub const VERIFIED_TTL_MS: i64 = 60_000;
/// Verified tokens kept (per authenticator); beyond this the least recently used are dropped.
pub const VERIFIED_CAPACITY: usize = 10_000;

/// A token that passed validation for one issuer.
#[derive(Debug, Clone)]
struct Verified {
    identity: Identity,
    issuer: usize,
    /// The issuer's JWKS generation the signature was checked with.
    generation: u64,
    verified_at_ms: i64,
    /// `min(exp, verified_at + VERIFIED_TTL_MS)`.
    expires_at_ms: i64,
}

struct IssuerState {
    cfg: Arc<IssuerConfig>,
    algorithms: Vec<Algorithm>,
    jwks: jwks::JwksCache,
}

/// Validates tokens from every configured issuer.
pub struct Authenticator {
    issuers: Vec<IssuerState>,
    clock: Arc<dyn Clock>,
    /// Verified tokens by SHA-256 of (issuer index, token): signature verification (RSA
    /// especially) dominated the proxy's per-request CPU time.
    verified: Mutex<Lru<Verified>>,
    /// Full validations (signature checks) performed, for tests and diagnostics.
    verifications: AtomicU64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.issuers.iter().map(|i| i.cfg.name.as_str()).collect();
        f.debug_struct("Authenticator").field("issuers", &names).finish()
    }
}

/// Where a route takes tokens from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    /// The issuers' headers only (the SQL route: a cross-site request cannot set them).
    Headers,
    /// Headers, then the issuers' cookies (BI routes, for browser sessions).
    HeadersAndCookies,
}

fn token_from(headers: &HeaderMap, cfg: &IssuerConfig, sources: Sources) -> Option<String> {
    if let Some(v) = headers.get(cfg.header.as_str()).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if cfg.header.eq_ignore_ascii_case("authorization") {
            if let Some((scheme, token)) = v.split_once(' ')
                && scheme.eq_ignore_ascii_case("bearer")
                && !token.trim().is_empty()
            {
                return Some(token.trim().to_owned());
            }
        } else if !v.is_empty() {
            return Some(v.to_owned());
        }
    }
    if sources == Sources::Headers {
        return None;
    }
    let cookie_name = cfg.cookie.as_deref()?;
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == cookie_name)
        .map(|(_, v)| v.to_owned())
}

impl Authenticator {
    pub fn new(issuers: &[IssuerConfig], fetch: Arc<dyn Fetch>, clock: Arc<dyn Clock>) -> Self {
        Self::with_cache_capacity(issuers, fetch, clock, VERIFIED_CAPACITY)
    }

    /// Like [`Authenticator::new`] with at most `capacity` verified tokens cached.
    pub fn with_cache_capacity(
        issuers: &[IssuerConfig],
        fetch: Arc<dyn Fetch>,
        clock: Arc<dyn Clock>,
        capacity: usize,
    ) -> Self {
        let issuers = issuers
            .iter()
            .map(|c| {
                let cfg = Arc::new(c.clone());
                IssuerState {
                    algorithms: c.algorithms.iter().filter_map(|a| jwt::parse_algorithm(a).ok()).collect(),
                    jwks: jwks::JwksCache::new(cfg.clone(), fetch.clone()),
                    cfg,
                }
            })
            .collect();
        Authenticator { issuers, clock, verified: Mutex::new(Lru::new(capacity)), verifications: AtomicU64::new(0) }
    }

    /// Number of verified tokens currently cached (expired ones included until evicted).
    pub fn cached_tokens(&self) -> usize {
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// How many tokens went through full validation (cache misses), since start.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Lru<Verified>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A cached identity for `token` verified by issuer `index`, if still trustworthy: not
    /// expired by the injected clock (nor the clock moved back before the verification),
    /// and checked with the issuer's current, fresh key set.
    fn cached(&self, key: &crate::cache::Key, index: usize, s: &IssuerState) -> Option<Identity> {
        let now = self.clock.now().0;
        let generation = s.jwks.fresh_generation();
        let mut cache = self.cache();
        let hit = cache.get(key)?;
        if hit.issuer == index
            && Some(hit.generation) == generation
            && hit.verified_at_ms <= now
            && now < hit.expires_at_ms
        {
            return Some(hit.identity.clone());
        }
        cache.remove(key);
        None
    }

    /// Whether any token-bearing header or cookie is present (for the BI login redirect).
    pub fn has_token(&self, headers: &HeaderMap) -> bool {
        self.issuers.iter().any(|i| token_from(headers, &i.cfg, Sources::HeadersAndCookies).is_some())
    }

    /// Authenticates a request by its headers and cookies.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        self.authenticate_from(headers, Sources::HeadersAndCookies).await
    }

    /// Authenticates a request by its headers, and cookies for [`Sources::HeadersAndCookies`].
    pub async fn authenticate_from(&self, headers: &HeaderMap, sources: Sources) -> Result<Identity, AuthError> {
        let mut first_error = None;
        let mut tried = Vec::new();
        for state in &self.issuers {
            let Some(token) = token_from(headers, &state.cfg, sources) else { continue };
            if tried.contains(&token) {
                continue;
            }
            // The unverified `iss` only chooses which issuer's keys verify the token.
            let claims: serde_json::Value = match jsonwebtoken::dangerous::insecure_decode_claims(&token) {
                Ok(c) => c,
                Err(_) => {
                    first_error.get_or_insert(AuthError::Malformed);
                    continue;
                }
            };
            let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or_default();
            let candidates = self
                .issuers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.cfg.issuer.trim_end_matches('/') == iss.trim_end_matches('/'))
                .filter(|(_, s)| token_from(headers, &s.cfg, sources).as_deref() == Some(token.as_str()));
            let mut matched = false;
            for (index, s) in candidates {
                matched = true;
                match self.validate(index, s, &token).await {
                    Ok(identity) => return Ok(identity),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if !matched {
                first_error.get_or_insert(AuthError::UnknownIssuer);
            }
            tried.push(token);
        }
        if first_error.is_none() && sources == Sources::Headers && self.has_token(headers) {
            return Err(AuthError::CookieNotAccepted);
        }
        Err(first_error.unwrap_or(AuthError::Missing))
    }

    async fn validate(&self, index: usize, s: &IssuerState, token: &str) -> Result<Identity, AuthError> {
        let key = key_of(&[&(index as u64).to_le_bytes(), token.as_bytes()]);
        if let Some(identity) = self.cached(&key, index, s) {
            return Ok(identity);
        }
        let now_ms = self.clock.now().0;
        let (identity, exp, generation) = self.verify_token(s, token, now_ms).await?;
        let expires_at_ms = exp.saturating_mul(1000).min(now_ms.saturating_add(VERIFIED_TTL_MS));
        if now_ms < expires_at_ms {
            let entry = Verified {
                identity: identity.clone(),
                issuer: index,
                generation,
                verified_at_ms: now_ms,
                expires_at_ms,
            };
            self.cache().insert(key, entry);
        }
        Ok(identity)
    }

    /// Full validation: signature, algorithm, claims. Returns the identity, the token's
    /// `exp` (seconds) and the JWKS generation of the key that verified it.
    async fn verify_token(&self, s: &IssuerState, token: &str, now_ms: i64) -> Result<(Identity, i64, u64), AuthError> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        jwt::check_header(&header)?;
        if !s.algorithms.contains(&header.alg) {
            return Err(AuthError::Algorithm(format!("{:?} is not accepted for issuer {}", header.alg, s.cfg.name)));
        }
        let kid = header.kid.ok_or(AuthError::MissingKid)?;
        let crate::jwks::VersionedKey { key, alg: key_alg, generation } = s.jwks.key(&kid).await?;
        if let Some(key_alg) = key_alg
            && key_alg != format!("{:?}", header.alg)
        {
            return Err(AuthError::Algorithm(format!("the key is for {key_alg}")));
        }
        let expect = jwt::Expectations {
            issuer: &s.cfg.issuer,
            audiences: &s.cfg.audiences,
            leeway: s.cfg.leeway,
            max_lifetime: s.cfg.max_token_lifetime,
            now: now_ms.div_euclid(1000),
        };
        let claims = jwt::verify(token, header.alg, &key, &expect)?;
        // `verify` checked that `exp` is a number.
        let exp =
            claims.get("exp").and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))).unwrap_or(i64::MIN);
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let subject = text("sub").unwrap_or_default();
        let has_email = text("email").is_some_and(|e| !e.is_empty());
        let trusted = email_trusted(s.cfg.email_verified, claims.get("email_verified"));
        let email = text("email").filter(|_| trusted);
        let principal = s
            .cfg
            .principal_claims
            .iter()
            .filter(|c| trusted || *c != "email")
            .find_map(|c| text(c).filter(|v| !v.is_empty()))
            .ok_or(AuthError::Claim("no principal claim"))?;
        let groups = match claims.get(&s.cfg.groups_claim) {
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
            }
            Some(serde_json::Value::String(g)) => vec![g.clone()],
            _ => Vec::new(),
        };
        let auth_method =
            if s.cfg.header.eq_ignore_ascii_case("cf-access-jwt-assertion") { "cf_access_jwt" } else { "oidc" };
        let identity = Identity {
            issuer: s.cfg.name.clone(),
            principal_type: if has_email { PrincipalType::User } else { PrincipalType::Service },
            subject,
            email,
            principal,
            groups,
            auth_method: auth_method.to_owned(),
        };
        Ok((identity, exp, generation))
    }
}

/// Whether the `email` claim counts, by the issuer's setting and the `email_verified` claim
/// (a boolean; the strings `"true"`/`"false"` some providers send are read as such; anything
/// else is not a yes).
fn email_trusted(setting: EmailVerified, claim: Option<&serde_json::Value>) -> bool {
    let verified = match claim {
        None => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(_) => Some(false),
    };
    match setting {
        EmailVerified::Required => verified == Some(true),
        EmailVerified::IfPresent => verified != Some(false),
        EmailVerified::AllowUnverified => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn email_trust_by_setting_and_claim() {
        let (t, f, s_t, s_f, junk) = (json!(true), json!(false), json!("true"), json!("False"), json!(1));
        let cases: [(EmailVerified, [bool; 6]); 3] = [
            // claim:            absent  true  false "true" "False"  1
            (EmailVerified::Required, [false, true, false, true, false, false]),
            (EmailVerified::IfPresent, [true, true, false, true, false, false]),
            (EmailVerified::AllowUnverified, [true, true, true, true, true, true]),
        ];
        for (setting, want) in cases {
            let got =
                [None, Some(&t), Some(&f), Some(&s_t), Some(&s_f), Some(&junk)].map(|c| email_trusted(setting, c));
            assert_eq!(got, want, "{setting:?}");
        }
    }
}
