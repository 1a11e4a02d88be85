//! [`Day`]: the UTC day that partitions the index. Each day is a folder
//! `<index_dir>/decisions-YYYYMMDD/` holding one tantivy index, so retention removes whole
//! folders and a search with a time range opens only the days it covers.

use crate::IndexError;
use gatelog_model::UnixMillis;
use std::fs;
use std::path::{Path, PathBuf};

const PREFIX: &str = "decisions-";
const MS_PER_DAY: i64 = 86_400_000;

/// A UTC calendar day, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i64);

impl Day {
    /// The day a timestamp falls on.
    pub fn of(time: UnixMillis) -> Day {
        Day(time.0.div_euclid(MS_PER_DAY))
    }

    /// The day from a calendar date; `None` when the date does not exist.
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Option<Day> {
        let month = time::Month::try_from(month).ok()?;
        let date = time::Date::from_calendar_date(year, month, day).ok()?;
        let midnight = date.midnight().assume_utc().unix_timestamp();
        Some(Day(midnight.div_euclid(86_400)))
    }

    /// First millisecond of the day.
    pub fn start(self) -> UnixMillis {
        UnixMillis(self.0.saturating_mul(MS_PER_DAY))
    }

    /// First millisecond of the next day.
    pub fn end(self) -> UnixMillis {
        UnixMillis(self.0.saturating_add(1).saturating_mul(MS_PER_DAY))
    }

    /// `YYYYMMDD`.
    pub fn ymd(self) -> String {
        match time::OffsetDateTime::from_unix_timestamp(self.0.saturating_mul(86_400)) {
            Ok(dt) => format!("{:04}{:02}{:02}", dt.year(), u8::from(dt.month()), dt.day()),
            Err(_) => format!("day{}", self.0),
        }
    }

    /// The folder name, `decisions-YYYYMMDD`.
    pub fn dir_name(self) -> String {
        format!("{PREFIX}{}", self.ymd())
    }

    /// Parses a folder name written by [`Day::dir_name`].
    pub fn parse_dir_name(name: &str) -> Option<Day> {
        let digits = name.strip_prefix(PREFIX)?;
        if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year = digits[0..4].parse().ok()?;
        let month = digits[4..6].parse().ok()?;
        let day = digits[6..8].parse().ok()?;
        Day::from_ymd(year, month, day)
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.ymd())
    }
}

/// The day folders under `dir`, oldest first. A missing `dir` has none.
pub fn list_days(dir: &Path) -> Result<Vec<(Day, PathBuf)>, IndexError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(IndexError::io("listing", dir)(e)),
    };
    let mut days = Vec::new();
    for entry in entries {
        let entry = entry.map_err(IndexError::io("listing", dir))?;
        let Some(day) = entry.file_name().to_str().and_then(Day::parse_dir_name) else {
            continue;
        };
        if entry.path().is_dir() {
            days.push((day, entry.path()));
        }
    }
    days.sort();
    Ok(days)
}

/// Deletes every day folder strictly before `before` and returns the days removed.
///
/// Safe while a [`crate::Searcher`] is open (it lists the folders on every search). With an
/// [`crate::Indexer`] running, use [`crate::Indexer::drop_before`] so its writers let go first.
pub fn drop_before(dir: &Path, before: Day) -> Result<Vec<Day>, IndexError> {
    let mut dropped = Vec::new();
    for (day, path) in list_days(dir)? {
        if day >= before {
            break;
        }
        fs::remove_dir_all(&path).map_err(IndexError::io("removing", &path))?;
        tracing::info!(day = %day, path = %path.display(), "dropped day index");
        dropped.push(day);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_through_folder_names() {
        let t = UnixMillis(1_740_960_000_123); // 2025-03-03T00:00:00.123Z
        let day = Day::of(t);
        assert_eq!(day.dir_name(), "decisions-20250303");
        assert_eq!(Day::parse_dir_name("decisions-20250303"), Some(day));
        assert_eq!(Day::from_ymd(2025, 3, 3), Some(day));
        assert!(day.start() <= t && t < day.end());
        assert_eq!(Day::of(UnixMillis(day.start().0 - 1)).ymd(), "20250302");
        assert_eq!(Day::parse_dir_name("decisions-20250230"), None);
        assert_eq!(Day::parse_dir_name("decisions-2025033"), None);
        assert_eq!(Day::of(UnixMillis(-1)).ymd(), "19691231");
    }
}
