//! Support for gatelog's end-to-end tests (in `tests/tests/`): the real `gatelog` binary,
//! built once per test process, the shared sample data, and small ClickHouse helpers.
//!
//! The tests run the binary as a user would, against a real `clickhouse-server` started by
//! `gatelog_store::testing` (one server and one database per test).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `gatelog` binary of this workspace, built (or found fresh) by cargo on first use.
pub fn gatelog_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let built = escargot::CargoBuild::new()
            .manifest_path(manifest)
            .package("gatelog")
            .bin("gatelog")
            .run()
            .unwrap_or_else(|e| panic!("cannot build the gatelog binary: {e}"));
        built.path().to_path_buf()
    })
}

/// Runs `gatelog ARGS…` to completion.
pub fn gatelog(args: &[&str]) -> Output {
    Command::new(gatelog_bin())
        .args(args)
        .env("GATELOG_LOG", "warn")
        .env_remove("GATELOG_CLICKHOUSE_URL")
        .env_remove("GATELOG_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run gatelog: {e}"))
}

/// stdout + stderr of a finished command, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `shared/formats/samples`, beside the repository (override with `GATELOG_SHARED`).
pub fn samples_dir() -> PathBuf {
    let shared = std::env::var_os("GATELOG_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let dir = shared.join("formats/samples");
    assert!(
        dir.join("http_requests.ndjson").is_file(),
        "sample data not found in {} (set GATELOG_SHARED to the folder holding formats/samples)",
        dir.display()
    );
    dir
}

/// Runs one SQL statement over ClickHouse's HTTP interface and returns the body, trimmed.
pub fn query(url: &str, sql: &str) -> String {
    let output = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--data-binary", "@-", url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(sql.as_bytes())?;
            }
            child.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    assert!(output.status.success(), "query failed: {sql}\n{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A `SELECT` that returns one number.
pub fn count(url: &str, sql: &str) -> u64 {
    let text = query(url, sql);
    text.parse().unwrap_or_else(|_| panic!("{sql} returned {text:?}, not a number"))
}
