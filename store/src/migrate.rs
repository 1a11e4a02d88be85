//! Versioned, idempotent migrations recorded in `schema_migrations`. A migration that moves
//! a table to a new key ([`crate::sql::Rekey`]) looks at what an interrupted earlier attempt
//! left (which tables exist, which key `decisions` has) and runs only the steps still to do.

use crate::rowbinary::RowEncoder;
use crate::sql::{Lit, Rekey, create_database, create_schema_migrations, migrations, render, retention, storage_table};
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
            match &m.rekey {
                Some(plan) => self.rekey(&label, plan).await?,
                None => {
                    for sql in &m.statements {
                        self.execute("CREATE TABLE", &format!("migration {label}"), sql).await?;
                    }
                }
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

impl Store {
    /// `engine_full` of a table of gatelog's database; `None` when it does not exist.
    async fn engine_of(&self, table: &str) -> Result<Option<String>, StoreError> {
        let db = self.inner.options.database.as_str();
        let sql = render(&self.inner.queries.table_engine, &[Lit::Str(db), Lit::Str(table)]);
        let rows: Vec<String> = self.fetch_all("SELECT", "system.tables", &sql).await?;
        Ok(rows.into_iter().next())
    }

    /// Runs the steps of `plan` that are still to do, judging by what exists (an earlier attempt
    /// may have stopped anywhere, and another process may be migrating at the same moment: a
    /// step that fails because the other did it first is followed by a fresh look).
    async fn rekey(&self, label: &str, plan: &Rekey) -> Result<(), StoreError> {
        let what = format!("migration {label}");
        let keyed = |engine: &str| engine.contains(&format!("ORDER BY {}", plan.new_key));
        let mut last_error = None;
        for _ in 0..REKEY_LOOKS {
            let current = self.engine_of(&plan.table).await?;
            let step = match current {
                Some(engine) if keyed(&engine) => break,
                Some(_) => match self.execute("MIGRATE", &what, &plan.create).await {
                    Ok(()) => self.execute("MIGRATE", &what, &plan.retire).await,
                    Err(e) => Err(e),
                },
                // Between the two renames (stopped there, or another process is).
                None if self.engine_of(&plan.new_table).await?.is_some() => {
                    self.execute("MIGRATE", &what, &plan.promote).await
                }
                None if self.engine_of(&plan.old_table).await?.is_some() => {
                    self.execute("MIGRATE", &what, &plan.create).await
                }
                None => {
                    return Err(StoreError::InvalidConfig(format!(
                        "{what}: table {}.{} is missing, and neither {} nor {} is there to take its place",
                        self.inner.options.database, plan.table, plan.new_table, plan.old_table
                    )));
                }
            };
            if let Err(e) = step {
                tracing::debug!(migration = %label, error = %e, "migration step failed; looking again");
                last_error = Some(e);
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        match self.engine_of(&plan.table).await? {
            Some(engine) if keyed(&engine) => {}
            _ => return Err(last_error.unwrap_or_else(|| StoreError::InvalidConfig(format!("{what}: did not finish")))),
        }
        if self.engine_of(&plan.old_table).await?.is_some() {
            let started = std::time::Instant::now();
            tracing::info!(migration = %label, from = %plan.old_table, to = %plan.table,
                "copying the rows to the table's new key (once; the old table goes afterwards)");
            // As long as it takes: a timeout would only start the copy again.
            let copy = self.inner.client.query_raw(&plan.copy).execute().await;
            match copy.map_err(|e| StoreError::from_clickhouse("MIGRATE", &what, e)) {
                Ok(()) => tracing::info!(migration = %label, seconds = started.elapsed().as_secs_f64(), "rows copied"),
                // Another process copied them and dropped the old table meanwhile.
                Err(_) if self.engine_of(&plan.old_table).await?.is_none() => {}
                Err(e) => return Err(e),
            }
        }
        self.execute("MIGRATE", &what, &plan.cleanup).await
    }
}

/// How many times a rekey looks at the tables and takes one step: four steps, and a few
/// retries when another process takes the same step at the same moment.
const REKEY_LOOKS: usize = 12;
