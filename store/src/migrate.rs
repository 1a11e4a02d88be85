//! Versioned, idempotent migrations recorded in `schema_migrations`. A migration that moves
//! a table to a new key ([`crate::sql::Rekey`]) looks at what an interrupted earlier attempt
//! left (which tables exist, which key `decisions` has) and runs only the steps still to do.

use crate::rowbinary::RowEncoder;
use crate::sql::{
    Lit, REKEY_LOOKS, Rekey, RekeySeen, RekeyStep, create_database, create_schema_migrations, migrations, render,
    retained_tables, retention, storage_table,
};
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

/// `(db.table, column)` of an `ALTER TABLE db.table[ ON CLUSTER c] ADD COLUMN column …`:
/// 18.16 has no `ADD COLUMN IF NOT EXISTS`, so the runner looks first.
fn added_column(sql: &str) -> Option<(&str, &str)> {
    let rest = sql.strip_prefix("ALTER TABLE ")?;
    let table = rest.split(' ').next()?;
    let (_, after) = rest.split_once(" ADD COLUMN ")?;
    Some((table, after.split(' ').next()?))
}

#[derive(Debug, Clone, clickhouse::Row, serde::Deserialize)]
struct AppliedRow {
    version: u32,
    name: String,
    checksum: String,
    profile: String,
}

impl Store {
    /// Whether `qualified` (`db.table`) has `column`.
    async fn has_column(&self, qualified: &str, column: &str) -> Result<bool, StoreError> {
        let (db, table) = qualified.split_once('.').unwrap_or(("", qualified));
        let sql = render(&self.inner.queries.has_column, &[Lit::Str(db), Lit::Str(table), Lit::Str(column)]);
        let n: u64 = self.fetch_one("SELECT", "system.columns", &sql).await?;
        Ok(n > 0)
    }

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
                        let added = added_column(sql);
                        if let Some((table, column)) = added
                            && self.has_column(table, column).await?
                        {
                            continue; // an interrupted run added it
                        }
                        if let Err(e) = self.execute("CREATE TABLE", &format!("migration {label}"), sql).await {
                            // A concurrent run may have added it between the look and the ALTER.
                            let raced = match added {
                                Some((table, column)) => self.has_column(table, column).await?,
                                None => false,
                            };
                            if !raced {
                                return Err(e);
                            }
                        }
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
        if opts.retention_days.is_none() && profile == crate::SchemaProfile::Modern {
            for def in retained_tables() {
                let local = storage_table(opts, def.name);
                if let Some(engine) = self.engine_of(&local).await?
                    && engine.contains(" TTL ")
                {
                    // Removing a TTL needs a newer server than the profile does; say what to do.
                    tracing::warn!(table = %local, engine = %engine,
                        "retention is not set, but the table keeps the TTL an earlier retention set: \
                         ClickHouse goes on deleting by it; set retention to the period you want, or run \
                         ALTER TABLE ... REMOVE TTL");
                }
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

    /// What exists of `plan`'s tables.
    async fn rekey_seen(&self, plan: &Rekey) -> Result<RekeySeen, StoreError> {
        Ok(RekeySeen {
            table: self.engine_of(&plan.table).await?,
            new_table: self.engine_of(&plan.new_table).await?.is_some(),
            old_table: self.engine_of(&plan.old_table).await?.is_some(),
        })
    }

    /// Takes the steps of `plan` that are still to do ([`Rekey::next_step`]), looking at the
    /// tables before each: an earlier attempt may have stopped anywhere, and another process
    /// may be migrating at the same moment (a step that fails because the other did it first
    /// is followed by a fresh look).
    async fn rekey(&self, label: &str, plan: &Rekey) -> Result<(), StoreError> {
        let what = format!("migration {label}");
        let mut last_error = None;
        for _ in 0..REKEY_LOOKS {
            // 18.16 can fail a look at `system.tables` while another process renames a
            // table under it (seen once with two stores migrating at once): look again.
            let seen = match self.rekey_seen(plan).await {
                Ok(seen) => seen,
                Err(e) => {
                    tracing::debug!(migration = %label, error = %e, "looking at the tables failed; looking again");
                    last_error = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            let step = plan.next_step(&seen).map_err(|e| {
                StoreError::InvalidConfig(format!("{what}: in database {}: {e}", self.inner.options.database))
            })?;
            tracing::debug!(migration = %label, ?seen, ?step, "rekey step");
            let result = match step {
                RekeyStep::Done => return Ok(()),
                RekeyStep::CopyAndCleanup => match self.rekey_copy(label, &what, plan).await {
                    Ok(()) => self.execute("MIGRATE", &what, &plan.cleanup).await,
                    // Another process copied the rows and dropped the old table meanwhile:
                    // the next look says so.
                    Err(_) if self.engine_of(&plan.old_table).await?.is_none() => Ok(()),
                    Err(e) => return Err(e),
                },
                step => {
                    let mut result = Ok(());
                    for sql in plan.statements_of(step) {
                        result = self.execute("MIGRATE", &what, sql).await;
                        if result.is_err() {
                            break;
                        }
                    }
                    result
                }
            };
            if let Err(e) = result {
                tracing::debug!(migration = %label, error = %e, "migration step failed; looking again");
                last_error = Some(e);
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        Err(last_error
            .unwrap_or_else(|| StoreError::InvalidConfig(format!("{what}: did not finish in {REKEY_LOOKS} steps"))))
    }

    /// Copies the old rows into the rekeyed table, once, as long as it takes (a timeout
    /// would only start the copy again).
    async fn rekey_copy(&self, label: &str, what: &str, plan: &Rekey) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        tracing::info!(migration = %label, from = %plan.old_table, to = %plan.table,
            "copying the rows to the table's new key (once; the old table goes afterwards)");
        let copy = self.inner.client.query_raw(&plan.copy).execute().await;
        copy.map_err(|e| StoreError::from_clickhouse("MIGRATE", what, e))?;
        tracing::info!(migration = %label, seconds = started.elapsed().as_secs_f64(), "rows copied");
        Ok(())
    }
}
