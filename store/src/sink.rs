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
//! Reading, decoding, acknowledging, lag and status go through a [`Consumer`] like every
//! other reader of the spool; so does its policy for a record that does not decode (stop and
//! name it). A stored position older than the spool's oldest record resumes at the oldest
//! ([`WhenGone::ResumeAtOldest`], with a warning naming the gap): ClickHouse is the store of
//! record, and nothing else could refill it.
//!
//! Retryable failures (ClickHouse down, overloaded) are retried forever with capped backoff
//! while the spool absorbs new data, the status saying `waiting` with the error; the receiver
//! answers 429/503 once the spool is full or this sink lags too far. A fatal failure (a
//! schema mismatch, a batch ClickHouse refuses) stops the sink with the error, loudly:
//! skipping the batch would lose acknowledged data.
//!
//! Shutdown is honoured mid-write too: a group whose insert (or its retries) has not finished
//! [`SinkOptions::stop_grace`] after `shutdown` resolved is abandoned, unacknowledged, and
//! written again at the next start, where its rows are checked for an interrupted attempt
//! first. So a hung or unreachable ClickHouse never holds the process for longer.

use crate::durability::Durability;
use crate::{PartialCheck, Store, StoreError, WriteOutcome};
use gatelog_consumer::{Acker, Consumer, ConsumerError, Decode, Delivery, Status, WhenGone};
use gatelog_model::Batch;
use gatelog_spool::Spool;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Why the sink stopped.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Reading the spool failed, or a record does not decode (the error names it).
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error("clickhouse refused batch at spool position {seq}: {source}")]
    Store { seq: u64, source: StoreError },
    #[error("cannot find where to resume: {0}")]
    Resume(StoreError),
    /// The rows are stored but could not be made durable; the spool keeps them.
    #[error("cannot make the rows stored up to spool position {seq} durable: {source}")]
    Durability { seq: u64, source: std::io::Error },
}

/// Counters the binary exports as metrics (the position and lag are the [`Status`]'s).
#[derive(Debug, Default)]
pub struct SinkStats {
    pub batches_written: AtomicU64,
    pub batches_skipped: AtomicU64,
    pub decisions_written: AtomicU64,
    pub retries: AtomicU64,
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
    /// At shutdown, how long a write in progress may still take before it is abandoned (left
    /// in the spool for the next start).
    pub stop_grace: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            max_lines: 100_000,
            max_bytes: 32 * 1024 * 1024,
            linger: Duration::from_secs(1),
            stop_grace: Duration::from_secs(2),
        }
    }
}

/// Runs until `shutdown` resolves or a fatal error; `status` (named [`SINK_NAME`]) follows it.
/// At shutdown a group in hand is acknowledged if its write completed, abandoned if not (see
/// the module docs). `durability`: see the module docs; `None` acknowledges once ClickHouse
/// answered.
pub async fn run_clickhouse_sink(
    store: Store,
    spool: Spool,
    status: Arc<Status>,
    stats: Arc<SinkStats>,
    options: SinkOptions,
    durability: Option<Arc<dyn Durability>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SinkError> {
    let mut shutdown = Shutdown(Some(Box::pin(shutdown)));
    let start = tokio::select! {
        biased;
        () = shutdown.wait() => return Ok(()),
        start = resume_position(&store, &status) => start?,
    };
    let start = start.min(spool.last_seq());
    let mut consumer =
        Consumer::register(&spool, status.clone(), start, WhenGone::ResumeAtOldest, Decode::Full).await?;
    let start = status.position();
    // Records up to here may have been half-written by an earlier process; later ones cannot.
    let head_at_start = spool.last_seq();
    let (written, written_rx) = watch::channel(start);
    let acknowledging = acknowledge(consumer.acker(), durability, written_rx);
    let writing = async {
        // A record read but left for the next group (it would have crossed a month).
        let mut carried: Option<Delivery> = None;
        // A read that failed after a group had started: the group is stored first.
        let mut failed: Option<SinkError> = None;
        loop {
            let first = match carried.take() {
                Some(d) => d,
                None => tokio::select! {
                    biased;
                    () = shutdown.wait() => break,
                    next = consumer.next() => match next {
                        Ok(Some(d)) => stamped(d),
                        Ok(None) => break, // the spool was closed
                        // What was written before it is still acknowledged (below).
                        Err(e) => {
                            failed = Some(e.into());
                            break;
                        }
                    },
                },
            };
            let (group, next) = gather(first, &mut consumer, options).await;
            let next = next.unwrap_or_else(|e| {
                failed = Some(e);
                None
            });
            carried = next;
            let check =
                if group.iter().any(|d| d.seq <= head_at_start) { PartialCheck::Always } else { PartialCheck::OnRetry };
            let cutoff = async {
                shutdown.wait().await;
                tokio::time::sleep(options.stop_grace).await;
            };
            tokio::select! {
                biased;
                written = write_group(&store, &group, check, &status, &stats) => written?,
                () = cutoff => {
                    tracing::warn!(first_seq = group.first().map_or(0, |d| d.seq), records = group.len(),
                        "clickhouse sink: a write did not finish in time at shutdown; its records stay in the spool for the next start");
                    break;
                }
            }
            written.send_replace(group.last().map_or(start, |d| d.seq));
            if failed.is_some() {
                break;
            }
        }
        // Tells the acknowledging side that nothing more comes (it then acknowledges the rest).
        drop(written);
        Ok::<Option<SinkError>, SinkError>(failed)
    };
    let (failed, ()) = tokio::try_join!(writing, acknowledging)?;
    if let Some(e) = failed {
        return Err(e);
    }
    tracing::info!(position = status.position(), "clickhouse sink stopped");
    Ok(())
}

/// The shutdown signal, which may be awaited again once it fired.
struct Shutdown<'a>(Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>>);

impl Shutdown<'_> {
    async fn wait(&mut self) {
        if let Some(signal) = self.0.as_mut() {
            signal.await;
            self.0 = None;
        }
    }
}

/// The highest spool position ClickHouse holds, retried while ClickHouse is unreachable.
async fn resume_position(store: &Store, status: &Status) -> Result<u64, SinkError> {
    loop {
        match store.max_spool_seq().await {
            Ok(seq) => return Ok(seq),
            Err(e) if e.is_retryable() => {
                status.set_waiting(format!("cannot read where to resume from ClickHouse: {e}"));
                tokio::time::sleep(BACKOFF_MAX).await;
            }
            Err(e) => return Err(SinkError::Resume(e)),
        }
    }
}

/// Acknowledges to the spool each position the writing side reports, after `durability` made
/// the rows up to it durable; ends once the writing side is done and everything it reported is
/// acknowledged. A failed sync is fatal: after a failed `syncfs` the kernel may have dropped
/// the pages it could not write, so a retry that succeeds proves nothing.
async fn acknowledge(
    acker: Acker,
    durability: Option<Arc<dyn Durability>>,
    mut written: watch::Receiver<u64>,
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
            acker.ack(position)?;
            acked = position;
        }
        if !more {
            return Ok(());
        }
    }
}

/// The record's decisions carry its spool position (the resume position's other half).
fn stamped(mut d: Delivery) -> Delivery {
    for decision in &mut d.batch.decisions {
        decision.spool_seq = d.seq;
    }
    d
}

/// The calendar month of a batch's arrival: `ingest_batches` is partitioned by it, and the
/// markers of one group must be one part (one atomic insert) for the resume position to be
/// safe, so a group never spans two months.
fn month(batch: &Batch) -> String {
    batch.received_at.to_rfc3339().chars().take(7).collect()
}

/// Adds records to `first` while they are durable within `options.linger` and the group is
/// below its limits; returns the group and a record that belongs to the next one, or the
/// error that ended the group (the group before it is still to be stored).
async fn gather(
    first: Delivery,
    consumer: &mut Consumer,
    options: SinkOptions,
) -> (Vec<Delivery>, Result<Option<Delivery>, SinkError>) {
    let deadline = tokio::time::Instant::now() + options.linger;
    let group_month = month(&first.batch);
    let (mut lines, mut bytes) = (first.batch.lines, first.batch.bytes);
    let mut group = vec![first];
    while lines < options.max_lines && bytes < options.max_bytes {
        let next = match consumer.try_next().await {
            Ok(Some(d)) => stamped(d),
            Ok(None) => match consumer.next_until(deadline).await {
                Ok(Some(d)) => stamped(d),
                Ok(None) => break, // the linger is over, or the spool closed
                Err(e) => return (group, Err(e.into())),
            },
            Err(e) => return (group, Err(e.into())),
        };
        if month(&next.batch) != group_month {
            return (group, Ok(Some(next)));
        }
        lines += next.batch.lines;
        bytes += next.batch.bytes;
        group.push(next);
    }
    (group, Ok(None))
}

/// Writes a group, retrying retryable failures forever with capped backoff (the status says
/// `waiting` meanwhile).
async fn write_group(
    store: &Store,
    group: &[Delivery],
    check: PartialCheck,
    status: &Status,
    stats: &SinkStats,
) -> Result<(), SinkError> {
    let batches: Vec<(u64, &Batch)> = group.iter().map(|d| (d.seq, &d.batch)).collect();
    let mut backoff = BACKOFF_START;
    let outcomes = loop {
        match store.write_batches(&batches, check).await {
            Ok(outcomes) => break outcomes,
            Err(e) if e.is_retryable() => {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                status.set_waiting(format!("cannot write to ClickHouse, retrying: {e}"));
                tracing::warn!(first_seq = batches.first().map_or(0, |b| b.0), records = batches.len(), error = %e, retry_in_ms = backoff.as_millis() as u64, "clickhouse write failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(source) => {
                return Err(SinkError::Store { seq: batches.first().map_or(0, |b| b.0), source });
            }
        }
    };
    status.set_running();
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
