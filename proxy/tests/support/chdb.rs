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
    let candidates: Vec<String> = match std::env::var("GATELOG_CHDB_PYTHON") {
        Ok(p) if !p.is_empty() => vec![p],
        _ => vec!["python3".into(), "python".into()],
    };
    let found = candidates.into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import chdb"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        if std::env::var("GATELOG_SKIP_CHDB").as_deref() == Ok("1") {
            eprintln!("skipping the chdb check: GATELOG_SKIP_CHDB=1");
            return None;
        }
        panic!(
            "chdb is not importable: install it with `python3 -m pip install chdb-core` (or point \
             GATELOG_CHDB_PYTHON at a python that has it); set GATELOG_SKIP_CHDB=1 to skip this check"
        );
    }
    found
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
