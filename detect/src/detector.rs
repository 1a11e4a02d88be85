//! The [`Detector`] trait: decisions (and arrivals, and clock ticks) in, findings out.
//!
//! A detector is a value holding its configuration and its state. It does no I/O and reads
//! no clock: event time comes from the decisions, wall time only from [`Detector::on_tick`]'s
//! argument. Its state serialises ([`Detector::save`] / [`Detector::load`]) so the runtime can
//! checkpoint it with its spool position; a restored detector fed the same inputs produces
//! the same findings as one that never stopped.
//!
//! Detectors read principals' [`Baselines`] through the [`Context`]; the engine updates the
//! baselines after every detector has seen a decision.

use crate::arrival::Arrival;
use crate::baseline::{Baselines, Profile, principal_key};
use crate::checkpoint::CheckpointError;
use crate::config::ProfileConfig;
use gatelog_model::{AccessDecision, Finding, Severity, UnixMillis};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;

/// A rule's identity: the `rule_id` and `rule_version` of its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    /// Bumped when the rule's meaning or its saved state's shape changes; a checkpoint of
    /// another version is not loaded (the detector starts fresh).
    pub version: u32,
}

/// What a detector may read besides the decision.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub baselines: &'a Baselines,
    pub profile: &'a ProfileConfig,
    /// The profile of the decision's principal (looked up once for every detector).
    pub principal: Option<&'a Profile>,
}

/// A detector. See the module docs for the contract.
pub trait Detector: std::fmt::Debug + Send {
    fn rule(&self) -> Rule;

    /// Judges one decision, pushing any findings to `out`.
    fn on_decision(&mut self, cx: &Context<'_>, d: &AccessDecision, out: &mut Vec<Finding>);

    /// A batch of a dataset arrived (source silence).
    fn on_arrival(&mut self, _arrival: &Arrival, _out: &mut Vec<Finding>) {}

    /// Wall time passed without input (source silence).
    fn on_tick(&mut self, _now: UnixMillis, _out: &mut Vec<Finding>) {}

    /// The detector's state, encoded.
    fn save(&self) -> Result<Vec<u8>, CheckpointError>;

    /// Replaces the state with one [`Detector::save`] wrote.
    fn load(&mut self, state: &[u8]) -> Result<(), CheckpointError>;

    /// Keys (principals, IPs, sources…) the detector holds state for: what its caps bound.
    fn tracked(&self) -> usize {
        0
    }
}

/// Encodes a detector's state.
pub(crate) fn save_state<T: Serialize>(state: &T) -> Result<Vec<u8>, CheckpointError> {
    postcard::to_allocvec(state).map_err(|e| CheckpointError::Encode(e.to_string()))
}

/// Decodes a detector's state.
pub(crate) fn load_state<T: DeserializeOwned>(rule: Rule, bytes: &[u8]) -> Result<T, CheckpointError> {
    postcard::from_bytes(bytes).map_err(|e| CheckpointError::Decode(format!("state of {}: {e}", rule.id)))
}

/// Findings name at most this many events; `evidence.events` has the full count.
pub(crate) const MAX_EVENT_IDS: usize = 100;

/// A finding being put together.
#[derive(Debug)]
pub(crate) struct Draft(Finding);

impl Draft {
    /// A finding about one decision: its principal, IP, country, resource, dataset, tenant,
    /// time and id. `key` is appended to the rule id to make the dedup key.
    pub(crate) fn about(rule: Rule, severity: Severity, key: &str, d: &AccessDecision) -> Draft {
        Draft(Finding {
            rule_id: rule.id.to_owned(),
            rule_version: rule.version,
            severity,
            dedup_key: format!("{}:{key}", rule.id),
            tenant: d.tenant.clone(),
            window_start: d.time,
            window_end: d.time,
            principal: d.principal.clone(),
            client_ip: d.client_ip.clone(),
            country: d.country.clone(),
            resource: d.resource.clone(),
            dataset: d.dataset.clone(),
            event_ids: if d.event_id.is_empty() { Vec::new() } else { vec![d.event_id.clone()] },
            ..Finding::default()
        })
    }

    /// A finding about no decision in particular (a silent source).
    pub(crate) fn bare(rule: Rule, severity: Severity, key: &str, tenant: &str) -> Draft {
        Draft(Finding {
            rule_id: rule.id.to_owned(),
            rule_version: rule.version,
            severity,
            dedup_key: format!("{}:{key}", rule.id),
            tenant: tenant.to_owned(),
            ..Finding::default()
        })
    }

    pub(crate) fn summary(mut self, text: String) -> Self {
        self.0.summary = text;
        self
    }

    pub(crate) fn evidence(mut self, key: &str, value: impl Display) -> Self {
        self.0.evidence.insert(key.to_owned(), value.to_string());
        self
    }

    pub(crate) fn window(mut self, start: UnixMillis, end: UnixMillis) -> Self {
        self.0.window_start = start;
        self.0.window_end = end;
        self
    }

    /// Replaces the events (oldest first), keeping the first [`MAX_EVENT_IDS`].
    pub(crate) fn events<'a>(mut self, ids: impl IntoIterator<Item = &'a str>) -> Self {
        self.0.event_ids = ids.into_iter().filter(|s| !s.is_empty()).take(MAX_EVENT_IDS).map(str::to_owned).collect();
        self
    }

    pub(crate) fn dataset(mut self, dataset: &str) -> Self {
        self.0.dataset = dataset.to_owned();
        self
    }

    pub(crate) fn resource(mut self, resource: &str) -> Self {
        self.0.resource = resource.to_owned();
        self
    }

    pub(crate) fn finish(self) -> Finding {
        self.0.seal()
    }
}

/// The dedup-key part for a principal (lower case, as baselines key it).
pub(crate) fn who(d: &AccessDecision) -> String {
    principal_key(&d.principal).into_owned()
}

/// Whether `dataset` is one of `list`.
pub(crate) fn in_list(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x.eq_ignore_ascii_case(value))
}

/// `ms` as a UTC time of day, `HH:MM UTC`.
pub(crate) fn clock_time(t: UnixMillis) -> String {
    let minutes = t.0.div_euclid(60_000).rem_euclid(1440);
    format!("{:02}:{:02} UTC", minutes / 60, minutes % 60)
}
