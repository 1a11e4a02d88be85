//! [`AlertGrouper`]: findings in, alerts out. Findings with one `(tenant, dedup_key)` are
//! one [`Alert`] while each comes at most `suppression_window` (event time: the finding's
//! `window_end`) after the alert's last one; a later finding opens a new alert. Pure and
//! deterministic like the engine: the same findings in the same order give the same alert
//! ids and counts, so a replay after a crash stores the same rows again (no new alert).
//! Its state is saved with the engine's checkpoint ([`AlertGrouper::save`]).
//!
//! Acknowledging or resolving an alert (its lifecycle events, `gatelog alerts`) does not
//! change grouping: a repeat within the window still counts in the alert (its count and
//! last seen grow; a resolved alert stays resolved and says how often it came back).

use crate::checkpoint::CheckpointError;
use crate::config::AlertsConfig;
use gatelog_model::{Alert, Finding, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What [`AlertGrouper::add`] did with a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouped {
    /// The alert as it is now.
    pub alert: Alert,
    /// Whether this finding opened it.
    pub opened: bool,
    /// Whether the finding counted (false: the same finding id again).
    pub counted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    /// `(tenant, dedup_key)` → alert, plus the newest finding time seen.
    groups: Vec<((String, String), Alert)>,
    watermark: i64,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct AlertGrouper {
    window_ms: i64,
    max_open: usize,
    groups: BTreeMap<(String, String), Alert>,
    /// The newest finding time seen: groups older than a window before it are closed.
    watermark: i64,
}

impl AlertGrouper {
    pub fn new(config: &AlertsConfig) -> AlertGrouper {
        AlertGrouper {
            window_ms: i64::try_from(config.suppression_window.as_millis()).unwrap_or(i64::MAX),
            max_open: config.max_open.max(1),
            groups: BTreeMap::new(),
            watermark: i64::MIN,
        }
    }

    /// Alerts still open to grouping.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Groups one finding (sealed: its id set).
    pub fn add(&mut self, f: &Finding) -> Grouped {
        let at = f.window_end.0.max(f.window_start.0);
        self.watermark = self.watermark.max(at);
        let key = (f.tenant.clone(), f.dedup_key.clone());
        if let Some(alert) = self.groups.get_mut(&key)
            && at <= alert.last_seen.0.saturating_add(self.window_ms)
            && at >= alert.first_seen.0.saturating_sub(self.window_ms)
        {
            let counted = f.finding_id != alert.last_finding_id && f.finding_id != alert.first_finding_id;
            if counted {
                alert.count += 1;
                alert.last_seen = UnixMillis(alert.last_seen.0.max(at));
                alert.severity = alert.severity.max(f.severity);
                alert.summary = f.summary.clone();
                alert.last_finding_id = f.finding_id.clone();
            }
            return Grouped { alert: alert.clone(), opened: false, counted };
        }
        let alert = Alert {
            alert_id: Alert::derive_id(&f.tenant, &f.dedup_key, &f.finding_id),
            tenant: f.tenant.clone(),
            dedup_key: f.dedup_key.clone(),
            rule_id: f.rule_id.clone(),
            severity: f.severity,
            first_seen: UnixMillis(f.window_start.0.min(at)),
            last_seen: UnixMillis(at),
            count: 1,
            summary: f.summary.clone(),
            principal: f.principal.clone(),
            client_ip: f.client_ip.clone(),
            resource: f.resource.clone(),
            first_finding_id: f.finding_id.clone(),
            last_finding_id: f.finding_id.clone(),
        };
        self.groups.insert(key, alert.clone());
        self.bound();
        Grouped { alert, opened: true, counted: true }
    }

    /// Forgets alerts no finding can join any more, then, over `max_open`, the least
    /// recently seen tenth (ties by key).
    fn bound(&mut self) {
        let horizon = self.watermark.saturating_sub(self.window_ms.saturating_mul(2));
        if self.groups.len() > self.max_open {
            self.groups.retain(|_, a| a.last_seen.0 >= horizon);
        }
        if self.groups.len() > self.max_open {
            let mut by_age: Vec<(i64, (String, String))> =
                self.groups.iter().map(|(k, a)| (a.last_seen.0, k.clone())).collect();
            by_age.sort();
            let drop = (self.max_open / 10).max(self.groups.len() - self.max_open);
            for (_, k) in by_age.into_iter().take(drop) {
                self.groups.remove(&k);
            }
        }
    }

    /// The state, for the runtime's checkpoint (closed groups are left out).
    pub fn save(&self) -> Result<Vec<u8>, CheckpointError> {
        let horizon = self.watermark.saturating_sub(self.window_ms.saturating_mul(2));
        let groups = self.groups.iter().filter(|(_, a)| a.last_seen.0 >= horizon).map(|(k, a)| (k.clone(), a.clone()));
        let saved = Saved { groups: groups.collect(), watermark: self.watermark };
        postcard::to_allocvec(&saved).map_err(|e| CheckpointError::Encode(format!("alert groups: {e}")))
    }

    /// A grouper with `config` and the state [`AlertGrouper::save`] wrote.
    pub fn load(config: &AlertsConfig, bytes: &[u8]) -> Result<AlertGrouper, CheckpointError> {
        let saved: Saved =
            postcard::from_bytes(bytes).map_err(|e| CheckpointError::Decode(format!("alert groups: {e}")))?;
        let mut grouper = AlertGrouper::new(config);
        grouper.watermark = saved.watermark;
        grouper.groups = saved.groups.into_iter().collect();
        grouper.bound();
        Ok(grouper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_model::Severity;
    use std::time::Duration;

    fn finding(key: &str, at: i64, severity: Severity) -> Finding {
        Finding {
            rule_id: "new_country".into(),
            rule_version: 1,
            severity,
            dedup_key: key.into(),
            tenant: "default".into(),
            window_start: UnixMillis(at),
            window_end: UnixMillis(at),
            event_ids: vec![format!("e{at}")],
            summary: format!("at {at}"),
            ..Finding::default()
        }
        .seal()
    }

    fn config(window_s: u64, max_open: usize) -> AlertsConfig {
        AlertsConfig { suppression_window: Duration::from_secs(window_s), max_open }
    }

    #[test]
    fn one_alert_per_key_within_the_window_then_a_new_one() {
        let mut g = AlertGrouper::new(&config(60, 100));
        let a = g.add(&finding("k", 0, Severity::Low));
        assert!(a.opened && a.counted);
        let b = g.add(&finding("k", 50_000, Severity::High));
        assert!(!b.opened && b.counted);
        assert_eq!((b.alert.alert_id.as_str(), b.alert.count), (a.alert.alert_id.as_str(), 2));
        assert_eq!(b.alert.severity, Severity::High, "the highest severity");
        let again = g.add(&finding("k", 50_000, Severity::High));
        assert!(!again.counted, "the same finding counts once");
        let c = g.add(&finding("k", 50_000 + 60_001, Severity::Low));
        assert!(c.opened, "past the window after the last finding: a new alert");
        assert_ne!(c.alert.alert_id, a.alert.alert_id);
        let other = g.add(&finding("other", 1, Severity::Low));
        assert!(other.opened);
    }

    #[test]
    fn saved_and_loaded_it_groups_as_if_it_never_stopped() {
        let findings: Vec<Finding> =
            (0..40).map(|i| finding(&format!("k{}", i % 7), i64::from(i) * 20_000, Severity::Medium)).collect();
        let mut whole = AlertGrouper::new(&config(60, 100));
        let all: Vec<Grouped> = findings.iter().map(|f| whole.add(f)).collect();
        for cut in [0, 1, 13, 39] {
            let mut first = AlertGrouper::new(&config(60, 100));
            let mut got: Vec<Grouped> = findings[..cut].iter().map(|f| first.add(f)).collect();
            let mut second = AlertGrouper::load(&config(60, 100), &first.save().unwrap()).unwrap();
            got.extend(findings[cut..].iter().map(|f| second.add(f)));
            assert_eq!(got, all, "cut at {cut}");
        }
    }

    #[test]
    fn memory_is_bounded() {
        let mut g = AlertGrouper::new(&config(3600, 50));
        for i in 0..1000 {
            g.add(&finding(&format!("k{i}"), 1000, Severity::Low));
        }
        assert!(g.len() <= 50, "{}", g.len());
    }
}
