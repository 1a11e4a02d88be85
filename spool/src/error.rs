//! [`SpoolError`]: every way a spool operation can fail, each with what an operator needs.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Errors from the spool. `Clone` because one failed group commit fails every append in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpoolError {
    /// An I/O error other than a full disk.
    #[error("spool I/O error: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// The disk (or quota) is full. The record was not stored and the spool is consistent;
    /// appends succeed again once space is back. Receivers answer 503 with `Retry-After`.
    #[error("disk full while {op} {path}: the record was not stored; retry once space is freed ({source})")]
    NoSpace {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// Data that was durable is damaged. Never repaired silently: an operator must look.
    #[error("spool corrupt: {file} at offset {offset}: {detail}")]
    Corrupt { file: PathBuf, offset: u64, detail: String },
    /// Accepting the record would exceed `max_bytes`. Receivers answer 429/503 with `Retry-After`;
    /// space comes back when every consumer has acknowledged past whole segments.
    #[error("spool full: {used} bytes used + {needed} needed > max_bytes {max}")]
    Full { used: u64, needed: u64, max: u64 },
    /// The payload is larger than `max_record_bytes`.
    #[error("record of {len} bytes exceeds max_record_bytes {max}")]
    RecordTooLarge { len: u64, max: u64 },
    /// A position whose following records were already deleted.
    #[error("position {requested} of {consumer} is gone: the oldest record in the spool is {oldest}")]
    PositionGone { consumer: String, requested: u64, oldest: u64 },
    /// A position beyond the last record ever written: the spool directory does not belong to
    /// the sink's data (wiped or swapped). Continuing would silently skip new records.
    #[error(
        "position {requested} of {consumer} is ahead of the spool's last record {last_seq}; was the spool directory replaced?"
    )]
    PositionAhead { consumer: String, requested: u64, last_seq: u64 },
    /// `ack` for a name that was never registered.
    #[error("unknown spool consumer {0:?}; call register_consumer first")]
    UnknownConsumer(String),
    /// Another process (or another `Spool` in this one) has the directory open.
    #[error("spool directory {0} is locked by another process")]
    Locked(PathBuf),
    /// Options that cannot work.
    #[error("invalid spool options: {0}")]
    InvalidOptions(String),
    /// The spool was closed.
    #[error("spool is closed")]
    Closed,
}

impl SpoolError {
    /// Wraps an I/O error, classifying ENOSPC / EDQUOT as [`SpoolError::NoSpace`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        let full = matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded);
        let source = Arc::new(source);
        if full { SpoolError::NoSpace { op, path, source } } else { SpoolError::Io { op, path, source } }
    }

    /// True for conditions that go away by themselves (full spool or disk): answer with
    /// `Retry-After` rather than an error page.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SpoolError::Full { .. } | SpoolError::NoSpace { .. })
    }
}
