//! `new_country` and `new_asn`: an allowed request of a principal from a country (an
//! autonomous system) it never used before.
//!
//! Only decisions that teach the baselines are judged (allowed, by a named principal): a
//! denied login from abroad is a deny-burst matter, not a new habit. The principal must have
//! at least `min_history` earlier allowed requests that carried a country (an ASN) — not
//! every dataset maps one (audit logs carry neither, `access_requests` no ASN), and a first
//! sighting is not a change. The severity rises to `off_hours_severity` when the request is
//! also off the principal's usual hours.
//!
//! Once judged, the request is learned, so a principal raises one finding per new country;
//! the dedup key is `new_country:<principal>:<CC>` (`new_asn:<principal>:<asn>`).
//! Stateless beyond the shared baselines.

use crate::baseline::{Assessment, Profile, learns_from};
use crate::checkpoint::CheckpointError;
use crate::config::NoveltyConfig;
use crate::detector::{Context, Detector, Draft, Rule, who};
use gatelog_model::{AccessDecision, Finding};

/// Which attribute is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attribute {
    Country,
    Asn,
}

#[derive(Debug)]
pub(crate) struct Novelty {
    attribute: Attribute,
    cfg: NoveltyConfig,
}

impl Novelty {
    pub(crate) fn new(attribute: Attribute, cfg: NoveltyConfig) -> Self {
        Novelty { attribute, cfg }
    }

    /// Whether `p` knows the attribute's value in `d` and how much history it has of it;
    /// `None` when `d` carries no value.
    fn judge(&self, d: &AccessDecision, p: &Profile) -> Option<(bool, u64)> {
        match self.attribute {
            Attribute::Country if !d.country.is_empty() => Some((p.has_country(&d.country), p.events_with_country)),
            Attribute::Asn if d.asn != 0 => Some((p.has_asn(d.asn), p.events_with_asn)),
            _ => None,
        }
    }
}

impl Detector for Novelty {
    fn rule(&self) -> Rule {
        match self.attribute {
            Attribute::Country => Rule { id: "new_country", version: 1 },
            Attribute::Asn => Rule { id: "new_asn", version: 1 },
        }
    }

    fn on_decision(&mut self, cx: &Context<'_>, d: &AccessDecision, out: &mut Vec<Finding>) {
        if !learns_from(d) {
            return;
        }
        let Some(profile) = cx.principal else { return };
        let Some((known, history)) = self.judge(d, profile) else { return };
        if known || history < u64::from(self.cfg.min_history) {
            return;
        }
        let value = match self.attribute {
            Attribute::Country => d.country.to_ascii_uppercase(),
            Attribute::Asn => d.asn.to_string(),
        };
        let hours = profile.assess_hours(d.time, cx.profile);
        let severity = if hours == Assessment::OffHours { self.cfg.off_hours_severity } else { self.cfg.severity };
        let (what, seen) = match self.attribute {
            Attribute::Country => ("country", profile.countries_list()),
            Attribute::Asn => {
                let mut asns: Vec<u32> = profile.asns.iter().map(|s| s.value).collect();
                asns.sort_unstable();
                ("ASN", asns.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
            }
        };
        let off = if hours == Assessment::OffHours { ", off their usual hours" } else { "" };
        out.push(
            Draft::about(self.rule(), severity, &format!("{}:{value}", who(d)), d)
                .summary(format!(
                    "{} was allowed from new {what} {value} (before: {seen}) from {}{off}",
                    d.principal, d.client_ip
                ))
                .evidence(&what.to_ascii_lowercase(), &value)
                .evidence("seen_before", seen)
                .evidence("history_events", history)
                .evidence("asn", d.asn)
                .evidence("off_hours", hours.as_str())
                .evidence("usual_hours", profile.usual_hours())
                .evidence("first_seen", profile.first_seen)
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
    use gatelog_model::{Decision, Severity};

    fn country() -> Novelty {
        Novelty::new(Attribute::Country, NoveltyConfig::new_country())
    }

    #[test]
    fn fires_once_for_a_new_country_after_enough_history() {
        let mut h = Harness::default();
        let mut det = country();
        for i in 0..2 {
            assert!(h.feed(&mut det, &decision("bob@example.com", MONDAY + i * HOUR, "192.0.2.1", "GB")).is_empty());
        }
        let early = decision("bob@example.com", MONDAY + 3 * HOUR, "198.51.100.7", "RU");
        assert!(h.feed(&mut det, &early).is_empty(), "2 events of history are below min_history 3");
        let mut h = Harness::default();
        for i in 0..3 {
            h.feed(&mut det, &decision("bob@example.com", MONDAY + i * HOUR, "192.0.2.1", "GB"));
        }
        let f = h.feed(&mut det, &decision("Bob@Example.com", MONDAY + 4 * HOUR, "198.51.100.7", "ru"));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].dedup_key, "new_country:bob@example.com:RU");
        assert_eq!((f[0].client_ip.as_str(), f[0].evidence["seen_before"].as_str()), ("198.51.100.7", "GB"));
        assert_eq!(f[0].severity, Severity::Medium);
        assert!(h.feed(&mut det, &decision("bob@example.com", MONDAY + 5 * HOUR, "198.51.100.7", "RU")).is_empty());
    }

    #[test]
    fn denied_and_anonymous_requests_neither_fire_nor_teach() {
        let mut h = Harness::default();
        let mut det = country();
        for i in 0..5 {
            h.feed(&mut det, &decision("bob@example.com", MONDAY + i * HOUR, "192.0.2.1", "GB"));
        }
        let mut denied = decision("bob@example.com", MONDAY + 6 * HOUR, "203.0.113.66", "DE");
        denied.decision = Decision::Deny;
        assert!(h.feed(&mut det, &denied).is_empty());
        assert!(!h.baselines.profile("bob@example.com").unwrap().has_country("DE"));
    }

    #[test]
    fn off_hours_raises_the_severity() {
        let mut h = Harness::default();
        let mut det = country();
        for day in 0..5 {
            for hour in 9..17 {
                h.feed(&mut det, &decision("carol@example.com", MONDAY + day * DAY + hour * HOUR, "192.0.2.3", "GB"));
            }
        }
        let f = h.feed(&mut det, &decision("carol@example.com", MONDAY + 5 * DAY + 3 * HOUR, "198.51.100.9", "VN"));
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].evidence["off_hours"], "off");
    }

    #[test]
    fn asn_history_counts_only_requests_that_carried_an_asn() {
        let mut h = Harness::default();
        let mut det = Novelty::new(Attribute::Asn, NoveltyConfig::new_asn());
        for i in 0..10 {
            h.feed(&mut det, &decision("dan@example.com", MONDAY + i * HOUR, "192.0.2.4", "US"));
        }
        let mut with_asn = decision("dan@example.com", MONDAY + 11 * HOUR, "192.0.2.4", "US");
        with_asn.asn = 7922;
        assert!(h.feed(&mut det, &with_asn).is_empty(), "no ASN history yet: not new, just unknown");
        for i in 12..15 {
            with_asn.time = gatelog_model::UnixMillis(MONDAY + i * HOUR);
            h.feed(&mut det, &with_asn);
        }
        let mut other = with_asn.clone();
        other.asn = 24940;
        let f = h.feed(&mut det, &other);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].dedup_key, "new_asn:dan@example.com:24940");
    }

    #[test]
    fn deterministic() {
        let mut stream: Vec<_> =
            (0..6).map(|i| decision("eve@example.com", MONDAY + i * HOUR, "192.0.2.5", "FR")).collect();
        stream.push(decision("eve@example.com", MONDAY + 7 * HOUR, "198.51.100.5", "BR"));
        stream.push(decision("eve@example.com", MONDAY + 8 * HOUR, "198.51.100.6", "JP"));
        let f = assert_deterministic(|| Box::new(country()), &stream);
        assert_eq!(f.len(), 2);
    }
}
