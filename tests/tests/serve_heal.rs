//! The index heals, against the real binary and a real ClickHouse 18.16: deleted under a
//! running server (while the spool no longer holds the old records), it is rebuilt from
//! ClickHouse and search finds every event again; deleted while ClickHouse is down, search
//! says it is incomplete and `/readyz` says why until ClickHouse is back; lost while gatelog
//! was stopped, it is rebuilt at start; and `gatelog index rebuild` does it by hand.

use gatelog_e2e::{
    Serve, ServeSpec, assert_stored_once, describe, free_port, gatelog, generated_ray_id, get, gzip, http_client,
    http_requests_sample, metric, search_all, unique_http_requests, wait_for_sinks, wait_until,
};
use gatelog_store::managed::{ManagedClickHouse, ManagedOptions};
use gatelog_store::testing::TestClickHouse;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const TOKEN: &str = "heal-test-token-0123456789";
const PREFIX: &str = "4ea1";
const BATCH_LINES: usize = 100;

// 1 MiB segments: the spool lets old records go as the sinks store them.
const CONFIG: &str = "[spool]\nsegment_bytes = \"1 MiB\"\n\n[server]\ndrain_timeout = \"5s\"\n";

fn spec(url: String, database: &str, data: &std::path::Path) -> ServeSpec {
    let config = data.join("gatelog.toml");
    std::fs::write(&config, CONFIG).expect("config");
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

async fn post_batches(base: &str, lines: &[String], batches: std::ops::Range<usize>) {
    let client = http_client();
    for b in batches {
        let body = gzip(&unique_http_requests(lines, b * BATCH_LINES..(b + 1) * BATCH_LINES, PREFIX));
        let r = client
            .post(format!("{base}/v1/logpush/http_requests"))
            .bearer_auth(TOKEN)
            .header("Content-Encoding", "gzip")
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200, "batch {b}: {}", r.text().await.unwrap_or_default());
    }
}

fn rays(batches: std::ops::Range<usize>) -> HashSet<String> {
    batches.flat_map(|b| (b * BATCH_LINES..(b + 1) * BATCH_LINES).map(|n| generated_ray_id(PREFIX, n))).collect()
}

/// `/v1/search` with the token: the status and the JSON.
async fn search(base: &str, q: &str) -> (u16, serde_json::Value) {
    let url = reqwest::Url::parse_with_params(&format!("{base}/v1/search"), [("q", q), ("limit", "10")]).expect("url");
    let r = http_client()
        .get(url)
        .bearer_auth(gatelog_e2e::read_token(TOKEN))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("search");
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default())
}

/// Waits until search finds exactly `expected` events, and returns how long it took.
async fn until_search_finds(base: &str, expected: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let found = search_all(base, TOKEN, "").await;
        if found.len() == expected && get(base, "/readyz").await.0 == 200 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "search finds {} of {expected} events after {limit:?}; /readyz: {:?}",
            found.len(),
            get(base, "/readyz").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_index_deleted_under_a_running_server_is_rebuilt_from_clickhouse() {
    let lines = http_requests_sample();
    let ch = TestClickHouse::start().await.expect("clickhouse");
    let data = tempfile::tempdir().expect("tempdir");
    let spec = spec(ch.url(), ch.database(), data.path());
    let base = spec.base_url();
    let mut server = Serve::start(&spec).await;
    post_batches(&base, &lines, 0..40).await;
    let mut m = wait_for_sinks(&base, Duration::from_secs(120)).await;
    // A sink reports its position before the spool has deleted what it covers: wait for that.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut segments = metric(&m, "gatelog_spool_segments", &[]).unwrap_or(0.0);
    while segments >= 10.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        m = get(&base, "/metrics").await.1;
        segments = metric(&m, "gatelog_spool_segments", &[]).unwrap_or(0.0);
    }
    assert!(segments < 10.0, "the spool let the stored records go ({segments} segments left)");

    std::fs::remove_dir_all(spec.data_dir.join("index")).expect("delete the index");
    let healed = until_search_finds(&base, 40 * BATCH_LINES, Duration::from_secs(120)).await;
    let m = get(&base, "/metrics").await.1;
    eprintln!(
        "index deleted under a running server: search finds all {} events again after {healed:?}",
        40 * BATCH_LINES
    );
    assert_eq!(metric(&m, "gatelog_index_rebuilds_total", &[]), Some(1.0), "{m}");
    assert_eq!(metric(&m, "gatelog_index_rebuilding", &[]), Some(0.0), "{m}");
    assert_eq!(metric(&m, "gatelog_index_rebuild_decisions", &[]), Some((40 * BATCH_LINES) as f64), "{m}");
    let log = server.log_tail(400);
    assert!(log.contains("rebuilding the index from clickhouse") && log.contains("was deleted"), "{log}");

    // And it goes on from the spool.
    post_batches(&base, &lines, 40..45).await;
    wait_for_sinks(&base, Duration::from_secs(60)).await;
    let stored = assert_stored_once(&ch.url(), ch.database(), &base, TOKEN, &rays(0..45), &[PREFIX]).await;
    assert_eq!(stored as usize, 45 * BATCH_LINES);
    server.terminate(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_clickhouse_is_down_a_lost_index_waits_and_search_says_it_is_incomplete() {
    let lines = http_requests_sample();
    let mut ch = TestClickHouse::start().await.expect("clickhouse");
    let db = ch.database().to_owned();
    let forwarder = gatelog_e2e::Forwarder::start(Some(port_of(&ch.url()))).await;
    let data = tempfile::tempdir().expect("tempdir");
    let spec = spec(forwarder.url(), &db, data.path());
    let base = spec.base_url();
    let mut server = Serve::start(&spec).await;
    post_batches(&base, &lines, 0..10).await;
    wait_for_sinks(&base, Duration::from_secs(60)).await;

    forwarder.set_backend(None);
    ch.server_mut().stop().await.expect("stop clickhouse");
    std::fs::remove_dir_all(spec.data_dir.join("index")).expect("delete the index");
    let (_, ready, _) =
        wait_until(&base, "/readyz", Duration::from_secs(60), |s, body| s == 503 && body.contains("index: rebuilding"))
            .await;
    eprintln!("/readyz while the index waits for ClickHouse: {ready}");
    let (status, page) = search(&base, "").await;
    assert_eq!(status, 200, "{page}");
    let incomplete = page["incomplete"].as_str().unwrap_or_default();
    assert!(incomplete.contains("being rebuilt") && incomplete.contains("missing decisions"), "{page}");
    let m = get(&base, "/metrics").await.1;
    assert_eq!(metric(&m, "gatelog_sink_state", &[("sink", "index"), ("state", "rebuilding")]), Some(1.0), "{m}");

    // ClickHouse back (same data, another port behind the same URL): the index heals.
    let revived = ManagedClickHouse::start(ch.data_dir(), ManagedOptions::default()).await.expect("restart");
    forwarder.set_backend(Some(port_of(&revived.url())));
    let healed = until_search_finds(&base, 10 * BATCH_LINES, Duration::from_secs(120)).await;
    eprintln!("the index healed {healed:?} after ClickHouse came back");
    let (_, page) = search(&base, "").await;
    assert!(page["incomplete"].is_null(), "{page}");
    server.terminate(Duration::from_secs(30)).await;
    drop(revived);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_index_lost_while_stopped_is_rebuilt_at_start_or_by_gatelog_index_rebuild() {
    let lines = http_requests_sample();
    let ch = TestClickHouse::start().await.expect("clickhouse");
    let data = tempfile::tempdir().expect("tempdir");
    let spec = spec(ch.url(), ch.database(), data.path());
    let base = spec.base_url();
    let mut server = Serve::start(&spec).await;
    post_batches(&base, &lines, 0..30).await;
    wait_for_sinks(&base, Duration::from_secs(120)).await;

    // `gatelog index rebuild` refuses while serve holds the index.
    let data_dir = spec.data_dir.to_str().expect("utf-8").to_owned();
    let flags = ["--data-dir", &data_dir, "--clickhouse-url", &ch.url(), "--clickhouse-database", ch.database()];
    let busy = gatelog(&[&["index", "rebuild"][..], &flags[..]].concat());
    assert!(!busy.status.success(), "{}", describe(&busy));
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("in use by a running `gatelog serve`"),
        "{}",
        describe(&busy)
    );

    // Lost while stopped: serve rebuilds it at start.
    assert!(server.terminate(Duration::from_secs(30)).await.is_some_and(|s| s.success()));
    std::fs::remove_dir_all(spec.data_dir.join("index")).expect("delete the index");
    let mut server = Serve::start(&spec).await;
    let healed = until_search_finds(&base, 30 * BATCH_LINES, Duration::from_secs(120)).await;
    eprintln!("index lost while stopped: rebuilt at start, search complete {healed:?} after start");
    assert!(server.terminate(Duration::from_secs(30)).await.is_some_and(|s| s.success()));

    // By hand, with progress for the operator.
    std::fs::remove_dir_all(spec.data_dir.join("index")).expect("delete the index");
    let search_cli = gatelog(&[&["search", "--limit", "1000"][..], &flags[..], &["*"]].concat());
    assert!(!search_cli.status.success(), "{}", describe(&search_cli));
    assert!(
        String::from_utf8_lossy(&search_cli.stderr).contains("gatelog index rebuild --data-dir"),
        "{}",
        describe(&search_cli)
    );
    let started = Instant::now();
    let rebuilt = gatelog(&[&["index", "rebuild", "--no-progress"][..], &flags[..]].concat());
    assert!(rebuilt.status.success(), "{}", describe(&rebuilt));
    let stdout = String::from_utf8_lossy(&rebuilt.stdout);
    let stderr = String::from_utf8_lossy(&rebuilt.stderr);
    assert!(stdout.contains(&format!("{} decisions", 30 * BATCH_LINES)), "{}", describe(&rebuilt));
    assert!(stderr.contains("index rebuild from ClickHouse: 0 of 3000 decisions"), "progress lines: {stderr}");
    eprintln!("gatelog index rebuild: {} in {:?}", stdout.trim(), started.elapsed());
    let found = gatelog(&[&["search", "--limit", "1000", "--json"][..], &flags[..], &["*"]].concat());
    assert!(found.status.success(), "{}", describe(&found));
    let page: serde_json::Value = serde_json::from_slice(&found.stdout).expect("json");
    assert_eq!(page["hits"].as_array().map(Vec::len), Some(1000), "{}", describe(&found));

    // And serve goes on from there.
    let mut server = Serve::start(&spec).await;
    post_batches(&base, &lines, 30..32).await;
    wait_for_sinks(&base, Duration::from_secs(60)).await;
    let stored = assert_stored_once(&ch.url(), ch.database(), &base, TOKEN, &rays(0..32), &[PREFIX]).await;
    assert_eq!(stored as usize, 32 * BATCH_LINES);
    let m = get(&base, "/metrics").await.1;
    assert_eq!(
        metric(&m, "gatelog_index_rebuilds_total", &[]),
        Some(0.0),
        "no rebuild needed after the manual one: {m}"
    );
    server.terminate(Duration::from_secs(30)).await;
}

fn port_of(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://").parse().expect("clickhouse url is http://127.0.0.1:PORT")
}
