//! The proxy's TOML configuration (`gatelog proxy --config proxy.toml`).
//!
//! Every table uses `deny_unknown_fields`; [`ProxyConfig::load`] parses and then
//! [`ProxyConfig::validate`]s, and every validation message starts with the key it is about
//! (`roles.analyst.max_rows_to_read: expected a positive integer`). Durations use
//! humantime (`"30s"`), byte sizes use bytesize (`"10 GiB"`). Secrets come from the file,
//! an environment variable or a secret file and never appear in `Debug` output.
//!
//! This module holds the schema (the types serde reads); [`validate`] holds loading and
//! the checks serde cannot express.

mod validate;

use bytesize::ByteSize;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

/// The whole proxy configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Where the proxy listens. Default `127.0.0.1:8124`.
    pub listen: SocketAddr,
    /// Where the proxy keeps its decision spill file.
    pub data_dir: PathBuf,
    /// Largest SQL text (query parameter plus body) accepted from a client.
    pub max_query_size: ByteSize,
    pub clickhouse: ClickHouseConfig,
    /// Token issuers (OIDC providers, Cloudflare Access). Tokens from any of them are accepted.
    pub issuers: Vec<IssuerConfig>,
    /// Claims → roles. A principal gets every role whose mapping matches, in this order.
    pub role_mappings: Vec<RoleMapping>,
    /// Per-role policy, keyed by role name.
    pub roles: BTreeMap<String, RoleConfig>,
    pub decisions: DecisionsConfig,
    pub bi: BiConfig,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8124)),
            data_dir: PathBuf::from("gatelog-proxy-data"),
            max_query_size: ByteSize::kib(256),
            clickhouse: ClickHouseConfig::default(),
            issuers: Vec::new(),
            role_mappings: Vec::new(),
            roles: BTreeMap::new(),
            decisions: DecisionsConfig::default(),
            bi: BiConfig::default(),
        }
    }
}

/// The ClickHouse server behind the proxy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// The proxy's own ClickHouse user, used for roles without their own credentials.
    pub user: String,
    pub password: SecretRef,
    /// Client URL parameters passed through; every other one is dropped.
    pub pass_params: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            user: "default".into(),
            password: SecretRef::default(),
            pass_params: vec!["database".into(), "default_format".into()],
            connect_timeout: Duration::from_secs(5),
        }
    }
}

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
    /// Cookie carrying the token for browsers (Cloudflare Access: `CF_Authorization`).
    #[serde(default)]
    pub cookie: Option<String>,
    /// Allowed clock skew for `exp`/`nbf`/`iat`, at most 5 minutes.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
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

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_header() -> String {
    "authorization".into()
}
fn default_leeway() -> Duration {
    Duration::from_secs(30)
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
    #[serde(default)]
    pub email_domains: Vec<String>,
    #[serde(default)]
    pub subjects: Vec<String>,
}

/// What one role may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Table globs (`analytics.*`, `*.*`); unqualified names resolve against the database.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Table globs denied even when an allow matches (deny wins).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Statement kinds (`select`, `show`, `describe`, `insert`, `create`, `alter`, `drop`, …).
    #[serde(default = "default_statements")]
    pub statements: Vec<String>,
    /// Table functions this role may use (`numbers`, `zeros`); outside-reaching ones never.
    #[serde(default)]
    pub table_functions: Vec<String>,
    /// Database for unqualified tables when the request has no `database` parameter.
    #[serde(default)]
    pub default_database: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub max_execution_time: Option<Duration>,
    #[serde(default)]
    pub max_rows_to_read: Option<i64>,
    #[serde(default)]
    pub max_bytes_to_read: Option<ByteSize>,
    #[serde(default)]
    pub max_result_rows: Option<i64>,
    #[serde(default)]
    pub requests_per_minute: Option<i64>,
    #[serde(default)]
    pub max_concurrent_queries: Option<i64>,
    /// BI path prefixes (`/bi/metabase/`, `/bi/metabase/api/*`) this role may reach.
    #[serde(default)]
    pub http_allow: Vec<String>,
    #[serde(default)]
    pub http_deny: Vec<String>,
    /// ClickHouse credentials for this role (default: `[clickhouse]` user/password).
    #[serde(default)]
    pub clickhouse_user: Option<String>,
    #[serde(default)]
    pub clickhouse_password: Option<SecretRef>,
}

fn default_statements() -> Vec<String> {
    vec!["select".into()]
}

/// Where decisions go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionsConfig {
    /// gatelog's `POST /v1/decisions` URL; without it decisions are only logged.
    pub url: Option<String>,
    pub token: SecretRef,
    /// In-memory buffer (decisions); overflow goes to the spill file.
    pub buffer: usize,
    pub batch_size: usize,
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for DecisionsConfig {
    fn default() -> Self {
        DecisionsConfig {
            url: None,
            token: SecretRef::default(),
            buffer: 10_000,
            batch_size: 500,
            flush_interval: Duration::from_millis(500),
            retry_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Generic HTTP routes for BI tools.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BiConfig {
    /// Where browsers without a session are sent.
    pub login_url: Option<String>,
    pub routes: Vec<BiRoute>,
    /// Header names set for the upstream (incoming copies are stripped).
    pub principal_header: Option<String>,
    pub roles_header: Option<String>,
}

/// One reverse-proxy route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BiRoute {
    pub name: String,
    /// Path prefix on the proxy, e.g. `/bi/metabase/`.
    pub prefix: String,
    /// Upstream base URL, e.g. `http://127.0.0.1:3000`.
    pub upstream: String,
    /// Remove the prefix before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
}

/// A secret's source: exactly one of `value`, `env`, `file`. Empty means no secret.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRef")
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .field("env", &self.env)
            .field("file", &self.file)
            .finish()
    }
}

impl SecretRef {
    /// Checks the shape only (at most one source); reading happens at start-up.
    pub fn check_shape(&self, key: &str) -> Result<(), ConfigError> {
        let set = [self.value.is_some(), self.env.is_some(), self.file.is_some()];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err(invalid(key, "set only one of value, env, file"));
        }
        Ok(())
    }

    /// Reads the secret; `key` names it in errors.
    pub fn resolve(&self, key: &str) -> Result<Secret, ConfigError> {
        self.check_shape(key)?;
        if let Some(v) = &self.value {
            return Ok(Secret(v.clone()));
        }
        if let Some(name) = &self.env {
            return std::env::var(name)
                .map(Secret)
                .map_err(|_| invalid(format!("{key}.env"), format!("environment variable {name} is not set")));
        }
        if let Some(path) = &self.file {
            return std::fs::read_to_string(path)
                .map(|s| Secret(s.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|e| invalid(format!("{key}.file"), format!("cannot read {}: {e}", path.display())));
        }
        Ok(Secret(String::new()))
    }
}

/// A resolved secret. `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
