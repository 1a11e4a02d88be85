//! Clients that send one byte a second against the real `gatelog serve` with its default
//! limits: 200 trickle a request head, 200 more trickle a body that announced the largest
//! `Content-Length` allowed (64 MiB). Meanwhile a normal Logpush sender posts gzip batches of
//! 1,000 records. Printed: each batch's time to its acknowledgement (p50, p99, max, and how
//! many took more than a second), what the receiver's memory budget held while the trickling
//! bodies were open, and when the trickling heads were closed. Checked: every batch gets
//! 200, the heads are closed at `server.header_read_timeout`, and the trickling bodies hold
//! in the budget what they sent, not what they announced (an announced length charged up
//! front let eight such bodies refuse every sender for as long as they kept trickling).

use gatelog_e2e::edge::post_head;
use gatelog_e2e::{Serve, ServeSpec, free_port, gzip, http_client, http_requests_sample, metric, unique_http_requests};
use gatelog_store::testing::TestClickHouse;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const TOKEN: &str = "trickle-test-token-0123456789";
const TRICKLERS: usize = 200;
/// The default `server.header_read_timeout`.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the normal sender posts: past the header timeout, so both halves are seen.
const MEASURE: Duration = Duration::from_secs(14);
/// What a close may come later than its limit on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(6);
const BATCH_LINES: usize = 1000;
/// What a trickling head sends, a byte a second.
const HEAD: &[u8] =
    b"POST /v1/logpush/http_requests HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Sends `prefix` at once (if any), then the bytes of `pattern` (cycled) one a second, until
/// the server closes the connection or `limit` passes: when the server closed it, from the
/// connect.
async fn trickle(addr: String, prefix: Vec<u8>, pattern: &'static [u8], limit: Duration) -> Option<Duration> {
    let stream = TcpStream::connect(&addr).await.expect("connect");
    let started = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        if write.write_all(&prefix).await.is_err() {
            return;
        }
        for byte in pattern.iter().cycle() {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut buf = vec![0u8; 1024];
    let closed = loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), read.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => break None,
        }
    };
    writer.abort();
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sending_a_byte_a_second_do_not_hold_up_a_logpush_batch() {
    gatelog_e2e::gatelog_bin();
    let ch = TestClickHouse::start().await.expect("managed clickhouse");
    let data = tempfile::tempdir().expect("tempdir");
    let spec = ServeSpec {
        data_dir: data.path().join("gatelog"),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: ch.database().to_owned(),
        token: TOKEN.to_owned(),
        config: None,
        release: false,
    };
    let base = spec.base_url();
    let addr = format!("127.0.0.1:{}", spec.port);
    let mut server = Serve::start(&spec).await;
    let client = http_client();
    let lines = http_requests_sample();
    let batches: Vec<Vec<u8>> =
        (0..80).map(|i| gzip(&unique_http_requests(&lines, i * BATCH_LINES..(i + 1) * BATCH_LINES, "trk0"))).collect();
    let post = |body: Vec<u8>| {
        let request = client
            .post(format!("{base}/v1/logpush/http_requests"))
            .bearer_auth(TOKEN)
            .header("Content-Encoding", "gzip")
            .body(body)
            .timeout(Duration::from_secs(60));
        async move {
            let started = Instant::now();
            let status = request.send().await.map_or(0, |r| r.status().as_u16());
            (status, started.elapsed())
        }
    };
    let (status, _) = post(batches[0].clone()).await;
    assert_eq!(status, 200, "a batch before the tricklers");

    let metrics =
        || async { client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("text") };
    let accepted = |text: &str| metric(text, "gatelog_http_connections_accepted_total", &[]).unwrap_or(0.0);
    let before = accepted(&metrics().await);
    let mut heads = JoinSet::new();
    let mut bodies = JoinSet::new();
    let max_body = 64 << 20;
    for _ in 0..TRICKLERS {
        heads.spawn(trickle(addr.clone(), Vec::new(), HEAD, Duration::from_secs(90)));
        let head = post_head("/v1/logpush/http_requests", TOKEN, Some(max_body), &[]).into_bytes();
        bodies.spawn(trickle(addr.clone(), head, b"{", MEASURE + Duration::from_secs(5)));
    }
    // Until the server has accepted every trickler.
    let started = Instant::now();
    loop {
        let now = accepted(&metrics().await) - before;
        if now >= (2 * TRICKLERS) as f64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{now} connections accepted after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut results = Vec::new();
    let mut held_max = 0.0f64;
    let measuring = Instant::now();
    for body in batches.into_iter().skip(1) {
        if measuring.elapsed() >= MEASURE {
            break;
        }
        results.push(post(body).await);
        let text = metrics().await;
        held_max = held_max.max(metric(&text, "gatelog_receiver_buffered_bytes", &[]).unwrap_or(0.0));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = metrics().await;
    let refusals = metric(&text, "gatelog_receiver_buffer_refusals_total", &[]).unwrap_or(0.0);

    let mut latencies: Vec<Duration> = results.iter().map(|(_, d)| *d).collect();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let over_a_second = latencies.iter().filter(|d| **d > Duration::from_secs(1)).count();
    let failed: Vec<u16> = results.iter().map(|(s, _)| *s).filter(|s| *s != 200).collect();
    eprintln!(
        "{TRICKLERS} heads and {TRICKLERS} bodies (Content-Length 64 MiB) at one byte a second: {} Logpush batches of \
         {BATCH_LINES} records acknowledged in p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {over_a_second} took over 1 s; \
         not 200: {failed:?}",
        results.len(),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    eprintln!(
        "receiver budget while the bodies trickled: at most {:.1} MiB held (of 512 MiB); {refusals} refusals",
        held_max / (1024.0 * 1024.0)
    );
    assert!(results.len() >= 10, "too few batches: {}", results.len());
    assert!(failed.is_empty(), "a normal sender was refused: {failed:?}");
    assert_eq!(refusals, 0.0, "trickling bodies filled the budget");

    let head_times = heads.join_all().await;
    let mut closed: Vec<Duration> = head_times.iter().flatten().copied().collect();
    closed.sort_unstable();
    let last = closed.last().copied().unwrap_or_default();
    eprintln!(
        "{TRICKLERS} trickling heads: {} closed by the server, the last after {:.2} s (header_read_timeout {} s)",
        closed.len(),
        last.as_secs_f64(),
        HEADER_READ_TIMEOUT.as_secs()
    );
    assert_eq!(closed.len(), TRICKLERS, "every trickling head is closed");
    assert!(last <= HEADER_READ_TIMEOUT + SLACK, "a trickling head held on for {last:?}");
    // The bodies are within their limits (body_read_timeout 30 s) until the test leaves.
    bodies.abort_all();
    assert!(server.is_running(), "{}", server.log_tail(40));
    server.terminate(Duration::from_secs(30)).await;
}
