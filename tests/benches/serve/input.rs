//! The gzip request bodies, all built in memory before anything is timed.

use anyhow::{Context, bail};
use std::io::BufRead;
use std::path::Path;

/// RayID prefix of the generated records (4 hex digits, see `generated_ray_id`).
const PREFIX: &str = "5e7e";

/// Logpush-like batches: each body is `batch_lines` NDJSON lines, gzip-compressed.
#[derive(Debug)]
pub struct Bodies {
    pub bodies: Vec<Vec<u8>>,
    pub records: usize,
    pub ndjson_bytes: u64,
    pub gzip_bytes: u64,
    /// Where the records came from, for the report.
    pub source: String,
}

/// `records` unique records from the shared 5000-line sample (RayIDs rewritten so each
/// record has its own event id), or at most `records` lines of `input` (gzip NDJSON).
pub fn prepare(input: Option<&Path>, records: usize, batch_lines: usize) -> anyhow::Result<Bodies> {
    match input {
        Some(path) => from_file(path, records, batch_lines),
        None => Ok(generated(records, batch_lines)),
    }
}

fn generated(records: usize, batch_lines: usize) -> Bodies {
    let lines = gatelog_e2e::http_requests_sample();
    let starts: Vec<usize> = (0..records).step_by(batch_lines).collect();
    // gzip is the slow part: spread the batches over the cores.
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let chunk = starts.len().div_ceil(threads).max(1);
    let built: Vec<(Vec<u8>, u64)> = std::thread::scope(|s| {
        let workers: Vec<_> = starts
            .chunks(chunk)
            .map(|part| {
                let lines = &lines;
                s.spawn(move || {
                    part.iter()
                        .map(|&start| {
                            let ndjson = gatelog_e2e::unique_http_requests(lines, start..(start + batch_lines).min(records), PREFIX);
                            (gatelog_e2e::gzip(&ndjson), ndjson.len() as u64)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("gzip worker")).collect()
    });
    Bodies {
        ndjson_bytes: built.iter().map(|(_, n)| n).sum(),
        gzip_bytes: built.iter().map(|(b, _)| b.len() as u64).sum(),
        bodies: built.into_iter().map(|(b, _)| b).collect(),
        records,
        source: "shared http_requests_5000 sample, RayIDs made unique".to_owned(),
    }
}

fn from_file(path: &Path, max_records: usize, batch_lines: usize) -> anyhow::Result<Bodies> {
    let file = std::fs::File::open(path).with_context(|| format!("BENCH_INPUT: cannot open {}", path.display()))?;
    let reader = std::io::BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(file));
    let mut out = Bodies { bodies: Vec::new(), records: 0, ndjson_bytes: 0, gzip_bytes: 0, source: path.display().to_string() };
    let mut batch = Vec::new();
    let mut in_batch = 0;
    let flush = |batch: &mut Vec<u8>, out: &mut Bodies| {
        let body = gatelog_e2e::gzip(batch);
        out.ndjson_bytes += batch.len() as u64;
        out.gzip_bytes += body.len() as u64;
        out.bodies.push(body);
        batch.clear();
    };
    for line in reader.lines() {
        let line = line.with_context(|| format!("BENCH_INPUT: {} is not gzip NDJSON text", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        if out.records == max_records {
            break;
        }
        batch.extend_from_slice(line.as_bytes());
        batch.push(b'\n');
        out.records += 1;
        in_batch += 1;
        if in_batch == batch_lines {
            flush(&mut batch, &mut out);
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        flush(&mut batch, &mut out);
    }
    if out.records == 0 {
        bail!("BENCH_INPUT: {} holds no records", path.display());
    }
    Ok(out)
}
