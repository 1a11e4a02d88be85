//! `rare_pair`: an established principal allowed on a resource it never used before, and
//! that few others use.
//!
//! Only data-access datasets count (`datasets`: by default the proxy's and the IAP
//! Worker's decisions, whose resources are tables and dashboards; web page URLs would make
//! every click a pair). A principal is established after `min_history` allowed requests in
//! them spanning at least `min_age`. The pair fires when the principal never used the
//! resource and at most `max_peers` other principals ever did.
//!
//! State: per principal, the stable hashes of the resources it used (at most
//! `max_resources_per_principal`, least recently used dropped); per resource, how many
//! principals used it (at most `max_resources`). Dedup key:
//! `rare_pair:<principal>:<resource>`.

use crate::baseline::{learns_from, principal_key};
use crate::checkpoint::CheckpointError;
use crate::config::RarePairConfig;
use crate::detector::{Context, Detector, Draft, Rule, in_list, load_state, save_state, who};
use crate::keyed::{Keyed, Recency, stable_hash};
use gatelog_model::{AccessDecision, Finding, UnixMillis};
use serde::{Deserialize, Serialize};

const RULE: Rule = Rule { id: "rare_pair", version: 1 };

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Habits {
    first_seen: i64,
    last_seen: i64,
    events: u64,
    /// (resource hash, last used), unordered.
    resources: Vec<(u64, i64)>,
}

impl Recency for Habits {
    fn last_seen(&self) -> UnixMillis {
        UnixMillis(self.last_seen)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Users {
    principals: u32,
    last_seen: i64,
}

impl Recency for Users {
    fn last_seen(&self) -> UnixMillis {
        UnixMillis(self.last_seen)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    habits: Keyed<Habits>,
    resources: Keyed<Users>,
}

#[derive(Debug)]
pub(crate) struct RarePair {
    cfg: RarePairConfig,
    state: State,
}

impl RarePair {
    pub(crate) fn new(cfg: RarePairConfig) -> Self {
        RarePair { cfg, state: State::default() }
    }
}

impl Detector for RarePair {
    fn rule(&self) -> Rule {
        RULE
    }

    fn on_decision(&mut self, _cx: &Context<'_>, d: &AccessDecision, out: &mut Vec<Finding>) {
        let resource = d.resource.trim();
        if !learns_from(d) || resource.is_empty() || !in_list(&self.cfg.datasets, &d.dataset) {
            return;
        }
        let t = d.time.0;
        let hash = stable_hash(&[resource]);
        let peers = self.state.resources.get(resource).map_or(0, |u| u.principals);
        let h = self.state.habits.entry(&principal_key(&d.principal), self.cfg.max_principals, || Habits {
            first_seen: t,
            last_seen: t,
            ..Habits::default()
        });
        let established = h.events >= u64::from(self.cfg.min_history)
            && t.saturating_sub(h.first_seen) >= i64::try_from(self.cfg.min_age.as_millis()).unwrap_or(i64::MAX);
        let known = h.resources.iter_mut().find(|(r, _)| *r == hash);
        let new_pair = known.is_none();
        match known {
            Some(entry) => entry.1 = entry.1.max(t),
            None => {
                if h.resources.len() >= self.cfg.max_resources_per_principal
                    && let Some(i) = (0..h.resources.len()).min_by_key(|&i| (h.resources[i].1, h.resources[i].0))
                {
                    h.resources.swap_remove(i);
                }
                h.resources.push((hash, t));
            }
        }
        let history = h.events;
        let first_seen = h.first_seen;
        h.events += 1;
        h.first_seen = h.first_seen.min(t);
        h.last_seen = h.last_seen.max(t);
        let users = self.state.resources.entry(resource, self.cfg.max_resources, Users::default);
        users.last_seen = users.last_seen.max(t);
        if new_pair {
            users.principals = users.principals.saturating_add(1);
        }
        if !(established && new_pair && peers <= self.cfg.max_peers) {
            return;
        }
        out.push(
            Draft::about(RULE, self.cfg.severity, &format!("{}:{resource}", who(d)), d)
                .summary(format!(
                    "{} was allowed {} on {resource} for the first time; {peers} other principal(s) ever used it",
                    d.principal, d.action
                ))
                .evidence("resource", resource)
                .evidence("action", &d.action)
                .evidence("other_principals", peers)
                .evidence("principal_history", history)
                .evidence("principal_first_seen", UnixMillis(first_seen))
                .finish(),
        );
    }

    fn save(&self) -> Result<Vec<u8>, CheckpointError> {
        save_state(&self.state)
    }

    fn load(&mut self, state: &[u8]) -> Result<(), CheckpointError> {
        self.state = load_state(RULE, state)?;
        Ok(())
    }

    fn tracked(&self) -> usize {
        self.state.habits.len() + self.state.resources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{DAY, HOUR, MONDAY, assert_deterministic, cx_none, decision};

    fn access(principal: &str, t: i64, table: &str) -> AccessDecision {
        let mut d = decision(principal, t, "192.0.2.1", "US");
        d.dataset = "workers_trace_events".into();
        d.action = "select".into();
        d.resource = format!("clickhouse:{table}");
        d
    }

    /// `n` requests to `table` over eight days.
    fn habit(principal: &str, table: &str, n: i64) -> Vec<AccessDecision> {
        (0..n).map(|i| access(principal, MONDAY + i * (8 * DAY / n), table)).collect()
    }

    fn run(det: &mut RarePair, ds: &[AccessDecision]) -> Vec<Finding> {
        let mut out = Vec::new();
        for d in ds {
            det.on_decision(&cx_none(), d, &mut out);
        }
        out
    }

    #[test]
    fn an_established_principal_on_a_rare_table_fires_once() {
        let mut det = RarePair::new(RarePairConfig::default());
        run(&mut det, &habit("ann@example.com", "analytics.events", 60));
        run(&mut det, &habit("root@example.com", "finance.payroll", 5));
        let t = MONDAY + 9 * DAY;
        let f = run(&mut det, &[access("ann@example.com", t, "finance.payroll")]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].dedup_key, "rare_pair:ann@example.com:clickhouse:finance.payroll");
        assert_eq!(f[0].evidence["other_principals"], "1");
        assert!(run(&mut det, &[access("ann@example.com", t + HOUR, "finance.payroll")]).is_empty(), "no longer new");
    }

    #[test]
    fn popular_resources_young_principals_and_web_datasets_do_not_fire() {
        let mut det = RarePair::new(RarePairConfig::default());
        for p in ["a", "b", "c"] {
            run(&mut det, &habit(&format!("{p}@example.com"), "logs.http_requests", 3));
        }
        run(&mut det, &habit("ann@example.com", "analytics.events", 60));
        let t = MONDAY + 9 * DAY;
        assert!(run(&mut det, &[access("ann@example.com", t, "logs.http_requests")]).is_empty(), "3 peers > 2");
        run(&mut det, &habit("young@example.com", "analytics.events", 10));
        assert!(run(&mut det, &[access("young@example.com", t, "finance.payroll")]).is_empty(), "10 < min_history");
        let mut web = access("ann@example.com", t, "x");
        web.dataset = "http_requests".into();
        web.resource = "https://www.example.com/pricing".into();
        assert!(run(&mut det, &[web]).is_empty());
    }

    #[test]
    fn per_principal_resources_are_capped() {
        let cfg = RarePairConfig { max_resources_per_principal: 8, ..RarePairConfig::default() };
        let mut det = RarePair::new(cfg);
        let ds: Vec<_> = (0..100).map(|i| access("z@example.com", MONDAY + i, &format!("db.t{i}"))).collect();
        run(&mut det, &ds);
        assert!(det.state.habits.get("z@example.com").unwrap().resources.len() <= 8);
    }

    #[test]
    fn deterministic() {
        let mut stream = habit("ann@example.com", "analytics.events", 60);
        stream.extend(habit("root@example.com", "finance.payroll", 5));
        stream.sort_by_key(|d| d.time);
        stream.push(access("ann@example.com", MONDAY + 9 * DAY, "finance.payroll"));
        stream.push(access("ann@example.com", MONDAY + 9 * DAY + 1, "audit.access_decisions"));
        let f = assert_deterministic(|| Box::new(RarePair::new(RarePairConfig::default())), &stream);
        assert_eq!(f.len(), 2);
    }
}
