//! Model-based property test: random operations against the spool and against a reference
//! model (a VecDeque of the acknowledged records). After every step the records the spool can
//! read must equal the model's, deletion must never pass any consumer's acknowledgement, and
//! the space the spool counts must cover its files. Damage to acknowledged records at the end
//! of the spool must make `open` refuse (and change nothing); a torn write after them is cut.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_spool::{Spool, SpoolError, SpoolOptions};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const CONSUMERS: [&str; 2] = ["clickhouse", "tantivy"];

#[derive(Debug, Clone)]
enum Op {
    /// Concurrent appends (one group commit or a few).
    Append(Vec<Vec<u8>>),
    /// Consumer `.0` acknowledges a point `.1`/255 of the way from its position to the end.
    Ack(usize, u8),
    /// Drop without close, optionally leaving a torn partial write at the end of the last
    /// segment, then reopen and re-register the consumers at their positions.
    Crash(Option<Vec<u8>>),
    /// Close cleanly and reopen.
    Reopen,
    /// Read from a point `.0`/255 of the way from the oldest readable record to the end.
    Read(u8),
    /// Drop without close, then damage the end of the spool: `.0` picks how, on the last
    /// segment holding records (a flipped byte in its last record, the file cut inside that
    /// record or where it starts, the file deleted) or the last segment deleted (nothing lost
    /// if it holds no record yet). `open` must refuse if acknowledged records were hit. The
    /// bytes are put back and the spool reopened.
    Damage(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let torn = prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 1..27).prop_map(|mut v| {
            // A header prefix cut short, like a write the crash interrupted.
            let mut head = b"GLSP\x01".to_vec();
            head.append(&mut v);
            head.truncate(27);
            head
        }),
        proptest::collection::vec(Just(0u8), 1..600),
    ];
    prop_oneof![
        5 => proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 1..6).prop_map(Op::Append),
        2 => (0..CONSUMERS.len(), any::<u8>()).prop_map(|(c, f)| Op::Ack(c, f)),
        1 => proptest::option::of(torn).prop_map(Op::Crash),
        1 => Just(Op::Reopen),
        2 => any::<u8>().prop_map(Op::Read),
        1 => any::<u8>().prop_map(Op::Damage),
    ]
}

struct Model {
    /// Every acknowledged record not yet known to be deletable: (seq, payload).
    records: VecDeque<(u64, Vec<u8>)>,
    last_seq: u64,
    acks: [u64; CONSUMERS.len()],
}

fn opts() -> SpoolOptions {
    SpoolOptions {
        segment_bytes: 300,
        max_bytes: 1 << 30,
        max_record_bytes: 1 << 16,
        fsync: false,
        // Tiny segments, so spares are taken, missed and trimmed all through a run.
        preallocate: true,
    }
}

fn open(dir: &Path, model: &Model) -> Spool {
    let spool = Spool::open(dir, opts()).unwrap();
    for (name, ack) in CONSUMERS.iter().zip(model.acks) {
        spool.register_consumer(name, ack).unwrap();
    }
    spool
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

fn last_segment(dir: &Path) -> PathBuf {
    segments(dir).pop().unwrap()
}

/// `(offset, size)` of each record at the start of a segment's bytes (the format's header:
/// magic at 0, payload length at 16, 28 bytes), up to the zeros or the end.
fn records_in(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() >= at + 28 && bytes[at..at + 4] == *b"GLSP" {
        let len = u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap()) as usize;
        out.push((at, 28 + len));
        at += 28 + len;
    }
    out
}

/// Bytes of the spool's segment and spare files, as the file system reports their lengths.
fn files_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".seg") || name.starts_with("spare")
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Damages the end of the spool as `shape` says; true if that hit acknowledged records.
/// The damage goes to the last segment holding records, which is the segment before the last
/// one when the writer started that one ahead of time.
fn damage(dir: &Path, shape: u8) -> bool {
    let all = segments(dir);
    let last = all[all.len() - 1].clone();
    let target = all.iter().rev().find(|p| !records_in(&fs::read(p).unwrap()).is_empty()).cloned();
    let Some(target) = target else {
        // No record anywhere: deleting the last segment loses nothing (its name only said
        // where numbering stands, and the acks file says it too).
        if shape % 5 == 3 && all.len() > 1 {
            fs::remove_file(&last).unwrap();
        }
        return false;
    };
    let bytes = fs::read(&target).unwrap();
    let &(offset, size) = records_in(&bytes).last().unwrap();
    let file = OpenOptions::new().write(true).open(&target).unwrap();
    match shape % 5 {
        0 => {
            let mut bad = bytes[offset..offset + size].to_vec();
            bad[size - 1] ^= 0x41;
            std::os::unix::fs::FileExt::write_all_at(&file, &bad, offset as u64).unwrap();
        }
        1 => file.set_len((offset + size / 2) as u64).unwrap(),
        2 => file.set_len(offset as u64).unwrap(),
        // The last segment lost: if it holds no record, nothing acknowledged went with it.
        3 if last != target => {
            fs::remove_file(&last).unwrap();
            return false;
        }
        _ => fs::remove_file(&target).unwrap(),
    }
    true
}

async fn read_from(spool: &Spool, after: u64) -> Result<Vec<(u64, Vec<u8>)>, SpoolError> {
    let mut reader = spool.reader(after);
    let mut out = Vec::new();
    while let Some(r) = reader.try_next().await? {
        out.push((r.seq, r.payload));
    }
    Ok(out)
}

async fn check(dir: &Path, spool: &Spool, model: &mut Model) {
    assert_eq!(spool.last_seq(), model.last_seq);
    let stats = spool.stats();
    assert_eq!(stats.last_seq, model.last_seq);
    let min_ack = *model.acks.iter().min().unwrap();
    assert!(stats.first_seq <= min_ack + 1, "deleted past the slowest consumer: {stats:?} acks {:?}", model.acks);
    // The model may drop what every consumer acknowledged and the spool deleted.
    while model.records.front().is_some_and(|(seq, _)| *seq < stats.first_seq) {
        model.records.pop_front();
    }
    // The preallocation thread fills and trims beside this check, so the two sides are read
    // at slightly different moments: a leak fails every time, a race only once in a while.
    let mut tries = 0;
    while files_bytes(dir) > spool.stats().bytes_on_disk {
        tries += 1;
        if tries == 200 {
            let files: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap())
                .map(|e| (e.file_name(), e.metadata().map(|m| m.len()).unwrap_or(0)))
                .collect();
            panic!("the files take more than the spool counts: {files:?} {:?}", spool.stats());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let readable = read_from(spool, stats.first_seq - 1).await.unwrap();
    assert_eq!(readable, Vec::from(model.records.clone()));
    for (name, ack) in CONSUMERS.iter().zip(model.acks) {
        let c = stats.consumers.iter().find(|c| c.name == *name).unwrap();
        assert_eq!((c.committed_seq, c.lag), (ack, model.last_seq - ack));
    }
}

fn run(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::TempDir::new().unwrap();
        let mut model = Model { records: VecDeque::new(), last_seq: 0, acks: [0; CONSUMERS.len()] };
        let mut spool = open(dir.path(), &model);
        for op in ops {
            match op {
                Op::Append(payloads) => {
                    let mut tasks = tokio::task::JoinSet::new();
                    for p in payloads {
                        let spool = spool.clone();
                        tasks.spawn(async move { (spool.append(p.clone()).await.unwrap(), p) });
                    }
                    let mut done = Vec::new();
                    while let Some(r) = tasks.join_next().await {
                        done.push(r.unwrap());
                    }
                    done.sort();
                    for (seq, p) in done {
                        assert_eq!(seq, model.last_seq + 1, "sequence numbers are dense");
                        model.last_seq = seq;
                        model.records.push_back((seq, p));
                    }
                }
                Op::Ack(c, f) => {
                    let from = model.acks[c];
                    let to = from + (model.last_seq - from) * u64::from(f) / 255;
                    spool.ack(CONSUMERS[c], to).unwrap();
                    model.acks[c] = to;
                }
                Op::Crash(torn) => {
                    drop(spool);
                    if let Some(bytes) = torn {
                        let mut f = OpenOptions::new().append(true).open(last_segment(dir.path())).unwrap();
                        f.write_all(&bytes).unwrap();
                    }
                    spool = open(dir.path(), &model);
                }
                Op::Damage(shape) => {
                    drop(spool);
                    let saved: Vec<(PathBuf, Vec<u8>)> =
                        segments(dir.path()).into_iter().map(|p| (p.clone(), fs::read(&p).unwrap())).collect();
                    let hit = damage(dir.path(), shape);
                    match Spool::open(dir.path(), opts()) {
                        Err(SpoolError::Corrupt { file, detail, .. }) if hit => {
                            assert!(file.starts_with(dir.path()), "{file:?}");
                            // Records answered to appenders, or not read by a consumer yet.
                            let named = detail.contains("were acknowledged")
                                || detail.contains("were deleted before it read them");
                            assert!(named, "{detail}");
                        }
                        Ok(reopened) if !hit => drop(reopened),
                        other => panic!("damage {shape} (acknowledged records hit: {hit}): {other:?}"),
                    }
                    for (path, bytes) in saved {
                        fs::write(path, bytes).unwrap();
                    }
                    spool = open(dir.path(), &model);
                }
                Op::Reopen => {
                    spool.close().await.unwrap();
                    spool = open(dir.path(), &model);
                }
                Op::Read(f) => {
                    let first = spool.stats().first_seq;
                    let after = (first - 1) + (model.last_seq + 1 - first) * u64::from(f) / 255;
                    let got = read_from(&spool, after).await.unwrap();
                    let want: Vec<_> = model.records.iter().filter(|(s, _)| *s > after).cloned().collect();
                    assert_eq!(got, want, "reading after {after}");
                    // Waiting readers see the same records, then block at the end.
                    let mut reader = spool.reader(after);
                    for (seq, _) in &want {
                        assert_eq!(reader.next().await.unwrap().unwrap().seq, *seq);
                    }
                    assert!(reader.try_next().await.unwrap().is_none());
                }
            }
            check(dir.path(), &spool, &mut model).await;
        }
        spool.close().await.unwrap();
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn spool_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
