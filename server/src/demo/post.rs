//! The demo acting as Cloudflare: finds the sample files and posts them to the receiver over
//! HTTP with [`Client`], as Logpush (gzip NDJSON batches of at most [`BATCH_LINES`] lines)
//! and a Tail Worker (one delivery per line of `tail.ndjson`) would.

use anyhow::Context;
use gatelog_ingest::Dataset;
use gatelog_ingest::decode::BodyReader;
use gatelog_ingest::http::client::{Accepted, Client};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Lines per Logpush upload (Logpush's own batches hold thousands of lines, up to ~5 MB).
pub const BATCH_LINES: usize = 2_000;
const BATCH_BYTES: usize = 5 << 20;
/// Tail deliveries in flight at once (a Tail Worker posts from many invocations).
const TAIL_CONCURRENCY: usize = 4;

/// One sample file and how Cloudflare would send it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sample {
    /// NDJSON (plain or gzip) for `POST /v1/logpush/{dataset}`.
    Logpush(PathBuf, Dataset),
    /// The Logpush destination check: answered 200, stored nowhere.
    Probe(PathBuf),
    /// One Tail delivery (a JSON array of TraceItems) per line, for `POST /v1/tail`.
    Tail(PathBuf),
}

impl Sample {
    pub fn path(&self) -> &Path {
        match self {
            Sample::Logpush(p, _) | Sample::Probe(p) | Sample::Tail(p) => p,
        }
    }
}

/// Every sample file whose name says its dataset, Logpush first, then the probe, then Tail.
/// Skips `*.summary.json`, `README.md` and the `_clean` variants (they repeat the main files).
pub fn sample_files(dir: &Path) -> anyhow::Result<Vec<Sample>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the sample folder {} (pass --samples DIR)", dir.display()))?;
    let mut samples = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let is_data = name.ends_with(".ndjson") || name.ends_with(".ndjson.gz") || name.ends_with(".txt.gz");
        if !is_data || name.contains("_clean") {
            continue;
        }
        let sample = if name.starts_with("validation_probe") {
            Sample::Probe(path)
        } else {
            match Dataset::from_file_name(&path) {
                Some(Dataset::Tail) => Sample::Tail(path),
                Some(dataset) => Sample::Logpush(path, dataset),
                None => continue,
            }
        };
        samples.push(sample);
    }
    samples.sort();
    anyhow::ensure!(!samples.is_empty(), "no sample files (*.ndjson, *.ndjson.gz) in {}", dir.display());
    Ok(samples)
}

/// What the receiver acknowledged for the posts of one file.
#[derive(Debug, Default, Clone)]
pub struct Posted {
    pub requests: u64,
    pub lines: u64,
    pub decisions: u64,
    pub dead_letters: u64,
    pub probes: u64,
    /// Requests answered without being spooled (validation probes).
    pub unstored: u64,
}

impl Posted {
    fn add(&mut self, a: &Accepted) {
        self.requests += 1;
        self.lines += a.lines;
        self.decisions += a.decisions;
        self.dead_letters += a.dead_letters;
        self.probes += a.probes;
        self.unstored += u64::from(a.spool_seq.is_none());
    }

    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Posted>) -> Posted {
        let mut total = Posted::default();
        for p in all {
            total.requests += p.requests;
            total.lines += p.lines;
            total.decisions += p.decisions;
            total.dead_letters += p.dead_letters;
            total.probes += p.probes;
            total.unstored += p.unstored;
        }
        total
    }
}

/// Reads a sample, gunzipped when it is gzip, at most `limit` bytes once inflated.
async fn read(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let file = std::fs::File::open(&owned)?;
        let mut out = Vec::new();
        BodyReader::new(file, limit)?.read_to_end(&mut out)?;
        Ok(out)
    })
    .await
    .context("the reading task panicked")?
    .with_context(|| format!("cannot read {}", path.display()))
}

/// Non-blank lines, each with its `\n`, cut into uploads of at most `BATCH_LINES` lines and
/// about `BATCH_BYTES` bytes.
fn batches(text: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut lines = 0;
    for line in text.split(|b| *b == b'\n').filter(|l| !l.trim_ascii().is_empty()) {
        current.extend_from_slice(line);
        current.push(b'\n');
        lines += 1;
        if lines == BATCH_LINES || current.len() >= BATCH_BYTES {
            out.push(std::mem::take(&mut current));
            lines = 0;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Posts one sample file and returns what was acknowledged and a progress line.
pub async fn post(client: &Client, sample: &Sample, limit: u64) -> anyhow::Result<(Posted, String)> {
    let name = sample.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut posted = Posted::default();
    let (route, detail) = match sample {
        Sample::Logpush(path, dataset) => {
            for body in batches(&read(path, limit).await?) {
                let ack =
                    client.post_logpush(dataset.as_str(), &body).await.with_context(|| format!("posting {name}"))?;
                posted.add(&ack);
            }
            let batches = if posted.requests == 1 { "1 batch" } else { &format!("{} batches", posted.requests) };
            let detail = format!(
                "{} lines in {batches} → {} decisions, {} dead letters",
                posted.lines, posted.decisions, posted.dead_letters
            );
            (format!("/v1/logpush/{dataset}"), detail)
        }
        Sample::Probe(path) => {
            let body = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let ack = client
                .post_logpush(Dataset::HttpRequests.as_str(), &body)
                .await
                .with_context(|| format!("posting {name}"))?;
            posted.add(&ack);
            let stored = if ack.spool_seq.is_none() { "stored nowhere" } else { "STORED (unexpected)" };
            (
                "/v1/logpush/http_requests".to_owned(),
                format!("the validation probe → 200, {} probe, {stored}", ack.probes),
            )
        }
        Sample::Tail(path) => {
            let text = read(path, limit).await?;
            let deliveries: Vec<Vec<u8>> =
                text.split(|b| *b == b'\n').filter(|l| !l.trim_ascii().is_empty()).map(<[u8]>::to_vec).collect();
            let mut tasks = tokio::task::JoinSet::new();
            for delivery in deliveries {
                if tasks.len() >= TAIL_CONCURRENCY
                    && let Some(done) = tasks.join_next().await
                {
                    posted.add(&done.context("a tail post panicked")??);
                }
                let client = client.clone();
                tasks.spawn(async move { client.post_tail(&delivery).await });
            }
            while let Some(done) = tasks.join_next().await {
                posted.add(&done.context("a tail post panicked")?.with_context(|| format!("posting {name}"))?);
            }
            let detail = format!(
                "{} deliveries → {} decisions, {} dead letters",
                posted.requests, posted.decisions, posted.dead_letters
            );
            ("/v1/tail".to_owned(), detail)
        }
    };
    let mut line = String::new();
    let _ = writeln!(line, "  {name:<30} POST {route:<32} {detail}");
    Ok((posted, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_at_most_batch_lines_and_skip_blank_lines() {
        let text: Vec<u8> = (0..BATCH_LINES * 2 + 1).flat_map(|i| format!("{{\"n\":{i}}}\n\n").into_bytes()).collect();
        let b = batches(&text);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].iter().filter(|c| **c == b'\n').count(), BATCH_LINES);
        assert_eq!(b[2], b"{\"n\":4000}\n");
        assert!(batches(b"\n \n").is_empty());
    }
}
