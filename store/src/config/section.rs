//! [`ClickHouseConfig`]: the `[clickhouse]` section of `gatelog.toml`, owned here so the
//! binary embeds it as it is and builds the store's runtime options with its methods
//! ([`ClickHouseConfig::store_config`], [`ClickHouseConfig::sink_options`],
//! [`ClickHouseConfig::managed_options`]) instead of copying fields. Every default is the
//! runtime type's own ([`StoreConfig`], [`RetryPolicy`], [`SinkOptions`]), so there is one
//! default per setting.

use super::{ConfigError, InsertCompression, RetryPolicy, StoreConfig};
use crate::managed::ManagedOptions;
use crate::profile::SchemaProfile;
use crate::sink::SinkOptions;
use bytesize::ByteSize;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[clickhouse]`: the store of record. Its `Debug` hides the password and the URL's.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP URL of an existing server. Absent: gatelog starts and stops its own.
    pub url: Option<String>,
    pub database: String,
    pub user: String,
    pub password: String,
    /// A cluster name from the server's `remote_servers`: tables are created `ON CLUSTER`.
    pub cluster: Option<String>,
    /// `legacy` or `modern` instead of the schema the server's version (or the database's
    /// earlier migrations) would choose. Absent: chosen automatically.
    pub profile: Option<SchemaProfile>,
    /// `auto` (LZ4 for remote servers, none on loopback, where it only costs CPU), `lz4`, `none`.
    pub compression: InsertCompression,
    /// Attempts per write before giving up on a retryable error.
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Bound on one request (a query or an insert).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Bound on waiting for an `ALTER TABLE … DELETE` (cleaning a half-written batch).
    #[serde(with = "humantime_serde")]
    pub mutation_timeout: Duration,
    /// `gatelog serve`: spool records are written in groups of up to this many lines...
    pub sink_batch_lines: u64,
    /// ... or this many bytes (bounds the sink's memory) ...
    pub sink_batch_bytes: ByteSize,
    /// ... waiting at most this long for a group to fill.
    #[serde(with = "humantime_serde")]
    pub sink_linger: Duration,
    /// Managed ClickHouse only: its nice value (0 = gatelog's priority, 19 = lowest), so its
    /// inserts and merges yield the cores to the receiver's acknowledgements.
    pub managed_nice: i32,
    /// A server given by `url` that runs on this machine: its data dir (e.g.
    /// `/var/lib/clickhouse`). `gatelog serve` then runs `syncfs` on it before the spool may
    /// forget records ClickHouse stored, as it does for managed ClickHouse.
    pub sync_data_dir: Option<PathBuf>,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        let store = StoreConfig::default();
        let sink = SinkOptions::default();
        ClickHouseConfig {
            url: None,
            database: store.database,
            user: store.user,
            password: store.password,
            cluster: store.cluster,
            profile: store.profile,
            compression: store.compression,
            max_attempts: store.retry.max_attempts,
            initial_backoff: store.retry.initial_backoff,
            max_backoff: store.retry.max_backoff,
            request_timeout: store.request_timeout,
            mutation_timeout: store.mutation_timeout,
            sink_batch_lines: sink.max_lines,
            sink_batch_bytes: ByteSize::b(sink.max_bytes),
            sink_linger: sink.linger,
            managed_nice: 19,
            sync_data_dir: None,
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError { key: key.to_owned(), message: message.into() })
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 128
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn shown(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

impl ClickHouseConfig {
    /// Checks what serde cannot: ranges, formats, combinations. The error names the key
    /// (`clickhouse.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid(
                    "clickhouse.url",
                    format!(
                        "expected an http:// or https:// URL of ClickHouse's HTTP interface, got \"{}\"",
                        gatelog_model::RedactedUrl::new(url)
                    ),
                );
            }
            self.login(url)?;
        }
        if let Some(dir) = &self.sync_data_dir {
            if self.url.is_none() {
                return invalid(
                    "clickhouse.sync_data_dir",
                    "is for a server given by clickhouse.url; managed ClickHouse's data dir is synced already",
                );
            }
            if dir.as_os_str().is_empty() {
                return invalid("clickhouse.sync_data_dir", "must not be empty");
            }
        }
        if !is_identifier(&self.database) {
            return invalid(
                "clickhouse.database",
                format!(
                    "{:?} is not a plain identifier (letters, digits and _, not starting with a digit)",
                    self.database
                ),
            );
        }
        if let Some(cluster) = &self.cluster
            && !is_identifier(cluster)
        {
            return invalid("clickhouse.cluster", format!("{cluster:?} is not a plain identifier"));
        }
        if self.user.is_empty() {
            return invalid("clickhouse.user", "must not be empty (ClickHouse's default user is `default`)");
        }
        if self.sink_batch_lines == 0 {
            return invalid("clickhouse.sink_batch_lines", "must be at least 1");
        }
        if self.sink_batch_bytes.as_u64() == 0 {
            return invalid("clickhouse.sink_batch_bytes", "must be more than 0 bytes");
        }
        if self.sink_linger > Duration::from_secs(60) {
            return invalid(
                "clickhouse.sink_linger",
                format!(
                    "{} is longer than 60s: decisions would wait that long before ClickHouse sees them",
                    shown(self.sink_linger)
                ),
            );
        }
        if !(0..=19).contains(&self.managed_nice) {
            return invalid(
                "clickhouse.managed_nice",
                format!("must be between 0 (gatelog's own priority) and 19 (the lowest), got {}", self.managed_nice),
            );
        }
        if self.max_attempts == 0 {
            return invalid("clickhouse.max_attempts", "must be at least 1");
        }
        if self.initial_backoff > self.max_backoff {
            return invalid(
                "clickhouse.initial_backoff",
                format!(
                    "{} is longer than clickhouse.max_backoff ({})",
                    shown(self.initial_backoff),
                    shown(self.max_backoff)
                ),
            );
        }
        for (key, value) in [
            ("clickhouse.request_timeout", self.request_timeout),
            ("clickhouse.mutation_timeout", self.mutation_timeout),
        ] {
            if value < Duration::from_secs(1) || value > Duration::from_secs(86_400) {
                return invalid(key, format!("must be between 1s and 24h, got {}", shown(value)));
            }
        }
        Ok(())
    }

    /// The retry policy of writes (and of connecting, in the CLI's commands).
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
        }
    }

    /// The store's runtime options for the server at `url` (the configured one, or managed
    /// ClickHouse's): credentials leave the URL here ([`ClickHouseConfig::login`]), so the
    /// store's URL is the one safe to show. `retention_days` is the top-level `retention`
    /// in whole days.
    pub fn store_config(&self, url: &str, retention_days: Option<u32>) -> Result<StoreConfig, ConfigError> {
        let login = self.login(url)?;
        Ok(StoreConfig {
            url: login.url,
            database: self.database.clone(),
            user: login.user,
            password: login.password,
            cluster: self.cluster.clone(),
            profile: self.profile,
            retention_days,
            compression: self.compression,
            request_timeout: self.request_timeout,
            mutation_timeout: self.mutation_timeout,
            retry: self.retry(),
            ..StoreConfig::default()
        })
    }

    /// How the ClickHouse sink of `gatelog serve` groups spool records.
    pub fn sink_options(&self) -> SinkOptions {
        SinkOptions {
            max_lines: self.sink_batch_lines,
            max_bytes: self.sink_batch_bytes.as_u64(),
            linger: self.sink_linger,
            ..SinkOptions::default()
        }
    }

    /// How gatelog runs its managed server (when `url` is absent), stopped within `stop_timeout`.
    pub fn managed_options(&self, stop_timeout: Duration) -> ManagedOptions {
        ManagedOptions { nice: self.managed_nice, stop_timeout, ..ManagedOptions::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClickHouseConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn err(c: &ClickHouseConfig) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn empty_is_the_default_and_agrees_with_the_runtime_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, ClickHouseConfig::default());
        c.validate().unwrap();
        let runtime = c.store_config("http://127.0.0.1:8123", None).unwrap();
        assert_eq!(runtime, StoreConfig::default(), "one default per setting");
        assert_eq!(c.sink_options(), SinkOptions::default());
        assert_eq!(c.compression, InsertCompression::Auto);
    }

    #[test]
    fn profile_and_timeouts_are_keys() {
        let c = parse("profile = \"legacy\"\nrequest_timeout = \"20s\"\nmutation_timeout = \"2m\"\n").unwrap();
        c.validate().unwrap();
        let s = c.store_config("http://u:p@ch:8123", Some(30)).unwrap();
        assert_eq!(s.profile, Some(SchemaProfile::Legacy));
        assert_eq!((s.request_timeout, s.mutation_timeout), (Duration::from_secs(20), Duration::from_secs(120)));
        assert_eq!((s.url.as_str(), s.user.as_str(), s.password.as_str()), ("http://ch:8123", "u", "p"));
        assert_eq!(s.retention_days, Some(30));
        assert!(parse("profile = \"ancient\"\n").unwrap_err().contains("ancient"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("urll = \"http://x\"\n").unwrap_err();
        assert!(e.contains("urll"), "{e}");
    }

    #[test]
    fn every_message_names_its_key() {
        let d = ClickHouseConfig::default;
        let cases: Vec<(ClickHouseConfig, &str)> = vec![
            (ClickHouseConfig { url: Some("localhost:8123".into()), ..d() }, "clickhouse.url"),
            (ClickHouseConfig { sync_data_dir: Some("/var/lib/clickhouse".into()), ..d() }, "clickhouse.sync_data_dir"),
            (
                ClickHouseConfig { url: Some("http://h:1".into()), sync_data_dir: Some("".into()), ..d() },
                "clickhouse.sync_data_dir",
            ),
            (ClickHouseConfig { database: "drop table".into(), ..d() }, "clickhouse.database"),
            (ClickHouseConfig { cluster: Some("1c".into()), ..d() }, "clickhouse.cluster"),
            (ClickHouseConfig { user: String::new(), ..d() }, "clickhouse.user"),
            (ClickHouseConfig { sink_batch_lines: 0, ..d() }, "clickhouse.sink_batch_lines"),
            (ClickHouseConfig { sink_batch_bytes: ByteSize::b(0), ..d() }, "clickhouse.sink_batch_bytes"),
            (ClickHouseConfig { sink_linger: Duration::from_secs(61), ..d() }, "clickhouse.sink_linger"),
            (ClickHouseConfig { managed_nice: -5, ..d() }, "clickhouse.managed_nice"),
            (ClickHouseConfig { max_attempts: 0, ..d() }, "clickhouse.max_attempts"),
            (ClickHouseConfig { initial_backoff: Duration::from_secs(60), ..d() }, "clickhouse.initial_backoff"),
            (ClickHouseConfig { request_timeout: Duration::ZERO, ..d() }, "clickhouse.request_timeout"),
            (ClickHouseConfig { mutation_timeout: Duration::from_secs(90_000), ..d() }, "clickhouse.mutation_timeout"),
        ];
        for (config, key) in cases {
            let e = err(&config);
            assert!(e.starts_with(&format!("{key}: ")), "{key}: {e}");
        }
        let e = err(&ClickHouseConfig { managed_nice: -5, ..d() });
        assert!(e.contains("got -5"), "{e}");
        let ok = ClickHouseConfig {
            url: Some("http://127.0.0.1:8123".into()),
            sync_data_dir: Some("/var/lib/clickhouse".into()),
            ..d()
        };
        ok.validate().unwrap();
    }
}
