//! `gatelog ingest` takes the road `gatelog serve` takes (issue 21, "one road in"): a
//! backfilled file goes through the spool into ClickHouse *and* the index, so it is found by
//! search; backfilled again it stores nothing; backfilled and also posted over HTTP in other
//! batches, each event is one row (`FINAL`) and one search hit; and while `serve` holds the
//! spool, `gatelog ingest` refuses and points at `--server`, which posts to it with the same
//! batch ids as a local run.

use gatelog_e2e::{
    Serve, ServeSpec, count, describe, free_port, gatelog, gzip, http_client, http_requests_sample, query, search_all,
    unique_http_requests, wait_for_sinks,
};
use gatelog_store::testing::TestClickHouse;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "road-in-test-token-0001";

/// A config whose backfill batches hold 700 lines, so a file of a few thousand records is
/// several batches, cut differently from the HTTP bodies below.
fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("gatelog.toml");
    std::fs::write(&path, "[ingest]\nbatch_lines = 700\n").expect("config");
    path
}

/// `gatelog ingest` of `file` with `extra` arguments, into `ch` with the state under `data_dir`.
fn ingest(ch: &TestClickHouse, config: &Path, data_dir: &Path, file: &Path, extra: &[&str]) -> std::process::Output {
    let url = ch.url();
    let mut args = vec!["ingest", "--no-progress", "--config", config.to_str().expect("utf-8 path")];
    args.extend(["--clickhouse-url", &url, "--clickhouse-database", ch.database()]);
    args.extend(["--data-dir", data_dir.to_str().expect("utf-8 path")]);
    args.extend(extra);
    args.push(file.to_str().expect("utf-8 path"));
    gatelog(&args)
}

/// Every event id `gatelog search --json` finds for `q` in the index under `data_dir`,
/// duplicates kept.
fn cli_search(data_dir: &Path, q: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut args = vec!["search", "--json", "--limit", "1000", "--data-dir", data_dir.to_str().expect("utf-8")];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        args.push(q);
        let out = gatelog(&args);
        assert!(out.status.success(), "{}", describe(&out));
        let page: serde_json::Value = serde_json::from_slice(&out.stdout).expect("search --json prints JSON");
        let hits = page["hits"].as_array().expect("hits");
        ids.extend(hits.iter().map(|h| h["event_id"].as_str().expect("event_id").to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
    panic!("search did not end");
}

/// `(count(), uniqExact(event_id))` of `decisions FINAL`, and the events whose line a stored
/// body (`raw_batches`) names.
fn stored(url: &str, db: &str) -> (u64, u64, u64) {
    let figures: Vec<u64> =
        query(url, &format!("SELECT count(), uniqExact(event_id) FROM {db}.decisions FINAL FORMAT TSV"))
            .split('\t')
            .map(|v| v.parse().expect("a number"))
            .collect();
    (
        figures[0],
        figures[1],
        count(url, &format!("SELECT uniqExact(e) FROM (SELECT arrayJoin(event_ids) AS e FROM {db}.raw_batches FINAL)")),
    )
}

fn unique(ids: &[String]) -> usize {
    ids.iter().collect::<BTreeSet<_>>().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfilled_file_is_searchable_and_a_second_run_stores_nothing() {
    let mut ch = TestClickHouse::start().await.expect("managed clickhouse");
    let (url, db) = (ch.url(), ch.database().to_owned());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let data = dir.path().join("data");
    let records = 3000;
    let file = dir.path().join("http_requests_backfill.ndjson.gz");
    std::fs::write(&file, gzip(&unique_http_requests(&http_requests_sample(), 0..records, "b0a1"))).expect("file");

    let first = ingest(&ch, &config, &data, &file, &[]);
    assert!(first.status.success(), "{}", describe(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains(&format!("decisions       {records}")), "{stdout}");
    assert!(stdout.contains("batches         5 written, 0 already stored"), "3000 lines in batches of 700: {stdout}");
    assert_eq!(stored(&url, &db), (records as u64, records as u64, records as u64));
    assert_eq!(count(&url, &format!("SELECT count() FROM {db}.ingest_batches WHERE dataset != 'gatelog'")), 5);

    // Searchable once the command returns: the index sink ran with it.
    let ids = cli_search(&data, "dataset:http_requests");
    assert_eq!((ids.len(), unique(&ids)), (records, records), "every backfilled event is one hit");

    // Again: the same batch ids, all known, so nothing is appended or stored (not even rows
    // FINAL would hide).
    let rows = count(&url, &format!("SELECT count() FROM {db}.decisions"));
    let second = ingest(&ch, &config, &data, &file, &[]);
    assert!(second.status.success(), "{}", describe(&second));
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(stdout.contains("batches         0 written, 5 already stored"), "{stdout}");
    assert_eq!(count(&url, &format!("SELECT count() FROM {db}.decisions")), rows);
    assert_eq!(count(&url, &format!("SELECT count() FROM {db}.ingest_batches WHERE dataset != 'gatelog'")), 5);
    let ids = cli_search(&data, "dataset:http_requests");
    assert_eq!((ids.len(), unique(&ids)), (records, records));

    // A lost index comes back from ClickHouse (the index sink heals), with the backfill in it.
    std::fs::remove_dir_all(data.join("index")).expect("remove the index");
    let third = ingest(&ch, &config, &data, &file, &[]);
    assert!(third.status.success(), "{}", describe(&third));
    let ids = cli_search(&data, "dataset:http_requests");
    assert_eq!((ids.len(), unique(&ids)), (records, records), "the rebuilt index holds the backfill");

    ch.stop().await.expect("stop clickhouse");
}

#[tokio::test(flavor = "multi_thread")]
async fn backfilled_and_posted_records_are_one_event_each_and_ingest_defers_to_a_running_serve() {
    let mut ch = TestClickHouse::start().await.expect("managed clickhouse");
    let (url, db) = (ch.url(), ch.database().to_owned());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let data = dir.path().join("data");
    let sample = http_requests_sample();
    let (backfilled, extra) = (3000, 500);
    let file = dir.path().join("http_requests_both.ndjson.gz");
    std::fs::write(&file, gzip(&unique_http_requests(&sample, 0..backfilled, "b0b2"))).expect("file");

    // 1. Backfilled while no server runs.
    let out = ingest(&ch, &config, &data, &file, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let batches_after_backfill =
        count(&url, &format!("SELECT count() FROM {db}.ingest_batches WHERE dataset != 'gatelog'"));

    // 2. The same records (and 500 more) posted to serve on the same data dir, in bodies of
    //    450 lines: other batch boundaries, so other batch ids holding the same event ids.
    let spec = ServeSpec {
        data_dir: data.clone(),
        port: free_port(),
        clickhouse_url: url.clone(),
        database: db.clone(),
        token: TOKEN.to_owned(),
        config: Some(config.clone()),
        release: false,
    };
    let mut serve = Serve::start(&spec).await;
    let base = spec.base_url();
    let client = http_client();
    let all = unique_http_requests(&sample, 0..backfilled + extra, "b0b2");
    let lines: Vec<&[u8]> = all.split_inclusive(|b| *b == b'\n').collect();
    for body in lines.chunks(450) {
        let response = client
            .post(format!("{base}/v1/logpush/http_requests"))
            .bearer_auth(TOKEN)
            .body(gzip(&body.concat()))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), 200, "{}", response.text().await.unwrap_or_default());
    }
    wait_for_sinks(&base, Duration::from_secs(120)).await;
    let total = (backfilled + extra) as u64;
    assert_eq!(stored(&url, &db), (total, total, total), "each event once in ClickHouse (FINAL)");
    let hits = search_all(&base, TOKEN, "dataset:http_requests").await;
    assert_eq!((hits.len(), unique(&hits)), (backfilled + extra, backfilled + extra), "each event once in search");
    let batches_after_posts =
        count(&url, &format!("SELECT count() FROM {db}.ingest_batches WHERE dataset != 'gatelog'"));
    assert_eq!(batches_after_posts, batches_after_backfill + 8, "every body is a batch of its own: 3500 / 450");

    // 3. While serve holds the spool, a local backfill refuses and says what to do.
    let refused = ingest(&ch, &config, &data, &file, &[]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("gatelog serve") && stderr.contains("--server"), "{}", describe(&refused));

    // 4. --server posts the file's batches to serve: the same bodies as the local run, so the
    //    same batch ids, which ClickHouse already has.
    let posted = ingest(&ch, &config, &data, &file, &["--server", &base, "--token", TOKEN]);
    assert!(posted.status.success(), "{}", describe(&posted));
    let stdout = String::from_utf8_lossy(&posted.stdout);
    assert!(stdout.contains(&format!("decisions       {backfilled}")), "{stdout}");
    assert!(stdout.contains(&format!("5 posted to {base}")), "{stdout}");
    wait_for_sinks(&base, Duration::from_secs(120)).await;
    assert_eq!(
        count(&url, &format!("SELECT count() FROM {db}.ingest_batches WHERE dataset != 'gatelog'")),
        batches_after_posts,
        "the posted batches have the local run's ids, already stored"
    );
    assert_eq!(stored(&url, &db), (total, total, total));
    let hits = search_all(&base, TOKEN, "dataset:http_requests").await;
    assert_eq!((hits.len(), unique(&hits)), (backfilled + extra, backfilled + extra));

    // A wrong token is refused with the server's answer, naming the lines.
    let denied = ingest(&ch, &config, &data, &file, &["--server", &base, "--token", "wrong-token-0000000001"]);
    assert!(!denied.status.success(), "{}", describe(&denied));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(stderr.contains("401") && stderr.contains("lines 1..700"), "{}", describe(&denied));

    serve.terminate(Duration::from_secs(30)).await.expect("serve stops on SIGTERM");
    ch.stop().await.expect("stop clickhouse");
}
