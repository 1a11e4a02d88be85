//! An event's exact original line (issue 20): `gatelog raw EVENT_ID` and `GET
//! /v1/raw/{event_id}` give every event's line back byte for byte from its batch's stored
//! body (`raw_batches`), for a gzip body, a plain body (with CRLF lines) and a backfilled
//! file; a stored body that was changed is detected (CLI exit 9, route 500 `integrity`, no
//! internals in the answer), while other batches' lines are still given.

use gatelog_e2e::{
    Serve, ServeSpec, count, describe, free_port, gatelog, gzip, http_client, http_requests_sample, query, read_token,
    unique_http_requests, wait_for_sinks,
};
use gatelog_store::testing::TestClickHouse;
use std::collections::BTreeMap;
use std::time::Duration;

const TOKEN: &str = "raw-lines-test-token-0001";

/// `gatelog raw` of `event_id` against the test's database.
fn cli_raw(url: &str, db: &str, data: &std::path::Path, event_id: &str) -> std::process::Output {
    let data = data.to_str().expect("utf-8 path");
    gatelog(&["raw", "--clickhouse-url", url, "--clickhouse-database", db, "--data-dir", data, event_id])
}

/// The RayID of a generated line.
fn ray_of(line: &[u8]) -> String {
    let text = std::str::from_utf8(line).expect("utf-8");
    let at = text.find("\"RayID\":\"").expect("RayID") + 9;
    text[at..at + 16].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_events_line_comes_back_byte_for_byte_and_a_changed_body_is_detected() {
    let mut ch = TestClickHouse::start().await.expect("managed clickhouse");
    let (url, db) = (ch.url(), ch.database().to_owned());
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let sample = http_requests_sample();

    // What each RayID's line is, as sent: a backfilled file, a gzip body, a plain CRLF body.
    let backfilled = unique_http_requests(&sample, 0..300, "c0a1");
    let gzipped = unique_http_requests(&sample, 300..500, "c0a2");
    let plain: Vec<u8> = unique_http_requests(&sample, 500..650, "c0a3")
        .split_inclusive(|b| *b == b'\n')
        .enumerate()
        .flat_map(|(i, l)| if i % 3 == 0 { [&l[..l.len() - 1], b"\r\n"].concat() } else { l.to_vec() })
        .collect();
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for body in [&backfilled, &gzipped, &plain] {
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            expected.insert(ray_of(line), line.to_vec());
        }
    }

    let file = dir.path().join("http_requests_raw.ndjson");
    std::fs::write(&file, &backfilled).expect("file");
    let d = data.to_str().expect("utf-8 path");
    let out = gatelog(&[
        "ingest",
        "--no-progress",
        "--clickhouse-url",
        &url,
        "--clickhouse-database",
        &db,
        "--data-dir",
        d,
        file.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", describe(&out));

    let spec = ServeSpec {
        data_dir: data.clone(),
        port: free_port(),
        clickhouse_url: url.clone(),
        database: db.clone(),
        token: TOKEN.to_owned(),
        config: None,
        release: false,
    };
    let mut serve = Serve::start(&spec).await;
    let base = spec.base_url();
    let client = http_client();
    for body in [gzip(&gzipped), plain.clone()] {
        let r = client
            .post(format!("{base}/v1/logpush/http_requests"))
            .bearer_auth(TOKEN)
            .body(body)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap_or_default());
    }
    wait_for_sinks(&base, Duration::from_secs(120)).await;
    let bodies = count(&url, &format!("SELECT count() FROM {db}.raw_batches WHERE dataset = 'http_requests'"));
    assert_eq!(bodies, 3, "one stored body per batch: the backfilled file's and the two posted");
    assert_eq!(count(&url, &format!("SELECT count() FROM {db}.raw_records")), 0, "no line stored per row");

    // Every event through the route (a viewer), byte for byte.
    let events = query(&url, &format!("SELECT event_id, ray_id FROM {db}.decisions FINAL FORMAT TSV"));
    let events: Vec<(String, String)> = events
        .lines()
        .map(|l| l.split_once('\t').expect("two columns"))
        .map(|(e, r)| (e.to_owned(), r.to_owned()))
        .collect();
    assert_eq!(events.len(), expected.len(), "every line sent is a decision");
    let viewer = read_token(TOKEN);
    let get = async |event_id: &str| {
        let r = client
            .get(format!("{base}/v1/raw/{event_id}"))
            .bearer_auth(&viewer)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        (status, r.bytes().await.expect("body").to_vec())
    };
    for (event_id, ray) in &events {
        let (status, body) = get(event_id).await;
        assert_eq!(status, 200, "{event_id}: {}", String::from_utf8_lossy(&body));
        assert!(body == expected[ray], "{event_id}: the route's line differs from the line sent");
    }
    assert_eq!(get("no-such-event").await.0, 404);

    // The CLI, for a spread of events of each batch: the line and a newline, nothing else.
    for (event_id, ray) in events.iter().step_by(37) {
        let out = cli_raw(&url, &db, &data, event_id);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(out.stdout == [&expected[ray][..], b"\n"].concat(), "{event_id}: the CLI's line differs");
    }
    assert_eq!(cli_raw(&url, &db, &data, "no-such-event").status.code(), Some(3));

    // Change the gzip body's stored bytes (another valid gzip): detected, never given.
    let (changed_event, _) = events.iter().find(|(_, r)| r.starts_with("c0a2")).expect("a posted event");
    let batch =
        query(&url, &format!("SELECT batch_id FROM {db}.decisions WHERE event_id = '{changed_event}' FORMAT TSV"));
    let other = gzip(b"{\"RayID\":\"0000000000000000\"}\n");
    query(
        &url,
        &format!(
            "ALTER TABLE {db}.raw_batches UPDATE body = unhex('{}') WHERE batch_id = '{}'",
            hex::encode(&other),
            batch.trim()
        ),
    );
    for _ in 0..600 {
        let pending =
            count(&url, &format!("SELECT count() FROM system.mutations WHERE database = '{db}' AND is_done = 0"));
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = get(changed_event).await;
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error");
    assert_eq!(answer["error"]["code"], "integrity", "{answer}");
    assert!(!answer.to_string().contains(batch.trim()), "no internals in the answer: {answer}");
    let out = cli_raw(&url, &db, &data, changed_event);
    assert_eq!(out.status.code(), Some(9), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("integrity"), "{}", describe(&out));
    let (backfilled_event, ray) = events.iter().find(|(_, r)| r.starts_with("c0a1")).expect("a backfilled event");
    assert_eq!(get(backfilled_event).await, (200, expected[ray].clone()), "other batches are still given");

    serve.terminate(Duration::from_secs(30)).await;
    ch.stop().await.expect("stop clickhouse");
}
