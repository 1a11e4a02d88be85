//! kill -9 at random moments while appending: every acknowledged record must survive, intact,
//! with dense sequence numbers and no duplicates, and numbering goes on after every number
//! answered. After each kill, a copy of the spool cut just before the last acknowledged
//! record must be refused at open: the acknowledged mark survives kill -9 exactly.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_spool::SpoolError;
use gatelog_spool::{Spool, SpoolOptions};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Same as the helper binary's.
fn payload_for(id: &str) -> Vec<u8> {
    let len = 16 + (crc(id.as_bytes()) % 9000) as usize;
    let mut p = id.as_bytes().to_vec();
    p.resize(len.max(p.len()), b'.');
    p
}

fn crc(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2166136261u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(16777619))
}

/// Kills the child on drop, so a failing assertion never leaves it running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigkill_while_appending_loses_no_acknowledged_record() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut rng = fastrand::Rng::with_seed(0x5eed_0fc0_ffee);
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let rounds = 8;
    for round in 0..rounds {
        let tasks = [1, 4, 16][round % 3];
        let child = Command::new(env!("CARGO_BIN_EXE_spool-crash-appender"))
            .arg(dir.path())
            .arg(round.to_string())
            .arg(tasks.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let lines = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Kill after a random number of acknowledgements (0 = while it is still starting).
        let kill_after = if round == 0 { 0 } else { rng.usize(1..400) };
        let mut seen = Vec::new();
        while seen.len() < kill_after {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => seen.push(line),
                Err(e) => panic!("round {round}: the appender stopped acknowledging after {}: {e}", seen.len()),
            }
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        lines.join().unwrap();
        seen.extend(rx.try_iter());
        for line in &seen {
            let (seq, id) = line.split_once(' ').unwrap();
            let seq: u64 = seq.parse().unwrap();
            assert!(acked.insert(seq, id.to_string()).is_none(), "seq {seq} acknowledged twice");
        }

        if let Some((&last_acked, _)) = acked.last_key_value() {
            refuses_a_copy_that_lost(dir.path(), last_acked);
        }

        // Reopen as the restarted receiver would, and check.
        let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        let records = rt.block_on(async {
            let mut reader = spool.reader(0);
            let mut out = Vec::new();
            while let Some(r) = reader.try_next().await.unwrap() {
                out.push(r);
            }
            out
        });
        let mut ids = HashSet::new();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.seq, i as u64 + 1, "gap or disorder");
            let id =
                String::from_utf8_lossy(&r.payload[..r.payload.iter().position(|b| *b == b'.').unwrap()]).into_owned();
            assert_eq!(r.payload, payload_for(&id), "record {} damaged", r.seq);
            assert!(ids.insert(id.clone()), "record {id} stored twice");
        }
        for (seq, id) in &acked {
            let r = records.get(*seq as usize - 1).unwrap_or_else(|| panic!("acknowledged seq {seq} ({id}) lost"));
            assert_eq!(r.payload, payload_for(id), "acknowledged seq {seq} holds the wrong record");
        }
        let highest = acked.last_key_value().map_or(0, |(seq, _)| *seq);
        assert!(spool.last_seq() >= highest, "numbering would go on at {} after answering {highest}", spool.last_seq());
        eprintln!(
            "round {round}: {tasks} tasks, killed after {} acks; spool holds {} records, {} torn tails cut",
            seen.len(),
            records.len(),
            spool.metrics().torn_tail_truncations
        );
        drop(spool);
    }
    assert!(acked.len() > rounds, "the appender acknowledged almost nothing");
}

/// Copies the spool in `dir` (as the kill left it), cuts the copy just before record `seq`
/// (the last one answered) and checks that `open` refuses it.
fn refuses_a_copy_that_lost(dir: &Path, seq: u64) {
    let copy = tempfile::TempDir::new().unwrap();
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        if entry.file_name().to_string_lossy().ends_with(".seg") {
            segments.push(copy.path().join(entry.file_name()));
        }
    }
    segments.sort();
    // The segment holding `seq`: the last one named at or below it; later ones go.
    let at = segments.partition_point(|p| {
        let first: u64 = p.file_stem().unwrap().to_string_lossy().parse().unwrap();
        first <= seq
    });
    for later in &segments[at..] {
        fs::remove_file(later).unwrap();
    }
    let holder = &segments[at - 1];
    let bytes = fs::read(holder).unwrap();
    let mut offset = 0;
    loop {
        let record_seq = u64::from_le_bytes(bytes[offset + 8..offset + 16].try_into().unwrap());
        if record_seq == seq {
            break;
        }
        let len = u32::from_le_bytes(bytes[offset + 16..offset + 20].try_into().unwrap()) as usize;
        offset += 28 + len;
    }
    fs::OpenOptions::new().write(true).open(holder).unwrap().set_len(offset as u64).unwrap();
    match Spool::open(copy.path(), SpoolOptions::default()) {
        Err(SpoolError::Corrupt { file, offset: at, detail }) => {
            assert_eq!((&file, at), (holder, offset as u64), "{detail}");
            assert!(detail.contains(&format!("the spool ends at record {}", seq - 1)), "{detail}");
        }
        Err(e) => panic!("expected Corrupt for a copy without record {seq}, got {e}"),
        Ok(spool) => panic!("a copy without the acknowledged record {seq} opened at {}", spool.last_seq()),
    }
}
