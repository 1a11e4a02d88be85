//! The hash chain over stored batches, the store's side ([`gatelog_model::chain`] is the
//! pure part): the writer links every batch it stores (the link on the batch's marker, the
//! row ledger in `batch_rows`, both in the batch's write group, so exactly once with it);
//! [`Store::chain_head`] and [`Store::record_checkpoint`] for `gatelog serve`'s signed
//! checkpoints; [`Store::verify_chain`] recomputes a period from ClickHouse (`verify`).
//!
//! `decisions` merges copies of one event stored by different batches (ARCHITECTURE.md,
//! "Which copy survives"), so no digest of a batch's rows *in `decisions`* is kept: the
//! ledger holds what the batch stored, and verification accepts a ledger row that is gone
//! from `decisions` only if a copy of its event from the same or a later link is still
//! there (what a merge leaves); every stored row of a linked batch must be in its ledger
//! with the same hash.

mod rows;
mod verdict;
mod verify;

pub use verdict::{
    ChainVerdict, CheckpointStatus, MAX_PROBLEMS, Problem, ProblemClass, SignatureCheck, VerifyOptions, VerifyProgress,
};

use crate::rowbinary::RowEncoder;
use crate::sql::chain::ChainQueries;
use crate::store::with_retries;
use crate::{Store, StoreError};
use gatelog_model::chain::{BatchCounts, BatchFacts, ChainHead};
use serde::Serialize;

/// A recorded head of the chain (`chain_checkpoints`): when, the head, and the signature
/// over [`gatelog_model::chain::checkpoint_message`] (empty: unsigned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub at_ms: i64,
    pub head: ChainHead,
    /// The signing key's fingerprint (`SHA256:…`), empty when unsigned.
    pub signer: String,
    /// An armoured SSH signature (namespace `gatelog-chain`), empty when unsigned.
    pub signature: String,
}

impl Checkpoint {
    pub fn is_signed(&self) -> bool {
        !self.signature.is_empty()
    }
}

/// A batch's facts as the writer links them; verification rebuilds the same from the marker.
pub(crate) fn facts_of(batch: &crate::WriteBatch, spool_seq: u64, rows_sha256: String) -> BatchFacts {
    BatchFacts {
        batch_id: batch.batch_id.clone(),
        spool_seq,
        dataset: batch.dataset.clone(),
        received_at_ms: batch.received_at.0,
        content_sha256: batch.sha256.clone(),
        counts: BatchCounts {
            lines: batch.lines,
            decisions: batch.decisions.len() as u64,
            raw_records: batch.raw.len() as u64,
            dead_letters: batch.dead_letters.len() as u64,
            probes: batch.probes,
            bytes: batch.bytes,
        },
        rows_sha256,
    }
}

/// A marker as verification reads it ([`crate::sql::chain::MARKER_COLUMNS`]).
#[derive(Debug, Clone, clickhouse::Row, serde::Deserialize)]
pub(crate) struct MarkerRow {
    pub batch_id: String,
    pub spool_seq: u64,
    pub dataset: String,
    pub received_at_ms: i64,
    pub sha256: String,
    pub lines: u64,
    pub decisions: u64,
    pub raw_records: u64,
    pub dead_letters: u64,
    pub probes: u64,
    pub bytes: u64,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub chain_seq: u64,
    pub chain_prev: String,
    pub chain_hash: String,
    pub rows_sha256: String,
}

impl MarkerRow {
    /// The facts the link of this marker hashes, as stored now.
    pub(crate) fn facts(&self) -> BatchFacts {
        BatchFacts {
            batch_id: self.batch_id.clone(),
            spool_seq: self.spool_seq,
            dataset: self.dataset.clone(),
            received_at_ms: self.received_at_ms,
            content_sha256: self.sha256.clone(),
            counts: BatchCounts {
                lines: self.lines,
                decisions: self.decisions,
                raw_records: self.raw_records,
                dead_letters: self.dead_letters,
                probes: self.probes,
                bytes: self.bytes,
            },
            rows_sha256: self.rows_sha256.clone(),
        }
    }
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct CheckpointRow {
    at_ms: i64,
    links: u64,
    last_batch_id: String,
    hash: String,
    signer: String,
    signature: String,
}

impl From<CheckpointRow> for Checkpoint {
    fn from(r: CheckpointRow) -> Self {
        Checkpoint {
            at_ms: r.at_ms,
            head: ChainHead {
                links: r.links,
                last_batch_id: (!r.last_batch_id.is_empty()).then_some(r.last_batch_id),
                hash: r.hash,
            },
            signer: r.signer,
            signature: r.signature,
        }
    }
}

impl Store {
    pub(crate) fn chain_queries(&self) -> ChainQueries {
        ChainQueries::new(self.profile(), &self.inner.options)
    }

    /// The head of the chain as stored: the last link's position, batch and hash (the
    /// genesis head before the first link).
    pub async fn chain_head(&self) -> Result<ChainHead, StoreError> {
        with_retries(&self.inner.config, "chain_head", || self.stored_chain_head()).await
    }

    pub(crate) async fn stored_chain_head(&self) -> Result<ChainHead, StoreError> {
        let rows: Vec<(u64, String, String)> =
            self.fetch_all("SELECT", &self.qualified("ingest_batches"), &self.inner.queries.chain_head).await?;
        Ok(match rows.into_iter().next() {
            Some((links, batch_id, hash)) => ChainHead { links, last_batch_id: Some(batch_id), hash },
            None => ChainHead::genesis(),
        })
    }

    /// Stores a checkpoint in `chain_checkpoints`.
    pub async fn record_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let mut enc = RowEncoder::new(self.profile(), 1024);
        enc.checkpoint(checkpoint);
        let data = enc.take();
        let table = self.qualified("chain_checkpoints");
        let sql = &self.inner.queries.insert_chain_checkpoints;
        with_retries(&self.inner.config, "record_checkpoint", || self.insert_bytes(sql, &table, data.clone())).await
    }

    /// The checkpoints of links `first..=last` or taken in `[from_ms, to_ms)`.
    pub(crate) async fn checkpoints_between(
        &self,
        (first, last): (u64, u64),
        (from_ms, to_ms): (i64, i64),
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let sql = crate::sql::render(
            &self.chain_queries().checkpoints,
            &[lit_u64(first), lit_u64(last), crate::sql::Lit::I64(from_ms), crate::sql::Lit::I64(to_ms)],
        );
        let rows: Vec<CheckpointRow> = self.fetch_all("SELECT", &self.qualified("chain_checkpoints"), &sql).await?;
        Ok(rows.into_iter().map(Checkpoint::from).collect())
    }
}

pub(crate) fn lit_u64(n: u64) -> crate::sql::Lit<'static> {
    crate::sql::Lit::I64(i64::try_from(n).unwrap_or(i64::MAX))
}

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of the first day of `(year, month)` (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month)` of an instant (UTC).
fn civil_month(ms: i64) -> (i64, i64) {
    let z = ms.div_euclid(MS_PER_DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m)
}

/// The first millisecond of `lo`'s month and the last of `hi`'s: the month partitions that
/// hold the instants (a merge never moves a row out of its partition).
pub(crate) fn whole_months(lo: i64, hi: i64) -> (i64, i64) {
    let (y, m) = civil_month(lo);
    let start = days_from_civil(y, m) * MS_PER_DAY;
    let (y, m) = civil_month(hi);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (start, days_from_civil(ny, nm) * MS_PER_DAY - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_months_cover_the_partitions() {
        // 2025-03-03T08:31:53.712Z .. 2025-12-31T23:00:00Z
        let (lo, hi) = whole_months(1_740_990_713_712, 1_767_222_000_000);
        assert_eq!(lo, 1_740_787_200_000); // 2025-03-01T00:00:00Z
        assert_eq!(hi, 1_767_225_599_999); // 2025-12-31T23:59:59.999Z
        let (lo, hi) = whole_months(1_738_367_999_999, 1_738_367_999_999); // 2025-01-31T23:59:59.999Z
        assert_eq!((lo, hi), (1_735_689_600_000, 1_738_367_999_999));
    }
}
