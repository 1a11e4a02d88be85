//! Added latency and throughput of the proxy (a benchmark, not a timed test).
//!
//! Starts a managed ClickHouse (`gatelog_store::testing`), a loopback OIDC issuer, a cheap
//! decision collector (counts lines and bytes, parses nothing: it is not part of the proxy)
//! and the proxy on loopback (its own 2-worker runtime, as in production). The load
//! generator is a plain hyper HTTP/1 client with keep-alive connections on a separate
//! single-threaded runtime and OS thread, so its cost is small and does not run on the
//! proxy's workers. Direct and proxied paths use the same client, query (`BENCH_QUERY`,
//! default `SELECT 1`; the analyst may also read `analytics.events`, 500 rows, for a small
//! SELECT against a table) and concurrency, in one run:
//! 1. sequential latency, one keep-alive connection per path, requests alternating between
//!    the paths so that load drift on the machine hits both alike (p50/p99, added);
//! 2. requests/s at `BENCH_CONCURRENCY` connections, direct then proxied, `BENCH_SECS` each.
//!
//! Run: `cargo bench -p gatelog-proxy --bench latency`
//! (env: `BENCH_SECS` (5), `BENCH_CONCURRENCY` (32), `BENCH_REQUESTS` (3000 per path),
//! `BENCH_WORKERS` (2) proxy runtime workers, `BENCH_QUERY` (`SELECT 1`), `BENCH_LOG=json` to also write the JSON decision log to a file, as `gatelog proxy` does
//! to stderr).

#[path = "../tests/support/mod.rs"]
mod support;

use bytes::Bytes;
use gatelog_proxy::{Proxy, ProxyConfig, ProxyDeps};
use gatelog_store::testing::TestClickHouse;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use jsonwebtoken::Algorithm;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::*;

/// Targets from the issue.
const TARGET_ADDED_P99_MS: f64 = 2.0;
const TARGET_PROXIED_RPS: f64 = 5000.0;

/// One path under test: where to connect and which Authorization header to send.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    authorization: Option<String>,
    query: Bytes,
}

/// A decision collector that only counts (lines, bytes) and checks the bearer token.
struct CountingCollector {
    url: String,
    lines: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingCollector {
    async fn start() -> CountingCollector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/v1/decisions", listener.local_addr().expect("addr"));
        let (lines, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (l, b) = (lines.clone(), bytes.clone());
        let app = axum::Router::new().route(
            "/v1/decisions",
            axum::routing::post(move |headers: http::HeaderMap, body: Bytes| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer collector-token") {
                    return http::StatusCode::UNAUTHORIZED;
                }
                l.fetch_add(count_lines(&body), Ordering::Relaxed);
                b.fetch_add(body.len() as u64, Ordering::Relaxed);
                http::StatusCode::ACCEPTED
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CountingCollector { url, lines, bytes, task }
    }
}

fn count_lines(body: &[u8]) -> u64 {
    body.iter().filter(|b| **b == b'\n').count() as u64
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// The query every request sends.
fn query() -> Bytes {
    Bytes::from(std::env::var("BENCH_QUERY").unwrap_or_else(|_| "SELECT 1".to_owned()))
}

/// One query on a keep-alive connection; panics on anything but a 2xx.
async fn once(send: &mut SendRequest<Full<Bytes>>, target: &Target) {
    send.ready().await.expect("connection ready");
    let mut req = http::Request::post("/").header(http::header::HOST, target.addr.to_string());
    if let Some(a) = &target.authorization {
        req = req.header(http::header::AUTHORIZATION, a.as_str());
    }
    let req = req.body(Full::new(target.query.clone())).expect("request");
    let resp = send.send_request(req).await.expect("response");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(status.is_success(), "{}: status {status}: {}", target.addr, String::from_utf8_lossy(&body));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sequential latencies of both paths, alternating requests between them.
async fn latencies(direct: &Target, proxied: &Target, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (mut cd, mut cp) = (connect(direct.addr).await, connect(proxied.addr).await);
    let (mut d, mut p) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        once(&mut cd, direct).await;
        d.push(t.elapsed());
        let t = Instant::now();
        once(&mut cp, proxied).await;
        p.push(t.elapsed());
    }
    d.sort();
    p.sort();
    (d, p)
}

async fn throughput(target: &Target, concurrency: usize, secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(connect(target.addr).await);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (target, done) = (target.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                once(&mut conn, &target).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

struct Results {
    n: usize,
    direct: Vec<Duration>,
    proxied: Vec<Duration>,
    direct_rps: f64,
    proxied_rps: f64,
}

/// Runs the measurements on their own OS thread and current-thread runtime.
fn measure(direct: Target, proxied: Target, n: usize, concurrency: usize, secs: u64) -> Results {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("client runtime");
        rt.block_on(async {
            // Warm-up: connections, JWKS, ClickHouse caches, the proxy's caches.
            latencies(&direct, &proxied, 300).await;
            let (d, p) = latencies(&direct, &proxied, n).await;
            let direct_rps = throughput(&direct, concurrency, secs).await;
            let proxied_rps = throughput(&proxied, concurrency, secs).await;
            Results { n, direct: d, proxied: p, direct_rps, proxied_rps }
        })
    })
    .join()
    .expect("load generator")
}

#[allow(clippy::print_stdout)]
fn main() {
    let env = |k: &str, default: u64| std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let secs = env("BENCH_SECS", 5);
    let concurrency = env("BENCH_CONCURRENCY", 32) as usize;
    let n = env("BENCH_REQUESTS", 3000) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    if std::env::var("BENCH_LOG").as_deref() == Ok("json") {
        let file = std::fs::File::create(dir.path().join("proxy.log")).expect("log file");
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::sync::Mutex::new(file))
            .with_max_level(tracing::Level::INFO)
            .init();
    }
    // The proxy's runtime: by default 2 workers, like `gatelog proxy` on this 2-core machine.
    let workers = env("BENCH_WORKERS", 2) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().expect("runtime");
    let (mut ch, issuer, collector, server, stop_tx, direct, proxied) = rt.block_on(async {
        let ch = TestClickHouse::start().await.expect("clickhouse");
        ch_exec(&ch.url(), "CREATE DATABASE analytics").await;
        ch_exec(&ch.url(), "CREATE TABLE analytics.events (day Date, user_id UInt64) ENGINE = MergeTree ORDER BY (day, user_id) SETTINGS index_granularity = 64").await;
        ch_exec(&ch.url(), "INSERT INTO analytics.events SELECT toDate('2025-03-01') + number % 3, number % 50 FROM system.numbers LIMIT 500").await;
        let issuer = LoopbackIssuer::start().await;
        let collector = CountingCollector::start().await;
        // The load comes from one address: the per-source limit is set out of its way (its
        // cost is still paid on every request).
        let extra = format!(
            "url = \"{}\"\ntoken = {{ value = \"collector-token\" }}\n[ingress]\nper_ip_requests_per_minute = 1000000000\n",
            collector.url
        );
        let config = ProxyConfig::parse(&config_toml(&issuer.url, &ch.url(), dir.path(), &extra)).expect("config");
        let deps = ProxyDeps::real(&config).expect("deps");
        let proxy = Proxy::bind(config, None, deps).await.expect("bind");
        let proxy_addr = proxy.local_addr().expect("addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(proxy.run(async move {
            let _ = stop_rx.await;
        }));
        let now = gatelog_model::Clock::now(&gatelog_model::SystemClock).as_secs();
        let token =
            sign(&claims(&issuer.url, now, "bench@example.com", &["analysts"]), "rsa", Algorithm::RS256, Some("rsa-1"));
        let ch_addr: SocketAddr =
            ch.url().trim_start_matches("http://").trim_end_matches('/').parse().expect("clickhouse addr");
        let direct = Target { addr: ch_addr, authorization: None, query: query() };
        let proxied = Target { addr: proxy_addr, authorization: Some(format!("Bearer {token}")), query: query() };
        (ch, issuer, collector, server, stop_tx, direct, proxied)
    });

    let load_before = loadavg();
    let r = measure(direct, proxied, n, concurrency, secs);
    let load_after = loadavg();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (d50, d99) = (ms(percentile(&r.direct, 0.5)), ms(percentile(&r.direct, 0.99)));
    let (p50, p99) = (ms(percentile(&r.proxied, 0.5)), ms(percentile(&r.proxied, 0.99)));
    let added99 = p99 - d99;
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "load average before: {load_before}  (after: {load_after}); {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("proxy runtime workers: {workers}");
    println!("sequential {:?}, {} requests per path, alternating", String::from_utf8_lossy(&query()), r.n);
    println!("  direct   p50 {d50:.3} ms  p99 {d99:.3} ms");
    println!("  proxied  p50 {p50:.3} ms  p99 {p99:.3} ms");
    println!("  added    p50 {:.3} ms  p99 {added99:.3} ms", p50 - d50);
    println!("  proxied/direct p50 {:.2}x", p50 / d50);
    println!("throughput, concurrency {concurrency}, {secs} s per path");
    println!("  direct   {:.0} req/s", r.direct_rps);
    println!("  proxied  {:.0} req/s", r.proxied_rps);
    let ok_latency = added99 <= TARGET_ADDED_P99_MS;
    let ok_rps = r.proxied_rps >= TARGET_PROXIED_RPS;
    println!("targets");
    println!("  added p99 <= {TARGET_ADDED_P99_MS} ms: {} ({added99:.3} ms)", verdict(ok_latency));
    println!("  proxied >= {TARGET_PROXIED_RPS:.0} req/s: {} ({:.0} req/s)", verdict(ok_rps), r.proxied_rps);
    println!("  both in this run: {}", verdict(ok_latency && ok_rps));

    rt.block_on(async {
        let _ = stop_tx.send(());
        server.await.expect("join").expect("proxy");
        println!(
            "decisions delivered to the collector: {} ({} bytes)",
            collector.lines.load(Ordering::Relaxed),
            collector.bytes.load(Ordering::Relaxed)
        );
        collector.task.abort();
        drop(issuer);
        ch.stop().await.expect("stop clickhouse");
    });
}
