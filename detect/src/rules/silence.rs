//! `source_silence`: a dataset (or one zone of it) that stopped arriving.
//!
//! Fed [`Arrival`]s (batches received, from the spool or from `ingest_batches`) and clock
//! ticks. Per source (a dataset; for `zone_datasets` also each zone of it), the last 32 gaps
//! between arrivals and the longest gap of each of the last 8 days are remembered. On a
//! tick, a source is silent when nothing arrived for longer than its allowed silence:
//! `expected.<dataset>` when configured, else `max(min_silence, gap_factor × median gap,
//! longest_gap_factor × longest gap of the last week)` — the median for busy sources, the
//! longest gap so a source that is quiet every night is not reported every night. A source
//! watched for less than `learn_for`, or with fewer than `min_samples` gaps, is not judged
//! (its cadence is unknown). One finding per silence; an arrival ends it, and that gap is
//! not learned (an outage must not teach the source's cadence). A source silent
//! longer than `forget_after` is dropped (retired, not broken); at most `max_sources` kept.
//!
//! Times here are receipt times (wall clock), not event times: a source is silent when
//! gatelog stops receiving it, whatever its records say. Dedup key:
//! `source_silence:<dataset>` or `source_silence:<dataset>:<zone>`.

use crate::arrival::Arrival;
use crate::checkpoint::CheckpointError;
use crate::config::SilenceConfig;
use crate::detector::{Context, Detector, Draft, Rule, in_list, load_state, save_state};
use crate::stats::median;
use gatelog_model::{AccessDecision, Finding, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

const RULE: Rule = Rule { id: "source_silence", version: 1 };
const GAPS_KEPT: usize = 32;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Source {
    first: i64,
    last: i64,
    /// Gaps between arrivals, seconds, newest last.
    gaps: VecDeque<u32>,
    /// (day, longest gap that ended that day, seconds), the last `LONGEST_DAYS` days.
    longest: VecDeque<(i64, u32)>,
    reported: bool,
}

const LONGEST_DAYS: usize = 8;

#[derive(Debug)]
pub(crate) struct Silence {
    cfg: SilenceConfig,
    /// (dataset, zone) → source; zone empty for the dataset as a whole.
    sources: BTreeMap<(String, String), Source>,
    tenant: String,
}

impl Silence {
    pub(crate) fn new(cfg: SilenceConfig, tenant: &str) -> Self {
        Silence { cfg, sources: BTreeMap::new(), tenant: tenant.to_owned() }
    }

    fn arrived(&mut self, key: (String, String), t: i64) {
        if !self.sources.contains_key(&key) && self.sources.len() >= self.cfg.max_sources {
            let stalest = self.sources.iter().min_by_key(|(k, s)| (s.last, (*k).clone())).map(|(k, _)| k.clone());
            if let Some(k) = stalest {
                self.sources.remove(&k);
            }
        }
        let fresh = !self.sources.contains_key(&key);
        let s = self.sources.entry(key).or_default();
        if fresh {
            s.first = t;
            s.last = t;
            return;
        }
        if t <= s.last {
            return; // replayed or out of order: no new gap
        }
        let gap = u32::try_from((t - s.last) / 1000).unwrap_or(u32::MAX);
        s.last = t;
        if std::mem::take(&mut s.reported) {
            return; // an outage reported as one is not learned as the source's cadence
        }
        s.gaps.push_back(gap);
        while s.gaps.len() > GAPS_KEPT {
            s.gaps.pop_front();
        }
        let day = t.div_euclid(86_400_000);
        match s.longest.back_mut() {
            Some((d, longest)) if *d == day => *longest = (*longest).max(gap),
            _ => s.longest.push_back((day, gap)),
        }
        while s.longest.len() > LONGEST_DAYS {
            s.longest.pop_front();
        }
    }

    /// How long `dataset` may be silent at `now`, if known.
    fn allowed_silence_ms(&self, dataset: &str, s: &Source, now: i64) -> Option<i64> {
        if let Some(d) = self.cfg.expected.get(dataset) {
            return Some(millis(**d));
        }
        if s.gaps.len() < self.cfg.min_samples as usize || now - s.first < millis(self.cfg.learn_for) {
            return None;
        }
        let mut gaps: Vec<f64> = s.gaps.iter().map(|&g| f64::from(g)).collect();
        let typical_ms = median(&mut gaps)? * 1000.0 * self.cfg.gap_factor;
        let week_ago = now.div_euclid(86_400_000) - 7;
        let longest = s.longest.iter().filter(|(d, _)| *d >= week_ago).map(|(_, g)| *g).max().unwrap_or(0);
        let longest_ms = f64::from(longest) * 1000.0 * self.cfg.longest_gap_factor;
        Some(millis(self.cfg.min_silence).max(typical_ms as i64).max(longest_ms as i64))
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn minutes(ms: i64) -> String {
    if ms >= 7_200_000 { format!("{:.1} h", ms as f64 / 3_600_000.0) } else { format!("{} min", ms / 60_000) }
}

impl Detector for Silence {
    fn rule(&self) -> Rule {
        RULE
    }

    fn on_decision(&mut self, _cx: &Context<'_>, _d: &AccessDecision, _out: &mut Vec<Finding>) {}

    fn on_arrival(&mut self, a: &Arrival, _out: &mut Vec<Finding>) {
        if a.dataset.is_empty() {
            return;
        }
        self.arrived((a.dataset.clone(), String::new()), a.received_at.0);
        if !a.zone.is_empty() && in_list(&self.cfg.zone_datasets, &a.dataset) {
            self.arrived((a.dataset.clone(), a.zone.clone()), a.received_at.0);
        }
    }

    fn on_tick(&mut self, now: UnixMillis, out: &mut Vec<Finding>) {
        let forget = millis(self.cfg.forget_after);
        self.sources.retain(|_, s| now.0 - s.last <= forget);
        let mut fired = Vec::new();
        for ((dataset, zone), s) in &self.sources {
            let silent = now.0 - s.last;
            let Some(allowed) = self.allowed_silence_ms(dataset, s, now.0) else { continue };
            if s.reported || silent <= allowed {
                continue;
            }
            fired.push((dataset.clone(), zone.clone()));
            let what = if zone.is_empty() { dataset.clone() } else { format!("{dataset} for zone {zone}") };
            let key = if zone.is_empty() { dataset.clone() } else { format!("{dataset}:{zone}") };
            let usual = {
                let mut gaps: Vec<f64> = s.gaps.iter().map(|&g| f64::from(g)).collect();
                median(&mut gaps).map_or("unknown".to_owned(), |g| format!("{g:.0}s"))
            };
            out.push(
                Draft::bare(RULE, self.cfg.severity, &key, &self.tenant)
                    .window(UnixMillis(s.last), now)
                    .dataset(dataset)
                    .resource(if zone.is_empty() { dataset } else { zone })
                    .summary(format!(
                        "nothing received of {what} for {} (silent after {}; usual gap {usual})",
                        minutes(silent),
                        minutes(allowed)
                    ))
                    .evidence("last_received", UnixMillis(s.last))
                    .evidence("silent_ms", silent)
                    .evidence("allowed_silence_ms", allowed)
                    .evidence("usual_gap", usual)
                    .evidence("zone", zone)
                    .finish(),
            );
        }
        for key in fired {
            if let Some(s) = self.sources.get_mut(&key) {
                s.reported = true;
            }
        }
    }

    fn save(&self) -> Result<Vec<u8>, CheckpointError> {
        save_state(&self.sources)
    }

    fn load(&mut self, state: &[u8]) -> Result<(), CheckpointError> {
        self.sources = load_state(RULE, state)?;
        Ok(())
    }

    fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const T0: i64 = 1_741_564_800_000;
    const MIN: i64 = 60_000;

    fn arrive(det: &mut Silence, dataset: &str, zone: &str, t: i64) {
        det.on_arrival(&Arrival::new(dataset, zone, UnixMillis(t), 10), &mut Vec::new());
    }

    fn tick(det: &mut Silence, t: i64) -> Vec<Finding> {
        let mut out = Vec::new();
        det.on_tick(UnixMillis(t), &mut out);
        out
    }

    const HOUR: i64 = 60 * MIN;

    /// Batches every minute for 25 hours (longer than learn_for), then nothing.
    fn steady(det: &mut Silence, dataset: &str, zone: &str) -> i64 {
        for i in 0..=25 * 60 {
            arrive(det, dataset, zone, T0 + i * MIN);
        }
        T0 + 25 * HOUR
    }

    #[test]
    fn fires_once_after_the_allowed_silence_and_clears_on_arrival() {
        let mut det = Silence::new(SilenceConfig::default(), "default");
        let last = steady(&mut det, "http_requests", "");
        assert!(tick(&mut det, last + 30 * MIN).is_empty(), "exactly min_silence is not yet silent");
        let f = tick(&mut det, last + 30 * MIN + 1);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].dedup_key, "source_silence:http_requests");
        assert_eq!((f[0].window_start.0, f[0].dataset.as_str()), (last, "http_requests"));
        assert!(tick(&mut det, last + 90 * MIN).is_empty(), "one finding per silence");
        arrive(&mut det, "http_requests", "", last + 91 * MIN);
        assert!(tick(&mut det, last + 100 * MIN).is_empty());
        assert_eq!(tick(&mut det, last + 200 * MIN).len(), 1, "a new silence");
    }

    #[test]
    fn the_cadence_sets_the_threshold_and_unknown_cadences_are_not_judged() {
        let mut det = Silence::new(SilenceConfig::default(), "default");
        for i in 0..=26 {
            arrive(&mut det, "audit_logs", "", T0 + i * 60 * MIN); // hourly
        }
        let last = T0 + 26 * 60 * MIN;
        assert!(tick(&mut det, last + 9 * 60 * MIN).is_empty(), "10 × 1 h allowed");
        assert_eq!(tick(&mut det, last + 10 * 60 * MIN + 1).len(), 1);
        let mut det = Silence::new(SilenceConfig::default(), "default");
        arrive(&mut det, "gateway_http", "", T0);
        arrive(&mut det, "gateway_http", "", T0 + MIN);
        assert!(tick(&mut det, T0 + 100 * 60 * MIN).is_empty(), "two arrivals: cadence unknown");
        let mut det = Silence::new(SilenceConfig::default(), "default");
        for i in 0..=120 {
            arrive(&mut det, "gateway_http", "", T0 + i * MIN);
        }
        assert!(tick(&mut det, T0 + 10 * HOUR).is_empty(), "watched 2 h < learn_for: cadence unknown");
    }

    #[test]
    fn a_source_quiet_every_night_is_not_reported_every_night() {
        let mut det = Silence::new(SilenceConfig::default(), "default");
        let mut t = T0;
        for _day in 0..2 {
            for _ in 0..(21 * 60) {
                arrive(&mut det, "access_requests", "", t);
                t += MIN;
            }
            t += 3 * HOUR; // the night
        }
        arrive(&mut det, "access_requests", "", t);
        assert!(tick(&mut det, t + 9 * HOUR).is_empty(), "within three times the longest gap");
        assert_eq!(tick(&mut det, t + 9 * HOUR + 5 * MIN).len(), 1, "three times the longest (3 h 1 min) gap");
    }

    #[test]
    fn expected_overrides_and_zones_are_separate_sources() {
        let cfg = SilenceConfig {
            expected: BTreeMap::from([("firewall_events".to_owned(), Duration::from_secs(600).into())]),
            ..SilenceConfig::default()
        };
        let mut det = Silence::new(cfg, "default");
        arrive(&mut det, "firewall_events", "", T0);
        assert_eq!(tick(&mut det, T0 + 10 * MIN + 1).len(), 1, "no samples needed with expected");
        let mut det = Silence::new(SilenceConfig::default(), "default");
        steady(&mut det, "http_requests", "example.com");
        let last = steady(&mut det, "http_requests", "example.net");
        // example.com goes quiet while example.net keeps arriving.
        for i in 1..=40 {
            arrive(&mut det, "http_requests", "example.net", last + i * MIN);
        }
        let f = tick(&mut det, last + 40 * MIN);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].dedup_key, "source_silence:http_requests:example.com");
        let mut det = Silence::new(SilenceConfig::default(), "default");
        steady(&mut det, "audit_logs_v2", "example.com");
        assert_eq!(det.tracked(), 1, "audit_logs_v2 is not zone-scoped: one source");
    }

    #[test]
    fn retired_sources_are_forgotten_and_sources_are_capped() {
        let cfg = SilenceConfig { max_sources: 3, ..SilenceConfig::default() };
        let mut det = Silence::new(cfg, "default");
        for i in 0..10 {
            arrive(&mut det, &format!("ds{i}"), "", T0 + i);
        }
        assert_eq!(det.tracked(), 3);
        tick(&mut det, T0 + 8 * 86_400_000);
        assert_eq!(det.tracked(), 0);
    }

    #[test]
    fn state_round_trip_gives_the_same_findings() {
        let mut a = Silence::new(SilenceConfig::default(), "default");
        let last = steady(&mut a, "http_requests", "z");
        let mut b = Silence::new(SilenceConfig::default(), "default");
        b.load(&a.save().unwrap()).unwrap();
        assert_eq!(tick(&mut a, last + 31 * MIN), tick(&mut b, last + 31 * MIN));
        assert_eq!(a.save().unwrap(), b.save().unwrap());
    }
}
