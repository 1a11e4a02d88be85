//! Deduplication without time equality, through the real binary and ClickHouse 18.16: two
//! copies of one decision (same `event_id`) arriving in separate requests, their times 1 ms
//! apart, on both sides of midnight, on both sides of a month boundary (two partitions), or
//! half an hour either side of midnight, count once in `decisions FINAL` and are one search
//! hit (the newer copy, found in its own day).

use gatelog_e2e::{Serve, ServeSpec, count, free_port, http_client, query, wait_for_sinks};
use gatelog_store::testing::TestClickHouse;
use std::time::Duration;

const TOKEN: &str = "dedup-test-token-0123456789";
const DAY_MS: i64 = 86_400_000;

/// Now, in ms since the epoch. Times near now pass any window the receiver puts around
/// `received_at`.
#[allow(clippy::disallowed_methods)] // the test's own reference point, not code under test
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms fit")
}

/// Days since 1970-01-01 of the first day of the month holding day `days` (civil calendar).
fn month_start(days: i64) -> i64 {
    // Howard Hinnant's days → civil and back.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day_of_month = doy - (153 * mp + 2) / 5 + 1;
    days - (day_of_month - 1)
}

/// The month boundary nearest to `now` (ms): the first instant of this month or the next.
fn nearest_month_boundary(now: i64) -> i64 {
    let this_day = month_start(now.div_euclid(DAY_MS));
    let (this, next) = (this_day * DAY_MS, month_start(this_day + 32) * DAY_MS);
    if now - this <= next - now { this } else { next }
}

fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let rem = ms.rem_euclid(DAY_MS);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_whose_times_differ_are_stored_and_found_once() {
    let ch = TestClickHouse::start().await.expect("clickhouse");
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
    let midnight = now.div_euclid(DAY_MS) * DAY_MS;
    let month = nearest_month_boundary(now);
    assert_eq!(rfc3339(month)[8..], *"01T00:00:00.000Z", "{}", rfc3339(month));
    // (event id, first copy's time, second copy's time)
    let events = [
        ("dup-ms", now - 60_000, now - 59_999),
        ("dup-midnight", midnight - 1, midnight),
        ("dup-midnight-back", midnight, midnight - 1),
        ("dup-month", month - 1, month),
        ("dup-half-hours", midnight - 1_800_000, midnight + 1_800_000),
    ];
    let client = http_client();
    for (copy, principal) in [(0, "first-copy@example.com"), (1, "second-copy@example.com")] {
        let body: String = events
            .iter()
            .map(|(id, a, b)| {
                let t = if copy == 0 { a } else { b };
                format!(
                    "{{\"event_id\":\"{id}\",\"time\":\"{}\",\"decision\":\"deny\",\"principal\":\"{principal}\"}}\n",
                    rfc3339(*t)
                )
            })
            .collect();
        let r = client
            .post(format!("{base}/v1/decisions"))
            .bearer_auth(TOKEN)
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status, 200, "{text}");
        assert!(text.contains(&format!("\"decisions\":{}", events.len())), "no copy was refused: {text}");
    }
    wait_for_sinks(&base, Duration::from_secs(60)).await;

    let ids: Vec<String> = events.iter().map(|(id, ..)| format!("'{id}'")).collect();
    let ids = ids.join(", ");
    let stored = count(&ch.url(), &format!("SELECT count() FROM {db}.decisions WHERE event_id IN ({ids})"));
    let once = count(&ch.url(), &format!("SELECT count() FROM {db}.decisions FINAL WHERE event_id IN ({ids})"));
    eprintln!("{} events sent twice: {stored} rows stored, {once} counted by FINAL", events.len());
    assert_eq!(once, events.len() as u64, "FINAL counts every event once");
    let per_event = query(
        &ch.url(),
        &format!(
            "SELECT event_id, count() FROM {db}.decisions FINAL WHERE event_id IN ({ids}) GROUP BY event_id FORMAT TSV"
        ),
    );
    assert!(per_event.lines().all(|l| l.ends_with("\t1")), "{per_event}");

    for (id, _, second) in &events {
        let url = reqwest::Url::parse_with_params(&format!("{base}/v1/search"), [("q", format!("event_id:{id}"))])
            .expect("url");
        let text = client
            .get(url)
            .bearer_auth(gatelog_e2e::read_token(TOKEN))
            .send()
            .await
            .expect("search")
            .text()
            .await
            .expect("body");
        let page: serde_json::Value = serde_json::from_str(&text).expect("json");
        let hits = page["hits"].as_array().expect("hits");
        assert_eq!(hits.len(), 1, "{id}: {page}");
        assert_eq!(hits[0]["principal"], "second-copy@example.com", "{id}: the newer copy stays");
        assert_eq!(hits[0]["time"], rfc3339(*second), "{id}: in its own day");
    }
    server.terminate(Duration::from_secs(30)).await;
}

#[test]
fn month_and_date_helpers_agree_with_the_calendar() {
    assert_eq!(rfc3339(1_738_367_999_999), "2025-01-31T23:59:59.999Z");
    assert_eq!(rfc3339(1_740_787_200_000), "2025-03-01T00:00:00.000Z");
    assert_eq!(nearest_month_boundary(1_740_787_200_000 + 5 * DAY_MS), 1_740_787_200_000);
    assert_eq!(nearest_month_boundary(1_740_787_200_000 - 5 * DAY_MS), 1_740_787_200_000);
    assert_eq!(rfc3339(nearest_month_boundary(1_709_251_200_000 - DAY_MS)), "2024-03-01T00:00:00.000Z"); // leap Feb
}
