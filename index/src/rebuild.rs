//! [`rebuild`]: builds the whole index again from a stream of decisions (the binary feeds it
//! from ClickHouse), so the index is disposable.
//!
//! The new index is built in `<dir>.rebuild` and swapped in with two renames
//! (`<dir>` → `<dir>.old`, `<dir>.rebuild` → `<dir>`), then the old one is removed. No
//! [`crate::Indexer`] may run on `dir` meanwhile; searchers pick the new folders up on their
//! next search.

use crate::{IndexError, Indexer, IndexerOptions};
use gatelog_model::AccessDecision;
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
    let staging = sibling(dir, ".rebuild");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(IndexError::io("removing", &staging))?;
    }
    let mut indexer = Indexer::open(&staging, opts)?;
    let mut count = 0u64;
    let mut max_seq = 0u64;
    for decision in decisions {
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
    drop(indexer);

    let old = sibling(dir, ".old");
    if old.exists() {
        fs::remove_dir_all(&old).map_err(IndexError::io("removing", &old))?;
    }
    if dir.exists() {
        fs::rename(dir, &old).map_err(IndexError::io("moving aside", dir))?;
    }
    fs::rename(&staging, dir).map_err(IndexError::io("moving into place", &staging))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(IndexError::io("removing", &old))?;
    }
    tracing::info!(dir = %dir.display(), decisions = count, position, "rebuilt index");
    Ok(RebuildStats { decisions: count, position })
}
