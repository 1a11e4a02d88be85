//! The engine's checkpoint: everything that determines future findings, as bytes the
//! runtime stores with its spool position.
//!
//! Format: `GLD1`, a little-endian `u32` format number ([`FORMAT`]), then the postcard
//! encoding of a [`Snapshot`]: the engine's counters and recent ids, and per tenant the
//! baselines and each detector's state tagged with its rule id and version. On restore, a
//! detector whose saved version differs from the running one (or that was not saved) starts
//! fresh, and [`RestoreReport`] says so; anything else that does not decode is an error.

use crate::baseline::Baselines;
use crate::recent::RecentIds;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"GLD1";

/// The snapshot layout this build writes and reads.
pub const FORMAT: u32 = 1;

/// Why a checkpoint cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a detector checkpoint (starts {found:02x?}, expected \"GLD1\")")]
    BadMagic { found: Vec<u8> },
    #[error("detector checkpoint format {found} is not supported (this build reads format {FORMAT})")]
    Format { found: u32 },
    #[error("detector checkpoint does not decode: {0}")]
    Decode(String),
    #[error("detector state does not encode: {0}")]
    Encode(String),
}

/// What a restore could not carry over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// `<tenant>/<rule id>: <why>` for every detector that starts with empty state.
    pub fresh: Vec<String>,
}

/// Counters of what the engine saw, kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Decisions judged (duplicates and skipped tenants not included).
    pub decisions: u64,
    /// Decisions skipped because their event id was seen within `dedup_window`.
    pub duplicates: u64,
    /// Batches skipped because their batch id was seen before.
    pub duplicate_batches: u64,
    /// Decisions of tenants beyond `max_tenants`.
    pub skipped_tenant: u64,
    /// Findings raised (not counting warm-up).
    pub findings: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) stats: EngineStats,
    pub(crate) recent: RecentIds,
    pub(crate) batches: RecentIds,
    pub(crate) shards: Vec<ShardSnapshot>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ShardSnapshot {
    pub(crate) tenant: String,
    pub(crate) baselines: Baselines,
    pub(crate) detectors: Vec<DetectorSnapshot>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DetectorSnapshot {
    pub(crate) rule_id: String,
    pub(crate) rule_version: u32,
    pub(crate) state: Vec<u8>,
}

pub(crate) fn encode(snapshot: &Snapshot) -> Result<Vec<u8>, CheckpointError> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&FORMAT.to_le_bytes());
    postcard::to_io(snapshot, &mut out).map_err(|e| CheckpointError::Encode(e.to_string()))?;
    Ok(out)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Snapshot, CheckpointError> {
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| CheckpointError::BadMagic { found: bytes.iter().take(4).copied().collect() })?;
    let (format, body) =
        body.split_first_chunk::<4>().ok_or_else(|| CheckpointError::Decode("no format number".into()))?;
    let format = u32::from_le_bytes(*format);
    if format != FORMAT {
        return Err(CheckpointError::Format { found: format });
    }
    let mut snapshot: Snapshot = postcard::from_bytes(body).map_err(|e| CheckpointError::Decode(e.to_string()))?;
    snapshot.recent.rebuild();
    snapshot.batches.rebuild();
    Ok(snapshot)
}
