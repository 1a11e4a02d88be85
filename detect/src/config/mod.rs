//! [`DetectConfig`]: the `[detect]` section of `gatelog.toml`, owned by this crate so the
//! binary embeds it as it is (`pub detect: gatelog_detect::DetectConfig`).
//!
//! Every table uses `deny_unknown_fields` and `default`: an empty `[detect]` is the
//! default configuration, and a misspelt key is an error naming it. Durations are
//! humantime (`"5m"`, `"14d"`), byte sizes bytesize (`"100 GiB"`), severities `info`,
//! `low`, `medium`, `high` or `critical`. [`DetectConfig::validate`] checks what serde
//! cannot, with messages that name the key (`detect.deny_burst_ip.threshold: must be at
//! least 2, got 1`). Every key, with its default, is in `examples/detect.toml`.

mod canary;
mod query_log;
mod rules;
mod sql_rules;

pub use canary::CanaryConfig;
pub use query_log::QueryLogConfig;

pub use rules::{
    DenyBurstConfig, DlpConfig, NoveltyConfig, OffHoursConfig, PrivilegedConfig, RarePairConfig, RunawayConfig,
    RunawayLimits, SilenceConfig, TravelConfig, VolumeConfig, VolumeOverride,
};
pub use sql_rules::SqlRulesConfig;

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[detect]`: which detectors run, their thresholds, and the bounds on their memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Run detection at all.
    pub enabled: bool,
    /// Principal profiles kept per tenant; beyond it the least recently seen tenth is dropped.
    pub max_principals: usize,
    /// Tenants detected on; decisions of further tenants are counted and skipped.
    pub max_tenants: usize,
    /// Datasets whose decisions reach gatelog by more than one path (a Worker's decision by
    /// Tail and again in `workers_trace_events`): a decision of these whose event id was seen
    /// within `dedup_window` of event time is a duplicate and is not counted twice. (A batch
    /// the spool holds twice is skipped whole, whatever its dataset.)
    pub dedup_datasets: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// At most this many recent event ids are remembered for that.
    pub dedup_capacity: usize,
    /// Rules as code: a directory of user `*.toml` SQL rules, loaded after the built-in
    /// `rules/` (`gatelog rules`); an id may not repeat. Relative to the working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_dir: Option<std::path::PathBuf>,
    /// Sigma rules: a directory of `*.yml` / `*.yaml` Sigma rule files (product `gatelog`,
    /// the decision fields of `rules/sigma/README.md`), evaluated in the stream beside the
    /// built-in detectors. Every file is parsed at start; a file gatelog cannot evaluate
    /// exactly is an error naming it. Relative to the working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigma_dir: Option<std::path::PathBuf>,
    /// The rules of `sigma_dir`, loaded by the binary at start (not a key of the file).
    #[serde(skip)]
    pub sigma_rules: crate::sigma::SigmaRules,
    /// `[detect.sql_rules]`: the event-time bound of the rules' queries and their schedule.
    pub sql_rules: SqlRulesConfig,
    /// `[detect.profile]`: how principals' usual hours and places are learned.
    pub profile: ProfileConfig,
    pub runaway_select: RunawayConfig,
    pub new_country: NoveltyConfig,
    pub new_asn: NoveltyConfig,
    pub off_hours: OffHoursConfig,
    pub impossible_travel: TravelConfig,
    pub deny_burst_ip: DenyBurstConfig,
    pub deny_burst_principal: DenyBurstConfig,
    pub volume_outlier: VolumeConfig,
    pub rare_pair: RarePairConfig,
    pub privileged_change: PrivilegedConfig,
    pub dlp_exfil: DlpConfig,
    pub source_silence: SilenceConfig,
    /// `[detect.runtime]`: how `gatelog serve` runs the engine (warm-up, ticks).
    pub runtime: RuntimeConfig,
    /// `[detect.alerts]`: how findings become alerts.
    pub alerts: AlertsConfig,
    /// `[detect.canary]`: the synthetic decision that proves detection operates.
    pub canary: CanaryConfig,
    /// `[detect.query_log]`: runaway SELECTs judged on the fronted server's own figures.
    pub query_log: QueryLogConfig,
}

/// `[detect.runtime]`: the streaming runtime in `gatelog serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Without a checkpoint, baselines learn from this much ClickHouse history (decisions
    /// and `ingest_batches` arrivals) before the stream is judged.
    #[serde(with = "humantime_serde")]
    pub warmup_lookback: Duration,
    /// How often time-driven detectors (source silence) are asked about the present.
    #[serde(with = "humantime_serde")]
    pub tick_interval: Duration,
    /// Spool records judged together before their findings, the run record and the
    /// checkpoint are written (a checkpoint is written at least every `max_linger`).
    pub max_batches: usize,
    #[serde(with = "humantime_serde")]
    pub max_linger: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            warmup_lookback: Duration::from_secs(30 * 86_400),
            tick_interval: Duration::from_secs(10),
            max_batches: 256,
            max_linger: Duration::from_millis(500),
        }
    }
}

impl RuntimeConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if self.warmup_lookback > Duration::from_secs(366 * 86_400) {
            return invalid(
                format!("{at}.warmup_lookback"),
                format!("must be at most 366days, got {}", humantime::format_duration(self.warmup_lookback)),
            );
        }
        if self.tick_interval < Duration::from_secs(1) || self.tick_interval > Duration::from_secs(3600) {
            return invalid(
                format!("{at}.tick_interval"),
                format!("must be between 1s and 1h, got {}", humantime::format_duration(self.tick_interval)),
            );
        }
        if !(1..=100_000).contains(&self.max_batches) {
            return invalid(
                format!("{at}.max_batches"),
                format!("must be between 1 and 100000, got {}", self.max_batches),
            );
        }
        if self.max_linger.is_zero() || self.max_linger > Duration::from_secs(10) {
            return invalid(
                format!("{at}.max_linger"),
                format!(
                    "must be longer than 0s and at most 10s (a finding must exist within seconds), got {}",
                    humantime::format_duration(self.max_linger)
                ),
            );
        }
        Ok(())
    }
}

/// `[detect.alerts]`: findings with one dedup key are one alert while they keep coming.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// A finding joins the alert of its dedup key when it comes at most this long (event
    /// time) after that alert's last finding; later, it opens a new alert.
    #[serde(with = "humantime_serde")]
    pub suppression_window: Duration,
    /// Alerts tracked for grouping; beyond it the least recently seen are forgotten (a
    /// later finding of theirs opens a new alert).
    pub max_open: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig { suppression_window: Duration::from_secs(3600), max_open: 100_000 }
    }
}

impl AlertsConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        positive_duration(&format!("{at}.suppression_window"), self.suppression_window)?;
        if self.suppression_window > Duration::from_secs(90 * 86_400) {
            return invalid(
                format!("{at}.suppression_window"),
                format!("must be at most 90days, got {}", humantime::format_duration(self.suppression_window)),
            );
        }
        at_least(&format!("{at}.max_open"), self.max_open as u64, 1)
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            enabled: true,
            max_principals: 50_000,
            max_tenants: 100,
            dedup_datasets: vec!["tail".to_owned(), "workers_trace_events".to_owned()],
            dedup_window: Duration::from_secs(600),
            dedup_capacity: 1_000_000,
            profile: ProfileConfig::default(),
            runaway_select: RunawayConfig::default(),
            new_country: NoveltyConfig::new_country(),
            new_asn: NoveltyConfig::new_asn(),
            off_hours: OffHoursConfig::default(),
            impossible_travel: TravelConfig::default(),
            deny_burst_ip: DenyBurstConfig::default(),
            deny_burst_principal: DenyBurstConfig::default(),
            volume_outlier: VolumeConfig::default(),
            rare_pair: RarePairConfig::default(),
            privileged_change: PrivilegedConfig::default(),
            dlp_exfil: DlpConfig::default(),
            source_silence: SilenceConfig::default(),
            runtime: RuntimeConfig::default(),
            alerts: AlertsConfig::default(),
            canary: CanaryConfig::default(),
            query_log: QueryLogConfig::default(),
            rules_dir: None,
            sigma_dir: None,
            sigma_rules: crate::sigma::SigmaRules::default(),
            sql_rules: SqlRulesConfig::default(),
        }
    }
}

/// `[detect.profile]`: the per-principal baseline shared by several detectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileConfig {
    /// A principal's usual hours are the shortest run of hours of the day holding this
    /// share of their settled activity; outside it is off-hours.
    pub active_share: f64,
    /// Hours next to the usual ones still count as usual (a late evening, an early start).
    pub margin_hours: u32,
    /// Hours outside them are off-hours only if they are, on average, quieter than this
    /// share of the usual hours (round-the-clock principals have none).
    pub quiet_share: f64,
    /// Settled events needed before anything is judged off-hours (for evidence; detectors
    /// that judge by hours have their own minimum).
    pub min_events: u32,
    /// Once a profile spans this long, a weekday holding less than `weekday_min_share` of
    /// the activity (a weekend for a weekday worker) is off-hours at any hour.
    #[serde(with = "humantime_serde")]
    pub weekday_min_span: Duration,
    pub weekday_min_share: f64,
    /// Client IPs, countries and ASNs remembered per principal (least recently seen dropped).
    pub max_ips: usize,
    pub max_countries: usize,
    pub max_asns: usize,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            active_share: 0.8,
            margin_hours: 1,
            quiet_share: 0.25,
            min_events: 20,
            weekday_min_span: Duration::from_secs(14 * 86_400),
            weekday_min_share: 0.02,
            max_ips: 32,
            max_countries: 16,
            max_asns: 16,
        }
    }
}

/// A setting that cannot work, naming its key (`detect.dlp_exfil.window: must be longer than 0s`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl DetectConfig {
    /// Checks ranges and combinations; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least("detect.max_principals", self.max_principals as u64, 1)?;
        at_least("detect.max_tenants", self.max_tenants as u64, 1)?;
        at_least("detect.dedup_capacity", self.dedup_capacity as u64, 1)?;
        names("detect.dedup_datasets", &self.dedup_datasets, true)?;
        positive_duration("detect.dedup_window", self.dedup_window)?;
        if self.rules_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return invalid("detect.rules_dir", "must not be empty (leave it out for no user rules)");
        }
        if self.sigma_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return invalid("detect.sigma_dir", "must not be empty (leave it out for no Sigma rules)");
        }
        self.profile.validate("detect.profile")?;
        self.runaway_select.validate("detect.runaway_select")?;
        self.new_country.validate("detect.new_country")?;
        self.new_asn.validate("detect.new_asn")?;
        self.off_hours.validate("detect.off_hours")?;
        self.impossible_travel.validate("detect.impossible_travel")?;
        self.deny_burst_ip.validate("detect.deny_burst_ip")?;
        self.deny_burst_principal.validate("detect.deny_burst_principal")?;
        self.volume_outlier.validate("detect.volume_outlier")?;
        self.rare_pair.validate("detect.rare_pair")?;
        self.privileged_change.validate("detect.privileged_change")?;
        self.dlp_exfil.validate("detect.dlp_exfil")?;
        self.source_silence.validate("detect.source_silence")?;
        self.runtime.validate("detect.runtime")?;
        self.sql_rules.validate("detect.sql_rules")?;
        self.alerts.validate("detect.alerts")?;
        self.canary.validate("detect.canary")?;
        self.query_log.validate("detect.query_log")
    }
}

impl ProfileConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        share(&format!("{at}.active_share"), self.active_share)?;
        if self.active_share < 0.5 {
            return invalid(
                format!("{at}.active_share"),
                format!("{} would call most of a principal's own activity off-hours; use 0.5 to 1", self.active_share),
            );
        }
        if self.margin_hours > 6 {
            return invalid(format!("{at}.margin_hours"), format!("must be at most 6, got {}", self.margin_hours));
        }
        share(&format!("{at}.quiet_share"), self.quiet_share)?;
        at_least(&format!("{at}.min_events"), u64::from(self.min_events), 1)?;
        positive_duration(&format!("{at}.weekday_min_span"), self.weekday_min_span)?;
        share(&format!("{at}.weekday_min_share"), self.weekday_min_share)?;
        at_least(&format!("{at}.max_ips"), self.max_ips as u64, 1)?;
        at_least(&format!("{at}.max_countries"), self.max_countries as u64, 1)?;
        at_least(&format!("{at}.max_asns"), self.max_asns as u64, 1)
    }
}

pub(crate) fn invalid<T>(key: impl Into<String>, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { key: key.into(), message: message.into() })
}

pub(crate) fn at_least(key: &str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value < min { invalid(key, format!("must be at least {min}, got {value}")) } else { Ok(()) }
}

pub(crate) fn positive_duration(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() { invalid(key, "must be longer than 0s") } else { Ok(()) }
}

/// A share: more than 0, at most 1.
pub(crate) fn share(key: &str, value: f64) -> Result<(), ConfigError> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        invalid(key, format!("must be more than 0 and at most 1, got {value}"))
    }
}

pub(crate) fn positive(key: &str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        invalid(key, format!("must be a number above 0, got {value}"))
    }
}

/// Every entry non-blank; `allow_empty` says whether the list itself may be empty.
pub(crate) fn names(key: &str, list: &[String], allow_empty: bool) -> Result<(), ConfigError> {
    if !allow_empty && list.is_empty() {
        return invalid(key, "must not be empty");
    }
    match list.iter().position(|s| s.trim().is_empty()) {
        Some(i) => invalid(format!("{key}[{i}]"), "must not be empty"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DetectConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_is_the_default_and_valid() {
        assert_eq!(parse("").unwrap(), DetectConfig::default());
        DetectConfig::default().validate().unwrap();
    }

    #[test]
    fn the_example_file_documents_every_default() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/detect.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            detect: DetectConfig,
        }
        let file: File = toml::from_str(&text).unwrap();
        assert_eq!(file.detect, DetectConfig::default(), "examples/detect.toml drifted from the defaults");
        // Every key is written out: the default, serialised, has no key the file lacks.
        fn paths(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
            for (key, value) in table {
                let path = format!("{prefix}.{key}");
                if let toml::Value::Table(inner) = value {
                    paths(&path, inner, out);
                }
                out.push(path);
            }
        }
        let written: toml::Table = toml::from_str(&text).unwrap();
        let (mut have, mut want) = (Vec::new(), Vec::new());
        paths("detect", written["detect"].as_table().unwrap(), &mut have);
        paths("detect", &toml::Table::try_from(DetectConfig::default()).unwrap(), &mut want);
        let missing: Vec<&String> = want.iter().filter(|k| !have.contains(k)).collect();
        assert!(missing.is_empty(), "examples/detect.toml lacks {missing:?}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_them() {
        let err = parse("[deny_burst_ip]\nthreshhold = 3").unwrap_err();
        assert!(err.contains("threshhold"), "{err}");
        let err = parse("bogus = 1").unwrap_err();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let cases = [
            ("[deny_burst_ip]\nthreshold = 1", "detect.deny_burst_ip.threshold"),
            ("[dlp_exfil]\nwindow = \"0s\"", "detect.dlp_exfil.window"),
            ("[profile]\nactive_share = 0.3", "detect.profile.active_share"),
            ("[volume_outlier]\nmin_weeks = 9", "detect.volume_outlier.min_weeks"),
            ("[volume_outlier.roles.etl]\nz_threshold = -1.0", "detect.volume_outlier.roles.etl.z_threshold"),
            ("[privileged_change]\nresource_types = [\"\"]", "detect.privileged_change.resource_types[0]"),
            ("[runaway_select]\nactions = []", "detect.runaway_select.actions"),
            ("[runaway_select.roles.\"\"]\nrows_read = 1", "detect.runaway_select.roles"),
            ("[source_silence.expected]\nhttp_requests = \"0s\"", "detect.source_silence.expected.http_requests"),
            ("[impossible_travel]\nmax_speed_kmh = 0.0", "detect.impossible_travel.max_speed_kmh"),
            ("max_principals = 0", "detect.max_principals"),
            ("[runtime]\ntick_interval = \"0s\"", "detect.runtime.tick_interval"),
            ("[runtime]\nwarmup_lookback = \"400days\"", "detect.runtime.warmup_lookback"),
            ("[runtime]\nmax_linger = \"1m\"", "detect.runtime.max_linger"),
            ("[alerts]\nsuppression_window = \"0s\"", "detect.alerts.suppression_window"),
            ("[sql_rules]\nretry_max_backoff = \"1s\"", "detect.sql_rules.retry_max_backoff"),
            ("[sql_rules]\nmax_catch_up = \"0s\"", "detect.sql_rules.max_catch_up"),
        ];
        for (text, key) in cases {
            let err = parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).validate().unwrap_err();
            assert_eq!(err.key, key, "{text}: {err}");
            assert!(err.to_string().starts_with(key), "{err}");
        }
    }

    #[test]
    fn units_parse() {
        let c = parse("[runaway_select]\nbytes_read = \"2 GiB\"\nduration = \"90s\"\n[runaway_select.roles.etl]\nduration = \"30m\"")
            .unwrap();
        assert_eq!(c.runaway_select.bytes_read, bytesize::ByteSize::gib(2));
        assert_eq!(c.runaway_select.duration, Duration::from_secs(90));
        assert_eq!(c.runaway_select.roles["etl"].duration, Some(Duration::from_secs(1800)));
        c.validate().unwrap();
    }
}
