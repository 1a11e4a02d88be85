//! `gatelog serve` under SIGKILL: ≥ 4 clients post unique `http_requests` batches while the
//! server is killed at random moments and restarted on the same data dir and port. Every
//! record of every acknowledged batch must end up in ClickHouse and in the tantivy index
//! exactly once; nothing (acknowledged or not) may be stored twice.
//!
//! `GATELOG_CRASH_RECORDS` sets the number of records (default 200,000). The server is the
//! debug build, whose dependencies are optimised (workspace `profile.dev.package."*"`):
//! 200k records take under a minute; `GATELOG_CRASH_RELEASE=1` runs the release build.
//! Afterwards `gatelog verify --store` finds the hash chain over the stored batches intact.

use gatelog_e2e::{
    Serve, ServeSpec, assert_stored_once, free_port, generated_ray_id, gzip, http_requests_sample,
    unique_http_requests, wait_for_sinks,
};
use gatelog_store::testing::TestClickHouse;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "crash-test-token-0123456789";
const BATCH_LINES: usize = 2_000;
const CLIENTS: usize = 4;
const KILLS: usize = 5;

const PREFIX: &str = "c0de";

/// Batch `b` gzipped: records `b * BATCH_LINES ..` with their RayIDs rewritten.
fn batch_body(lines: &[String], b: usize, total: usize) -> Vec<u8> {
    let start = b * BATCH_LINES;
    let end = (start + BATCH_LINES).min(total);
    gzip(&unique_http_requests(lines, start..end, PREFIX))
}

fn ray_id(n: usize) -> String {
    generated_ray_id(PREFIX, n)
}

#[derive(Debug, Default)]
struct Outcome {
    /// Batch numbers answered 2xx.
    acked: Vec<usize>,
    /// Batch numbers that never got a 2xx within the attempt bounds.
    given_up: Vec<usize>,
    /// Requests that failed and were retried, by cause.
    connection_errors: usize,
    backpressure: usize,
}

/// Posts one batch until a 2xx, retrying connection errors and 429/503 (bounded).
async fn post_batch(client: &reqwest::Client, url: &str, body: Vec<u8>, out: &Mutex<Outcome>) -> bool {
    let started = Instant::now();
    for _attempt in 0..500 {
        if started.elapsed() > Duration::from_secs(150) {
            break;
        }
        let sent = client
            .post(url)
            .bearer_auth(TOKEN)
            .header("Content-Encoding", "gzip")
            .header("Content-Type", "application/x-ndjson")
            .body(body.clone())
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(_) => {
                out.lock().expect("lock").connection_errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = response.status();
        if status.is_success() {
            // The body is read so a connection cut mid-answer counts as "no answer".
            match response.text().await {
                Ok(text) => {
                    let json: serde_json::Value = serde_json::from_str(&text).expect("2xx body is JSON");
                    assert!(json["batch_id"].is_string() && json["spool_seq"].is_u64(), "{text}");
                    return true;
                }
                Err(_) => {
                    out.lock().expect("lock").connection_errors += 1;
                    continue;
                }
            }
        }
        if status.as_u16() == 429 || status.as_u16() == 503 {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .expect("429/503 carry Retry-After in seconds");
            out.lock().expect("lock").backpressure += 1;
            tokio::time::sleep(Duration::from_secs(retry_after.min(2))).await;
            continue;
        }
        let text = response.text().await.unwrap_or_default();
        panic!("unexpected answer {status}: {text}");
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_batches_survive_sigkill_exactly_once() {
    let test_started = Instant::now();
    let total: usize = std::env::var("GATELOG_CRASH_RECORDS")
        .ok()
        .map(|v| v.parse().expect("GATELOG_CRASH_RECORDS is a number"))
        .unwrap_or(200_000);
    let batches = total.div_ceil(BATCH_LINES);
    let lines = Arc::new(http_requests_sample());
    let release = std::env::var_os("GATELOG_CRASH_RELEASE").is_some();
    if release {
        gatelog_e2e::gatelog_release_bin(); // build before timing anything
    } else {
        gatelog_e2e::gatelog_bin();
    }

    let ch = TestClickHouse::start().await.expect("managed clickhouse");
    let ch_url = ch.url();
    let db = ch.database().to_owned();
    let data = tempfile::tempdir().expect("tempdir");
    let spec = ServeSpec {
        data_dir: data.path().join("gatelog"),
        port: free_port(),
        clickhouse_url: ch_url.clone(),
        database: db.clone(),
        token: TOKEN.to_owned(),
        config: None,
        release,
    };
    let base = spec.base_url();
    let server = Serve::start(&spec).await;

    let next = Arc::new(AtomicUsize::new(0));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let done = Arc::new(AtomicBool::new(false));
    let client = gatelog_e2e::http_client();
    let ingest_url = format!("{base}/v1/logpush/http_requests");
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (next, outcome, lines, client, url) =
            (next.clone(), outcome.clone(), lines.clone(), client.clone(), ingest_url.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    break;
                }
                let lines = lines.clone();
                let body =
                    tokio::task::spawn_blocking(move || batch_body(&lines, b, total)).await.expect("batch builder");
                if post_batch(&client, &url, body, &outcome).await {
                    outcome.lock().expect("lock").acked.push(b);
                } else {
                    outcome.lock().expect("lock").given_up.push(b);
                }
            }
        }));
    }

    // The killer: SIGKILL at random moments while clients post, restart on the same dir/port.
    let killer = {
        let (spec, done) = (spec.clone(), done.clone());
        tokio::spawn(async move {
            let mut server = server;
            let mut kills = 0;
            while kills < KILLS && !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(fastrand::u64(200..1500))).await;
                if done.load(Ordering::Relaxed) {
                    break;
                }
                assert!(server.is_running(), "gatelog serve died by itself:\n{}", server.log_tail(40));
                server.kill();
                kills += 1;
                drop(server);
                server = Serve::start(&spec).await;
            }
            (server, kills)
        })
    };
    for c in clients {
        c.await.expect("client task");
    }
    let posting = test_started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (mut server, kills) = killer.await.expect("killer task");
    assert!(server.is_running(), "gatelog serve died by itself:\n{}", server.log_tail(40));

    let metrics = wait_for_sinks(&base, Duration::from_secs(240)).await;
    let caught_up = test_started.elapsed();
    let outcome = std::mem::take(&mut *outcome.lock().expect("lock"));
    let acked_records: usize = outcome.acked.iter().map(|b| (total - b * BATCH_LINES).min(BATCH_LINES)).sum();
    eprintln!(
        "crash test: {kills} kills, {batches} batches ({} acked, {} given up), {total} records ({acked_records} acked), \
         {} connection errors, {} backpressure answers; posting {posting:?}, sinks caught up at {caught_up:?}",
        outcome.acked.len(),
        outcome.given_up.len(),
        outcome.connection_errors,
        outcome.backpressure,
    );
    assert!(kills >= 3, "only {kills} kills happened while posting; raise GATELOG_CRASH_RECORDS");
    assert!(gatelog_e2e::metric(&metrics, "gatelog_spool_last_seq", &[]).unwrap_or(0.0) > 0.0, "{metrics}");

    // ClickHouse and the index: nothing twice, every acknowledged record present.
    let required: HashSet<String> =
        outcome.acked.iter().flat_map(|&b| (b * BATCH_LINES..((b + 1) * BATCH_LINES).min(total)).map(ray_id)).collect();
    let stored = assert_stored_once(&ch_url, &db, &base, TOKEN, &required, &[PREFIX]).await;
    eprintln!(
        "crash test: {stored} decisions in ClickHouse and in the index, each once; total {:?}",
        test_started.elapsed()
    );
    // The hash chain survived the kills: no fork, no gap, every stored row in its ledger.
    let verify = gatelog_e2e::gatelog(&[
        "verify",
        "--store",
        "--from",
        "0",
        "--to",
        "4102444800000",
        "--clickhouse-url",
        &ch_url,
        "--clickhouse-database",
        &db,
    ]);
    assert_eq!(verify.status.code(), Some(0), "{}", gatelog_e2e::describe(&verify));
    server.terminate(Duration::from_secs(30)).await;
    drop(ch);
}
