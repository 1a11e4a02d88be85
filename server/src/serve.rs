//! `gatelog serve`: the HTTP receiver writes batches to the spool; two sinks read it, one
//! into ClickHouse and one into the tantivy index, each committing its own position with its
//! data; detection (`gatelog_watch`) reads it too, checkpointing its state with its position;
//! `/v1/search` (`gatelog_read`, on the same edge as the receiver) queries the index.
//!
//! [`start`] builds the whole machine on a bound listener and returns a [`Running`] handle:
//! `gatelog serve` then waits for a signal, `gatelog demo` first posts the sample data to it.
//! Both stop it with [`Running::shutdown`]. The machine without the listener is [`Sinks`]
//! (the spool, the store link and the consumers): `gatelog ingest` runs it alone, appending
//! a file's batches to the same spool.
//!
//! The ClickHouse sink runs on a thread of its own and the index sink on its own too, both
//! at a lower CPU priority than the receiver ([`crate::priority`]). Each is a spool consumer
//! with a `Status` (one `Statuses` for all), which `/readyz` ([`ready`]) and `/metrics`
//! ([`metrics`]) read. Detection is the third consumer (`gatelog_watch`), on a thread of its
//! own too ([`detect_metrics`] for its families). A fourth consumer is one more status and
//! one more background thread in [`Sinks::start`].
//!
//! The alert mailer ([`notify`], when `notify.enabled`) is a task beside them: it reads the
//! alerts detection opened from ClickHouse and mails them (SMTP, or `.eml` files). The
//! scheduled rules ([`scheduled`], rules as code on their `schedule`) run on a thread of
//! their own, reading ClickHouse once the ClickHouse sink has stored a window's arrivals.
//! [`checkpoint`] records the hash chain's head, signed, every
//! `report.chain_checkpoint_interval`.
//!
//! Start-up needs the spool and the listener, not ClickHouse: [`store_link`] connects (and
//! migrates) in the background, and the ClickHouse sink starts once it has. The index sink
//! ([`index_sink`]) rebuilds the index from ClickHouse when it is lost or older than the spool.
//!
//! Shutdown (SIGINT/SIGTERM) is bounded by `server.drain_timeout` plus a small margin: stop
//! accepting, close idle connections at once and give busy ones what is left of the drain
//! timeout to finish their request (`gatelog_edge::serve`), give the sinks what is
//! left to store what the spool holds (less if every sink that is behind cannot move), stop
//! them ([`sinks::SINK_STOP_GRACE`] at most: a write still running is abandoned), close the spool,
//! stop managed ClickHouse (SIGTERM, SIGKILL after [`crate::clickhouse::MANAGED_STOP_TIMEOUT`]).
//! Whatever is left stays in the spool for the next start.

mod background;
pub mod canary;
mod checkpoint;
pub mod config_versions;
mod detect_metrics;
mod index_sink;
pub mod metrics;
pub mod notify;
mod query_log;
mod ready;
mod scheduled;
mod sinks;
mod store_link;

use crate::cli::{ReceiverArgs, ServeArgs, StoreArgs};
use crate::config::Config;
use anyhow::Context;
use gatelog_edge::Edge;
use gatelog_edge::serve::HttpServer;
use gatelog_index::Searcher;
use gatelog_ingest::http::ReceiverState;
use gatelog_model::{Clock, SystemClock};
use gatelog_spool::{Spool, SpoolOptions};
use gatelog_store::Store;
pub use sinks::Sinks;
use sinks::stopped;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
pub use store_link::StoreLink;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = resolve_config(&args.store, &args.receiver)?;
    let listener = gatelog_edge::serve::bind(config.server.listen)
        .with_context(|| format!("cannot listen on {} (server.listen / --listen)", config.server.listen))?;
    let running = start(&config, listener).await?;
    let addr = running.addr();
    crate::print_stdout(&format!(
        "gatelog serve listening on http://{addr}\n  POST /v1/logpush/{{dataset}}  POST /v1/tail  POST /v1/decisions\n  GET /v1/search?q=  GET /v1/alerts  GET /metrics  GET /readyz\n"
    ))?;
    crate::clickhouse::wait_for_shutdown_signal().await;
    running.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

/// The file, then environment and flags (store and receiver ones), validated.
pub fn resolve_config(store: &StoreArgs, receiver: &ReceiverArgs) -> anyhow::Result<Config> {
    let mut overrides = store.overrides();
    overrides.listen = receiver.listen;
    overrides.ingest_tokens = receiver.ingest_tokens.clone();
    overrides.tokens_file = receiver.tokens_file.clone();
    let mut config = Config::load(store.config.as_deref())?.apply(overrides);
    config.validate()?;
    config.load_sigma()?;
    Ok(config)
}

/// A running receiver in front of the spool, sinks and ClickHouse; stop it with
/// [`Running::shutdown`].
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    sinks: Sinks,
    notifier: Option<notify::Notifier>,
    scheduled: Option<scheduled::Scheduled>,
    query_log: Option<query_log::QueryLog>,
    checkpoints: Option<checkpoint::Checkpoints>,
    config_versions: Option<config_versions::ConfigVersions>,
    canaries: Option<canary::Canaries>,
    http_stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    drain_timeout: Duration,
}

/// The spool's options from `[spool]`. One batch may take at most half the spool, so a small
/// spool still opens (a larger batch is answered 413 by the receiver instead).
pub fn spool_options(config: &Config) -> SpoolOptions {
    let max_bytes = config.spool.max_bytes.as_u64();
    SpoolOptions {
        max_record_bytes: SpoolOptions::default().max_record_bytes.min(max_bytes / 2),
        max_bytes,
        segment_bytes: config.spool.segment_bytes.as_u64(),
        fsync: config.spool.fsync,
        // Preallocation makes fsyncs cheaper; without fsyncs it would only cost writes.
        preallocate: config.spool.fsync,
    }
}

/// Opens the spool under `<data_dir>/spool` (one process at a time: a second gets
/// `SpoolError::Locked`).
pub fn open_spool(config: &Config) -> Result<Spool, gatelog_spool::SpoolError> {
    Spool::open(&config.data_dir.join("spool"), spool_options(config))
}

/// Opens the spool, starts (or begins connecting to) ClickHouse and the sinks
/// ([`Sinks::start`]), and serves on `listener`.
pub async fn start(config: &Config, listener: TcpListener) -> anyhow::Result<Running> {
    // A config that cannot work is refused before anything is opened or created.
    crate::clickhouse::check_sync_data_dir(config)?;
    let spool_dir = config.data_dir.join("spool");
    let spool = open_spool(config).with_context(|| format!("cannot open the spool in {}", spool_dir.display()))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // The canaries' ingest token: made now, held only here and by the edge (as its digest).
    let canary_token = canary::enabled(config).then(gatelog_watch::canary::internal_token);
    let edge = edge(config, canary_token.as_deref())?;
    let receiver = ReceiverState::on_edge(config.receiver.clone(), spool.clone(), clock, edge.clone())?;
    let addr = listener.local_addr().context("cannot read the listening address")?;
    let sinks = Sinks::start(config, spool).await?;
    let notifier = match config.notify.enabled {
        true => match notify::Notifier::start(config, &sinks.link, sinks.clock.clone(), addr) {
            Ok(n) => Some(n),
            Err(e) => {
                sinks.shutdown().await.ok();
                return Err(e);
            }
        },
        false => None,
    };
    if let Some(n) = &notifier {
        receiver.metrics().register_collector(Arc::new(n.metrics()));
    }
    let ch_status = sinks.statuses.get(gatelog_store::sink::SINK_NAME).context("the clickhouse sink has no status")?;
    let scheduled =
        match scheduled::Scheduled::start(config, &sinks.link, ch_status, sinks.spool.clone(), sinks.clock.clone()) {
            Ok(s) => s,
            Err(e) => {
                if let Some(n) = notifier {
                    n.stop().await;
                }
                sinks.shutdown().await.ok();
                return Err(e);
            }
        };
    if let Some(s) = &scheduled {
        receiver.metrics().register_collector(Arc::new(s.metrics(sinks.clock.clone())));
    }
    let query_log = query_log::QueryLog::start(config, &sinks.link, sinks.clock.clone())?;
    let checkpoints = checkpoint::Checkpoints::start(config, &sinks.link, sinks.clock.clone())?;
    let config_versions = config_versions::ConfigVersions::start(config, sinks.link.subscribe(), sinks.clock.clone())?;
    receiver.metrics().register_collector(Arc::new(sinks.metrics(config.index.enabled)));
    if let Some(detect) = sinks.detect_metrics() {
        receiver.metrics().register_collector(Arc::new(detect));
    }
    receiver.add_readiness_check(Arc::new(ready::SinksReady {
        statuses: sinks.statuses.clone(),
        spool: sinks.spool.clone(),
        clock: sinks.clock.clone(),
    }));

    // The listener is bound: a canary posted before the server accepts waits in its backlog.
    let canaries = match canary_token {
        Some(token) => {
            match canary::Canaries::start(config, addr, &token, sinks.link.subscribe(), sinks.clock.clone()) {
                Ok(c) => {
                    receiver.metrics().register_collector(Arc::new(c.metrics()));
                    Some(c)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the canaries");
                    None
                }
            }
        }
        None => None,
    };
    let index_dir = config.data_dir.join("index");
    let searcher = Arc::new(Searcher::open(&index_dir, &config.clickhouse.database));
    let server = HttpServer::new(config.server.limits());
    receiver.metrics().register_collector(server.stats());
    let search = gatelog_read::search::SearchIndex {
        searcher,
        enabled: config.index.enabled,
        index_status: sinks.index_status.clone(),
    };
    let alerts = Some(gatelog_read::alerts::AlertsStore { store: sinks.link.subscribe(), clock: sinks.clock.clone() });
    // gatelog's own audit trail: every read-route answer enters the spool like any decision.
    let audit =
        Some(gatelog_read::audit::Audit { edge: edge.clone(), spool: sinks.spool.clone(), clock: sinks.clock.clone() });
    let reports = Some(crate::report::http_reports(config)?);
    let read = gatelog_read::ReadState { edge, search, alerts, audit, reports };
    // The dashboard at `/`, on the same state (roles, audit trail) as the read routes.
    let web = gatelog_web::router(gatelog_web::WebState {
        secure_cookies: config.server.secure_cookies,
        ..gatelog_web::WebState::new(read.clone())
    });
    let app = gatelog_ingest::http::router(receiver).merge(gatelog_read::router(read)).merge(web);
    let (http_stop, http_rx) = watch::channel(false);
    // Bounded by server.drain_timeout once stopped (idle and slow connections included).
    let http = tokio::spawn(async move {
        server.serve(listener, app, stopped(http_rx)).await;
        Ok::<(), std::io::Error>(())
    });
    tracing::info!(%addr, clickhouse = %sinks.link.url, spool = %spool_dir.display(), "gatelog serve is listening");
    Ok(Running {
        addr,
        sinks,
        notifier,
        scheduled,
        query_log,
        checkpoints,
        config_versions,
        canaries,
        http_stop,
        http,
        drain_timeout: config.server.drain_timeout,
    })
}

/// The server's edge: the receiver's ingest tokens and `[auth]`'s tokens (the tokens file
/// read now), the canaries' in-memory ingest token, `[auth.identity]`'s verifier, and who
/// reads the operator routes without one. Logs how many tokens each role has and the
/// identity issuers by name, never a token.
fn edge(config: &Config, canary_token: Option<&str>) -> anyhow::Result<Edge> {
    use gatelog_edge::auth::Role;
    let mut credentials = config.receiver.credentials();
    config.auth.credentials(&mut credentials)?;
    if let Some(token) = canary_token {
        if credentials.rejects_all_ingest() {
            // The receiver's own warning no longer sees it once the canary holds a token.
            tracing::warn!(
                "receiver: no ingest tokens configured (receiver.tokens, or auth tokens of role ingest); every ingest request but gatelog's own canaries will be refused with 401"
            );
        }
        credentials.add_token(canary::CANARY_CREDENTIAL, Role::Ingest, token);
    }
    if let Some((first, second)) = credentials.duplicate() {
        anyhow::bail!(
            "auth: the tokens named {first:?} and {second:?} are the same token (receiver.tokens, auth.tokens, auth.tokens_file); give each its own"
        );
    }
    let count = |role| credentials.count(role);
    tracing::info!(
        ingest = count(Role::Ingest),
        viewer = count(Role::Viewer),
        responder = count(Role::Responder),
        auditor = count(Role::Auditor),
        admin = count(Role::Admin),
        ops_without_token = ?config.auth.ops_without_token,
        "api tokens by role"
    );
    let identity = config.auth.identity.verifier()?;
    if identity.is_some() {
        let issuers: Vec<String> = config.auth.identity.all_issuers().into_iter().map(|i| i.name).collect();
        tracing::info!(issuers = ?issuers, mappings = config.auth.identity.roles.len(), "identity tokens accepted");
    }
    Ok(Edge::with_identity(credentials, identity, config.auth.ops_without_token))
}

impl Running {
    /// Where the receiver listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The ClickHouse gatelog stores into (its URL, whether gatelog runs it).
    pub fn link(&self) -> &StoreLink {
        &self.sinks.link
    }

    /// The store, once connected and migrated.
    pub fn store(&self) -> Option<Store> {
        self.sinks.store()
    }

    /// Batches the ClickHouse sink wrote and skipped (already stored) since the start.
    pub fn clickhouse_batches(&self) -> (u64, u64) {
        self.sinks.clickhouse_batches()
    }

    /// The alert mailer, when `notify.enabled`.
    pub fn notifier(&self) -> Option<&notify::Notifier> {
        self.notifier.as_ref()
    }

    /// Waits, at most `limit`, until every sink has stored what the spool held when called.
    /// False on timeout or when a sink stopped.
    pub async fn wait_caught_up(&self, limit: Duration) -> bool {
        self.sinks.drain(limit, false).await
    }

    /// Stops accepting, finishes in-flight requests, drains, stops the sinks, closes the
    /// spool and stops managed ClickHouse, all within `server.drain_timeout` plus the margin
    /// the module docs give; then reports the first failure, if any.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        if let Some(canaries) = self.canaries.take() {
            canaries.stop().await;
        }
        let _ = self.http_stop.send(true);
        let served = match tokio::time::timeout_at(deadline, &mut self.http).await {
            Ok(served) => Some(served),
            Err(_) => {
                tracing::warn!("requests still open at server.drain_timeout; closing their connections");
                self.http.abort();
                None
            }
        };
        tracing::info!("http listener stopped; draining the spool into the sinks");
        self.sinks.drain(deadline.saturating_duration_since(tokio::time::Instant::now()), true).await;
        if let Some(query_log) = self.query_log.take() {
            query_log.stop().await;
        }
        if let Some(checkpoints) = self.checkpoints.take() {
            checkpoints.stop().await;
        }
        if let Some(versions) = self.config_versions.take() {
            versions.stop().await;
        }
        if let Some(scheduled) = self.scheduled.take() {
            scheduled.stop().await;
        }
        if let Some(notifier) = self.notifier.take() {
            notifier.stop().await;
        }
        let stopped = self.sinks.shutdown().await;
        if let Some(served) = served {
            served.context("the http server panicked")?.context("the http server failed")?;
        }
        stopped
    }
}
