//! The half of gatelog that watches: streaming detection inside `gatelog serve` and the
//! alert lifecycle behind `gatelog alerts`. The detectors themselves are pure
//! (`gatelog-detect`); this crate feeds them from the spool, stores what they conclude in
//! ClickHouse (`gatelog-store`), and checkpoints their state with the spool position.
//!
//! ```text
//!  spool ──► runtime (Consumer "detect") ──► Engine ──► findings ──► AlertGrouper ──► alerts
//!                 │                                                                    │
//!                 └── checkpoint file (engine + groups + position) ◄── after ── ClickHouse:
//!                                                 findings, alerts, alert_events, detector_runs
//!  gatelog alerts list | show | ack | resolve ──► service ──► alert_events (appended)
//! ```
//!
//! Module map:
//! - [`runtime`]: [`DetectRuntime`], the spool consumer (commit order, replay, retries).
//! - [`warmup`]: baselines learnt from ClickHouse history when there is no checkpoint.
//! - [`checkpoint`]: the checkpoint file under `<data_dir>/detect/`.
//! - [`service`]: list, show, acknowledge and resolve alerts (the CLI's logic; the HTTP
//!   routes will call the same functions).
//! - [`backtest`]: stored history through the detectors (`gatelog detect`), nothing written.
//! - [`query_log`]: [`query_log::QueryLogJob`], runaway SELECTs judged on the fronted
//!   ClickHouse's `system.query_log` (`[detect.query_log]`), inside `gatelog serve`.
//! - [`rules`]: rules as code (`rules/*.toml`, `gatelog rules list | test | run`): loading,
//!   running a rule over stored decisions, running the fixtures in a fresh database.
//! - [`sigma`]: Sigma rule files of `detect.sigma_dir`, loaded at start.
//! - [`schedule`]: [`schedule::Scheduler`], the rules on their schedule inside `gatelog serve`
//!   (windows aligned to the schedule, resumed from `detector_runs`, failures retried).
//! - [`stats`]: [`WatchStats`], the counters `/metrics` reads.
//! - [`canary`]: [`canary::CanaryRunner`], the synthetic decision that proves detection
//!   operates, judged and recorded in `canary_runs`.
//!
//! **Where notification attaches**: an alert is opened when its `open` event is appended to
//! `alert_events` (actor `gatelog`, written by [`runtime`] after the alert's row in `alerts`
//! and before the checkpoint). A mailer reads `open` events it has not delivered
//! (`alert_events` with `action = 'open'`, joined to `alerts FINAL` by `alert_id`), which
//! survives any crash of either side; both ids are stable across replays.

pub mod backtest;
pub mod canary;
pub mod checkpoint;
pub mod query_log;
pub mod rules;
pub mod runtime;
pub mod schedule;
pub mod service;
pub mod sigma;
pub mod stats;
pub mod warmup;

pub use runtime::{DETECT_CONSUMER, DetectRuntime, WatchError};
pub use stats::WatchStats;
