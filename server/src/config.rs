//! `gatelog.toml`: parsed, then overridden by `GATELOG_*` variables and flags, then validated.
//!
//! An empty file (or no file) is the default configuration: managed ClickHouse under
//! `./gatelog-data`, database `gatelog`. Unknown keys are errors, and every validation
//! message names the key it is about, e.g. `clickhouse.url: expected http:// or https://`.
//!
//! The pattern: each crate owns its section's type (serde, `deny_unknown_fields`, `Default`,
//! `validate()` naming the full key) and the method that turns it into its runtime options;
//! [`Config`] only composes them: `[clickhouse]` is `gatelog_store::ClickHouseConfig`,
//! `[spool]` `gatelog_spool::SpoolConfig`, `[index]` `gatelog_index::IndexConfig`,
//! `[receiver]` `gatelog_ingest::http::ReceiverConfig`, `[detect]` `gatelog_detect::DetectConfig`.
//! The binary's own sections are here: `[server]` (`config::server`), `[ingest]` (the
//! `gatelog ingest` command, `config::ingest`), `[report]`, and the top-level `data_dir` and
//! `retention`, which reaches ClickHouse and the index alike.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod ingest;
mod server;

pub use ingest::IngestSection;
pub use server::ServerSection;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where gatelog keeps its state: the managed ClickHouse, the spool, the index.
    pub data_dir: PathBuf,
    /// How long decisions, raw records and dead letters are kept, in ClickHouse (month
    /// partitions wholly older are dropped; 20.5+ also a row TTL) and in the index (day
    /// folders wholly older are deleted). Whole days; absent keeps everything. Never applied
    /// to `ingest_batches` or to detection's tables (README, "Retention").
    #[serde(with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// `[clickhouse]`: the store of record (every key in `examples/gatelog.toml`).
    pub clickhouse: gatelog_store::ClickHouseConfig,
    pub ingest: IngestSection,
    pub server: ServerSection,
    /// `[receiver]`: tokens, body limits, backpressure of the HTTP ingest routes.
    pub receiver: gatelog_ingest::http::ReceiverConfig,
    /// `[auth]`: API tokens with roles (as SHA-256), a tokens file, and who reads
    /// `/healthz`, `/readyz`, `/metrics` without a token.
    pub auth: gatelog_edge::config::AuthConfig,
    pub spool: gatelog_spool::SpoolConfig,
    pub index: gatelog_index::IndexConfig,
    pub report: ReportSection,
    /// `[detect]`: the detectors and their runtime in `gatelog serve` (every key, with its
    /// default, in `examples/detect.toml`).
    pub detect: gatelog_detect::DetectConfig,
    /// `[notify]`: e-mail to on-call for every opened alert (SMTP, or `.eml` files under
    /// `<data_dir>/outbox`).
    pub notify: gatelog_notify::NotifyConfig,
}

/// `[report]`: evidence reports and bundles.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportSection {
    /// The Ed25519 key that signs evidence bundles (`gatelog keys init` creates it). Absent:
    /// `<data_dir>/keys/signing.key`. Its public key sits beside it as `signing.pub`.
    pub signing_key: Option<PathBuf>,
    /// How often `gatelog serve` records the head of the hash chain over stored batches in
    /// `chain_checkpoints`, signed with `signing_key` when it exists; `0s` never does.
    #[serde(with = "humantime_serde")]
    pub chain_checkpoint_interval: std::time::Duration,
    /// The proxy's policy file: `gatelog serve` records each new version of it in
    /// `config_versions` (checked at start and every minute) as change evidence (CC8.1).
    pub proxy_policy: Option<PathBuf>,
}

impl Default for ReportSection {
    fn default() -> Self {
        ReportSection {
            signing_key: None,
            chain_checkpoint_interval: std::time::Duration::from_secs(600),
            proxy_policy: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("gatelog-data"),
            retention: None,
            clickhouse: gatelog_store::ClickHouseConfig::default(),
            ingest: IngestSection::default(),
            server: ServerSection::default(),
            receiver: gatelog_ingest::http::ReceiverConfig::default(),
            auth: gatelog_edge::config::AuthConfig::default(),
            spool: gatelog_spool::SpoolConfig::default(),
            index: gatelog_index::IndexConfig::default(),
            report: ReportSection::default(),
            detect: gatelog_detect::DetectConfig::default(),
            notify: gatelog_notify::NotifyConfig::default(),
        }
    }
}

/// The longest `retention` (a DateTime TTL must stay within 2105 on every server).
const MAX_RETENTION_DAYS: u64 = 36_500;

/// Values from flags and their `GATELOG_*` twins; `None` leaves the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub clickhouse_url: Option<String>,
    pub clickhouse_database: Option<String>,
    pub clickhouse_user: Option<String>,
    pub clickhouse_password: Option<String>,
    pub listen: Option<std::net::SocketAddr>,
    /// Ingest tokens from flags/env; non-empty replaces the file's `receiver.tokens`.
    pub ingest_tokens: Vec<String>,
    /// `--tokens-file`: replaces `auth.tokens_file`.
    pub tokens_file: Option<PathBuf>,
}

/// A configuration problem, naming the key (or the file) it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    /// The receiver's own validation, which names its key (`receiver.tokens[1]: …`).
    #[error("{0}")]
    Receiver(String),
    /// `[auth]`'s own validation, which names its key (`auth.tokens[0].sha256: …`).
    #[error("{0}")]
    Auth(#[from] gatelog_edge::config::ConfigError),
    /// `[detect]`'s own validation, which names its key (`detect.deny_burst_ip.threshold: …`).
    #[error("{0}")]
    Detect(#[from] gatelog_detect::ConfigError),
    /// A Sigma rule file of `detect.sigma_dir` that cannot be used (names the file).
    #[error("{0}")]
    Sigma(#[from] gatelog_detect::SigmaError),
    /// `[clickhouse]`'s own validation (`clickhouse.database: …`).
    #[error("{0}")]
    Store(#[from] gatelog_store::config::ConfigError),
    /// `[spool]`'s own validation (`spool.segment_bytes: …`).
    #[error("{0}")]
    Spool(#[from] gatelog_spool::config::ConfigError),
    /// `[index]`'s own validation (`index.merge_max_docs: …`).
    #[error("{0}")]
    Index(#[from] gatelog_index::config::ConfigError),
    /// `[notify]`'s own validation, which names its key (`notify.smtp.tls: …`).
    #[error("{0}")]
    Notify(#[from] gatelog_notify::ConfigError),
}

impl Config {
    /// The bundle signing key's file: `report.signing_key`, else `<data_dir>/keys/signing.key`.
    pub fn signing_key_path(&self) -> PathBuf {
        self.report.signing_key.clone().unwrap_or_else(|| self.data_dir.join("keys").join("signing.key"))
    }

    /// Parses the Sigma rules of `detect.sigma_dir` into `detect.sigma_rules` (every file at
    /// start; an unusable one is an error naming it).
    pub fn load_sigma(&mut self) -> Result<(), ConfigError> {
        self.detect.sigma_rules = gatelog_watch::sigma::load(self.detect.sigma_dir.as_deref())?;
        Ok(())
    }

    /// Reads a TOML file; `None` means the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(&text).map_err(|message| ConfigError::Parse { path: path.to_owned(), message })
    }

    /// Parses TOML text; the error is toml's message, which names the key and line.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| {
            let message = e.to_string().trim_end().to_owned();
            // Written under a section (or below one, which TOML reads as inside it).
            if message.contains("unknown field `retention`") {
                format!(
                    "{message}\nretention is a top-level key: put it above the first [section] \
                     (it applies to ClickHouse and the index alike)"
                )
            } else {
                message
            }
        })
    }

    /// Applies flags and environment variables over the file's values.
    pub fn apply(mut self, o: Overrides) -> Config {
        if let Some(v) = o.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = o.clickhouse_url {
            self.clickhouse.url = (!v.trim().is_empty()).then_some(v);
        }
        if let Some(v) = o.clickhouse_database {
            self.clickhouse.database = v;
        }
        if let Some(v) = o.clickhouse_user {
            self.clickhouse.user = v;
        }
        if let Some(v) = o.clickhouse_password {
            self.clickhouse.password = v;
        }
        if let Some(v) = o.listen {
            self.server.listen = v;
        }
        if !o.ingest_tokens.is_empty() {
            self.receiver.tokens = o.ingest_tokens;
        }
        if let Some(v) = o.tokens_file {
            self.auth.tokens_file = Some(v);
        }
        self
    }

    /// `retention` in whole days, as ClickHouse's retention takes it.
    pub fn retention_days(&self) -> Option<u32> {
        self.retention.map(|r| u32::try_from(r.as_secs() / 86_400).unwrap_or(u32::MAX))
    }

    /// The store's runtime options for the server at `url` (configured or managed):
    /// `[clickhouse]` with `retention`.
    pub fn store_config(&self, url: &str) -> Result<gatelog_store::StoreConfig, ConfigError> {
        Ok(self.clickhouse.store_config(url, self.retention_days())?)
    }

    /// The index's options: `[index]` with `retention`.
    pub fn indexer_options(&self) -> gatelog_index::IndexerOptions {
        self.index.indexer_options(self.retention)
    }

    /// Checks what serde cannot: ranges, formats, combinations. Each section checks its own
    /// keys; this checks the top-level ones.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty".into());
        }
        if let Some(retention) = self.retention {
            let shown = humantime::format_duration(retention);
            if retention < Duration::from_secs(86_400) {
                return invalid("retention", format!("must be at least 1day, got {shown}"));
            }
            if retention.as_secs() % 86_400 != 0 || retention.subsec_nanos() != 0 {
                return invalid("retention", format!("must be whole days (e.g. \"400days\"), got {shown}"));
            }
            if retention.as_secs() / 86_400 > MAX_RETENTION_DAYS {
                return invalid(
                    "retention",
                    format!("must be at most {MAX_RETENTION_DAYS}days (leave it out to keep everything), got {shown}"),
                );
            }
        }
        self.clickhouse.validate()?;
        self.ingest.validate()?;
        self.server.validate()?;
        if let Err(e) = self.receiver.validate() {
            return Err(ConfigError::Receiver(e.to_string()));
        }
        self.auth.validate()?;
        if self.receiver.allow_unauthenticated
            && self.auth.tokens.iter().any(|t| t.role == gatelog_edge::auth::Role::Ingest)
        {
            return invalid(
                "receiver.allow_unauthenticated",
                "must be false when auth.tokens hold an ingest token".into(),
            );
        }
        self.detect.validate()?;
        self.notify.validate()?;
        self.spool.validate()?;
        self.index.validate()?;
        if self.report.signing_key.as_ref().is_some_and(|p| p.as_os_str().is_empty() || p.ends_with("..")) {
            return invalid(
                "report.signing_key",
                "must name a file (or be left out for <data_dir>/keys/signing.key)".into(),
            );
        }
        let every = self.report.chain_checkpoint_interval;
        if !every.is_zero() && every < std::time::Duration::from_secs(1) {
            return invalid(
                "report.chain_checkpoint_interval",
                format!("{} is below 1s (0s turns the checkpoints off)", humantime::format_duration(every)),
            );
        }
        if self.report.proxy_policy.as_ref().is_some_and(|p| p.as_os_str().is_empty() || p.ends_with("..")) {
            return invalid("report.proxy_policy", "must name the proxy's policy file (or be left out)".into());
        }
        Ok(())
    }
}

/// Loads the file named by `--config`, applies flags and environment, and validates.
/// Also parses the Sigma rules of `detect.sigma_dir`, so every command sees the same rules.
pub fn resolve(args: &crate::cli::StoreArgs) -> Result<Config, ConfigError> {
    let mut config = Config::load(args.config.as_deref())?.apply(args.overrides());
    config.validate()?;
    config.load_sigma()?;
    Ok(config)
}

/// [`resolve`] for the commands that only need the key's location (`keys`, `verify`).
pub fn resolve_keys(args: &crate::cli::KeyLocationArgs) -> Result<Config, ConfigError> {
    let overrides = Overrides { data_dir: args.data_dir.clone(), ..Overrides::default() };
    let config = Config::load(args.config.as_deref())?.apply(overrides);
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytesize::ByteSize;

    #[test]
    fn every_section_alone_and_empty_is_the_default() {
        for section in ["clickhouse", "ingest", "server", "receiver", "spool", "index", "report", "detect"] {
            let c = Config::parse(&format!("[{section}]\n")).unwrap();
            assert_eq!(c, Config::default(), "[{section}]");
        }
        let c = Config::default();
        assert_eq!(c.clickhouse.compression, gatelog_store::InsertCompression::Auto);
        assert_eq!(c.store_config("http://ch:8123").unwrap().compression, gatelog_store::InsertCompression::Auto);
        assert_eq!(c.indexer_options(), gatelog_index::IndexerOptions::default());
        assert_eq!(c.spool.options(), gatelog_spool::SpoolOptions::default());
    }

    #[test]
    fn unknown_keys_are_named_in_every_section() {
        for (text, key) in [
            ("retension = \"90days\"\n", "retension"),
            ("[clickhouse]\nretention = \"90days\"\n", "retention is a top-level key"),
            ("[index]\nenabled = true\nretention = \"90days\"\n", "above the first [section]"),
            ("[spool]\nmax_byte = 1\n", "max_byte"),
            ("[index]\nenable = false\n", "enable"),
            ("[ingest]\nbatch_line = 1\n", "batch_line"),
            ("[server]\nlisten_addr = \"x\"\n", "listen_addr"),
            ("[storage]\n", "storage"),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn retention_is_whole_days_and_reaches_clickhouse_and_the_index() {
        let c = Config::parse("retention = \"400days\"\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.retention_days(), Some(400));
        assert_eq!(c.store_config("http://ch:8123").unwrap().retention_days, Some(400));
        assert_eq!(c.indexer_options().retention, Some(Duration::from_secs(400 * 86_400)));
        assert_eq!(Config::default().store_config("http://ch:8123").unwrap().retention_days, None);
        assert_eq!(Config::default().indexer_options().retention, None);
        for (text, says) in [
            ("retention = \"12h\"\n", "at least 1day"),
            ("retention = \"36h\"\n", "whole days"),
            ("retention = \"200years\"\n", "at most 36500days"),
        ] {
            let err = Config::parse(text).unwrap().validate().unwrap_err().to_string();
            assert!(err.starts_with("retention: ") && err.contains(says), "{text}: {err}");
        }
        assert!(Config::parse("retention = 90\n").unwrap_err().contains("retention"));
    }

    #[test]
    fn profile_and_timeouts_come_from_the_file() {
        let c = Config::parse(
            "[clickhouse]\nprofile = \"modern\"\nrequest_timeout = \"30s\"\nmutation_timeout = \"10m\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        let s = c.store_config("http://ch:8123").unwrap();
        assert_eq!(s.profile, Some(gatelog_store::SchemaProfile::Modern));
        assert_eq!((s.request_timeout, s.mutation_timeout), (Duration::from_secs(30), Duration::from_secs(600)));
        let err = Config::parse("[clickhouse]\nrequest_timeout = \"0s\"\n").unwrap().validate().unwrap_err();
        assert!(err.to_string().starts_with("clickhouse.request_timeout: "), "{err}");
    }

    #[test]
    fn sections_validate_with_their_keys() {
        for (text, key) in [
            ("[spool]\nsegment_bytes = \"10 KiB\"\n", "spool.segment_bytes"),
            ("[index]\ncommit_interval = \"0s\"\n", "index.commit_interval"),
            ("[ingest]\nwrite_concurrency = 0\n", "ingest.write_concurrency"),
            ("[clickhouse]\nmax_attempts = 0\n", "clickhouse.max_attempts"),
            ("data_dir = \"\"\n", "data_dir"),
        ] {
            let err = Config::parse(text).unwrap().validate().unwrap_err().to_string();
            assert!(err.starts_with(&format!("{key}: ")), "{text}: {err}");
        }
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        Config::default().validate().unwrap();
    }

    #[test]
    fn detect_section_is_embedded_validated_and_strict() {
        let c = Config::parse("[detect]\n").unwrap();
        assert_eq!(c.detect, gatelog_detect::DetectConfig::default());
        assert!(c.detect.enabled, "detection is on unless turned off");
        let c = Config::parse("[detect]\nenabled = false\n[detect.alerts]\nsuppression_window = \"2h\"\n").unwrap();
        assert!(!c.detect.enabled);
        assert_eq!(c.detect.alerts.suppression_window, Duration::from_secs(7200));
        let err = Config::parse("[detect.deny_burst_ip]\nthreshhold = 3\n").unwrap_err();
        assert!(err.contains("threshhold"), "{err}");
        let c = Config::parse("[detect.deny_burst_ip]\nthreshold = 1\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("detect.deny_burst_ip.threshold:"), "{err}");
        let c = Config::parse("[detect.runtime]\ntick_interval = \"0s\"\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().starts_with("detect.runtime.tick_interval:"));
    }

    #[test]
    fn notify_section_is_embedded_validated_and_strict() {
        let c = Config::parse("[notify]\n").unwrap();
        assert_eq!(c.notify, gatelog_notify::NotifyConfig::default());
        assert!(c.notify.enabled && c.notify.smtp.is_none(), "on, writing .eml files, unless configured");
        let err = Config::parse("[notify.smtp]\nhots = \"x\"\n").unwrap_err();
        assert!(err.contains("hots"), "{err}");
        let c = Config::parse(
            "[notify]\nto = [\"oncall@example.com\"]\n[notify.smtp]\nhost = \"mail.example.com\"\ntls = \"none\"\n",
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("notify.smtp.tls:") && err.contains("mail.example.com"), "{err}");
        let c = Config::parse("[notify.retry]\ninitial_backoff = \"2h\"\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().starts_with("notify.retry.initial_backoff:"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[clickhouse]\nurll = \"http://x\"\n").unwrap_err();
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn units_parse() {
        let c = Config::parse(
            "[clickhouse]\ninitial_backoff = \"50ms\"\nmax_backoff = \"2s\"\n[ingest]\nmax_line_bytes = \"2 MiB\"\n",
        )
        .unwrap();
        assert_eq!(c.clickhouse.initial_backoff, Duration::from_millis(50));
        assert_eq!(c.ingest.max_line_bytes, ByteSize::mib(2));
    }

    #[test]
    fn validation_names_the_key() {
        let c = Config::parse("[server]\nheader_read_timeout = \"0s\"\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("server.header_read_timeout:") && err.contains("100ms"), "{err}");
        let c = Config::parse("[server]\nmax_connections = 0\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().starts_with("server.max_connections:"));
        let c = Config::parse("[ingest]\nmax_event_lead = \"3years\"\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().starts_with("ingest.max_event_lead:"));
        let c = Config::parse("[server]\nidle_timeout = \"90s\"\nmin_body_rate = \"1 KiB\"\n").unwrap();
        c.validate().unwrap();
        assert_eq!((c.server.limits().idle_timeout, c.server.limits().min_body_rate), (Duration::from_secs(90), 1024));
        let mut c = Config::default();
        c.clickhouse.url = Some("localhost:8123".into());
        assert!(c.validate().unwrap_err().to_string().starts_with("clickhouse.url:"));
        let mut c = Config::default();
        c.clickhouse.database = "drop table".into();
        assert!(c.validate().unwrap_err().to_string().starts_with("clickhouse.database:"));
        let mut c = Config::default();
        c.ingest.batch_lines = 0;
        assert!(c.validate().unwrap_err().to_string().starts_with("ingest.batch_lines:"));
        let mut c = Config::default();
        c.clickhouse.managed_nice = -5;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("clickhouse.managed_nice:") && err.contains("got -5"), "{err}");
        let c = Config::parse("[index]\nmerge_max_docs = 500\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("index.merge_max_docs:") && err.contains("got 500"), "{err}");
        let c = Config::parse("[clickhouse]\nsync_data_dir = \"/var/lib/clickhouse\"\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("clickhouse.sync_data_dir:") && err.contains("managed"), "{err}");
        let c =
            Config::parse("[clickhouse]\nurl = \"http://127.0.0.1:8123\"\nsync_data_dir = \"/var/lib/clickhouse\"\n")
                .unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn the_signing_key_defaults_under_the_data_dir() {
        let c = Config::parse("data_dir = \"/srv/gatelog\"\n").unwrap();
        assert_eq!(c.signing_key_path(), PathBuf::from("/srv/gatelog/keys/signing.key"));
        let c = Config::parse("[report]\nsigning_key = \"/etc/gatelog/bundle.key\"\n").unwrap();
        assert_eq!(c.signing_key_path(), PathBuf::from("/etc/gatelog/bundle.key"));
        let err = Config::parse("[report]\nsigning_key = \"\"\n").unwrap().validate().unwrap_err().to_string();
        assert!(err.starts_with("report.signing_key:"), "{err}");
        assert!(Config::parse("[report]\nkey = \"x\"\n").unwrap_err().contains("key"));
        let c = Config::parse("[report]\nchain_checkpoint_interval = \"1m\"\n").unwrap();
        assert_eq!(c.report.chain_checkpoint_interval, std::time::Duration::from_secs(60));
        let err = Config::parse("[report]\nchain_checkpoint_interval = \"10ms\"\n").unwrap().validate().unwrap_err();
        assert!(err.to_string().starts_with("report.chain_checkpoint_interval:"), "{err}");
        let c = Config::parse("[report]\nproxy_policy = \"/etc/gatelog/policy.toml\"\n").unwrap();
        assert_eq!(c.report.proxy_policy, Some(PathBuf::from("/etc/gatelog/policy.toml")));
        let err = Config::parse("[report]\nproxy_policy = \"\"\n").unwrap().validate().unwrap_err().to_string();
        assert!(err.starts_with("report.proxy_policy:"), "{err}");
    }

    #[test]
    fn overrides_win_and_empty_url_means_managed() {
        let c = Config::parse("[clickhouse]\nurl = \"http://a:8123\"\ndatabase = \"x\"\n").unwrap();
        let c = c.apply(Overrides {
            clickhouse_url: Some(String::new()),
            clickhouse_database: Some("y".into()),
            ..Overrides::default()
        });
        assert_eq!(c.clickhouse.url, None);
        assert_eq!(c.clickhouse.database, "y");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_shipped_example_is_valid_and_equals_the_defaults() {
        let text = include_str!("../../examples/gatelog.toml");
        let config = Config::parse(text).unwrap();
        config.validate().unwrap();
        assert_eq!(config, Config::default());
    }

    /// `examples/detect.toml` is the `[detect]` section spelled out: appended to a config
    /// without one, it parses, validates and is the default.
    #[test]
    fn the_detect_example_is_a_valid_detect_section() {
        let text = include_str!("../../examples/detect.toml");
        let config = Config::parse(text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.detect, gatelog_detect::DetectConfig::default());
    }
}
