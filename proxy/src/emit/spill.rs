//! The spill file: decisions the pipeline could not take yet, under the proxy's data dir,
//! plus a committed read offset.
//!
//! Each record is one line, `<crc32c of the JSON, 8 hex digits> <JSON>\n`, so a torn or
//! corrupted record is detected and never replayed: a torn tail (a crash mid-append) is cut
//! when the file is opened, a line whose checksum does not match is skipped; both are
//! logged with their offset and counted (`gatelog_proxy_spill_bad_records_total`). The
//! file is bounded (`decisions.spill_max_bytes`): records that would not fit are dropped,
//! counted (`gatelog_proxy_decisions_dropped_total{reason="spill_full"}`) and logged (the
//! first drop, then every 1000th, and how many when there is room again).
//!
//! Replay reads whole records from the offset; after the pipeline answers 2xx for a chunk
//! the offset is advanced and fsynced (write-then-rename), so a delivered chunk is never
//! sent again. When everything is delivered the file is truncated. Appends and commits
//! share one lock, so a request that spills while a replay runs cannot be lost or
//! reordered within the file.

use crate::metrics::{Dropped, Metrics};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The file's name under the data dir (one record a line).
pub const FILE_NAME: &str = "decisions.spill.ndjson";
const OFFSET_NAME: &str = "decisions.spill.offset";
/// `crc32c` as 8 hex digits and a space.
const PREFIX_LEN: usize = 9;

#[derive(Debug)]
struct State {
    len: u64,
    offset: u64,
    /// Records dropped since the file last had room (for the log).
    dropping: u64,
}

/// The spill file and its committed offset.
#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    offset_path: PathBuf,
    max_bytes: u64,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

/// Up to `max_lines` good records from the committed offset, as NDJSON, and the offset
/// after everything read (bad records included, so a commit skips them).
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk {
    pub ndjson: Vec<u8>,
    pub end: u64,
}

/// One framed record.
pub fn frame(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + PREFIX_LEN + 1);
    out.extend_from_slice(format!("{:08x} ", crc32c::crc32c(json)).as_bytes());
    out.extend_from_slice(json);
    out.push(b'\n');
    out
}

/// The JSON of a framed line (without its `\n`), if its checksum matches.
fn unframe(line: &[u8]) -> Option<&[u8]> {
    if line.len() < PREFIX_LEN || line[PREFIX_LEN - 1] != b' ' {
        return None;
    }
    let hex = std::str::from_utf8(&line[..PREFIX_LEN - 1]).ok()?;
    let want = u32::from_str_radix(hex, 16).ok()?;
    let json = &line[PREFIX_LEN..];
    (crc32c::crc32c(json) == want).then_some(json)
}

impl Spill {
    /// Opens (or creates) `dir/decisions.spill.ndjson`, cutting a torn tail.
    pub fn open(dir: &Path, max_bytes: u64, metrics: Arc<Metrics>) -> std::io::Result<Spill> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let offset_path = dir.join(OFFSET_NAME);
        let mut len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let offset =
            std::fs::read_to_string(&offset_path).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0).min(len);
        if len > offset {
            let good = last_line_end(&path, offset, len)?;
            if good < len {
                tracing::error!(path = %path.display(), offset = good, bytes = len - good, "torn record at the end of the decision spill (a crash mid-append); cut, not replayed");
                metrics.spill_torn();
                OpenOptions::new().write(true).open(&path)?.set_len(good)?;
                len = good;
            }
        }
        metrics.set_spill_bytes(len);
        Ok(Spill { path, offset_path, max_bytes, metrics, state: Mutex::new(State { len, offset, dropping: 0 }) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether undelivered decisions are waiting.
    pub fn pending(&self) -> bool {
        let s = self.lock();
        s.offset < s.len
    }

    /// Bytes waiting to be delivered.
    pub fn pending_bytes(&self) -> u64 {
        let s = self.lock();
        s.len - s.offset
    }

    /// Appends NDJSON decisions (one per line), each framed with its checksum, and fsyncs.
    /// Records beyond `spill_max_bytes` are dropped and counted; returns how many were.
    pub fn append(&self, ndjson: &[u8]) -> std::io::Result<u64> {
        let mut s = self.lock();
        let mut buf = Vec::with_capacity(ndjson.len() + 16 * 64);
        let mut dropped = 0;
        for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let framed = frame(line);
            if s.len + (buf.len() + framed.len()) as u64 > self.max_bytes {
                dropped += 1;
                continue;
            }
            buf.extend_from_slice(&framed);
        }
        if !buf.is_empty() {
            let mut f = OpenOptions::new().create(true).append(true).open(&self.path)?;
            f.write_all(&buf)?;
            f.sync_data()?;
            s.len += buf.len() as u64;
            self.metrics.set_spill_bytes(s.len);
        }
        self.note_drops(&mut s, dropped);
        Ok(dropped)
    }

    fn note_drops(&self, s: &mut State, dropped: u64) {
        for _ in 0..dropped {
            self.metrics.dropped(Dropped::SpillFull);
            if s.dropping.is_multiple_of(1000) {
                tracing::error!(path = %self.path.display(), max_bytes = self.max_bytes, dropped_so_far = s.dropping + 1, "decision spill full (decisions.spill_max_bytes); dropping decisions");
            }
            s.dropping += 1;
        }
    }

    fn room_again(&self, s: &mut State) {
        if s.dropping > 0 && s.len < self.max_bytes {
            tracing::warn!(dropped = s.dropping, "decision spill has room again");
            s.dropping = 0;
        }
    }

    /// Up to `max_lines` records from the committed offset (see [`Chunk`]); bad ones are
    /// reported and left out.
    pub fn read_chunk(&self, max_lines: usize) -> std::io::Result<Option<Chunk>> {
        let s = self.lock();
        if s.offset >= s.len {
            return Ok(None);
        }
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(s.offset))?;
        let mut reader = BufReader::new(f.take(s.len - s.offset));
        let mut ndjson = Vec::new();
        let mut line = Vec::new();
        let mut at = s.offset;
        let mut lines = 0;
        while lines < max_lines {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break; // a torn tail is cut at open; nothing after it is read
            }
            match unframe(&line[..n - 1]) {
                Some(json) => {
                    ndjson.extend_from_slice(json);
                    ndjson.push(b'\n');
                    lines += 1;
                }
                None => {
                    tracing::error!(path = %self.path.display(), offset = at, bytes = n, "corrupt record in the decision spill (checksum mismatch); skipped, not replayed");
                    self.metrics.spill_corrupt();
                }
            }
            at += n as u64;
        }
        if at == s.offset {
            return Ok(None);
        }
        Ok(Some(Chunk { ndjson, end: at }))
    }

    /// Records that everything before `end` was delivered (or skipped).
    pub fn commit(&self, end: u64) -> std::io::Result<()> {
        let mut s = self.lock();
        s.offset = end.min(s.len);
        if s.offset == s.len {
            OpenOptions::new().create(true).write(true).truncate(true).open(&self.path)?.sync_all()?;
            s.len = 0;
            s.offset = 0;
            self.metrics.set_spill_bytes(0);
        }
        let tmp = self.offset_path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(s.offset.to_string().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.offset_path)?;
        self.room_again(&mut s);
        Ok(())
    }
}

/// The offset just after the last `\n` at or after `from` (or `from` when there is none).
fn last_line_end(path: &Path, from: u64, len: u64) -> std::io::Result<u64> {
    let mut f = File::open(path)?;
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > from {
        let start = end.saturating_sub(buf.len() as u64).max(from);
        let n = usize::try_from(end - start).unwrap_or(buf.len());
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, max: u64) -> (Spill, Arc<Metrics>) {
        let m = Arc::new(Metrics::default());
        (Spill::open(dir, max, m.clone()).unwrap(), m)
    }

    #[test]
    fn replays_in_order_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (spill, _) = open(dir.path(), 1 << 20);
        assert!(!spill.pending());
        spill.append(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        spill.append(b"{\"a\":3}\n").unwrap();
        let chunk = spill.read_chunk(2).unwrap().unwrap();
        assert_eq!(chunk.ndjson, b"{\"a\":1}\n{\"a\":2}\n");
        spill.commit(chunk.end).unwrap();
        drop(spill);
        let (spill, _) = open(dir.path(), 1 << 20);
        let chunk = spill.read_chunk(10).unwrap().unwrap();
        assert_eq!(chunk.ndjson, b"{\"a\":3}\n");
        spill.commit(chunk.end).unwrap();
        assert!(!spill.pending());
        assert_eq!(std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len(), 0);
    }

    #[test]
    fn frames_round_trip_and_detect_changes() {
        let f = frame(b"{\"a\":1}");
        assert_eq!(unframe(&f[..f.len() - 1]), Some(&b"{\"a\":1}"[..]));
        let mut bad = f.clone();
        bad[12] ^= 1;
        assert_eq!(unframe(&bad[..bad.len() - 1]), None);
        assert_eq!(unframe(b"{\"a\":1}"), None, "an unframed line is not a record");
        assert_eq!(unframe(b"zzzzzzzz {}"), None);
    }
}
