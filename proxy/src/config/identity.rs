//! Token issuers and the claims → roles mappings.

use serde::Deserialize;
use std::time::Duration;

/// One token issuer.
#[derive(Debug, Clone, Deserialize)]
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
    /// Cookie carrying the token for browsers (Cloudflare Access: `CF_Authorization`). Only the
    /// BI routes read it; the SQL route takes credentials from headers only.
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
#[derive(Debug, Clone, Deserialize)]
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
