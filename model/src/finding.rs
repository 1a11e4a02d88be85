//! [`Finding`]: what a detector concluded, and the events it concluded it from.
//!
//! Field names are a contract: they become the columns of the findings table, the fields of
//! alert e-mails and the keys of `/v1/alerts` JSON. Fields may be added, never renamed.
//! Every field has a default so a partial JSON finding (a rule's fixture) deserialises.
//!
//! A finding is raised in event time: `window_start..=window_end` is the span of the events
//! behind it (for source silence, of the silence). Its [`Finding::finding_id`] is derived
//! from what it is about, not from when it was computed, so replaying the same decisions
//! gives the same ids, and the alert layer can group findings by [`Finding::dedup_key`].

use crate::{EventId, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How urgent a finding is, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Recorded for context; nobody is paged.
    Info,
    #[default]
    Low,
    Medium,
    High,
    Critical,
}

str_enum!(Severity { Info => "info", Low => "low", Medium => "medium", High => "high", Critical => "critical" });

/// One detection: a rule matched, on these events, about this principal, IP or resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Finding {
    /// Stable id ([`Finding::derive_id`]): the same finding on replay has the same id.
    pub finding_id: String,
    /// The rule that matched, e.g. `runaway_select`, `deny_burst_ip`.
    pub rule_id: String,
    /// The rule's version; bumped when its logic changes meaning.
    pub rule_version: u32,
    pub severity: Severity,
    /// Findings with the same key are one alert within the suppression window, e.g.
    /// `new_country:alice@example.com:RU`.
    pub dedup_key: String,
    pub tenant: String,
    /// First event behind the finding (event time, UTC).
    pub window_start: UnixMillis,
    /// Last event behind the finding; the finding exists from this moment.
    pub window_end: UnixMillis,
    /// Who; empty when the finding is about an IP or a source.
    pub principal: String,
    pub client_ip: String,
    /// ISO 3166 alpha-2 of `client_ip`, upper case; empty when unknown.
    pub country: String,
    /// What was accessed: a table, a URL, a Cloudflare resource; or the silent dataset.
    pub resource: String,
    /// The dataset of the events (or the silent one).
    pub dataset: String,
    /// `event_id`s of the decisions behind the finding, oldest first (capped by the rule).
    pub event_ids: Vec<String>,
    /// One line for a human: what happened, with the figures that matter.
    pub summary: String,
    /// Named figures and facts behind the finding (`rows_read`, `threshold`, `countries_seen`, …).
    pub evidence: BTreeMap<String, String>,
}

impl Finding {
    /// The id this finding should have: rule, version, dedup key, window start and first
    /// event, hashed ([`EventId::derive`]).
    pub fn derive_id(&self) -> String {
        let version = self.rule_version.to_string();
        let start = self.window_start.0.to_string();
        let first = self.event_ids.first().map_or("", String::as_str);
        EventId::derive(&["finding", &self.rule_id, &version, &self.tenant, &self.dedup_key, &start, first])
    }

    /// Sets [`Finding::finding_id`] from the other fields; call once they are filled in.
    pub fn seal(mut self) -> Self {
        self.finding_id = self.derive_id();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Finding {
        Finding {
            rule_id: "deny_burst_ip".into(),
            rule_version: 1,
            severity: Severity::High,
            dedup_key: "deny_burst_ip:203.0.113.9".into(),
            tenant: "default".into(),
            window_start: UnixMillis(1_740_960_000_000),
            window_end: UnixMillis(1_740_960_030_000),
            client_ip: "203.0.113.9".into(),
            event_ids: vec!["e1".into(), "e2".into()],
            summary: "12 denials from 203.0.113.9 within 5m".into(),
            evidence: BTreeMap::from([("denials".into(), "12".into())]),
            ..Finding::default()
        }
        .seal()
    }

    #[test]
    fn id_is_stable_and_depends_on_what_the_finding_is_about() {
        let f = sample();
        assert_eq!(f.finding_id.len(), 32);
        assert_eq!(f.finding_id, sample().finding_id);
        let mut later = sample();
        later.window_end = UnixMillis(1_740_960_099_000);
        later.summary = "13 denials".into();
        assert_eq!(later.seal().finding_id, f.finding_id, "growing evidence keeps the id");
        let mut other = sample();
        other.dedup_key = "deny_burst_ip:203.0.113.10".into();
        assert_ne!(other.seal().finding_id, f.finding_id);
    }

    #[test]
    fn round_trips_through_json_with_stable_names() {
        let f = sample();
        let json = serde_json::to_value(&f).unwrap();
        for key in [
            "finding_id",
            "rule_id",
            "rule_version",
            "severity",
            "dedup_key",
            "tenant",
            "window_start",
            "window_end",
            "principal",
            "client_ip",
            "country",
            "resource",
            "dataset",
            "event_ids",
            "summary",
            "evidence",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(json["severity"], "high");
        assert_eq!(json["window_start"], "2025-03-03T00:00:00.000Z");
        assert_eq!(serde_json::from_value::<Finding>(json).unwrap(), f);
        let partial: Finding = serde_json::from_str(r#"{"rule_id":"x","severity":"critical"}"#).unwrap();
        assert_eq!(partial.severity, Severity::Critical);
    }

    #[test]
    fn severities_order_and_name() {
        assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
        for s in Severity::ALL {
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{}\"", s.as_str()));
            assert_eq!(Severity::parse(s.as_str()), Some(*s));
        }
    }
}
