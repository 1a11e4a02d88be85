//! The proxy's TOML configuration (`gatelog proxy --config proxy.toml`).
//!
//! Every table uses `deny_unknown_fields`; [`ProxyConfig::load`] parses and then
//! [`ProxyConfig::validate`]s, and every validation message starts with the key it is about
//! (`roles.analyst.max_rows_to_read: expected a positive integer`). Durations use
//! humantime (`"30s"`), byte sizes use bytesize (`"10 GiB"`). Secrets come from the file,
//! an environment variable or a secret file and never appear in `Debug` output.

use crate::guard::{DANGEROUS_TABLE_FUNCTIONS, StatementKind};
use bytesize::ByteSize;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
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

const MAX_LEEWAY: Duration = Duration::from_secs(300);

impl ProxyConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<ProxyConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<ProxyConfig, ConfigError> {
        let config: ProxyConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: PathBuf::from("<config>"), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks everything serde cannot; the first problem is returned, naming its key.
    /// Secrets are only checked for shape here; they are read when the proxy starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.clickhouse.url.starts_with("http://") && !self.clickhouse.url.starts_with("https://") {
            return Err(invalid("clickhouse.url", "expected an http:// or https:// URL"));
        }
        self.clickhouse.password.check_shape("clickhouse.password")?;
        for p in &self.clickhouse.pass_params {
            if crate::forward::is_forbidden_param(p) {
                return Err(invalid("clickhouse.pass_params", format!("`{p}` may not be passed through")));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, iss) in self.issuers.iter().enumerate() {
            let key = format!("issuers[{i}]");
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
                crate::identity::jwt::parse_algorithm(alg)
                    .map_err(|m| invalid(format!("{key}.algorithms"), m))?;
            }
            if iss.leeway > MAX_LEEWAY {
                return Err(invalid(format!("{key}.leeway"), "at most 5m"));
            }
            if iss.principal_claims.is_empty() {
                return Err(invalid(format!("{key}.principal_claims"), "expected at least one claim"));
            }
        }
        for (i, m) in self.role_mappings.iter().enumerate() {
            let key = format!("role_mappings[{i}]");
            if !self.roles.contains_key(&m.role) {
                return Err(invalid(format!("{key}.role"), format!("no role `{}` in [roles]", m.role)));
            }
            if let Some(iss) = &m.issuer
                && !names.contains(iss) {
                    return Err(invalid(format!("{key}.issuer"), format!("no issuer named `{iss}`")));
                }
            if m.groups.is_empty() && m.email_domains.is_empty() && m.subjects.is_empty() {
                return Err(invalid(key, "expected groups, email_domains or subjects"));
            }
        }
        for (name, role) in &self.roles {
            validate_role(name, role)?;
        }
        if self.decisions.buffer == 0 {
            return Err(invalid("decisions.buffer", "expected a positive integer"));
        }
        if self.decisions.batch_size == 0 {
            return Err(invalid("decisions.batch_size", "expected a positive integer"));
        }
        self.decisions.token.check_shape("decisions.token")?;
        for (i, r) in self.bi.routes.iter().enumerate() {
            if !r.prefix.starts_with('/') || r.prefix == "/" {
                return Err(invalid(format!("bi.routes[{i}].prefix"), "expected a path like /bi/metabase/"));
            }
            if !r.upstream.starts_with("http://") && !r.upstream.starts_with("https://") {
                return Err(invalid(format!("bi.routes[{i}].upstream"), "expected an http:// URL"));
            }
        }
        Ok(())
    }
}

fn validate_role(name: &str, role: &RoleConfig) -> Result<(), ConfigError> {
    let key = |k: &str| format!("roles.{name}.{k}");
    for (k, v) in [
        ("max_rows_to_read", role.max_rows_to_read),
        ("max_result_rows", role.max_result_rows),
        ("requests_per_minute", role.requests_per_minute),
        ("max_concurrent_queries", role.max_concurrent_queries),
    ] {
        if matches!(v, Some(n) if n <= 0) {
            return Err(invalid(key(k), "expected a positive integer"));
        }
    }
    if matches!(role.max_bytes_to_read, Some(b) if b.as_u64() == 0) {
        return Err(invalid(key("max_bytes_to_read"), "expected a positive size"));
    }
    if matches!(role.max_execution_time, Some(d) if d.as_secs() == 0) {
        return Err(invalid(key("max_execution_time"), "expected at least 1s"));
    }
    if role.statements.is_empty() {
        return Err(invalid(key("statements"), "expected at least one statement kind"));
    }
    for s in &role.statements {
        match StatementKind::parse(s) {
            Some(k) if k.configurable() => {}
            Some(_) => return Err(invalid(key("statements"), format!("`{s}` can never be allowed"))),
            None => return Err(invalid(key("statements"), format!("unknown statement kind `{s}`"))),
        }
    }
    for f in &role.table_functions {
        if DANGEROUS_TABLE_FUNCTIONS.contains(&f.to_ascii_lowercase().as_str()) {
            return Err(invalid(key("table_functions"), format!("`{f}` reaches outside ClickHouse and can never be allowed")));
        }
    }
    for (k, globs) in [("allow", &role.allow), ("deny", &role.deny)] {
        for g in globs {
            if g.is_empty() || g.split('.').count() > 2 {
                return Err(invalid(key(k), format!("`{g}` is not a table glob like `db.*` or `db.table`")));
            }
        }
    }
    for (k, prefixes) in [("http_allow", &role.http_allow), ("http_deny", &role.http_deny)] {
        if let Some(p) = prefixes.iter().find(|p| !p.starts_with('/')) {
            return Err(invalid(key(k), format!("`{p}` is not a path prefix starting with /")));
        }
    }
    if let Some(pw) = &role.clickhouse_password {
        pw.check_shape(&key("clickhouse_password"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_key() {
        let err = ProxyConfig::parse("[roles.analyst]\nallow = [\"analytics.*\"]\nmax_rows_to_read = 0\n").unwrap_err();
        assert_eq!(err.to_string(), "roles.analyst.max_rows_to_read: expected a positive integer");
        let err = ProxyConfig::parse("[roles.analyst]\nallow = [\"a.*\"]\nstatements = [\"set\"]\n").unwrap_err();
        assert!(err.to_string().starts_with("roles.analyst.statements:"), "{err}");
        let err = ProxyConfig::parse("[roles.a]\ntable_functions = [\"url\"]\n").unwrap_err();
        assert!(err.to_string().starts_with("roles.a.table_functions:"), "{err}");
        let err = ProxyConfig::parse("[roles.a]\nmax_rowz = 1\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `max_rowz`"), "{err}");
        let err = ProxyConfig::parse("[[issuers]]\nname=\"x\"\nissuer=\"https://i\"\naudiences=[\"a\"]\nalgorithms=[\"HS256\"]\n").unwrap_err();
        assert!(err.to_string().starts_with("issuers[0].algorithms:"), "{err}");
    }

    #[test]
    fn defaults_and_units() {
        let c = ProxyConfig::parse(
            "[roles.a]\nallow=[\"analytics.*\"]\nmax_execution_time=\"30s\"\nmax_bytes_to_read=\"1 GiB\"\n",
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8124");
        let r = &c.roles["a"];
        assert_eq!(r.max_execution_time, Some(Duration::from_secs(30)));
        assert_eq!(r.max_bytes_to_read, Some(ByteSize::gib(1)));
        assert_eq!(r.statements, vec!["select".to_string()]);
    }

    #[test]
    fn secrets_are_redacted() {
        let s = SecretRef { value: Some("hunter2".into()), ..Default::default() };
        assert!(!format!("{s:?}").contains("hunter2"));
        let r = s.resolve("k").unwrap();
        assert!(!format!("{r:?}").contains("hunter2"));
        assert_eq!(r.expose(), "hunter2");
        let both = SecretRef { value: Some("a".into()), env: Some("B".into()), file: None };
        assert!(both.resolve("clickhouse.password").unwrap_err().to_string().starts_with("clickhouse.password:"));
    }
}
