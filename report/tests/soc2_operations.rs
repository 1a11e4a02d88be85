//! CC7.2–CC7.4 and CC8.1 against a real ClickHouse 18.16: each population's count equals a
//! count this test takes from ClickHouse itself, on tables holding what they can hold twice
//! (a detector run written twice, a canary run recorded twice, an alert row re-written with a
//! higher count, a replayed lifecycle event, a Tail/Logpush pair of one audit event); the
//! alert lifecycle's times; config versions recorded once per change, with the edit in the
//! diff; and the same report twice gives the same JSON.
#![allow(clippy::unwrap_used)]

use gatelog_model::{
    AccessDecision, Alert, AlertAction, AlertEvent, Batch, Disposition, Severity, Source, UnixMillis, sha256_hex,
};
use gatelog_report::soc2::{self, NoProgress, Soc2Input};
use gatelog_report::table::{Cell, Report, Table};
use gatelog_store::read::Period;
use gatelog_store::sql::canary::CanaryRun;
use gatelog_store::sql::config_versions::ConfigVersion;
use gatelog_store::sql::deliveries::AlertDelivery;
use gatelog_store::sql::detection::DetectorRun;
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{PartialCheck, Store};
use std::time::Duration;

const FROM: i64 = 1_740_787_200_000; // 2025-03-01T00:00:00Z
const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;
const TO: i64 = FROM + DAY;
const AS_OF: i64 = TO + DAY;

fn input() -> Soc2Input {
    Soc2Input {
        period: Period::new(UnixMillis(FROM), UnixMillis(TO)).unwrap(),
        as_of: UnixMillis(AS_OF),
        seed: "cc7 seed".into(),
        privileged_roles: vec![],
        policy: None,
        users: None,
        detectors: vec![],
        expected_datasets: vec!["audit_logs".into()],
        max_silence: Duration::from_secs(3600),
        parameters: vec![("from".into(), "2025-03-01".into())],
        regenerate: "gatelog report soc2 --from 2025-03-01 --to 2025-03-02".into(),
        gatelog_version: "test".into(),
    }
}

fn run(id: &str, version: &str, started: i64, outcome: &str) -> DetectorRun {
    DetectorRun {
        run_id: id.into(),
        kind: "scheduled".into(),
        rule_id: "admin_off_hours".into(),
        rule_version: version.into(),
        window_start_ms: started - 5 * MIN,
        window_end_ms: started,
        rows_scanned: 100,
        findings: 1,
        started_at_ms: started,
        duration_ms: 12,
        outcome: outcome.into(),
        error: if outcome == "ok" { String::new() } else { "Code: 241, memory limit".into() },
        ..DetectorRun::default()
    }
}

fn alert(id: &str, severity: Severity, count: u64) -> Alert {
    Alert {
        alert_id: id.into(),
        tenant: "default".into(),
        dedup_key: format!("k:{id}"),
        rule_id: "deny_burst_ip".into(),
        severity,
        first_seen: UnixMillis(FROM),
        last_seen: UnixMillis(FROM),
        count,
        summary: format!("alert {id}"),
        ..Alert::default()
    }
}

fn event(alert_id: &str, n: u32, action: AlertAction, at: i64, disposition: Option<Disposition>) -> AlertEvent {
    AlertEvent {
        event_id: format!("{alert_id}-{n}"),
        alert_id: alert_id.into(),
        tenant: "default".into(),
        action,
        at: UnixMillis(at),
        actor: format!("oncall{n}@example.com"),
        disposition,
        note: if n == 3 { "blocked the IP".into() } else { String::new() },
    }
}

async fn fill(store: &Store) {
    // Detector runs: r2 written twice (MergeTree keeps both rows), r0 before the period.
    let runs = [
        run("r0", "1", FROM - DAY, "ok"),
        run("r1", "1", FROM + 10 * MIN, "ok"),
        run("r2", "2", FROM + 20 * MIN, "ok"),
        run("r2", "2", FROM + 20 * MIN, "ok"),
        run("r3", "2", FROM + 30 * MIN, "failed"),
        run("r4", "2", TO + MIN, "ok"),
    ];
    for r in &runs {
        store.write_detector_run(r).await.unwrap();
    }
    // Canary runs: c1 recorded twice.
    let canary = |id: &str, at: i64, outcome: &str| CanaryRun {
        run_id: id.into(),
        event_id: format!("canary-{id}"),
        sent_at_ms: at,
        deadline_ms: 300_000,
        latency_ms: if outcome == "ok" { 1500 } else { -1 },
        outcome: outcome.into(),
        recorded_at_ms: at + 1,
        ..CanaryRun::default()
    };
    let c = [canary("c1", FROM + MIN, "ok"), canary("c2", FROM + 2 * MIN, "missed"), canary("c3", TO, "ok")];
    store.record_canary_runs(&c).await.unwrap();
    store.record_canary_runs(&c[..1]).await.unwrap();

    // Alerts: a1 re-written with a higher count; a0 opened before the period.
    let (a1, a2, a3, a0) = (
        alert("a1", Severity::High, 1),
        alert("a2", Severity::Low, 1),
        alert("a3", Severity::Medium, 1),
        alert("a0", Severity::High, 1),
    );
    store.write_alerts(&[a1.clone(), a2.clone(), a3.clone(), a0.clone()], UnixMillis(FROM + MIN)).await.unwrap();
    store.write_alerts(&[alert("a1", Severity::High, 4)], UnixMillis(FROM + 2 * MIN)).await.unwrap();
    let events = [
        event("a1", 1, AlertAction::Open, FROM + MIN, None),
        event("a1", 2, AlertAction::Ack, FROM + 6 * MIN, None),
        event("a1", 3, AlertAction::Resolve, FROM + 61 * MIN, Some(Disposition::TruePositive)),
        event("a2", 1, AlertAction::Open, FROM + 2 * MIN, None),
        event("a2", 2, AlertAction::Ack, FROM + 3 * MIN, None),
        event("a3", 1, AlertAction::Open, FROM + 3 * MIN, None),
        event("a3", 2, AlertAction::Ack, AS_OF + MIN, None), // after the report: not seen
        event("a0", 1, AlertAction::Open, FROM - MIN, None),
    ];
    store.append_alert_events(&events).await.unwrap();
    store.append_alert_events(&events[..1]).await.unwrap(); // a replayed open
    let delivery = AlertDelivery {
        alert_id: "a1".into(),
        tenant: "default".into(),
        rule_id: "deny_burst_ip".into(),
        kind: "alert".into(),
        message_id: "alert.a1@gatelog".into(),
        attempt: 1,
        channel: "smtp".into(),
        target: "127.0.0.1:25".into(),
        outcome: "sent".into(),
        at_ms: FROM + 2 * MIN,
        ..AlertDelivery::default()
    };
    store.record_deliveries(&[delivery.clone(), delivery]).await.unwrap();

    // Cloudflare's audit log: one event in two batches (as Tail and Logpush copies would be).
    let audit = |batch: &str, ids: &[&str], offset: i64| {
        let decisions: Vec<AccessDecision> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut d = AccessDecision::new(
                    (*id).into(),
                    UnixMillis(FROM + (i as i64 + 1) * 7 * MIN + offset),
                    "audit_logs",
                    Source::Logpush,
                );
                d.principal = "admin@example.com".into();
                d.action = "rule_update".into();
                d.resource = format!("cloudflare:firewall_rule/{id}");
                d.zone = "example.com".into();
                d
            })
            .collect();
        Batch {
            batch_id: batch.into(),
            dataset: "audit_logs".into(),
            origin: "/v1/logpush/audit_logs".into(),
            received_at: UnixMillis(FROM + 50 * MIN),
            lines: ids.len() as u64,
            probes: 0,
            bytes: 10,
            sha256: sha256_hex(batch.as_bytes()),
            decisions,
            raw: vec![],
            dead_letters: vec![],
            body: Vec::new(),
            decision_lines: Vec::new(),
        }
    };
    let (b1, b2) = (audit("b1", &["x1", "x2", "x3"], 0), audit("b2", &["x2"], 3));
    store.write_batches(&[(1, &b1)], PartialCheck::Always).await.unwrap();
    store.write_batches(&[(2, &b2)], PartialCheck::Always).await.unwrap();
}

async fn count(store: &Store, sql: &str) -> u64 {
    let sql = sql.replace("DB", store.database());
    store.client().query(&sql).fetch_one::<u64>().await.unwrap()
}

fn table<'a>(r: &'a Report, id: &str) -> &'a Table {
    r.sections.iter().flat_map(|s| &s.tables).find(|t| t.id == id).unwrap_or_else(|| panic!("no table {id}"))
}

fn column<'a>(t: &'a Table, name: &str) -> Vec<&'a Cell> {
    let i = t.columns.iter().position(|c| c.name == name).unwrap();
    t.rows.iter().map(|r| &r[i]).collect()
}

fn reconciled(t: &Table) {
    assert!(!t.ipe.reconciliations.is_empty() && t.ipe.reconciled(), "{}: {:?}", t.id, t.ipe.reconciliations);
}

#[tokio::test]
async fn operations_and_change_sections_count_once_and_reproduce() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    fill(&store).await;
    let versions = |content: &str, at: i64| {
        vec![ConfigVersion {
            kind: "policy".into(),
            name: "policy.toml".into(),
            path: "/etc/gatelog/policy.toml".into(),
            sha256: sha256_hex(content.as_bytes()),
            content: content.into(),
            recorded_at_ms: at,
            recorded_by: "gatelog@host1".into(),
            ..ConfigVersion::default()
        }]
    };
    let v1 = "[roles.analyst]\nresources = [\"a.*\"]\nmax_rows = 10\n";
    let v2 = "[roles.analyst]\nresources = [\"a.*\"]\nmax_rows = 99\n";
    assert_eq!(store.record_changed_config_versions(versions(v1, FROM - DAY)).await.unwrap().len(), 1);
    // A restart with the file unchanged records nothing; the edit records a new version.
    assert!(store.record_changed_config_versions(versions(v1, FROM + MIN)).await.unwrap().is_empty());
    assert_eq!(store.record_changed_config_versions(versions(v2, FROM + 2 * MIN)).await.unwrap().len(), 1);
    assert!(store.record_changed_config_versions(versions(v2, FROM + 3 * MIN)).await.unwrap().is_empty());

    let spill = tempfile::tempdir().unwrap();
    let report = soc2::generate(&store, &input(), spill.path(), &NoProgress).await.unwrap();
    let again = soc2::generate(&store, &input(), spill.path(), &NoProgress).await.unwrap();
    assert_eq!(serde_json::to_string(&report).unwrap(), serde_json::to_string(&again).unwrap());

    // CC7.2: runs once per run id; canaries once per run.
    let runs = table(&report, "cc7.2-runs");
    reconciled(runs);
    let counted = count(
        &store,
        &format!(
            "SELECT uniqExact(run_id) FROM DB.detector_runs WHERE started_at_ms >= {FROM} AND started_at_ms < {TO}"
        ),
    )
    .await;
    let listed: u64 = column(runs, "runs").iter().map(|c| if let Cell::UInt(n) = c { *n } else { 0 }).sum();
    assert_eq!((listed, counted), (3, 3));
    assert_eq!(table(&report, "cc7.2-failed-runs").rows.len(), 1);
    let canaries = table(&report, "cc7.2-canaries");
    reconciled(canaries);
    let counted = count(
        &store,
        &format!("SELECT uniqExact(run_id) FROM DB.canary_runs WHERE sent_at_ms >= {FROM} AND sent_at_ms < {TO}"),
    )
    .await;
    assert_eq!((canaries.rows.len() as u64, counted), (2, 2));
    let zones = table(&report, "cc7.2-zone-activity");
    reconciled(zones);
    assert_eq!(column(zones, "events"), [&Cell::UInt(3)]);
    assert_eq!(column(zones, "zone"), [&Cell::Text("example.com".into())]);
    let completeness = table(&report, "cc7.2-ingest-completeness");
    assert!(!completeness.ipe.reconciled(), "an hour-long silence is a gap");

    // CC7.3: the alerts opened in the period, each once, their lifecycle as of the report.
    let alerts = table(&report, "cc7.3-alerts");
    reconciled(alerts);
    let counted = count(
        &store,
        &format!(
            "SELECT uniqExact(alert_id) FROM DB.alert_events WHERE action = 'open' AND at_ms >= {FROM} AND at_ms < {TO}"
        ),
    )
    .await;
    assert_eq!((alerts.rows.len() as u64, counted), (3, 3));
    assert_eq!(
        column(alerts, "alert_id"),
        [&Cell::Text("a1".into()), &Cell::Text("a2".into()), &Cell::Text("a3".into())]
    );
    assert_eq!(column(alerts, "count")[0], &Cell::UInt(4), "the re-written row");
    assert_eq!(column(alerts, "to_respond_millis"), [&Cell::UInt(300_000), &Cell::UInt(60_000), &Cell::Null]);
    assert_eq!(column(alerts, "to_resolve_millis"), [&Cell::UInt(3_600_000), &Cell::Null, &Cell::Null]);
    assert_eq!(
        column(alerts, "state"),
        [&Cell::Text("resolved".into()), &Cell::Text("acknowledged".into()), &Cell::Text("open".into())]
    );
    assert_eq!(column(alerts, "events"), [&Cell::UInt(3), &Cell::UInt(2), &Cell::UInt(1)]);
    reconciled(table(&report, "cc7.3-alerts-by-state"));
    assert_eq!(table(&report, "cc7.3-still-open").rows.len(), 2);
    assert_eq!(table(&report, "cc7.3-alerts-sample").rows.len(), 3);

    // CC7.4: a1 (high, true_positive) with its three events and one delivery.
    let escalated = table(&report, "cc7.4-escalated");
    reconciled(escalated);
    assert_eq!(column(escalated, "alert_id"), [&Cell::Text("a1".into())]);
    let timeline = table(&report, "cc7.4-timelines");
    reconciled(timeline);
    let what: Vec<String> = column(timeline, "what").iter().map(|c| c.display()).collect();
    assert_eq!(what, ["open", "alert sent", "ack", "resolve"]);
    assert_eq!(column(timeline, "detail")[3], &Cell::Text("true_positive: blocked the IP".into()));

    // CC8.1: the audit events once each; versions; the recorded policy edit and its diff.
    let audit = table(&report, "cc8.1-cloudflare-audit");
    reconciled(audit);
    let counted = count(&store, &format!("SELECT uniqExact(event_id) FROM DB.decisions WHERE dataset = 'audit_logs' AND time_ms >= {FROM} AND time_ms < {TO}")).await;
    assert_eq!((audit.rows.len() as u64, counted), (3, 3));
    let versions_ran = table(&report, "cc8.1-detector-versions");
    reconciled(versions_ran);
    assert_eq!(column(versions_ran, "new_in_period"), [&Cell::UInt(0), &Cell::UInt(1)]);
    let recorded = table(&report, "cc8.1-config-versions");
    reconciled(recorded);
    assert_eq!(recorded.rows.len(), 1, "only the edit is in the period");
    let diffs = table(&report, "cc8.1-config-diffs");
    assert_eq!(column(diffs, "diff"), [&Cell::Text(" resources = [\"a.*\"]\n-max_rows = 10\n+max_rows = 99".into())]);
    assert_eq!(column(diffs, "previous_sha256"), [&Cell::Text(sha256_hex(v1.as_bytes()))]);
    ch.stop().await.unwrap();
}
