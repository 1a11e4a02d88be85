//! DDL: the bootstrap (database, `schema_migrations`), the versioned migrations and retention.

use super::SchemaOptions;
use super::rekey::Rekey;
use crate::profile::SchemaProfile;
use crate::schema::{
    ACCESS_LOG, BATCH_ROWS, CHAIN_CHECKPOINTS, CHAIN_COLS, DECISIONS, DECISIONS_BY_TIME, DECISIONS_V1, Engine,
    INGEST_BATCHES, INGEST_BATCHES_V1, RAW_BATCHES, TABLES, TableDef,
};

/// One versioned migration: statements applied in order, recorded with a checksum of their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub statements: Vec<String>,
    /// A migration that moves a table to a new definition; its `statements` are this plan's,
    /// and the runner picks the ones a half-finished earlier attempt still needs.
    pub(crate) rekey: Option<Rekey>,
}

impl Migration {
    /// The plan of a migration that moves a table to a new key ([`Rekey`]), whose runner
    /// picks the steps still to do ([`Rekey::next_step`]) rather than running every statement.
    pub fn rekey(&self) -> Option<&Rekey> {
        self.rekey.as_ref()
    }

    /// SHA-256 (hex) of the statements joined by `;\n`: what `schema_migrations.checksum` holds.
    pub fn checksum(&self) -> String {
        gatelog_model::sha256_hex(self.statements.join(";\n").as_bytes())
    }
}

pub(crate) fn on_cluster(opts: &SchemaOptions) -> String {
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
    let local = storage_table(opts, def.name);
    let mut out = vec![create_storage_table(def, &local, profile, opts)];
    if let Some(cluster) = &opts.cluster {
        let db = &opts.database;
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {db}.{}{} AS {db}.{local}\nENGINE = Distributed({cluster}, {db}, {local}, {})",
            def.name,
            on_cluster(opts),
            def.shard_key
        ));
    }
    out
}

/// `CREATE TABLE` of `def`'s storage table, named `local`.
fn create_storage_table(def: &TableDef, local: &str, profile: SchemaProfile, opts: &SchemaOptions) -> String {
    let db = &opts.database;
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
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{local}{}\n(\n    {columns}\n)\nENGINE = {engine}\nPARTITION BY toYYYYMM({})\nORDER BY ({})\nSETTINGS index_granularity = 8192",
        on_cluster(opts),
        def.partition_by,
        def.order_by,
    )
}

/// The versioned migrations, oldest first. Never edit an entry once released: append.
pub fn migrations(profile: SchemaProfile, opts: &SchemaOptions) -> Vec<Migration> {
    // Migration 1 created `decisions` with the key it had then.
    let created = [&DECISIONS_V1, TABLES[1], TABLES[2], &INGEST_BATCHES_V1];
    let names = ["create_decisions", "create_raw_records", "create_dead_letters", "create_ingest_batches"];
    let mut out: Vec<Migration> = created
        .iter()
        .zip(names)
        .zip(1u32..)
        .map(|((def, name), version)| Migration {
            version,
            name,
            statements: create_table(def, profile, opts),
            rekey: None,
        })
        .collect();
    let rekey = rekey(&DECISIONS, profile, opts);
    out.push(Migration {
        version: 5,
        name: "decisions_keyed_by_event_id",
        statements: rekey.statements(),
        rekey: Some(rekey),
    });
    // Detection (findings, runs, alerts, their lifecycle): the same types in both profiles.
    let names = ["create_findings", "create_detector_runs", "create_alerts", "create_alert_events"];
    for ((table, name), version) in super::detection::DETECTION_TABLES.iter().zip(names).zip(6u32..) {
        out.push(Migration { version, name, statements: super::detection::create_plain(table, opts), rekey: None });
    }
    // The outbox of e-mails to on-call: every delivery attempt (gatelog-notify).
    out.push(Migration {
        version: 10,
        name: "create_alert_deliveries",
        statements: super::detection::create_plain(&super::deliveries::ALERT_DELIVERIES, opts),
        rekey: None,
    });
    // gatelog's own audit trail (who read the evidence), beside `decisions`.
    out.push(Migration {
        version: 11,
        name: "create_access_log",
        statements: create_table(&ACCESS_LOG, profile, opts),
        rekey: None,
    });
    // The canaries' runs: the evidence that monitoring operated (gatelog serve).
    out.push(Migration {
        version: 12,
        name: "create_canary_runs",
        statements: super::detection::create_plain(&super::canary::CANARY_RUNS, opts),
        rekey: None,
    });
    // The hash chain over stored batches: links on the markers, the row ledger, checkpoints.
    out.push(Migration { version: 13, name: "chain", statements: chain(profile, opts), rekey: None });
    // Completed access review sheets (`gatelog review import`, CC6.3).
    out.push(Migration {
        version: 14,
        name: "create_access_reviews",
        statements: super::detection::create_plain(&super::reviews::ACCESS_REVIEWS, opts),
        rekey: None,
    });
    // Versions of rule, Sigma and policy files as serve found them: change evidence (CC8.1).
    out.push(Migration {
        version: 15,
        name: "create_config_versions",
        statements: super::detection::create_plain(&super::config_versions::CONFIG_VERSIONS, opts),
        rekey: None,
    });
    // The overview's time-ordered companion of `decisions`, fed by a materialized view.
    out.push(Migration {
        version: 16,
        name: "decisions_by_time",
        statements: decisions_by_time(profile, opts),
        rekey: None,
    });
    // (16 is the overview's; 17 is unused.) Each batch's body once, instead of a
    // `raw_records` row per line; `raw_records` stays, read for batches stored before.
    out.push(Migration {
        version: 18,
        name: "create_raw_batches",
        statements: create_table(&RAW_BATCHES, profile, opts),
        rekey: None,
    });
    out
}

/// Migration 16: `decisions_by_time` (and its `Distributed` table in cluster mode), the
/// materialized view that copies each insert into `decisions` to it (on every node, from the
/// storage table the writer's rows land in), then the rows stored before the view existed.
///
/// The view is created before the copy, so no row is missed; a row inserted in between is in
/// the table twice, as is every row if an interrupted migration runs the copy again: readers
/// group by `(tenant, event_id)`, so copies never count twice. The copy reads the narrow
/// columns of `decisions`: 1.3 s per million rows on a 2-core machine with 18.16 (10M rows in
/// 13 s; 12 s per million while the machine ran other builds and tests; `./x bench-overview`
/// prints it), during which `migrate` waits.
fn decisions_by_time(profile: SchemaProfile, opts: &SchemaOptions) -> Vec<String> {
    let db = &opts.database;
    let on = on_cluster(opts);
    let columns = DECISIONS_BY_TIME.insert_columns(profile).join(", ");
    let source = storage_table(opts, DECISIONS.name);
    let target = storage_table(opts, DECISIONS_BY_TIME.name);
    let mut out = create_table(&DECISIONS_BY_TIME, profile, opts);
    out.push(format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{}_mv{on} TO {db}.{target}\nAS SELECT {columns}\nFROM {db}.{source}",
        DECISIONS_BY_TIME.name
    ));
    // On a cluster the rows go through the Distributed table, whose sharding key is the one
    // of `decisions`: each row lands on the shard its event is on.
    let (into, from) = match &opts.cluster {
        Some(cluster) => (format!("{db}.{}", DECISIONS_BY_TIME.name), format!("cluster('{cluster}', {db}, {source})")),
        None => (format!("{db}.{target}"), format!("{db}.{source}")),
    };
    out.push(format!("INSERT INTO {into} ({columns})\nSELECT {columns}\nFROM {from}"));
    out
}

/// Migration 13: the link columns on `ingest_batches`, one `ADD COLUMN` each (18.16 has no
/// `IF NOT EXISTS` for columns: the runner skips a column that exists, so a rerun after an
/// interrupted attempt is harmless; existing markers get `chain_seq = 0`: stored before the
/// chain started), then `batch_rows` and `chain_checkpoints`.
fn chain(profile: SchemaProfile, opts: &SchemaOptions) -> Vec<String> {
    let db = &opts.database;
    let columns: Vec<String> = INGEST_BATCHES
        .column_ddl(profile)
        .into_iter()
        .filter(|c| CHAIN_COLS.iter().any(|k| c.split(' ').next() == Some(k.name)))
        .collect();
    let mut tables = vec![storage_table(opts, INGEST_BATCHES.name)];
    if opts.cluster.is_some() {
        // The Distributed table's own column list too.
        tables.push(INGEST_BATCHES.name.to_owned());
    }
    let mut out: Vec<String> = Vec::new();
    for t in &tables {
        for c in &columns {
            out.push(format!("ALTER TABLE {db}.{t}{} ADD COLUMN {c}", on_cluster(opts)));
        }
    }
    out.extend(create_table(&BATCH_ROWS, profile, opts));
    out.extend(create_table(&CHAIN_CHECKPOINTS, profile, opts));
    out
}

/// The plan that moves `def`'s rows from its migration-1 key to `def.order_by`.
fn rekey(def: &TableDef, profile: SchemaProfile, opts: &SchemaOptions) -> Rekey {
    let db = &opts.database;
    let suffix = if opts.cluster.is_some() { "_local" } else { "" };
    let table = storage_table(opts, def.name);
    let new_table = format!("{}_rekeyed{suffix}", def.name);
    let old_table = format!("{}_before_rekey{suffix}", def.name);
    let on = on_cluster(opts);
    let columns = def.insert_columns(profile).join(", ");
    // On a cluster the old rows go through the Distributed table, which routes them to the
    // shard they were on (the same sharding key), from every shard's old table.
    let (into, from) = match &opts.cluster {
        Some(cluster) => (format!("{db}.{}", def.name), format!("cluster('{cluster}', {db}, {old_table})")),
        None => (format!("{db}.{table}"), format!("{db}.{old_table}")),
    };
    Rekey {
        new_key: format!("({})", def.order_by),
        create: create_storage_table(def, &new_table, profile, opts),
        retire: format!("RENAME TABLE {db}.{table} TO {db}.{old_table}{on}"),
        promote: format!("RENAME TABLE {db}.{new_table} TO {db}.{table}{on}"),
        copy: format!("INSERT INTO {into} ({columns}) SELECT {columns} FROM {from}"),
        cleanup: format!("DROP TABLE IF EXISTS {db}.{old_table}{on}"),
        table,
        new_table,
        old_table,
    }
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

/// The tables retention applies to: `decisions`, `raw_records`, `dead_letters`,
/// `access_log`, `decisions_by_time` and `raw_batches` (not `ingest_batches`, the ledger of arrivals, nor detection's tables: see
/// README.md).
pub(crate) fn retained_tables() -> impl Iterator<Item = &'static TableDef> {
    let tables: &'static [&'static TableDef] = &TABLES;
    tables.iter().copied().filter(|d| d.retention)
}

/// The months (`toYYYYMM` of the partition column, which is the partition id) of `def`
/// that lie wholly before the month of the `?` instant (epoch seconds): what retention may
/// drop. Read through the `Distributed` table in cluster mode, so every shard's rows count.
pub(crate) fn expired_months(def: &TableDef, opts: &SchemaOptions) -> String {
    let col = def.partition_by;
    format!(
        "SELECT DISTINCT toUInt32(toYYYYMM({col})) AS month FROM {}.{} WHERE toYYYYMM({col}) < toYYYYMM(toDateTime(?, 'UTC')) ORDER BY month",
        opts.database, def.name
    )
}

/// Drops one month partition of `def`'s storage table (on every node in cluster mode). A
/// month without rows is no error on 18.16 and 26.9.
pub(crate) fn drop_partition(def: &TableDef, opts: &SchemaOptions, month: u32) -> String {
    format!(
        "ALTER TABLE {}.{}{} DROP PARTITION {month}",
        opts.database,
        storage_table(opts, def.name),
        on_cluster(opts)
    )
}

fn ttl_expression(column: &str, days: u32) -> String {
    format!("toDateTime({column}) + toIntervalDay({days})")
}
