//! Canaries through the real `gatelog serve` (real ClickHouse 18.16, real SMTP on loopback):
//! a canary goes through the server's own receiver, detection raises its alert, and the run
//! is recorded `ok` in `canary_runs` with its latency, the alert resolved by gatelog and
//! never mailed; a run that was in flight when serve stopped is judged after the restart
//! (`interrupted`), not forgotten; with detection slower than the deadline (its group lingers
//! 2 s, the deadline is 1 s, so a slower machine only makes it later) the run is `missed`
//! and its own `canary_missed` alert is mailed to on-call. `gatelog canary list` prints them.
//!
//! The first canary goes one interval (1 h) after the first start, so each test starts from
//! a state file (`<data_dir>/detect/canary.json`) whose first start is long past: the canary
//! is due at once.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_e2e::{Serve, ServeSpec, count, free_port, metric, query, wait_until};
use gatelog_notify::testing::{SmtpServer, header};
use gatelog_store::testing::{TestClickHouse, random_database};
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "canary-test-token-0123456789";

fn now_ms() -> i64 {
    use gatelog_model::Clock as _;
    gatelog_model::SystemClock.now().0
}

/// A state whose first start is long past (the canary is due now), with `inflight` as given.
fn write_state(data_dir: &Path, inflight: serde_json::Value) {
    let state = serde_json::json!({ "first_start_ms": 0, "last_sent_ms": null, "inflight": inflight });
    std::fs::create_dir_all(data_dir.join("detect")).unwrap();
    std::fs::write(data_dir.join("detect/canary.json"), state.to_string()).unwrap();
}

fn spec(ch: &TestClickHouse, dir: &Path, database: &str, config: &Path) -> ServeSpec {
    ServeSpec {
        data_dir: dir.to_owned(),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: database.to_owned(),
        token: TOKEN.to_owned(),
        config: Some(config.to_owned()),
        release: false,
    }
}

fn runs(m: &str, outcome: &str) -> f64 {
    metric(m, "gatelog_canary_runs_total", &[("outcome", outcome)]).unwrap_or(-1.0)
}

fn canary_list(ch: &TestClickHouse, database: &str, dir: &Path) -> String {
    let dir = dir.to_string_lossy().into_owned();
    let url = ch.url();
    let args = ["canary", "list", "--clickhouse-url", &url, "--clickhouse-database", database, "--data-dir", &dir];
    let out = gatelog_e2e::gatelog(&args);
    assert!(out.status.success(), "{}", gatelog_e2e::describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_canary_is_detected_and_recorded_ok_and_one_cut_short_by_a_stop_is_judged_after_the_restart() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let database = random_database();
    let dir = tmp.path().join("data");
    // "old" was sent a minute ago by a serve that stopped before judging it; its decision
    // never reached this spool, so no alert can come: interrupted, 1 s after the restart.
    let sent = now_ms() - 60_000;
    write_state(
        &dir,
        serde_json::json!({ "run_id": "old", "event_id": "canary-old", "attempted_at_ms": sent,
            "sent_at_ms": sent, "deadline_ms": 1000, "verdict": null }),
    );
    let config = tmp.path().join("gatelog.toml");
    std::fs::write(&config, "[detect.canary]\ninterval = \"1h\"\ndeadline = \"5m\"\n").unwrap();
    let spec = spec(&ch, &dir, &database, &config);
    let mut serve = Serve::start(&spec).await;
    let (_, metrics, took) = wait_until(&spec.base_url(), "/metrics", Duration::from_secs(120), |_, m| {
        runs(m, "ok") >= 1.0 && runs(m, "interrupted") >= 1.0
    })
    .await;
    let latency = metric(&metrics, "gatelog_canary_last_latency_seconds", &[]).expect("a latency");
    println!("canary ok within {took:?} of the start; latency {latency} s");
    assert_eq!((runs(&metrics, "missed"), runs(&metrics, "failed_to_send")), (0.0, 0.0), "{metrics}");

    let q = |sql: &str| query(&ch.url(), &format!("{sql} FORMAT TSV"));
    let rows = q(&format!(
        "SELECT run_id, outcome, latency_ms, alert_id, missed_alert_id, 'end' FROM {database}.canary_runs FINAL ORDER BY sent_at_ms"
    ));
    let rows: Vec<Vec<&str>> = rows.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0][0], rows[0][1], rows[0][2], rows[0][3]), ("old", "interrupted", "-1", ""), "{rows:?}");
    let (run, alert) = (rows[1][0], rows[1][3]);
    assert_eq!(rows[1][1], "ok", "{rows:?}");
    let latency_ms: i64 = rows[1][2].parse().unwrap();
    assert!(latency_ms >= 0 && (latency_ms as f64 / 1000.0 - latency).abs() < 0.001, "{rows:?} vs {latency}");
    assert!(!alert.is_empty() && rows[1][4].is_empty(), "{rows:?}");

    // The canary took the receiver's road: its decision is stored, marked, and its alert is
    // the canary rule's, resolved as benign by gatelog, never handed to the mailer.
    let marked = format!(
        "SELECT count() FROM {database}.decisions FINAL WHERE dataset = 'gatelog_canary' AND event_id = 'canary-{run}' \
         AND principal = 'canary@gatelog.invalid' AND source = 'proxy'"
    );
    // (Detection may judge a record before the ClickHouse sink has stored it.)
    let started = std::time::Instant::now();
    while count(&ch.url(), &marked) != 1 {
        assert!(started.elapsed() < Duration::from_secs(60), "the canary's decision is not stored, marked, once");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alerts = q(&format!("SELECT rule_id, severity FROM {database}.alerts FINAL WHERE alert_id = '{alert}'"));
    assert_eq!(alerts, "canary\tinfo");
    let resolved = q(&format!(
        "SELECT actor, disposition FROM {database}.alert_events FINAL WHERE alert_id = '{alert}' AND action = 'resolve'"
    ));
    assert_eq!(resolved, "gatelog-canary\tbenign");
    assert_eq!(count(&ch.url(), &format!("SELECT count() FROM {database}.alerts FINAL")), 1, "no other alert");

    let listed = canary_list(&ch, &database, &dir);
    assert!(listed.contains(run) && listed.contains(" ok ") && listed.contains("interrupted"), "{listed}");
    assert_eq!(
        serve.terminate(Duration::from_secs(30)).await.map(|s| s.success()),
        Some(true),
        "{}",
        serve.log_tail(30)
    );
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn a_missed_canary_is_recorded_and_its_own_alert_mailed_to_on_call() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let database = random_database();
    let dir = tmp.path().join("data");
    write_state(&dir, serde_json::Value::Null);
    let smtp = SmtpServer::start(free_port(), &tmp.path().join("maildir")).await;
    let config = tmp.path().join("gatelog.toml");
    std::fs::write(
        &config,
        format!(
            "[detect.runtime]\nmax_linger = \"2s\"\nmax_batches = 100000\n\
             [detect.canary]\ninterval = \"1h\"\ndeadline = \"1s\"\n\
             [notify]\nto = [\"oncall@example.com\"]\npoll_interval = \"100ms\"\n\
             [notify.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"10s\"\n",
            smtp.port
        ),
    )
    .unwrap();
    let spec = spec(&ch, &dir, &database, &config);
    let mut serve = Serve::start(&spec).await;
    let sent = |m: &str| {
        metric(m, "gatelog_alert_deliveries_total", &[("kind", "alert"), ("channel", "smtp"), ("outcome", "sent")])
            .unwrap_or(0.0)
    };
    let (_, metrics, took) = wait_until(&spec.base_url(), "/metrics", Duration::from_secs(120), |_, m| {
        runs(m, "missed") >= 1.0 && sent(m) >= 1.0
    })
    .await;
    println!("missed canary mailed within {took:?} of the start");
    assert_eq!(runs(&metrics, "ok"), 0.0, "{metrics}");
    let row = query(
        &ch.url(),
        &format!("SELECT run_id, outcome, missed_alert_id, error FROM {database}.canary_runs FINAL FORMAT TSV"),
    );
    let row: Vec<&str> = row.split('\t').collect();
    assert_eq!(row[1], "missed", "{row:?}");
    let missed = row[2];
    assert!(!missed.is_empty() && row[3].contains("1000 ms deadline"), "{row:?}");
    let alert = query(
        &ch.url(),
        &format!("SELECT rule_id, severity FROM {database}.alerts FINAL WHERE alert_id = '{missed}' FORMAT TSV"),
    );
    assert_eq!(alert, "canary_missed\thigh");

    // The canary's own alert comes after the deadline; once stored, the mailer's next rounds
    // still leave it out: the one mail is the missed canary's.
    let canary_alerts = format!("SELECT count() FROM {database}.alerts FINAL WHERE rule_id = 'canary'");
    let started = std::time::Instant::now();
    while count(&ch.url(), &canary_alerts) == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "detection never stored the canary's alert");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until(&spec.base_url(), "/metrics", Duration::from_secs(30), |_, m| {
        metric(m, "gatelog_alert_outbox_pending", &[]) == Some(0.0)
    })
    .await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "only the missed canary pages");
    assert_eq!(header(&messages[0], "Message-ID"), Some(format!("<alert.{missed}@gatelog>")));
    assert!(messages[0].contains("was not detected"), "{}", messages[0]);
    let undelivered = format!(
        "SELECT count() FROM {database}.alert_deliveries FINAL WHERE alert_id IN \
         (SELECT alert_id FROM {database}.alerts FINAL WHERE rule_id = 'canary')"
    );
    assert_eq!(count(&ch.url(), &undelivered), 0, "no delivery attempt for the canary's own alert");
    let listed = canary_list(&ch, &database, &dir);
    assert!(listed.contains("missed") && listed.contains(&format!("{missed} (paged)")), "{listed}");
    assert_eq!(
        serve.terminate(Duration::from_secs(30)).await.map(|s| s.success()),
        Some(true),
        "{}",
        serve.log_tail(30)
    );
    drop(smtp);
    ch.stop().await.unwrap();
}
