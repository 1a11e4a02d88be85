//! Mapping throughput: `cargo bench -p gatelog-ingest`.
//!
//! - `map_line/http_requests_200`: the 200-line http_requests sample, line by line (lines/s).
//! - `map_body/http_requests_200_plain`: the same as one plain body (MB/s of NDJSON).
//! - `map_body/http_requests_5000_gzip`: the 5,000-line gzip sample, gunzip included
//!   (MB/s of decompressed NDJSON).
//! - `map_line/workers_trace_events_200`: Worker events with `access_decision` logs.

#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gatelog_ingest::{BodyContext, Dataset, LineContext, LineOutcome, map_body, map_line};
use gatelog_model::{Source, UnixMillis};
use std::hint::black_box;
use std::io::Read;

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/formats/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("sample {path} is missing: {e}"))
}

fn ctx(line_no: u64) -> LineContext<'static> {
    LineContext { received_at: UnixMillis(1_741_132_800_000), origin: "bench", line_no, source: Source::Logpush }
}

fn body_ctx() -> BodyContext<'static> {
    BodyContext {
        received_at: UnixMillis(1_741_132_800_000),
        origin: "bench",
        source: Source::Logpush,
        limits: Default::default(),
    }
}

fn lines_bench(c: &mut Criterion, name: &str, file: &str, dataset: Dataset) {
    let text = String::from_utf8(sample(file)).expect("utf-8 sample");
    let lines: Vec<&str> = text.lines().collect();
    let mut group = c.benchmark_group("map_line");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut decisions = 0usize;
            for (i, line) in lines.iter().enumerate() {
                if let LineOutcome::Mapped { decisions: d, .. } = map_line(dataset, black_box(line), &ctx(i as u64 + 1))
                {
                    decisions += d.len();
                }
            }
            assert!(decisions > 0);
            decisions
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    lines_bench(c, "http_requests_200", "http_requests.ndjson", Dataset::HttpRequests);
    lines_bench(c, "workers_trace_events_200", "workers_trace_events.ndjson", Dataset::WorkersTraceEvents);

    let plain = sample("http_requests.ndjson");
    let gz = sample("http_requests_5000.ndjson.gz");
    let mut inflated = Vec::new();
    flate2::read::MultiGzDecoder::new(gz.as_slice()).read_to_end(&mut inflated).expect("gunzip sample");

    let mut group = c.benchmark_group("map_body");
    group.throughput(Throughput::Bytes(plain.len() as u64));
    group.bench_function("http_requests_200_plain", |b| {
        b.iter(|| map_body(Dataset::HttpRequests, black_box(&plain), &body_ctx()).expect("maps").decisions.len())
    });
    group.throughput(Throughput::Bytes(inflated.len() as u64));
    group.sample_size(20);
    group.bench_function("http_requests_5000_gzip", |b| {
        b.iter(|| map_body(Dataset::HttpRequests, black_box(&gz), &body_ctx()).expect("maps").decisions.len())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
