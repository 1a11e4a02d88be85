//! Append throughput with fsync on: 1 KB and 64 KB records, 1, 8 and 64 concurrent appenders.
//! `cargo bench -p gatelog-spool --bench append`. Criterion reports MB/s (throughput is set in
//! bytes); appends/s and fsyncs per append are printed to stderr after each case.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gatelog_spool::{Spool, SpoolOptions};
use std::time::{Duration, Instant};

fn bench_append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("spool_append_fsync");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for size in [1024usize, 64 * 1024] {
        for concurrency in [1u64, 8, 64] {
            let dir = tempfile::TempDir::new().expect("tempdir");
            let opts = SpoolOptions { max_bytes: 64 << 30, ..SpoolOptions::default() };
            let spool = Spool::open(dir.path(), opts).expect("open");
            spool.register_consumer("bench", 0).expect("register");
            group.throughput(Throughput::Bytes(size as u64));
            let mut appends = 0u64;
            let mut elapsed = Duration::ZERO;
            group.bench_with_input(
                BenchmarkId::new(format!("{}KB", size / 1024), format!("{concurrency}_appenders")),
                &(size, concurrency),
                |b, &(size, concurrency)| {
                    b.iter_custom(|iters| {
                        let took = rt.block_on(async {
                            let started = Instant::now();
                            let mut tasks = tokio::task::JoinSet::new();
                            for t in 0..concurrency {
                                let n = iters / concurrency + u64::from(t < iters % concurrency);
                                let spool = spool.clone();
                                tasks.spawn(async move {
                                    for _ in 0..n {
                                        spool.append(vec![0x5a; size]).await.expect("append");
                                    }
                                });
                            }
                            while let Some(r) = tasks.join_next().await {
                                r.expect("task");
                            }
                            started.elapsed()
                        });
                        appends += iters;
                        elapsed += took;
                        // Let the spool delete what was written (outside the timing).
                        spool.ack("bench", spool.last_seq()).expect("ack");
                        took
                    })
                },
            );
            let m = spool.metrics();
            let secs = elapsed.as_secs_f64();
            eprintln!(
                "spool append {}KB x{concurrency}: {:.0} appends/s, {:.1} MB/s, {:.3} fsyncs/append, fsync p50 <= {:?}s p99 <= {:?}s",
                size / 1024,
                appends as f64 / secs,
                appends as f64 * size as f64 / secs / 1e6,
                m.fsyncs as f64 / m.appends.max(1) as f64,
                m.fsync_latency.quantile_upper_bound(0.5).unwrap_or(0.0),
                m.fsync_latency.quantile_upper_bound(0.99).unwrap_or(0.0),
            );
            drop(spool);
        }
    }
    group.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
