//! `[server]`: the HTTP listener of `gatelog serve` and the limits of its connections.

use super::ConfigError;
use bytesize::ByteSize;
use gatelog_edge::serve::ServerLimits;
use serde::Deserialize;
use std::time::Duration;

/// `[server]`: the HTTP listener of `gatelog serve` and what bounds its connections (see
/// `gatelog_edge::serve`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub listen: std::net::SocketAddr,
    /// On shutdown: how long busy connections may take to finish their request, and then,
    /// in what is left of it, the sinks to store what the spool holds; gatelog exits within
    /// it plus a small margin (see `serve`).
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Connections open at once; past it a new one closes the longest-waiting idle one.
    pub max_connections: usize,
    /// A request head must be complete this long after the accept (or its first byte).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A keep-alive connection without a new request this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A body that stops this long is cut off (408); also the grace before `min_body_rate`.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Bytes a second a body must average after `body_read_timeout` (408 below).
    pub min_body_rate: ByteSize,
    /// Mark the dashboard's cookies `Secure` (browsers then send them over HTTPS only): set it
    /// when browsers reach gatelog through a TLS proxy.
    pub secure_cookies: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        let limits = ServerLimits::default();
        ServerSection {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            drain_timeout: limits.drain_timeout,
            max_connections: limits.max_connections,
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            body_read_timeout: limits.body_read_timeout,
            min_body_rate: ByteSize::b(limits.min_body_rate),
            secure_cookies: false,
        }
    }
}

impl ServerSection {
    /// The connection limits of the HTTP server.
    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            body_read_timeout: self.body_read_timeout,
            min_body_rate: self.min_body_rate.as_u64(),
            drain_timeout: self.drain_timeout,
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if !(1..=1_000_000).contains(&self.max_connections) {
            return invalid(
                "server.max_connections",
                format!("must be between 1 and 1000000, got {}", self.max_connections),
            );
        }
        let timeouts = [
            ("server.header_read_timeout", self.header_read_timeout),
            ("server.idle_timeout", self.idle_timeout),
            ("server.body_read_timeout", self.body_read_timeout),
            ("server.drain_timeout", self.drain_timeout),
        ];
        for (key, value) in timeouts {
            if value < Duration::from_millis(100) || value > Duration::from_secs(3600) {
                return invalid(
                    key,
                    format!("must be between 100ms and 1h, got {}", humantime::format_duration(value)),
                );
            }
        }
        Ok(())
    }
}
