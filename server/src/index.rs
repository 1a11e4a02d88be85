//! The tantivy index made again from ClickHouse, the store of record: [`rebuild_from_clickhouse`]
//! (what `gatelog serve` runs by itself when the index is lost or older than the spool, and
//! what `gatelog index rebuild` runs for an operator), the lock that keeps the two apart
//! ([`IndexLock`]), and the command itself ([`run_cli`]).
//!
//! A rebuild reads every decision a UTC day at a time (`Store::scan_day`, oldest day first,
//! so the indexer writes one or two days at once) into a new index beside the old one, and
//! swaps it in only when complete (`gatelog_index::try_rebuild`): a failure or a crash leaves
//! the old index. The new index's spool position is ClickHouse's own resume position, taken
//! before reading, so the index sink replays from the spool whatever ClickHouse had not
//! stored yet (replays replace by `event_id`).

use crate::cli::IndexRebuildArgs;
use crate::clickhouse::Target;
use anyhow::Context;
use gatelog_index::{IndexerOptions, RebuildStats};
use gatelog_model::AccessDecision;
use gatelog_store::{Store, StoreError};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a running rebuild reports its progress.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Where a rebuild stands, for logs, `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub struct RebuildProgress {
    pub running: AtomicBool,
    /// Rows read so far (copies of one event each count).
    pub done: AtomicU64,
    /// Rows ClickHouse held when the rebuild started.
    pub total: AtomicU64,
    /// Rebuilds finished since the start.
    pub completed: AtomicU64,
}

impl RebuildProgress {
    /// `"from ClickHouse: 1200 of 5000 decisions (24%), day 3 of 9, 12 s"`.
    fn describe(&self, day: usize, days: usize, started: Instant) -> String {
        let (done, total) = (self.done.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed));
        let percent = (done.min(total) * 100).checked_div(total).unwrap_or(100);
        format!(
            "from ClickHouse: {done} of {total} decisions ({percent}%), day {day} of {days}, {} s",
            started.elapsed().as_secs()
        )
    }
}

/// The command that rebuilds the index of `data_dir` by hand.
pub fn rebuild_command(data_dir: &Path) -> String {
    format!(
        "gatelog index rebuild --data-dir {} (with the --config and ClickHouse flags gatelog serve uses)",
        data_dir.display()
    )
}

/// Why a rebuild failed. The index is left as it was in every case.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("cannot read the decisions from ClickHouse: {0}")]
    Store(#[source] StoreError),
    #[error(transparent)]
    Index(#[from] gatelog_index::IndexError),
    #[error("the index rebuild thread died")]
    Thread,
    #[error("cannot start the index rebuild thread: {0}")]
    Spawn(#[source] std::io::Error),
}

impl RebuildError {
    /// Whether trying again later can help (ClickHouse unreachable or overloaded).
    pub fn is_retryable(&self) -> bool {
        matches!(self, RebuildError::Store(e) if e.is_retryable())
    }
}

/// Rebuilds the index in `dir` from `store`, recording spool position `position`. `report`
/// gets a progress line every few seconds (and the first one at once). Dropping the future
/// stops the rebuild and leaves the index as it was.
pub async fn rebuild_from_clickhouse(
    store: &Store,
    dir: &Path,
    opts: IndexerOptions,
    position: u64,
    progress: &RebuildProgress,
    mut report: impl FnMut(&str),
) -> Result<RebuildStats, RebuildError> {
    let started = Instant::now();
    let days = store.decision_days().await.map_err(RebuildError::Store)?;
    progress.done.store(0, Ordering::Relaxed);
    progress.total.store(days.iter().map(|(_, n)| n).sum(), Ordering::Relaxed);
    progress.running.store(true, Ordering::Relaxed);
    let first = progress.describe(0, days.len(), started);
    tracing::info!(dir = %dir.display(), position, progress = %first, "index rebuild started");
    report(&first);

    // The index is written on a thread of its own (it inherits this one's priority); rows
    // go to it through a small queue, so memory stays bounded whatever ClickHouse holds. The
    // stream ends with `Ok(None)`: a queue closed without it (this future dropped) is an
    // interruption, and the thread leaves the old index.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Option<AccessDecision>, String>>(4096);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let target = dir.to_owned();
    std::thread::Builder::new()
        .name("gatelog-index-rebuild".into())
        .spawn(move || {
            let rows = std::iter::from_fn(|| match rx.blocking_recv() {
                Some(Ok(Some(decision))) => Some(Ok(decision)),
                Some(Ok(None)) => None,
                Some(Err(e)) => Some(Err(e)),
                None => Some(Err("interrupted".to_owned())),
            });
            let _ = done_tx.send(gatelog_index::try_rebuild(&target, opts, rows, Some(position)));
        })
        .map_err(RebuildError::Spawn)?;

    // A read error stops the thread (which leaves the old index) and is the answer; a send
    // that fails means the thread stopped by itself, and its result says why.
    let mut read_error = None;
    let mut last_report = Instant::now();
    'days: for (i, (day, _)) in days.iter().enumerate() {
        let mut scan = match store.scan_day(*day) {
            Ok(scan) => scan,
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                read_error = Some(e);
                break;
            }
        };
        loop {
            match scan.next().await {
                Ok(Some(decision)) => {
                    if tx.send(Ok(Some(decision))).await.is_err() {
                        break 'days;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string())).await;
                    read_error = Some(e);
                    break 'days;
                }
            }
            progress.done.fetch_add(1, Ordering::Relaxed);
            if last_report.elapsed() >= REPORT_EVERY {
                last_report = Instant::now();
                let line = progress.describe(i + 1, days.len(), started);
                tracing::info!(progress = %line, "index rebuild");
                report(&line);
            }
        }
    }
    if read_error.is_none() {
        let _ = tx.send(Ok(None)).await;
    }
    drop(tx);
    let built = done_rx.await;
    progress.running.store(false, Ordering::Relaxed);
    if let Some(e) = read_error {
        return Err(RebuildError::Store(e));
    }
    let stats = built.map_err(|_| RebuildError::Thread)??;
    progress.completed.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        dir = %dir.display(),
        decisions = stats.decisions,
        days = days.len(),
        position = stats.position,
        seconds = started.elapsed().as_secs_f64(),
        "index rebuilt from clickhouse"
    );
    Ok(stats)
}

/// An exclusive lock on `<data_dir>/index.lock`, held by whoever writes the index: the index
/// sink of `gatelog serve` for as long as it runs, and `gatelog index rebuild`.
#[derive(Debug)]
pub struct IndexLock {
    _file: File,
}

impl IndexLock {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("index.lock")
    }

    /// Takes the lock, or fails at once saying who holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<IndexLock> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        let path = IndexLock::path(data_dir);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(IndexLock { _file: file }),
            Err(TryLockError::WouldBlock) => anyhow::bail!(
                "the index in {} is in use by a running `gatelog serve` (it rebuilds a lost or stale index by itself; \
                 /readyz shows its progress); stop it before running `gatelog index rebuild`",
                data_dir.join("index").display()
            ),
            Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }
}

/// The index options `[index]` and `retention` ask for.
pub fn indexer_options(config: &crate::config::Config) -> IndexerOptions {
    config.indexer_options()
}

/// `gatelog index rebuild`: the index of the data dir again from ClickHouse, with progress.
pub async fn run_cli(args: IndexRebuildArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::resolve(&args.store)?;
    let lock = IndexLock::acquire(&config.data_dir)?;
    let dir = config.data_dir.join("index");
    let target = Target::connect(&config).await?;
    let progress = RebuildProgress::default();
    let rebuilt = tokio::select! {
        result = rebuild(&target.store, &dir, &config, &progress, args.no_progress) => result,
        () = crate::clickhouse::wait_for_shutdown_signal() => Err(anyhow::anyhow!("interrupted; the index in {} is as it was", dir.display())),
    };
    target.shutdown().await;
    drop(lock);
    let (stats, seconds) = rebuilt?;
    crate::print_stdout(&format!(
        "rebuilt the index in {} from ClickHouse: {} decisions in {seconds:.1} s; gatelog serve resumes it from spool position {}\n",
        dir.display(),
        stats.decisions,
        stats.position
    ))?;
    Ok(ExitCode::SUCCESS)
}

async fn rebuild(
    store: &Store,
    dir: &Path,
    config: &crate::config::Config,
    progress: &RebuildProgress,
    no_progress: bool,
) -> anyhow::Result<(RebuildStats, f64)> {
    use std::io::IsTerminal as _;
    let started = Instant::now();
    let position = resume_position(store, config).await?;
    let bar = if no_progress || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
    };
    let print = |line: &str| {
        if bar.is_hidden() {
            // Not a terminal: one line per report, for logs and scripts.
            eprintln!("index rebuild {line}");
        } else {
            bar.set_message(line.to_owned());
        }
    };
    let stats = rebuild_from_clickhouse(store, dir, indexer_options(config), position, progress, print).await;
    bar.finish_and_clear();
    let stats = stats.with_context(|| format!("cannot rebuild the index in {}", dir.display()))?;
    Ok((stats, started.elapsed().as_secs_f64()))
}

/// Where the rebuilt index resumes, with `gatelog serve` stopped: ClickHouse's own position,
/// moved up to the spool's oldest record (what the spool deleted, ClickHouse had stored: it
/// deletes nothing the ClickHouse sink did not acknowledge) and down to its last.
async fn resume_position(store: &Store, config: &crate::config::Config) -> anyhow::Result<u64> {
    let stored = store.max_spool_seq().await.context("cannot read ClickHouse's spool position")?;
    let dir = config.data_dir.join("spool");
    if !dir.is_dir() {
        return Ok(stored);
    }
    let options = gatelog_spool::SpoolOptions { preallocate: false, ..crate::serve::spool_options(config) };
    let spool = gatelog_spool::Spool::open(&dir, options)
        .with_context(|| format!("cannot open the spool in {} to read its positions", dir.display()))?;
    let stats = spool.stats();
    spool.close().await.context("cannot close the spool")?;
    Ok(clamp_position(stored, stats.first_seq, stats.last_seq))
}

/// ClickHouse's position `stored` within what the spool can replay: at least just before
/// its oldest record `first_seq`, at most its last record.
pub fn clamp_position(stored: u64, first_seq: u64, last_seq: u64) -> u64 {
    stored.max(first_seq.saturating_sub(1)).min(last_seq)
}
