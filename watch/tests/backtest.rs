//! The backtest against real ClickHouse 18.16: history before `--from` is learnt without
//! findings, the period is judged as the stream would have been, a second stored copy of a
//! batch counts once, `--rule` keeps only that rule's findings, and nothing is written.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_detect::DetectConfig;
use gatelog_model::{Batch, UnixMillis};
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{PartialCheck, Store};
use gatelog_watch::backtest::{BacktestError, BacktestRequest, backtest};

mod support;

use support::{FIVE_MIN, T0};

const BATCHES: i64 = 24;

fn batch(i: i64, id: &str) -> Batch {
    support::batch(i, id, "198.51.100.23")
}

async fn stored_world(ch: &TestClickHouse) -> Store {
    let config =
        gatelog_store::StoreConfig { database: gatelog_store::testing::random_database(), ..ch.store_config() };
    let store = Store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();
    for i in 0..BATCHES {
        store.write_batches(&[(0, &batch(i, &format!("batch-{i}")))], PartialCheck::Always).await.unwrap();
    }
    // Batch 9 delivered a second time in another batch (same events): not merged yet.
    store.write_batches(&[(0, &batch(9, "batch-9-again"))], PartialCheck::Always).await.unwrap();
    store
}

fn request(from_batch: i64, rules: &[&str]) -> BacktestRequest {
    BacktestRequest {
        from: UnixMillis(T0 + from_batch * FIVE_MIN),
        to: UnixMillis(T0 + BATCHES * FIVE_MIN),
        rules: rules.iter().map(|r| (*r).to_owned()).collect(),
    }
}

#[tokio::test]
async fn it_judges_the_period_after_learning_what_came_before_and_stores_nothing() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = stored_world(&ch).await;
    let config = DetectConfig::default();
    let lines = std::sync::Mutex::new(Vec::new());
    let progress = |line: String| lines.lock().unwrap().push(line);

    // From batch 6: batches 0..6 (bursts in 0 and 3) are history; bursts in 6, 9, .., 21 judged.
    let report = backtest(&store, &config, &request(6, &[]), &progress).await.unwrap();
    assert_eq!(report.warmed, 6 * 10 + 2 * 12);
    assert_eq!(report.judged, 18 * 10 + 6 * 12);
    assert_eq!(report.duplicates, 10 + 12, "the second copy of batch 9 is skipped");
    let bursts: Vec<_> = report.findings.iter().filter(|f| f.rule_id == "deny_burst_ip").collect();
    assert_eq!(bursts.len(), 6, "one finding per burst in the period: {bursts:#?}");
    assert!(bursts.iter().all(|f| f.client_ip == "198.51.100.23" && f.window_start.0 >= T0 + 6 * FIVE_MIN));
    let alerts: Vec<_> = report.alerts.iter().filter(|a| a.rule_id == "deny_burst_ip").collect();
    assert_eq!(alerts.len(), 1, "bursts 15 minutes apart are one alert: {alerts:#?}");
    assert_eq!(alerts[0].count, 6);
    assert!(!lines.lock().unwrap().is_empty(), "progress was reported");

    // --rule keeps only that rule's findings.
    let only = backtest(&store, &config, &request(6, &["new_country"]), &progress).await.unwrap();
    assert!(only.findings.iter().all(|f| f.rule_id == "new_country"), "{:#?}", only.findings);
    assert!(only.alerts.iter().all(|a| a.rule_id == "new_country"));
    assert_eq!(only.judged, report.judged);

    // An unknown rule and an empty period are refused before anything runs.
    let err = backtest(&store, &config, &request(6, &["no_such_rule"]), &progress).await.unwrap_err();
    assert!(matches!(err, BacktestError::UnknownRule { .. }), "{err}");
    assert!(err.to_string().contains("deny_burst_ip"), "the message lists the rules: {err}");
    let err = backtest(&store, &config, &request(BATCHES, &[]), &progress).await.unwrap_err();
    assert!(matches!(err, BacktestError::EmptyPeriod { .. }), "{err}");

    // Nothing was written.
    assert!(store.recent_alerts(10).await.unwrap().is_empty());
    assert!(store.recent_detector_runs(10).await.unwrap().is_empty());
    ch.stop().await.unwrap();
}
