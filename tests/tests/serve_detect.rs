//! Streaming detection in `gatelog serve`, end to end against real ClickHouse 18.16: a
//! generated world with planted anomalies (`gen_samples.py`, seed 4242, not the default),
//! posted as Logpush delivers it, becomes alerts naming the planted principals and IPs
//! (`gatelog alerts list`); the same world without anomalies raises no alert of those kinds;
//! an alert is acknowledged and resolved with the CLI, and a resolved alert stays resolved.
//! Under SIGKILL while detection runs, restarted on the same data dir, every alert is stored
//! once and the alerts are exactly those of an uninterrupted run (same ids, same counts).

mod detect;

use detect::{ListedAlert, World, generate, list_alerts, post_all, post_counting, reporting};
use gatelog_e2e::{Serve, ServeSpec, count, free_port, metric, wait_for_sinks};
use gatelog_store::testing::{TestClickHouse, random_database};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const TOKEN: &str = "detect-test-token-0123456789";
const SEED: u64 = 4242;
const START: &str = "2025-06-02T07:00:00Z";
const KILLS: usize = 5;

fn world(dir: &Path, anomalies: &str) -> World {
    generate(dir, SEED, START, 48, 300, anomalies)
}

fn spec(ch: &TestClickHouse, data_dir: &Path, database: &str) -> ServeSpec {
    ServeSpec {
        data_dir: data_dir.to_owned(),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: database.to_owned(),
        token: TOKEN.to_owned(),
        config: None,
        release: false,
    }
}

/// Posts the world to a fresh server, waits until every consumer (detection included) has
/// stored it, stops the server and returns the alerts.
async fn run_world(ch: &TestClickHouse, dir: &Path, world: &World) -> (Vec<ListedAlert>, String) {
    let database = random_database();
    let spec = spec(ch, dir, &database);
    let mut serve = Serve::start(&spec).await;
    post_all(&spec.base_url(), TOKEN, &world.deliveries).await;
    let metrics = wait_for_sinks(&spec.base_url(), Duration::from_secs(120)).await;
    assert_eq!(
        serve.terminate(Duration::from_secs(30)).await.map(|s| s.success()),
        Some(true),
        "{}",
        serve.log_tail(30)
    );
    assert!(metric(&metrics, "gatelog_sink_position", &[("sink", "detect")]).unwrap_or(0.0) > 0.0, "{metrics}");
    (list_alerts(&ch.url(), &database, dir, &[]), database)
}

fn cli(ch: &TestClickHouse, db: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    let (dir, url) = (dir.to_string_lossy().into_owned(), ch.url());
    let mut all: Vec<&str> = vec!["alerts"];
    all.extend(args);
    all.extend(["--clickhouse-url", &url, "--clickhouse-database", db, "--data-dir", &dir]);
    gatelog_e2e::gatelog(&all)
}

#[tokio::test]
async fn planted_anomalies_become_alerts_and_a_clean_world_raises_none() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let planted = world(tmp.path(), "default");
    assert!(planted.plants.len() >= 5, "the generator planted {:?}", planted.plants);

    let database = random_database();
    let dir = tmp.path().join("planted");
    let spec = spec(&ch, &dir, &database);
    let mut serve = Serve::start(&spec).await;
    post_all(&spec.base_url(), TOKEN, &planted.deliveries).await;
    let metrics = wait_for_sinks(&spec.base_url(), Duration::from_secs(120)).await;
    let findings: f64 =
        gatelog_e2e::metric_samples(&metrics, "gatelog_detect_findings_total").iter().map(|(_, v)| v).sum();
    assert!(findings > 0.0, "findings by rule on /metrics:\n{metrics}");
    assert_eq!(metric(&metrics, "gatelog_sink_up", &[("sink", "detect")]), Some(1.0), "{metrics}");
    let alerts = list_alerts(&ch.url(), &database, &dir, &[]);
    let mut missed = Vec::new();
    for plant in &planted.plants {
        if reporting(&alerts, plant).is_empty() {
            missed.push(format!("{plant:?}"));
        }
    }
    assert!(missed.is_empty(), "planted anomalies without an alert naming them: {missed:#?}\nalerts: {alerts:#?}");
    let mut by_rule: BTreeMap<&str, u64> = BTreeMap::new();
    for a in &alerts {
        *by_rule.entry(a.rule_id.as_str()).or_default() += 1;
    }
    println!(
        "{} deliveries, {} plants, all alerted; alerts by rule: {by_rule:?}",
        planted.deliveries.len(),
        planted.plants.len()
    );
    let db = database.as_str();
    let url = ch.url();
    assert_eq!(
        count(&url, &format!("SELECT count() FROM {db}.alerts FINAL")),
        count(&url, &format!("SELECT count() FROM {db}.alert_events FINAL WHERE action = 'open'")),
        "one open event per alert"
    );
    assert!(count(&url, &format!("SELECT count() FROM {db}.detector_runs WHERE outcome = 'ok'")) > 0);

    // The lifecycle, through the CLI: ack, resolve with a disposition, resolved is final.
    let plant = &planted.plants[0];
    let alert = reporting(&alerts, plant)[0].clone();
    let prefix = &alert.alert_id[..12];
    let out = cli(&ch, db, &dir, &["ack", prefix, "--by", "oncall@example.com", "--note", "looking"]);
    assert!(out.status.success(), "{}", gatelog_e2e::describe(&out));
    let out = cli(&ch, db, &dir, &["resolve", prefix, "--disposition", "true_positive", "--by", "oncall@example.com"]);
    assert!(out.status.success(), "{}", gatelog_e2e::describe(&out));
    let out = cli(&ch, db, &dir, &["resolve", prefix, "--disposition", "benign", "--by", "someone"]);
    assert!(!out.status.success(), "a resolved alert stays resolved");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already resolved"), "{}", gatelog_e2e::describe(&out));
    let out = cli(&ch, db, &dir, &["show", &alert.alert_id]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && text.contains("resolved (true_positive)"), "{text}");
    assert!(text.contains("ack by oncall@example.com: looking") && text.contains("open by gatelog"), "{text}");
    let resolved = list_alerts(&url, db, &dir, &["--state", "resolved"]);
    assert_eq!(resolved.iter().map(|a| a.alert_id.as_str()).collect::<Vec<_>>(), vec![alert.alert_id.as_str()]);
    let out = cli(&ch, db, &dir, &["show", "zz"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("hex digits"));
    assert_eq!(
        serve.terminate(Duration::from_secs(30)).await.map(|s| s.success()),
        Some(true),
        "{}",
        serve.log_tail(30)
    );

    // The backtest over what is stored finds the same plants, and stores nothing.
    let alerts_before = count(&url, &format!("SELECT count() FROM {db}.alerts FINAL"));
    let dir_s = dir.to_string_lossy().into_owned();
    let out = gatelog_e2e::gatelog(&[
        "detect",
        "--from",
        START,
        "--to",
        "2025-06-04T08:00:00Z",
        "--json",
        "--clickhouse-url",
        &url,
        "--clickhouse-database",
        db,
        "--data-dir",
        &dir_s,
    ]);
    assert!(out.status.success(), "{}", gatelog_e2e::describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("backtest day"), "progress: {}", gatelog_e2e::describe(&out));
    let backtested: Vec<ListedAlert> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("one JSON object per line"))
        .filter(|v| v["kind"] == "alert")
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_ascii_lowercase();
            ListedAlert {
                alert_id: s("alert_id"),
                rule_id: s("rule_id"),
                principal: s("principal"),
                client_ip: s("client_ip"),
                state: String::new(),
                count: v["count"].as_u64().unwrap_or(0),
            }
        })
        .collect();
    let missed: Vec<_> = planted.plants.iter().filter(|p| reporting(&backtested, p).is_empty()).collect();
    assert!(missed.is_empty(), "the backtest missed {missed:#?}\nit found {backtested:#?}");
    assert_eq!(
        count(&url, &format!("SELECT count() FROM {db}.alerts FINAL")),
        alerts_before,
        "a backtest stores nothing"
    );

    // The same world without anomalies: no alert of the planted kinds.
    let clean = world(tmp.path(), "none");
    let (alerts, _) = run_world(&ch, &tmp.path().join("clean"), &clean).await;
    let kinds: Vec<&str> = planted.plants.iter().map(|p| p.rule).collect();
    let false_alerts: Vec<&ListedAlert> = alerts.iter().filter(|a| kinds.contains(&a.rule_id.as_str())).collect();
    println!("clean world: {} alerts, {} of the planted kinds", alerts.len(), false_alerts.len());
    assert!(false_alerts.is_empty(), "alerts of planted kinds in a clean world: {false_alerts:#?}");
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn sigkill_while_detection_runs_stores_each_alert_once_and_loses_none() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let planted = world(tmp.path(), "default");
    let (reference, _) = run_world(&ch, &tmp.path().join("reference"), &planted).await;
    let expected: BTreeMap<String, (String, u64)> =
        reference.iter().map(|a| (a.alert_id.clone(), (a.rule_id.clone(), a.count))).collect();

    let database = random_database();
    let dir = tmp.path().join("crashed");
    // Small groups: many checkpoints, so the kills fall between checkpoints whose state
    // (baselines, alert groups) spans them.
    let config = tmp.path().join("gatelog.toml");
    std::fs::write(&config, "[detect.runtime]\nmax_batches = 4\nmax_linger = \"50ms\"\n").unwrap();
    let spec = ServeSpec { config: Some(config), ..spec(&ch, &dir, &database) };
    let mut serve = Serve::start(&spec).await;
    let n = planted.deliveries.len();
    // One client posts the whole world in order (retrying while the server is down); the
    // server is killed as the client passes each sixth of the world (plus a random moment),
    // so the kills fall across the world's timeline while detection judges and stores what
    // was just posted, and it is restarted on the same data dir and port each time.
    let posted = Arc::new(AtomicUsize::new(0));
    let (base_url, deliveries, counter) = (spec.base_url(), planted.deliveries.clone(), posted.clone());
    let poster = tokio::spawn(async move { post_counting(&base_url, TOKEN, &deliveries, &counter).await });
    let mut rng = fastrand::Rng::with_seed(SEED);
    let (mut kills, mut kills_while_posting) = (0, 0);
    for k in 1..=KILLS {
        while posted.load(Ordering::Relaxed) < n * k / (KILLS + 1) && !poster.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(0..300))).await;
        kills_while_posting += usize::from(!poster.is_finished());
        serve.kill();
        kills += 1;
        serve = Serve::start(&spec).await;
    }
    poster.await.unwrap();
    println!("{kills_while_posting} of the SIGKILLs came while the world was still being posted");
    wait_for_sinks(&spec.base_url(), Duration::from_secs(120)).await;
    assert_eq!(
        serve.terminate(Duration::from_secs(30)).await.map(|s| s.success()),
        Some(true),
        "{}",
        serve.log_tail(30)
    );
    assert_eq!(kills, KILLS);

    let alerts = list_alerts(&ch.url(), &database, &dir, &[]);
    let got: BTreeMap<String, (String, u64)> =
        alerts.iter().map(|a| (a.alert_id.clone(), (a.rule_id.clone(), a.count))).collect();
    println!(
        "{} deliveries, {kills} SIGKILLs; {} alerts ({} findings in the reference run's counts), as uninterrupted: {}",
        n,
        got.len(),
        expected.values().map(|(_, c)| c).sum::<u64>(),
        got == expected
    );
    assert_eq!(got, expected, "the alerts (ids, rules, counts) of an uninterrupted run");
    for plant in &planted.plants {
        assert!(!reporting(&alerts, plant).is_empty(), "no alert for {plant:?}");
    }
    let (url, db) = (ch.url(), database.as_str());
    let once = |table: &str, id: &str| {
        let rows = count(&url, &format!("SELECT count() FROM {db}.{table} FINAL"));
        let ids = count(&url, &format!("SELECT uniqExact({id}) FROM {db}.{table}"));
        assert_eq!(rows, ids, "{table}: each {id} once");
        rows
    };
    assert_eq!(once("alerts", "alert_id"), expected.len() as u64);
    once("findings", "finding_id");
    assert_eq!(
        count(&url, &format!("SELECT count() FROM {db}.alert_events FINAL WHERE action = 'open'")),
        expected.len() as u64,
        "one open event per alert"
    );
    ch.stop().await.unwrap();
}
