//! `source_silence`: a dataset (or one zone of it) that stopped arriving.
//!
//! Fed [`Arrival`]s (batches received, from the spool or from `ingest_batches`) and clock
//! ticks. Per source, the gaps between arrivals are remembered (the last 32); on a tick, a
//! source is silent when nothing arrived for longer than its expected silence:
//! `expected.<dataset>` when configured, else `max(min_silence, factor × median gap)` once
//! `min_samples` gaps are known (a source seen too rarely to know its cadence is not
//! judged). One finding per silence; an arrival ends it. A source silent longer than
//! `forget_after` is dropped (retired, not broken), and at most `max_sources` are kept.
//!
//! Times here are receipt times (wall clock), not event times: a source is silent when
//! gatelog stops receiving it, whatever its records say. Dedup key:
//! `source_silence:<dataset>` or `source_silence:<dataset>:<zone>`.

use crate::arrival::Arrival;
use crate::checkpoint::CheckpointError;
use crate::config::SilenceConfig;
use crate::detector::{Context, Detector, Draft, Rule, load_state, save_state};
use crate::stats::median;
use gatelog_model::{AccessDecision, Finding, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

const RULE: Rule = Rule { id: "source_silence", version: 1 };
const GAPS_KEPT: usize = 32;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Source {
    last: i64,
    /// Gaps between arrivals, seconds, newest last.
    gaps: VecDeque<u32>,
    reported: bool,
}

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
            s.last = t;
            return;
        }
        if t <= s.last {
            return; // replayed or out of order: no new gap
        }
        s.gaps.push_back(u32::try_from((t - s.last) / 1000).unwrap_or(u32::MAX));
        while s.gaps.len() > GAPS_KEPT {
            s.gaps.pop_front();
        }
        s.last = t;
        s.reported = false;
    }

    /// How long `dataset` may be silent, if known.
    fn allowed_silence_ms(&self, dataset: &str, s: &Source) -> Option<i64> {
        if let Some(d) = self.cfg.expected.get(dataset) {
            return Some(millis(**d));
        }
        if s.gaps.len() < self.cfg.min_samples as usize {
            return None;
        }
        let mut gaps: Vec<f64> = s.gaps.iter().map(|&g| f64::from(g)).collect();
        let typical_ms = median(&mut gaps)? * 1000.0 * self.cfg.factor;
        Some(millis(self.cfg.min_silence).max(typical_ms as i64))
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
        if self.cfg.per_zone && !a.zone.is_empty() {
            self.arrived((a.dataset.clone(), a.zone.clone()), a.received_at.0);
        }
    }

    fn on_tick(&mut self, now: UnixMillis, out: &mut Vec<Finding>) {
        let forget = millis(self.cfg.forget_after);
        self.sources.retain(|_, s| now.0 - s.last <= forget);
        let mut fired = Vec::new();
        for ((dataset, zone), s) in &self.sources {
            let silent = now.0 - s.last;
            let Some(allowed) = self.allowed_silence_ms(dataset, s) else { continue };
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

    /// Batches every minute for an hour, then nothing.
    fn steady(det: &mut Silence, dataset: &str, zone: &str) -> i64 {
        for i in 0..=60 {
            arrive(det, dataset, zone, T0 + i * MIN);
        }
        T0 + 60 * MIN
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
        for i in 0..=6 {
            arrive(&mut det, "audit_logs", "", T0 + i * 60 * MIN); // hourly
        }
        let last = T0 + 6 * 60 * MIN;
        assert!(tick(&mut det, last + 9 * 60 * MIN).is_empty(), "10 × 1 h allowed");
        assert_eq!(tick(&mut det, last + 10 * 60 * MIN + 1).len(), 1);
        let mut det = Silence::new(SilenceConfig::default(), "default");
        arrive(&mut det, "gateway_http", "", T0);
        arrive(&mut det, "gateway_http", "", T0 + MIN);
        assert!(tick(&mut det, T0 + 100 * 60 * MIN).is_empty(), "two arrivals: cadence unknown");
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
