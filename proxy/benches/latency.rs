//! Added latency and throughput of the proxy (not a timed test).
//!
//! Starts a managed ClickHouse (`gatelog_store::testing`), a loopback OIDC issuer and
//! decision collector, and the proxy on loopback; then measures `SELECT 1`:
//! 1. sequential latency, direct ClickHouse HTTP vs. through the proxy (p50/p99, added);
//! 2. requests/s with concurrency, direct and through the proxy.
//!
//! Run: `cargo bench -p gatelog-proxy --bench latency` (env: BENCH_SECS, BENCH_CONCURRENCY).

#[path = "../tests/support/mod.rs"]
mod support;

use gatelog_proxy::{Proxy, ProxyConfig, ProxyDeps};
use gatelog_store::testing::TestClickHouse;
use jsonwebtoken::Algorithm;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::*;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn once(client: &reqwest::Client, url: &str, token: Option<&str>) {
    let mut req = client.post(url).body("SELECT 1");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let body = resp.bytes().await.expect("body");
    assert!(status.is_success(), "{url}: status {status}: {}", String::from_utf8_lossy(&body));
}

async fn latencies(client: &reqwest::Client, url: &str, token: Option<&str>, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        once(client, url, token).await;
        out.push(t.elapsed());
    }
    out.sort();
    out
}

async fn throughput(client: &reqwest::Client, url: &str, token: Option<&str>, concurrency: usize, secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token, done) = (client.clone(), url.to_owned(), token.map(str::to_owned), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                once(&client, &url, token.as_deref()).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

#[allow(clippy::print_stdout)]
fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
        let concurrency: usize = std::env::var("BENCH_CONCURRENCY").ok().and_then(|s| s.parse().ok()).unwrap_or(32);
        let mut ch = TestClickHouse::start().await.expect("clickhouse");
        let ch_url = format!("{}/", ch.url());
        ch_exec(&ch.url(), "CREATE DATABASE analytics").await;
        let issuer = LoopbackIssuer::start().await;
        let collector = Collector::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = format!("url = \"{}\"\ntoken = {{ value = \"collector-token\" }}\n", collector.url);
        let config = ProxyConfig::parse(&config_toml(&issuer.url, &ch.url(), dir.path(), &extra)).expect("config");
        let deps = ProxyDeps::real(&config).expect("deps");
        let proxy = Proxy::bind(config, None, deps).await.expect("bind");
        let proxy_url = format!("http://{}/", proxy.local_addr().expect("addr"));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(proxy.run(async move {
            let _ = stop_rx.await;
        }));
        let now = gatelog_model::Clock::now(&gatelog_model::SystemClock).as_secs();
        let token = sign(&claims(&issuer.url, now, "bench@example.com", &["analysts"]), "rsa", Algorithm::RS256, Some("rsa-1"));
        let client = http_client();

        // Warm-up: connections, JWKS, ClickHouse caches.
        latencies(&client, &ch_url, None, 200).await;
        latencies(&client, &proxy_url, Some(&token), 200).await;

        let n = 3000;
        let direct = latencies(&client, &ch_url, None, n).await;
        let proxied = latencies(&client, &proxy_url, Some(&token), n).await;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("sequential SELECT 1, {n} requests each");
        println!("  direct   p50 {:.3} ms  p99 {:.3} ms", ms(percentile(&direct, 0.5)), ms(percentile(&direct, 0.99)));
        println!("  proxied  p50 {:.3} ms  p99 {:.3} ms", ms(percentile(&proxied, 0.5)), ms(percentile(&proxied, 0.99)));
        println!(
            "  added    p50 {:.3} ms  p99 {:.3} ms",
            ms(percentile(&proxied, 0.5)) - ms(percentile(&direct, 0.5)),
            ms(percentile(&proxied, 0.99)) - ms(percentile(&direct, 0.99))
        );
        let direct_rps = throughput(&client, &ch_url, None, concurrency, secs).await;
        let proxied_rps = throughput(&client, &proxy_url, Some(&token), concurrency, secs).await;
        println!("throughput, concurrency {concurrency}, {secs}s each");
        println!("  direct   {direct_rps:.0} req/s");
        println!("  proxied  {proxied_rps:.0} req/s");
        let received = collector.wait_for(1).await.len();
        println!("decisions delivered to the collector so far: {received}");

        let _ = stop_tx.send(());
        server.await.expect("join").expect("proxy");
        ch.stop().await.expect("stop clickhouse");
    });
}
