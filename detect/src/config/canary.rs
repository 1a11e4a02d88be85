//! `[detect.canary]`: the synthetic decision `gatelog serve` sends through its own receiver
//! to prove that detection operates (see `gatelog_model::canary`).

use super::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[detect.canary]`. On by default: it is the evidence an auditor asks for that monitoring
/// ran, costs one decision per `interval`, and its own alert is resolved by gatelog and never
/// mailed; only a missed canary pages. The first canary goes one `interval` after the first
/// start (then one `interval` after the previous, across restarts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanaryConfig {
    /// Send canaries at all (only where detection runs: `gatelog serve` with `detect.enabled`).
    pub enabled: bool,
    /// How often a canary is sent.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long after its 2xx a canary's alert may take to be stored before the run is
    /// `missed` (and its own alert opened). Shorter than `interval`.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig { enabled: true, interval: Duration::from_secs(3600), deadline: Duration::from_secs(300) }
    }
}

impl CanaryConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        if self.interval < Duration::from_secs(1) || self.interval > Duration::from_secs(7 * 86_400) {
            return invalid(
                format!("{at}.interval"),
                format!("must be between 1s and 7days, got {}", show(self.interval)),
            );
        }
        if self.deadline.is_zero() || self.deadline >= self.interval {
            return invalid(
                format!("{at}.deadline"),
                format!(
                    "must be longer than 0s and shorter than {at}.interval ({}), got {}",
                    show(self.interval),
                    show(self.deadline)
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_the_default_and_bad_values_name_their_key() {
        let parsed: CanaryConfig = toml::from_str("").unwrap();
        assert_eq!(parsed, CanaryConfig::default());
        parsed.validate("detect.canary").unwrap();
        let err = |text: &str| toml::from_str::<CanaryConfig>(text).unwrap().validate("detect.canary").unwrap_err();
        assert_eq!(err("interval = \"0s\"").key, "detect.canary.interval");
        assert_eq!(err("deadline = \"0s\"").key, "detect.canary.deadline");
        let e = err("interval = \"2s\"\ndeadline = \"2s\"");
        assert_eq!(e.key, "detect.canary.deadline");
        assert!(e.message.contains("shorter than detect.canary.interval (2s)"), "{}", e.message);
        assert!(toml::from_str::<CanaryConfig>("every = \"1h\"").unwrap_err().to_string().contains("every"));
    }
}
