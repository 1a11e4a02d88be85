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
    /// How many bodies were built (`bodies` may have been moved out since).
    pub batches: usize,
    pub records: usize,
    pub ndjson_bytes: u64,
    pub gzip_bytes: u64,
    /// Where the records came from, for the report.
    pub source: String,
}

/// The throughput phases' bodies and the latency phase's own.
#[derive(Debug)]
pub struct Prepared {
    pub throughput: Bodies,
    pub latency: Bodies,
}

/// `records` unique records for the throughput phases and `latency_records` more for the
/// latency phase: from the shared 5000-line sample (RayIDs rewritten so each record has its
/// own event id), or from `input` (gzip NDJSON): its first `records` lines, then up to
/// `latency_records` more. When the file holds no more, the latency phase gets the
/// throughput bodies again (its own database and spool, so nothing is taken for a retry).
pub fn prepare(
    input: Option<&Path>,
    records: usize,
    latency_records: usize,
    batch_lines: usize,
) -> anyhow::Result<Prepared> {
    match input {
        Some(path) => {
            let (throughput, latency) = from_file(path, records, latency_records, batch_lines)?;
            if latency.records == 0 {
                let again = Bodies {
                    bodies: throughput.bodies.clone(),
                    source: format!("{} (the throughput bodies again: no lines left)", throughput.source),
                    ..throughput
                };
                return Ok(Prepared { latency: again, throughput });
            }
            Ok(Prepared { throughput, latency })
        }
        None => Ok(Prepared {
            throughput: generated(0..records, batch_lines),
            latency: generated(records..records + latency_records, batch_lines),
        }),
    }
}

/// The records numbered `range` (numbers make the RayIDs), `batch_lines` per body.
fn generated(range: std::ops::Range<usize>, batch_lines: usize) -> Bodies {
    let lines = gatelog_e2e::http_requests_sample();
    let (first, records) = (range.start, range.end);
    let starts: Vec<usize> = range.step_by(batch_lines).collect();
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
                            let ndjson = gatelog_e2e::unique_http_requests(
                                lines,
                                start..(start + batch_lines).min(records),
                                PREFIX,
                            );
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
        batches: built.len(),
        bodies: built.into_iter().map(|(b, _)| b).collect(),
        records: records - first,
        source: "shared http_requests_5000 sample, RayIDs made unique".to_owned(),
    }
}

/// The first `records` lines of `path` as one set of bodies, the next `latency_records` as
/// another (empty when the file holds no more).
fn from_file(
    path: &Path,
    records: usize,
    latency_records: usize,
    batch_lines: usize,
) -> anyhow::Result<(Bodies, Bodies)> {
    let file = std::fs::File::open(path).with_context(|| format!("BENCH_INPUT: cannot open {}", path.display()))?;
    let reader = std::io::BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(file));
    let empty = || Bodies {
        bodies: Vec::new(),
        batches: 0,
        records: 0,
        ndjson_bytes: 0,
        gzip_bytes: 0,
        source: path.display().to_string(),
    };
    let mut sets = [empty(), empty()];
    let limits = [records, latency_records];
    let mut set = 0;
    let mut batch = Vec::new();
    let mut in_batch = 0;
    let flush = |batch: &mut Vec<u8>, out: &mut Bodies| {
        let body = gatelog_e2e::gzip(batch);
        out.ndjson_bytes += batch.len() as u64;
        out.gzip_bytes += body.len() as u64;
        out.bodies.push(body);
        out.batches += 1;
        batch.clear();
    };
    for line in reader.lines() {
        let line = line.with_context(|| format!("BENCH_INPUT: {} is not gzip NDJSON text", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        if sets[set].records == limits[set] {
            if in_batch > 0 {
                flush(&mut batch, &mut sets[set]);
                in_batch = 0;
            }
            set += 1;
            if set == sets.len() || limits[set] == 0 {
                break;
            }
        }
        batch.extend_from_slice(line.as_bytes());
        batch.push(b'\n');
        sets[set].records += 1;
        in_batch += 1;
        if in_batch == batch_lines {
            flush(&mut batch, &mut sets[set]);
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        flush(&mut batch, &mut sets[set.min(sets.len() - 1)]);
    }
    if sets.iter().all(|s| s.records == 0) {
        bail!("BENCH_INPUT: {} holds no records", path.display());
    }
    let [throughput, latency] = sets;
    Ok((throughput, latency))
}
