//! `gatelog.toml`: parsed, then overridden by `GATELOG_*` variables and flags, then validated.
//!
//! An empty file (or no file) is the default configuration: managed ClickHouse under
//! `./gatelog-data`, database `gatelog`. Unknown keys are errors, and every validation
//! message names the key it is about, e.g. `clickhouse.url: expected http:// or https://`.

use bytesize::ByteSize;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod login;
mod server;

pub use server::ServerSection;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where gatelog keeps its state: the managed ClickHouse, later the spool and index.
    pub data_dir: PathBuf,
    pub clickhouse: ClickHouseSection,
    pub ingest: IngestSection,
    pub server: ServerSection,
    /// `[receiver]`: tokens, body limits, backpressure of the HTTP ingest routes.
    pub receiver: gatelog_ingest::http::ReceiverConfig,
    /// `[auth]`: API tokens with roles (as SHA-256), a tokens file, and who reads
    /// `/healthz`, `/readyz`, `/metrics` without a token.
    pub auth: gatelog_edge::config::AuthConfig,
    pub spool: SpoolSection,
    pub index: IndexSection,
    pub report: ReportSection,
    /// `[detect]`: the detectors and their runtime in `gatelog serve` (every key, with its
    /// default, in `examples/detect.toml`).
    pub detect: gatelog_detect::DetectConfig,
}

/// `[report]`: evidence reports and bundles.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportSection {
    /// The Ed25519 key that signs evidence bundles (`gatelog keys init` creates it). Absent:
    /// `<data_dir>/keys/signing.key`. Its public key sits beside it as `signing.pub`.
    pub signing_key: Option<PathBuf>,
}

/// `[spool]`: the write-ahead log under `<data_dir>/spool`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolSection {
    /// Total size; beyond it ingest answers 429 with Retry-After.
    pub max_bytes: ByteSize,
    pub segment_bytes: ByteSize,
    /// Turn off only for benchmarks: a 2xx would no longer mean durable.
    pub fsync: bool,
}

impl Default for SpoolSection {
    fn default() -> Self {
        SpoolSection { max_bytes: ByteSize::gib(4), segment_bytes: ByteSize::mib(64), fsync: true }
    }
}

/// `[index]`: the tantivy full-text index under `<data_dir>/index`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexSection {
    pub enabled: bool,
    /// The index sink commits at least this often while anything is waiting.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// tantivy's indexing memory per day being written (usually one or two days at once);
    /// when full, tantivy writes a segment early. At least 15 MB.
    pub writer_memory: ByteSize,
    /// The most decisions one background merge of a day's segments may produce. A merge
    /// holds memory in proportion to its size; a large day ends in more, smaller segments.
    pub merge_max_docs: u64,
    /// Copies of one event (Tail and Logpush) whose times are at most this far apart are one
    /// search hit even when they fall on both sides of midnight (ClickHouse counts them once
    /// whatever the distance). Each decision this close to midnight costs a delete in the
    /// neighbouring day's index. At most 24h.
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
}

impl Default for IndexSection {
    fn default() -> Self {
        IndexSection {
            enabled: true,
            commit_interval: Duration::from_secs(1),
            writer_memory: ByteSize::mib(32),
            merge_max_docs: 100_000,
            dedup_window: Duration::from_secs(3600),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("gatelog-data"),
            clickhouse: ClickHouseSection::default(),
            ingest: IngestSection::default(),
            server: ServerSection::default(),
            receiver: gatelog_ingest::http::ReceiverConfig::default(),
            auth: gatelog_edge::config::AuthConfig::default(),
            spool: SpoolSection::default(),
            index: IndexSection::default(),
            report: ReportSection::default(),
            detect: gatelog_detect::DetectConfig::default(),
        }
    }
}

/// `[clickhouse]`: the store of record. Its `Debug` hides the password and the URL's.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseSection {
    /// HTTP URL of an existing server. Absent: gatelog starts and stops its own.
    pub url: Option<String>,
    pub database: String,
    pub user: String,
    pub password: String,
    /// A cluster name from the server's `remote_servers`: tables are created `ON CLUSTER`.
    pub cluster: Option<String>,
    /// `auto` (LZ4 for remote servers, none on loopback, where it only costs CPU), `lz4`, `none`.
    pub compression: gatelog_store::InsertCompression,
    /// Attempts per write before giving up on a retryable error.
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
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
    /// forget records ClickHouse stored, as it does for managed ClickHouse: ClickHouse does
    /// not fsync its parts by default, and a machine crash would lose what the spool let go.
    pub sync_data_dir: Option<PathBuf>,
}

impl ClickHouseSection {
    /// How the ClickHouse sink of `gatelog serve` groups spool records.
    pub fn sink_options(&self) -> gatelog_store::sink::SinkOptions {
        gatelog_store::sink::SinkOptions {
            max_lines: self.sink_batch_lines,
            max_bytes: self.sink_batch_bytes.as_u64(),
            linger: self.sink_linger,
            ..gatelog_store::sink::SinkOptions::default()
        }
    }
}

impl Default for ClickHouseSection {
    fn default() -> Self {
        ClickHouseSection {
            url: None,
            database: "gatelog".to_owned(),
            user: "default".to_owned(),
            password: String::new(),
            cluster: None,
            compression: gatelog_store::InsertCompression::Auto,
            max_attempts: 8,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            sink_batch_lines: 100_000,
            sink_batch_bytes: ByteSize::mib(32),
            sink_linger: Duration::from_secs(1),
            managed_nice: 19,
            sync_data_dir: None,
        }
    }
}

/// `[ingest]`: how files and bodies are cut and bounded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Lines per batch (one body of the file, mapped as the receiver maps a request): the
    /// unit of idempotence.
    pub batch_lines: usize,
    /// A batch closes once it holds this many bytes of NDJSON (bounds memory, and keeps the
    /// mapped batch within one spool record and the body within what a server accepts).
    pub batch_bytes: ByteSize,
    /// A longer line becomes a dead letter instead of being parsed.
    pub max_line_bytes: ByteSize,
    /// Cap on the inflated size of one gzip member stream (decompression-bomb guard).
    pub max_decompressed_bytes: ByteSize,
    /// Batches mapped ahead of the one being appended to the spool (or posted).
    pub write_concurrency: usize,
    /// Lines whose event time lies more than this before the ingest run are dead letters.
    #[serde(with = "humantime_serde")]
    pub max_event_age: Duration,
    /// Lines whose event time lies more than this after the ingest run are dead letters.
    #[serde(with = "humantime_serde")]
    pub max_event_lead: Duration,
}

/// The largest `ingest.batch_bytes`: its mapped batch (about twice the NDJSON) stays well
/// within a spool record (256 MiB), and the body within the receiver's `max_body_bytes`.
pub const MAX_INGEST_BATCH_BYTES: ByteSize = ByteSize::mib(64);

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            batch_lines: 50_000,
            batch_bytes: ByteSize::mib(32),
            max_line_bytes: ByteSize::mib(1),
            max_decompressed_bytes: ByteSize::gib(64),
            write_concurrency: 2,
            max_event_age: gatelog_ingest::window::DEFAULT_MAX_AGE,
            max_event_lead: gatelog_ingest::window::DEFAULT_MAX_LEAD,
        }
    }
}

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
}

impl Config {
    /// The bundle signing key's file: `report.signing_key`, else `<data_dir>/keys/signing.key`.
    pub fn signing_key_path(&self) -> PathBuf {
        self.report.signing_key.clone().unwrap_or_else(|| self.data_dir.join("keys").join("signing.key"))
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
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
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

    /// Checks what serde cannot: ranges, formats, combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty".into());
        }
        if let Some(url) = &self.clickhouse.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid(
                    "clickhouse.url",
                    format!(
                        "expected an http:// or https:// URL of ClickHouse's HTTP interface, got \"{}\"",
                        gatelog_model::RedactedUrl::new(url)
                    ),
                );
            }
            self.clickhouse.login(url)?;
        }
        if let Some(dir) = &self.clickhouse.sync_data_dir {
            if self.clickhouse.url.is_none() {
                return invalid(
                    "clickhouse.sync_data_dir",
                    "is for a server given by clickhouse.url; managed ClickHouse's data dir is synced already".into(),
                );
            }
            if dir.as_os_str().is_empty() {
                return invalid("clickhouse.sync_data_dir", "must not be empty".into());
            }
        }
        if !is_identifier(&self.clickhouse.database) {
            return invalid(
                "clickhouse.database",
                format!(
                    "{:?} is not a plain identifier (letters, digits and _, not starting with a digit)",
                    self.clickhouse.database
                ),
            );
        }
        if let Some(cluster) = &self.clickhouse.cluster
            && !is_identifier(cluster)
        {
            return invalid("clickhouse.cluster", format!("{cluster:?} is not a plain identifier"));
        }
        if self.clickhouse.user.is_empty() {
            return invalid("clickhouse.user", "must not be empty (ClickHouse's default user is `default`)".into());
        }
        if self.clickhouse.sink_batch_lines == 0 {
            return invalid("clickhouse.sink_batch_lines", "must be at least 1".into());
        }
        if self.clickhouse.sink_batch_bytes.as_u64() == 0 {
            return invalid("clickhouse.sink_batch_bytes", "must be more than 0 bytes".into());
        }
        if self.clickhouse.sink_linger > Duration::from_secs(60) {
            return invalid(
                "clickhouse.sink_linger",
                format!(
                    "{} is longer than 60s: decisions would wait that long before ClickHouse sees them",
                    humantime::format_duration(self.clickhouse.sink_linger)
                ),
            );
        }
        if !(0..=19).contains(&self.clickhouse.managed_nice) {
            return invalid(
                "clickhouse.managed_nice",
                format!(
                    "must be between 0 (gatelog's own priority) and 19 (the lowest), got {}",
                    self.clickhouse.managed_nice
                ),
            );
        }
        if self.clickhouse.max_attempts == 0 {
            return invalid("clickhouse.max_attempts", "must be at least 1".into());
        }
        if self.clickhouse.initial_backoff > self.clickhouse.max_backoff {
            return invalid(
                "clickhouse.initial_backoff",
                format!(
                    "{} is longer than clickhouse.max_backoff ({})",
                    humantime::format_duration(self.clickhouse.initial_backoff),
                    humantime::format_duration(self.clickhouse.max_backoff)
                ),
            );
        }
        if !(1..=1_000_000).contains(&self.ingest.batch_lines) {
            return invalid(
                "ingest.batch_lines",
                format!("must be between 1 and 1000000, got {}", self.ingest.batch_lines),
            );
        }
        if self.ingest.batch_bytes < self.ingest.max_line_bytes {
            return invalid("ingest.batch_bytes", "must be at least ingest.max_line_bytes".into());
        }
        if self.ingest.batch_bytes > MAX_INGEST_BATCH_BYTES {
            return invalid(
                "ingest.batch_bytes",
                format!(
                    "must be at most {MAX_INGEST_BATCH_BYTES} (a batch, mapped, is one spool record), got {}",
                    self.ingest.batch_bytes
                ),
            );
        }
        if self.ingest.max_line_bytes.as_u64() < 1024 {
            return invalid(
                "ingest.max_line_bytes",
                format!("must be at least 1 KiB, got {}", self.ingest.max_line_bytes),
            );
        }
        if self.ingest.max_decompressed_bytes < self.ingest.max_line_bytes {
            return invalid("ingest.max_decompressed_bytes", "must be at least ingest.max_line_bytes".into());
        }
        if self.ingest.max_event_age < Duration::from_secs(3600)
            || self.ingest.max_event_age > Duration::from_secs(100 * 31_557_600)
        {
            return invalid(
                "ingest.max_event_age",
                format!(
                    "must be between 1h and 100years, got {}",
                    humantime::format_duration(self.ingest.max_event_age)
                ),
            );
        }
        if self.ingest.max_event_lead > Duration::from_secs(366 * 86_400) {
            return invalid(
                "ingest.max_event_lead",
                format!("must be at most 366days, got {}", humantime::format_duration(self.ingest.max_event_lead)),
            );
        }
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
        if self.spool.segment_bytes.as_u64() < 1 << 20 || self.spool.segment_bytes > self.spool.max_bytes {
            return invalid("spool.segment_bytes", "must be at least 1 MiB and at most spool.max_bytes".into());
        }
        if self.index.writer_memory.as_u64() < 15_000_000 || self.index.writer_memory > ByteSize::gib(4) {
            return invalid(
                "index.writer_memory",
                format!("must be between 15 MB (tantivy's minimum) and 4 GiB, got {}", self.index.writer_memory),
            );
        }
        if !(10_000..=10_000_000).contains(&self.index.merge_max_docs) {
            return invalid(
                "index.merge_max_docs",
                format!("must be between 10000 and 10000000, got {}", self.index.merge_max_docs),
            );
        }
        if self.index.dedup_window > Duration::from_secs(86_400) {
            return invalid(
                "index.dedup_window",
                format!("must be at most 24h, got {}", humantime::format_duration(self.index.dedup_window)),
            );
        }
        if self.index.commit_interval.is_zero() {
            return invalid("index.commit_interval", "must be longer than 0s".into());
        }
        if self.report.signing_key.as_ref().is_some_and(|p| p.as_os_str().is_empty() || p.ends_with("..")) {
            return invalid(
                "report.signing_key",
                "must name a file (or be left out for <data_dir>/keys/signing.key)".into(),
            );
        }
        if !(1..=64).contains(&self.ingest.write_concurrency) {
            return invalid(
                "ingest.write_concurrency",
                format!("must be between 1 and 64, got {}", self.ingest.write_concurrency),
            );
        }
        Ok(())
    }
}

/// Loads the file named by `--config`, applies flags and environment, and validates.
pub fn resolve(args: &crate::cli::StoreArgs) -> Result<Config, ConfigError> {
    let config = Config::load(args.config.as_deref())?.apply(args.overrides());
    config.validate()?;
    Ok(config)
}

/// [`resolve`] for the commands that only need the key's location (`keys`, `verify`).
pub fn resolve_keys(args: &crate::cli::KeyLocationArgs) -> Result<Config, ConfigError> {
    let overrides = Overrides { data_dir: args.data_dir.clone(), ..Overrides::default() };
    let config = Config::load(args.config.as_deref())?.apply(overrides);
    config.validate()?;
    Ok(config)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

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
