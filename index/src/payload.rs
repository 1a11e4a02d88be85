//! The commit payload each index carries, and how [`crate::Indexer::open`] recovers the
//! spool position from the payloads after a crash (the design is in [`crate::indexer`]).
//!
//! Payload (JSON in tantivy's `meta.json`):
//! `{"v":1,"round":7,"seq":1234,"prev":1200,"members":["decisions-20250303","position"]}`:
//! commit round 7 made everything up to spool record 1234 durable, the last complete round
//! before it had reached 1200, and these indexes were committed in round 7.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const VERSION: u32 = 1;

/// What one commit round wrote into the payload of each index it committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CommitPayload {
    pub v: u32,
    /// Round number, increasing by one per round, across restarts.
    pub round: u64,
    /// Every decision of every spool record ≤ `seq` is in the indexes once this round is complete.
    pub seq: u64,
    /// The position of the last complete round before this one.
    pub prev: u64,
    /// Folder names of the indexes committed in this round.
    pub members: Vec<String>,
}

impl CommitPayload {
    pub fn new(round: u64, seq: u64, prev: u64, members: Vec<String>) -> Self {
        CommitPayload { v: VERSION, round, seq, prev, members }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(text: &str) -> Result<CommitPayload, String> {
        let payload: CommitPayload = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if payload.v != VERSION {
            return Err(format!("payload version {} (expected {VERSION})", payload.v));
        }
        Ok(payload)
    }
}

/// Where to resume, from the payload of every index folder that exists (`None`: an index
/// that was never committed). Returns `(position, last_round)`.
///
/// The newest round (highest number) decides. It is complete when every member either
/// carries that round's payload or no longer exists (retention dropped it): resume after
/// its `seq`. Otherwise the crash interrupted it: resume after its `prev`, the last
/// complete round, and let the replay (delete-then-add by `event_id`) repair the members
/// that did commit.
pub(crate) fn recover(indexes: &BTreeMap<String, Option<CommitPayload>>) -> (u64, u64) {
    let newest = indexes.values().flatten().max_by_key(|p| p.round);
    let Some(newest) = newest else {
        return (0, 0);
    };
    let complete = newest.members.iter().all(|member| match indexes.get(member) {
        None => true,
        Some(Some(p)) => p.round == newest.round,
        Some(None) => false,
    });
    let position = if complete { newest.seq } else { newest.prev };
    (position, newest.round)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(round: u64, seq: u64, prev: u64, members: &[&str]) -> Option<CommitPayload> {
        Some(CommitPayload::new(round, seq, prev, members.iter().map(|m| m.to_string()).collect()))
    }

    fn map(entries: Vec<(&str, Option<CommitPayload>)>) -> BTreeMap<String, Option<CommitPayload>> {
        entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn empty_starts_at_zero() {
        assert_eq!(recover(&BTreeMap::new()), (0, 0));
        assert_eq!(recover(&map(vec![("a", None)])), (0, 0));
    }

    #[test]
    fn complete_round_resumes_after_its_seq() {
        let m =
            map(vec![("a", p(3, 30, 20, &["a", "b"])), ("b", p(3, 30, 20, &["a", "b"])), ("c", p(1, 5, 0, &["c"]))]);
        assert_eq!(recover(&m), (30, 3));
    }

    #[test]
    fn half_committed_round_resumes_after_prev() {
        let m = map(vec![("a", p(3, 30, 20, &["a", "b"])), ("b", p(2, 20, 10, &["b"]))]);
        assert_eq!(recover(&m), (20, 3));
        // A member created in the round but never committed.
        let m = map(vec![("a", p(3, 30, 20, &["a", "b"])), ("b", None)]);
        assert_eq!(recover(&m), (20, 3));
    }

    #[test]
    fn dropped_members_count_as_committed() {
        let m = map(vec![("a", p(3, 30, 20, &["a", "gone"]))]);
        assert_eq!(recover(&m), (30, 3));
    }

    #[test]
    fn payload_round_trips_and_rejects_foreign_text() {
        let payload = CommitPayload::new(1, 2, 0, vec!["x".into()]);
        assert_eq!(CommitPayload::decode(&payload.encode()).unwrap(), payload);
        assert!(CommitPayload::decode("hello").is_err());
        assert!(CommitPayload::decode(r#"{"v":9,"round":1,"seq":1,"prev":0,"members":[]}"#).is_err());
    }
}
