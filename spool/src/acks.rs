//! The `acks` file: what the spool has acknowledged, written in place so that recording an
//! acknowledgement never needs free space.
//!
//! It holds two things, each in a pair of fixed slots:
//! - the **mark**: the highest sequence number answered to an appender (written by the writer
//!   thread after each group commit, before any caller of the group is answered);
//! - the **consumers' positions** (written on every `ack`, made durable before segments are
//!   deleted).
//!
//! ```text
//! offset           size  content
//! 0                4096  mark slot 0
//! 4096             4096  mark slot 1
//! 8192             16384 consumers slot 0
//! 24576            16384 consumers slot 1          (the file is 40960 bytes)
//!
//! slot: magic b"GLAK" ‖ version 1 ‖ kind u8 (1 mark, 2 consumers) ‖ 0u16 ‖ generation u64 ‖
//!       body_len u32 ‖ body ‖ crc32c(everything before)        (little-endian; rest unused)
//! mark body:      acked u64
//! consumers body: count u32 ‖ (name_len u16 ‖ name ‖ seq u64)*
//! ```
//!
//! # Why it is crash-safe
//!
//! The file is created whole (zeros, then the first slots) as `acks.tmp`, fsynced and renamed,
//! so every block it will ever use is allocated before the spool opens: later updates are
//! `pwrite`s over allocated blocks (and `fdatasync` of those), which need no free space on
//! ext4, xfs or tmpfs (a copy-on-write file system such as btrfs may still need some).
//!
//! Of each pair, one slot holds the last state known durable and is never written until the
//! other slot's newer state has been fsynced; updates in between all go to the other slot
//! (each with a higher generation). A crash can therefore tear at most the slot being
//! written, and `open` takes the valid slot with the highest generation: the newest complete
//! state, or the one before it, never a mixture. Slots sit in separate 4 KiB pages, so
//! writing one never rewrites the other's sectors.
//!
//! What each value may lag by after a crash, and why that is safe: both are lower bounds
//! used to detect lost data (`open` refuses when records at or below them are missing). A
//! process crash (kill -9) loses nothing written with `pwrite`, so both are exact then. A
//! machine crash may return the state of the last `fdatasync` of the file (the writer's,
//! after a second without appends or at close; or before any segment deletion) or of the
//! kernel's writeback since: a lower bound, which can only make a later check less strict,
//! never wrong. Deletion stays safe because segments are unlinked only after the positions
//! that allow it were fsynced, and a durable slot is never overwritten before a newer one is.

use crate::SpoolError;
use crate::recovery::{remove_if_present, sync_dir};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Name of the file in the spool directory.
pub(crate) const ACKS_FILE: &str = "acks";
const ACKS_TMP: &str = "acks.tmp";
/// The file `acks` replaced: the consumers' positions, rewritten whole through a temp file,
/// which needed free space. Read once at open, then deleted.
pub(crate) const LEGACY_CONSUMERS_FILE: &str = "consumers.ack";

const MAGIC: [u8; 4] = *b"GLAK";
const VERSION: u8 = 1;
const SLOT_HEADER: usize = 4 + 1 + 1 + 2 + 8 + 4;
const MARK_SLOT: u64 = 4096;
const CONSUMERS_SLOT: u64 = 16384;
const FILE_LEN: u64 = 2 * MARK_SLOT + 2 * CONSUMERS_SLOT;

/// Which pair of slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Mark = 1,
    Consumers = 2,
}

impl Kind {
    fn offsets(self) -> [u64; 2] {
        match self {
            Kind::Mark => [0, MARK_SLOT],
            Kind::Consumers => [2 * MARK_SLOT, 2 * MARK_SLOT + CONSUMERS_SLOT],
        }
    }
    fn slot_len(self) -> u64 {
        match self {
            Kind::Mark => MARK_SLOT,
            Kind::Consumers => CONSUMERS_SLOT,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Mark => "acknowledged mark",
            Kind::Consumers => "consumers' positions",
        }
    }
}

/// The open `acks` file. Writers of the two pairs never touch each other's pages.
#[derive(Debug)]
pub(crate) struct AcksFile {
    pub path: PathBuf,
    file: File,
    /// `false` only for benchmarks (`SpoolOptions::fsync`).
    fsync: bool,
}

/// One pair of slots: where the next write goes, and its generation.
#[derive(Debug)]
pub(crate) struct Slots {
    kind: Kind,
    generation: u64,
    /// The slot the next write goes to: never the one holding the last durable state.
    target: usize,
    /// Set once something was written to `target` that is not known durable yet.
    dirty: bool,
}

/// What `open` read.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub file: AcksFile,
    pub mark: u64,
    pub mark_slots: Slots,
    pub consumers: BTreeMap<String, u64>,
    pub consumer_slots: Slots,
}

impl AcksFile {
    /// Opens `dir/acks`, or creates it (from `consumers.ack` of an older spool, if present).
    /// The file is fsynced before it is read, so what is read is durable.
    pub(crate) fn open(dir: &Path, fsync: bool) -> Result<Loaded, SpoolError> {
        let path = dir.join(ACKS_FILE);
        let tmp = dir.join(ACKS_TMP);
        remove_if_present(&tmp).map_err(|e| SpoolError::io("removing", &tmp, e))?;
        let legacy = dir.join(LEGACY_CONSUMERS_FILE);
        remove_if_present(&dir.join(format!("{LEGACY_CONSUMERS_FILE}.tmp")))
            .map_err(|e| SpoolError::io("removing", &legacy, e))?;
        if !path.exists() {
            let consumers = crate::recovery::load_legacy_consumers(&legacy)?;
            create(dir, &tmp, &path, &consumers)?;
        }
        // Created from it (and made durable) in this run or an interrupted earlier one.
        remove_if_present(&legacy).map_err(|e| SpoolError::io("removing", &legacy, e))?;
        let file =
            OpenOptions::new().read(true).write(true).open(&path).map_err(|e| SpoolError::io("opening", &path, e))?;
        let len = file.metadata().map_err(|e| SpoolError::io("reading metadata of", &path, e))?.len();
        if len != FILE_LEN {
            return Err(SpoolError::Corrupt {
                file: path,
                offset: 0,
                detail: format!("the acks file is {len} bytes long, not {FILE_LEN}; {}", damaged_acks_advice()),
            });
        }
        if fsync {
            file.sync_data().map_err(|e| SpoolError::io("fsyncing", &path, e))?;
        }
        let acks = AcksFile { path, file, fsync };
        let (mark_slots, mark) = acks.load(Kind::Mark)?;
        let mark = decode_mark(&mark).map_err(|d| acks.corrupt(Kind::Mark, d))?;
        let (consumer_slots, consumers) = acks.load(Kind::Consumers)?;
        let consumers = decode_consumers(&consumers).map_err(|d| acks.corrupt(Kind::Consumers, d))?;
        Ok(Loaded { file: acks, mark, mark_slots, consumers, consumer_slots })
    }

    fn corrupt(&self, kind: Kind, detail: String) -> SpoolError {
        SpoolError::Corrupt {
            file: self.path.clone(),
            offset: kind.offsets()[0],
            detail: format!("{}: {detail}; {}", kind.name(), damaged_acks_advice()),
        }
    }

    /// Reads both slots of `kind` and keeps the newest valid one.
    fn load(&self, kind: Kind) -> Result<(Slots, Vec<u8>), SpoolError> {
        let mut best: Option<(u64, usize, Vec<u8>)> = None;
        let mut why = Vec::new();
        for (i, offset) in kind.offsets().into_iter().enumerate() {
            let mut buf = vec![0u8; usize::try_from(kind.slot_len()).unwrap_or(usize::MAX)];
            self.file.read_exact_at(&mut buf, offset).map_err(|e| SpoolError::io("reading", &self.path, e))?;
            match decode_slot(&buf, kind) {
                Ok((generation, body)) => {
                    if best.as_ref().is_none_or(|(g, _, _)| generation > *g) {
                        best = Some((generation, i, body.to_vec()));
                    }
                }
                Err(e) => why.push(format!("slot {i}: {e}")),
            }
        }
        let Some((generation, durable, body)) = best else {
            return Err(self.corrupt(kind, format!("both copies are damaged ({})", why.join("; "))));
        };
        Ok((Slots { kind, generation, target: 1 - durable, dirty: false }, body))
    }

    /// `fdatasync` of the file: everything written to it so far is durable afterwards.
    pub(crate) fn sync(&self) -> Result<(), SpoolError> {
        if self.fsync {
            self.file.sync_data().map_err(|e| SpoolError::io("fsyncing", &self.path, e))?;
        }
        Ok(())
    }
}

impl Slots {
    /// Writes the mark (no fsync).
    pub(crate) fn write_mark(&mut self, file: &AcksFile, acked: u64) -> Result<(), SpoolError> {
        self.write(file, &acked.to_le_bytes())
    }

    /// Writes the consumers' positions (no fsync).
    pub(crate) fn write_consumers(
        &mut self,
        file: &AcksFile,
        consumers: &BTreeMap<String, u64>,
    ) -> Result<(), SpoolError> {
        self.write(file, &encode_consumers(consumers))
    }

    fn write(&mut self, file: &AcksFile, body: &[u8]) -> Result<(), SpoolError> {
        debug_assert_eq!(self.kind == Kind::Mark, body.len() == 8);
        let slot = encode_slot(self.kind, self.generation + 1, body);
        if slot.len() as u64 > self.kind.slot_len() {
            return Err(SpoolError::InvalidOptions(format!(
                "the {} take {} bytes, more than the {} the acks file holds: fewer consumers or shorter names",
                self.kind.name(),
                slot.len(),
                self.kind.slot_len()
            )));
        }
        let offset = self.kind.offsets()[self.target];
        file.file.write_all_at(&slot, offset).map_err(|e| SpoolError::io("writing", &file.path, e))?;
        self.generation += 1;
        self.dirty = true;
        Ok(())
    }

    /// True if something was written since the last [`Slots::synced`].
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Records that `file` was fsynced after the last write: that slot now holds the durable
    /// state, so the next writes go to the other one.
    pub(crate) fn synced(&mut self) {
        if self.dirty {
            self.target = 1 - self.target;
            self.dirty = false;
        }
    }

    /// Writes the consumers' positions and makes them durable: write, fsync, [`Slots::synced`].
    pub(crate) fn write_consumers_durably(
        &mut self,
        file: &AcksFile,
        consumers: &BTreeMap<String, u64>,
    ) -> Result<(), SpoolError> {
        self.write_consumers(file, consumers)?;
        file.sync()?;
        self.synced();
        Ok(())
    }
}

/// Creates the file whole through a temp file: zeros, then slot 0 of each pair.
fn create(dir: &Path, tmp: &Path, path: &Path, consumers: &BTreeMap<String, u64>) -> Result<(), SpoolError> {
    let mut bytes = vec![0u8; usize::try_from(FILE_LEN).unwrap_or(usize::MAX)];
    let mark = consumers.values().max().copied().unwrap_or(0);
    for (kind, body) in [(Kind::Mark, mark.to_le_bytes().to_vec()), (Kind::Consumers, encode_consumers(consumers))] {
        let slot = encode_slot(kind, 1, &body);
        if slot.len() as u64 > kind.slot_len() {
            return Err(SpoolError::InvalidOptions(format!(
                "{} consumers do not fit in the acks file",
                consumers.len()
            )));
        }
        let at = usize::try_from(kind.offsets()[0]).unwrap_or(0);
        bytes[at..at + slot.len()].copy_from_slice(&slot);
    }
    let written = File::create(tmp).and_then(|mut f| {
        f.write_all(&bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(tmp);
        return Err(SpoolError::io("creating", tmp, e));
    }
    fs::rename(tmp, path).map_err(|e| SpoolError::io("renaming", tmp, e))?;
    sync_dir(dir)
}

fn damaged_acks_advice() -> &'static str {
    "it records what the spool acknowledged, which open checks the segments against. \
     If the segments are intact, deleting it lets the spool open without that check \
     (the sinks register their positions again)"
}

fn encode_slot(kind: Kind, generation: u64, body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(SLOT_HEADER + body.len() + 4);
    buf.extend_from_slice(&MAGIC);
    buf.push(VERSION);
    buf.push(kind as u8);
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&generation.to_le_bytes());
    buf.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
    buf.extend_from_slice(body);
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// `(generation, body)` of a valid slot.
fn decode_slot(buf: &[u8], kind: Kind) -> Result<(u64, &[u8]), String> {
    if buf.iter().all(|b| *b == 0) {
        return Err("never written".into());
    }
    if buf[0..4] != MAGIC || buf[4] != VERSION || buf[5] != kind as u8 {
        return Err("bad magic, version or kind".into());
    }
    let generation = u64::from_le_bytes(buf[8..16].try_into().map_err(|_| "short slot")?);
    let len = u32::from_le_bytes(buf[16..20].try_into().map_err(|_| "short slot")?) as usize;
    let end = SLOT_HEADER.checked_add(len).filter(|end| end + 4 <= buf.len()).ok_or("length out of range")?;
    let crc = u32::from_le_bytes(buf[end..end + 4].try_into().map_err(|_| "short slot")?);
    if crc32c::crc32c(&buf[..end]) != crc {
        return Err("checksum mismatch".into());
    }
    Ok((generation, &buf[SLOT_HEADER..end]))
}

fn decode_mark(body: &[u8]) -> Result<u64, String> {
    let bytes: [u8; 8] = body.try_into().map_err(|_| format!("mark of {} bytes, not 8", body.len()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// `count u32 ‖ (name_len u16 ‖ name ‖ seq u64)*`
pub(crate) fn encode_consumers(consumers: &BTreeMap<String, u64>) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&u32::try_from(consumers.len()).unwrap_or(u32::MAX).to_le_bytes());
    for (name, seq) in consumers {
        buf.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_le_bytes());
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
    }
    buf
}

pub(crate) fn decode_consumers(body: &[u8]) -> Result<BTreeMap<String, u64>, String> {
    let mut at = 0;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let s = body.get(at..at + n).ok_or_else(|| "truncated entry".to_string())?;
        at += n;
        Ok(s)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().map_err(|_| "truncated count")?);
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let name_len = usize::from(u16::from_le_bytes(take(2)?.try_into().map_err(|_| "truncated entry")?));
        let name = String::from_utf8(take(name_len)?.to_vec()).map_err(|_| "consumer name is not UTF-8".to_string())?;
        let seq = u64::from_le_bytes(take(8)?.try_into().map_err(|_| "truncated entry")?);
        out.insert(name, seq);
    }
    if at != body.len() {
        return Err(format!("{} bytes after the last entry", body.len() - at));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn consumers(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
        entries.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn slots_round_trip_and_detect_damage() {
        let body = encode_consumers(&consumers(&[("clickhouse", 42), ("index", 7)]));
        let slot = encode_slot(Kind::Consumers, 9, &body);
        let mut page = slot.clone();
        page.resize(4096, 0);
        let (generation, read) = decode_slot(&page, Kind::Consumers).unwrap();
        assert_eq!((generation, decode_consumers(read).unwrap()), (9, consumers(&[("clickhouse", 42), ("index", 7)])));
        assert!(decode_slot(&page, Kind::Mark).is_err(), "the kind is checked");
        for i in 0..slot.len() {
            let mut bad = page.clone();
            bad[i] ^= 0x40;
            assert!(decode_slot(&bad, Kind::Consumers).is_err(), "flip at {i} undetected");
        }
        assert!(decode_slot(&[0u8; 64], Kind::Mark).is_err());
    }

    /// Opens the file again and returns what it reads.
    fn reload(dir: &Path) -> Result<(u64, BTreeMap<String, u64>), SpoolError> {
        let loaded = AcksFile::open(dir, true)?;
        Ok((loaded.mark, loaded.consumers))
    }

    #[test]
    fn the_newest_durable_state_survives_a_torn_write_of_either_slot() {
        let dir = TempDir::new().unwrap();
        let Loaded { file, mut mark_slots, mut consumer_slots, .. } = AcksFile::open(dir.path(), true).unwrap();
        mark_slots.write_mark(&file, 10).unwrap();
        file.sync().unwrap();
        mark_slots.synced();
        // Undurable updates all go to the slot not holding 10.
        for m in 11..=15 {
            mark_slots.write_mark(&file, m).unwrap();
        }
        consumer_slots.write_consumers_durably(&file, &consumers(&[("a", 3)])).unwrap();
        consumer_slots.write_consumers(&file, &consumers(&[("a", 4)])).unwrap();
        drop(file);
        assert_eq!(reload(dir.path()).unwrap(), (15, consumers(&[("a", 4)])));
        // Tear the slot last written of each pair: the durable state before it comes back.
        let path = dir.path().join(ACKS_FILE);
        let bytes = fs::read(&path).unwrap();
        let newest = |kind: Kind| {
            kind.offsets()
                .into_iter()
                .max_by_key(|o| {
                    let at = usize::try_from(*o).unwrap();
                    decode_slot(&bytes[at..at + kind.slot_len() as usize], kind).map_or(0, |(g, _)| g)
                })
                .unwrap()
        };
        let mut torn = bytes.clone();
        for kind in [Kind::Mark, Kind::Consumers] {
            let at = usize::try_from(newest(kind)).unwrap();
            torn[at + SLOT_HEADER] ^= 0xff;
        }
        fs::write(&path, &torn).unwrap();
        assert_eq!(reload(dir.path()).unwrap(), (10, consumers(&[("a", 3)])));
        // Both copies damaged: refused, naming the file and the pair.
        let mut both = torn.clone();
        for at in Kind::Mark.offsets() {
            both[usize::try_from(at).unwrap() + 2] ^= 1;
        }
        fs::write(&path, &both).unwrap();
        match reload(dir.path()) {
            Err(SpoolError::Corrupt { file, offset: 0, detail }) => {
                assert_eq!(file, path);
                assert!(detail.contains("acknowledged mark: both copies are damaged"), "{detail}");
                assert!(detail.contains("deleting it lets the spool open"), "{detail}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn an_older_spools_consumers_file_is_taken_over() {
        let dir = TempDir::new().unwrap();
        let legacy = consumers(&[("clickhouse", 40), ("tantivy", 12)]);
        fs::write(dir.path().join(LEGACY_CONSUMERS_FILE), crate::recovery::encode_legacy_consumers(&legacy)).unwrap();
        // The mark starts at what a consumer had read: at least that was acknowledged.
        assert_eq!(reload(dir.path()).unwrap(), (40, legacy.clone()));
        assert!(!dir.path().join(LEGACY_CONSUMERS_FILE).exists());
        assert_eq!(fs::metadata(dir.path().join(ACKS_FILE)).unwrap().len(), FILE_LEN);
        assert_eq!(reload(dir.path()).unwrap(), (40, legacy));
    }

    #[test]
    fn too_many_consumers_are_refused_with_a_reason() {
        let dir = TempDir::new().unwrap();
        let Loaded { file, mut consumer_slots, .. } = AcksFile::open(dir.path(), true).unwrap();
        let many: BTreeMap<String, u64> = (0..100).map(|i| (format!("{i:0>250}"), 1)).collect();
        let err = consumer_slots.write_consumers(&file, &many).unwrap_err();
        assert!(err.to_string().contains("fewer consumers or shorter names"), "{err}");
    }
}
