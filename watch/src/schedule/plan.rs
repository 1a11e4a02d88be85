//! Which window a scheduled rule runs next: pure arithmetic over epoch milliseconds.
//!
//! A rule with `schedule` S and `window` W judges windows of arrival time `[to - W, to)`
//! whose `to` is a multiple of S (since the epoch, UTC). A window is *due* once `to` is at
//! most `due_until`: the present minus `detect.sql_rules.lag`, and no later than the
//! instant before which ClickHouse holds every arrival (the ClickHouse sink's position).
//! After the last completed window's end `done`, the next is the first multiple of S above
//! it; with no completed window (a new rule, or a new version), the newest due one. Missed
//! windows run oldest first, back to `max_catch_up` before the newest due one.

/// What to do next for one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run `[from, to)`. `skipped`: arrivals `[from, to)` no window will judge (they lie
    /// beyond `max_catch_up`), to be named in a warning.
    Run { from: i64, to: i64, skipped: Option<(i64, i64)> },
    /// Nothing is due before the window ending at `to` is.
    Wait { to: i64 },
}

/// The latest multiple of `step` at or below `t`.
pub fn align_down(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

/// See the module docs. `schedule`, `window` and `max_catch_up` are in ms (schedule > 0).
pub fn next_window(schedule: i64, window: i64, max_catch_up: i64, done: Option<i64>, due_until: i64) -> Next {
    let schedule = schedule.max(1);
    let newest = align_down(due_until, schedule);
    let Some(done) = done else {
        return Next::Run { from: newest - window, to: newest, skipped: None };
    };
    let next = align_down(done, schedule) + schedule;
    if next > newest {
        return Next::Wait { to: next };
    }
    let oldest = newest - align_down(max_catch_up, schedule);
    if next >= oldest {
        return Next::Run { from: next - window, to: next, skipped: None };
    }
    // Windows ending before `oldest` are skipped; what they alone would have judged is the
    // arrivals from `done` to the start of the first window that runs.
    let skipped = (done < oldest - window).then_some((done, oldest - window));
    Next::Run { from: oldest - window, to: oldest, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    #[test]
    fn a_new_rule_runs_the_newest_due_window() {
        assert_eq!(
            next_window(15 * M, 60 * M, 1440 * M, None, 100 * M + 5),
            Next::Run { from: 30 * M, to: 90 * M, skipped: None }
        );
    }

    #[test]
    fn windows_follow_the_last_completed_one_and_wait_for_the_next() {
        assert_eq!(next_window(15 * M, 60 * M, 1440 * M, Some(90 * M), 100 * M), Next::Wait { to: 105 * M });
        assert_eq!(
            next_window(15 * M, 60 * M, 1440 * M, Some(90 * M), 105 * M),
            Next::Run { from: 45 * M, to: 105 * M, skipped: None }
        );
        // A completed end off the grid (the schedule changed) continues on the grid.
        assert_eq!(
            next_window(15 * M, 60 * M, 1440 * M, Some(92 * M), 200 * M),
            Next::Run { from: 45 * M, to: 105 * M, skipped: None }
        );
    }

    #[test]
    fn after_downtime_missed_windows_run_oldest_first_within_the_bound() {
        // Down from 90m to 1000m: every window since runs, oldest first.
        let first = next_window(15 * M, 60 * M, 1440 * M, Some(90 * M), 1000 * M);
        assert_eq!(first, Next::Run { from: 45 * M, to: 105 * M, skipped: None });
        // Beyond the bound (2h): the first window that runs ends 2h before the newest due
        // one, and the arrivals between the last completed end and its start are named.
        let bounded = next_window(15 * M, 60 * M, 120 * M, Some(90 * M), 1000 * M);
        assert_eq!(bounded, Next::Run { from: 810 * M, to: 870 * M, skipped: Some((90 * M, 810 * M)) });
        // Just beyond it, the first window still covers every arrival: nothing skipped.
        let covered = next_window(15 * M, 60 * M, 120 * M, Some(840 * M), 1000 * M);
        assert_eq!(covered, Next::Run { from: 810 * M, to: 870 * M, skipped: None });
    }
}
