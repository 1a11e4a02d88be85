//! The tables as data: one definition per table, rendered to DDL per [`SchemaProfile`] and
//! used for the `INSERT` column lists, so DDL, inserts and the RowBinary encoder cannot drift.

use crate::profile::SchemaProfile;

/// A column's logical type; each profile maps it to a ClickHouse type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `String`.
    Str,
    /// Enum-like text: `String` (legacy) or `LowCardinality(String)` (modern).
    Enum,
    /// A UTC instant with millisecond precision: `DateTime('UTC')` plus a stored
    /// `<name>_ms Int64` (legacy) or `DateTime64(3, 'UTC')` plus an `ALIAS <name>_ms` (modern).
    Time,
    /// Set by the server at insert (`DEFAULT now()`); never sent.
    WrittenAt,
    U64,
    U32,
    U16,
    /// `Array(String)`.
    Strings,
    /// `FixedString(16)`: a [`gatelog_model::chain::RowHash`].
    Hash16,
    /// `Array(UInt32)`.
    U32s,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Col {
    pub name: &'static str,
    pub kind: Kind,
}

const fn col(name: &'static str, kind: Kind) -> Col {
    Col { name, kind }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    MergeTree,
    ReplacingMergeTree,
}

/// One of gatelog's data tables.
#[derive(Debug)]
pub(crate) struct TableDef {
    pub name: &'static str,
    pub cols: &'static [Col],
    pub engine: Engine,
    /// `PARTITION BY toYYYYMM(<this>)`, so retention is `DROP PARTITION`.
    pub partition_by: &'static str,
    pub order_by: &'static str,
    /// Sharding key of the `Distributed` table in cluster mode; rows that must collapse
    /// together (same event, same line, same batch) land on the same shard.
    pub shard_key: &'static str,
    /// Whether the modern profile applies `retention_days` as a TTL on `partition_by`.
    pub retention: bool,
}

use Kind::{Enum, Hash16, Str, Strings, Time, U16, U32, U32s, U64, WrittenAt};

/// `decisions`: one row per [`gatelog_model::AccessDecision`]; the Tail and Logpush copies of a
/// decision, and the rows of a retried batch, collapse on `(tenant, event_id)`, whatever
/// their times: copies need not agree to the millisecond, and may fall on both sides of
/// midnight or of a month (partitions). Background merges collapse copies within a month;
/// `FINAL` collapses them across months too (it merges every partition's rows by key).
/// Time-range reads prune by month partition. There is no version column: the copy inserted
/// last survives within a month, the later month's across months (ARCHITECTURE.md, "Which
/// copy survives"; pinned by `tests/dedup.rs`).
pub(crate) const DECISIONS: TableDef = TableDef {
    name: "decisions",
    cols: &[
        col("event_id", Str),
        col("time", Time),
        col("received_at", Time),
        col("source", Enum),
        col("dataset", Enum),
        col("decision", Enum),
        col("principal", Str),
        col("principal_type", Enum),
        col("roles", Strings),
        col("client_ip", Str),
        col("country", Enum),
        col("asn", U32),
        col("user_agent", Str),
        col("resource", Str),
        col("action", Enum),
        col("policy", Enum),
        col("reason", Str),
        col("query", Str),
        col("query_fingerprint", Str),
        col("rows_read", U64),
        col("bytes_read", U64),
        col("result_rows", U64),
        col("duration_ms", U64),
        col("status", U16),
        col("ray_id", Str),
        col("request_id", Str),
        col("zone", Enum),
        col("host", Enum),
        col("path", Str),
        col("auth_method", Enum),
        col("error", Str),
        col("tenant", Enum),
        col("spool_seq", U64),
        col("raw_sha256", Str),
        col("batch_id", Str),
    ],
    engine: Engine::ReplacingMergeTree,
    partition_by: "time",
    order_by: "tenant, event_id",
    shard_key: "cityHash64(event_id)",
    retention: true,
};

/// `decisions` as migration 1 created it, keyed `(tenant, time, event_id)`: copies whose
/// times differ did not collapse. Migration 5 moves the rows to [`DECISIONS`]. Kept only so
/// migration 1 renders (and checksums) as it always did.
pub(crate) const DECISIONS_V1: TableDef = TableDef { order_by: "tenant, time, event_id", ..DECISIONS };

/// `raw_records`: every original line, byte for byte, once per `(dataset, sha256)`.
pub(crate) const RAW_RECORDS: TableDef = TableDef {
    name: "raw_records",
    cols: &[
        col("event_id", Str),
        col("dataset", Enum),
        col("received_at", Time),
        col("time", Time),
        col("line", Str),
        col("sha256", Str),
        col("batch_id", Str),
    ],
    engine: Engine::ReplacingMergeTree,
    partition_by: "time",
    order_by: "dataset, sha256",
    shard_key: "cityHash64(sha256)",
    retention: true,
};

/// `dead_letters`: lines that could not be used, with the reason.
pub(crate) const DEAD_LETTERS: TableDef = TableDef {
    name: "dead_letters",
    cols: &[
        col("dataset", Enum),
        col("received_at", Time),
        col("origin", Str),
        col("line_no", U64),
        col("line", Str),
        col("sha256", Str),
        col("error", Str),
        col("batch_id", Str),
    ],
    engine: Engine::MergeTree,
    partition_by: "received_at",
    order_by: "dataset, received_at, batch_id, line_no",
    shard_key: "cityHash64(batch_id)",
    retention: true,
};

/// `raw_batches` (migration 18): each batch's body, stored once, as received: the gzip bytes
/// Logpush sent, or a plain body (or backfilled chunk) compressed by gatelog. `sha256` is the
/// SHA-256 of the inflated bytes, the `ingest_batches.sha256` the hash chain links; `lines`
/// the lines in it. `event_ids`/`event_lines` are parallel: each decision's event id and its
/// 1-based line in the body, so an event's original line is one lookup away
/// (`Reader::raw_line`). Replaces a `raw_records` row per line; a retried batch's row
/// collapses on `batch_id` (and the partial-write probe removes it first).
pub(crate) const RAW_BATCHES: TableDef = TableDef {
    name: "raw_batches",
    cols: &[
        col("batch_id", Str),
        col("dataset", Enum),
        col("source", Str),
        col("received_at", Time),
        col("sha256", Str),
        col("lines", U64),
        col("bytes", U64),
        col("body", Str),
        col("event_ids", Strings),
        col("event_lines", U32s),
    ],
    engine: Engine::ReplacingMergeTree,
    partition_by: "received_at",
    order_by: "batch_id",
    shard_key: "cityHash64(batch_id)",
    retention: true,
};

/// The columns `ingest_batches` was created with (migration 4).
const INGEST_BATCHES_V1_COLS: [Col; 15] = [
    col("batch_id", Str),
    col("dataset", Enum),
    col("origin", Str),
    col("received_at", Time),
    col("lines", U64),
    col("decisions", U64),
    col("raw_records", U64),
    col("dead_letters", U64),
    col("probes", U64),
    col("min_time", Time),
    col("max_time", Time),
    col("bytes", U64),
    col("sha256", Str),
    col("written_at", WrittenAt),
    // The spool position of the batch (0 for an older `gatelog ingest`, which wrote
    // straight to ClickHouse): the ClickHouse sink
    // resumes after the highest one, committed together with the rows it covers.
    col("spool_seq", U64),
];

/// The columns migration 13 adds to `ingest_batches`: the batch's link of the hash chain
/// (`gatelog_model::chain`), on the marker so that it is stored exactly once with the batch.
/// `chain_seq` is the link's position (1-based; 0: stored before the chain started).
pub(crate) const CHAIN_COLS: [Col; 4] =
    [col("chain_seq", U64), col("chain_prev", Str), col("chain_hash", Str), col("rows_sha256", Str)];

/// `ingest_batches`: one row per stored batch, written last: the commit marker and the
/// completeness/gap evidence, and the batch's link of the hash chain. Kept without TTL.
pub(crate) const INGEST_BATCHES: TableDef = TableDef {
    name: "ingest_batches",
    cols: &[
        INGEST_BATCHES_V1_COLS[0],
        INGEST_BATCHES_V1_COLS[1],
        INGEST_BATCHES_V1_COLS[2],
        INGEST_BATCHES_V1_COLS[3],
        INGEST_BATCHES_V1_COLS[4],
        INGEST_BATCHES_V1_COLS[5],
        INGEST_BATCHES_V1_COLS[6],
        INGEST_BATCHES_V1_COLS[7],
        INGEST_BATCHES_V1_COLS[8],
        INGEST_BATCHES_V1_COLS[9],
        INGEST_BATCHES_V1_COLS[10],
        INGEST_BATCHES_V1_COLS[11],
        INGEST_BATCHES_V1_COLS[12],
        INGEST_BATCHES_V1_COLS[13],
        INGEST_BATCHES_V1_COLS[14],
        CHAIN_COLS[0],
        CHAIN_COLS[1],
        CHAIN_COLS[2],
        CHAIN_COLS[3],
    ],
    engine: Engine::ReplacingMergeTree,
    partition_by: "received_at",
    order_by: "batch_id",
    shard_key: "cityHash64(batch_id)",
    retention: false,
};

/// `ingest_batches` as migration 4 created it (kept so migration 4 renders as it always did).
pub(crate) const INGEST_BATCHES_V1: TableDef = TableDef { cols: &INGEST_BATCHES_V1_COLS, ..INGEST_BATCHES };

/// `batch_rows`: the row ledger of the hash chain, one row per `decisions` row a batch
/// stored: its key and the hash of its encoding. A plain `MergeTree` (nothing collapses),
/// written in the batch's write group before its marker; the marker's link carries the
/// digest of the batch's entries. Kept without TTL, like `ingest_batches`.
pub(crate) const BATCH_ROWS: TableDef = TableDef {
    name: "batch_rows",
    cols: &[
        col("batch_id", Str),
        col("received_at", Time),
        col("tenant", Enum),
        col("event_id", Str),
        col("row_hash", Hash16),
    ],
    engine: Engine::MergeTree,
    partition_by: "received_at",
    order_by: "batch_id, tenant, event_id",
    shard_key: "cityHash64(batch_id)",
    retention: false,
};

/// `chain_checkpoints`: the chain's head recorded periodically by `gatelog serve`, signed
/// with the bundle signing key when there is one (`signature` is then an armoured SSH
/// signature over `gatelog_model::chain::checkpoint_message`, `signer` its key's fingerprint).
pub(crate) const CHAIN_CHECKPOINTS: TableDef = TableDef {
    name: "chain_checkpoints",
    cols: &[
        col("at", Time),
        col("links", U64),
        col("last_batch_id", Str),
        col("hash", Str),
        col("signer", Str),
        col("signature", Str),
    ],
    engine: Engine::MergeTree,
    partition_by: "at",
    order_by: "at, links",
    shard_key: "links",
    retention: false,
};

/// `access_log`: gatelog's own audit trail, one row per answer of a read route (who read
/// the evidence, allowed or denied; [`gatelog_model::Source::Gatelog`]). The columns and
/// keys of [`DECISIONS`] (the records are `AccessDecision`s), in a table of their own so that
/// what gatelog watches and reports on is never mixed with reads of it. A retried batch's
/// rows collapse on `(tenant, event_id)`; reads use `FINAL`.
pub(crate) const ACCESS_LOG: TableDef = TableDef { name: "access_log", ..DECISIONS };

/// `decisions_by_time`: a narrow, time-ordered companion of [`DECISIONS`] for the dashboard's
/// overview (`read::overview`): the columns the overview reads, keyed `(tenant, time,
/// event_id)` so a time window reads only its granules instead of whole month partitions.
/// Filled by the materialized view `decisions_by_time_mv` on every insert into `decisions`
/// (migration 16, which also copies the rows stored before it), so the writer does not know
/// it. A plain `MergeTree`: the copies of an event all stay, and readers group by
/// `(tenant, event_id)`. Partitioned by month like `decisions`, so retention drops it too.
pub(crate) const DECISIONS_BY_TIME: TableDef = TableDef {
    name: "decisions_by_time",
    cols: &[
        col("tenant", Enum),
        col("time", Time),
        col("event_id", Str),
        col("received_at", Time),
        col("dataset", Enum),
        col("decision", Enum),
        col("principal", Str),
        col("resource", Str),
        col("client_ip", Str),
        col("spool_seq", U64),
    ],
    engine: Engine::MergeTree,
    partition_by: "time",
    order_by: "tenant, time, event_id",
    shard_key: "cityHash64(event_id)",
    retention: true,
};

/// The data tables in migration order.
pub(crate) const TABLES: [&TableDef; 7] =
    [&DECISIONS, &RAW_RECORDS, &DEAD_LETTERS, &INGEST_BATCHES, &ACCESS_LOG, &DECISIONS_BY_TIME, &RAW_BATCHES];

impl TableDef {
    /// Column definitions (one per line, without trailing commas) for `profile`.
    pub(crate) fn column_ddl(&self, profile: SchemaProfile) -> Vec<String> {
        let legacy = profile == SchemaProfile::Legacy;
        let mut out = Vec::with_capacity(self.cols.len() + 4);
        for c in self.cols {
            let n = c.name;
            match c.kind {
                Str => out.push(format!("{n} String")),
                Enum if legacy => out.push(format!("{n} String")),
                Enum => out.push(format!("{n} LowCardinality(String)")),
                Time if legacy => {
                    out.push(format!("{n} DateTime('UTC')"));
                    out.push(format!("{n}_ms Int64"));
                }
                Time => {
                    out.push(format!("{n} DateTime64(3, 'UTC')"));
                    out.push(format!("{n}_ms Int64 ALIAS toUnixTimestamp64Milli({n})"));
                }
                WrittenAt if legacy => out.push(format!("{n} DateTime('UTC') DEFAULT now()")),
                WrittenAt => out.push(format!("{n} DateTime64(3, 'UTC') DEFAULT now64(3)")),
                U64 => out.push(format!("{n} UInt64")),
                U32 => out.push(format!("{n} UInt32")),
                U16 => out.push(format!("{n} UInt16")),
                Strings => out.push(format!("{n} Array(String)")),
                Hash16 => out.push(format!("{n} FixedString(16)")),
                U32s => out.push(format!("{n} Array(UInt32)")),
            }
        }
        let has_batch_id = self.cols.iter().any(|c| c.name == "batch_id");
        if !legacy && has_batch_id && !self.order_by.starts_with("batch_id") {
            out.push("INDEX batch_id_idx batch_id TYPE bloom_filter(0.01) GRANULARITY 4".to_owned());
        }
        out
    }

    /// The columns an `INSERT` sends, in the order the RowBinary encoder writes them.
    pub(crate) fn insert_columns(&self, profile: SchemaProfile) -> Vec<String> {
        let mut out = Vec::with_capacity(self.cols.len() + 4);
        for c in self.cols {
            match c.kind {
                WrittenAt => {}
                Time if profile == SchemaProfile::Legacy => {
                    out.push(c.name.to_owned());
                    out.push(format!("{}_ms", c.name));
                }
                _ => out.push(c.name.to_owned()),
            }
        }
        out
    }

    /// The kinds an encoder writes per row, in order (for tests of the encoders).
    #[cfg(test)]
    pub(crate) fn sent_kinds(&self) -> Vec<Kind> {
        self.cols.iter().map(|c| c.kind).filter(|k| *k != WrittenAt).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_profiles_keep_the_contract_column_names() {
        for table in TABLES {
            let names = |p| -> Vec<String> {
                table
                    .column_ddl(p)
                    .iter()
                    .filter(|l| !l.starts_with("INDEX"))
                    .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
                    .collect()
            };
            assert_eq!(names(SchemaProfile::Legacy), names(SchemaProfile::Modern), "{}", table.name);
        }
        let decision_cols: Vec<_> = DECISIONS.cols.iter().map(|c| c.name).collect();
        for required in [
            "event_id",
            "time",
            "received_at",
            "source",
            "dataset",
            "decision",
            "principal",
            "spool_seq",
            "batch_id",
            "tenant",
        ] {
            assert!(decision_cols.contains(&required), "{required}");
        }
    }

    #[test]
    fn legacy_inserts_the_millisecond_columns() {
        let legacy = RAW_RECORDS.insert_columns(SchemaProfile::Legacy);
        assert!(legacy.contains(&"time_ms".to_owned()));
        let modern = RAW_RECORDS.insert_columns(SchemaProfile::Modern);
        assert!(!modern.contains(&"time_ms".to_owned()));
        assert!(!INGEST_BATCHES.insert_columns(SchemaProfile::Modern).contains(&"written_at".to_owned()));
    }
}
