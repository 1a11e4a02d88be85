//! `gatelog serve` without ClickHouse, against the real binary: it starts while ClickHouse is
//! unreachable, acknowledges into the spool, indexes, says on `/readyz` that the store is not
//! ready, and once ClickHouse answers, creates its schema and stores everything once.
//! What stays a start-up error: managed ClickHouse that cannot start, and a first answer
//! from ClickHouse that no retry can change (an unknown user).

use gatelog_e2e::{
    Forwarder, Serve, ServeSpec, assert_stored_once, describe, free_port, gatelog, generated_ray_id, get, gzip,
    http_client, http_requests_sample, metric, search_all, unique_http_requests, wait_for_sinks, wait_until,
};
use gatelog_store::testing::TestClickHouse;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const TOKEN: &str = "no-clickhouse-token-0123456789";
const PREFIX: &str = "0c40";
const BATCH_LINES: usize = 100;
const BATCHES: usize = 16;

fn port_of(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://").parse().expect("clickhouse url is http://127.0.0.1:PORT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_starts_without_clickhouse_and_stores_everything_once_when_it_comes() {
    let lines = http_requests_sample();
    let ch = TestClickHouse::start().await.expect("clickhouse");
    let db = ch.database().to_owned();
    // The URL gatelog gets leads nowhere yet.
    let forwarder = Forwarder::start(None).await;
    let data = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("gatelog.toml");
    // 1 MiB segments: the index acknowledges as it goes, and the spool must still keep every
    // record for ClickHouse, which has not registered yet.
    std::fs::write(&config, "[clickhouse]\nmax_backoff = \"1s\"\n\n[spool]\nsegment_bytes = \"1 MiB\"\n")
        .expect("config");
    let spec = ServeSpec {
        data_dir: data.path().join("gatelog"),
        port: free_port(),
        clickhouse_url: forwarder.url(),
        database: db.clone(),
        token: TOKEN.to_owned(),
        config: Some(config),
        release: false,
    };
    let base = spec.base_url();
    gatelog_e2e::gatelog_bin(); // built before anything is timed
    let started = Instant::now();
    let mut server = Serve::start(&spec).await;
    eprintln!("serve answered /healthz {:?} after start, with ClickHouse unreachable", started.elapsed());
    let (_, ready, _) = wait_until(&base, "/readyz", Duration::from_secs(30), |s, body| {
        s == 503 && body.contains("clickhouse: waiting: ClickHouse is unreachable")
    })
    .await;
    eprintln!("/readyz: {ready}");
    assert!(!ready.contains(&forwarder.url()), "no URL on an unauthenticated page: {ready}");

    let client = http_client();
    for b in 0..BATCHES {
        let body = gzip(&unique_http_requests(&lines, b * BATCH_LINES..(b + 1) * BATCH_LINES, PREFIX));
        let r = client
            .post(format!("{base}/v1/logpush/http_requests"))
            .bearer_auth(TOKEN)
            .header("Content-Encoding", "gzip")
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200, "acknowledged into the spool");
    }
    // The index does not need ClickHouse: search works meanwhile.
    let deadline = Instant::now() + Duration::from_secs(60);
    while search_all(&base, TOKEN, "").await.len() < BATCHES * BATCH_LINES {
        assert!(Instant::now() < deadline, "the index did not index the spool while ClickHouse was down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m = get(&base, "/metrics").await.1;
    assert_eq!(metric(&m, "gatelog_sink_state", &[("sink", "clickhouse"), ("state", "waiting")]), Some(1.0), "{m}");
    assert_eq!(metric(&m, "gatelog_sink_up", &[("sink", "clickhouse")]), Some(1.0), "waiting is not stopped: {m}");
    let tables = gatelog_e2e::query(&ch.url(), &format!("SELECT count() FROM system.tables WHERE database = '{db}'"));
    assert_eq!(tables, "0", "nothing created in ClickHouse yet");

    // ClickHouse comes: gatelog connects, migrates, and stores what the spool holds.
    forwarder.set_backend(Some(port_of(&ch.url())));
    let up = Instant::now();
    wait_for_sinks(&base, Duration::from_secs(120)).await;
    let (status, _, _) = wait_until(&base, "/readyz", Duration::from_secs(30), |s, _| s == 200).await;
    assert_eq!(status, 200);
    eprintln!("ClickHouse reachable: the spool was stored {:?} later", up.elapsed());
    let rays: HashSet<String> = (0..BATCHES * BATCH_LINES).map(|n| generated_ray_id(PREFIX, n)).collect();
    let stored = assert_stored_once(&ch.url(), &db, &base, TOKEN, &rays, &[PREFIX]).await;
    assert_eq!(stored as usize, BATCHES * BATCH_LINES);
    server.terminate(Duration::from_secs(30)).await;
}

#[test]
fn managed_clickhouse_that_cannot_start_is_a_start_up_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    // Where managed ClickHouse keeps its files, a file: it cannot start there.
    std::fs::write(data.join("clickhouse"), b"not a directory").expect("file");
    let started = Instant::now();
    let out = gatelog(&[
        "serve",
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--ingest-token",
        TOKEN,
    ]);
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot start managed ClickHouse (set clickhouse.url to use an existing server)"),
        "{stderr}"
    );
    eprintln!("managed ClickHouse failing: exit {:?} after {:?}", out.status.code(), started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_no_retry_can_change_is_a_start_up_error() {
    let mut ch = TestClickHouse::start().await.expect("clickhouse");
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let out = gatelog(&[
        "serve",
        "--data-dir",
        dir.path().to_str().expect("utf-8"),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--ingest-token",
        TOKEN,
        "--clickhouse-url",
        &ch.url(),
        "--clickhouse-user",
        "nobody_at_all",
    ]);
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot use ClickHouse at {}", ch.url())) && stderr.contains("fatal"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    ch.stop().await.expect("stop");
}
