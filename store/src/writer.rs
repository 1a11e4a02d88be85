//! `write_batch`: one batch, stored exactly once, with the `ingest_batches` marker written last.

use crate::frames::{FRAME_BYTES, FrameSender};
use crate::order;
use crate::profile::SchemaProfile;
use crate::rowbinary::{BatchRow, RowEncoder};
use crate::sql::{Lit, render, storage_table};
use crate::store::{Inner, with_retries};
use crate::{Store, StoreError};
use bytes::Bytes;
use gatelog_model::{AccessDecision, UnixMillis};
use std::time::{Duration, Instant};

/// One batch as the spool hands it over: the model's [`gatelog_model::Batch`]. A `batch_id`
/// names one immutable content: the same id is always the same rows.
pub use gatelog_model::Batch as WriteBatch;

/// What `write_batch` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The batch was stored now.
    Written {
        decisions: u64,
        raw_records: u64,
        dead_letters: u64,
        /// Rows of an earlier, interrupted attempt that were removed first.
        removed_partial_rows: u64,
    },
    /// The batch's marker was already there; nothing was written.
    AlreadyStored,
}

/// A batch's rows in the order they are sent.
struct Sorted<'a> {
    decisions: Vec<&'a AccessDecision>,
    raw: Vec<&'a gatelog_model::RawRecord>,
    dead_letters: Vec<&'a gatelog_model::DeadLetter>,
}

/// Releases a batch id claimed by this process when the write ends.
struct Claim<'a> {
    inner: &'a Inner,
    batch_id: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.inner.in_flight.lock() {
            set.remove(&self.batch_id);
        }
    }
}

static EMPTY_DECISION: std::sync::LazyLock<AccessDecision> =
    std::sync::LazyLock::new(AccessDecision::default);

/// The dataset of a batch's raw records (they carry their own; the batch's otherwise).
fn dataset_of_raw(batch: &WriteBatch) -> String {
    batch
        .raw
        .first()
        .map_or_else(|| batch.dataset.clone(), |r| r.dataset.clone())
}

fn time_range(times: impl Iterator<Item = UnixMillis>) -> Option<(UnixMillis, UnixMillis)> {
    times.fold(None, |acc, t| match acc {
        None => Some((t, t)),
        Some((lo, hi)) => Some((lo.min(t), hi.max(t))),
    })
}

impl Store {
    /// Stores `batch` exactly once: if its marker exists, [`WriteOutcome::AlreadyStored`];
    /// otherwise rows left by an interrupted attempt are deleted (waiting for the mutation),
    /// then decisions, raw records and dead letters are inserted (RowBinary, LZ4, chunks of
    /// `insert_chunk_rows`), and the `ingest_batches` marker last. Retryable failures are
    /// retried per the policy from the top (which makes the retry itself exactly-once).
    pub async fn write_batch(&self, batch: &WriteBatch) -> Result<WriteOutcome, StoreError> {
        if batch.batch_id.is_empty() {
            return Err(StoreError::InvalidBatch("batch_id is empty".into()));
        }
        let _claim = self.claim(&batch.batch_id).await;
        with_retries(&self.inner.config, "write_batch", || self.write_once(batch)).await
    }

    async fn claim(&self, batch_id: &str) -> Claim<'_> {
        loop {
            let claimed = match self.inner.in_flight.lock() {
                Ok(mut set) => set.insert(batch_id.to_owned()),
                Err(_) => true, // a panicked writer: do not block everyone else
            };
            if claimed {
                return Claim {
                    inner: &self.inner,
                    batch_id: batch_id.to_owned(),
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn write_once(&self, batch: &WriteBatch) -> Result<WriteOutcome, StoreError> {
        let id = batch.batch_id.as_str();
        if self.batch_exists(id).await? {
            tracing::info!(batch_id = %id, dataset = %batch.dataset, "batch already stored");
            return Ok(WriteOutcome::AlreadyStored);
        }
        let started = Instant::now();
        let decision_range = time_range(batch.decisions.iter().map(|d| d.time));
        let raw_range = time_range(batch.raw.iter().map(|r| r.time));

        // Sent in sorting-key order (see `order`); the probe looks at the first and last
        // rows sent, so it uses the same order.
        let rows = Sorted {
            decisions: order::decisions(&batch.decisions, self.profile()),
            raw: order::raw_records(&batch.raw),
            dead_letters: order::dead_letters(&batch.dead_letters, self.profile()),
        };
        let removed = self
            .remove_partial(batch, &rows, decision_range, raw_range)
            .await?;

        let q = &self.inner.queries;
        let (decisions, raw_records, dead_letters) = tokio::try_join!(
            self.insert_rows(
                &q.insert_decisions,
                "decisions",
                &rows.decisions,
                id,
                RowEncoder::decision
            ),
            self.insert_rows(
                &q.insert_raw_records,
                "raw_records",
                &rows.raw,
                id,
                RowEncoder::raw_record
            ),
            self.insert_rows(
                &q.insert_dead_letters,
                "dead_letters",
                &rows.dead_letters,
                id,
                RowEncoder::dead_letter
            ),
        )?;

        let (min_time, max_time) = match (decision_range, raw_range) {
            (Some((a, b)), Some((c, d))) => (a.min(c), b.max(d)),
            (Some(r), None) | (None, Some(r)) => r,
            (None, None) => (batch.received_at, batch.received_at),
        };
        let marker = BatchRow {
            batch_id: id,
            dataset: &batch.dataset,
            origin: &batch.origin,
            received_at: batch.received_at,
            lines: batch.lines,
            decisions,
            raw_records,
            dead_letters,
            probes: batch.probes,
            min_time,
            max_time,
            bytes: batch.bytes,
            sha256: &batch.sha256,
        };
        let mut enc = RowEncoder::new(self.profile(), 512);
        enc.batch(&marker);
        self.insert_bytes(
            &q.insert_ingest_batches,
            &self.qualified("ingest_batches"),
            enc.take(),
        )
        .await?;
        tracing::info!(
            batch_id = %id,
            dataset = %batch.dataset,
            decisions,
            raw_records,
            dead_letters,
            removed_partial_rows = removed,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "batch written"
        );
        Ok(WriteOutcome::Written {
            decisions,
            raw_records,
            dead_letters,
            removed_partial_rows: removed,
        })
    }

    /// Deletes rows a previous attempt of this batch left without a marker; returns how many.
    async fn remove_partial(
        &self,
        batch: &WriteBatch,
        rows: &Sorted<'_>,
        decision_range: Option<(UnixMillis, UnixMillis)>,
        raw_range: Option<(UnixMillis, UnixMillis)>,
    ) -> Result<u64, StoreError> {
        let bounds = |range: Option<(UnixMillis, UnixMillis)>| -> (i64, i64) {
            match (range, self.profile()) {
                // An empty batch part cannot have left rows: an empty range.
                (None, _) => (1, 0),
                (Some((lo, hi)), SchemaProfile::Legacy) => (lo.as_secs(), hi.as_secs()),
                (Some((lo, hi)), SchemaProfile::Modern) => (lo.0, hi.0),
            }
        };
        if !self.probe_partial(batch, rows).await? {
            return Ok(0);
        }
        let (d_lo, d_hi) = bounds(decision_range);
        let (r_lo, r_hi) = bounds(raw_range);
        let id = Lit::Str(&batch.batch_id);
        let sql = render(
            &self.inner.queries.partial_rows,
            &[
                id,
                Lit::I64(d_lo),
                Lit::I64(d_hi),
                id,
                Lit::I64(r_lo),
                Lit::I64(r_hi),
                id,
                Lit::Str(&batch.dataset),
            ],
        );
        let counts: (u64, u64, u64) = self
            .fetch_one("SELECT", &self.qualified("decisions"), &sql)
            .await?;
        let total = counts.0 + counts.1 + counts.2;
        if total == 0 {
            return Ok(0);
        }
        tracing::warn!(
            batch_id = %batch.batch_id,
            decisions = counts.0,
            raw_records = counts.1,
            dead_letters = counts.2,
            "removing rows of an interrupted attempt"
        );
        let per_table = [counts.0, counts.1, counts.2];
        for ((table, template), rows) in self.inner.queries.delete_batch.iter().zip(per_table) {
            if rows > 0 {
                self.delete_and_wait(table, template, &batch.batch_id)
                    .await?;
            }
        }
        Ok(total)
    }

    /// Whether the first or last row of any table of `batch` is already stored under its id:
    /// primary-key lookups, so the common case (a new batch) costs next to nothing.
    async fn probe_partial(&self, batch: &WriteBatch, rows: &Sorted<'_>) -> Result<bool, StoreError> {
        let id = batch.batch_id.as_str();
        let at = |t: UnixMillis| match self.profile() {
            SchemaProfile::Legacy => t.as_secs(),
            SchemaProfile::Modern => t.0,
        };
        // A table without rows in this batch gets an empty batch id, which matches nothing.
        let (d_id, first, last) = match (rows.decisions.first(), rows.decisions.last()) {
            (Some(f), Some(l)) => (id, *f, *l),
            _ => ("", &*EMPTY_DECISION, &*EMPTY_DECISION),
        };
        let (r_id, r_first, r_last) = match (rows.raw.first(), rows.raw.last()) {
            (Some(f), Some(l)) => (id, f.sha256.as_str(), l.sha256.as_str()),
            _ => ("", "", ""),
        };
        let dl_id = if rows.dead_letters.is_empty() {
            ""
        } else {
            id
        };
        let sql = render(
            &self.inner.queries.partial_probe,
            &[
                Lit::Str(d_id),
                Lit::Str(&first.tenant),
                Lit::I64(at(first.time)),
                Lit::Str(&first.event_id),
                Lit::Str(&last.tenant),
                Lit::I64(at(last.time)),
                Lit::Str(&last.event_id),
                Lit::Str(r_id),
                Lit::Str(&dataset_of_raw(batch)),
                Lit::Str(r_first),
                Lit::Str(r_last),
                Lit::Str(dl_id),
                Lit::Str(&batch.dataset),
            ],
        );
        let (d, r, dl): (u64, u64, u64) = self
            .fetch_one("SELECT", &self.qualified("decisions"), &sql)
            .await?;
        Ok(d + r + dl > 0)
    }

    async fn delete_and_wait(
        &self,
        table: &str,
        template: &str,
        batch_id: &str,
    ) -> Result<(), StoreError> {
        let local = storage_table(&self.inner.options, table);
        let qualified = self.qualified(&local);
        self.execute(
            "ALTER TABLE DELETE",
            &qualified,
            &render(template, &[Lit::Str(batch_id)]),
        )
        .await?;
        let waited_from = Instant::now();
        let limit = self.inner.config.mutation_timeout;
        let check = render(
            &self.inner.queries.pending_mutations,
            &[Lit::Str(self.database()), Lit::Str(&local)],
        );
        let mut pause = Duration::from_millis(20);
        loop {
            let pending: u64 = self.fetch_one("SELECT", "system.mutations", &check).await?;
            if pending == 0 {
                tracing::info!(table = %qualified, batch_id, "rows of interrupted attempt removed");
                return Ok(());
            }
            if waited_from.elapsed() > limit {
                return Err(StoreError::MutationTimeout {
                    table: qualified,
                    batch_id: batch_id.to_owned(),
                    waited: waited_from.elapsed(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Inserts `rows`, one `INSERT` per chunk of at most `insert_chunk_rows` rows and about
    /// `insert_chunk_bytes` bytes (each `INSERT` becomes one part); returns the count.
    async fn insert_rows<T>(
        &self,
        sql: &str,
        table: &str,
        rows: &[&T],
        batch_id: &str,
        encode: fn(&mut RowEncoder, &T, &str),
    ) -> Result<u64, StoreError> {
        let qualified = self.qualified(table);
        let config = &self.inner.config;
        let timeout = Some(config.request_timeout);
        let lz4 = config.compression.lz4_for(&config.url);
        let mut rest = rows;
        while !rest.is_empty() {
            let insert = self
                .inner
                .client
                .insert_formatted_with(sql.to_owned())
                .with_timeouts(timeout, timeout);
            let mut frames = FrameSender::new(insert, lz4, &qualified);
            let mut enc = RowEncoder::new(self.profile(), FRAME_BYTES + FRAME_BYTES / 4);
            let (mut in_chunk, mut chunk_bytes) = (0usize, 0u64);
            for row in rest {
                encode(&mut enc, *row, batch_id);
                in_chunk += 1;
                if enc.len() >= FRAME_BYTES {
                    chunk_bytes += enc.len() as u64;
                    frames.push(enc.take()).await?;
                }
                if in_chunk >= config.insert_chunk_rows || chunk_bytes >= config.insert_chunk_bytes
                {
                    break;
                }
            }
            if enc.len() > 0 {
                frames.push(enc.take()).await?;
            }
            frames.finish().await?;
            rest = &rest[in_chunk..];
        }
        if !rows.is_empty() {
            tracing::debug!(table = %qualified, rows = rows.len(), batch_id, "rows inserted");
        }
        Ok(rows.len() as u64)
    }

    /// One `INSERT … FORMAT RowBinary` of pre-encoded rows.
    pub(crate) async fn insert_bytes(
        &self,
        sql: &str,
        table: &str,
        data: Bytes,
    ) -> Result<(), StoreError> {
        let timeout = Some(self.inner.config.request_timeout);
        let err = |e| StoreError::from_clickhouse("INSERT", table, e);
        let mut insert = self
            .inner
            .client
            .insert_formatted_with(sql.to_owned())
            .with_timeouts(timeout, timeout);
        insert.send(data).await.map_err(err)?;
        insert.end().await.map_err(err)
    }
}
