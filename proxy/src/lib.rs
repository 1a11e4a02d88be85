//! gatelog's enforcing edge proxy (`gatelog proxy`): sits between users, dashboards, bots,
//! AI agents and ClickHouse (and BI tools), lets through only what policy allows, with limits
//! ClickHouse enforces, and records one [`gatelog_model::AccessDecision`] per request.
//!
//! Module map (each layer uses only the ones below it):
//! - [`server`]: the router (one dispatching handler), start-up, reload, graceful shutdown.
//! - [`clickhouse`], [`bi`]: the routes: the SQL route (cross-site check → identity →
//!   guard → policy → limits → a supervised forward that kills the query of a client that
//!   left) and the BI reverse-proxy routes (normalised paths, identity headers).
//! - [`request`]: what every routed request shares: its decision (emitted whatever happens
//!   to the connection), the per-source rate limit, identity → roles, the JSON error body.
//! - [`state`]: the shared state and the injectable external resources.
//! - [`identity`]: OIDC discovery, JWKS cache, strict JWT validation, claims → roles: the
//!   `gatelog-identity` crate, which `gatelog serve`'s read routes verify tokens with too.
//! - [`policy`]: roles, table globs, statement kinds, limits; deny wins, default deny.
//! - [`guard`]: the SQL guard; [`check`]: the policy dry-run behind `gatelog proxy check`;
//!   [`grants`]: ClickHouse's own restrictions mirroring the policy (`gatelog proxy grants`).
//! - [`forward`]: ClickHouse forwarding (settings the client cannot override, GET kept
//!   read-only, `KILL QUERY`, streaming).
//! - [`emit`]: decision emission: bounded fields, buffer, bounded checksummed spill, replay.
//! - [`limits`]: per-source, per-principal rate and concurrency limits.
//! - [`http_path`], [`net`]: path normal form; upstream URLs, CIDRs, client addresses.
//! - [`config`]: the TOML configuration, validation naming keys, redacted secrets.
//! - [`metrics`]: counters for `GET /metrics`; the caches' bounded LRU is `gatelog_identity::cache`.

pub mod bi;
pub mod check;
pub mod clickhouse;
pub mod config;
pub mod emit;
pub mod forward;
pub mod grants;
pub mod guard;
pub mod http_path;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod policy;
pub mod request;
pub mod server;
pub mod state;

pub use check::{CheckReport, check};
pub use config::{ConfigError, ProxyConfig};
pub use server::{Proxy, ProxyDeps, ProxyError, serve};

/// The identity verifier, shared with `gatelog serve` (one verifier for both binaries).
pub use gatelog_identity as identity;
/// Installs rustls' ring provider for HTTPS clients (idempotent).
pub use gatelog_identity::install_crypto_provider;
