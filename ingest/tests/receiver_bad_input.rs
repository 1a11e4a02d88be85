//! The bad-input list and backpressure: each case gets its documented status, the
//! spool holds what is documented, and the receiver keeps serving afterwards.

mod receiver_support;

use axum::http::{Request, StatusCode};
use bytesize::ByteSize;
use gatelog_ingest::http::ReceiverConfig;
use gatelog_spool::SpoolOptions;
use receiver_support::*;

/// A good request still works.
async fn still_serving(h: &Harness) {
    let a = h.post("/v1/logpush/http_requests", sample_lines("http_requests.ndjson", 7, 2)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(h.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn truncated_gzip_is_400_and_stores_nothing() {
    let h = Harness::new();
    let full = gzip(&sample("http_requests.ndjson"));
    let cut = &full[..full.len() / 2];
    let a = h.post("/v1/logpush/http_requests", cut.to_vec()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.code(), "bad_request");
    assert_eq!(a.message(), format!("gzip stream is truncated at byte {}", cut.len()));
    // Damage inside the stream (not only a short one) is also 400.
    let mut bad = full.clone();
    for b in &mut bad[20..60] {
        *b ^= 0x5a;
    }
    let a = h.post("/v1/logpush/http_requests", bad).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert!(a.message().starts_with("gzip stream is"), "{}", a.message());
    assert_eq!(h.spool.last_seq(), 0);
    still_serving(&h).await;
}

#[tokio::test]
async fn gzip_bomb_is_413_and_stores_nothing() {
    let config = ReceiverConfig { max_decompressed_bytes: ByteSize::mib(4), ..config() };
    let h = Harness::with(config, test_spool_options());
    // 64 gzip members of 1 MiB each (a multi-member stream inflates as one): 64 MiB.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut enc, &vec![b'{'; 1 << 20]).unwrap();
    let member = enc.finish().unwrap();
    let bomb = member.repeat(64);
    assert!(bomb.len() < 256 << 10, "a small body: {} bytes", bomb.len());
    let a = h.post("/v1/logpush/http_requests", bomb).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    assert_eq!(a.code(), "payload_too_large");
    assert!(a.message().contains("once decompressed"), "{}", a.message());
    assert_eq!(h.spool.last_seq(), 0);
    still_serving(&h).await;
}

#[tokio::test]
async fn body_over_max_body_bytes_is_413() {
    let config = ReceiverConfig { max_body_bytes: ByteSize::kib(64), ..config() };
    let h = Harness::with(config, test_spool_options());
    let a = h.post("/v1/logpush/http_requests", sample("http_requests.ndjson")).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    // Without a Content-Length the limit is enforced while reading.
    let stream = futures_body(sample("http_requests.ndjson"));
    let req = Request::post("/v1/logpush/http_requests").header("authorization", format!("Bearer {TOKEN}"));
    let response = tower::ServiceExt::oneshot(h.router(), req.body(stream).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h.spool.last_seq(), 0);
    still_serving(&h).await;
}

/// A body without a known length, in 8 KiB chunks.
fn futures_body(bytes: Vec<u8>) -> axum::body::Body {
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
        bytes.chunks(8192).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
}

#[tokio::test]
async fn invalid_utf8_lines_are_dead_letters() {
    let h = Harness::new();
    let mut body = sample_lines("http_requests.ndjson", 0, 2);
    body.extend_from_slice(b"{\"RayID\":\"\xff\xfe\"}\n");
    let a = h.post("/v1/logpush/http_requests", body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!((a.n("raw_records"), a.n("dead_letters")), (2, 1));
    let (_, batch) = h.spooled().await.remove(0);
    assert!(batch.dead_letters[0].error.contains("invalid UTF-8"), "{}", batch.dead_letters[0].error);
    // Alone, it is a batch with no usable line: spooled, answered 400.
    let a = h.post("/v1/logpush/http_requests", b"\xc3\x28 not utf-8\n".to_vec()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert!(a.message().starts_with("line 1: invalid UTF-8 at byte 0"), "{}", a.message());
    assert_eq!(h.spooled().await.len(), 2);
    still_serving(&h).await;
}

#[tokio::test]
async fn ten_megabyte_line_is_a_dead_letter_or_413_over_the_body_limit() {
    let h = Harness::new();
    let mut line = b"{\"RayID\":\"".to_vec();
    line.resize(10 << 20, b'a');
    line.extend_from_slice(b"\"}\n");
    let a = h.post("/v1/logpush/http_requests", line.clone()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert!(
        a.message().starts_with("line 1: line is 10485762 bytes, over the limit of 1048576 bytes"),
        "{}",
        a.message()
    );
    let (_, batch) = h.spooled().await.remove(0);
    assert_eq!(batch.dead_letters[0].line.len(), 1 << 20, "its first max_line_bytes are kept");
    // With good lines around it, the batch is accepted.
    let mut body = sample_lines("http_requests.ndjson", 0, 1);
    body.extend_from_slice(&line);
    let a = h.post("/v1/logpush/http_requests", body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!((a.n("raw_records"), a.n("dead_letters")), (1, 1));
    // Over max_body_bytes it is 413 and nothing is read further.
    let small = Harness::with(ReceiverConfig { max_body_bytes: ByteSize::mib(8), ..config() }, test_spool_options());
    let a = small.post("/v1/logpush/http_requests", line).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    still_serving(&h).await;
}

#[tokio::test]
async fn wrong_token_empty_body_and_a_json_array_instead_of_ndjson() {
    let h = Harness::new();
    let a = h
        .request(
            Request::post("/v1/logpush/http_requests").header("authorization", "Bearer wrong-token-0123456789"),
            sample_lines("http_requests.ndjson", 0, 1),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    for empty in [&b""[..], &gzip(b"")[..]] {
        let a = h.post("/v1/logpush/http_requests", empty.to_vec()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
        assert_eq!(a.code(), "bad_request");
    }
    let a = h.post("/v1/logpush/http_requests", "\n\n").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "blank lines only: {}", a.text);
    assert_eq!(h.spool.last_seq(), 0);
    let lines: Vec<serde_json::Value> = sample_lines("http_requests.ndjson", 0, 3)
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let array = serde_json::to_vec(&lines).unwrap();
    let a = h.post("/v1/logpush/http_requests", gzip(&array)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.message(), "line 1: expected a JSON object, found an array");
    assert_eq!(h.spool.last_seq(), 1, "the dead letter is kept as evidence");
    still_serving(&h).await;
}

#[tokio::test]
async fn full_spool_is_429_with_retry_after_and_recovers_after_an_ack() {
    let opts = SpoolOptions {
        segment_bytes: 32 << 10,
        max_bytes: 160 << 10,
        max_record_bytes: 64 << 10,
        fsync: false,
        preallocate: false,
    };
    let config = ReceiverConfig { retry_after: std::time::Duration::from_secs(7), ..config() };
    let h = Harness::with(config, opts);
    h.spool.register_consumer("clickhouse", 0).unwrap();
    let mut accepted = 0;
    let full = loop {
        let a = h.post("/v1/logpush/http_requests", sample_lines("http_requests.ndjson", accepted, 3)).await;
        if a.status != StatusCode::OK {
            break a;
        }
        accepted += 1;
        assert!(accepted < 100, "the spool never filled up");
    };
    assert_eq!(full.status, StatusCode::TOO_MANY_REQUESTS, "{}", full.text);
    assert_eq!(full.code(), "overloaded");
    assert_eq!(full.retry_after(), Some("7"));
    assert!(!full.text.contains('/'), "no paths leak: {}", full.text);
    assert_eq!(h.get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h.spooled().await.len(), accepted);

    h.spool.ack("clickhouse", h.spool.last_seq()).unwrap();
    let a = h.post("/v1/logpush/http_requests", sample_lines("http_requests.ndjson", 0, 3)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(h.get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_batch_larger_than_a_spool_record_is_413() {
    let opts = SpoolOptions { max_record_bytes: 16 << 10, max_bytes: 1 << 20, ..test_spool_options() };
    let h = Harness::with(config(), opts);
    let a = h.post("/v1/logpush/http_requests", sample("http_requests.ndjson")).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    assert_eq!(h.spool.last_seq(), 0);
}

#[tokio::test]
async fn lagging_sinks_get_503_before_the_append_and_it_resumes_by_itself() {
    let config = ReceiverConfig { max_lag_records: 2, ..config() };
    let h = Harness::with(config, test_spool_options());
    h.spool.register_consumer("clickhouse", 0).unwrap();
    h.spool.register_consumer("tantivy", 0).unwrap();
    for i in 0..3 {
        let a = h.post("/v1/decisions", format!("{{\"event_id\":\"d{i}\"}}\n")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }
    let a = h.post("/v1/decisions", "{\"event_id\":\"d9\"}\n").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    assert_eq!(a.code(), "overloaded");
    assert_eq!(a.retry_after(), Some("5"));
    assert!(a.message().contains("3 records behind"), "{}", a.message());
    assert_eq!(h.spool.last_seq(), 3, "refused before the append");
    let ready = h.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text.contains("behind"), "{}", ready.text);

    h.spool.ack("clickhouse", 3).unwrap();
    let a = h.post("/v1/decisions", "{\"event_id\":\"d9\"}\n").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "the slowest sink decides");
    h.spool.ack("tantivy", 2).unwrap();
    let a = h.post("/v1/decisions", "{\"event_id\":\"d9\"}\n").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(h.get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_failing_spool_is_503_unavailable_and_never_a_2xx() {
    let h = Harness::new();
    h.spool.clone().close().await.unwrap();
    let a = h.post("/v1/logpush/http_requests", sample_lines("http_requests.ndjson", 0, 2)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    assert_eq!(a.code(), "unavailable");
    assert_eq!(a.retry_after(), Some("5"));
    assert!(!a.text.contains("spool"), "internal details stay in the log: {}", a.text);
    let ready = h.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    // The failure is reported for retry_after, then readiness is tried again.
    h.clock.advance_ms(6_000);
    assert_eq!(h.get("/readyz").await.status, StatusCode::OK);
    assert_eq!(h.get("/healthz").await.status, StatusCode::OK);
}
