//! Who is calling: [`Credentials`] turn a request's headers into a [`Principal`] (a name, a
//! [`Role`], and how it was established), and [`Role::may`] says which [`Access`] a role has.
//!
//! | access | routes | roles |
//! | --- | --- | --- |
//! | [`Access::Ingest`] | `POST /v1/logpush/{dataset}`, `/v1/tail`, `/v1/decisions` | `ingest` |
//! | [`Access::Read`] | `GET /v1/search`, `GET /v1/alerts`, `GET /v1/alerts/{id}` (dashboards next) | `viewer`, `responder`, `auditor`, `admin` |
//! | [`Access::Respond`] | `POST /v1/alerts/{id}/ack`, `…/resolve` | `responder`, `admin` |
//! | [`Access::Audit`] | reports and bundles (next) | `auditor`, `admin` |
//! | [`Access::Operate`] | `/healthz`, `/readyz`, `/metrics` from where `auth.ops_without_token` does not open them | `viewer`, `responder`, `auditor`, `admin` |
//!
//! The ingest role reads nothing and no reading role ingests: the Logpush token sits in a
//! Cloudflare job's destination URL, and evidence must not be writable by the people who
//! read it. No credential: 401 (`WWW-Authenticate: Bearer`); a credential whose role lacks
//! the access: 403.
//!
//! Static tokens are kept only as SHA-256 digests. A presented token (the bearer token of
//! every `Authorization` header, and every value of the configured token header) is hashed
//! and compared with every known digest using `subtle`'s constant-time equality, without
//! stopping at the first match and selecting the match without a branch, so neither the
//! position of a difference nor which token matched shows in the timing; hashing first also
//! hides the tokens' lengths. A token is never logged, counted by value or echoed.
//!
//! [`Principal::via`] says how a principal was established: a static token, or an identity
//! token verified by the proxy's verifier (OIDC/JWT, Cloudflare Access; [`crate::identity`],
//! tried by [`crate::Edge::authorize`] when no static token matched) as [`Via::Identity`],
//! whose name (email or subject) is the actor recorded.

use crate::error::ApiError;
use axum::http::{HeaderMap, HeaderName, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The receiver's routes only (Logpush jobs, Tail Workers, the proxy's decisions).
    Ingest,
    /// Search, alerts, dashboards: read-only.
    Viewer,
    /// A viewer who also acknowledges and resolves alerts.
    Responder,
    /// A viewer who also reads reports and evidence bundles (read-only).
    Auditor,
    /// Every reading and responding route (not ingest).
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Ingest, Role::Viewer, Role::Responder, Role::Auditor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Whether the role has `access` (the table in the module docs).
    pub fn may(self, access: Access) -> bool {
        use Role::{Admin, Auditor, Ingest, Responder, Viewer};
        match access {
            Access::Ingest => self == Ingest,
            Access::Read | Access::Operate => matches!(self, Viewer | Responder | Auditor | Admin),
            Access::Respond => matches!(self, Responder | Admin),
            Access::Audit => matches!(self, Auditor | Admin),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Ingest,
    Read,
    Respond,
    Audit,
    Operate,
}

impl Access {
    pub const ALL: [Access; 5] = [Access::Ingest, Access::Read, Access::Respond, Access::Audit, Access::Operate];
}

/// How a principal was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A static API token (`[auth]` tokens, or `receiver.tokens` for the ingest role).
    StaticToken,
    /// No credential, admitted to the ingest routes by `receiver.allow_unauthenticated`.
    Unauthenticated,
    /// An identity token (OIDC, Cloudflare Access) verified by `gatelog-identity`: the
    /// issuer's configured name and how it came (`oidc`, `cf_access_jwt`).
    Identity { issuer: String, method: String },
}

/// Who a request acts as: the credential's name (kept as the actor of what it does), its
/// role, and how it was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub via: Via,
}

/// One known static token.
#[derive(Clone)]
struct Known {
    digest: [u8; 32],
    name: String,
    role: Role,
}

/// The credentials a server accepts. Its `Debug` shows names and roles, never digests.
#[derive(Clone, Default)]
pub struct Credentials {
    known: Vec<Known>,
    header: Option<HeaderName>,
    anonymous_ingest: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.known.iter().map(|k| format!("{} ({})", k.name, k.role)).collect();
        f.debug_struct("Credentials")
            .field("tokens", &names)
            .field("header", &self.header)
            .field("anonymous_ingest", &self.anonymous_ingest)
            .finish()
    }
}

/// The SHA-256 of a token, as kept.
pub fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Credentials {
    /// No credentials; tokens also travel in `header` (besides `Authorization: Bearer`), if
    /// it is a valid header name.
    pub fn new(header: Option<&str>) -> Self {
        Credentials { header: header.and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()), ..Self::default() }
    }

    /// Accepts `token` (kept as its digest) as `name` with `role`.
    pub fn add_token(&mut self, name: impl Into<String>, role: Role, token: &str) {
        self.add_digest(name, role, digest(token.as_bytes()));
    }

    /// Accepts the token whose SHA-256 is `digest` as `name` with `role`.
    pub fn add_digest(&mut self, name: impl Into<String>, role: Role, digest: [u8; 32]) {
        self.known.push(Known { digest, name: name.into(), role });
    }

    /// Admits requests without a credential to the ingest routes (`receiver.allow_unauthenticated`).
    pub fn allow_anonymous_ingest(&mut self, allow: bool) {
        self.anonymous_ingest = allow;
    }

    /// Whether every ingest request is refused (no ingest credential, no anonymous ingest).
    pub fn rejects_all_ingest(&self) -> bool {
        !self.anonymous_ingest && !self.known.iter().any(|k| k.role == Role::Ingest)
    }

    /// The names of two entries that are the same token, if any: which principal such a
    /// token is would depend on the order of the configuration, so a server refuses to start.
    pub fn duplicate(&self) -> Option<(&str, &str)> {
        let mut seen: std::collections::HashMap<[u8; 32], &str> = std::collections::HashMap::new();
        for known in &self.known {
            if let Some(first) = seen.insert(known.digest, &known.name) {
                return Some((first, &known.name));
            }
        }
        None
    }

    /// How many tokens have `role`.
    pub fn count(&self, role: Role) -> usize {
        self.known.iter().filter(|k| k.role == role).count()
    }

    /// The principal of the token the headers carry, if it is known (constant time over
    /// every known token).
    pub fn identify(&self, headers: &HeaderMap) -> Option<Principal> {
        let mut found = Choice::from(0);
        let mut index = 0u32;
        for presented in self.presented(headers) {
            let d = digest(presented);
            for (i, known) in self.known.iter().enumerate() {
                let hit = d.ct_eq(&known.digest);
                found |= hit;
                index.conditional_assign(&u32::try_from(i).unwrap_or(u32::MAX), hit);
            }
        }
        if !bool::from(found) {
            return None;
        }
        let known = self.known.get(usize::try_from(index).ok()?)?;
        Some(Principal { name: known.name.clone(), role: known.role, via: Via::StaticToken })
    }

    /// The caller, if it may have `access`: 401 without a known credential, 403 when its
    /// role lacks the access.
    pub fn authorize(&self, headers: &HeaderMap, access: Access) -> Result<Principal, ApiError> {
        let principal = match self.identify(headers) {
            Some(p) => p,
            None if access == Access::Ingest && self.anonymous_ingest => {
                return Ok(Principal { name: "anonymous".into(), role: Role::Ingest, via: Via::Unauthenticated });
            }
            None => return Err(ApiError::unauthorized()),
        };
        if principal.role.may(access) {
            Ok(principal)
        } else {
            Err(ApiError::forbidden(format!("the {} role may not use this route", principal.role)))
        }
    }

    /// Candidate tokens: the bearer token of every `Authorization` header, and every value of
    /// the configured header (raw, or with a `Bearer ` prefix).
    fn presented<'a>(&'a self, headers: &'a HeaderMap) -> impl Iterator<Item = &'a [u8]> + 'a {
        let bearer = headers.get_all(header::AUTHORIZATION).into_iter().filter_map(|v| strip_bearer(v.as_bytes()));
        let custom = self
            .header
            .iter()
            .flat_map(move |name| headers.get_all(name).into_iter())
            .map(|v| strip_bearer(v.as_bytes()).unwrap_or(v.as_bytes()));
        bearer.chain(custom).filter(|t| !t.is_empty())
    }
}

fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, StatusCode};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn bearer(token: &str) -> HeaderMap {
        headers(&[("authorization", &format!("Bearer {token}"))])
    }

    #[test]
    fn bearer_and_custom_header_with_rotation() {
        let mut check = Credentials::new(Some("X-Gatelog-Token"));
        check.add_token("old", Role::Ingest, "old-token-0123456789");
        check.add_token("new", Role::Ingest, "new-token-0123456789");
        let name = |h: &HeaderMap| check.identify(h).map(|p| p.name);
        assert_eq!(name(&bearer("old-token-0123456789")).as_deref(), Some("old"));
        assert_eq!(name(&headers(&[("authorization", "bearer new-token-0123456789")])).as_deref(), Some("new"));
        assert_eq!(name(&headers(&[("x-gatelog-token", "new-token-0123456789")])).as_deref(), Some("new"));
        assert_eq!(name(&headers(&[("x-gatelog-token", "Bearer new-token-0123456789")])).as_deref(), Some("new"));
        assert_eq!(name(&bearer("new-token-012345678")), None);
        assert_eq!(name(&headers(&[("authorization", "new-token-0123456789")])), None, "scheme required");
        assert_eq!(name(&headers(&[("x-other", "new-token-0123456789")])), None);
        assert_eq!(name(&HeaderMap::new()), None);
    }

    #[test]
    fn the_matched_token_names_the_principal_whatever_its_position() {
        let mut check = Credentials::new(None);
        for role in Role::ALL {
            for i in 0..3 {
                check.add_token(format!("{role}-{i}"), role, &format!("{role}-token-{i}-0123456789"));
            }
        }
        for role in Role::ALL {
            for i in 0..3 {
                let p = check.identify(&bearer(&format!("{role}-token-{i}-0123456789"))).unwrap();
                assert_eq!((p.name, p.role, p.via), (format!("{role}-{i}"), role, Via::StaticToken));
            }
        }
    }

    #[test]
    fn roles_get_exactly_their_access() {
        let table = [
            (Role::Ingest, [true, false, false, false, false]),
            (Role::Viewer, [false, true, false, false, true]),
            (Role::Responder, [false, true, true, false, true]),
            (Role::Auditor, [false, true, false, true, true]),
            (Role::Admin, [false, true, true, true, true]),
        ];
        for (role, allowed) in table {
            for (access, allowed) in Access::ALL.into_iter().zip(allowed) {
                assert_eq!(role.may(access), allowed, "{role} {access:?}");
            }
        }
    }

    #[test]
    fn unknown_is_401_and_a_role_without_the_access_403() {
        let mut check = Credentials::new(None);
        check.add_token("logpush", Role::Ingest, "ingest-token-0123456789");
        check.add_token("alice", Role::Viewer, "viewer-token-0123456789");
        let status = |h: &HeaderMap, a| check.authorize(h, a).map(|p| p.name).map_err(|e| e.status);
        assert_eq!(status(&bearer("viewer-token-0123456789"), Access::Read), Ok("alice".into()));
        assert_eq!(status(&bearer("viewer-token-0123456789"), Access::Ingest), Err(StatusCode::FORBIDDEN));
        assert_eq!(status(&bearer("ingest-token-0123456789"), Access::Read), Err(StatusCode::FORBIDDEN));
        assert_eq!(status(&bearer("ingest-token-0123456789"), Access::Ingest), Ok("logpush".into()));
        assert_eq!(status(&bearer("wrong-token-0123456789"), Access::Ingest), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(status(&HeaderMap::new(), Access::Read), Err(StatusCode::UNAUTHORIZED));
        let forbidden = check.authorize(&bearer("ingest-token-0123456789"), Access::Read).unwrap_err();
        assert!(!forbidden.message.contains("ingest-token"), "{}", forbidden.message);
    }

    #[test]
    fn anonymous_ingest_only_when_opted_in_and_only_for_ingest() {
        let closed = Credentials::new(None);
        assert!(closed.rejects_all_ingest());
        assert_eq!(closed.authorize(&bearer("anything"), Access::Ingest).unwrap_err().status, StatusCode::UNAUTHORIZED);
        let mut open = Credentials::new(None);
        open.allow_anonymous_ingest(true);
        assert!(!open.rejects_all_ingest());
        assert_eq!(open.authorize(&HeaderMap::new(), Access::Ingest).unwrap().via, Via::Unauthenticated);
        assert_eq!(open.authorize(&HeaderMap::new(), Access::Read).unwrap_err().status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn the_same_token_under_two_names_is_found() {
        let mut check = Credentials::new(None);
        check.add_token("receiver.tokens[0]", Role::Ingest, "shared-token-0123456789");
        check.add_token("bob", Role::Viewer, "other-token-0123456789");
        assert_eq!(check.duplicate(), None);
        check.add_token("alice", Role::Admin, "shared-token-0123456789");
        assert_eq!(check.duplicate(), Some(("receiver.tokens[0]", "alice")));
    }

    #[test]
    fn debug_shows_no_digest() {
        let mut check = Credentials::new(None);
        check.add_token("alice", Role::Viewer, "viewer-token-0123456789");
        let shown = format!("{check:?}");
        let hex: String = digest(b"viewer-token-0123456789").iter().map(|b| format!("{b:02x}")).collect();
        assert!(shown.contains("alice (viewer)") && !shown.contains(&hex[..16]), "{shown}");
    }
}
