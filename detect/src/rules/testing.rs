//! Test support for the detectors: decisions, an engine-like harness, and the checks every
//! detector must pass (a checkpoint mid-stream changes nothing; a replay gives the same
//! findings and dedup keys).

use crate::baseline::Baselines;
use crate::config::ProfileConfig;
use crate::detector::{Context, Detector};
use gatelog_model::{AccessDecision, Decision, Finding, PrincipalType, Source, UnixMillis};
use std::sync::LazyLock;

pub(crate) const HOUR: i64 = 3_600_000;
pub(crate) const DAY: i64 = 86_400_000;
/// 2025-03-10T00:00:00Z, a Monday.
pub(crate) const MONDAY: i64 = 1_741_564_800_000;

static EMPTY: LazyLock<Baselines> = LazyLock::new(Baselines::default);
static PROFILE: LazyLock<ProfileConfig> = LazyLock::new(ProfileConfig::default);

/// A context with no baselines.
pub(crate) fn cx_none() -> Context<'static> {
    Context { baselines: &EMPTY, profile: &PROFILE, principal: None }
}

/// An allowed request by a user, with a unique event id.
pub(crate) fn decision(principal: &str, t: i64, ip: &str, country: &str) -> AccessDecision {
    let mut d = AccessDecision::new(format!("ev-{principal}-{t}-{ip}"), UnixMillis(t), "proxy", Source::Proxy);
    d.decision = Decision::Allow;
    d.principal = principal.into();
    d.principal_type = if principal.is_empty() { PrincipalType::Anonymous } else { PrincipalType::User };
    d.client_ip = ip.into();
    d.country = country.into();
    d
}

/// Feeds decisions as the engine does: roll the baselines, judge, learn.
#[derive(Debug, Clone, Default)]
pub(crate) struct Harness {
    pub(crate) baselines: Baselines,
    pub(crate) profile: ProfileConfig,
}

impl Harness {
    pub(crate) fn feed(&mut self, det: &mut dyn Detector, d: &AccessDecision) -> Vec<Finding> {
        self.baselines.roll(d, &self.profile);
        let mut out = Vec::new();
        let principal = self.baselines.profile(&d.principal);
        det.on_decision(&Context { baselines: &self.baselines, profile: &self.profile, principal }, d, &mut out);
        self.baselines.learn(d, &self.profile, usize::MAX);
        out
    }

    pub(crate) fn feed_all(&mut self, det: &mut dyn Detector, ds: &[AccessDecision]) -> Vec<Finding> {
        ds.iter().flat_map(|d| self.feed(det, d)).collect()
    }
}

/// Every detector's determinism contract, on a stream that makes it fire:
/// - a replay of the same decisions gives the same findings (ids and dedup keys included);
/// - saving the state at every point and loading it into a fresh detector gives the same
///   findings for the rest of the stream as the detector that never stopped.
///
/// Returns the findings of the uninterrupted run, which must not be empty.
pub(crate) fn assert_deterministic(make: impl Fn() -> Box<dyn Detector>, stream: &[AccessDecision]) -> Vec<Finding> {
    let mut whole = make();
    let mut h = Harness::default();
    let all = h.feed_all(whole.as_mut(), stream);
    assert!(!all.is_empty(), "the stream must make the detector fire");
    let mut again = make();
    assert_eq!(Harness::default().feed_all(again.as_mut(), stream), all, "replay differs");
    for cut in [1, stream.len() / 3, stream.len() / 2, stream.len() - 1] {
        let mut first = make();
        let mut h = Harness::default();
        let mut got = h.feed_all(first.as_mut(), &stream[..cut]);
        let state = first.save().unwrap();
        let baselines: Baselines = postcard::from_bytes(&postcard::to_allocvec(&h.baselines).unwrap()).unwrap();
        let mut restored = make();
        restored.load(&state).unwrap();
        let mut h2 = Harness { baselines, ..Harness::default() };
        got.extend(h2.feed_all(restored.as_mut(), &stream[cut..]));
        assert_eq!(got, all, "restored at {cut} of {} differs", stream.len());
    }
    all
}
