//! The ClickHouse sink of `gatelog serve`: spool records → [`Store::write_batch`].
//!
//! Exactly-once, in two layers:
//! - every batch carries a content-derived `batch_id`, and `write_batch` skips a batch whose
//!   `ingest_batches` marker exists (and removes rows a crashed attempt left without one), so
//!   replaying any spool record is harmless;
//! - decisions carry their spool position in `spool_seq`, so on start the sink resumes right
//!   after the highest position ClickHouse holds instead of replaying the whole spool.
//!
//! The spool is acknowledged only after ClickHouse acknowledged the batch, so a segment is
//! never deleted before its rows are stored. Retryable failures (ClickHouse down, overloaded)
//! are retried forever with capped backoff while the spool absorbs new data; the receiver
//! answers 429/503 once the spool is full or this sink lags too far. A fatal failure (a
//! schema mismatch, a batch ClickHouse refuses) stops the sink with the error, loudly:
//! skipping the batch would lose acknowledged data.

use crate::{Store, StoreError};
use gatelog_model::Batch;
use gatelog_spool::{Spool, SpoolError};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
}

/// Counters the binary exports as metrics.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Highest spool position stored.
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

/// Runs until `shutdown` resolves (finishing the batch in hand) or a fatal error.
pub async fn run_clickhouse_sink(
    store: Store,
    spool: Spool,
    stats: Arc<SinkStats>,
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
    stats.position.store(start, Ordering::Relaxed);
    tracing::info!(position = start, "clickhouse sink started");
    let mut reader = spool.reader(start);
    tokio::pin!(shutdown);
    loop {
        let record = tokio::select! {
            biased;
            () = &mut shutdown => break,
            next = reader.next() => match next? {
                Some(record) => record,
                None => break, // the spool was closed
            },
        };
        let mut batch = Batch::decode(&record.payload).map_err(|e| SinkError::Corrupt {
            seq: record.seq,
            detail: e.to_string(),
        })?;
        for d in &mut batch.decisions {
            d.spool_seq = record.seq;
        }
        let mut backoff = BACKOFF_START;
        let outcome = loop {
            match store.write_batch(&batch).await {
                Ok(outcome) => break outcome,
                Err(e) if e.is_retryable() => {
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(seq = record.seq, batch_id = %batch.batch_id, error = %e, retry_in_ms = backoff.as_millis() as u64, "clickhouse write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(source) => {
                    return Err(SinkError::Store {
                        seq: record.seq,
                        source,
                    });
                }
            }
        };
        match outcome {
            crate::WriteOutcome::Written { decisions, .. } => {
                stats.batches_written.fetch_add(1, Ordering::Relaxed);
                stats
                    .decisions_written
                    .fetch_add(decisions, Ordering::Relaxed);
            }
            crate::WriteOutcome::AlreadyStored => {
                stats.batches_skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
        spool.ack(SINK_NAME, record.seq)?;
        stats.position.store(record.seq, Ordering::Relaxed);
        stats.last_received_at_ms.store(
            u64::try_from(batch.received_at.0).unwrap_or(0),
            Ordering::Relaxed,
        );
    }
    tracing::info!(
        position = stats.position.load(Ordering::Relaxed),
        "clickhouse sink stopped"
    );
    Ok(())
}
