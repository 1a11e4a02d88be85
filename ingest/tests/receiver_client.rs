//! [`gatelog_ingest::http::client::Client`] against the receiver on a real socket: Logpush
//! uploads (gzipped on the way), the validation probe, Tail deliveries, refusals, and a
//! retry after `Retry-After`.

mod receiver_support;

use gatelog_ingest::http::ReceiverConfig;
use gatelog_ingest::http::client::{Client, ClientError};
use receiver_support::*;
use std::time::{Duration, Instant};

async fn serve(h: &Harness) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let app = h.router();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_what_logpush_and_a_tail_worker_send() {
    let h = Harness::new();
    let (base, server) = serve(&h).await;
    let client = Client::new(&base, TOKEN).unwrap();

    let lines = sample_lines("http_requests.ndjson", 0, 10);
    let ack = client.post_logpush("http_requests", &lines).await.unwrap();
    assert_eq!((ack.lines, ack.decisions, ack.dead_letters), (10, 10, 0), "{ack:?}");
    assert!(ack.batch_id.is_some() && ack.spool_seq == Some(1), "{ack:?}");

    // The same body again: the same batch id (the store will skip it).
    let again = client.post_logpush("http_requests", &gzip(&lines)).await.unwrap();
    assert_eq!(again.batch_id, ack.batch_id);

    let probe = client.post_logpush("http_requests", &sample("validation_probe.test.txt.gz")).await.unwrap();
    assert_eq!((probe.probes, probe.batch_id, probe.spool_seq), (1, None, None), "a probe is answered, not stored");

    let delivery = sample_lines("tail.ndjson", 0, 1);
    let tail = client.post_tail(&delivery).await.unwrap();
    assert_eq!(tail.lines, 1);
    assert!(tail.decisions >= 1, "{tail:?}");
    assert_eq!(h.spooled().await.len(), 3, "two uploads and one delivery, no probe");

    let wrong = Client::new(&base, "not-the-token-at-all").unwrap();
    match wrong.post_logpush("http_requests", &lines).await {
        Err(ClientError::Refused { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }
    match client.post_logpush("no_such_dataset", &lines).await {
        Err(ClientError::Refused { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    assert_eq!(
        client.url("/v1/search", &[("q", "decision:deny AND principal:\"a@b\"")]),
        format!("{base}/v1/search?q=decision%3Adeny+AND+principal%3A%22a%40b%22")
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_is_retried_after_retry_after_then_given_up() {
    let config = ReceiverConfig { max_lag_records: 1, retry_after: Duration::from_secs(1), ..config() };
    let h = Harness::with(config, test_spool_options());
    h.spool.register_consumer("slow", 0).unwrap();
    let (base, server) = serve(&h).await;
    let mut client = Client::new(&base, TOKEN).unwrap();
    for skip in 0..2 {
        client.post_logpush("http_requests", &sample_lines("http_requests.ndjson", skip, 1)).await.unwrap();
    }

    // Lagging by 2 > 1: 503 with Retry-After 1. Given 1.5 s, the client retries once and gives up.
    client.retry_for = Duration::from_millis(1500);
    let started = Instant::now();
    match client.post_logpush("http_requests", &sample_lines("http_requests.ndjson", 2, 1)).await {
        Err(ClientError::GaveUp { last, .. }) => assert!(last.starts_with("503"), "{last}"),
        other => panic!("expected to give up, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After");

    // The consumer catches up while the client waits: the retry is accepted.
    client.retry_for = Duration::from_secs(30);
    let spool = h.spool.clone();
    let catch_up = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        spool.ack("slow", 2).unwrap();
    });
    let ack = client.post_logpush("http_requests", &sample_lines("http_requests.ndjson", 2, 1)).await.unwrap();
    assert_eq!(ack.spool_seq, Some(3));
    catch_up.await.unwrap();
    server.abort();
}
