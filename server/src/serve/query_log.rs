//! The query-log job in `gatelog serve` (`gatelog_watch::query_log`, when `detect.enabled`
//! and `detect.query_log.enabled`): it waits for gatelog's ClickHouse to be connected, then
//! reads the fronted server's `system.query_log` every `detect.query_log.interval` on a
//! background thread of its own. Stopped at shutdown; a run interrupted then is run again at
//! the next start (its position is in `detector_runs`).

use super::background::spawn_background;
use super::store_link::StoreLink;
use crate::config::Config;
use anyhow::Context;
use gatelog_model::Clock;
use gatelog_watch::query_log::QueryLogJob;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The running job.
#[derive(Debug)]
pub struct QueryLog {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl QueryLog {
    /// Starts the job, or `None` when it is off.
    pub fn start(config: &Config, link: &StoreLink, clock: Arc<dyn Clock>) -> anyhow::Result<Option<QueryLog>> {
        let detect = config.detect.clone();
        if !detect.enabled || !detect.query_log.enabled {
            return Ok(None);
        }
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
            let runaway = detect.runaway_select.clone();
            match QueryLogJob::new(detect.query_log.clone(), runaway, &detect.alerts, store, clock) {
                Ok(job) => job.run(stop_rx).await,
                Err(e) => tracing::error!(error = %e, "cannot start the query log job"),
            }
        };
        let task = spawn_background("gatelog-query-log", job).context("cannot start the query log thread")?;
        tracing::info!(url = %config.detect.query_log.url, "query log job started");
        Ok(Some(QueryLog { stop, task }))
    }

    /// Stops the job ([`STOP_GRACE`] at most).
    pub async fn stop(self) {
        let late = "the query log job did not stop in time; its window runs again at the next start";
        super::background::stop_job(&self.stop, self.task, Some(late)).await;
    }
}
