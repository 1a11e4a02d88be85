//! Sliding windows of recent events per key, shared by the rules that report bursts
//! (`deny_burst_*`, `off_hours`, `dlp_exfil`).
//!
//! A [`Window`] keeps one key's recent events in time order (a late event is put in place),
//! those within `window` of the newest and at most `cap` of them, and whether a burst of them
//! is being reported: once [`Window::report`]ed, every event within `window` of the previous
//! one extends that burst instead of starting another. [`Sweep`] says when to drop keys whose
//! windows went quiet, as event time moves on.

use crate::keyed::Recency;
use gatelog_model::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// What an added event means for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// It extends a burst already reported.
    Ongoing,
    /// No burst is being reported: the caller judges [`Window::len`] and may report one.
    Open,
}

/// One key's recent events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Window<T> {
    recent: VecDeque<(i64, T)>,
    reported_until: Option<i64>,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Window { recent: VecDeque::new(), reported_until: None }
    }
}

impl<T> Recency for Window<T> {
    fn last_seen(&self) -> UnixMillis {
        UnixMillis(self.recent.back().map_or(i64::MIN, |x| x.0))
    }
}

impl<T> Window<T> {
    /// Adds an event at `t`, keeping the events within `window` ms of the newest (at most `cap`).
    pub(crate) fn add(&mut self, t: i64, item: T, window: i64, cap: usize) -> Added {
        let at = self.recent.partition_point(|x| x.0 <= t);
        self.recent.insert(at, (t, item));
        let newest = self.newest();
        while self.recent.len() > cap.max(1) || self.recent.front().is_some_and(|x| x.0 < newest.saturating_sub(window))
        {
            self.recent.pop_front();
        }
        if let Some(until) = self.reported_until {
            if t <= until {
                self.reported_until = Some(until.max(t.saturating_add(window)));
                return Added::Ongoing;
            }
            self.reported_until = None;
        }
        Added::Open
    }

    /// Marks the events held as a reported burst, lasting while events keep coming within
    /// `window` of each other.
    pub(crate) fn report(&mut self, window: i64) {
        self.reported_until = Some(self.newest().saturating_add(window));
    }

    pub(crate) fn len(&self) -> usize {
        self.recent.len()
    }

    pub(crate) fn first(&self) -> i64 {
        self.recent.front().map_or(i64::MIN, |x| x.0)
    }

    pub(crate) fn newest(&self) -> i64 {
        self.recent.back().map_or(i64::MIN, |x| x.0)
    }

    pub(crate) fn items(&self) -> impl Iterator<Item = &T> {
        self.recent.iter().map(|x| &x.1)
    }

    /// Whether the window still matters at `horizon` (an event or a reported burst since).
    pub(crate) fn live_at(&self, horizon: i64) -> bool {
        self.newest() >= horizon || self.reported_until.is_some_and(|u| u >= horizon)
    }
}

/// When to sweep quiet keys: every 1024 events, everything older than `window` before the
/// newest event seen.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Sweep {
    newest: i64,
    since: u32,
}

impl Sweep {
    /// Counts an event at `t`; every 1024th returns the horizon below which keys are quiet.
    pub(crate) fn tick(&mut self, t: i64, window: i64) -> Option<i64> {
        self.newest = self.newest.max(t);
        self.since += 1;
        if self.since < 1024 {
            return None;
        }
        self.since = 0;
        Some(self.newest.saturating_sub(window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_window_in_order_and_reports_a_burst_once() {
        let mut w: Window<u32> = Window::default();
        for (t, i) in [(30, 3), (10, 1), (20, 2)] {
            assert_eq!(w.add(t, i, 100, 10), Added::Open);
        }
        assert_eq!(w.items().copied().collect::<Vec<_>>(), vec![1, 2, 3], "late events in place");
        w.report(100);
        assert_eq!(w.add(120, 4, 100, 10), Added::Ongoing);
        assert_eq!(w.first(), 20, "10 is more than 100 before 120");
        assert_eq!(w.add(221, 5, 100, 10), Added::Open, "a quiet window ends the burst");
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn the_cap_bounds_a_window() {
        let mut w: Window<u32> = Window::default();
        for t in 0..50 {
            w.add(t, 0, 1_000, 8);
        }
        assert_eq!((w.len(), w.first()), (8, 42));
        assert!(w.live_at(49) && !w.live_at(50));
    }

    #[test]
    fn sweeps_every_1024_events() {
        let mut s = Sweep::default();
        for t in 0..1023 {
            assert_eq!(s.tick(t, 10), None);
        }
        assert_eq!(s.tick(5_000, 10), Some(4_990));
    }
}
