//! Reading segments back at `open`: the torn-tail vs corruption decision, and the consumers
//! file. See the crate docs for the rules.

use crate::SpoolError;
use crate::format::{self, HEADER_LEN};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// What a full scan of a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Length of the valid prefix (the file is cut here if it was torn).
    pub valid_len: u64,
    /// Last valid sequence number (`first_seq - 1` if the segment holds no record).
    pub last_seq: u64,
    /// `Some((offset, why))` if bytes after `valid_len` were a torn tail.
    pub torn: Option<(u64, String)>,
}

/// Scans a whole segment, verifying every record. A bad record is a torn tail (`Scan::torn`)
/// only when `is_last` and nothing valid follows it; otherwise it is `Corrupt`.
pub(crate) fn scan_segment(path: &Path, first_seq: u64, is_last: bool) -> Result<Scan, SpoolError> {
    let file = File::open(path).map_err(|e| SpoolError::io("opening segment", path, e))?;
    let file_len = file.metadata().map_err(|e| SpoolError::io("reading metadata of", path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let mut seq = first_seq;
    let mut payload = Vec::new();
    loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            return Ok(Scan { valid_len: offset, last_seq: seq - 1, torn: None });
        }
        if remaining < HEADER_LEN as u64 {
            return classify(
                path,
                is_last,
                offset,
                seq,
                format!("partial record header ({remaining} of {HEADER_LEN} bytes)"),
                false,
            );
        }
        let mut head = [0u8; HEADER_LEN];
        reader.read_exact(&mut head).map_err(|e| SpoolError::io("reading segment", path, e))?;
        let header = match format::decode_header(&head) {
            Ok(h) => h,
            Err(e) => return classify(path, is_last, offset, seq, e.to_string(), true),
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
            return classify(
                path,
                is_last,
                offset,
                seq,
                format!("record {seq} of {size} bytes extends past the end of the file ({remaining} bytes left)"),
                false,
            );
        }
        payload.resize(header.len as usize, 0);
        reader.read_exact(&mut payload).map_err(|e| SpoolError::io("reading segment", path, e))?;
        if !format::payload_ok(&header, &payload) {
            return classify(path, is_last, offset, seq, format!("record {seq} payload checksum mismatch"), true);
        }
        offset += size;
        seq += 1;
    }
}

/// Decides what a bad record at `offset` is: the zeros of a preallocated segment (the end of
/// the data, kept), a torn tail (cut it) or corruption (fail loudly).
fn classify(
    path: &Path,
    is_last: bool,
    offset: u64,
    seq: u64,
    detail: String,
    resync: bool,
) -> Result<Scan, SpoolError> {
    let corrupt = |detail: String| SpoolError::Corrupt { file: path.to_path_buf(), offset, detail };
    if !is_last {
        return Err(corrupt(detail));
    }
    if only_zeros_from(path, offset)? {
        return Ok(Scan { valid_len: offset, last_seq: seq - 1, torn: None });
    }
    if resync && valid_record_follows(path, offset)? {
        return Err(corrupt(format!("{detail}, and valid records follow it")));
    }
    Ok(Scan { valid_len: offset, last_seq: seq - 1, torn: Some((offset, detail)) })
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

/// Cheap check of a sealed (non-last) segment at open: non-empty and its first header names
/// the right sequence. Its records are verified as they are read.
pub(crate) fn check_sealed(path: &Path, first_seq: u64) -> Result<u64, SpoolError> {
    let mut file = File::open(path).map_err(|e| SpoolError::io("opening segment", path, e))?;
    let len = file.metadata().map_err(|e| SpoolError::io("reading metadata of", path, e))?.len();
    let corrupt = |detail: String| SpoolError::Corrupt { file: path.to_path_buf(), offset: 0, detail };
    if len < HEADER_LEN as u64 {
        return Err(corrupt(format!("sealed segment is only {len} bytes long")));
    }
    let mut head = [0u8; HEADER_LEN];
    file.read_exact(&mut head).map_err(|e| SpoolError::io("reading segment", path, e))?;
    let header = format::decode_header(&head).map_err(|e| corrupt(e.to_string()))?;
    if header.seq != first_seq {
        return Err(corrupt(format!("first record has sequence {} but the file name says {first_seq}", header.seq)));
    }
    Ok(len)
}

/// Name of the file holding the last acknowledgement of every registered consumer.
pub(crate) const CONSUMERS_FILE: &str = "consumers.ack";
const CONSUMERS_MAGIC: [u8; 4] = *b"GLCA";
const CONSUMERS_VERSION: u8 = 1;

/// `magic ‖ version ‖ count u32 ‖ (name_len u16 ‖ name ‖ seq u64)* ‖ crc32c(all before)`.
pub(crate) fn encode_consumers(consumers: &BTreeMap<String, u64>) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&CONSUMERS_MAGIC);
    buf.push(CONSUMERS_VERSION);
    buf.extend_from_slice(&u32::try_from(consumers.len()).unwrap_or(u32::MAX).to_le_bytes());
    for (name, seq) in consumers {
        buf.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_le_bytes());
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
    }
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

pub(crate) fn decode_consumers(bytes: &[u8]) -> Result<BTreeMap<String, u64>, String> {
    if bytes.len() < 13 {
        return Err(format!("file is only {} bytes long", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != crc {
        return Err("checksum mismatch".into());
    }
    if body[0..4] != CONSUMERS_MAGIC || body[4] != CONSUMERS_VERSION {
        return Err("bad magic or version".into());
    }
    let count = u32::from_le_bytes([body[5], body[6], body[7], body[8]]);
    let mut at = 9;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let s = body.get(at..at + n).ok_or_else(|| "truncated entry".to_string())?;
        at += n;
        Ok(s)
    };
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let l = take(2)?;
        let name_len = usize::from(u16::from_le_bytes([l[0], l[1]]));
        let name = String::from_utf8(take(name_len)?.to_vec()).map_err(|_| "consumer name is not UTF-8".to_string())?;
        let s = take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        out.insert(name, u64::from_le_bytes(a));
    }
    Ok(out)
}

pub(crate) fn load_consumers(dir: &Path) -> Result<BTreeMap<String, u64>, SpoolError> {
    let path = dir.join(CONSUMERS_FILE);
    match fs::read(&path) {
        Ok(bytes) => decode_consumers(&bytes).map_err(|detail| SpoolError::Corrupt { file: path, offset: 0, detail }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(SpoolError::io("reading", path, e)),
    }
}

/// Atomically replaces the consumers file: write a temp file, fsync it, rename, fsync the dir.
pub(crate) fn store_consumers(dir: &Path, consumers: &BTreeMap<String, u64>) -> Result<(), SpoolError> {
    let tmp = dir.join(format!("{CONSUMERS_FILE}.tmp"));
    let path = dir.join(CONSUMERS_FILE);
    let mut file = File::create(&tmp).map_err(|e| SpoolError::io("creating", &tmp, e))?;
    file.write_all(&encode_consumers(consumers)).map_err(|e| SpoolError::io("writing", &tmp, e))?;
    file.sync_all().map_err(|e| SpoolError::io("fsyncing", &tmp, e))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| SpoolError::io("renaming", &tmp, e))?;
    sync_dir(dir)
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
    fn consumers_round_trip_and_detect_damage() {
        let mut m = BTreeMap::new();
        m.insert("clickhouse".to_string(), 42);
        m.insert("tantivy".to_string(), 7);
        let bytes = encode_consumers(&m);
        assert_eq!(decode_consumers(&bytes).unwrap(), m);
        assert_eq!(decode_consumers(&encode_consumers(&BTreeMap::new())).unwrap(), BTreeMap::new());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode_consumers(&bad).is_err(), "flip at {i} undetected");
        }
        assert!(decode_consumers(&bytes[..bytes.len() - 1]).is_err());
    }
}
