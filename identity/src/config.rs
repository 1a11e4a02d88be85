//! Token issuers and the claims → roles mappings, as `proxy.toml` (`[[issuers]]`,
//! `[[role_mappings]]`) and `gatelog.toml` (`[[auth.identity.issuers]]`,
//! `[[auth.identity.roles]]`) write them, and the checks serde cannot express
//! ([`validate_issuers`], [`validate_mappings`]), each message naming its key. Which role
//! names exist is the caller's to check (the proxy's `[roles]`, serve's fixed roles).

use serde::Deserialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// The longest clock skew an issuer may allow.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// The longest `max_token_lifetime` an issuer may allow.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// An issuer or mapping setting that cannot work, naming its key
/// (`issuers[0].algorithms: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.into(), message: message.into() }
}

/// One token issuer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// A short name used in logs and role mappings (`okta`, `cloudflare`).
    pub name: String,
    /// The exact `iss` value tokens carry.
    pub issuer: String,
    /// Default: `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// Skips discovery (Cloudflare Access: `https://TEAM.cloudflareaccess.com/cdn-cgi/access/certs`).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Accepted `aud` values; at least one.
    pub audiences: Vec<String>,
    /// Accepted `alg` values (`RS256`, `ES256`, …); `none` and HMAC are never accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Request header carrying the token. `authorization` expects `Bearer <jwt>`.
    #[serde(default = "default_header")]
    pub header: String,
    /// Cookie carrying the token for browsers (Cloudflare Access: `CF_Authorization`). The
    /// caller chooses whether a route reads it ([`crate::Sources`]): the proxy's BI routes and
    /// serve's read routes do; the proxy's SQL route takes credentials from headers only.
    #[serde(default)]
    pub cookie: Option<String>,
    /// Allowed clock skew for `exp`/`nbf`/`iat`, at most 5 minutes.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// The longest a token may live: `exp` − `iat` (or `nbf`, or now when the token has
    /// neither), so a token minted to last for years is refused.
    #[serde(default = "default_max_token_lifetime", with = "humantime_serde")]
    pub max_token_lifetime: Duration,
    /// When the `email` claim counts (role mapping by `email_domains`, the principal's name).
    #[serde(default)]
    pub email_verified: EmailVerified,
    /// Claims tried in order for the principal's name.
    #[serde(default = "default_principal_claims")]
    pub principal_claims: Vec<String>,
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// How long a fetched JWKS is trusted before it is fetched again.
    #[serde(default = "default_jwks_ttl", with = "humantime_serde")]
    pub jwks_ttl: Duration,
    /// Minimum time between refreshes triggered by an unknown `kid`.
    #[serde(default = "default_jwks_min_refresh", with = "humantime_serde")]
    pub jwks_min_refresh: Duration,
}

impl IssuerConfig {
    /// An issuer with every optional key at its default (what serde fills in).
    pub fn new(name: impl Into<String>, issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        IssuerConfig {
            name: name.into(),
            issuer: issuer.into(),
            discovery_url: None,
            jwks_url: None,
            audiences,
            algorithms: default_algorithms(),
            header: default_header(),
            cookie: None,
            leeway: default_leeway(),
            max_token_lifetime: default_max_token_lifetime(),
            email_verified: EmailVerified::default(),
            principal_claims: default_principal_claims(),
            groups_claim: default_groups_claim(),
            jwks_ttl: default_jwks_ttl(),
            jwks_min_refresh: default_jwks_min_refresh(),
        }
    }
}

/// How far an issuer's `email` claim is trusted, by its `email_verified` claim.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailVerified {
    /// The email counts only when `email_verified` is `true`.
    Required,
    /// The email counts unless `email_verified` is `false` (issuers that do not send the
    /// claim, such as Cloudflare Access, whose login verified the address).
    #[default]
    IfPresent,
    /// The email counts even when `email_verified` is `false`: only for an issuer whose
    /// addresses are trusted regardless, and only when configured so explicitly.
    AllowUnverified,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_header() -> String {
    "authorization".into()
}
fn default_leeway() -> Duration {
    Duration::from_secs(30)
}
/// 24 hours: Cloudflare Access's default session, longer than most OIDC access tokens.
fn default_max_token_lifetime() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_principal_claims() -> Vec<String> {
    vec!["email".into(), "sub".into()]
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_jwks_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_jwks_min_refresh() -> Duration {
    Duration::from_secs(30)
}

/// Claims → one role. Matches when any listed group, e-mail domain or subject matches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    pub role: String,
    /// Restrict to one issuer (by name).
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Domains of a trusted `email` (see [`IssuerConfig::email_verified`]).
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// Exact `sub` claims (never compared with the email).
    #[serde(default)]
    pub subjects: Vec<String>,
}

fn header_name(key: &str, name: &str) -> Result<(), ConfigError> {
    http::HeaderName::try_from(name).map(|_| ()).map_err(|_| invalid(key, format!("`{name}` is not a header name")))
}

/// Checks the issuers listed under `key` (`issuers`, `auth.identity.issuers`): unique
/// names, an issuer, audiences, public-key algorithms, bounded leeway and lifetime, a header
/// that can carry a token, a cookie name. Returns the issuers' names.
pub fn validate_issuers(issuers: &[IssuerConfig], key: &str) -> Result<BTreeSet<String>, ConfigError> {
    let mut names = BTreeSet::new();
    for (i, iss) in issuers.iter().enumerate() {
        let key = format!("{key}[{i}]");
        if iss.name.is_empty() || !names.insert(iss.name.clone()) {
            return Err(invalid(format!("{key}.name"), "expected a unique, non-empty name"));
        }
        if iss.issuer.is_empty() {
            return Err(invalid(format!("{key}.issuer"), "expected the issuer URL"));
        }
        if iss.audiences.is_empty() {
            return Err(invalid(format!("{key}.audiences"), "expected at least one audience"));
        }
        if iss.algorithms.is_empty() {
            return Err(invalid(format!("{key}.algorithms"), "expected at least one algorithm"));
        }
        for alg in &iss.algorithms {
            crate::jwt::parse_algorithm(alg).map_err(|m| invalid(format!("{key}.algorithms"), m))?;
        }
        if iss.leeway > MAX_LEEWAY {
            return Err(invalid(format!("{key}.leeway"), "at most 5m"));
        }
        if iss.principal_claims.is_empty() {
            return Err(invalid(format!("{key}.principal_claims"), "expected at least one claim"));
        }
        if iss.max_token_lifetime < Duration::from_secs(60) || iss.max_token_lifetime > MAX_TOKEN_LIFETIME {
            return Err(invalid(format!("{key}.max_token_lifetime"), "expected between 1m and 366d"));
        }
        header_name(&format!("{key}.header"), &iss.header)?;
        if ["cookie", "host"].iter().any(|h| iss.header.eq_ignore_ascii_case(h)) {
            // A cookie is what a cross-site request carries: it goes in `cookie`, which
            // only the routes that accept cookies read.
            return Err(invalid(
                format!("{key}.header"),
                format!("`{}` cannot carry the token; use `cookie` for cookies", iss.header),
            ));
        }
        if let Some(c) = &iss.cookie
            && (c.is_empty() || !c.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)))
        {
            return Err(invalid(format!("{key}.cookie"), format!("`{c}` is not a cookie name")));
        }
    }
    Ok(names)
}

/// Checks the mappings listed under `key` against the issuers' `names`: each names a known
/// issuer if any and matches on something. `role_exists` says whether a role name exists.
pub fn validate_mappings(
    mappings: &[RoleMapping],
    key: &str,
    names: &BTreeSet<String>,
    role_exists: impl Fn(&str) -> Result<(), String>,
) -> Result<(), ConfigError> {
    for (i, m) in mappings.iter().enumerate() {
        let key = format!("{key}[{i}]");
        role_exists(&m.role).map_err(|message| invalid(format!("{key}.role"), message))?;
        if let Some(iss) = &m.issuer
            && !names.contains(iss)
        {
            return Err(invalid(format!("{key}.issuer"), format!("no issuer named `{iss}`")));
        }
        if m.groups.is_empty() && m.email_domains.is_empty() && m.subjects.is_empty() {
            return Err(invalid(key, "expected groups, email_domains or subjects"));
        }
        if !m.subjects.is_empty() && m.issuer.is_none() && names.len() > 1 {
            // A `sub` is unique only within its issuer.
            tracing::warn!(mapping = %key, "role mapping by subjects without `issuer`: any configured issuer's tokens with that sub match");
        }
    }
    Ok(())
}
