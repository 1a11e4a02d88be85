//! The alert mailer of `gatelog serve` (`gatelog_notify::Mailer`, when `notify.enabled`): a
//! background task over the store link that mails every opened alert (SMTP, or `.eml` files
//! under `<data_dir>/outbox`), stopped at shutdown before ClickHouse is. Its families on
//! `/metrics`, with closed label sets (`kind` `alert`|`digest`, `channel` `smtp`|`file`,
//! `outcome` `sent`|`failed`|`folded`):
//!
//! | family | meaning |
//! | --- | --- |
//! | `gatelog_alert_deliveries_total{kind,channel,outcome}` | delivery attempts recorded in `alert_deliveries` since the start (`folded`: alerts a rate limit put in a digest) |
//! | `gatelog_alert_outbox_pending` | opened alerts not yet delivered, at the last round |
//! | `gatelog_alert_outbox_failing` | 1 while the last hand-over to the SMTP server (or the outbox directory) failed |
//! | `gatelog_alert_outbox_errors_total` | outbox rounds that could not read or record in ClickHouse |
//!
//! `gatelog ingest` does not mail: alerts its detection opens are mailed by the next
//! `gatelog serve`, which finds them undelivered in ClickHouse.

use super::store_link::StoreLink;
use crate::config::Config;
use anyhow::Context;
use gatelog_edge::{MetricsCollector, TextWriter};
use gatelog_model::Clock;
use gatelog_notify::{Channel, Mailer, NotifyStats};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long the mailer gets to stop at shutdown; a mail being handed over then is sent
/// again at the next start (same Message-ID).
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The running mailer.
#[derive(Debug)]
pub struct Notifier {
    pub stats: Arc<NotifyStats>,
    /// `host:port` of the SMTP server, or the outbox directory.
    pub destination: String,
    pub channel: Channel,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The links' base when `notify.base_url` is not set: the listener, reached on loopback when
/// it listens on every interface.
pub fn default_base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && addr.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

impl Notifier {
    /// Builds the transport (a missing password or CA file is an error here, naming its
    /// key) and starts the mailer; it waits for the store link.
    pub fn start(
        config: &Config,
        link: &StoreLink,
        clock: Arc<dyn Clock>,
        addr: SocketAddr,
    ) -> anyhow::Result<Notifier> {
        let n = &config.notify;
        let transport = Mailer::transport_for(n, &config.data_dir).context("cannot set up alert e-mail ([notify])")?;
        let base_url = n.base_url.clone().unwrap_or_else(|| default_base_url(addr));
        let stats = Arc::new(NotifyStats::default());
        let mailer = Mailer::new(n.clone(), &base_url, transport, clock, stats.clone())
            .context("cannot set up alert e-mail ([notify])")?;
        let (destination, channel) = (mailer.destination(), mailer.transport().channel());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(mailer.run(link.subscribe(), stop_rx));
        Ok(Notifier { stats, destination, channel, stop, task })
    }

    /// The `/metrics` collector.
    pub fn metrics(&self) -> NotifyMetrics {
        NotifyMetrics { stats: self.stats.clone() }
    }

    /// Stops the mailer ([`STOP_GRACE`] at most).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            tracing::warn!("the alert mailer did not stop in time; a mail it was sending goes again at the next start");
            task.abort();
        }
    }
}

#[derive(Debug)]
pub struct NotifyMetrics {
    stats: Arc<NotifyStats>,
}

impl MetricsCollector for NotifyMetrics {
    fn collect(&self, out: &mut TextWriter) {
        let s = &self.stats;
        let name = "gatelog_alert_deliveries_total";
        out.family(
            name,
            "counter",
            "Alert mail delivery attempts recorded since gatelog started, by kind, channel and outcome.",
        );
        for (kind, channel, outcome, n) in s.deliveries() {
            out.sample(name, &[("kind", kind), ("channel", channel), ("outcome", outcome)], n);
        }
        let name = "gatelog_alert_outbox_pending";
        out.family(name, "gauge", "Opened alerts not yet delivered by mail, at the mailer's last round.");
        out.sample(name, &[], s.pending.load(Ordering::Relaxed));
        let name = "gatelog_alert_outbox_failing";
        out.family(name, "gauge", "1 while the last hand-over of an alert mail failed (it is retried with backoff).");
        out.sample(name, &[], u8::from(s.transport_failing.load(Ordering::Relaxed)));
        let name = "gatelog_alert_outbox_errors_total";
        out.family(name, "counter", "Mailer rounds that could not read or record deliveries in ClickHouse.");
        out.sample(name, &[], s.rounds_failed.load(Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_reach_a_wildcard_listener_on_loopback() {
        assert_eq!(default_base_url("0.0.0.0:8080".parse().unwrap()), "http://127.0.0.1:8080");
        assert_eq!(default_base_url("[::]:9".parse().unwrap()), "http://[::1]:9");
        assert_eq!(default_base_url("10.0.0.5:80".parse().unwrap()), "http://10.0.0.5:80");
    }
}
