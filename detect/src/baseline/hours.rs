//! [`HourProfile`]: when a principal is usually active, as an hour-of-week histogram, and
//! whether a moment is off-hours for them.
//!
//! Counts are kept per UTC hour of the week (Monday 00:00 UTC is hour 0), so no time zone
//! has to be known: a principal's working day shows up as a run of busy hours wherever they
//! are. A day's activity is *pending* until a later day starts; only *settled* days are
//! judged against, so an intruder active at 3 a.m. cannot make 3 a.m. normal within the
//! same day.
//!
//! Judgement ([`HourProfile::assess`]), once `min_events` events are settled:
//! - **hour of day**: the moment is off-hours when its hour lies outside the shortest
//!   circular run of hours that holds `active_share` of the settled events (e.g. 90%: the
//!   principal's working day, whatever their zone), widened by the neighbouring hours that
//!   are as busy as its quieter edge (so a flat day is not cut short by the share);
//! - **day of week**: once the settled history spans `weekday_min_span`, a weekday that
//!   holds less than `weekday_min_share` of the events (a weekend for a weekday worker) is
//!   off-hours at any hour.
//!
//! Counts are `u16`; when one would overflow, all are halved, which also lets old habits
//! fade.

use crate::config::ProfileConfig;
use gatelog_model::UnixMillis;
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Days since the epoch (UTC).
pub(crate) fn day_of(t: UnixMillis) -> i64 {
    t.0.div_euclid(DAY_MS)
}

/// Hour of the UTC day, 0–23.
pub(crate) fn hour_of_day(t: UnixMillis) -> usize {
    usize::try_from(t.0.div_euclid(HOUR_MS).rem_euclid(24)).unwrap_or(0)
}

/// Monday = 0 … Sunday = 6 (1970-01-01 was a Thursday).
pub(crate) fn weekday(day: i64) -> usize {
    usize::try_from((day + 3).rem_euclid(7)).unwrap_or(0)
}

/// What a principal's profile says about a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assessment {
    /// Too little settled history to tell.
    Unknown,
    /// Within the principal's usual hours.
    Usual,
    /// Outside them.
    OffHours,
}

impl Assessment {
    /// `off`, `usual` or `unknown`, for evidence fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Assessment::Unknown => "unknown",
            Assessment::Usual => "usual",
            Assessment::OffHours => "off",
        }
    }
}

/// An hour-of-week activity histogram with a pending (current) day.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct HourProfile {
    /// 168 counts once anything settled, else empty.
    settled: Vec<u16>,
    settled_events: u32,
    /// The first settled day (for the weekday rule's span).
    first_day: i64,
    /// Counts per UTC hour of `pending_day`; empty before the first event.
    pending: Vec<u16>,
    pending_day: i64,
    /// Cached (start hour, length) of the active run of hours; `None` before anything settled.
    active: Option<(u8, u8)>,
}

impl HourProfile {
    /// Counts an event at `t`.
    pub(crate) fn record(&mut self, t: UnixMillis, cfg: &ProfileConfig) {
        let day = day_of(t);
        if self.pending.is_empty() {
            self.pending = vec![0; 24];
            self.pending_day = day;
        }
        if day > self.pending_day {
            self.settle(cfg);
            self.pending_day = day;
        }
        let hour = hour_of_day(t);
        if day == self.pending_day {
            self.pending[hour] = self.pending[hour].saturating_add(1);
        } else {
            // A late event of a day already settled.
            self.add_settled(day, &[(hour, 1)]);
            self.active = active_run(&self.hour_of_day_counts(), cfg.active_share);
        }
    }

    /// Settles the pending day if `t` is on a later day, so a judgement at `t` counts it.
    pub(crate) fn roll(&mut self, t: UnixMillis, cfg: &ProfileConfig) {
        if !self.pending.is_empty() && day_of(t) > self.pending_day {
            self.settle(cfg);
            self.pending_day = day_of(t);
        }
    }

    /// Events judged against (settled days only).
    pub(crate) fn settled_events(&self) -> u32 {
        self.settled_events
    }

    /// Whether `t` is off-hours for this profile (see the module docs).
    pub(crate) fn assess(&self, t: UnixMillis, cfg: &ProfileConfig) -> Assessment {
        let Some((start, len)) = self.active else { return Assessment::Unknown };
        if self.settled_events < cfg.min_events {
            return Assessment::Unknown;
        }
        let hour = hour_of_day(t);
        if (hour + 24 - usize::from(start)) % 24 >= usize::from(len) {
            return Assessment::OffHours;
        }
        let day = day_of(t);
        let span_days = day.max(self.pending_day) - self.first_day;
        if span_days.saturating_mul(DAY_MS) >= millis(cfg.weekday_min_span) {
            let on_that_day: u32 = self.settled[weekday(day) * 24..][..24].iter().map(|&c| u32::from(c)).sum();
            if f64::from(on_that_day) < cfg.weekday_min_share * f64::from(self.settled_events) {
                return Assessment::OffHours;
            }
        }
        Assessment::Usual
    }

    /// The usual hours, e.g. `07:00–20:59 UTC`, or `unknown`.
    pub(crate) fn describe(&self) -> String {
        match self.active {
            Some((start, len)) => {
                let end = (usize::from(start) + usize::from(len) + 23) % 24;
                format!("{start:02}:00–{end:02}:59 UTC")
            }
            None => "unknown".to_owned(),
        }
    }

    fn settle(&mut self, cfg: &ProfileConfig) {
        let counts: Vec<(usize, u16)> =
            self.pending.iter().enumerate().filter(|(_, c)| **c > 0).map(|(h, c)| (h, *c)).collect();
        if counts.is_empty() {
            return;
        }
        self.add_settled(self.pending_day, &counts);
        self.pending.iter_mut().for_each(|c| *c = 0);
        self.active = active_run(&self.hour_of_day_counts(), cfg.active_share);
    }

    fn add_settled(&mut self, day: i64, counts: &[(usize, u16)]) {
        if self.settled.is_empty() {
            self.settled = vec![0; 168];
            self.first_day = day;
        }
        self.first_day = self.first_day.min(day);
        let base = weekday(day) * 24;
        for &(hour, n) in counts {
            if self.settled[base + hour].checked_add(n).is_none() {
                self.settled.iter_mut().for_each(|c| *c /= 2);
            }
            self.settled[base + hour] = self.settled[base + hour].saturating_add(n);
        }
        self.settled_events = self.settled.iter().map(|&c| u32::from(c)).sum();
    }

    fn hour_of_day_counts(&self) -> [u32; 24] {
        let mut hod = [0u32; 24];
        for (i, &c) in self.settled.iter().enumerate() {
            hod[i % 24] += u32::from(c);
        }
        hod
    }
}

/// The shortest circular run of hours holding at least `share` of the events (the busiest
/// such run; ties go to the earliest start).
fn active_run(hod: &[u32; 24], share: f64) -> Option<(u8, u8)> {
    let total: u32 = hod.iter().sum();
    if total == 0 {
        return None;
    }
    let target = (share * f64::from(total)).ceil().max(1.0);
    for len in 1..=24usize {
        let mut best: Option<(u32, usize)> = None;
        for start in 0..24 {
            let sum: u32 = (0..len).map(|k| hod[(start + k) % 24]).sum();
            if best.is_none_or(|(b, _)| sum > b) {
                best = Some((sum, start));
            }
        }
        if let Some((sum, start)) = best
            && f64::from(sum) >= target
        {
            let (start, len) = widen(hod, start, len);
            return Some((u8::try_from(start).ok()?, u8::try_from(len).ok()?));
        }
    }
    Some((0, 24))
}

/// Grows a run by the hours next to it that are as busy as its quieter edge, so a flat
/// working day is not cut short by the share (ten equally busy hours at 90% would lose one).
fn widen(hod: &[u32; 24], mut start: usize, mut len: usize) -> (usize, usize) {
    while len < 24 {
        let edge = hod[start].min(hod[(start + len - 1) % 24]);
        let (left, right) = (hod[(start + 23) % 24], hod[(start + len) % 24]);
        if right > 0 && right >= edge {
            len += 1;
        } else if left > 0 && left >= edge {
            start = (start + 23) % 24;
            len += 1;
        } else {
            break;
        }
    }
    (start, len)
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONDAY: i64 = 1_741_564_800_000; // 2025-03-10T00:00:00Z

    fn at(day: i64, hour: i64) -> UnixMillis {
        UnixMillis(MONDAY + day * DAY_MS + hour * HOUR_MS)
    }

    fn cfg() -> ProfileConfig {
        ProfileConfig::default()
    }

    /// A principal working 08–17 UTC on weekdays for `days` days, ten events a day.
    fn office_worker(days: i64) -> HourProfile {
        let mut p = HourProfile::default();
        for day in 0..days {
            if weekday(day_of(at(day, 0))) >= 5 {
                continue;
            }
            for hour in 8..18 {
                p.record(at(day, hour), &cfg());
            }
        }
        p
    }

    #[test]
    fn calendar_helpers() {
        assert_eq!(weekday(day_of(at(0, 0))), 0, "2025-03-10 is a Monday");
        assert_eq!(weekday(day_of(at(6, 23))), 6);
        assert_eq!(hour_of_day(at(3, 17)), 17);
        assert_eq!(hour_of_day(UnixMillis(-1)), 23);
    }

    #[test]
    fn nothing_is_judged_before_enough_is_settled() {
        let mut p = HourProfile::default();
        for hour in 8..18 {
            p.record(at(0, hour), &cfg());
        }
        assert_eq!(p.assess(at(0, 3), &cfg()), Assessment::Unknown, "day 0 is still pending");
        p.roll(at(1, 0), &cfg());
        assert_eq!(p.settled_events(), 10);
        assert_eq!(p.assess(at(1, 3), &cfg()), Assessment::Unknown, "below min_events");
    }

    #[test]
    fn the_working_day_is_usual_and_the_night_is_not() {
        let mut p = office_worker(5);
        p.roll(at(7, 0), &cfg());
        assert_eq!(p.describe(), "08:00–17:59 UTC");
        assert_eq!(p.assess(at(7, 9), &cfg()), Assessment::Usual);
        assert_eq!(p.assess(at(7, 17), &cfg()), Assessment::Usual);
        assert_eq!(p.assess(at(7, 18), &cfg()), Assessment::OffHours, "just past the edge");
        assert_eq!(p.assess(at(7, 3), &cfg()), Assessment::OffHours);
    }

    #[test]
    fn the_run_wraps_around_midnight() {
        let mut p = HourProfile::default();
        for day in 0..4 {
            for hour in [22, 23, 0, 1, 2] {
                p.record(at(day, hour), &cfg());
            }
        }
        p.roll(at(5, 0), &cfg());
        assert_eq!(p.assess(at(5, 23), &cfg()), Assessment::Usual);
        assert_eq!(p.assess(at(5, 1), &cfg()), Assessment::Usual);
        assert_eq!(p.assess(at(5, 12), &cfg()), Assessment::OffHours);
    }

    #[test]
    fn a_stray_hour_does_not_widen_the_usual_hours() {
        let mut p = office_worker(5);
        p.record(at(4, 3), &cfg()); // one 3 a.m. event among 50
        p.roll(at(7, 0), &cfg());
        assert_eq!(p.assess(at(7, 3), &cfg()), Assessment::OffHours);
    }

    #[test]
    fn todays_activity_does_not_make_itself_usual() {
        let mut p = office_worker(5);
        p.roll(at(7, 0), &cfg());
        for minute in 0..30 {
            p.record(UnixMillis(at(7, 3).0 + minute * 60_000), &cfg());
        }
        assert_eq!(p.assess(at(7, 3), &cfg()), Assessment::OffHours);
    }

    #[test]
    fn weekends_are_off_hours_once_two_weeks_are_known() {
        let mut p = office_worker(14);
        p.roll(at(15, 0), &cfg());
        assert_eq!(p.assess(at(19, 10), &cfg()), Assessment::OffHours, "Saturday 10:00");
        assert_eq!(p.assess(at(15, 10), &cfg()), Assessment::Usual, "Tuesday 10:00");
        let mut short = office_worker(5);
        short.roll(at(5, 0), &cfg());
        assert_eq!(short.assess(at(5, 10), &cfg()), Assessment::Usual, "one week: weekday rule not yet");
    }

    #[test]
    fn counts_halve_instead_of_overflowing() {
        let mut p = HourProfile::default();
        for day in 0..3 {
            for _ in 0..40_000 {
                p.record(at(day * 7, 9), &cfg());
            }
        }
        p.roll(at(28, 0), &cfg());
        assert!(p.settled_events() < 70_000);
        assert_eq!(p.assess(at(28, 9), &cfg()), Assessment::Usual, "a Monday, like the history");
    }
}
