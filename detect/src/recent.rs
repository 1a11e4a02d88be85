//! [`RecentIds`]: the ids seen lately, so one decision arriving twice is counted once.
//!
//! The same decision reaches the spool more than once: a Worker's `access_decision` comes by
//! Tail within seconds and again in `workers_trace_events` minutes later (one event id,
//! [`EventId::for_decision`](gatelog_model::EventId::for_decision)), and Logpush retries a
//! batch it got no 2xx for. ClickHouse deduplicates rows; detectors must not count them
//! twice either. The set holds [`stable_hash`](crate::keyed::stable_hash)es of the ids seen
//! within `window` of the newest event time (and at most `capacity`), oldest dropped first.

use crate::keyed::FixedSet;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Recently seen id hashes, in arrival order, with their event times.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RecentIds {
    order: VecDeque<(i64, u64)>,
    /// Rebuilt from `order` after a restore.
    #[serde(skip)]
    set: FixedSet<u64>,
    /// The newest event time seen (ms).
    newest: i64,
}

impl RecentIds {
    /// Records `hash` at `time_ms`; `true` if it was already there (a duplicate).
    pub(crate) fn seen(&mut self, hash: u64, time_ms: i64, window_ms: i64, capacity: usize) -> bool {
        if self.set.contains(&hash) {
            return true;
        }
        self.newest = self.newest.max(time_ms);
        let horizon = self.newest.saturating_sub(window_ms);
        while let Some(&(t, h)) = self.order.front() {
            if t >= horizon && self.order.len() < capacity.max(1) {
                break;
            }
            self.order.pop_front();
            self.set.remove(&h);
        }
        self.order.push_back((time_ms, hash));
        self.set.insert(hash);
        false
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Rebuilds the lookup set after deserialisation.
    pub(crate) fn rebuild(&mut self) {
        self.set = self.order.iter().map(|&(_, h)| h).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_within_the_window_are_seen() {
        let mut r = RecentIds::default();
        assert!(!r.seen(1, 1_000, 60_000, 100));
        assert!(r.seen(1, 50_000, 60_000, 100));
        assert!(!r.seen(2, 200_000, 60_000, 100), "moves the horizon past id 1");
        assert!(!r.seen(1, 200_001, 60_000, 100), "forgotten after the window");
    }

    #[test]
    fn capacity_bounds_memory() {
        let mut r = RecentIds::default();
        for i in 0..1000 {
            r.seen(i, 0, i64::MAX, 64);
            assert!(r.len() <= 64);
        }
        assert!(r.seen(999, 0, i64::MAX, 64));
        assert!(!r.seen(0, 0, i64::MAX, 64));
    }

    #[test]
    fn survives_serialisation() {
        let mut r = RecentIds::default();
        r.seen(7, 10, 100, 10);
        let mut back: RecentIds = postcard::from_bytes(&postcard::to_allocvec(&r).unwrap()).unwrap();
        back.rebuild();
        assert!(back.seen(7, 11, 100, 10));
    }
}
