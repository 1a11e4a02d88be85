//! The runtime's checkpoint file, `<data_dir>/detect/checkpoint`: the engine's state, the
//! alert groups and the spool position they cover, written together, atomically (a new file
//! fsynced, renamed over the old one, the directory fsynced), only after the findings, alerts
//! and run record up to that position are stored. So a crash leaves either the old file or
//! the new one, and what lies between them is replayed: the engine and the grouper are
//! deterministic and every row they write is idempotent by id, so the replay stores nothing
//! twice and loses nothing.
//!
//! Format: `GLDW`, format version (u32 LE), position (u64 LE), then two length-prefixed
//! (u64 LE) byte strings (the engine's [`gatelog_detect::Engine::checkpoint`] and the
//! grouper's [`gatelog_detect::AlertGrouper::save`]), then the SHA-256 of everything before.

use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"GLDW";
const FORMAT: u32 = 1;
const FILE: &str = "checkpoint";

/// What a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The spool position whose findings are stored.
    pub position: u64,
    pub engine: Vec<u8>,
    pub alerts: Vec<u8>,
}

/// Why a checkpoint file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointFileError {
    #[error("cannot {what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("{path} is not a detection checkpoint or is damaged: {detail}")]
    Damaged { path: PathBuf, detail: String },
}

/// The checkpoint's directory under the data dir.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("detect")
}

pub fn path(data_dir: &Path) -> PathBuf {
    dir(data_dir).join(FILE)
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CheckpointFileError + 'a {
    move |source| CheckpointFileError::Io { what, path: path.to_owned(), source }
}

impl Checkpoint {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.engine.len() + self.alerts.len() + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&self.position.to_le_bytes());
        for part in [&self.engine, &self.alerts] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
        if bytes.len() < 4 + 4 + 8 + 16 + 32 || &bytes[..4] != MAGIC {
            return Err("no GLDW header".into());
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err("checksum mismatch".into());
        }
        let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().unwrap_or_default());
        let u64_at = |at: usize| body.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
        let format = u32_at(4);
        if format != FORMAT {
            return Err(format!("format {format}, this gatelog reads {FORMAT}"));
        }
        let position = u64_at(8).ok_or("truncated")?;
        let mut at = 16;
        let mut parts = Vec::new();
        for _ in 0..2 {
            let len = usize::try_from(u64_at(at).ok_or("truncated")?).map_err(|_| "length")?;
            at += 8;
            let part = body.get(at..at.checked_add(len).ok_or("length")?).ok_or("truncated")?;
            parts.push(part.to_vec());
            at += len;
        }
        if at != body.len() {
            return Err("trailing bytes".into());
        }
        let alerts = parts.pop().unwrap_or_default();
        let engine = parts.pop().unwrap_or_default();
        Ok(Checkpoint { position, engine, alerts })
    }

    /// Reads the checkpoint under `data_dir`; `Ok(None)` when there is none.
    pub fn load(data_dir: &Path) -> Result<Option<Checkpoint>, CheckpointFileError> {
        let path = path(data_dir);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &path)(e)),
        };
        Checkpoint::decode(&bytes).map(Some).map_err(|detail| CheckpointFileError::Damaged { path, detail })
    }

    /// Replaces the checkpoint under `data_dir` atomically and durably. Blocking.
    pub fn store(&self, data_dir: &Path) -> Result<(), CheckpointFileError> {
        let dir = dir(data_dir);
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let path = dir.join(FILE);
        let tmp = dir.join(format!("{FILE}.tmp"));
        let mut file = File::create(&tmp).map_err(io("create", &tmp))?;
        file.write_all(&self.encode()).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("fsync", &tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io("fsync", &dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Checkpoint::load(dir.path()).unwrap().is_none());
        let cp = Checkpoint { position: 42, engine: vec![1, 2, 3], alerts: vec![9; 100] };
        cp.store(dir.path()).unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), Some(cp.clone()));
        let next = Checkpoint { position: 43, ..cp };
        next.store(dir.path()).unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap().unwrap().position, 43);
        let file = path(dir.path());
        let mut bytes = fs::read(&file).unwrap();
        bytes[20] ^= 1;
        fs::write(&file, &bytes).unwrap();
        let err = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checksum") && err.contains("checkpoint"), "{err}");
        fs::write(&file, b"junk").unwrap();
        assert!(Checkpoint::load(dir.path()).is_err());
    }
}
