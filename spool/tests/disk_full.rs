//! The spool on small real volumes (tmpfs of a few MiB): a full disk recovers by itself once
//! the consumers catch up, and the preallocated spare never takes a small disk. Each test
//! prints what it measured.
//!
//! Mounting needs root (`./x test` runs as root in CI); elsewhere these tests say loudly that
//! they did not run. The unit tests (`src/tests`) cover the same paths with injected ENOSPC.
//!
//! The tests take turns (see [`Volume::mount`]), and each fills its volume only once the
//! spool's background work that gives space back (trims, a spare being released) is done, so
//! what they measure is the spool, not a moment when another process or thread held space.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_spool::{Spool, SpoolError, SpoolOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Held by each test from mounting its volume to unmounting it.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A tmpfs of a fixed size, unmounted on drop.
struct Volume {
    dir: tempfile::TempDir,
    bytes: u64,
    _turn: MutexGuard<'static, ()>,
}

impl Volume {
    /// `None` (after saying so on stderr) when this process may not mount. Waits for the
    /// other tests' volumes to be gone first: the tests share this process's file
    /// descriptors, and a child one of them spawns (`mount`, `df`) holds a copy of every open
    /// file until it execs, so a segment another test deletes at that moment gives its
    /// space back a little late, and a test measuring that the first append after an ack
    /// succeeds would see ENOSPC once or twice.
    fn mount(bytes: u64) -> Option<Volume> {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = tempfile::TempDir::new().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700"), "gatelog-spool-test"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Volume { dir, bytes, _turn: turn }),
            other => {
                eprintln!(
                    "\n!!!!!!!! SKIPPED: cannot mount a {bytes}-byte tmpfs ({other:?}); this small-volume \
                     test needs root (CI runs ./x test as root) !!!!!!!!\n"
                );
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn free(&self) -> u64 {
        let out = Command::new("df").args(["--output=avail", "-B1"]).arg(self.path()).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
    }

    /// Fills what is left of the volume with a file, so not one byte is free, once the
    /// spool in `spool_dir` has no background work left that would give space back.
    async fn fill_up(&self, spool_dir: &Path) -> PathBuf {
        eventually("the spool's background work giving space back", || settled(spool_dir)).await;
        let path = self.path().join("ballast");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xbb_u8; 4096];
        for _ in 0..(self.bytes / 4096 + 16) {
            match f.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("ballast: {e}"),
            }
        }
        assert_eq!(self.free(), 0, "the ballast takes every byte");
        path
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let out = Command::new("umount").arg(self.dir.path()).output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("cannot unmount {}: {out:?}", self.dir.path().display());
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Appends `len`-byte records until the first error; the sequence numbers answered.
async fn append_until_error(spool: &Spool, len: usize, limit: usize) -> (Vec<u64>, SpoolError) {
    let mut seqs = Vec::new();
    for i in 0..limit {
        match spool.append(vec![b'a' + (i % 26) as u8; len]).await {
            Ok(seq) => seqs.push(seq),
            Err(e) => return (seqs, e),
        }
    }
    panic!("{limit} appends of {len} bytes and no error: is the volume larger than it should be?");
}

fn spare(dir: &Path) -> bool {
    dir.join("spare").exists() || dir.join("spare.tmp").exists()
}

/// True once nothing in the spool's background gives space back any more: no spare (being
/// made or released) and every sealed segment trimmed to its records.
fn settled(dir: &Path) -> bool {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    segments.pop();
    !spare(dir) && segments.iter().all(|p| std::fs::metadata(p).unwrap().len() == records_end(p))
}

/// Where a segment's records end (the format's 28-byte header: magic at 0, payload length at
/// 16), before any preallocated zeros.
fn records_end(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 0;
    while bytes.len() >= at + 28 && bytes[at..at + 4] == *b"GLSP" {
        at += 28 + u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap()) as usize;
    }
    at as u64
}

#[tokio::test]
async fn a_full_disk_recovers_by_itself_once_the_consumers_catch_up() {
    let Some(volume) = Volume::mount(8 << 20) else { return };
    let dir = volume.path().join("spool");
    let opts = SpoolOptions {
        segment_bytes: 1 << 20,
        max_bytes: 1 << 30,
        max_record_bytes: 1 << 20,
        ..SpoolOptions::default()
    };
    let spool = Spool::open(&dir, opts).unwrap();
    spool.register_consumer("sink", 0).unwrap();
    let (first, e) = append_until_error(&spool, 32 << 10, 10_000).await;
    assert!(matches!(e, SpoolError::NoSpace { .. }), "{e}");
    eventually("the spare given back when the disk filled", || !spare(&dir)).await;
    // Whatever the spool left, something else takes: the disk is full to the last byte.
    volume.fill_up(&dir).await;
    let refused = spool.append(vec![b'x'; 32 << 10]).await;
    assert!(matches!(refused, Err(SpoolError::NoSpace { .. })), "{refused:?}");
    let stored = spool.stats();

    // The sink catches up: it reads everything and acknowledges, which needs no space.
    let mut reader = spool.reader(0);
    let mut read = 0;
    while let Some(r) = reader.try_next().await.unwrap() {
        read = r.seq;
    }
    assert_eq!(read, *first.last().unwrap());
    let started = Instant::now();
    spool.ack("sink", read).unwrap();
    let freed = stored.bytes_on_disk - spool.stats().bytes_on_disk;
    let mut attempts = 0;
    let seq = loop {
        attempts += 1;
        match spool.append(vec![b'y'; 32 << 10]).await {
            Ok(seq) => break seq,
            Err(e) if attempts < 10 => eprintln!("attempt {attempts}: {e}"),
            Err(e) => panic!("still refused after {attempts} appends once every record was acknowledged: {e}"),
        }
    };
    let recovered = started.elapsed();
    assert_eq!(seq, read + 1, "numbering goes on");
    assert_eq!(reader.try_next().await.unwrap().map(|r| r.seq), Some(seq), "the waiting reader goes on too");
    assert!(attempts <= 2, "took {attempts} appends");
    assert!(freed >= 6 << 20, "the ack freed only {freed} bytes");
    let (after, _) = append_until_error(&spool, 32 << 10, 10_000).await;
    eprintln!(
        "disk full after {} records ({:.1} MiB of the {:.0} MiB volume); the ack freed {:.1} MiB; \
         the first append after it succeeded {:.2} ms later ({attempts} attempt(s)); {} more records fit after",
        first.len(),
        stored.bytes_on_disk as f64 / MIB,
        volume.bytes as f64 / MIB,
        freed as f64 / MIB,
        recovered.as_secs_f64() * 1e3,
        after.len() + 1,
    );
    assert!(after.len() >= 150, "only {} more records fit in the freed space", after.len());
    spool.close().await.unwrap();
}

#[tokio::test]
async fn a_disk_full_of_one_unsealed_segment_recovers_too() {
    // One segment larger than the volume: nothing is ever sealed, so the ack alone frees
    // nothing; the next append seals the consumed segment and deletes it.
    let Some(volume) = Volume::mount(4 << 20) else { return };
    let dir = volume.path().join("spool");
    let spool = Spool::open(&dir, SpoolOptions { segment_bytes: 64 << 20, ..SpoolOptions::default() }).unwrap();
    spool.register_consumer("sink", 0).unwrap();
    let (first, e) = append_until_error(&spool, 64 << 10, 10_000).await;
    assert!(matches!(e, SpoolError::NoSpace { .. }), "{e}");
    volume.fill_up(&dir).await;
    let last = *first.last().unwrap();
    // The sink reads everything and waits for more, as sinks do: its reader must not keep
    // the segment's space once the segment is deleted.
    let mut reader = spool.reader(0);
    while reader.try_next().await.unwrap().is_some() {}
    assert_eq!(reader.position(), last);
    spool.ack("sink", last).unwrap();
    assert_eq!(spool.stats().segments, 1);
    let started = Instant::now();
    let mut attempts = 0;
    let seq = loop {
        attempts += 1;
        match spool.append(vec![b'y'; 64 << 10]).await {
            Ok(seq) => break seq,
            Err(e) if attempts < 10 => eprintln!("attempt {attempts}: {e}"),
            Err(e) => panic!("still refused after {attempts} appends: {e}"),
        }
    };
    eprintln!(
        "one-segment spool: disk full after {} records; recovered {:.2} ms after the ack ({attempts} attempt(s))",
        first.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!((seq, attempts), (last + 1, 1));
    assert_eq!(reader.try_next().await.unwrap().map(|r| r.seq), Some(seq), "the waiting reader goes on too");
    assert_eq!(spool.stats().first_seq, last + 1, "the consumed segment was sealed and deleted");
}

#[tokio::test]
async fn the_spare_never_takes_a_small_disk() {
    // The case: the default 64 MiB segment (and spare) on a 64 MiB volume.
    let Some(volume) = Volume::mount(64 << 20) else { return };
    let dir = volume.path().join("spool");
    let spool = Spool::open(&dir, SpoolOptions::default()).unwrap();
    spool.register_consumer("sink", 0).unwrap();
    let (seqs, e) = append_until_error(&spool, 256 << 10, 10_000).await;
    assert!(matches!(e, SpoolError::NoSpace { .. }), "{e}");
    assert!(!spare(&dir), "no spare on a disk that cannot hold two");
    let stored = seqs.len() as f64 * 256.0 * 1024.0;
    eprintln!(
        "64 MiB volume, default options: {} records, {:.1} MiB stored ({:.0}% of the volume) before ENOSPC; no spare",
        seqs.len(),
        stored / MIB,
        100.0 * stored / volume.bytes as f64
    );
    assert!(stored >= 0.9 * volume.bytes as f64, "only {stored} bytes fit");
    // The records are all there, and an ack makes room again.
    spool.ack("sink", *seqs.last().unwrap()).unwrap();
    spool.append(vec![b'z'; 256 << 10]).await.unwrap();
}

#[tokio::test]
async fn a_spare_is_released_under_enospc_and_made_again_once_there_is_room() {
    let Some(volume) = Volume::mount(16 << 20) else { return };
    let dir = volume.path().join("spool");
    let opts = SpoolOptions { segment_bytes: 2 << 20, max_bytes: 1 << 30, ..SpoolOptions::default() };
    let spool = Spool::open(&dir, opts).unwrap();
    spool.register_consumer("sink", 0).unwrap();
    eventually("the first spare", || dir.join("spare").exists()).await;
    let (seqs, e) = append_until_error(&spool, 64 << 10, 10_000).await;
    assert!(matches!(e, SpoolError::NoSpace { .. }), "{e}");
    eventually("the spare released at ENOSPC", || !spare(&dir)).await;
    let stored = seqs.len() as f64 * 64.0 * 1024.0;
    eprintln!(
        "16 MiB volume, 2 MiB segments and spare: {:.1} MiB stored ({:.0}%) before ENOSPC, spare released",
        stored / MIB,
        100.0 * stored / volume.bytes as f64
    );
    assert!(stored >= 0.85 * volume.bytes as f64, "only {stored} bytes fit");
    // While the disk stays full, refused appends never bring a spare back.
    for _ in 0..5 {
        assert!(spool.append(vec![b'q'; 64 << 10]).await.is_err());
    }
    assert!(!spare(&dir));
    // Consumed: room again, and the spare returns at the next segment.
    spool.ack("sink", *seqs.last().unwrap()).unwrap();
    for _ in 0..40 {
        spool.append(vec![b'r'; 64 << 10]).await.unwrap();
    }
    eventually("a spare once the disk has room", || dir.join("spare").exists()).await;
}

/// Waits (at most 10 s) for something the preallocation thread does.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}
