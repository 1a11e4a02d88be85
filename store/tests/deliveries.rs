//! `alert_deliveries` against the real 18.16: an attempt recorded twice is one row; the
//! outbox lists opened alerts of the paging severities until one of their rows is `sent`
//! (failed and folded ones stay), oldest first; the rate limits' count is of alerts first
//! attempted since an instant; the decisions behind a finding are read by id. (The
//! statements also run on 26.9: `compat.rs`.)
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use gatelog_model::{Alert, AlertEvent, Severity, UnixMillis};
use gatelog_store::PartialCheck;
use gatelog_store::sql::deliveries::AlertDelivery;
use gatelog_store::testing::TestClickHouse;

const T: i64 = 1_740_990_713_712;

fn alert(id: &str, rule: &str, severity: Severity) -> Alert {
    Alert {
        alert_id: id.into(),
        tenant: "default".into(),
        dedup_key: format!("{rule}:{id}"),
        rule_id: rule.into(),
        severity,
        first_seen: UnixMillis(T),
        last_seen: UnixMillis(T),
        count: 1,
        summary: format!("alert {id}"),
        ..Alert::default()
    }
}

fn delivery(alert: &Alert, kind: &str, attempt: u32, outcome: &str, at: i64) -> AlertDelivery {
    AlertDelivery {
        alert_id: alert.alert_id.clone(),
        tenant: alert.tenant.clone(),
        rule_id: alert.rule_id.clone(),
        kind: kind.into(),
        message_id: format!("{kind}.{}@gatelog", alert.alert_id),
        attempt,
        channel: "smtp".into(),
        outcome: outcome.into(),
        error: if outcome == "failed" { "smtp server 127.0.0.1:25: it's down".into() } else { String::new() },
        at_ms: at,
        ..AlertDelivery::default()
    }
}

#[tokio::test]
async fn the_outbox_is_what_has_no_sent_row_and_attempts_are_recorded_once() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let a = alert("0a", "deny_burst_ip", Severity::High);
    let b = alert("0b", "new_country", Severity::Medium);
    let c = alert("0c", "new_country", Severity::Info);
    let d = alert("0d", "new_country", Severity::Low);
    store.write_alerts(&[a.clone(), b.clone(), c.clone(), d.clone()], UnixMillis(T)).await.unwrap();
    let opened = [(&a, 3), (&b, 1), (&c, 2), (&d, 4)];
    let events: Vec<AlertEvent> = opened.iter().map(|(x, dt)| AlertEvent::opened(x, UnixMillis(T + dt))).collect();
    store.append_alert_events(&events).await.unwrap();
    let paging = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];
    let ids =
        |v: Vec<gatelog_store::deliveries::UndeliveredOpen>| v.into_iter().map(|o| o.alert_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.undelivered_opens(&paging, 100).await.unwrap()),
        vec!["0b", "0a", "0d"],
        "oldest first, info left out"
    );
    assert_eq!(ids(store.undelivered_opens(&paging, 1).await.unwrap()), vec!["0b"]);

    let failed = delivery(&a, "alert", 1, "failed", T + 10);
    store.record_deliveries(&[failed.clone(), failed.clone()]).await.unwrap();
    store.record_deliveries(std::slice::from_ref(&failed)).await.unwrap(); // a retried insert
    let folded = delivery(&d, "digest", 0, "folded", T + 11);
    store.record_deliveries(&[folded.clone(), delivery(&b, "alert", 1, "sent", T + 12)]).await.unwrap();
    assert_eq!(ids(store.undelivered_opens(&paging, 100).await.unwrap()), vec!["0a", "0d"], "b was sent");
    let rows = store.deliveries_of(&["0a", "0d"]).await.unwrap();
    assert_eq!(rows, vec![failed.clone().seal(), folded.clone().seal()], "one row per attempt, every field back");
    assert_eq!(rows[0].error, "smtp server 127.0.0.1:25: it's down");

    let begun = store.deliveries_begun_since(UnixMillis(T)).await.unwrap();
    assert_eq!(begun, vec![("deny_burst_ip".to_owned(), 1), ("new_country".to_owned(), 1)], "folds do not count");
    store.record_deliveries(&[delivery(&a, "alert", 2, "sent", T + 20)]).await.unwrap();
    assert_eq!(store.deliveries_begun_since(UnixMillis(T)).await.unwrap().len(), 2, "a retry is not a new mail");
    assert!(store.deliveries_begun_since(UnixMillis(T + 11)).await.unwrap().iter().all(|(r, _)| r == "new_country"));
    assert_eq!(ids(store.undelivered_opens(&paging, 100).await.unwrap()), vec!["0d"]);
    let by_ids = store.alerts_by_ids(&["0d", "0a", "nope"]).await.unwrap();
    assert_eq!(by_ids, vec![a, d]);
    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn the_decisions_behind_a_finding_are_read_by_id() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let batch = common::batch("b-mail", 20, 0);
    store.write_batches(&[(3, &batch)], PartialCheck::Always).await.unwrap();
    let wanted: Vec<&str> = [7, 2, 11].iter().map(|i| batch.decisions[*i].event_id.as_str()).collect();
    let got = store.decisions_by_ids("default", &wanted, 10).await.unwrap();
    assert_eq!(
        got.iter().map(|d| d.event_id.as_str()).collect::<Vec<_>>(),
        vec![wanted[1], wanted[0], wanted[2]],
        "time order"
    );
    assert_eq!(got[0].principal, batch.decisions[2].principal);
    assert_eq!(store.decisions_by_ids("default", &wanted, 2).await.unwrap().len(), 2, "limited");
    assert!(store.decisions_by_ids("other-tenant", &wanted, 10).await.unwrap().is_empty());
    assert!(store.decisions_by_ids("default", &[], 10).await.unwrap().is_empty());
    drop(store);
    ch.stop().await.unwrap();
}
