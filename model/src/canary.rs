//! Canaries: the marks by which gatelog's own synthetic decisions, and the alerts about them,
//! are recognised everywhere (so reports and dashboards can leave them out).
//!
//! `gatelog serve` posts, every `detect.canary.interval`, one decision of dataset
//! [`CANARY_DATASET`] by principal [`CANARY_PRINCIPAL`] (policy [`CANARY_POLICY`]) through its
//! own receiver; detection answers it with a finding of rule [`CANARY_RULE`] (severity
//! `info`, never mailed), which the canary resolves once seen. A canary whose alert does not
//! come within the deadline opens an alert of rule [`CANARY_MISSED_RULE`] (severity `high`),
//! which is mailed to on-call like any other.

/// `decisions.dataset` (and `ingest_batches.dataset`'s decisions) of every canary decision.
pub const CANARY_DATASET: &str = "gatelog_canary";
/// `decisions.principal` of every canary decision.
pub const CANARY_PRINCIPAL: &str = "canary@gatelog.invalid";
/// `decisions.policy` of every canary decision.
pub const CANARY_POLICY: &str = "gatelog.canary";
/// `findings.rule_id` / `alerts.rule_id` of the alert a canary decision raises.
pub const CANARY_RULE: &str = "canary";
/// `alerts.rule_id` of the alert a missed (or unsent) canary raises: it pages.
pub const CANARY_MISSED_RULE: &str = "canary_missed";
/// The actor of the resolution gatelog appends to a canary's alert once it has seen it.
pub const CANARY_ACTOR: &str = "gatelog-canary";

/// Whether a decision is a canary (its dataset is [`CANARY_DATASET`]).
pub fn is_canary(dataset: &str) -> bool {
    dataset == CANARY_DATASET
}

/// The event id of run `run_id`'s decision.
pub fn canary_event_id(run_id: &str) -> String {
    format!("canary-{run_id}")
}

/// The dedup key of the alert run `run_id`'s decision raises.
pub fn canary_dedup_key(run_id: &str) -> String {
    format!("{CANARY_RULE}:{run_id}")
}

/// The run id in a canary decision's event id, if it is one.
pub fn canary_run_of(event_id: &str) -> Option<&str> {
    event_id.strip_prefix("canary-").filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_round_trips_through_its_event_id() {
        assert_eq!(canary_run_of(&canary_event_id("r1")), Some("r1"));
        assert_eq!(canary_run_of("canary-"), None);
        assert_eq!(canary_run_of("other"), None);
        assert_eq!(canary_dedup_key("r1"), "canary:r1");
        assert!(is_canary(CANARY_DATASET) && !is_canary("proxy"));
    }
}
