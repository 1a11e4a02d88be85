//! `off_hours`: a principal active outside its own usual hours — at least `min_events`
//! allowed requests within `window`, each off-hours by the principal's hour-of-week
//! profile ([`crate::baseline`]) and at an hour that is itself quiet for the principal (the
//! dead of night; a working day that runs late is not reported on its own).
//!
//! A single request at an odd hour is common (people do check something at night); a
//! session of them is the signal: `min_events` of them, and more than the principal's own
//! rate at that hour makes likely (Poisson probability below `max_probability`; someone who
//! often works at night needs a bigger session to stand out). Profiles judge only once `min_history` events are
//! settled, and only settled days count, so the session cannot make itself usual; and an
//! hour counts as quiet only once the principal was watched at it on `min_observed_days`
//! days (a stream that started at noon has not seen anyone's night yet).
//! One finding per session; a session ends when `window` passes without an off-hours
//! request. Dedup key: `off_hours:<principal>`.

use crate::baseline::{Assessment, learns_from, principal_key};
use crate::checkpoint::CheckpointError;
use crate::config::OffHoursConfig;
use crate::detector::{Context, Detector, Draft, Rule, clock_time, load_state, save_state};
use crate::keyed::Keyed;
use crate::rules::window::{Added, Sweep, Window};
use crate::stats::poisson_at_least;
use gatelog_model::{AccessDecision, Finding, UnixMillis};
use serde::{Deserialize, Serialize};

const RULE: Rule = Rule { id: "off_hours", version: 1 };
/// Requests held per session (the finding names at most this many).
const MAX_SESSION: usize = 100;

/// Off-hours requests in flight per principal (their event ids).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    sessions: Keyed<Window<String>>,
    sweep: Sweep,
}

#[derive(Debug)]
pub(crate) struct OffHours {
    cfg: OffHoursConfig,
    state: State,
}

impl OffHours {
    pub(crate) fn new(cfg: OffHoursConfig) -> Self {
        OffHours { cfg, state: State::default() }
    }
}

impl Detector for OffHours {
    fn rule(&self) -> Rule {
        RULE
    }

    fn on_decision(&mut self, cx: &Context<'_>, d: &AccessDecision, out: &mut Vec<Finding>) {
        if !learns_from(d) {
            return;
        }
        let Some(profile) = cx.principal else { return };
        if profile.assess_hours_after(d.time, cx.profile, self.cfg.min_history) != Assessment::OffHours
            || !profile.deep_off_hours(d.time)
            || profile.hour_observed_days(d.time) < i64::from(self.cfg.min_observed_days)
        {
            return;
        }
        let window = i64::try_from(self.cfg.window.as_millis()).unwrap_or(i64::MAX);
        let t = d.time.0;
        if let Some(horizon) = self.state.sweep.tick(t, window) {
            self.state.sessions.retain(|_, s| s.live_at(horizon));
        }
        let s = self.state.sessions.entry(&principal_key(&d.principal), self.cfg.max_principals, Window::default);
        if s.add(t, d.event_id.clone(), window, MAX_SESSION) == Added::Ongoing {
            return;
        }
        let n = u32::try_from(s.len()).unwrap_or(u32::MAX);
        let expected = profile.hourly_rate(d.time) * window as f64 / 3_600_000.0;
        let p = poisson_at_least(n, expected);
        if n < self.cfg.min_events || p >= self.cfg.max_probability {
            return;
        }
        s.report(window);
        let (first, newest) = (s.first(), s.newest());
        out.push(
            Draft::about(RULE, self.cfg.severity, &principal_key(&d.principal), d)
                .window(UnixMillis(first), UnixMillis(newest))
                .events(s.items().map(String::as_str))
                .summary(format!(
                    "{} made {} requests between {} and {}, outside their usual hours ({})",
                    d.principal,
                    s.len(),
                    clock_time(UnixMillis(first)),
                    clock_time(UnixMillis(newest)),
                    profile.usual_hours()
                ))
                .evidence("requests", s.len())
                .evidence("expected_requests", format!("{expected:.2}"))
                .evidence("probability", format!("{p:.1e}"))
                .evidence("usual_hours", profile.usual_hours())
                .evidence("settled_events", profile.settled_events())
                .finish(),
        );
    }

    fn save(&self) -> Result<Vec<u8>, CheckpointError> {
        save_state(&self.state)
    }

    fn load(&mut self, state: &[u8]) -> Result<(), CheckpointError> {
        self.state = load_state(RULE, state)?;
        Ok(())
    }

    fn tracked(&self) -> usize {
        self.state.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{DAY, HOUR, Harness, MONDAY, assert_deterministic, decision};

    /// Ten days of 09–16 UTC work, eight requests a day.
    fn history() -> Vec<AccessDecision> {
        (0..10)
            .flat_map(|day| {
                (9..17).map(move |h| decision("frank@example.com", MONDAY + day * DAY + h * HOUR, "192.0.2.6", "IN"))
            })
            .collect()
    }

    fn night(minutes: &[i64]) -> Vec<AccessDecision> {
        minutes
            .iter()
            .map(|m| decision("frank@example.com", MONDAY + 11 * DAY + 2 * HOUR + m * 60_000, "192.0.2.6", "IN"))
            .collect()
    }

    #[test]
    fn a_night_session_fires_once_and_a_stray_request_does_not() {
        let mut h = Harness::default();
        let mut det = OffHours::new(OffHoursConfig::default());
        h.feed_all(&mut det, &history());
        assert!(h.feed_all(&mut det, &night(&[0, 10, 15, 20])).is_empty(), "4 < min_events");
        let f = h.feed_all(&mut det, &night(&[30, 40, 50]));
        assert_eq!(f.len(), 1, "the fifth within the hour fires, later ones join the session");
        assert_eq!(f[0].event_ids.len(), 5);
        assert_eq!(f[0].dedup_key, "off_hours:frank@example.com");
        assert!(f[0].summary.contains("09:00–16:59 UTC"), "{}", f[0].summary);
    }

    #[test]
    fn requests_spread_wider_than_the_window_do_not_fire() {
        let mut h = Harness::default();
        let mut det = OffHours::new(OffHoursConfig::default());
        h.feed_all(&mut det, &history());
        assert!(h.feed_all(&mut det, &night(&[0, 31, 62, 93, 124, 155])).is_empty());
    }

    #[test]
    fn usual_hours_and_unknown_profiles_never_fire() {
        let mut h = Harness::default();
        let mut det = OffHours::new(OffHoursConfig::default());
        let fresh: Vec<_> =
            (0..10).map(|m| decision("new@example.com", MONDAY + 3 * HOUR + m * 60_000, "192.0.2.1", "US")).collect();
        assert!(h.feed_all(&mut det, &fresh).is_empty(), "no settled history");
        h.feed_all(&mut det, &history());
        let day: Vec<_> = (0..10)
            .map(|m| decision("frank@example.com", MONDAY + 11 * DAY + 10 * HOUR + m * 60_000, "192.0.2.6", "IN"))
            .collect();
        assert!(h.feed_all(&mut det, &day).is_empty());
    }

    #[test]
    fn deterministic() {
        let mut stream = history();
        stream.extend(night(&[0, 5, 10, 15, 20, 25, 200, 205, 210, 215, 220]));
        let f = assert_deterministic(|| Box::new(OffHours::new(OffHoursConfig::default())), &stream);
        assert_eq!(f.len(), 2);
    }
}
