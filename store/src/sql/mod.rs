//! Every SQL statement the store can emit, for `gatelog sql dump` and the compatibility tests.
//!
//! [`statements`] lists them in an order that executes on an empty server (database, tables,
//! inserts, queries, mutations); each carries the text the store sends (`sql`, with `?`
//! placeholders or `FORMAT RowBinary`) and a self-contained variant (`exec`) with example
//! literals and one row of typed example values, which chdb and the real 18.16 run.

pub mod canary;
pub(crate) mod chain;
pub mod config_versions;
mod ddl;
pub mod deliveries;
pub mod detection;
mod queries;
pub mod query_log;
pub(crate) mod raw;
mod rekey;
pub mod reviews;
mod samples;

pub use ddl::{Migration, migrations};
pub(crate) use ddl::{
    create_database, create_schema_migrations, drop_partition, expired_months, retained_tables, retention,
    storage_table,
};
pub(crate) use queries::{Lit, Queries, quote_into, render, time_between};
pub use rekey::{REKEY_LOOKS, Rekey, RekeySeen, RekeyStep};
pub use samples::{SamplePayload, sample_payloads};

use crate::StoreError;
use crate::profile::SchemaProfile;
use crate::schema::{
    ACCESS_LOG, BATCH_ROWS, CHAIN_CHECKPOINTS, DEAD_LETTERS, DECISIONS, INGEST_BATCHES, Kind, RAW_BATCHES, RAW_RECORDS,
    TableDef,
};

/// What the schema is rendered for, besides the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaOptions {
    /// gatelog's database (`gatelog`).
    pub database: String,
    /// Render `ON CLUSTER`, `Replicated*` engines and `Distributed` tables for this cluster.
    pub cluster: Option<String>,
    /// Modern profile: a TTL of this many days on decisions, raw records and dead letters.
    pub retention_days: Option<u32>,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        SchemaOptions { database: "gatelog".to_owned(), cluster: None, retention_days: None }
    }
}

impl SchemaOptions {
    /// Checks that names are plain identifiers (they are spliced into DDL unquoted).
    pub fn validate(&self) -> Result<(), StoreError> {
        check_identifier("database", &self.database)?;
        if let Some(cluster) = &self.cluster {
            check_identifier("cluster", cluster)?;
        }
        if self.retention_days == Some(0) {
            return Err(StoreError::InvalidConfig("retention_days must be at least 1".into()));
        }
        Ok(())
    }
}

fn check_identifier(key: &str, value: &str) -> Result<(), StoreError> {
    let mut chars = value.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && value.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidConfig(format!(
            "{key} {value:?} must be a plain identifier (letters, digits, underscore; not starting with a digit)"
        )))
    }
}

/// One statement: `sql` as the store sends it, `exec` runnable as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub name: String,
    pub sql: String,
    pub exec: String,
}

impl Statement {
    fn same(name: impl Into<String>, sql: String) -> Self {
        Statement { name: name.into(), exec: sql.clone(), sql }
    }
}

const EXAMPLE_BATCH: &str = "example-batch";
const EXAMPLE_DATASET: &str = "http_requests";
const EXAMPLE_MS: i64 = 1_740_990_713_712; // 2025-03-03T08:31:53.712Z

/// One row of typed example values for `def`'s insert columns, as a `SELECT` list.
fn example_row(def: &TableDef, profile: SchemaProfile) -> String {
    let mut values = Vec::new();
    for c in def.cols {
        match c.kind {
            Kind::WrittenAt => {}
            Kind::Str | Kind::Enum => values.push(match c.name {
                "batch_id" => format!("'{EXAMPLE_BATCH}'"),
                "dataset" => format!("'{EXAMPLE_DATASET}'"),
                "tenant" => "'default'".to_owned(),
                _ => "'example'".to_owned(),
            }),
            Kind::Time if profile == SchemaProfile::Legacy => {
                values.push(format!("toDateTime({}, 'UTC')", EXAMPLE_MS / 1000));
                values.push(format!("toInt64({EXAMPLE_MS})"));
            }
            Kind::Time => values.push("toDateTime64('2025-03-03 08:31:53.712', 3, 'UTC')".to_owned()),
            Kind::U64 => values.push("toUInt64(1)".to_owned()),
            Kind::U32 => values.push("toUInt32(1)".to_owned()),
            Kind::U16 => values.push("toUInt16(1)".to_owned()),
            Kind::Strings => values.push("['example']".to_owned()),
            Kind::Hash16 => values.push("toFixedString('0123456789abcdef', 16)".to_owned()),
            Kind::U32s => values.push("[toUInt32(1)]".to_owned()),
        }
    }
    values.join(", ")
}

fn insert_statement(name: &str, sent: &str, def: &TableDef, db: &str, profile: SchemaProfile) -> Statement {
    let exec = format!(
        "INSERT INTO {db}.{} ({}) SELECT {}",
        def.name,
        def.insert_columns(profile).join(", "),
        example_row(def, profile)
    );
    Statement { name: name.to_owned(), sql: sent.to_owned(), exec }
}

fn templated(name: &str, template: &str, params: &[Lit<'_>]) -> Statement {
    Statement { name: name.to_owned(), sql: template.to_owned(), exec: render(template, params) }
}

/// Every DDL, query, mutation and insert the store can emit for `profile` and `opts`,
/// in an order that runs on an empty server.
pub fn statements(profile: SchemaProfile, opts: &SchemaOptions) -> Vec<Statement> {
    let q = Queries::new(profile, opts);
    let db = opts.database.as_str();
    let mut out = vec![
        Statement::same("query.server_version", q.server_version.clone()),
        Statement::same("bootstrap.create_database", create_database(opts)),
        Statement::same("bootstrap.create_schema_migrations", create_schema_migrations(opts)),
        templated("query.migrations_table_exists", &q.migrations_table_exists, &[Lit::Str(db)]),
        Statement::same("query.applied_migrations", q.applied_migrations.clone()),
    ];
    for m in migrations(profile, opts) {
        let count = m.statements.len();
        let steps = ["create", "retire", "promote", "copy", "cleanup"];
        for (i, sql) in m.statements.into_iter().enumerate() {
            let suffix = match (&m.rekey, steps.get(i)) {
                (Some(_), Some(step)) => format!(".{step}"),
                // Migrations since 13 run several statements of their own: numbered.
                _ if count > 1 && m.version >= 13 => format!(".{}", i + 1),
                _ if count > 1 && i > 0 => ".distributed".to_owned(),
                _ => String::new(),
            };
            out.push(Statement::same(format!("migration.{:04}_{}{suffix}", m.version, m.name), sql));
        }
    }
    for (table, sql, _) in retention(profile, opts) {
        out.push(Statement::same(format!("retention.{table}"), sql));
    }
    let local = storage_table(opts, DECISIONS.name);
    out.push(templated("query.table_engine", &q.table_engine, &[Lit::Str(db), Lit::Str(&local)]));
    let column = [Lit::Str(db), Lit::Str(&local), Lit::Str("event_id")];
    out.push(templated("query.has_column", &q.has_column, &column));
    out.push(Statement {
        name: "insert.schema_migrations".to_owned(),
        sql: q.insert_migration.clone(),
        exec: format!(
            "INSERT INTO {db}.schema_migrations (version, name, checksum, profile) SELECT toUInt32(0), 'example', '', '{profile}'"
        ),
    });
    out.push(insert_statement("insert.decisions", &q.insert_decisions, &DECISIONS, db, profile));
    out.push(insert_statement("insert.access_log", &q.insert_access_log, &ACCESS_LOG, db, profile));
    out.push(insert_statement("insert.raw_records", &q.insert_raw_records, &RAW_RECORDS, db, profile));
    out.push(insert_statement("insert.dead_letters", &q.insert_dead_letters, &DEAD_LETTERS, db, profile));
    out.push(insert_statement("insert.ingest_batches", &q.insert_ingest_batches, &INGEST_BATCHES, db, profile));
    out.push(insert_statement("insert.batch_rows", &q.insert_batch_rows, &BATCH_ROWS, db, profile));
    out.push(insert_statement("insert.raw_batches", &q.insert_raw_batches, &RAW_BATCHES, db, profile));
    out.push(insert_statement(
        "insert.chain_checkpoints",
        &q.insert_chain_checkpoints,
        &CHAIN_CHECKPOINTS,
        db,
        profile,
    ));
    out.push(Statement::same("query.chain_head", q.chain_head.clone()));
    out.push(templated(
        "query.existing_batches",
        &q.existing_batches,
        &[Lit::StrList(&[EXAMPLE_BATCH, "another-batch"])],
    ));
    let (lo, hi) = match profile {
        SchemaProfile::Legacy => (EXAMPLE_MS / 1000, EXAMPLE_MS / 1000),
        SchemaProfile::Modern => (EXAMPLE_MS, EXAMPLE_MS),
    };
    let b = Lit::Str(EXAMPLE_BATCH);
    let t = Lit::I64(lo);
    let (tenant, event, ds) = (Lit::Str("default"), Lit::Str("example"), Lit::Str(EXAMPLE_DATASET));
    out.push(templated(
        "query.partial_batch_probe",
        &q.partial_probe,
        &[b, tenant, t, event, tenant, t, event, b, ds, event, event, b, ds, b, b],
    ));
    out.push(templated(
        "query.partial_batch_rows",
        &q.partial_rows,
        &[b, Lit::I64(lo), Lit::I64(hi), b, Lit::I64(lo), Lit::I64(hi), b, Lit::Str(EXAMPLE_DATASET), b, b],
    ));
    out.push(Statement::same("query.decision_uniqueness", q.decision_uniqueness.clone()));
    out.push(Statement::same("query.max_spool_seq", q.max_spool_seq.clone()));
    out.push(Statement::same("query.decision_days", q.decision_days.clone()));
    out.push(templated("query.scan_day", &q.scan_day, &[Lit::I64(lo), Lit::I64(hi)]));
    for (table, template) in &q.delete_batch {
        out.push(templated(&format!("mutation.delete_batch.{table}"), template, &[b]));
    }
    out.push(templated("query.pending_mutations", &q.pending_mutations, &[Lit::Str(db), Lit::Str(&local)]));
    // Retention (`Store::expire`): find the wholly expired months, drop each. The example
    // month holds none of the example rows.
    for def in retained_tables() {
        out.push(templated(
            &format!("query.expired_months.{}", def.name),
            &expired_months(def, opts),
            &[Lit::I64(EXAMPLE_MS / 1000)],
        ));
        out.push(Statement::same(format!("retention.drop_partition.{}", def.name), drop_partition(def, opts, 202401)));
    }
    for r in crate::read::registered(profile, opts) {
        out.push(Statement { name: r.name, sql: r.template, exec: r.sql });
    }
    out.extend(detection::example_statements(profile, opts, lo, hi));
    out.extend(deliveries::example_statements(opts));
    out.push(crate::access_log::example_statement(profile, opts));
    out.extend(canary::example_statements(opts));
    out.extend(reviews::example_statements(opts));
    out.extend(chain::example_statements(profile, opts, lo, hi));
    out.extend(config_versions::example_statements(opts));
    out.extend(raw::example_statements(opts));
    out.extend(query_log::example_statements(db));
    out
}

/// The dump `gatelog sql dump` prints: each statement preceded by `-- name` (and, where the
/// store sends a different text, that text as `-- sent as:` comment lines), separated by `;\n\n`.
pub fn render_dump(profile: SchemaProfile, opts: &SchemaOptions) -> String {
    let mut chunks = Vec::new();
    for s in statements(profile, opts) {
        let mut chunk = format!("-- {}\n", s.name);
        if s.sql != s.exec {
            chunk.push_str("-- sent as:\n");
            for line in s.sql.lines() {
                chunk.push_str("--   ");
                chunk.push_str(line);
                chunk.push('\n');
            }
        }
        chunk.push_str(&s.exec);
        chunks.push(chunk);
    }
    let mut out = chunks.join(";\n\n");
    out.push_str(";\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(cluster: Option<&str>, retention: Option<u32>) -> SchemaOptions {
        SchemaOptions { database: "gl".into(), cluster: cluster.map(Into::into), retention_days: retention }
    }

    #[test]
    fn legacy_uses_only_old_types() {
        let dump = render_dump(SchemaProfile::Legacy, &opts(None, Some(30)));
        for modern in ["DateTime64", "LowCardinality", "TTL", "bloom_filter", "toUnixTimestamp64Milli"] {
            assert!(!dump.contains(modern), "{modern} in legacy dump");
        }
        assert!(dump.contains("time DateTime('UTC')") && dump.contains("time_ms Int64"));
        assert!(
            dump.contains(
                "ENGINE = ReplacingMergeTree\nPARTITION BY toYYYYMM(time)\nORDER BY (tenant, time, event_id)"
            ),
            "migration 1 as it always was"
        );
        assert!(dump.contains(
            "CREATE TABLE IF NOT EXISTS gl.decisions_rekeyed\n(\n    event_id String,\n    time DateTime('UTC'),"
        ));
        assert!(dump.contains("ENGINE = ReplacingMergeTree\nPARTITION BY toYYYYMM(time)\nORDER BY (tenant, event_id)"));
    }

    #[test]
    fn modern_uses_new_types_and_ttl() {
        let dump = render_dump(SchemaProfile::Modern, &opts(None, Some(30)));
        assert!(dump.contains("time DateTime64(3, 'UTC')"));
        assert!(dump.contains("decision LowCardinality(String)"));
        assert!(dump.contains("MODIFY TTL toDateTime(time) + toIntervalDay(30)"));
        assert!(!render_dump(SchemaProfile::Modern, &opts(None, None)).contains("TTL"));
    }

    #[test]
    fn retention_drops_whole_months_of_three_tables_on_both_profiles() {
        for profile in [SchemaProfile::Legacy, SchemaProfile::Modern] {
            let dump = render_dump(profile, &opts(Some("c1"), None));
            for (table, col) in [("decisions", "time"), ("raw_records", "time"), ("dead_letters", "received_at")] {
                assert!(dump.contains(&format!("ALTER TABLE gl.{table}_local ON CLUSTER c1 DROP PARTITION 202401")));
                assert!(dump.contains(&format!(
                    "SELECT DISTINCT toUInt32(toYYYYMM({col})) AS month FROM gl.{table} WHERE toYYYYMM({col}) < toYYYYMM(toDateTime(1740990713, 'UTC'))"
                )));
            }
            for kept in ["ingest_batches", "findings", "alerts", "alert_events", "detector_runs"] {
                assert!(!dump.contains(&format!("gl.{kept}_local ON CLUSTER c1 DROP PARTITION")), "{kept}");
            }
        }
    }

    #[test]
    fn dump_format_is_name_comment_then_statement() {
        let dump = render_dump(SchemaProfile::Modern, &opts(None, None));
        let chunks: Vec<_> = dump.trim_end().trim_end_matches(';').split(";\n\n").collect();
        assert_eq!(chunks.len(), statements(SchemaProfile::Modern, &opts(None, None)).len());
        for chunk in &chunks {
            assert!(chunk.starts_with("-- "), "{chunk}");
        }
        assert!(dump.contains("--   INSERT INTO gl.decisions (event_id, time, received_at"));
        let executable: Vec<&str> = dump.lines().filter(|l| !l.starts_with("--")).collect();
        assert!(
            !executable.iter().any(|l| l.contains(" = ?") || l.contains("(?")),
            "placeholders must be filled in exec variants"
        );
    }

    #[test]
    fn cluster_renders_replicated_and_distributed() {
        let dump = render_dump(SchemaProfile::Modern, &opts(Some("c1"), None));
        assert!(dump.contains("CREATE DATABASE IF NOT EXISTS gl ON CLUSTER c1"));
        assert!(dump.contains("CREATE TABLE IF NOT EXISTS gl.decisions_local ON CLUSTER c1"));
        assert!(
            dump.contains("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/gl/decisions_local', '{replica}')")
        );
        assert!(dump.contains("ENGINE = Distributed(c1, gl, decisions_local, cityHash64(event_id))"));
        assert!(dump.contains("ALTER TABLE gl.decisions_local ON CLUSTER c1 DELETE WHERE batch_id = 'example-batch'"));
        assert!(dump.contains("INSERT INTO gl.decisions (event_id"));
        // Migration 16: the view on every node, from the storage table the writer's rows land
        // in to the companion's; the old rows through the Distributed table (same sharding).
        assert!(dump.contains(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS gl.decisions_by_time_mv ON CLUSTER c1 TO gl.decisions_by_time_local\nAS SELECT tenant, time, event_id,"
        ));
        let view = dump.split("decisions_by_time_mv ON CLUSTER").nth(1).unwrap_or_default();
        assert!(view.split(';').next().unwrap_or_default().ends_with("FROM gl.decisions_local"), "{view}");
        assert!(dump.contains("ENGINE = Distributed(c1, gl, decisions_by_time_local, cityHash64(event_id))"));
        assert!(dump.contains("INSERT INTO gl.decisions_by_time (tenant, time, event_id,"));
        assert!(dump.contains("FROM cluster('c1', gl, decisions_local)"));
    }

    #[test]
    fn validates_identifiers() {
        assert!(opts(None, None).validate().is_ok());
        assert!(SchemaOptions { database: "g; DROP".into(), ..SchemaOptions::default() }.validate().is_err());
        assert!(SchemaOptions { cluster: Some("1c".into()), ..SchemaOptions::default() }.validate().is_err());
    }

    #[test]
    fn migration_checksums_are_stable_and_profile_specific() {
        let a = migrations(SchemaProfile::Legacy, &opts(None, None));
        let b = migrations(SchemaProfile::Legacy, &opts(None, Some(9)));
        assert_eq!(
            a.iter().map(Migration::checksum).collect::<Vec<_>>(),
            b.iter().map(Migration::checksum).collect::<Vec<_>>()
        );
        let m = migrations(SchemaProfile::Modern, &opts(None, None));
        assert_ne!(a[0].checksum(), m[0].checksum());
        assert_eq!(a.iter().map(|m| m.version).collect::<Vec<_>>(), (1..=16).chain([18]).collect::<Vec<u32>>());
    }

    /// The checksums of migrations 1–4 as released: a database migrated by an earlier build
    /// refuses to start (`MigrationChanged`) if any of their texts changes.
    #[test]
    fn released_migrations_keep_their_checksums() {
        let released = [
            (SchemaProfile::Legacy, None, "ff6b542e589fd05e38a474da090bba4aa5dcb2c8bf5ab9d4667a907ecca2e2a7"),
            (SchemaProfile::Legacy, None, "60a18d3ef8c5350d985d71eafa12c4a13fa83f6f3bd007a1e2dbabd7b1893d92"),
            (SchemaProfile::Legacy, None, "9acf3e8daaa6b21acdb2a0f6eea896dafe2bfa4b969aa1f626c228cc0481f0e5"),
            (SchemaProfile::Legacy, None, "af4e1c7a803113c662febcbf6e44625778bf9d646eee77f6a2a24cdf3dfd471d"),
            (SchemaProfile::Legacy, Some("c1"), "ecd4acd65b66bd5691786f54fafc6a6f0a66b4b83edc3279267b30d6db47fe12"),
            (SchemaProfile::Legacy, Some("c1"), "f50ba10475f7f2df5b522b55814e23e8c703800573cdee639082cb9de7b31af6"),
            (SchemaProfile::Legacy, Some("c1"), "eae748875258318b4962e324f861c90ecb196097b3f47c3963f234c1c12d8e28"),
            (SchemaProfile::Legacy, Some("c1"), "d246e3f1055e5da1bb8490dc18a02a552f1974bfd77b5284e8ce9744fee99767"),
            (SchemaProfile::Modern, None, "1bdb1f0ff78153f4b0de8c6bd067bfd1358617152e0ce8618899d7b0d174b2e8"),
            (SchemaProfile::Modern, None, "6cbe1ab2aa7c02bd003aea8d0671e8ac9f493799845da81acf7203e3a336cea4"),
            (SchemaProfile::Modern, None, "06b8dee36252796d136d81dabd523dd10e9b064319ed20095b720272b181776b"),
            (SchemaProfile::Modern, None, "e115292811c52386b8cde7247df1eb386be3a5cf11f4688f06b94f294e57dff8"),
            (SchemaProfile::Modern, Some("c1"), "cc1e003d36ee4015f4e5f02aea5d68b032d06f1b024a6d500b2e06610a5dd11c"),
            (SchemaProfile::Modern, Some("c1"), "82275196c040bf5ed913d9a07d642aba78c6ae699ec6c90d47770072235cd198"),
            (SchemaProfile::Modern, Some("c1"), "3bb0b76105ba81d02b74c845c58404705e71c24183a0e8c7aa5688e4dbeb4b95"),
            (SchemaProfile::Modern, Some("c1"), "aebe7dcf589ee5f7435e22a9b096b955b3f5b5918fe71e83f3da230a4b61ec78"),
        ];
        for (i, (profile, cluster, checksum)) in released.iter().enumerate() {
            let o =
                SchemaOptions { database: "gatelog".into(), cluster: cluster.map(Into::into), retention_days: None };
            let m = &migrations(*profile, &o)[i % 4];
            assert_eq!(&m.checksum(), checksum, "{profile} {cluster:?} migration {}", m.version);
        }
    }
}
