//! [`run_sink`]: the spool consumer that feeds the [`Indexer`].
//!
//! The async side only reads the spool and forwards records; every tantivy call (decode,
//! add, commit) and the spool `ack` run on one dedicated thread, never on the runtime.
//! The thread commits when [`Indexer::should_commit`] says so, or on a tick every
//! `commit_interval` when anything waits, and acknowledges the spool only after a complete
//! commit round. On shutdown it commits what it has.

use crate::{IndexError, Indexer};
use gatelog_model::Batch;
use gatelog_spool::{Record, Spool};
use std::future::Future;
use tokio::sync::{mpsc, oneshot};

enum Msg {
    Record(Record),
    Tick,
    Shutdown,
}

/// Consumes the spool as `name` from `indexer.position()` until `shutdown` resolves or the
/// spool closes, then commits and returns. Any error stops the sink; the caller reopens the
/// [`Indexer`] (which recovers its position) and calls this again.
pub async fn run_sink(
    indexer: Indexer,
    spool: Spool,
    name: &str,
    shutdown: impl Future<Output = ()>,
) -> Result<(), IndexError> {
    let position = indexer.position();
    let interval = indexer.options().commit_interval;
    let name = name.to_owned();
    {
        let (spool, name) = (spool.clone(), name.clone());
        tokio::task::spawn_blocking(move || spool.register_consumer(&name, position))
            .await
            .map_err(|e| IndexError::Worker(e.to_string()))??;
    }
    tracing::info!(consumer = %name, position, "index sink started");

    let (tx, rx) = mpsc::channel::<Msg>(8);
    let (done_tx, mut done_rx) = oneshot::channel();
    {
        let (spool, name) = (spool.clone(), name.clone());
        std::thread::Builder::new()
            .name("gatelog-index".into())
            .spawn(move || {
                let result = work(indexer, &spool, &name, rx);
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
    tracing::info!(consumer = %name, ok = result.is_ok(), "index sink stopped");
    result?;
    match read_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn work(mut indexer: Indexer, spool: &Spool, name: &str, mut rx: mpsc::Receiver<Msg>) -> Result<(), IndexError> {
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Record(record) => {
                match Batch::decode(&record.payload) {
                    Ok(batch) => indexer.index_batch(record.seq, &batch)?,
                    Err(e) => {
                        tracing::error!(seq = record.seq, error = %e, "spool record is not a batch; skipped by the index");
                        indexer.skip_record(record.seq);
                    }
                }
                if indexer.should_commit() {
                    commit_and_ack(&mut indexer, spool, name)?;
                }
            }
            Msg::Tick => {
                if indexer.has_pending() {
                    commit_and_ack(&mut indexer, spool, name)?;
                }
            }
            Msg::Shutdown => break,
        }
    }
    commit_and_ack(&mut indexer, spool, name)
}

fn commit_and_ack(indexer: &mut Indexer, spool: &Spool, name: &str) -> Result<(), IndexError> {
    if !indexer.has_pending() {
        return Ok(());
    }
    let docs = indexer.pending_docs();
    let position = indexer.commit()?;
    tracing::debug!(consumer = %name, position, docs, "index committed");
    if let Err(e) = spool.ack(name, position) {
        // The position is safe in the index; the ack only lets the spool delete segments.
        tracing::warn!(consumer = %name, position, error = %e, "spool ack failed");
    }
    Ok(())
}
