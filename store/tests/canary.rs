//! `canary_runs` and the canary's alert lookup against the real 18.16: a run recorded twice
//! is one row (the later wins), recent runs come newest first, a canary's alert is found by
//! its dedup key with when it was *first* stored (a replay storing it again later moves
//! nothing), and a canary's alert is never in the outbox even at a paging severity. (The
//! statements also run on 26.9: `compat.rs`.)
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use gatelog_model::canary::{CANARY_RULE, canary_dedup_key};
use gatelog_model::{Alert, AlertEvent, Severity, UnixMillis};
use gatelog_store::sql::canary::CanaryRun;
use gatelog_store::testing::TestClickHouse;

const T: i64 = 1_740_990_713_712;

fn run(id: &str, sent: i64, outcome: &str) -> CanaryRun {
    CanaryRun {
        run_id: id.into(),
        event_id: format!("canary-{id}"),
        sent_at_ms: sent,
        deadline_ms: 300_000,
        latency_ms: -1,
        outcome: outcome.into(),
        recorded_at_ms: sent + 1,
        ..CanaryRun::default()
    }
}

#[tokio::test]
async fn canary_runs_are_recorded_once_and_their_alerts_found_by_key() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    store.record_canary_runs(&[run("r1", T, "interrupted"), run("r2", T + 10, "missed")]).await.unwrap();
    let ok = CanaryRun { alert_id: "a1".into(), alert_at_ms: T + 900, latency_ms: 900, ..run("r1", T, "ok") };
    store.record_canary_runs(std::slice::from_ref(&ok)).await.unwrap();
    let back = store.recent_canary_runs(10).await.unwrap();
    assert_eq!(back, vec![run("r2", T + 10, "missed"), ok], "newest first, r1 once, as recorded last");
    assert_eq!(store.recent_canary_runs(1).await.unwrap().len(), 1);

    assert_eq!(store.canary_alert(CANARY_RULE, &canary_dedup_key("r1")).await.unwrap(), None);
    let alert = Alert {
        alert_id: "a1".into(),
        tenant: "default".into(),
        dedup_key: canary_dedup_key("r1"),
        rule_id: CANARY_RULE.into(),
        severity: Severity::High, // even at a paging severity a canary's alert is not mailed
        count: 1,
        first_seen: UnixMillis(T),
        last_seen: UnixMillis(T),
        ..Alert::default()
    };
    store.write_alerts(std::slice::from_ref(&alert), UnixMillis(T + 900)).await.unwrap();
    store.write_alerts(std::slice::from_ref(&alert), UnixMillis(T + 5000)).await.unwrap();
    let found = store.canary_alert(CANARY_RULE, &canary_dedup_key("r1")).await.unwrap().unwrap();
    assert_eq!((found.alert_id.as_str(), found.stored_ms), ("a1", T + 900));
    assert_eq!(store.canary_alert(CANARY_RULE, &canary_dedup_key("r2")).await.unwrap(), None);

    store.append_alert_events(&[AlertEvent::opened(&alert, UnixMillis(T + 900))]).await.unwrap();
    let paging = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];
    assert!(store.undelivered_opens(&paging, 10).await.unwrap().is_empty(), "a canary's alert does not page");
    ch.stop().await.unwrap();
}
