//! [`NotifyConfig`]: the `[notify]` section of `gatelog.toml`, owned by this crate so the
//! binary embeds it as it is (`pub notify: gatelog_notify::NotifyConfig`).
//!
//! Every table is `deny_unknown_fields` and `default`: an empty `[notify]` is the default (on,
//! writing `.eml` files under `<data_dir>/outbox`, since no SMTP server is configured).
//! Durations are humantime (`"30s"`, `"1h"`). [`NotifyConfig::validate`] names the key of
//! the first problem (`notify.smtp.tls: "none" sends mail unencrypted …`).
//!
//! Secrets: the SMTP password is never in the file. `password_env` names an environment
//! variable and `password_file` a file holding it; it is read when the transport is built and
//! is never logged (nor printed by `Debug`).

use gatelog_model::Severity;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A configuration problem, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_owned(), message: message.into() }
}

/// `[notify]`: e-mail to on-call for every opened alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Send (or write) mails at all. Off: opened alerts stay undelivered in ClickHouse, and
    /// are delivered once it is turned on again.
    pub enabled: bool,
    /// The sender, e.g. `gatelog <gatelog@example.com>`.
    pub from: String,
    /// Recipients (on-call's list). Needed with `[notify.smtp]`; the `.eml` files are
    /// addressed to `oncall@localhost` when empty.
    pub to: Vec<String>,
    /// Where the mail's links point: gatelog's URL as on-call reaches it, e.g.
    /// `https://gatelog.example.com`. Absent: `http://` and `server.listen`.
    pub base_url: Option<String>,
    /// Alerts below this severity are not mailed (`info` is never paged by default).
    pub min_severity: Severity,
    /// Where mails go without `[notify.smtp]`, as `.eml` files. Absent: `<data_dir>/outbox`.
    pub outbox_dir: Option<PathBuf>,
    /// How often the outbox is looked at.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Decisions listed in one alert's mail (the rest are counted).
    pub events_per_mail: usize,
    /// Detection reads the spool beside the ClickHouse sink and may open an alert before the
    /// decisions behind it are stored: a mail waits at most this long after the alert opened
    /// for them, then goes without the missing ones.
    #[serde(with = "humantime_serde")]
    pub events_grace: Duration,
    /// `[notify.retry]`: backoff between attempts at one message.
    pub retry: RetryConfig,
    /// `[notify.rate_limit]`: mails per window; the excess folds into a digest.
    pub rate_limit: RateLimitConfig,
    /// `[notify.smtp]`: the SMTP server. Absent: `.eml` files under `outbox_dir`.
    pub smtp: Option<SmtpConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            enabled: true,
            from: "gatelog <gatelog@localhost>".to_owned(),
            to: Vec::new(),
            base_url: None,
            min_severity: Severity::Low,
            outbox_dir: None,
            poll_interval: Duration::from_secs(1),
            events_per_mail: 10,
            events_grace: Duration::from_secs(20),
            retry: RetryConfig::default(),
            rate_limit: RateLimitConfig::default(),
            smtp: None,
        }
    }
}

/// `[notify.retry]`: after the n-th failed attempt at a message, the next waits
/// `initial_backoff × 2^(n−1)`, at most `max_backoff`. Attempts go on until the message is
/// delivered: an alert is never given up on (each attempt is in `alert_deliveries`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { initial_backoff: Duration::from_secs(5), max_backoff: Duration::from_secs(600) }
    }
}

/// `[notify.rate_limit]`: within each `window` (aligned to the epoch, e.g. each clock hour),
/// at most `max_mails` alert mails in all and `max_mails_per_rule` per rule. Further alerts
/// of the window fold into one digest mail, sent once the window is over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// 0: every alert goes into the window's digest.
    pub max_mails: u64,
    pub max_mails_per_rule: u64,
    /// Alerts listed in one digest (the rest are counted, and remain in `alert_deliveries`).
    pub digest_max_alerts: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            window: Duration::from_secs(3600),
            max_mails: 30,
            max_mails_per_rule: 10,
            digest_max_alerts: 200,
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte ("implicit TLS", SMTPS, port 465).
    Tls,
    /// Unencrypted: only to a loopback server unless `allow_plain_remote` (port 25).
    None,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Starttls => "starttls",
            TlsMode::Tls => "tls",
            TlsMode::None => "none",
        }
    }

    /// The port the mode is usually served on.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
            TlsMode::None => 25,
        }
    }
}

/// `[notify.smtp]`: the server mails are handed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name or IP address (no scheme, no port).
    pub host: String,
    /// Absent: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    pub port: Option<u16>,
    pub tls: TlsMode,
    /// Let `tls = "none"` reach a host that is not loopback (mail and any password in clear).
    pub allow_plain_remote: bool,
    /// AUTH user; empty: no authentication.
    pub username: String,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// A file holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// An extra root certificate (PEM) for a server with a private CA, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Connect and command timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: None,
            tls: TlsMode::Starttls,
            allow_plain_remote: false,
            username: String::new(),
            password_env: None,
            password_file: None,
            ca_file: None,
            timeout: Duration::from_secs(30),
        }
    }
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.tls.default_port())
    }

    /// `host:port` (IPv6 in brackets), as messages name the server.
    pub fn target(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port()),
            _ => format!("{}:{}", self.host, self.port()),
        }
    }

    /// Whether `host` is this machine (`localhost`, 127.0.0.0/8, `::1`).
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_end_matches('.').to_ascii_lowercase();
        host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The password from `password_env` or `password_file`; `None` without either.
    pub fn password(&self) -> Result<Option<String>, ConfigError> {
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(p) => Ok(Some(p)),
                Err(_) => Err(invalid(
                    "notify.smtp.password_env",
                    format!("the environment variable {var} is not set (or not UTF-8)"),
                )),
            };
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid("notify.smtp.password_file", format!("cannot read {}: {e}", path.display())))?;
            return Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()));
        }
        Ok(None)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let host = self.host.trim();
        if host.is_empty() {
            return Err(invalid(
                "notify.smtp.host",
                "must name the SMTP server (or leave [notify.smtp] out for .eml files)",
            ));
        }
        if host.contains("://") || host.contains('/') || host.contains(' ') {
            return Err(invalid("notify.smtp.host", format!("expected a host name or address, got {host:?}")));
        }
        if host.parse::<IpAddr>().is_err() && host.contains(':') {
            return Err(invalid("notify.smtp.host", format!("{host:?}: give the port as notify.smtp.port")));
        }
        if self.port == Some(0) {
            return Err(invalid("notify.smtp.port", "must be between 1 and 65535"));
        }
        if self.tls == TlsMode::None && !self.is_loopback() && !self.allow_plain_remote {
            return Err(invalid(
                "notify.smtp.tls",
                format!(
                    "\"none\" sends mail unencrypted, allowed to a loopback host only; {host} is not one \
                     (use \"starttls\" or \"tls\", or set notify.smtp.allow_plain_remote = true)"
                ),
            ));
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            return Err(invalid(
                "notify.smtp.password_file",
                "give the password by password_env or password_file, not both",
            ));
        }
        if self.password_env.as_deref().is_some_and(|v| v.is_empty() || v.contains('=')) {
            return Err(invalid("notify.smtp.password_env", "must name an environment variable"));
        }
        let has_password = self.password_env.is_some() || self.password_file.is_some();
        if !self.username.is_empty() && !has_password {
            return Err(invalid(
                "notify.smtp.username",
                "is set, so a password is needed: password_env or password_file",
            ));
        }
        if self.username.is_empty() && has_password {
            return Err(invalid(
                "notify.smtp.username",
                "a password is configured, so the user it belongs to is needed",
            ));
        }
        if self.ca_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(invalid("notify.smtp.ca_file", "must name a PEM file (or be left out)"));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(600) {
            return Err(invalid("notify.smtp.timeout", "must be between 1ms and 10m"));
        }
        Ok(())
    }
}

/// The recipient of `.eml` files when `to` is empty.
pub const DEFAULT_FILE_RECIPIENT: &str = "oncall@localhost";

impl NotifyConfig {
    /// The recipients mails are addressed to.
    pub fn recipients(&self) -> Vec<String> {
        if self.to.is_empty() { vec![DEFAULT_FILE_RECIPIENT.to_owned()] } else { self.to.clone() }
    }

    /// The severities that are mailed, lowest first.
    pub fn severities(&self) -> Vec<Severity> {
        Severity::ALL.iter().copied().filter(|s| *s >= self.min_severity).collect()
    }

    /// Checks what serde cannot; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = self.from.parse::<lettre::message::Mailbox>() {
            return Err(invalid("notify.from", format!("{:?} is not a mail address: {e}", self.from)));
        }
        for (i, to) in self.to.iter().enumerate() {
            if let Err(e) = to.parse::<lettre::message::Mailbox>() {
                return Err(invalid(&format!("notify.to[{i}]"), format!("{to:?} is not a mail address: {e}")));
            }
        }
        if self.smtp.is_some() && self.to.is_empty() {
            return Err(invalid("notify.to", "must name at least one recipient when [notify.smtp] is set"));
        }
        if let Some(url) = &self.base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid("notify.base_url", format!("expected an http:// or https:// URL, got {url:?}")));
        }
        if self.outbox_dir.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(invalid("notify.outbox_dir", "must name a directory (or be left out for <data_dir>/outbox)"));
        }
        if self.poll_interval < Duration::from_millis(10) || self.poll_interval > Duration::from_secs(3600) {
            return Err(invalid("notify.poll_interval", "must be between 10ms and 1h"));
        }
        if !(1..=100).contains(&self.events_per_mail) {
            return Err(invalid(
                "notify.events_per_mail",
                format!("must be between 1 and 100, got {}", self.events_per_mail),
            ));
        }
        if self.events_grace > Duration::from_secs(600) {
            return Err(invalid("notify.events_grace", "must be at most 10m"));
        }
        let r = &self.retry;
        if r.initial_backoff.is_zero() {
            return Err(invalid("notify.retry.initial_backoff", "must be longer than 0s"));
        }
        if r.initial_backoff > r.max_backoff {
            return Err(invalid(
                "notify.retry.initial_backoff",
                format!(
                    "{} is longer than notify.retry.max_backoff ({})",
                    humantime::format_duration(r.initial_backoff),
                    humantime::format_duration(r.max_backoff)
                ),
            ));
        }
        if r.max_backoff > Duration::from_secs(86_400) {
            return Err(invalid("notify.retry.max_backoff", "must be at most 24h"));
        }
        let l = &self.rate_limit;
        if l.window < Duration::from_secs(1) || l.window > Duration::from_secs(7 * 86_400) {
            return Err(invalid("notify.rate_limit.window", "must be between 1s and 7days"));
        }
        if !(1..=10_000).contains(&l.digest_max_alerts) {
            return Err(invalid("notify.rate_limit.digest_max_alerts", "must be between 1 and 10000"));
        }
        if let Some(smtp) = &self.smtp {
            smtp.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NotifyConfig {
        toml::from_str(text).unwrap()
    }

    fn key_of(c: &NotifyConfig) -> String {
        c.validate().unwrap_err().key
    }

    #[test]
    fn empty_is_the_default_and_valid() {
        assert_eq!(parse(""), NotifyConfig::default());
        NotifyConfig::default().validate().unwrap();
        assert_eq!(NotifyConfig::default().recipients(), vec![DEFAULT_FILE_RECIPIENT.to_owned()]);
        assert_eq!(NotifyConfig::default().severities().first(), Some(&Severity::Low));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<NotifyConfig>("[smtp]\nhots = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("hots"), "{err}");
    }

    #[test]
    fn smtp_parses_with_humantime_and_defaults_its_port() {
        let c = parse(
            "to = [\"oncall@example.com\"]\n[smtp]\nhost = \"smtp.example.com\"\ntls = \"tls\"\ntimeout = \"5s\"\n\
             username = \"gatelog\"\npassword_env = \"GATELOG_SMTP_PASSWORD\"\n",
        );
        c.validate().unwrap();
        let smtp = c.smtp.as_ref().unwrap();
        assert_eq!(
            (smtp.port(), smtp.timeout, smtp.target()),
            (465, Duration::from_secs(5), "smtp.example.com:465".into())
        );
        let v6 = SmtpConfig { host: "::1".into(), tls: TlsMode::None, ..SmtpConfig::default() };
        assert_eq!(v6.target(), "[::1]:25");
        assert!(v6.is_loopback());
    }

    #[test]
    fn plain_smtp_is_for_loopback_unless_allowed() {
        let plain = |host: &str, allow: bool| NotifyConfig {
            to: vec!["a@example.com".into()],
            smtp: Some(SmtpConfig {
                host: host.into(),
                tls: TlsMode::None,
                allow_plain_remote: allow,
                ..SmtpConfig::default()
            }),
            ..NotifyConfig::default()
        };
        for host in ["127.0.0.1", "localhost", "127.9.9.9", "::1"] {
            plain(host, false).validate().unwrap();
        }
        let err = plain("mail.example.com", false).validate().unwrap_err();
        assert_eq!(err.key, "notify.smtp.tls");
        assert!(err.message.contains("mail.example.com") && err.message.contains("allow_plain_remote"), "{err}");
        plain("mail.example.com", true).validate().unwrap();
    }

    #[test]
    fn validation_names_the_key() {
        let with = |f: fn(&mut NotifyConfig)| {
            let mut c = NotifyConfig::default();
            f(&mut c);
            key_of(&c)
        };
        assert_eq!(with(|c| c.from = "not an address".into()), "notify.from");
        assert_eq!(with(|c| c.to = vec!["ok@example.com".into(), "nope".into()]), "notify.to[1]");
        assert_eq!(
            with(|c| c.smtp = Some(SmtpConfig { host: "127.0.0.1".into(), ..SmtpConfig::default() })),
            "notify.to"
        );
        assert_eq!(with(|c| c.base_url = Some("gatelog.example.com".into())), "notify.base_url");
        assert_eq!(with(|c| c.retry.initial_backoff = Duration::from_secs(3600)), "notify.retry.initial_backoff");
        assert_eq!(with(|c| c.rate_limit.window = Duration::ZERO), "notify.rate_limit.window");
        assert_eq!(with(|c| c.events_per_mail = 0), "notify.events_per_mail");
        let smtp =
            |s: SmtpConfig| NotifyConfig { to: vec!["a@example.com".into()], smtp: Some(s), ..NotifyConfig::default() };
        let base = SmtpConfig { host: "smtp.example.com".into(), ..SmtpConfig::default() };
        assert_eq!(key_of(&smtp(SmtpConfig { host: String::new(), ..base.clone() })), "notify.smtp.host");
        assert_eq!(
            key_of(&smtp(SmtpConfig { host: "smtp.example.com:25".into(), ..base.clone() })),
            "notify.smtp.host"
        );
        assert_eq!(key_of(&smtp(SmtpConfig { username: "u".into(), ..base.clone() })), "notify.smtp.username");
        let both = SmtpConfig {
            username: "u".into(),
            password_env: Some("X".into()),
            password_file: Some("/p".into()),
            ..base.clone()
        };
        assert_eq!(key_of(&smtp(both)), "notify.smtp.password_file");
        assert_eq!(key_of(&smtp(SmtpConfig { port: Some(0), ..base })), "notify.smtp.port");
    }

    #[test]
    fn passwords_come_from_a_file_or_the_environment_and_never_from_debug() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("smtp.password");
        std::fs::write(&file, "s3cret\n").unwrap();
        let c = SmtpConfig { username: "u".into(), password_file: Some(file), ..SmtpConfig::default() };
        assert_eq!(c.password().unwrap().as_deref(), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        let missing =
            SmtpConfig { password_env: Some("GATELOG_TEST_SURELY_UNSET_VARIABLE".into()), ..SmtpConfig::default() };
        let err = missing.password().unwrap_err();
        assert_eq!(err.key, "notify.smtp.password_env");
        assert!(err.message.contains("GATELOG_TEST_SURELY_UNSET_VARIABLE"));
    }
}
