//! [`IndexSinkStats`]: what the index sink ([`crate::run_sink`]) has committed, shared with
//! whoever exports it (the binary's `/metrics`). Its position, lag and state are its
//! consumer's [`gatelog_consumer::Status`].
//!
//! Everything counts committed work only: documents added but not yet in a complete commit
//! round are invisible to searchers and may be replayed, so they are not "indexed" yet.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Counters of one index sink; they only grow.
#[derive(Debug, Default)]
pub struct IndexSinkStats {
    /// Commit rounds the sink ran (each one followed by a spool `ack`).
    pub commits: AtomicU64,
    /// Spool records (batches) covered by those commits.
    pub batches: AtomicU64,
    /// Decisions added to the index and committed. A replayed decision replaces its
    /// document and counts again, like a re-sent row in ClickHouse.
    pub decisions: AtomicU64,
    /// Committed decisions by the batch's dataset.
    by_dataset: Mutex<BTreeMap<String, u64>>,
}

/// What the sink thread has added since its last commit round.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    batches: u64,
    decisions: u64,
    by_dataset: BTreeMap<String, u64>,
}

impl Pending {
    /// A batch of `dataset` with `decisions` added.
    pub(crate) fn added(&mut self, dataset: &str, decisions: u64) {
        self.batches += 1;
        self.decisions += decisions;
        if decisions > 0 {
            *self.by_dataset.entry(dataset.to_owned()).or_default() += decisions;
        }
    }
}

impl IndexSinkStats {
    /// Committed decisions by dataset (the batch's `dataset`), in name order.
    pub fn decisions_by_dataset(&self) -> BTreeMap<String, u64> {
        self.by_dataset.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A commit round made `pending` durable.
    pub(crate) fn committed(&self, pending: Pending) {
        {
            let mut by_dataset = self.by_dataset.lock().unwrap_or_else(PoisonError::into_inner);
            for (dataset, n) in pending.by_dataset {
                *by_dataset.entry(dataset).or_default() += n;
            }
        }
        self.decisions.fetch_add(pending.decisions, Ordering::Relaxed);
        self.batches.fetch_add(pending.batches, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_what_a_round_committed() {
        let stats = IndexSinkStats::default();
        let mut pending = Pending::default();
        pending.added("http_requests", 3);
        pending.added("tail", 2);
        pending.added("tail", 0);
        assert_eq!(stats.decisions.load(Ordering::Relaxed), 0, "nothing before the round");
        stats.committed(pending);
        assert_eq!(stats.decisions.load(Ordering::Relaxed), 5);
        assert_eq!(stats.batches.load(Ordering::Relaxed), 3);
        assert_eq!(stats.commits.load(Ordering::Relaxed), 1);
        let by_dataset: Vec<(String, u64)> = stats.decisions_by_dataset().into_iter().collect();
        assert_eq!(by_dataset, [("http_requests".to_owned(), 3), ("tail".to_owned(), 2)]);
    }
}
