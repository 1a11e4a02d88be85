//! Search over a big index: 10M decisions (30 days, 2,000 principals, 6 % denials, SQL text in
//! `query`) indexed once with the production [`IndexerOptions`] into
//! `target/bench-search/docs-<N>/` and reused by later runs (building 10M takes many minutes;
//! an interrupted build resumes from the index's committed position). Then the kinds of
//! queries the web UI's search page sends, newest first, 50 hits a page, 30 runs each after
//! one warm-up: p50, p95 and max of `Searcher::search`. Target: p95 ≤ 50 ms.
//!
//! ```sh
//! cargo bench -p gatelog-index --bench search_10m                              # ./x bench-search
//! GATELOG_BENCH_DOCS=1000000 cargo bench -p gatelog-index --bench search_10m   # a quick look
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)] // a benchmark: its output is the point

use gatelog_index::{Indexer, IndexerOptions, SearchRequest, Searcher};
use gatelog_model::{AccessDecision, Batch, Decision, PrincipalType, Source, UnixMillis};
use std::path::PathBuf;
use std::time::Instant;

const START_MS: i64 = 1_772_323_200_000; // 2026-03-01
const SPAN_MS: i64 = 30 * 86_400_000;
const BATCH: u64 = 10_000;

/// A stable pseudo-random number for document `n` and a salt (splitmix64).
fn mix(n: u64, salt: u64) -> u64 {
    let mut z = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(salt);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn decision(n: u64, docs: u64) -> AccessDecision {
    let h = mix(n, 1);
    let p = (mix(n, 2) % 2000).pow(2) / 2000;
    let time = START_MS + i64::try_from(u128::from(n) * u128::from(SPAN_MS.unsigned_abs()) / u128::from(docs)).unwrap();
    let dataset = ["access_requests", "http_requests", "gateway_http", "firewall_events"][(n % 4) as usize];
    let mut d = AccessDecision::new(format!("{:016x}", mix(n, 3)), UnixMillis(time), dataset, Source::Logpush);
    d.received_at = UnixMillis(time + (h % 120_000) as i64);
    d.decision = if h % 100 < 6 { Decision::Deny } else { Decision::Allow };
    d.principal = format!("user{p}@example.com");
    d.principal_type = PrincipalType::User;
    d.roles = vec![format!("role{}", p % 7)];
    d.client_ip = format!("10.{}.{}.{}", p % 250, p / 250, h % 3);
    d.country = ["US", "DE", "GB", "FR", "NL", "JP", "BR", "IN"][(p % 8) as usize].to_owned();
    d.asn = 64_500 + (p % 40) as u32;
    d.resource = format!("clickhouse:db{}.t{}", p % 20, (h / 100) % 40);
    d.action = "select".into();
    d.policy = "bench-policy".into();
    let table = ["orders", "customers", "payments", "sessions", "invoices"][(h % 5) as usize];
    d.query = format!("SELECT id, amount FROM db{}.{table} WHERE region = 'eu-{}' LIMIT {}", p % 20, h % 9, h % 1000);
    d.reason = if d.decision == Decision::Deny { "missing grant on table".into() } else { String::new() };
    d.status = if d.decision == Decision::Deny { 403 } else { 200 };
    d.host = "bi.example.com".into();
    d.path = "/query".into();
    d.user_agent = "Mozilla/5.0 (bench)".into();
    d
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let docs: u64 = std::env::var("GATELOG_BENCH_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let dir =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-search")).join(format!("docs-{docs}"));
    let batches = docs.div_ceil(BATCH);
    let t = Instant::now();
    let mut indexer = Indexer::open(&dir, IndexerOptions::default()).unwrap();
    let done = indexer.position();
    if done < batches {
        println!("indexing {docs} decisions into {} (from batch {} of {batches})", dir.display(), done + 1);
        for seq in done + 1..=batches {
            let first = (seq - 1) * BATCH;
            let decisions = (first..(first + BATCH).min(docs)).map(|n| decision(n, docs)).collect();
            indexer.index_batch(seq, &Batch { decisions, ..Batch::default() }).unwrap();
            if indexer.should_commit() {
                indexer.commit().unwrap();
            }
            if seq % 100 == 0 {
                println!("  {} decisions, {:.0} s", seq * BATCH, t.elapsed().as_secs_f64());
            }
        }
        indexer.commit().unwrap();
        println!("indexed in {:.0} s", t.elapsed().as_secs_f64());
    } else {
        println!("reusing the index of {docs} decisions in {}", dir.display());
    }
    drop(indexer);

    let searcher = Searcher::open(&dir, "gatelog");
    let mid = START_MS + SPAN_MS / 2;
    let page = |q: &str| SearchRequest { q: q.into(), limit: 50, ..SearchRequest::default() };
    let second = searcher.search(&page("decision:deny")).unwrap().next_cursor;
    let kinds: Vec<(&str, SearchRequest)> = vec![
        ("everything", page("")),
        ("term", page("payments")),
        ("field decision:deny", page("decision:deny")),
        ("principal", page("principal:user42@example.com")),
        ("principal + deny", page("principal:user1@example.com AND decision:deny")),
        ("phrase", page("query:\"FROM db7.invoices\"")),
        ("two terms, 1 % of docs", page("invoices AND missing")),
        (
            "time range 1 h",
            SearchRequest {
                from: Some(UnixMillis(mid)),
                to: Some(UnixMillis(mid + 3_600_000)),
                ..page("decision:deny")
            },
        ),
        ("second page by cursor", SearchRequest { cursor: second, ..page("decision:deny") }),
    ];
    println!("search over {docs} decisions, 50 hits a page (target: p95 <= 50 ms):");
    for (label, req) in kinds {
        let hits = searcher.search(&req).unwrap().hits.len();
        let mut ms = Vec::new();
        for _ in 0..30 {
            let t = Instant::now();
            searcher.search(&req).unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "  {label:<24} p50 {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms  ({hits} hits, q={:?})",
            percentile(&ms, 0.5),
            percentile(&ms, 0.95),
            ms[ms.len() - 1],
            req.q
        );
    }
}
