//! [`Store`]: the connection, profile selection, and the requests' bounds and retries (reads
//! go through [`crate::read`]).

use crate::StoreError;
use crate::config::StoreConfig;
use crate::profile::{SchemaProfile, ServerVersion};
use crate::sql::{Lit, Queries, SchemaOptions, render};
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The ClickHouse store of record. Cheap to clone; clones share one HTTP connection pool,
/// and `write_batch` may be called concurrently from many tasks.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: clickhouse::Client,
    pub(crate) config: StoreConfig,
    pub(crate) options: SchemaOptions,
    pub(crate) version: ServerVersion,
    /// As the server reported it (`SELECT version()`), for IPE records.
    pub(crate) version_text: String,
    pub(crate) queries: Queries,
    /// Batch ids being written by this process, so two tasks never write one batch at once.
    pub(crate) in_flight: Mutex<BTreeSet<String>>,
    /// The hash chain's head as this process last stored it (`None`: read it from
    /// ClickHouse first); held by a write for the whole group (see `writer`).
    pub(crate) chain: tokio::sync::Mutex<Option<gatelog_model::chain::ChainHead>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.inner.config)
            .field("version", &self.inner.version)
            .field("profile", &self.inner.queries.profile)
            .finish_non_exhaustive()
    }
}

/// `count()` vs `uniqExact(event_id)` of `decisions FINAL`: equal when every event is stored once.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Uniqueness {
    pub rows: u64,
    pub unique_event_ids: u64,
}

pub(crate) fn client_for(config: &StoreConfig) -> clickhouse::Client {
    let compression = if config.compression.lz4_for(&config.url) {
        clickhouse::Compression::Lz4
    } else {
        clickhouse::Compression::None
    };
    let client = clickhouse::Client::default()
        .with_url(config.url.clone())
        .with_user(config.user.clone())
        .with_password(config.password.clone())
        // 18.16 has no RowBinaryWithNamesAndTypes; RowBinary is validated by our own tests.
        .with_validation(false)
        .with_compression(compression);
    if config.cluster.is_some() {
        // A Distributed insert returns only once the shards have the rows, so the batch
        // marker (written last) is never visible before its data.
        client.with_setting("insert_distributed_sync", "1")
    } else {
        client
    }
}

impl Store {
    /// Connects, reads the server version and chooses the profile: the configured one, else
    /// the one recorded by earlier migrations of this database (so a server upgrade keeps the
    /// existing schema), else the best for the server's version. Retries per the retry policy.
    pub async fn connect(config: &StoreConfig) -> Result<Store, StoreError> {
        let options = SchemaOptions {
            database: config.database.clone(),
            cluster: config.cluster.clone(),
            retention_days: config.retention_days,
        };
        options.validate()?;
        if config.insert_chunk_rows == 0 || config.insert_chunk_bytes == 0 {
            return Err(StoreError::InvalidConfig(
                "insert_chunk_rows and insert_chunk_bytes must be at least 1".into(),
            ));
        }
        let client = client_for(config);
        let probe = Queries::new(SchemaProfile::Legacy, &options);
        let timeout = config.request_timeout;
        let (version_text, recorded) = with_retries(config, "connect", || async {
            let version: String =
                fetch_one(&client, timeout, "SELECT version()", "server", &probe.server_version).await?;
            let exists: u64 = fetch_one(
                &client,
                timeout,
                "SELECT",
                "system.tables",
                &render(&probe.migrations_table_exists, &[Lit::Str(&options.database)]),
            )
            .await?;
            let recorded = if exists > 0 {
                let sql =
                    format!("SELECT profile FROM {}.schema_migrations ORDER BY version DESC LIMIT 1", options.database);
                let rows: Vec<String> = fetch_all(&client, timeout, "SELECT", "schema_migrations", &sql).await?;
                rows.into_iter().next()
            } else {
                None
            };
            Ok((version, recorded))
        })
        .await?;
        let version = ServerVersion::parse(&version_text)
            .ok_or_else(|| StoreError::UnsupportedServer { version: version_text.clone() })?;
        let auto = SchemaProfile::for_version(version)
            .ok_or_else(|| StoreError::UnsupportedServer { version: version_text.clone() })?;
        let profile = config.profile.or_else(|| recorded.as_deref().and_then(SchemaProfile::parse)).unwrap_or(auto);
        if !profile.supported_by(version) {
            return Err(StoreError::ProfileNotSupported { profile: profile.as_str(), version: version_text });
        }
        tracing::info!(url = %gatelog_model::RedactedUrl::new(&config.url), user = %config.user, version = %version, profile = %profile, database = %options.database, "connected to clickhouse");
        let queries = Queries::new(profile, &options);
        Ok(Store {
            inner: Arc::new(Inner {
                client,
                config: config.clone(),
                options,
                version,
                version_text: version_text.trim().to_owned(),
                queries,
                in_flight: Mutex::new(BTreeSet::new()),
                chain: tokio::sync::Mutex::new(None),
            }),
        })
    }

    pub fn profile(&self) -> SchemaProfile {
        self.inner.queries.profile
    }

    pub fn server_version(&self) -> ServerVersion {
        self.inner.version
    }

    /// The version as the server reports it, e.g. `18.16.1` or `26.9.2.1`.
    pub fn server_version_text(&self) -> &str {
        &self.inner.version_text
    }

    pub fn database(&self) -> &str {
        &self.inner.options.database
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The underlying client (no default database; qualify table names), for ad-hoc queries.
    pub fn client(&self) -> &clickhouse::Client {
        &self.inner.client
    }

    pub(crate) fn qualified(&self, table: &str) -> String {
        format!("{}.{table}", self.inner.options.database)
    }

    /// Which of `batch_ids` are already stored (have their `ingest_batches` marker).
    pub async fn existing_batches<S: AsRef<str>>(&self, batch_ids: &[S]) -> Result<BTreeSet<String>, StoreError> {
        let mut found = BTreeSet::new();
        for chunk in batch_ids.chunks(1000) {
            let ids: Vec<&str> = chunk.iter().map(AsRef::as_ref).collect();
            if ids.is_empty() {
                continue;
            }
            let sql = render(&self.inner.queries.existing_batches, &[Lit::StrList(&ids)]);
            let table = self.qualified("ingest_batches");
            let rows: Vec<String> = self.fetch_all("SELECT", &table, &sql).await?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Whether `batch_id` is already stored.
    pub async fn batch_exists(&self, batch_id: &str) -> Result<bool, StoreError> {
        Ok(!self.existing_batches(&[batch_id]).await?.is_empty())
    }

    /// The highest spool position of any stored decision (0 when none): where a sink resumes.
    pub async fn max_spool_seq(&self) -> Result<u64, StoreError> {
        self.fetch_one("SELECT", &self.qualified("decisions"), &self.inner.queries.max_spool_seq).await
    }

    /// Test support: rows and distinct event ids in `decisions FINAL`.
    #[cfg(feature = "testing")]
    pub async fn decision_uniqueness(&self) -> Result<Uniqueness, StoreError> {
        let (rows, unique_event_ids): (u64, u64) =
            self.fetch_one("SELECT", &self.qualified("decisions"), &self.inner.queries.decision_uniqueness).await?;
        Ok(Uniqueness { rows, unique_event_ids })
    }

    /// Test support: rows in `table` of gatelog's database carrying `batch_id`, without
    /// deduplication.
    #[cfg(feature = "testing")]
    pub async fn count_rows_of_batch(&self, table: &str, batch_id: &str) -> Result<u64, StoreError> {
        let qualified = self.qualified(table);
        let sql = render(&format!("SELECT count() FROM {qualified} WHERE batch_id = ?"), &[Lit::Str(batch_id)]);
        self.fetch_one("SELECT", &qualified, &sql).await
    }

    /// Runs a statement that returns nothing (DDL, `ALTER`), bounded by the request timeout.
    pub async fn execute(&self, op: &'static str, table: &str, sql: &str) -> Result<(), StoreError> {
        let timeout = self.inner.config.request_timeout;
        let fut = self.inner.client.query_raw(sql).execute();
        bounded(op, table, timeout, fut).await
    }

    pub(crate) async fn fetch_all<T>(&self, op: &'static str, table: &str, sql: &str) -> Result<Vec<T>, StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        fetch_all(&self.inner.client, self.inner.config.request_timeout, op, table, sql).await
    }

    pub(crate) async fn fetch_one<T>(&self, op: &'static str, table: &str, sql: &str) -> Result<T, StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        fetch_one(&self.inner.client, self.inner.config.request_timeout, op, table, sql).await
    }
}

async fn fetch_all<T>(
    client: &clickhouse::Client,
    timeout: Duration,
    op: &'static str,
    table: &str,
    sql: &str,
) -> Result<Vec<T>, StoreError>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    bounded(op, table, timeout, client.query_raw(sql).fetch_all::<T>()).await
}

async fn fetch_one<T>(
    client: &clickhouse::Client,
    timeout: Duration,
    op: &'static str,
    table: &str,
    sql: &str,
) -> Result<T, StoreError>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    bounded(op, table, timeout, client.query_raw(sql).fetch_one::<T>()).await
}

/// Runs `attempt` until it succeeds, fails fatally, or the policy's attempts are used up.
/// With a single attempt the error is returned as it is, unlogged: the caller retries (or
/// reports) in its own way.
pub(crate) async fn with_retries<T, F, Fut>(config: &StoreConfig, what: &str, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let policy = config.retry;
    let started = Instant::now();
    let max = policy.max_attempts.max(1);
    let mut n = 1;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if !err.is_retryable() || max == 1 => return Err(err),
            Err(err) if n >= max => {
                let elapsed = started.elapsed();
                tracing::error!(what, attempts = n, ?elapsed, error = %err, "giving up");
                return Err(StoreError::RetriesExhausted { attempts: n, elapsed, last: Box::new(err) });
            }
            Err(err) => {
                let pause = policy.backoff(n);
                tracing::warn!(what, attempt = n, max_attempts = max, ?pause, error = %err, "retrying");
                tokio::time::sleep(pause).await;
                n += 1;
            }
        }
    }
}

/// Runs one ClickHouse request within `timeout`, naming `op` and `table` in any error.
pub(crate) async fn bounded<T>(
    op: &'static str,
    table: &str,
    timeout: Duration,
    request: impl std::future::Future<Output = clickhouse::error::Result<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, request).await {
        Ok(result) => result.map_err(|e| StoreError::from_clickhouse(op, table, e)),
        Err(_) => Err(StoreError::timeout(op, table, timeout)),
    }
}
