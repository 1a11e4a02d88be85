//! Versioned, idempotent migrations recorded in `schema_migrations`.

use crate::rowbinary::RowEncoder;
use crate::sql::{Lit, create_database, create_schema_migrations, migrations, render, retention, storage_table};
use crate::store::with_retries;
use crate::{Store, StoreError};
use std::collections::BTreeMap;

/// What [`Store::migrate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// `NNNN_name` of the migrations applied now.
    pub applied: Vec<String>,
    /// How many were already applied (checksums verified).
    pub already_applied: usize,
    /// Tables whose TTL was set now (modern profile with `retention_days`).
    pub retention_set: Vec<String>,
}

#[derive(Debug, Clone, clickhouse::Row, serde::Deserialize)]
struct AppliedRow {
    version: u32,
    name: String,
    checksum: String,
    profile: String,
}

impl Store {
    /// Creates the database and tables, applying each migration not yet recorded in
    /// `schema_migrations`. Re-running applies nothing; an applied migration whose statements
    /// changed is an error ([`StoreError::MigrationChanged`]). Safe to run from several
    /// processes at once (every statement is `IF NOT EXISTS`; duplicate records collapse).
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        with_retries(&self.inner.config, "migrate", || self.migrate_once()).await
    }

    async fn migrate_once(&self) -> Result<MigrationReport, StoreError> {
        let opts = &self.inner.options;
        let profile = self.profile();
        let db = opts.database.as_str();
        self.execute("CREATE DATABASE", db, &create_database(opts)).await?;
        let migrations_table = self.qualified("schema_migrations");
        self.execute("CREATE TABLE", &migrations_table, &create_schema_migrations(opts)).await?;

        let rows: Vec<AppliedRow> =
            self.fetch_all("SELECT", &migrations_table, &self.inner.queries.applied_migrations).await?;
        let applied: BTreeMap<u32, AppliedRow> = rows.into_iter().map(|r| (r.version, r)).collect();

        let mut report = MigrationReport::default();
        for m in migrations(profile, opts) {
            let checksum = m.checksum();
            let label = format!("{:04}_{}", m.version, m.name);
            if let Some(done) = applied.get(&m.version) {
                if done.checksum != checksum {
                    return Err(StoreError::MigrationChanged {
                        version: m.version,
                        name: format!("{} (applied as {}, profile {})", m.name, done.name, done.profile),
                        applied: done.checksum.clone(),
                        expected: checksum,
                    });
                }
                report.already_applied += 1;
                continue;
            }
            for sql in &m.statements {
                self.execute("CREATE TABLE", &format!("migration {label}"), sql).await?;
            }
            let mut enc = RowEncoder::new(profile, 256);
            enc.migration(m.version, m.name, &checksum, profile.as_str());
            self.insert_bytes(&self.inner.queries.insert_migration, &migrations_table, enc.take()).await?;
            tracing::info!(migration = %label, profile = %profile, database = %db, "migration applied");
            report.applied.push(label);
        }

        for (table, sql, expr) in retention(profile, opts) {
            let local = storage_table(opts, table);
            let engine: Vec<String> = self
                .fetch_all(
                    "SELECT",
                    "system.tables",
                    &render(&self.inner.queries.table_engine, &[Lit::Str(db), Lit::Str(&local)]),
                )
                .await?;
            let current = engine.into_iter().next().unwrap_or_default();
            if !current.contains(&format!("TTL {expr}")) {
                self.execute("ALTER TABLE MODIFY TTL", &self.qualified(&local), &sql).await?;
                tracing::info!(table = %local, ttl = %expr, "retention set");
                report.retention_set.push(local);
            }
        }
        Ok(report)
    }
}
