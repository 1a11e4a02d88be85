//! The scheduler of rules as code on a real ClickHouse 18.16, its clock injected: windows run
//! in order, one `detector_runs` row each; a restart resumes after the last completed window;
//! a failing query, and ClickHouse down, record `failed` runs and the window is retried
//! until it succeeds, nothing skipped.
#![allow(clippy::unwrap_used)]

use gatelog_detect::{DetectConfig, SqlRule};
use gatelog_model::{AccessDecision, Batch, Clock, Decision, FixedClock, Source, UnixMillis};
use gatelog_store::Store;
use gatelog_store::managed::{ManagedClickHouse, ManagedOptions};
use gatelog_store::sql::detection::DetectorRun;
use gatelog_store::testing::TestClickHouse;
use gatelog_watch::schedule::{SCHEDULED_KIND, ScheduleStats, Scheduler, Watermark};
use std::sync::Arc;
use std::sync::atomic::Ordering;

const MIN: i64 = 60_000;
/// 2025-06-02T07:00:00Z, a multiple of five minutes.
const T0: i64 = 1_748_847_600_000;

/// Denials per IP within the window; `extra` is spliced into the WHERE clause.
fn rule(extra: &str) -> SqlRule {
    let text = format!(
        r#"
id = "denials_per_ip"
version = 3
title = "Denials per IP"
description = "An IP denied at least threshold times."
runbook = "Look at it."
severity = "high"
soc2 = ["CC7.2"]
schedule = "5m"
window = "10m"
threshold = 5
query = """
SELECT tenant, client_ip, count() AS count, min(time_ms) AS window_start_ms, max(time_ms) AS window_end_ms,
    arraySlice(arraySort(groupArray(event_id)), 1, 20) AS event_ids
FROM {{db}}.decisions
WHERE received_at_ms >= {{from}} AND received_at_ms < {{to}} AND time >= {{time_from}} AND time < {{time_to}}
    AND decision = 'deny' {extra}
GROUP BY tenant, client_ip
HAVING count() >= {{threshold}}
ORDER BY tenant, client_ip
"""
dedup_key = "{{rule}}:{{client_ip}}"
summary = "{{client_ip}} denied {{count}} times"
"#
    );
    SqlRule::parse("rules/denials_per_ip.toml", &text).unwrap()
}

/// Eight denials from 203.0.113.9, received between `T0 + 12m` and `T0 + 13m`.
async fn seed(store: &Store) {
    let decisions: Vec<AccessDecision> = (0..8)
        .map(|n| {
            let mut d = AccessDecision::new(
                format!("deny-{n}"),
                UnixMillis(T0 + 11 * MIN + n * 1000),
                "access_requests",
                Source::Logpush,
            );
            d.decision = Decision::Deny;
            d.client_ip = "203.0.113.9".into();
            d.received_at = UnixMillis(T0 + 12 * MIN + n * 1000);
            d
        })
        .collect();
    let batch = Batch {
        batch_id: "seed".into(),
        dataset: "access_requests".into(),
        received_at: UnixMillis(T0 + 12 * MIN),
        lines: decisions.len() as u64,
        decisions,
        ..Batch::default()
    };
    store.write_batch(&batch).await.unwrap();
}

fn new_scheduler(rule: SqlRule, clock: &Arc<FixedClock>) -> (Scheduler, Arc<ScheduleStats>) {
    let mut config = DetectConfig::default();
    config.sql_rules.lag = std::time::Duration::from_secs(60);
    config.sql_rules.retry_initial_backoff = std::time::Duration::from_secs(5);
    let stats = Arc::new(ScheduleStats::default());
    let watermark: Watermark = {
        let clock = clock.clone();
        Arc::new(move || Some(clock.now()))
    };
    let clock: Arc<dyn Clock> = clock.clone();
    (Scheduler::new(vec![rule], config, clock, watermark, stats.clone()), stats)
}

/// The scheduled runs, oldest window first (then ok before failed, by start).
async fn runs(store: &Store) -> Vec<DetectorRun> {
    let mut all: Vec<DetectorRun> =
        store.recent_detector_runs(1000).await.unwrap().into_iter().filter(|r| r.kind == SCHEDULED_KIND).collect();
    all.sort_by_key(|r| (r.window_end_ms, r.started_at_ms, r.outcome.clone()));
    all
}

fn ends(runs: &[DetectorRun], outcome: &str) -> Vec<i64> {
    runs.iter().filter(|r| r.outcome == outcome).map(|r| (r.window_end_ms - T0) / MIN).collect()
}

#[tokio::test]
async fn windows_run_in_order_once_each_and_a_restart_resumes_after_the_last() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    seed(&store).await;
    let clock = Arc::new(FixedClock::new(UnixMillis(T0 + MIN + 500)));

    // A new rule starts with the newest due window: the one ending at T0 (lag 1m).
    let (mut first, stats) = new_scheduler(rule(""), &clock);
    first.step(&store).await;
    assert_eq!(ends(&runs(&store).await, "ok"), vec![0]);
    // Nothing more is due until T0 + 5m + lag.
    clock.set(UnixMillis(T0 + 5 * MIN + 59_000));
    first.step(&store).await;
    assert_eq!(runs(&store).await.len(), 1);

    // Half an hour on: every window since, oldest first, one run each.
    clock.set(UnixMillis(T0 + 31 * MIN));
    first.step(&store).await;
    let got = runs(&store).await;
    assert_eq!(ends(&got, "ok"), vec![0, 5, 10, 15, 20, 25, 30]);
    for r in &got {
        assert_eq!((r.rule_id.as_str(), r.rule_version.as_str()), ("denials_per_ip", "3"));
        assert_eq!(r.window_end_ms - r.window_start_ms, 10 * MIN, "{r:?}");
        assert!(r.started_at_ms >= T0, "{r:?}");
    }
    // The denials arrived in [12m, 13m): the windows ending at 15m and 20m hold them; both
    // find the same activity, so one finding and one alert.
    let with_findings: Vec<i64> = got.iter().filter(|r| r.findings > 0).map(|r| (r.window_end_ms - T0) / MIN).collect();
    assert_eq!(with_findings, vec![15, 20]);
    assert!(got.iter().all(|r| r.rows_scanned >= r.findings), "{got:?}");
    let alerts = store.recent_alerts(10).await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!((alerts[0].rule_id.as_str(), alerts[0].client_ip.as_str()), ("denials_per_ip", "203.0.113.9"));
    assert_eq!(alerts[0].dedup_key, "denials_per_ip:203.0.113.9");
    let events = store.alert_events(&[alerts[0].alert_id.as_str()]).await.unwrap();
    assert_eq!(events.len(), 1, "one open event: {events:?}");
    assert_eq!(store.findings_by_rule().await.unwrap(), vec![("denials_per_ip".to_owned(), 1)]);
    assert_eq!(stats.runs_ok.load(Ordering::Relaxed), 7);
    drop(first);

    // A restart (a fresh scheduler) a quarter of an hour later resumes after 30m: 35m to 45m.
    clock.set(UnixMillis(T0 + 46 * MIN));
    let (mut second, _) = new_scheduler(rule(""), &clock);
    second.step(&store).await;
    assert_eq!(ends(&runs(&store).await, "ok"), vec![0, 5, 10, 15, 20, 25, 30, 35, 40, 45]);
    assert_eq!(store.recent_alerts(10).await.unwrap().len(), 1);

    // A new version of the rule has no completed window: it starts at the newest due one.
    let mut v4 = rule("");
    v4.version = 4;
    let (mut third, _) = new_scheduler(v4, &clock);
    third.step(&store).await;
    let v4_runs: Vec<DetectorRun> = runs(&store).await.into_iter().filter(|r| r.rule_version == "4").collect();
    assert_eq!(ends(&v4_runs, "ok"), vec![45]);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_run_is_recorded_as_failed_and_its_window_retried_until_it_succeeds() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    seed(&store).await;
    let db = store.database().to_owned();
    let clock = Arc::new(FixedClock::new(UnixMillis(T0 + 16 * MIN)));
    // The query reads a table that does not exist yet: ClickHouse refuses it.
    let (mut scheduler, stats) =
        new_scheduler(rule(&format!("AND client_ip NOT IN (SELECT ip FROM {db}.allowlist)")), &clock);
    scheduler.step(&store).await;
    let got = runs(&store).await;
    assert_eq!((ends(&got, "failed"), ends(&got, "ok")), (vec![15], vec![]), "{got:?}");
    assert!(got[0].error.contains("allowlist"), "the cause is recorded: {}", got[0].error);
    assert!(got[0].error.contains("denials_per_ip"), "and the rule: {}", got[0].error);
    assert_eq!(stats.runs_failed.load(Ordering::Relaxed), 1);

    // Within the backoff (5 s) nothing is retried; later windows wait behind the failed one.
    clock.set(UnixMillis(T0 + 16 * MIN + 4_000));
    scheduler.step(&store).await;
    assert_eq!(runs(&store).await.len(), 1);

    // Still failing after the backoff: a second failed run, and the backoff doubles (10 s).
    clock.set(UnixMillis(T0 + 16 * MIN + 5_000));
    scheduler.step(&store).await;
    clock.set(UnixMillis(T0 + 16 * MIN + 14_000));
    scheduler.step(&store).await;
    assert_eq!(ends(&runs(&store).await, "failed"), vec![15, 15]);
    assert_eq!(stats.runs_failed.load(Ordering::Relaxed), 2);

    // Restarted before any window completed: it resumes at the failed window, not the
    // newest due one (nothing skipped).
    let (mut scheduler, stats) =
        new_scheduler(rule(&format!("AND client_ip NOT IN (SELECT ip FROM {db}.allowlist)")), &clock);

    // The table appears: the same window succeeds, then the one due meanwhile.
    store
        .execute("CREATE", "allowlist", &format!("CREATE TABLE {db}.allowlist (ip String) ENGINE = Memory"))
        .await
        .unwrap();
    clock.set(UnixMillis(T0 + 21 * MIN));
    scheduler.step(&store).await;
    let got = runs(&store).await;
    assert_eq!(ends(&got, "ok"), vec![15, 20], "{got:?}");
    assert_eq!(store.recent_alerts(10).await.unwrap().len(), 1);

    // ClickHouse down: the run fails, and its record waits in memory.
    ch.server_mut().stop().await.unwrap();
    clock.set(UnixMillis(T0 + 26 * MIN));
    scheduler.step(&store).await;
    assert_eq!(scheduler.pending_runs(), 1);
    assert_eq!(stats.runs_failed.load(Ordering::Relaxed), 1);

    // Back (same data dir, another port): the failed run is written, the window retried.
    let revived = ManagedClickHouse::start(ch.data_dir(), ManagedOptions::default()).await.unwrap();
    let store = Store::connect(&TestClickHouse::config_for(&revived, &db)).await.unwrap();
    clock.set(UnixMillis(T0 + 27 * MIN));
    scheduler.step(&store).await;
    assert_eq!(scheduler.pending_runs(), 0);
    let got = runs(&store).await;
    assert_eq!(ends(&got, "ok"), vec![15, 20, 25], "{got:?}");
    assert_eq!(ends(&got, "failed"), vec![15, 15, 25], "{got:?}");
    let down = got.iter().find(|r| r.outcome == "failed" && r.window_end_ms == T0 + 25 * MIN).unwrap();
    assert!(!down.error.is_empty(), "{down:?}");
    let mut revived = revived;
    revived.stop().await.unwrap();
}
