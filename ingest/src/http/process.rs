//! From a request body to its spool record (a [`gatelog_model::Batch`], encoded; blocking
//! work: run it on the blocking pool for anything large).
//!
//! The body is inflated when it starts with the gzip magic (capped at
//! `max_decompressed_bytes`), hashed as it streams and cut into [`Chunk`]s of 128 lines;
//! each is mapped on the receiver's mapping threads (`super::workers`) as soon as it is read,
//! so inflating one part of the body overlaps mapping the parts before it. The thread that
//! maps a piece also encodes its rows ([`EncodedRows`]); the record is the pieces in line
//! order ([`BatchHead::encode_parts`]), handed to the spool as parts, so the batch is never
//! held whole as rows nor copied into one buffer, and encoding is spread over every core.
//! The mapped chunks' buffers are reused for the next lines (the receiver maps at most one
//! body per core at a time). The batch id is
//! `EventId::derive(["batch", route dataset, sha256(inflated body)])`, so a body Logpush
//! retries gets the id it had and the store skips it.

use super::decisions::{DecisionLineContext, map_decision_line};
use crate::decode::{BodyReader, DecodeError, LineReader};
use crate::{BodyContext, Chunk, Dataset, Limits, LineOutcome, map_split_line, next_chunk};
use gatelog_model::{BatchCodecError, BatchHead, DeadLetter, EncodedRows, EventId, Source, UnixMillis};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;

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
    /// Spool the batch (its record in parts, see `BatchHead::encode_parts`); when nothing
    /// was usable (`first_error` set) answer 400 afterwards.
    Spool { parts: Vec<Vec<u8>>, first_error: Option<String> },
}

/// A mapped body and what to do with it.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub batch_id: String,
    /// Lines in the body, whatever became of them.
    pub lines: u64,
    pub probes: u64,
    pub decisions: usize,
    pub raw_records: usize,
    pub dead_letters: usize,
    pub plan: Plan,
}

/// What a body, or one piece of it, mapped to: the rows already encoded for the spool.
#[derive(Debug, Default)]
pub(crate) struct MappedBody {
    /// The rows, one run per piece, in line order.
    runs: Vec<EncodedRows>,
    lines: u64,
    probes: u64,
    dead_letters: Vec<DeadLetter>,
}

impl MappedBody {
    fn decisions(&self) -> usize {
        self.runs.iter().map(EncodedRows::decisions).sum()
    }

    fn raw_records(&self) -> usize {
        self.runs.iter().map(EncodedRows::raw).sum()
    }

    /// Adds the next piece (in line order).
    fn append(&mut self, piece: MappedBody) {
        self.runs.extend(piece.runs);
        self.lines += piece.lines;
        self.probes += piece.probes;
        self.dead_letters.extend(piece.dead_letters);
    }
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

/// Inflates (if gzip), hashes and maps a body. Errors for a body that cannot be read (too
/// large once inflated, corrupt gzip) and, a bug, for a row that does not encode.
pub(crate) fn map_request_body(
    body: &[u8],
    mapper: Mapper,
    received_at: UnixMillis,
    origin: &str,
    limits: Limits,
    pool: &rayon::ThreadPool,
) -> Result<(MappedBody, String, u64), PrepareError> {
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
    let map = LineMapper { mapper, ctx: &ctx, decision_ctx: &decision_ctx };
    if !crate::is_gzip(body) {
        if body.len() as u64 > limits.max_decompressed {
            return Err(DecodeError::TooLarge { limit: limits.max_decompressed }.into());
        }
        let lines = LineReader::new(body, limits.max_line);
        let out = if body.len() <= INLINE_MAX { map.sequential(lines)? } else { map.pipelined(lines, pool)? };
        return Ok((out, gatelog_model::sha256_hex(body), body.len() as u64));
    }
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let out = {
        let inflated = BodyReader::new(body, limits.max_decompressed)?;
        let hashing = Hashing { inner: inflated, hasher: &mut hasher, bytes: &mut bytes };
        let lines = LineReader::new(BufReader::with_capacity(256 * 1024, hashing), limits.max_line);
        map.pipelined(lines, pool)?
    };
    Ok((out, hex_digest(hasher), bytes))
}

/// Plain bodies up to this size are mapped on the calling thread, without the mapping
/// threads: the receiver maps them inline on the async runtime, which must not wait for them.
pub(crate) const INLINE_MAX: usize = 64 * 1024;

/// Lines per rayon task: small enough that mapping starts while most of a 2,000-line
/// Logpush body is still being inflated, big enough that handing a task over costs nothing
/// next to mapping it.
const LINES_PER_TASK: usize = 128;

/// Room for one encoded decision: `http_requests` decisions average about 390 bytes.
const DECISION_BYTES: usize = 448;
/// A raw record's encoding beyond its line: event id, dataset, times, SHA-256, lengths.
const RAW_RECORD_OVERHEAD: usize = 160;

/// How each line of one body is mapped.
#[derive(Clone, Copy)]
struct LineMapper<'a> {
    mapper: Mapper,
    ctx: &'a BodyContext<'a>,
    decision_ctx: &'a DecisionLineContext<'a>,
}

impl LineMapper<'_> {
    /// Maps a piece's lines and encodes their rows.
    fn map(&self, chunk: &Chunk) -> Result<MappedBody, PrepareError> {
        // Sized for the usual case, one decision and one raw record a line (a raw record is
        // its line plus about 120 bytes), so the buffers seldom grow and seldom sit half empty.
        let lines = chunk.lines.len();
        let mut rows =
            EncodedRows::with_capacity(lines * DECISION_BYTES, chunk.bytes.len() + lines * RAW_RECORD_OVERHEAD);
        let mut out = MappedBody::default();
        for line in (0..chunk.lines.len()).filter_map(|i| chunk.line(i)) {
            out.lines += 1;
            let outcome = match self.mapper {
                Mapper::Dataset(dataset, _) => map_split_line(dataset, line, self.ctx),
                Mapper::Decisions => map_decision_line(line, self.decision_ctx),
            };
            match outcome {
                // Warnings (partial problems in a usable line) are for `gatelog ingest`'s report.
                LineOutcome::Mapped { decisions, raw, warnings: _ } => {
                    for decision in &decisions {
                        rows.push_decision(decision)?;
                    }
                    rows.push_raw(&raw)?;
                }
                LineOutcome::Probe => out.probes += 1,
                LineOutcome::Blank => {}
                LineOutcome::Dead(dead) => out.dead_letters.push(dead),
            }
        }
        out.runs.push(rows);
        Ok(out)
    }

    /// Reads and maps every line on the calling thread.
    fn sequential<R: BufRead>(self, mut lines: LineReader<R>) -> Result<MappedBody, PrepareError> {
        match next_chunk(&mut lines, usize::MAX, usize::MAX, Chunk::default())? {
            Some(chunk) => self.map(&chunk),
            None => Ok(MappedBody::default()),
        }
    }

    /// Reads (inflating and hashing, for gzip) the body [`LINES_PER_TASK`] lines at a time
    /// and maps and encodes each piece on `pool` as soon as it is read, so inflating and
    /// mapping overlap; the pieces are then put back in line order. Mapped pieces hand their
    /// buffers back to the reader. A read error ends the body: what was mapped is dropped.
    ///
    /// `ThreadPool::scope` runs the reading on a pool thread too, which also bounds how many
    /// pieces are mapped at once. `in_place_scope` (reading on the calling thread) looked
    /// faster in the latency phase (map p50 23 → 16 ms), but in full runs its p50 was within
    /// noise of this one and (b)'s peak RSS rose from 468 to 529 MB, over the 512 MB target.
    fn pipelined<R: BufRead + Send>(
        self,
        mut lines: LineReader<R>,
        pool: &rayon::ThreadPool,
    ) -> Result<MappedBody, PrepareError> {
        let (done_tx, done_rx) = mpsc::channel::<(usize, Result<MappedBody, PrepareError>)>();
        let read: Result<(), DecodeError> = pool.scope(move |scope| {
            let (free_tx, free_rx) = mpsc::channel::<Chunk>();
            let mut pieces = 0usize;
            let mut last_bytes = 0usize;
            loop {
                // A mapped piece's buffers if one is back; else buffers sized like the last piece.
                let chunk = free_rx
                    .try_recv()
                    .unwrap_or_else(|_| Chunk::with_capacity(LINES_PER_TASK, last_bytes + last_bytes / 8));
                let Some(chunk) = next_chunk(&mut lines, LINES_PER_TASK, usize::MAX, chunk)? else { return Ok(()) };
                last_bytes = chunk.bytes.len();
                let (done, free) = (done_tx.clone(), free_tx.clone());
                let index = pieces;
                scope.spawn(move |_| {
                    // `done_rx` outlives the scope, so the first send cannot fail; the second
                    // fails once the reader has finished, and the chunk is then dropped.
                    let _ = done.send((index, self.map(&chunk)));
                    let _ = free.send(chunk);
                });
                pieces += 1;
            }
        });
        let mut mapped: Vec<(usize, Result<MappedBody, PrepareError>)> = done_rx.into_iter().collect();
        read?;
        mapped.sort_unstable_by_key(|(index, _)| *index);
        let mut out = MappedBody { runs: Vec::with_capacity(mapped.len()), ..MappedBody::default() };
        for (_, piece) in mapped {
            out.append(piece?);
        }
        Ok(out)
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
    pool: &rayon::ThreadPool,
) -> Result<Prepared, PrepareError> {
    let (mapped, sha256, bytes) = map_request_body(body, mapper, received_at, origin, limits, pool)?;
    let dataset = mapper.dataset_name();
    let batch_id = EventId::derive(&["batch", dataset, &sha256]);
    let (decisions, raw_records) = (mapped.decisions(), mapped.raw_records());
    let first_error = mapped.dead_letters.first().map(|d| d.error.clone());
    let dead_letters = mapped.dead_letters.len();
    let plan = if raw_records == 0 && mapped.dead_letters.is_empty() {
        if mapped.probes > 0 { Plan::ProbeOnly } else { Plan::NoRecords }
    } else if let (true, Some(first_error)) = (reject_whole_batch, first_error.clone()) {
        Plan::Reject { first_error }
    } else {
        let head = BatchHead {
            batch_id: &batch_id,
            dataset,
            origin,
            received_at,
            lines: mapped.lines,
            probes: mapped.probes,
            bytes,
            sha256: &sha256,
        };
        let parts = head.encode_parts(mapped.runs, &mapped.dead_letters)?;
        Plan::Spool { parts, first_error: first_error.filter(|_| raw_records == 0) }
    };
    Ok(Prepared { batch_id, lines: mapped.lines, probes: mapped.probes, decisions, raw_records, dead_letters, plan })
}

/// Why a body could not become a batch.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrepareError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A bug, not the client's fault: logged, answered 503.
    #[error(transparent)]
    Encode(#[from] BatchCodecError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map_body;

    /// 1,000 lines (several pieces): sample records with bad, blank, over-long and probe
    /// lines among them, so every kind of outcome lands in more than one piece.
    fn mixed_body() -> Vec<u8> {
        let record = |i: usize| {
            format!(
                r#"{{"RayID":"7f00{i:012x}","EdgeStartTimestamp":"2025-03-05T00:00:{:02}Z","ClientIP":"192.0.2.{}","ClientRequestHost":"bi.example.com","ClientRequestMethod":"GET","ClientRequestURI":"/dashboards/{i}","EdgeResponseStatus":200,"Unknown":{i}}}"#,
                i % 60,
                i % 250
            )
        };
        let mut body = String::new();
        for i in 0..1000 {
            match i % 97 {
                5 => body.push_str("{\"truncated\": "),
                17 => {}
                29 => body.push_str(&"x".repeat(5000)),
                41 => body.push_str("{\"content\":\"tests\"}"),
                _ => body.push_str(&record(i)),
            }
            body.push_str(if i % 13 == 0 { "\r\n" } else { "\n" });
        }
        body.into_bytes()
    }

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap()
    }

    fn limits() -> Limits {
        Limits { max_decompressed: 1 << 30, max_line: 4096 }
    }

    /// The record `map_body` (line by line, the reference) gives for `plain`, as a batch.
    fn reference_record(plain: &[u8], at: UnixMillis) -> Vec<u8> {
        let ctx = BodyContext { received_at: at, origin: "o", source: Source::Logpush, limits: limits() };
        let expected = map_body(Dataset::HttpRequests, plain, &ctx).unwrap();
        let sha256 = gatelog_model::sha256_hex(plain);
        gatelog_model::Batch {
            batch_id: EventId::derive(&["batch", "http_requests", &sha256]),
            dataset: "http_requests".into(),
            origin: "o".into(),
            received_at: at,
            lines: expected.lines,
            probes: expected.probes,
            bytes: plain.len() as u64,
            sha256,
            decisions: expected.decisions,
            raw: expected.raw,
            dead_letters: expected.dead_letters,
        }
        .encode()
        .unwrap()
    }

    #[test]
    fn pieces_mapped_and_encoded_in_parallel_give_the_line_by_line_record() {
        let plain = mixed_body();
        let gzipped = super::super::client::gzip(&plain).unwrap();
        let at = UnixMillis(1_741_132_800_000);
        let ctx = BodyContext { received_at: at, origin: "o", source: Source::Logpush, limits: limits() };
        let outcome = map_body(Dataset::HttpRequests, &plain, &ctx).unwrap();
        assert!(
            outcome.decisions.len() > 900
                && outcome.dead_letters.len() >= 20
                && outcome.probes >= 10
                && outcome.blanks >= 10,
            "the body mixes outcomes"
        );
        let expected = reference_record(&plain, at);
        let mapper = Mapper::Dataset(Dataset::HttpRequests, Source::Logpush);
        // A small plain body takes the inline path (no rayon pool, one piece).
        let small = &plain[..plain.iter().take(INLINE_MAX).rposition(|b| *b == b'\n').unwrap() + 1];
        for (body, expected) in
            [(&plain[..], &expected), (&gzipped[..], &expected), (small, &reference_record(small, at))]
        {
            let prepared = prepare(body, mapper, at, "o", limits(), false, &pool()).unwrap();
            let Plan::Spool { parts, first_error: None } = prepared.plan else { panic!("{:?}", prepared.plan) };
            let encoded = parts.concat();
            assert!(&encoded == expected, "the record differs from the line-by-line one");
            let batch = gatelog_model::Batch::decode(&encoded).unwrap();
            assert_eq!(
                (prepared.batch_id, prepared.lines, prepared.probes),
                (batch.batch_id, batch.lines, batch.probes)
            );
            assert_eq!(
                (prepared.decisions, prepared.raw_records, prepared.dead_letters),
                (batch.decisions.len(), batch.raw.len(), batch.dead_letters.len())
            );
        }
        assert!(prepare(small, mapper, at, "o", limits(), false, &pool()).unwrap().lines > 200);
    }

    #[test]
    fn a_body_corrupt_after_several_pieces_is_an_error_not_a_partial_batch() {
        let gzipped = super::super::client::gzip(&mixed_body()).unwrap();
        let mut cut = gzipped[..gzipped.len() * 3 / 4].to_vec();
        let mapper = Mapper::Dataset(Dataset::HttpRequests, Source::Logpush);
        let truncated = map_request_body(&cut, mapper, UnixMillis(0), "o", limits(), &pool());
        assert!(matches!(truncated, Err(PrepareError::Decode(DecodeError::Corrupt { .. }))), "{truncated:?}");
        let middle = cut.len() / 2;
        cut[middle] ^= 0xff;
        assert!(map_request_body(&cut, mapper, UnixMillis(0), "o", limits(), &pool()).is_err());
    }
}
