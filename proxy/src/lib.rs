//! gatelog's enforcing edge proxy (`gatelog proxy`): sits between users, dashboards, bots,
//! AI agents and ClickHouse (and BI tools), lets through only what policy allows, with limits
//! ClickHouse enforces, and records one [`gatelog_model::AccessDecision`] per request.
//!
//! Module map:
//! - [`config`]: the TOML configuration, validation naming keys, redacted secrets.
//! - [`identity`]: OIDC discovery, JWKS cache, strict JWT validation, identities.
//! - [`policy`]: roles, table globs, statement kinds, limits; deny wins, default deny.
//! - [`guard`]: the SQL guard (sqlparser, ClickHouse dialect).
//! - [`check`]: the policy dry-run behind `gatelog proxy check`.
//! - [`clickhouse`]: the ClickHouse HTTP route (identity → guard → policy → forward).
//! - [`forward`]: ClickHouse forwarding (settings the client cannot override, streaming).
//! - [`bi`]: generic reverse-proxy routes for BI tools.
//! - [`cache`]: the bounded LRU behind the verified-token and SQL verdict caches.
//! - [`emit`]: decision emission: bounded buffer, spill file, replay.
//! - [`limits`]: per-principal rate and concurrency limits.
//! - [`server`]: the axum router, start-up, reload, graceful shutdown.

pub mod bi;
pub mod cache;
pub mod check;
pub mod clickhouse;
pub mod config;
pub mod emit;
pub mod forward;
pub mod guard;
pub mod identity;
pub mod limits;
pub mod policy;
pub mod server;

pub use check::{CheckReport, check};
pub use config::{ConfigError, ProxyConfig};
pub use server::{Proxy, ProxyDeps, ProxyError, serve};

/// Installs rustls' ring provider for HTTPS clients (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
