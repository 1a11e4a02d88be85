//! Runs `run_panels_chdb.py`: tables exported from 18.16 loaded into chdb (ClickHouse 26.9)
//! under one schema profile, then the queries.

use serde_json::Value;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// The script's answer: `{"version", "rows": {table: n}, "results": {id: {meta, data} | {error}}}`.
pub fn run(python: &str, job: &Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/run_panels_chdb.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let input = job.to_string();
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Written from a thread: the script may answer (or fail) before it has read everything.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("the chdb script ran");
    let _ = writer.join();
    assert!(out.status.success(), "run_panels_chdb.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the chdb script prints JSON")
}
