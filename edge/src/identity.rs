//! Identity tokens on serve's routes: `[auth.identity]` ([`IdentityConfig`]) and the
//! [`IdentityVerifier`] built from it, which verifies with `gatelog-identity`, the verifier
//! `gatelog proxy` uses (OIDC discovery, JWKS cached and rotated by `kid`, an algorithm
//! allow-list, `iss`/`aud`/`exp`/`nbf` with bounded skew, Cloudflare Access's
//! `Cf-Access-Jwt-Assertion` header and `CF_Authorization` cookie), and maps claims to
//! gatelog's [`Role`]s.
//!
//! ```toml
//! [[auth.identity.cloudflare_access]]     # shorthand for a Cloudflare Access issuer
//! team_domain = "example.cloudflareaccess.com"
//! audiences = ["4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2"]
//!
//! [[auth.identity.issuers]]               # any OIDC provider: `proxy.toml`'s [[issuers]] keys
//! name = "okta"
//! issuer = "https://example.okta.com/oauth2/default"
//! audiences = ["api://gatelog"]
//!
//! [[auth.identity.roles]]                 # `proxy.toml`'s [[role_mappings]] keys
//! role = "responder"
//! groups = ["sec-oncall"]
//! ```
//!
//! Rules, decided here: an identity gets every role a mapping gives it and is admitted when
//! one of them has the route's access (the first such role is recorded); a verified token
//! that maps to no role (or to none with the access) is 403; a token that fails verification
//! is 401 with the reason (never the token). Identity tokens never ingest: mapping to
//! `ingest` is refused at start, the receiver takes static tokens only. A route that changes
//! something ([`Access::Respond`]) reads tokens from headers only, never from the cookie, so a
//! page on another site cannot make a browser acknowledge an alert; the reading routes take
//! the cookie too (a browser session behind Cloudflare Access). Static tokens are looked up
//! first; a request is verified as an identity only when no static token matched.

use crate::auth::{Access, Principal, Role, Via};
use crate::config::ConfigError;
use crate::error::ApiError;
use gatelog_identity::{AuthError, Authenticator, Fetch, IssuerConfig, RoleMapper, RoleMapping, Sources};
use gatelog_model::Clock;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// `[auth.identity]`. Empty (the default): no identity tokens, static tokens only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Token issuers, with the keys of `proxy.toml`'s `[[issuers]]`.
    pub issuers: Vec<IssuerConfig>,
    /// Cloudflare Access applications (a team domain and the application's AUD tags), each
    /// an issuer reading the `Cf-Access-Jwt-Assertion` header and the `CF_Authorization` cookie.
    pub cloudflare_access: Vec<CloudflareAccess>,
    /// Claims → gatelog roles (`viewer`, `responder`, `auditor`, `admin`; never `ingest`),
    /// with the keys of `proxy.toml`'s `[[role_mappings]]`.
    pub roles: Vec<RoleMapping>,
    /// How long a discovery or JWKS request may take.
    #[serde(with = "humantime_serde")]
    pub fetch_timeout: Duration,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            issuers: Vec::new(),
            cloudflare_access: Vec::new(),
            roles: Vec::new(),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// A Cloudflare Access application in front of gatelog.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflareAccess {
    /// `TEAM.cloudflareaccess.com`: the issuer is `https://` and it, the keys are at
    /// `https://TEAM.cloudflareaccess.com/cdn-cgi/access/certs`.
    pub team_domain: String,
    /// The application's Application Audience (AUD) tag(s).
    pub audiences: Vec<String>,
    /// The issuer's name in logs and in `roles[].issuer` (default `cloudflare_access`).
    #[serde(default)]
    pub name: Option<String>,
}

impl CloudflareAccess {
    /// The issuer this application stands for.
    pub fn issuer(&self) -> IssuerConfig {
        let base = format!("https://{}", self.team_domain.trim_end_matches('/'));
        let name = self.name.clone().unwrap_or_else(|| "cloudflare_access".into());
        let mut cfg = IssuerConfig::new(name, base.clone(), self.audiences.clone());
        cfg.jwks_url = Some(format!("{base}/cdn-cgi/access/certs"));
        cfg.header = "cf-access-jwt-assertion".into();
        cfg.cookie = Some("CF_Authorization".into());
        cfg
    }
}

impl IdentityConfig {
    /// Every issuer: `issuers`, then one per `cloudflare_access` entry.
    pub fn all_issuers(&self) -> Vec<IssuerConfig> {
        self.issuers.iter().cloned().chain(self.cloudflare_access.iter().map(CloudflareAccess::issuer)).collect()
    }

    /// Checks the section; messages name the key (`auth.identity.roles[0].role: …`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let from = |e: gatelog_identity::ConfigError| ConfigError { key: e.key, message: e.message };
        let mut names =
            gatelog_identity::config::validate_issuers(&self.issuers, "auth.identity.issuers").map_err(from)?;
        for (i, cf) in self.cloudflare_access.iter().enumerate() {
            let key = format!("auth.identity.cloudflare_access[{i}]");
            let host = cf.team_domain.trim_end_matches('/');
            if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
                return invalid(format!("{key}.team_domain"), "expected a host name like `TEAM.cloudflareaccess.com`");
            }
            if cf.audiences.is_empty() || cf.audiences.iter().any(|a| a.trim().is_empty()) {
                return invalid(format!("{key}.audiences"), "expected the application's AUD tag");
            }
            let name = cf.issuer().name;
            if name.is_empty() || !names.insert(name.clone()) {
                return invalid(
                    format!("{key}.name"),
                    format!("expected a unique, non-empty name (`{name}` is taken)"),
                );
            }
        }
        gatelog_identity::config::validate_mappings(
            &self.roles,
            "auth.identity.roles",
            &names,
            |role| match Role::parse(role) {
                Some(Role::Ingest) => Err("identity tokens never ingest: the ingest role is for static tokens \
                                           (receiver.tokens, auth.tokens)"
                    .into()),
                Some(_) => Ok(()),
                None => Err(format!("`{role}` is not viewer, responder, auditor or admin")),
            },
        )
        .map_err(from)?;
        if names.is_empty() && !self.roles.is_empty() {
            return invalid(
                "auth.identity.roles",
                "no issuer: add auth.identity.issuers or auth.identity.cloudflare_access",
            );
        }
        if !names.is_empty() && self.roles.is_empty() {
            return invalid(
                "auth.identity.roles",
                "expected at least one mapping: without one every identity is refused",
            );
        }
        if self.fetch_timeout < Duration::from_secs(1) || self.fetch_timeout > Duration::from_secs(60) {
            return invalid("auth.identity.fetch_timeout", "expected between 1s and 60s");
        }
        Ok(())
    }

    /// The verifier of a validated section, fetching keys over HTTPS and judging time by the
    /// system clock; `None` when no issuer is configured.
    pub fn verifier(&self) -> Result<Option<IdentityVerifier>, ConfigError> {
        if self.all_issuers().is_empty() {
            return Ok(None);
        }
        let fetch = gatelog_identity::ReqwestFetch::new(self.fetch_timeout)
            .map_err(|message| ConfigError { key: "auth.identity".into(), message })?;
        Ok(IdentityVerifier::new(self, Arc::new(fetch), Arc::new(gatelog_model::SystemClock)))
    }
}

fn invalid<T>(key: impl Into<String>, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { key: key.into(), message: message.into() })
}

/// Verifies identity tokens and maps them to gatelog roles.
#[derive(Debug)]
pub struct IdentityVerifier {
    auth: Authenticator,
    mapper: RoleMapper,
}

impl IdentityVerifier {
    /// A verifier for a validated section with its own fetch and clock (tests: an in-memory
    /// issuer, a fixed clock); `None` when no issuer is configured.
    pub fn new(config: &IdentityConfig, fetch: Arc<dyn Fetch>, clock: Arc<dyn Clock>) -> Option<Self> {
        let issuers = config.all_issuers();
        if issuers.is_empty() {
            return None;
        }
        Some(IdentityVerifier {
            auth: Authenticator::new(&issuers, fetch, clock),
            mapper: RoleMapper::new(&config.roles),
        })
    }

    /// The caller as an identity, if the request presents an identity token: `None` when it
    /// presents none (the static tokens' answer stands), else the principal or the refusal
    /// (401 for a token that fails verification, 403 for one whose roles lack `access`).
    pub async fn authorize(&self, headers: &http::HeaderMap, access: Access) -> Option<Result<Principal, ApiError>> {
        let sources = match access {
            Access::Respond | Access::Ingest => Sources::Headers,
            Access::Read | Access::Audit | Access::Operate => Sources::HeadersAndCookies,
        };
        let identity = match self.auth.authenticate_from(headers, sources).await {
            Ok(identity) => identity,
            Err(AuthError::Missing) => return None,
            Err(e) => return Some(Err(ApiError::unauthorized_with(format!("identity token refused: {e}")))),
        };
        let roles: Vec<Role> = self
            .mapper
            .roles_for(&identity)
            .iter()
            .filter_map(|r| Role::parse(r))
            .filter(|r| *r != Role::Ingest)
            .collect();
        let Some(role) = roles.iter().copied().find(|r| r.may(access)) else {
            let message = if roles.is_empty() {
                "the identity maps to no gatelog role (auth.identity.roles)".to_owned()
            } else {
                let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                format!("the identity's roles ({}) may not use this route", names.join(", "))
            };
            return Some(Err(ApiError::forbidden(message)));
        };
        let via = Via::Identity { issuer: identity.issuer, method: identity.auth_method };
        Some(Ok(Principal { name: identity.principal, role, via }))
    }
}
