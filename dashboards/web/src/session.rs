//! Browser sessions: `/login` takes a pasted token, checks it with the API's own
//! [`Edge::identify`](gatelog_edge::Edge::identify), and keeps the principal (never the token)
//! in memory under a random 256-bit id sent as an `HttpOnly; SameSite=Strict; Path=/` cookie
//! (`Secure` behind TLS). Sessions end after an idle time or an absolute lifetime, or at
//! `/logout`. Each has its own CSRF token, which every POST form carries and is checked.
//! A request without a session may still present a credential the edge accepts (a bearer
//! header, Cloudflare Access's cookie); its CSRF token is derived from a server secret and
//! the principal's name. The session id and token are never logged.

use axum::http::{HeaderMap, header};
use gatelog_edge::Principal;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "gatelog_session";
/// The login form's CSRF cookie (before there is a session).
pub const LOGIN_COOKIE: &str = "gatelog_login";
pub const IDLE: Duration = Duration::from_secs(30 * 60);
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone)]
struct Session {
    principal: Principal,
    csrf: String,
    created: Instant,
    seen: Instant,
}

/// Who a page request is, and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub principal: Principal,
    pub csrf: String,
}

/// The sessions of one server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sessions {
    inner: Arc<Mutex<BTreeMap<String, Session>>>,
    secret: Arc<[u8; 32]>,
}

/// 32 random bytes, hex.
pub fn random_hex() -> String {
    let mut b = [0u8; 32];
    // The OS generator failing is not recoverable for a server that issues sessions.
    getrandom::fill(&mut b).expect("the OS random number generator works");
    hex::encode(b)
}

impl Default for Sessions {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the OS random number generator works");
        Sessions { inner: Arc::default(), secret: Arc::new(secret) }
    }
}

/// The value of cookie `name` in `headers`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Whether two secrets are equal, in constant time.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    /// A new session for `principal`: its id (for the cookie only).
    pub fn start(&self, principal: Principal) -> String {
        let id = random_hex();
        let now = Instant::now();
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, s| now.duration_since(s.seen) < IDLE && now.duration_since(s.created) < ABSOLUTE);
        map.insert(id.clone(), Session { principal, csrf: random_hex(), created: now, seen: now });
        id
    }

    /// The live session of `headers`' cookie, touched.
    pub fn find(&self, headers: &HeaderMap) -> Option<Viewer> {
        let id = cookie(headers, COOKIE)?;
        let now = Instant::now();
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let live =
            map.get(&id).is_some_and(|s| now.duration_since(s.seen) < IDLE && now.duration_since(s.created) < ABSOLUTE);
        if !live {
            map.remove(&id);
            return None;
        }
        let s = map.get_mut(&id)?;
        s.seen = now;
        Some(Viewer { principal: s.principal.clone(), csrf: s.csrf.clone() })
    }

    /// Ends the session of `headers`' cookie.
    pub fn end(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            self.inner.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        }
    }

    /// The CSRF token of a principal without a session (a bearer or Access credential).
    pub fn derived_csrf(&self, principal: &Principal) -> String {
        let mut h = Sha256::new();
        h.update(self.secret.as_slice());
        h.update(b"csrf\0");
        h.update(principal.name.as_bytes());
        hex::encode(h.finalize())
    }
}

/// The `Set-Cookie` value of a session id.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

/// Whether a `next` parameter is a same-site relative path (`/…`, never `//host` or `/\host`).
pub fn safe_next(next: &str) -> bool {
    next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") && !next.contains(['\r', '\n'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_edge::Role;
    use gatelog_edge::auth::Via;

    #[test]
    fn a_session_is_found_by_its_cookie_and_ended() {
        let s = Sessions::default();
        let id = s.start(Principal { name: "amy".into(), role: Role::Viewer, via: Via::StaticToken });
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("other=1; {COOKIE}={id}").parse().unwrap());
        let v = s.find(&h).unwrap();
        assert_eq!(v.principal.name, "amy");
        assert_eq!(v.csrf.len(), 64);
        s.end(&h);
        assert!(s.find(&h).is_none());
    }

    #[test]
    fn next_must_stay_on_the_site() {
        assert!(safe_next("/alerts?state=open"));
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "alerts"] {
            assert!(!safe_next(bad), "{bad}");
        }
    }
}
