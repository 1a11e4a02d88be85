//! What makes the rows ClickHouse stored survive a machine crash before the spool forgets them.
//!
//! The ClickHouse sink acknowledges the spool (which may then delete those records) only after
//! [`Durability::sync`] returned. ClickHouse answers an insert once its part is written, not
//! once it is on disk: 18.16 never fsyncs a part, and newer servers do so only with the
//! MergeTree setting `fsync_after_insert` (off by default). A process crash keeps the page
//! cache, so it loses nothing either way; a machine crash (power, kernel) does not.
//!
//! - A server elsewhere: its durability is its own (replicas, `fsync_after_insert`); the sink
//!   takes no [`Durability`] and acknowledges as soon as ClickHouse answered.
//! - Managed ClickHouse, on this machine: [`SyncFilesystem`] runs `syncfs` on its data dir,
//!   which writes out everything on that filesystem.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Makes what ClickHouse has stored so far survive a machine crash. Blocking: the sink calls it
/// on a blocking thread.
pub trait Durability: Send + Sync + std::fmt::Debug {
    /// Returns once everything ClickHouse answered before the call is on disk.
    fn sync(&self) -> io::Result<()>;
}

/// `syncfs(2)` of the filesystem that holds a directory (a managed server's data dir).
#[derive(Debug, Clone)]
pub struct SyncFilesystem {
    dir: PathBuf,
}

impl SyncFilesystem {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SyncFilesystem { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Durability for SyncFilesystem {
    fn sync(&self) -> io::Result<()> {
        let context = |e: io::Error| io::Error::new(e.kind(), format!("syncfs of {}: {e}", self.dir.display()));
        let dir = File::open(&self.dir).map_err(context)?;
        rustix::fs::syncfs(&dir).map_err(|e| context(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_an_existing_dir_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        SyncFilesystem::new(dir.path()).sync().unwrap();
        let missing = dir.path().join("gone");
        let err = SyncFilesystem::new(&missing).sync().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains(&format!("syncfs of {}", missing.display())), "{err}");
    }
}
