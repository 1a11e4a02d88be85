//! gatelog's HTTP edge: what every HTTP route of `gatelog serve` shares, whoever owns the
//! route (the receiver in `gatelog-ingest`, the read routes in `gatelog-read`). Nothing here
//! knows about Cloudflare's logs, the spool or the index; dependencies point here, never
//! back. Its one gatelog dependency is `gatelog-identity` (with `gatelog-model` under it).
//!
//! Module map:
//! - [`error`]: [`ApiError`] and the closed set of [`ErrorCode`]s, the one error answer
//!   (`{"error":{"code","message"}}`, `Retry-After`, an internal detail logged, never sent).
//! - [`auth`]: [`Credentials`](auth::Credentials) → [`Principal`](auth::Principal) (name,
//!   [`Role`](auth::Role), how established), bearer tokens compared as SHA-256 digests in
//!   constant time; which role has which [`Access`](auth::Access).
//! - [`config`]: [`AuthConfig`](config::AuthConfig), the `[auth]` section (tokens as
//!   SHA-256, a tokens file, who reads the operator routes without a token, identity).
//! - [`identity`]: `[auth.identity]` and the [`IdentityVerifier`](identity::IdentityVerifier):
//!   OIDC / Cloudflare Access tokens verified by `gatelog-identity` (the proxy's verifier),
//!   claims → roles.
//! - [`headers`]: the security headers every response gets.
//! - [`Edge`]: what one server's routes share (credentials, metrics registry, readiness).
//! - [`ops`]: `/healthz`, `/readyz` ([`ReadinessCheck`]) and `/metrics`.
//! - [`metrics`]: [`MetricsRegistry`] (error counters + [`MetricsCollector`]s), [`TextWriter`].
//! - [`budget`]: [`MemoryBudget`](budget::MemoryBudget), the memory requests hold, counted
//!   as it is held, with a total cap (503) and a per-request batch cap (413).
//! - [`body`]: [`read_body`](body::read_body), a request body read under a cap and a budget.
//! - [`serve`]: [`HttpServer`](serve::HttpServer), the HTTP/1.1 connection loop with header,
//!   idle and body timeouts, a connection cap and a bounded shutdown.

pub mod auth;
pub mod body;
pub mod budget;
pub mod config;
pub mod error;
pub mod headers;
pub mod identity;
pub mod metrics;
pub mod ops;
pub mod serve;
mod shared;

pub use auth::{Access, Credentials, Principal, Role};
pub use error::{ApiError, ErrorCode};
pub use metrics::{MetricsCollector, MetricsRegistry, TextWriter};
pub use ops::ReadinessCheck;
pub use shared::Edge;
