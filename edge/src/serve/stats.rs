//! [`ConnStats`]: the connection counters behind `/metrics` (`gatelog_http_*`).

use crate::metrics::{MetricsCollector, TextWriter};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why the server closed a connection (or a body) itself: the label set of
/// `gatelog_http_connections_dropped_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// No complete request head within `server.header_read_timeout`.
    HeaderTimeout,
    /// Nothing between two requests for `server.idle_timeout`.
    IdleTimeout,
    /// A body stopped or slowed below `server.min_body_rate` (answered 408).
    BodyTimeout,
    /// Closed to make room for a new connection at `server.max_connections`.
    Evicted,
    /// Refused at `server.max_connections`, every open connection being busy.
    Refused,
    /// Closed by shutdown.
    Shutdown,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::HeaderTimeout,
        DropReason::IdleTimeout,
        DropReason::BodyTimeout,
        DropReason::Evicted,
        DropReason::Refused,
        DropReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::HeaderTimeout => "header_timeout",
            DropReason::IdleTimeout => "idle_timeout",
            DropReason::BodyTimeout => "body_timeout",
            DropReason::Evicted => "evicted",
            DropReason::Refused => "refused",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// Connection counters, shared by the accept loop and every connection.
#[derive(Debug, Default)]
pub struct ConnStats {
    accepted: AtomicU64,
    open: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl ConnStats {
    pub(super) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(super) fn dropped(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections (or bodies) the server dropped for `reason` so far.
    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }
}

impl MetricsCollector for ConnStats {
    fn collect(&self, out: &mut TextWriter) {
        out.family("gatelog_http_connections_accepted_total", "counter", "HTTP connections accepted.");
        out.sample("gatelog_http_connections_accepted_total", &[], self.accepted.load(Ordering::Relaxed));
        out.family("gatelog_http_connections_open", "gauge", "HTTP connections open now.");
        out.sample("gatelog_http_connections_open", &[], self.open());
        let name = "gatelog_http_connections_dropped_total";
        out.family(name, "counter", "Connections (and request bodies) the server cut off itself, by reason.");
        for reason in DropReason::ALL {
            out.sample(name, &[("reason", reason.as_str())], self.dropped_count(reason));
        }
    }
}
