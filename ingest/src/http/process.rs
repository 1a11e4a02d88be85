//! From a request body to a [`Batch`] ready for the spool (blocking work: run it on the
//! blocking pool for anything large).
//!
//! The body is inflated when it starts with the gzip magic (capped at
//! `max_decompressed_bytes`), hashed as it streams and split into one [`Chunk`] of lines,
//! which are then mapped in parallel (rayon), their outcomes kept in line order. The chunk
//! holds the inflated lines once more than the raw records will, for the time of one request
//! (the receiver maps at most one body per core at a time). The batch id is
//! `EventId::derive(["batch", route dataset, sha256(inflated body)])`, so a body Logpush
//! retries gets the id it had and the store skips it.

use super::decisions::{DecisionLineContext, map_decision_line};
use crate::decode::{BodyReader, DecodeError, LineReader};
use crate::{BodyContext, BodyOutcome, Chunk, Dataset, Limits, LineOutcome, map_split_line, next_chunk};
use gatelog_model::{Batch, EventId, Source, UnixMillis};
use sha2::{Digest, Sha256};
use rayon::prelude::*;
use std::io::{BufRead, BufReader, Read};

/// How the lines of a body are mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mapper {
    /// A Cloudflare dataset (Logpush, or Tail deliveries).
    Dataset(Dataset, Source),
    /// gatelog proxy decisions (`/v1/decisions`).
    Decisions,
}

impl Mapper {
    pub(crate) fn dataset_name(self) -> &'static str {
        match self {
            Mapper::Dataset(d, _) => d.as_str(),
            Mapper::Decisions => super::metrics::PROXY_DATASET,
        }
    }
}

/// What to do with a mapped body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Only the Logpush validation probe: answer 200, spool nothing.
    ProbeOnly,
    /// No record at all (blank lines only): 400, spool nothing.
    NoRecords,
    /// `reject_whole_batch` and a bad line: 400 naming the first, spool nothing.
    Reject { first_error: String },
    /// Spool the batch; when nothing was usable (`first_error` set) answer 400 afterwards.
    Spool { encoded: Vec<u8>, first_error: Option<String> },
}

/// A mapped body and what to do with it.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub batch: Batch,
    pub plan: Plan,
}

/// Hashes and counts what passes through.
struct Hashing<'a, R> {
    inner: R,
    hasher: &'a mut Sha256,
    bytes: &'a mut u64,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        *self.bytes += n as u64;
        Ok(n)
    }
}

/// Inflates (if gzip), hashes and maps a body. Errors only for a body that cannot be read:
/// too large once inflated, or corrupt gzip.
pub(crate) fn map_request_body(
    body: &[u8],
    mapper: Mapper,
    received_at: UnixMillis,
    origin: &str,
    limits: Limits,
) -> Result<(BodyOutcome, String, u64), DecodeError> {
    let mut out = BodyOutcome::default();
    let ctx = BodyContext {
        received_at,
        origin,
        source: match mapper {
            Mapper::Dataset(_, source) => source,
            Mapper::Decisions => Source::Proxy,
        },
        limits,
    };
    let decision_ctx = DecisionLineContext { received_at, origin, max_line: limits.max_line };
    if !crate::is_gzip(body) {
        if body.len() as u64 > limits.max_decompressed {
            return Err(DecodeError::TooLarge { limit: limits.max_decompressed });
        }
        let chunk = read_chunk(LineReader::new(body, limits.max_line), body.len())?;
        map_chunk(&chunk, mapper, &ctx, &decision_ctx, &mut out);
        return Ok((out, gatelog_model::sha256_hex(body), body.len() as u64));
    }
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let chunk = {
        let inflated = BodyReader::new(body, limits.max_decompressed)?;
        let hashing = Hashing { inner: inflated, hasher: &mut hasher, bytes: &mut bytes };
        let lines = LineReader::new(BufReader::with_capacity(256 * 1024, hashing), limits.max_line);
        // Logpush bodies inflate about tenfold; a wrong guess only costs a reallocation.
        let guess = body.len().saturating_mul(10).min(usize::try_from(limits.max_decompressed).unwrap_or(usize::MAX));
        read_chunk(lines, guess)?
    };
    map_chunk(&chunk, mapper, &ctx, &decision_ctx, &mut out);
    Ok((out, hex_digest(hasher), bytes))
}

/// Every line of a body, copied out of the splitter's buffer (the inflate cap bounds it).
fn read_chunk<R: BufRead>(mut lines: LineReader<R>, size_guess: usize) -> Result<Chunk, DecodeError> {
    let guess = size_guess.min(MAX_PREALLOCATION);
    let chunk = Chunk::with_capacity(guess / 1024, guess);
    Ok(next_chunk(&mut lines, usize::MAX, usize::MAX, chunk)?.unwrap_or_default())
}

/// The most a body's chunk reserves before its lines are read.
const MAX_PREALLOCATION: usize = 64 << 20;

/// Lines per rayon task: small enough to spread a 2,000-line Logpush body over the cores,
/// big enough that the splitting costs nothing next to the mapping.
const LINES_PER_TASK: usize = 128;

/// Maps the chunk's lines on every core, then records the outcomes in line order.
fn map_chunk(chunk: &Chunk, mapper: Mapper, ctx: &BodyContext<'_>, decision_ctx: &DecisionLineContext<'_>, out: &mut BodyOutcome) {
    let map_one = |i: usize| -> Option<(u64, LineOutcome)> {
        let line = chunk.line(i)?;
        let no = line.no;
        Some((no, match mapper {
            Mapper::Dataset(dataset, _) => map_split_line(dataset, line, ctx),
            Mapper::Decisions => map_decision_line(line, decision_ctx),
        }))
    };
    let outcomes: Vec<(u64, LineOutcome)> = if chunk.lines.len() <= LINES_PER_TASK {
        (0..chunk.lines.len()).filter_map(map_one).collect()
    } else {
        (0..chunk.lines.len()).into_par_iter().with_min_len(LINES_PER_TASK).filter_map(map_one).collect()
    };
    out.decisions.reserve(outcomes.len());
    out.raw.reserve(outcomes.len());
    for (no, outcome) in outcomes {
        out.push(no, outcome);
    }
}

fn hex_digest(hasher: Sha256) -> String {
    use std::fmt::Write as _;
    hasher.finalize().iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Maps a body and decides what to do with it; encodes the batch when it is to be spooled.
pub(crate) fn prepare(
    body: &[u8],
    mapper: Mapper,
    received_at: UnixMillis,
    origin: &str,
    limits: Limits,
    reject_whole_batch: bool,
) -> Result<Prepared, PrepareError> {
    let (outcome, sha256, bytes) = map_request_body(body, mapper, received_at, origin, limits)?;
    let dataset = mapper.dataset_name();
    let batch = Batch {
        batch_id: EventId::derive(&["batch", dataset, &sha256]),
        dataset: dataset.to_owned(),
        origin: origin.to_owned(),
        received_at,
        lines: outcome.lines,
        probes: outcome.probes,
        bytes,
        sha256,
        decisions: outcome.decisions,
        raw: outcome.raw,
        dead_letters: outcome.dead_letters,
    };
    let first_error = batch.dead_letters.first().map(|d| d.error.clone());
    let plan = if batch.raw.is_empty() && batch.dead_letters.is_empty() {
        if batch.probes > 0 { Plan::ProbeOnly } else { Plan::NoRecords }
    } else if let (true, Some(first_error)) = (reject_whole_batch, first_error.clone()) {
        Plan::Reject { first_error }
    } else {
        let encoded = batch.encode().map_err(|e| PrepareError::Encode(e.to_string()))?;
        Plan::Spool { encoded, first_error: first_error.filter(|_| batch.raw.is_empty()) }
    };
    Ok(Prepared { batch, plan })
}

/// Why a body could not become a batch.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrepareError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A bug, not the client's fault: logged, answered 503.
    #[error("batch does not encode: {0}")]
    Encode(String),
}
