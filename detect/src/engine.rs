//! [`Engine`]: runs the configured detectors over a stream of decisions, in order.
//!
//! Per decision: skip it if it belongs to a dataset that arrives by two paths and its event
//! id was seen within `dedup_window` (the Tail and Logpush copies of a Worker decision; a
//! batch the spool holds twice is skipped whole by [`Engine::process_batch`]); find its
//! tenant's shard (baselines + detectors, made on first
//! sight, at most `max_tenants`); settle the principal's finished days; let every detector
//! judge it against the baselines; then let the baselines learn from it. Findings come out
//! in that order, so the same input always gives the same findings in the same order.
//!
//! Warm-up ([`Engine::warm`]) is the very same sequence with the findings dropped: the
//! runtime feeds history (ClickHouse rows before its spool position, `ingest_batches` for
//! arrivals), then streams. Wall time enters only through [`Engine::tick`].
//!
//! [`Engine::checkpoint`] / [`Engine::restore`] carry the whole state across a restart (see
//! [`crate::checkpoint`]).

use crate::arrival::Arrival;
use crate::baseline::Baselines;
use crate::checkpoint::{self, CheckpointError, DetectorSnapshot, EngineStats, RestoreReport, ShardSnapshot, Snapshot};
use crate::config::{ConfigError, DetectConfig};
use crate::detector::{Context, Detector, in_list};
use crate::keyed::stable_hash;
use crate::recent::RecentIds;
use crate::rules;
use gatelog_model::canary::is_canary;
use gatelog_model::decision::DEFAULT_TENANT;
use gatelog_model::{AccessDecision, Batch, Finding, UnixMillis};
use std::collections::BTreeMap;

/// Batch ids remembered to skip a batch the spool holds twice.
const BATCH_IDS_KEPT: usize = 65_536;

/// One tenant's baselines and detectors.
#[derive(Debug)]
struct Shard {
    baselines: Baselines,
    detectors: Vec<Box<dyn Detector>>,
}

/// The detection engine. See the module docs.
#[derive(Debug)]
pub struct Engine {
    config: DetectConfig,
    shards: BTreeMap<String, Shard>,
    recent: RecentIds,
    batches: RecentIds,
    stats: EngineStats,
}

fn tenant_of(tenant: &str) -> &str {
    if tenant.is_empty() { DEFAULT_TENANT } else { tenant }
}

/// The shard of `tenant`, made if there is room.
fn shard<'a>(shards: &'a mut BTreeMap<String, Shard>, config: &DetectConfig, tenant: &str) -> Option<&'a mut Shard> {
    if !shards.contains_key(tenant) {
        if shards.len() >= config.max_tenants {
            return None;
        }
        let fresh = Shard { baselines: Baselines::default(), detectors: rules::build(config, tenant) };
        shards.insert(tenant.to_owned(), fresh);
    }
    shards.get_mut(tenant)
}

impl Engine {
    /// An engine with no history. Fails when the configuration does not validate.
    pub fn new(config: DetectConfig) -> Result<Engine, ConfigError> {
        config.validate()?;
        Ok(Engine {
            config,
            shards: BTreeMap::new(),
            recent: RecentIds::default(),
            batches: RecentIds::default(),
            stats: EngineStats::default(),
        })
    }

    pub fn config(&self) -> &DetectConfig {
        &self.config
    }

    /// Judges one decision; findings are appended to `out`.
    pub fn process(&mut self, d: &AccessDecision, out: &mut Vec<Finding>) {
        let before = out.len();
        self.step(d, out);
        self.stats.findings += (out.len() - before) as u64;
    }

    /// Learns from history without raising findings (decisions in time order, as stored).
    /// Returns how many were taken in.
    pub fn warm<'a>(&mut self, history: impl IntoIterator<Item = &'a AccessDecision>) -> u64 {
        let mut discard = Vec::new();
        let mut n = 0;
        for d in history {
            self.step(d, &mut discard);
            discard.clear();
            n += 1;
        }
        n
    }

    /// Learns sources' cadence from past arrivals (e.g. `ingest_batches`), in receipt order.
    pub fn warm_arrivals<'a>(&mut self, arrivals: impl IntoIterator<Item = &'a Arrival>) {
        let mut discard = Vec::new();
        for a in arrivals {
            self.observe_arrival(a, &mut discard);
            discard.clear();
        }
    }

    /// A whole spool batch: skipped if its id was seen before, else its arrival(s) and its
    /// decisions, in order.
    pub fn process_batch(&mut self, batch: &Batch, out: &mut Vec<Finding>) {
        // gatelog's own audit trail (reads of the evidence) is not a source to watch.
        if !self.config.enabled || batch.is_audit() {
            return;
        }
        if !batch.batch_id.is_empty() {
            let hash = stable_hash(&[&batch.batch_id]);
            if self.batches.seen(hash, batch.received_at.0, i64::MAX, BATCH_IDS_KEPT) {
                self.stats.duplicate_batches += 1;
                return;
            }
        }
        // A batch of canaries only is no arrival: source silence must not learn their cadence.
        let canaries_only = !batch.decisions.is_empty() && batch.decisions.iter().all(|d| is_canary(&d.dataset));
        if !canaries_only {
            for a in Arrival::of_batch(batch) {
                self.observe_arrival(&a, out);
            }
        }
        for d in &batch.decisions {
            self.process(d, out);
        }
    }

    /// A dataset delivered a batch (source silence input).
    pub fn observe_arrival(&mut self, a: &Arrival, out: &mut Vec<Finding>) {
        if !self.config.enabled || a.dataset == gatelog_model::decision::AUDIT_DATASET {
            return;
        }
        let Some(shard) = shard(&mut self.shards, &self.config, tenant_of(&a.tenant)) else { return };
        for det in &mut shard.detectors {
            det.on_arrival(a, out);
        }
    }

    /// Wall time `now` has come (the runtime's clock): time-driven detectors judge silence.
    pub fn tick(&mut self, now: UnixMillis, out: &mut Vec<Finding>) {
        if !self.config.enabled {
            return;
        }
        let before = out.len();
        for shard in self.shards.values_mut() {
            for det in &mut shard.detectors {
                det.on_tick(now, out);
            }
        }
        self.stats.findings += (out.len() - before) as u64;
    }

    fn step(&mut self, d: &AccessDecision, out: &mut Vec<Finding>) {
        if !self.config.enabled {
            return;
        }
        if is_canary(&d.dataset) {
            // Judged by the canary rule alone, learnt from by nothing (rules::canary).
            out.extend(rules::canary::finding(d));
            return;
        }
        let tenant = tenant_of(&d.tenant);
        if !d.event_id.is_empty() && in_list(&self.config.dedup_datasets, &d.dataset) {
            let hash = stable_hash(&[tenant, &d.event_id]);
            let window = i64::try_from(self.config.dedup_window.as_millis()).unwrap_or(i64::MAX);
            if self.recent.seen(hash, d.time.0, window, self.config.dedup_capacity) {
                self.stats.duplicates += 1;
                return;
            }
        }
        let Some(shard) = shard(&mut self.shards, &self.config, tenant) else {
            self.stats.skipped_tenant += 1;
            return;
        };
        let profile = &self.config.profile;
        shard.baselines.roll(d, profile);
        let principal = if d.principal.is_empty() { None } else { shard.baselines.profile(&d.principal) };
        let cx = Context { baselines: &shard.baselines, profile, principal };
        for det in &mut shard.detectors {
            det.on_decision(&cx, d, out);
        }
        shard.baselines.learn(d, profile, self.config.max_principals);
        self.stats.decisions += 1;
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The baselines of a tenant, if it was seen.
    pub fn baselines(&self, tenant: &str) -> Option<&Baselines> {
        self.shards.get(tenant_of(tenant)).map(|s| &s.baselines)
    }

    /// Per rule id, the keys held over all tenants (`baselines` for the profiles, `recent_ids`
    /// for the dedup set): the figures the caps bound.
    pub fn tracked(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for shard in self.shards.values() {
            *out.entry("baselines").or_default() += shard.baselines.len();
            for det in &shard.detectors {
                *out.entry(det.rule().id).or_default() += det.tracked();
            }
        }
        out.insert("recent_ids", self.recent.len());
        out
    }

    /// The engine's state, to store with the spool position it reflects.
    pub fn checkpoint(&self) -> Result<Vec<u8>, CheckpointError> {
        let mut shards = Vec::with_capacity(self.shards.len());
        for (tenant, shard) in &self.shards {
            let mut detectors = Vec::with_capacity(shard.detectors.len());
            for det in &shard.detectors {
                let rule = det.rule();
                detectors.push(DetectorSnapshot {
                    rule_id: rule.id.to_owned(),
                    rule_version: rule.version,
                    state: det.save()?,
                });
            }
            shards.push(ShardSnapshot { tenant: tenant.clone(), baselines: shard.baselines.clone(), detectors });
        }
        checkpoint::encode(&Snapshot {
            stats: self.stats.clone(),
            recent: self.recent.clone(),
            batches: self.batches.clone(),
            shards,
        })
    }

    /// An engine with `config` and the state of a [`Engine::checkpoint`]. Detectors whose
    /// rule version changed (or that were off when it was written) start fresh, as the
    /// report says; everything else continues where it stopped.
    pub fn restore(config: DetectConfig, bytes: &[u8]) -> Result<(Engine, RestoreReport), RestoreError> {
        let mut engine = Engine::new(config)?;
        let snapshot = checkpoint::decode(bytes)?;
        let mut report = RestoreReport::default();
        engine.stats = snapshot.stats;
        engine.recent = snapshot.recent;
        engine.batches = snapshot.batches;
        for saved in snapshot.shards {
            let mut detectors = rules::build(&engine.config, &saved.tenant);
            for det in &mut detectors {
                let rule = det.rule();
                let state = saved.detectors.iter().find(|s| s.rule_id == rule.id);
                match state {
                    Some(s) if s.rule_version == rule.version => det.load(&s.state)?,
                    Some(s) => report.fresh.push(format!(
                        "{}/{}: saved by version {}, this is version {}",
                        saved.tenant, rule.id, s.rule_version, rule.version
                    )),
                    None => report.fresh.push(format!("{}/{}: not in the checkpoint", saved.tenant, rule.id)),
                }
            }
            engine.shards.insert(saved.tenant, Shard { baselines: saved.baselines, detectors });
        }
        Ok((engine, report))
    }
}

/// Why [`Engine::restore`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_saved_by_another_version_starts_fresh_and_is_reported() {
        let mut engine = Engine::new(DetectConfig::default()).unwrap();
        let mut d =
            AccessDecision::new("e1".into(), UnixMillis(1_741_564_800_000), "proxy", gatelog_model::Source::Proxy);
        d.decision = gatelog_model::Decision::Deny;
        d.client_ip = "192.0.2.1".into();
        engine.process(&d, &mut Vec::new());
        let mut snapshot = checkpoint::decode(&engine.checkpoint().unwrap()).unwrap();
        let saved = snapshot.shards[0].detectors.iter_mut().find(|s| s.rule_id == "deny_burst_ip").unwrap();
        saved.rule_version = 0;
        saved.state = vec![0xff, 0xff];
        let (restored, report) =
            Engine::restore(DetectConfig::default(), &checkpoint::encode(&snapshot).unwrap()).unwrap();
        assert_eq!(report.fresh, vec!["default/deny_burst_ip: saved by version 0, this is version 1".to_owned()]);
        assert_eq!(restored.tracked()["deny_burst_ip"], 0, "fresh, not the saved bytes");
        assert_eq!(restored.tracked()["baselines"], engine.tracked()["baselines"]);
    }

    #[test]
    fn a_canary_is_judged_by_the_canary_rule_alone_and_teaches_nothing() {
        use gatelog_model::canary::{CANARY_DATASET, CANARY_PRINCIPAL, CANARY_RULE, canary_event_id};
        let mut engine = Engine::new(DetectConfig::default()).unwrap();
        let mut batch = Batch { batch_id: "b1".into(), dataset: "proxy".into(), ..Batch::default() };
        for i in 0..30 {
            let mut d = AccessDecision::new(
                canary_event_id(&format!("r{i}")),
                UnixMillis(1_741_564_800_000 + i),
                CANARY_DATASET,
                gatelog_model::Source::Proxy,
            );
            d.decision = gatelog_model::Decision::Deny;
            d.principal = CANARY_PRINCIPAL.into();
            d.client_ip = "127.0.0.1".into();
            batch.decisions.push(d);
        }
        let mut out = Vec::new();
        engine.process_batch(&batch, &mut out);
        assert_eq!(out.len(), 30, "one finding per canary, no deny burst: {out:?}");
        assert!(out.iter().all(|f| f.rule_id == CANARY_RULE));
        assert_eq!(engine.stats().decisions, 0, "no detector and no baseline saw them");
        assert!(engine.baselines("default").is_none_or(|b| b.profile(CANARY_PRINCIPAL).is_none()));
        let silence = engine.tracked().get("source_silence").copied().unwrap_or(0);
        assert_eq!(silence, 0, "a canary batch is no arrival a silence could follow");
        batch.batch_id = "b2".into();
        batch.decisions[0].dataset = "proxy".into();
        engine.process_batch(&batch, &mut out);
        assert_eq!(engine.tracked()["source_silence"], 1, "a batch with a real decision is");
    }
}
