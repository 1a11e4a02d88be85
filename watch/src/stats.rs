//! [`WatchStats`]: what the runtime did since the start, for `/metrics`. Every label set is
//! closed: rules are [`gatelog_detect::rules::RULE_IDS`] (anything else counts as `other`),
//! alert states are [`AlertState::ALL`], run outcomes `ok` and `failed`.

use gatelog_detect::rules::RULE_IDS;
use gatelog_model::AlertState;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// The `rule` label of a finding of a rule outside [`RULE_IDS`].
pub const OTHER_RULE: &str = "other";

/// Counters the runtime keeps and `/metrics` reads.
#[derive(Debug, Default)]
pub struct WatchStats {
    /// Findings stored since the start, by rule (index in [`RULE_IDS`], then `other`).
    findings: Mutex<Vec<u64>>,
    pub alerts_opened: AtomicU64,
    pub decisions: AtomicU64,
    pub runs_ok: AtomicU64,
    pub runs_failed: AtomicU64,
    /// Alerts by state as ClickHouse last said (refreshed on every tick), in
    /// [`AlertState::ALL`] order; `alert_states_known` once read.
    alert_states: Mutex<[u64; 3]>,
    pub alert_states_known: AtomicBool,
    /// Event time of the newest decision judged (ms; 0: none yet).
    pub newest_event_ms: AtomicI64,
    /// Receipt time of the newest batch judged (ms; 0: none yet).
    pub newest_received_ms: AtomicI64,
    /// 1 while warming up from ClickHouse history.
    pub warming: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl WatchStats {
    pub fn add_finding(&self, rule: &str) {
        let mut by_rule = lock(&self.findings);
        if by_rule.len() != RULE_IDS.len() + 1 {
            by_rule.resize(RULE_IDS.len() + 1, 0);
        }
        let i = RULE_IDS.iter().position(|r| *r == rule).unwrap_or(RULE_IDS.len());
        by_rule[i] += 1;
    }

    /// `(rule label, findings)` for every rule and `other`.
    pub fn findings_by_rule(&self) -> Vec<(&'static str, u64)> {
        let by_rule = lock(&self.findings);
        RULE_IDS
            .iter()
            .copied()
            .chain([OTHER_RULE])
            .enumerate()
            .map(|(i, rule)| (rule, by_rule.get(i).copied().unwrap_or(0)))
            .collect()
    }

    pub fn set_alert_states(&self, counts: &[(String, u64)]) {
        let mut states = [0; 3];
        for (name, n) in counts {
            if let Some(i) = AlertState::parse(name).and_then(|s| AlertState::ALL.iter().position(|a| *a == s)) {
                states[i] = *n;
            }
        }
        *lock(&self.alert_states) = states;
        self.alert_states_known.store(true, Ordering::Relaxed);
    }

    /// `(state, alerts)` for every state, once known.
    pub fn alert_states(&self) -> Option<Vec<(&'static str, u64)>> {
        if !self.alert_states_known.load(Ordering::Relaxed) {
            return None;
        }
        let states = *lock(&self.alert_states);
        Some(AlertState::ALL.iter().zip(states).map(|(s, n)| (s.as_str(), n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_closed() {
        let s = WatchStats::default();
        s.add_finding("new_country");
        s.add_finding("made_up");
        let by_rule = s.findings_by_rule();
        assert_eq!(by_rule.len(), RULE_IDS.len() + 1);
        assert!(by_rule.contains(&("new_country", 1)) && by_rule.contains(&(OTHER_RULE, 1)));
        assert_eq!(s.alert_states(), None);
        s.set_alert_states(&[("open".into(), 3), ("weird".into(), 9)]);
        assert_eq!(s.alert_states().unwrap(), vec![("open", 3), ("acknowledged", 0), ("resolved", 0)]);
    }
}
