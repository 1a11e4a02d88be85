//! [`Store::verify_chain`]: a period's links, checkpoints, row ledgers and stored rows
//! recomputed from ClickHouse. Memory stays bounded: the markers of the period are held
//! (one row per batch), the ledgers and rows are read a window of links at a time (about
//! [`VerifyOptions::window_rows`] ledger entries each), rows streamed as RowBinary.
//!
//! Per window: each batch's ledger digest equals its link's `rows_sha256`; each stored
//! `decisions` row of the window's batches is in its batch's ledger with the same hash
//! (else inserted or edited); each ledger entry's row is still stored, or a copy of its
//! event from the same or a later link is (what a `ReplacingMergeTree` merge leaves), else
//! deleted.

use super::rows::RowLayout;
use super::verdict::{
    ChainVerdict, CheckpointStatus, Problem, ProblemClass, SignatureCheck, VerifyOptions, VerifyProgress,
};
use super::{Checkpoint, MarkerRow, lit_u64, whole_months};
use crate::sql::{Lit, render};
use crate::{SchemaProfile, Store, StoreError};
use bytes::{Buf, BytesMut};
use gatelog_model::chain::{ChainHead, LedgerEntry, RowHash, ledger_digest, link_hash, stored_row_hash};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct LedgerRow {
    batch_id: String,
    tenant: String,
    event_id: String,
    row_hash: RowHash,
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct CopyRow {
    tenant: String,
    event_id: String,
    batch_id: String,
}

/// One ledger entry of the window under its event's key.
#[derive(Debug)]
struct Entry {
    link: u64,
    hash: RowHash,
    seen: bool,
}

/// An event of the window's ledgers: its entries, and the latest link holding a stored row.
#[derive(Debug, Default)]
struct KeyState {
    entries: Vec<Entry>,
    present: u64,
}

type Key = (Box<str>, Box<str>);

impl Store {
    /// Verifies the batches received in `[from_ms, to_ms)`: their links continue from the
    /// link before the period and hash their markers; the checkpoints of those links match
    /// and their signatures check (`check`, the caller holds the keys); each batch's ledger
    /// has its link's digest; every stored row of a linked batch is in its ledger, every
    /// ledger entry still stored (or merged into a later copy). `progress` follows the
    /// ledger entries done.
    pub async fn verify_chain(
        &self,
        opts: &VerifyOptions,
        check: &(dyn Fn(&Checkpoint) -> SignatureCheck + Sync),
        progress: &(dyn Fn(VerifyProgress) + Sync),
    ) -> Result<ChainVerdict, StoreError> {
        let q = self.chain_queries();
        let table = self.qualified("ingest_batches");
        let mut v = ChainVerdict { from_ms: opts.from_ms, to_ms: opts.to_ms, ..ChainVerdict::default() };
        let (from, to) = (Lit::I64(opts.from_ms), Lit::I64(opts.to_ms));
        let received: Vec<MarkerRow> =
            self.fetch_all("SELECT", &table, &render(&q.markers_received, &[from, to])).await?;
        v.batches = received.len() as u64;
        let (started, start_ms): (u64, i64) = self.fetch_one("SELECT", &table, &q.chain_start).await?;
        for m in received.iter().filter(|m| m.chain_seq == 0) {
            if started > 0 && m.received_at_ms > start_ms {
                v.tampered(0, &m.batch_id, None, "marker", format!(
                    "batch {} was received after the chain started but has no link: its marker was inserted or its link removed",
                    m.batch_id
                ));
            } else {
                v.before_chain += 1;
            }
        }
        let seqs = received.iter().map(|m| m.chain_seq).filter(|&s| s > 0);
        let (Some(first), Some(last)) = (seqs.clone().min(), seqs.max()) else {
            self.check_orphans(&mut v, &received).await?;
            return Ok(finish(v));
        };
        v.first_link = Some(first);
        v.last_link = Some(last);
        let sql = render(&q.markers_linked, &[lit_u64(first.saturating_sub(1).max(1)), lit_u64(last)]);
        let mut by_link: BTreeMap<u64, Vec<MarkerRow>> = BTreeMap::new();
        for m in self.fetch_all::<MarkerRow>("SELECT", &table, &sql).await? {
            by_link.entry(m.chain_seq).or_default().push(m);
        }
        let links = check_links(&mut v, &by_link, first, last);
        self.check_checkpoints(&mut v, &by_link, (first, last), check).await?;
        let total: u64 = links.iter().map(|m| m.decisions).sum();
        let mut done = 0u64;
        for window in windows(&links, opts.window_rows) {
            done += self.check_window(&mut v, window).await?;
            progress(VerifyProgress { ledger_done: done.min(total), ledger_total: total });
        }
        self.check_orphans(&mut v, &received).await?;
        Ok(finish(v))
    }

    async fn check_checkpoints(
        &self,
        v: &mut ChainVerdict,
        by_link: &BTreeMap<u64, Vec<MarkerRow>>,
        (first, last): (u64, u64),
        check: &(dyn Fn(&Checkpoint) -> SignatureCheck + Sync),
    ) -> Result<(), StoreError> {
        let q = self.chain_queries();
        let range = (first.saturating_sub(1), last);
        for cp in self.checkpoints_between(range, (v.from_ms, v.to_ms)).await? {
            let n = cp.head.links;
            let stored: Option<MarkerRow> = match by_link.get(&n) {
                Some(ms) => ms.first().cloned(),
                None if n == 0 => None,
                None => {
                    let sql = render(&q.markers_linked, &[lit_u64(n), lit_u64(n)]);
                    let rows: Vec<MarkerRow> =
                        self.fetch_all("SELECT", &self.qualified("ingest_batches"), &sql).await?;
                    rows.into_iter().next()
                }
            };
            let stored_head = match (&stored, n) {
                (_, 0) => Some(ChainHead::genesis()),
                (Some(m), _) => {
                    Some(ChainHead { links: n, last_batch_id: Some(m.batch_id.clone()), hash: m.chain_hash.clone() })
                }
                (None, _) => None,
            };
            let matches = stored_head.as_ref() == Some(&cp.head);
            let batch = cp.head.last_batch_id.clone().unwrap_or_default();
            if !matches {
                let now = match &stored_head {
                    Some(h) => {
                        format!("the store has {} (batch {})", h.hash, h.last_batch_id.as_deref().unwrap_or("-"))
                    }
                    None => "the store has no such link (its marker was deleted)".to_owned(),
                };
                v.tampered(
                    n,
                    &batch,
                    None,
                    "checkpoint",
                    format!(
                        "checkpoint of {}: link {n} was {} (batch {batch}) when recorded; {now}",
                        gatelog_model::UnixMillis(cp.at_ms).to_rfc3339(),
                        cp.head.hash
                    ),
                );
            }
            let signature = match check(&cp) {
                SignatureCheck::Valid { .. } => "valid".to_owned(),
                SignatureCheck::Unsigned => "unsigned".to_owned(),
                SignatureCheck::NoTrustedKey { signer } => {
                    v.add(Problem {
                        class: ProblemClass::Untrusted,
                        link: n,
                        batch_id: batch.clone(),
                        event_id: None,
                        what: "signature",
                        message: format!(
                            "checkpoint of link {n} is signed by {signer}, but no trusted key was given to check it"
                        ),
                    });
                    "no trusted key".to_owned()
                }
                SignatureCheck::Invalid { reason } => {
                    v.add(Problem {
                        class: ProblemClass::Signature,
                        link: n,
                        batch_id: batch.clone(),
                        event_id: None,
                        what: "signature",
                        message: format!("checkpoint of link {n}: the signature does not verify: {reason}"),
                    });
                    format!("invalid: {reason}")
                }
            };
            v.checkpoints.push(CheckpointStatus {
                at_ms: cp.at_ms,
                links: n,
                hash: cp.head.hash.clone(),
                matches,
                signature,
                signer: cp.signer.clone(),
            });
        }
        Ok(())
    }

    /// Checks one window of links; returns how many ledger entries it held.
    async fn check_window(&self, v: &mut ChainVerdict, window: &[&MarkerRow]) -> Result<u64, StoreError> {
        let (Some(first), Some(last)) = (window.first(), window.last()) else { return Ok(0) };
        let (a, b) = (lit_u64(first.chain_seq), lit_u64(last.chain_seq));
        let q = self.chain_queries();
        let link_of: HashMap<&str, u64> = window.iter().map(|m| (m.batch_id.as_str(), m.chain_seq)).collect();

        // The ledgers: each batch's digest, then every entry under its event.
        let mut ledgers: HashMap<String, Vec<LedgerEntry>> = HashMap::new();
        let ledger_table = self.qualified("batch_rows");
        let mut cursor = self
            .inner
            .client
            .query_raw(&render(&q.window_ledger, &[a, b]))
            .fetch::<LedgerRow>()
            .map_err(|e| StoreError::from_clickhouse("SELECT", &ledger_table, e))?;
        let mut entries_read = 0u64;
        while let Some(r) = self.next_row(&mut cursor, &ledger_table).await? {
            entries_read += 1;
            let entry = LedgerEntry { tenant: r.tenant, event_id: r.event_id, row_hash: r.row_hash };
            ledgers.entry(r.batch_id).or_default().push(entry);
        }
        v.ledger_entries += entries_read;
        let mut keys: HashMap<Key, KeyState> = HashMap::new();
        for m in window {
            let mut entries = ledgers.remove(&m.batch_id).unwrap_or_default();
            let digest = ledger_digest(&mut entries);
            if digest != m.rows_sha256 {
                v.tampered(m.chain_seq, &m.batch_id, None, "ledger", format!(
                    "link {} (batch {}): its row ledger ({} entries) digests to {digest}, the link says {}: ledger rows were deleted, added or edited",
                    m.chain_seq, m.batch_id, entries.len(), m.rows_sha256
                ));
            }
            for e in entries {
                let state = keys.entry((e.tenant.into(), e.event_id.into())).or_default();
                state.entries.push(Entry { link: m.chain_seq, hash: e.row_hash, seen: false });
            }
        }

        // The stored rows of the window's batches, as inserted.
        let (lo, hi) =
            window.iter().fold((i64::MAX, i64::MIN), |(lo, hi), m| (lo.min(m.min_time_ms), hi.max(m.max_time_ms)));
        let (lo, hi) = self.profile_range(whole_months(lo, hi));
        let sql = render(&q.window_rows, &[Lit::I64(lo), Lit::I64(hi), a, b]);
        let decisions = self.qualified("decisions");
        let layout = RowLayout::decisions(self.profile());
        let mut bytes = self
            .inner
            .client
            .query_raw(&sql)
            .fetch_bytes("RowBinary")
            .map_err(|e| StoreError::from_clickhouse("SELECT", &decisions, e))?;
        let mut buf = BytesMut::new();
        let timeout = self.inner.config.request_timeout;
        loop {
            let chunk = match tokio::time::timeout(timeout, bytes.next()).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(StoreError::from_clickhouse("SELECT", &decisions, e)),
                Err(_) => return Err(StoreError::timeout("SELECT", &decisions, timeout)),
            };
            let Some(chunk) = chunk else { break };
            buf.extend_from_slice(&chunk);
            loop {
                let row = layout.split(&buf).map_err(StoreError::InvalidBatch)?;
                let Some(row) = row else { break };
                let used = row.bytes.len();
                v.rows_checked += 1;
                check_row(v, &mut keys, &link_of, row.batch_id, row.tenant, row.event_id, stored_row_hash(row.bytes));
                buf.advance(used);
            }
        }
        if !buf.is_empty() {
            return Err(StoreError::InvalidBatch(format!("{} bytes after the last decisions row", buf.len())));
        }

        // Entries whose own row is gone: merged into a later copy, or deleted.
        if keys.values().any(|k| k.entries.iter().any(|e| !e.seen)) {
            let sql = render(&q.window_copies, &[Lit::I64(lo), Lit::I64(hi), a, b, a, b]);
            let copies: Vec<CopyRow> = self.fetch_all("SELECT", &decisions, &sql).await?;
            let mut copies: Vec<CopyRow> = copies
                .into_iter()
                .filter(|c| {
                    keys.get(&(c.tenant.as_str().into(), c.event_id.as_str().into()))
                        .is_some_and(|k| k.entries.iter().any(|e| !e.seen))
                })
                .collect();
            copies.sort_by(|x, y| x.batch_id.cmp(&y.batch_id));
            let ids: Vec<&str> = copies
                .iter()
                .map(|c| c.batch_id.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let mut linked: HashMap<String, u64> = HashMap::new();
            for chunk in ids.chunks(500) {
                let sql = render(&q.batch_links, &[Lit::StrList(chunk)]);
                let rows: Vec<(String, u64)> =
                    self.fetch_all("SELECT", &self.qualified("ingest_batches"), &sql).await?;
                linked.extend(rows);
            }
            for c in &copies {
                let link = linked.get(&c.batch_id).copied().unwrap_or(0);
                if let Some(k) = keys.get_mut(&(c.tenant.as_str().into(), c.event_id.as_str().into())) {
                    k.present = k.present.max(link);
                }
            }
            let by_link: HashMap<u64, &str> = window.iter().map(|m| (m.chain_seq, m.batch_id.as_str())).collect();
            let mut gone: Vec<(u64, String)> = Vec::new();
            for ((_, event_id), k) in &keys {
                for e in k.entries.iter().filter(|e| !e.seen) {
                    if k.present >= e.link {
                        v.merged_copies += 1;
                    } else {
                        gone.push((e.link, event_id.to_string()));
                    }
                }
            }
            gone.sort();
            for (link, event_id) in gone {
                let batch = by_link.get(&link).copied().unwrap_or("");
                v.tampered(link, batch, Some(&event_id), "row deleted", format!(
                    "link {link} (batch {batch}): the row of event {event_id} is gone from decisions, and no copy of it from this or a later batch is stored: deleted"
                ));
            }
        }
        Ok(entries_read)
    }

    /// Ledgers and `decisions` rows of batches that have no marker (a marker deleted, or
    /// rows inserted under a batch that was never stored).
    async fn check_orphans(&self, v: &mut ChainVerdict, received: &[MarkerRow]) -> Result<(), StoreError> {
        let q = self.chain_queries();
        let sql = render(&q.orphan_ledgers, &[Lit::I64(v.from_ms), Lit::I64(v.to_ms)]);
        let missing_link = v.problems.iter().find(|p| p.what == "link missing").map_or(0, |p| p.link);
        let ledgers: Vec<String> = self.fetch_all("SELECT", &self.qualified("batch_rows"), &sql).await?;
        for b in &ledgers {
            v.tampered(missing_link, b, None, "marker", format!(
                "batch {b} has a row ledger but no ingest_batches marker: its marker was deleted (or its write is still in progress)"
            ));
        }
        if received.is_empty() {
            return Ok(());
        }
        let (lo, hi) =
            received.iter().fold((i64::MAX, i64::MIN), |(lo, hi), m| (lo.min(m.min_time_ms), hi.max(m.max_time_ms)));
        let (lo, hi) = self.profile_range(whole_months(lo, hi));
        let sql = render(&q.orphan_rows, &[Lit::I64(lo), Lit::I64(hi)]);
        let rows: Vec<String> = self.fetch_all("SELECT", &self.qualified("decisions"), &sql).await?;
        for b in rows.iter().filter(|b| !ledgers.contains(b)) {
            v.tampered(missing_link, b, None, "row inserted", format!(
                "decisions holds rows of batch {b}, which has no marker and no ledger: rows inserted (or a write still in progress)"
            ));
        }
        Ok(())
    }

    /// `(lo, hi)` epoch ms as the profile's `time` compares (legacy: seconds).
    fn profile_range(&self, (lo, hi): (i64, i64)) -> (i64, i64) {
        match self.profile() {
            SchemaProfile::Legacy => (lo.div_euclid(1000), hi.div_euclid(1000)),
            SchemaProfile::Modern => (lo, hi),
        }
    }

    async fn next_row<T>(
        &self,
        cursor: &mut clickhouse::query::RowCursor<T>,
        table: &str,
    ) -> Result<Option<T>, StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        let timeout = self.inner.config.request_timeout;
        match tokio::time::timeout(timeout, cursor.next()).await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => Err(StoreError::from_clickhouse("SELECT", table, e)),
            Err(_) => Err(StoreError::timeout("SELECT", table, timeout)),
        }
    }
}

/// One stored row against the window's ledgers.
fn check_row(
    v: &mut ChainVerdict,
    keys: &mut HashMap<Key, KeyState>,
    link_of: &HashMap<&str, u64>,
    batch_id: &str,
    tenant: &str,
    event_id: &str,
    hash: RowHash,
) {
    let link = link_of.get(batch_id).copied().unwrap_or(0);
    let state = keys.get_mut(&(tenant.into(), event_id.into()));
    let Some(state) = state else {
        v.tampered(link, batch_id, Some(event_id), "row inserted", format!(
            "link {link} (batch {batch_id}): decisions holds a row of event {event_id} that the batch's ledger does not: inserted"
        ));
        return;
    };
    state.present = state.present.max(link);
    let mine = |e: &&mut Entry| e.link == link && !e.seen;
    if let Some(e) = state.entries.iter_mut().filter(mine).find(|e| e.hash == hash) {
        e.seen = true;
        return;
    }
    if let Some(e) = state.entries.iter_mut().find(|e| e.link == link && !e.seen) {
        e.seen = true;
        v.tampered(link, batch_id, Some(event_id), "row edited", format!(
            "link {link} (batch {batch_id}): the stored row of event {event_id} is not the row the batch stored (its hash differs from the ledger's): edited"
        ));
        return;
    }
    v.tampered(link, batch_id, Some(event_id), "row inserted", format!(
        "link {link} (batch {batch_id}): decisions holds one more row of event {event_id} than the batch's ledger: inserted"
    ));
}

/// The period's links in order, checked: each continues the previous and hashes its marker.
fn check_links<'a>(
    v: &mut ChainVerdict,
    by_link: &'a BTreeMap<u64, Vec<MarkerRow>>,
    first: u64,
    last: u64,
) -> Vec<&'a MarkerRow> {
    let mut out = Vec::new();
    let mut prev: Option<String> =
        if first == 1 {
            Some(ChainHead::genesis().hash)
        } else {
            match by_link.get(&(first - 1)).and_then(|m| m.first()) {
                Some(m) => Some(m.chain_hash.clone()),
                None => {
                    v.tampered(first - 1, "", None, "link missing", format!(
                    "link {} (the one before the period) is missing: no marker carries it (its marker was deleted)",
                    first - 1
                ));
                    None
                }
            }
        };
    for n in first..=last {
        let Some(markers) = by_link.get(&n).filter(|m| !m.is_empty()) else {
            v.tampered(
                n,
                "",
                None,
                "link missing",
                format!("link {n} is missing: no marker carries it (a batch's ingest_batches marker was deleted)"),
            );
            prev = None;
            continue;
        };
        let m = &markers[0];
        if markers.len() > 1 {
            let ids: Vec<&str> = markers.iter().map(|m| m.batch_id.as_str()).collect();
            v.tampered(
                n,
                &m.batch_id,
                None,
                "link",
                format!("link {n} is claimed by several batches: {}", ids.join(", ")),
            );
        }
        if let Some(p) = &prev
            && *p != m.chain_prev
        {
            v.tampered(n, &m.batch_id, None, "link", format!(
                "link {n} (batch {}): its prev is {}, but link {} hashes to {p}: links removed, reordered or edited",
                m.batch_id, m.chain_prev, n - 1
            ));
        }
        let expected = link_hash(&m.chain_prev, &m.facts());
        if expected != m.chain_hash {
            v.tampered(n, &m.batch_id, None, "link", format!(
                "link {n} (batch {}): the link says {}, but the marker's facts hash to {expected}: the marker or its link was edited",
                m.batch_id, m.chain_hash
            ));
        }
        v.head = Some(ChainHead { links: n, last_batch_id: Some(m.batch_id.clone()), hash: m.chain_hash.clone() });
        prev = Some(m.chain_hash.clone());
        out.push(m);
    }
    out
}

/// Consecutive links holding about `rows` ledger entries each (at least one link).
fn windows<'a, 'b>(links: &'b [&'a MarkerRow], rows: u64) -> Vec<&'b [&'a MarkerRow]> {
    let mut out = Vec::new();
    let (mut start, mut held) = (0usize, 0u64);
    for (i, m) in links.iter().enumerate() {
        if i > start && held + m.decisions > rows {
            out.push(&links[start..i]);
            start = i;
            held = 0;
        }
        held += m.decisions;
    }
    if start < links.len() {
        out.push(&links[start..]);
    }
    out
}

fn finish(mut v: ChainVerdict) -> ChainVerdict {
    v.problems.sort_by_key(|p| if p.link == 0 { u64::MAX } else { p.link });
    v
}
