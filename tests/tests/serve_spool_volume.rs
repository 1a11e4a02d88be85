//! `gatelog serve` with its spool on a small real volume (a tmpfs mounted at
//! `<data_dir>/spool`, the default spool options: 64 MiB segments and spare, 4 GiB cap).
//! (A spool that lost acknowledged records: `serve_spool_acked.rs`.)
//!
//! - While ClickHouse is unreachable the spool fills the volume: no spare segment takes it
//!   (the 64 MiB spare on a small volume), receivers get 503 with Retry-After, and
//!   whatever is left is then filled to the last byte. Once ClickHouse is back the ClickHouse
//!   sink catches up and acknowledges (which needs no space), the consumed segment goes, and
//!   appends succeed again by themselves: the test prints the recovery time. Everything
//!   acknowledged is in ClickHouse and the index exactly once.
//!
//! Mounting needs root (`./x test` runs as root in CI); elsewhere the volume test says loudly
//! that it did not run.

use gatelog_e2e::{
    Forwarder, Serve, ServeSpec, assert_stored_once, free_port, generated_ray_id, gzip, http_client,
    http_requests_sample, metric, unique_http_requests, wait_for_sinks,
};
use gatelog_store::testing::TestClickHouse;
use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TOKEN: &str = "spool-volume-token-0123456789";
const BATCH_LINES: usize = 200;
const VOLUME_BYTES: u64 = 24 << 20;

/// A tmpfs mounted at a directory, unmounted on drop.
struct Volume(PathBuf);

impl Volume {
    fn mount(at: &Path, bytes: u64) -> Option<Volume> {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700"), "gatelog-e2e-spool"])
            .arg(at)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Volume(at.to_path_buf())),
            other => {
                eprintln!(
                    "\n!!!!!!!! SKIPPED: cannot mount a {bytes}-byte tmpfs at {} ({other:?}); this test needs \
                     root (CI runs ./x test as root) !!!!!!!!\n",
                    at.display()
                );
                None
            }
        }
    }

    fn free(&self) -> u64 {
        let out = Command::new("df").args(["--output=avail", "-B1"]).arg(&self.0).output().expect("df");
        String::from_utf8_lossy(&out.stdout).lines().nth(1).and_then(|l| l.trim().parse().ok()).expect("df output")
    }

    /// Takes every byte left with a file.
    fn fill_up(&self) {
        let mut f = std::fs::File::create(self.0.join("ballast")).expect("ballast");
        let chunk = vec![0xbb_u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        assert_eq!(self.free(), 0, "the ballast takes every byte");
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let out = Command::new("umount").arg(&self.0).output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("cannot unmount {}: {out:?}", self.0.display());
        }
    }
}

enum Answer {
    Acked,
    Refused(u16, u64),
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
            Answer::Refused(status, retry_after)
        }
        _ => panic!("unexpected {status}: {}", response.text().await.unwrap_or_default()),
    }
}

fn port_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().expect("clickhouse url is http://127.0.0.1:PORT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_small_volume_recovers_by_itself_once_clickhouse_is_back() {
    let started = Instant::now();
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().join("gatelog");
    let Some(volume) = Volume::mount(&data_dir.join("spool"), VOLUME_BYTES) else { return };
    let lines = http_requests_sample();
    gatelog_e2e::gatelog_bin();
    let ch = TestClickHouse::start().await.expect("managed clickhouse");
    let db = ch.database().to_owned();
    let forwarder = Forwarder::start(Some(port_of(&ch.url()))).await;
    let config = data.path().join("gatelog.toml");
    let tables = ch.server().tables_dir();
    // Default spool options: the volume, not max_bytes, is the limit.
    std::fs::write(
        &config,
        format!(
            "[receiver]\nretry_after = \"1s\"\n[server]\ndrain_timeout = \"2s\"\n\
             [clickhouse]\nsync_data_dir = {tables:?}\n"
        ),
    )
    .expect("config");
    let spec = ServeSpec {
        data_dir: data_dir.clone(),
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
    let body = |b: usize| gzip(&unique_http_requests(&lines, b * BATCH_LINES..(b + 1) * BATCH_LINES, "5b01"));
    let mut acked: Vec<usize> = Vec::new();
    let mut next = 0;
    for _ in 0..3 {
        assert!(matches!(post(&client, &url, &body(next)).await, Answer::Acked));
        acked.push(next);
        next += 1;
    }
    wait_for_sinks(&base, Duration::from_secs(60)).await;

    // ClickHouse unreachable: the spool takes the volume, then 503 with Retry-After.
    forwarder.set_backend(None);
    let mut refused = Vec::new();
    let outage = Instant::now();
    while refused.len() < 3 {
        assert!(outage.elapsed() < Duration::from_secs(180), "the volume never filled ({} batches)", acked.len());
        let b = next;
        next += 1;
        match post(&client, &url, &body(b)).await {
            Answer::Acked => {
                assert!(refused.is_empty(), "an ack after the disk filled while ClickHouse is down");
                acked.push(b);
            }
            Answer::Refused(status, retry_after) => refused.push((b, status, retry_after)),
            Answer::ConnectionError => panic!("gatelog stopped answering:\n{}", server.log_tail(40)),
        }
    }
    let spool_dir = data_dir.join("spool");
    assert!(!spool_dir.join("spare").exists(), "a 64 MiB spare on a {VOLUME_BYTES}-byte volume");
    assert!(refused.iter().all(|(_, s, r)| *s == 503 && *r == 1), "disk full is 503 + Retry-After: {refused:?}");
    let filled_after = outage.elapsed();
    volume.fill_up();
    assert!(matches!(post(&client, &url, &body(next)).await, Answer::Refused(503, _)));
    let text = client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("metrics");
    let spool_bytes = metric(&text, "gatelog_spool_bytes", &[]).unwrap_or(-1.0);

    // ClickHouse back: the sink catches up and acknowledges; the senders' retries get in.
    let back = Instant::now();
    forwarder.set_backend(Some(port_of(&ch.url())));
    let mut caught_up: Option<Duration> = None;
    let mut pending: Vec<usize> = refused.iter().map(|(b, _, _)| *b).chain([next]).collect();
    next += 1;
    let first = pending.remove(0);
    loop {
        assert!(
            back.elapsed() < Duration::from_secs(120),
            "no 2xx within 120 s of ClickHouse's return:\n{}",
            server.log_tail(60)
        );
        if caught_up.is_none() {
            let text =
                client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("metrics");
            if metric(&text, "gatelog_sink_lag_records", &[("sink", "clickhouse")]) == Some(0.0) {
                caught_up = Some(back.elapsed());
            }
        }
        match post(&client, &url, &body(first)).await {
            Answer::Acked => break,
            Answer::Refused(..) | Answer::ConnectionError => {}
        }
        // Finer than Retry-After, to measure the server rather than the client.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = back.elapsed();
    acked.push(first);
    for b in pending.into_iter().chain(next..next + 3) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(post(&client, &url, &body(b)).await, Answer::Acked) {
            assert!(Instant::now() < deadline, "batch {b} refused for 60 s after the recovery");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        acked.push(b);
    }
    wait_for_sinks(&base, Duration::from_secs(120)).await;
    let required: HashSet<String> = acked
        .iter()
        .flat_map(|&b| (b * BATCH_LINES..(b + 1) * BATCH_LINES).map(|n| generated_ray_id("5b01", n)))
        .collect();
    let stored = assert_stored_once(&ch.url(), &db, &base, TOKEN, &required, &["5b01"]).await;
    assert_eq!(stored as usize, required.len());
    eprintln!(
        "disk full: the {} MiB volume filled {filled_after:.1?} into the outage ({spool_bytes} spool bytes, no spare); \
         after ClickHouse came back the sink had caught up at {caught_up:?} and the first append succeeded at \
         {recovered:.2?}; {} batches ({stored} decisions) stored once each; {:.1?} in all",
        VOLUME_BYTES >> 20,
        acked.len(),
        started.elapsed()
    );
    server.terminate(Duration::from_secs(20)).await;
    drop(volume);
}
