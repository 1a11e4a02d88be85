//! The hash chain over stored batches through the real binary and ClickHouse 18.16: `gatelog
//! serve` links what it stores and records a signed checkpoint; `gatelog verify --store`
//! passes on what it stored (with overlapping copies of events), then exits with the
//! tampering code and names the batch once a stored row is edited in ClickHouse.

use gatelog_e2e::{Serve, ServeSpec, count, free_port, gatelog, http_client, query, wait_for_sinks};
use gatelog_store::testing::TestClickHouse;
use std::time::Duration;

const TOKEN: &str = "chain-test-token-0123456789";

#[allow(clippy::disallowed_methods)] // the test's own reference point, not code under test
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms fit")
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Waits (bounded) until ClickHouse has no unfinished mutation in `db`.
async fn wait_mutations(url: &str, db: &str) {
    for _ in 0..600 {
        if count(url, &format!("SELECT count() FROM system.mutations WHERE database = '{db}' AND is_done = 0")) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mutations in {db} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_checkpoints_and_verify_store_finds_an_edited_row() {
    let ch = TestClickHouse::start().await.expect("clickhouse");
    let db = ch.database().to_owned();
    let url = ch.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("gatelog");
    let data_arg = data.to_str().expect("utf-8 path").to_owned();
    let keys = gatelog(&["keys", "init", "--data-dir", &data_arg]);
    assert!(keys.status.success(), "{}", text(&keys));
    let config = dir.path().join("gatelog.toml");
    std::fs::write(&config, "[report]\nchain_checkpoint_interval = \"1s\"\n").expect("config");
    let spec = ServeSpec {
        data_dir: data.clone(),
        port: free_port(),
        clickhouse_url: url.clone(),
        database: db.clone(),
        token: TOKEN.to_owned(),
        config: Some(config),
        release: false,
    };
    let base = spec.base_url();
    let mut server = Serve::start(&spec).await;

    // Two bodies sharing events (a re-delivered record, the other copy of an invocation).
    let client = http_client();
    let at = now_ms() - 60_000;
    for (first, principal) in [(0, "first@example.com"), (3, "second@example.com")] {
        let body: String = (first..first + 6)
            .map(|i| {
                let decision = if i % 2 == 0 { "deny" } else { "allow" };
                format!(
                    "{{\"event_id\":\"chain-ev-{i}\",\"time\":{},\"decision\":\"{decision}\",\"principal\":\"{principal}\"}}\n",
                    at + i
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
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap_or_default());
    }
    wait_for_sinks(&base, Duration::from_secs(60)).await;
    let links = count(&url, &format!("SELECT max(chain_seq) FROM {db}.ingest_batches"));
    assert!(links >= 2, "both bodies are linked: {links}");
    // A checkpoint of the whole chain (bounded wait; the interval is 1 s).
    let checkpointed = format!("SELECT count() FROM {db}.chain_checkpoints WHERE links = {links} AND signature != ''");
    for _ in 0..300 {
        if count(&url, &checkpointed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&url, &checkpointed), 1, "a signed checkpoint of link {links}:\n{}", server.log_tail(30));

    let (from, to) = ((at - 3_600_000).to_string(), (now_ms() + 3_600_000).to_string());
    let verify = |json: bool| {
        let mut args = vec![
            "verify",
            "--store",
            "--from",
            &from,
            "--to",
            &to,
            "--clickhouse-url",
            &url,
            "--clickhouse-database",
            &db,
            "--data-dir",
            &data_arg,
        ];
        if json {
            args.push("--json");
        }
        gatelog(&args)
    };
    let ok = verify(false);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let out = text(&ok);
    assert!(out.contains("OK:") && out.contains("1 signed and verified"), "{out}");

    // One stored row edited: the tamper code, naming the batch and the event.
    let batch = query(&url, &format!("SELECT batch_id FROM {db}.decisions WHERE event_id = 'chain-ev-0' LIMIT 1"));
    assert!(!batch.is_empty());
    query(&url, &format!("ALTER TABLE {db}.decisions UPDATE decision = 'allow' WHERE event_id = 'chain-ev-0'"));
    wait_mutations(&url, &db).await;
    let bad = verify(false);
    assert_eq!(bad.status.code(), Some(8), "{}", text(&bad));
    let out = text(&bad);
    assert!(out.contains("FAILED") && out.contains(&batch) && out.contains("chain-ev-0"), "{out}");
    let json = verify(true);
    assert_eq!(json.status.code(), Some(8));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json verdict");
    assert_eq!(v["exit_code"], 8);
    assert_eq!(v["problems"][0]["what"], "row edited", "{v}");
    assert_eq!(v["problems"][0]["batch_id"], batch.as_str(), "{v}");

    server.terminate(Duration::from_secs(30)).await;
}
