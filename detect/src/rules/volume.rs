//! `volume_outlier`: a principal making far more requests in an hour than it does in that
//! hour of the week.
//!
//! Per principal, hourly request counts (every decision by a named, non-anonymous
//! principal, whatever its outcome) are kept in a ring covering `weeks + 1` weeks. The
//! current hour's count `x` is compared with the same hour of the week in each of the last
//! `weeks` weeks in which the principal was already known: with the median and MAD of those
//! counts (computed here, see [`crate::stats`]), the robust z-score is
//! `(x − median) / max(1.4826 × MAD, min_scale)`. It fires, once per hour, as soon as
//! `x ≥ min_count` and `z ≥ z_threshold` with at least `min_weeks` weeks to compare with;
//! `[detect.volume_outlier.roles.<role>]` raises both thresholds for a role (the highest of
//! a principal's roles applies).
//!
//! Memory: 2 × 168 × (weeks + 1) bytes per principal, at most `max_principals`
//! (least recently active tenth dropped). Dedup key: `volume_outlier:<principal>`.

use crate::baseline::principal_key;
use crate::checkpoint::CheckpointError;
use crate::config::VolumeConfig;
use crate::detector::{Context, Detector, Draft, Rule, load_state, save_state};
use crate::keyed::{Keyed, Recency};
use crate::stats::{median_mad, robust_z};
use gatelog_model::{AccessDecision, Finding, PrincipalType, UnixMillis};
use serde::{Deserialize, Serialize};

const RULE: Rule = Rule { id: "volume_outlier", version: 1 };
const HOUR_MS: i64 = 3_600_000;
const WEEK_HOURS: i64 = 168;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Series {
    /// First hour (since the epoch) the principal was seen.
    first_hour: i64,
    /// Latest hour counted; the ring holds the `ring.len()` hours up to it.
    current: i64,
    ring: Vec<u16>,
    /// The hour last reported, so an hour fires once.
    fired_hour: i64,
}

impl Recency for Series {
    fn last_seen(&self) -> UnixMillis {
        UnixMillis(self.current.saturating_mul(HOUR_MS))
    }
}

#[derive(Debug)]
pub(crate) struct Volume {
    cfg: VolumeConfig,
    series: Keyed<Series>,
}

impl Volume {
    pub(crate) fn new(cfg: VolumeConfig) -> Self {
        Volume { cfg, series: Keyed::default() }
    }

    fn ring_len(&self) -> i64 {
        WEEK_HOURS * (i64::from(self.cfg.weeks) + 1)
    }

    /// (z threshold, min count) for a principal with these roles.
    fn thresholds(&self, roles: &[String]) -> (f64, u32) {
        let mut z = self.cfg.z_threshold;
        let mut n = self.cfg.min_count;
        for o in roles.iter().filter_map(|r| self.cfg.roles.get(r.as_str())) {
            z = z.max(o.z_threshold.unwrap_or(z));
            n = n.max(o.min_count.unwrap_or(n));
        }
        (z, n)
    }
}

fn slot(hour: i64, len: i64) -> usize {
    usize::try_from(hour.rem_euclid(len)).unwrap_or(0)
}

impl Detector for Volume {
    fn rule(&self) -> Rule {
        RULE
    }

    fn on_decision(&mut self, _cx: &Context<'_>, d: &AccessDecision, out: &mut Vec<Finding>) {
        if d.principal.is_empty() || d.principal_type == PrincipalType::Anonymous {
            return;
        }
        let len = self.ring_len();
        let (z_threshold, min_count) = self.thresholds(&d.roles);
        let (weeks, min_weeks, min_scale) = (self.cfg.weeks, self.cfg.min_weeks, self.cfg.min_scale);
        let hour = d.time.0.div_euclid(HOUR_MS);
        let s = self.series.entry(&principal_key(&d.principal), self.cfg.max_principals, || Series {
            first_hour: hour,
            current: hour,
            ring: vec![0; usize::try_from(len).unwrap_or(0)],
            fired_hour: i64::MIN,
        });
        if hour > s.current {
            for h in (s.current + 1)..=hour.min(s.current + len) {
                s.ring[slot(h, len)] = 0;
            }
            if hour - s.current > len {
                s.ring.iter_mut().for_each(|c| *c = 0);
            }
            s.current = hour;
        } else if hour <= s.current - len {
            return; // older than the ring remembers
        }
        s.first_hour = s.first_hour.min(hour);
        let count = &mut s.ring[slot(hour, len)];
        *count = count.saturating_add(1);
        let x = *count;
        if hour != s.current || s.fired_hour == hour || u32::from(x) < min_count {
            return;
        }
        let samples: Vec<f64> = (1..=i64::from(weeks))
            .map(|k| hour - k * WEEK_HOURS)
            .filter(|&h| h >= s.first_hour)
            .map(|h| f64::from(s.ring[slot(h, len)]))
            .collect();
        if samples.len() < min_weeks as usize {
            return;
        }
        let Some((median, mad)) = median_mad(&samples) else { return };
        let z = robust_z(f64::from(x), median, mad, min_scale);
        if z < z_threshold {
            return;
        }
        s.fired_hour = hour;
        let start = UnixMillis(hour * HOUR_MS);
        let history = samples.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(",");
        out.push(
            Draft::about(RULE, self.cfg.severity, &principal_key(&d.principal), d)
                .window(start, d.time)
                .summary(format!(
                    "{} made {x} requests in the hour from {start}, against a median of {median:.0} in that hour of \
                     earlier weeks (robust z {z:.1}, threshold {z_threshold})",
                    d.principal
                ))
                .evidence("requests", x)
                .evidence("median", format!("{median:.1}"))
                .evidence("mad", format!("{mad:.1}"))
                .evidence("z", format!("{z:.2}"))
                .evidence("z_threshold", z_threshold)
                .evidence("earlier_weeks", history)
                .finish(),
        );
    }

    fn save(&self) -> Result<Vec<u8>, CheckpointError> {
        save_state(&self.series)
    }

    fn load(&mut self, state: &[u8]) -> Result<(), CheckpointError> {
        let series: Keyed<Series> = load_state(RULE, state)?;
        let len = usize::try_from(self.ring_len()).unwrap_or(0);
        if series.values().any(|s| s.ring.len() != len) {
            return Err(CheckpointError::Decode(format!(
                "state of {}: saved with another detect.volume_outlier.weeks",
                RULE.id
            )));
        }
        self.series = series;
        Ok(())
    }

    fn tracked(&self) -> usize {
        self.series.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VolumeOverride;
    use crate::rules::testing::{HOUR, MONDAY, assert_deterministic, cx_none, decision};
    use std::collections::BTreeMap;

    const WEEK: i64 = 7 * 24 * HOUR;

    /// `per_hour[w]` requests in hour 10 of Monday of week `w`, evenly spread.
    fn weeks(principal: &str, per_hour: &[i64]) -> Vec<AccessDecision> {
        let mut out = Vec::new();
        for (w, &n) in per_hour.iter().enumerate() {
            let start = MONDAY + w as i64 * WEEK + 10 * HOUR;
            out.extend((0..n).map(|i| decision(principal, start + i * (HOUR / n.max(1)), "192.0.2.1", "US")));
        }
        out
    }

    fn run(det: &mut Volume, ds: &[AccessDecision]) -> Vec<Finding> {
        let mut out = Vec::new();
        for d in ds {
            det.on_decision(&cx_none(), d, &mut out);
        }
        out
    }

    #[test]
    fn fires_once_when_an_hour_towers_over_the_same_hour_of_earlier_weeks() {
        let mut det = Volume::new(VolumeConfig::default());
        let f = run(&mut det, &weeks("g@example.com", &[20, 22, 18, 21, 400]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].dedup_key, "volume_outlier:g@example.com");
        assert_eq!(f[0].evidence["median"], "20.5");
        // It fired on the request that crossed both min_count and the z threshold.
        assert_eq!(f[0].evidence["requests"], "100");
    }

    #[test]
    fn needs_min_weeks_of_history_and_min_count() {
        let mut det = Volume::new(VolumeConfig::default());
        assert!(run(&mut det, &weeks("h@example.com", &[20, 22, 400])).is_empty(), "two earlier weeks < 3");
        let mut det = Volume::new(VolumeConfig::default());
        assert!(run(&mut det, &weeks("i@example.com", &[1, 1, 1, 1, 99])).is_empty(), "99 < min_count 100");
        let mut det = Volume::new(VolumeConfig::default());
        assert!(
            run(&mut det, &weeks("j@example.com", &[200, 220, 180, 210, 260])).is_empty(),
            "within its usual spread"
        );
    }

    #[test]
    fn the_z_threshold_edge() {
        // Flat history of 10 an hour: MAD 0, so the scale is min_scale (1) and z = x − 10.
        let cfg = VolumeConfig { min_count: 1, ..VolumeConfig::default() };
        let mut det = Volume::new(cfg.clone());
        assert!(run(&mut det, &weeks("n@example.com", &[10, 10, 10, 10, 15])).is_empty(), "z 5 < 6");
        let mut det = Volume::new(cfg);
        let f = run(&mut det, &weeks("o@example.com", &[10, 10, 10, 10, 16]));
        assert_eq!(f.len(), 1, "z 6 fires");
        assert_eq!(f[0].evidence["z"], "6.00");
    }

    #[test]
    fn hours_a_principal_was_unknown_in_are_not_zeros() {
        // Seen first in week 2: weeks 0 and 1 are not "0 requests".
        let mut det = Volume::new(VolumeConfig::default());
        let mut ds = weeks("k@example.com", &[0, 0, 20, 20, 400]);
        ds.retain(|d| d.time.0 >= MONDAY + 2 * WEEK);
        assert!(run(&mut det, &ds).is_empty(), "only two known weeks");
    }

    #[test]
    fn roles_raise_the_thresholds() {
        let cfg = VolumeConfig {
            roles: BTreeMap::from([("etl".into(), VolumeOverride { min_count: Some(1000), z_threshold: None })]),
            ..VolumeConfig::default()
        };
        let mut det = Volume::new(cfg);
        let mut ds = weeks("svc:dbt", &[20, 22, 18, 21, 400]);
        ds.iter_mut().for_each(|d| d.roles = vec!["etl".into()]);
        assert!(run(&mut det, &ds).is_empty());
    }

    #[test]
    fn principals_are_capped() {
        let cfg = VolumeConfig { max_principals: 10, ..VolumeConfig::default() };
        let mut det = Volume::new(cfg);
        let ds: Vec<_> =
            (0..100).map(|i| decision(&format!("p{i}@example.com"), MONDAY + i, "192.0.2.1", "US")).collect();
        run(&mut det, &ds);
        assert!(det.tracked() <= 10);
    }

    #[test]
    fn deterministic() {
        let mut stream = weeks("l@example.com", &[20, 22, 18, 21, 400]);
        stream.extend(weeks("m@example.com", &[5, 6, 5, 7, 300]));
        stream.sort_by_key(|d| d.time);
        let f = assert_deterministic(|| Box::new(Volume::new(VolumeConfig::default())), &stream);
        assert_eq!(f.len(), 2);
    }
}
