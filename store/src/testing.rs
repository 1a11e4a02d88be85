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
use std::time::Duration;

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
