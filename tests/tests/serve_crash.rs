//! `gatelog serve` under SIGKILL: ≥ 4 clients post unique `http_requests` batches while the
//! server is killed at random moments and restarted on the same data dir and port. Every
//! record of every acknowledged batch must end up in ClickHouse and in the tantivy index
//! exactly once; nothing (acknowledged or not) may be stored twice.
//!
//! `GATELOG_CRASH_RECORDS` sets the number of records (default 200,000).

use flate2::Compression;
use flate2::write::GzEncoder;
use gatelog_e2e::{Serve, ServeSpec, count, free_port, query, samples_dir, search_all, wait_for_sinks};
use gatelog_store::testing::TestClickHouse;
use std::collections::{BTreeSet, HashSet};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "crash-test-token-0123456789";
const BATCH_LINES: usize = 2_000;
const CLIENTS: usize = 4;
const KILLS: usize = 5;

/// The 5,000 sample lines.
fn sample_lines() -> Vec<String> {
    let path = samples_dir().join("http_requests_5000.ndjson.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("sample file"))
        .read_to_string(&mut text)
        .expect("sample is gzip text");
    let lines: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect();
    assert!(lines.len() >= 1000, "{} lines", lines.len());
    lines
}

/// The RayID of record number `n`: 16 hex digits that no sample record uses.
fn ray_id(n: usize) -> String {
    format!("c0de{:012x}", n)
}

/// Batch `b` gzipped: records `b * BATCH_LINES ..` with their RayIDs rewritten.
fn batch_body(lines: &[String], b: usize, total: usize) -> Vec<u8> {
    let start = b * BATCH_LINES;
    let end = (start + BATCH_LINES).min(total);
    let mut gz = GzEncoder::new(Vec::with_capacity(1 << 20), Compression::fast());
    for n in start..end {
        let line = &lines[n % lines.len()];
        let at = line.find("\"RayID\":\"").expect("every sample line has a RayID") + 9;
        assert!(line[at..at + 16].bytes().all(|c| c.is_ascii_hexdigit()), "RayID is 16 hex digits");
        gz.write_all(line[..at].as_bytes()).unwrap();
        gz.write_all(ray_id(n).as_bytes()).unwrap();
        gz.write_all(line[at + 16..].as_bytes()).unwrap();
        gz.write_all(b"\n").unwrap();
    }
    gz.finish().unwrap()
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
                out.lock().unwrap().connection_errors += 1;
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
                    out.lock().unwrap().connection_errors += 1;
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
            out.lock().unwrap().backpressure += 1;
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
    let lines = Arc::new(sample_lines());
    gatelog_e2e::gatelog_bin(); // build before timing anything

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
        let (next, outcome, lines, client, url) = (next.clone(), outcome.clone(), lines.clone(), client.clone(), ingest_url.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    break;
                }
                let lines = lines.clone();
                let body = tokio::task::spawn_blocking(move || batch_body(&lines, b, total)).await.unwrap();
                if post_batch(&client, &url, body, &outcome).await {
                    outcome.lock().unwrap().acked.push(b);
                } else {
                    outcome.lock().unwrap().given_up.push(b);
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
                tokio::time::sleep(Duration::from_millis(fastrand::u64(500..3000))).await;
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
    let outcome = std::mem::take(&mut *outcome.lock().unwrap());
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

    // ClickHouse: nothing twice, every acknowledged record present, nothing foreign.
    let dup_check = query(
        &ch_url,
        &format!("SELECT count(), uniqExact(event_id), uniqExact(ray_id) FROM {db}.decisions FORMAT TSV"),
    );
    let figures: Vec<u64> = dup_check.split('\t').map(|v| v.parse().unwrap()).collect();
    assert_eq!(figures[0], figures[1], "decisions stored twice (count, uniq event_id, uniq ray_id): {figures:?}");
    assert_eq!(figures[0], figures[2], "a RayID stored twice: {figures:?}");
    let stored_rays: HashSet<String> = query(&ch_url, &format!("SELECT ray_id FROM {db}.decisions FORMAT TSV"))
        .lines()
        .map(str::to_owned)
        .collect();
    let mut missing = Vec::new();
    for &b in &outcome.acked {
        for n in b * BATCH_LINES..((b + 1) * BATCH_LINES).min(total) {
            if !stored_rays.contains(&ray_id(n)) {
                missing.push(n);
            }
        }
    }
    assert!(missing.is_empty(), "{} acknowledged records are missing from ClickHouse, e.g. {:?}", missing.len(), &missing[..missing.len().min(10)]);
    let foreign = stored_rays.iter().filter(|r| !r.starts_with("c0de")).count();
    assert_eq!(foreign, 0, "ClickHouse holds records this test did not send");
    let raw = count(&ch_url, &format!("SELECT count() FROM {db}.raw_records"));
    let raw_unique = count(&ch_url, &format!("SELECT uniqExact(sha256) FROM {db}.raw_records"));
    assert_eq!(raw, raw_unique, "raw records stored twice");
    assert_eq!(raw, figures[0], "one raw record per decision");

    // The index: the same decisions as ClickHouse, each once.
    let indexed = search_all(&base, TOKEN, "").await;
    let unique: BTreeSet<&str> = indexed.iter().map(String::as_str).collect();
    assert_eq!(indexed.len(), unique.len(), "the index returns some decisions twice");
    let stored_ids: BTreeSet<String> = query(&ch_url, &format!("SELECT event_id FROM {db}.decisions FORMAT TSV"))
        .lines()
        .map(str::to_owned)
        .collect();
    let stored_refs: BTreeSet<&str> = stored_ids.iter().map(String::as_str).collect();
    assert_eq!(unique.len(), stored_refs.len(), "index and ClickHouse disagree on the number of decisions");
    assert!(unique == stored_refs, "index and ClickHouse hold different decisions");

    eprintln!(
        "crash test: {} decisions in ClickHouse and in the index, each once; total {:?}",
        figures[0],
        test_started.elapsed()
    );
    server.terminate(Duration::from_secs(30));
    drop(ch);
}
