//! `[detect.query_log]`: the real figures of the queries `gatelog proxy` forwarded, read from
//! the fronted ClickHouse's `system.query_log` by a scheduled job of `gatelog serve` and
//! judged against `[detect.runaway_select]` (see `crate::query_log`).

use super::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[detect.query_log]`. Off by default: it needs the address and a login of the ClickHouse
/// server the proxy fronts (not gatelog's own), allowed to read `system.query_log`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryLogConfig {
    pub enabled: bool,
    /// The fronted server's HTTP interface (`http://clickhouse.internal:8123`).
    pub url: String,
    pub user: String,
    /// Never logged, printed or serialised.
    #[serde(skip_serializing)]
    pub password: String,
    /// How often the job reads what finished since its last run.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How far behind now a run stops: ClickHouse flushes its query log every 7.5 s by
    /// default (`flush_interval_milliseconds`), so the newest seconds are not there yet.
    #[serde(with = "humantime_serde")]
    pub lag: Duration,
    /// Where the very first run starts (before it, nothing was recorded).
    #[serde(with = "humantime_serde")]
    pub first_lookback: Duration,
    /// The request timeout of one read of the query log.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl std::fmt::Debug for QueryLogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryLogConfig")
            .field("enabled", &self.enabled)
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
            .field("interval", &self.interval)
            .field("lag", &self.lag)
            .field("first_lookback", &self.first_lookback)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for QueryLogConfig {
    fn default() -> Self {
        QueryLogConfig {
            enabled: false,
            url: String::new(),
            user: "default".to_owned(),
            password: String::new(),
            interval: Duration::from_secs(60),
            lag: Duration::from_secs(30),
            first_lookback: Duration::from_secs(3600),
            timeout: Duration::from_secs(30),
        }
    }
}

impl QueryLogConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        if self.enabled && !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return invalid(
                format!("{at}.url"),
                format!("must be the fronted ClickHouse's HTTP address (http:// or https://), got {:?}", self.url),
            );
        }
        if self.url.contains('@') {
            return invalid(format!("{at}.url"), "must not hold a login; use user and password".to_owned());
        }
        let within = |key: &str, d: Duration, lo: u64, hi: u64| {
            if d < Duration::from_secs(lo) || d > Duration::from_secs(hi) {
                return invalid(
                    format!("{at}.{key}"),
                    format!(
                        "must be between {} and {}, got {}",
                        show(Duration::from_secs(lo)),
                        show(Duration::from_secs(hi)),
                        show(d)
                    ),
                );
            }
            Ok(())
        };
        within("interval", self.interval, 1, 3600)?;
        within("lag", self.lag, 0, 3600)?;
        within("first_lookback", self.first_lookback, 0, 31 * 86_400)?;
        within("timeout", self.timeout, 1, 600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_the_default_and_bad_values_name_their_key() {
        let parsed: QueryLogConfig = toml::from_str("").unwrap();
        assert_eq!(parsed, QueryLogConfig::default());
        parsed.validate("detect.query_log").unwrap();
        let err =
            |text: &str| toml::from_str::<QueryLogConfig>(text).unwrap().validate("detect.query_log").unwrap_err();
        assert_eq!(err("enabled = true").key, "detect.query_log.url");
        assert_eq!(err("url = \"http://u:p@h:8123\"").key, "detect.query_log.url");
        assert_eq!(err("interval = \"0s\"").key, "detect.query_log.interval");
        let ok: QueryLogConfig =
            toml::from_str("enabled = true\nurl = \"http://127.0.0.1:8123\"\npassword = \"s3cret\"").unwrap();
        ok.validate("detect.query_log").unwrap();
        assert!(!format!("{ok:?}").contains("s3cret"));
    }
}
