//! `gatelog serve`: the HTTP receiver writes batches to the spool; two sinks read it, one
//! into ClickHouse and one into the tantivy index, each committing its own position with its
//! data; detection (`gatelog_watch`) reads it too, checkpointing its state with its position;
//! `/v1/search` queries the index.
//!
//! [`start`] builds the whole machine on a bound listener and returns a [`Running`] handle:
//! `gatelog serve` then waits for a signal, `gatelog demo` first posts the sample data to it.
//! Both stop it with [`Running::shutdown`].
//!
//! The ClickHouse sink runs on a thread of its own and the index sink on its own too, both
//! at a lower CPU priority than the receiver ([`crate::priority`]). Each is a spool consumer
//! with a [`Status`] (one [`Statuses`] for all), which `/readyz` ([`ready`]) and `/metrics`
//! ([`metrics`]) read. Detection is the third consumer (`detect`, `gatelog_watch`), on a
//! thread of its own too ([`detect_metrics`] for its families). A fourth consumer is one
//! more status and one more background thread here.
//!
//! Start-up needs the spool and the listener, not ClickHouse: [`store_link`] connects (and
//! migrates) in the background, and the ClickHouse sink starts once it has. The index sink
//! ([`index_sink`]) rebuilds the index from ClickHouse when it is lost or older than the spool.
//!
//! Shutdown (SIGINT/SIGTERM) is bounded by `server.drain_timeout` plus a small margin: stop
//! accepting, close idle connections at once and give busy ones what is left of the drain
//! timeout to finish their request (`gatelog_ingest::http::serve`), give the sinks what is
//! left to store what the spool holds (less if every sink that is behind cannot move), stop
//! them ([`SINK_STOP_GRACE`] at most: a write still running is abandoned), close the spool,
//! stop managed ClickHouse (SIGTERM, SIGKILL after [`crate::clickhouse::MANAGED_STOP_TIMEOUT`]).
//! Whatever is left stays in the spool for the next start.

mod background;
mod detect_metrics;
mod index_sink;
pub mod metrics;
mod ready;
pub mod search;
mod store_link;

use crate::cli::{ReceiverArgs, ServeArgs, StoreArgs};
use crate::config::Config;
use crate::index::{IndexLock, RebuildProgress, indexer_options};
use anyhow::Context;
use gatelog_consumer::{Phase, Status, Statuses};
use gatelog_index::{IndexSinkStats, Searcher};
use gatelog_ingest::http::ReceiverState;
use gatelog_ingest::http::serve::HttpServer;
use gatelog_model::{Clock, SystemClock};
use gatelog_spool::{Spool, SpoolOptions};
use gatelog_store::Store;
use gatelog_store::sink::{SINK_NAME, SinkError, SinkStats, run_clickhouse_sink};
use gatelog_watch::{DETECT_CONSUMER, DetectRuntime, WatchError, WatchStats};
use index_sink::{IndexSink, IndexSinkError};
use metrics::{INDEX_SINK, SinkMetrics};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use store_link::{StoreLink, wait_for_store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// At shutdown, how long the sinks get to stop once told to (after the drain): the
/// ClickHouse sink abandons a write still running after its own 2 s, the index commits what
/// it has. A sink that takes longer is left; what it did not acknowledge stays in the spool.
pub const SINK_STOP_GRACE: Duration = Duration::from_secs(3);

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = resolve_config(&args.store, &args.receiver)?;
    let listener = gatelog_ingest::http::serve::bind(config.server.listen)
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
    link: StoreLink,
    ch_stats: Arc<SinkStats>,
    statuses: Statuses,
    http_stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    sinks_stop: watch::Sender<bool>,
    ch_sink: JoinHandle<Result<(), SinkError>>,
    index_sink: Option<JoinHandle<Result<(), IndexSinkError>>>,
    detect: Option<JoinHandle<Result<(), WatchError>>>,
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

/// Opens the spool, starts (or begins connecting to) ClickHouse and the sinks, and serves on
/// `listener`. ClickHouse being unreachable is not an error here (see [`store_link`]).
pub async fn start(config: &Config, listener: TcpListener) -> anyhow::Result<Running> {
    crate::clickhouse::check_sync_data_dir(config)?;
    let spool_dir = config.data_dir.join("spool");
    let spool = Spool::open(&spool_dir, spool_options(config))
        .with_context(|| format!("cannot open the spool in {}", spool_dir.display()))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let receiver = ReceiverState::new(config.receiver.clone(), spool.clone(), clock.clone())?;
    let index_lock = match config.index.enabled {
        true => Some(IndexLock::acquire(&config.data_dir)?),
        false => None,
    };
    let addr = listener.local_addr().context("cannot read the listening address")?;
    // Nothing may be deleted under a sink before it registers (ClickHouse may be unreachable
    // for a while), and a disabled index must not hold the spool.
    gatelog_consumer::hold(&spool, SINK_NAME).context("cannot register the clickhouse sink with the spool")?;
    if config.index.enabled {
        gatelog_consumer::hold(&spool, INDEX_SINK).context("cannot register the index sink with the spool")?;
    } else if spool.stats().consumers.iter().any(|c| c.name == INDEX_SINK) {
        spool.unregister_consumer(INDEX_SINK).context("cannot forget the disabled index's spool position")?;
        tracing::info!("index disabled (index.enabled = false): the spool no longer keeps records for it");
    }
    if config.detect.enabled {
        gatelog_consumer::hold(&spool, DETECT_CONSUMER).context("cannot register detection with the spool")?;
    } else if spool.stats().consumers.iter().any(|c| c.name == DETECT_CONSUMER) {
        spool.unregister_consumer(DETECT_CONSUMER).context("cannot forget the disabled detection's spool position")?;
        tracing::info!("detection disabled (detect.enabled = false): the spool no longer keeps records for it");
    }
    let statuses = Statuses::default();
    let ch_status = statuses.add(SINK_NAME);
    let index_status = index_lock.as_ref().map(|_| statuses.add(INDEX_SINK));
    let detect_status = config.detect.enabled.then(|| statuses.add(DETECT_CONSUMER));
    // Last, as it may start a server that must be stopped again (below, only a thread that
    // cannot start fails, and stops it).
    let link = StoreLink::start(config, ch_status.clone()).await?;
    let durability = link.durability(config);

    let (sinks_stop, stop_rx) = watch::channel(false);
    let ch_stats = Arc::new(SinkStats::default());
    let sink = {
        let (store, spool, stats, stop) = (link.subscribe(), spool.clone(), ch_stats.clone(), stop_rx.clone());
        let options = config.clickhouse.sink_options();
        async move {
            let store = tokio::select! {
                store = wait_for_store(store) => store,
                () = stopped(stop.clone()) => None,
            };
            let Some(store) = store else { return Ok(()) };
            let (status, stop) = (ch_status.clone(), stopped(stop));
            reported(ch_status, run_clickhouse_sink(store, spool, status, stats, options, durability, stop)).await
        }
    };
    // Decoding spool records and encoding rows is CPU the receiver's requests need more.
    let ch_sink = match background::spawn_background("gatelog-ch-sink", sink) {
        Ok(handle) => handle,
        Err(e) => {
            link.shutdown().await;
            return Err(anyhow::Error::new(e).context("cannot start the clickhouse sink thread"));
        }
    };
    let progress = Arc::new(RebuildProgress::default());
    let (index_stats, index_sink) = match (index_lock, index_status.clone()) {
        (Some(lock), Some(status)) => {
            let stats = Arc::new(IndexSinkStats::default());
            let sink = IndexSink {
                data_dir: config.data_dir.clone(),
                options: indexer_options(config),
                spool: spool.clone(),
                status: status.clone(),
                stats: stats.clone(),
                progress: progress.clone(),
                store: link.subscribe(),
                lock,
            };
            // The index thread it starts, and tantivy's threads, inherit the background priority.
            let sink = reported(status, sink.run(stop_rx.clone()));
            let task = match background::spawn_background("gatelog-index-sink", sink) {
                Ok(handle) => handle,
                Err(e) => {
                    link.shutdown().await;
                    return Err(anyhow::Error::new(e).context("cannot start the index sink thread"));
                }
            };
            (Some(stats), Some(task))
        }
        _ => (None, None),
    };
    // Detection: the third consumer, on its own background thread like the sinks.
    let (detect_stats, detect) = match detect_status {
        Some(status) => {
            let stats = Arc::new(WatchStats::default());
            let runtime = DetectRuntime {
                config: config.detect.clone(),
                data_dir: config.data_dir.clone(),
                spool: spool.clone(),
                status: status.clone(),
                stats: stats.clone(),
                store: link.subscribe(),
                clock: clock.clone(),
                durability: link.durability(config),
            };
            let task = reported(status, runtime.run(stop_rx.clone()));
            match background::spawn_background("gatelog-detect", task) {
                Ok(handle) => (Some(stats), Some(handle)),
                Err(e) => {
                    link.shutdown().await;
                    return Err(anyhow::Error::new(e).context("cannot start the detection thread"));
                }
            }
        }
        None => (None, None),
    };
    if let Some(stats) = &detect_stats {
        receiver.metrics().register_collector(Arc::new(detect_metrics::DetectMetrics {
            stats: stats.clone(),
            statuses: statuses.clone(),
            spool: spool.clone(),
            clock: clock.clone(),
        }));
    }
    receiver.metrics().register_collector(Arc::new(SinkMetrics {
        clickhouse: ch_stats.clone(),
        index: index_stats,
        rebuild: config.index.enabled.then(|| progress.clone()),
        statuses: statuses.clone(),
        spool: spool.clone(),
        clock: clock.clone(),
    }));
    receiver.add_readiness_check(Arc::new(ready::SinksReady {
        statuses: statuses.clone(),
        spool: spool.clone(),
        clock,
    }));

    let index_dir = config.data_dir.join("index");
    let searcher = Arc::new(Searcher::open(&index_dir, &config.clickhouse.database));
    let server = HttpServer::new(config.server.limits());
    receiver.metrics().register_collector(server.stats());
    let app = gatelog_ingest::http::router(receiver.clone()).merge(search::router(search::SearchState {
        receiver,
        searcher,
        enabled: config.index.enabled,
        index_status,
    }));
    let (http_stop, http_rx) = watch::channel(false);
    // Bounded by server.drain_timeout once stopped (idle and slow connections included).
    let http = tokio::spawn(async move {
        server.serve(listener, app, stopped(http_rx)).await;
        Ok::<(), std::io::Error>(())
    });
    tracing::info!(%addr, clickhouse = %link.url, spool = %spool_dir.display(), "gatelog serve is listening");
    Ok(Running {
        addr,
        spool,
        link,
        ch_stats,
        statuses,
        http_stop,
        http,
        sinks_stop,
        ch_sink,
        index_sink,
        detect,
        drain_timeout: config.server.drain_timeout,
    })
}

impl Running {
    /// Where the receiver listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The ClickHouse gatelog stores into (its URL, whether gatelog runs it).
    pub fn link(&self) -> &StoreLink {
        &self.link
    }

    /// The store, once connected and migrated.
    pub fn store(&self) -> Option<Store> {
        self.link.store()
    }

    /// Batches the ClickHouse sink wrote and skipped (already stored) since the start.
    pub fn clickhouse_batches(&self) -> (u64, u64) {
        (self.ch_stats.batches_written.load(Ordering::Relaxed), self.ch_stats.batches_skipped.load(Ordering::Relaxed))
    }

    /// Waits, at most `limit`, until every sink has stored what the spool held when called.
    /// False on timeout or when a sink stopped.
    pub async fn wait_caught_up(&self, limit: Duration) -> bool {
        self.drain(limit, false).await
    }

    /// [`Running::wait_caught_up`]; with `give_up_when_stuck`, also false as soon as every
    /// sink that is behind cannot move (ClickHouse unreachable): shutdown does not wait for
    /// what cannot come.
    async fn drain(&self, limit: Duration, give_up_when_stuck: bool) -> bool {
        let started = Instant::now();
        let target = self.spool.last_seq();
        loop {
            let statuses = self.statuses.all();
            let behind: Vec<_> = statuses.iter().filter(|s| s.position() < target).collect();
            if behind.is_empty() {
                return true;
            }
            let finished = self.ch_sink.is_finished()
                || self.index_sink.as_ref().is_some_and(JoinHandle::is_finished)
                || self.detect.as_ref().is_some_and(JoinHandle::is_finished);
            let snapshots: Vec<_> = behind.iter().map(|s| s.snapshot(target, gatelog_model::UnixMillis(0))).collect();
            let stuck =
                give_up_when_stuck && snapshots.iter().all(|s| matches!(s.phase, Phase::Waiting | Phase::Stopped));
            if finished || stuck || started.elapsed() >= limit {
                let behind: Vec<String> =
                    snapshots.iter().map(|s| format!("{} at {} ({})", s.name, s.position, s.phase.as_str())).collect();
                tracing::warn!(
                    behind = %behind.join(", "),
                    last_seq = target,
                    "the sinks did not catch up with the spool; the rest stays in it for the next start"
                );
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops accepting, finishes in-flight requests, drains, stops the sinks, closes the
    /// spool and stops managed ClickHouse, all within `server.drain_timeout` plus the margin
    /// the module docs give; then reports the first failure, if any.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
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
        self.drain(deadline.saturating_duration_since(tokio::time::Instant::now()), true).await;
        let Running { spool, link, sinks_stop, ch_sink, index_sink, detect, .. } = self;
        let _ = sinks_stop.send(true);
        let grace = tokio::time::Instant::now() + SINK_STOP_GRACE;
        let ch = tokio::time::timeout_at(grace, ch_sink);
        let index = async {
            match index_sink {
                Some(handle) => Some(tokio::time::timeout_at(grace, handle).await),
                None => None,
            }
        };
        let detect = async {
            match detect {
                Some(handle) => Some(tokio::time::timeout_at(grace, handle).await),
                None => None,
            }
        };
        let (ch_result, index_result, detect_result) = tokio::join!(ch, index, detect);
        let closed = spool.close().await;
        link.shutdown().await;

        if let Some(served) = served {
            served.context("the http server panicked")?.context("the http server failed")?;
        }
        match ch_result {
            Ok(result) => result.context("the clickhouse sink panicked")?.context("the clickhouse sink failed")?,
            Err(_) => {
                tracing::warn!("the clickhouse sink did not stop in time; what it did not store stays in the spool")
            }
        }
        match index_result {
            Some(Ok(result)) => result.context("the index sink panicked")?.context("the index sink failed")?,
            Some(Err(_)) => {
                tracing::warn!("the index sink did not stop in time; what it did not commit stays in the spool")
            }
            None => {}
        }
        match detect_result {
            Some(Ok(result)) => result.context("detection panicked")?.context("detection failed")?,
            Some(Err(_)) => {
                tracing::warn!(
                    "detection did not stop in time; what it did not checkpoint is judged again at the next start"
                )
            }
            None => {}
        }
        closed.context("cannot close the spool")?;
        Ok(())
    }
}
