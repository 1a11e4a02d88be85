//! `gatelog ingest` end to end: sample files → real ClickHouse 18.16, counted back with SQL.

use gatelog_e2e::{count, describe, gatelog, query, samples_dir};
use gatelog_store::testing::TestClickHouse;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

const LOGPUSH_FILES: &[(&str, &str)] = &[
    ("http_requests.ndjson", "http_requests"),
    ("firewall_events.ndjson", "firewall_events"),
    ("access_requests.ndjson", "access_requests"),
    ("audit_logs.ndjson", "audit_logs"),
    ("audit_logs_v2.ndjson", "audit_logs_v2"),
    ("gateway_http.ndjson", "gateway_http"),
];

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The `request_id`s of `access_decision` logs in a Worker file, found independently of the
/// mapper: walk every log message argument, objects and JSON strings alike.
fn decision_request_ids(path: &Path) -> BTreeSet<String> {
    fn visit(value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                if map.get("type").and_then(Value::as_str) == Some("access_decision")
                    && let Some(id) = map.get("request_id").and_then(Value::as_str)
                {
                    out.insert(id.to_owned());
                }
                map.values().for_each(|v| visit(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| visit(v, out)),
            Value::String(s) if s.contains("access_decision") => {
                if let Ok(inner) = serde_json::from_str::<Value>(s) {
                    visit(&inner, out);
                }
            }
            _ => {}
        }
    }
    let mut ids = BTreeSet::new();
    for line in lines(path) {
        visit(&serde_json::from_str(&line).expect("sample lines are JSON"), &mut ids);
    }
    ids
}

/// `gatelog ingest` into `ch` with its spool and index under `data_dir`.
fn ingest_args<'a>(ch: &'a TestClickHouse, url: &'a str, data_dir: &'a Path, files: &'a [PathBuf]) -> Vec<&'a str> {
    let mut args = vec!["ingest", "--no-progress", "--clickhouse-url", url, "--clickhouse-database", ch.database()];
    args.extend(["--data-dir", data_dir.to_str().expect("utf-8 path")]);
    args.extend(files.iter().map(|p| p.to_str().expect("utf-8 path")));
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sample_is_stored_once_and_a_rerun_adds_nothing() {
    let mut ch = TestClickHouse::start().await.expect("managed clickhouse");
    let url = ch.url();
    let db = ch.database().to_owned();
    let samples = samples_dir();
    let mut files: Vec<PathBuf> = LOGPUSH_FILES.iter().map(|(f, _)| samples.join(f)).collect();
    files.push(samples.join("workers_trace_events.ndjson"));
    files.push(samples.join("tail.ndjson"));
    files.push(samples.join("validation_probe.test.txt.gz"));
    let data = tempfile::tempdir().expect("tempdir");

    let first = gatelog(&ingest_args(&ch, &url, data.path(), &files));
    assert!(first.status.success(), "{}", describe(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("dead letters    0"), "{stdout}");
    assert!(stdout.contains("probes skipped  1"), "{stdout}");

    // Every line kept in a stored body and one decision per Logpush record.
    for (file, dataset) in LOGPUSH_FILES {
        let expected = lines(&samples.join(file)).len() as u64;
        let raw =
            count(&url, &format!("SELECT sum(length(event_lines)) FROM {db}.raw_batches WHERE dataset = '{dataset}'"));
        let decisions = count(&url, &format!("SELECT count() FROM {db}.decisions WHERE dataset = '{dataset}'"));
        assert_eq!((raw, decisions), (expected, expected), "{dataset}");
    }
    // Worker files: every line in a stored body, one decision per access_decision log.
    for (file, dataset) in [("workers_trace_events.ndjson", "workers_trace_events"), ("tail.ndjson", "tail")] {
        let path = samples.join(file);
        let raw = count(&url, &format!("SELECT sum(lines) FROM {db}.raw_batches WHERE dataset = '{dataset}'"));
        assert_eq!(raw, lines(&path).len() as u64, "{dataset} lines in stored bodies");
        let decisions = count(&url, &format!("SELECT count() FROM {db}.decisions WHERE dataset = '{dataset}'"));
        assert_eq!(decisions, decision_request_ids(&path).len() as u64, "{dataset} decisions");
    }
    // The Tail and Logpush copies of one Worker invocation are one decision.
    let both: BTreeSet<String> = decision_request_ids(&samples.join("tail.ndjson"))
        .union(&decision_request_ids(&samples.join("workers_trace_events.ndjson")))
        .cloned()
        .collect();
    let unique = count(
        &url,
        &format!("SELECT uniqExact(event_id) FROM {db}.decisions WHERE dataset IN ('tail', 'workers_trace_events')"),
    );
    assert_eq!(unique, both.len() as u64);
    let after_merge = count(
        &url,
        &format!("SELECT count() FROM {db}.decisions FINAL WHERE dataset IN ('tail', 'workers_trace_events')"),
    );
    assert_eq!(after_merge, both.len() as u64, "FINAL collapses the two copies");

    // Records checked by hand against the generator's summary.
    let burst = count(
        &url,
        &format!(
            "SELECT count() FROM {db}.decisions WHERE dataset = 'http_requests' AND client_ip = '203.0.113.66' AND decision = 'deny'"
        ),
    );
    assert_eq!(burst, 12, "the planted deny burst: 6×401, 2×403, 4×429");
    let first_http = query(
        &url,
        &format!(
            "SELECT principal_type, decision, status, resource, action, country, asn, host, zone FROM {db}.decisions \
             WHERE ray_id = '15a6be4b5c14bca5' FORMAT TSV"
        ),
    );
    assert_eq!(
        first_http,
        "anonymous\tallow\t200\thttps://ch.example.com/query\tPOST\tSG\t9506\tch.example.com\texample.com"
    );
    let access = query(
        &url,
        &format!(
            "SELECT principal, principal_type, decision, action, country FROM {db}.decisions \
             WHERE dataset = 'access_requests' AND ray_id = '3386be5137f4f92f' FORMAT TSV"
        ),
    );
    assert_eq!(access, "chen@example.com\tuser\tallow\tlogin\tSG");
    let runaway = count(
        &url,
        &format!(
            "SELECT count() FROM {db}.decisions FINAL WHERE rows_read >= 1000000000 AND principal IN ('bella@example.com', 'laura@example.com')"
        ),
    );
    assert!(runaway >= 2, "the planted runaway SELECTs keep their rows_read ({runaway})");
    let unlinked = count(
        &url,
        &format!(
            "SELECT count() FROM {db}.raw_batches WHERE (batch_id, sha256) NOT IN (SELECT batch_id, sha256 FROM {db}.ingest_batches)"
        ),
    );
    assert_eq!(unlinked, 0, "every stored body carries its batch's (chained) SHA-256");

    // Idempotent: the same files again add no row at all (not even ones FINAL would hide).
    let rows_before = count(&url, &format!("SELECT count() FROM {db}.decisions"));
    let raw_before = count(&url, &format!("SELECT count() FROM {db}.raw_batches"));
    let second = gatelog(&ingest_args(&ch, &url, data.path(), &files));
    assert!(second.status.success(), "{}", describe(&second));
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(stdout.contains("batches         0 written"), "{stdout}");
    assert_eq!(count(&url, &format!("SELECT count() FROM {db}.decisions")), rows_before);
    assert_eq!(count(&url, &format!("SELECT count() FROM {db}.raw_batches")), raw_before);

    ch.stop().await.expect("stop clickhouse");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_lines_become_dead_letters_and_the_rest_is_kept() {
    let mut ch = TestClickHouse::start().await.expect("managed clickhouse");
    let url = ch.url();
    let db = ch.database().to_owned();
    let dir = tempfile::tempdir().expect("tempdir");

    let good = lines(&samples_dir().join("access_requests.ndjson"));
    let mut body = Vec::new();
    for line in &good[..10] {
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
    body.extend_from_slice(&good[10].as_bytes()[..40]); // truncated JSON
    body.push(b'\n');
    body.extend_from_slice(b"{\"Email\":\"x@example.com\",\"Allowed\":\xff}\n"); // invalid UTF-8
    body.extend_from_slice(b"[1,2,3]\n"); // not an object
    body.extend_from_slice(good[11].as_bytes()); // last line without newline

    // Same content, gzip-compressed, under a name that does not say the dataset.
    let path = dir.path().join("20250303T000000Z_part-0001.log.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&body).expect("gzip");
    std::fs::write(&path, gz.finish().expect("gzip")).expect("write");

    let out = gatelog(&ingest_args(&ch, &url, dir.path(), &[path]));
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("decisions       11"), "{stdout}");
    assert!(stdout.contains("dead letters    3"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dead letter"), "each dead letter is logged: {stderr}");

    assert_eq!(count(&url, &format!("SELECT count() FROM {db}.decisions WHERE dataset = 'access_requests'")), 11);
    let errors = query(&url, &format!("SELECT line_no, error FROM {db}.dead_letters ORDER BY line_no FORMAT TSV"));
    let rows: Vec<&str> = errors.lines().collect();
    assert_eq!(rows.len(), 3, "{errors}");
    assert!(rows[0].starts_with("11\t"), "{errors}");
    assert!(rows[1].starts_with("12\t") && rows[1].to_lowercase().contains("utf-8"), "{errors}");
    assert!(rows[2].starts_with("13\t") && rows[2].contains("array"), "{errors}");

    // A gzip stream cut in half: an error that names the file, not a silent partial success.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for line in lines(&samples_dir().join("http_requests.ndjson")) {
        gz.write_all(line.as_bytes()).and_then(|()| gz.write_all(b"\n")).expect("gzip");
    }
    let full = gz.finish().expect("gzip");
    let cut = dir.path().join("http_requests_cut.ndjson.gz");
    std::fs::write(&cut, &full[..full.len() / 2]).expect("write");
    let out = gatelog(&ingest_args(&ch, &url, dir.path(), &[cut]));
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("http_requests_cut.ndjson.gz"), "{stderr}");

    ch.stop().await.expect("stop clickhouse");
}

#[test]
fn unusable_files_fail_with_a_message_that_names_them() {
    let dir = tempfile::tempdir().expect("tempdir");

    let out = gatelog(&["ingest", "--dataset", "http_request", "x.ndjson"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("http_request") && stderr.contains("http_requests, "), "{stderr}");

    let data_dir = dir.path().join("data");
    let out = gatelog(&[
        "ingest",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--dataset",
        "http_requests",
        "/nonexistent/file.ndjson",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file.ndjson"), "{}", describe(&out));
    assert!(!data_dir.exists(), "a missing file fails before managed ClickHouse is started");

    let unknown = dir.path().join("mystery.ndjson");
    std::fs::write(&unknown, "{\"hello\":\"world\"}\n").expect("write");
    let out = gatelog(&["ingest", unknown.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dataset"), "{}", describe(&out));

    let bad_config = dir.path().join("gatelog.toml");
    std::fs::write(&bad_config, "[clickhouse]\ndatabase = \"no spaces allowed\"\n").expect("write");
    let out = gatelog(&["ingest", "--config", bad_config.to_str().unwrap(), "x.ndjson"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("clickhouse.database"), "{}", describe(&out));
}
