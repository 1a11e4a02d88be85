//! History for detection's baselines, and the batches of a period with their gaps.

use super::world::{HOUR, T0, World};
use super::{period, reader};
use gatelog_model::{AccessDecision, Decision, UnixMillis};
use gatelog_store::read::{Activity, coverage, gaps_reconciliation};
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{PartialCheck, WriteBatch};
use std::collections::BTreeMap;
use std::time::Duration;

fn add(map: &mut BTreeMap<String, Activity>, key: String, d: &AccessDecision) {
    let deny = u64::from(d.decision == Decision::Deny);
    let a = map.entry(key).or_insert(Activity { events: 0, denies: 0, first: d.time, last: d.time });
    a.events += 1;
    a.denies += deny;
    a.first = a.first.min(d.time);
    a.last = a.last.max(d.time);
}

/// Monday 00:00 UTC = 0 … Sunday 23:00 = 167 (1970-01-01 was a Thursday).
fn hour_of_week(t: UnixMillis) -> u8 {
    let hours = t.0.div_euclid(3_600_000);
    let weekday = (hours.div_euclid(24) + 3).rem_euclid(7);
    (weekday * 24 + hours.rem_euclid(24)) as u8
}

#[tokio::test]
async fn principal_history_counts_each_event_once() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let db = store.database().to_owned();
    store.execute("SYSTEM", "decisions", &format!("SYSTEM STOP MERGES {db}.decisions")).await.unwrap();
    let world = World::generate(300, &[T0 + 2 * HOUR]);
    world.store(&store).await;
    let p = period(T0, T0 + 4 * HOUR);
    let (history, ipe) = reader(&store).principal_history(p).await.unwrap();

    // The model: per principal and dimension, per client IP, from the copies that count.
    let mut principals: BTreeMap<String, BTreeMap<&str, BTreeMap<String, Activity>>> = BTreeMap::new();
    let mut ips = BTreeMap::new();
    for c in world.winners().values().filter(|c| p.contains(c.d.time)) {
        let d = &c.d;
        add(&mut ips, d.client_ip.clone(), d);
        if d.principal.is_empty() {
            continue;
        }
        let dims = principals.entry(d.principal.clone()).or_default();
        add(dims.entry("events").or_default(), String::new(), d);
        add(dims.entry("country").or_default(), d.country.clone(), d);
        add(dims.entry("asn").or_default(), d.asn.to_string(), d);
        add(dims.entry("hour_of_week").or_default(), hour_of_week(d.time).to_string(), d);
        add(dims.entry("resource").or_default(), d.resource.clone(), d);
    }
    assert_eq!(history.client_ips, ips);
    assert_eq!(history.principals.keys().collect::<Vec<_>>(), principals.keys().collect::<Vec<_>>());
    for (name, profile) in &history.principals {
        let dims = &principals[name];
        assert_eq!(profile.activity, Some(dims["events"][""]), "{name}");
        let text = |m: &BTreeMap<u32, Activity>| m.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>();
        assert_eq!(profile.countries, dims["country"], "{name}");
        assert_eq!(text(&profile.asns), dims["asn"], "{name}");
        let hours: BTreeMap<String, Activity> =
            profile.hours_of_week.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(hours, dims["hour_of_week"], "{name}");
        assert_eq!(profile.resources, dims["resource"], "{name}");
    }
    let events: u64 = history.principals.values().filter_map(|p| p.activity).map(|a| a.events).sum();
    assert!(events > 100 && ipe.row_count > 50, "{events} events, {} rows", ipe.row_count);
    drop(store);
    ch.stop().await.unwrap();
}

fn batch(id: &str, dataset: &str, received_at: i64, decisions: usize) -> WriteBatch {
    let decisions: Vec<AccessDecision> = (0..decisions)
        .map(|i| {
            let mut d = AccessDecision::new(
                format!("{id}-{i}"),
                UnixMillis(received_at - 1000 + i as i64),
                dataset,
                gatelog_model::Source::Logpush,
            );
            d.received_at = UnixMillis(received_at);
            d
        })
        .collect();
    WriteBatch {
        batch_id: id.into(),
        dataset: dataset.into(),
        origin: format!("/v1/logpush/{dataset}"),
        received_at: UnixMillis(received_at),
        lines: decisions.len() as u64 + 1,
        probes: 0,
        bytes: 10,
        sha256: format!("sha-{id}"),
        decisions,
        raw: Vec::new(),
        dead_letters: Vec::new(),
        body: Vec::new(),
        decision_lines: Vec::new(),
    }
}

#[tokio::test]
async fn batches_of_a_period_once_each_with_their_gaps() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let db = store.database().to_owned();
    store.execute("SYSTEM", "ingest_batches", &format!("SYSTEM STOP MERGES {db}.ingest_batches")).await.unwrap();
    const MIN: i64 = 60_000;
    let plan = [
        ("h1", "http_requests", T0 + 2 * MIN, 3),
        ("h2", "http_requests", T0 + 12 * MIN, 2),
        ("h3", "http_requests", T0 + 50 * MIN, 4),
        ("f1", "firewall_events", T0 + 5 * MIN, 1),
        ("f2", "firewall_events", T0 + 15 * MIN, 1),
        ("f3", "firewall_events", T0 + 25 * MIN, 1),
        ("f4", "firewall_events", T0 + 35 * MIN, 1),
        ("f5", "firewall_events", T0 + 45 * MIN, 1),
        ("f6", "firewall_events", T0 + 55 * MIN, 1),
        ("early", "http_requests", T0 - MIN, 1),
        ("late", "http_requests", T0 + 60 * MIN, 1),
    ];
    for (seq, (id, dataset, at, n)) in plan.iter().enumerate() {
        store.write_batches(&[(seq as u64 + 1, &batch(id, dataset, *at, *n))], PartialCheck::Always).await.unwrap();
    }
    // A marker stored twice and not merged (a rewrite after a lost answer, say).
    let dup =
        format!("INSERT INTO {db}.ingest_batches SELECT * FROM {db}.ingest_batches WHERE batch_id IN ('h2', 'f3')");
    store.execute("INSERT", "ingest_batches", &dup).await.unwrap();

    let p = period(T0, T0 + 60 * MIN);
    let fetched = reader(&store).ingest_batches(p).await.unwrap();
    let ids: Vec<&str> = fetched.rows.iter().map(|b| b.batch_id.as_str()).collect();
    assert_eq!(ids, ["h1", "f1", "h2", "f2", "f3", "f4", "f5", "h3", "f6"]);
    assert_eq!(fetched.ipe.row_count, 9);
    assert_eq!(fetched.rows[2].spool_seq, 2);
    assert_eq!((fetched.rows[2].decisions, fetched.rows[2].lines), (2, 3));

    let silence = Duration::from_secs(15 * 60);
    let c = coverage(p, &fetched.rows, &["audit_logs", "firewall_events", "http_requests"], silence);
    assert_eq!(
        c.iter().map(|c| (c.dataset.as_str(), c.batches, c.gaps.len())).collect::<Vec<_>>(),
        [("audit_logs", 0, 1), ("firewall_events", 6, 0), ("http_requests", 3, 1),]
    );
    assert_eq!((c[2].gaps[0].from, c[2].gaps[0].to), (UnixMillis(T0 + 12 * MIN), UnixMillis(T0 + 50 * MIN)));
    assert_eq!(c[2].decisions, 9);
    let mut ipe = fetched.ipe.clone();
    ipe.reconciliations.push(gaps_reconciliation(&c, silence));
    assert!(!ipe.reconciled() && ipe.failed().next().unwrap().actual == "2");
    drop(store);
    ch.stop().await.unwrap();
}
