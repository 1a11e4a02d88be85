//! The spill file: append-only NDJSON of decisions the pipeline could not take yet, under
//! the proxy's data dir, plus a committed read offset.
//!
//! Replay reads whole lines from the offset; after the pipeline answers 2xx for a chunk the
//! offset is advanced and fsynced (write-then-rename), so a delivered chunk is never sent
//! again. When everything is delivered the file is truncated. Appends and commits share one
//! lock, so a request that spills while a replay runs cannot be lost or reordered within
//! the file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug)]
struct State {
    len: u64,
    offset: u64,
}

/// The spill file and its committed offset.
#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    offset_path: PathBuf,
    state: Mutex<State>,
}

impl Spill {
    /// Opens (or creates) `dir/decisions.spill.ndjson`.
    pub fn open(dir: &Path) -> std::io::Result<Spill> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("decisions.spill.ndjson");
        let offset_path = dir.join("decisions.spill.offset");
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let offset =
            std::fs::read_to_string(&offset_path).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0).min(len);
        Ok(Spill { path, offset_path, state: Mutex::new(State { len, offset }) })
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

    /// Appends NDJSON lines (each ending in `\n`) and fsyncs.
    pub fn append(&self, ndjson: &[u8]) -> std::io::Result<()> {
        let mut s = self.lock();
        let mut f = OpenOptions::new().create(true).append(true).open(&self.path)?;
        f.write_all(ndjson)?;
        f.sync_data()?;
        s.len += ndjson.len() as u64;
        Ok(())
    }

    /// Up to `max_lines` complete lines from the committed offset, and the offset after them.
    pub fn read_chunk(&self, max_lines: usize) -> std::io::Result<Option<(Vec<u8>, u64)>> {
        let s = self.lock();
        if s.offset >= s.len {
            return Ok(None);
        }
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(s.offset))?;
        let mut reader = BufReader::new(f.take(s.len - s.offset));
        let mut out = Vec::new();
        let mut lines = 0;
        while lines < max_lines {
            let before = out.len();
            let n = reader.read_until(b'\n', &mut out)?;
            if n == 0 {
                break;
            }
            if out.last() != Some(&b'\n') {
                out.truncate(before); // a torn last line (crash mid-append) is not replayed yet
                break;
            }
            lines += 1;
        }
        if out.is_empty() {
            return Ok(None);
        }
        let end = s.offset + out.len() as u64;
        Ok(Some((out, end)))
    }

    /// Records that everything before `end` was delivered.
    pub fn commit(&self, end: u64) -> std::io::Result<()> {
        let mut s = self.lock();
        s.offset = end.min(s.len);
        if s.offset == s.len {
            OpenOptions::new().create(true).write(true).truncate(true).open(&self.path)?.sync_all()?;
            s.len = 0;
            s.offset = 0;
        }
        let tmp = self.offset_path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(s.offset.to_string().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.offset_path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_in_order_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(dir.path()).unwrap();
        assert!(!spill.pending());
        spill.append(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        spill.append(b"{\"a\":3}\n").unwrap();
        let (chunk, end) = spill.read_chunk(2).unwrap().unwrap();
        assert_eq!(chunk, b"{\"a\":1}\n{\"a\":2}\n");
        spill.commit(end).unwrap();
        drop(spill);
        let spill = Spill::open(dir.path()).unwrap();
        let (chunk, end) = spill.read_chunk(10).unwrap().unwrap();
        assert_eq!(chunk, b"{\"a\":3}\n");
        spill.commit(end).unwrap();
        assert!(!spill.pending());
        assert_eq!(std::fs::metadata(dir.path().join("decisions.spill.ndjson")).unwrap().len(), 0);
    }
}
