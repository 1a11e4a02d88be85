//! [`TimeWindow`]: how far an event's time may lie from when gatelog received it.
//!
//! A timestamp far from its arrival is a broken clock, a unit mix-up or a forged line, never
//! evidence worth a partition of its own: years 0000, 1900 or 9999 cannot be stored as they
//! were written (ClickHouse 18.16's `DateTime` holds 1970–2106 only, so they became 1970 or
//! time 0), and each distant month or day costs a ClickHouse partition and an index folder
//! that retention and search may never see. A mapped line whose decisions or raw record have
//! a time outside `[received_at − max_age, received_at + max_lead]` (and never before
//! 1970-01-01 or after 2105-12-31) is therefore a dead letter naming the time and the window,
//! never a decision. The default window is 10 years back and 1 day ahead: a backfill of old
//! Logpush files and a sender whose clock runs a little fast both pass.

use crate::LineOutcome;
use gatelog_model::{DeadLetter, UnixMillis};
use std::time::Duration;

/// 10 years of 365.25 days: what `humantime` reads `"10years"` as.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(315_576_000);
/// One day.
pub const DEFAULT_MAX_LEAD: Duration = Duration::from_secs(86_400);

/// The earliest time any store of gatelog's holds as written: 1970-01-01.
const EARLIEST: i64 = 0;
/// The latest: 2105-12-31T23:59:59.999Z, inside ClickHouse 18.16's `DateTime` (to 2106-02-07).
const LATEST: i64 = 4_291_747_199_999;

/// The accepted distance of an event's time from its `received_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// How far back from `received_at` an event may lie.
    pub max_age: Duration,
    /// How far ahead of `received_at` an event may lie (clock skew).
    pub max_lead: Duration,
}

impl Default for TimeWindow {
    fn default() -> Self {
        TimeWindow { max_age: DEFAULT_MAX_AGE, max_lead: DEFAULT_MAX_LEAD }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl TimeWindow {
    /// The first and last accepted millisecond for events received at `received_at`.
    pub fn bounds(&self, received_at: UnixMillis) -> (UnixMillis, UnixMillis) {
        let from = received_at.0.saturating_sub(millis(self.max_age)).clamp(EARLIEST, LATEST);
        let to = received_at.0.saturating_add(millis(self.max_lead)).clamp(EARLIEST, LATEST);
        (UnixMillis(from), UnixMillis(to))
    }

    /// `None` when `time` is inside the window, else the reason, naming time and window.
    pub fn check(&self, received_at: UnixMillis, time: UnixMillis) -> Option<String> {
        let (from, to) = self.bounds(received_at);
        if (from..=to).contains(&time) {
            return None;
        }
        let side = if time < from { "before" } else { "after" };
        Some(format!(
            "event time {} is {side} the accepted window {from} .. {to} (received at {received_at}; \
             at most {} back and {} ahead)",
            describe(time),
            humantime::format_duration(self.max_age),
            humantime::format_duration(self.max_lead),
        ))
    }

    /// A mapped line whose times are all inside the window passes unchanged; otherwise it
    /// becomes a dead letter (with `origin` and `line_no`) naming the first time outside.
    pub fn apply(&self, outcome: LineOutcome, origin: &str, line_no: u64) -> LineOutcome {
        let LineOutcome::Mapped { decisions, raw, warnings } = outcome else { return outcome };
        let received_at = raw.received_at;
        let times = std::iter::once(raw.time).chain(decisions.iter().map(|d| d.time));
        match times.filter_map(|t| self.check(received_at, t)).next() {
            None => LineOutcome::Mapped { decisions, raw, warnings },
            Some(reason) => LineOutcome::Dead(DeadLetter {
                dataset: raw.dataset,
                received_at,
                origin: origin.to_owned(),
                line_no,
                line: raw.line,
                sha256: raw.sha256,
                error: format!("line {line_no}: {reason}"),
            }),
        }
    }
}

/// A time as RFC 3339 when the calendar has it, else as epoch milliseconds.
fn describe(time: UnixMillis) -> String {
    let text = time.to_rfc3339();
    if text.ends_with('Z') { text } else { format!("{} ms since 1970", time.0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_model::RawRecord;

    const NOW: UnixMillis = UnixMillis(1_764_806_400_000); // 2025-12-04

    fn mapped(time: i64) -> LineOutcome {
        let raw = RawRecord::new("e".into(), "http_requests", NOW, UnixMillis(time), "{\"a\":1}");
        LineOutcome::Mapped { decisions: Vec::new(), raw, warnings: Vec::new() }
    }

    #[test]
    fn inside_passes_and_outside_names_time_and_window() {
        let w = TimeWindow::default();
        assert!(w.check(NOW, NOW).is_none());
        assert!(w.check(NOW, UnixMillis(NOW.0 + 3_600_000)).is_none());
        assert!(w.check(NOW, UnixMillis(NOW.0 - 9 * 365 * 86_400_000)).is_none());
        let ahead = w.check(NOW, UnixMillis(NOW.0 + 2 * 86_400_000)).unwrap();
        assert!(ahead.contains("2025-12-06") && ahead.contains("after") && ahead.contains("1day"), "{ahead}");
        let old = w.check(NOW, UnixMillis(-2_208_988_800_000)).unwrap(); // 1900-01-01
        assert!(old.contains("1900-01-01") && old.contains("before"), "{old}");
        assert!(w.check(NOW, UnixMillis(253_402_300_799_000)).unwrap().contains("9999-12-31"));
        assert!(w.check(NOW, UnixMillis(i64::MIN)).unwrap().contains("ms since 1970"));
    }

    #[test]
    fn bounds_never_leave_what_clickhouse_holds() {
        let w = TimeWindow { max_age: Duration::from_secs(u64::MAX / 4), max_lead: Duration::from_secs(u64::MAX / 4) };
        assert_eq!(w.bounds(NOW), (UnixMillis(EARLIEST), UnixMillis(LATEST)));
        assert!(w.check(NOW, UnixMillis(-1)).is_some(), "before 1970 is never stored");
    }

    #[test]
    fn apply_turns_a_line_out_of_the_window_into_a_dead_letter() {
        let w = TimeWindow::default();
        assert!(matches!(w.apply(mapped(NOW.0), "o", 3), LineOutcome::Mapped { .. }));
        let LineOutcome::Dead(dead) = w.apply(mapped(0), "o", 3) else { panic!("not dead") };
        assert_eq!((dead.line.as_str(), dead.line_no, dead.origin.as_str()), ("{\"a\":1}", 3, "o"));
        assert!(dead.error.starts_with("line 3: event time 1970-01-01"), "{}", dead.error);
        assert!(matches!(w.apply(LineOutcome::Blank, "o", 1), LineOutcome::Blank));
    }
}
