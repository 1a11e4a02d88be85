//! What `/readyz` and `/metrics` say when a sink stops, against the real binary and a real
//! ClickHouse 18.16: a spool record that does not decode (both sinks stop, naming its file
//! and offset), a batch ClickHouse refuses (its table is gone), and rows that cannot be made
//! durable. Ingest keeps its own answers meanwhile: the spool goes on absorbing.

use gatelog_e2e::{
    Serve, ServeSpec, count, free_port, get, gzip, http_client, http_requests_sample, metric, unique_http_requests,
    wait_for_sinks, wait_until,
};
use gatelog_store::testing::TestClickHouse;
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "stops-test-token-0123456789";
const PREFIX: &str = "5709";

fn spec(ch: &TestClickHouse, data: &Path, config: Option<&str>) -> ServeSpec {
    let config = config.map(|text| {
        let path = data.join("gatelog.toml");
        std::fs::write(&path, text).expect("config");
        path
    });
    ServeSpec {
        data_dir: data.join("gatelog"),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: ch.database().to_owned(),
        token: TOKEN.to_owned(),
        config,
        release: false,
    }
}

async fn post(base: &str, lines: &[String], batch: usize) -> u16 {
    let body = gzip(&unique_http_requests(lines, batch * 50..(batch + 1) * 50, PREFIX));
    let r = http_client()
        .post(format!("{base}/v1/logpush/http_requests"))
        .bearer_auth(TOKEN)
        .header("Content-Encoding", "gzip")
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("post");
    r.status().as_u16()
}

async fn metrics(base: &str) -> String {
    get(base, "/metrics").await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_spool_record_stops_every_sink_naming_file_and_offset() {
    let lines = http_requests_sample();
    let ch = TestClickHouse::start().await.expect("clickhouse");
    let data = tempfile::tempdir().expect("tempdir");
    let spec = spec(&ch, data.path(), None);
    let base = spec.base_url();
    let mut server = Serve::start(&spec).await;
    for b in 0..2 {
        assert_eq!(post(&base, &lines, b).await, 200);
    }
    wait_for_sinks(&base, Duration::from_secs(60)).await;
    assert!(server.terminate(Duration::from_secs(30)).await.is_some_and(|s| s.success()), "{}", server.log_tail(20));

    // A durable, checksummed record that is not a batch (a bug, or another program).
    let spool_dir = spec.data_dir.join("spool");
    let options = gatelog_spool::SpoolOptions { preallocate: false, ..gatelog_spool::SpoolOptions::default() };
    let spool = gatelog_spool::Spool::open(&spool_dir, options).expect("spool");
    let bad = spool.append(b"this is not a gatelog batch".to_vec()).await.expect("append");
    let at = spool.locate(bad).expect("locate");
    spool.close().await.expect("close");

    let mut server = Serve::start(&spec).await;
    let (status, text, took) = wait_until(&base, "/readyz", Duration::from_secs(60), |status, body| {
        status == 503 && body.contains("clickhouse: stopped") && body.contains("index: stopped")
    })
    .await;
    eprintln!("/readyz {status} after {took:?}:\n{text}");
    let place = format!("{} at offset {}", at.file.display(), at.offset);
    for sink in ["clickhouse", "index"] {
        let line = text.split("; ").find(|l| l.contains(&format!("{sink}: stopped"))).expect("a reason per sink");
        assert!(line.contains(&format!("spool record {bad} (")) && line.contains(&place), "{line}");
    }
    let m = metrics(&base).await;
    for sink in ["clickhouse", "index"] {
        assert_eq!(metric(&m, "gatelog_sink_up", &[("sink", sink)]), Some(0.0), "{m}");
        assert_eq!(metric(&m, "gatelog_sink_state", &[("sink", sink), ("state", "stopped")]), Some(1.0), "{m}");
        assert_eq!(metric(&m, "gatelog_sink_position", &[("sink", sink)]), Some((bad - 1) as f64), "{m}");
    }
    // Ingest goes on into the spool; nothing past the bad record is stored anywhere.
    assert_eq!(post(&base, &lines, 2).await, 200);
    let db = ch.database();
    assert_eq!(count(&ch.url(), &format!("SELECT count() FROM {db}.decisions")), 100);
    let search = get(&base, "/v1/search?q=&limit=1000").await;
    assert_eq!(search.0, 401, "search needs the token");
    assert!(server.log_tail(200).contains(&place), "the log names it too:\n{}", server.log_tail(40));
    server.terminate(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_clickhouse_refuses_stops_the_clickhouse_sink_and_readyz_says_why() {
    let lines = http_requests_sample();
    let ch = TestClickHouse::start().await.expect("clickhouse");
    let data = tempfile::tempdir().expect("tempdir");
    let spec = spec(&ch, data.path(), None);
    let base = spec.base_url();
    let mut server = Serve::start(&spec).await;
    assert_eq!(post(&base, &lines, 0).await, 200);
    wait_for_sinks(&base, Duration::from_secs(60)).await;
    assert_eq!(get(&base, "/readyz").await, (200, "ready".to_owned()));

    // Someone drops the table under gatelog: every later write is refused, not retried.
    gatelog_e2e::query(&ch.url(), &format!("DROP TABLE {}.decisions", ch.database()));
    assert_eq!(post(&base, &lines, 1).await, 200);
    let (_, text, took) = wait_until(&base, "/readyz", Duration::from_secs(60), |status, body| {
        status == 503 && body.contains("clickhouse: stopped")
    })
    .await;
    eprintln!("/readyz after {took:?}: {text}");
    assert!(text.starts_with("not ready: clickhouse: stopped: clickhouse refused batch at spool position 2"), "{text}");
    assert!(!text.contains("index:"), "the index sink goes on: {text}");
    let m = metrics(&base).await;
    assert_eq!(metric(&m, "gatelog_sink_up", &[("sink", "clickhouse")]), Some(0.0), "{m}");
    assert_eq!(metric(&m, "gatelog_sink_up", &[("sink", "index")]), Some(1.0), "{m}");
    assert_eq!(post(&base, &lines, 2).await, 200, "ingest keeps its own answers");
    server.terminate(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_cannot_be_made_durable_stop_the_clickhouse_sink() {
    let lines = http_requests_sample();
    let ch = TestClickHouse::start().await.expect("clickhouse");
    let data = tempfile::tempdir().expect("tempdir");
    let synced = data.path().join("clickhouse-data");
    std::fs::create_dir_all(&synced).expect("dir");
    let spec = spec(&ch, data.path(), Some(&format!("[clickhouse]\nsync_data_dir = {synced:?}\n")));
    let base = spec.base_url();
    let mut server = Serve::start(&spec).await;
    assert_eq!(post(&base, &lines, 0).await, 200);
    wait_for_sinks(&base, Duration::from_secs(60)).await;

    std::fs::remove_dir(&synced).expect("remove the synced dir");
    assert_eq!(post(&base, &lines, 1).await, 200);
    let (_, text, took) = wait_until(&base, "/readyz", Duration::from_secs(60), |status, body| {
        status == 503 && body.contains("clickhouse: stopped")
    })
    .await;
    eprintln!("/readyz after {took:?}: {text}");
    assert!(
        text.contains("cannot make the rows stored up to spool position 2 durable")
            && text.contains(&format!("syncfs of {}", synced.display())),
        "{text}"
    );
    let m = metrics(&base).await;
    assert_eq!(metric(&m, "gatelog_sink_position", &[("sink", "clickhouse")]), Some(1.0), "not acknowledged: {m}");
    server.terminate(Duration::from_secs(30)).await;
}
