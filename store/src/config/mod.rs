//! The store's configuration: [`ClickHouseConfig`] is the `[clickhouse]` section of
//! `gatelog.toml` (serde, `deny_unknown_fields`, `Default`, `validate()` naming the key);
//! [`StoreConfig`] and [`RetryPolicy`] are the runtime options [`crate::Store::connect`] takes,
//! built by [`ClickHouseConfig::store_config`] (or by hand, in tests). `login` takes the
//! credentials out of `clickhouse.url`.

mod login;
mod section;

pub use login::ClickHouseLogin;
pub use section::ClickHouseConfig;

use crate::profile::SchemaProfile;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A configuration problem, naming the key in full (`clickhouse.database: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

/// How to reach ClickHouse and how hard to try: the runtime options of [`crate::Store`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// HTTP endpoint, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// gatelog's database; created by [`crate::Store::migrate`].
    pub database: String,
    pub user: String,
    pub password: String,
    /// Create `Replicated*` tables and `Distributed` tables `ON CLUSTER` this cluster.
    pub cluster: Option<String>,
    /// Force a schema profile instead of choosing it from the server's version.
    pub profile: Option<SchemaProfile>,
    /// Retention of decisions, raw records and dead letters, in days: the modern profile gets
    /// a TTL; [`crate::Store::expire`] drops whole expired months on both profiles.
    pub retention_days: Option<u32>,
    /// Compression of inserts: `auto` (the default: LZ4 unless the server is on a loopback
    /// address), `lz4` (ClickHouse's native block compression) or `none`.
    pub compression: InsertCompression,
    /// At most this many rows per `INSERT` statement (each `INSERT` becomes a part).
    pub insert_chunk_rows: usize,
    /// About this many uncompressed bytes per `INSERT` at most (bounds the server's memory).
    pub insert_chunk_bytes: u64,
    /// Bound on a single request (query or insert).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Bound on waiting for an `ALTER TABLE … DELETE` mutation (cleaning a half-written batch).
    #[serde(with = "humantime_serde")]
    pub mutation_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "http://127.0.0.1:8123".to_owned(),
            database: "gatelog".to_owned(),
            user: "default".to_owned(),
            password: String::new(),
            cluster: None,
            profile: None,
            retention_days: None,
            compression: InsertCompression::Auto,
            // Measured on 18.16: 50k-row inserts cost ~60% more CPU than whole-batch inserts
            // (each INSERT is a part, and parts are merged again later); the byte bound caps
            // the server's memory per INSERT (roughly 2-3x this).
            insert_chunk_rows: 1_000_000,
            insert_chunk_bytes: 1024 * 1024 * 1024,
            request_timeout: Duration::from_secs(300),
            mutation_timeout: Duration::from_secs(300),
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &gatelog_model::RedactedUrl::new(&self.url))
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
            .field("cluster", &self.cluster)
            .field("profile", &self.profile)
            .field("retention_days", &self.retention_days)
            .field("compression", &self.compression)
            .field("insert_chunk_rows", &self.insert_chunk_rows)
            .field("insert_chunk_bytes", &self.insert_chunk_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("mutation_timeout", &self.mutation_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// How inserts are compressed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InsertCompression {
    /// LZ4 unless the URL's host is loopback, where compressing only costs CPU (measured on
    /// one 2-core box: a wash either way). The default, for `gatelog.toml` and the store alike.
    #[default]
    Auto,
    /// LZ4 frames of 512 KiB (fewer bytes through the kernel; the clear choice across a network).
    Lz4,
    None,
}

impl InsertCompression {
    /// Whether inserts to `url` are LZ4-compressed.
    pub fn lz4_for(self, url: &str) -> bool {
        match self {
            InsertCompression::Lz4 => true,
            InsertCompression::None => false,
            InsertCompression::Auto => !is_loopback(url),
        }
    }
}

/// Whether an `http(s)://host[:port]/…` URL names this machine.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Exponential backoff with jitter for retryable errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; 1 means no retry.
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `retry` (1-based): `initial · 2^(retry-1)`, capped at
    /// `max_backoff`, then scaled by a random factor in [0.5, 1.0] so writers that failed
    /// together do not retry together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let base = self.initial_backoff.saturating_mul(1u32 << exp).min(self.max_backoff);
        base.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserialises_with_defaults_and_humantime() {
        let c: StoreConfig = toml::from_str(
            "url = \"http://ch:8123\"\ncluster = \"c1\"\n[retry]\nmax_attempts = 3\ninitial_backoff = \"50ms\"\n",
        )
        .unwrap();
        assert_eq!(c.url, "http://ch:8123");
        assert_eq!(c.database, "gatelog");
        assert_eq!(c.cluster.as_deref(), Some("c1"));
        assert_eq!(c.retry.max_attempts, 3);
        assert_eq!(c.retry.initial_backoff, Duration::from_millis(50));
        assert_eq!(c.retry.max_backoff, Duration::from_secs(10));
    }

    #[test]
    fn rejects_unknown_keys() {
        let err = toml::from_str::<StoreConfig>("urll = \"x\"").unwrap_err().to_string();
        assert!(err.contains("urll"), "{err}");
        assert!(toml::from_str::<StoreConfig>("[retry]\nattempts = 3").is_err());
    }

    #[test]
    fn debug_redacts_the_password() {
        let c = StoreConfig { password: "hunter2".into(), url: "http://u:hunter3@h".into(), ..StoreConfig::default() };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("hunter3"), "{shown}");
    }

    #[test]
    fn auto_compression_skips_loopback() {
        let auto = InsertCompression::Auto;
        assert!(!auto.lz4_for("http://127.0.0.1:8123"));
        assert!(!auto.lz4_for("http://localhost:8123/"));
        assert!(!auto.lz4_for("http://[::1]:8123"));
        assert!(!auto.lz4_for("http://user:pw@127.0.0.2:8123"));
        assert!(auto.lz4_for("http://clickhouse.internal:8123"));
        assert!(auto.lz4_for("https://10.0.0.5:8443"));
        assert!(InsertCompression::Lz4.lz4_for("http://127.0.0.1:8123"));
        assert!(!InsertCompression::None.lz4_for("http://ch:8123"));
        let c: StoreConfig = toml::from_str("compression = \"lz4\"").unwrap();
        assert_eq!(c.compression, InsertCompression::Lz4);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let first = p.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let late = p.backoff(40);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1));
        }
    }
}
