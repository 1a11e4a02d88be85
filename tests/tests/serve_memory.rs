//! Memory per request against the real `gatelog serve`: each kind of body that used to
//! amplify (newlines gzipped or plain, gzip bombs of newlines in one member or many, floods
//! of dead letters, connections holding unfinished bodies) is sent, and the server's peak
//! RSS (`VmHWM` of its process) over that request is printed and checked against the limits
//! it runs under: one request may hold its body (`max_body_bytes`) and its batch
//! (`max_batch_bytes`), all requests together `max_buffered_bytes`. Before this, an 8 MiB
//! body of newlines took 5.4 GB. A good batch still gets 200 after each kind.

use gatelog_e2e::edge::{PeakRss, gzip_repeated, mib, post_head, raw_request, read_to_end};
use gatelog_e2e::{Serve, ServeSpec, free_port, gzip, http_client, http_requests_sample, unique_http_requests};
use gatelog_store::testing::TestClickHouse;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const TOKEN: &str = "memory-test-token-0123456789";
const MIB: u64 = 1024 * 1024;
const MAX_BODY: u64 = 16 * MIB;
const MAX_BATCH: u64 = 16 * MIB;
const MAX_BUFFERED: u64 = 48 * MIB;
/// What a request may hold beyond its counted body and batch: a few pieces being mapped,
/// the inflater's buffers, the allocator's slack; and the sinks' and index's own work.
const MARGIN: u64 = 48 * MIB;

const CONFIG: &str = r#"
[receiver]
max_body_bytes = "16 MiB"
max_decompressed_bytes = "64 MiB"
max_line_bytes = "64 KiB"
max_batch_bytes = "16 MiB"
max_buffered_bytes = "48 MiB"
retry_after = "1s"

[server]
body_read_timeout = "4s"
min_body_rate = "1 KiB"
"#;

/// `n` bytes of `line` repeated (whole lines).
fn repeat_line(line: &[u8], n: u64) -> Vec<u8> {
    line.repeat(usize::try_from(n).expect("fits") / line.len())
}

/// gzip members of `member` bytes of newlines each, concatenated.
fn gzip_members(members: usize, member: u64) -> Vec<u8> {
    gzip_repeated(b"\n", member).repeat(members)
}

struct Bench {
    addr: String,
    pid: u32,
    lines: Vec<String>,
    next: usize,
}

impl Bench {
    async fn good_batch(&mut self, after: &str) {
        let body = unique_http_requests(&self.lines, self.next..self.next + 20, "mem0");
        self.next += 20;
        let a = raw_request(
            &self.addr,
            &post_head("/v1/logpush/http_requests", TOKEN, Some(gzip(&body).len() as u64), &[]),
            &gzip(&body),
        )
        .await;
        assert_eq!(a.status, 200, "a good batch after {after}: {}", a.text);
    }

    /// Sends one body, prints the peak RSS it cost and checks it against `bound`.
    async fn one(&mut self, kind: &str, body: Vec<u8>, expect: u16, bound: u64) {
        // Let the allocator give back what the last kind freed before the baseline is taken.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let probe = PeakRss::start(self.pid);
        let head = post_head("/v1/logpush/http_requests", TOKEN, Some(body.len() as u64), &[]);
        let a = raw_request(&self.addr, &head, &body).await;
        let growth = probe.growth();
        eprintln!(
            "{kind}: {} body -> {} ; peak RSS {} (baseline {}, +{}); bound {} (reset: {})",
            mib(body.len() as u64),
            a.status,
            mib(probe.peak()),
            mib(probe.baseline),
            mib(growth),
            mib(bound),
            probe.reset
        );
        assert_eq!(a.status, expect, "{kind}: {}", a.text);
        assert!(growth <= bound, "{kind}: peak RSS grew by {} over {}", mib(growth), mib(bound));
        self.good_batch(kind).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_body_costs_what_its_limits_allow() {
    gatelog_e2e::gatelog_bin();
    let ch = TestClickHouse::start().await.expect("managed clickhouse");
    let data = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("gatelog.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let spec = ServeSpec {
        data_dir: data.path().join("gatelog"),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: ch.database().to_owned(),
        token: TOKEN.to_owned(),
        config: Some(config),
        release: false,
    };
    let mut server = Serve::start(&spec).await;
    let mut bench = Bench {
        addr: format!("127.0.0.1:{}", spec.port),
        pid: server.pid().expect("pid"),
        lines: http_requests_sample(),
        next: 0,
    };
    bench.good_batch("start-up").await;
    let one_request = MAX_BODY + MAX_BATCH + MARGIN;

    // Newlines: counted, nothing held (400: no records).
    bench.one("gzip, 8 MiB of newlines", gzip(&vec![b'\n'; 8 << 20]), 400, one_request).await;
    bench.one("plain, 4 MiB of newlines", vec![b'\n'; 4 << 20], 400, one_request).await;
    bench.one("plain, 16 MiB of CRLF and spaces", repeat_line(b"  \t \r\n", MAX_BODY), 400, one_request).await;
    // Gzip bombs of newlines: 413 at max_decompressed_bytes (64 MiB), one member or many.
    bench.one("gzip bomb, one member of 1 GiB newlines", gzip_repeated(b"\n", 1 << 30), 413, one_request).await;
    bench.one("gzip bomb, 64 members of 16 MiB newlines", gzip_members(64, 16 * MIB), 413, one_request).await;
    // Dead letters: at most max_batch_bytes of them (413 past it), plain or gzip.
    bench.one("plain, 16 MiB of 2-byte bad lines", repeat_line(b"x\n", MAX_BODY), 413, one_request).await;
    let bad = gzip_repeated(b"{}\n", 60 * MIB);
    bench.one("gzip, 60 MiB of empty objects", bad, 413, one_request).await;
    let long_bad = gzip_repeated(&[b"y".repeat(70_000), b"\n".to_vec()].concat(), 60 * MIB);
    bench.one("gzip, 60 MiB of over-long lines", long_bad, 413, one_request).await;

    // Sixteen connections each holding an unfinished 15 MiB body: together they may hold
    // max_buffered_bytes; the rest get 503 with Retry-After, and the stalled ones 408 once
    // their bodies stop for body_read_timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let probe = PeakRss::start(bench.pid);
    let mut holders = Vec::new();
    for _ in 0..16 {
        let addr = bench.addr.clone();
        holders.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
            let (mut read, mut write) = stream.into_split();
            let head = post_head("/v1/logpush/http_requests", TOKEN, Some(15 * MIB), &[]);
            let writer = tokio::spawn(async move {
                let _ = write.write_all(head.as_bytes()).await;
                let chunk = vec![b'{'; 1 << 20];
                for _ in 0..12 {
                    if write.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                // Hold the connection open, the body unfinished.
                tokio::time::sleep(Duration::from_secs(60)).await;
                write
            });
            let answer = read_to_end(&mut read, Duration::from_secs(60)).await;
            writer.abort();
            answer
        }));
    }
    let mut statuses = Vec::new();
    for h in holders {
        statuses.push(h.await.expect("holder").status);
    }
    statuses.sort_unstable();
    let growth = probe.growth();
    eprintln!(
        "16 connections x 12 of 15 MiB unfinished: answers {statuses:?}; peak RSS {} (baseline {}, +{}); bound {}",
        mib(probe.peak()),
        mib(probe.baseline),
        mib(growth),
        mib(MAX_BUFFERED + MARGIN)
    );
    assert!(statuses.iter().all(|s| [408, 503].contains(s)), "{statuses:?}");
    assert!(statuses.contains(&503), "past max_buffered_bytes the rest are refused: {statuses:?}");
    assert!(growth <= MAX_BUFFERED + MARGIN, "peak RSS grew by {}", mib(growth));
    bench.good_batch("unfinished bodies").await;

    let metrics = http_client()
        .get(format!("{}/metrics", spec.base_url()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let peak = gatelog_e2e::metric(&metrics, "gatelog_receiver_buffered_bytes_peak", &[]).expect("peak gauge");
    eprintln!("gatelog_receiver_buffered_bytes_peak {}", mib(peak as u64));
    assert!(peak as u64 <= MAX_BUFFERED, "the budget held {peak} bytes");
    assert_eq!(gatelog_e2e::metric(&metrics, "gatelog_receiver_buffered_bytes", &[]), Some(0.0), "all given back");
    assert!(server.is_running(), "{}", server.log_tail(40));
    server.terminate(Duration::from_secs(30)).await;
}
