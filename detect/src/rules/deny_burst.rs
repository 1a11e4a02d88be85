//! `deny_burst_ip` and `deny_burst_principal`: at least `threshold` denials for one client
//! IP (one principal, named or merely claimed) within a sliding `window` of event time.
//!
//! Per key, the latest `threshold` denials are kept in time order (late events are put in
//! place); the burst starts when they span no more than `window`. One finding per burst,
//! naming the denials that made it and, for an IP, the principals it tried (for a
//! principal, the IPs it was tried from). The burst lasts while denials keep coming within
//! `window` of each other; after that a new burst may fire.
//!
//! Memory: keys whose last denial is older than `window` (relative to the newest event
//! seen) hold nothing useful and are swept every 1024 decisions; at most `max_keys` keys are
//! kept (least recently denied tenth dropped). About `threshold` × 100 bytes per key.
//! Dedup key: `deny_burst_ip:<ip>` / `deny_burst_principal:<principal>`.

use crate::baseline::principal_key;
use crate::checkpoint::CheckpointError;
use crate::config::DenyBurstConfig;
use crate::detector::{Context, Detector, Draft, Rule, load_state, save_state};
use crate::keyed::Keyed;
use crate::rules::window::{Added, Sweep, Window};
use gatelog_model::{AccessDecision, Decision, Finding, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What a burst is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum By {
    Ip,
    Principal,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Denial {
    event_id: String,
    /// The principal tried (by IP) or the IP it came from (by principal).
    other: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    keys: Keyed<Window<Denial>>,
    sweep: Sweep,
}

#[derive(Debug)]
pub(crate) struct DenyBurst {
    by: By,
    cfg: DenyBurstConfig,
    state: State,
}

impl DenyBurst {
    pub(crate) fn new(by: By, cfg: DenyBurstConfig) -> Self {
        DenyBurst { by, cfg, state: State::default() }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.cfg.window.as_millis()).unwrap_or(i64::MAX)
    }
}

impl Detector for DenyBurst {
    fn rule(&self) -> Rule {
        match self.by {
            By::Ip => Rule { id: "deny_burst_ip", version: 1 },
            By::Principal => Rule { id: "deny_burst_principal", version: 1 },
        }
    }

    fn on_decision(&mut self, _cx: &Context<'_>, d: &AccessDecision, out: &mut Vec<Finding>) {
        let denied = d.decision == Decision::Deny || (self.cfg.count_challenges && d.decision == Decision::Challenge);
        if !denied {
            return;
        }
        let (key, other) = match self.by {
            By::Ip => (std::borrow::Cow::Borrowed(d.client_ip.as_str()), d.principal.as_str()),
            By::Principal => (principal_key(&d.principal), d.client_ip.as_str()),
        };
        if key.is_empty() {
            return;
        }
        let rule = self.rule();
        let window = self.window_ms();
        let t = d.time.0;
        if let Some(horizon) = self.state.sweep.tick(t, window) {
            self.state.keys.retain(|_, w| w.live_at(horizon));
        }
        let threshold = usize::try_from(self.cfg.threshold).unwrap_or(usize::MAX);
        let w = self.state.keys.entry(&key, self.cfg.max_keys, Window::default);
        let denial = Denial { event_id: d.event_id.clone(), other: other.to_owned() };
        if w.add(t, denial, window, threshold) == Added::Ongoing || w.len() < threshold {
            return;
        }
        w.report(window);
        let others: BTreeSet<&str> = w.items().map(|x| x.other.as_str()).filter(|s| !s.is_empty()).collect();
        let others: Vec<&str> = others.into_iter().collect();
        let span_s = (w.newest() - w.first()) / 1000;
        let (what, others_key) = match self.by {
            By::Ip => (format!("from {key}"), "principals"),
            By::Principal => (format!("for {}", d.principal), "client_ips"),
        };
        let mut draft = Draft::about(rule, self.cfg.severity, &key, d)
            .window(UnixMillis(w.first()), UnixMillis(w.newest()))
            .events(w.items().map(|x| x.event_id.as_str()))
            .summary(format!(
                "{} denials {what} within {span_s}s (threshold {} in {})",
                w.len(),
                self.cfg.threshold,
                humantime::format_duration(self.cfg.window)
            ))
            .evidence("denials", w.len())
            .evidence("threshold", self.cfg.threshold)
            .evidence("window", humantime::format_duration(self.cfg.window))
            .evidence(others_key, others.iter().take(20).copied().collect::<Vec<_>>().join(","))
            .evidence("asn", d.asn)
            .evidence("user_agent", &d.user_agent);
        if self.by == By::Principal {
            draft = draft.evidence("principal_type", d.principal_type);
        }
        out.push(draft.finish());
    }

    fn save(&self) -> Result<Vec<u8>, CheckpointError> {
        save_state(&self.state)
    }

    fn load(&mut self, state: &[u8]) -> Result<(), CheckpointError> {
        self.state = load_state(self.rule(), state)?;
        Ok(())
    }

    fn tracked(&self) -> usize {
        self.state.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{MONDAY, assert_deterministic, cx_none, decision};

    fn deny(ip: &str, principal: &str, t: i64) -> AccessDecision {
        let mut d = decision(principal, t, ip, "DE");
        d.decision = Decision::Deny;
        d
    }

    fn run(det: &mut DenyBurst, ds: &[AccessDecision]) -> Vec<Finding> {
        let mut out = Vec::new();
        for d in ds {
            det.on_decision(&cx_none(), d, &mut out);
        }
        out
    }

    /// `n` denials from one IP, `gap_ms` apart, trying principals in turn.
    fn spray(ip: &str, n: i64, gap_ms: i64, start: i64) -> Vec<AccessDecision> {
        (0..n).map(|i| deny(ip, &format!("user{}@example.com", i % 3), start + i * gap_ms)).collect()
    }

    #[test]
    fn fires_at_the_threshold_within_the_window_once_per_burst() {
        let mut det = DenyBurst::new(By::Ip, DenyBurstConfig::default());
        assert!(run(&mut det, &spray("203.0.113.66", 9, 1000, MONDAY)).is_empty(), "9 < 10");
        let f = run(&mut det, &spray("203.0.113.66", 30, 1000, MONDAY + 9000));
        assert_eq!(f.len(), 1, "one finding for the whole burst");
        assert_eq!(f[0].dedup_key, "deny_burst_ip:203.0.113.66");
        assert_eq!(f[0].event_ids.len(), 10);
        assert_eq!(f[0].evidence["principals"], "user0@example.com,user1@example.com,user2@example.com");
        let later = run(&mut det, &spray("203.0.113.66", 10, 1000, MONDAY + 3_600_000));
        assert_eq!(later.len(), 1, "a new burst after a quiet window");
        assert_ne!(later[0].finding_id, f[0].finding_id);
    }

    #[test]
    fn the_window_edge() {
        // 10 denials spanning exactly 5 minutes fire; spanning 5 min + 1 ms do not.
        let mut det = DenyBurst::new(By::Ip, DenyBurstConfig::default());
        let gap = 300_000 / 9;
        let mut exact = spray("198.51.100.1", 9, gap, MONDAY);
        exact.push(deny("198.51.100.1", "x", MONDAY + 300_000));
        assert_eq!(run(&mut det, &exact).len(), 1);
        let mut det = DenyBurst::new(By::Ip, DenyBurstConfig::default());
        let mut over = spray("198.51.100.2", 9, gap, MONDAY);
        over.push(deny("198.51.100.2", "x", MONDAY + 300_001));
        assert!(run(&mut det, &over).is_empty());
    }

    #[test]
    fn allowed_requests_and_other_keys_do_not_count() {
        let mut det = DenyBurst::new(By::Ip, DenyBurstConfig::default());
        let mut ds = spray("192.0.2.1", 5, 1000, MONDAY);
        ds.extend(spray("192.0.2.2", 5, 1000, MONDAY));
        ds.extend((0..20).map(|i| decision("a@example.com", MONDAY + i, "192.0.2.1", "US")));
        assert!(run(&mut det, &ds).is_empty());
    }

    #[test]
    fn challenges_count_only_when_asked() {
        let challenges: Vec<_> = spray("192.0.2.9", 12, 100, MONDAY)
            .into_iter()
            .map(|mut d| {
                d.decision = Decision::Challenge;
                d
            })
            .collect();
        assert!(run(&mut DenyBurst::new(By::Ip, DenyBurstConfig::default()), &challenges).is_empty());
        let cfg = DenyBurstConfig { count_challenges: true, ..DenyBurstConfig::default() };
        assert_eq!(run(&mut DenyBurst::new(By::Ip, cfg), &challenges).len(), 1);
    }

    #[test]
    fn by_principal_counts_claimed_names_from_many_ips() {
        let mut det = DenyBurst::new(By::Principal, DenyBurstConfig::default());
        let ds: Vec<_> =
            (0..10).map(|i| deny(&format!("203.0.113.{i}"), "Admin@Example.com", MONDAY + i * 500)).collect();
        let f = run(&mut det, &ds);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].dedup_key, "deny_burst_principal:admin@example.com");
        assert!(f[0].evidence["client_ips"].starts_with("203.0.113.0,203.0.113.1"));
    }

    #[test]
    fn late_denials_fall_into_place() {
        let mut det = DenyBurst::new(By::Ip, DenyBurstConfig::default());
        let mut ds = spray("192.0.2.50", 10, 1000, MONDAY);
        ds.reverse();
        assert_eq!(run(&mut det, &ds).len(), 1);
    }

    #[test]
    fn keys_are_capped_and_swept() {
        let cfg = DenyBurstConfig { max_keys: 50, ..DenyBurstConfig::default() };
        let mut det = DenyBurst::new(By::Ip, cfg);
        let ds: Vec<_> = (0..5000).map(|i| deny(&format!("ip{i}"), "", MONDAY + i * 1000)).collect();
        run(&mut det, &ds);
        assert!(det.tracked() <= 50);
        // After the sweep, only keys denied in the last window remain.
        assert!(det.state.keys.values().all(|w| w.newest() > MONDAY + 4_000_000));
    }

    #[test]
    fn deterministic() {
        let mut stream = spray("203.0.113.7", 25, 2000, MONDAY);
        stream.extend(spray("203.0.113.8", 12, 500, MONDAY + 10_000));
        stream.extend(spray("203.0.113.7", 12, 500, MONDAY + 7_200_000));
        stream.sort_by_key(|d| d.time);
        let f = assert_deterministic(|| Box::new(DenyBurst::new(By::Ip, DenyBurstConfig::default())), &stream);
        assert_eq!(f.len(), 3);
    }
}
