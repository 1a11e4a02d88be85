//! `[detect.sql_rules]`: how rules as code (`rules/*.toml`, `detect.rules_dir`) run: the
//! event-time bound every rendered query gets (so ClickHouse reads only the partitions that
//! can hold a window's arrivals), and the schedule `gatelog serve` runs them on.

use super::{ConfigError, invalid, positive_duration};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[detect.sql_rules]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlRulesConfig {
    /// Run every rule on its schedule inside `gatelog serve`.
    pub scheduled: bool,
    /// A window `[to - window, to)` of arrivals runs once `to` is this far in the past (and
    /// the ClickHouse sink has stored every record received before `to`): the time a
    /// request takes from its receipt to its spool record.
    #[serde(with = "humantime_serde")]
    pub lag: Duration,
    /// A rule's query reads decisions whose event `time` is at most this long before its
    /// window (`time >= from - max_lateness`), so ClickHouse prunes the month partitions
    /// (`PARTITION BY toYYYYMM(time)`) and parts that cannot hold them. A decision that
    /// arrives later than this after it happened (a backfill of old files) is not judged
    /// by the rules (the streaming detectors and `gatelog detect` still see it).
    #[serde(with = "humantime_serde")]
    pub max_lateness: Duration,
    /// And at most this long after its window's end (`time < to + max_clock_skew`): a
    /// source whose clock runs ahead.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// After downtime, missed windows are run oldest first, back to at most this long
    /// before the newest due one; older ones are skipped with a warning naming the
    /// `gatelog rules run --store` command that judges them.
    #[serde(with = "humantime_serde")]
    pub max_catch_up: Duration,
    /// A failed scheduled run (ClickHouse down, a query error) is retried after this, then
    /// twice as long each time up to `retry_max_backoff`, until it succeeds.
    #[serde(with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
}

impl Default for SqlRulesConfig {
    fn default() -> Self {
        SqlRulesConfig {
            scheduled: true,
            lag: Duration::from_secs(60),
            max_lateness: Duration::from_secs(86_400),
            max_clock_skew: Duration::from_secs(3600),
            max_catch_up: Duration::from_secs(86_400),
            retry_initial_backoff: Duration::from_secs(5),
            retry_max_backoff: Duration::from_secs(300),
        }
    }
}

impl SqlRulesConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        if self.lag > Duration::from_secs(86_400) {
            return invalid(format!("{at}.lag"), format!("must be at most 1day, got {}", fmt(self.lag)));
        }
        if self.max_lateness > Duration::from_secs(366 * 86_400) {
            return invalid(
                format!("{at}.max_lateness"),
                format!("must be at most 366days, got {}", fmt(self.max_lateness)),
            );
        }
        if self.max_clock_skew > Duration::from_secs(7 * 86_400) {
            return invalid(
                format!("{at}.max_clock_skew"),
                format!("must be at most 7days, got {}", fmt(self.max_clock_skew)),
            );
        }
        positive_duration(&format!("{at}.max_catch_up"), self.max_catch_up)?;
        if self.max_catch_up > Duration::from_secs(31 * 86_400) {
            return invalid(
                format!("{at}.max_catch_up"),
                format!("must be at most 31days, got {}", fmt(self.max_catch_up)),
            );
        }
        positive_duration(&format!("{at}.retry_initial_backoff"), self.retry_initial_backoff)?;
        if self.retry_max_backoff < self.retry_initial_backoff || self.retry_max_backoff > Duration::from_secs(3600) {
            return invalid(
                format!("{at}.retry_max_backoff"),
                format!(
                    "must be at least retry_initial_backoff ({}) and at most 1h, got {}",
                    fmt(self.retry_initial_backoff),
                    fmt(self.retry_max_backoff)
                ),
            );
        }
        Ok(())
    }

    /// The event-time bound of a query over arrivals `[from, to)` (ms): `[from -
    /// max_lateness, to + max_clock_skew)`.
    pub fn time_bound(&self, from: i64, to: i64) -> (i64, i64) {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        (from.saturating_sub(ms(self.max_lateness)), to.saturating_add(ms(self.max_clock_skew)))
    }
}
