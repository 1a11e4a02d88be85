//! Counters and the fsync latency histogram. Plain atomics; the binary reads a
//! [`MetricsSnapshot`] and renders it however it likes (Prometheus text, logs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the fsync latency histogram buckets; a final `+Inf` bucket follows.
pub const FSYNC_BUCKETS_SECS: [f64; 14] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    appends: AtomicU64,
    append_bytes: AtomicU64,
    append_errors: AtomicU64,
    full_rejections: AtomicU64,
    group_commits: AtomicU64,
    fsyncs: AtomicU64,
    fsync_nanos: AtomicU64,
    fsync_buckets: [AtomicU64; FSYNC_BUCKETS_SECS.len() + 1],
    segments_created: AtomicU64,
    segments_deleted: AtomicU64,
    segments_preallocated: AtomicU64,
    torn_tail_truncations: AtomicU64,
}

impl Metrics {
    pub(crate) fn appended(&self, records: u64, bytes: u64) {
        self.appends.fetch_add(records, Ordering::Relaxed);
        self.append_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.group_commits.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn append_failed(&self, records: u64) {
        self.append_errors.fetch_add(records, Ordering::Relaxed);
    }
    pub(crate) fn full(&self) {
        self.full_rejections.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn fsync(&self, took: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.fsync_nanos.fetch_add(nanos, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let idx = FSYNC_BUCKETS_SECS.iter().position(|b| secs <= *b).unwrap_or(FSYNC_BUCKETS_SECS.len());
        self.fsync_buckets[idx].fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn segment_created(&self) {
        self.segments_created.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn segments_deleted(&self, n: u64) {
        self.segments_deleted.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn segment_preallocated(&self) {
        self.segments_preallocated.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn torn_tail(&self) {
        self.torn_tail_truncations.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            appends: get(&self.appends),
            append_bytes: get(&self.append_bytes),
            append_errors: get(&self.append_errors),
            full_rejections: get(&self.full_rejections),
            group_commits: get(&self.group_commits),
            fsyncs: get(&self.fsyncs),
            fsync_latency: Histogram {
                bounds_secs: &FSYNC_BUCKETS_SECS,
                counts: self.fsync_buckets.iter().map(get).collect(),
                sum_secs: get(&self.fsync_nanos) as f64 / 1e9,
                count: get(&self.fsyncs),
            },
            segments_created: get(&self.segments_created),
            segments_deleted: get(&self.segments_deleted),
            segments_preallocated: get(&self.segments_preallocated),
            torn_tail_truncations: get(&self.torn_tail_truncations),
        }
    }
}

/// A point-in-time copy of the spool's counters (monotonic since `open`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// Records made durable and acknowledged to callers.
    pub appends: u64,
    /// Payload bytes of those records (without headers).
    pub append_bytes: u64,
    /// Appends that failed (I/O, disk full; not counting `Full`).
    pub append_errors: u64,
    /// Appends refused with `SpoolError::Full`.
    pub full_rejections: u64,
    /// Group commits (one write + at most one fsync each).
    pub group_commits: u64,
    /// Data fsyncs (directory fsyncs are not counted).
    pub fsyncs: u64,
    /// Latency of data fsyncs.
    pub fsync_latency: Histogram,
    pub segments_created: u64,
    pub segments_deleted: u64,
    /// Segments started on a preallocated spare (the rest grew as they were written).
    pub segments_preallocated: u64,
    /// Torn tails cut at `open`.
    pub torn_tail_truncations: u64,
}

/// A cumulative-ready histogram: `counts[i]` is the number of observations in
/// `(bounds_secs[i-1], bounds_secs[i]]`, and the last count is the `+Inf` bucket (not cumulative).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub bounds_secs: &'static [f64],
    pub counts: Vec<u64>,
    pub sum_secs: f64,
    pub count: u64,
}

impl Histogram {
    /// An upper bound on the `q` quantile (0..=1): the bound of the bucket that holds it.
    pub fn quantile_upper_bound(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let target = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Some(self.bounds_secs.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets() {
        let m = Metrics::default();
        m.fsync(Duration::from_micros(10));
        m.fsync(Duration::from_micros(700));
        m.fsync(Duration::from_secs(3));
        let s = m.snapshot();
        assert_eq!(s.fsyncs, 3);
        assert_eq!(s.fsync_latency.counts[0], 1);
        assert_eq!(s.fsync_latency.counts[4], 1);
        assert_eq!(s.fsync_latency.counts[FSYNC_BUCKETS_SECS.len()], 1);
        assert_eq!(s.fsync_latency.quantile_upper_bound(0.5), Some(0.001));
        assert_eq!(s.fsync_latency.quantile_upper_bound(1.0), Some(f64::INFINITY));
    }
}
