//! chdb (ClickHouse 26.9 in-process, Python) for the guard's tests: finding a python that
//! has it, and running a helper script that reads one JSON job on stdin and prints one JSON
//! object per line.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// The python that has chdb (`$GATELOG_CHDB_PYTHON`, else `python3`/`python`). `None` only
/// when `GATELOG_SKIP_CHDB=1`; otherwise a missing chdb fails the test.
pub fn python() -> Option<String> {
    match gatelog_store::testing::chdb_python() {
        Ok(Some(python)) => Some(python),
        Ok(None) => {
            eprintln!("skipping the chdb check: GATELOG_SKIP_CHDB=1");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Runs `script` with `job` as JSON on stdin; returns the JSON lines it printed.
pub fn run(python: &str, script: &Path, job: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::to_vec(job).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{} failed:\n{stdout}\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
    stdout.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}
