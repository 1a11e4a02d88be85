//! [`IndexSink`]: the index sink of `gatelog serve`, which heals. It opens the index, runs
//! [`gatelog_index::run_sink`], and when the index cannot be what its position says, rebuilds
//! it from ClickHouse ([`crate::index::rebuild_from_clickhouse`]) and goes on from the spool:
//!
//! - the index directory is deleted or replaced while gatelog runs (noticed within a commit
//!   interval), or cannot be opened as gatelog's index;
//! - its position is older than the spool's oldest record (the records in between exist only
//!   in ClickHouse), or ahead of the spool's last (the spool was replaced);
//! - it is new (never committed) while ClickHouse already holds decisions: lost while
//!   gatelog was stopped, or filled by a backfill. If ClickHouse cannot be asked yet and the
//!   spool still holds every record from the first, the spool alone refills it.
//!
//! Meanwhile its status says `rebuilding` with progress (on `/readyz` and `/metrics`; search
//! answers say they are incomplete), and the spool keeps what the index has not stored.
//! What it cannot heal (a rebuild that fails for a reason waiting will not fix, a record that
//! does not decode) stops it with the reason, naming `gatelog index rebuild` where that helps.

use super::store_link::wait_for_store;
use crate::index::{IndexLock, RebuildProgress, rebuild_command, rebuild_from_clickhouse};
use gatelog_consumer::Status;
use gatelog_index::{IndexError, IndexSinkStats, Indexer, IndexerOptions};
use gatelog_spool::Spool;
use gatelog_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Rebuilds in a row (without a commit between) before giving up: a rebuild that does not
/// make the index usable is a bug to report, not a loop to run.
const MAX_REBUILDS_IN_A_ROW: u32 = 3;
/// Pause before a rebuild is tried again after ClickHouse failed during one.
const RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Why the index sink stopped.
#[derive(Debug, thiserror::Error)]
pub enum IndexSinkError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("{0}")]
    Cannot(String),
}

/// Everything the index sink needs.
#[derive(Debug)]
pub struct IndexSink {
    pub data_dir: PathBuf,
    pub options: IndexerOptions,
    pub spool: Spool,
    pub status: Arc<Status>,
    pub stats: Arc<IndexSinkStats>,
    pub progress: Arc<RebuildProgress>,
    pub store: watch::Receiver<Option<Store>>,
    /// Held while the sink runs, so `gatelog index rebuild` cannot write the same index.
    pub lock: IndexLock,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl IndexSink {
    fn dir(&self) -> PathBuf {
        self.data_dir.join("index")
    }

    /// Runs until `stop` says so (`Ok`), or the index cannot go on.
    pub async fn run(self, stop: watch::Receiver<bool>) -> Result<(), IndexSinkError> {
        tracing::debug!(lock = %IndexLock::path(&self.data_dir).display(), held = ?self.lock, "index sink holds the index lock");
        let mut rebuild_for: Option<String> = None;
        let mut rebuilds_in_a_row = 0;
        loop {
            if let Some(why) = rebuild_for.take() {
                rebuilds_in_a_row += 1;
                if rebuilds_in_a_row > MAX_REBUILDS_IN_A_ROW {
                    return Err(IndexSinkError::Cannot(format!(
                        "the index was rebuilt {MAX_REBUILDS_IN_A_ROW} times in a row and is still not usable ({why}); \
                         stop gatelog and run {}",
                        rebuild_command(&self.data_dir)
                    )));
                }
                if !self.rebuild(&why, stop.clone()).await? {
                    return Ok(()); // stopped meanwhile
                }
            }
            let indexer = match self.open().await {
                Ok(indexer) => indexer,
                Err(e) if e.needs_rebuild() => {
                    rebuild_for = Some(e.to_string());
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if indexer.is_fresh() && rebuilds_in_a_row == 0 && self.fresh_needs_clickhouse().await {
                rebuild_for = Some("the index is new while ClickHouse already holds decisions".to_owned());
                continue;
            }
            let position = indexer.position();
            let run = gatelog_index::run_sink(
                indexer,
                self.spool.clone(),
                self.status.clone(),
                self.stats.clone(),
                stopped(stop.clone()),
            )
            .await;
            match run {
                Ok(()) => return Ok(()),
                Err(e) if e.needs_rebuild() => {
                    tracing::warn!(error = %e, "the index must be rebuilt from ClickHouse");
                    if self.status.position() > position {
                        rebuilds_in_a_row = 0; // it worked for a while
                    }
                    rebuild_for = Some(e.to_string());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn open(&self) -> Result<Indexer, IndexError> {
        let (dir, options) = (self.dir(), self.options);
        tokio::task::spawn_blocking(move || Indexer::open(&dir, options))
            .await
            .map_err(|e| IndexError::Worker(e.to_string()))?
    }

    /// For a new index: whether it must come from ClickHouse rather than the spool alone.
    async fn fresh_needs_clickhouse(&self) -> bool {
        let store = self.store.borrow().clone();
        match store {
            Some(store) => match store.decision_days().await {
                Ok(days) => !days.is_empty(),
                // Cannot ask: the spool alone if it has everything, else wait for ClickHouse.
                Err(_) => self.spool.stats().first_seq > 1,
            },
            None => self.spool.stats().first_seq > 1,
        }
    }

    /// Rebuilds the index from ClickHouse; `Ok(false)` when `stop` came first.
    async fn rebuild(&self, why: &str, stop: watch::Receiver<bool>) -> Result<bool, IndexSinkError> {
        tracing::warn!(reason = %why, "rebuilding the index from clickhouse");
        loop {
            self.status.set_rebuilding(format!("waiting for ClickHouse to rebuild the index ({why})"));
            let store = tokio::select! {
                biased;
                () = stopped(stop.clone()) => return Ok(false),
                store = wait_for_store(self.store.clone()) => store,
            };
            let Some(store) = store else { return Ok(false) };
            let attempt = tokio::select! {
                biased;
                () = stopped(stop.clone()) => return Ok(false),
                attempt = self.rebuild_once(&store) => attempt,
            };
            match attempt {
                Ok(()) => return Ok(true),
                Err(RebuildFailure::Retry(e)) => {
                    tracing::warn!(error = %e, "index rebuild interrupted by clickhouse; trying again");
                    tokio::select! {
                        biased;
                        () = stopped(stop.clone()) => return Ok(false),
                        () = tokio::time::sleep(RETRY_PAUSE) => {}
                    }
                }
                Err(RebuildFailure::Fatal(e)) => {
                    return Err(IndexSinkError::Cannot(format!(
                        "cannot rebuild the index from ClickHouse ({e}); once the cause is fixed, restart gatelog serve \
                         or stop it and run {}",
                        rebuild_command(&self.data_dir)
                    )));
                }
            }
        }
    }

    async fn rebuild_once(&self, store: &Store) -> Result<(), RebuildFailure> {
        let stored = store.max_spool_seq().await.map_err(|e| {
            if e.is_retryable() { RebuildFailure::Retry(e.to_string()) } else { RebuildFailure::Fatal(e.to_string()) }
        })?;
        let stats = self.spool.stats();
        let position = crate::index::clamp_position(stored, stats.first_seq, stats.last_seq);
        // The spool may forget what ClickHouse holds: the rebuilt index will hold it too (and
        // a crash before the swap leaves an index that is rebuilt again at the next start).
        let (spool, name) = (self.spool.clone(), self.status.name());
        let registered = tokio::task::spawn_blocking(move || spool.register_consumer(name, position)).await;
        if let Ok(Err(e)) = registered {
            tracing::debug!(error = %e, position, "index: spool position not moved before the rebuild");
        }
        let status = self.status.clone();
        let report = |line: &str| status.set_rebuilding(line.to_owned());
        let dir = self.dir();
        match rebuild_from_clickhouse(store, &dir, self.options, position, &self.progress, report).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_retryable() => Err(RebuildFailure::Retry(e.to_string())),
            Err(e) => Err(RebuildFailure::Fatal(e.to_string())),
        }
    }
}

enum RebuildFailure {
    Retry(String),
    Fatal(String),
}
