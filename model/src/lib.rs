//! gatelog's vocabulary. Every other crate speaks in these types; this crate does no I/O.
//!
//! Module map:
//! - [`batch`]: [`Batch`], one mapped upload/post/chunk, and its spool encoding.
//! - [`decision`]: [`AccessDecision`], the one canonical row every source maps to, and its enums.
//! - [`finding`]: [`Finding`] and [`Severity`], what a detector concluded from decisions.
//! - [`alert`]: [`Alert`], its lifecycle events ([`AlertEvent`]) and the state derived from them.
//! - [`canary`]: the marks of gatelog's canary decisions and their alerts.
//! - [`record`]: [`RawRecord`] (the exact original line and its SHA-256) and [`DeadLetter`].
//! - [`event_id`]: stable, source-derived event ids, so a retried batch maps to the same ids.
//! - [`timestamp`]: [`UnixMillis`] and the parser for every Cloudflare timestamp format.
//! - [`query`]: SQL literal masking, query fingerprints and the outer `LIMIT` check.
//! - [`clock`]: the [`Clock`] trait, so tests own their time.
//! - [`ipe`]: [`IpeRecord`], how a reported figure was produced (query, parameters, server,
//!   rows, reconciliations), filled by the store's read side and printed by reports.
//! - [`redact`]: [`RedactedUrl`], the one way a URL from configuration is displayed.
//! - [`chain`]: the tamper-evidence hash chain over stored batches (links, heads, the row
//!   ledger's hashes and digests); the store writes and recomputes it.

#[macro_use]
mod macros;

pub mod alert;
pub mod batch;
pub mod canary;
pub mod chain;
pub mod clock;
pub mod decision;
pub mod event_id;
pub mod finding;
pub mod ipe;
pub mod query;
pub mod record;
pub mod redact;
pub mod timestamp;

pub use alert::{Alert, AlertAction, AlertEvent, AlertState, Disposition, TransitionError};
pub use batch::{Batch, BatchCodecError, BatchHead, EncodedRows};
pub use clock::{Clock, FixedClock, SystemClock};
pub use decision::{AccessDecision, Decision, PrincipalType, Source};
pub use event_id::EventId;
pub use finding::{Finding, Severity};
pub use ipe::{IpeParameter, IpeRecord, Reconciliation};
pub use record::{DeadLetter, RawRecord, sha256_hex};
pub use redact::{RedactedUrl, redact_url};
pub use timestamp::{TimestampError, UnixMillis};
