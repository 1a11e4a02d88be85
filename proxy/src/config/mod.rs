//! The proxy's TOML configuration (`gatelog proxy --config proxy.toml`).
//!
//! Every table uses `deny_unknown_fields`; [`ProxyConfig::load`] parses and then
//! [`ProxyConfig::validate`]s, and every validation message starts with the key it is about
//! (`roles.analyst.max_rows_to_read: expected a positive integer`). Durations use
//! humantime (`"30s"`), byte sizes use bytesize (`"10 GiB"`). Secrets come from the file,
//! an environment variable or a secret file and never appear in `Debug` output.
//!
//! This module holds the top-level schema (the types serde reads); `gatelog_identity::config`
//! the issuers and role mappings (shared with `gatelog serve`), [`bi`] the BI routes, [`secret`] the secrets; [`validate`] holds loading
//! and the checks serde cannot express.

mod bi;
mod secret;
mod validate;

pub use bi::{BiConfig, BiRoute};
pub use gatelog_identity::config::{EmailVerified, IssuerConfig, RoleMapping};
pub use secret::{Secret, SecretRef};

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

impl From<gatelog_identity::ConfigError> for ConfigError {
    fn from(e: gatelog_identity::ConfigError) -> Self {
        ConfigError::Invalid { key: e.key, message: e.message }
    }
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
    pub ingress: IngressConfig,
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
            ingress: IngressConfig::default(),
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
    /// A client that has not taken any of a streamed answer for this long is treated as
    /// gone: its query is killed and its slot freed.
    #[serde(with = "humantime_serde")]
    pub stalled_client_timeout: Duration,
    /// How long the proxy waits for `KILL QUERY … SYNC` (and then for `system.processes`)
    /// to see a query gone after its client left, before it frees the query's slot anyway.
    #[serde(with = "humantime_serde")]
    pub kill_timeout: Duration,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            user: "default".into(),
            password: SecretRef::default(),
            pass_params: vec!["database".into(), "default_format".into()],
            connect_timeout: Duration::from_secs(5),
            stalled_client_timeout: Duration::from_secs(60),
            kill_timeout: Duration::from_secs(10),
        }
    }
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
    /// The spill file's limit; decisions beyond it are dropped, counted and logged.
    pub spill_max_bytes: ByteSize,
    /// The SQL text kept in a decision (longer texts are cut, with a marker; the
    /// fingerprint is of the whole text). Every other field has a fixed bound.
    pub max_query_bytes: ByteSize,
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
            spill_max_bytes: ByteSize::gib(1),
            max_query_bytes: ByteSize::kib(64),
        }
    }
}

/// Every request, before anything else: the source address and its rate limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngressConfig {
    /// Requests per minute from one source address (an IPv6 /64 counts as one), before
    /// authentication: unauthenticated, denied and unrouted requests count too. Answered
    /// `429` with `Retry-After`. `0` turns the limit off.
    pub per_ip_requests_per_minute: u32,
    /// A header naming the client's address (`cf-connecting-ip`, `x-real-ip`), believed
    /// only on connections from `trusted_proxies`.
    pub client_ip_header: Option<String>,
    /// Addresses or CIDR ranges of the load balancers in front of the proxy.
    pub trusted_proxies: Vec<String>,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig { per_ip_requests_per_minute: 6000, client_ip_header: None, trusted_proxies: Vec::new() }
    }
}
