//! The receiver's routes through `oneshot`, against a real spool: what each status means and
//! what ends up spooled.

mod receiver_support;

use axum::http::{Request, StatusCode};
use gatelog_ingest::http::ReceiverConfig;
use gatelog_model::{EventId, Source, sha256_hex};
use receiver_support::*;

#[tokio::test]
async fn logpush_plain_ndjson_is_spooled_before_the_answer() {
    let h = Harness::new();
    let body = sample("http_requests.ndjson");
    let a = h.post("/v1/logpush/http_requests", body.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.n("lines"), 200);
    assert_eq!(a.n("raw_records"), 200);
    assert_eq!(a.n("dead_letters"), 0);
    assert_eq!(a.n("spool_seq"), 1);
    let spooled = h.spooled().await;
    assert_eq!(spooled.len(), 1);
    let (seq, batch) = &spooled[0];
    assert_eq!(*seq, 1);
    assert_eq!(batch.batch_id, EventId::derive(&["batch", "http_requests", &sha256_hex(&body)]));
    assert_eq!(a.json["batch_id"], batch.batch_id.as_str());
    assert_eq!(batch.dataset, "http_requests");
    assert_eq!(batch.origin, "logpush/http_requests");
    assert_eq!(batch.received_at, NOW);
    assert_eq!(batch.sha256, sha256_hex(&body));
    assert_eq!(batch.bytes, body.len() as u64);
    assert_eq!(batch.lines, 200);
    assert_eq!(batch.decisions.len() as u64, a.n("decisions"));
    assert!(batch.decisions.iter().all(|d| d.source == Source::Logpush && d.received_at == NOW));
}

#[tokio::test]
async fn gzip_retry_gets_the_same_batch_id() {
    let h = Harness::new();
    let body = sample("http_requests_5000.ndjson.gz");
    let first = h.post("/v1/logpush/http_requests", body.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.n("lines"), 5000);
    h.clock.advance_ms(60_000);
    let retry = h.post("/v1/logpush/http_requests", body).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(first.json["batch_id"], retry.json["batch_id"]);
    assert_ne!(first.n("spool_seq"), retry.n("spool_seq"));
    let spooled = h.spooled().await;
    assert_eq!(spooled.len(), 2, "the spool keeps both; the store skips the known batch id");
    assert_eq!(spooled[0].1.batch_id, spooled[1].1.batch_id);
    assert_eq!(spooled[0].1.lines, 5000);

    // The id is of the inflated content: plain and gzip copies of one body are one batch.
    let plain = sample("http_requests.ndjson");
    let a = h.post("/v1/logpush/http_requests", plain.clone()).await;
    let b = h.post("/v1/logpush/http_requests", gzip(&plain)).await;
    assert_eq!(a.json["batch_id"], b.json["batch_id"]);
    assert_ne!(a.json["batch_id"], first.json["batch_id"]);
}

#[tokio::test]
async fn validation_probe_is_answered_and_not_stored() {
    let h = Harness::new();
    let a = h.post("/v1/logpush/http_requests", sample("validation_probe.test.txt.gz")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.n("probes"), 1);
    assert!(a.json["batch_id"].is_null());
    let a = h.post("/v1/logpush/firewall_events", "test").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.n("probes"), 1);
    assert_eq!(h.spool.last_seq(), 0, "nothing spooled");
    assert!(h.spooled().await.is_empty());
}

#[tokio::test]
async fn unknown_dataset_is_404_with_the_known_list() {
    let h = Harness::new();
    for path in ["/v1/logpush/nope", "/v1/logpush/tail", "/v1/logpush/HTTP_REQUESTS"] {
        let a = h.post(path, sample_lines("http_requests.ndjson", 0, 1)).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(a.code(), "not_found");
        assert!(a.message().contains("http_requests, firewall_events, access_requests"), "{}", a.message());
    }
    assert_eq!(h.spool.last_seq(), 0);
}

#[tokio::test]
async fn auth_bearer_custom_header_rotation_and_refusals() {
    let h = Harness::new();
    let body = sample_lines("http_requests.ndjson", 0, 2);
    let path = "/v1/logpush/http_requests";
    let ok = [
        Request::post(path).header("authorization", format!("Bearer {OTHER_TOKEN}")),
        Request::post(path).header("x-gatelog-token", TOKEN),
    ];
    for req in ok {
        let a = h.request(req, body.clone()).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }
    let refused = [
        Request::post(path),
        Request::post(path).header("authorization", "Bearer wrong-token-0123456789"),
        Request::post(path).header("authorization", TOKEN),
        Request::post(path).header("x-other-token", TOKEN),
        // Auth comes before the body: a declared 1 TB body with a bad token is still 401.
        Request::post(path).header("authorization", "Bearer nope").header("content-length", "1000000000000"),
        Request::post("/v1/tail"),
        Request::post("/v1/decisions"),
        Request::post("/v1/logpush/unknown"),
    ];
    for req in refused {
        let a = h.request(req, body.clone()).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
        assert_eq!(a.code(), "unauthorized");
        assert!(a.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    }
    assert_eq!(h.spooled().await.len(), 2);
}

#[tokio::test]
async fn no_tokens_refuses_everything_unless_unauthenticated_is_allowed() {
    let h = Harness::with(ReceiverConfig::default(), test_spool_options());
    let a = h.post("/v1/logpush/http_requests", sample_lines("http_requests.ndjson", 0, 1)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let open = ReceiverConfig { allow_unauthenticated: true, ..ReceiverConfig::default() };
    let h = Harness::with(open, test_spool_options());
    let a = h.request(Request::post("/v1/logpush/http_requests"), sample_lines("http_requests.ndjson", 0, 1)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
}

#[tokio::test]
async fn bad_lines_are_dead_letters_and_the_rest_is_kept() {
    let h = Harness::new();
    let mut body = sample_lines("http_requests.ndjson", 0, 3);
    body.extend_from_slice(b"{\"RayID\": oops\n[1,2]\n");
    let a = h.post("/v1/logpush/http_requests", body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!((a.n("lines"), a.n("raw_records"), a.n("dead_letters")), (5, 3, 2));
    let (_, batch) = h.spooled().await.remove(0);
    assert_eq!(batch.dead_letters.len(), 2);
    assert_eq!(batch.dead_letters[0].line_no, 4);
    assert!(batch.dead_letters[0].error.starts_with("line 4: "), "{}", batch.dead_letters[0].error);
    assert_eq!(batch.dead_letters[1].line, "[1,2]");
    assert_eq!(batch.dead_letters[1].origin, "logpush/http_requests");
}

#[tokio::test]
async fn a_batch_with_no_usable_line_is_spooled_and_answered_400() {
    let h = Harness::new();
    let a = h.post("/v1/logpush/http_requests", "[{\"RayID\":\"x\"}]\n").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.code(), "bad_request");
    assert_eq!(a.message(), "line 1: expected a JSON object, found an array");
    assert_eq!(a.n("dead_letters"), 1);
    let spooled = h.spooled().await;
    assert_eq!(spooled.len(), 1, "dead letters are evidence");
    assert_eq!(a.json["batch_id"], spooled[0].1.batch_id.as_str());
    assert_eq!(spooled[0].1.raw.len(), 0);
}

#[tokio::test]
async fn reject_whole_batch_stores_nothing() {
    let h = Harness::with(ReceiverConfig { reject_whole_batch: true, ..config() }, test_spool_options());
    let mut body = sample_lines("http_requests.ndjson", 0, 3);
    body.extend_from_slice(b"not json\n");
    let a = h.post("/v1/logpush/http_requests", body).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert!(a.message().starts_with("line 4: "), "{}", a.message());
    assert_eq!(h.spool.last_seq(), 0);
    let a = h.post("/v1/logpush/http_requests", sample_lines("http_requests.ndjson", 0, 3)).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn tail_deliveries_one_per_request() {
    let h = Harness::new();
    let deliveries = sample("tail.ndjson");
    let mut posted = 0;
    let mut decisions = 0;
    for line in deliveries.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let a = h.post("/v1/tail", line.to_vec()).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!((a.n("lines"), a.n("raw_records")), (1, 1));
        posted += 1;
        decisions += a.n("decisions");
    }
    assert_eq!(posted, 200);
    let spooled = h.spooled().await;
    assert_eq!(spooled.len(), 200);
    let all: Vec<_> = spooled.iter().flat_map(|(_, b)| b.decisions.iter()).collect();
    assert_eq!(all.len() as u64, decisions);
    assert!(decisions >= 145, "the sample's access_decision logs: {decisions}");
    assert!(all.iter().all(|d| d.source == Source::Tail && d.dataset == "tail"));
    assert!(spooled.iter().all(|(_, b)| b.dataset == "tail" && b.origin == "tail"));
}

#[tokio::test]
async fn decisions_from_the_proxy() {
    let h = Harness::new();
    let body = concat!(
        r#"{"event_id":"d1","time":"2025-03-04T10:00:00.000Z","decision":"deny","principal":"a@example.com","resource":"clickhouse:db.t"}"#,
        "\n",
        r#"{"event_id":"d2","time":"2025-03-04T10:00:01.000Z","decision":"allow","source":"logpush"}"#,
        "\n",
        r#"{"decision":"allow"}"#,
        "\n",
    );
    let a = h.post("/v1/decisions", body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!((a.n("lines"), a.n("decisions"), a.n("raw_records"), a.n("dead_letters")), (3, 2, 2, 1));
    let (_, batch) = h.spooled().await.remove(0);
    assert_eq!(batch.dataset, "proxy");
    assert_eq!(batch.origin, "decisions");
    assert!(batch.decisions.iter().all(|d| d.source == Source::Proxy && d.received_at == NOW));
    let first_line = body.lines().next().unwrap();
    assert_eq!(batch.decisions[0].raw_sha256, sha256_hex(first_line.as_bytes()));
    // The body is kept as received (compressed by gatelog), each decision naming its line.
    let mut kept = String::new();
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&batch.body[..]), &mut kept).unwrap();
    assert_eq!(kept, body);
    assert_eq!(batch.decision_lines, [1, 2]);
    assert!(batch.raw.is_empty(), "no line is kept twice");
    assert_eq!(batch.dead_letters[0].error, "line 3: event_id is missing or empty");
}

#[tokio::test]
async fn health_readiness_and_metrics_need_no_token() {
    let h = Harness::new();
    let a = h.get("/healthz").await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, "ok"));
    let a = h.get("/readyz").await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, "ready"));
    let a = h.get("/metrics").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert!(a.text.contains("gatelog_spool_last_seq 0\n"), "{}", a.text);
}
