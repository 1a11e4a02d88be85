//! `gatelog ingest FILE...`: Logpush files into gatelog by the road `gatelog serve` takes.
//!
//! A file is cut into bodies of whole lines, its bytes as they are
//! ([`gatelog_ingest::next_body`]: at most `ingest.batch_lines` lines / `ingest.batch_bytes`
//! bytes each), and each body is what a sender would post:
//! - [`local`] (the default): each body is mapped by the receiver's own code
//!   ([`gatelog_ingest::Batcher`], the same batch-id rule: SHA-256 of the body's bytes) and
//!   appended to the spool under the data dir; the same sinks as `gatelog serve` (ClickHouse
//!   and the index, [`crate::serve::Sinks`]) store it, and the command waits until they
//!   have caught up. So a backfilled file is searchable, reaches every spool consumer, and is
//!   stored once however its records arrive (again, or over HTTP in other batches: the
//!   store keeps one row per `(tenant, event_id)`, the index one document per `event_id`).
//!   A batch ClickHouse already has is not appended again: a second run writes nothing.
//! - [`post`] (`--server URL --token T`): while `gatelog serve` runs it holds the spool
//!   (its lock), so the bodies are posted to it over HTTP instead (gzip-compressed; the
//!   receiver hashes the inflated bytes, so the batch ids are the same as locally).
//!   Without `--server`, a held spool is refused with a message saying this.
//!
//! Per file, a reader thread decodes (gzip sniffed by magic bytes) and cuts bodies while the
//! previous body is mapped and appended (or posted): memory stays flat whatever the file size.

mod local;
mod post;
mod report;

use crate::cli::IngestArgs;
use crate::config::IngestSection;
use anyhow::{Context, bail};
use gatelog_ingest::{BodyReader, Dataset, FileBody, next_body};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;

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
    let progress = !args.no_progress;
    let totals = match &args.server {
        Some(url) => {
            let token = args.token.as_deref().filter(|t| !t.is_empty()).context(
                "--server needs --token (or GATELOG_INGEST_TOKEN): one of the ingest tokens the server accepts",
            )?;
            post::run(url, token, &plan, &config.ingest, progress).await?
        }
        None => local::run(&config, &plan, progress).await?,
    };
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

/// A file's bodies, cut on a reader thread of their own while the caller works on the
/// previous one. Blocking: use it from a blocking thread.
struct FileReader {
    bodies: mpsc::Receiver<FileBody>,
    recycle: mpsc::Sender<Vec<u8>>,
    thread: std::thread::JoinHandle<Result<(), gatelog_ingest::DecodeError>>,
    /// File bytes read so far (compressed, for the progress bar).
    read: Arc<AtomicU64>,
    origin: String,
}

impl FileReader {
    fn open(path: &Path, opts: &IngestSection) -> anyhow::Result<FileReader> {
        let (decoded, read) = open_decoded(path, opts)?;
        let (tx, bodies) = mpsc::sync_channel::<FileBody>(1);
        // Mapped bodies' buffers go back to the reader: at most three body buffers exist,
        // allocated once, instead of a fresh one (and its page faults) per body.
        let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
        let sizes = (opts.batch_lines, usize::try_from(opts.batch_bytes.as_u64()).unwrap_or(usize::MAX));
        let max_line = usize::try_from(opts.max_line_bytes.as_u64()).unwrap_or(usize::MAX);
        // At most `batch_bytes` and the line that crosses it (cut at `max_line` + 2, + `\n`).
        let body_room = sizes.1.saturating_add(max_line).saturating_add(3);
        let thread = std::thread::Builder::new()
            .name("gatelog-reader".into())
            .spawn(move || {
                let mut reader = BufReader::with_capacity(1 << 20, decoded);
                let mut lines_before = 0;
                loop {
                    // A fresh buffer holds a whole body from the start: grown by doubling, each
                    // body's buffer was copied and faulted in at several sizes.
                    let buffer = recycled.try_recv().unwrap_or_else(|_| Vec::with_capacity(body_room));
                    let Some(body) = next_body(&mut reader, lines_before, sizes, max_line, buffer)? else { break };
                    lines_before += body.lines;
                    if tx.send(body).is_err() {
                        break; // the caller stopped; its error is reported
                    }
                }
                Ok(())
            })
            .context("cannot start the reader thread")?;
        Ok(FileReader { bodies, recycle, thread, read, origin: path.display().to_string() })
    }

    /// The next body; `None` at the end of the file or when reading failed (see [`Self::finish`]).
    fn next(&self) -> Option<FileBody> {
        self.bodies.recv().ok()
    }

    /// Hands a body's buffer back for the next one.
    fn recycle(&self, buffer: Vec<u8>) {
        let _ = self.recycle.send(buffer); // the reader may have finished: then it is dropped
    }

    /// Waits for the reader thread: the file's read error, naming it, if any.
    fn finish(self) -> anyhow::Result<()> {
        let FileReader { bodies, thread, origin, .. } = self;
        drop(bodies); // a reader still sending stops
        match thread.join() {
            Ok(result) => result.with_context(|| format!("cannot read {origin}")),
            Err(_) => bail!("the reader thread panicked"),
        }
    }
}

/// The file's name for the summary table.
fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Logs a body's first dead letter, for the first few bodies with dead letters of a file.
fn log_dead_letters(origin: &str, count: u64, first: Option<&str>, already: u64) {
    if count > 0 && already < DEAD_LETTERS_LOGGED {
        tracing::warn!(origin, dead_letters = count, first = first.unwrap_or(""), "dead letters in a batch");
    }
}
