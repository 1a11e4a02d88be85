//! The [`Emitter`]: a bounded channel in front of one worker task.
//!
//! `emit` never awaits: it bounds the decision's fields ([`super::bound`]), logs it and
//! `try_send`s it; a full buffer spills the decision to the file directly. The worker sends a batch when it has `batch_size`
//! decisions or `flush_interval` after the batch's first decision; on failure the batch is spilled
//! and, from then on, new batches are appended behind it until a replay (every
//! `retry_interval`) drains the file, so delivery order is kept and nothing acknowledged
//! with a 2xx is sent again.

use super::DecisionSink;
use super::spill::Spill;
use crate::config::DecisionsConfig;
use crate::metrics::{Dropped, Metrics};
use bytes::Bytes;
use gatelog_model::AccessDecision;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Handle used by request handlers.
#[derive(Debug)]
pub struct Emitter {
    tx: mpsc::Sender<AccessDecision>,
    spill: Arc<Spill>,
    metrics: Arc<Metrics>,
    max_query_bytes: usize,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn to_ndjson(decisions: &[AccessDecision]) -> Bytes {
    let mut out = Vec::with_capacity(decisions.len() * 512);
    for d in decisions {
        if serde_json::to_writer(&mut out, d).is_ok() {
            out.push(b'\n');
        }
    }
    Bytes::from(out)
}

fn log_decision(d: &AccessDecision) {
    tracing::info!(
        target: "gatelog::decision",
        event_id = %d.event_id,
        request_id = %d.request_id,
        decision = %d.decision,
        principal = %d.principal,
        roles = %d.roles.join(","),
        resource = %d.resource,
        action = %d.action,
        policy = %d.policy,
        reason = %d.reason,
        status = d.status,
        duration_ms = d.duration_ms,
        rows_read = d.rows_read,
        bytes_read = d.bytes_read,
        result_rows = d.result_rows,
        query_fingerprint = %d.query_fingerprint,
        "decision"
    );
}

impl Emitter {
    /// Starts the worker. Without a sink decisions are only logged.
    pub fn start(
        cfg: &DecisionsConfig,
        sink: Option<Arc<dyn DecisionSink>>,
        spill: Arc<Spill>,
        metrics: Arc<Metrics>,
    ) -> Emitter {
        let (tx, rx) = mpsc::channel(cfg.buffer);
        let (stop_tx, stop_rx) = oneshot::channel();
        let worker = Worker { sink, spill: spill.clone(), metrics: metrics.clone(), cfg: cfg.clone(), retry_at: None };
        let handle = tokio::spawn(worker.run(rx, stop_rx));
        Emitter {
            tx,
            spill,
            metrics,
            max_query_bytes: usize::try_from(cfg.max_query_bytes.as_u64()).unwrap_or(usize::MAX),
            stop: Mutex::new(Some(stop_tx)),
            worker: Mutex::new(Some(handle)),
        }
    }

    /// Bounds, counts, logs and queues one decision. Never waits.
    pub fn emit(&self, mut decision: AccessDecision) {
        let cut = super::bound::bound(&mut decision, self.max_query_bytes);
        if cut > 0 {
            self.metrics.truncated_fields(cut);
        }
        self.metrics.decision(decision.decision);
        log_decision(&decision);
        if let Err(e) = self.tx.try_send(decision) {
            let d = match e {
                mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d) => d,
            };
            if let Err(e) = self.spill.append(&to_ndjson(std::slice::from_ref(&d))) {
                self.metrics.dropped(Dropped::SpillError);
                tracing::error!(error = %e, event_id = %d.event_id, "decision buffer full and spill failed; decision only logged");
            }
        }
    }

    /// Stops the worker after it has flushed (sent or spilled) everything queued.
    pub async fn shutdown(&self) {
        let stop = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let handle = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

struct Worker {
    sink: Option<Arc<dyn DecisionSink>>,
    spill: Arc<Spill>,
    metrics: Arc<Metrics>,
    cfg: DecisionsConfig,
    retry_at: Option<Instant>,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<AccessDecision>, mut stop: oneshot::Receiver<()>) {
        loop {
            let mut batch = Vec::new();
            let mut stopped = tokio::select! {
                biased;
                _ = &mut stop => true,
                d = rx.recv() => match d {
                    Some(d) => { batch.push(d); false }
                    None => true,
                },
                _ = tokio::time::sleep(self.cfg.flush_interval) => false,
            };
            // Linger: a batch goes out when full or `flush_interval` after its first
            // decision. Sending every decision as it came (one POST each under steady
            // load) cost more CPU than the rest of the request path.
            let deadline = Instant::now() + self.cfg.flush_interval;
            while !stopped && !batch.is_empty() && batch.len() < self.cfg.batch_size {
                if let Ok(d) = rx.try_recv() {
                    batch.push(d);
                    continue;
                }
                tokio::select! {
                    biased;
                    _ = &mut stop => stopped = true,
                    d = rx.recv() => match d {
                        Some(d) => batch.push(d),
                        None => stopped = true,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            while batch.len() < self.cfg.batch_size {
                match rx.try_recv() {
                    Ok(d) => batch.push(d),
                    Err(_) => break,
                }
            }
            self.deliver(&batch).await;
            if stopped {
                rx.close();
                loop {
                    let mut rest = Vec::new();
                    while rest.len() < self.cfg.batch_size {
                        match rx.try_recv() {
                            Ok(d) => rest.push(d),
                            Err(_) => break,
                        }
                    }
                    if rest.is_empty() {
                        break;
                    }
                    self.deliver(&rest).await;
                }
                return;
            }
        }
    }

    async fn deliver(&mut self, batch: &[AccessDecision]) {
        let Some(sink) = self.sink.clone() else { return };
        if self.spill.pending() && self.retry_at.is_none_or(|t| Instant::now() >= t) {
            match self.replay(sink.as_ref()).await {
                Ok(()) => self.retry_at = None,
                Err(e) => {
                    tracing::warn!(error = %e, pending_bytes = self.spill.pending_bytes(), "decision pipeline unreachable; keeping spill");
                    self.retry_at = Some(Instant::now() + self.cfg.retry_interval);
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        let body = to_ndjson(batch);
        if !self.spill.pending() {
            match sink.send(body.clone()).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, decisions = batch.len(), "decision pipeline unreachable; spilling");
                    self.retry_at = Some(Instant::now() + self.cfg.retry_interval);
                }
            }
        }
        if let Err(e) = self.spill.append(&body) {
            for _ in batch {
                self.metrics.dropped(Dropped::SpillError);
            }
            tracing::error!(error = %e, decisions = batch.len(), "cannot spill decisions; they are only logged");
        }
    }

    async fn replay(&self, sink: &dyn DecisionSink) -> Result<(), String> {
        loop {
            let chunk = self.spill.read_chunk(self.cfg.batch_size).map_err(|e| format!("reading spill: {e}"))?;
            let Some(chunk) = chunk else { return Ok(()) };
            // A chunk of only bad records has nothing to send; committing skips them.
            if !chunk.ndjson.is_empty() {
                sink.send(Bytes::from(chunk.ndjson)).await?;
            }
            self.spill.commit(chunk.end).map_err(|e| format!("committing spill offset: {e}"))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::BoxFuture;
    use gatelog_model::{EventId, Source, UnixMillis};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[derive(Debug, Default)]
    struct Counting {
        batches: AtomicUsize,
        lines: AtomicUsize,
    }

    impl DecisionSink for Counting {
        fn send(&self, ndjson: Bytes) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async move {
                self.batches.fetch_add(1, Ordering::SeqCst);
                self.lines.fetch_add(ndjson.iter().filter(|b| **b == b'\n').count(), Ordering::SeqCst);
                Ok(())
            })
        }
    }

    fn decision(i: usize) -> AccessDecision {
        AccessDecision::new(EventId::for_decision(&format!("d{i}")), UnixMillis(0), "proxy", Source::Proxy)
    }

    #[tokio::test(start_paused = true)]
    async fn batches_linger_until_full_or_flush_interval() {
        let dir = tempfile::tempdir().unwrap();
        let cfg =
            DecisionsConfig { batch_size: 4, flush_interval: Duration::from_millis(100), ..DecisionsConfig::default() };
        let sink = Arc::new(Counting::default());
        let metrics = Arc::new(Metrics::default());
        let spill = Arc::new(Spill::open(dir.path(), 1 << 20, metrics.clone()).unwrap());
        let emitter = Emitter::start(&cfg, Some(sink.clone()), spill, metrics);
        // Three decisions a little apart: one batch, sent once flush_interval has passed.
        for i in 0..3 {
            emitter.emit(decision(i));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(sink.batches.load(Ordering::SeqCst), 0, "still lingering");
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!((sink.batches.load(Ordering::SeqCst), sink.lines.load(Ordering::SeqCst)), (1, 3));
        // A full batch goes out without waiting.
        for i in 0..4 {
            emitter.emit(decision(10 + i));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!((sink.batches.load(Ordering::SeqCst), sink.lines.load(Ordering::SeqCst)), (2, 7));
        // Shutdown flushes a lingering batch.
        emitter.emit(decision(20));
        emitter.shutdown().await;
        assert_eq!((sink.batches.load(Ordering::SeqCst), sink.lines.load(Ordering::SeqCst)), (3, 8));
    }
}
