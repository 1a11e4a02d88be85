//! The writer thread: owns the active segment, assigns sequence numbers, and group-commits.
//!
//! Loop: block for one command, then drain whatever else is already queued (bounded), stage
//! every append (its header, and its payload parts as the caller gave them: nothing is copied
//! into a group buffer), write them with `pwritev` at the end of the valid data, fsync once,
//! publish the new durable sequence to readers, write the acknowledged mark to `acks` (in
//! place, no fsync) and answer every waiting caller. Because callers queue while an fsync
//! runs, the next round naturally covers all of them. When nothing is queued after a group
//! and a record like the group's would not fit into the active segment, the next segment is
//! started right away ([`Writer::roll_ahead`]), so its costs are paid between requests; after
//! a second with nothing to do, the mark is fsynced.
//!
//! When a write fails with ENOSPC, the writer releases the spare segment and deletes what the
//! consumers are done with, and retries the group once; while the disk stays full, each new
//! group first seals a fully consumed active segment so it can be deleted too.

use crate::acks::Slots;
use crate::error::SpoolError;
use crate::format::{self, segment_file_name};
use crate::prealloc::Spares;
use crate::recovery::sync_dir;
use crate::{Shared, lock};
use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Upper bounds for one group commit.
const MAX_GROUP_BYTES: u64 = 32 << 20;
const MAX_GROUP_RECORDS: usize = 8192;
/// Slices one `pwritev` takes at most (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;
/// How long the writer waits with nothing to do before it fsyncs the acknowledged mark.
const MARK_SYNC_IDLE: Duration = Duration::from_secs(1);

pub(crate) type AppendReply = oneshot::Sender<Result<u64, SpoolError>>;

#[derive(Debug)]
pub(crate) enum Cmd {
    Append {
        /// The record's payload, in parts to be joined.
        parts: Vec<Vec<u8>>,
        reply: AppendReply,
    },
    Close {
        reply: oneshot::Sender<Result<(), SpoolError>>,
    },
}

#[derive(Debug)]
pub(crate) struct Active {
    pub first_seq: u64,
    pub path: PathBuf,
    pub file: File,
    /// Length of the valid, written data; the next record goes here.
    pub len: u64,
    /// Length of the file: more than `len` when the segment was preallocated.
    pub file_len: u64,
}

#[derive(Debug)]
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub rx: mpsc::Receiver<Cmd>,
    pub active: Active,
    pub next_seq: u64,
    /// Set when cutting a failed write back did not succeed; retried before the next write.
    pub needs_truncate: bool,
    /// The staged records, in sequence order, and their bytes on disk.
    pub pending: Vec<Staged>,
    pub staged_bytes: u64,
    /// The preallocated spare segment (`None` when `SpoolOptions::preallocate` is off).
    pub spares: Option<Spares>,
    /// The mark slots of `acks`: the last sequence number answered to an appender.
    pub mark: Slots,
    /// Set when the last group failed with ENOSPC, cleared by the next that succeeds.
    pub disk_full: bool,
    /// The directory lock; released when the thread ends.
    pub _lock: File,
}

/// A record waiting for the group's write and fsync.
#[derive(Debug)]
pub(crate) struct Staged {
    seq: u64,
    header: [u8; format::HEADER_LEN],
    parts: Vec<Vec<u8>>,
    payload_len: u64,
    reply: AppendReply,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Cmd>,
        active: Active,
        mark: Slots,
        spares: Option<Spares>,
        lock_file: File,
    ) -> Writer {
        let next_seq = lock(&shared.state).last_seq + 1;
        Writer {
            shared,
            rx,
            active,
            next_seq,
            needs_truncate: false,
            pending: Vec::new(),
            staged_bytes: 0,
            spares,
            mark,
            disk_full: false,
            _lock: lock_file,
        }
    }

    pub(crate) fn run(mut self) {
        let mut carried = None;
        loop {
            let first = match carried.take() {
                Some(cmd) => cmd,
                None => match self.next_command() {
                    Some(cmd) => cmd,
                    None => return,
                },
            };
            let mut close = None;
            let mut next = Some(first);
            let mut bytes = 0u64;
            let mut records = 0usize;
            while let Some(cmd) = next.take() {
                match cmd {
                    Cmd::Append { parts, reply } => {
                        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
                        bytes += len;
                        records += 1;
                        self.stage(parts, len, reply);
                    }
                    Cmd::Close { reply } => {
                        close = Some(reply);
                        break;
                    }
                }
                if bytes >= MAX_GROUP_BYTES || records >= MAX_GROUP_RECORDS {
                    break;
                }
                next = self.rx.try_recv().ok();
            }
            self.commit();
            if let Some(reply) = close {
                let result = self.sync_acks();
                self.shared.mark_closed();
                // The caller may have given up waiting; nothing else to tell.
                let _ = reply.send(result);
                return;
            }
            match self.rx.try_recv() {
                Ok(cmd) => carried = Some(cmd),
                Err(_) => self.roll_ahead(format::record_size(bytes / records.max(1) as u64)),
            }
        }
    }

    /// The next command, blocking; `None` once every sender is gone. With an unsynced mark
    /// it waits at most [`MARK_SYNC_IDLE`], then fsyncs `acks` and waits on.
    fn next_command(&mut self) -> Option<Cmd> {
        if self.mark.is_dirty() && self.shared.opts.fsync {
            match self.rx.recv_timeout(MARK_SYNC_IDLE) {
                Ok(cmd) => return Some(cmd),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => match self.shared.acks.sync() {
                    Ok(()) => self.mark.synced(),
                    Err(e) => tracing::warn!(error = %e, "spool: cannot fsync the acknowledged mark; retried at close"),
                },
            }
        }
        self.rx.recv().ok()
    }

    /// At close: the consumers' positions and the mark, made durable by one fsync of `acks`.
    fn sync_acks(&mut self) -> Result<(), SpoolError> {
        let mut slots = lock(&self.shared.gc_lock);
        let consumers = lock(&self.shared.state).consumers.clone();
        slots.write_consumers(&self.shared.acks, &consumers)?;
        self.shared.acks.sync()?;
        slots.synced();
        self.mark.synced();
        Ok(())
    }

    /// With nothing queued and a preallocated spare in use: starts the next segment now if
    /// a record of `expected` bytes (the last group's average) would not fit into what is
    /// left of the active one. Taking the spare costs a rename and a directory fsync, and
    /// sets the preallocation thread trimming the sealed segment and filling the next spare
    /// (a segment's worth of writes and their fsyncs); started here, all of that runs while
    /// no request waits, instead of inside the next append. Without preallocation a new
    /// segment is an empty file whose first fsyncs pay for its blocks anyway, so it is left
    /// to the append that needs it.
    fn roll_ahead(&mut self, expected: u64) {
        let left = self.shared.opts.segment_bytes.saturating_sub(self.active.len);
        if self.spares.is_none() || self.active.len == 0 || self.needs_truncate || expected <= left {
            return;
        }
        if let Err(e) = self.roll() {
            // The next append rolls again and reports the error to its caller.
            tracing::debug!(error = %e, "spool: cannot start the next segment ahead of time");
        }
    }

    fn stage(&mut self, parts: Vec<Vec<u8>>, payload_len: u64, reply: AppendReply) {
        if self.disk_full && self.pending.is_empty() {
            self.reclaim();
        }
        let size = format::record_size(payload_len);
        let staged = self.active.len + self.staged_bytes;
        if staged > 0 && staged + size > self.shared.opts.segment_bytes {
            self.commit();
            if let Err(e) = self.roll() {
                self.shared.metrics.append_failed(1);
                let _ = reply.send(Err(e));
                return;
            }
        }
        let max = self.shared.opts.max_bytes;
        let used = self.bytes_on_disk_with(size);
        if used > max {
            self.commit();
            if let Some(spares) = &self.spares {
                spares.release("spool full");
            }
            self.reclaim();
            let used = self.bytes_on_disk_with(size);
            if used > max {
                self.shared.metrics.full();
                let used = lock(&self.shared.state).bytes_on_disk;
                let _ = reply.send(Err(SpoolError::Full { used, needed: size, max }));
                return;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let header = format::header_for(seq, &parts);
        self.staged_bytes += size;
        self.pending.push(Staged { seq, header, parts, payload_len, reply });
    }

    /// What the spool's files would take with a record of `size` bytes staged after the
    /// ones already staged: it only grows the active segment past its preallocated length.
    fn bytes_on_disk_with(&self, size: u64) -> u64 {
        let end = self.active.len + self.staged_bytes + size;
        lock(&self.shared.state).bytes_on_disk + end.saturating_sub(self.active.file_len)
    }

    /// Writes and fsyncs the staged records, then publishes and answers them. On ENOSPC it
    /// frees what it can (the spare, consumed segments) and tries once more.
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut result = self.write_and_sync();
        if matches!(result, Err(SpoolError::NoSpace { .. })) && self.free_space() {
            result = self.write_and_sync();
        }
        match result {
            Ok(()) => {
                let written = self.staged_bytes;
                self.active.len += written;
                self.active.file_len = self.active.file_len.max(self.active.len);
                let last = self.next_seq - 1;
                {
                    let mut st = lock(&self.shared.state);
                    if let Some(seg) = st.segments.get_mut(&self.active.first_seq) {
                        seg.bytes = self.active.len;
                    }
                    st.set_file_len(self.active.first_seq, self.active.file_len);
                    st.last_seq = last;
                }
                if std::mem::take(&mut self.disk_full) {
                    tracing::info!(
                        first_seq = self.pending[0].seq,
                        "spool: appends succeed again after the disk was full"
                    );
                }
                self.shared.durable.send_replace(last);
                // Before any caller hears of it: after a process crash the mark is exact.
                if let Err(e) = self.mark.write_mark(&self.shared.acks, last) {
                    tracing::warn!(error = %e, "spool: cannot write the acknowledged mark");
                }
                let payload_bytes = self.pending.iter().map(|p| p.payload_len).sum();
                self.shared.metrics.appended(self.pending.len() as u64, payload_bytes);
                for staged in self.pending.drain(..) {
                    let _ = staged.reply.send(Ok(staged.seq));
                }
            }
            Err(e) => {
                let no_space = matches!(e, SpoolError::NoSpace { .. });
                if no_space && self.disk_full {
                    // Said once when the disk filled; every request refused meanwhile is
                    // counted (`append_errors`) and answered.
                    tracing::debug!(error = %e, records = self.pending.len(), "spool append failed: the disk is still full");
                } else {
                    tracing::warn!(error = %e, records = self.pending.len(), "spool append failed; the records were not stored");
                }
                self.disk_full = no_space;
                self.next_seq -= self.pending.len() as u64;
                self.shared.metrics.append_failed(self.pending.len() as u64);
                for staged in self.pending.drain(..) {
                    let _ = staged.reply.send(Err(e.clone()));
                }
            }
        }
        self.staged_bytes = 0;
    }

    /// On ENOSPC: releases the spare and deletes what every consumer is done with. True if
    /// that freed anything, so the failed write is worth retrying.
    fn free_space(&mut self) -> bool {
        let released = self.spares.as_ref().is_some_and(|s| s.release("disk full"));
        let deleted = match crate::gc::gc(&self.shared) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot delete consumed spool segments");
                0
            }
        };
        released || deleted > 0
    }

    fn write_and_sync(&mut self) -> Result<(), SpoolError> {
        let path = &self.active.path;
        if self.needs_truncate {
            self.active
                .file
                .set_len(self.active.len)
                .and_then(|()| self.active.file.sync_data())
                .map_err(|e| SpoolError::io("truncating a failed write in", path.clone(), e))?;
            self.truncated();
            self.needs_truncate = false;
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(self.pending.iter().map(|p| 1 + p.parts.len()).sum());
        for staged in &self.pending {
            slices.push(IoSlice::new(&staged.header));
            slices.extend(staged.parts.iter().map(|part| IoSlice::new(part)));
        }
        #[cfg(test)]
        let injected = lock(&self.shared.faults).fail_write_after.take();
        #[cfg(test)]
        if let Some(after) = injected {
            let group: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
            let _ = std::os::unix::fs::FileExt::write_all_at(
                &self.active.file,
                &group[..after.min(group.len())],
                self.active.len,
            );
            drop(slices);
            self.cut_back();
            let e = std::io::Error::new(std::io::ErrorKind::StorageFull, "injected ENOSPC");
            return Err(SpoolError::io("writing", self.active.path.clone(), e));
        }
        let written = write_all_vectored_at(&self.active.file, &mut slices, self.active.len);
        drop(slices);
        if let Err(e) = written {
            self.cut_back();
            return Err(SpoolError::io("writing", self.active.path.clone(), e));
        }
        if self.shared.opts.fsync {
            let started = Instant::now();
            if let Err(e) = self.active.file.sync_data() {
                // After a failed fsync the page cache state is unknown (fsyncgate): do not
                // retry the fsync, cut the records away instead and report the failure.
                self.cut_back();
                return Err(SpoolError::io("fsyncing", self.active.path.clone(), e));
            }
            self.shared.metrics.fsync(started.elapsed());
        }
        Ok(())
    }

    /// Removes whatever part of a failed write reached the file (and the preallocated zeros
    /// after it: under ENOSPC that is space given back).
    fn cut_back(&mut self) {
        let fsync = self.shared.opts.fsync;
        let result = self
            .active
            .file
            .set_len(self.active.len)
            .and_then(|()| if fsync { self.active.file.sync_data() } else { Ok(()) });
        match result {
            Ok(()) => self.truncated(),
            Err(e) => {
                tracing::warn!(file = %self.active.path.display(), offset = self.active.len, error = %e,
                    "cannot cut a failed spool write back; will retry before the next write");
                self.needs_truncate = true;
            }
        }
    }

    /// The active segment's file was cut to its records.
    fn truncated(&mut self) {
        self.active.file_len = self.active.len;
        lock(&self.shared.state).set_file_len(self.active.first_seq, self.active.len);
    }

    /// Starts a new segment at `next_seq` (no-op if the active one is empty), on the
    /// preallocated spare when one is ready.
    fn roll(&mut self) -> Result<(), SpoolError> {
        if self.active.len == 0 {
            return Ok(());
        }
        let first = self.next_seq;
        let path = self.shared.dir.join(segment_file_name(first));
        let started = Instant::now();
        // A taken spare's length moves from the spare's share of `bytes_on_disk` to the
        // segment's, so the total does not change.
        let (file, file_len) = match self.spares.as_ref().and_then(|s| s.take(&path)) {
            Some(taken) => taken,
            None => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(|e| SpoolError::io("creating segment", path.clone(), e))?;
                (file, 0)
            }
        };
        if let Err(e) = sync_dir(&self.shared.dir) {
            let _ = std::fs::remove_file(&path);
            let mut st = lock(&self.shared.state);
            st.bytes_on_disk -= file_len;
            return Err(e);
        }
        lock(&self.shared.state).segments.insert(first, crate::SegmentInfo { path: path.clone(), bytes: 0, file_len });
        self.shared.metrics.segment_created();
        tracing::debug!(
            first_seq = first,
            preallocated = file_len > 0,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "spool: segment started"
        );
        let sealed = std::mem::replace(&mut self.active, Active { first_seq: first, path, file, len: 0, file_len });
        if sealed.file_len > sealed.len
            && let Some(spares) = &self.spares
        {
            spares.trim(sealed.first_seq, sealed.path, sealed.len);
        }
        Ok(())
    }

    /// On a full spool or disk: if every consumer has acknowledged everything, seal the
    /// active segment so it can be deleted too; then delete what can be deleted.
    fn reclaim(&mut self) {
        let all_acked = {
            let st = lock(&self.shared.state);
            st.consumers.values().min().is_some_and(|min| *min >= st.last_seq)
        };
        if all_acked && let Err(e) = self.roll() {
            tracing::warn!(error = %e, "cannot seal the spool's active segment to reclaim space");
        }
        if let Err(e) = crate::gc::gc(&self.shared) {
            tracing::warn!(error = %e, "cannot delete consumed spool segments");
        }
    }
}

/// Writes every byte of `slices` at `offset`, in as few `pwritev` calls as `IOV_MAX` and
/// short writes allow.
fn write_all_vectored_at(file: &File, mut slices: &mut [IoSlice<'_>], mut offset: u64) -> std::io::Result<()> {
    while !slices.is_empty() {
        let batch = slices.len().min(IOV_MAX);
        match rustix::io::pwritev(file, &slices[..batch], offset) {
            Ok(0) if slices[..batch].iter().any(|s| !s.is_empty()) => {
                return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "pwritev wrote nothing"));
            }
            Ok(n) => {
                offset += n as u64;
                // Drops the written slices, and the empty ones in front (so this ends even
                // when a batch is only empty slices).
                IoSlice::advance_slices(&mut slices, n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectored_write_covers_more_slices_than_one_call_takes_and_empty_ones() {
        let dir = tempfile::TempDir::new().unwrap();
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(dir.path().join("f")).unwrap();
        let parts: Vec<Vec<u8>> = (0..3 * IOV_MAX + 7).map(|i| vec![(i % 251) as u8; i % 5]).collect();
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        write_all_vectored_at(&file, &mut slices, 10).unwrap();
        let mut expected = vec![0u8; 10];
        expected.extend(parts.concat());
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), expected);
        // Only empty slices: nothing to write, and it ends.
        let empty: Vec<Vec<u8>> = vec![Vec::new(); IOV_MAX + 1];
        let mut slices: Vec<IoSlice<'_>> = empty.iter().map(|p| IoSlice::new(p)).collect();
        write_all_vectored_at(&file, &mut slices, 0).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), expected);
    }
}
