//! `privileged_change`: a change to a security-relevant resource in an audit log, made off
//! the actor's usual hours from an IP new to it.
//!
//! Judged on decisions of the audit datasets (`datasets`) whose action is a change (not in
//! `ignore_actions`) and whose resource (`cloudflare:<type>/<id>` in v1,
//! `cloudflare:<product>/<type>/<id>` in v2) names one of `resource_types` in any segment
//! before the id. The actor needs `min_history` allowed requests in its profile (from any
//! dataset), else everything about it is new. Then, by default, both must hold:
//! - **new IP**: the actor never used the IP, or first used it less than `new_ip_grace`
//!   before this change (an intruder's own login a minute earlier does not make the IP
//!   familiar) — and the IP appeared at least `new_ip_grace` after the actor was first seen
//!   (when a stream starts cold, every actor's usual IPs appear with it);
//! - **off-hours**: the time is off the actor's usual hours, judged once
//!   `min_settled_events` of its events are settled (on earlier UTC days). Before that the
//!   hours are unknown and the change is not reported: when a stream starts cold, every
//!   actor is unknown for its first day, and reporting their ordinary second IPs would
//!   drown the signal. The runtime's warm-up from history closes that gap.
//!
//! Failed changes count too (an attempt is worth knowing about). One finding per change;
//! the dedup key `privileged_change:<actor>:<ip>` groups an intrusion's changes.

use crate::baseline::Assessment;
use crate::checkpoint::CheckpointError;
use crate::config::PrivilegedConfig;
use crate::detector::{Context, Detector, Draft, Rule, clock_time, in_list, who};
use gatelog_model::{AccessDecision, Finding};

const RULE: Rule = Rule { id: "privileged_change", version: 1 };

#[derive(Debug)]
pub(crate) struct Privileged {
    cfg: PrivilegedConfig,
}

impl Privileged {
    pub(crate) fn new(cfg: PrivilegedConfig) -> Self {
        Privileged { cfg }
    }

    /// The configured resource type `resource` names, if any.
    fn resource_type<'a>(&'a self, resource: &str) -> Option<&'a str> {
        let path = resource.strip_prefix("cloudflare:")?;
        let segments: Vec<&str> = path.split('/').collect();
        let (_id, kinds) = segments.split_last()?;
        self.cfg.resource_types.iter().map(String::as_str).find(|t| kinds.iter().any(|k| k.eq_ignore_ascii_case(t)))
    }
}

impl Detector for Privileged {
    fn rule(&self) -> Rule {
        RULE
    }

    fn on_decision(&mut self, cx: &Context<'_>, d: &AccessDecision, out: &mut Vec<Finding>) {
        if d.principal.is_empty()
            || !in_list(&self.cfg.datasets, &d.dataset)
            || in_list(&self.cfg.ignore_actions, &d.action)
        {
            return;
        }
        let Some(kind) = self.resource_type(&d.resource) else { return };
        let Some(profile) = cx.principal else { return };
        if profile.events < u64::from(self.cfg.min_history) {
            return;
        }
        let grace = i64::try_from(self.cfg.new_ip_grace.as_millis()).unwrap_or(i64::MAX);
        let ip_first = profile.ip(&d.client_ip).map(|s| s.first);
        let appeared = ip_first.unwrap_or(d.time).0;
        // New: it appeared less than `grace` ago, and at least `grace` after the actor did
        // (when a stream starts, every actor's IPs appear with it).
        let new_ip = !d.client_ip.is_empty()
            && d.time.0 - appeared < grace
            && appeared.saturating_sub(profile.first_seen.0) >= grace;
        if self.cfg.require_new_ip && !new_ip {
            return;
        }
        let hours = profile.assess_hours_after(d.time, cx.profile, self.cfg.min_settled_events);
        if self.cfg.require_off_hours && hours != Assessment::OffHours {
            return;
        }
        let ip_note = match ip_first {
            None => format!("new IP {}", d.client_ip),
            Some(first) => format!("IP {} first used {} min before", d.client_ip, (d.time.0 - first.0) / 60_000),
        };
        let when = match hours {
            Assessment::OffHours => format!("off their usual hours ({})", profile.usual_hours()),
            Assessment::Unknown => "while their usual hours are unknown".to_owned(),
            Assessment::Usual => format!("within their usual hours ({})", profile.usual_hours()),
        };
        let mut ips: Vec<&str> = profile.ips.iter().map(|s| s.value.as_str()).collect();
        ips.sort_unstable();
        out.push(
            Draft::about(RULE, self.cfg.severity, &format!("{}:{}", who(d), d.client_ip), d)
                .summary(format!(
                    "{} made a {} to {kind} ({}) at {} from {ip_note}, {when}",
                    d.principal,
                    d.action,
                    d.decision,
                    clock_time(d.time)
                ))
                .evidence("resource_type", kind)
                .evidence("action", &d.action)
                .evidence("outcome", d.decision)
                .evidence("new_ip", new_ip)
                .evidence("known_ips", ips.join(","))
                .evidence("off_hours", hours.as_str())
                .evidence("usual_hours", profile.usual_hours())
                .evidence("reason", &d.reason)
                .finish(),
        );
    }

    fn save(&self) -> Result<Vec<u8>, CheckpointError> {
        Ok(Vec::new())
    }

    fn load(&mut self, _state: &[u8]) -> Result<(), CheckpointError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{DAY, HOUR, Harness, MONDAY, assert_deterministic, decision};

    fn change(t: i64, ip: &str, resource: &str, action: &str) -> AccessDecision {
        let mut d = decision("dave@example.com", t, ip, "");
        d.dataset = "audit_logs_v2".into();
        d.resource = resource.into();
        d.action = action.into();
        d
    }

    /// Two weeks of daytime work from the usual IP.
    fn history() -> Vec<AccessDecision> {
        (0..10)
            .flat_map(|day| {
                (9..17).map(move |h| {
                    change(MONDAY + day * DAY + h * HOUR, "192.0.2.13", "cloudflare:dns_records/dns_record/1", "update")
                })
            })
            .collect()
    }

    fn det() -> Privileged {
        Privileged::new(PrivilegedConfig::default())
    }

    #[test]
    fn a_night_policy_change_from_a_new_ip_fires() {
        let mut h = Harness::default();
        let mut p = det();
        h.feed_all(&mut p, &history());
        let night = MONDAY + 11 * DAY + 3 * HOUR;
        let f = h.feed(&mut p, &change(night, "198.51.100.201", "cloudflare:access/access_policy/9f", "update"));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].dedup_key, "privileged_change:dave@example.com:198.51.100.201");
        assert_eq!(f[0].evidence["resource_type"], "access_policy");
        assert_eq!(f[0].evidence["off_hours"], "off");
        // Its own login a minute earlier does not make the IP familiar.
        let mut login = change(night + 60_000, "198.51.100.201", "cloudflare:account/account/1", "login");
        login.dataset = "access_requests".into();
        h.feed(&mut p, &login);
        let v1 = change(night + 120_000, "198.51.100.201", "cloudflare:logpush_job/731204", "update");
        assert_eq!(h.feed(&mut p, &v1).len(), 1, "v1 resources too");
    }

    #[test]
    fn each_condition_is_needed() {
        let mut h = Harness::default();
        let mut p = det();
        h.feed_all(&mut p, &history());
        let night = MONDAY + 11 * DAY + 3 * HOUR;
        let day = MONDAY + 11 * DAY + 11 * HOUR;
        let policy = "cloudflare:access/access_policy/9f";
        assert!(h.feed(&mut p, &change(day, "198.51.100.202", policy, "update")).is_empty(), "usual hours");
        assert!(h.feed(&mut p, &change(night, "192.0.2.13", policy, "update")).is_empty(), "known IP");
        let dns = "cloudflare:dns_records/dns_record/1";
        assert!(h.feed(&mut p, &change(night, "198.51.100.203", dns, "update")).is_empty(), "not privileged");
        let login = "cloudflare:account/access_policy/1";
        assert!(h.feed(&mut p, &change(night, "198.51.100.204", login, "login")).is_empty(), "not a change");
        let mut other = change(night, "198.51.100.205", policy, "update");
        other.dataset = "http_requests".into();
        assert!(h.feed(&mut p, &other).is_empty(), "not an audit dataset");
    }

    #[test]
    fn actors_without_history_or_settled_hours_are_not_judged() {
        let mut h = Harness::default();
        let mut p = det();
        let t = MONDAY + 9 * HOUR;
        let policy = "cloudflare:access_policy/1";
        assert!(h.feed(&mut p, &change(t, "198.51.100.1", policy, "update")).is_empty(), "no history");
        for i in 1..5 {
            h.feed(&mut p, &change(t + i * 10 * 60_000, "192.0.2.13", "cloudflare:zone/zone/1", "purge"));
        }
        let same_day = change(t + 90 * 60_000, "198.51.100.9", policy, "update");
        let f = h.feed(&mut p, &same_day);
        assert!(f.is_empty(), "a new IP, but nothing settled yet: hours unknown");
        let next_night = change(MONDAY + DAY + 3 * HOUR, "198.51.100.10", policy, "update");
        let f = h.feed(&mut p, &next_night);
        assert_eq!(f.len(), 1, "03:00 is off a settled 09:00–09:59 day");
        assert_eq!(f[0].evidence["off_hours"], "off");
    }

    #[test]
    fn when_a_stream_starts_the_actors_own_ips_are_not_new() {
        let mut h = Harness::default();
        let mut p = det();
        let t = MONDAY + 3 * HOUR;
        for i in 0..5 {
            h.feed(&mut p, &change(t + i * 60_000, "192.0.2.13", "cloudflare:zone/zone/1", "purge"));
        }
        let second_ip = change(t + 59 * 60_000, "198.51.100.13", "cloudflare:access_policy/1", "update");
        assert!(h.feed(&mut p, &second_ip).is_empty(), "appeared within new_ip_grace of the actor");
    }

    #[test]
    fn deterministic() {
        let mut stream = history();
        let night = MONDAY + 11 * DAY + 3 * HOUR;
        stream.push(change(night, "198.51.100.201", "cloudflare:access/access_policy/9f", "update"));
        stream.push(change(night + 60_000, "198.51.100.201", "cloudflare:api_tokens/api_token/1", "create"));
        assert_eq!(assert_deterministic(|| Box::new(det()), &stream).len(), 2);
    }
}
