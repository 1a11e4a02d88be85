//! How many UTC days one batch may fan out into.
//!
//! Every day a batch's events fall on is a folder of the tantivy index, and days in different
//! months are different ClickHouse partitions (`toYYYYMM(time)`): one body spanning 1,600
//! months cost 1,601 partitions and 97 s of catching up. The time window
//! ([`crate::TimeWindow`]) already keeps every day within a few thousand of `received_at`;
//! this bounds a batch to `receiver.max_days_per_batch` of them. A body that spans more is
//! mapped again, keeping the lines of its busiest days (by lines; on a tie the later day)
//! and turning the lines of the others into dead letters that say so. A Logpush, Tail or
//! proxy batch normally spans one or two days, so this costs nothing but for bad input.

use crate::LineOutcome;
use gatelog_model::{DeadLetter, UnixMillis};
use std::collections::{BTreeMap, BTreeSet};

const DAY_MS: i64 = 86_400_000;

/// The UTC day of a time, as days since 1970-01-01.
pub(super) fn day_of(t: UnixMillis) -> i64 {
    t.0.div_euclid(DAY_MS)
}

/// Lines per day (a line with events on two days counts for both).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct DayCounts(BTreeMap<i64, u64>);

impl DayCounts {
    /// Counts one line with its raw record's time and its decisions' times.
    pub(super) fn count_line(&mut self, raw: UnixMillis, decisions: impl Iterator<Item = UnixMillis>) {
        let mut days: Vec<i64> = std::iter::once(raw).chain(decisions).map(day_of).collect();
        days.sort_unstable();
        days.dedup();
        for day in days {
            *self.0.entry(day).or_default() += 1;
        }
    }

    pub(super) fn merge(&mut self, other: &DayCounts) {
        for (day, n) in &other.0 {
            *self.0.entry(*day).or_default() += n;
        }
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// The `keep` days with the most lines (on a tie, the later day).
    pub(super) fn busiest(&self, keep: usize) -> BTreeSet<i64> {
        let mut by_lines: Vec<(u64, i64)> = self.0.iter().map(|(day, n)| (*n, *day)).collect();
        by_lines.sort_unstable_by(|a, b| b.cmp(a));
        by_lines.into_iter().take(keep).map(|(_, day)| day).collect()
    }
}

/// A mapped line whose events all fall on `allowed` days passes; otherwise it becomes a dead
/// letter naming its day.
pub(super) fn restrict(outcome: LineOutcome, allowed: &BTreeSet<i64>, origin: &str, line_no: u64) -> LineOutcome {
    let LineOutcome::Mapped { decisions, raw, warnings } = outcome else { return outcome };
    let outside =
        std::iter::once(raw.time).chain(decisions.iter().map(|d| d.time)).find(|t| !allowed.contains(&day_of(*t)));
    let Some(time) = outside else { return LineOutcome::Mapped { decisions, raw, warnings } };
    let day = time.to_rfc3339().get(..10).map(str::to_owned).unwrap_or_else(|| time.0.to_string());
    LineOutcome::Dead(DeadLetter {
        dataset: raw.dataset,
        received_at: raw.received_at,
        origin: origin.to_owned(),
        line_no,
        line: raw.line,
        sha256: raw.sha256,
        error: format!(
            "line {line_no}: its event day {day} is not among the {} busiest days of this batch, which spans more \
             days than a batch may (receiver.max_days_per_batch); send events of distant days in batches of their own",
            allowed.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_model::RawRecord;

    fn at(day: i64) -> UnixMillis {
        UnixMillis(day * DAY_MS + 1234)
    }

    #[test]
    fn counts_lines_per_day_and_keeps_the_busiest() {
        let mut counts = DayCounts::default();
        counts.count_line(at(10), [at(10), at(11)].into_iter());
        counts.count_line(at(11), std::iter::empty());
        counts.count_line(at(-3), std::iter::empty());
        let mut other = DayCounts::default();
        other.count_line(at(12), std::iter::empty());
        counts.merge(&other);
        assert_eq!(counts.len(), 4);
        assert_eq!(counts.busiest(1), BTreeSet::from([11]));
        assert_eq!(counts.busiest(2), BTreeSet::from([11, 12]), "the tie goes to the later day");
        assert_eq!(day_of(UnixMillis(-1)), -1, "before 1970 rounds down");
    }

    #[test]
    fn a_line_of_another_day_becomes_a_dead_letter_naming_it() {
        let line = |day| LineOutcome::Mapped {
            decisions: Vec::new(),
            raw: RawRecord::new("e".into(), "tail", at(20_000), at(day), "{}"),
            warnings: Vec::new(),
        };
        let allowed = BTreeSet::from([20_000]);
        assert!(matches!(restrict(line(20_000), &allowed, "tail", 1), LineOutcome::Mapped { .. }));
        let LineOutcome::Dead(dead) = restrict(line(20_001), &allowed, "tail", 7) else { panic!("kept") };
        assert!(
            dead.error.starts_with("line 7: its event day 2024-10-05 is not among the 1 busiest"),
            "{}",
            dead.error
        );
        assert_eq!((dead.line_no, dead.origin.as_str(), dead.line.as_str()), (7, "tail", "{}"));
    }
}
