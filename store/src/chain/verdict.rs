//! What [`crate::Store::verify_chain`] is asked and what it finds: [`VerifyOptions`], the
//! caller's [`SignatureCheck`] of a checkpoint, and the [`ChainVerdict`] with its
//! [`Problem`]s, each of a [`ProblemClass`] with its own exit code.

use gatelog_model::chain::ChainHead;
use serde::Serialize;
use std::fmt;

/// What to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Batches received from here (epoch ms, inclusive) ...
    pub from_ms: i64,
    /// ... to here (exclusive).
    pub to_ms: i64,
    /// About how many ledger entries one window holds in memory (at least one batch).
    pub window_rows: u64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions { from_ms: 0, to_ms: i64::MAX, window_rows: 1_000_000 }
    }
}

/// What the caller found of a checkpoint's signature (the store does not hold keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Verified against the trusted key.
    Valid {
        signer: String,
    },
    /// Recorded without a signature (no signing key when it was taken).
    Unsigned,
    /// Signed, but there is no trusted key to check it against.
    NoTrustedKey {
        signer: String,
    },
    Invalid {
        reason: String,
    },
}

/// A class of problem, each with the exit code `gatelog verify --store` ends with; the
/// verdict's is that of the first class present in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemClass {
    /// 8: the store disagrees with the chain: a row, a ledger, a marker or a link was
    /// deleted, inserted or edited, or a checkpoint's head is not the stored one.
    Tampered,
    /// 4: a checkpoint's signature does not verify.
    Signature,
    /// 7: intact, but a signed checkpoint could not be checked (no trusted key).
    Untrusted,
}

impl ProblemClass {
    pub const fn exit_code(self) -> u8 {
        match self {
            ProblemClass::Tampered => 8,
            ProblemClass::Signature => 4,
            ProblemClass::Untrusted => 7,
        }
    }
}

/// One disagreement, about a link (its position, 0 when none) and batch, maybe one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub class: ProblemClass,
    pub link: u64,
    pub batch_id: String,
    pub event_id: Option<String>,
    /// A short name: `row edited`, `row inserted`, `row deleted`, `ledger`, `link`,
    /// `link missing`, `marker`, `checkpoint`, `signature`.
    pub what: &'static str,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

/// A checkpoint of the period and what was found of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointStatus {
    pub at_ms: i64,
    pub links: u64,
    pub hash: String,
    /// The stored link at `links` has this hash (and batch).
    pub matches: bool,
    /// `valid`, `unsigned`, `no trusted key`, or `invalid: …`.
    pub signature: String,
    pub signer: String,
}

/// Progress of a verification, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProgress {
    pub ledger_done: u64,
    pub ledger_total: u64,
}

/// The outcome of [`Store::verify_chain`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChainVerdict {
    pub from_ms: i64,
    pub to_ms: i64,
    /// Batches received in the period.
    pub batches: u64,
    /// Of them, stored before the chain started (no link; not checked).
    pub before_chain: u64,
    pub first_link: Option<u64>,
    pub last_link: Option<u64>,
    /// The head after the period's last link, as stored.
    pub head: Option<ChainHead>,
    pub ledger_entries: u64,
    pub rows_checked: u64,
    /// Ledger entries whose own row a merge replaced by a later copy of the event.
    pub merged_copies: u64,
    pub checkpoints: Vec<CheckpointStatus>,
    /// Sorted by link (unknown links last); the first names the first batch that disagrees.
    pub problems: Vec<Problem>,
    /// Problems beyond [`MAX_PROBLEMS`] that were counted, not kept.
    pub more_problems: u64,
}

/// Problems kept in a verdict (the rest are counted).
pub const MAX_PROBLEMS: usize = 1000;

impl ChainVerdict {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// 0 when everything verified, else the first [`ProblemClass`] present.
    pub fn exit_code(&self) -> u8 {
        self.problems.iter().map(|p| p.class).min().map_or(0, ProblemClass::exit_code)
    }

    pub(super) fn add(&mut self, p: Problem) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        } else {
            self.more_problems += 1;
        }
    }

    pub(super) fn tampered(
        &mut self,
        link: u64,
        batch_id: &str,
        event_id: Option<&str>,
        what: &'static str,
        message: String,
    ) {
        self.add(Problem {
            class: ProblemClass::Tampered,
            link,
            batch_id: batch_id.to_owned(),
            event_id: event_id.map(str::to_owned),
            what,
            message,
        });
    }
}

impl fmt::Display for ChainVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(f, "FAIL [{}] {}", p.what, p.message)?;
        }
        if self.more_problems > 0 {
            writeln!(f, "... and {} more problem(s)", self.more_problems)?;
        }
        let links = match (self.first_link, self.last_link) {
            (Some(a), Some(b)) => format!("links {a}..={b}"),
            _ => "no links".to_owned(),
        };
        let signed = self.checkpoints.iter().filter(|c| c.signature == "valid").count();
        let unsigned = self.checkpoints.iter().filter(|c| c.signature == "unsigned").count();
        let summary = format!(
            "{} batches ({links}; {} stored before the chain started, not checked), {} ledger entries, {} stored rows, {} rows replaced by a later copy, {} checkpoints ({signed} signed and verified, {unsigned} unsigned)",
            self.batches,
            self.before_chain,
            self.ledger_entries,
            self.rows_checked,
            self.merged_copies,
            self.checkpoints.len()
        );
        match self.problems.first() {
            None => write!(f, "OK: {summary}"),
            Some(first) => write!(
                f,
                "FAILED: {} problem(s), the first at batch {}: {} (exit code {})\nchecked: {summary}",
                self.problems.len() as u64 + self.more_problems,
                if first.batch_id.is_empty() { "(unknown)" } else { &first.batch_id },
                first.what,
                self.exit_code()
            ),
        }
    }
}
