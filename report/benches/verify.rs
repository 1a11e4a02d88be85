//! How long `gatelog verify` takes on a large bundle: builds one (CSV populations like a
//! report's, `BENCH_MB` of them, default 512), then verifies it `BENCH_RUNS` times (default
//! 3) and prints the figures. `cargo bench -p gatelog-report --bench verify` (or `./x bench-verify`).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use gatelog_report::bundle::{BundleBuilder, verify};
use gatelog_report::sign::SigningKey;
use std::io::Write as _;
use std::time::Instant;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let mb = env("BENCH_MB", 512);
    let runs = env("BENCH_RUNS", 3).max(1);
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed([7; 32], "bench");
    let mut builder = BundleBuilder::new("bench");
    builder.parameter("from", "2026-01-01T00:00:00Z").parameter("to", "2026-04-01T00:00:00Z");

    // Eight populations, rows shaped like decisions (ids, times, principals, resources).
    let per_file = mb * 1024 * 1024 / 8;
    let started = Instant::now();
    for f in 0..8u64 {
        let path = dir.path().join(format!("p{f}.csv"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut written = 0u64;
        let mut i = 0u64;
        while written < per_file {
            let line = format!(
                "{:032x},2026-01-{:02}T{:02}:{:02}:{:02}.{:03}Z,user{}@example.com,{},clickhouse:analytics.t{},{},{}\n",
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ f,
                1 + i % 28,
                i % 24,
                i % 60,
                (i / 7) % 60,
                i % 1000,
                i % 5000,
                if i.is_multiple_of(11) { "deny" } else { "allow" },
                i % 40,
                i % 100_000,
                i.wrapping_mul(31) % 1_000_000
            );
            out.write_all(line.as_bytes()).unwrap();
            written += line.len() as u64;
            i += 1;
        }
        out.flush().unwrap();
        builder.add_file(&format!("csv/population-{f}.csv"), &path).unwrap();
    }
    let bundle = dir.path().join("bundle.zip");
    let built = Instant::now();
    let written = builder.write_file(&key, &bundle).unwrap();
    let build_s = built.elapsed().as_secs_f64();
    let content: u64 = written.manifest.files.iter().map(|f| f.size).sum();
    println!(
        "bundle: {} files, {:.1} MB of content, {:.1} MB compressed (inputs made in {:.1} s, bundle built in {:.1} s)",
        written.manifest.files.len(),
        content as f64 / 1e6,
        written.bytes as f64 / 1e6,
        (built - started).as_secs_f64(),
        build_s
    );
    let public = key.public_key();
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let file = std::io::BufReader::new(std::fs::File::open(&bundle).unwrap());
        let verdict = verify(file, Some(&public));
        times.push(t.elapsed().as_secs_f64());
        assert!(verdict.ok(), "{verdict}");
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "verify: median {:.2} s over {runs} runs (min {:.2} s, max {:.2} s), {:.0} MB/s of content; target <= 5 s",
        median,
        times[0],
        times[times.len() - 1],
        content as f64 / 1e6 / median
    );
}
