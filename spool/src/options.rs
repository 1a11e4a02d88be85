//! [`SpoolOptions`] (limits, validated at `open`) and [`SpoolStats`] (what `/metrics` and
//! `/readyz` read).

use crate::{SpoolError, record_size};

/// Tuning and limits. `Default` gives the production values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolOptions {
    /// A segment is sealed when the next record would take it past this size (64 MiB).
    /// A record larger than this gets a segment of its own.
    pub segment_bytes: u64,
    /// Cap on the disk space the spool takes (4 GiB): every segment file, preallocated zeros
    /// and the spare included. Appends beyond it fail with `Full`.
    pub max_bytes: u64,
    /// Largest accepted payload (256 MiB; at most `u32::MAX`).
    pub max_record_bytes: u64,
    /// fsync before answering appends. `false` only for benchmarks.
    pub fsync: bool,
    /// Keep a zero-filled spare segment ready, so appends overwrite allocated blocks and
    /// their fsyncs write data only, no size or allocation metadata (see `prealloc`). Costs one
    /// extra write of every segment, in the background, and the spare's size (a segment, at
    /// most a sixteenth of `max_bytes`), counted in `max_bytes`.
    pub preallocate: bool,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            segment_bytes: 64 << 20,
            max_bytes: 4 << 30,
            max_record_bytes: 256 << 20,
            fsync: true,
            preallocate: true,
        }
    }
}

impl SpoolOptions {
    pub(crate) fn validate(&self) -> Result<(), SpoolError> {
        let bad = |m: String| Err(SpoolError::InvalidOptions(m));
        if self.segment_bytes == 0 {
            return bad("segment_bytes must be > 0".into());
        }
        if self.max_record_bytes > u64::from(u32::MAX) {
            return bad(format!("max_record_bytes {} exceeds the format's limit {}", self.max_record_bytes, u32::MAX));
        }
        if self.max_bytes < record_size(self.max_record_bytes) {
            return bad(format!(
                "max_bytes {} cannot hold one record of max_record_bytes {}",
                self.max_bytes, self.max_record_bytes
            ));
        }
        Ok(())
    }

    /// Size of the preallocated spare: a segment, but at most a sixteenth of `max_bytes`, so
    /// the spare and the zeros of the active segment it becomes never take more than an
    /// eighth of the spool's space (a segment that outgrows its spare grows as it is
    /// written). `None` without preallocation.
    pub(crate) fn spare_bytes(&self) -> Option<u64> {
        let bytes = self.segment_bytes.min(self.max_bytes / 16);
        (self.preallocate && bytes > 0).then_some(bytes)
    }
}

/// Sizes and positions, for `/metrics` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolStats {
    /// Disk space the spool's files take: segments (preallocated zeros included) and the
    /// spare. What `max_bytes` caps.
    pub bytes_on_disk: u64,
    pub segments: usize,
    /// Oldest record still on disk (`last_seq + 1` when there is none).
    pub first_seq: u64,
    /// Last durable record (0 if none was ever written).
    pub last_seq: u64,
    pub consumers: Vec<ConsumerStats>,
}

/// One registered consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerStats {
    pub name: String,
    pub committed_seq: u64,
    /// Records written after its committed position.
    pub lag: u64,
}
