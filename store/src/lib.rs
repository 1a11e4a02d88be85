//! gatelog's store of record: ClickHouse schema, migrations, the exactly-once batch writer,
//! the read side (typed queries that return their rows with an IPE record), and a launcher
//! for a private `clickhouse-server`.
//!
//! Module map:
//! - [`config`]: [`ClickHouseConfig`], the `[clickhouse]` section of `gatelog.toml` (serde,
//!   `deny_unknown_fields`, `validate()`), which builds the runtime [`StoreConfig`] and
//!   [`RetryPolicy`]; the login taken out of `clickhouse.url`.
//! - [`profile`]: [`SchemaProfile`] (`Legacy` for 18.16 ≤ server < 20.5, `Modern` after) and
//!   [`ServerVersion`].
//! - `schema`: the data tables (`decisions`, `raw_records`, `dead_letters`,
//!   `ingest_batches`, `access_log`) as data, rendered per profile (one source for DDL,
//!   insert column lists and the encoder).
//! - [`sql`]: every statement the store emits ([`sql::statements`], [`sql::render_dump`] for
//!   `gatelog sql dump`) and the versioned [`sql::migrations`].
//! - `migrate`: [`Store::migrate`], recorded in `schema_migrations` with checksums.
//! - `order`: rows pre-sorted by each table's sorting key, so the server skips its sort.
//! - `rowbinary`: the allocation-free RowBinary encoder for both profiles.
//! - `writer`: [`Store::write_batch`] with [`WriteBatch`] / [`WriteOutcome`]; `frames`
//!   streams an `INSERT`'s frames, LZ4-compressing on blocking threads when enabled.
//! - `store`: [`Store`] (connect, profile choice, existing batches, request bounds, retries).
//! - [`read`]: the read side: [`read::Reader`] runs the named queries of [`read::Catalog`]
//!   (each event `(tenant, event_id)` once, as the copy `FINAL` keeps) and returns rows with
//!   a [`gatelog_model::IpeRecord`]; reconciliation, coverage and gaps, principal history,
//!   and [`Store::summary`].
//! - `scan`: [`Store::decision_days`] and [`Store::scan_day`], every decision read back a
//!   day at a time ([`DecisionScan`]), for rebuilding the index from ClickHouse.
//! - [`retention`]: [`Store::expire`] drops wholly expired months of decisions, raw records
//!   and dead letters (both profiles); [`retention::run_retention`] runs it hourly in `serve`.
//! - [`sink`]: [`sink::run_clickhouse_sink`], the spool → ClickHouse consumer of `gatelog serve`.
//! - [`detection`]: findings, detector runs, alerts and alert events written and read;
//!   history (decisions, arrivals) for the detectors' warm-up. Their SQL: [`sql::detection`].
//! - [`access_log`]: gatelog's own audit trail (who read the evidence) read back
//!   ([`Store::access_log`]); the sink writes it with the other tables.
//! - [`chain`]: the hash chain over stored batches: links on the markers and the row ledger
//!   (`batch_rows`) written with each batch, checkpoints, [`Store::verify_chain`].
//! - [`deliveries`]: the e-mail outbox's `alert_deliveries` (every attempt, written and read)
//!   and what the mailer reads to decide what to send. Their SQL: [`sql::deliveries`].
//! - [`durability`]: [`durability::Durability`], what the sink waits for before it lets the
//!   spool forget records (`syncfs` of a managed server's data dir).
//! - [`error`]: [`StoreError`], classified retryable vs fatal.
//! - [`managed`]: [`managed::ManagedClickHouse`], a `clickhouse-server` under a data dir.
//! - `testing` (feature `testing`): [`testing::TestClickHouse`], one server and one database
//!   per test, for this and other crates' tests.
//!
//! Exactly-once: a batch's rows carry its `batch_id`; the `ingest_batches` row is written
//! last and is the commit marker. A write first looks for the marker (done: nothing to do),
//! then probes by primary key for rows of an interrupted attempt and deletes them (waiting
//! for the mutation) before inserting. Each `INSERT` is one part; by default a batch's table
//! goes in one `INSERT` of up to 1M rows / 1 GiB, which measured cheapest on 18.16.
//!
//! Compatibility notes (18.16): the `clickhouse` client runs with validation off (RowBinary;
//! 18.16 has no `RowBinaryWithNamesAndTypes`), queries use `query_raw` with literals escaped
//! here (18.16 has no server-side parameters), and errors come back as HTTP 500 with
//! `Code: N, e.displayText() = …` in the body, which [`StoreError`] parses.

pub mod access_log;
pub mod canary;
pub mod chain;
pub mod config;
pub mod config_versions;
pub mod deliveries;
pub mod detection;
pub mod durability;
pub mod error;
mod frames;
pub mod managed;
mod migrate;
mod order;
pub mod profile;
pub mod raw;
pub mod read;
pub mod retention;
pub mod reviews;
mod rowbinary;
mod scan;
mod schema;
pub mod sink;
pub mod sql;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod writer;

pub use config::{ClickHouseConfig, InsertCompression, RetryPolicy, StoreConfig};
pub use error::{FailureKind, StoreError};
pub use migrate::MigrationReport;
pub use profile::{SchemaProfile, ServerVersion};
pub use read::{DecisionCount, StoreSummary};
pub use scan::DecisionScan;
pub use store::Store;
#[cfg(feature = "testing")]
pub use store::Uniqueness;
pub use writer::{PartialCheck, WriteBatch, WriteOutcome};
