//! The detection tables against the real 18.16: a finding, alert or `open` event stored
//! twice (a replay) is one; alerts keep their highest count; the state comes from the
//! events; warm-up reads stored decisions in time order up to a spool position, and the
//! batches' arrivals. (The statements also run on 26.9: `compat.rs`.)
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use gatelog_model::{Alert, AlertAction, AlertEvent, Disposition, Finding, Severity, UnixMillis};
use gatelog_store::PartialCheck;
use gatelog_store::sql::detection::DetectorRun;
use gatelog_store::testing::TestClickHouse;

const T: i64 = 1_740_990_713_712;

fn finding(n: u32) -> Finding {
    Finding {
        rule_id: "deny_burst_ip".into(),
        rule_version: 1,
        severity: Severity::High,
        dedup_key: format!("deny_burst_ip:203.0.113.{n}"),
        tenant: "default".into(),
        window_start: UnixMillis(T + i64::from(n)),
        window_end: UnixMillis(T + 60_000),
        client_ip: format!("203.0.113.{n}"),
        event_ids: vec![format!("e{n}"), "it's".into()],
        summary: format!("burst {n}"),
        evidence: [("denials".to_owned(), "12".to_owned()), ("window".to_owned(), "5m".to_owned())].into(),
        ..Finding::default()
    }
    .seal()
}

#[tokio::test]
async fn findings_alerts_and_events_are_idempotent_and_read_back() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let findings: Vec<(Finding, String)> = (1..=3).map(|n| (finding(n), format!("a{n}"))).collect();
    store.write_findings(&findings, 7, UnixMillis(T)).await.unwrap();
    store.write_findings(&findings[..2], 9, UnixMillis(T + 5)).await.unwrap(); // a replay
    let by_rule = store.findings_by_rule().await.unwrap();
    assert_eq!(by_rule, vec![("deny_burst_ip".to_owned(), 3)], "each finding once");
    let back = store.alert_findings("a1", 10).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].finding, findings[0].0, "every field round-trips, evidence and quotes included");

    let mut alert = Alert {
        alert_id: "00ab".into(),
        tenant: "default".into(),
        dedup_key: "deny_burst_ip:203.0.113.1".into(),
        rule_id: "deny_burst_ip".into(),
        severity: Severity::High,
        first_seen: UnixMillis(T),
        last_seen: UnixMillis(T + 1),
        count: 1,
        ..Alert::default()
    };
    store.write_alerts(&[alert.clone()], UnixMillis(T)).await.unwrap();
    alert.count = 2;
    alert.last_seen = UnixMillis(T + 2);
    store.write_alerts(&[alert.clone()], UnixMillis(T)).await.unwrap();
    store.write_alerts(&[alert.clone()], UnixMillis(T)).await.unwrap(); // a replay
    let other = Alert { alert_id: "00cd".into(), last_seen: UnixMillis(T - 1), ..alert.clone() };
    store.write_alerts(std::slice::from_ref(&other), UnixMillis(T)).await.unwrap();
    assert_eq!(
        store.recent_alerts(10).await.unwrap(),
        vec![alert.clone(), other.clone()],
        "newest first, highest count"
    );
    assert_eq!(store.alerts_by_id_prefix("00A").await.unwrap(), vec![alert.clone()], "prefix, any case");
    assert_eq!(store.alerts_by_id_prefix("00").await.unwrap().len(), 2, "ambiguous prefix: both");
    assert!(store.alerts_by_id_prefix("0'; DROP").await.is_err(), "only hex digits");

    let open = AlertEvent::opened(&alert, UnixMillis(T));
    store.append_alert_events(&[open.clone(), AlertEvent::opened(&other, UnixMillis(T))]).await.unwrap();
    store.append_alert_events(&[AlertEvent { at: UnixMillis(T + 9), ..open.clone() }]).await.unwrap(); // a replay
    let resolve = AlertEvent {
        event_id: "r1".into(),
        alert_id: alert.alert_id.clone(),
        tenant: "default".into(),
        action: AlertAction::Resolve,
        at: UnixMillis(T + 100),
        actor: "oncall@example.com".into(),
        disposition: Some(Disposition::FalsePositive),
        note: "scanner, it's known".into(),
    };
    store.append_alert_events(std::slice::from_ref(&resolve)).await.unwrap();
    let events = store.alert_events(&[&alert.alert_id]).await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1], resolve);
    let mut states = store.alert_state_counts().await.unwrap();
    states.sort();
    assert_eq!(states, vec![("open".to_owned(), 1), ("resolved".to_owned(), 1)]);

    let run = DetectorRun {
        run_id: "r-1".into(),
        kind: "streaming".into(),
        rule_id: "streaming".into(),
        rule_version: "abc".into(),
        window_start_ms: T,
        window_end_ms: T + 10,
        spool_from: 3,
        spool_to: 9,
        rows_scanned: 100,
        findings: 3,
        started_at_ms: T,
        duration_ms: 12,
        outcome: "failed".into(),
        error: "clickhouse: 'timeout'".into(),
    };
    store.write_detector_run(&run).await.unwrap();
    assert_eq!(store.recent_detector_runs(5).await.unwrap(), vec![run]);
    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn history_reads_decisions_in_time_order_up_to_a_spool_position() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let mut early = common::batch("b-early", 30, 0);
    early.decisions.iter_mut().for_each(|d| d.spool_seq = 5);
    early.decisions.reverse(); // stored out of order
    let mut late = common::batch("b-late", 10, 0);
    late.decisions.iter_mut().for_each(|d| d.spool_seq = 9);
    store.write_batches(&[(5, &early)], PartialCheck::Always).await.unwrap();
    store.write_batches(&[(9, &late)], PartialCheck::Always).await.unwrap();
    let day = T.div_euclid(86_400_000);
    let mut scan = store.history_day(day, 5).unwrap();
    let mut times = Vec::new();
    while let Some(d) = scan.next().await.unwrap() {
        assert_eq!(d.spool_seq, 5);
        times.push(d.time.0);
    }
    assert_eq!(times.len(), 30, "only what the spool position covers");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "time order");
    let mut scan = store.history_day(day, 9).unwrap();
    let mut n = 0;
    while scan.next().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 40);
    let arrivals = store.history_arrivals(UnixMillis(T - 86_400_000), 100).await.unwrap();
    assert_eq!(arrivals.len(), 2);
    assert_eq!(arrivals[0].dataset, "http_requests");
    drop(store);
    ch.stop().await.unwrap();
}
