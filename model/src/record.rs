//! What is kept besides decisions: the exact original line, and lines that could not be used.

use crate::UnixMillis;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// SHA-256 of bytes as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The exact original line as received, with its hash: the evidence a decision was mapped from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawRecord {
    /// The event id of the (first) decision mapped from this line, or a line-derived id.
    pub event_id: String,
    pub dataset: String,
    pub received_at: UnixMillis,
    /// When the event happened, as far as the line says; `received_at` otherwise.
    pub time: UnixMillis,
    /// The line, byte for byte (without its trailing newline).
    pub line: String,
    /// SHA-256 of `line`.
    pub sha256: String,
}

impl RawRecord {
    pub fn new(event_id: String, dataset: &str, received_at: UnixMillis, time: UnixMillis, line: &str) -> Self {
        RawRecord {
            event_id,
            dataset: dataset.to_owned(),
            received_at,
            time,
            sha256: sha256_hex(line.as_bytes()),
            line: line.to_owned(),
        }
    }
}

/// A line that could not be used, kept with the reason so nothing disappears silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub dataset: String,
    pub received_at: UnixMillis,
    /// Where it came from: a file name or an endpoint.
    pub origin: String,
    /// 1-based line number within its batch or file.
    pub line_no: u64,
    /// The bytes of the line, lossily decoded if they were not UTF-8.
    pub line: String,
    pub sha256: String,
    /// Why it was not used, in words.
    pub error: String,
}
