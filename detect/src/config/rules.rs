//! One section per built-in detector: `[detect.<rule id>]`, each with `enabled` and
//! `severity`, its thresholds and the caps on its memory.

use super::{ConfigError, at_least, invalid, names, positive, positive_duration};
use bytesize::ByteSize;
use gatelog_model::Severity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn role_names<T>(at: &str, roles: &BTreeMap<String, T>) -> Result<(), ConfigError> {
    if roles.keys().any(|r| r.trim().is_empty()) {
        return invalid(format!("{at}.roles"), "a role name must not be empty");
    }
    Ok(())
}

/// `[detect.runaway_select]`: a query that read, ran or returned too much. Each limit set to
/// 0 is not checked. `[detect.runaway_select.roles.<role>]` overrides limits for a role; a
/// principal with several roles gets the highest limit any of its roles sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunawayConfig {
    pub enabled: bool,
    pub severity: Severity,
    /// Decision actions that are queries (case-insensitive).
    pub actions: Vec<String>,
    pub rows_read: u64,
    pub bytes_read: ByteSize,
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    pub result_rows: u64,
    /// A query without an outer `LIMIT` that read at least this many rows (a full scan).
    pub no_limit_rows_read: u64,
    pub roles: BTreeMap<String, RunawayLimits>,
}

/// Per-role runaway limits; an absent key keeps the section's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunawayLimits {
    pub rows_read: Option<u64>,
    pub bytes_read: Option<ByteSize>,
    #[serde(with = "humantime_serde")]
    pub duration: Option<Duration>,
    pub result_rows: Option<u64>,
    pub no_limit_rows_read: Option<u64>,
}

impl Default for RunawayConfig {
    fn default() -> Self {
        RunawayConfig {
            enabled: true,
            severity: Severity::High,
            actions: strings(&["select"]),
            rows_read: 1_000_000_000,
            bytes_read: ByteSize::gib(100),
            duration: Duration::from_secs(60),
            result_rows: 1_000_000,
            no_limit_rows_read: 100_000_000,
            roles: BTreeMap::new(),
        }
    }
}

impl RunawayConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        names(&format!("{at}.actions"), &self.actions, false)?;
        role_names(at, &self.roles)?;
        let off = self.rows_read == 0
            && self.bytes_read.as_u64() == 0
            && self.duration.is_zero()
            && self.result_rows == 0
            && self.no_limit_rows_read == 0;
        if self.enabled && off {
            return invalid(format!("{at}.rows_read"), "every limit is 0 (off); set one, or enabled = false");
        }
        Ok(())
    }
}

/// `[detect.new_country]` / `[detect.new_asn]`: an allowed request from a country (ASN) the
/// principal never used, once at least `min_history` of its allowed requests carried one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoveltyConfig {
    pub enabled: bool,
    pub severity: Severity,
    /// Severity when the request is also off-hours for the principal.
    pub off_hours_severity: Severity,
    pub min_history: u32,
}

impl NoveltyConfig {
    pub(crate) fn new_country() -> Self {
        NoveltyConfig { enabled: true, severity: Severity::Medium, off_hours_severity: Severity::High, min_history: 3 }
    }
    pub(crate) fn new_asn() -> Self {
        NoveltyConfig { enabled: true, severity: Severity::Low, off_hours_severity: Severity::Medium, min_history: 3 }
    }
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        at_least(&format!("{at}.min_history"), u64::from(self.min_history), 1)
    }
}

impl Default for NoveltyConfig {
    fn default() -> Self {
        Self::new_country()
    }
}

/// `[detect.off_hours]`: `min_events` allowed requests within `window`, all outside the
/// principal's usual hours ([`ProfileConfig`](super::ProfileConfig)), once `min_history` of
/// its events are settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OffHoursConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub min_events: u32,
    /// A session is reported only if that many requests in `window` at that hour are this
    /// unlikely for the principal (Poisson, from its own rate at that hour).
    pub max_probability: f64,
    pub min_history: u32,
    /// Settled days on which the principal was already known at that hour of the day: an
    /// hour is quiet by habit only once it was watched.
    pub min_observed_days: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Principals with off-hours activity in flight, at most.
    pub max_principals: usize,
}

impl Default for OffHoursConfig {
    fn default() -> Self {
        OffHoursConfig {
            enabled: true,
            severity: Severity::Low,
            min_events: 5,
            max_probability: 0.001,
            min_history: 50,
            min_observed_days: 2,
            window: Duration::from_secs(HOUR),
            max_principals: 50_000,
        }
    }
}

impl OffHoursConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        at_least(&format!("{at}.min_events"), u64::from(self.min_events), 1)?;
        super::share(&format!("{at}.max_probability"), self.max_probability)?;
        at_least(&format!("{at}.min_history"), u64::from(self.min_history), 1)?;
        at_least(&format!("{at}.min_observed_days"), u64::from(self.min_observed_days), 1)?;
        positive_duration(&format!("{at}.window"), self.window)?;
        at_least(&format!("{at}.max_principals"), self.max_principals as u64, 1)
    }
}

/// `[detect.impossible_travel]`: two allowed requests of one principal from places farther
/// apart than `min_distance_km`, closer in time than `max_speed_kmh` allows. Places are
/// country centroids (the mapped decisions carry no coordinates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TravelConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub max_speed_kmh: f64,
    pub min_distance_km: f64,
}

impl Default for TravelConfig {
    fn default() -> Self {
        TravelConfig { enabled: true, severity: Severity::High, max_speed_kmh: 1000.0, min_distance_km: 500.0 }
    }
}

impl TravelConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        positive(&format!("{at}.max_speed_kmh"), self.max_speed_kmh)?;
        positive(&format!("{at}.min_distance_km"), self.min_distance_km)
    }
}

/// `[detect.deny_burst_ip]` / `[detect.deny_burst_principal]`: at least `threshold`
/// denials for one client IP (one named principal) within a sliding `window`. One finding
/// per burst; a burst ends when `window` passes without a denial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DenyBurstConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub threshold: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Count challenges (`decision = challenge`) as denials.
    pub count_challenges: bool,
    /// Keys with denials in flight, at most.
    pub max_keys: usize,
}

impl Default for DenyBurstConfig {
    fn default() -> Self {
        DenyBurstConfig {
            enabled: true,
            severity: Severity::High,
            threshold: 10,
            window: Duration::from_secs(5 * MINUTE),
            count_challenges: false,
            max_keys: 100_000,
        }
    }
}

impl DenyBurstConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        at_least(&format!("{at}.threshold"), u64::from(self.threshold), 2)?;
        if self.threshold > 10_000 {
            return invalid(format!("{at}.threshold"), format!("must be at most 10000, got {}", self.threshold));
        }
        positive_duration(&format!("{at}.window"), self.window)?;
        at_least(&format!("{at}.max_keys"), self.max_keys as u64, 1)
    }
}

/// `[detect.volume_outlier]`: a principal's requests in one hour against the same hour of
/// the week in earlier weeks: robust z-score `(x − median) / max(1.4826 × MAD, min_scale)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub z_threshold: f64,
    /// An hour with fewer requests than this never fires, whatever its score.
    pub min_count: u32,
    /// Earlier weeks compared with.
    pub weeks: u32,
    /// Earlier weeks that must be known (the principal seen before them) to judge.
    pub min_weeks: u32,
    pub min_scale: f64,
    pub max_principals: usize,
    pub roles: BTreeMap<String, VolumeOverride>,
}

/// Per-role volume thresholds; a principal with several roles gets the highest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeOverride {
    pub z_threshold: Option<f64>,
    pub min_count: Option<u32>,
}

impl Default for VolumeConfig {
    fn default() -> Self {
        VolumeConfig {
            enabled: true,
            severity: Severity::Medium,
            z_threshold: 6.0,
            min_count: 100,
            weeks: 4,
            min_weeks: 3,
            min_scale: 1.0,
            max_principals: 20_000,
            roles: BTreeMap::new(),
        }
    }
}

impl VolumeConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        positive(&format!("{at}.z_threshold"), self.z_threshold)?;
        at_least(&format!("{at}.min_count"), u64::from(self.min_count), 1)?;
        at_least(&format!("{at}.weeks"), u64::from(self.weeks), 1)?;
        if self.weeks > 12 {
            return invalid(format!("{at}.weeks"), format!("must be at most 12, got {}", self.weeks));
        }
        at_least(&format!("{at}.min_weeks"), u64::from(self.min_weeks), 1)?;
        if self.min_weeks > self.weeks {
            return invalid(format!("{at}.min_weeks"), format!("must be at most weeks ({})", self.weeks));
        }
        positive(&format!("{at}.min_scale"), self.min_scale)?;
        at_least(&format!("{at}.max_principals"), self.max_principals as u64, 1)?;
        role_names(at, &self.roles)?;
        for (role, o) in &self.roles {
            if let Some(z) = o.z_threshold {
                positive(&format!("{at}.roles.{role}.z_threshold"), z)?;
            }
            if let Some(n) = o.min_count {
                at_least(&format!("{at}.roles.{role}.min_count"), u64::from(n), 1)?;
            }
        }
        Ok(())
    }
}

/// `[detect.rare_pair]`: an established principal allowed on a resource it never used and
/// at most `max_peers` other principals use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RarePairConfig {
    pub enabled: bool,
    pub severity: Severity,
    /// Datasets whose resources are data (tables, dashboards), not web pages.
    pub datasets: Vec<String>,
    /// The principal's allowed requests in these datasets before pairs are judged…
    pub min_history: u32,
    /// …over at least this long.
    #[serde(with = "humantime_serde")]
    pub min_age: Duration,
    pub max_peers: u32,
    pub max_principals: usize,
    pub max_resources: usize,
    pub max_resources_per_principal: usize,
}

impl Default for RarePairConfig {
    fn default() -> Self {
        RarePairConfig {
            enabled: true,
            severity: Severity::Low,
            datasets: strings(&["proxy", "workers_trace_events", "tail"]),
            min_history: 50,
            min_age: Duration::from_secs(7 * DAY),
            max_peers: 2,
            max_principals: 20_000,
            max_resources: 100_000,
            max_resources_per_principal: 1_000,
        }
    }
}

impl RarePairConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        names(&format!("{at}.datasets"), &self.datasets, false)?;
        at_least(&format!("{at}.min_history"), u64::from(self.min_history), 1)?;
        at_least(&format!("{at}.max_principals"), self.max_principals as u64, 1)?;
        at_least(&format!("{at}.max_resources"), self.max_resources as u64, 1)?;
        at_least(&format!("{at}.max_resources_per_principal"), self.max_resources_per_principal as u64, 1)
    }
}

/// `[detect.privileged_change]`: a change to a security-relevant resource in an audit log,
/// by an actor with `min_history` allowed requests, from an IP new to it (first used less
/// than `new_ip_grace` ago, and at least that long after the actor was first seen) and off
/// its usual hours (judged once `min_settled_events` are settled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivilegedConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub datasets: Vec<String>,
    /// Resource types (any segment of `cloudflare:<product>/<type>/<id>`) that matter.
    pub resource_types: Vec<String>,
    /// Actions that change nothing (case-insensitive).
    pub ignore_actions: Vec<String>,
    pub require_new_ip: bool,
    pub require_off_hours: bool,
    #[serde(with = "humantime_serde")]
    pub new_ip_grace: Duration,
    /// Allowed requests the actor must have made before (else everything would be new).
    pub min_history: u32,
    pub min_settled_events: u32,
}

impl Default for PrivilegedConfig {
    fn default() -> Self {
        PrivilegedConfig {
            enabled: true,
            severity: Severity::High,
            datasets: strings(&["audit_logs", "audit_logs_v2"]),
            resource_types: strings(&[
                "access_policy",
                "access_app",
                "access_group",
                "access_service_token",
                "access_identity_provider",
                "access_certificate",
                "logpush_job",
                "api_token",
                "user_api_token",
                "member",
                "role",
                "account_settings",
                "account_member",
                "organization",
                "firewall_rule",
                "waf_rule",
                "zero_trust_settings",
                "tunnel",
            ]),
            ignore_actions: strings(&["login", "logout", "view", "read", "list", "get"]),
            require_new_ip: true,
            require_off_hours: true,
            new_ip_grace: Duration::from_secs(HOUR),
            min_history: 3,
            min_settled_events: 5,
        }
    }
}

impl PrivilegedConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        names(&format!("{at}.datasets"), &self.datasets, false)?;
        names(&format!("{at}.resource_types"), &self.resource_types, false)?;
        names(&format!("{at}.ignore_actions"), &self.ignore_actions, true)?;
        at_least(&format!("{at}.min_history"), u64::from(self.min_history), 1)?;
        at_least(&format!("{at}.min_settled_events"), u64::from(self.min_settled_events), 1)
    }
}

/// `[detect.dlp_exfil]`: at least `min_matches` requests of one user within `window` whose
/// upload matched a DLP profile and went to a personal file-sharing host (a listed host or
/// a subdomain of one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DlpConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub datasets: Vec<String>,
    pub personal_hosts: Vec<String>,
    pub min_matches: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub max_principals: usize,
}

impl Default for DlpConfig {
    fn default() -> Self {
        DlpConfig {
            enabled: true,
            severity: Severity::High,
            datasets: strings(&["gateway_http"]),
            personal_hosts: strings(&[
                "mega.nz",
                "mega.io",
                "dropbox.com",
                "dropboxusercontent.com",
                "drive.google.com",
                "onedrive.live.com",
                "1drv.ms",
                "box.com",
                "icloud.com",
                "wetransfer.com",
                "we.tl",
                "mediafire.com",
                "pcloud.com",
                "sendspace.com",
                "gofile.io",
                "file.io",
                "transfer.sh",
                "pastebin.com",
            ]),
            min_matches: 3,
            window: Duration::from_secs(30 * MINUTE),
            max_principals: 50_000,
        }
    }
}

impl DlpConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        names(&format!("{at}.datasets"), &self.datasets, false)?;
        names(&format!("{at}.personal_hosts"), &self.personal_hosts, false)?;
        if let Some(i) = self.personal_hosts.iter().position(|h| h.contains(['/', ':', ' '])) {
            return invalid(format!("{at}.personal_hosts[{i}]"), "must be a host name, not a URL");
        }
        at_least(&format!("{at}.min_matches"), u64::from(self.min_matches), 1)?;
        positive_duration(&format!("{at}.window"), self.window)?;
        at_least(&format!("{at}.max_principals"), self.max_principals as u64, 1)
    }
}

/// `[detect.source_silence]`: a dataset (and, for `zone_datasets`, each zone of it) that
/// stops arriving. Silent when nothing arrived for `expected.<dataset>` when set, else for
/// `max(min_silence, gap_factor × median gap, longest_gap_factor × longest gap of the last
/// week)`, once the source was watched for `learn_for` with `min_samples` gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceConfig {
    pub enabled: bool,
    pub severity: Severity,
    #[serde(with = "humantime_serde")]
    pub min_silence: Duration,
    pub gap_factor: f64,
    pub longest_gap_factor: f64,
    /// How long a source is watched before its cadence is trusted (a day sees its night).
    #[serde(with = "humantime_serde")]
    pub learn_for: Duration,
    /// Gaps observed before the learned cadence is trusted (the `expected` values need none).
    pub min_samples: u32,
    /// Per dataset: the silence after which it counts as stopped.
    pub expected: BTreeMap<String, humantime_serde::Serde<Duration>>,
    /// Zone-scoped datasets whose zones are watched one by one as well.
    pub zone_datasets: Vec<String>,
    /// A source silent this long is forgotten (it was retired, not broken).
    #[serde(with = "humantime_serde")]
    pub forget_after: Duration,
    pub max_sources: usize,
}

impl Default for SilenceConfig {
    fn default() -> Self {
        SilenceConfig {
            enabled: true,
            severity: Severity::High,
            min_silence: Duration::from_secs(30 * MINUTE),
            gap_factor: 10.0,
            longest_gap_factor: 3.0,
            learn_for: Duration::from_secs(DAY),
            min_samples: 20,
            expected: BTreeMap::new(),
            zone_datasets: strings(&["http_requests", "firewall_events"]),
            forget_after: Duration::from_secs(7 * DAY),
            max_sources: 10_000,
        }
    }
}

impl SilenceConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        positive_duration(&format!("{at}.min_silence"), self.min_silence)?;
        positive(&format!("{at}.gap_factor"), self.gap_factor)?;
        positive(&format!("{at}.longest_gap_factor"), self.longest_gap_factor)?;
        names(&format!("{at}.zone_datasets"), &self.zone_datasets, true)?;
        at_least(&format!("{at}.min_samples"), u64::from(self.min_samples), 1)?;
        if self.min_samples > 32 {
            return invalid(
                format!("{at}.min_samples"),
                format!("must be at most 32 (gaps kept), got {}", self.min_samples),
            );
        }
        for (dataset, d) in &self.expected {
            if dataset.trim().is_empty() {
                return invalid(format!("{at}.expected"), "a dataset name must not be empty");
            }
            positive_duration(&format!("{at}.expected.{dataset}"), **d)?;
        }
        if self.forget_after <= self.min_silence {
            return invalid(format!("{at}.forget_after"), "must be longer than min_silence");
        }
        at_least(&format!("{at}.max_sources"), self.max_sources as u64, 1)
    }
}
