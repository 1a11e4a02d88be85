//! Reading segments back at `open`: the torn-tail vs corruption decision against what was
//! acknowledged, and the consumers file of older spools. See the crate docs for the rules.

use crate::SpoolError;
use crate::format::{self, HEADER_LEN};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// What the spool had acknowledged before this `open`: every record up to `seq` was answered
/// to an appender or committed by a consumer, so it must still be there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acked {
    pub seq: u64,
    /// Where `seq` comes from, for the corruption report.
    pub why: String,
}

impl Acked {
    /// From the mark (appends answered) and the consumers' positions in the `acks` file.
    pub(crate) fn new(mark: u64, consumers: &BTreeMap<String, u64>) -> Acked {
        let mut why = vec![format!("appends answered up to {mark}")];
        why.extend(consumers.iter().map(|(name, seq)| format!("consumer {name} committed up to {seq}")));
        Acked { seq: consumers.values().copied().fold(mark, u64::max), why: why.join(", ") }
    }
}

/// What a full scan of the last segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Length of the valid prefix (the file is cut here if it was torn).
    pub valid_len: u64,
    /// Length of the file as found (more than `valid_len` for preallocated zeros or a tail).
    pub file_len: u64,
    /// Last valid sequence number (`first_seq - 1` if the segment holds no record).
    pub last_seq: u64,
    /// `Some((offset, why))` if bytes after `valid_len` were a torn tail.
    pub torn: Option<(u64, String)>,
}

/// Scans the last segment, verifying every record, and decides what its end is: the end of
/// the data, a torn tail (nothing valid after it and nothing in it acknowledged: cut) or
/// corruption (`Corrupt`: valid records follow the damage, or records up to `acked.seq` are
/// damaged or missing).
pub(crate) fn scan_last(path: &Path, first_seq: u64, acked: &Acked) -> Result<Scan, SpoolError> {
    let file = File::open(path).map_err(|e| SpoolError::io("opening segment", path, e))?;
    let file_len = file.metadata().map_err(|e| SpoolError::io("reading metadata of", path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let mut seq = first_seq;
    let mut payload = Vec::new();
    let end = |offset: u64, seq: u64, detail: String, resync: bool| Bad { path, file_len, offset, seq, detail, resync };
    loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            return end(offset, seq, String::new(), false).classify(acked);
        }
        if remaining < HEADER_LEN as u64 {
            let detail = format!("partial record header ({remaining} of {HEADER_LEN} bytes)");
            return end(offset, seq, detail, false).classify(acked);
        }
        let mut head = [0u8; HEADER_LEN];
        reader.read_exact(&mut head).map_err(|e| SpoolError::io("reading segment", path, e))?;
        let header = match format::decode_header(&head) {
            Ok(h) => h,
            Err(e) => return end(offset, seq, e.to_string(), true).classify(acked),
        };
        if header.seq != seq {
            // A header with a valid checksum but the wrong number is never a torn write.
            return Err(SpoolError::Corrupt {
                file: path.to_path_buf(),
                offset,
                detail: format!("record has sequence {} where {seq} was expected", header.seq),
            });
        }
        let size = format::record_size(u64::from(header.len));
        if size > remaining {
            let detail =
                format!("record {seq} of {size} bytes extends past the end of the file ({remaining} bytes left)");
            return end(offset, seq, detail, false).classify(acked);
        }
        payload.resize(header.len as usize, 0);
        reader.read_exact(&mut payload).map_err(|e| SpoolError::io("reading segment", path, e))?;
        if !format::payload_ok(&header, &payload) {
            return end(offset, seq, format!("record {seq} payload checksum mismatch"), true).classify(acked);
        }
        offset += size;
        seq = match header.gap_last(&payload) {
            None => seq + 1,
            Some(Ok(last)) => last + 1,
            Some(Err(detail)) => {
                return Err(SpoolError::Corrupt { file: path.to_path_buf(), offset: offset - size, detail });
            }
        };
    }
}

/// Where the valid records of the last segment end: at `offset`, where record `seq` would
/// start, because of `detail` (empty at the end of the file).
struct Bad<'a> {
    path: &'a Path,
    file_len: u64,
    offset: u64,
    seq: u64,
    detail: String,
    /// Whether a valid record may follow (a bad header or payload, not a short one).
    resync: bool,
}

impl Bad<'_> {
    /// The end of the data (the end of the file, or the zeros of a preallocated segment:
    /// kept), a torn tail (cut) or corruption (fail loudly).
    fn classify(self, acked: &Acked) -> Result<Scan, SpoolError> {
        let Bad { path, file_len, offset, seq, detail, resync } = self;
        let corrupt = |detail: String| SpoolError::Corrupt { file: path.to_path_buf(), offset, detail };
        let scan = |torn| Ok(Scan { valid_len: offset, file_len, last_seq: seq - 1, torn });
        let clean_end = detail.is_empty() || only_zeros_from(path, offset)?;
        if !clean_end && resync && valid_record_follows(path, offset)? {
            return Err(corrupt(format!("{detail}, and valid records follow it; {}", lost_advice(acked.seq))));
        }
        if seq <= acked.seq {
            let what = if clean_end {
                format!(
                    "the spool ends at record {}, but records up to {} were acknowledged ({}): records {seq}..={} \
                     are missing (the segment was cut short, or a later segment was lost)",
                    seq - 1,
                    acked.seq,
                    acked.why,
                    acked.seq
                )
            } else {
                format!(
                    "record {seq} is damaged ({detail}), but records up to {} were acknowledged ({})",
                    acked.seq, acked.why
                )
            };
            return Err(corrupt(format!("{what}; {}", lost_advice(acked.seq))));
        }
        if clean_end { scan(None) } else { scan(Some((offset, detail))) }
    }
}

/// Why records of a sealed segment (before `next_first`) were acknowledged, and the advice.
fn sealed_acked(acked: &Acked, next_first: u64) -> String {
    format!(
        "A segment is only started once every record before it was acknowledged; records up to {} were \
         acknowledged ({}); {}",
        acked.seq,
        acked.why,
        lost_advice(acked.seq.max(next_first - 1))
    )
}

/// What an operator can do about acknowledged records that are damaged or gone.
pub(crate) fn lost_advice(acked: u64) -> String {
    format!(
        "nothing was changed. Restore the spool directory from a backup if one holds these records; \
         otherwise accept their loss with the spool's repair (`gatelog spool repair`), which keeps \
         every intact record and numbers new ones after {acked}, so no acknowledged sequence number is reused"
    )
}

/// True if every byte from `offset` to the end of the file is zero: the unwritten part of a
/// preallocated segment (`prealloc`). Read in pieces, so a large spare costs no memory.
fn only_zeros_from(path: &Path, offset: u64) -> Result<bool, SpoolError> {
    let mut file = File::open(path).map_err(|e| SpoolError::io("opening segment", path, e))?;
    file.seek(SeekFrom::Start(offset)).map_err(|e| SpoolError::io("seeking segment", path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| SpoolError::io("reading segment", path, e))?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
}

/// True if some complete, checksum-valid record starts anywhere after `offset`. Used to tell
/// a damaged record in the middle (something valid follows: corruption) from a torn tail
/// (only garbage or zeros follow).
fn valid_record_follows(path: &Path, offset: u64) -> Result<bool, SpoolError> {
    let mut file = File::open(path).map_err(|e| SpoolError::io("opening segment", path, e))?;
    file.seek(SeekFrom::Start(offset + 1)).map_err(|e| SpoolError::io("seeking segment", path, e))?;
    let mut rest = Vec::new();
    file.read_to_end(&mut rest).map_err(|e| SpoolError::io("reading segment", path, e))?;
    let mut from = 0;
    while let Some(pos) = find(&rest[from..], &format::MAGIC) {
        if format::decode_record(&rest[from + pos..]).is_some() {
            return Ok(true);
        }
        from += pos + 1;
    }
    Ok(false)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What [`check_sealed`] found in a sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sealed {
    /// Where its records end (zeros a crash kept from being trimmed may follow).
    pub records_end: u64,
    pub file_len: u64,
}

/// Checks a sealed (non-last) segment at open: its records run without a break from
/// `first_seq` to `next_first - 1`, where the next segment starts. Only the headers are read
/// (magic, version, flags, header checksum, sequence, length; and a gap record's end): the
/// payloads are verified as readers read them. So a segment lost between two others, or the
/// segment holding the last records lost while an empty segment after it remains (the writer
/// starts the next segment ahead of time), is refused here with the file and offset where
/// the records stop, instead of being found by the first reader to get there. With
/// `payloads`, every payload's checksum is verified too.
pub(crate) fn check_sealed(
    path: &Path,
    first_seq: u64,
    next_first: u64,
    acked: &Acked,
    payloads: bool,
) -> Result<Sealed, SpoolError> {
    let file = File::open(path).map_err(|e| SpoolError::io("opening segment", path, e))?;
    let file_len = file.metadata().map_err(|e| SpoolError::io("reading metadata of", path, e))?.len();
    // A page: with large records each header costs one page read, not the record's.
    let mut reader = BufReader::with_capacity(4096, file);
    let mut offset = 0u64;
    let mut seq = first_seq;
    let mut payload = Vec::new();
    let corrupt = |offset: u64, detail: String| SpoolError::Corrupt { file: path.to_path_buf(), offset, detail };
    let stopped = loop {
        if seq >= next_first {
            break None;
        }
        let remaining = file_len - offset;
        if remaining == 0 {
            break Some("the file ends there".to_string());
        }
        if remaining < HEADER_LEN as u64 {
            break Some(format!("a partial record header ({remaining} of {HEADER_LEN} bytes) follows"));
        }
        let mut head = [0u8; HEADER_LEN];
        reader.read_exact(&mut head).map_err(|e| SpoolError::io("reading segment", path, e))?;
        if head.iter().all(|b| *b == 0) {
            break Some("only zeros follow".to_string());
        }
        let header = format::decode_header(&head).map_err(|e| {
            corrupt(
                offset,
                format!(
                    "{e} in a sealed segment (record {seq} expected); records up to {} were acknowledged ({}); {}",
                    acked.seq,
                    acked.why,
                    lost_advice(acked.seq)
                ),
            )
        })?;
        if header.seq != seq {
            return Err(corrupt(offset, format!("record has sequence {} where {seq} was expected", header.seq)));
        }
        let size = format::record_size(u64::from(header.len));
        if size > remaining {
            break Some(format!("record {seq} of {size} bytes runs past the end of the file ({remaining} bytes left)"));
        }
        seq = if payloads || header.flags & format::FLAG_GAP != 0 {
            payload.resize(header.len as usize, 0);
            reader.read_exact(&mut payload).map_err(|e| SpoolError::io("reading segment", path, e))?;
            if !format::payload_ok(&header, &payload) {
                let detail =
                    format!("record {seq} is damaged (payload checksum mismatch). {}", sealed_acked(acked, next_first));
                return Err(corrupt(offset, detail));
            }
            match header.gap_last(&payload) {
                None => seq + 1,
                Some(Ok(last)) => last + 1,
                Some(Err(detail)) => return Err(corrupt(offset, detail)),
            }
        } else {
            reader.seek_relative(i64::from(header.len)).map_err(|e| SpoolError::io("seeking in segment", path, e))?;
            seq + 1
        };
        offset += size;
    };
    if let Some(why) = stopped {
        let next = path.with_file_name(format::segment_file_name(next_first));
        let held = if seq == first_seq {
            format!("this sealed segment holds no record ({why})")
        } else {
            format!("the records of this sealed segment stop at record {} ({why})", seq - 1)
        };
        return Err(corrupt(
            offset,
            format!(
                "{held}, but the next segment, {}, starts at record {next_first}: records {seq}..={} are missing \
                 (this segment was cut short, or the segment that held them was lost). {}",
                next.display(),
                next_first - 1,
                sealed_acked(acked, next_first)
            ),
        ));
    }
    if seq > next_first {
        let detail = format!("a gap record runs to {}, past the next segment's first record {next_first}", seq - 1);
        return Err(corrupt(offset, detail));
    }
    Ok(Sealed { records_end: offset, file_len })
}

/// The consumers file of older spools (`consumers.ack`, replaced by `acks`):
/// `b"GLCA" ‖ version 1 ‖ count u32 ‖ (name_len u16 ‖ name ‖ seq u64)* ‖ crc32c(all before)`.
/// An absent file is no consumers.
pub(crate) fn load_legacy_consumers(path: &Path) -> Result<BTreeMap<String, u64>, SpoolError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(SpoolError::io("reading", path, e)),
    };
    let corrupt = |detail: String| SpoolError::Corrupt { file: path.to_path_buf(), offset: 0, detail };
    if bytes.len() < 13 {
        return Err(corrupt(format!("file is only {} bytes long", bytes.len())));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    if body[0..4] != LEGACY_MAGIC || body[4] != 1 {
        return Err(corrupt("bad magic or version".into()));
    }
    crate::acks::decode_consumers(&body[5..]).map_err(corrupt)
}

const LEGACY_MAGIC: [u8; 4] = *b"GLCA";

/// An older spool's consumers file, for the test that it is taken over.
#[cfg(test)]
pub(crate) fn encode_legacy_consumers(consumers: &BTreeMap<String, u64>) -> Vec<u8> {
    let mut buf = LEGACY_MAGIC.to_vec();
    buf.push(1);
    buf.extend(crate::acks::encode_consumers(consumers));
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// Deletes `path`; a file that is not there is fine.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// fsync of a directory: makes file creations, renames and deletions in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| SpoolError::io("fsyncing directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_consumers_files_are_read_and_damage_is_detected() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("consumers.ack");
        assert_eq!(load_legacy_consumers(&path).unwrap(), BTreeMap::new());
        let mut m = BTreeMap::new();
        m.insert("clickhouse".to_string(), 42);
        m.insert("tantivy".to_string(), 7);
        let bytes = encode_legacy_consumers(&m);
        fs::write(&path, &bytes).unwrap();
        assert_eq!(load_legacy_consumers(&path).unwrap(), m);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            fs::write(&path, &bad).unwrap();
            assert!(matches!(load_legacy_consumers(&path), Err(SpoolError::Corrupt { .. })), "flip at {i} undetected");
        }
    }
}
