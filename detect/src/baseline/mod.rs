//! [`Baselines`]: what is normal for each principal, shared by the detectors that judge
//! against it (new country, new ASN, off-hours, impossible travel, privileged changes).
//!
//! A principal's [`Profile`] holds the countries, ASNs and client IPs it used (each with
//! first/last seen and a count, capped per profile, least recently seen dropped first), its
//! [`HourProfile`], and the last place it was seen. Profiles learn only from decisions that
//! prove the identity: `decision = allow` by a non-anonymous, non-empty principal. Denied
//! attempts (a password spray naming real users) never teach a profile anything.
//!
//! The engine calls, per decision: [`Baselines::roll`] (settles a finished day of the
//! hour profile), then every detector with `&Baselines`, then [`Baselines::learn`]; so a
//! detector always judges a decision against what was known before it. Warm-up from
//! history is the same sequence with the findings dropped.
//!
//! Principals are keyed by their name in ASCII lower case (e-mail addresses arrive in
//! different cases from different sources). The number of profiles is capped
//! (`detect.max_principals`, least recently seen tenth evicted at once).

mod hours;

pub use hours::Assessment;
pub(crate) use hours::HourProfile;

use crate::config::ProfileConfig;
use crate::keyed::{Keyed, Recency};
use gatelog_model::{AccessDecision, Decision, PrincipalType, UnixMillis};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A value a principal used, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen<T> {
    pub value: T,
    pub first: UnixMillis,
    pub last: UnixMillis,
    pub count: u64,
}

/// Where and when a principal was last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub time: UnixMillis,
    pub country: String,
    pub client_ip: String,
    pub event_id: String,
}

/// What is normal for one principal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub first_seen: UnixMillis,
    pub last_seen: UnixMillis,
    /// Allowed decisions learned from.
    pub events: u64,
    /// Of those, how many carried a country / an ASN (not every dataset maps them).
    pub events_with_country: u64,
    pub events_with_asn: u64,
    pub countries: Vec<Seen<String>>,
    pub asns: Vec<Seen<u32>>,
    pub ips: Vec<Seen<String>>,
    pub(crate) hours: HourProfile,
    pub last_place: Option<Place>,
}

impl Recency for Profile {
    fn last_seen(&self) -> UnixMillis {
        self.last_seen
    }
}

impl Profile {
    pub fn has_country(&self, country: &str) -> bool {
        self.countries.iter().any(|s| s.value.eq_ignore_ascii_case(country))
    }

    pub fn has_asn(&self, asn: u32) -> bool {
        self.asns.iter().any(|s| s.value == asn)
    }

    /// The IP's record, if the principal used it.
    pub fn ip(&self, ip: &str) -> Option<&Seen<String>> {
        self.ips.iter().find(|s| s.value == ip)
    }

    /// Whether `t` is off-hours for this principal (settled days only), judged once
    /// `profile.min_events` events are settled.
    pub fn assess_hours(&self, t: UnixMillis, cfg: &ProfileConfig) -> Assessment {
        self.hours.assess(t, cfg, cfg.min_events)
    }

    /// [`Profile::assess_hours`] with another minimum of settled events.
    pub fn assess_hours_after(&self, t: UnixMillis, cfg: &ProfileConfig, min_settled: u32) -> Assessment {
        self.hours.assess(t, cfg, min_settled)
    }

    /// Whether `t` is off-hours and its hour of day is itself quiet for the principal (the
    /// dead of night rather than a late evening).
    pub fn deep_off_hours(&self, t: UnixMillis) -> bool {
        self.hours.deep_off_hours(t)
    }

    /// The principal's usual events per hour at `t`'s hour of the day.
    pub fn hourly_rate(&self, t: UnixMillis) -> f64 {
        self.hours.hourly_rate(t)
    }

    /// On how many settled days the principal was known at `t`'s hour of day.
    pub fn hour_observed_days(&self, t: UnixMillis) -> i64 {
        self.hours.observed_days(t)
    }

    /// Events the hour profile judges with.
    pub fn settled_events(&self) -> u32 {
        self.hours.settled_events()
    }

    /// The principal's usual hours, for evidence.
    pub fn usual_hours(&self) -> String {
        self.hours.describe()
    }

    /// The countries seen, sorted, joined with commas (for evidence).
    pub fn countries_list(&self) -> String {
        let mut v: Vec<&str> = self.countries.iter().map(|s| s.value.as_str()).collect();
        v.sort_unstable();
        v.join(",")
    }

    fn learn(&mut self, d: &AccessDecision, cfg: &ProfileConfig) {
        if self.events == 0 {
            self.first_seen = d.time;
        }
        self.first_seen = self.first_seen.min(d.time);
        self.last_seen = self.last_seen.max(d.time);
        self.events += 1;
        if !d.client_ip.is_empty() {
            remember(&mut self.ips, |v| *v == d.client_ip, || d.client_ip.clone(), d.time, cfg.max_ips);
        }
        if d.asn != 0 {
            self.events_with_asn += 1;
            remember(&mut self.asns, |v| *v == d.asn, || d.asn, d.time, cfg.max_asns);
        }
        if !d.country.is_empty() {
            self.events_with_country += 1;
            let country = &d.country;
            remember(
                &mut self.countries,
                |v| v.eq_ignore_ascii_case(country),
                || country.to_ascii_uppercase(),
                d.time,
                cfg.max_countries,
            );
            // Updated in place: this runs for nearly every allowed request.
            match &mut self.last_place {
                Some(p) if p.time <= d.time => {
                    p.time = d.time;
                    set_upper(&mut p.country, country);
                    set(&mut p.client_ip, &d.client_ip);
                    set(&mut p.event_id, &d.event_id);
                }
                Some(_) => {}
                None => {
                    self.last_place = Some(Place {
                        time: d.time,
                        country: country.to_ascii_uppercase(),
                        client_ip: d.client_ip.clone(),
                        event_id: d.event_id.clone(),
                    });
                }
            }
        }
        self.hours.record(d.time, cfg);
    }
}

fn set(target: &mut String, value: &str) {
    target.clear();
    target.push_str(value);
}

fn set_upper(target: &mut String, value: &str) {
    target.clear();
    target.extend(value.chars().map(|c| c.to_ascii_uppercase()));
}

/// Adds a sighting of the value `is` recognises to a capped list (the least recently seen
/// goes first); `make` builds it only when it is new.
fn remember<T: Ord>(
    list: &mut Vec<Seen<T>>,
    is: impl Fn(&T) -> bool,
    make: impl FnOnce() -> T,
    t: UnixMillis,
    cap: usize,
) {
    if let Some(seen) = list.iter_mut().find(|s| is(&s.value)) {
        seen.first = seen.first.min(t);
        seen.last = seen.last.max(t);
        seen.count += 1;
        return;
    }
    if list.len() >= cap.max(1)
        && let Some(stalest) =
            (0..list.len()).min_by(|&a, &b| (list[a].last, &list[a].value).cmp(&(list[b].last, &list[b].value)))
    {
        list.swap_remove(stalest);
    }
    list.push(Seen { value: make(), first: t, last: t, count: 1 });
}

/// Whether a decision may teach a profile: allowed, by a named, non-anonymous principal.
pub fn learns_from(d: &AccessDecision) -> bool {
    d.decision == Decision::Allow && d.principal_type != PrincipalType::Anonymous && !d.principal.is_empty()
}

/// The key a principal's state is kept under: the name in ASCII lower case.
pub fn principal_key(principal: &str) -> Cow<'_, str> {
    if principal.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(principal.to_ascii_lowercase())
    } else {
        Cow::Borrowed(principal)
    }
}

/// Every principal's profile, capped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baselines {
    principals: Keyed<Profile>,
}

impl Baselines {
    /// The profile of a principal (any case), if known.
    pub fn profile(&self, principal: &str) -> Option<&Profile> {
        self.principals.get(&principal_key(principal))
    }

    /// Profiles held.
    pub fn len(&self) -> usize {
        self.principals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Settles the principal's finished days, so detectors judging `d` count them.
    pub(crate) fn roll(&mut self, d: &AccessDecision, cfg: &ProfileConfig) {
        if d.principal.is_empty() {
            return;
        }
        if let Some(p) = self.principals.get_mut(&principal_key(&d.principal)) {
            p.hours.roll(d.time, cfg);
        }
    }

    /// Learns from `d` if it [`learns_from`] (after the detectors have judged it).
    pub(crate) fn learn(&mut self, d: &AccessDecision, cfg: &ProfileConfig, max_principals: usize) {
        if !learns_from(d) {
            return;
        }
        let key = principal_key(&d.principal);
        self.principals.entry(&key, max_principals, Profile::default).learn(d, cfg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_model::Source;

    fn allow(principal: &str, t: i64, ip: &str, country: &str, asn: u32) -> AccessDecision {
        let mut d = AccessDecision::new(format!("e{t}"), UnixMillis(t), "access_requests", Source::Logpush);
        d.decision = Decision::Allow;
        d.principal = principal.into();
        d.principal_type = PrincipalType::User;
        d.client_ip = ip.into();
        d.country = country.into();
        d.asn = asn;
        d
    }

    #[test]
    fn learns_only_from_proven_identities() {
        let cfg = ProfileConfig::default();
        let mut b = Baselines::default();
        let mut denied = allow("a@example.com", 1, "192.0.2.1", "GB", 1);
        denied.decision = Decision::Deny;
        b.learn(&denied, &cfg, 10);
        let mut anon = allow("a@example.com", 2, "192.0.2.1", "GB", 1);
        anon.principal_type = PrincipalType::Anonymous;
        b.learn(&anon, &cfg, 10);
        assert!(b.is_empty());
        b.learn(&allow("A@Example.com", 3, "192.0.2.1", "gb", 0), &cfg, 10);
        let p = b.profile("a@example.COM").unwrap();
        assert_eq!((p.events, p.events_with_country, p.events_with_asn), (1, 1, 0));
        assert!(p.has_country("GB") && p.ip("192.0.2.1").is_some() && !p.has_asn(0));
        assert_eq!(p.last_place.as_ref().unwrap().country, "GB");
    }

    #[test]
    fn per_profile_lists_are_capped() {
        let cfg = ProfileConfig { max_ips: 4, ..ProfileConfig::default() };
        let mut b = Baselines::default();
        for i in 0..20 {
            b.learn(&allow("a@example.com", i, &format!("192.0.2.{i}"), "GB", 1), &cfg, 10);
        }
        let p = b.profile("a@example.com").unwrap();
        assert_eq!(p.ips.len(), 4);
        assert!(p.ip("192.0.2.19").is_some() && p.ip("192.0.2.0").is_none());
    }

    #[test]
    fn late_events_do_not_move_the_last_place_back() {
        let cfg = ProfileConfig::default();
        let mut b = Baselines::default();
        b.learn(&allow("a@example.com", 100, "192.0.2.1", "GB", 1), &cfg, 10);
        b.learn(&allow("a@example.com", 50, "192.0.2.2", "FR", 1), &cfg, 10);
        let p = b.profile("a@example.com").unwrap();
        assert_eq!(p.last_place.as_ref().unwrap().country, "GB");
        assert_eq!(p.first_seen, UnixMillis(50));
    }

    #[test]
    fn principal_count_is_capped() {
        let cfg = ProfileConfig::default();
        let mut b = Baselines::default();
        for i in 0..500 {
            b.learn(&allow(&format!("u{i}@example.com"), i, "192.0.2.1", "GB", 1), &cfg, 100);
            assert!(b.len() <= 100);
        }
    }
}
