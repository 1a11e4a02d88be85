//! [`ConsumerError`]: why a consumer cannot go on.

use gatelog_spool::{RecordLocation, SpoolError};

/// Why a consumer stopped reading. `Clone`, so a consumer that failed keeps returning it.
/// The text does not repeat the consumer's name (its status and logs carry it).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsumerError {
    /// The spool refused: damage it found (`Corrupt`, naming file and offset), a position
    /// whose records are gone, an I/O error, or the spool was closed.
    #[error("{source}")]
    Spool {
        consumer: &'static str,
        #[source]
        source: SpoolError,
    },
    /// A durable record that is not a gatelog batch. The consumer stops here (see the crate
    /// docs); the record stays in the spool.
    #[error(
        "spool record {seq} ({}) is not a gatelog batch: {detail}; \
         the {consumer} sink stops here instead of skipping it, and the spool keeps it and everything after it",
        at.as_ref().map_or_else(|| "location unknown".to_owned(), ToString::to_string)
    )]
    Undecodable { consumer: &'static str, seq: u64, at: Option<RecordLocation>, detail: String },
}

impl ConsumerError {
    pub(crate) fn spool(consumer: &'static str) -> impl FnOnce(SpoolError) -> ConsumerError {
        move |source| ConsumerError::Spool { consumer, source }
    }

    /// The spool's error, if that is what this is.
    pub fn spool_error(&self) -> Option<&SpoolError> {
        match self {
            ConsumerError::Spool { source, .. } => Some(source),
            ConsumerError::Undecodable { .. } => None,
        }
    }

    /// True when the consumer's position is older than the spool's oldest record: the
    /// records in between were deleted, so they can only come from the consumer's own store
    /// (or the store of record).
    pub fn is_position_gone(&self) -> bool {
        matches!(self.spool_error(), Some(SpoolError::PositionGone { .. }))
    }
}
