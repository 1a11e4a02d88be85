//! Event times against the real `gatelog serve` with its default window (10 years back, one
//! day ahead of `received_at`) and `max_days_per_batch` (31): years 0000, 1900, 1969, 9999,
//! a negative epoch and two days ahead are dead letters naming the time, on every route;
//! and one body spanning 1,600 months fans out into at most 31 days: ClickHouse partitions
//! and index day folders are counted, and the time the sinks take to catch up is printed
//! (it was 1,601 partitions and 97 s).

use gatelog_e2e::{Serve, ServeSpec, count, free_port, gzip, http_client, query, wait_for_sinks};
use gatelog_store::testing::TestClickHouse;
use serde_json::Value;
use std::time::{Duration, Instant};

const TOKEN: &str = "time-window-test-token-0123456789";
const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::UNIX_EPOCH.elapsed().expect("clock").as_millis()).expect("ms")
}

/// An `http_requests` line with RayID `<prefix><n>` at `ts` (JSON text).
fn line(prefix: &str, n: usize, ts: &str) -> String {
    format!(
        r#"{{"RayID":"{prefix}{n:012x}","EdgeStartTimestamp":{ts},"ClientRequestHost":"bi.example.com","ClientRequestURI":"/d/{n}","EdgeResponseStatus":200}}"#
    ) + "\n"
}

async fn post(base: &str, route: &str, body: Vec<u8>) -> (u16, Value) {
    let response = http_client()
        .post(format!("{base}{route}"))
        .bearer_auth(TOKEN)
        .body(body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.text().await.expect("text")).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_out_of_the_window_are_dead_letters_and_a_batch_fans_out_into_few_days() {
    gatelog_e2e::gatelog_bin();
    let ch = TestClickHouse::start().await.expect("managed clickhouse");
    let db = ch.database().to_owned();
    let data = tempfile::tempdir().expect("tempdir");
    let spec = ServeSpec {
        data_dir: data.path().join("gatelog"),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: db.clone(),
        token: TOKEN.to_owned(),
        config: None,
        release: false,
    };
    let base = spec.base_url();
    let mut server = Serve::start(&spec).await;
    let now = now_ms();

    // Out of the window, on the Logpush route, between two good lines.
    let far = [
        "\"0000-01-01T00:00:00Z\"",
        "\"1900-01-01T00:00:00Z\"",
        "\"1969-12-31T23:59:59Z\"",
        "\"9999-12-31T23:59:59Z\"",
        "-99999999999999",
        "0",
        &(now + 2 * DAY_MS).to_string(),
    ];
    let mut body = line("win0", 0, &now.to_string());
    for (i, ts) in far.iter().enumerate() {
        body.push_str(&line("win0", i + 1, ts));
    }
    body.push_str(&line("win0", 99, &(now - 9 * 365 * DAY_MS).to_string()));
    let (status, answer) = post(&base, "/v1/logpush/http_requests", gzip(body.as_bytes())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["decisions"].as_u64(), answer["dead_letters"].as_u64()), (Some(2), Some(7)), "{answer}");

    // The same on the Tail and decisions routes.
    let tail = r#"[{"scriptName":"w","outcome":"ok","eventTimestamp":253402300799000,"event":{"request":{"url":"https://h/","method":"GET"}},"logs":[],"exceptions":[]}]"#;
    let (status, answer) = post(&base, "/v1/tail", format!("{tail}\n").into_bytes()).await;
    assert_eq!(status, 400, "a Tail delivery in year 9999 alone: {answer}");
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("accepted window"), "{answer}");
    let decision = r#"{"event_id":"win-d-1","time":"1900-01-01T00:00:00Z","decision":"deny"}"#;
    let (status, answer) = post(&base, "/v1/decisions", format!("{decision}\n").into_bytes()).await;
    assert_eq!(status, 400, "a proxy decision from 1900 alone: {answer}");
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("1900-01-01"), "{answer}");
    wait_for_sinks(&base, Duration::from_secs(120)).await;
    let reasons =
        query(&ch.url(), &format!("SELECT line_no, error FROM {db}.dead_letters ORDER BY dataset, line_no FORMAT TSV"));
    eprintln!("dead letters:\n{reasons}");
    assert_eq!(reasons.lines().count(), 9, "{reasons}");
    for expected in [
        "1900-01-01T00:00:00.000Z is before",
        "9999-12-31T23:59:59.000Z is after",
        "1969-12-31T23:59:59.000Z is before",
    ] {
        assert!(reasons.contains(expected), "{expected}: {reasons}");
    }
    let stored = query(
        &ch.url(),
        &format!("SELECT toYear(min(time)), toYear(max(time)), count() FROM {db}.decisions FORMAT TSV"),
    );
    eprintln!("decisions stored: min year, max year, count: {stored}");
    assert!(stored.ends_with("\t2"), "only the two good lines: {stored}");

    // 1,600 months in one body: at most 31 days (the busiest; here the latest) are kept.
    let mut body = String::new();
    for k in 0..1600 {
        body.push_str(&line("fan0", k, &(now - i64::try_from(k).expect("k") * 30 * DAY_MS).to_string()));
    }
    let started = Instant::now();
    let (status, answer) = post(&base, "/v1/logpush/http_requests", gzip(body.as_bytes())).await;
    let answered = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["decisions"].as_u64(), answer["dead_letters"].as_u64()), (Some(31), Some(1569)), "{answer}");
    wait_for_sinks(&base, Duration::from_secs(300)).await;
    let caught_up = started.elapsed();
    let months = count(
        &ch.url(),
        &format!("SELECT uniqExact(toYYYYMM(time)) FROM {db}.decisions WHERE startsWith(ray_id, 'fan0')"),
    );
    let partitions = count(
        &ch.url(),
        &format!(
            "SELECT uniqExact(partition) FROM system.parts WHERE database = '{db}' AND table = 'decisions' AND active"
        ),
    );
    let index = data.path().join("gatelog/index");
    let days: Vec<String> = std::fs::read_dir(&index)
        .expect("index dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("decisions-"))
        .collect();
    eprintln!(
        "1600 months in one body: 200 after {:.2} s, sinks caught up after {:.2} s; its decisions span {months} months; \
         {partitions} active decisions partitions and {} index day folders in all",
        answered.as_secs_f64(),
        caught_up.as_secs_f64(),
        days.len()
    );
    assert!(months <= 31, "{months} months");
    assert!(partitions <= 31 + 2, "{partitions} partitions");
    assert!(days.len() <= 31 + 2, "{} index days: {days:?}", days.len());
    let why =
        query(&ch.url(), &format!("SELECT error FROM {db}.dead_letters WHERE line LIKE '%fan0%' LIMIT 1 FORMAT TSV"));
    assert!(why.contains("busiest days") || why.contains("accepted window"), "{why}");
    server.terminate(Duration::from_secs(30)).await;
}
