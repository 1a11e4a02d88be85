//! `canary`: gatelog's own synthetic decision (dataset `gatelog_canary`, see
//! `gatelog_model::canary`) becomes a finding of its own, one alert per canary run (the
//! dedup key carries the run id). Stateless. The engine hands canary decisions to this rule
//! only: no other detector judges them and no baseline learns from them, and their batches
//! are no arrival for source silence, so the canaries change nothing else detection sees.

use crate::detector::{Draft, Rule};
use gatelog_model::canary::{CANARY_RULE, canary_run_of};
use gatelog_model::{AccessDecision, Finding, Severity};

pub(crate) const RULE: Rule = Rule { id: CANARY_RULE, version: 1 };

/// The finding of a canary decision (one whose event id names a run), else none.
pub(crate) fn finding(d: &AccessDecision) -> Option<Finding> {
    let run = canary_run_of(&d.event_id)?;
    Some(
        Draft::about(RULE, Severity::Info, run, d)
            .summary(format!("canary {run} reached detection (a test of monitoring, not an incident)"))
            .evidence("canary_run", run)
            .finish(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_model::canary::{CANARY_DATASET, canary_dedup_key, canary_event_id};
    use gatelog_model::{Source, UnixMillis};

    #[test]
    fn a_canary_run_is_one_info_finding_keyed_by_its_run() {
        let d = AccessDecision::new(canary_event_id("r7"), UnixMillis(5), CANARY_DATASET, Source::Proxy);
        let f = finding(&d).unwrap();
        assert_eq!(
            (f.rule_id.as_str(), f.severity, f.dedup_key),
            (CANARY_RULE, Severity::Info, canary_dedup_key("r7"))
        );
        assert_eq!(f.event_ids, vec![canary_event_id("r7")]);
        let other = AccessDecision::new("x".into(), UnixMillis(5), CANARY_DATASET, Source::Proxy);
        assert!(finding(&other).is_none());
    }
}
