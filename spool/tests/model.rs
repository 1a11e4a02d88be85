//! Model-based property test: random operations against the spool and against a reference
//! model (a VecDeque of the acknowledged records). After every step the records the spool can
//! read must equal the model's, and deletion must never pass any consumer's acknowledgement.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_spool::{Spool, SpoolError, SpoolOptions};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

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

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

async fn read_from(spool: &Spool, after: u64) -> Result<Vec<(u64, Vec<u8>)>, SpoolError> {
    let mut reader = spool.reader(after);
    let mut out = Vec::new();
    while let Some(r) = reader.try_next().await? {
        out.push((r.seq, r.payload));
    }
    Ok(out)
}

async fn check(spool: &Spool, model: &mut Model) {
    assert_eq!(spool.last_seq(), model.last_seq);
    let stats = spool.stats();
    assert_eq!(stats.last_seq, model.last_seq);
    let min_ack = *model.acks.iter().min().unwrap();
    assert!(stats.first_seq <= min_ack + 1, "deleted past the slowest consumer: {stats:?} acks {:?}", model.acks);
    // The model may drop what every consumer acknowledged and the spool deleted.
    while model.records.front().is_some_and(|(seq, _)| *seq < stats.first_seq) {
        model.records.pop_front();
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
            check(&spool, &mut model).await;
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
