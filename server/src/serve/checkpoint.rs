//! Chain checkpoints in `gatelog serve`: every `report.chain_checkpoint_interval` the head of
//! the hash chain over stored batches (`gatelog_store::chain`), as ClickHouse holds it, is
//! recorded in `chain_checkpoints`, signed with the bundle signing key when there is one
//! (`report.signing_key`; unsigned otherwise, said once in the log). A head already recorded
//! is not recorded again. `gatelog verify --store` checks the checkpoints of its period.
//! Runs on a background thread of its own; stopped at shutdown.

use super::background::spawn_background;
use super::store_link::StoreLink;
use crate::config::Config;
use anyhow::Context;
use gatelog_model::Clock;
use gatelog_report::chain::sign_checkpoint;
use gatelog_report::sign::SigningKey;
use gatelog_store::Store;
use gatelog_store::chain::Checkpoint;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The running job.
#[derive(Debug)]
pub struct Checkpoints {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Checkpoints {
    /// Starts the job, or `None` when `report.chain_checkpoint_interval` is 0.
    pub fn start(config: &Config, link: &StoreLink, clock: Arc<dyn Clock>) -> anyhow::Result<Option<Checkpoints>> {
        let interval = config.report.chain_checkpoint_interval;
        if interval.is_zero() {
            return Ok(None);
        }
        let key_path = config.signing_key_path();
        let mut stores = link.subscribe();
        let (stop, mut stop_rx) = watch::channel(false);
        let job = async move {
            let store = loop {
                if let Some(store) = stores.borrow_and_update().clone() {
                    break store;
                }
                tokio::select! {
                    changed = stores.changed() => if changed.is_err() { return },
                    _ = stop_rx.changed() => return,
                }
            };
            let key = signing_key(&key_path);
            let mut last: Option<gatelog_model::chain::ChainHead> = None;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    _ = stop_rx.changed() => return,
                }
                match record(&store, key.as_ref(), clock.as_ref(), last.as_ref()).await {
                    Ok(Some(head)) => last = Some(head),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot record a chain checkpoint; trying again next interval")
                    }
                }
            }
        };
        let task = spawn_background("gatelog-chain-checkpoints", job).context("cannot start the checkpoint thread")?;
        Ok(Some(Checkpoints { stop, task }))
    }

    pub async fn stop(self) {
        super::background::stop_job(&self.stop, self.task, None).await;
    }
}

/// The signing key, or `None` (unsigned checkpoints) when it does not exist or cannot be read.
fn signing_key(path: &Path) -> Option<SigningKey> {
    if !path.exists() {
        tracing::warn!(key = %path.display(), "chain checkpoints are recorded unsigned: there is no signing key (gatelog keys init creates it)");
        return None;
    }
    match SigningKey::load(path) {
        Ok(key) => {
            tracing::info!(key = %path.display(), signer = %key.public_key().fingerprint(), "chain checkpoints are signed");
            Some(key)
        }
        Err(e) => {
            tracing::warn!(key = %path.display(), error = %e, "chain checkpoints are recorded unsigned: the signing key cannot be read");
            None
        }
    }
}

/// Records the stored head unless it is empty or `last`; returns the head recorded.
async fn record(
    store: &Store,
    key: Option<&SigningKey>,
    clock: &dyn Clock,
    last: Option<&gatelog_model::chain::ChainHead>,
) -> Result<Option<gatelog_model::chain::ChainHead>, gatelog_store::StoreError> {
    let head = store.chain_head().await?;
    if head.links == 0 || last == Some(&head) {
        return Ok(None);
    }
    let at_ms = clock.now().0;
    let (signer, signature) = key.map(|k| sign_checkpoint(k, &head, at_ms)).unwrap_or_default();
    store.record_checkpoint(&Checkpoint { at_ms, head: head.clone(), signer, signature }).await?;
    tracing::info!(links = head.links, hash = %head.hash, signed = key.is_some(), "chain checkpoint recorded");
    Ok(Some(head))
}
