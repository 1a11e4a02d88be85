//! [`run_sink`]: the spool consumer that feeds the [`Indexer`].
//!
//! The spool side (register, read, decode, acknowledge, lag, status, and the policy for a
//! record that does not decode: stop and name it) is a [`Consumer`], as for every reader of
//! the spool. The async side reads and decodes, forwarding each batch; every tantivy call
//! (add, commit) and the spool acknowledgement run on one dedicated thread, never on the
//! runtime. The thread commits when [`Indexer::should_commit`] says so, or on a tick every
//! `commit_interval` when anything waits, and acknowledges only after a complete commit
//! round. On shutdown it commits what it has. Each complete round is counted in the caller's
//! [`IndexSinkStats`].
//!
//! A stored position older than the spool's oldest record fails ([`WhenGone::Fail`]): the
//! records in between exist only in ClickHouse, so the caller rebuilds the index from there
//! ([`crate::rebuild`]). On every tick the thread also checks that the index directory is
//! still the one it opened ([`Indexer::check_intact`]), so an index deleted under a running
//! server is noticed within a `commit_interval` rather than at the next write; and a write
//! or commit that fails is checked the same way, so one that failed because the directory
//! went away is reported as the lost index it is ([`IndexError::Lost`], rebuilt by the
//! caller), not as a broken one.
//!
//! Retention ([`crate::IndexerOptions::retention`]) is applied on the ticks too: a day index
//! wholly older than it is deleted ([`Indexer::expire`]), at the latest a `commit_interval`
//! after midnight UTC.
//!
//! The thread inherits the CPU priority of the thread that calls [`run_sink`], and tantivy's
//! indexing and merge threads inherit the thread's: `gatelog serve` runs the sink on a
//! background-priority thread, so on a small machine the HTTP receiver's mapping (what a
//! client waits for) comes first, and the index catches up in the gaps. It cannot fall
//! behind unnoticed: its lag is on `/metrics`, and the receiver answers 503 once it exceeds
//! `receiver.max_lag_records`.

use crate::stats::Pending;
use crate::{IndexError, IndexSinkStats, Indexer};
use gatelog_consumer::{Acker, Consumer, Decode, Delivery, Status, WhenGone};
use gatelog_model::{Clock as _, SystemClock};
use gatelog_spool::Spool;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

enum Msg {
    Delivery(Box<Delivery>),
    Tick,
    Shutdown,
}

/// Consumes the spool as `status`'s consumer from `indexer.position()` until `shutdown`
/// resolves or the spool closes, then commits and returns. Any error stops the sink; the
/// caller reopens the [`Indexer`] (which recovers its position), or rebuilds it, and calls
/// this again. `stats` follows every complete commit round.
pub async fn run_sink(
    indexer: Indexer,
    spool: Spool,
    status: Arc<Status>,
    stats: Arc<IndexSinkStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), IndexError> {
    let position = indexer.position();
    let interval = indexer.options().commit_interval;
    let name = status.name();
    let mut consumer = Consumer::register(&spool, status, position, WhenGone::Fail, Decode::WithoutRaw).await?;

    // Two batches in flight are enough to keep the thread busy; the spool is the buffer.
    let (tx, rx) = mpsc::channel::<Msg>(2);
    let (done_tx, mut done_rx) = oneshot::channel();
    {
        let acker = consumer.acker();
        std::thread::Builder::new()
            .name("gatelog-index".into())
            .spawn(move || {
                let result = work(indexer, acker, &stats, rx);
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

    let mut shutdown = std::pin::pin!(shutdown);
    let mut read_error = None;
    let mut worker_done = None;
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            result = &mut done_rx => { worker_done = Some(result); break }
            next = consumer.next() => match next {
                Ok(Some(delivery)) => {
                    if tx.send(Msg::Delivery(Box::new(delivery))).await.is_err() {
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
    // A read error comes first: the thread only stopped because of it.
    let result = match read_error {
        Some(e) => Err(e.into()),
        None => result,
    };
    if result.is_ok() {
        tracing::info!(consumer = name, "index sink stopped");
    }
    result
}

/// The sink thread: its indexer, where it acks, and what it counts.
struct Worker<'a> {
    indexer: Indexer,
    acker: Acker,
    stats: &'a IndexSinkStats,
    pending: Pending,
}

fn work(indexer: Indexer, acker: Acker, stats: &IndexSinkStats, rx: mpsc::Receiver<Msg>) -> Result<(), IndexError> {
    let mut w = Worker { indexer, acker, stats, pending: Pending::default() };
    match w.run(rx) {
        // A write that failed because the directory went away is a lost index (rebuilt),
        // not a broken one (which stops the sink): say which it was.
        Err(e) if !e.needs_rebuild() => match w.indexer.check_intact() {
            Err(lost) if lost.needs_rebuild() => {
                tracing::debug!(error = %e, "index write failed because the index is gone");
                Err(lost)
            }
            _ => Err(e),
        },
        other => other,
    }
}

impl Worker<'_> {
    fn run(&mut self, mut rx: mpsc::Receiver<Msg>) -> Result<(), IndexError> {
        let w = self;
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Delivery(delivery) => {
                    let Delivery { seq, batch } = *delivery;
                    let before = w.indexer.added_docs();
                    w.indexer.index_batch(seq, &batch)?;
                    let added = w.indexer.added_docs() - before;
                    w.pending.added(&batch.dataset, added);
                    if w.indexer.should_commit() {
                        w.commit_and_ack()?;
                    }
                }
                Msg::Tick => {
                    w.indexer.check_intact()?;
                    w.indexer.expire(SystemClock.now())?;
                    if w.indexer.has_pending() {
                        w.commit_and_ack()?;
                    }
                }
                Msg::Shutdown => break,
            }
        }
        w.commit_and_ack()
    }

    fn commit_and_ack(&mut self) -> Result<(), IndexError> {
        let Worker { indexer, acker, stats, pending } = self;
        if !indexer.has_pending() {
            return Ok(());
        }
        let docs = indexer.pending_docs();
        let position = indexer.commit()?;
        stats.committed(std::mem::take(pending));
        tracing::debug!(position, docs, "index committed");
        acker.ack(position)?;
        Ok(())
    }
}
