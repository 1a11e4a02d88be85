//! Test support (feature `testing`): [`TestClickHouse`], a managed `clickhouse-server` in a
//! temporary directory with a fresh database name, for this and other crates' tests.
//!
//! ```no_run
//! # async fn t() -> Result<(), Box<dyn std::error::Error>> {
//! let mut ch = gatelog_store::testing::TestClickHouse::start().await?;
//! let store = ch.store().await?; // connected and migrated, in `gatelog_test_<random>`
//! // … write and query …
//! ch.stop().await?;
//! # Ok(()) }
//! ```

use crate::managed::{ManagedClickHouse, ManagedError, ManagedOptions};
use crate::{RetryPolicy, Store, StoreConfig, StoreError};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The Python interpreter that imports `chdb` (ClickHouse 26.9 in-process), for the checks
/// that every SQL gatelog emits also runs on new servers: `$GATELOG_CHDB_PYTHON`, else
/// `python3` or `python` if it has chdb. `Ok(None)` when there is none and
/// `GATELOG_SKIP_CHDB=1` says to skip; an error saying how to get one otherwise.
pub fn chdb_python() -> Result<Option<String>, String> {
    let candidates: Vec<String> = match std::env::var("GATELOG_CHDB_PYTHON") {
        Ok(p) if !p.is_empty() => vec![p],
        _ => vec!["python3".into(), "python".into()],
    };
    let found = candidates.into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import chdb"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    match found {
        Some(python) => Ok(Some(python)),
        None if std::env::var("GATELOG_SKIP_CHDB").as_deref() == Ok("1") => Ok(None),
        None => Err("chdb is not importable: run ./x deps (it installs chdb-core into .venv), or point \
             GATELOG_CHDB_PYTHON at a python that has it; set GATELOG_SKIP_CHDB=1 to skip this check"
            .to_owned()),
    }
}

/// A managed server for one test (start-up takes well under a second), with one database
/// per test. Killed on drop; call [`TestClickHouse::stop`] to stop it gracefully.
#[derive(Debug)]
pub struct TestClickHouse {
    // Field order matters: the server is dropped (killed) before its directory is removed.
    server: ManagedClickHouse,
    dir: tempfile::TempDir,
    database: String,
}

/// A fresh database name: `gatelog_test_<16 hex digits>`.
pub fn random_database() -> String {
    format!("gatelog_test_{:016x}", fastrand::u64(..))
}

impl TestClickHouse {
    /// Starts a server with default options.
    pub async fn start() -> Result<Self, ManagedError> {
        Self::start_with(ManagedOptions::default()).await
    }

    pub async fn start_with(opts: ManagedOptions) -> Result<Self, ManagedError> {
        let dir = tempfile::Builder::new()
            .prefix("gatelog-clickhouse-")
            .tempdir()
            .map_err(|source| ManagedError::Io { what: "cannot create", path: std::env::temp_dir(), source })?;
        let server = ManagedClickHouse::start(dir.path(), opts).await?;
        Ok(TestClickHouse { server, dir, database: random_database() })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// This test's database (created by [`Store::migrate`]).
    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn server(&self) -> &ManagedClickHouse {
        &self.server
    }

    pub fn server_mut(&mut self) -> &mut ManagedClickHouse {
        &mut self.server
    }

    /// The temporary data dir (the server lives in `<it>/clickhouse`).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A config for this server and database with short retries (3 attempts, 10–100 ms).
    pub fn store_config(&self) -> StoreConfig {
        Self::config_for(&self.server, &self.database)
    }

    /// The same config for any managed server and database (a test that restarts its own
    /// server on one data dir).
    pub fn config_for(server: &ManagedClickHouse, database: &str) -> StoreConfig {
        StoreConfig {
            url: server.url(),
            database: database.to_owned(),
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(100),
            },
            request_timeout: Duration::from_secs(60),
            mutation_timeout: Duration::from_secs(60),
            ..StoreConfig::default()
        }
    }

    /// A connected, migrated store on this test's database.
    pub async fn store(&self) -> Result<Store, StoreError> {
        let store = Store::connect(&self.store_config()).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Stops the server (SIGTERM, then SIGKILL after the stop timeout).
    pub async fn stop(&mut self) -> Result<(), ManagedError> {
        self.server.stop().await
    }
}

/// The SQL the 10M benchmarks generate their world with (`INSERT … SELECT … FROM numbers(N)`:
/// 2,000 principals of very different activity, seven roles, 6 % denials, four datasets).
const GENERATE_DECISIONS: &str = include_str!("../../watch/benches/rules_10m.sql");

/// Inserts `rows` decisions spread over `[start_ms, start_ms + span_ms)`, generated by
/// ClickHouse itself, into `store`'s `decisions` (the benchmarks' world: detection's, the
/// report's and the overview's).
pub async fn generate_decisions(store: &Store, rows: u64, start_ms: i64, span_ms: i64) -> Result<(), StoreError> {
    let sql = GENERATE_DECISIONS
        .replace("{db}", store.database())
        .replace("{start_ms}", &start_ms.to_string())
        .replace("{span_ms}", &span_ms.to_string())
        .replace("{rows}", &rows.to_string());
    store.execute("INSERT", "decisions", &sql).await
}

/// One `ingest_batches` marker per batch of the stored decisions, as the sink writes them
/// (what completeness reads), for a world made by [`generate_decisions`].
pub async fn generate_batch_markers(store: &Store) -> Result<(), StoreError> {
    let db = store.database();
    let markers = format!(
        "INSERT INTO {db}.ingest_batches (batch_id, dataset, origin, received_at, received_at_ms, lines, decisions, \
         raw_records, dead_letters, probes, min_time, min_time_ms, max_time, max_time_ms, bytes, sha256, spool_seq) \
         SELECT batch_id, any(dataset), 'bench', max(received_at), max(received_at_ms), count(), count(), 0, 0, 0, \
         min(time), min(time_ms), max(time), max(time_ms), count() * 2600, lower(hex(SHA256(batch_id))), 0 \
         FROM {db}.decisions GROUP BY batch_id"
    );
    store.execute("INSERT", "ingest_batches", &markers).await
}
