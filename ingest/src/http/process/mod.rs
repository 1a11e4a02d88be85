//! From a request body to its spool record (a [`gatelog_model::Batch`], encoded; blocking
//! work: run it on the blocking pool for anything large).
//!
//! The body is inflated when it starts with the gzip magic (capped at
//! `max_decompressed_bytes`), hashed as it streams and cut into [`Chunk`](crate::Chunk)s;
//! each is mapped on the receiver's mapping threads (`super::workers`) as soon as it is read,
//! so inflating one part of the body overlaps mapping the parts before it (`pipeline`, which
//! also bounds what a body holds while it is mapped). The thread that maps a piece also
//! encodes its rows and dead letters ([`EncodedRows`](gatelog_model::EncodedRows)); the
//! record is the pieces in line order ([`BatchHead::encode_parts`]), handed to the spool as
//! parts, so the batch is never held whole as rows nor copied into one buffer. A body whose
//! events span more days than a batch may is mapped a second time (`days`). The batch id is
//! `EventId::derive(["batch", route dataset, sha256(inflated body)])`, so a body Logpush
//! retries gets the id it had and the store skips it.

mod days;
#[cfg(test)]
mod fuzz;
mod pipeline;

use crate::decode::{BodyReader, DecodeError, LineReader};
use crate::map::decisions::DecisionLineContext;
use crate::{BodyContext, Dataset, Limits};
use gatelog_edge::budget::{OverBudget, Reservation};
use gatelog_model::{BatchCodecError, BatchHead, EventId, Source, UnixMillis};
use pipeline::{LineMapper, MappedBody};
use sha2::{Digest, Sha256};
use std::io::{BufReader, Read};

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

/// One body's mapping: where it came from and what bounds it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job<'a> {
    pub mapper: Mapper,
    pub received_at: UnixMillis,
    pub origin: &'a str,
    pub limits: Limits,
    pub reject_whole_batch: bool,
    /// `receiver.max_days_per_batch`.
    pub max_days: usize,
    /// Lines before the body's first (0 for a request; for a body cut out of a file, the
    /// lines before it, so dead letters name the file's line numbers).
    pub lines_before: u64,
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
    /// Empty or whitespace-only lines (Logpush sends none: every record ends with one `\n`).
    pub blanks: u64,
    /// Partial problems in usable lines (see `LineOutcome::Mapped`).
    pub warnings: u64,
    pub decisions: usize,
    /// Usable lines (what `raw_records` rows were; their bytes are now kept in the batch's
    /// body, stored once in `raw_batches`).
    pub raw_records: usize,
    pub dead_letters: usize,
    /// Days beyond `max_days_per_batch` whose lines became dead letters (0 normally).
    pub excess_days: usize,
    /// The first dead letter's reason, in line order (whatever the plan).
    pub first_dead_letter: Option<String>,
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

/// Inflates (if gzip), hashes and maps a body, keeping only lines of `allowed_days` when
/// given. Errors for a body that cannot be read (too large once inflated, corrupt gzip), one
/// that would hold more than its reservation may, and, a bug, a row that does not encode.
fn map_request_body(
    body: &[u8],
    job: &Job<'_>,
    allowed_days: Option<&std::collections::BTreeSet<i64>>,
    pool: &rayon::ThreadPool,
    reservation: &mut Reservation,
) -> Result<(MappedBody, String, u64), PrepareError> {
    let limits = job.limits;
    let ctx = BodyContext {
        received_at: job.received_at,
        origin: job.origin,
        source: match job.mapper {
            Mapper::Dataset(_, source) => source,
            Mapper::Decisions => Source::Proxy,
        },
        limits,
    };
    let decision_ctx = DecisionLineContext {
        received_at: job.received_at,
        origin: job.origin,
        max_line: limits.max_line,
        window: limits.window,
    };
    let map = LineMapper {
        mapper: job.mapper,
        ctx: &ctx,
        decision_ctx: &decision_ctx,
        allowed_days,
        lines_before: job.lines_before,
    };
    if !crate::is_gzip(body) {
        if body.len() as u64 > limits.max_decompressed {
            return Err(DecodeError::TooLarge { limit: limits.max_decompressed }.into());
        }
        let lines = LineReader::new(body, limits.max_line).starting_after(job.lines_before);
        let out = if body.len() <= INLINE_MAX {
            map.sequential(lines, reservation)?
        } else {
            map.pipelined(lines, pool, reservation)?
        };
        return Ok((out, gatelog_model::sha256_hex(body), body.len() as u64));
    }
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let out = {
        let inflated = BodyReader::new(body, limits.max_decompressed)?;
        let hashing = Hashing { inner: inflated, hasher: &mut hasher, bytes: &mut bytes };
        let lines = LineReader::new(BufReader::with_capacity(256 * 1024, hashing), limits.max_line)
            .starting_after(job.lines_before);
        map.pipelined(lines, pool, reservation)?
    };
    Ok((out, hex_digest(hasher), bytes))
}

/// Plain bodies up to this size are mapped on the calling thread, without the mapping
/// threads: the receiver maps them inline on the async runtime, which must not wait for them.
pub(crate) const INLINE_MAX: usize = 64 * 1024;

fn hex_digest(hasher: Sha256) -> String {
    use std::fmt::Write as _;
    hasher.finalize().iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The body as the batch keeps it (`Batch::body`, stored once in `raw_batches`): a gzip body
/// as received, a plain one compressed here (fastest level: the body is evidence kept
/// beside the rows, not the hot path's product; ClickHouse compresses nothing further).
fn stored_body(body: &[u8]) -> Result<Vec<u8>, PrepareError> {
    if crate::is_gzip(body) {
        return Ok(body.to_vec());
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, body)
        .and_then(|()| gz.finish())
        .map_err(|e| PrepareError::Encode(BatchCodecError::Encode(format!("compressing the body: {e}"))))
}

/// Maps a body and decides what to do with it; encodes the batch when it is to be spooled.
/// What the body's batch holds is charged to `reservation` as it is mapped.
pub(crate) fn prepare(
    body: &[u8],
    job: &Job<'_>,
    pool: &rayon::ThreadPool,
    reservation: &mut Reservation,
) -> Result<Prepared, PrepareError> {
    let (mut mapped, mut sha256, mut bytes) = map_request_body(body, job, None, pool, reservation)?;
    let mut excess_days = 0;
    if mapped.days.len() > job.max_days {
        excess_days = mapped.days.len() - job.max_days;
        let allowed = mapped.days.busiest(job.max_days);
        drop(mapped);
        reservation.release_batch();
        (mapped, sha256, bytes) = map_request_body(body, job, Some(&allowed), pool, reservation)?;
    }
    let dataset = job.mapper.dataset_name();
    let batch_id = EventId::derive(&["batch", dataset, &sha256]);
    let (decisions, raw_records, dead_letters) = (mapped.decisions(), mapped.mapped_lines(), mapped.dead_letters());
    let first_error = mapped.first_error.take();
    let plan = if raw_records == 0 && dead_letters == 0 {
        if mapped.probes > 0 { Plan::ProbeOnly } else { Plan::NoRecords }
    } else if let (true, Some(first_error)) = (job.reject_whole_batch, first_error.clone()) {
        Plan::Reject { first_error }
    } else {
        let head = BatchHead {
            batch_id: &batch_id,
            dataset,
            origin: job.origin,
            received_at: job.received_at,
            lines: mapped.lines,
            probes: mapped.probes,
            bytes,
            sha256: &sha256,
        };
        // The record's head counts against max_batch_bytes too.
        reservation.grow_batch(head.overhead())?;
        let stored = stored_body(body)?;
        reservation.grow_batch(stored.capacity())?;
        let parts = head.encode_parts(std::mem::take(&mut mapped.runs), stored)?;
        Plan::Spool { parts, first_error: first_error.clone().filter(|_| raw_records == 0) }
    };
    Ok(Prepared {
        batch_id,
        lines: mapped.lines,
        probes: mapped.probes,
        blanks: mapped.blanks,
        warnings: mapped.warnings,
        decisions,
        raw_records,
        dead_letters,
        excess_days,
        first_dead_letter: first_error,
        plan,
    })
}

/// Why a body could not become a batch.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrepareError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The request would hold more than it may (413) or than the receiver has left (503).
    #[error("over the memory budget: {0:?}")]
    OverBudget(OverBudget),
    /// A bug, not the client's fault: logged, answered 503.
    #[error(transparent)]
    Encode(#[from] BatchCodecError),
}

impl From<OverBudget> for PrepareError {
    fn from(e: OverBudget) -> Self {
        PrepareError::OverBudget(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map_body;
    use gatelog_edge::budget::MemoryBudget;

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
        Limits { max_decompressed: 1 << 30, max_line: 4096, window: crate::TimeWindow::default() }
    }

    const AT: UnixMillis = UnixMillis(1_741_132_800_000);

    fn job(mapper: Mapper) -> Job<'static> {
        Job {
            mapper,
            received_at: AT,
            origin: "o",
            limits: limits(),
            reject_whole_batch: false,
            max_days: 31,
            lines_before: 0,
        }
    }

    const HTTP: Mapper = Mapper::Dataset(Dataset::HttpRequests, Source::Logpush);

    /// A budget of `total` bytes, batches of at most `batch_cap`.
    fn budget(total: usize, batch_cap: usize) -> (MemoryBudget, Reservation) {
        let budget = MemoryBudget::new(total);
        let reservation = budget.reserve(batch_cap);
        (budget, reservation)
    }

    fn run(body: &[u8], job: &Job<'_>) -> Result<Prepared, PrepareError> {
        prepare(body, job, &pool(), &mut budget(1 << 30, 1 << 29).1)
    }

    /// The record `map_body` (line by line, the reference) gives for `body`, as a batch.
    fn reference_record(body: &[u8], at: UnixMillis) -> Vec<u8> {
        let inflated;
        let plain = if crate::is_gzip(body) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(body).read_to_end(&mut out).unwrap();
            inflated = out;
            &inflated[..]
        } else {
            body
        };
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
            raw: Vec::new(),
            dead_letters: expected.dead_letters,
            body: super::stored_body(body).unwrap(),
            decision_lines: expected.decision_lines,
        }
        .encode()
        .unwrap()
    }

    fn outcome_of(body: &[u8]) -> crate::BodyOutcome {
        let ctx = BodyContext { received_at: AT, origin: "o", source: Source::Logpush, limits: limits() };
        map_body(Dataset::HttpRequests, body, &ctx).unwrap()
    }

    #[test]
    fn pieces_mapped_and_encoded_in_parallel_give_the_line_by_line_record() {
        let plain = mixed_body();
        let gzipped = super::super::client::gzip(&plain).unwrap();
        let at = AT;
        let ctx = BodyContext { received_at: at, origin: "o", source: Source::Logpush, limits: limits() };
        let outcome = map_body(Dataset::HttpRequests, &plain, &ctx).unwrap();
        assert!(
            outcome.decisions.len() > 900
                && outcome.dead_letters.len() >= 20
                && outcome.probes >= 10
                && outcome.blanks >= 10,
            "the body mixes outcomes"
        );
        let mapper = Mapper::Dataset(Dataset::HttpRequests, Source::Logpush);
        // A small plain body takes the inline path (no rayon pool, one piece).
        let small = &plain[..plain.iter().take(INLINE_MAX).rposition(|b| *b == b'\n').unwrap() + 1];
        for (body, expected) in [
            (&plain[..], &reference_record(&plain, at)),
            (&gzipped[..], &reference_record(&gzipped, at)),
            (small, &reference_record(small, at)),
        ] {
            let prepared = run(body, &job(mapper)).unwrap();
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
                (batch.decisions.len(), outcome_of(body).raw.len(), batch.dead_letters.len())
            );
            assert_eq!(batch.decision_lines.len(), batch.decisions.len());
        }
        assert!(run(small, &job(mapper)).unwrap().lines > 200);
    }

    #[test]
    fn a_body_corrupt_after_several_pieces_is_an_error_not_a_partial_batch() {
        let gzipped = super::super::client::gzip(&mixed_body()).unwrap();
        let mut cut = gzipped[..gzipped.len() * 3 / 4].to_vec();
        let truncated = run(&cut, &job(HTTP));
        assert!(matches!(truncated, Err(PrepareError::Decode(DecodeError::Corrupt { .. }))), "{truncated:?}");
        let middle = cut.len() / 2;
        cut[middle] ^= 0xff;
        assert!(run(&cut, &job(HTTP)).is_err());
    }

    #[test]
    fn blank_lines_are_counted_and_hold_nothing() {
        for gzipped in [false, true] {
            let plain = vec![b'\n'; 8 << 20];
            let body = if gzipped { super::super::client::gzip(&plain).unwrap() } else { plain };
            let (budget, mut reservation) = budget(1 << 30, 1 << 29);
            let prepared = prepare(&body, &job(HTTP), &pool(), &mut reservation).unwrap();
            assert_eq!(prepared.plan, Plan::NoRecords);
            assert_eq!((prepared.lines, prepared.blanks), (8 << 20, 8 << 20));
            assert!(budget.peak() < 64 << 10, "8 Mi blank lines held {} bytes (gzip: {gzipped})", budget.peak());
        }
    }

    #[test]
    fn a_flood_of_dead_letters_stops_at_the_batch_cap() {
        let body = b"x\n".repeat(4 << 20);
        let (budget, mut reservation) = budget(1 << 30, 4 << 20);
        let refused = prepare(&body, &job(HTTP), &pool(), &mut reservation);
        assert!(matches!(refused, Err(PrepareError::OverBudget(OverBudget::BatchTooLarge { .. }))), "{refused:?}");
        // What was charged before the cap was hit is at most the cap and a few pieces.
        assert!(budget.peak() < (5 << 20), "peak {}", budget.peak());
        drop(reservation);
        assert_eq!(budget.held(), 0);
        // Within a cap large enough, every line is a dead letter and counted.
        let body = b"x\n".repeat(10_000);
        let prepared = run(&body, &job(HTTP)).unwrap();
        assert_eq!((prepared.dead_letters, prepared.lines), (10_000, 10_000));
        let Plan::Spool { first_error: Some(first), .. } = prepared.plan else { panic!("{:?}", prepared.plan) };
        assert!(first.starts_with("line 1: "), "{first}");
    }

    #[test]
    fn a_full_budget_is_busy_not_too_large() {
        let (budget, mut other) = budget(1 << 20, 1 << 20);
        other.grow_body((1 << 20) - 1000).unwrap();
        let mut reservation = budget.reserve(1 << 20);
        let body = b"x\n".repeat(100_000);
        let refused = prepare(&body, &job(HTTP), &pool(), &mut reservation);
        assert!(matches!(refused, Err(PrepareError::OverBudget(OverBudget::Busy { .. }))), "{refused:?}");
    }

    /// An `http_requests` line at `ms` (epoch milliseconds).
    fn record_at(n: usize, ms: i64) -> String {
        record_ts(n, &UnixMillis(ms).to_rfc3339())
    }

    fn record_ts(n: usize, ts: &str) -> String {
        format!(
            r#"{{"RayID":"7f01{n:012x}","EdgeStartTimestamp":"{ts}","ClientRequestHost":"h","ClientRequestURI":"/","EdgeResponseStatus":200}}"#
        )
    }

    #[test]
    fn times_out_of_the_window_are_dead_letters() {
        let day = 86_400_000i64;
        let (now, year_ago, ahead) =
            (AT.to_rfc3339(), UnixMillis(AT.0 - 365 * day).to_rfc3339(), UnixMillis(AT.0 + 3 * day).to_rfc3339());
        let times = [&now, &year_ago, "1900-01-01T00:00:00Z", "9999-12-31T23:59:59Z", &ahead, "-1"];
        let body: String = times.iter().enumerate().map(|(n, t)| record_ts(n, t) + "\n").collect();
        let prepared = run(body.as_bytes(), &job(HTTP)).unwrap();
        assert_eq!((prepared.decisions, prepared.dead_letters), (2, 4));
        let Plan::Spool { parts, .. } = prepared.plan else { panic!("{:?}", prepared.plan) };
        let batch = gatelog_model::Batch::decode(&parts.concat()).unwrap();
        let errors: Vec<&str> = batch.dead_letters.iter().map(|d| d.error.as_str()).collect();
        assert!(errors[0].starts_with("line 3: event time 1900-01-01T00:00:00.000Z is before the accepted window"));
        assert!(errors[1].starts_with("line 4: event time 9999-12-31T23:59:59.000Z is after"), "{errors:?}");
        assert!(errors[2].starts_with("line 5: ") && errors[3].starts_with("line 6: "), "{errors:?}");
    }

    #[test]
    fn a_batch_spanning_too_many_days_keeps_its_busiest() {
        let day = 86_400_000i64;
        // 40 distinct days one line each, and day 0 (AT) with three more lines.
        let mut body = String::new();
        for n in 0..40 {
            body.push_str(&record_at(n, AT.0 - i64::try_from(n).unwrap() * 40 * day));
            body.push('\n');
        }
        for n in 40..43 {
            body.push_str(&record_at(n, AT.0 + 1000));
            body.push('\n');
        }
        let prepared = run(body.as_bytes(), &Job { max_days: 5, ..job(HTTP) }).unwrap();
        assert_eq!(prepared.excess_days, 35);
        assert_eq!((prepared.raw_records, prepared.dead_letters), (3 + 5, 35));
        let Plan::Spool { parts, .. } = prepared.plan else { panic!("{:?}", prepared.plan) };
        let batch = gatelog_model::Batch::decode(&parts.concat()).unwrap();
        let days: std::collections::BTreeSet<i64> = batch.decisions.iter().map(|d| d.time.0.div_euclid(day)).collect();
        assert_eq!(days.len(), 5, "the batch fans out into 5 days");
        assert!(days.contains(&AT.0.div_euclid(day)), "the busiest day is kept");
        assert!(batch.dead_letters.iter().all(|d| d.error.contains("not among the 5 busiest days")));
        // The same body gives the same record (the choice does not depend on the threads).
        let again = run(body.as_bytes(), &Job { max_days: 5, ..job(HTTP) }).unwrap();
        let Plan::Spool { parts: again, .. } = again.plan else { panic!() };
        assert!(again.concat() == parts.concat());
    }
}
