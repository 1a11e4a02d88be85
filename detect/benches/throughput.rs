//! Streaming detector throughput on one core: decisions per second through
//! [`Engine::process`] with every built-in detector enabled, by the thread's CPU time (so a
//! busy shared machine does not distort the per-core figure) and by wall time.
//!
//! Two streams:
//! - `generated`: a week of a generated world (`gen_samples.py`, all datasets, Tail copies
//!   of the Worker decisions included, anomalies planted) mapped by the real mappers, in
//!   Logpush-like batch order: ~140k decisions from ~50 people, ~900 visitor IPs.
//! - `many_keys`: 200k synthetic decisions over 20k principals and ~100k IPs, ten per
//!   principal, so nearly every decision meets a cold or new principal and the maps are
//!   large (the pessimistic case).
//!
//! Each run feeds the whole stream to a fresh engine; `BENCH_RUNS` runs (default 5) after
//! one unmeasured. Run with `cargo bench -p gatelog-detect --bench throughput`.
//! Target: at least 200k decisions/s per core.

#![allow(clippy::print_stdout)] // a benchmark: its output is the point

#[allow(dead_code, clippy::unwrap_used)]
#[path = "../tests/support/generated.rs"]
mod generated;

use gatelog_detect::{DetectConfig, Engine};
use gatelog_model::{AccessDecision, Decision, PrincipalType, Source, UnixMillis};
use generated::{Spec, deliveries, generate_all};
use rustix::time::{ClockId, clock_gettime};
use std::time::Instant;

fn generated_stream() -> Vec<AccessDecision> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let specs: Vec<Spec> = [
        ("http_requests", 60_000),
        ("firewall_events", 10_000),
        ("workers_trace_events", 20_000),
        ("tail", 20_000),
        ("access_requests", 10_000),
        ("audit_logs_v2", 2_000),
        ("gateway_http", 20_000),
    ]
    .into_iter()
    .map(|(dataset, count)| Spec {
        dataset,
        seed: 4242,
        start: "2025-08-04T00:00:00Z".into(),
        hours: 168.0,
        count,
        anomalies: "default",
    })
    .collect();
    let generated = generate_all(dir.path(), &specs);
    deliveries(&generated.iter().collect::<Vec<_>>(), 5 * 60_000).into_iter().flat_map(|b| b.decisions).collect()
}

/// A small deterministic generator (xorshift64*), so the stream is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn many_keys_stream() -> Vec<AccessDecision> {
    const DATASETS: [&str; 5] = ["http_requests", "workers_trace_events", "gateway_http", "access_requests", "proxy"];
    const COUNTRIES: [&str; 6] = ["US", "GB", "DE", "IN", "JP", "BR"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = 1_754_265_600_000i64; // 2025-08-04
    (0..200_000i64)
        .map(|i| {
            let user = rng.below(20_000);
            let dataset = DATASETS[usize::try_from(rng.below(5)).unwrap_or(0)];
            let t = start + i * 3_000 + i64::try_from(rng.below(2_000)).unwrap_or(0);
            let mut d = AccessDecision::new(format!("ev{i:08x}"), UnixMillis(t), dataset, Source::Logpush);
            d.decision = if rng.below(20) == 0 { Decision::Deny } else { Decision::Allow };
            if dataset != "http_requests" {
                d.principal = format!("user{user}@example.com");
                d.principal_type = PrincipalType::User;
                d.roles = vec!["analyst".into()];
            }
            d.client_ip = format!("10.{}.{}.{}", rng.below(2), rng.below(256), rng.below(200));
            d.country = COUNTRIES[usize::try_from(user % 6).unwrap_or(0)].into();
            d.asn = u32::try_from(64_512 + user % 50).unwrap_or(0);
            d.action = if dataset == "proxy" { "select".into() } else { "GET".into() };
            d.resource = format!("clickhouse:db{}.t{}", rng.below(20), rng.below(50));
            d.rows_read = rng.below(10_000_000);
            d.duration_ms = rng.below(5_000);
            d.query = "SELECT a, count() FROM t WHERE x = ? GROUP BY a".into();
            d
        })
        .collect()
}

/// Seconds of CPU this thread has used.
fn thread_cpu_seconds() -> f64 {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// One run: (CPU seconds, wall seconds, findings).
fn run(stream: &[AccessDecision]) -> (f64, f64, usize) {
    let mut engine = Engine::new(DetectConfig::default()).expect("the default configuration is valid");
    let mut out = Vec::new();
    let (cpu, wall) = (thread_cpu_seconds(), Instant::now());
    for d in stream {
        engine.process(d, &mut out);
    }
    (thread_cpu_seconds() - cpu, wall.elapsed().as_secs_f64(), out.len())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    println!("detector throughput, one thread, {runs} runs each (figures: decisions per second)");
    println!("| stream | decisions | findings | per core by CPU time, median | best | by wall time, median |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, stream) in [("generated", generated_stream()), ("many_keys", many_keys_stream())] {
        let _ = run(&stream);
        let results: Vec<(f64, f64, usize)> = (0..runs).map(|_| run(&stream)).collect();
        let n = stream.len() as f64;
        let cpu_rates: Vec<f64> = results.iter().map(|r| n / r.0).collect();
        let wall_rates: Vec<f64> = results.iter().map(|r| n / r.1).collect();
        let best = cpu_rates.iter().copied().fold(0.0, f64::max);
        println!(
            "| {name} | {} | {} | {:.0} | {:.0} | {:.0} |",
            stream.len(),
            results[0].2,
            median(cpu_rates),
            best,
            median(wall_rates)
        );
    }
}
