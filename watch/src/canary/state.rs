//! The canary's local state, `<data_dir>/detect/canary.json`: when gatelog first started
//! (the first canary goes an interval later), when the last canary went, and the run in
//! flight, with its verdict once judged. Written atomically (new file, fsync, rename,
//! directory fsync) before each step that could be cut short, so a run in flight when
//! `gatelog serve` stops is judged after the restart, never forgotten.

use gatelog_store::sql::canary::CanaryRun;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A run between its send and its record in `canary_runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub run_id: String,
    pub event_id: String,
    /// When the send began (ms).
    pub attempted_at_ms: i64,
    /// When the receiver answered 2xx (ms); `None` until it did.
    pub sent_at_ms: Option<i64>,
    pub deadline_ms: i64,
    /// The row to record, once judged (recorded again after a crash: one row per run).
    pub verdict: Option<CanaryRun>,
}

/// See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryState {
    pub first_start_ms: i64,
    pub last_sent_ms: Option<i64>,
    pub inflight: Option<InFlight>,
}

/// The state file's path under a data dir.
pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("detect").join("canary.json")
}

/// Why the state file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("canary state {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("canary state {path} is not a canary state: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

impl CanaryState {
    /// The state at `path`; `None` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<CanaryState>, StateError> {
        let io = |source| StateError::Io { path: path.to_owned(), source };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StateError::Corrupt { path: path.to_owned(), detail: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io { path: path.to_owned(), source };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = path.with_extension("json.new");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        assert_eq!(CanaryState::load(&path).unwrap(), None);
        let s = CanaryState {
            first_start_ms: 1,
            last_sent_ms: Some(2),
            inflight: Some(InFlight {
                run_id: "r".into(),
                event_id: "canary-r".into(),
                attempted_at_ms: 2,
                sent_at_ms: None,
                deadline_ms: 300_000,
                verdict: Some(CanaryRun { run_id: "r".into(), outcome: "ok".into(), ..CanaryRun::default() }),
            }),
        };
        s.save(&path).unwrap();
        assert_eq!(CanaryState::load(&path).unwrap(), Some(s));
        std::fs::write(&path, b"{").unwrap();
        assert!(matches!(CanaryState::load(&path), Err(StateError::Corrupt { .. })));
    }
}
