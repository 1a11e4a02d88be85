//! `gatelog serve`: the HTTP receiver writes batches to the spool; two sinks read it, one
//! into ClickHouse and one into the tantivy index, each committing its own position with its
//! data; `/v1/search` queries the index.
//!
//! Shutdown (SIGINT/SIGTERM): stop accepting, finish in-flight requests, give the sinks up to
//! `server.drain_timeout` to store what the spool holds, stop them, close the spool, stop
//! managed ClickHouse. Whatever is left stays in the spool for the next start.

pub mod search;

use crate::cli::ServeArgs;
use crate::clickhouse::Target;
use anyhow::Context;
use gatelog_index::{Indexer, IndexerOptions, Searcher};
use gatelog_ingest::http::{MetricsCollector, ReceiverState, TextWriter};
use gatelog_model::{Clock, SystemClock};
use gatelog_spool::{Spool, SpoolOptions};
use gatelog_store::sink::{SINK_NAME, SinkStats, run_clickhouse_sink};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const INDEX_SINK: &str = "index";

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut overrides = args.store.overrides();
    overrides.listen = args.listen;
    overrides.ingest_tokens = args.ingest_tokens.clone();
    let config = crate::config::Config::load(args.store.config.as_deref())?.apply(overrides);
    config.validate()?;

    let spool_dir = config.data_dir.join("spool");
    // One batch may take at most half the spool, so a small spool still opens (a larger
    // batch is answered 413 by the receiver instead).
    let max_bytes = config.spool.max_bytes.as_u64();
    let spool = Spool::open(
        &spool_dir,
        SpoolOptions {
            max_record_bytes: SpoolOptions::default().max_record_bytes.min(max_bytes / 2),
            max_bytes,
            segment_bytes: config.spool.segment_bytes.as_u64(),
            fsync: config.spool.fsync,
        },
    )
    .with_context(|| format!("cannot open the spool in {}", spool_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen / --listen)", config.server.listen))?;
    let target = Target::connect(&config).await?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let receiver = ReceiverState::new(config.receiver.clone(), spool.clone(), clock.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let ch_stats = Arc::new(SinkStats::default());
    receiver.metrics().register_collector(Arc::new(SinkMetrics { stats: ch_stats.clone(), clock: clock.clone() }));
    let ch_sink = tokio::spawn(run_clickhouse_sink(target.store.clone(), spool.clone(), ch_stats.clone(), stopped(stop_rx.clone())));

    let index_dir = config.data_dir.join("index");
    let index_sink = if config.index.enabled {
        let opts = IndexerOptions { commit_interval: config.index.commit_interval, ..IndexerOptions::default() };
        let indexer = Indexer::open(&index_dir, opts).with_context(|| format!("cannot open the index in {}", index_dir.display()))?;
        let spool = spool.clone();
        let rx = stop_rx.clone();
        Some(tokio::spawn(async move { gatelog_index::run_sink(indexer, spool, INDEX_SINK, stopped(rx)).await }))
    } else {
        None
    };
    let searcher = Arc::new(Searcher::open(&index_dir, &config.clickhouse.database));

    let app = gatelog_ingest::http::router(receiver.clone())
        .merge(search::router(search::SearchState { receiver: receiver.clone(), searcher, enabled: config.index.enabled }));
    let addr = listener.local_addr().context("cannot read the listening address")?;
    tracing::info!(%addr, clickhouse = %target.url, spool = %spool_dir.display(), "gatelog serve is listening");
    crate::print_stdout(&format!(
        "gatelog serve listening on http://{addr}\n  POST /v1/logpush/{{dataset}}  POST /v1/tail  POST /v1/decisions\n  GET /v1/search?q=  GET /metrics  GET /readyz\n"
    ))?;

    let served = axum::serve(listener, app)
        .with_graceful_shutdown(crate::clickhouse::wait_for_shutdown_signal())
        .await;
    tracing::info!("http listener stopped; draining the spool into the sinks");

    drain(&spool, &ch_stats, config.server.drain_timeout).await;
    let _ = stop_tx.send(true);
    let ch_result = ch_sink.await;
    let index_result = match index_sink {
        Some(handle) => Some(handle.await),
        None => None,
    };
    spool.close().await.context("cannot close the spool")?;
    target.shutdown().await;

    served.context("the http server failed")?;
    ch_result.context("the clickhouse sink panicked")?.context("the clickhouse sink failed")?;
    if let Some(result) = index_result {
        result.context("the index sink panicked")?.context("the index sink failed")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits (bounded) until the ClickHouse sink has stored everything the spool holds.
async fn drain(spool: &Spool, stats: &SinkStats, limit: Duration) {
    let started = Instant::now();
    let target = spool.last_seq();
    while stats.position.load(Ordering::Relaxed) < target && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let position = stats.position.load(Ordering::Relaxed);
    if position < target {
        tracing::warn!(position, last_seq = target, "shutdown before the sinks caught up; the rest stays in the spool");
    }
}

/// The ClickHouse sink's counters on `/metrics`.
#[derive(Debug)]
struct SinkMetrics {
    stats: Arc<SinkStats>,
    clock: Arc<dyn Clock>,
}

impl MetricsCollector for SinkMetrics {
    fn collect(&self, out: &mut TextWriter) {
        let s = &self.stats;
        let sink = [("sink", SINK_NAME)];
        out.family("gatelog_written_batches_total", "counter", "Batches stored by a sink (skipped: already stored).");
        out.sample("gatelog_written_batches_total", &[("sink", SINK_NAME), ("outcome", "written")], s.batches_written.load(Ordering::Relaxed));
        out.sample("gatelog_written_batches_total", &[("sink", SINK_NAME), ("outcome", "skipped")], s.batches_skipped.load(Ordering::Relaxed));
        out.family("gatelog_written_decisions_total", "counter", "Decisions stored by a sink.");
        out.sample("gatelog_written_decisions_total", &sink, s.decisions_written.load(Ordering::Relaxed));
        out.family("gatelog_sink_retries_total", "counter", "Retried writes after retryable errors.");
        out.sample("gatelog_sink_retries_total", &sink, s.retries.load(Ordering::Relaxed));
        out.family("gatelog_sink_position", "gauge", "Highest spool position a sink has stored.");
        out.sample("gatelog_sink_position", &sink, s.position.load(Ordering::Relaxed));
        let last = s.last_received_at_ms.load(Ordering::Relaxed);
        if last > 0 {
            let age = (self.clock.now().0 - i64::try_from(last).unwrap_or(0)).max(0) as f64 / 1000.0;
            out.family("gatelog_sink_lag_seconds", "gauge", "Age of the newest batch a sink stored, when it was stored.");
            out.sample("gatelog_sink_lag_seconds", &sink, age);
        }
    }
}
