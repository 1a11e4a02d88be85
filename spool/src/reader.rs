//! Readers: an ordered, checksum-verified stream of durable records from a position.

use crate::error::SpoolError;
use crate::format::{self, HEADER_LEN};
use crate::{Shared, lock};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::watch;

/// Records fetched per blocking read.
const BATCH_RECORDS: usize = 1024;
const BATCH_BYTES: usize = 8 << 20;

/// One record: its sequence number and the payload exactly as appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// Reads durable records in order from a position. Only records whose fsync completed are
/// ever returned, so a sink can commit a position without fearing that a crash takes the
/// record back. File reads happen on tokio's blocking pool.
#[derive(Debug)]
pub struct SpoolReader {
    shared: Arc<Shared>,
    /// Next sequence number to fetch from disk.
    next_seq: u64,
    cursor: Option<Kept>,
    buffered: VecDeque<Record>,
    /// Sequence number of the last record returned (`after_seq` before the first).
    returned: u64,
    durable: watch::Receiver<u64>,
}

impl SpoolReader {
    pub(crate) fn new(shared: Arc<Shared>, after_seq: u64) -> Self {
        let durable = shared.durable.subscribe();
        SpoolReader {
            shared,
            next_seq: after_seq.saturating_add(1),
            cursor: None,
            buffered: VecDeque::new(),
            returned: after_seq,
            durable,
        }
    }

    /// The next record, waiting for one to be appended if the reader is caught up.
    /// `Ok(None)` once the spool is closed (or dropped) and everything durable was read.
    pub async fn next(&mut self) -> Result<Option<Record>, SpoolError> {
        loop {
            if let Some(record) = self.try_next().await? {
                return Ok(Some(record));
            }
            if self.shared.closed.load(Ordering::SeqCst) {
                return self.try_next().await;
            }
            if self.durable.changed().await.is_err() {
                return self.try_next().await;
            }
        }
    }

    /// The next record if one is durable now, `Ok(None)` when caught up.
    pub async fn try_next(&mut self) -> Result<Option<Record>, SpoolError> {
        if let Some(record) = self.buffered.pop_front() {
            self.returned = record.seq;
            return Ok(Some(record));
        }
        let durable = *self.durable.borrow_and_update();
        if self.next_seq > durable {
            // Caught up: let go of the file. A segment every consumer is done with may be
            // deleted meanwhile, and an open file would keep its space (which a full disk
            // needs back).
            if let Some(Kept::Open(c)) = self.cursor.take() {
                self.cursor = Some(Kept::Parked(c.park()));
            }
            return Ok(None);
        }
        let shared = Arc::clone(&self.shared);
        let cursor = self.cursor.take();
        let from = self.next_seq;
        let (cursor, records, next) = tokio::task::spawn_blocking(move || read_batch(&shared, cursor, from, durable))
            .await
            .map_err(|e| SpoolError::io("reading", PathBuf::new(), io::Error::other(e.to_string())))??;
        self.cursor = cursor;
        self.next_seq = next;
        self.buffered.extend(records);
        let record = self.buffered.pop_front();
        if let Some(r) = &record {
            self.returned = r.seq;
        }
        Ok(record)
    }

    /// Sequence number of the last record returned (the reader's position).
    pub fn position(&self) -> u64 {
        self.returned
    }
}

/// Where a reader is in a segment: with the file open, or parked (the file closed while the
/// reader waits for records).
#[derive(Debug)]
enum Kept {
    Open(Cursor),
    Parked(Parked),
}

#[derive(Debug)]
struct Parked {
    seg_first: u64,
    path: PathBuf,
    offset: u64,
    seq: u64,
}

#[derive(Debug)]
struct Cursor {
    seg_first: u64,
    path: PathBuf,
    file: BufReader<File>,
    offset: u64,
    /// Sequence number of the record at `offset`.
    seq: u64,
}

/// Reads the durable records from `from` on (a bounded batch): the cursor to keep, the
/// records, and the sequence number to read next (past any gap record).
fn read_batch(
    shared: &Shared,
    kept: Option<Kept>,
    from: u64,
    durable: u64,
) -> Result<(Option<Kept>, Vec<Record>, u64), SpoolError> {
    // Segments are registered before any record in them becomes durable, so this snapshot
    // (taken after reading `durable`) covers every record up to it.
    let segments: Vec<(u64, PathBuf)> =
        lock(&shared.state).segments.iter().map(|(first, seg)| (*first, seg.path.clone())).collect();
    let oldest = segments.first().map_or(durable + 1, |s| s.0);
    let mut cursor = match kept {
        Some(Kept::Open(c)) => Some(c),
        Some(Kept::Parked(p)) if p.seq == from => Cursor::resume(p)?,
        Some(Kept::Parked(_)) | None => None,
    };
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut seq = from;
    while seq <= durable && out.len() < BATCH_RECORDS && bytes < BATCH_BYTES {
        let idx = segments.partition_point(|(first, _)| *first <= seq);
        if idx == 0 {
            return Err(gone(seq, oldest));
        }
        let (seg_first, path) = &segments[idx - 1];
        let c = match cursor.take() {
            Some(mut c) if c.seg_first == *seg_first && c.seq == seq => {
                if seq == from {
                    c.drop_read_ahead()?;
                }
                cursor.insert(c)
            }
            _ => cursor.insert(Cursor::open_at(path, *seg_first, seq, oldest)?),
        };
        match c.read_entry()? {
            Entry::Record(record) => {
                bytes += record.payload.len() + HEADER_LEN;
                out.push(record);
                seq += 1;
            }
            // Numbers whose records were lost (and the loss accepted): nothing to return.
            Entry::Gap { last } => seq = last + 1,
        }
    }
    Ok((cursor.map(Kept::Open), out, seq))
}

/// What a cursor reads: a record, or a gap record standing for lost numbers up to `last`.
enum Entry {
    Record(Record),
    Gap { last: u64 },
}

fn gone(seq: u64, oldest: u64) -> SpoolError {
    SpoolError::PositionGone { consumer: "reader".into(), requested: seq.saturating_sub(1), oldest }
}

impl Cursor {
    /// Closes the file, keeping the place.
    fn park(self) -> Parked {
        Parked { seg_first: self.seg_first, path: self.path, offset: self.offset, seq: self.seq }
    }

    /// Opens a parked cursor's file again at its place; `None` if the segment was deleted
    /// (the caller starts from the segment list again).
    fn resume(p: Parked) -> Result<Option<Cursor>, SpoolError> {
        let mut file = match File::open(&p.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SpoolError::io("opening segment", &p.path, e)),
        };
        file.seek(SeekFrom::Start(p.offset)).map_err(|e| SpoolError::io("seeking in segment", &p.path, e))?;
        Ok(Some(Cursor {
            seg_first: p.seg_first,
            path: p.path,
            file: BufReader::with_capacity(256 << 10, file),
            offset: p.offset,
            seq: p.seq,
        }))
    }

    /// Opens `path` and skips to the record `seq` (headers are verified on the way).
    fn open_at(path: &Path, seg_first: u64, seq: u64, oldest: u64) -> Result<Cursor, SpoolError> {
        let file = match File::open(path) {
            Ok(f) => f,
            // Deleted between the snapshot and now: every consumer moved past it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(gone(seq, oldest.max(seg_first + 1)));
            }
            Err(e) => return Err(SpoolError::io("opening segment", path, e)),
        };
        let mut c = Cursor {
            seg_first,
            path: path.to_path_buf(),
            file: BufReader::with_capacity(256 << 10, file),
            offset: 0,
            seq: seg_first,
        };
        while c.seq < seq {
            let header = c.read_header()?;
            let next = if header.flags & format::FLAG_GAP != 0 {
                let mut payload = vec![0u8; header.len as usize];
                c.read_payload(&header, &mut payload)?;
                let last = c.gap_last(&header, &payload)?;
                if last >= seq {
                    // `seq` is one of the gap's numbers: stop at the gap, which reads as a gap.
                    c.file
                        .seek(SeekFrom::Start(c.offset))
                        .map_err(|e| SpoolError::io("seeking in segment", path, e))?;
                    return Ok(c);
                }
                last + 1
            } else {
                c.file
                    .seek_relative(i64::from(header.len))
                    .map_err(|e| SpoolError::io("seeking in segment", path, e))?;
                c.seq + 1
            };
            c.offset += format::record_size(u64::from(header.len));
            c.seq = next;
        }
        Ok(c)
    }

    /// Forgets the bytes read ahead past the last record returned. A cursor kept from an
    /// earlier batch may have buffered bytes that were not records yet: the zeros of a
    /// preallocated segment, or a write that failed and was cut back. Records appended since
    /// are only seen by reading the file again.
    fn drop_read_ahead(&mut self) -> Result<(), SpoolError> {
        // Seeking a `BufReader` always discards its buffer.
        self.file
            .seek(SeekFrom::Start(self.offset))
            .map(|_| ())
            .map_err(|e| SpoolError::io("seeking in segment", self.path.clone(), e))
    }

    fn corrupt(&self, detail: String) -> SpoolError {
        SpoolError::Corrupt { file: self.path.clone(), offset: self.offset, detail }
    }

    fn read_header(&mut self) -> Result<format::Header, SpoolError> {
        let mut head = [0u8; HEADER_LEN];
        if let Err(e) = self.file.read_exact(&mut head) {
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                self.corrupt(format!("record {} is missing: the segment ends early", self.seq))
            } else {
                SpoolError::io("reading segment", self.path.clone(), e)
            });
        }
        let header = format::decode_header(&head).map_err(|e| self.corrupt(e.to_string()))?;
        if header.seq != self.seq {
            return Err(self.corrupt(format!("record has sequence {} where {} was expected", header.seq, self.seq)));
        }
        Ok(header)
    }

    fn read_payload(&mut self, header: &format::Header, payload: &mut [u8]) -> Result<(), SpoolError> {
        if let Err(e) = self.file.read_exact(payload) {
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                self.corrupt(format!("record {} is cut short", self.seq))
            } else {
                SpoolError::io("reading segment", self.path.clone(), e)
            });
        }
        if !format::payload_ok(header, payload) {
            return Err(self.corrupt(format!("record {} payload checksum mismatch", self.seq)));
        }
        Ok(())
    }

    fn gap_last(&self, header: &format::Header, payload: &[u8]) -> Result<u64, SpoolError> {
        match header.gap_last(payload) {
            Some(Ok(last)) => Ok(last),
            Some(Err(detail)) => Err(self.corrupt(detail)),
            None => Ok(header.seq),
        }
    }

    fn read_entry(&mut self) -> Result<Entry, SpoolError> {
        let header = self.read_header()?;
        let mut payload = vec![0u8; header.len as usize];
        self.read_payload(&header, &mut payload)?;
        let gap = if header.flags & format::FLAG_GAP != 0 { Some(self.gap_last(&header, &payload)?) } else { None };
        self.offset += format::record_size(u64::from(header.len));
        if let Some(last) = gap {
            self.seq = last + 1;
            return Ok(Entry::Gap { last });
        }
        let record = Record { seq: self.seq, payload };
        self.seq += 1;
        Ok(Entry::Record(record))
    }
}
