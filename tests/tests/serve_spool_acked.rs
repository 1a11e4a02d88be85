//! `gatelog serve` and what its spool acknowledged (issue 22, item 11), against the real
//! binary and ClickHouse.
//!
//! - Each damaged-tail shape (the last record damaged, the file cut inside it, cut at a
//!   record boundary, the whole segment holding it lost) makes `gatelog serve` refuse to
//!   start, naming the file and offset and changing nothing in the spool: once after every
//!   consumer acknowledged everything (the sinks caught up, consumed segments deleted), and
//!   once with ClickHouse away (its consumer behind, the last records in a sealed segment
//!   before an empty one the writer started ahead of time). Put back, the spool opens, the
//!   next batch gets the next number, and everything acknowledged is stored once. Each
//!   refusal is printed.
//! - Restarts of every kind (SIGTERM, SIGKILL, SIGKILL leaving a torn write) never reuse a
//!   sequence number: in ClickHouse each batch has one `spool_seq`, numbers follow the order
//!   in which the batches were acknowledged, and no number holds two batches.

use gatelog_e2e::{
    Forwarder, Serve, ServeSpec, assert_stored_once, describe, free_port, gatelog_bin, generated_ray_id, gzip,
    http_client, http_requests_sample, metric, query, unique_http_requests, wait_for_sinks,
};
use gatelog_store::testing::TestClickHouse;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "spool-acked-token-0123456789";
const BATCH_LINES: usize = 200;
/// The spool's record header: magic at 0, sequence at 8, payload length at 16.
const HEADER_LEN: usize = 28;

/// Batch `b` under `prefix`, gzipped: records `b * BATCH_LINES ..` with their own RayIDs.
fn body(lines: &[String], prefix: &str, b: usize) -> Vec<u8> {
    gzip(&unique_http_requests(lines, b * BATCH_LINES..(b + 1) * BATCH_LINES, prefix))
}

/// Posts a batch and expects a 2xx.
async fn post_acked(client: &reqwest::Client, base: &str, body: Vec<u8>) {
    let response = client
        .post(format!("{base}/v1/logpush/http_requests"))
        .bearer_auth(TOKEN)
        .header("Content-Encoding", "gzip")
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("gatelog answers");
    let status = response.status();
    assert!(status.is_success(), "{status}: {}", response.text().await.unwrap_or_default());
}

/// The RayIDs of batches `batches` under `prefix`.
fn rays(prefix: &str, batches: &[usize]) -> HashSet<String> {
    batches
        .iter()
        .flat_map(|&b| (b * BATCH_LINES..(b + 1) * BATCH_LINES).map(|n| generated_ray_id(prefix, n)))
        .collect()
}

/// The spool's segment files, oldest first.
fn segments(spool: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(spool)
        .expect("spool dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

/// `(offset, size, seq)` of each record in a segment, up to the first byte where no record
/// header starts (preallocated zeros, or the end).
fn records_in(path: &Path) -> Vec<(u64, u64, u64)> {
    let bytes = std::fs::read(path).expect("segment");
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() >= at + HEADER_LEN && bytes[at..at + 4] == *b"GLSP" {
        let seq = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8 bytes"));
        let size = HEADER_LEN + u32::from_le_bytes(bytes[at + 16..at + 20].try_into().expect("4 bytes")) as usize;
        out.push((at as u64, size as u64, seq));
        at += size;
    }
    out
}

/// Every file of the spool directory and its bytes (but `LOCK`), to show a refused start
/// changed nothing.
fn snapshot(spool: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(spool)
        .expect("spool dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("spool file")))
        .collect()
}

fn restore(spool: &Path, saved: &BTreeMap<String, Vec<u8>>) {
    for (name, bytes) in saved {
        std::fs::write(spool.join(name), bytes).expect("restore");
    }
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    DamagedLastRecord,
    CutInsideLastRecord,
    CutAtRecordBoundary,
    SegmentLost,
}

const SHAPES: [Shape; 4] =
    [Shape::DamagedLastRecord, Shape::CutInsideLastRecord, Shape::CutAtRecordBoundary, Shape::SegmentLost];

/// What the refusal must name: the file, the offset, and a phrase of the reason.
struct Expect {
    file: PathBuf,
    offset: u64,
    phrase: String,
}

/// Damages the last segment holding records as `shape` says (an empty segment after it
/// stays) and returns what the refusal must name.
fn damage(spool: &Path, shape: Shape) -> Expect {
    let segs = segments(spool);
    let holding: Vec<&PathBuf> = segs.iter().filter(|p| !records_in(p).is_empty()).collect();
    let target = (*holding.last().expect("a segment holding records")).clone();
    let (offset, size, seq) = *records_in(&target).last().expect("records");
    let file = || std::fs::OpenOptions::new().read(true).write(true).open(&target).expect("segment");
    match shape {
        Shape::DamagedLastRecord => {
            let at = offset + HEADER_LEN as u64 + (size - HEADER_LEN as u64) / 2;
            let mut byte = [0u8; 1];
            file().read_exact_at(&mut byte, at).expect("read");
            file().write_all_at(&[byte[0] ^ 0x20], at).expect("write");
            Expect { file: target, offset, phrase: format!("record {seq} is damaged") }
        }
        Shape::CutInsideLastRecord => {
            file().set_len(offset + size / 2).expect("truncate");
            Expect { file: target, offset, phrase: format!("record {seq} of {size} bytes") }
        }
        Shape::CutAtRecordBoundary => {
            file().set_len(offset).expect("truncate");
            Expect { file: target, offset, phrase: format!("records {seq}..=") }
        }
        Shape::SegmentLost => {
            std::fs::remove_file(&target).expect("remove");
            let first = first_seq_of(&target);
            let before = segs.iter().rev().find(|p| first_seq_of(p) < first);
            match before {
                // Its records now end where the lost ones began.
                Some(p) => {
                    let end = records_in(p).last().map_or(0, |(o, s, _)| o + s);
                    Expect { file: p.clone(), offset: end, phrase: format!("records {first}..=") }
                }
                // Nothing before it: nothing holds the numbering but the acks file, or an
                // empty segment after it, whose first number is past a consumer's position.
                None if segs.last() == Some(&target) => {
                    Expect { file: spool.to_path_buf(), offset: 0, phrase: "the spool holds no segment".into() }
                }
                None => Expect {
                    file: segs.last().expect("segments").clone(),
                    offset: 0,
                    phrase: "were deleted before it read them".into(),
                },
            }
        }
    }
}

/// The first sequence number a segment's name says.
fn first_seq_of(path: &Path) -> u64 {
    path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).expect("a segment name")
}

/// Runs `gatelog serve` on `spec`'s data dir and expects it to refuse to start (bounded: a
/// server that starts is killed and the test fails). Returns its stderr.
async fn refused_start(spec: &ServeSpec) -> String {
    let mut child = Command::new(gatelog_bin())
        .arg("serve")
        .arg("--config")
        .arg(spec.config.as_ref().expect("a config"))
        .arg("--data-dir")
        .arg(&spec.data_dir)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--clickhouse-url", &spec.clickhouse_url])
        .args(["--clickhouse-database", &spec.database])
        .args(["--ingest-token", TOKEN])
        .env("GATELOG_LOG", "warn")
        .env_remove("GATELOG_CLICKHOUSE_URL")
        .env_remove("GATELOG_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gatelog serve");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("gatelog serve started on a spool missing acknowledged records:\n{}", describe(&out));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every shape in turn on the killed server's spool: refused with the file, offset and
/// reason, the spool left as it was, then put back.
async fn every_shape_is_refused(spec: &ServeSpec, when: &str) {
    let spool = spec.data_dir.join("spool");
    let saved = snapshot(&spool);
    for shape in SHAPES {
        let expect = damage(&spool, shape);
        let damaged = snapshot(&spool);
        let stderr = refused_start(spec).await;
        let at = format!("{} at offset {}", expect.file.display(), expect.offset);
        for needed in [at.as_str(), &expect.phrase, "nothing was changed", "no acknowledged sequence number is reused"]
        {
            assert!(stderr.contains(needed), "{shape:?} ({when}): {needed:?} missing from:\n{stderr}");
        }
        assert!(
            stderr.contains("were acknowledged") || stderr.contains("were deleted before it read them"),
            "{shape:?} ({when}): the report does not say what was acknowledged:\n{stderr}"
        );
        assert!(snapshot(&spool) == damaged, "{shape:?} ({when}): the refused start changed the spool");
        eprintln!("{shape:?} ({when}): gatelog serve refused to start:\n{}", stderr.trim());
        for name in damaged.keys().filter(|n| !saved.contains_key(*n)) {
            std::fs::remove_file(spool.join(name)).expect("remove");
        }
        restore(&spool, &saved);
    }
}

/// `(spool_seq, batch)` of every stored decision's batch, by `spool_seq`, checking that a
/// number holds one whole batch (all its decisions, no other batch's).
fn batches_by_seq(ch_url: &str, db: &str, prefix: &str) -> Vec<(u64, usize)> {
    let text = query(
        ch_url,
        &format!(
            "SELECT spool_seq, min(ray_id), max(ray_id), count() FROM {db}.decisions \
             GROUP BY spool_seq ORDER BY spool_seq FORMAT TSV"
        ),
    );
    let batch_of = |ray: &str| {
        let n = usize::from_str_radix(ray.strip_prefix(prefix).expect("our prefix"), 16).expect("hex");
        n / BATCH_LINES
    };
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let (seq, lo, hi, count) = (f[0].parse().expect("seq"), batch_of(f[1]), batch_of(f[2]), f[3]);
            assert_eq!(lo, hi, "spool_seq {seq} holds records of batches {lo} and {hi}: a number was reused");
            assert_eq!(count, BATCH_LINES.to_string(), "spool_seq {seq} holds part of batch {lo}");
            (seq, lo)
        })
        .collect()
}

fn port_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().expect("clickhouse url is http://127.0.0.1:PORT")
}

fn config(dir: &Path, spool: &str) -> PathBuf {
    let path = dir.join("gatelog.toml");
    std::fs::write(&path, format!("[server]\ndrain_timeout = \"5s\"\n{spool}")).expect("config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_tail_the_consumers_acknowledged_stops_serve_with_file_and_offset() {
    const PREFIX: &str = "ac0e";
    let lines = http_requests_sample();
    gatelog_bin();
    let ch = TestClickHouse::start().await.expect("managed clickhouse");
    let db = ch.database().to_owned();
    let data = tempfile::tempdir().expect("tempdir");
    // Default spool options: every record in one 64 MiB segment, which stays as the last.
    let spec = ServeSpec {
        data_dir: data.path().join("gatelog"),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: db.clone(),
        token: TOKEN.to_owned(),
        config: Some(config(data.path(), "")),
        release: false,
    };
    let base = spec.base_url();
    let client = http_client();
    let mut server = Serve::start(&spec).await;
    for b in 0..5 {
        post_acked(&client, &base, body(&lines, PREFIX, b)).await;
    }
    // Both sinks stored and acknowledged everything.
    let text = wait_for_sinks(&base, Duration::from_secs(120)).await;
    let acked_up_to = metric(&text, "gatelog_sink_position", &[("sink", "clickhouse")]).expect("position") as u64;
    server.kill();

    every_shape_is_refused(&spec, "after every consumer acknowledged").await;

    // Put back, it starts, and numbering goes on after everything acknowledged.
    let mut server = Serve::start(&spec).await;
    post_acked(&client, &base, body(&lines, PREFIX, 5)).await;
    wait_for_sinks(&base, Duration::from_secs(120)).await;
    let by_seq = batches_by_seq(&ch.url(), &db, PREFIX);
    assert_eq!(by_seq.last(), Some(&(acked_up_to + 1, 5)), "{by_seq:?}");
    let all: Vec<usize> = (0..6).collect();
    assert_stored_once(&ch.url(), &db, &base, TOKEN, &rays(PREFIX, &all), &[PREFIX]).await;
    server.terminate(Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_tail_before_an_empty_segment_stops_serve_while_clickhouse_is_away() {
    const PREFIX: &str = "ac1e";
    let lines = http_requests_sample();
    gatelog_bin();
    let ch = TestClickHouse::start().await.expect("managed clickhouse");
    let db = ch.database().to_owned();
    let forwarder = Forwarder::start(Some(port_of(&ch.url()))).await;
    let data = tempfile::tempdir().expect("tempdir");
    // Small segments: a few batches each, and the writer starts the next one ahead of time.
    let spec = ServeSpec {
        data_dir: data.path().join("gatelog"),
        port: free_port(),
        clickhouse_url: forwarder.url(),
        database: db.clone(),
        token: TOKEN.to_owned(),
        config: Some(config(data.path(), "[spool]\nsegment_bytes = \"1 MiB\"\n")),
        release: false,
    };
    let base = spec.base_url();
    let client = http_client();
    let spool = spec.data_dir.join("spool");
    let mut server = Serve::start(&spec).await;
    post_acked(&client, &base, body(&lines, PREFIX, 0)).await;
    wait_for_sinks(&base, Duration::from_secs(120)).await;

    // ClickHouse away (the forwarder also closes the sink's kept-alive connection, which would
    // otherwise carry its writes on): its consumer stays behind, so no segment is deleted.
    // Batches go in until the newest segment holds no record yet and two before it do (about
    // six of this test's records fit in a segment).
    let oldest = segments(&spool).first().cloned().expect("a segment");
    forwarder.set_backend(None);
    let mut next = 1;
    let shaped = |spool: &Path| {
        let segs = segments(spool);
        let holding = segs.iter().filter(|p| !records_in(p).is_empty()).count();
        segs.last().is_some_and(|p| records_in(p).is_empty()) && holding >= 2
    };
    'posting: loop {
        assert!(next < 40, "{next} batches and the spool never ended in an empty segment: {:?}", segments(&spool));
        post_acked(&client, &base, body(&lines, PREFIX, next)).await;
        next += 1;
        // The writer starts the next segment right after answering, when the last one has
        // no room for another record like this one.
        for _ in 0..20 {
            if shaped(&spool) {
                break 'posting;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // (A write the closed connection was carrying failed; the sink retries it.)
    let text = client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("text");
    let lag = metric(&text, "gatelog_sink_lag_records", &[("sink", "clickhouse")]);
    assert!(lag.is_some_and(|lag| lag > 0.0), "the ClickHouse sink caught up without ClickHouse: {lag:?}");
    let segs = segments(&spool);
    assert_eq!(segs.first(), Some(&oldest), "a segment was deleted while ClickHouse was away: {segs:?}");
    server.kill();
    eprintln!("spool before the damage: {:?}", segments(&spool));

    every_shape_is_refused(&spec, "ClickHouse away, an empty segment last").await;

    forwarder.set_backend(Some(port_of(&ch.url())));
    let mut server = Serve::start(&spec).await;
    post_acked(&client, &base, body(&lines, PREFIX, next)).await;
    wait_for_sinks(&base, Duration::from_secs(120)).await;
    let by_seq = batches_by_seq(&ch.url(), &db, PREFIX);
    let order: Vec<usize> = by_seq.iter().map(|(_, b)| *b).collect();
    assert_eq!(order, (0..=next).collect::<Vec<_>>(), "one number per batch, in order: {by_seq:?}");
    let all: Vec<usize> = (0..=next).collect();
    assert_stored_once(&ch.url(), &db, &base, TOKEN, &rays(PREFIX, &all), &[PREFIX]).await;
    server.terminate(Duration::from_secs(20)).await;
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Term,
    Kill,
    /// SIGKILL, then a record header cut short after the last record, as a write the kill
    /// interrupted leaves it: never answered, so cut at the next start.
    KillTorn,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequence_numbers_are_never_reused_across_restarts() {
    const PREFIX: &str = "5e90";
    let lines = http_requests_sample();
    gatelog_bin();
    let ch = TestClickHouse::start().await.expect("managed clickhouse");
    let db = ch.database().to_owned();
    let data = tempfile::tempdir().expect("tempdir");
    let spec = ServeSpec {
        data_dir: data.path().join("gatelog"),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: db.clone(),
        token: TOKEN.to_owned(),
        config: Some(config(data.path(), "[spool]\nsegment_bytes = \"1 MiB\"\n")),
        release: false,
    };
    let base = spec.base_url();
    let client = http_client();
    let spool = spec.data_dir.join("spool");
    let stops = [Stop::Kill, Stop::KillTorn, Stop::Term, Stop::KillTorn, Stop::Kill, Stop::Term];
    let mut next = 0;
    for stop in stops {
        let mut server = Serve::start(&spec).await;
        for _ in 0..2 {
            post_acked(&client, &base, body(&lines, PREFIX, next)).await;
            next += 1;
        }
        match stop {
            Stop::Term => assert!(server.terminate(Duration::from_secs(30)).await.is_some(), "no exit on SIGTERM"),
            Stop::Kill => server.kill(),
            Stop::KillTorn => {
                server.kill();
                let last = segments(&spool).pop().expect("a segment");
                let (end, seq) = records_in(&last).last().map_or((0, first_seq_of(&last) - 1), |(o, s, q)| (o + s, *q));
                let mut head = Vec::from(*b"GLSP\x01\x00\x00\x00");
                head.extend_from_slice(&(seq + 1).to_le_bytes());
                let file = std::fs::OpenOptions::new().write(true).open(&last).expect("segment");
                file.write_all_at(&head, end).expect("torn write");
            }
        }
    }
    let mut server = Serve::start(&spec).await;
    wait_for_sinks(&base, Duration::from_secs(120)).await;
    let by_seq = batches_by_seq(&ch.url(), &db, PREFIX);
    let order: Vec<usize> = by_seq.iter().map(|(_, b)| *b).collect();
    assert_eq!(order, (0..next).collect::<Vec<_>>(), "one number per batch, in the order acknowledged: {by_seq:?}");
    let seqs: Vec<u64> = by_seq.iter().map(|(s, _)| *s).collect();
    eprintln!("{} batches over {} restarts ({stops:?}): spool_seq {seqs:?}, none reused", next, stops.len());
    let all: Vec<usize> = (0..next).collect();
    assert_stored_once(&ch.url(), &db, &base, TOKEN, &rays(PREFIX, &all), &[PREFIX]).await;
    server.terminate(Duration::from_secs(20)).await;
}
