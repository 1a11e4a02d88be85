//! `gatelog ingest --server URL --token T`: the files' bodies posted to a running
//! `gatelog serve`, which holds the spool while it runs. Each body goes to
//! `POST /v1/logpush/{dataset}` gzip-compressed (`/v1/tail` plain for Tail files), exactly as
//! it would be mapped locally (the receiver hashes the inflated bytes: same batch ids), and
//! 429/503 are retried after `Retry-After` ([`gatelog_ingest::http::client`]). The server
//! numbers a dead letter's line within its body, not within the file.

use super::report::{self, BatchCounts, FileReport, Totals};
use super::{FileReader, display_name, log_dead_letters};
use crate::config::IngestSection;
use anyhow::Context;
use gatelog_ingest::Dataset;
use gatelog_ingest::http::client::{Accepted, Client, ClientError};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

pub async fn run(
    url: &str,
    token: &str,
    plan: &[(PathBuf, Dataset)],
    opts: &IngestSection,
    progress: bool,
) -> anyhow::Result<Totals> {
    let client = Client::new(url, token).with_context(|| format!("--server {url}"))?;
    let started = Instant::now();
    let mut totals = Totals { sent_to: Some(url.to_owned()), ..Totals::default() };
    let outcome = tokio::select! {
        result = async {
            for (path, dataset) in plan {
                let file = post_file(&client, path, *dataset, opts, progress).await?;
                tracing::info!(file = %path.display(), dataset = dataset.as_str(), lines = file.lines, "file posted");
                totals.add(display_name(path), dataset.as_str(), file);
            }
            anyhow::Ok(())
        } => result,
        _ = crate::clickhouse::wait_for_shutdown_signal() => Err(anyhow::anyhow!(
            "interrupted; the batches the server answered are stored by it, and a rerun skips what is stored"
        )),
    };
    outcome?;
    totals.seconds = started.elapsed().as_secs_f64();
    Ok(totals)
}

async fn post_file(
    client: &Client,
    path: &Path,
    dataset: Dataset,
    opts: &IngestSection,
    progress: bool,
) -> anyhow::Result<FileReport> {
    let reader = FileReader::open(path, opts)?;
    let read = reader.read.clone();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = report::progress_bar(progress, size, path);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<gatelog_ingest::FileBody>(1);
    let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let producer = tokio::task::spawn_blocking(move || {
        while let Some(body) = reader.next() {
            while let Ok(buffer) = recycle_rx.try_recv() {
                reader.recycle(buffer);
            }
            if tx.blocking_send(body).is_err() {
                break;
            }
        }
        reader.finish()
    });
    let origin = path.display().to_string();
    let mut report = FileReport::default();
    let mut logged = 0;
    while let Some(body) = rx.recv().await {
        let answer = match dataset {
            Dataset::Tail => client.post_tail(&body.bytes).await,
            d => client.post_logpush(d.as_str(), &body.bytes).await,
        };
        let lines = format!("lines {}..{} of {origin}", body.lines_before + 1, body.lines_before + body.lines);
        let (bytes, body_lines) = (body.bytes.len() as u64, body.lines);
        let _ = recycle_tx.send(body.bytes);
        match answered(answer, body_lines).with_context(|| format!("the server refused {lines}"))? {
            Some(accepted) => {
                log_dead_letters(&origin, accepted.dead_letters, None, logged);
                logged += u64::from(accepted.dead_letters > 0);
                let counts = BatchCounts {
                    lines: accepted.lines,
                    bytes,
                    decisions: accepted.decisions,
                    raw: accepted.raw_records,
                    dead_letters: accepted.dead_letters,
                    probes: accepted.probes,
                    warnings: 0,
                };
                match accepted.batch_id {
                    Some(_) => report.add_batch(&counts, false),
                    None => report.add_unstored(&counts), // the validation probe
                }
            }
            None => report.add_unstored(&BatchCounts { lines: body_lines, bytes, ..BatchCounts::default() }),
        }
        bar.set_position(read.load(Ordering::Relaxed));
        bar.set_message(format!("{} lines, {} decisions", report.lines, report.decisions));
    }
    producer.await.context("the reader thread panicked")??;
    bar.finish_and_clear();
    Ok(report)
}

/// The server's answer: accepted (a 400 for a batch of dead letters only is accepted too: the
/// server stored them), `None` for a body of blank lines only (refused, nothing stored), or
/// the refusal.
fn answered(answer: Result<Accepted, ClientError>, lines: u64) -> anyhow::Result<Option<Accepted>> {
    match answer {
        Ok(accepted) => Ok(Some(accepted)),
        Err(ClientError::Refused { status: 400, body, url }) => {
            let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if value.get("batch_id").and_then(serde_json::Value::as_str).is_some() {
                let dead_letters = value.get("dead_letters").and_then(serde_json::Value::as_u64).unwrap_or(0);
                let batch_id = value.get("batch_id").and_then(serde_json::Value::as_str).map(str::to_owned);
                return Ok(Some(Accepted { batch_id, lines, dead_letters, ..Accepted::default() }));
            }
            if body.contains("only blank lines") {
                return Ok(None);
            }
            Err(ClientError::Refused { status: 400, body, url }.into())
        }
        Err(e) => Err(e.into()),
    }
}
