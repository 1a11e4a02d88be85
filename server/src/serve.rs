//! `gatelog serve`: the HTTP receiver writes batches to the spool; two sinks read it, one
//! into ClickHouse and one into the tantivy index, each committing its own position with its
//! data; `/v1/search` queries the index.
//!
//! [`start`] builds the whole machine on a bound listener and returns a [`Running`] handle:
//! `gatelog serve` then waits for a signal, `gatelog demo` first posts the sample data to it.
//! Both stop it with [`Running::shutdown`].
//!
//! The ClickHouse sink runs on a thread of its own and the index sink on its own too, both
//! at a lower CPU priority than the receiver ([`crate::priority`]).
//!
//! Shutdown (SIGINT/SIGTERM): stop accepting, finish in-flight requests, give the sinks up to
//! `server.drain_timeout` to store what the spool holds, stop them, close the spool, stop
//! managed ClickHouse. Whatever is left stays in the spool for the next start.

mod background;
pub mod metrics;
mod ready;
pub mod search;

use crate::cli::{ReceiverArgs, ServeArgs, StoreArgs};
use crate::clickhouse::Target;
use crate::config::Config;
use anyhow::Context;
use gatelog_consumer::{State, Status, Statuses};
use gatelog_index::{IndexError, IndexSinkStats, Indexer, IndexerOptions, Searcher};
use gatelog_ingest::http::ReceiverState;
use gatelog_model::{Clock, SystemClock};
use gatelog_spool::{Spool, SpoolOptions};
use gatelog_store::Store;
use gatelog_store::sink::{SINK_NAME, SinkError, SinkStats, run_clickhouse_sink};
use metrics::{INDEX_SINK, SinkMetrics};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = resolve_config(&args.store, &args.receiver)?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen / --listen)", config.server.listen))?;
    let running = start(&config, listener).await?;
    let addr = running.addr();
    crate::print_stdout(&format!(
        "gatelog serve listening on http://{addr}\n  POST /v1/logpush/{{dataset}}  POST /v1/tail  POST /v1/decisions\n  GET /v1/search?q=  GET /metrics  GET /readyz\n"
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
    let config = Config::load(store.config.as_deref())?.apply(overrides);
    config.validate()?;
    Ok(config)
}

/// A running receiver, spool, sinks and ClickHouse; stop it with [`Running::shutdown`].
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    spool: Spool,
    target: Target,
    ch_stats: Arc<SinkStats>,
    statuses: Statuses,
    http_stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    sinks_stop: watch::Sender<bool>,
    ch_sink: JoinHandle<Result<(), SinkError>>,
    index_sink: Option<JoinHandle<Result<(), IndexError>>>,
    drain_timeout: Duration,
}

/// Resolves once `true` is sent (or the sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Runs a sink; an error stops its status with the reason (logged there, once).
async fn reported<E: std::fmt::Display>(
    status: Arc<Status>,
    sink: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), E> {
    let result = sink.await;
    if let Err(e) = &result {
        status.stop(e.to_string());
    }
    result
}

/// Opens the spool and the index, connects (or starts) ClickHouse, and serves on `listener`.
pub async fn start(config: &Config, listener: TcpListener) -> anyhow::Result<Running> {
    crate::clickhouse::check_sync_data_dir(config)?;
    let spool_dir = config.data_dir.join("spool");
    // One batch may take at most half the spool, so a small spool still opens (a larger
    // batch is answered 413 by the receiver instead).
    let max_bytes = config.spool.max_bytes.as_u64();
    let spool = Spool::open(
        &spool_dir,
        SpoolOptions {
            max_record_bytes: SpoolOptions::default().max_record_bytes.min(max_bytes / 2),
            max_bytes,
            segment_bytes: config.spool.segment_bytes.as_u64(),
            fsync: config.spool.fsync,
            // Preallocation makes fsyncs cheaper; without fsyncs it would only cost writes.
            preallocate: config.spool.fsync,
        },
    )
    .with_context(|| format!("cannot open the spool in {}", spool_dir.display()))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let receiver = ReceiverState::new(config.receiver.clone(), spool.clone(), clock.clone())?;
    let index_dir = config.data_dir.join("index");
    let indexer = if config.index.enabled {
        let opts = IndexerOptions {
            commit_interval: config.index.commit_interval,
            writer_memory_bytes: usize::try_from(config.index.writer_memory.as_u64()).unwrap_or(usize::MAX),
            merge_max_docs: config.index.merge_max_docs,
            ..IndexerOptions::default()
        };
        Some(
            Indexer::open(&index_dir, opts)
                .with_context(|| format!("cannot open the index in {}", index_dir.display()))?,
        )
    } else {
        None
    };
    let addr = listener.local_addr().context("cannot read the listening address")?;
    // Last, as it may start a server that must be stopped again (below, only a thread that
    // cannot start fails, and stops it).
    let target = Target::connect(config).await?;
    let durability = target.durability(config);

    let (sinks_stop, stop_rx) = watch::channel(false);
    let statuses = Statuses::default();
    let ch_stats = Arc::new(SinkStats::default());
    let ch_status = statuses.add(SINK_NAME);
    // Decoding spool records and encoding rows is CPU the receiver's requests need more.
    let sink = run_clickhouse_sink(
        target.store.clone(),
        spool.clone(),
        ch_status.clone(),
        ch_stats.clone(),
        config.clickhouse.sink_options(),
        durability,
        stopped(stop_rx.clone()),
    );
    let sink = reported(ch_status, sink);
    let ch_sink = match background::spawn_background("gatelog-ch-sink", sink) {
        Ok(handle) => handle,
        Err(e) => {
            target.shutdown().await;
            return Err(anyhow::Error::new(e).context("cannot start the clickhouse sink thread"));
        }
    };
    let (index_stats, index_sink) = match indexer {
        Some(indexer) => {
            let stats = Arc::new(IndexSinkStats::default());
            let status = statuses.add(INDEX_SINK);
            let sink = gatelog_index::run_sink(
                indexer,
                spool.clone(),
                status.clone(),
                stats.clone(),
                stopped(stop_rx.clone()),
            );
            // The index thread it starts, and tantivy's threads, inherit the background priority.
            let sink = reported(status, sink);
            let task = match background::spawn_background("gatelog-index-sink", sink) {
                Ok(handle) => handle,
                Err(e) => {
                    target.shutdown().await;
                    return Err(anyhow::Error::new(e).context("cannot start the index sink thread"));
                }
            };
            (Some(stats), Some(task))
        }
        None => (None, None),
    };
    receiver.metrics().register_collector(Arc::new(SinkMetrics {
        clickhouse: ch_stats.clone(),
        index: index_stats,
        statuses: statuses.clone(),
        spool: spool.clone(),
        clock: clock.clone(),
    }));
    receiver.add_readiness_check(Arc::new(ready::SinksReady {
        statuses: statuses.clone(),
        spool: spool.clone(),
        clock,
    }));

    let searcher = Arc::new(Searcher::open(&index_dir, &config.clickhouse.database));
    let app = gatelog_ingest::http::router(receiver.clone()).merge(search::router(search::SearchState {
        receiver,
        searcher,
        enabled: config.index.enabled,
    }));
    let (http_stop, http_rx) = watch::channel(false);
    let http = tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stopped(http_rx)).await });
    tracing::info!(%addr, clickhouse = %target.url, spool = %spool_dir.display(), "gatelog serve is listening");
    Ok(Running {
        addr,
        spool,
        target,
        ch_stats,
        statuses,
        http_stop,
        http,
        sinks_stop,
        ch_sink,
        index_sink,
        drain_timeout: config.server.drain_timeout,
    })
}

impl Running {
    /// Where the receiver listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The ClickHouse gatelog stores into, and its URL.
    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn store(&self) -> &Store {
        &self.target.store
    }

    /// Batches the ClickHouse sink wrote and skipped (already stored) since the start.
    pub fn clickhouse_batches(&self) -> (u64, u64) {
        (self.ch_stats.batches_written.load(Ordering::Relaxed), self.ch_stats.batches_skipped.load(Ordering::Relaxed))
    }

    /// Waits, at most `limit`, until every sink has stored what the spool held when called.
    /// False on timeout or when a sink stopped.
    pub async fn wait_caught_up(&self, limit: Duration) -> bool {
        let started = Instant::now();
        let target = self.spool.last_seq();
        loop {
            let statuses = self.statuses.all();
            if statuses.iter().all(|s| s.position() >= target) {
                return true;
            }
            let stopped = self.ch_sink.is_finished()
                || self.index_sink.as_ref().is_some_and(JoinHandle::is_finished)
                || statuses.iter().any(|s| matches!(s.state(), State::Stopped(_)));
            if stopped || started.elapsed() >= limit {
                let positions: Vec<String> =
                    statuses.iter().map(|s| format!("{}={}", s.name(), s.position())).collect();
                tracing::warn!(
                    positions = %positions.join(" "),
                    last_seq = target,
                    sink_stopped = stopped,
                    "the sinks did not catch up with the spool; the rest stays in it"
                );
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops accepting, finishes in-flight requests, drains (bounded), stops the sinks, closes
    /// the spool and stops managed ClickHouse; then reports the first failure, if any.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.http_stop.send(true);
        let served = (&mut self.http).await;
        tracing::info!("http listener stopped; draining the spool into the sinks");
        self.wait_caught_up(self.drain_timeout).await;
        let Running { spool, target, sinks_stop, ch_sink, index_sink, .. } = self;
        let _ = sinks_stop.send(true);
        let ch_result = ch_sink.await;
        let index_result = match index_sink {
            Some(handle) => Some(handle.await),
            None => None,
        };
        let closed = spool.close().await;
        target.shutdown().await;

        served.context("the http server panicked")?.context("the http server failed")?;
        ch_result.context("the clickhouse sink panicked")?.context("the clickhouse sink failed")?;
        if let Some(result) = index_result {
            result.context("the index sink panicked")?.context("the index sink failed")?;
        }
        closed.context("cannot close the spool")?;
        Ok(())
    }
}
