//! [`Sinks`]: the spool and everything that reads it (ClickHouse, the index, detection), without the
//! HTTP listener. `gatelog serve` puts the receiver in front of them ([`super::start`]);
//! `gatelog ingest` appends a file's batches to the same spool and runs the same sinks until
//! they have caught up ([`crate::backfill`]). One road in, whichever way the records came.

use super::background;
use super::detect_metrics::DetectMetrics;
use super::index_sink::{IndexSink, IndexSinkError};
use super::metrics::{INDEX_SINK, SinkMetrics};
use super::store_link::{StoreLink, wait_for_store};
use crate::config::Config;
use crate::index::{IndexLock, RebuildProgress, indexer_options};
use anyhow::Context;
use gatelog_consumer::{Phase, Status, Statuses};
use gatelog_index::IndexSinkStats;
use gatelog_model::{Clock, SystemClock};
use gatelog_spool::Spool;
use gatelog_store::Store;
use gatelog_store::sink::{SINK_NAME, SinkError, SinkStats, run_clickhouse_sink};
use gatelog_watch::{DETECT_CONSUMER, DetectRuntime, WatchError, WatchStats};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// At shutdown, how long the sinks get to stop once told to (after the drain): the
/// ClickHouse sink abandons a write still running after its own 2 s, the index commits what
/// it has. A sink that takes longer is left; what it did not acknowledge stays in the spool.
pub const SINK_STOP_GRACE: Duration = Duration::from_secs(3);

/// The spool, the store link and the running sinks; stop them with [`Sinks::shutdown`].
#[derive(Debug)]
pub struct Sinks {
    pub spool: Spool,
    pub link: StoreLink,
    pub statuses: Statuses,
    pub ch_stats: Arc<SinkStats>,
    /// The index sink's status and counters, when the index is enabled.
    pub index_status: Option<Arc<Status>>,
    pub index_stats: Option<Arc<IndexSinkStats>>,
    pub progress: Arc<RebuildProgress>,
    /// Detection's counters, when detection is enabled.
    pub detect_stats: Option<Arc<WatchStats>>,
    pub clock: Arc<dyn Clock>,
    stop: watch::Sender<bool>,
    ch_sink: JoinHandle<Result<(), SinkError>>,
    index_sink: Option<JoinHandle<Result<(), IndexSinkError>>>,
    detect: Option<JoinHandle<Result<(), WatchError>>>,
    /// Retention in ClickHouse (`retention`): hourly, once the store is there.
    retention: Option<JoinHandle<()>>,
}

/// Resolves once `true` is sent (or the sender is gone).
pub(super) async fn stopped(mut rx: watch::Receiver<bool>) {
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

impl Sinks {
    /// Starts (or begins connecting to) ClickHouse and the sinks over `spool`. ClickHouse
    /// being unreachable is not an error here (see [`super::store_link`]). Callers check
    /// `clickhouse.sync_data_dir` before they open the spool (nothing is created for a
    /// config that cannot work).
    pub async fn start(config: &Config, spool: Spool) -> anyhow::Result<Sinks> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let index_lock = match config.index.enabled {
            true => Some(IndexLock::acquire(&config.data_dir)?),
            false => None,
        };
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
            spool
                .unregister_consumer(DETECT_CONSUMER)
                .context("cannot forget the disabled detection's spool position")?;
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

        let (stop, stop_rx) = watch::channel(false);
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
        // Retention: ClickHouse's expired months here; the index sink deletes its expired days.
        let retention = config.retention_days().map(|days| {
            let (store, stop, clock) = (link.subscribe(), stop_rx.clone(), clock.clone());
            tokio::spawn(async move {
                let store = tokio::select! {
                    store = wait_for_store(store) => store,
                    () = stopped(stop.clone()) => None,
                };
                if let Some(store) = store {
                    gatelog_store::retention::run_retention(store, days, clock, stopped(stop)).await;
                }
            })
        });
        Ok(Sinks {
            spool,
            link,
            statuses,
            ch_stats,
            index_status,
            index_stats,
            progress,
            detect_stats,
            clock,
            stop,
            ch_sink,
            index_sink,
            detect,
            retention,
        })
    }

    /// The `/metrics` collector of the sinks.
    pub fn metrics(&self, enabled_index: bool) -> SinkMetrics {
        SinkMetrics {
            clickhouse: self.ch_stats.clone(),
            index: self.index_stats.clone(),
            rebuild: enabled_index.then(|| self.progress.clone()),
            statuses: self.statuses.clone(),
            spool: self.spool.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The `/metrics` collector of detection, when it runs.
    pub fn detect_metrics(&self) -> Option<DetectMetrics> {
        self.detect_stats.as_ref().map(|stats| DetectMetrics {
            stats: stats.clone(),
            statuses: self.statuses.clone(),
            spool: self.spool.clone(),
            clock: self.clock.clone(),
        })
    }

    /// The store, once connected and migrated.
    pub fn store(&self) -> Option<Store> {
        self.link.store()
    }

    /// Batches the ClickHouse sink wrote and skipped (already stored) since the start.
    pub fn clickhouse_batches(&self) -> (u64, u64) {
        (self.ch_stats.batches_written.load(Ordering::Relaxed), self.ch_stats.batches_skipped.load(Ordering::Relaxed))
    }

    /// Whether a sink's task has ended (it failed, or was stopped).
    pub fn any_finished(&self) -> bool {
        self.ch_sink.is_finished()
            || self.index_sink.as_ref().is_some_and(JoinHandle::is_finished)
            || self.detect.as_ref().is_some_and(JoinHandle::is_finished)
    }

    /// Waits, at most `limit`, until every sink has stored what the spool held when called.
    /// False on timeout or when a sink stopped; with `give_up_when_stuck`, also as soon as
    /// every sink that is behind cannot move (ClickHouse unreachable): shutdown does not wait
    /// for what cannot come.
    pub async fn drain(&self, limit: Duration, give_up_when_stuck: bool) -> bool {
        let started = Instant::now();
        let target = self.spool.last_seq();
        loop {
            let statuses = self.statuses.all();
            let behind: Vec<_> = statuses.iter().filter(|s| s.position() < target).collect();
            if behind.is_empty() {
                return true;
            }
            let finished = self.any_finished();
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

    /// Stops the sinks ([`SINK_STOP_GRACE`] at most), closes the spool and stops managed
    /// ClickHouse; then reports the first failure, if any.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let Sinks { spool, link, stop, ch_sink, index_sink, detect, retention, .. } = self;
        let _ = stop.send(true);
        if let Some(retention) = retention {
            // Between two statements nothing is half done: a drop either ran or did not.
            retention.abort();
        }
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
