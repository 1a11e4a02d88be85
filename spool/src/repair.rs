//! [`repair`]: what an operator runs when `open` refused a spool whose acknowledged records
//! are damaged or missing and no backup holds them. It accepts the loss explicitly and
//! keeps everything else:
//!
//! - every intact record stays, with its sequence number (records after a damaged one in the
//!   same segment are found again by their magic and checksums);
//! - each run of numbers whose records are gone becomes a **gap record** (see `format`), so
//!   numbering stays dense for readers, who skip gaps, and no acknowledged number is ever
//!   given to a new record: the spool continues after everything it had acknowledged;
//! - a segment that needs rewriting is written whole as `<name>.repair`, fsynced and renamed
//!   over the original, which is first moved aside as `<name>.damaged` for the operator to
//!   look at (and delete); a last segment that only lost its tail gets its gap in place;
//! - records a consumer had not read yet, gone from the front of the spool, become a gap
//!   segment in front of the oldest one;
//! - an `acks` file damaged beyond its two copies is moved aside and made again.
//!
//! It takes the spool's `LOCK`, so it cannot run beside a `gatelog serve` using the spool.
//! Everything it changes is fsynced before it returns, and running it again changes nothing.

use crate::acks::AcksFile;
use crate::format::{self, HEADER_LEN};
use crate::recovery::{Acked, sync_dir};
use crate::{SpoolError, open};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The runs of sequence numbers whose records were lost, now gap records.
    pub lost: Vec<Lost>,
    /// Files moved aside (`*.damaged`): the originals, for an operator to look at and delete.
    pub set_aside: Vec<PathBuf>,
    /// The last sequence number in the spool; new records are numbered after it.
    pub last_seq: u64,
}

/// Records `first..=last` are lost: `why`, found in `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    pub first: u64,
    pub last: u64,
    pub file: PathBuf,
    pub why: String,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lost.is_empty() && self.set_aside.is_empty() {
            return write!(f, "the spool is intact; nothing to repair (last record {})", self.last_seq);
        }
        let records: u64 = self.lost.iter().map(|l| l.last - l.first + 1).sum();
        let s = if records == 1 { "" } else { "s" };
        writeln!(f, "repaired the spool: {records} record{s} lost; new records are numbered after {}", self.last_seq)?;
        for l in &self.lost {
            writeln!(f, "  lost records {}..={} ({}): {}", l.first, l.last, l.file.display(), l.why)?;
        }
        for p in &self.set_aside {
            writeln!(f, "  original kept as {} (delete it once you no longer need it)", p.display())?;
        }
        Ok(())
    }
}

/// Repairs the spool in `dir` (see the module docs). Blocking file I/O; the spool must not
/// be open.
pub fn repair(dir: &Path) -> Result<Repair, SpoolError> {
    let _lock = open::lock_dir(dir)?;
    let mut report = Repair { lost: Vec::new(), set_aside: Vec::new(), last_seq: 0 };
    let acks = match AcksFile::open(dir, true) {
        Err(SpoolError::Corrupt { file, .. }) if file == dir.join(crate::acks::ACKS_FILE) => {
            let aside = set_aside(&file)?;
            report.set_aside.push(aside);
            AcksFile::open(dir, true)?
        }
        other => other?,
    };
    let acked = Acked::new(acks.mark, &acks.consumers);
    let mut segments = open::list_segments(dir)?;
    if segments.is_empty() {
        // Nothing left at all: numbering goes on after everything acknowledged.
        let path = dir.join(format::segment_file_name(acked.seq + 1));
        File::create(&path).and_then(|f| f.sync_all()).map_err(|e| SpoolError::io("creating segment", &path, e))?;
        if acked.seq > 0 {
            let why = "no segment was left".to_string();
            report.lost.push(Lost { first: 1, last: acked.seq, file: dir.to_path_buf(), why });
        }
        segments.push((acked.seq + 1, path));
    }
    // Records a consumer has not read, gone from the front: a gap segment in front.
    let oldest = segments[0].0;
    if let Some(slowest) = acks.consumers.values().copied().min().filter(|seq| seq + 1 < oldest) {
        let path = dir.join(format::segment_file_name(slowest + 1));
        write_new(&path, &format::gap_record(slowest + 1, oldest - 1))?;
        let why = "deleted before every consumer read them".to_string();
        report.lost.push(Lost { first: slowest + 1, last: oldest - 1, file: path.clone(), why });
        segments.insert(0, (slowest + 1, path));
    }
    let mut last_seq = 0;
    for i in 0..segments.len() {
        let (first, path) = &segments[i];
        let next_first = segments.get(i + 1).map(|s| s.0);
        // A sealed segment must hold everything up to the next one; the last, everything
        // acknowledged.
        let end = next_first.map_or(acked.seq, |n| n - 1);
        last_seq = repair_segment(path, *first, end, next_first.is_none(), &mut report)?.max(end);
    }
    sync_dir(dir)?;
    let (file, mut mark_slots) = (acks.file, acks.mark_slots);
    if last_seq > acks.mark {
        mark_slots.write_mark(&file, last_seq)?;
        file.sync()?;
    }
    report.last_seq = last_seq;
    if !report.lost.is_empty() {
        tracing::warn!(dir = %dir.display(), report = %report, "spool repaired: lost records accepted");
    }
    Ok(report)
}

/// Makes one segment whole: its records from `first`, then up to `end` (gaps for what is
/// lost). Returns the last sequence number it holds.
fn repair_segment(path: &Path, first: u64, end: u64, is_last: bool, report: &mut Repair) -> Result<u64, SpoolError> {
    let bytes = fs::read(path).map_err(|e| SpoolError::io("reading segment", path, e))?;
    let found = salvage(&bytes, first, if is_last { u64::MAX } else { end });
    let mut lost = found.lost;
    let mut next = found.next_seq;
    if next <= end {
        let why = if found.damaged_tail {
            "damaged, up to the end of the segment".to_string()
        } else if is_last {
            "missing: the segment was cut short, or a later segment was lost".to_string()
        } else {
            "missing: the segment ends before the next one starts".to_string()
        };
        lost.push((next, end, found.valid_end, why));
        next = end + 1;
    }
    if lost.is_empty() {
        return Ok(next - 1);
    }
    for (from, to, _, why) in &lost {
        report.lost.push(Lost { first: *from, last: *to, file: path.to_path_buf(), why: why.clone() });
    }
    let damaged = found.damaged_tail || lost.iter().any(|(_, _, at, _)| *at < found.valid_end);
    if !damaged {
        // Only numbers missing at the end: their gap goes after the last record, in place.
        let (from, to, at, _) = &lost[0];
        let file = OpenOptions::new().write(true).open(path).map_err(|e| SpoolError::io("opening", path, e))?;
        let gap = format::gap_record(*from, *to);
        std::os::unix::fs::FileExt::write_all_at(&file, &gap, *at)
            .and_then(|()| file.set_len(*at + gap.len() as u64))
            .and_then(|()| file.sync_all())
            .map_err(|e| SpoolError::io("writing a gap record to", path, e))?;
        return Ok(next - 1);
    }
    // Rewritten whole: the intact records as they were, gaps where records are lost.
    let mut out = Vec::with_capacity(bytes.len());
    let mut gaps = lost.iter().peekable();
    for (offset, size, seq) in &found.records {
        while let Some((from, to, _, _)) = gaps.next_if(|(from, _, _, _)| from < seq) {
            out.extend(format::gap_record(*from, *to));
        }
        out.extend_from_slice(&bytes[*offset..*offset + *size]);
    }
    for (from, to, _, _) in gaps {
        out.extend(format::gap_record(*from, *to));
    }
    let aside = set_aside(path)?;
    report.set_aside.push(aside);
    write_new(path, &out)?;
    Ok(next - 1)
}

/// What a segment still holds.
#[derive(Debug, Default)]
struct Salvaged {
    /// Intact records (gap records included) in order: offset, size, sequence number.
    records: Vec<(usize, usize, u64)>,
    /// Runs of lost numbers found between intact records: first, last, offset, why.
    lost: Vec<(u64, u64, u64, String)>,
    /// The number after the last intact record.
    next_seq: u64,
    /// Where the intact records end.
    valid_end: u64,
    /// Whether bytes other than zeros follow them.
    damaged_tail: bool,
}

/// Reads a segment's records from `first`, finding intact records again after damage, up to
/// record `end` at most.
fn salvage(bytes: &[u8], first: u64, end: u64) -> Salvaged {
    let mut s = Salvaged { next_seq: first, ..Salvaged::default() };
    let mut at = 0usize;
    while at < bytes.len() && s.next_seq <= end {
        if let Some((next, size)) = record_at(bytes, at, s.next_seq) {
            s.records.push((at, size, s.next_seq));
            s.next_seq = next;
            at += size;
            continue;
        }
        if bytes[at..].iter().all(|b| *b == 0) {
            break;
        }
        // Damage: the next intact record with a later number, if any.
        let resumed = (at + 1..bytes.len().saturating_sub(HEADER_LEN - 1))
            .filter(|i| bytes[*i..].starts_with(&format::MAGIC))
            .find_map(|i| {
                let head: &[u8; HEADER_LEN] = bytes[i..i + HEADER_LEN].try_into().ok()?;
                let seq = format::decode_header(head).ok()?.seq;
                (seq > s.next_seq && seq <= end).then(|| record_at(bytes, i, seq).map(|_| (i, seq)))?
            });
        match resumed {
            Some((i, seq)) => {
                s.lost.push((s.next_seq, seq - 1, at as u64, "damaged".into()));
                s.next_seq = seq;
                at = i;
            }
            None => {
                s.damaged_tail = true;
                break;
            }
        }
    }
    s.valid_end = s.records.last().map_or(0, |(offset, size, _)| (offset + size) as u64);
    s
}

/// The intact record numbered `seq` at `at`: the number after it and its size.
fn record_at(bytes: &[u8], at: usize, seq: u64) -> Option<(u64, usize)> {
    let (header, payload) = format::decode_record(bytes.get(at..)?)?;
    if header.seq != seq {
        return None;
    }
    let next = match header.gap_last(payload) {
        None => seq + 1,
        Some(Ok(last)) => last + 1,
        Some(Err(_)) => return None,
    };
    Some((next, format::HEADER_LEN + payload.len()))
}

/// Moves `path` aside as `<path>.damaged` (a numbered name if that exists) and returns it.
fn set_aside(path: &Path) -> Result<PathBuf, SpoolError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("."));
    let aside = (0..)
        .map(|i| dir.join(if i == 0 { format!("{name}.damaged") } else { format!("{name}.damaged.{i}") }))
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(format!("{name}.damaged")));
    fs::rename(path, &aside).map_err(|e| SpoolError::io("moving aside", path, e))?;
    Ok(aside)
}

/// Writes `bytes` as the new file `path`: `<path>.repair`, fsync, rename.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    let tmp = PathBuf::from(format!("{}.repair", path.display()));
    File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| SpoolError::io("writing", &tmp, e))
}
