//! An event's exact original line: [`Store::raw_line`], the one lookup behind `gatelog raw`,
//! `GET /v1/raw/{event_id}` and the web UI's event page.
//!
//! The decision (the copy `decisions FINAL` keeps) names its batch; the batch's body
//! (`raw_batches`, stored once as received: gzip) is inflated, its SHA-256 checked against
//! the stored content hash (the `ingest_batches.sha256` the hash chain links), and line N
//! taken: the bytes between the (N-1)th and Nth newline, without the newline and a `\r`
//! before it. Events stored before migration 18 have their line in `raw_records` (found by
//! the decision's `raw_sha256`), checked against that SHA-256. A body or line whose hash
//! does not match is [`RawError::Integrity`], never returned.

use crate::sql::raw::RawQueries;
use crate::sql::{Lit, render};
use crate::{Store, StoreError};
use gatelog_model::UnixMillis;
use sha2::{Digest, Sha256};
use std::io::Read;

/// An event's original line and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// The line, byte for byte (without its line ending).
    pub bytes: Vec<u8>,
    pub dataset: String,
    pub batch_id: String,
    /// 1-based line in the batch's body (0 for a line from `raw_records`, which kept none).
    pub line: u32,
    pub received_at: UnixMillis,
    /// SHA-256 (hex) the bytes were checked against: the inflated body's (`raw_batches`),
    /// or the line's own (`raw_records`).
    pub checked_sha256: String,
    /// Where it came from: `raw_batches` or `raw_records`.
    pub table: &'static str,
}

/// Why an event's line could not be given.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored bytes do not hash to the stored content hash: they were changed.
    #[error("integrity: {what} of batch {batch_id} does not match its stored SHA-256 ({detail})")]
    Integrity { what: &'static str, batch_id: String, detail: String },
}

#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct EventRow {
    batch_id: String,
    dataset: String,
    raw_sha256: String,
}

#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct BatchRow {
    dataset: String,
    #[allow(dead_code)]
    source: String,
    received_at_ms: i64,
    sha256: String,
    #[allow(dead_code)]
    lines: u64,
    body_hex: String,
    line: u32,
}

#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct RecordRow {
    line_hex: String,
    sha256: String,
    received_at_ms: i64,
    batch_id: String,
}

/// Line `n` (1-based) of `body`, without its `\n` and a `\r` before it.
pub fn nth_line(body: &[u8], n: u32) -> Option<&[u8]> {
    let index = usize::try_from(n).ok()?.checked_sub(1)?;
    // A final newline ends the last line; it does not start another.
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    let line = body.split(|b| *b == b'\n').nth(index)?;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

fn inflate(gz: &[u8], batch_id: &str) -> Result<Vec<u8>, RawError> {
    let mut out = Vec::with_capacity(gz.len() * 6);
    flate2::read::MultiGzDecoder::new(gz).read_to_end(&mut out).map_err(|e| RawError::Integrity {
        what: "the stored body",
        batch_id: batch_id.to_owned(),
        detail: format!("it does not inflate: {e}"),
    })?;
    Ok(out)
}

impl Store {
    /// The exact original line of `(tenant, event_id)`; `None` when no decision has that id
    /// (or its batch kept no line for it). See the module docs.
    pub async fn raw_line(&self, tenant: &str, event_id: &str) -> Result<Option<RawLine>, RawError> {
        let q = RawQueries::new(&self.inner.options);
        let sql = render(&q.event, &[Lit::Str(tenant), Lit::Str(event_id)]);
        let events: Vec<EventRow> = self.fetch_all("SELECT", &self.qualified("decisions"), &sql).await?;
        let Some(event) = events.into_iter().next() else { return Ok(None) };
        let sql = render(&q.batch, &[Lit::Str(event_id), Lit::Str(&event.batch_id)]);
        let batches: Vec<BatchRow> = self.fetch_all("SELECT", &self.qualified("raw_batches"), &sql).await?;
        if let Some(batch) = batches.into_iter().next().filter(|b| b.line > 0) {
            let integrity = |detail: String| RawError::Integrity {
                what: "the stored body",
                batch_id: event.batch_id.clone(),
                detail,
            };
            let gz = hex::decode(&batch.body_hex).map_err(|e| integrity(format!("not hex: {e}")))?;
            let body = inflate(&gz, &event.batch_id)?;
            let found = hex::encode(Sha256::digest(&body));
            if found != batch.sha256 {
                return Err(integrity(format!("expected {}, found {found}", batch.sha256)));
            }
            let line = nth_line(&body, batch.line)
                .ok_or_else(|| integrity(format!("it has no line {}", batch.line)))?
                .to_vec();
            return Ok(Some(RawLine {
                bytes: line,
                dataset: batch.dataset,
                batch_id: event.batch_id,
                line: batch.line,
                received_at: UnixMillis(batch.received_at_ms),
                checked_sha256: batch.sha256,
                table: "raw_batches",
            }));
        }
        if event.raw_sha256.is_empty() {
            return Ok(None);
        }
        let sql = render(&q.record, &[Lit::Str(&event.dataset), Lit::Str(&event.raw_sha256)]);
        let records: Vec<RecordRow> = self.fetch_all("SELECT", &self.qualified("raw_records"), &sql).await?;
        let Some(record) = records.into_iter().next() else { return Ok(None) };
        let integrity =
            |detail: String| RawError::Integrity { what: "the stored line", batch_id: record.batch_id.clone(), detail };
        let bytes = hex::decode(&record.line_hex).map_err(|e| integrity(format!("not hex: {e}")))?;
        let found = hex::encode(Sha256::digest(&bytes));
        if found != record.sha256 {
            return Err(integrity(format!("expected {}, found {found}", record.sha256)));
        }
        Ok(Some(RawLine {
            bytes,
            dataset: event.dataset,
            batch_id: record.batch_id.clone(),
            line: 0,
            received_at: UnixMillis(record.received_at_ms),
            checked_sha256: record.sha256,
            table: "raw_records",
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::nth_line;

    #[test]
    fn lines_are_counted_as_the_receiver_counts_them() {
        let body = b"a\r\nb\n\nd";
        assert_eq!(nth_line(body, 1), Some(&b"a"[..]));
        assert_eq!(nth_line(body, 2), Some(&b"b"[..]));
        assert_eq!(nth_line(body, 3), Some(&b""[..]));
        assert_eq!(nth_line(body, 4), Some(&b"d"[..]));
        assert_eq!(nth_line(body, 5), None);
        assert_eq!(nth_line(b"x\n", 1), Some(&b"x"[..]));
        assert_eq!(nth_line(b"x\n", 2), None);
        assert_eq!(nth_line(body, 0), None);
    }
}
