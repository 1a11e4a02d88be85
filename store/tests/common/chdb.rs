//! chdb (ClickHouse 26.9 in-process) through `tests/compat/run_chdb.py`: the python that has
//! it, and [`Chdb`], a session driven one statement at a time (`--interactive`).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/compat/run_chdb.py")
}

/// The python that has chdb ([`gatelog_store::testing::chdb_python`]). `None` only when
/// `GATELOG_SKIP_CHDB=1` says chdb may be missing; otherwise its absence fails the test with
/// how to install it.
pub fn python() -> Option<String> {
    match gatelog_store::testing::chdb_python() {
        Ok(Some(python)) => Some(python),
        Ok(None) => {
            eprintln!("skipping the chdb compatibility check: GATELOG_SKIP_CHDB=1");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// One chdb process answering statements in order; its session's data lives in a directory
/// of the caller's, which [`Chdb::open`] can open again (a restart on an existing data dir).
#[derive(Debug)]
pub struct Chdb {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

#[derive(serde::Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    out: String,
    #[serde(default)]
    error: String,
}

impl Chdb {
    pub fn start(python: &str) -> Chdb {
        let mut child = Command::new(python)
            .arg(script())
            .arg("--interactive")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Chdb { child, stdin, stdout }
    }

    fn ask(&mut self, request: serde_json::Value) -> Result<String, String> {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{request}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        let read = self.stdout.read_line(&mut line).unwrap();
        assert!(read > 0, "run_chdb.py --interactive exited (see its stderr above)");
        let answer: Answer = serde_json::from_str(&line).unwrap();
        if answer.ok { Ok(answer.out) } else { Err(answer.error) }
    }

    /// (Re)opens the session on `dir`; answers chdb's version.
    pub fn open(&mut self, dir: &Path) -> String {
        self.ask(serde_json::json!({ "open": dir })).unwrap()
    }

    /// Runs `sql`; its CSV output, or chdb's error.
    pub fn query(&mut self, sql: &str) -> Result<String, String> {
        self.ask(serde_json::json!({ "sql": sql }))
    }

    /// Runs `sql`, which must succeed; its CSV output, trimmed.
    pub fn run(&mut self, sql: &str) -> String {
        match self.query(sql) {
            Ok(out) => out.trim().to_owned(),
            Err(e) => panic!("chdb failed: {e}\n--- statement ---\n{sql}"),
        }
    }
}

impl Drop for Chdb {
    fn drop(&mut self) {
        drop(self.stdin.take()); // end of input: the script closes its session and exits
        let _ = self.child.wait();
    }
}
