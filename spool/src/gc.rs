//! Recording the consumers' positions in the `acks` file and deleting the segments every
//! consumer is done with. Neither needs free space: positions are written in place, and a
//! deletion only unlinks (after an `fdatasync` of the positions that allow it).

use crate::{Shared, SpoolError, lock, recovery};
use std::fs;
use std::io;

/// Writes the consumers' positions and makes them durable (register, unregister).
pub(crate) fn persist_consumers(shared: &Shared) -> Result<(), SpoolError> {
    let mut slots = lock(&shared.gc_lock);
    let consumers = lock(&shared.state).consumers.clone();
    slots.write_consumers_durably(&shared.acks, &consumers)
}

/// Writes the consumers' positions (in place, no fsync: a process crash keeps them, and they
/// are only lower bounds) and deletes every sealed segment whose records every consumer
/// acknowledged, oldest first, after making those positions durable. Returns how many
/// segments it deleted.
pub(crate) fn gc(shared: &Shared) -> Result<u64, SpoolError> {
    let mut slots = lock(&shared.gc_lock);
    let (victims, consumers) = {
        let st = lock(&shared.state);
        let Some(min) = st.consumers.values().min().copied() else {
            return Ok(0);
        };
        let firsts: Vec<u64> = st.segments.keys().copied().collect();
        let mut victims = Vec::new();
        for pair in firsts.windows(2) {
            if pair[1] - 1 > min {
                break;
            }
            if let Some(seg) = st.segments.get(&pair[0]) {
                victims.push((pair[0], seg.path.clone()));
            }
        }
        (victims, st.consumers.clone())
    };
    slots.write_consumers(&shared.acks, &consumers)?;
    if victims.is_empty() {
        return Ok(0);
    }
    let started = std::time::Instant::now();
    shared.acks.sync()?;
    slots.synced();
    let mut deleted = 0;
    let mut result = Ok(());
    for (first, path) in victims {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                result = Err(SpoolError::io("deleting segment", path, e));
                break;
            }
        }
        let mut st = lock(&shared.state);
        if let Some(seg) = st.segments.remove(&first) {
            st.bytes_on_disk -= seg.file_len;
        }
        deleted += 1;
    }
    if deleted > 0 {
        shared.metrics.segments_deleted(deleted);
        recovery::sync_dir(&shared.dir)?;
        tracing::debug!(
            segments = deleted,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "spool: consumed segments deleted"
        );
    }
    result.map(|()| deleted)
}
