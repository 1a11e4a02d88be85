//! The store target: the configured ClickHouse, or a managed one under the data dir.
//! [`Target::connect`] connects at once or fails (the CLI's commands); `gatelog serve`
//! connects in the background instead (`serve::store_link`), from the same pieces.

use crate::config::Config;
use anyhow::Context;
use gatelog_store::durability::{Durability, SyncFilesystem};
use gatelog_store::managed::{ManagedClickHouse, ManagedOptions};
use gatelog_store::{Store, StoreConfig};
use std::sync::Arc;
use std::time::Duration;

/// A connected, migrated store, and the server gatelog started for it (if any).
#[derive(Debug)]
pub struct Target {
    pub store: Store,
    managed: Option<ManagedClickHouse>,
}

impl Target {
    /// Connects (starting managed ClickHouse when no URL is configured) and migrates, or fails.
    pub async fn connect(config: &Config) -> anyhow::Result<Target> {
        let (url, managed) = start_server(config).await?;
        let store_config = match store_config(config, &url) {
            Ok(store_config) => store_config,
            Err(e) => {
                stop_managed(managed).await;
                return Err(e);
            }
        };
        // Credentials left the URL in `store_config`: only that one is ever shown.
        let url = store_config.url.clone();
        let connected = connect_and_migrate(&store_config).await;
        let store = match connected {
            Ok(store) => store,
            Err(e) => {
                stop_managed(managed).await;
                return Err(
                    anyhow::Error::new(e).context(format!("cannot use ClickHouse at {url} as {}", store_config.user))
                );
            }
        };
        Ok(Target { store, managed })
    }

    /// [`Target::connect`], but a managed server that another gatelog process (`gatelog
    /// serve`) already runs under the data dir is used rather than refused: for commands
    /// that run beside the server (`gatelog alerts`).
    pub async fn connect_beside_serve(config: &Config) -> anyhow::Result<Target> {
        if config.clickhouse.url.is_none()
            && let Some(url) = gatelog_store::managed::running_url(&config.data_dir)
        {
            tracing::debug!(%url, "using the managed clickhouse gatelog serve runs");
            let mut shared = config.clone();
            shared.clickhouse.url = Some(url);
            return Target::connect(&shared).await;
        }
        Target::connect(config).await
    }

    /// Stops the managed server, if gatelog started one.
    pub async fn shutdown(self) {
        // Close pooled keep-alive connections first: the server waits for them on SIGTERM.
        let Target { store, managed, .. } = self;
        drop(store);
        stop_managed(managed).await;
    }
}

/// The managed server when no URL is configured (started here: failing to start it is an
/// error), and the URL to use.
pub async fn start_server(config: &Config) -> anyhow::Result<(String, Option<ManagedClickHouse>)> {
    match &config.clickhouse.url {
        Some(url) => Ok((url.clone(), None)),
        None => {
            tracing::info!(data_dir = %config.data_dir.display(), "starting managed clickhouse");
            let server = ManagedClickHouse::start(&config.data_dir, managed_options(config))
                .await
                .context("cannot start managed ClickHouse (set clickhouse.url to use an existing server)")?;
            tracing::info!(url = %server.url(), "managed clickhouse is up");
            Ok((server.url().to_owned(), Some(server)))
        }
    }
}

/// Stops a managed server (bounded by its stop timeout, then killed).
pub async fn stop_managed(managed: Option<ManagedClickHouse>) {
    if let Some(mut server) = managed
        && let Err(e) = server.stop().await
    {
        tracing::warn!(error = %e, "managed clickhouse did not stop cleanly");
    }
}

/// The store's configuration for `url`: `[clickhouse]` and `retention`, built by the store's
/// own config type (credentials leave the URL there, so the store's URL is the one safe to
/// show or send as a URL).
pub fn store_config(config: &Config, url: &str) -> anyhow::Result<StoreConfig> {
    Ok(config.store_config(url)?)
}

/// Connects and migrates (each retried per the store's retry policy).
pub async fn connect_and_migrate(store_config: &StoreConfig) -> Result<Store, gatelog_store::StoreError> {
    migrate(Store::connect(store_config).await?).await
}

/// Migrates the schema of a connected store.
pub async fn migrate(store: Store) -> Result<Store, gatelog_store::StoreError> {
    let report = store.migrate().await?;
    tracing::info!(
        server_version = %store.server_version(),
        profile = ?store.profile(),
        database = %store.database(),
        applied = report.applied.len(),
        "clickhouse schema ready"
    );
    Ok(store)
}

/// What the ClickHouse sink waits for before the spool may forget records: `syncfs` of the
/// data dir of a managed server, or of `clickhouse.sync_data_dir` (a server on this
/// machine); otherwise the server's durability is its own.
pub fn durability(managed: Option<&ManagedClickHouse>, config: &Config) -> Option<Arc<dyn Durability>> {
    let dir = match (managed, &config.clickhouse.sync_data_dir) {
        (Some(managed), _) => managed.tables_dir(),
        (None, Some(dir)) => dir.clone(),
        (None, None) => return None,
    };
    tracing::info!(dir = %dir.display(), "clickhouse sink: stored rows are synced before the spool lets them go");
    Some(Arc::new(SyncFilesystem::new(dir)))
}

/// Opens `clickhouse.sync_data_dir` (if set) as the sync will: a missing dir, or one gatelog
/// may not read, fails before anything starts rather than at the first sync (which stops the
/// ClickHouse sink).
pub fn check_sync_data_dir(config: &Config) -> anyhow::Result<()> {
    let Some(dir) = &config.clickhouse.sync_data_dir else { return Ok(()) };
    std::fs::File::open(dir).with_context(|| format!("clickhouse.sync_data_dir: cannot open {}", dir.display()))?;
    anyhow::ensure!(dir.is_dir(), "clickhouse.sync_data_dir: {} is not a directory", dir.display());
    Ok(())
}

/// How gatelog runs its managed server.
fn managed_options(config: &Config) -> ManagedOptions {
    config.clickhouse.managed_options(MANAGED_STOP_TIMEOUT)
}

/// How long managed ClickHouse gets to stop on SIGTERM before it is killed (a hung or stopped
/// server would otherwise hold gatelog's exit). Killing it loses nothing: the spool keeps
/// every record whose rows were not synced, and the sink checks for half-written batches.
pub const MANAGED_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// `gatelog clickhouse run`: the managed server in the foreground until Ctrl-C or SIGTERM.
pub async fn run_foreground(args: crate::cli::ClickhouseRunArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = crate::config::resolve(&args.store)?;
    let mut server = ManagedClickHouse::start(&config.data_dir, managed_options(&config))
        .await
        .context("cannot start managed ClickHouse")?;
    let url = server.url().to_owned();
    if let Some(path) = &args.url_file {
        std::fs::write(path, &url).with_context(|| format!("cannot write {}", path.display()))?;
    }
    crate::print_stdout(&format!(
        "managed ClickHouse is listening on {url} (data in {}); Ctrl-C stops it\n",
        config.data_dir.display()
    ))?;
    wait_for_shutdown_signal().await;
    server.stop().await.context("managed ClickHouse did not stop cleanly")?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub async fn wait_for_shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for sigterm; only ctrl-c stops");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
