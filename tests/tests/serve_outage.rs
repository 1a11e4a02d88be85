//! `gatelog serve` while ClickHouse is down, with a small (8 MiB) spool: the receiver keeps
//! acknowledging while the spool has room, then answers 429 with `Retry-After` once it is
//! full; the index sink keeps indexing meanwhile (its metrics move while ClickHouse's lag
//! grows). Once ClickHouse is back (same data dir, new port behind a forwarder gatelog keeps
//! talking to), the senders' retries are accepted and everything acknowledged arrives in
//! ClickHouse and the index, nothing twice. (503 at `max_lag_records` is covered by
//! `ingest/tests/receiver_bad_input.rs`.)

use gatelog_e2e::{
    Forwarder, Serve, ServeSpec, assert_stored_once, describe, free_port, gatelog, generated_ray_id, gzip, http_client,
    http_requests_sample, metric, unique_http_requests, wait_for_sinks,
};
use gatelog_store::managed::{ManagedClickHouse, ManagedOptions};
use gatelog_store::testing::TestClickHouse;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TOKEN: &str = "outage-test-token-0123456789";
const PREFIX: &str = "0a7e";
const BATCH_LINES: usize = 100;
const SPOOL_BYTES: f64 = 8.0 * 1024.0 * 1024.0;

// The lag limit stays at its default (a million records): only the full spool pushes back.
const CONFIG: &str = r#"
[spool]
max_bytes = "8 MiB"
segment_bytes = "1 MiB"

[receiver]
retry_after = "1s"

[server]
drain_timeout = "2s"
"#;

enum Answer {
    Acked,
    /// 429 or 503, with the Retry-After seconds.
    Backpressure(u16, u64),
    ConnectionError,
}

async fn post(client: &reqwest::Client, url: &str, body: &[u8]) -> Answer {
    let sent = client
        .post(url)
        .bearer_auth(TOKEN)
        .header("Content-Encoding", "gzip")
        .body(body.to_vec())
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let Ok(response) = sent else { return Answer::ConnectionError };
    let status = response.status().as_u16();
    match status {
        200..=299 => Answer::Acked,
        429 | 503 => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{status} without a numeric Retry-After"));
            Answer::Backpressure(status, retry_after)
        }
        _ => panic!("unexpected {status}: {}", response.text().await.unwrap_or_default()),
    }
}

fn port_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().expect("clickhouse url is http://127.0.0.1:PORT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spool_absorbs_an_outage_then_pushes_back_and_nothing_is_lost_or_doubled() {
    let started = Instant::now();
    let lines = http_requests_sample();
    gatelog_e2e::gatelog_bin();
    let mut ch = TestClickHouse::start().await.expect("managed clickhouse");
    let db = ch.database().to_owned();
    let forwarder = Forwarder::start(Some(port_of(&ch.url()))).await;
    let data = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("gatelog.toml");
    // A server on this machine given by URL: the sink syncs its data dir, as for managed.
    let tables = ch.server().tables_dir();
    std::fs::write(&config, format!("{CONFIG}\n[clickhouse]\nsync_data_dir = {tables:?}\n")).expect("config");
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
    let mut server = Serve::start(&spec).await;
    let client = http_client();
    let url = format!("{base}/v1/logpush/http_requests");
    let body = |b: usize| gzip(&unique_http_requests(&lines, b * BATCH_LINES..(b + 1) * BATCH_LINES, PREFIX));
    let mut acked: Vec<usize> = Vec::new();
    let mut next = 0;

    // ClickHouse up: a few batches go straight through.
    for _ in 0..3 {
        assert!(matches!(post(&client, &url, &body(next)).await, Answer::Acked));
        acked.push(next);
        next += 1;
    }
    wait_for_sinks(&base, Duration::from_secs(60)).await;

    // ClickHouse down: acks continue until the spool is full, then 429 + Retry-After.
    forwarder.set_backend(None);
    ch.server_mut().stop().await.expect("stop clickhouse");
    let mut acked_during_outage = 0;
    let mut pushed_back: Vec<(u16, u64)> = Vec::new();
    let mut pending: Vec<usize> = Vec::new();
    let mut readyz_status = 0;
    let outage = Instant::now();
    while pushed_back.len() < 5 && outage.elapsed() < Duration::from_secs(60) && next < 1000 {
        let b = next;
        next += 1;
        match post(&client, &url, &body(b)).await {
            Answer::Acked => {
                assert!(pushed_back.is_empty(), "an ack after backpressure while ClickHouse is still down");
                acked.push(b);
                acked_during_outage += 1;
            }
            Answer::Backpressure(status, retry_after) => {
                pushed_back.push((status, retry_after));
                pending.push(b);
                // Within Retry-After of a full-spool answer, /readyz takes the receiver out of rotation.
                readyz_status = client.get(format!("{base}/readyz")).send().await.expect("readyz").status().as_u16();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Answer::ConnectionError => panic!("gatelog stopped answering during the outage:\n{}", server.log_tail(40)),
        }
    }
    let metrics_down =
        client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("metrics");
    let spool_bytes = metric(&metrics_down, "gatelog_spool_bytes", &[]).unwrap_or(-1.0);
    eprintln!(
        "outage: {acked_during_outage} batches acked while ClickHouse was down, then {pushed_back:?} (status, Retry-After s); \
         spool {spool_bytes} bytes; /readyz {readyz_status}",
    );
    assert!(acked_during_outage >= 3, "the spool absorbed only {acked_during_outage} batches");
    assert!(pushed_back.len() >= 5, "no backpressure within 60 s of outage (acked {acked_during_outage})");
    assert!(pushed_back.iter().all(|(status, _)| *status == 429), "a full spool answers 429: {pushed_back:?}");
    assert!(pushed_back.iter().all(|(_, s)| *s == 1), "Retry-After is the configured 1 s: {pushed_back:?}");
    assert!(
        spool_bytes > SPOOL_BYTES / 2.0 && spool_bytes <= SPOOL_BYTES,
        "the spool filled up to its limit: {spool_bytes}"
    );
    assert!(metric(&metrics_down, "gatelog_spool_full_rejections_total", &[]).unwrap_or(0.0) >= 5.0, "{metrics_down}");
    assert_eq!(readyz_status, 503, "/readyz reports the full spool");
    assert!(server.is_running(), "{}", server.log_tail(40));

    // Meanwhile the index sink indexed everything acknowledged; ClickHouse's lag shows the outage.
    let indexed = acked.len() * BATCH_LINES;
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics_down = loop {
        let text = client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("metrics");
        if metric(&text, "gatelog_written_decisions_total", &[("sink", "index")]) == Some(indexed as f64) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the index did not index the {indexed} acknowledged decisions:\n{text}\n{}",
            server.log_tail(80)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let m = |name: &str, sink: &str| metric(&metrics_down, name, &[("sink", sink)]).unwrap_or(-1.0);
    assert_eq!(m("gatelog_sink_lag_records", "index"), 0.0, "{metrics_down}");
    assert_eq!(m("gatelog_sink_lag_seconds", "index"), 0.0, "{metrics_down}");
    assert_eq!(m("gatelog_written_decisions_total", "clickhouse"), (3 * BATCH_LINES) as f64, "{metrics_down}");
    assert_eq!(m("gatelog_sink_lag_records", "clickhouse"), acked_during_outage as f64, "{metrics_down}");
    assert!(m("gatelog_sink_lag_seconds", "clickhouse") > 0.0, "{metrics_down}");
    let by_dataset = metric(&metrics_down, "gatelog_indexed_documents_total", &[("dataset", "http_requests")]);
    assert_eq!(by_dataset, Some(indexed as f64), "{metrics_down}");

    // ClickHouse back on the same data dir (another port, behind the same forwarder URL).
    let revived = ManagedClickHouse::start(ch.data_dir(), ManagedOptions::default()).await.expect("restart clickhouse");
    forwarder.set_backend(Some(port_of(&revived.url())));
    let outage_length = outage.elapsed();

    // Senders retry what was refused, honouring Retry-After; then some new batches.
    pending.extend(next..next + 5);
    for b in pending {
        let body = body(b);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match post(&client, &url, &body).await {
                Answer::Acked => break,
                Answer::Backpressure(_, s) => tokio::time::sleep(Duration::from_secs(s.min(5))).await,
                Answer::ConnectionError => tokio::time::sleep(Duration::from_millis(200)).await,
            }
            assert!(Instant::now() < deadline, "batch {b} not accepted within 120 s after ClickHouse returned");
        }
        acked.push(b);
    }
    wait_for_sinks(&base, Duration::from_secs(120)).await;

    let required: HashSet<String> = acked
        .iter()
        .flat_map(|&b| (b * BATCH_LINES..(b + 1) * BATCH_LINES).map(|n| generated_ray_id(PREFIX, n)))
        .collect();
    let stored = assert_stored_once(&revived.url(), &db, &base, TOKEN, &required, &[PREFIX]).await;
    assert_eq!(stored as usize, required.len(), "every batch was acknowledged in the end, so exactly those records");
    eprintln!(
        "outage test: {} batches acked ({acked_during_outage} during a {outage_length:?} outage), {stored} decisions once each in ClickHouse and the index; {:?}",
        acked.len(),
        started.elapsed()
    );
    server.terminate(Duration::from_secs(20)).await;
    drop(revived);
}

#[test]
fn serve_refuses_a_sync_data_dir_it_cannot_open_before_starting_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-clickhouse");
    let config = dir.path().join("gatelog.toml");
    std::fs::write(&config, format!("[clickhouse]\nurl = \"http://127.0.0.1:9\"\nsync_data_dir = {missing:?}\n"))
        .expect("config");
    let data_dir = dir.path().join("data");
    let out = gatelog(&[
        "serve",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--data-dir",
        data_dir.to_str().expect("utf-8 path"),
        "--listen",
        "127.0.0.1:0",
        "--ingest-token",
        TOKEN,
    ]);
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("clickhouse.sync_data_dir: cannot open {}", missing.display())), "{stderr}");
    assert!(!data_dir.join("spool").exists(), "the spool was opened before the check");
}
