//! [`HourProfile`]: when a principal is usually active, as an hour-of-week histogram, and
//! whether a moment is off-hours for them.
//!
//! Counts are kept per UTC hour of the week (Monday 00:00 UTC is hour 0), so no time zone
//! has to be known: a principal's working day shows up as a run of busy hours wherever they
//! are. A day's activity is *pending* until a later day starts; only *settled* days are
//! judged against, so an intruder active at 3 a.m. cannot make 3 a.m. normal within the
//! same day.
//!
//! Judgement ([`HourProfile::assess`]), once the caller's minimum of events is settled
//! (`profile.min_events` for evidence, each detector's own where it judges by hours):
//! - **hour of day**: the moment is off-hours when its hour lies outside the shortest
//!   circular run of hours that holds `active_share` of the settled events (e.g. 80%: the
//!   principal's working day, whatever their zone), widened by the neighbouring hours that
//!   are as busy as its quieter edge and half its average (so a flat day is not cut short
//!   by the share, while thin tails stay out), plus
//!   `margin_hours` on each side (a late evening is not a night) — and only if the hours
//!   outside are, on average, quieter than `quiet_share` of the usual ones (a principal
//!   busy around the clock, like a service, has no off-hours; judged over all outside
//!   hours at once, so one stray night in a short history does not make that hour usual);
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
    /// Cached: bit `h` set when UTC hour `h` is off-hours.
    off_mask: u32,
    /// Cached: bit `h` set when hour `h` is off-hours and, with its neighbours, itself
    /// quieter than `quiet_share` of an average usual hour (the dead of night, not an
    /// evening that runs late).
    deep_mask: u32,
    /// The hour (since the epoch) of the first event, and the last settled day: which
    /// hours the settled days could have seen activity in.
    first_hour: i64,
    last_settled_day: i64,
}

impl HourProfile {
    /// Counts an event at `t`.
    pub(crate) fn record(&mut self, t: UnixMillis, cfg: &ProfileConfig) {
        let day = day_of(t);
        let hour_index = t.0.div_euclid(HOUR_MS);
        if self.pending.is_empty() {
            self.pending = vec![0; 24];
            self.pending_day = day;
            self.first_hour = hour_index;
        }
        self.first_hour = self.first_hour.min(hour_index);
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
            self.refresh(cfg);
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

    /// Whether `t` is off-hours and its hour is itself quiet for the principal (see
    /// `deep_mask`); meaningful once many events are settled.
    pub(crate) fn deep_off_hours(&self, t: UnixMillis) -> bool {
        self.deep_mask & (1 << hour_of_day(t)) != 0
    }

    /// The principal's usual number of events per hour at `t`'s hour of the day: settled
    /// events at that hour over the days it was observed (0 when never observed).
    pub(crate) fn hourly_rate(&self, t: UnixMillis) -> f64 {
        let days = self.observed_days(t);
        if days <= 0 {
            return 0.0;
        }
        let hour = hour_of_day(t);
        let n: u32 = (0..7).map(|d| u32::from(self.settled[d * 24 + hour])).sum();
        f64::from(n) / days as f64
    }

    /// On how many settled days the principal was already known at `t`'s hour of day: the
    /// first day does not count for the hours before its first event. An hour never
    /// observed is quiet for lack of observation, not by habit.
    pub(crate) fn observed_days(&self, t: UnixMillis) -> i64 {
        if self.settled.is_empty() {
            return 0;
        }
        let first_day = self.first_hour.div_euclid(24);
        let days = self.last_settled_day - first_day + 1;
        let first_hour_of_day = usize::try_from(self.first_hour.rem_euclid(24)).unwrap_or(0);
        if hour_of_day(t) < first_hour_of_day { days - 1 } else { days }
    }

    /// Whether `t` is off-hours for this profile (see the module docs).
    pub(crate) fn assess(&self, t: UnixMillis, cfg: &ProfileConfig, min_settled: u32) -> Assessment {
        if self.active.is_none() || self.settled_events < min_settled.max(1) {
            return Assessment::Unknown;
        }
        if self.off_mask & (1 << hour_of_day(t)) != 0 {
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
        self.refresh(cfg);
    }

    fn add_settled(&mut self, day: i64, counts: &[(usize, u16)]) {
        if self.settled.is_empty() {
            self.settled = vec![0; 168];
            self.first_day = day;
            self.last_settled_day = day;
        }
        self.first_day = self.first_day.min(day);
        self.last_settled_day = self.last_settled_day.max(day);
        let base = weekday(day) * 24;
        for &(hour, n) in counts {
            if self.settled[base + hour].checked_add(n).is_none() {
                self.settled.iter_mut().for_each(|c| *c /= 2);
            }
            self.settled[base + hour] = self.settled[base + hour].saturating_add(n);
        }
        self.settled_events = self.settled.iter().map(|&c| u32::from(c)).sum();
    }

    /// Recomputes the usual run and the off-hours mask from the settled counts.
    fn refresh(&mut self, cfg: &ProfileConfig) {
        let hod = self.hour_of_day_counts();
        self.active = active_run(&hod, cfg.active_share);
        self.off_mask = 0;
        self.deep_mask = 0;
        let Some((start, len)) = self.active else { return };
        let (start, len) = (usize::from(start), usize::from(len));
        let margin = usize::try_from(cfg.margin_hours).unwrap_or(0).min(6);
        if len + 2 * margin >= 24 {
            return;
        }
        let outside = |hour: usize| (hour + 24 + margin - start) % 24 >= len + 2 * margin;
        let (mut events_in, mut events_out, mut hours_out) = (0u32, 0u32, 0u32);
        for (hour, &n) in hod.iter().enumerate() {
            if outside(hour) {
                events_out += n;
                hours_out += 1;
            } else {
                events_in += n;
            }
        }
        let density_in = f64::from(events_in) / f64::from(24 - hours_out);
        let density_out = f64::from(events_out) / f64::from(hours_out.max(1));
        if density_out < cfg.quiet_share * density_in {
            self.off_mask = (0..24).filter(|&h| outside(h)).fold(0, |mask, h| mask | 1 << h);
            let run_mean = (0..len).map(|k| f64::from(hod[(start + k) % 24])).sum::<f64>() / len as f64;
            let around = |h: usize| f64::from(hod[(h + 23) % 24] + hod[h] + hod[(h + 1) % 24]) / 3.0;
            self.deep_mask = (0..24)
                .filter(|&h| self.off_mask & (1 << h) != 0 && around(h) < cfg.quiet_share * run_mean)
                .fold(0, |mask, h| mask | 1 << h);
        }
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
        // Sliding sums: the run starting at `start` is the previous one minus its first hour
        // plus the hour after it.
        let mut sum: u32 = hod[..len].iter().sum();
        for start in 0..24 {
            if start > 0 {
                sum = sum - hod[start - 1] + hod[(start + len - 1) % 24];
            }
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

/// Grows a run by the hours next to it that are as busy as its quieter edge and at least
/// half as busy as its average hour, so a flat working day is not cut short by the share
/// (ten equally busy hours at 80% would lose two) while a day's thin tails stay outside.
fn widen(hod: &[u32; 24], mut start: usize, mut len: usize) -> (usize, usize) {
    while len < 24 {
        let sum: u32 = (0..len).map(|k| hod[(start + k) % 24]).sum();
        let bar = hod[start].min(hod[(start + len - 1) % 24]).max(sum.div_ceil(2 * u32::try_from(len).unwrap_or(1)));
        let (left, right) = (hod[(start + 23) % 24], hod[(start + len) % 24]);
        if right > 0 && right >= bar {
            len += 1;
        } else if left > 0 && left >= bar {
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
        assert_eq!(p.assess(at(0, 3), &cfg(), 20), Assessment::Unknown, "day 0 is still pending");
        p.roll(at(1, 0), &cfg());
        assert_eq!(p.settled_events(), 10);
        assert_eq!(p.assess(at(1, 3), &cfg(), 20), Assessment::Unknown, "below min_events");
    }

    #[test]
    fn the_working_day_is_usual_and_the_night_is_not() {
        let mut p = office_worker(5);
        p.roll(at(7, 0), &cfg());
        assert_eq!(p.describe(), "08:00–17:59 UTC");
        assert_eq!(p.assess(at(7, 9), &cfg(), 20), Assessment::Usual);
        assert_eq!(p.assess(at(7, 17), &cfg(), 20), Assessment::Usual);
        assert_eq!(p.assess(at(7, 18), &cfg(), 20), Assessment::Usual, "within margin_hours of the edge");
        assert_eq!(p.assess(at(7, 7), &cfg(), 20), Assessment::Usual, "within margin_hours of the start");
        assert_eq!(p.assess(at(7, 19), &cfg(), 20), Assessment::OffHours, "just past the margin");
        assert_eq!(p.assess(at(7, 6), &cfg(), 20), Assessment::OffHours);
        assert_eq!(p.assess(at(7, 3), &cfg(), 20), Assessment::OffHours);
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
        assert_eq!(p.assess(at(5, 23), &cfg(), 20), Assessment::Usual);
        assert_eq!(p.assess(at(5, 1), &cfg(), 20), Assessment::Usual);
        assert_eq!(p.assess(at(5, 12), &cfg(), 20), Assessment::OffHours);
        assert_eq!(p.assess(at(5, 3), &cfg(), 20), Assessment::Usual, "margin after 02:59");
        assert_eq!(p.assess(at(5, 4), &cfg(), 20), Assessment::OffHours);
    }

    #[test]
    fn hours_before_the_first_event_are_not_observed_on_the_first_day() {
        let mut p = HourProfile::default();
        for hour in 14..18 {
            p.record(at(0, hour), &cfg());
        }
        assert_eq!(p.observed_days(at(1, 3)), 0, "nothing settled");
        p.roll(at(1, 3), &cfg());
        assert_eq!(p.observed_days(at(1, 3)), 0, "03:00 was before the first event of day 0");
        assert_eq!(p.observed_days(at(1, 15)), 1);
        p.record(at(1, 9), &cfg());
        p.roll(at(2, 3), &cfg());
        assert_eq!(p.observed_days(at(2, 3)), 1, "day 1 saw 03:00");
        assert_eq!(p.observed_days(at(2, 15)), 2);
    }

    #[test]
    fn round_the_clock_activity_has_no_off_hours() {
        let mut p = HourProfile::default();
        for day in 0..3 {
            for hour in 0..24 {
                for k in 0..(3 + (hour * 7 + day) % 4) {
                    p.record(UnixMillis(at(day, hour).0 + k * 60_000), &cfg());
                }
            }
        }
        p.roll(at(3, 0), &cfg());
        for hour in 0..24 {
            assert_eq!(p.assess(at(3, hour), &cfg(), 20), Assessment::Usual, "{hour}:00");
        }
    }

    #[test]
    fn a_stray_hour_does_not_widen_the_usual_hours() {
        let mut p = office_worker(5);
        p.record(at(4, 3), &cfg()); // one 3 a.m. event among 50
        p.roll(at(7, 0), &cfg());
        assert_eq!(p.assess(at(7, 3), &cfg(), 20), Assessment::OffHours);
    }

    #[test]
    fn todays_activity_does_not_make_itself_usual() {
        let mut p = office_worker(5);
        p.roll(at(7, 0), &cfg());
        for minute in 0..30 {
            p.record(UnixMillis(at(7, 3).0 + minute * 60_000), &cfg());
        }
        assert_eq!(p.assess(at(7, 3), &cfg(), 20), Assessment::OffHours);
    }

    #[test]
    fn weekends_are_off_hours_once_two_weeks_are_known() {
        let mut p = office_worker(14);
        p.roll(at(15, 0), &cfg());
        assert_eq!(p.assess(at(19, 10), &cfg(), 20), Assessment::OffHours, "Saturday 10:00");
        assert_eq!(p.assess(at(15, 10), &cfg(), 20), Assessment::Usual, "Tuesday 10:00");
        let mut short = office_worker(5);
        short.roll(at(5, 0), &cfg());
        assert_eq!(short.assess(at(5, 10), &cfg(), 20), Assessment::Usual, "one week: weekday rule not yet");
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
        assert_eq!(p.assess(at(28, 9), &cfg(), 20), Assessment::Usual, "a Monday, like the history");
    }
}
