//! DDL: the bootstrap (database, `schema_migrations`), the versioned migrations and retention.

use super::SchemaOptions;
use crate::profile::SchemaProfile;
use crate::schema::{Engine, TABLES, TableDef};

/// One versioned migration: statements applied in order, recorded with a checksum of their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub statements: Vec<String>,
}

impl Migration {
    /// SHA-256 (hex) of the statements joined by `;\n`: what `schema_migrations.checksum` holds.
    pub fn checksum(&self) -> String {
        gatelog_model::sha256_hex(self.statements.join(";\n").as_bytes())
    }
}

fn on_cluster(opts: &SchemaOptions) -> String {
    opts.cluster.as_deref().map(|c| format!(" ON CLUSTER {c}")).unwrap_or_default()
}

/// The name data is physically stored under: `<table>_local` in cluster mode.
pub(crate) fn storage_table(opts: &SchemaOptions, table: &str) -> String {
    if opts.cluster.is_some() { format!("{table}_local") } else { table.to_owned() }
}

pub(crate) fn create_database(opts: &SchemaOptions) -> String {
    format!("CREATE DATABASE IF NOT EXISTS {}{}", opts.database, on_cluster(opts))
}

/// `schema_migrations` is the same in both profiles (a profile change must not change it).
/// In cluster mode it is one replicated table shared by every node (no `{shard}` in its path).
pub(crate) fn create_schema_migrations(opts: &SchemaOptions) -> String {
    let db = &opts.database;
    let engine = match opts.cluster {
        Some(_) => format!("ReplicatedReplacingMergeTree('/clickhouse/tables/{db}/schema_migrations', '{{replica}}')"),
        None => "ReplacingMergeTree".to_owned(),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.schema_migrations{}\n(\n    version UInt32,\n    name String,\n    checksum String,\n    profile String,\n    applied_at DateTime('UTC') DEFAULT now()\n)\nENGINE = {engine}\nORDER BY version",
        on_cluster(opts)
    )
}

fn create_table(def: &TableDef, profile: SchemaProfile, opts: &SchemaOptions) -> Vec<String> {
    let db = &opts.database;
    let local = storage_table(opts, def.name);
    let base = match def.engine {
        Engine::MergeTree => "MergeTree",
        Engine::ReplacingMergeTree => "ReplacingMergeTree",
    };
    let engine = match opts.cluster {
        Some(_) => {
            format!("Replicated{base}('/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}')")
        }
        None => base.to_owned(),
    };
    let columns = def.column_ddl(profile).join(",\n    ");
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS {db}.{local}{}\n(\n    {columns}\n)\nENGINE = {engine}\nPARTITION BY toYYYYMM({})\nORDER BY ({})\nSETTINGS index_granularity = 8192",
        on_cluster(opts),
        def.partition_by,
        def.order_by,
    )];
    if let Some(cluster) = &opts.cluster {
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {db}.{}{} AS {db}.{local}\nENGINE = Distributed({cluster}, {db}, {local}, {})",
            def.name,
            on_cluster(opts),
            def.shard_key
        ));
    }
    out
}

/// The versioned migrations, oldest first. Never edit an entry once released: append.
pub fn migrations(profile: SchemaProfile, opts: &SchemaOptions) -> Vec<Migration> {
    let names = ["create_decisions", "create_raw_records", "create_dead_letters", "create_ingest_batches"];
    TABLES
        .iter()
        .zip(names)
        .zip(1u32..)
        .map(|((def, name), version)| Migration { version, name, statements: create_table(def, profile, opts) })
        .collect()
}

/// `ALTER TABLE … MODIFY TTL` per table with retention, for the modern profile with
/// `retention_days` set. Not a migration: the retention is configuration and may change.
pub(crate) fn retention(profile: SchemaProfile, opts: &SchemaOptions) -> Vec<(&'static str, String, String)> {
    let Some(days) = opts.retention_days else {
        return Vec::new();
    };
    if profile == SchemaProfile::Legacy {
        return Vec::new();
    }
    TABLES
        .iter()
        .filter(|d| d.retention)
        .map(|d| {
            let expr = ttl_expression(d.partition_by, days);
            let sql = format!(
                "ALTER TABLE {}.{}{} MODIFY TTL {expr}",
                opts.database,
                storage_table(opts, d.name),
                on_cluster(opts)
            );
            (d.name, sql, expr)
        })
        .collect()
}

fn ttl_expression(column: &str, days: u32) -> String {
    format!("toDateTime({column}) + toIntervalDay({days})")
}
