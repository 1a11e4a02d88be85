//! [`run_sink`]: the spool consumer that feeds the [`Indexer`].
//!
//! The async side only reads the spool and forwards records; every tantivy call (decode,
//! add, commit) and the spool `ack` run on one dedicated thread, never on the runtime.
//! The thread commits when [`Indexer::should_commit`] says so, or on a tick every
//! `commit_interval` when anything waits, and acknowledges the spool only after a complete
//! commit round. On shutdown it commits what it has. Each complete round is counted in the
//! caller's [`IndexSinkStats`] (documents, batches, position, lag).
//!
//! The thread inherits the CPU priority of the thread that calls [`run_sink`], and tantivy's
//! indexing and merge threads inherit the thread's: `gatelog serve` runs the sink on a
//! background-priority thread, so on a small machine the HTTP receiver's mapping (what a
//! client waits for) comes first, and the index catches up in the gaps. It cannot fall
//! behind unnoticed: its lag is on `/metrics`, and the receiver answers 503 once it exceeds
//! `receiver.max_lag_records`.

use crate::stats::Pending;
use crate::{IndexError, IndexSinkStats, Indexer};
use gatelog_model::Batch;
use gatelog_spool::{Record, Spool};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot};

enum Msg {
    Record(Record),
    Tick,
    Shutdown,
}

/// Consumes the spool as `name` from `indexer.position()` until `shutdown` resolves or the
/// spool closes, then commits and returns. Any error stops the sink; the caller reopens the
/// [`Indexer`] (which recovers its position) and calls this again. `stats` follows every
/// complete commit round.
pub async fn run_sink(
    indexer: Indexer,
    spool: Spool,
    name: &str,
    stats: Arc<IndexSinkStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), IndexError> {
    let position = indexer.position();
    stats.position.store(position, Ordering::Relaxed);
    let interval = indexer.options().commit_interval;
    let name = name.to_owned();
    {
        let (spool, name) = (spool.clone(), name.clone());
        tokio::task::spawn_blocking(move || spool.register_consumer(&name, position))
            .await
            .map_err(|e| IndexError::Worker(e.to_string()))??;
    }
    tracing::info!(consumer = %name, position, "index sink started");

    // Two records in flight are enough to keep the thread busy; the spool is the buffer.
    let (tx, rx) = mpsc::channel::<Msg>(2);
    let (done_tx, mut done_rx) = oneshot::channel();
    {
        let (spool, name) = (spool.clone(), name.clone());
        std::thread::Builder::new()
            .name("gatelog-index".into())
            .spawn(move || {
                let result = work(indexer, &spool, &name, &stats, rx);
                let _ = done_tx.send(result);
            })
            .map_err(IndexError::io("spawning the index thread", ""))?;
    }
    let ticker = {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if tx.send(Msg::Tick).await.is_err() {
                    break;
                }
            }
        })
    };

    let mut reader = spool.reader(position);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut read_error = None;
    let mut worker_done = None;
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            result = &mut done_rx => { worker_done = Some(result); break }
            record = reader.next() => match record {
                Ok(Some(record)) => {
                    if tx.send(Msg::Record(record)).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => { read_error = Some(e); break }
            },
        }
    }
    ticker.abort();
    let _ = tx.send(Msg::Shutdown).await;
    drop(tx);
    let result = match worker_done {
        Some(result) => result,
        None => done_rx.await,
    };
    let result = result.unwrap_or_else(|_| Err(IndexError::Worker("index thread panicked".into())));
    let result = result.and_then(|()| read_error.map_or(Ok(()), |e| Err(e.into())));
    match &result {
        Ok(()) => tracing::info!(consumer = %name, "index sink stopped"),
        // Said now, not only when gatelog stops: acks go on while nothing more is indexed.
        Err(e) => {
            tracing::error!(consumer = %name, error = %e, "index sink stopped; nothing more is indexed until gatelog restarts")
        }
    }
    result
}

/// The sink thread: its indexer, where it acks, and what it counts.
struct Worker<'a> {
    indexer: Indexer,
    spool: &'a Spool,
    name: &'a str,
    stats: &'a IndexSinkStats,
    pending: Pending,
}

fn work(
    indexer: Indexer,
    spool: &Spool,
    name: &str,
    stats: &IndexSinkStats,
    mut rx: mpsc::Receiver<Msg>,
) -> Result<(), IndexError> {
    let mut w = Worker { indexer, spool, name, stats, pending: Pending::default() };
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Record(record) => {
                match Batch::decode_without_raw(&record.payload) {
                    Ok(batch) => {
                        let before = w.indexer.added_docs();
                        w.indexer.index_batch(record.seq, &batch)?;
                        let added = w.indexer.added_docs() - before;
                        w.stats.added(&mut w.pending, &batch.dataset, batch.received_at, added);
                    }
                    Err(e) => {
                        tracing::error!(seq = record.seq, error = %e, "spool record is not a batch; skipped by the index");
                        w.indexer.skip_record(record.seq);
                    }
                }
                if w.indexer.should_commit() {
                    w.commit_and_ack()?;
                }
            }
            Msg::Tick => {
                if w.indexer.has_pending() {
                    w.commit_and_ack()?;
                }
            }
            Msg::Shutdown => break,
        }
    }
    w.commit_and_ack()
}

impl Worker<'_> {
    fn commit_and_ack(&mut self) -> Result<(), IndexError> {
        let Worker { indexer, spool, name, stats, pending } = self;
        if !indexer.has_pending() {
            return Ok(());
        }
        let docs = indexer.pending_docs();
        let position = indexer.commit()?;
        stats.committed(std::mem::take(pending), position);
        tracing::debug!(consumer = %name, position, docs, "index committed");
        if let Err(e) = spool.ack(name, position) {
            // The position is safe in the index; the ack only lets the spool delete segments.
            tracing::warn!(consumer = %name, position, error = %e, "spool ack failed");
        }
        Ok(())
    }
}
