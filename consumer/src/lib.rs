//! One way out of the spool: every reader of the spool (the ClickHouse sink, the index sink,
//! the detection runtime next) is a [`Consumer`], so registering, resuming, reading,
//! decoding, acknowledging, lag and status work, and fail, the same way for all of them.
//!
//! A consumer's life:
//! 0. **Hold** ([`hold`]): before any consumer starts, each one the spool does not know yet is
//!    registered before its oldest record, so nothing is deleted under a consumer that cannot
//!    register yet (ClickHouse unreachable at start).
//! 1. **Register** at the position it stored with its own data ([`Consumer::register`]):
//!    ClickHouse keeps it in `ingest_batches.spool_seq`, the index in its commit payload.
//!    That position, not the spool's `consumers.ack`, is the truth; the spool only learns it.
//!    A position whose records were deleted is [`WhenGone`]'s decision: fail (the index, which
//!    then rebuilds from ClickHouse) or resume at the oldest record, saying what was skipped.
//! 2. **Read and decode** in order ([`Consumer::next`], [`Consumer::try_next`],
//!    [`Consumer::next_until`]): each spool record is one [`gatelog_model::Batch`].
//! 3. **Acknowledge** ([`Acker::ack`]) once the data up to a position is durable in the
//!    consumer's own store; the spool deletes segments every consumer acknowledged.
//! 4. **Report** through its [`Status`]: starting, running, caught up, waiting (it retries by
//!    itself), rebuilding, or stopped with the reason; and its lag in records and seconds.
//!    The server reads every [`Status`] from one [`Statuses`] for `/readyz` and `/metrics`.
//!
//! # A record that does not decode
//!
//! The one policy, for every consumer: **stop, and name the record** (sequence number, segment
//! file, offset), as the spool does for damage it finds itself. Skipping would lose a batch the
//! receiver acknowledged and let each consumer disagree with the others about what was stored;
//! stopping keeps the record (the spool deletes nothing a stopped consumer did not
//! acknowledge), makes `/readyz` fail with the reason, and lets an operator look. After the
//! error, every further read returns the same error: no caller can step past it.
//!
//! Module map:
//! - [`consumer`]: [`Consumer`], [`Acker`], [`Delivery`], [`Decode`], [`WhenGone`].
//! - [`status`]: [`Status`], [`State`], [`Phase`], [`Snapshot`], [`Statuses`]; lag.
//! - [`error`](mod@error): [`ConsumerError`].

pub mod consumer;
pub mod error;
pub mod status;

pub use consumer::{Acker, Consumer, Decode, Delivery, WhenGone, hold};
pub use error::ConsumerError;
pub use status::{Phase, Snapshot, State, Status, Statuses};
