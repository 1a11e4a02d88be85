//! The HTTP receiver of `gatelog serve`: Logpush, Tail and proxy decisions into the spool.
//!
//! [`router`] serves:
//!
//! | route | body | mapped as |
//! | --- | --- | --- |
//! | `POST /v1/logpush/{dataset}` | NDJSON, gzip (sniffed by magic bytes) or plain | the URL's Logpush dataset (404 with the list for anything else), source `logpush`, origin `logpush/<dataset>` |
//! | `POST /v1/tail` | a JSON array of Tail `TraceItem`s as `JSON.stringify` writes it (one delivery = one line; several deliveries one per line also work; pretty-printed multi-line JSON does not) | dataset `tail`, source `tail`, origin `tail` |
//! | `POST /v1/decisions` | NDJSON of gatelog proxy `AccessDecision`s (see [`crate::map::decisions`]) | dataset `proxy`, source `proxy`, origin `decisions` |
//! | `GET /healthz` | | 200 `ok` while the process runs |
//! | `GET /readyz` | | 200 `ready`, or 503 `not ready: <reason>; <reason>…` (spool failing, sinks lagging, and what the binary's [`ReadinessCheck`](gatelog_edge::ReadinessCheck)s say: a sink stopped, waiting, rebuilding) |
//! | `GET /metrics` | | Prometheus text ([`MetricsRegistry`](gatelog_edge::MetricsRegistry)) |
//!
//! The last three are the edge's operator routes ([`gatelog_edge::ops`]): without a token
//! from where `auth.ops_without_token` says (loopback by default), else with a reading
//! role's token. No fallback route is installed, so the binary can merge this router with others.
//!
//! # One ingest request
//! 1. **Auth** before the body is read: `Authorization: Bearer <token>` or the configured
//!    `token_header`, against every known token in constant time (`gatelog_edge::auth`).
//!    401 `unauthorized` with `WWW-Authenticate: Bearer`; 403 `forbidden` for a token of a
//!    role other than `ingest` (a reading role never writes evidence). No ingest tokens
//!    configured: everything is refused (and a warning is logged at start) unless
//!    `allow_unauthenticated`.
//! 2. **Encoding**: a `Content-Encoding` other than `gzip`, `x-gzip` or `identity` (`br`,
//!    `deflate`, `zstd`, gzip twice, anything unknown): 415 `unsupported_encoding` naming
//!    it. Bodies are sniffed by the gzip magic bytes whatever the header says.
//! 3. **Backpressure**: while the slowest registered spool consumer lags more than
//!    `max_lag_records`, 503 `overloaded` with `Retry-After`, before the body is read.
//! 4. **Body**: more than `max_body_bytes` as sent (by `Content-Length` or while reading):
//!    413 `payload_too_large`. Empty: 400 `bad_request`. Its buffer is charged to the
//!    receiver's memory budget before it is allocated (`budget`): past
//!    `max_buffered_bytes` held by all requests, 503 `overloaded` with `Retry-After`. A body
//!    that stops or slows below the server's rate: 408 `request_timeout` (see [`gatelog_edge::serve`]).
//! 5. **Map** on the mapping threads (inline for small plain bodies): inflated past
//!    `max_decompressed_bytes` (a gzip bomb): 413; truncated or corrupt gzip: 400
//!    (`gzip stream is truncated at byte N`); a batch that would hold more than
//!    `max_batch_bytes`: 413; nothing is spooled in any of these cases. Lines whose event
//!    time is outside `max_event_age` / `max_event_lead` around `received_at` are dead
//!    letters ([`crate::TimeWindow`]), and so are the lines of days beyond the batch's
//!    `max_days_per_batch` busiest.
//! 6. **Decide**: the validation probe alone (`{"content":"tests"}` gzipped, or `test`):
//!    200 with `probes`, nothing spooled. Only blank lines: 400, nothing spooled. With
//!    `reject_whole_batch` and any bad line: 400 naming the first bad line, nothing spooled.
//! 7. **Spool** the batch ([`gatelog_model::Batch`], id derived from the inflated body's
//!    SHA-256, so a retried body has the same id) and answer only after the append is
//!    durable: 200 `{"batch_id","spool_seq","lines","decisions","raw_records","dead_letters","probes","blank_lines"}`
//!    (`lines` = `raw_records` + `dead_letters` + `probes` + `blank_lines`; Logpush sends no
//!    blank lines, each is counted and nothing of it kept).
//!    Bad lines (malformed JSON, invalid UTF-8, lines over `max_line_bytes`) are dead
//!    letters in the batch and the rest is kept. When **no** line was usable (no raw
//!    record, at least one dead letter) the batch is still spooled (dead letters are
//!    evidence) and the answer is 400 naming the first bad line, with `batch_id`,
//!    `spool_seq` and `dead_letters` beside the error so the sender sees the problem.
//!    A single 10 MB line is therefore a dead letter holding its first `max_line_bytes`
//!    (400 when it is the only line) as long as the body is within `max_body_bytes`;
//!    a larger body is 413.
//! 8. **Spool errors**: `Full`: 429 `overloaded` + `Retry-After`; I/O error, disk full,
//!    closed: 503 `unavailable` + `Retry-After` (the details are logged, never sent); a
//!    batch over the spool's record limit: 413. Nothing that was answered 2xx is lost and
//!    nothing else was acknowledged, so the sender's retry is always safe.
//!
//! Submodules: [`config`] ([`ReceiverConfig`]), [`metrics`] (the receiver's counters),
//! `process` (body → batch, bounded), `workers` (the pinned mapping threads), `handlers`;
//! and [`client`], the other side: a sender that posts to these routes as Logpush and a Tail
//! Worker do (`gatelog demo`). What every route shares (error answers, tokens, the memory
//! budget, body reading, metrics registry, `/healthz`, `/readyz`, `/metrics`, the connection
//! loop) is the HTTP edge's, `gatelog_edge`: the receiver is one user of it.

pub mod client;
pub mod config;
mod handlers;
pub mod metrics;
pub(crate) mod process;
mod workers;

pub use crate::map::decisions::{DecisionLineContext, map_decision_line};
pub use config::{ConfigError, ReceiverConfig};
pub use metrics::{ReceiverMetrics, Route};

use axum::Router;
use axum::routing::post;
use gatelog_edge::budget::MemoryBudget;
use gatelog_edge::{Edge, ReadinessCheck};
use gatelog_model::{Clock, UnixMillis};
use gatelog_spool::Spool;
use std::sync::{Arc, Mutex, PoisonError};
use workers::MappingPool;

/// Everything the handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReceiverState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ReceiverConfig,
    spool: Spool,
    clock: Arc<dyn Clock>,
    /// Credentials, `/metrics` registry and `/readyz` checks, shared with the other routes.
    edge: Edge,
    metrics: Arc<ReceiverMetrics>,
    /// The threads bodies are inflated and mapped on (see [`workers`]).
    workers: MappingPool,
    /// Bodies being inflated and mapped at once: one per mapping thread. More would only
    /// time-slice the same cores while each holds its inflated lines in memory; waiting
    /// requests hold just their (compressed) body, and are served in arrival order.
    mapping: tokio::sync::Semaphore,
    /// What every ingest request holds at once (`max_buffered_bytes`; see
    /// [`gatelog_edge::budget`]).
    budget: MemoryBudget,
    /// The last spool failure (when, why), cleared by the next successful append; `/readyz`
    /// reports it for `retry_after` so a receiver taken out of rotation comes back by itself.
    last_failure: Arc<Mutex<Option<(UnixMillis, &'static str)>>>,
}

/// The receiver's own `/readyz` reasons: the sinks lag past `max_lag_records`, or the spool
/// failed within the last `retry_after`.
#[derive(Debug)]
struct ReceiverReadiness {
    spool: Spool,
    clock: Arc<dyn Clock>,
    max_lag_records: u64,
    retry_after_ms: i64,
    last_failure: Arc<Mutex<Option<(UnixMillis, &'static str)>>>,
}

impl ReadinessCheck for ReceiverReadiness {
    fn not_ready(&self) -> Vec<String> {
        let mut reasons: Vec<String> = lag_reason(&self.spool, self.max_lag_records).into_iter().collect();
        let failure = *self.last_failure.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, why)) = failure
            && self.clock.now().0.saturating_sub(at.0) < self.retry_after_ms
        {
            reasons.push(why.to_owned());
        }
        reasons
    }
}

/// The backpressure reason when the slowest registered consumer lags too far.
fn lag_reason(spool: &Spool, max_lag_records: u64) -> Option<String> {
    let stats = spool.stats();
    let slowest = stats.consumers.iter().max_by_key(|c| c.lag)?;
    (slowest.lag > max_lag_records).then(|| {
        format!("sinks are behind: {} is {} records behind (limit {max_lag_records})", slowest.name, slowest.lag)
    })
}

impl ReceiverState {
    /// Validates `config`, starts the mapping threads and builds the state on an edge of its
    /// own that accepts `config.tokens` (see [`ReceiverState::on_edge`]).
    pub fn new(config: ReceiverConfig, spool: Spool, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        let edge = Edge::new(config.credentials(), gatelog_edge::config::OpsAccess::default());
        Self::on_edge(config, spool, clock, edge)
    }

    /// Validates `config`, starts the mapping threads and builds the state on `edge`, whose
    /// credentials authorise the ingest routes and whose registry and readiness checks get
    /// the receiver's. Logs a warning when no token is configured (every ingest request will
    /// be refused) or when unauthenticated access is allowed.
    pub fn on_edge(
        config: ReceiverConfig,
        spool: Spool,
        clock: Arc<dyn Clock>,
        edge: Edge,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let workers = MappingPool::new().map_err(StartError::Threads)?;
        if edge.credentials().rejects_all_ingest() {
            tracing::warn!(
                "receiver: no ingest tokens configured (receiver.tokens, or auth tokens of role ingest); every ingest request will be refused with 401"
            );
        } else if config.allow_unauthenticated {
            tracing::warn!(
                "receiver: accepting ingest requests without a token (receiver.allow_unauthenticated); local demos only"
            );
        }
        let budget = MemoryBudget::new(usize::try_from(config.max_buffered_bytes.as_u64()).unwrap_or(usize::MAX));
        let metrics = Arc::new(ReceiverMetrics::new(spool.clone()));
        edge.metrics().register_collector(metrics.clone());
        edge.metrics().register_collector(Arc::new(budget.clone()));
        let last_failure = Arc::new(Mutex::new(None));
        edge.add_readiness_check(Arc::new(ReceiverReadiness {
            spool: spool.clone(),
            clock: clock.clone(),
            max_lag_records: config.max_lag_records,
            retry_after_ms: i64::try_from(config.retry_after.as_millis()).unwrap_or(i64::MAX),
            last_failure: last_failure.clone(),
        }));
        Ok(ReceiverState {
            inner: Arc::new(Inner {
                budget,
                config,
                spool,
                clock,
                edge,
                metrics,
                mapping: tokio::sync::Semaphore::new(workers.threads()),
                workers,
                last_failure,
            }),
        })
    }

    pub fn config(&self) -> &ReceiverConfig {
        &self.inner.config
    }

    pub fn spool(&self) -> &Spool {
        &self.inner.spool
    }

    /// The edge the receiver's routes are on (credentials, `/metrics`, `/readyz`).
    pub fn edge(&self) -> &Edge {
        &self.inner.edge
    }

    /// The registry behind `/metrics`; the binary adds its sinks' collectors here.
    pub fn metrics(&self) -> &Arc<gatelog_edge::MetricsRegistry> {
        self.inner.edge.metrics()
    }

    /// Adds a check that `/readyz` asks besides the receiver's own.
    pub fn add_readiness_check(&self, check: Arc<dyn ReadinessCheck>) {
        self.inner.edge.add_readiness_check(check);
    }

    /// Why the server should not get traffic now (every reason, `; `-separated), if it
    /// should not: the receiver's own (sinks lagging, a recent spool failure), then every
    /// added [`ReadinessCheck`]'s.
    pub fn not_ready_reason(&self) -> Option<String> {
        self.inner.edge.not_ready_reason()
    }

    /// Whether the request carries a credential of the ingest role (401 without a known
    /// one, 403 for another role's).
    async fn authorize(&self, headers: &axum::http::HeaderMap) -> Result<(), gatelog_edge::ApiError> {
        self.inner.edge.authorize(headers, gatelog_edge::Access::Ingest).await.map(|_| ())
    }

    /// The backpressure reason when the slowest registered consumer lags too far.
    fn lag_reason(&self) -> Option<String> {
        lag_reason(&self.inner.spool, self.inner.config.max_lag_records)
    }

    fn spool_failed(&self, why: &'static str) {
        *self.inner.last_failure.lock().unwrap_or_else(PoisonError::into_inner) = Some((self.inner.clock.now(), why));
    }

    fn spool_succeeded(&self) {
        let mut failure = self.inner.last_failure.lock().unwrap_or_else(PoisonError::into_inner);
        if failure.is_some() {
            *failure = None;
        }
    }
}

/// Why a receiver could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start the receiver's mapping threads")]
    Threads(#[source] rayon::ThreadPoolBuildError),
}

/// The receiver's routes (see the module docs), with `state` attached, and the edge's
/// operator routes ([`gatelog_edge::ops`]: `/healthz`, `/readyz`, `/metrics`).
pub fn router(state: ReceiverState) -> Router {
    let ops = gatelog_edge::ops::router(state.edge().clone());
    Router::new()
        .route("/v1/logpush/{dataset}", post(handlers::logpush))
        .route("/v1/tail", post(handlers::tail))
        .route("/v1/decisions", post(handlers::decisions))
        .with_state(state)
        .merge(ops)
}
