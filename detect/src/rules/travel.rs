//! `impossible_travel`: two allowed requests of one principal from places so far apart that
//! nobody could have travelled between them in the time between.
//!
//! A place is a country centroid ([`crate::geo`]): the mapped decisions carry a country but
//! no coordinates. The request is compared with the principal's last place (from the
//! baselines): it fires when the countries differ, their centroids are at least
//! `min_distance_km` apart, and the implied speed exceeds `max_speed_kmh` (time apart taken
//! as at least one minute, and as its absolute value, since late events arrive out of
//! order). Only allowed requests by named principals count, as for the baselines.
//!
//! Dedup key: `impossible_travel:<principal>:<from>:<to>`. Stateless beyond the baselines.

use crate::baseline::learns_from;
use crate::checkpoint::CheckpointError;
use crate::config::TravelConfig;
use crate::detector::{Context, Detector, Draft, Rule, who};
use crate::geo::{centroid, haversine_km};
use gatelog_model::{AccessDecision, Finding};

const RULE: Rule = Rule { id: "impossible_travel", version: 1 };

#[derive(Debug)]
pub(crate) struct Travel {
    cfg: TravelConfig,
}

impl Travel {
    pub(crate) fn new(cfg: TravelConfig) -> Self {
        Travel { cfg }
    }
}

impl Detector for Travel {
    fn rule(&self) -> Rule {
        RULE
    }

    fn on_decision(&mut self, cx: &Context<'_>, d: &AccessDecision, out: &mut Vec<Finding>) {
        if !learns_from(d) || d.country.is_empty() {
            return;
        }
        let Some(last) = cx.principal.and_then(|p| p.last_place.as_ref()) else { return };
        if last.country.eq_ignore_ascii_case(&d.country) {
            return;
        }
        let (Some(a), Some(b)) = (centroid(&last.country), centroid(&d.country)) else { return };
        let km = haversine_km(a, b);
        if km < self.cfg.min_distance_km {
            return;
        }
        let apart_ms = (d.time.0 - last.time.0).abs();
        let hours = (apart_ms as f64 / 3_600_000.0).max(1.0 / 60.0);
        let speed = km / hours;
        if speed <= self.cfg.max_speed_kmh {
            return;
        }
        let to = d.country.to_ascii_uppercase();
        let (start, end) = if last.time <= d.time { (last.time, d.time) } else { (d.time, last.time) };
        let ids = if last.time <= d.time {
            [last.event_id.as_str(), d.event_id.as_str()]
        } else {
            [d.event_id.as_str(), last.event_id.as_str()]
        };
        out.push(
            Draft::about(RULE, self.cfg.severity, &format!("{}:{}:{to}", who(d), last.country), d)
                .window(start, end)
                .events(ids)
                .summary(format!(
                    "{} was in {} ({}) and {to} ({}) {:.1} h apart: {km:.0} km at {speed:.0} km/h (limit {:.0})",
                    d.principal,
                    last.country,
                    last.client_ip,
                    d.client_ip,
                    apart_ms as f64 / 3_600_000.0,
                    self.cfg.max_speed_kmh
                ))
                .evidence("from_country", &last.country)
                .evidence("from_ip", &last.client_ip)
                .evidence("to_country", &to)
                .evidence("distance_km", format!("{km:.0}"))
                .evidence("speed_kmh", format!("{speed:.0}"))
                .evidence("minutes_apart", apart_ms / 60_000)
                .evidence("location", "country centroids")
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
    use crate::rules::testing::{HOUR, Harness, MONDAY, assert_deterministic, decision};

    fn det() -> Travel {
        Travel::new(TravelConfig::default())
    }

    #[test]
    fn london_then_hanoi_an_hour_later_is_impossible() {
        let mut h = Harness::default();
        let mut t = det();
        h.feed(&mut t, &decision("yara@example.com", MONDAY, "192.0.2.34", "GB"));
        let f = h.feed(&mut t, &decision("yara@example.com", MONDAY + HOUR, "198.51.100.201", "VN"));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].dedup_key, "impossible_travel:yara@example.com:GB:VN");
        assert_eq!(f[0].event_ids.len(), 2);
        assert_eq!(f[0].window_start.0, MONDAY);
    }

    #[test]
    fn edges_of_speed_and_distance() {
        // GB→VN is ~10 000 km between centroids: 11 h apart is under 1000 km/h.
        let mut h = Harness::default();
        let mut t = det();
        h.feed(&mut t, &decision("a@example.com", MONDAY, "192.0.2.1", "GB"));
        assert!(h.feed(&mut t, &decision("a@example.com", MONDAY + 11 * HOUR, "198.51.100.1", "VN")).is_empty());
        // Neighbours closer than min_distance_km never fire, however fast.
        let mut h = Harness::default();
        h.feed(&mut t, &decision("b@example.com", MONDAY, "192.0.2.2", "BE"));
        assert!(h.feed(&mut t, &decision("b@example.com", MONDAY + 60_000, "192.0.2.3", "NL")).is_empty());
        // Unknown codes are skipped.
        let mut h = Harness::default();
        h.feed(&mut t, &decision("c@example.com", MONDAY, "192.0.2.4", "T1"));
        assert!(h.feed(&mut t, &decision("c@example.com", MONDAY + 60_000, "192.0.2.5", "JP")).is_empty());
    }

    #[test]
    fn a_late_event_is_compared_by_absolute_time() {
        let mut h = Harness::default();
        let mut t = det();
        h.feed(&mut t, &decision("d@example.com", MONDAY + 2 * HOUR, "192.0.2.6", "US"));
        let f = h.feed(&mut t, &decision("d@example.com", MONDAY + HOUR, "198.51.100.2", "AU"));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].window_start.0, f[0].window_end.0), (MONDAY + HOUR, MONDAY + 2 * HOUR));
    }

    #[test]
    fn deterministic() {
        let stream = vec![
            decision("e@example.com", MONDAY, "192.0.2.7", "DE"),
            decision("e@example.com", MONDAY + HOUR, "192.0.2.8", "BR"),
            decision("e@example.com", MONDAY + 2 * HOUR, "192.0.2.9", "JP"),
            decision("e@example.com", MONDAY + 30 * HOUR, "192.0.2.7", "DE"),
        ];
        assert_eq!(assert_deterministic(|| Box::new(det()), &stream).len(), 2);
    }
}
