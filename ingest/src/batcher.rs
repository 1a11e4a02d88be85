//! [`Batcher`]: the receiver's road from a body to its spool record, for callers that are not
//! the HTTP edge (`gatelog ingest`).
//!
//! `gatelog ingest` cuts a file into bodies ([`next_body`](crate::chunk::next_body): whole
//! lines, their bytes as in the file) and hands each to [`Batcher::map`], which maps it with
//! the receiver's own code (`http::process`): the same mappers, time window, days bound,
//! record encoding, and the same batch-id rule, `EventId::derive(["batch", dataset,
//! sha256(inflated body)])`. So a body cut from a file and the same bytes posted to
//! `POST /v1/logpush/{dataset}` (gzipped or not) become the same batch id, and a file
//! ingested twice gives the same batches. Records that arrive in *different* bodies (a file
//! cut one way, Logpush's uploads another) are different batches holding the same event ids:
//! the store (`decisions` keyed by `(tenant, event_id)`) and the index (replace by
//! `event_id`) keep each event once.

use crate::decode::DecodeError;
use crate::http::process::{Job, Mapper, Plan, PrepareError, prepare};
use crate::{Dataset, Limits};
use gatelog_edge::budget::{MemoryBudget, OverBudget};
use gatelog_model::{BatchCodecError, Source, UnixMillis};

/// Maps bodies on its own threads, one body at a time per call (calls may run at once).
#[derive(Debug)]
pub struct Batcher {
    pool: rayon::ThreadPool,
    budget: MemoryBudget,
    batch_cap: usize,
}

/// One body to map: what the receiver knows about a request.
#[derive(Debug, Clone, Copy)]
pub struct BatchJob<'a> {
    pub dataset: Dataset,
    pub received_at: UnixMillis,
    /// Where the lines came from (a file name); kept with every dead letter and the batch.
    pub origin: &'a str,
    pub limits: Limits,
    /// A batch whose events span more days keeps the busiest ones (the rest are dead letters).
    pub max_days: usize,
    /// Lines before the body's first in its file, so dead letters name the file's lines.
    pub lines_before: u64,
}

/// A mapped body: its counts and, when there is anything to store, its spool record.
#[derive(Debug)]
pub struct Batched {
    pub batch_id: String,
    pub lines: u64,
    pub probes: u64,
    pub blanks: u64,
    pub warnings: u64,
    pub decisions: usize,
    pub raw_records: usize,
    pub dead_letters: usize,
    /// The first dead letter's reason, in line order.
    pub first_dead_letter: Option<String>,
    /// The spool record in parts (`Spool::append_parts`); `None` when the body held only
    /// validation probes and blank lines, which the receiver does not spool either.
    pub record: Option<Vec<Vec<u8>>>,
}

/// Why a body could not become a batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("the batch would be larger than {limit} bytes once mapped; make the bodies smaller")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Encode(#[from] BatchCodecError),
}

impl Batcher {
    /// A batcher mapping on `threads` threads whose batches (mapped and encoded) may hold at
    /// most `batch_cap` bytes each.
    pub fn new(threads: usize, batch_cap: usize) -> Result<Batcher, rayon::ThreadPoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("gatelog-map-{i}"))
            .build()?;
        Ok(Batcher { pool, budget: MemoryBudget::new(usize::MAX / 2), batch_cap })
    }

    /// Maps `body` (plain or gzip NDJSON) as the receiver maps a request body of `job.dataset`.
    pub fn map(&self, body: &[u8], job: &BatchJob<'_>) -> Result<Batched, BatchError> {
        let source = if job.dataset == Dataset::Tail { Source::Tail } else { Source::Logpush };
        let job = Job {
            mapper: Mapper::Dataset(job.dataset, source),
            received_at: job.received_at,
            origin: job.origin,
            limits: job.limits,
            reject_whole_batch: false,
            max_days: job.max_days.max(1),
            lines_before: job.lines_before,
        };
        let mut reservation = self.budget.reserve(self.batch_cap);
        let prepared = prepare(body, &job, &self.pool, &mut reservation).map_err(|e| match e {
            PrepareError::Decode(e) => BatchError::Decode(e),
            PrepareError::Encode(e) => BatchError::Encode(e),
            PrepareError::OverBudget(OverBudget::BatchTooLarge { limit } | OverBudget::Busy { limit }) => {
                BatchError::TooLarge { limit }
            }
        })?;
        let record = match prepared.plan {
            Plan::Spool { parts, .. } => Some(parts),
            Plan::ProbeOnly | Plan::NoRecords | Plan::Reject { .. } => None,
        };
        Ok(Batched {
            batch_id: prepared.batch_id,
            lines: prepared.lines,
            probes: prepared.probes,
            blanks: prepared.blanks,
            warnings: prepared.warnings,
            decisions: prepared.decisions,
            raw_records: prepared.raw_records,
            dead_letters: prepared.dead_letters,
            first_dead_letter: prepared.first_dead_letter,
            record,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_model::{Batch, EventId, sha256_hex};

    const LINE: &str = r#"{"RayID":"7f0000000000abcd","EdgeStartTimestamp":"2025-03-05T00:00:01Z","ClientRequestHost":"h","ClientRequestURI":"/","EdgeResponseStatus":200}"#;

    fn job(lines_before: u64) -> BatchJob<'static> {
        BatchJob {
            dataset: Dataset::HttpRequests,
            received_at: UnixMillis(1_741_132_800_000),
            origin: "file.ndjson",
            limits: Limits { max_decompressed: 1 << 30, max_line: 4096, window: crate::TimeWindow::default() },
            max_days: usize::MAX,
            lines_before,
        }
    }

    #[test]
    fn a_body_gets_the_receivers_batch_id_and_the_files_line_numbers() {
        let body = format!("{LINE}\n{{\"cut\": \n");
        let batcher = Batcher::new(2, 1 << 20).unwrap();
        let plain = batcher.map(body.as_bytes(), &job(100)).unwrap();
        assert_eq!(plain.batch_id, EventId::derive(&["batch", "http_requests", &sha256_hex(body.as_bytes())]));
        let gzipped = batcher.map(&crate::http::client::gzip(body.as_bytes()).unwrap(), &job(100)).unwrap();
        assert_eq!(gzipped.batch_id, plain.batch_id, "the id is the inflated bytes'");
        assert_eq!((plain.lines, plain.decisions, plain.dead_letters), (2, 1, 1));
        let batch = Batch::decode(&plain.record.unwrap().concat()).unwrap();
        assert_eq!(batch.dead_letters[0].line_no, 102);
        assert!(plain.first_dead_letter.unwrap().starts_with("line 102: "));
    }

    #[test]
    fn probes_store_nothing_and_a_batch_over_the_cap_is_an_error() {
        let batcher = Batcher::new(1, 1 << 20).unwrap();
        let probe = batcher.map(b"{\"content\":\"tests\"}\n", &job(0)).unwrap();
        assert!(probe.record.is_none() && probe.probes == 1);
        let small = Batcher::new(1, 1024).unwrap();
        let body = format!("{LINE}\n").repeat(50);
        assert!(matches!(small.map(body.as_bytes(), &job(0)), Err(BatchError::TooLarge { limit: 1024 })));
    }
}
