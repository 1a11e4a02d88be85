//! Throughput of `write_batch` vs ClickHouse's own `INSERT … FORMAT JSONEachRow` of the same
//! rows (over HTTP with curl, and with clickhouse-client), on the managed 18.16. Ignored by
//! default; run in release:
//!
//! ```text
//! GATELOG_PERF_ROWS=1000000 cargo test --release -p gatelog-store --test perf -- --ignored --nocapture
//! ```
//!
//! Knobs: `GATELOG_PERF_BATCH` (rows per `write_batch`, default all in one, as the baseline
//! is one `INSERT` per table), `GATELOG_PERF_CONCURRENCY` (writers, 2), `GATELOG_PERF_CHUNK`
//! and `GATELOG_PERF_CHUNK_BYTES` (the store's `insert_chunk_*`). Each measurement runs on a
//! fresh server and counts wall time and CPU (client + server, merges included).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use gatelog_model::{AccessDecision, Decision, PrincipalType, RawRecord, Source, UnixMillis, sha256_hex};
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{InsertCompression, Store, StoreConfig, WriteBatch};
use std::process::Command;
use std::time::Instant;

const T0: i64 = 1_740_990_713_712;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A ~1.4 KB http_requests line and its decision.
fn row(i: usize) -> (AccessDecision, RawRecord) {
    let mut rng = fastrand::Rng::with_seed(i as u64);
    let ray = format!("{:016x}", rng.u64(..));
    let ip = format!("198.51.{}.{}", rng.u8(..), rng.u8(..));
    let time = UnixMillis(T0 + (i as i64) * 3);
    let path = format!("/dashboards/{}/panel/{}", rng.u16(..1000), rng.u16(..100));
    let ua = ["Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0", "DataGrip/2024.3.2", "curl/8.5.0", "Metabase/50.1"]
        [rng.usize(..4)];
    let status = [200u16, 200, 200, 403, 302, 500][rng.usize(..6)];
    let mut line = format!(
        concat!(
            r#"{{"RayID":"{ray}","ClientIP":"{ip}","ClientASN":{asn},"ClientCountry":"{cc}","ClientRequestHost":"bi.example.com","#,
            r#""ClientRequestMethod":"GET","ClientRequestPath":"{path}","ClientRequestURI":"{path}?q={q}","ClientRequestUserAgent":"{ua}","#,
            r#""EdgeResponseStatus":{status},"EdgeStartTimestamp":{ns},"EdgeEndTimestamp":{ns2},"EdgeResponseBytes":{bytes},"#,
            r#""CacheCacheStatus":"dynamic","ClientSSLProtocol":"TLSv1.3","ClientSSLCipher":"AEAD-AES128-GCM-SHA256","EdgeColoCode":"FRA","#,
            r#""SecurityAction":"","WAFAttackScore":{waf},"BotScore":{bot},"JA3Hash":"{ja3:032x}","ZoneName":"example.com","Padding":""#
        ),
        asn = rng.u32(..65000),
        cc = ["DE", "US", "SG", "FR", "BR"][rng.usize(..5)],
        q = rng.u64(..),
        ns = time.0 as i128 * 1_000_000,
        ns2 = time.0 as i128 * 1_000_000 + rng.i128(0..1_000_000_000),
        bytes = rng.u32(..100_000),
        waf = rng.u8(1..100),
        bot = rng.u8(1..100),
        ja3 = rng.u128(..),
        ray = ray,
        ip = ip,
        path = path,
        ua = ua,
        status = status,
    );
    while line.len() < 1380 {
        line.push_str(&format!("{:x}", rng.u64(..)));
    }
    line.push_str("\"}");
    let event_id = gatelog_model::EventId::derive(&["http_requests", &ray, &time.0.to_string()]);
    let mut d = AccessDecision::new(event_id.clone(), time, "http_requests", Source::Logpush);
    d.received_at = UnixMillis(T0 + 3_600_000);
    d.decision = if status == 403 { Decision::Deny } else { Decision::Allow };
    d.principal = format!("user{}@example.com", rng.u16(..500));
    d.principal_type = PrincipalType::User;
    d.roles = vec!["analyst".into()];
    d.client_ip = ip;
    d.country = "DE".into();
    d.asn = rng.u32(..65000);
    d.user_agent = ua.into();
    d.resource = format!("https://bi.example.com{path}");
    d.action = "GET".into();
    d.policy = "access-app".into();
    d.status = status;
    d.ray_id = ray;
    d.zone = "example.com".into();
    d.host = "bi.example.com".into();
    d.path = path;
    d.duration_ms = rng.u64(..2000);
    d.raw_sha256 = sha256_hex(line.as_bytes());
    let raw = RawRecord::new(event_id, "http_requests", d.received_at, time, &line);
    (d, raw)
}

fn json_rows(batches: &[WriteBatch]) -> (Vec<u8>, Vec<u8>) {
    let dt = |t: UnixMillis| t.to_rfc3339()[..19].replace('T', " ");
    let (mut dec, mut raw) = (Vec::new(), Vec::new());
    for b in batches {
        for d in &b.decisions {
            let mut v = serde_json::to_value(d).unwrap();
            let o = v.as_object_mut().unwrap();
            o.insert("time".into(), dt(d.time).into());
            o.insert("time_ms".into(), d.time.0.into());
            o.insert("received_at".into(), dt(d.received_at).into());
            o.insert("received_at_ms".into(), d.received_at.0.into());
            o.insert("batch_id".into(), b.batch_id.clone().into());
            serde_json::to_writer(&mut dec, &v).unwrap();
            dec.push(b'\n');
        }
        for r in &b.raw {
            let v = serde_json::json!({
                "event_id": r.event_id, "dataset": r.dataset, "received_at": dt(r.received_at), "received_at_ms": r.received_at.0,
                "time": dt(r.time), "time_ms": r.time.0, "line": r.line, "sha256": r.sha256, "batch_id": b.batch_id,
            });
            serde_json::to_writer(&mut raw, &v).unwrap();
            raw.push(b'\n');
        }
    }
    (dec, raw)
}

async fn timed_store_write(store: &Store, batches: &std::sync::Arc<Vec<WriteBatch>>, concurrency: usize) -> f64 {
    let started = Instant::now();
    let queue = std::sync::Arc::new(std::sync::Mutex::new((0..batches.len()).collect::<Vec<_>>()));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, queue, batches) = (store.clone(), queue.clone(), batches.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap().pop();
                let Some(i) = next else { break };
                store.write_batch(&batches[i]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

/// Runs `program args…` with `input` on stdin under `/usr/bin/time`: (wall, CPU) seconds.
fn timed(program: &str, args: &[String], input: &std::path::Path) -> (f64, f64) {
    let times = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%U %S", "-o"])
        .arg(times.path())
        .arg(program)
        .args(args)
        .stdin(std::fs::File::open(input).unwrap())
        .output()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(times.path()).unwrap();
    let cpu = text.split_whitespace().filter_map(|v| v.parse::<f64>().ok()).sum();
    (wall, cpu)
}

/// User + system CPU seconds of a process so far.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Waits until the server has no merges running (three quiet polls in a row), so the CPU
/// the inserts cause, merges included, is counted.
async fn settle(store: &Store) {
    let mut quiet = 0;
    for _ in 0..1000 {
        let merges: u64 = store.client().query("SELECT count() FROM system.merges").fetch_one().await.unwrap();
        quiet = if merges == 0 { quiet + 1 } else { 0 };
        if quiet >= 3 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run in release with --ignored --nocapture"]
async fn write_batch_beats_json_each_row() {
    let rows = env("GATELOG_PERF_ROWS", 1_000_000);
    // One batch by default, as the baseline is one INSERT per table (same number of parts).
    let per_batch = env("GATELOG_PERF_BATCH", rows);
    let concurrency = env("GATELOG_PERF_CONCURRENCY", 2);
    println!(
        "{rows} rows, batches of {per_batch}, {concurrency} writers, inserts of {} rows",
        env("GATELOG_PERF_CHUNK", 1_000_000)
    );
    let generated = Instant::now();
    let batches: std::sync::Arc<Vec<WriteBatch>> = (0..rows.div_ceil(per_batch))
        .map(|b| {
            let (decisions, raw): (Vec<_>, Vec<_>) = (b * per_batch..((b + 1) * per_batch).min(rows)).map(row).unzip();
            WriteBatch {
                batch_id: format!("perf-{b}"),
                dataset: "http_requests".into(),
                origin: "bench".into(),
                received_at: UnixMillis(T0 + 3_600_000),
                lines: decisions.len() as u64,
                decisions,
                raw,
                ..WriteBatch::default()
            }
        })
        .collect::<Vec<_>>()
        .into();
    let raw_bytes: usize = batches.iter().flat_map(|b| &b.raw).map(|r| r.line.len()).sum();
    println!("generated {rows} rows ({} MB of raw lines) in {:?}", raw_bytes / 1_000_000, generated.elapsed());

    // Each measurement gets a fresh server, so background merges of one do not slow the next.
    // (wall seconds, CPU seconds of client and server with the merges the inserts caused).
    let mut results = Vec::new();
    for compression in [InsertCompression::Lz4, InsertCompression::None] {
        let mut ch = TestClickHouse::start().await.unwrap();
        let config = StoreConfig {
            compression,
            insert_chunk_rows: env("GATELOG_PERF_CHUNK", StoreConfig::default().insert_chunk_rows),
            insert_chunk_bytes: env("GATELOG_PERF_CHUNK_BYTES", StoreConfig::default().insert_chunk_bytes as usize)
                as u64,
            ..ch.store_config()
        };
        let store = Store::connect(&config).await.unwrap();
        store.migrate().await.unwrap();
        let server = ch.server().pid().unwrap();
        let (server_cpu, own_cpu) = (proc_cpu(server), proc_cpu(std::process::id()));
        let wall = timed_store_write(&store, &batches, concurrency).await;
        let client_cpu = proc_cpu(std::process::id()) - own_cpu;
        settle(&store).await;
        let cpu = proc_cpu(server) - server_cpu + client_cpu;
        let u = store.decision_uniqueness().await.unwrap();
        assert_eq!(u.rows, rows as u64);
        println!(
            "write_batch (compression {compression:?}, {concurrency} writers): {wall:.2}s wall ({:.0} rows/s), {cpu:.2}s CPU ({client_cpu:.2}s client)",
            rows as f64 / wall
        );
        results.push((wall, cpu));
        drop(store);
        ch.stop().await.unwrap();
    }

    // Baseline: the same rows as JSONEachRow into the same tables on a fresh server.
    let files = tempfile::tempdir().unwrap();
    let (dec_json, raw_json) = (files.path().join("decisions.ndjson"), files.path().join("raw_records.ndjson"));
    {
        let (dec, raw) = json_rows(&batches);
        println!("JSONEachRow: decisions {} MB, raw_records {} MB", dec.len() / 1_000_000, raw.len() / 1_000_000);
        std::fs::write(&dec_json, dec).unwrap();
        std::fs::write(&raw_json, raw).unwrap();
    }
    drop(batches);
    let mut baselines = Vec::new();
    for client in ["curl", "clickhouse-client"] {
        let mut ch = TestClickHouse::start().await.unwrap();
        let db = ch.database().to_owned();
        let store = ch.store().await.unwrap();
        let server = ch.server().pid().unwrap();
        let server_cpu = proc_cpu(server);
        let (mut wall, mut cpu) = (0.0, 0.0);
        for (table, data) in [("decisions", &dec_json), ("raw_records", &raw_json)] {
            let opts = gatelog_store::sql::SchemaOptions { database: db.clone(), ..Default::default() };
            let sql = gatelog_store::sql::statements(store.profile(), &opts)
                .into_iter()
                .find(|s| s.name == format!("insert.{table}"))
                .unwrap()
                .sql
                .replace("FORMAT RowBinary", "FORMAT JSONEachRow");
            let (w, c) = match client {
                "curl" => {
                    let url = format!(
                        "{}/?query={}",
                        ch.url(),
                        sql.replace(' ', "%20").replace(',', "%2C").replace('(', "%28").replace(')', "%29")
                    );
                    let args = ["-sS", "--fail-with-body", "-T", "-", "-X", "POST"].map(String::from);
                    timed("curl", &[&args[..], &[url]].concat(), data)
                }
                _ => {
                    let args = ["--port".to_owned(), ch.server().tcp_port().to_string(), "--query".to_owned(), sql];
                    timed("clickhouse-client", &args, data)
                }
            };
            wall += w;
            cpu += c;
        }
        let client_cpu = cpu;
        settle(&store).await;
        cpu += proc_cpu(server) - server_cpu;
        let u = store.decision_uniqueness().await.unwrap();
        assert_eq!(u.rows, rows as u64);
        println!(
            "JSONEachRow via {client}: {wall:.2}s wall ({:.0} rows/s), {cpu:.2}s CPU ({client_cpu:.2}s client)",
            rows as f64 / wall
        );
        baselines.push((wall, cpu));
        drop(store);
        ch.stop().await.unwrap();
    }
    let best_wall = baselines.iter().map(|b| b.0).fold(f64::INFINITY, f64::min);
    let best_cpu = baselines.iter().map(|b| b.1).fold(f64::INFINITY, f64::min);
    let (wall, cpu) = results[0];
    println!(
        "write_batch (default config) vs best JSONEachRow: wall {wall:.2}s vs {best_wall:.2}s ({:.2}x), CPU {cpu:.2}s vs {best_cpu:.2}s ({:.2}x)",
        best_wall / wall,
        best_cpu / cpu
    );
    // Wall time on a shared 2-core machine is noisy; the CPU the whole system spends is not.
    assert!(cpu < best_cpu, "write_batch must cost less than JSONEachRow");
}
