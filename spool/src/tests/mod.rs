//! Unit tests that need the crate's internals (fault injection, segment paths): `records`
//! (appending, reading back, torn tails and corruption), `acked` (damaged or missing records
//! below what was acknowledged: refused), `repair` (accepting such a loss), `prealloc` (the
//! spare segment) and `lifecycle` (segments, deletion below the consumers' acks, restarts, a
//! full spool or disk, group commit, closing).

mod acked;
mod lifecycle;
mod prealloc;
mod records;
mod repair;

use super::*;
use std::fs;

pub(super) fn opts() -> SpoolOptions {
    SpoolOptions {
        segment_bytes: 64 << 20,
        max_bytes: 1 << 30,
        max_record_bytes: 1 << 20,
        fsync: true,
        // 64 MiB spares for every test would be slow; the tests below that want one say so.
        preallocate: false,
    }
}

pub(super) fn payload(i: u64, len: usize) -> Vec<u8> {
    let mut p = format!("record-{i}-").into_bytes();
    p.resize(len.max(p.len()), b'a' + (i % 26) as u8);
    p
}

pub(super) async fn read_all(spool: &Spool, after: u64) -> Result<Vec<Record>, SpoolError> {
    let mut r = spool.reader(after);
    let mut out = Vec::new();
    while let Some(rec) = r.try_next().await? {
        out.push(rec);
    }
    Ok(out)
}

pub(super) fn only_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs.remove(0)
}
