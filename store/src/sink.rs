//! The ClickHouse sink of `gatelog serve`: spool records → [`Store::write_batch`].
//!
//! Exactly-once, in two layers:
//! - every batch carries a content-derived `batch_id`, and `write_batch` skips a batch whose
//!   `ingest_batches` marker exists (and removes rows a crashed attempt left without one), so
//!   replaying any spool record is harmless;
//! - decisions and batch markers carry their spool position in `spool_seq`, so on start the
//!   sink resumes right after the highest committed position instead of replaying the spool.
//!
//! Records are written in groups (up to [`SinkOptions`]' lines/bytes, waiting at most its
//! `linger` for more), one `INSERT` per table per group, each record keeping its own batch id
//! and marker. The resume position is the highest `spool_seq` among the `ingest_batches`
//! markers, which are written after the rows they cover, one insert per group.
//!
//! The spool is acknowledged only after ClickHouse acknowledged the batch, so a segment is
//! never deleted before its rows are stored; with a [`Durability`] (managed ClickHouse), only
//! once they are also on disk. The acknowledging runs next to the writing: a sync covers every
//! group written before it started, so under load one sync acknowledges several groups.
//!
//! Retryable failures (ClickHouse down, overloaded) are retried forever with capped backoff while the spool absorbs new data; the receiver
//! answers 429/503 once the spool is full or this sink lags too far. A fatal failure (a
//! schema mismatch, a batch ClickHouse refuses) stops the sink with the error, loudly:
//! skipping the batch would lose acknowledged data.

use crate::durability::Durability;
use crate::{PartialCheck, Store, StoreError, WriteOutcome};
use gatelog_model::Batch;
use gatelog_spool::{Spool, SpoolError};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Why the sink stopped.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
    #[error("clickhouse refused batch at spool position {seq}: {source}")]
    Store { seq: u64, source: StoreError },
    #[error("cannot find where to resume: {0}")]
    Resume(StoreError),
    #[error("spool record {seq} is not a batch: {detail}")]
    Corrupt { seq: u64, detail: String },
    /// The rows are stored but could not be made durable; the spool keeps them.
    #[error("cannot make the rows stored up to spool position {seq} durable: {source}")]
    Durability { seq: u64, source: std::io::Error },
}

/// Counters the binary exports as metrics.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Highest spool position stored and acknowledged to the spool (so, with a
    /// [`Durability`], also synced).
    pub position: AtomicU64,
    pub batches_written: AtomicU64,
    pub batches_skipped: AtomicU64,
    pub decisions_written: AtomicU64,
    pub retries: AtomicU64,
    /// Milliseconds since the epoch of the last stored batch's `received_at`.
    pub last_received_at_ms: AtomicU64,
}

/// The consumer name the sink registers with the spool.
pub const SINK_NAME: &str = "clickhouse";

const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// How the sink groups spool records into writes. Each record is one HTTP body (often a few
/// thousand lines); writing them one by one would make a ClickHouse part per table per body,
/// which the server then spends its CPU merging (and refuses past `parts_to_throw_insert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkOptions {
    /// A group closes once its records hold this many lines.
    pub max_lines: u64,
    /// ... or this many (uncompressed) bytes: bounds the sink's memory.
    pub max_bytes: u64,
    /// How long a group that is not full waits for more records.
    pub linger: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions { max_lines: 100_000, max_bytes: 32 * 1024 * 1024, linger: Duration::from_secs(1) }
    }
}

/// A spool record decoded, with its position.
struct Pending {
    seq: u64,
    batch: Batch,
}

/// Runs until `shutdown` resolves (finishing the group in hand, and acknowledging it) or a
/// fatal error. `durability`: see the module docs; `None` acknowledges once ClickHouse answered.
pub async fn run_clickhouse_sink(
    store: Store,
    spool: Spool,
    stats: Arc<SinkStats>,
    options: SinkOptions,
    durability: Option<Arc<dyn Durability>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SinkError> {
    let start = loop {
        match store.max_spool_seq().await {
            Ok(seq) => break seq.min(spool.last_seq()),
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "clickhouse unreachable; sink waits to resume");
                tokio::time::sleep(BACKOFF_MAX).await;
            }
            Err(e) => return Err(SinkError::Resume(e)),
        }
    };
    // A position older than the spool's oldest record means those records were acknowledged
    // by this sink before (the spool only deletes what every consumer acked).
    let start = match spool.register_consumer(SINK_NAME, start) {
        Ok(()) => start,
        Err(SpoolError::PositionGone { oldest, .. }) => {
            let resumed = oldest.saturating_sub(1);
            spool.register_consumer(SINK_NAME, resumed)?;
            resumed
        }
        Err(e) => return Err(e.into()),
    };
    // Records up to here may have been half-written by an earlier process; later ones cannot.
    let head_at_start = spool.last_seq();
    stats.position.store(start, Ordering::Relaxed);
    tracing::info!(position = start, "clickhouse sink started");
    let (written, written_rx) = watch::channel(start);
    let acknowledging = acknowledge(&spool, durability, written_rx, &stats);
    let writing = async {
        let mut reader = spool.reader(start);
        tokio::pin!(shutdown);
        // A record read but left for the next group (it would have crossed a month).
        let mut carried: Option<Pending> = None;
        loop {
            let first = match carried.take() {
                Some(p) => p,
                None => {
                    let record = tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        next = reader.next() => match next? {
                            Some(record) => record,
                            None => break, // the spool was closed
                        },
                    };
                    decode(record)?
                }
            };
            let (group, next) = gather(first, &mut reader, options).await?;
            carried = next;
            let check =
                if group.iter().any(|p| p.seq <= head_at_start) { PartialCheck::Always } else { PartialCheck::OnRetry };
            write_group(&store, &group, check, &stats).await?;
            let last = group.last().map_or(start, |p| p.seq);
            written.send_replace(last);
            let newest = group.iter().map(|p| p.batch.received_at.0).max().unwrap_or(0);
            stats.last_received_at_ms.store(u64::try_from(newest).unwrap_or(0), Ordering::Relaxed);
        }
        // Tells the acknowledging side that nothing more comes (it then acknowledges the rest).
        drop(written);
        Ok::<(), SinkError>(())
    };
    tokio::try_join!(writing, acknowledging)?;
    tracing::info!(position = stats.position.load(Ordering::Relaxed), "clickhouse sink stopped");
    Ok(())
}

/// Acknowledges to the spool each position the writing side reports, after `durability` made
/// the rows up to it durable; ends once the writing side is done and everything it reported is
/// acknowledged. A failed sync is fatal: after a failed `syncfs` the kernel may have dropped
/// the pages it could not write, so a retry that succeeds proves nothing.
async fn acknowledge(
    spool: &Spool,
    durability: Option<Arc<dyn Durability>>,
    mut written: watch::Receiver<u64>,
    stats: &SinkStats,
) -> Result<(), SinkError> {
    let mut acked = *written.borrow_and_update();
    loop {
        let more = written.changed().await.is_ok();
        let position = *written.borrow_and_update();
        if position > acked {
            if let Some(durability) = &durability {
                let (durability, started) = (durability.clone(), Instant::now());
                let synced = tokio::task::spawn_blocking(move || durability.sync()).await;
                synced
                    .map_err(std::io::Error::other)
                    .and_then(|r| r)
                    .map_err(|source| SinkError::Durability { seq: position, source })?;
                tracing::debug!(
                    position,
                    ms = started.elapsed().as_millis() as u64,
                    "clickhouse sink: stored rows synced"
                );
            }
            spool.ack(SINK_NAME, position)?;
            stats.position.store(position, Ordering::Relaxed);
            acked = position;
        }
        if !more {
            return Ok(());
        }
    }
}

fn decode(record: gatelog_spool::Record) -> Result<Pending, SinkError> {
    let mut batch =
        Batch::decode(&record.payload).map_err(|e| SinkError::Corrupt { seq: record.seq, detail: e.to_string() })?;
    for d in &mut batch.decisions {
        d.spool_seq = record.seq;
    }
    Ok(Pending { seq: record.seq, batch })
}

/// The calendar month of a batch's arrival: `ingest_batches` is partitioned by it, and the
/// markers of one group must be one part (one atomic insert) for the resume position to be
/// safe, so a group never spans two months.
fn month(batch: &Batch) -> String {
    batch.received_at.to_rfc3339().chars().take(7).collect()
}

/// Adds records to `first` while they are durable within `options.linger` and the group is
/// below its limits; returns the group and a record that belongs to the next one.
async fn gather(
    first: Pending,
    reader: &mut gatelog_spool::SpoolReader,
    options: SinkOptions,
) -> Result<(Vec<Pending>, Option<Pending>), SinkError> {
    let deadline = tokio::time::Instant::now() + options.linger;
    let group_month = month(&first.batch);
    let (mut lines, mut bytes) = (first.batch.lines, first.batch.bytes);
    let mut group = vec![first];
    while lines < options.max_lines && bytes < options.max_bytes {
        let next = match reader.try_next().await? {
            Some(record) => record,
            None => match tokio::time::timeout_at(deadline, reader.next()).await {
                Ok(Ok(Some(record))) => record,
                Ok(Ok(None)) | Err(_) => break, // closed, or the linger is over
                Ok(Err(e)) => return Err(e.into()),
            },
        };
        let pending = decode(next)?;
        if month(&pending.batch) != group_month {
            return Ok((group, Some(pending)));
        }
        lines += pending.batch.lines;
        bytes += pending.batch.bytes;
        group.push(pending);
    }
    Ok((group, None))
}

/// Writes a group, retrying retryable failures forever with capped backoff.
async fn write_group(
    store: &Store,
    group: &[Pending],
    check: PartialCheck,
    stats: &SinkStats,
) -> Result<(), SinkError> {
    let batches: Vec<(u64, &Batch)> = group.iter().map(|p| (p.seq, &p.batch)).collect();
    let mut backoff = BACKOFF_START;
    let outcomes = loop {
        match store.write_batches(&batches, check).await {
            Ok(outcomes) => break outcomes,
            Err(e) if e.is_retryable() => {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(first_seq = batches.first().map_or(0, |b| b.0), records = batches.len(), error = %e, retry_in_ms = backoff.as_millis() as u64, "clickhouse write failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(source) => {
                return Err(SinkError::Store { seq: batches.first().map_or(0, |b| b.0), source });
            }
        }
    };
    for outcome in outcomes {
        match outcome {
            WriteOutcome::Written { decisions, .. } => {
                stats.batches_written.fetch_add(1, Ordering::Relaxed);
                stats.decisions_written.fetch_add(decisions, Ordering::Relaxed);
            }
            WriteOutcome::AlreadyStored => {
                stats.batches_skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}
