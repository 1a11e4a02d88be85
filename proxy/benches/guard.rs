//! The SQL guard's own cost, uncached (a benchmark, not a timed test): every query of the
//! ordinary corpus (`tests/corpus/ordinary.toml`) through `guard::analyze`, repeatedly, and
//! one long query. The proxy caches verdicts per (roles, database, SQL text), so this is
//! what a query costs the first time it is seen.
//!
//! Run: `cargo bench -p gatelog-proxy --bench guard` (env: `BENCH_ROUNDS`, default 200).

use std::time::{Duration, Instant};

#[derive(serde::Deserialize)]
struct Corpus {
    query: Vec<Query>,
}

#[derive(serde::Deserialize)]
struct Query {
    sql: String,
}

#[allow(clippy::print_stdout)] // a benchmark reports on stdout
fn main() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/ordinary.toml");
    let text = std::fs::read_to_string(&path).expect("corpus");
    let corpus: Corpus = toml::from_str(&text).expect("corpus toml");
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let queries: Vec<&str> = corpus.query.iter().map(|q| q.sql.as_str()).collect();
    let bytes: usize = queries.iter().map(|q| q.len()).sum();
    let mut per_query = vec![Duration::ZERO; queries.len()];
    let mut allowed = 0;
    let started = Instant::now();
    for _ in 0..rounds {
        for (i, sql) in queries.iter().enumerate() {
            let t = Instant::now();
            let outcome = gatelog_proxy::guard::analyze(sql, "analytics");
            per_query[i] += t.elapsed();
            allowed += usize::from(outcome.is_ok());
        }
    }
    let total = started.elapsed();
    let n = (queries.len() * rounds) as f64;
    let mut means: Vec<f64> = per_query.iter().map(|d| d.as_secs_f64() * 1e6 / rounds as f64).collect();
    means.sort_by(f64::total_cmp);
    println!("guard::analyze, uncached: {} corpus queries ({bytes} bytes), {rounds} rounds", queries.len());
    println!(
        "  mean {:.1} µs per query, median {:.1} µs, slowest {:.1} µs",
        total.as_secs_f64() * 1e6 / n,
        means[means.len() / 2],
        means[means.len() - 1]
    );
    println!(
        "  {:.0} queries/s on one thread; {} of {} analysed without refusal",
        n / total.as_secs_f64(),
        allowed / rounds,
        queries.len()
    );
    let long = format!(
        "SELECT {} FROM analytics.events WHERE user_id IN (1, 2, 3)",
        vec!["toString(user_id) AS c"; 2000].join(", ")
    );
    let t = Instant::now();
    let ok = gatelog_proxy::guard::analyze(&long, "analytics").is_ok();
    println!("  one {} KiB query: {:.2} ms (analysed: {ok})", long.len() / 1024, t.elapsed().as_secs_f64() * 1e3);
}
