//! Retention through the real binary, ClickHouse 18.16 and the index: decisions of a year
//! ago and of the last hour are stored and indexed by a `gatelog serve` without retention;
//! restarted with `retention = "60days"`, it drops the old month partition in ClickHouse
//! (decisions, raw records, dead letters; `ingest_batches` keeps its rows) and deletes the
//! old day index, and search no longer finds them, while the recent decisions stay in both.

use gatelog_e2e::{Serve, ServeSpec, count, free_port, http_client, wait_for_sinks};
use gatelog_store::testing::TestClickHouse;
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "retention-test-token-0123456789";
const DAY_MS: i64 = 86_400_000;

#[allow(clippy::disallowed_methods)] // the test's own reference point, not code under test
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms fit")
}

/// `(YYYY-MM-DD, RFC 3339 at noon)` of the day holding `ms` (civil calendar, UTC).
fn day_of(ms: i64) -> (String, String) {
    let z = ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (format!("{y:04}{m:02}{d:02}"), format!("{y:04}-{m:02}-{d:02}T12:00:00.000Z"))
}

async fn search_count(base: &str, q: &str) -> usize {
    let url =
        reqwest::Url::parse_with_params(&format!("{base}/v1/search"), [("q", q), ("limit", "1000")]).expect("url");
    let text = http_client()
        .get(url)
        .bearer_auth(gatelog_e2e::read_token(TOKEN))
        .send()
        .await
        .expect("search")
        .text()
        .await
        .expect("body");
    let page: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    page["hits"].as_array().unwrap_or_else(|| panic!("no hits: {text}")).len()
}

/// Waits (bounded) until `done` holds; panics naming `what` with the server's log otherwise.
async fn eventually(server: &Serve, what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what} did not happen within 60 s:\n{}", server.log_tail(40));
}

fn has_day(data: &Path, ymd: &str) -> bool {
    data.join("index").join(format!("decisions-{ymd}")).is_dir()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_partition_and_day_index_go_and_recent_ones_stay() {
    let ch = TestClickHouse::start().await.expect("clickhouse");
    let db = ch.database().to_owned();
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().join("gatelog");
    let spec = ServeSpec {
        data_dir: data_dir.clone(),
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
    let (old_day, old_time) = day_of(now - 400 * DAY_MS);
    let (new_day, new_time) = day_of(now - DAY_MS);
    let mut body = String::new();
    for i in 0..5 {
        for (prefix, time) in [("old", &old_time), ("new", &new_time)] {
            body.push_str(&format!(
                "{{\"event_id\":\"{prefix}-{i}\",\"time\":\"{time}\",\"decision\":\"deny\",\"principal\":\"{prefix}@example.com\"}}\n"
            ));
        }
    }
    let r = http_client()
        .post(format!("{base}/v1/decisions"))
        .bearer_auth(TOKEN)
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap_or_default());
    wait_for_sinks(&base, Duration::from_secs(60)).await;
    let decisions =
        |prefix: &str| format!("SELECT count() FROM {db}.decisions WHERE principal = '{prefix}@example.com'");
    // Bodies are kept by the month they were received in (both were received now).
    let bodies = format!("SELECT count() FROM {db}.raw_batches WHERE dataset != 'gatelog'");
    let bodies_before = count(&ch.url(), &bodies);
    assert!(bodies_before > 0, "the bodies are stored");
    for prefix in ["old", "new"] {
        assert_eq!(count(&ch.url(), &decisions(prefix)), 5, "{prefix}");
        assert_eq!(search_count(&base, &format!("principal:{prefix}@example.com")).await, 5, "{prefix}");
    }
    assert!(has_day(&data_dir, &old_day) && has_day(&data_dir, &new_day));
    let batches = count(&ch.url(), &format!("SELECT count() FROM {db}.ingest_batches WHERE dataset != 'gatelog'"));
    server.terminate(Duration::from_secs(30)).await;

    // The same data dir and database, now with a retention of 60 days.
    let config = data.path().join("gatelog.toml");
    std::fs::write(&config, "retention = \"60days\"\n").expect("config");
    let spec = ServeSpec { config: Some(config), ..spec };
    let mut server = Serve::start(&spec).await;
    let url = ch.url();
    eventually(&server, "the expired month's decisions dropped", async || count(&url, &decisions("old")) == 0).await;
    eventually(&server, "the expired day index deleted", async || !has_day(&data_dir, &old_day)).await;
    assert_eq!(count(&url, &bodies), bodies_before, "bodies received this month stay");
    assert_eq!(count(&url, &decisions("new")), 5);
    assert!(has_day(&data_dir, &new_day));
    assert_eq!(search_count(&base, "principal:old@example.com").await, 0);
    assert_eq!(search_count(&base, "principal:new@example.com").await, 5);
    assert_eq!(
        count(&url, &format!("SELECT count() FROM {db}.ingest_batches WHERE dataset != 'gatelog'")),
        batches,
        "the ledger of arrivals is kept"
    );
    server.terminate(Duration::from_secs(30)).await;
}
