//! [`rebuild`]: builds the whole index again from a stream of decisions (the binary feeds it
//! from ClickHouse), so the index is disposable. [`try_rebuild`] takes a stream that may
//! fail, and then leaves the index as it was.
//!
//! The new index is built in `<dir>.rebuild` and swapped in with two renames
//! (`<dir>` → `<dir>.old`, `<dir>.rebuild` → `<dir>`), then the old one is removed. No
//! [`crate::Indexer`] may run on `dir` meanwhile; searchers pick the new folders up on their
//! next search. A crash before the swap leaves the old index (and a staging folder the next
//! rebuild removes); decisions are added as the sink adds them (replacing by `event_id`), so
//! copies of one event in the stream end up once. Decisions older than the options'
//! retention are skipped.

use crate::{IndexError, Indexer, IndexerOptions};
use gatelog_model::{AccessDecision, Clock as _, SystemClock};
use std::fs;
use std::path::{Path, PathBuf};

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildStats {
    pub decisions: u64,
    /// The spool position recorded in the new index.
    pub position: u64,
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    dir.with_file_name(name)
}

/// Rebuilds the index in `dir` from `decisions`. The new index records `position` as its
/// spool position, or, when `None`, the highest `spool_seq` among the decisions: resume the
/// sink after what the source of the decisions (ClickHouse) had committed.
pub fn rebuild(
    dir: &Path,
    opts: IndexerOptions,
    decisions: impl IntoIterator<Item = AccessDecision>,
    position: Option<u64>,
) -> Result<RebuildStats, IndexError> {
    try_rebuild(dir, opts, decisions.into_iter().map(Ok::<_, std::convert::Infallible>), position)
}

/// [`rebuild`] from a stream that may fail: the first error stops it with
/// [`IndexError::Source`], the staging folder is removed and `dir` is left as it was.
pub fn try_rebuild<E: std::fmt::Display>(
    dir: &Path,
    opts: IndexerOptions,
    decisions: impl IntoIterator<Item = Result<AccessDecision, E>>,
    position: Option<u64>,
) -> Result<RebuildStats, IndexError> {
    let staging = sibling(dir, ".rebuild");
    let built = build(&staging, opts, decisions, position);
    let (count, position) = match built {
        Ok(built) => built,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    swap(dir, &staging)?;
    tracing::info!(dir = %dir.display(), decisions = count, position, "rebuilt index");
    Ok(RebuildStats { decisions: count, position })
}

/// Builds the new index in `staging`; returns the decisions added and its position.
fn build<E: std::fmt::Display>(
    staging: &Path,
    opts: IndexerOptions,
    decisions: impl IntoIterator<Item = Result<AccessDecision, E>>,
    position: Option<u64>,
) -> Result<(u64, u64), IndexError> {
    if staging.exists() {
        fs::remove_dir_all(staging).map_err(IndexError::io("removing", staging))?;
    }
    let mut indexer = Indexer::open(staging, opts)?;
    // Decisions older than the retention are not indexed again.
    indexer.expire(SystemClock.now())?;
    let mut count = 0u64;
    let mut max_seq = 0u64;
    for decision in decisions {
        let decision = decision.map_err(|e| IndexError::Source(e.to_string()))?;
        indexer.add(&decision)?;
        max_seq = max_seq.max(decision.spool_seq);
        count += 1;
        if indexer.should_commit() {
            indexer.commit()?;
        }
    }
    let position = position.unwrap_or(max_seq);
    indexer.skip_record(position);
    indexer.commit()?;
    Ok((count, position))
}

/// Moves `staging` into `dir`'s place and removes what was there.
fn swap(dir: &Path, staging: &Path) -> Result<(), IndexError> {
    let old = sibling(dir, ".old");
    if old.exists() {
        fs::remove_dir_all(&old).map_err(IndexError::io("removing", &old))?;
    }
    if dir.exists() {
        fs::rename(dir, &old).map_err(IndexError::io("moving aside", dir))?;
    }
    fs::rename(staging, dir).map_err(IndexError::io("moving into place", staging))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(IndexError::io("removing", &old))?;
    }
    Ok(())
}
