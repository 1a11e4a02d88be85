//! kill -9 at random moments while appending: every acknowledged record must survive, intact,
//! with dense sequence numbers and no duplicates.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_spool::{Spool, SpoolOptions};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
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
