//! Indexing throughput: the mapped 5,000-line `http_requests` sample, indexed into a fresh
//! index and committed, repeatedly. Figures in documents/s (criterion's "elem/s").
//!
//! `cargo bench -p gatelog-index --bench index`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gatelog_index::{Indexer, IndexerOptions, SearchRequest, Searcher};
use gatelog_ingest::{BodyContext, Dataset, Limits, map_body};
use gatelog_model::{AccessDecision, Batch, Source, UnixMillis};
use std::path::PathBuf;

fn decisions() -> Vec<AccessDecision> {
    let dir = match std::env::var_os("GATELOG_SHARED") {
        Some(shared) => PathBuf::from(shared).join("formats/samples"),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/formats/samples")),
    };
    let path = dir.join("http_requests_5000.ndjson.gz");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Received just after the sample's two days (2025-03-03 and -04), so its time window
    // accepts them (at 0, every line was a dead letter and the bench indexed nothing).
    let received_at = UnixMillis(1_741_132_800_000);
    let ctx = BodyContext { received_at, origin: "bench", source: Source::Logpush, limits: Limits::default() };
    map_body(Dataset::HttpRequests, &bytes, &ctx).expect("maps").decisions
}

fn bench(c: &mut Criterion) {
    let all = decisions();
    assert_eq!(all.len(), 5000);
    let batches: Vec<Batch> = all.chunks(500).map(|c| Batch { decisions: c.to_vec(), ..Batch::default() }).collect();
    let opts = IndexerOptions::default();

    let mut group = c.benchmark_group("index");
    group.sample_size(10);
    group.throughput(Throughput::Elements(all.len() as u64));
    group.bench_function("http_requests_5000_fresh_index", |b| {
        b.iter(|| {
            let tmp = tempfile::tempdir().expect("tempdir");
            let mut indexer = Indexer::open(tmp.path(), opts).expect("open");
            for (i, batch) in batches.iter().enumerate() {
                indexer.index_batch(i as u64 + 1, batch).expect("index");
            }
            indexer.commit().expect("commit");
        });
    });
    // New event ids into a live index, as an ingest adds them: commits pile up segments,
    // and nothing is to be replaced.
    let live = tempfile::tempdir().expect("tempdir");
    let mut indexer = Indexer::open(live.path(), opts).expect("open");
    let mut round = 0u64;
    group.bench_function("http_requests_5000_new_ids_into_existing", |b| {
        b.iter(|| {
            round += 1;
            for (i, batch) in batches.iter().enumerate() {
                let mut batch = batch.clone();
                for d in &mut batch.decisions {
                    d.event_id = format!("{}-{round}", d.event_id);
                }
                indexer.index_batch(round * 100 + i as u64, &batch).expect("index");
            }
            indexer.commit().expect("commit");
        });
    });
    drop(indexer);
    // The same 5,000 again into a live index: every document replaces its earlier copy.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut indexer = Indexer::open(tmp.path(), opts).expect("open");
    let mut seq = 0u64;
    group.bench_function("http_requests_5000_replay_into_existing", |b| {
        b.iter(|| {
            for batch in &batches {
                seq += 1;
                indexer.index_batch(seq, batch).expect("index");
            }
            indexer.commit().expect("commit");
        });
    });
    group.finish();

    let searcher = Searcher::open(tmp.path(), "gatelog");
    let mut group = c.benchmark_group("search");
    group.sample_size(20);
    for q in ["", "decision:deny", "host:example AND status:403"] {
        group.bench_function(format!("page_50 q={q:?}"), |b| {
            b.iter(|| {
                searcher.search(&SearchRequest { q: q.into(), limit: 50, ..SearchRequest::default() }).expect("search")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
