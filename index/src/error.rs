//! [`IndexError`]: every way indexing or searching can fail, each with what an operator needs.

use gatelog_consumer::ConsumerError;
use gatelog_spool::SpoolError;
use std::io;
use std::path::PathBuf;

/// Errors from the index, the sink and search.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// tantivy failed (I/O below it, a corrupt segment, a lock held by another writer, …).
    #[error("tantivy error on {path}: {source}")]
    Tantivy {
        path: PathBuf,
        #[source]
        source: tantivy::TantivyError,
    },
    /// File-system work of our own (day folders, rebuild swaps).
    #[error("index I/O error: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The user's query does not parse; the HTTP layer answers 400 with this text.
    #[error("bad query: {0}")]
    BadQuery(String),
    /// A cursor that this index did not hand out; the HTTP layer answers 400.
    #[error("bad cursor: {0}")]
    BadCursor(String),
    /// A commit payload that is not ours: the folder holds someone else's index.
    #[error("commit payload of {path} is not a gatelog position: {detail}")]
    BadPayload { path: PathBuf, detail: String },
    /// A previous commit failed half-way; the indexer must be dropped and reopened, which
    /// recovers the last complete position.
    #[error("a previous commit failed; reopen the index to recover")]
    Poisoned,
    /// The spool refused.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The sink's spool consumer stopped: a record that does not decode, damage the spool
    /// found, or a position whose records are gone.
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    /// The index directory was deleted or replaced under a running indexer.
    #[error("the index in {path} is gone or was replaced ({detail})")]
    Lost { path: PathBuf, detail: String },
    /// The stream a rebuild read from failed (ClickHouse, for the binary).
    #[error("the decisions to rebuild from could not be read: {0}")]
    Source(String),
    /// The indexing thread or a blocking task died.
    #[error("index worker failed: {0}")]
    Worker(String),
    /// Injected by tests to simulate a crash half-way through a commit.
    #[cfg(test)]
    #[error("injected failure")]
    Injected,
}

impl IndexError {
    /// Whether the index no longer holds what its position says, so only a rebuild from the
    /// store of record can make it whole: the directory was lost, its position's records are
    /// gone from the spool, or it cannot be opened as gatelog's index.
    pub fn needs_rebuild(&self) -> bool {
        match self {
            IndexError::Lost { .. } | IndexError::BadPayload { .. } => true,
            IndexError::Consumer(e) => e.is_position_gone(),
            IndexError::Spool(e) => matches!(e, SpoolError::PositionGone { .. } | SpoolError::PositionAhead { .. }),
            _ => false,
        }
    }

    pub(crate) fn tantivy(path: impl Into<PathBuf>) -> impl FnOnce(tantivy::TantivyError) -> IndexError {
        let path = path.into();
        move |source| IndexError::Tantivy { path, source }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> IndexError {
        let path = path.into();
        move |source| IndexError::Io { op, path, source }
    }
}
