//! `sigma`: the detector that evaluates the Sigma rules of `detect.sigma_dir` on every
//! decision, one `rsigma-eval` [`CorrelationEngine`] per tenant.
//!
//! A detection rule's match is a finding about that decision: `rule_id` is the Sigma id (or
//! the title's slug), the level is the severity, the dedup key is
//! `<rule id>:<principal, else client IP>`, and the evidence names the Sigma title, the
//! matched selections and fields. A correlation's firing is a finding about its group
//! (`<rule id>:<group-by values>`), with the count (`aggregated_value`), the timespan and
//! the event ids behind it (up to 100). Correlations reset their window after firing, so
//! `n` denials fire once, not on every further denial; event time (seconds, as Sigma
//! counts) drives their windows, never the clock.
//!
//! State: the correlation windows ([`rsigma_eval::CorrelationSnapshot`], JSON) are saved with
//! the checkpoint; detection rules have none. A restored engine with other rules keeps the
//! windows of correlations whose id (or title) is unchanged.

use super::SigmaRules;
use super::fields::{self, DecisionEvent, Field};
use crate::checkpoint::CheckpointError;
use crate::detector::{Context, Detector, Draft, MAX_EVENT_IDS, Rule};
use gatelog_model::{AccessDecision, Finding, UnixMillis};
use rsigma_eval::{
    CorrelationAction, CorrelationConfig, CorrelationEngine, CorrelationEventMode, CorrelationSnapshot,
    EvaluationResult, ResultBody,
};

/// The detector's identity; the findings carry each Sigma rule's own id.
pub const RULE: Rule = Rule { id: "sigma", version: 1 };

/// Correlation groups kept (all correlations together); beyond it the engine evicts.
const MAX_STATE_ENTRIES: usize = 100_000;
/// Events kept per correlation group window.
const MAX_GROUP_ENTRIES: usize = 10_000;

/// The `sigma` detector. See the module docs.
pub(crate) struct SigmaDetector {
    engine: CorrelationEngine,
    /// Rule ids of detection rules only a correlation uses (`generate: false`): their
    /// matches feed the correlation and raise nothing themselves (the engine knows such
    /// rules only when referenced by id, not by name).
    silent: Vec<String>,
}

impl std::fmt::Debug for SigmaDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigmaDetector").field("states", &self.engine.state_count()).finish()
    }
}

impl SigmaDetector {
    /// Compiles `rules` (they were compiled when parsed, so this does not fail in practice;
    /// a failure leaves the detector without rules and is logged by the caller's checks).
    pub(crate) fn new(rules: &SigmaRules) -> SigmaDetector {
        let config = CorrelationConfig {
            max_state_entries: MAX_STATE_ENTRIES,
            max_group_entries: Some(MAX_GROUP_ENTRIES),
            action_on_match: CorrelationAction::Reset,
            emit_detections: false,
            correlation_event_mode: CorrelationEventMode::Refs,
            max_correlation_events: MAX_EVENT_IDS,
            ..CorrelationConfig::default()
        };
        let mut engine = CorrelationEngine::new(config.clone());
        if engine.add_collection(rules.collection()).is_err() {
            engine = CorrelationEngine::new(config);
        }
        let silent = rules.rules().iter().filter(|r| !r.generates).map(|r| r.id.clone()).collect();
        SigmaDetector { engine, silent }
    }

    fn finding(d: &AccessDecision, r: &EvaluationResult) -> Finding {
        let h = &r.header;
        let id = super::rule_id(h.rule_id.as_deref(), &h.rule_title);
        let severity = super::severity(h.level);
        let rule = Rule { id: RULE.id, version: RULE.version };
        match &r.body {
            ResultBody::Correlation(c) => {
                let key: Vec<&str> = c.group_key.iter().map(|(_, v)| v.as_str()).collect();
                let grouped: Vec<Field> = c.group_key.iter().filter_map(|(k, _)| fields::lookup(k)).collect();
                let mut draft = Draft::about(rule, severity, &key.join(":"), d);
                let ids: Vec<&str> = c.event_refs.iter().flatten().filter_map(|e| e.id.as_deref()).collect();
                if !ids.is_empty() {
                    draft = draft.events(ids);
                }
                let first = c.event_refs.iter().flatten().map(|e| e.timestamp).min();
                let start = first.map_or(d.time, |s| UnixMillis(s.saturating_mul(1000).min(d.time.0)));
                let groups: Vec<String> = c.group_key.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let mut f = draft
                    .window(start, d.time)
                    .summary(format!(
                        "sigma: {} ({} {} within {}s{}{})",
                        h.rule_title,
                        c.correlation_type.as_str(),
                        c.aggregated_value,
                        c.timespan_secs,
                        if groups.is_empty() { "" } else { " for " },
                        groups.join(", ")
                    ))
                    .evidence("sigma_title", &h.rule_title)
                    .evidence("correlation_type", c.correlation_type.as_str())
                    .evidence("aggregated_value", c.aggregated_value)
                    .evidence("timespan_secs", c.timespan_secs)
                    .evidence("group_key", groups.join(", "))
                    .finish();
                // Only what the group is about: a burst by IP is not about the last principal.
                if !grouped.contains(&Field::Principal) {
                    f.principal.clear();
                }
                if !grouped.contains(&Field::ClientIp) {
                    f.client_ip.clear();
                    f.country.clear();
                }
                if !grouped.contains(&Field::Resource) {
                    f.resource.clear();
                }
                retag(f, &id, &h.tags)
            }
            ResultBody::Detection(m) => {
                let who = if d.principal.is_empty() { &d.client_ip } else { &d.principal };
                let matched: Vec<String> = m
                    .matched_fields
                    .iter()
                    .map(|x| {
                        format!("{}={}", x.field, x.value.as_str().map_or_else(|| x.value.to_string(), str::to_owned))
                    })
                    .collect();
                let f = Draft::about(rule, severity, &who.to_lowercase(), d)
                    .summary(format!(
                        "sigma: {} ({} {} {} {})",
                        h.rule_title,
                        if d.principal.is_empty() { "anonymous" } else { &d.principal },
                        d.decision.as_str(),
                        if d.action.is_empty() { "on" } else { &d.action },
                        d.resource
                    ))
                    .evidence("sigma_title", &h.rule_title)
                    .evidence("matched_selections", m.matched_selections.join(", "))
                    .evidence("matched_fields", matched.join(", "))
                    .evidence("user_agent", &d.user_agent)
                    .finish();
                retag(f, &id, &h.tags)
            }
        }
    }
}

/// The finding under the Sigma rule's own id (dedup key and finding id follow).
fn retag(mut f: Finding, id: &str, tags: &[String]) -> Finding {
    let key = f.dedup_key.strip_prefix(RULE.id).unwrap_or(&f.dedup_key).to_owned();
    f.rule_id = id.to_owned();
    f.dedup_key = format!("{id}{key}");
    if !tags.is_empty() {
        f.evidence.insert("sigma_tags".into(), tags.join(", "));
    }
    f.seal()
}

impl Detector for SigmaDetector {
    fn rule(&self) -> Rule {
        RULE
    }

    fn on_decision(&mut self, _cx: &Context<'_>, d: &AccessDecision, out: &mut Vec<Finding>) {
        let results = self.engine.process_event_at(&DecisionEvent(d), d.time.0.div_euclid(1000));
        for r in &results {
            if r.is_detection()
                && self.silent.contains(&super::rule_id(r.header.rule_id.as_deref(), &r.header.rule_title))
            {
                continue;
            }
            out.push(Self::finding(d, r));
        }
    }

    fn save(&self) -> Result<Vec<u8>, CheckpointError> {
        serde_json::to_vec(&self.engine.export_state()).map_err(|e| CheckpointError::Encode(format!("sigma: {e}")))
    }

    fn load(&mut self, state: &[u8]) -> Result<(), CheckpointError> {
        let snapshot: CorrelationSnapshot =
            serde_json::from_slice(state).map_err(|e| CheckpointError::Decode(format!("state of sigma: {e}")))?;
        if self.engine.import_state(snapshot) {
            Ok(())
        } else {
            Err(CheckpointError::Decode("state of sigma: snapshot of another rsigma version".into()))
        }
    }

    fn tracked(&self) -> usize {
        self.engine.state_count()
    }
}
