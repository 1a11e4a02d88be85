//! The printed table: rates, ratios to ClickHouse's own ingest, targets, latency, RSS.

use crate::input::{Bodies, Prepared};
use crate::load::{Outcome, WARM_UP, percentile};
use crate::{ServeRun, Settings};
use std::time::Duration;

/// Issue 3's targets on the 2-core machine.
const TARGET_SINK_ONLY: f64 = 1.0;
const TARGET_WITH_INDEX: f64 = 0.75;
const TARGET_P99: Duration = Duration::from_millis(50);
const TARGET_RSS: u64 = 512 * 1024 * 1024;

#[derive(Debug)]
pub struct Report<'a> {
    pub settings: &'a Settings,
    pub prepared: &'a Prepared,
    pub load_at_start: String,
    pub cores: usize,
    /// ClickHouse's answers and its `count()` afterwards.
    pub baseline: &'a (Outcome, u64),
    pub sink_only: &'a ServeRun,
    pub with_index: &'a ServeRun,
    pub latency: &'a ServeRun,
    pub latency_rate: f64,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "?".to_owned(), |b| format!("{:.0} MB", b as f64 / (1024.0 * 1024.0)))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

struct Row {
    name: String,
    rate: f64,
    target: Option<f64>,
    secs: f64,
    /// bodies, retries, ack p50, ack p99, peak RSS, rows (the timed rows only).
    detail: Option<(usize, u64, Duration, Duration, String, u64)>,
}

pub fn print(r: &Report<'_>) {
    let records = r.prepared.throughput.records as f64;
    let (ch, ch_rows) = r.baseline;
    let ch_rate = records / ch.wall.as_secs_f64();
    let rate = |d: Duration| records / d.as_secs_f64();
    let timed = |o: &Outcome, rss: String, rows: u64| {
        Some((o.latencies.len(), o.retries, percentile(&o.latencies, 50.0), percentile(&o.latencies, 99.0), rss, rows))
    };
    let (a, b) = (r.sink_only, r.with_index);
    let rows = [
        Row {
            name: "ClickHouse JSONEachRow (baseline)".into(),
            rate: ch_rate,
            target: None,
            secs: ch.wall.as_secs_f64(),
            detail: timed(ch, "-".into(), *ch_rows),
        },
        Row {
            name: "(a) serve, ClickHouse only: end-to-end".into(),
            rate: rate(a.end_to_end),
            target: Some(TARGET_SINK_ONLY),
            secs: a.end_to_end.as_secs_f64(),
            detail: timed(&a.acks, mb(a.peak_rss), a.rows),
        },
        Row {
            name: "    acks only (all 2xx)".into(),
            rate: rate(a.acks.wall),
            target: None,
            secs: a.acks.wall.as_secs_f64(),
            detail: None,
        },
        Row {
            name: "(b) serve, ClickHouse + index: end-to-end".into(),
            rate: rate(b.end_to_end),
            target: Some(TARGET_WITH_INDEX),
            secs: b.end_to_end.as_secs_f64(),
            detail: timed(&b.acks, mb(b.peak_rss), b.rows),
        },
        Row {
            name: "    acks only (all 2xx)".into(),
            rate: rate(b.acks.wall),
            target: None,
            secs: b.acks.wall.as_secs_f64(),
            detail: None,
        },
    ];

    let p = &r.prepared.throughput;
    println!();
    println!("gatelog serve benchmark");
    println!(
        "  input:   {} http_requests records ({}) in {} gzip bodies of <= {} lines: {:.1} MB NDJSON, {:.1} MB gzip",
        p.records,
        p.source,
        p.batches,
        r.settings.batch_lines,
        p.ndjson_bytes as f64 / 1e6,
        p.gzip_bytes as f64 / 1e6
    );
    let l = &r.prepared.latency;
    println!(
        "  latency phase: {} more records in {} gzip bodies, {:.1} MB gzip",
        l.records,
        l.batches,
        l.gzip_bytes as f64 / 1e6
    );
    println!(
        "  clients: {} concurrent in the throughput phases; machine: {} cores, load average at start {}",
        r.settings.clients, r.cores, r.load_at_start
    );
    print_conditions(r.settings);
    println!();
    println!(
        "{:<42} {:>9} {:>7} {:>13} {:>7} {:>6} {:>7} {:>9} {:>9} {:>8} {:>8}",
        "phase", "events/s", "vs CH", "target", "secs", "bodies", "retries", "ack p50", "ack p99", "peak RSS", "rows"
    );
    for row in &rows {
        let ratio = row.rate / ch_rate;
        let target = row.target.map_or_else(String::new, |t| format!(">= {t:.2}x {}", verdict(ratio >= t)));
        let mut line = format!("{:<42} {:>9.0} {:>6.2}x {:>13} {:>7.2}", row.name, row.rate, ratio, target, row.secs);
        if let Some((bodies, retries, p50, p99, rss, stored)) = &row.detail {
            line.push_str(&format!(" {bodies:>6} {retries:>7} {:>9} {:>9} {rss:>8} {stored:>8}", ms(*p50), ms(*p99)));
        }
        println!("{line}");
    }
    println!(
        "  (ack p50/p99 above: closed loop at saturation; end-to-end = first post until every sink acknowledged the last spool record)"
    );

    println!();
    latency_line(r.latency, r.latency_rate, "half of (b) end-to-end");
    let peaks = [a.peak_rss, b.peak_rss, r.latency.peak_rss];
    let worst = peaks.iter().flatten().max().copied();
    println!(
        "peak RSS of gatelog serve (VmHWM): (a) {}, (b) {}, latency run {} (target <= {}: {})",
        mb(a.peak_rss),
        mb(b.peak_rss),
        mb(r.latency.peak_rss),
        mb(Some(TARGET_RSS)),
        if peaks.iter().any(Option::is_none) { "unknown" } else { verdict(worst.is_some_and(|w| w <= TARGET_RSS)) }
    );
    println!("spool fsyncs (count, mean, bucket bound of p50 / p99):");
    let bound = |b: Option<f64>| {
        b.map_or_else(
            || "?".to_owned(),
            |s| if s.is_finite() { ms(Duration::from_secs_f64(s)) } else { "> 1 s".to_owned() },
        )
    };
    for (name, run) in [("(a)", a), ("(b)", b), ("latency", r.latency)] {
        let f = run.fsync;
        println!(
            "  {name:<8} {:.0} fsyncs, mean {}, p50 <= {}, p99 <= {}",
            f.count,
            ms(f.mean),
            bound(f.p50_bound),
            bound(f.p99_bound)
        );
    }
    println!();
    println!("cross-check (decisions acknowledged / count() in ClickHouse / gatelog_written_decisions_total by sink):");
    for (name, run) in [("(a)", a), ("(b)", b), ("latency", r.latency)] {
        let written: Vec<String> = run
            .written
            .iter()
            .map(|(sink, v)| format!("{sink} {}", v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}"))))
            .collect();
        let flag = if run.rows == run.acks.decisions { "" } else { "  <- MISMATCH" };
        println!("  {name:<8} {} / {} / {}{flag}", run.acks.decisions, run.rows, written.join(", "));
    }
    if *ch_rows != p.records as u64 {
        println!("  baseline: {} rows in ClickHouse for {} records  <- MISMATCH", ch_rows, p.records);
    }
}

/// The latency phase's lines: open-loop rate, p50/p99 after the warm-up against the target,
/// max; then the warm-up requests and p99 over every request.
fn latency_line(run: &ServeRun, rate: f64, why: &str) {
    let l = &run.acks;
    let (warm_up, steady) = l.latencies.split_at(l.warm_up.min(l.latencies.len()));
    let (p50, p99) = (percentile(steady, 50.0), percentile(steady, 99.0));
    let max = |samples: &[Duration]| samples.iter().max().copied().unwrap_or_default();
    println!(
        "latency, open loop at {rate:.0} events/s ({why}), ClickHouse + index, after the {} s warm-up: p50 {}, p99 {} (target <= {}: {}), max {} over {} requests, {} retries",
        WARM_UP.as_secs(),
        ms(p50),
        ms(p99),
        ms(TARGET_P99),
        if steady.is_empty() { "no requests after the warm-up" } else { verdict(p99 <= TARGET_P99) },
        ms(max(steady)),
        steady.len(),
        l.retries
    );
    println!(
        "  warm-up: {} requests, p50 {}, max {}; every request: p50 {}, p99 {}",
        warm_up.len(),
        ms(percentile(warm_up, 50.0)),
        ms(max(warm_up)),
        ms(percentile(&l.latencies, 50.0)),
        ms(percentile(&l.latencies, 99.0))
    );
}

/// What the figures were measured under besides the input: the kernel's writeback settings
/// and any `BENCH_CONFIG`.
fn print_conditions(settings: &Settings) {
    println!("  kernel writeback: {}", crate::procs::writeback_settings());
    if !settings.config.trim().is_empty() {
        println!("  config:  {} (BENCH_CONFIG)", settings.config.trim().replace('\n', "; "));
    }
}

/// The report of a `BENCH_LATENCY_RATE` run: the latency phase alone.
pub fn print_latency(settings: &Settings, prepared: &Bodies, run: &ServeRun, rate: f64) {
    println!();
    println!("gatelog serve benchmark, latency phase only");
    println!(
        "  input:   {} http_requests records ({}), {:.1} MB gzip",
        prepared.records,
        prepared.source,
        prepared.gzip_bytes as f64 / 1e6
    );
    print_conditions(settings);
    latency_line(run, rate, "BENCH_LATENCY_RATE");
    let f = run.fsync;
    println!(
        "peak RSS of gatelog serve (VmHWM): {}; spool: {:.0} fsyncs, mean {}",
        mb(run.peak_rss),
        f.count,
        ms(f.mean)
    );
    println!("stored: {} decisions acknowledged, {} in ClickHouse", run.acks.decisions, run.rows);
}
