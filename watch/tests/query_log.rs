//! The query-log job against a real ClickHouse 18.16 playing both parts (the server the
//! proxy fronts, and gatelog's store in its own database): a query run with a decision's id
//! as `query_id` is judged on the figures `system.query_log` recorded (rows read the decision
//! never knew), once; the position is stored in `detector_runs`, so the next run starts where
//! this one ended; an unreachable fronted server is a `failed` run naming it, never the
//! password, and the window is not skipped.
#![allow(clippy::unwrap_used)]

use gatelog_detect::config::RunawayConfig;
use gatelog_detect::query_log::RULE_ID;
use gatelog_detect::{AlertsConfig, QueryLogConfig};
use gatelog_model::{AccessDecision, Batch, Clock, Decision, Source, SystemClock};
use gatelog_store::testing::TestClickHouse;
use gatelog_watch::query_log::{KIND, QueryLogError, QueryLogJob};
use std::sync::Arc;
use std::time::Duration;

async fn run(url: &str, sql: &str, params: &[(&str, &str)]) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let target = format!("{url}/?{}", query.join("&"));
    let r = reqwest::Client::new().post(target).body(sql.to_owned()).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{sql}: {text}");
    text
}

fn proxy_decision(id: &str, now: gatelog_model::UnixMillis) -> Batch {
    let mut d = AccessDecision::new(id.into(), now, "proxy", Source::Proxy);
    d.received_at = now;
    d.decision = Decision::Allow;
    d.principal = "bob@example.com".into();
    d.roles = vec!["analyst".into()];
    d.action = "select".into();
    d.resource = "clickhouse:system.numbers".into();
    d.query = "SELECT count() FROM numbers(3000000)".into();
    d.query_fingerprint = "fp-numbers".into();
    Batch {
        batch_id: format!("batch-{id}"),
        dataset: "proxy".into(),
        received_at: now,
        lines: 1,
        decisions: vec![d],
        ..Batch::default()
    }
}

fn config(url: &str, password: &str) -> QueryLogConfig {
    QueryLogConfig {
        enabled: true,
        url: url.to_owned(),
        password: password.into(),
        lag: Duration::ZERO,
        first_lookback: Duration::from_secs(600),
        ..QueryLogConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_query_is_judged_on_what_clickhouse_logged_once() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let url = ch.url();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let id = format!("qlog-{}", uuid_like());
    // The proxy's decision knew nothing of what the query read; the query log will.
    store.write_batch(&proxy_decision(&id, clock.now())).await.unwrap();
    run(&url, "SELECT count() FROM numbers(3000000)", &[("query_id", &id), ("log_queries", "1")]).await;
    // Another client's query, as big, with an id no decision has: not judged.
    run(&url, "SELECT count() FROM numbers(3000000)", &[("query_id", "someone-else-1"), ("log_queries", "1")]).await;
    run(&url, "SYSTEM FLUSH LOGS", &[]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // the window ends before now's second

    let runaway = RunawayConfig { rows_read: 1_000_000, ..RunawayConfig::default() };
    let mut job =
        QueryLogJob::new(config(&url, ""), runaway.clone(), &AlertsConfig::default(), store.clone(), clock.clone())
            .unwrap();
    let first = job.run_once().await.unwrap().expect("a window to judge");
    assert!(first.rows >= 2, "{first:?}");
    assert_eq!((first.matched, first.findings, first.alerts_opened), (1, 1, 1), "{first:?}");
    let alerts = gatelog_watch::service::list(&store, 10, None).await.unwrap();
    let alert = alerts.iter().find(|a| a.alert.rule_id == RULE_ID).expect("the runaway alert");
    assert!(alert.alert.summary.contains("system.query_log"), "{}", alert.alert.summary);
    let shown = gatelog_watch::service::show(&store, &alert.alert.alert_id).await.unwrap();
    let finding = &shown.findings[0];
    // What the server read (whole blocks of numbers()), not what the query asked for.
    let read: u64 = finding.finding.evidence["read_rows"].parse().unwrap();
    assert!((3_000_000..3_200_000).contains(&read), "{read}");
    assert_eq!(finding.finding.event_ids, vec![id.clone()]);

    // The position is stored: a new job starts where the first ended, judging nothing again.
    let done = store.completed_windows(KIND).await.unwrap();
    assert_eq!(done.iter().map(|w| w.ok_runs).sum::<u64>(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut again =
        QueryLogJob::new(config(&url, ""), runaway.clone(), &AlertsConfig::default(), store.clone(), clock.clone())
            .unwrap();
    let second = again.run_once().await.unwrap().expect("the next window");
    assert_eq!(second.from_s, first.to_s, "resumed where the last run ended");
    assert_eq!(second.findings, 0);

    // The fronted server unreachable: a failed run naming it (not the password); not skipped.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mut down = QueryLogJob::new(
        config(&closed, "not-a-real-password-4711"),
        runaway,
        &AlertsConfig::default(),
        store.clone(),
        clock,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let e = down.run_once().await.unwrap_err();
    assert!(matches!(e, QueryLogError::Fronted { .. }), "{e}");
    assert!(e.to_string().contains(&closed) && !e.to_string().contains("not-a-real-password"), "{e}");
    let done = store.completed_windows(KIND).await.unwrap();
    assert_eq!(done.iter().map(|w| w.ok_runs).sum::<u64>(), 2, "the failed run moved nothing");
    assert!(done.iter().any(|w| w.first_failed_end_ms > 0), "the failure is recorded");
    ch.stop().await.unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn uuid_like() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
