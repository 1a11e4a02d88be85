//! The SQL of the hash chain's verification ([`crate::chain`]): the markers and links of a
//! period, the row ledger and the stored rows of a window of links, copies of ledger events
//! in other batches, checkpoints, and rows or ledgers whose batch has no marker.
//!
//! Windows are named by their link range (`chain_seq` from `?` to `?`), a subquery on
//! `ingest_batches`, so a period of any number of batches is never spliced as a list.

use super::{Lit, SchemaOptions, Statement, render, time_between};
use crate::profile::SchemaProfile;
use crate::schema::DECISIONS;

/// What [`crate::chain`] reads of a marker, in [`crate::chain::MarkerRow`] order.
pub(crate) const MARKER_COLUMNS: &str = "batch_id, spool_seq, dataset, received_at_ms, sha256, lines, decisions, \
     raw_records, dead_letters, probes, bytes, min_time_ms, max_time_ms, chain_seq, chain_prev, chain_hash, rows_sha256";

#[derive(Debug, Clone)]
pub(crate) struct ChainQueries {
    /// Params: from, to (epoch ms, `to` exclusive).
    pub markers_received: String,
    /// Params: first and last `chain_seq`.
    pub markers_linked: String,
    /// `(count, received_at_ms)` of link 1: when the chain started.
    pub chain_start: String,
    /// Params: first and last link, from, to (ms).
    pub checkpoints: String,
    /// Params: first and last link of the window.
    pub window_ledger: String,
    /// `decisions` rows of the window's batches, as inserted (RowBinary). Params: the time
    /// range (profile units), first and last link.
    pub window_rows: String,
    /// `(tenant, event_id, batch_id)` of rows of other batches holding an event of the
    /// window's ledger. Params: the time range, first and last link twice.
    pub window_copies: String,
    /// Params: a list of batch ids.
    pub batch_links: String,
    /// Batches with a ledger but no marker. Params: from, to (ms) of their arrival.
    pub orphan_ledgers: String,
    /// Batches with `decisions` rows but no marker. Params: the time range.
    pub orphan_rows: String,
}

impl ChainQueries {
    pub(crate) fn new(profile: SchemaProfile, opts: &SchemaOptions) -> Self {
        let db = opts.database.as_str();
        let between = time_between(profile);
        let window = format!("(SELECT batch_id FROM {db}.ingest_batches WHERE chain_seq >= ? AND chain_seq <= ?)");
        let row_columns = DECISIONS.insert_columns(profile).join(", ");
        ChainQueries {
            markers_received: format!(
                "SELECT {MARKER_COLUMNS} FROM {db}.ingest_batches WHERE received_at_ms >= ? AND received_at_ms < ?"
            ),
            markers_linked: format!(
                "SELECT {MARKER_COLUMNS} FROM {db}.ingest_batches WHERE chain_seq >= ? AND chain_seq <= ?"
            ),
            chain_start: format!("SELECT count(), min(received_at_ms) FROM {db}.ingest_batches WHERE chain_seq = 1"),
            checkpoints: format!(
                "SELECT at_ms, links, last_batch_id, hash, signer, signature FROM {db}.chain_checkpoints \
                 WHERE (links >= ? AND links <= ?) OR (at_ms >= ? AND at_ms < ?) ORDER BY at_ms, links"
            ),
            window_ledger: format!(
                "SELECT batch_id, tenant, event_id, row_hash FROM {db}.batch_rows WHERE batch_id IN {window}"
            ),
            window_rows: format!("SELECT {row_columns} FROM {db}.decisions WHERE {between} AND batch_id IN {window}"),
            window_copies: format!(
                "SELECT tenant, event_id, batch_id FROM {db}.decisions WHERE {between} \
                 AND event_id IN (SELECT event_id FROM {db}.batch_rows WHERE batch_id IN {window}) \
                 AND batch_id NOT IN {window}"
            ),
            batch_links: format!("SELECT batch_id, chain_seq FROM {db}.ingest_batches WHERE batch_id IN ?"),
            orphan_ledgers: format!(
                "SELECT DISTINCT batch_id FROM {db}.batch_rows WHERE received_at_ms >= ? AND received_at_ms < ? \
                 AND batch_id NOT IN (SELECT batch_id FROM {db}.ingest_batches)"
            ),
            orphan_rows: format!(
                "SELECT DISTINCT batch_id FROM {db}.decisions WHERE {between} \
                 AND batch_id NOT IN (SELECT batch_id FROM {db}.ingest_batches)"
            ),
        }
    }
}

/// Every chain query with example literals, for `gatelog sql dump` and the compat tests.
pub(crate) fn example_statements(profile: SchemaProfile, opts: &SchemaOptions, lo: i64, hi: i64) -> Vec<Statement> {
    let q = ChainQueries::new(profile, opts);
    let (from, to) = (Lit::I64(1_740_000_000_000), Lit::I64(1_750_000_000_000));
    let (a, b) = (Lit::I64(1), Lit::I64(100));
    let (lo, hi) = (Lit::I64(lo), Lit::I64(hi));
    let t = |name: &str, template: &str, params: &[Lit<'_>]| Statement {
        name: format!("query.chain.{name}"),
        sql: template.to_owned(),
        exec: render(template, params),
    };
    vec![
        t("markers_received", &q.markers_received, &[from, to]),
        t("markers_linked", &q.markers_linked, &[a, b]),
        t("chain_start", &q.chain_start, &[]),
        t("checkpoints", &q.checkpoints, &[a, b, from, to]),
        t("window_ledger", &q.window_ledger, &[a, b]),
        t("window_rows", &q.window_rows, &[lo, hi, a, b]),
        t("window_copies", &q.window_copies, &[lo, hi, a, b, a, b]),
        t("batch_links", &q.batch_links, &[Lit::StrList(&["example-batch"])]),
        t("orphan_ledgers", &q.orphan_ledgers, &[from, to]),
        t("orphan_rows", &q.orphan_rows, &[lo, hi]),
    ]
}
