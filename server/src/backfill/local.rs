//! `gatelog ingest` without `--server`: the files' batches into the spool under the data dir,
//! stored by the same sinks as `gatelog serve`, which this command runs until they have
//! caught up (see the [module docs](super)).

use super::report::{self, BatchCounts, FileReport, Totals};
use super::{FileReader, display_name, log_dead_letters};
use crate::config::Config;
use crate::serve::{Sinks, open_spool, spool_options};
use anyhow::{Context, anyhow, bail};
use gatelog_consumer::Phase;
use gatelog_ingest::{BatchJob, Batched, Batcher, Dataset, Limits};
use gatelog_model::{Clock, SystemClock, UnixMillis};
use gatelog_spool::SpoolError;
use gatelog_store::Store;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long the command waits for ClickHouse before reading anything.
const STORE_WAIT: Duration = Duration::from_secs(30);
/// How often the sinks' progress is looked at while waiting for them.
const POLL: Duration = Duration::from_millis(50);

pub async fn run(config: &Config, plan: &[(PathBuf, Dataset)], progress: bool) -> anyhow::Result<Totals> {
    crate::clickhouse::check_sync_data_dir(config)?;
    let spool_dir = config.data_dir.join("spool");
    let spool = match open_spool(config) {
        Ok(spool) => spool,
        Err(SpoolError::Locked(_)) => bail!(
            "the spool in {} is in use: `gatelog serve` (or another `gatelog ingest`) runs on data dir {}. \
             Post the files to the running server instead: gatelog ingest --server http://<its listen address> \
             --token <an ingest token> FILE... (or stop it and run this again)",
            spool_dir.display(),
            config.data_dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot open the spool in {}", spool_dir.display())),
    };
    let sinks = Sinks::start(config, spool).await?;
    let outcome = tokio::select! {
        result = ingest_all(config, &sinks, plan, progress) => result,
        _ = crate::clickhouse::wait_for_shutdown_signal() => Err(anyhow!(
            "interrupted; the batches already in the spool are stored by the next `gatelog ingest` or `gatelog serve` \
             on this data dir, and a rerun skips what is stored"
        )),
    };
    let stopped = sinks.shutdown().await;
    let totals = outcome?;
    stopped?;
    Ok(totals)
}

async fn ingest_all(
    config: &Config,
    sinks: &Sinks,
    plan: &[(PathBuf, Dataset)],
    progress: bool,
) -> anyhow::Result<Totals> {
    let store = wait_for_store(sinks).await?;
    let started = Instant::now();
    let cap = usize::try_from(spool_options(config).max_record_bytes).unwrap_or(usize::MAX);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let batcher = Arc::new(Batcher::new(threads, cap).context("cannot start the mapping threads")?);
    let mut totals = Totals::default();
    for (path, dataset) in plan {
        let file = match ingest_file(config, sinks, &store, &batcher, path, *dataset, progress).await {
            Ok(file) => file,
            Err(e) => {
                // What was appended before the error is stored before the command ends, as
                // a file read straight into ClickHouse would have been.
                if let Err(stuck) = wait_caught_up(sinks, false).await {
                    tracing::warn!(error = %stuck, "the batches spooled before the error are not all stored");
                }
                return Err(e);
            }
        };
        tracing::info!(
            file = %path.display(),
            dataset = dataset.as_str(),
            lines = file.lines,
            decisions = file.decisions,
            dead_letters = file.dead_letters,
            batches_skipped = file.batches_skipped,
            "file spooled"
        );
        totals.add(display_name(path), dataset.as_str(), file);
    }
    wait_caught_up(sinks, progress).await?;
    totals.seconds = started.elapsed().as_secs_f64();
    Ok(totals)
}

/// The store once ClickHouse answers; an error naming why after [`STORE_WAIT`], before any
/// file is read.
async fn wait_for_store(sinks: &Sinks) -> anyhow::Result<Store> {
    let deadline = Instant::now() + STORE_WAIT;
    loop {
        if let Some(store) = sinks.store() {
            return Ok(store);
        }
        let snapshots = sinks.statuses.snapshots(sinks.spool.last_seq(), UnixMillis(0));
        let clickhouse = snapshots.iter().find(|s| s.name == gatelog_store::sink::SINK_NAME);
        let why = clickhouse.map(|s| s.describe()).unwrap_or_default();
        if clickhouse.is_some_and(|s| s.phase == Phase::Stopped) || Instant::now() >= deadline {
            bail!("cannot use ClickHouse at {}; nothing was read ({why})", sinks.link.url);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Maps one file's bodies (on a blocking thread) and appends their batches to the spool.
async fn ingest_file(
    config: &Config,
    sinks: &Sinks,
    store: &Store,
    batcher: &Arc<Batcher>,
    path: &Path,
    dataset: Dataset,
    progress: bool,
) -> anyhow::Result<FileReport> {
    let opts = &config.ingest;
    let reader = FileReader::open(path, opts)?;
    let read = reader.read.clone();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = report::progress_bar(progress, size, path);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Batched, u64)>(opts.write_concurrency.max(1));
    let limits = Limits {
        max_decompressed: opts.max_decompressed_bytes.as_u64(),
        max_line: usize::try_from(opts.max_line_bytes.as_u64()).unwrap_or(usize::MAX),
        window: gatelog_ingest::TimeWindow { max_age: opts.max_event_age, max_lead: opts.max_event_lead },
    };
    let producer = {
        let batcher = batcher.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let clock = SystemClock;
            while let Some(body) = reader.next() {
                let job = BatchJob {
                    dataset,
                    received_at: clock.now(),
                    origin: &reader.origin,
                    limits,
                    // Files are cut by lines, not by days: every line is kept whatever it spans.
                    max_days: usize::MAX,
                    lines_before: body.lines_before,
                };
                let mapped = batcher.map(&body.bytes, &job);
                let bytes = body.bytes.len() as u64;
                reader.recycle(body.bytes);
                let mapped = mapped.with_context(|| {
                    format!(
                        "cannot map lines {}.. of {} (batches are cut by ingest.batch_lines / ingest.batch_bytes)",
                        job.lines_before + 1,
                        reader.origin
                    )
                })?;
                if tx.blocking_send((mapped, bytes)).is_err() {
                    break; // the appending side failed; its error is reported
                }
            }
            reader.finish()
        })
    };

    let mut report = FileReport::default();
    let mut logged = 0;
    let max_bytes = spool_options(config).max_bytes;
    while let Some((batched, bytes)) = rx.recv().await {
        log_dead_letters(
            &path.display().to_string(),
            batched.dead_letters as u64,
            batched.first_dead_letter.as_deref(),
            logged,
        );
        logged += u64::from(batched.dead_letters > 0);
        let counts = counts(&batched, bytes);
        let Some(parts) = batched.record else {
            report.add_unstored(&counts); // only probes and blank lines
            continue;
        };
        let stored = !store
            .existing_batches(&[&batched.batch_id])
            .await
            .with_context(|| format!("cannot ask ClickHouse about batch {}", batched.batch_id))?
            .is_empty();
        if !stored {
            let size: u64 = parts.iter().map(|p| p.len() as u64).sum();
            wait_for_room(sinks, size, max_bytes).await?;
            sinks.spool.append_parts(parts).await.with_context(|| {
                format!("cannot append batch {} (lines from {}) to the spool", batched.batch_id, path.display())
            })?;
        }
        report.add_batch(&counts, stored);
        bar.set_position(read.load(Ordering::Relaxed));
        bar.set_message(format!("{} lines, {} decisions", report.lines, report.decisions));
    }
    producer.await.context("the mapping thread panicked")??;
    bar.finish_and_clear();
    Ok(report)
}

fn counts(b: &Batched, bytes: u64) -> BatchCounts {
    BatchCounts {
        lines: b.lines,
        bytes,
        decisions: b.decisions as u64,
        raw: b.raw_records as u64,
        dead_letters: b.dead_letters as u64,
        probes: b.probes,
        warnings: b.warnings,
    }
}

/// Waits until the spool has room for a record of `size` bytes besides a segment's worth,
/// so a file larger than the spool goes in as fast as the sinks store it.
async fn wait_for_room(sinks: &Sinks, size: u64, max_bytes: u64) -> anyhow::Result<()> {
    loop {
        let stats = sinks.spool.stats();
        let caught_up = stats.consumers.iter().all(|c| c.lag == 0);
        if caught_up || stats.bytes_on_disk.saturating_add(size.saturating_mul(2)) <= max_bytes {
            return Ok(());
        }
        check_sinks(sinks)?;
        tokio::time::sleep(POLL).await;
    }
}

/// An error naming every stopped sink, if one stopped.
fn check_sinks(sinks: &Sinks) -> anyhow::Result<()> {
    let snapshots = sinks.statuses.snapshots(sinks.spool.last_seq(), UnixMillis(0));
    let stopped: Vec<String> = snapshots.iter().filter(|s| s.phase == Phase::Stopped).map(|s| s.describe()).collect();
    if !stopped.is_empty() || sinks.any_finished() {
        bail!("a sink stopped; what it did not store stays in the spool: {}", stopped.join("; "));
    }
    Ok(())
}

/// Waits until every sink has stored what the spool holds, with a bar on a terminal.
async fn wait_caught_up(sinks: &Sinks, progress: bool) -> anyhow::Result<()> {
    let target = sinks.spool.last_seq();
    let lowest = || sinks.statuses.all().iter().map(|s| s.position()).min().unwrap_or(target);
    let start = lowest().min(target);
    let bar = match progress {
        true => {
            let bar = ProgressBar::with_draw_target(Some(target - start), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("storing [{bar:30}] {pos}/{len} batches {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar
        }
        false => ProgressBar::hidden(),
    };
    loop {
        let position = lowest();
        bar.set_position(position.saturating_sub(start));
        if position >= target {
            bar.finish_and_clear();
            return Ok(());
        }
        check_sinks(sinks)?;
        let snapshots = sinks.statuses.snapshots(target, UnixMillis(0));
        let waiting: Vec<String> =
            snapshots.iter().filter(|s| s.position < target && !s.phase.is_ready()).map(|s| s.describe()).collect();
        bar.set_message(waiting.join("; "));
        tokio::time::sleep(POLL).await;
    }
}
