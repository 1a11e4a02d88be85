//! The sinks' half of shutdown, against the real binary: with ClickHouse hung (SIGSTOP) or
//! down, SIGTERM ends `gatelog serve` within `server.drain_timeout` plus the margin the code
//! enforces (a write still running gets 2 s before it is abandoned, the sinks 3 s in all, and
//! managed ClickHouse 5 s before it is killed), leaving what was not stored in the spool; the
//! next start stores it, once. The bounds asserted are those limits with slack for a loaded
//! machine, not speeds.

use gatelog_e2e::{
    Forwarder, Serve, ServeSpec, assert_stored_once, free_port, generated_ray_id, gzip, http_client,
    http_requests_sample, unique_http_requests, wait_for_sinks,
};
use gatelog_store::managed::{ManagedClickHouse, ManagedOptions};
use gatelog_store::testing::TestClickHouse;
use std::collections::HashSet;
use std::time::Duration;

const TOKEN: &str = "shutdown-test-token-0123456789";
const BATCH_LINES: usize = 100;
const DRAIN: Duration = Duration::from_secs(2);
/// What the code adds to the drain timeout at most: the sinks' stop grace (3 s).
const SINKS_MARGIN: Duration = Duration::from_secs(3);
/// What managed ClickHouse adds at most: its stop timeout before SIGKILL (5 s).
const MANAGED_MARGIN: Duration = Duration::from_secs(5);
/// Slack for a loaded 2-core machine (process start-up of `kill`, scheduling).
const SLACK: Duration = Duration::from_secs(3);

fn spec(url: String, database: &str, data: &std::path::Path) -> ServeSpec {
    let config = data.join("gatelog.toml");
    std::fs::write(&config, format!("[server]\ndrain_timeout = \"{}s\"\n", DRAIN.as_secs())).expect("config");
    ServeSpec {
        data_dir: data.join("gatelog"),
        port: free_port(),
        clickhouse_url: url,
        database: database.to_owned(),
        token: TOKEN.to_owned(),
        config: Some(config),
        release: false,
    }
}

async fn post(base: &str, lines: &[String], prefix: &str, b: usize) {
    let body = gzip(&unique_http_requests(lines, b * BATCH_LINES..(b + 1) * BATCH_LINES, prefix));
    let r = http_client()
        .post(format!("{base}/v1/logpush/http_requests"))
        .bearer_auth(TOKEN)
        .header("Content-Encoding", "gzip")
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200, "batch {b}");
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill {sig} {pid}");
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

fn rays(prefix: &str, batches: usize) -> HashSet<String> {
    (0..batches * BATCH_LINES).map(|n| generated_ray_id(prefix, n)).collect()
}

/// Serves, stores 3 batches, makes ClickHouse hang (`hang`), acknowledges 2 more into the
/// spool, then SIGTERMs gatelog: returns how long it took to exit.
async fn exit_time_with(
    spec: &ServeSpec,
    lines: &[String],
    prefix: &str,
    hang: impl FnOnce(&Serve),
) -> (Serve, Duration) {
    let base = spec.base_url();
    let mut server = Serve::start(spec).await;
    for b in 0..3 {
        post(&base, lines, prefix, b).await;
    }
    wait_for_sinks(&base, Duration::from_secs(120)).await;
    hang(&server);
    for b in 3..5 {
        post(&base, lines, prefix, b).await;
    }
    // The ClickHouse sink is now inside a write that will not come back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let took = server.time_to_exit(Duration::from_secs(120)).await.expect("gatelog exited");
    (server, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_clickhouse_hung_or_down_exits_within_the_drain_timeout() {
    let lines = http_requests_sample();
    for (case, prefix) in [("hung", "5e01"), ("down", "5e02")] {
        let ch = TestClickHouse::start().await.expect("clickhouse");
        let forwarder = Forwarder::start(Some(port_of(&ch.url()))).await;
        let data = tempfile::tempdir().expect("tempdir");
        let spec = spec(forwarder.url(), ch.database(), data.path());
        let ch_pid = ch.server().pid().expect("clickhouse pid");
        // Hung: stopped mid-answer, connections open. Down: gone, connections refused.
        let how = if case == "hung" { "-STOP" } else { "-KILL" };
        let (_, took) = exit_time_with(&spec, &lines, prefix, |_| {
            if case == "down" {
                forwarder.set_backend(None);
            }
            signal(ch_pid, how);
        })
        .await;
        eprintln!("SIGTERM with ClickHouse {case}: exited after {took:?} (drain_timeout {DRAIN:?})");
        assert!(took <= DRAIN + SINKS_MARGIN + SLACK, "{case}: {took:?}");

        let revived = match case {
            "hung" => {
                signal(ch_pid, "-CONT");
                None
            }
            _ => {
                // Down at the next start too: it starts, and stops as fast.
                let mut down = Serve::start(&spec).await;
                let took = down.time_to_exit(Duration::from_secs(60)).await.expect("exited");
                eprintln!("SIGTERM with ClickHouse down since start: exited after {took:?}");
                assert!(took <= DRAIN + SINKS_MARGIN + SLACK, "{took:?}");
                let revived =
                    ManagedClickHouse::start(ch.data_dir(), ManagedOptions::default()).await.expect("restart");
                forwarder.set_backend(Some(port_of(&revived.url())));
                Some(revived)
            }
        };
        // Nothing acknowledged was lost: the next start stores what the spool kept, once.
        let url = revived.as_ref().map_or_else(|| ch.url(), ManagedClickHouse::url);
        let mut again = Serve::start(&spec).await;
        wait_for_sinks(&spec.base_url(), Duration::from_secs(120)).await;
        let stored =
            assert_stored_once(&url, ch.database(), &spec.base_url(), TOKEN, &rays(prefix, 5), &[prefix]).await;
        assert_eq!(stored as usize, 5 * BATCH_LINES);
        again.terminate(Duration::from_secs(30)).await;
        drop(revived);
    }
}

fn port_of(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://").parse().expect("clickhouse url is http://127.0.0.1:PORT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_managed_clickhouse_hung_is_bounded_too() {
    let lines = http_requests_sample();
    let data = tempfile::tempdir().expect("tempdir");
    let spec = spec(String::new(), "gatelog", data.path());
    let status_file = spec.data_dir.join("clickhouse/data/status");
    let mut ch_pid = 0;
    let (_, took) = exit_time_with(&spec, &lines, "5e03", |_| {
        let status = std::fs::read_to_string(&status_file).expect("managed clickhouse status file");
        ch_pid = status.lines().find_map(|l| l.strip_prefix("PID:")).expect("PID line").trim().parse().expect("pid");
        signal(ch_pid, "-STOP");
    })
    .await;
    eprintln!("SIGTERM with managed ClickHouse hung: exited after {took:?}");
    assert!(took <= DRAIN + SINKS_MARGIN + MANAGED_MARGIN + SLACK, "{took:?}");
    assert!(!alive(ch_pid), "managed ClickHouse {ch_pid} was stopped, not left behind");

    // The next start (managed ClickHouse again, same data) stores what the spool kept.
    let mut again = Serve::start(&spec).await;
    wait_for_sinks(&spec.base_url(), Duration::from_secs(120)).await;
    let config = std::fs::read_to_string(spec.data_dir.join("clickhouse/config.xml")).expect("managed config");
    let port = config.split("<http_port>").nth(1).and_then(|rest| rest.split('<').next()).expect("http_port");
    let url = format!("http://127.0.0.1:{port}");
    let stored = assert_stored_once(&url, "gatelog", &spec.base_url(), TOKEN, &rays("5e03", 5), &["5e03"]).await;
    assert_eq!(stored as usize, 5 * BATCH_LINES);
    again.terminate(Duration::from_secs(60)).await;
}
