//! gatelog's detectors: access decisions in, [`Finding`](gatelog_model::Finding)s out.
//!
//! This crate is pure: no I/O, no clock (event time comes from the decisions, wall time
//! from [`Engine::tick`]'s argument), no threads. The runtime that feeds it (a spool
//! consumer in `gatelog serve`, `gatelog-watch`; a backtest over stored history) owns reading, storing
//! findings, checkpointing and alerting; it embeds [`DetectConfig`] as `[detect]` in
//! `gatelog.toml`.
//!
//! Module map:
//! - [`engine`]: [`Engine`], which runs the configured detectors over decisions in order:
//!   duplicate skipping (re-spooled batches; Tail and Logpush copies of a Worker decision),
//!   per-tenant shards, warm-up from history, [`Engine::checkpoint`] / [`Engine::restore`].
//! - [`alerts`]: [`AlertGrouper`], findings grouped into alerts by dedup key within the
//!   suppression window, deterministic and checkpointed like the engine.
//! - [`detector`]: the [`Detector`] trait (decision, arrival, tick in; findings out; state
//!   saved and loaded as bytes) and [`Rule`].
//! - [`rules`]: the built-in detectors (table of rule ids there) and [`rules::RULE_IDS`].
//! - [`query_log`]: runaway SELECTs judged on the fronted ClickHouse's `system.query_log`
//!   figures, joined on the `query_id` the proxy stamps (pure; the scheduled job is to come).
//! - [`sigma`]: Sigma rules (`detect.sigma_dir`) over the decision fields ([`SigmaRules`]),
//!   evaluated in the stream by the `sigma` detector with `rsigma-eval`.
//! - [`sql_rule`]: rules as code, SQL detections in `rules/*.toml` ([`SqlRule`]): parsing,
//!   validation, rendering, result rows as findings, fixtures' expectations. Run by
//!   `gatelog-watch` (`gatelog rules list | test | run`).
//! - [`baseline`]: [`Baselines`], each principal's countries, ASNs, IPs, last place and
//!   hour-of-week profile, learned from allowed requests and shared by the detectors.
//! - [`config`]: [`DetectConfig`], every threshold and cap, `Default` + `validate()`.
//! - [`arrival`]: [`Arrival`], a dataset's batch arriving (source-silence input), from a
//!   spool [`Batch`](gatelog_model::Batch) or from `ingest_batches`.
//! - [`checkpoint`]: the checkpoint format, [`CheckpointError`], [`RestoreReport`],
//!   [`EngineStats`].
//! - `keyed` (bounded deterministic maps and a stable hash), `recent` (recent event ids),
//!   `stats` (median, MAD, robust z), `geo` (country centroids, haversine): internals.
//!
//! # Guarantees
//! - **Determinism**: the findings (ids, dedup keys, order) are a function of the inputs in
//!   order; no map order, random seed or clock reading leaks in. A checkpoint restored and
//!   fed the rest of the stream gives exactly the findings the uninterrupted engine gives.
//! - **Bounded memory**: every map is capped (`max_principals`, `max_keys`, `max_sources`,
//!   `dedup_capacity`, …) with a documented eviction (least recently seen tenth at once,
//!   ties by key); windows are swept as event time moves on. [`Engine::tracked`] reports
//!   the sizes.
//! - **Learning**: baselines learn only from allowed requests by named principals, after
//!   the detectors judged them, so nothing judges an event against itself and a denied
//!   attacker teaches nothing.

pub mod alerts;
pub mod arrival;
pub mod baseline;
pub mod checkpoint;
pub mod config;
pub mod detector;
pub mod engine;
mod geo;
mod keyed;
pub mod query_log;
mod recent;
pub mod rules;
pub mod sigma;
pub mod sql_rule;
mod stats;

pub use alerts::{AlertGrouper, Grouped};
pub use arrival::Arrival;
pub use baseline::{Assessment, Baselines, Profile};
pub use checkpoint::{CheckpointError, EngineStats, RestoreReport};
pub use config::{
    AlertsConfig, CanaryConfig, ConfigError, DetectConfig, ProfileConfig, QueryLogConfig, RuntimeConfig, SqlRulesConfig,
};
pub use detector::{Context, Detector, Rule};
pub use engine::{Engine, RestoreError};
pub use sigma::{SigmaError, SigmaRules};
pub use sql_rule::{RuleError, SqlRule};
