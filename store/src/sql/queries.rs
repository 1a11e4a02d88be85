//! The queries, mutations and inserts the store sends, as templates with `?` placeholders
//! that [`render`] fills with escaped literals (old servers have no server-side parameters).

use super::SchemaOptions;
use super::ddl::storage_table;
use crate::profile::SchemaProfile;
use crate::schema::{
    ACCESS_LOG, BATCH_ROWS, CHAIN_CHECKPOINTS, DEAD_LETTERS, DECISIONS, INGEST_BATCHES, RAW_BATCHES, RAW_RECORDS,
    TableDef,
};
use std::fmt::Write as _;

/// A value for a `?` placeholder.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lit<'a> {
    Str(&'a str),
    I64(i64),
    /// A parenthesised list of strings, for `IN ?`.
    StrList(&'a [&'a str]),
}

/// Appends `text` as a ClickHouse string literal (the one escaping the store has: the read
/// side's binder uses it too).
pub(crate) fn quote_into(out: &mut String, text: &str) {
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// Fills each `?` of `template` with the next literal. Templates contain no other `?`.
pub(crate) fn render(template: &str, params: &[Lit<'_>]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut params = params.iter();
    for (i, piece) in template.split('?').enumerate() {
        if i > 0 {
            match params.next() {
                Some(Lit::Str(s)) => quote_into(&mut out, s),
                Some(Lit::I64(n)) => {
                    let _ = write!(out, "{n}");
                }
                Some(Lit::StrList(items)) => {
                    out.push('(');
                    for (j, item) in items.iter().enumerate() {
                        if j > 0 {
                            out.push_str(", ");
                        }
                        quote_into(&mut out, item);
                    }
                    if items.is_empty() {
                        out.push_str("''");
                    }
                    out.push(')');
                }
                None => out.push('?'),
            }
        }
        out.push_str(piece);
    }
    out
}

/// Every query text the store sends, rendered once per store for its profile and options.
#[derive(Debug, Clone)]
pub(crate) struct Queries {
    pub profile: SchemaProfile,
    pub server_version: String,
    pub migrations_table_exists: String,
    pub applied_migrations: String,
    pub insert_migration: String,
    pub table_engine: String,
    /// Params: database, table, column.
    pub has_column: String,
    pub existing_batches: String,
    /// Cheap primary-key probe for rows of an interrupted attempt: the first and last row of
    /// each table (inserts go in order, each chunk atomically). Params: batch_id, then
    /// (tenant, time, event_id) twice; batch_id, dataset, sha256 twice; batch_id, dataset;
    /// batch_id (the row ledger); batch_id (`raw_batches`).
    pub partial_probe: String,
    /// Exact counts, run only when the probe found something. Params: batch_id, min, max
    /// (decisions), batch_id, min, max (raw_records), batch_id, dataset; batch_id (ledger);
    /// batch_id (`raw_batches`).
    pub partial_rows: String,
    /// (table, `ALTER TABLE … DELETE WHERE batch_id = ?`) for the three data tables, the
    /// row ledger and `raw_batches`.
    pub delete_batch: Vec<(&'static str, String)>,
    /// Params: database, storage table.
    pub pending_mutations: String,
    pub insert_decisions: String,
    /// gatelog's own audit records ([`gatelog_model::Source::Gatelog`]).
    pub insert_access_log: String,
    pub insert_raw_records: String,
    pub insert_dead_letters: String,
    pub insert_ingest_batches: String,
    /// The row ledger of the hash chain.
    pub insert_batch_rows: String,
    /// Each batch's body, once (`raw_batches`).
    pub insert_raw_batches: String,
    pub insert_chain_checkpoints: String,
    /// The last link: `(chain_seq, batch_id, chain_hash)`, none before the chain started.
    pub chain_head: String,
    pub decision_uniqueness: String,
    /// Where the ClickHouse sink resumes: the highest spool position stored.
    pub max_spool_seq: String,
    /// `(day, rows)` of every UTC day holding decisions, oldest first.
    pub decision_days: String,
    /// One day's decisions (what the index needs). Params: the day's first and last instant.
    pub scan_day: String,
}

fn insert_sql(db: &str, def: &TableDef, profile: SchemaProfile) -> String {
    format!("INSERT INTO {db}.{} ({}) FORMAT RowBinary", def.name, def.insert_columns(profile).join(", "))
}

/// `time = <instant>` in the profile's type (legacy: epoch seconds; modern: epoch milliseconds).
pub(crate) fn time_equals(profile: SchemaProfile) -> &'static str {
    match profile {
        SchemaProfile::Legacy => "time = toDateTime(?, 'UTC')",
        SchemaProfile::Modern => "time = fromUnixTimestamp64Milli(toInt64(?), 'UTC')",
    }
}

/// The time-range condition used to prune partitions when looking for a batch's rows.
pub(crate) fn time_between(profile: SchemaProfile) -> &'static str {
    match profile {
        SchemaProfile::Legacy => "time >= toDateTime(?, 'UTC') AND time <= toDateTime(?, 'UTC')",
        SchemaProfile::Modern => {
            "time >= fromUnixTimestamp64Milli(toInt64(?), 'UTC') AND time <= fromUnixTimestamp64Milli(toInt64(?), 'UTC')"
        }
    }
}

impl Queries {
    pub(crate) fn new(profile: SchemaProfile, opts: &SchemaOptions) -> Self {
        let db = opts.database.as_str();
        let on_cluster = opts.cluster.as_deref().map(|c| format!(" ON CLUSTER {c}")).unwrap_or_default();
        let between = time_between(profile);
        Queries {
            profile,
            server_version: "SELECT version()".to_owned(),
            migrations_table_exists:
                "SELECT count() FROM system.tables WHERE database = ? AND name = 'schema_migrations'".to_owned(),
            applied_migrations: format!(
                "SELECT version, name, checksum, profile FROM {db}.schema_migrations ORDER BY version"
            ),
            insert_migration: format!(
                "INSERT INTO {db}.schema_migrations (version, name, checksum, profile) FORMAT RowBinary"
            ),
            table_engine: "SELECT engine_full FROM system.tables WHERE database = ? AND name = ?".to_owned(),
            has_column: "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?".to_owned(),
            existing_batches: format!("SELECT DISTINCT batch_id FROM {db}.ingest_batches WHERE batch_id IN ?"),
            partial_probe: format!(
                "SELECT\n    (SELECT count() FROM {db}.decisions WHERE batch_id = ? AND ((tenant = ? AND {at} AND event_id = ?) OR (tenant = ? AND {at} AND event_id = ?))),\n    \
                 (SELECT count() FROM {db}.raw_records WHERE batch_id = ? AND dataset = ? AND sha256 IN (?, ?)),\n    \
                 (SELECT count() FROM {db}.dead_letters WHERE batch_id = ? AND dataset = ?),\n    \
                 (SELECT count() FROM {db}.batch_rows WHERE batch_id = ?),\n    \
                 (SELECT count() FROM {db}.raw_batches WHERE batch_id = ?)",
                at = time_equals(profile)
            ),
            partial_rows: format!(
                "SELECT\n    (SELECT count() FROM {db}.decisions WHERE batch_id = ? AND {between}),\n    \
                 (SELECT count() FROM {db}.raw_records WHERE batch_id = ? AND {between}),\n    \
                 (SELECT count() FROM {db}.dead_letters WHERE batch_id = ? AND dataset = ?),\n    \
                 (SELECT count() FROM {db}.batch_rows WHERE batch_id = ?),\n    \
                 (SELECT count() FROM {db}.raw_batches WHERE batch_id = ?)"
            ),
            delete_batch: [&DECISIONS, &RAW_RECORDS, &DEAD_LETTERS, &BATCH_ROWS, &RAW_BATCHES]
                .iter()
                .map(|d| {
                    let sql = format!(
                        "ALTER TABLE {db}.{}{on_cluster} DELETE WHERE batch_id = ?",
                        storage_table(opts, d.name)
                    );
                    (d.name, sql)
                })
                .collect(),
            pending_mutations: "SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0"
                .to_owned(),
            insert_decisions: insert_sql(db, &DECISIONS, profile),
            insert_access_log: insert_sql(db, &ACCESS_LOG, profile),
            insert_raw_records: insert_sql(db, &RAW_RECORDS, profile),
            insert_dead_letters: insert_sql(db, &DEAD_LETTERS, profile),
            insert_ingest_batches: insert_sql(db, &INGEST_BATCHES, profile),
            insert_batch_rows: insert_sql(db, &BATCH_ROWS, profile),
            insert_raw_batches: insert_sql(db, &RAW_BATCHES, profile),
            insert_chain_checkpoints: insert_sql(db, &CHAIN_CHECKPOINTS, profile),
            chain_head: format!(
                "SELECT chain_seq, batch_id, chain_hash FROM {db}.ingest_batches WHERE chain_seq > 0 ORDER BY chain_seq DESC LIMIT 1"
            ),
            decision_uniqueness: format!("SELECT count(), uniqExact(event_id) FROM {db}.decisions FINAL"),
            max_spool_seq: format!("SELECT max(spool_seq) FROM {db}.ingest_batches"),
            decision_days: format!(
                "SELECT toUInt32(toDate(time)) AS day, count() AS n FROM {db}.decisions GROUP BY day ORDER BY day"
            ),
            scan_day: format!(
                "SELECT {columns} FROM {db}.decisions WHERE {between}",
                columns = crate::scan::SCANNED_COLUMNS
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escaped_literals() {
        let sql = render(
            "SELECT ? , ? FROM t WHERE x IN ?",
            &[Lit::Str("it's a \\ test"), Lit::I64(-5), Lit::StrList(&["a", "b'"])],
        );
        assert_eq!(sql, r"SELECT 'it\'s a \\ test' , -5 FROM t WHERE x IN ('a', 'b\'')");
        assert_eq!(render("x IN ?", &[Lit::StrList(&[])]), "x IN ('')");
    }
}
