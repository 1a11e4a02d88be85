//! The receiver on a real socket with a real HTTP client and an fsyncing spool, and the
//! `/metrics` exposition after known traffic.

mod receiver_support;

use axum::http::{Request, StatusCode};
use gatelog_edge::{MetricsCollector, TextWriter};
use gatelog_spool::SpoolOptions;
use receiver_support::*;
use std::collections::BTreeMap;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_over_a_socket_are_each_spooled_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let h = Harness::with(config(), SpoolOptions::default()); // fsync on
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.router();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    let tasks = 8;
    let per_task = 5;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let client = client.clone();
        let url = format!("http://{addr}/v1/logpush/http_requests");
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..per_task {
                // Distinct bodies: a different slice of the sample each time, some gzipped.
                let body = sample_lines("http_requests.ndjson", t * per_task + i, 3);
                let body = if i % 2 == 0 { gzip(&body) } else { body };
                let response = client.post(&url).bearer_auth(TOKEN).body(body).send().await.unwrap();
                let status = response.status();
                let json: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
                assert!(status.is_success(), "{status}: {json}");
                ids.push((json["batch_id"].as_str().unwrap().to_owned(), json["spool_seq"].as_u64().unwrap()));
            }
            ids
        }));
    }
    let mut answered = BTreeMap::new();
    for handle in handles {
        for (id, seq) in handle.await.unwrap() {
            assert!(answered.insert(id, seq).is_none(), "two bodies got one batch id");
        }
    }
    assert_eq!(answered.len(), tasks * per_task);

    let spooled = h.spooled().await;
    assert_eq!(spooled.len(), tasks * per_task, "every batch once");
    for (seq, batch) in &spooled {
        assert_eq!(answered.get(&batch.batch_id), Some(seq), "the answered seq holds the answered batch");
    }
    let health = client.get(format!("http://{addr}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    server.abort();
}

#[derive(Debug)]
struct SinkMetrics;

impl MetricsCollector for SinkMetrics {
    fn collect(&self, out: &mut TextWriter) {
        out.family("gatelog_written_batches_total", "counter", "Batches written to ClickHouse.");
        out.sample("gatelog_written_batches_total", &[("sink", "clickhouse")], 42);
    }
}

fn value(text: &str, series: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' '))).map(str::to_owned)
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let h = Harness::new();
    h.spool.register_consumer("clickhouse", 0).unwrap();
    h.state.metrics().register_collector(Arc::new(SinkMetrics));

    let mut body = sample_lines("http_requests.ndjson", 0, 4);
    body.extend_from_slice(b"garbage\n");
    assert_eq!(h.post("/v1/logpush/http_requests", body).await.status, StatusCode::OK);
    assert_eq!(
        h.post("/v1/logpush/http_requests", sample("validation_probe.test.txt.gz")).await.status,
        StatusCode::OK
    );
    assert_eq!(h.post("/v1/decisions", "{\"event_id\":\"d1\"}\n{\"event_id\":\"d2\"}\n").await.status, StatusCode::OK);
    let tail_line = sample_lines("tail.ndjson", 0, 1);
    assert_eq!(h.post("/v1/tail", tail_line).await.status, StatusCode::OK);
    let refused = h.request(Request::post("/v1/tail"), b"[]".to_vec()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.post("/v1/logpush/nope", "x").await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.post("/v1/decisions", "").await.status, StatusCode::BAD_REQUEST);

    let text = h.get("/metrics").await.text;
    let expect = [
        ("gatelog_received_batches_total{route=\"logpush\"}", "2"),
        ("gatelog_received_batches_total{route=\"tail\"}", "1"),
        ("gatelog_received_batches_total{route=\"decisions\"}", "1"),
        ("gatelog_received_lines_total{dataset=\"http_requests\"}", "6"),
        ("gatelog_received_lines_total{dataset=\"proxy\"}", "2"),
        ("gatelog_received_lines_total{dataset=\"tail\"}", "1"),
        ("gatelog_received_lines_total{dataset=\"gateway_http\"}", "0"),
        ("gatelog_spooled_batches_total{dataset=\"http_requests\"}", "1"),
        ("gatelog_spooled_batches_total{dataset=\"proxy\"}", "1"),
        ("gatelog_spooled_batches_total{dataset=\"tail\"}", "1"),
        ("gatelog_dead_letters_total{dataset=\"http_requests\"}", "1"),
        ("gatelog_dead_letters_total{dataset=\"proxy\"}", "0"),
        ("gatelog_rejected_requests_total{code=\"unauthorized\"}", "1"),
        ("gatelog_rejected_requests_total{code=\"not_found\"}", "1"),
        ("gatelog_rejected_requests_total{code=\"bad_request\"}", "1"),
        ("gatelog_rejected_requests_total{code=\"overloaded\"}", "0"),
        ("gatelog_spool_last_seq", "3"),
        ("gatelog_sink_lag_records{sink=\"clickhouse\"}", "3"),
        ("gatelog_spool_appends_total", "3"),
        ("gatelog_spool_fsync_seconds_bucket{le=\"+Inf\"}", "0"),
        ("gatelog_written_batches_total{sink=\"clickhouse\"}", "42"),
    ];
    for (series, want) in expect {
        assert_eq!(value(&text, series).as_deref(), Some(want), "{series} in\n{text}");
    }
    let bytes: u64 = value(&text, "gatelog_spool_bytes").unwrap().parse().unwrap();
    assert!(bytes > 0);
    assert!(text.contains("# TYPE gatelog_spool_fsync_seconds histogram\n"));
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("gatelog_"), "unexpected series {line}");
    }
}

/// `gatelog_receiver_buffered_bytes` (or its `_peak`) from `/metrics`.
async fn buffered(client: &reqwest::Client, addr: std::net::SocketAddr, series: &str) -> u64 {
    let response = client.get(format!("http://{addr}/metrics")).send().await.expect("/metrics answers");
    let text = response.text().await.expect("/metrics has a body");
    value(&text, series).expect("the series is exported").parse().expect("the value is a number")
}

/// Bodies are charged to the memory budget by what they sent, not by the `Content-Length`
/// they announced: eight connections announcing four times the budget and sending a few
/// bytes leave room for a normal sender; once they send their bodies for real, the budget
/// refuses (503) what does not fit and never holds more than its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_lengths_do_not_fill_the_budget_sent_bytes_do() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = gatelog_ingest::http::ReceiverConfig {
        max_body_bytes: bytesize::ByteSize::mib(1),
        max_batch_bytes: bytesize::ByteSize::mib(1),
        max_buffered_bytes: bytesize::ByteSize::mib(2),
        ..config()
    };
    let h = Harness::with(config, test_spool_options());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.router();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();

    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut holders = Vec::new();
    for _ in 0..8 {
        let mut go = go_rx.clone();
        holders.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut read, mut write) = stream.into_split();
            let head = format!(
                "POST /v1/logpush/http_requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{{",
                1 << 20
            );
            write.write_all(head.as_bytes()).await.unwrap();
            let writer = tokio::spawn(async move {
                let _ = go.wait_for(|go| *go).await;
                let chunk = vec![b'x'; 64 << 10];
                for _ in 0..15 {
                    if write.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                // Hold the connection open, the body unfinished.
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            });
            let mut answer = Vec::new();
            let _ = read.read_to_end(&mut answer).await;
            writer.abort();
            String::from_utf8_lossy(&answer).split_whitespace().nth(1).unwrap_or("0").to_owned()
        }));
    }
    // Every holder's first byte is in: each holds its first buffer (64 KiB), not 1 MiB.
    let started = std::time::Instant::now();
    while buffered(&client, addr, "gatelog_receiver_buffered_bytes").await < 8 * (64 << 10) {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the holders never started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(buffered(&client, addr, "gatelog_receiver_buffered_bytes").await, 8 * (64 << 10));
    let body = gzip(&sample_lines("http_requests.ndjson", 0, 5));
    let response =
        client.post(format!("http://{addr}/v1/logpush/http_requests")).bearer_auth(TOKEN).body(body).send().await;
    assert_eq!(response.unwrap().status(), reqwest::StatusCode::OK, "a normal sender beside the announced 8 MiB");

    // The holders send 960 KiB each: together more than the budget, which refuses the rest.
    let _ = go_tx.send(true);
    let started = std::time::Instant::now();
    while buffered(&client, addr, "gatelog_receiver_buffer_refusals_total").await == 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the budget never refused a body");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let peak = buffered(&client, addr, "gatelog_receiver_buffered_bytes_peak").await;
    assert!(peak > 8 * (64 << 10) && peak <= 2 << 20, "peak {peak}");
    // A holder whose body fits waits with it unfinished; the first to end was refused.
    let started = std::time::Instant::now();
    let first = loop {
        if let Some(i) = holders.iter().position(tokio::task::JoinHandle::is_finished) {
            break holders.swap_remove(i);
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "no refused body was answered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(first.await.unwrap(), "503", "a body past the budget");
    for holder in holders {
        holder.abort();
    }
    server.abort();
}
