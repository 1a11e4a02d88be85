//! `gatelog ingest FILE...`: Logpush files through the mapping path into ClickHouse.
//!
//! Per file, three stages run at once with bounded queues between them, so memory stays
//! flat whatever the file size:
//! 1. a reader thread decodes (gzip sniffed by magic bytes) and cuts batches of whole lines
//!    ([`gatelog_ingest::chunk`]);
//! 2. a mapping thread maps each batch's lines in parallel (rayon) into decisions, raw
//!    records and dead letters;
//! 3. async writers store up to `ingest.write_concurrency` batches at a time.
//!
//! A batch's id is derived from its bytes, and the store records every finished batch, so a
//! second run over the same file stores nothing (see `gatelog_store::Store::write_batch`).

mod report;

use crate::cli::IngestArgs;
use crate::clickhouse::Target;
use crate::config::IngestSection;
use anyhow::{Context, bail};
use gatelog_ingest::{
    BodyContext, BodyReader, Chunk, Dataset, Limits, LineOutcome, LineReader, map_split_line, next_chunk,
};
use gatelog_model::{Clock, DeadLetter, EventId, Source, SystemClock, sha256_hex};
use gatelog_store::{Store, WriteBatch, WriteOutcome};
use indicatif::ProgressBar;
use rayon::prelude::*;
pub use report::{FileReport, Totals};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::task::JoinSet;

/// How many dead letters per file are logged one by one before only counting.
const DEAD_LETTERS_LOGGED: u64 = 5;

pub async fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::resolve(&args.store)?;
    let forced = match &args.dataset {
        Some(name) => Some(Dataset::parse(name).with_context(|| {
            format!("--dataset {name:?} is not a dataset gatelog knows; known: {}", dataset_names())
        })?),
        None => None,
    };
    let plan = plan_files(&args.files, forced, &config.ingest)?;
    let target = Target::connect(&config).await?;
    let progress = !args.no_progress;
    let outcome = tokio::select! {
        result = ingest_files(&target.store, &plan, &config.ingest, progress) => result,
        _ = crate::clickhouse::wait_for_shutdown_signal() => Err(anyhow::anyhow!("interrupted; batches already acknowledged by ClickHouse are kept, and a rerun skips them")),
    };
    target.shutdown().await;
    let totals = outcome?;
    crate::print_stdout(&totals.render())?;
    Ok(ExitCode::SUCCESS)
}

fn dataset_names() -> String {
    Dataset::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
}

/// Decides each file's dataset before anything is started, so a typo fails fast.
pub fn plan_files(
    files: &[PathBuf],
    forced: Option<Dataset>,
    opts: &IngestSection,
) -> anyhow::Result<Vec<(PathBuf, Dataset)>> {
    files
        .iter()
        .map(|path| {
            // Fail before anything is started (managed ClickHouse takes a moment) if a file is unreadable.
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let dataset = match forced.or_else(|| Dataset::from_file_name(path)) {
                Some(d) => d,
                None => sniff_file(path, opts)?.with_context(|| {
                    format!(
                        "{}: cannot tell the dataset from the file name or its first record; pass --dataset (one of {})",
                        path.display(),
                        dataset_names()
                    )
                })?,
            };
            Ok((path.clone(), dataset))
        })
        .collect()
}

/// Opens a file as plain NDJSON (gunzipped when it starts with the gzip magic), counting the
/// file bytes read for the progress bar.
fn open_decoded(path: &Path, opts: &IngestSection) -> anyhow::Result<(Box<dyn Read + Send>, Arc<AtomicU64>)> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let counter = Arc::new(AtomicU64::new(0));
    let counting = report::CountingReader::new(file, counter.clone());
    let decoded = BodyReader::new(counting, opts.max_decompressed_bytes.as_u64())
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok((Box::new(decoded), counter))
}

fn sniff_file(path: &Path, opts: &IngestSection) -> anyhow::Result<Option<Dataset>> {
    let (decoded, _) = open_decoded(path, opts)?;
    let mut reader = BufReader::new(decoded.take(opts.max_line_bytes.as_u64() * 4));
    let mut line = Vec::new();
    let (mut probes, mut others) = (0, 0);
    for _ in 0..16 {
        line.clear();
        if reader.read_until(b'\n', &mut line).with_context(|| format!("cannot read {}", path.display()))? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if let Some(d) = Dataset::sniff(text) {
            return Ok(Some(d));
        }
        if gatelog_ingest::is_probe(text) {
            probes += 1;
        } else if !text.is_empty() {
            others += 1;
        }
    }
    // A file holding only Logpush validation probes stores nothing, whatever its dataset.
    Ok((probes > 0 && others == 0).then_some(Dataset::HttpRequests))
}

async fn ingest_files(
    store: &Store,
    plan: &[(PathBuf, Dataset)],
    opts: &IngestSection,
    progress: bool,
) -> anyhow::Result<Totals> {
    let started = Instant::now();
    let mut totals = Totals::default();
    for (path, dataset) in plan {
        let file = ingest_file(store, path, *dataset, opts, progress).await?;
        tracing::info!(
            file = %path.display(),
            dataset = dataset.as_str(),
            lines = file.lines,
            decisions = file.decisions,
            dead_letters = file.dead_letters,
            batches_skipped = file.batches_skipped,
            "file ingested"
        );
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        totals.add(name, dataset.as_str(), file);
    }
    totals.seconds = started.elapsed().as_secs_f64();
    Ok(totals)
}

/// One mapped batch on its way to the store.
struct Prepared {
    batch: WriteBatch,
    warnings: u64,
}

/// Ingests one file; the whole pipeline of the module docs.
pub async fn ingest_file(
    store: &Store,
    path: &Path,
    dataset: Dataset,
    opts: &IngestSection,
    progress: bool,
) -> anyhow::Result<FileReport> {
    let (decoded, counter) = open_decoded(path, opts)?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = report::progress_bar(progress, size, path);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Prepared>(opts.write_concurrency);
    let origin = path.display().to_string();
    let limits = Limits {
        max_decompressed: opts.max_decompressed_bytes.as_u64(),
        max_line: opts.max_line_bytes.as_u64() as usize,
        window: gatelog_ingest::TimeWindow { max_age: opts.max_event_age, max_lead: opts.max_event_lead },
    };
    let (batch_lines, batch_bytes) = (opts.batch_lines, opts.batch_bytes.as_u64() as usize);
    let producer = {
        let origin = origin.clone();
        tokio::task::spawn_blocking(move || produce(decoded, dataset, &origin, limits, (batch_lines, batch_bytes), &tx))
    };

    let mut report = FileReport::default();
    let mut writes: JoinSet<anyhow::Result<(WriteOutcome, Prepared)>> = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            Some(done) = writes.join_next(), if !writes.is_empty() => {
                record(&mut report, done, &bar, &counter)?;
            }
            next = rx.recv(), if writes.len() < opts.write_concurrency => {
                let Some(prepared) = next else { break };
                if prepared.batch.raw.is_empty() && prepared.batch.dead_letters.is_empty() {
                    report.add_unstored(&prepared.batch); // only probes and blank lines
                    continue;
                }
                log_dead_letters(&prepared.batch.dead_letters, report.dead_letters);
                let store = store.clone();
                writes.spawn(async move {
                    let outcome = store.write_batch(&prepared.batch).await
                        .with_context(|| format!("cannot store batch {} (lines from {})", prepared.batch.batch_id, prepared.batch.origin))?;
                    Ok((outcome, prepared))
                });
            }
        }
    }
    while let Some(done) = writes.join_next().await {
        record(&mut report, done, &bar, &counter)?;
    }
    producer.await.context("the reader thread panicked")??;
    bar.finish_and_clear();
    Ok(report)
}

fn record(
    report: &mut FileReport,
    done: Result<anyhow::Result<(WriteOutcome, Prepared)>, tokio::task::JoinError>,
    bar: &ProgressBar,
    counter: &AtomicU64,
) -> anyhow::Result<()> {
    let (outcome, prepared) = done.context("a writer task panicked")??;
    report.add_batch(&prepared.batch, prepared.warnings, matches!(outcome, WriteOutcome::AlreadyStored));
    bar.set_position(counter.load(Ordering::Relaxed));
    bar.set_message(format!("{} lines, {} decisions", report.lines, report.decisions));
    Ok(())
}

fn log_dead_letters(dead: &[DeadLetter], already: u64) {
    for (i, d) in dead.iter().enumerate() {
        if already + i as u64 >= DEAD_LETTERS_LOGGED {
            break;
        }
        tracing::warn!(origin = %d.origin, line = d.line_no, error = %d.error, "dead letter");
    }
}

/// Reader + mapper: runs on blocking threads, feeds `tx` until the input ends.
fn produce(
    decoded: Box<dyn Read + Send>,
    dataset: Dataset,
    origin: &str,
    limits: Limits,
    (batch_lines, batch_bytes): (usize, usize),
    tx: &tokio::sync::mpsc::Sender<Prepared>,
) -> anyhow::Result<()> {
    let (chunk_tx, chunk_rx) = std::sync::mpsc::sync_channel::<Chunk>(1);
    // Mapped chunks go back to the reader: at most three chunk buffers exist, allocated once,
    // instead of a fresh quarter-gigabyte buffer (and its page faults) per batch.
    let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Chunk>();
    let reader = std::thread::Builder::new()
        .name("gatelog-reader".into())
        .spawn(move || -> Result<(), gatelog_ingest::DecodeError> {
            let mut lines = LineReader::new(BufReader::with_capacity(1 << 20, decoded), limits.max_line);
            loop {
                let buffer = recycle_rx.try_recv().unwrap_or_else(|_| {
                    Chunk::with_capacity(batch_lines.min(1 << 20), batch_bytes.saturating_add(limits.max_line + 1))
                });
                let Some(chunk) = next_chunk(&mut lines, batch_lines, batch_bytes, buffer)? else { break };
                if chunk_tx.send(chunk).is_err() {
                    break; // the mapper stopped; its error is reported
                }
            }
            Ok(())
        })
        .context("cannot start the reader thread")?;
    let clock = SystemClock;
    let source = if dataset == Dataset::Tail { Source::Tail } else { Source::Logpush };
    for chunk in chunk_rx {
        let ctx = BodyContext { received_at: clock.now(), origin, source, limits };
        let prepared = map_chunk(&chunk, dataset, &ctx);
        let _ = recycle_tx.send(chunk); // the reader may have finished: then it is dropped
        if tx.blocking_send(prepared).is_err() {
            break; // the writer side failed; its error is reported
        }
    }
    match reader.join() {
        Ok(result) => result.with_context(|| format!("cannot read {origin}")),
        Err(_) => bail!("the reader thread panicked"),
    }
}

/// Maps one chunk's lines (in parallel) into a [`WriteBatch`].
///
/// The batch's `sha256` is the SHA-256 of its lines' SHA-256s (lower-case hex, one per line
/// followed by `\n`, in file order), not of its bytes: the mapper hashes every line anyway,
/// and hashing the chunk's bytes a second time cost a tenth of the ingest CPU. It still
/// names exactly one sequence of lines, which is what the batch id needs.
fn map_chunk(chunk: &Chunk, dataset: Dataset, ctx: &BodyContext<'_>) -> Prepared {
    let outcomes: Vec<(usize, LineOutcome)> = (0..chunk.lines.len())
        .into_par_iter()
        .with_min_len(256)
        .filter_map(|i| chunk.line(i).map(|line| (i, map_split_line(dataset, line, ctx))))
        .collect();
    let mut digests = Sha256::new();
    for (i, outcome) in &outcomes {
        let line_sha = match outcome {
            LineOutcome::Mapped { raw, .. } => std::borrow::Cow::Borrowed(raw.sha256.as_str()),
            LineOutcome::Dead(dead) => std::borrow::Cow::Borrowed(dead.sha256.as_str()),
            // Rare: probes and blank lines are not stored, so nobody hashed them yet.
            LineOutcome::Probe | LineOutcome::Blank => {
                std::borrow::Cow::Owned(sha256_hex(chunk.line(*i).map_or(&[][..], |l| l.bytes)))
            }
        };
        digests.update(line_sha.as_bytes());
        digests.update(b"\n");
    }
    let chunk_sha = hex::encode(digests.finalize());
    let mut batch = WriteBatch {
        batch_id: EventId::derive(&["batch", dataset.as_str(), &chunk_sha]),
        dataset: dataset.as_str().to_owned(),
        origin: ctx.origin.to_owned(),
        received_at: ctx.received_at,
        lines: chunk.lines.len() as u64,
        probes: 0,
        bytes: chunk.bytes.len() as u64,
        sha256: chunk_sha,
        decisions: Vec::with_capacity(chunk.lines.len()),
        raw: Vec::with_capacity(chunk.lines.len()),
        dead_letters: Vec::new(),
    };
    let mut warnings = 0;
    for (_, outcome) in outcomes {
        match outcome {
            LineOutcome::Mapped { decisions, raw, warnings: w } => {
                batch.decisions.extend(decisions);
                batch.raw.push(raw);
                warnings += w.len() as u64;
            }
            LineOutcome::Probe => batch.probes += 1,
            LineOutcome::Blank => {}
            LineOutcome::Dead(dead) => batch.dead_letters.push(dead),
        }
    }
    Prepared { batch, warnings }
}
