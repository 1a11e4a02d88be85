//! The canaries of `gatelog serve` (`gatelog_watch::canary`, when `detect.enabled` and
//! `detect.canary.enabled`): a task that posts a marked decision every
//! `detect.canary.interval` to this server's own `POST /v1/decisions` over loopback HTTP,
//! presenting an ingest token made at start-up and held only in memory (added to the edge's
//! credentials as `gatelog-canary`), so the canary passes the receiver's real auth, limits,
//! mapping and spool, the road every decision takes. Stopped at shutdown before the listener.
//! Its families on `/metrics` (`outcome` `ok`|`missed`|`failed_to_send`|`interrupted`):
//!
//! | family | meaning |
//! | --- | --- |
//! | `gatelog_canary_runs_total{outcome}` | canary runs recorded in `canary_runs` since the start |
//! | `gatelog_canary_last_latency_seconds` | from the last judged canary's 2xx to detection storing its alert (absent before one) |

use super::notify::default_base_url;
use crate::config::Config;
use gatelog_edge::{MetricsCollector, TextWriter};
use gatelog_ingest::http::client::Client;
use gatelog_model::Clock;
use gatelog_store::Store;
use gatelog_watch::canary::{CanaryRunner, CanaryStats, Sender};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The credential name the canary's token is known by (the actor of its posts).
pub const CANARY_CREDENTIAL: &str = "gatelog-canary";
/// How long the runner gets to stop; a run in flight is judged at the next start.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Whether `config` runs canaries.
pub fn enabled(config: &Config) -> bool {
    config.detect.enabled && config.detect.canary.enabled
}

/// The loopback HTTP sender.
#[derive(Debug)]
struct HttpSender(Client);

impl Sender for HttpSender {
    fn send(&self, ndjson: Vec<u8>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            match self.0.post_decisions(&ndjson).await {
                Ok(a) if a.decisions == 1 => Ok(()),
                Ok(a) => Err(format!(
                    "the receiver took {} decisions of the canary's 1 ({} dead letters)",
                    a.decisions, a.dead_letters
                )),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// The running canary task.
#[derive(Debug)]
pub struct Canaries {
    pub stats: Arc<CanaryStats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Canaries {
    /// Starts the runner posting to the listener at `addr` with `token`.
    pub fn start(
        config: &Config,
        addr: SocketAddr,
        token: &str,
        store: watch::Receiver<Option<Store>>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Canaries> {
        let mut client = Client::new(&default_base_url(addr), token)?;
        // A receiver that keeps answering 429/503 for the whole deadline has not taken it.
        client.retry_for = config.detect.canary.deadline.min(Duration::from_secs(60));
        client.timeout = config.detect.canary.deadline.min(Duration::from_secs(60));
        let stats = Arc::new(CanaryStats::default());
        let runner = CanaryRunner {
            config: config.detect.canary.clone(),
            data_dir: config.data_dir.clone(),
            store,
            clock,
            sender: Arc::new(HttpSender(client)),
            stats: stats.clone(),
            poll: Duration::from_millis(250),
        };
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(runner.run(stop_rx));
        tracing::info!(interval = %humantime::format_duration(config.detect.canary.interval),
            deadline = %humantime::format_duration(config.detect.canary.deadline), "canaries enabled");
        Ok(Canaries { stats, stop, task })
    }

    /// The `/metrics` collector.
    pub fn metrics(&self) -> CanaryMetrics {
        CanaryMetrics { stats: self.stats.clone() }
    }

    /// Stops the runner ([`STOP_GRACE`] at most).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            tracing::warn!("the canary did not stop in time; its run is judged at the next start");
            task.abort();
        }
    }
}

#[derive(Debug)]
pub struct CanaryMetrics {
    stats: Arc<CanaryStats>,
}

impl MetricsCollector for CanaryMetrics {
    fn collect(&self, out: &mut TextWriter) {
        let name = "gatelog_canary_runs_total";
        out.family(name, "counter", "Canary runs recorded in canary_runs since gatelog started, by outcome.");
        for (outcome, n) in self.stats.runs() {
            out.sample(name, &[("outcome", outcome)], n);
        }
        if let Some(ms) = self.stats.last_latency_ms() {
            let name = "gatelog_canary_last_latency_seconds";
            out.family(name, "gauge", "From the last judged canary's 2xx to detection storing its alert.");
            out.sample(name, &[], ms as f64 / 1000.0);
        }
    }
}
