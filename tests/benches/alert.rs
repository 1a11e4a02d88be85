//! Event → e-mail latency of `gatelog serve` while it ingests Logpush traffic: the real
//! release binary, ClickHouse (managed by the bench, or given), and a real SMTP server on
//! loopback (a minimal one inside the bench that timestamps each mail as its `DATA` ends).
//! Prints figures; asserts nothing (a benchmark, not a test).
//!
//! ```sh
//! ./x bench-alert                                  # 10k events/s for 60 s
//! BENCH_RATE=5000 BENCH_SECONDS=30 ./x bench-alert
//! ```
//!
//! Environment: `BENCH_RATE` (events/s of background traffic, default 10000), `BENCH_SECONDS`
//! (default 60), `BENCH_BATCH_LINES` (lines per gzip Logpush body, default 1000),
//! `BENCH_ANOMALY_EVERY` (seconds between planted anomalies, default 5), `BENCH_CLICKHOUSE_URL`
//! (a ClickHouse to use instead of a managed one), `BENCH_CONFIG` (extra `gatelog.toml` text,
//! `\n` for line breaks, e.g. `BENCH_CONFIG='[notify]\npoll_interval = "250ms"'`).
//!
//! Method: the background bodies (the shared `http_requests` sample, RayIDs made unique) are
//! built before anything is timed and posted open-loop to `/v1/logpush/http_requests` (body
//! i at i / rate, each in its own task: no coordinated omission). Every `BENCH_ANOMALY_EVERY`
//! seconds a batch of 12 denials from a fresh IP (198.18.0.k) is posted to `/v1/decisions`:
//! what `deny_burst_ip` (10 in 5 m) fires on. Latency = that batch's 2xx → the arrival of the
//! mail naming the IP. Where the time goes: the alert's `updated_at_ms` in ClickHouse (when
//! detection stored it) splits it into 2xx → alert stored and alert stored → mail. The
//! notifier's rate limits are raised so no alert folds into a digest (a digest is a
//! different measurement). The achieved rate is background records acknowledged / the
//! first post → last 2xx.
#![allow(clippy::print_stdout)] // a benchmark: its output is the point

#[allow(dead_code)]
#[path = "serve/input.rs"]
mod input;
#[allow(dead_code)]
#[path = "serve/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "serve/procs.rs"]
mod procs;
#[path = "alert/smtp.rs"]
mod smtp;

use anyhow::Context;
use gatelog_e2e::{Serve, ServeSpec, free_port, http_client, query};
use gatelog_model::Clock as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-alert-token-0123456789abcdef";
/// Denials per anomaly (`deny_burst_ip` fires at 10 within 5 minutes).
const DENIALS: usize = 12;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench alert: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench alert failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => {
            v.trim().parse().ok().filter(|n| *n > 0).with_context(|| format!("{name}={v:?} is not a positive number"))
        }
        Err(_) => Ok(default),
    }
}

fn now_ms() -> i64 {
    gatelog_model::SystemClock.now().0
}

/// One planted anomaly: its IP, when its batch was answered (monotonic and wall).
#[derive(Debug)]
struct Planted {
    ip: String,
    acked: Instant,
    acked_ms: i64,
}

/// The NDJSON `/v1/decisions` body of anomaly `k`: `DENIALS` denials from a fresh IP.
fn anomaly_body(k: usize, ip: &str) -> Vec<u8> {
    let now = now_ms();
    let mut body = String::new();
    for i in 0..DENIALS {
        let line = serde_json::json!({
            "event_id": format!("bench-anomaly-{k}-{i}"),
            "time": now + i as i64,
            "dataset": "proxy",
            "decision": "deny",
            "client_ip": ip,
            "principal": "",
            "principal_type": "anonymous",
            "resource": "https://bench.example.com/login",
            "action": "POST",
            "reason": "bench: planted deny burst",
            "status": 403,
        });
        body.push_str(&line.to_string());
        body.push('\n');
    }
    body.into_bytes()
}

async fn run() -> anyhow::Result<()> {
    let rate = env_number("BENCH_RATE", 10_000)?;
    let seconds = env_number("BENCH_SECONDS", 60)?;
    let batch_lines = env_number("BENCH_BATCH_LINES", 1000)?;
    let every = env_number("BENCH_ANOMALY_EVERY", 5)?;
    let extra = std::env::var("BENCH_CONFIG").map(|c| c.replace("\\n", "\n") + "\n").unwrap_or_default();
    let records = rate * seconds;
    let prepared = tokio::task::spawn_blocking(move || input::prepare(None, records, 0, batch_lines)).await??;
    let bodies = Arc::new(prepared.throughput.bodies);
    eprintln!("bench alert: {records} background records in {} gzip bodies", bodies.len());
    eprintln!("bench alert: building gatelog (release)");
    let gatelog = tokio::task::spawn_blocking(gatelog_e2e::gatelog_release_bin).await?;

    let bench_data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/data");
    std::fs::create_dir_all(&bench_data).with_context(|| format!("cannot create {}", bench_data.display()))?;
    let work =
        tempfile::Builder::new().prefix("alert-").tempdir_in(&bench_data).context("cannot create the work folder")?;
    // Dropped before `work`: ClickHouse stops before its folder is removed.
    let (managed, ch_url) = match std::env::var("BENCH_CLICKHOUSE_URL") {
        Ok(url) if !url.is_empty() => (None, url),
        _ => {
            let ch = procs::ClickHouseProcess::start(gatelog, &work.path().join("clickhouse")).await?;
            ch.renice(19)?;
            let url = ch.url.clone();
            let sync = format!("[clickhouse]\nsync_data_dir = {:?}\n", ch.tables_dir().to_string_lossy());
            (Some((ch, sync)), url)
        }
    };
    let sink = smtp::SmtpSink::start().await?;
    let sync = managed.as_ref().map_or("", |(_, s)| s.as_str());
    let config = format!(
        "[index]\nenabled = false\n{sync}\
         [notify]\nto = [\"oncall@example.com\"]\n\
         [notify.rate_limit]\nmax_mails = 100000\nmax_mails_per_rule = 100000\n\
         [notify.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n{extra}",
        sink.port
    );
    let path = work.path().join("gatelog.toml");
    std::fs::write(&path, &config)?;
    let database = format!("bench_alert_{}", std::process::id());
    let spec = ServeSpec {
        data_dir: work.path().join("data"),
        port: free_port(),
        clickhouse_url: ch_url.clone(),
        database: database.clone(),
        token: TOKEN.to_owned(),
        config: Some(path),
        release: true,
    };
    let mut serve = Serve::start(&spec).await;
    let client = http_client();
    // Detection warms up (an empty history) before it judges: wait until it runs.
    let started = Instant::now();
    loop {
        let (_, m) = gatelog_e2e::get(&spec.base_url(), "/metrics").await;
        if gatelog_e2e::metric(&m, "gatelog_detect_warming_up", &[]) == Some(0.0)
            && gatelog_e2e::metric(&m, "gatelog_sink_up", &[("sink", "detect")]) == Some(1.0)
        {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "detection did not start:\n{}",
            serve.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let endpoint = load::Endpoint {
        url: format!("{}/v1/logpush/http_requests", spec.base_url()),
        token: Some(TOKEN.to_owned()),
        retry_too_many_parts: false,
    };
    let per_second = rate as f64 / batch_lines as f64;
    let background = {
        let (client, bodies) = (client.clone(), bodies.clone());
        tokio::spawn(async move { load::open_loop(&client, &endpoint, &bodies, per_second).await })
    };
    let mut planted = Vec::new();
    let decisions_url = format!("{}/v1/decisions", spec.base_url());
    let begin = Instant::now();
    for k in 0.. {
        let due = begin + Duration::from_secs((k * every) as u64 + 1);
        if due > begin + Duration::from_secs(seconds as u64) {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let ip = format!("198.18.{}.{}", k / 250, k % 250 + 1);
        let answer = client.post(&decisions_url).bearer_auth(TOKEN).body(anomaly_body(k, &ip)).send().await?;
        anyhow::ensure!(answer.status().is_success(), "anomaly {k}: {}", answer.status());
        planted.push(Planted { ip, acked: Instant::now(), acked_ms: now_ms() });
    }
    let acks = background.await.context("background load")??;
    // Every anomaly's mail, at most 120 s after the last was planted.
    let waited = Instant::now();
    let mails = loop {
        let got = sink.received();
        let all = planted.iter().all(|p| got.iter().any(|m| m.text.contains(&format!("{} ", p.ip))));
        if all || waited.elapsed() > Duration::from_secs(120) {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    report(&planted, &mails, &acks, &ch_url, &database, rate, seconds);
    if serve.terminate(Duration::from_secs(30)).await.is_none() {
        eprintln!("bench alert: gatelog serve did not stop within 30 s of SIGTERM; killed");
    }
    drop(sink);
    drop(client);
    drop(managed);
    drop(work);
    Ok(())
}

fn report(
    planted: &[Planted],
    mails: &[smtp::Received],
    acks: &load::Outcome,
    ch_url: &str,
    database: &str,
    rate: usize,
    seconds: usize,
) {
    let mut total = Vec::new();
    let mut to_alert = Vec::new();
    let mut to_mail = Vec::new();
    let mut missing = Vec::new();
    for p in planted {
        let needle = format!("{} ", p.ip);
        let Some(mail) = mails.iter().filter(|m| m.text.contains(&needle)).min_by_key(|m| m.at) else {
            missing.push(p.ip.clone());
            continue;
        };
        let latency = mail.at.saturating_duration_since(p.acked);
        total.push(latency);
        let stored = query(
            ch_url,
            &format!(
                "SELECT min(updated_at_ms) FROM {database}.alerts WHERE rule_id = 'deny_burst_ip' AND client_ip = '{}'",
                p.ip
            ),
        );
        if let Ok(stored) = stored.parse::<i64>() {
            let alert = Duration::from_millis(u64::try_from(stored - p.acked_ms).unwrap_or(0));
            to_alert.push(alert);
            to_mail.push(latency.saturating_sub(alert));
        }
    }
    let pct = |v: &[Duration], p: f64| load::percentile(v, p).as_secs_f64();
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default().as_secs_f64();
    let achieved = acks.decisions as f64 / acks.wall.as_secs_f64().max(1e-9);
    println!("event → e-mail while ingesting Logpush http_requests (gatelog serve, release, real SMTP on loopback)");
    println!(
        "  background: {} records posted open-loop at {rate}/s for {seconds} s; achieved {achieved:.0} events/s acknowledged \
         (first post → last 2xx {:.1} s; ack p50 {:.3} s, p99 {:.3} s; {} 429/503 retries)",
        rate * seconds,
        acks.wall.as_secs_f64(),
        pct(&acks.latencies, 50.0),
        pct(&acks.latencies, 99.0),
        acks.retries
    );
    println!("  anomalies: {} planted ({DENIALS} denials from a fresh IP each), {} mailed", planted.len(), total.len());
    println!(
        "  2xx → mail arrived:  p50 {:.2} s  p95 {:.2} s  max {:.2} s   (target p95 ≤ 5 s)",
        pct(&total, 50.0),
        pct(&total, 95.0),
        max(&total)
    );
    println!(
        "    2xx → alert stored (detection): p50 {:.2} s  p95 {:.2} s  max {:.2} s",
        pct(&to_alert, 50.0),
        pct(&to_alert, 95.0),
        max(&to_alert)
    );
    println!(
        "    alert stored → mail (notifier): p50 {:.2} s  p95 {:.2} s  max {:.2} s",
        pct(&to_mail, 50.0),
        pct(&to_mail, 95.0),
        max(&to_mail)
    );
    if !missing.is_empty() {
        println!("  no mail within 120 s for: {}", missing.join(", "));
    }
}
