//! `gatelog demo` with its own managed ClickHouse, and `gatelog sql dump`.

use gatelog_e2e::{describe, gatelog, samples_dir};

#[test]
fn demo_ingests_every_dataset_and_leaves_no_server_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let samples = samples_dir();
    let args = ["demo", "--samples", samples.to_str().unwrap(), "--data-dir", data_dir.to_str().unwrap()];

    let out = gatelog(&args);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for dataset in ["http_requests", "firewall_events", "access_requests", "audit_logs", "audit_logs_v2", "gateway_http", "workers_trace_events", "tail"] {
        assert!(stdout.contains(dataset), "{dataset} missing from the demo summary:\n{stdout}");
    }
    assert!(stdout.contains("dead letters    0"), "{stdout}");
    assert!(stdout.contains("curl '"), "the demo says how to query: {stdout}");

    // A second run reuses the data dir and stores nothing new.
    let again = gatelog(&args);
    assert!(again.status.success(), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains(" 0 written"), "{}", describe(&again));

    // The managed server was stopped: nothing runs from this data dir any more.
    let ps = std::process::Command::new("pgrep").args(["-f", data_dir.to_str().unwrap()]).output().expect("pgrep");
    assert!(ps.stdout.is_empty(), "a clickhouse-server outlived the demo: {}", String::from_utf8_lossy(&ps.stdout));
}

#[test]
fn sql_dump_renders_both_profiles() {
    for profile in ["legacy", "modern"] {
        let out = gatelog(&["sql", "dump", "--profile", profile, "--database", "audit"]);
        assert!(out.status.success(), "{}", describe(&out));
        let sql = String::from_utf8_lossy(&out.stdout);
        for table in ["decisions", "raw_records", "dead_letters", "ingest_batches"] {
            assert!(sql.contains(&format!("audit.{table}")), "{profile}: {table} missing");
        }
        let modern_types = sql.contains("DateTime64") || sql.contains("LowCardinality");
        assert_eq!(modern_types, profile == "modern", "{profile} uses the wrong column types");
    }
}
