//! A per-issuer JWKS cache: fetched on first use (after discovery), trusted for `jwks_ttl`,
//! refreshed when a token names an unknown `kid` (at most once per `jwks_min_refresh`, so
//! random `kid`s cannot make gatelog hammer the identity provider), and kept when a
//! refresh fails (keys that were valid stay usable until the provider answers again).
//! RSA and EC keys are accepted; symmetric (`oct`) keys in a JWKS are ignored.

use super::{AuthError, Fetch};
use crate::config::IssuerConfig;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use tokio::time::Instant;

#[derive(Default)]
struct KeyState {
    keys: BTreeMap<String, (DecodingKey, Option<String>)>,
    fetched_at: Option<Instant>,
    jwks_uri: Option<String>,
    /// Bumped by every successful refresh: results verified with an older key set (a key
    /// may have been revoked by the rotation) are no longer trusted from the token cache.
    generation: u64,
}

/// A key, the `alg` its JWK declares, and the generation of the key set it came from.
#[derive(Clone)]
pub struct VersionedKey {
    pub key: DecodingKey,
    pub alg: Option<String>,
    pub generation: u64,
}

impl std::fmt::Debug for VersionedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedKey")
            .field("alg", &self.alg)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Keys of one issuer.
pub struct JwksCache {
    cfg: Arc<IssuerConfig>,
    fetch: Arc<dyn Fetch>,
    state: RwLock<KeyState>,
    /// Serialises refreshes; holds the time of the last attempt.
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").field("issuer", &self.cfg.issuer).finish_non_exhaustive()
    }
}

impl JwksCache {
    pub fn new(cfg: Arc<IssuerConfig>, fetch: Arc<dyn Fetch>) -> Self {
        JwksCache { cfg, fetch, state: RwLock::new(KeyState::default()), refresh: tokio::sync::Mutex::new(None) }
    }

    fn lookup(&self, kid: &str, require_fresh: bool) -> Option<VersionedKey> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let fresh = state.fetched_at.is_some_and(|t| t.elapsed() < self.cfg.jwks_ttl);
        if require_fresh && !fresh {
            return None;
        }
        state.keys.get(kid).map(|(key, alg)| VersionedKey {
            key: key.clone(),
            alg: alg.clone(),
            generation: state.generation,
        })
    }

    /// The generation of the key set if it is within `jwks_ttl` (else `None`: the next
    /// validation must go through [`JwksCache::key`], which refreshes).
    pub fn fresh_generation(&self) -> Option<u64> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let fresh = state.fetched_at.is_some_and(|t| t.elapsed() < self.cfg.jwks_ttl);
        fresh.then_some(state.generation)
    }

    /// The key for `kid`, the `alg` its JWK declares and the key set's generation,
    /// refreshing as described above.
    pub async fn key(&self, kid: &str) -> Result<VersionedKey, AuthError> {
        if let Some(k) = self.lookup(kid, true) {
            return Ok(k);
        }
        let mut last = self.refresh.lock().await;
        if let Some(k) = self.lookup(kid, true) {
            return Ok(k);
        }
        let throttled = last.is_some_and(|t| t.elapsed() < self.cfg.jwks_min_refresh);
        if !throttled {
            *last = Some(Instant::now());
            if let Err(e) = self.refresh_keys().await {
                tracing::warn!(issuer = %self.cfg.name, error = %e, "jwks refresh failed");
                return self.lookup(kid, false).ok_or(AuthError::KeysUnavailable);
            }
        }
        self.lookup(kid, false).ok_or(AuthError::UnknownKid)
    }

    async fn refresh_keys(&self) -> Result<(), String> {
        let known_uri = self.state.read().unwrap_or_else(|p| p.into_inner()).jwks_uri.clone();
        let uri = match (&self.cfg.jwks_url, known_uri) {
            (Some(u), _) => u.clone(),
            (None, Some(u)) => u,
            (None, None) => {
                let url =
                    self.cfg.discovery_url.clone().unwrap_or_else(|| super::oidc::discovery_url(&self.cfg.issuer));
                super::oidc::jwks_uri(self.fetch.as_ref(), &url, &self.cfg.issuer).await?
            }
        };
        let body = self.fetch.get(&uri).await?;
        let keys = parse_jwks(&body)?;
        tracing::info!(issuer = %self.cfg.name, keys = keys.len(), "jwks refreshed");
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.keys = keys;
        state.fetched_at = Some(Instant::now());
        state.jwks_uri = Some(uri);
        state.generation += 1;
        Ok(())
    }
}

/// Parses a JWKS document, skipping keys it cannot use (unknown types, no `kid`, symmetric).
pub fn parse_jwks(body: &[u8]) -> Result<BTreeMap<String, (DecodingKey, Option<String>)>, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|e| format!("bad JWKS: {e}"))?;
    let mut out = BTreeMap::new();
    for value in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else { continue };
        if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_)) {
            continue;
        }
        let Some(kid) = jwk.common.key_id.clone() else { continue };
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| serde_json::to_value(a).ok())
            .and_then(|v| v.as_str().map(str::to_owned));
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            out.insert(kid, (key, alg));
        }
    }
    Ok(out)
}
