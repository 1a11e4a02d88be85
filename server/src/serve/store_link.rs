//! [`StoreLink`]: ClickHouse as `gatelog serve` uses it. The receiver and the spool do not
//! need ClickHouse, so `serve` starts without it: a task connects and migrates in the
//! background, retrying with backoff (`clickhouse.initial_backoff` … `clickhouse.max_backoff`)
//! while ClickHouse is unreachable, and publishes the store once it works. Meanwhile the
//! ClickHouse sink's status says `waiting` with the error (so `/readyz` is 503) and ingest
//! goes on into the spool; the sink starts as soon as the store is there.
//!
//! What stays a start-up error:
//! - managed ClickHouse that does not start (it is gatelog's own: not installed, a data dir
//!   it cannot use); waiting would not fix it, and the error says what to do;
//! - a first answer from ClickHouse that no retry can change (authentication refused, an
//!   unsupported server version, an applied migration that changed), if it comes within
//!   [`FIRST_ANSWER_WAIT`]. The same answer later (ClickHouse came back changed) stops the
//!   ClickHouse sink with the reason instead.

use crate::clickhouse::{durability, migrate, start_server, stop_managed, store_config};
use crate::config::Config;
use anyhow::Context;
use gatelog_consumer::Status;
use gatelog_store::durability::Durability;
use gatelog_store::managed::ManagedClickHouse;
use gatelog_store::{Store, StoreConfig, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long start-up waits for the first answer, to fail on one that will never change.
pub const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(5);
/// Bound on one attempt to reach the server (`SELECT version()` and the schema lookup).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The managed server (if gatelog runs one) and the store, once connected and migrated.
#[derive(Debug)]
pub struct StoreLink {
    /// The server's URL without credentials (see `gatelog_store::config::ClickHouseConfig::login`), safe to show.
    pub url: String,
    /// The user gatelog logs in as, and whether with a password (for the demo's hints).
    pub user: String,
    pub has_password: bool,
    managed: Option<ManagedClickHouse>,
    store: watch::Receiver<Option<Store>>,
    connector: JoinHandle<()>,
}

impl StoreLink {
    /// Starts managed ClickHouse when no URL is configured, then connects in the background,
    /// reporting on `status` (the ClickHouse sink's). See the module docs for what fails here.
    pub async fn start(config: &Config, status: Arc<Status>) -> anyhow::Result<StoreLink> {
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
        let user = store_config.user.clone();
        let has_password = !store_config.password.is_empty();
        let backoff = (config.clickhouse.initial_backoff, config.clickhouse.max_backoff);
        let (tx, store) = watch::channel(None);
        let (first_tx, first_rx) = oneshot::channel();
        let connector = tokio::spawn(connect(store_config, backoff, status, tx, first_tx));
        if let Ok(Ok(Err(e))) = tokio::time::timeout(FIRST_ANSWER_WAIT, first_rx).await {
            connector.abort();
            stop_managed(managed).await;
            return Err(anyhow::Error::new(e)).with_context(|| format!("cannot use ClickHouse at {url} as {user}"));
        }
        Ok(StoreLink { url, user, has_password, managed, store, connector })
    }

    /// The store if connected and migrated by now.
    pub fn store(&self) -> Option<Store> {
        self.store.borrow().clone()
    }

    /// Follows the store: `None` until connected and migrated.
    pub fn subscribe(&self) -> watch::Receiver<Option<Store>> {
        self.store.clone()
    }

    /// Whether gatelog started this server itself.
    pub fn is_managed(&self) -> bool {
        self.managed.is_some()
    }

    /// See [`crate::clickhouse::durability`].
    pub fn durability(&self, config: &Config) -> Option<Arc<dyn Durability>> {
        durability(self.managed.as_ref(), config)
    }

    /// Stops connecting and stops the managed server, if gatelog started one (bounded by
    /// its stop timeout, then killed).
    pub async fn shutdown(self) {
        let StoreLink { managed, store, connector, .. } = self;
        connector.abort();
        // Close pooled keep-alive connections first: the server waits for them on SIGTERM.
        drop(store);
        stop_managed(managed).await;
    }
}

/// Waits until `link` holds a store.
pub async fn wait_for_store(mut link: watch::Receiver<Option<Store>>) -> Option<Store> {
    link.wait_for(Option::is_some).await.ok().and_then(|store| store.clone())
}

/// Connects and migrates until it works (retryable errors) or cannot (the others); the first
/// outcome also goes to `first`.
async fn connect(
    mut config: StoreConfig,
    (initial, max): (Duration, Duration),
    status: Arc<Status>,
    tx: watch::Sender<Option<Store>>,
    first: oneshot::Sender<Result<(), StoreError>>,
) {
    // One attempt per round: the rounds are the retries, and each failure is reported here.
    config.retry.max_attempts = 1;
    let mut first = Some(first);
    let mut backoff = initial;
    loop {
        let attempt = match tokio::time::timeout(CONNECT_TIMEOUT, Store::connect(&config)).await {
            Ok(Ok(store)) => migrate(store).await,
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::ClickHouse {
                op: "connect",
                table: "server".into(),
                kind: gatelog_store::FailureKind::Timeout,
                detail: format!("no answer within {CONNECT_TIMEOUT:?}"),
            }),
        };
        match attempt {
            Ok(store) => {
                tx.send_replace(Some(store));
                if let Some(first) = first.take() {
                    let _ = first.send(Ok(()));
                }
                return;
            }
            Err(e) if e.is_retryable() => {
                status.set_waiting(format!(
                    "ClickHouse is unreachable; ingest goes on into the spool, and gatelog connects when it is back: {e}"
                ));
                tracing::debug!(error = %e, retry_in_ms = backoff.as_millis() as u64, "clickhouse: not reachable yet");
                if let Some(first) = first.take() {
                    let _ = first.send(Ok(()));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max);
            }
            Err(e) => {
                let reason = format!("ClickHouse refused gatelog: {e}");
                // Start-up fails with it while it waits for the first answer; later, the sink stops.
                let told = first.take().is_some_and(|first| first.send(Err(e)).is_ok());
                if !told {
                    status.stop(reason);
                }
                return;
            }
        }
    }
}
