//! Completeness of ingest per dataset, from the batches of a period ([`BatchRow`]s of
//! [`super::Catalog::ingest_batches`]): what arrived, and every silence longer than an
//! allowed one ([`Gap`]), which a report prints beside the batches' IPE record and
//! [`gaps_reconciliation`] turns into a reconciliation.

use super::period::Period;
use super::rows::BatchRow;
use gatelog_model::{Reconciliation, UnixMillis};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A stretch with no batch of a dataset, longer than the allowed silence: from the last
/// arrival before it (or the period's start) to the next (or the period's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub from: UnixMillis,
    pub to: UnixMillis,
}

impl Gap {
    pub fn duration_ms(&self) -> i64 {
        self.to.0 - self.from.0
    }
}

/// What one dataset delivered in a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub dataset: String,
    pub batches: u64,
    pub lines: u64,
    pub decisions: u64,
    pub raw_records: u64,
    pub dead_letters: u64,
    pub probes: u64,
    pub bytes: u64,
    pub first_received: Option<UnixMillis>,
    pub last_received: Option<UnixMillis>,
    /// The event times the batches held.
    pub min_time: Option<UnixMillis>,
    pub max_time: Option<UnixMillis>,
    pub gaps: Vec<Gap>,
}

/// Per dataset (sorted by name), what `batches` delivered within `period` and the silences
/// longer than `max_silence`. Datasets in `expected` appear even when nothing arrived (one
/// gap over the whole period); batches received outside `period` are ignored.
pub fn coverage(period: Period, batches: &[BatchRow], expected: &[&str], max_silence: Duration) -> Vec<Coverage> {
    let mut by_dataset: BTreeMap<&str, Vec<&BatchRow>> = expected.iter().map(|d| (*d, Vec::new())).collect();
    for b in batches.iter().filter(|b| period.contains(UnixMillis(b.received_at_ms))) {
        by_dataset.entry(b.dataset.as_str()).or_default().push(b);
    }
    let allowed = i64::try_from(max_silence.as_millis()).unwrap_or(i64::MAX);
    by_dataset
        .into_iter()
        .map(|(dataset, mut rows)| {
            rows.sort_by(|a, b| (a.received_at_ms, &a.batch_id).cmp(&(b.received_at_ms, &b.batch_id)));
            let mut c = Coverage { dataset: dataset.to_owned(), ..Coverage::default() };
            let mut last = period.from();
            for b in &rows {
                c.batches += 1;
                c.lines += b.lines;
                c.decisions += b.decisions;
                c.raw_records += b.raw_records;
                c.dead_letters += b.dead_letters;
                c.probes += b.probes;
                c.bytes += b.bytes;
                let at = UnixMillis(b.received_at_ms);
                c.first_received.get_or_insert(at);
                c.last_received = Some(at);
                c.min_time = Some(c.min_time.map_or(UnixMillis(b.min_time_ms), |t| t.min(UnixMillis(b.min_time_ms))));
                c.max_time = Some(c.max_time.map_or(UnixMillis(b.max_time_ms), |t| t.max(UnixMillis(b.max_time_ms))));
                if at.0 - last.0 > allowed {
                    c.gaps.push(Gap { from: last, to: at });
                }
                last = at;
            }
            if period.to().0 - last.0 > allowed {
                c.gaps.push(Gap { from: last, to: period.to() });
            }
            c
        })
        .collect()
}

/// "The batches of the period have no gap": the number of silences longer than
/// `max_silence` over every dataset (expected 0), naming the datasets that had one.
pub fn gaps_reconciliation(coverage: &[Coverage], max_silence: Duration) -> Reconciliation {
    let gaps: usize = coverage.iter().map(|c| c.gaps.len()).sum();
    let silent: Vec<&str> = coverage.iter().filter(|c| !c.gaps.is_empty()).map(|c| c.dataset.as_str()).collect();
    let datasets: Vec<&str> = coverage.iter().map(|c| c.dataset.as_str()).collect();
    let mut description = format!(
        "silences longer than {} between batches of each dataset ({}), counted from ingest_batches",
        words(max_silence),
        datasets.join(", ")
    );
    if !silent.is_empty() {
        description.push_str(&format!("; with gaps: {}", silent.join(", ")));
    }
    Reconciliation {
        name: "ingest_has_no_gap".to_owned(),
        description,
        expected: "0".to_owned(),
        actual: gaps.to_string(),
        sql: None,
        passed: gaps == 0,
    }
}

/// `90m`, `2h`, `45s`: the largest whole unit.
fn words(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: &str, dataset: &str, at: i64, decisions: u64) -> BatchRow {
        BatchRow {
            batch_id: id.into(),
            dataset: dataset.into(),
            origin: String::new(),
            received_at_ms: at,
            lines: decisions + 1,
            decisions,
            raw_records: decisions,
            dead_letters: 1,
            probes: 0,
            min_time_ms: at - 10,
            max_time_ms: at - 1,
            bytes: 100,
            sha256: String::new(),
            spool_seq: 0,
        }
    }

    const MIN: i64 = 60_000;

    #[test]
    fn silences_longer_than_allowed_are_gaps() {
        let period = Period::new(UnixMillis(0), UnixMillis(60 * MIN)).unwrap();
        let rows = vec![
            batch("a3", "http_requests", 40 * MIN, 5),
            batch("a1", "http_requests", 4 * MIN, 2),
            batch("a2", "http_requests", 10 * MIN, 3),
            batch("late", "http_requests", 61 * MIN, 9),
            batch("f1", "firewall_events", 55 * MIN, 1),
        ];
        let c = coverage(period, &rows, &["audit_logs", "http_requests"], Duration::from_secs(15 * 60));
        let names: Vec<&str> = c.iter().map(|c| c.dataset.as_str()).collect();
        assert_eq!(names, ["audit_logs", "firewall_events", "http_requests"]);
        assert_eq!(c[0].gaps, [Gap { from: UnixMillis(0), to: UnixMillis(60 * MIN) }]);
        assert_eq!(c[0].batches, 0);
        assert_eq!(c[1].gaps, [Gap { from: UnixMillis(0), to: UnixMillis(55 * MIN) }]);
        let h = &c[2];
        assert_eq!((h.batches, h.decisions, h.lines, h.dead_letters), (3, 10, 13, 3));
        assert_eq!(
            h.gaps,
            [
                Gap { from: UnixMillis(10 * MIN), to: UnixMillis(40 * MIN) },
                Gap { from: UnixMillis(40 * MIN), to: UnixMillis(60 * MIN) }
            ]
        );
        assert_eq!((h.first_received, h.last_received), (Some(UnixMillis(4 * MIN)), Some(UnixMillis(40 * MIN))));
        assert_eq!((h.min_time, h.max_time), (Some(UnixMillis(4 * MIN - 10)), Some(UnixMillis(40 * MIN - 1))));

        let r = gaps_reconciliation(&c, Duration::from_secs(15 * 60));
        assert!(!r.passed && r.actual == "4", "{r:?}");
        assert!(r.description.contains("15m") && r.description.contains("with gaps: audit_logs, firewall_events"));
        let steady: Vec<BatchRow> = (0..6).map(|i| batch(&format!("s{i}"), "x", i * 10 * MIN, 1)).collect();
        let ok = coverage(period, &steady, &[], Duration::from_secs(10 * 60));
        assert!(ok[0].gaps.is_empty(), "{:?}", ok[0].gaps);
        assert!(gaps_reconciliation(&ok, Duration::from_secs(600)).passed);
    }
}
