//! Test helper for `tests/crash.rs` (not an operator tool): appends records to the spool in
//! `DIR` from `TASKS` concurrent tasks forever, and prints `SEQ ID` for every append that was
//! acknowledged (durable), one line each, flushed. The test kills it with SIGKILL and checks
//! that every printed record survived. Payload of ID: `ID` then `.` up to a length derived
//! from ID, so the test can rebuild it.
//!
//! Usage: spool-crash-appender DIR ROUND TASKS

use gatelog_spool::{Spool, SpoolOptions};
use std::io::Write;
use std::path::PathBuf;

/// The payload the helper writes for `id` (the test uses the same function).
fn payload_for(id: &str) -> Vec<u8> {
    let len = 16 + (crc(id.as_bytes()) % 9000) as usize;
    let mut p = id.as_bytes().to_vec();
    p.resize(len.max(p.len()), b'.');
    p
}

fn crc(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2166136261u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(16777619))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: spool-crash-appender DIR ROUND TASKS";
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let round: u32 = args.next().ok_or(usage)?.parse()?;
    let tasks: u32 = args.next().ok_or(usage)?.parse()?;
    let opts = SpoolOptions { segment_bytes: 256 << 10, ..SpoolOptions::default() };
    let spool = Spool::open(&dir, opts)?;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let spool = spool.clone();
        handles.push(tokio::spawn(async move {
            for i in 0u64.. {
                let id = format!("r{round}-t{task}-i{i}");
                let seq = spool.append(payload_for(&id)).await?;
                let line = format!("{seq} {id}\n");
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes())?;
                out.flush()?;
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok(())
}
