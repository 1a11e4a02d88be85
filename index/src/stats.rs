//! [`IndexSinkStats`]: what the index sink ([`crate::run_sink`]) has committed, shared with
//! whoever exports it (the binary's `/metrics`).
//!
//! Everything counts committed work only: documents added but not yet in a complete commit
//! round are invisible to searchers and may be replayed, so they are not "indexed" yet.
//!
//! # Lag in seconds
//!
//! [`IndexSinkStats::lag_seconds`] is the age of the oldest spool record the index has not
//! committed: 0 once the committed position covers the spool's last record; otherwise now
//! minus the `received_at` of the first record after the position, which the sink thread
//! notes as soon as it decodes that record. In the moment between a commit and decoding the
//! next record, the `received_at` of the newest committed record stands in (an upper bound:
//! records are received in roughly spool order). Unknown (no record seen yet): `None`.

use gatelog_model::UnixMillis;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Counters and gauges of one index sink. All fields only grow, except the gauges noted.
#[derive(Debug, Default)]
pub struct IndexSinkStats {
    /// Gauge: the spool position of the last complete commit round (what the sink acked).
    pub position: AtomicU64,
    /// Commit rounds the sink ran (each one followed by a spool `ack`).
    pub commits: AtomicU64,
    /// Spool records (batches) covered by those commits.
    pub batches: AtomicU64,
    /// Decisions added to the index and committed. A replayed decision replaces its
    /// document and counts again, like a re-sent row in ClickHouse.
    pub decisions: AtomicU64,
    /// Gauge: `received_at` (ms since the epoch) of the newest committed batch; 0: none yet.
    pub last_received_at_ms: AtomicU64,
    /// Gauge: `received_at` (ms) of the oldest batch decoded but not committed; 0: none.
    pub oldest_pending_received_at_ms: AtomicU64,
    /// Committed decisions by the batch's dataset.
    by_dataset: Mutex<BTreeMap<String, u64>>,
}

/// What the sink thread has added since its last commit round.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    batches: u64,
    decisions: u64,
    newest_received_at_ms: u64,
    by_dataset: BTreeMap<String, u64>,
}

fn millis(at: UnixMillis) -> u64 {
    u64::try_from(at.0).unwrap_or(0)
}

impl IndexSinkStats {
    /// Committed decisions by dataset (the batch's `dataset`), in name order.
    pub fn decisions_by_dataset(&self) -> BTreeMap<String, u64> {
        self.by_dataset.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The lag in seconds at `now` for a spool whose last record is `spool_last_seq` (see
    /// the module docs); `None` while unknown.
    pub fn lag_seconds(&self, spool_last_seq: u64, now: UnixMillis) -> Option<f64> {
        if self.position.load(Ordering::Relaxed) >= spool_last_seq {
            return Some(0.0);
        }
        let oldest = match self.oldest_pending_received_at_ms.load(Ordering::Relaxed) {
            0 => self.last_received_at_ms.load(Ordering::Relaxed),
            pending => pending,
        };
        let oldest = i64::try_from(oldest).ok().filter(|ms| *ms > 0)?;
        Some((now.0 - oldest).max(0) as f64 / 1000.0)
    }

    /// The sink decoded a batch received at `received_at` with `decisions` added for `dataset`.
    pub(crate) fn added(&self, pending: &mut Pending, dataset: &str, received_at: UnixMillis, decisions: u64) {
        if pending.batches == 0 {
            self.oldest_pending_received_at_ms.store(millis(received_at), Ordering::Relaxed);
        }
        pending.batches += 1;
        pending.decisions += decisions;
        pending.newest_received_at_ms = pending.newest_received_at_ms.max(millis(received_at));
        if decisions > 0 {
            *pending.by_dataset.entry(dataset.to_owned()).or_default() += decisions;
        }
    }

    /// A commit round up to `position` made `pending` durable.
    pub(crate) fn committed(&self, pending: Pending, position: u64) {
        {
            let mut by_dataset = self.by_dataset.lock().unwrap_or_else(PoisonError::into_inner);
            for (dataset, n) in pending.by_dataset {
                *by_dataset.entry(dataset).or_default() += n;
            }
        }
        self.decisions.fetch_add(pending.decisions, Ordering::Relaxed);
        self.batches.fetch_add(pending.batches, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        if pending.newest_received_at_ms > 0 {
            self.last_received_at_ms.store(pending.newest_received_at_ms, Ordering::Relaxed);
        }
        self.position.store(position, Ordering::Relaxed);
        self.oldest_pending_received_at_ms.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_zero_when_caught_up_and_the_oldest_pending_age_otherwise() {
        let stats = IndexSinkStats::default();
        assert_eq!(stats.lag_seconds(0, UnixMillis(5_000)), Some(0.0));
        assert_eq!(stats.lag_seconds(1, UnixMillis(5_000)), None, "nothing seen yet");

        let mut pending = Pending::default();
        stats.added(&mut pending, "http_requests", UnixMillis(1_000), 3);
        stats.added(&mut pending, "tail", UnixMillis(2_000), 2);
        assert_eq!(stats.lag_seconds(2, UnixMillis(5_000)), Some(4.0), "age of the first uncommitted record");
        stats.committed(pending, 2);
        assert_eq!(stats.lag_seconds(2, UnixMillis(5_000)), Some(0.0));
        assert_eq!(stats.lag_seconds(3, UnixMillis(5_000)), Some(3.0), "the newest committed record stands in");

        assert_eq!(stats.decisions.load(Ordering::Relaxed), 5);
        assert_eq!(stats.batches.load(Ordering::Relaxed), 2);
        assert_eq!(stats.commits.load(Ordering::Relaxed), 1);
        let by_dataset: Vec<(String, u64)> = stats.decisions_by_dataset().into_iter().collect();
        assert_eq!(by_dataset, [("http_requests".to_owned(), 3), ("tail".to_owned(), 2)]);
    }
}
