//! The managed `clickhouse-server` launcher against the installed server.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_store::managed::{ManagedClickHouse, ManagedError, ManagedOptions};
use gatelog_store::testing::TestClickHouse;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; count it as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split(") ").nth(1).is_some_and(|rest| rest.starts_with('Z')))
        .unwrap_or(false)
}

async fn select_one(url: &str) -> u8 {
    clickhouse::Client::default()
        .with_url(url)
        .with_validation(false)
        .query("SELECT 1")
        .fetch_one::<u8>()
        .await
        .unwrap()
}

#[tokio::test]
async fn starts_answers_and_stops_without_leaving_a_process() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut server = ManagedClickHouse::start(dir.path(), ManagedOptions::default()).await.unwrap();
    println!("managed clickhouse start-up: {:?} (server {:?})", started.elapsed(), server.startup_time());
    let pid = server.pid().unwrap();
    assert!(alive(pid));
    assert!(server.url().starts_with("http://127.0.0.1:"));
    assert_eq!(select_one(&server.url()).await, 1);
    assert!(dir.path().join("clickhouse/config.xml").is_file());

    let stopping = Instant::now();
    server.stop().await.unwrap();
    println!("managed clickhouse stop: {:?}", stopping.elapsed());
    assert!(!alive(pid), "server {pid} still running after stop()");
    assert!(server.pid().is_none());
    server.stop().await.unwrap(); // idempotent
}

/// The generated config has merges read and write with `O_DIRECT` where the data dir takes it
/// (a folder under `target/` does; `/tmp` may be a tmpfs that refuses it): a merge must still
/// work, and keep every row.
#[tokio::test]
async fn merges_work_with_direct_io() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut server = ManagedClickHouse::start(dir.path(), ManagedOptions::default()).await.unwrap();
    let config = std::fs::read_to_string(dir.path().join("clickhouse/config.xml")).unwrap();
    assert!(config.contains("<min_merge_bytes_to_use_direct_io>1<"), "{config}");
    let client = clickhouse::Client::default().with_url(server.url()).with_validation(false);
    client.query("CREATE TABLE merged (n UInt64, s String) ENGINE = MergeTree ORDER BY n").execute().await.unwrap();
    for part in 0..3 {
        let insert = format!(
            "INSERT INTO merged SELECT number, toString(number) FROM system.numbers WHERE number % 3 = {part} LIMIT 100000"
        );
        client.query(&insert).execute().await.unwrap();
    }
    client.query("OPTIMIZE TABLE merged FINAL").execute().await.unwrap();
    let parts = client
        .query("SELECT count(), sum(rows) FROM system.parts WHERE active AND database = currentDatabase() AND table = 'merged'")
        .fetch_one::<(u64, u64)>()
        .await
        .unwrap();
    assert_eq!(parts, (1, 300_000));
    let distinct =
        client.query("SELECT uniqExact(n) FROM merged WHERE s = toString(n)").fetch_one::<u64>().await.unwrap();
    assert_eq!(distinct, 300_000);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn drop_kills_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = ManagedClickHouse::start(dir.path(), ManagedOptions::default()).await.unwrap();
    let pid = server.pid().unwrap();
    drop(server);
    assert!(!alive(pid), "server {pid} survived drop");
}

/// Each thread's nice value.
fn thread_nice_values(pid: u32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| task.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|tid| rustix::process::getpriority_process(rustix::process::Pid::from_raw(tid)).ok())
        .collect()
}

#[tokio::test]
async fn nice_lowers_the_priority_of_every_server_thread_and_not_ours() {
    let ours_before = thread_nice_values(std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let opts = ManagedOptions { nice: 7, ..ManagedOptions::default() };
    let mut server = ManagedClickHouse::start(dir.path(), opts).await.unwrap();
    assert_eq!(select_one(&server.url()).await, 1);
    let nice = thread_nice_values(server.pid().unwrap());
    assert!(nice.len() > 1, "expected several server threads, got {nice:?}");
    assert!(nice.iter().all(|n| *n == 7), "server threads' nice values: {nice:?}");
    server.stop().await.unwrap();
    assert!(
        thread_nice_values(std::process::id()).iter().all(|n| ours_before.contains(n)),
        "the test's own threads were reniced"
    );
}

#[tokio::test]
async fn a_nice_value_out_of_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ManagedOptions { nice: 20, ..ManagedOptions::default() };
    let err = ManagedClickHouse::start(dir.path(), opts).await.unwrap_err();
    assert!(err.to_string().contains("nice must be between 0 and 19, got 20"), "{err}");
}

#[tokio::test]
async fn a_missing_binary_names_the_apt_package() {
    let dir = tempfile::tempdir().unwrap();
    let opts =
        ManagedOptions { binary: Some(PathBuf::from("/nonexistent/clickhouse-server")), ..ManagedOptions::default() };
    let err = ManagedClickHouse::start(dir.path(), opts).await.unwrap_err();
    assert!(matches!(err, ManagedError::NotFound { .. }));
    let msg = err.to_string();
    assert!(
        msg.starts_with("clickhouse-server not found; install it with `apt-get install -y clickhouse-server`"),
        "{msg}"
    );
}

#[tokio::test]
async fn refuses_a_second_server_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = ManagedClickHouse::start(dir.path(), ManagedOptions::default()).await.unwrap();
    let err = ManagedClickHouse::start(dir.path(), ManagedOptions::default()).await.unwrap_err();
    assert!(matches!(err, ManagedError::AlreadyRunning { pid: Some(_), .. }), "{err}");
    assert!(err.to_string().contains("already running"), "{err}");
    assert_eq!(select_one(&first.url()).await, 1, "the first server must be unharmed");
    first.stop().await.unwrap();
    // Once stopped, the same dir starts again (and keeps its data).
    let mut again = ManagedClickHouse::start(dir.path(), ManagedOptions::default()).await.unwrap();
    again.stop().await.unwrap();
}

#[tokio::test]
async fn a_server_that_exits_at_start_reports_its_log() {
    let dir = tempfile::tempdir().unwrap();
    // `false` exits at once with status 1: the error must say so instead of waiting out the timeout.
    let fake = Path::new("/bin/false");
    let opts = ManagedOptions {
        binary: Some(fake.to_owned()),
        startup_timeout: Duration::from_secs(20),
        ..ManagedOptions::default()
    };
    let started = Instant::now();
    let err = ManagedClickHouse::start(dir.path(), opts).await.unwrap_err();
    assert!(matches!(err, ManagedError::Exited { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("silent-server");
    std::fs::write(&script, "#!/bin/sh\necho 'pretending to start' >&2\nexec sleep 30\n").unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    let opts = ManagedOptions {
        binary: Some(script),
        startup_timeout: Duration::from_millis(500),
        stop_timeout: Duration::from_secs(1),
        ..ManagedOptions::default()
    };
    let err = ManagedClickHouse::start(dir.path(), opts).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ManagedError::StartTimeout { .. }), "{msg}");
    assert!(msg.contains("pretending to start"), "{msg}");
}

#[tokio::test]
async fn test_helper_gives_each_test_its_own_database() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    assert!(store.database().starts_with("gatelog_test_"));
    assert_eq!(store.database(), ch.database());
    assert_ne!(gatelog_store::testing::random_database(), ch.database());
    let pid = ch.server().pid().unwrap();
    ch.stop().await.unwrap();
    assert!(!alive(pid));
}
