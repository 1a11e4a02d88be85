//! `write_batch`: one batch, stored exactly once, with the `ingest_batches` marker written last.

use crate::frames::{FRAME_BYTES, FrameSender};
use crate::order;
use crate::profile::SchemaProfile;
use crate::rowbinary::{BatchRow, RowEncoder};
use crate::sql::{Lit, render, storage_table};
use crate::store::{Inner, with_retries};
use crate::{Store, StoreError};
use bytes::Bytes;
use gatelog_model::chain::{ChainHead, LedgerEntry, Link, ledger_digest, stored_row_hash};
use gatelog_model::{AccessDecision, Source, UnixMillis};
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

/// One batch's rows in the order they are sent, for the partial-write probe.
struct Sorted<'a> {
    decisions: Vec<(&'a AccessDecision, &'a str)>,
    raw: Vec<(&'a gatelog_model::RawRecord, &'a str)>,
    dead_letters: usize,
}

/// The `ingest_batches` row of a stored batch: the commit marker, with its link.
fn marker<'a>(batch: &'a WriteBatch, spool_seq: u64, chain_seq: u64, link: &'a Link) -> BatchRow<'a> {
    let decision_range = time_range(batch.decisions.iter().map(|d| d.time));
    let raw_range = time_range(batch.raw.iter().map(|r| r.time));
    let (min_time, max_time) = match (decision_range, raw_range) {
        (Some((a, b)), Some((c, d))) => (a.min(c), b.max(d)),
        (Some(r), None) | (None, Some(r)) => r,
        (None, None) => (batch.received_at, batch.received_at),
    };
    BatchRow {
        batch_id: &batch.batch_id,
        dataset: &batch.dataset,
        origin: &batch.origin,
        received_at: batch.received_at,
        lines: batch.lines,
        decisions: batch.decisions.len() as u64,
        raw_records: batch.raw.len() as u64,
        dead_letters: batch.dead_letters.len() as u64,
        probes: batch.probes,
        min_time,
        max_time,
        bytes: batch.bytes,
        sha256: &batch.sha256,
        spool_seq,
        chain_seq,
        chain_prev: &link.prev,
        chain_hash: &link.hash,
        rows_sha256: &link.facts.rows_sha256,
    }
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

static EMPTY_DECISION: std::sync::LazyLock<AccessDecision> = std::sync::LazyLock::new(AccessDecision::default);

/// Whether `d` is one of gatelog's own audit records, stored in `access_log`: a retried
/// batch's copies collapse there by key (reads use `FINAL`), so the partial-write probe and
/// removal, which exist for `decisions`' exact counts before merges, leave them out.
fn is_audit(d: &AccessDecision) -> bool {
    d.source == Source::Gatelog
}

/// The dataset of a batch's raw records (they carry their own; the batch's otherwise).
fn dataset_of_raw(batch: &WriteBatch) -> String {
    batch.raw.first().map_or_else(|| batch.dataset.clone(), |r| r.dataset.clone())
}

fn time_range(times: impl Iterator<Item = UnixMillis>) -> Option<(UnixMillis, UnixMillis)> {
    times.fold(None, |acc, t| match acc {
        None => Some((t, t)),
        Some((lo, hi)) => Some((lo.min(t), hi.max(t))),
    })
}

/// The links of a group's batches after `head` (in the group's order, which is the chain's)
/// and their row ledger, RowBinary-encoded for `batch_rows`: per batch, one entry per
/// `decisions` row with the hash of the row's own encoding. Returns `(chain_seq, link)` per
/// batch, the ledger, and the head after the group.
fn chain_group(
    profile: SchemaProfile,
    todo: &[(u64, &WriteBatch)],
    mut head: ChainHead,
    rows: usize,
) -> (Vec<(u64, Link)>, Bytes, ChainHead) {
    let mut scratch = RowEncoder::new(profile, 4096);
    let mut ledger = RowEncoder::new(profile, 64 * rows + 64);
    let mut links = Vec::with_capacity(todo.len());
    for (seq, batch) in todo {
        let mut entries: Vec<LedgerEntry> = batch
            .decisions
            .iter()
            .filter(|d| !is_audit(d))
            .map(|d| {
                scratch.clear();
                scratch.decision(d, &batch.batch_id);
                LedgerEntry {
                    tenant: d.tenant.clone(),
                    event_id: d.event_id.clone(),
                    row_hash: stored_row_hash(scratch.bytes()),
                }
            })
            .collect();
        let rows_sha256 = ledger_digest(&mut entries);
        for e in &entries {
            ledger.ledger(&batch.batch_id, batch.received_at, &e.tenant, &e.event_id, &e.row_hash);
        }
        let (link, next) = head.append(crate::chain::facts_of(batch, *seq, rows_sha256));
        links.push((next.links, link));
        head = next;
    }
    (links, ledger.take(), head)
}

/// Whether a write first looks for rows an interrupted attempt left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialCheck {
    /// Always (a backfill rerun may follow a crash at any point).
    Always,
    /// Only on retries: the caller knows no earlier attempt of these batches can exist (the
    /// spool sink, for records appended after it started).
    OnRetry,
}

impl Store {
    /// Stores `batch` exactly once: if its marker exists, [`WriteOutcome::AlreadyStored`];
    /// otherwise rows left by an interrupted attempt are deleted (waiting for the mutation),
    /// then decisions, raw records and dead letters are inserted (RowBinary, chunks of
    /// `insert_chunk_rows`), and the `ingest_batches` marker last. Retryable failures are
    /// retried per the policy from the top (which makes the retry itself exactly-once).
    pub async fn write_batch(&self, batch: &WriteBatch) -> Result<WriteOutcome, StoreError> {
        let mut outcomes = self.write_batches(&[(0, batch)], PartialCheck::Always).await?;
        outcomes.pop().ok_or_else(|| StoreError::InvalidBatch("no outcome".into()))
    }

    /// Stores several batches with one `INSERT` per table, each batch exactly once as in
    /// [`Store::write_batch`]: rows keep their own batch's id and every batch gets its own
    /// marker (carrying `spool_seq`, the spool position it came from; 0 outside the spool).
    /// Fewer, larger inserts are what ClickHouse wants (one part each); the spool sink groups
    /// its records this way. A batch id given twice is stored once. Outcomes are in input
    /// order.
    pub async fn write_batches(
        &self,
        batches: &[(u64, &WriteBatch)],
        check: PartialCheck,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        if let Some((_, b)) = batches.iter().find(|(_, b)| b.batch_id.is_empty()) {
            return Err(StoreError::InvalidBatch(format!("batch_id is empty (batch from {})", b.origin)));
        }
        let mut claims = Vec::with_capacity(batches.len());
        for (_, b) in batches {
            if !claims.iter().any(|c: &Claim<'_>| c.batch_id == b.batch_id) {
                claims.push(self.claim(&b.batch_id).await);
            }
        }
        let mut attempt = 0u32;
        with_retries(&self.inner.config, "write_batch", || {
            attempt += 1;
            let probe = check == PartialCheck::Always || attempt > 1;
            self.write_group_once(batches, probe)
        })
        .await
    }

    async fn claim(&self, batch_id: &str) -> Claim<'_> {
        loop {
            let claimed = match self.inner.in_flight.lock() {
                Ok(mut set) => set.insert(batch_id.to_owned()),
                Err(_) => true, // a panicked writer: do not block everyone else
            };
            if claimed {
                return Claim { inner: &self.inner, batch_id: batch_id.to_owned() };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn write_group_once(
        &self,
        batches: &[(u64, &WriteBatch)],
        probe: bool,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let started = Instant::now();
        // One writer of the chain at a time: the existence check, the links and the markers
        // of a group are one step. The cached head is taken out and put back only once the
        // markers are stored; after any failure the next write reloads it from ClickHouse
        // (a marker insert that failed on the wire may still have landed).
        let mut chain = self.inner.chain.lock().await;
        let ids: Vec<&str> = batches.iter().map(|(_, b)| b.batch_id.as_str()).collect();
        let stored = self.existing_batches(&ids).await?;
        // Which inputs to write now: not stored yet, and the first time their id appears.
        let mut todo: Vec<(u64, &WriteBatch)> = Vec::new();
        for (seq, b) in batches {
            if !stored.contains(&b.batch_id) && !todo.iter().any(|(_, t)| t.batch_id == b.batch_id) {
                todo.push((*seq, *b));
            }
        }
        let mut removed = Vec::with_capacity(todo.len());
        for (_, batch) in &todo {
            removed.push(if probe { self.remove_partial(batch).await? } else { 0 });
        }

        // One insert per table for the whole group, rows in sorting-key order (see `order`).
        let profile = self.profile();
        // gatelog's own audit records go to `access_log`, everything else to `decisions`.
        let of_group = |audit: bool| {
            order::decisions(todo.iter().flat_map(move |(_, b)| {
                b.decisions.iter().filter(move |d| is_audit(d) == audit).map(move |d| (d, b.batch_id.as_str()))
            }))
        };
        let (decisions, audit) = (of_group(false), of_group(true));
        let raw =
            order::raw_records(todo.iter().flat_map(|(_, b)| b.raw.iter().map(move |r| (r, b.batch_id.as_str()))));
        let dead = order::dead_letters(
            todo.iter().flat_map(|(_, b)| b.dead_letters.iter().map(move |d| (d, b.batch_id.as_str()))),
            profile,
        );
        let head = match chain.take() {
            Some(head) => head,
            None => self.stored_chain_head().await?,
        };
        let (links, ledger, head) = chain_group(profile, &todo, head, decisions.len());
        let q = &self.inner.queries;
        self.insert_rows(&q.insert_decisions, "decisions", &decisions, RowEncoder::decision).await?;
        self.insert_rows(&q.insert_access_log, "access_log", &audit, RowEncoder::decision).await?;
        self.insert_rows(&q.insert_raw_records, "raw_records", &raw, RowEncoder::raw_record).await?;
        self.insert_rows(&q.insert_dead_letters, "dead_letters", &dead, RowEncoder::dead_letter).await?;
        if !ledger.is_empty() {
            self.insert_bytes(&q.insert_batch_rows, &self.qualified("batch_rows"), ledger).await?;
        }
        // Each body once, in `batch_id` order (the table's key), before the markers.
        let mut bodies: Vec<(&WriteBatch, &str)> =
            todo.iter().filter(|(_, b)| !b.body.is_empty()).map(|(_, b)| (*b, b.batch_id.as_str())).collect();
        bodies.sort_by_key(|(_, id)| *id);
        self.insert_rows(&q.insert_raw_batches, "raw_batches", &bodies, RowEncoder::raw_batch).await?;

        let mut enc = RowEncoder::new(profile, 512 * todo.len().max(1));
        let mut written = std::collections::BTreeMap::new();
        for (((seq, batch), removed), (chain_seq, link)) in todo.iter().zip(&removed).zip(&links) {
            let outcome = WriteOutcome::Written {
                decisions: batch.decisions.iter().filter(|d| !is_audit(d)).count() as u64,
                raw_records: batch.raw.len() as u64,
                dead_letters: batch.dead_letters.len() as u64,
                removed_partial_rows: *removed,
            };
            enc.batch(&marker(batch, *seq, *chain_seq, link));
            written.insert(batch.batch_id.as_str(), outcome);
        }
        if !todo.is_empty() {
            self.insert_bytes(&q.insert_ingest_batches, &self.qualified("ingest_batches"), enc.take()).await?;
        }
        *chain = Some(head);
        tracing::info!(
            batches = todo.len(),
            already_stored = batches.len() - todo.len(),
            decisions = decisions.len(),
            access_log = audit.len(),
            raw_records = raw.len(),
            raw_batches = bodies.len(),
            dead_letters = dead.len(),
            removed_partial_rows = removed.iter().sum::<u64>(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "batches written"
        );
        // The first input with an id gets its outcome; a repeat of it, or a stored batch, is
        // already stored.
        Ok(batches
            .iter()
            .map(|(_, b)| written.remove(b.batch_id.as_str()).unwrap_or(WriteOutcome::AlreadyStored))
            .collect())
    }

    /// Deletes rows a previous attempt of this batch left without a marker; returns how many.
    async fn remove_partial(&self, batch: &WriteBatch) -> Result<u64, StoreError> {
        let decision_range = time_range(batch.decisions.iter().filter(|d| !is_audit(d)).map(|d| d.time));
        let raw_range = time_range(batch.raw.iter().map(|r| r.time));
        let bounds = |range: Option<(UnixMillis, UnixMillis)>| -> (i64, i64) {
            match (range, self.profile()) {
                // An empty batch part cannot have left rows: an empty range.
                (None, _) => (1, 0),
                (Some((lo, hi)), SchemaProfile::Legacy) => (lo.as_secs(), hi.as_secs()),
                (Some((lo, hi)), SchemaProfile::Modern) => (lo.0, hi.0),
            }
        };
        if !self.probe_partial(batch).await? {
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
                id,
                id,
            ],
        );
        let counts: (u64, u64, u64, u64, u64) = self.fetch_one("SELECT", &self.qualified("decisions"), &sql).await?;
        // The data rows; the ledger's and the body's are removed too, but they are not rows
        // the batch counts.
        let total = counts.0 + counts.1 + counts.2;
        if total + counts.3 + counts.4 == 0 {
            return Ok(0);
        }
        tracing::warn!(
            batch_id = %batch.batch_id,
            decisions = counts.0,
            raw_records = counts.1,
            dead_letters = counts.2,
            ledger = counts.3,
            raw_batches = counts.4,
            "removing rows of an interrupted attempt"
        );
        let per_table = [counts.0, counts.1, counts.2, counts.3, counts.4];
        for ((table, template), rows) in self.inner.queries.delete_batch.iter().zip(per_table) {
            if rows > 0 {
                self.delete_and_wait(table, template, &batch.batch_id).await?;
            }
        }
        Ok(total)
    }

    /// Whether the first or last row of any table of `batch`, in sorting-key order (the order
    /// its rows are sent in, also within a group), is already stored under its id: primary-key
    /// lookups, so the common case (a new batch) costs next to nothing.
    async fn probe_partial(&self, batch: &WriteBatch) -> Result<bool, StoreError> {
        let id = batch.batch_id.as_str();
        let rows = Sorted {
            decisions: order::decisions(batch.decisions.iter().filter(|d| !is_audit(d)).map(|d| (d, id))),
            raw: order::raw_records(batch.raw.iter().map(|r| (r, id))),
            dead_letters: batch.dead_letters.len(),
        };
        let at = |t: UnixMillis| match self.profile() {
            SchemaProfile::Legacy => t.as_secs(),
            SchemaProfile::Modern => t.0,
        };
        // A table without rows in this batch gets an empty batch id, which matches nothing.
        let (d_id, first, last) = match (rows.decisions.first(), rows.decisions.last()) {
            (Some(f), Some(l)) => (id, f.0, l.0),
            _ => ("", &*EMPTY_DECISION, &*EMPTY_DECISION),
        };
        let (r_id, r_first, r_last) = match (rows.raw.first(), rows.raw.last()) {
            (Some(f), Some(l)) => (id, f.0.sha256.as_str(), l.0.sha256.as_str()),
            _ => ("", "", ""),
        };
        let dl_id = if rows.dead_letters == 0 { "" } else { id };
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
                Lit::Str(id),
                Lit::Str(if batch.body.is_empty() { "" } else { id }),
            ],
        );
        let (d, r, dl, l, rb): (u64, u64, u64, u64, u64) =
            self.fetch_one("SELECT", &self.qualified("decisions"), &sql).await?;
        Ok(d + r + dl + l + rb > 0)
    }

    async fn delete_and_wait(&self, table: &str, template: &str, batch_id: &str) -> Result<(), StoreError> {
        let local = storage_table(&self.inner.options, table);
        let qualified = self.qualified(&local);
        self.execute("ALTER TABLE DELETE", &qualified, &render(template, &[Lit::Str(batch_id)])).await?;
        let waited_from = Instant::now();
        let limit = self.inner.config.mutation_timeout;
        let check = render(&self.inner.queries.pending_mutations, &[Lit::Str(self.database()), Lit::Str(&local)]);
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
        rows: &[(&T, &str)],
        encode: fn(&mut RowEncoder, &T, &str),
    ) -> Result<u64, StoreError> {
        let qualified = self.qualified(table);
        let config = &self.inner.config;
        let timeout = Some(config.request_timeout);
        let lz4 = config.compression.lz4_for(&config.url);
        let mut rest = rows;
        while !rest.is_empty() {
            let insert = self.inner.client.insert_formatted_with(sql.to_owned()).with_timeouts(timeout, timeout);
            let mut frames = FrameSender::new(insert, lz4, &qualified);
            let mut enc = RowEncoder::new(self.profile(), FRAME_BYTES + FRAME_BYTES / 4);
            let (mut in_chunk, mut chunk_bytes) = (0usize, 0u64);
            for (row, batch_id) in rest {
                encode(&mut enc, row, batch_id);
                in_chunk += 1;
                if enc.len() >= FRAME_BYTES {
                    chunk_bytes += enc.len() as u64;
                    frames.push(enc.take()).await?;
                }
                if in_chunk >= config.insert_chunk_rows || chunk_bytes >= config.insert_chunk_bytes {
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
            tracing::debug!(table = %qualified, rows = rows.len(), "rows inserted");
        }
        Ok(rows.len() as u64)
    }

    /// One `INSERT … FORMAT RowBinary` of pre-encoded rows.
    pub(crate) async fn insert_bytes(&self, sql: &str, table: &str, data: Bytes) -> Result<(), StoreError> {
        let timeout = Some(self.inner.config.request_timeout);
        let err = |e| StoreError::from_clickhouse("INSERT", table, e);
        let mut insert = self.inner.client.insert_formatted_with(sql.to_owned()).with_timeouts(timeout, timeout);
        insert.send(data).await.map_err(err)?;
        insert.end().await.map_err(err)
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// The writer's CPU for the chain alone (encoding each row again and hashing it, the
    /// ledger's encoding, the digests and links): `cargo test -p gatelog-store --lib
    /// chain_cpu -- --ignored --nocapture`.
    #[test]
    #[ignore = "micro-benchmark"]
    #[allow(clippy::print_stdout)]
    fn chain_cpu() {
        let batches: Vec<WriteBatch> = (0..50)
            .map(|b| {
                let decisions = (0..2_000)
                    .map(|i| {
                        let mut d = AccessDecision::new(
                            format!("{b:08x}{i:024x}"),
                            UnixMillis(1_740_990_713_712 + i),
                            "http_requests",
                            Source::Logpush,
                        );
                        d.principal = "user1@example.com".into();
                        d.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0".into();
                        d.resource = "https://bi.example.com/dashboards/1/panel/2".into();
                        d.roles = vec!["analyst".into()];
                        d
                    })
                    .collect();
                WriteBatch { batch_id: format!("b{b}"), decisions, ..WriteBatch::default() }
            })
            .collect();
        let todo: Vec<(u64, &WriteBatch)> = batches.iter().enumerate().map(|(i, b)| (i as u64, b)).collect();
        let started = Instant::now();
        let (links, ledger, head) = chain_group(SchemaProfile::Legacy, &todo, ChainHead::genesis(), 100_000);
        let took = started.elapsed();
        assert_eq!((links.len(), head.links), (50, 50));
        println!(
            "chain for 100000 rows: {:.1} ms ({:.2} µs per row), ledger {} bytes",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e6 / 100_000.0,
            ledger.len()
        );
    }
}
