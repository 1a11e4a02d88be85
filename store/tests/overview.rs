//! The dashboard's overview (`Reader::overview`, from `decisions_by_time`) against a real
//! ClickHouse 18.16: every figure equals one computed independently from `decisions FINAL`
//! on data with Tail and Logpush copies (times milliseconds apart, in two datasets),
//! re-delivered batches, copies straddling the window's end, two tenants and gatelog's own
//! datasets; the window's edges and buckets; an empty store; and migration 16's copy of the
//! rows stored before it.
#![allow(clippy::unwrap_used)]

use gatelog_model::{AccessDecision, Decision, FixedClock, PrincipalType, Source, UnixMillis};
use gatelog_store::read::{OverviewRequest, Period, Reader};
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{Store, WriteBatch};
use std::collections::BTreeMap;
use std::sync::Arc;

/// 2025-03-03T00:00:00Z.
const T0: i64 = 1_740_960_000_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn reader(store: &Store) -> Reader {
    store.reader(Arc::new(FixedClock::new(UnixMillis(T0 + 30 * DAY))))
}

fn period(from: i64, to: i64) -> Period {
    Period::new(UnixMillis(from), UnixMillis(to)).unwrap()
}

fn decision(i: usize, time: i64, dataset: &str) -> AccessDecision {
    let mut d = AccessDecision::new(format!("ev-{i:04}"), UnixMillis(time), dataset, Source::Logpush);
    d.principal = if i.is_multiple_of(11) { String::new() } else { format!("user{}@example.com", i % 7) };
    d.principal_type = if d.principal.is_empty() { PrincipalType::Anonymous } else { PrincipalType::User };
    d.decision = match i % 10 {
        0..=2 => Decision::Deny,
        3 => Decision::Challenge,
        4 => Decision::Log,
        5 => Decision::Error,
        _ => Decision::Allow,
    };
    d.resource = format!("clickhouse:db.t{}", i % 5);
    d.client_ip = format!("198.51.100.{}", i % 6);
    d.tenant = if i.is_multiple_of(9) { "acme".into() } else { "default".into() };
    d
}

/// A batch of `decisions`, received at `received_ms` (later batches arrive later, as they
/// are stored: the writer stores batches in the order they arrive).
fn batch(id: &str, dataset: &str, received_ms: i64, decisions: Vec<AccessDecision>) -> WriteBatch {
    let decisions: Vec<AccessDecision> = decisions
        .into_iter()
        .map(|mut d| {
            d.received_at = UnixMillis(received_ms);
            d
        })
        .collect();
    WriteBatch {
        batch_id: id.into(),
        dataset: dataset.into(),
        origin: format!("/v1/logpush/{dataset}"),
        received_at: UnixMillis(received_ms),
        lines: decisions.len() as u64,
        probes: 0,
        bytes: 100,
        sha256: gatelog_model::sha256_hex(id.as_bytes()),
        decisions,
        raw: Vec::new(),
        dead_letters: Vec::new(),
        body: Vec::new(),
        decision_lines: Vec::new(),
    }
}

/// Stores the test's events: 300 plain events over two days, Worker events as Tail and
/// Logpush copies (3 ms apart, the Logpush copy arriving later), a re-delivered batch,
/// copies on both sides of `T0 + DAY` and of an hour, and canaries.
async fn load(store: &Store) {
    let mut received = T0 + 2 * DAY - 100_000;
    let mut next = || {
        received += 1000;
        received
    };
    let plain: Vec<AccessDecision> = (0..300).map(|i| decision(i, T0 + i as i64 * 577_000, "http_requests")).collect();
    store.write_batch(&batch("plain-1", "http_requests", next(), plain[..150].to_vec())).await.unwrap();
    let second = batch("plain-2", "http_requests", next(), plain[150..].to_vec());
    store.write_batch(&second).await.unwrap();
    // Worker events: Tail first, Logpush 3 ms later in time and arriving later.
    let workers: Vec<AccessDecision> =
        (300..360).map(|i| decision(i, T0 + (i as i64 - 300) * 1_400_000, "tail")).collect();
    let mut tail = workers.clone();
    for d in &mut tail {
        d.source = Source::Tail;
    }
    store.write_batch(&batch("tail-1", "tail", next(), tail)).await.unwrap();
    let logpush: Vec<AccessDecision> = workers
        .iter()
        .map(|d| {
            let mut l = d.clone();
            l.dataset = "workers_trace_events".into();
            l.time = UnixMillis(d.time.0 + 3);
            l
        })
        .collect();
    store.write_batch(&batch("logpush-1", "workers_trace_events", next(), logpush)).await.unwrap();
    // A re-delivery of a batch under a new batch id (as after a spool was made anew).
    let mut again = second.clone();
    again.batch_id = "plain-2-again".into();
    store.write_batch(&batch("plain-2-again", "http_requests", next(), again.decisions)).await.unwrap();
    // Straddling the end of the first day: the copy arriving last counts.
    let edge = |i: usize, t: i64, ds: &str| decision(i, t, ds);
    store
        .write_batch(&batch(
            "edge-tail",
            "tail",
            next(),
            vec![
                edge(400, T0 + DAY - 1, "tail"),
                edge(401, T0 + DAY + 1, "tail"),
                edge(402, T0 + 10 * HOUR + 50 * 60_000, "tail"),
            ],
        ))
        .await
        .unwrap();
    store
        .write_batch(&batch(
            "edge-logpush",
            "workers_trace_events",
            next(),
            vec![
                edge(400, T0 + DAY + 1, "workers_trace_events"),
                edge(401, T0 + DAY - 1, "workers_trace_events"),
                edge(402, T0 + 11 * HOUR + 20 * 60_000, "workers_trace_events"),
            ],
        ))
        .await
        .unwrap();
    let canaries: Vec<AccessDecision> =
        (500..510).map(|i| decision(i, T0 + (i as i64 - 500) * HOUR, "gatelog_canary")).collect();
    store.write_batch(&batch("canary-1", "gatelog_canary", next(), canaries)).await.unwrap();
}

/// What `decisions FINAL` says for `p`: `(time_ms, tenant, dataset, decision, principal,
/// resource, client_ip)` of every event in it.
type Event = (i64, String, String, String, String, String, String);

async fn final_events(store: &Store, p: Period) -> Vec<Event> {
    let sql = format!(
        "SELECT time_ms, tenant, dataset, decision, principal, resource, client_ip FROM {}.decisions FINAL \
         WHERE time_ms >= {} AND time_ms < {}",
        store.database(),
        p.from().0,
        p.to().0
    );
    store.client().query(&sql).fetch_all::<Event>().await.unwrap()
}

/// Checks every figure of the overview of `p` for `req` against `decisions FINAL`.
async fn matches_final(store: &Store, p: Period, req: &OverviewRequest) {
    let o = reader(store).overview(p, req).await.unwrap();
    let all = final_events(store, p).await;
    let tenant_ok = |e: &Event| req.tenants.is_empty() || req.tenants.contains(&e.1);
    let shown: Vec<&Event> = all.iter().filter(|e| tenant_ok(e) && !req.exclude_datasets.contains(&e.2)).collect();

    let mut series: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for e in &shown {
        *series.entry((e.0.div_euclid(o.bucket_ms) * o.bucket_ms, e.3.clone())).or_default() += 1;
    }
    let mut got: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for b in &o.series {
        for (name, n) in
            [("allow", b.allow), ("deny", b.deny), ("challenge", b.challenge), ("log", b.log), ("error", b.error)]
        {
            if n > 0 {
                got.insert((b.start.0, name.to_owned()), n);
            }
        }
    }
    assert_eq!(got, series, "series of {p}");
    assert!(o.series.first().unwrap().start.0 <= p.from().0 && o.series.last().unwrap().start.0 < p.to().0);

    let top = |key: &dyn Fn(&Event) -> String, denied_only: bool| -> Vec<(String, u64, u64)> {
        let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for e in shown.iter().filter(|e| !denied_only || e.3 == "deny") {
            let k = key(e);
            if !k.is_empty() {
                let v = m.entry(k).or_default();
                v.0 += 1;
                v.1 += u64::from(e.3 == "deny");
            }
        }
        let mut v: Vec<(String, u64, u64)> = m.into_iter().map(|(k, (c, d))| (k, c, d)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(usize::try_from(req.top).unwrap());
        v
    };
    let ranked = |r: &[gatelog_store::read::Ranked]| -> Vec<(String, u64, u64)> {
        r.iter().map(|r| (r.key.clone(), r.count, r.denied)).collect()
    };
    assert_eq!(ranked(&o.top_principals), top(&|e| e.4.clone(), false), "principals of {p}");
    assert_eq!(ranked(&o.top_denied_resources), top(&|e| e.5.clone(), true), "resources of {p}");
    assert_eq!(ranked(&o.top_denied_ips), top(&|e| e.6.clone(), true), "ips of {p}");

    let mut per_dataset: BTreeMap<String, u64> = BTreeMap::new();
    for e in all.iter().filter(|e| tenant_ok(e)) {
        *per_dataset.entry(e.2.clone()).or_default() += 1;
    }
    let got: BTreeMap<String, u64> =
        o.datasets.iter().filter(|d| d.events > 0).map(|d| (d.dataset.clone(), d.events)).collect();
    assert_eq!(got, per_dataset, "datasets of {p}");
}

#[tokio::test]
async fn the_overview_counts_each_event_as_decisions_final_does() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    load(&store).await;
    let everyone = OverviewRequest::default();
    let windows = [
        period(T0, T0 + DAY),                   // hourly buckets; copies straddle its end
        period(T0 + DAY, T0 + 2 * DAY + 1),     // the other side of it, and the last event
        period(T0 + 5 * HOUR, T0 + 9 * HOUR),   // 5-minute buckets
        period(T0 - 3 * DAY, T0 + 30 * DAY),    // daily buckets
        period(T0 + 577_000, T0 + 2 * 577_000), // one event exactly at `from`, none at `to`
    ];
    for p in windows {
        matches_final(&store, p, &everyone).await;
        let acme = OverviewRequest { tenants: vec!["acme".into()], top: 3, ..OverviewRequest::default() };
        matches_final(&store, p, &acme).await;
        let with_own = OverviewRequest { exclude_datasets: Vec::new(), ..OverviewRequest::default() };
        matches_final(&store, p, &with_own).await;
    }
    // Spot checks of what the comparisons rest on.
    let day = reader(&store).overview(period(T0, T0 + DAY), &everyone).await.unwrap();
    assert_eq!((day.bucket_ms, day.series.len()), (HOUR, 24));
    let events: u64 = day.series.iter().map(|b| b.allow + b.deny + b.challenge + b.log + b.error).sum();
    assert!(events > 150, "{events}");
    let names: Vec<(&str, bool)> = day.datasets.iter().map(|d| (d.dataset.as_str(), d.internal)).collect();
    assert_eq!(
        names,
        [("gatelog_canary", true), ("http_requests", false), ("tail", false), ("workers_trace_events", false)]
    );
    // Every Worker event counts as its Logpush copy, which arrived after the Tail one; the
    // Tail copies still show as deliveries (arrival and lag).
    let tail = &day.datasets[2];
    assert_eq!(tail.events, 0, "{tail:?}");
    assert!(tail.newest_arrival.is_some() && tail.lag_max_ms > 0, "{tail:?}");
    let http = &day.datasets[1];
    assert_eq!(http.batches, 0, "every batch arrived the next day: {http:?}");
    assert!(http.lag_p50_ms > 0 && http.lag_max_ms >= http.lag_p95_ms && http.lag_p95_ms >= http.lag_p50_ms);
    assert!(http.newest_arrival.is_some() && http.newest_event.unwrap().0 < T0 + DAY);
    let next = reader(&store).overview(period(T0 + DAY, T0 + 2 * DAY + 1), &everyone).await.unwrap();
    let http = next.datasets.iter().find(|d| d.dataset == "http_requests").unwrap();
    assert_eq!((http.batches, http.dead_letters), (3, 0), "plain-1, plain-2 and its re-delivery: {http:?}");
    assert!(http.newest_arrival.unwrap().0 > T0 + 2 * DAY - 100_000);
    let one = reader(&store).overview(period(T0 + 577_000, T0 + 2 * 577_000), &everyone).await.unwrap();
    let total: u64 = one.series.iter().map(|b| b.allow + b.deny + b.challenge + b.log + b.error).sum();
    assert_eq!(total, 1, "the event at `from` is in, the one at `to` is not");
    // Merges change nothing.
    let sql = format!("OPTIMIZE TABLE {}.decisions FINAL", store.database());
    store.client().query(&sql).execute().await.unwrap();
    matches_final(&store, period(T0, T0 + DAY), &everyone).await;
    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn an_empty_store_has_an_empty_overview() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let o = reader(&store).overview(period(T0, T0 + 6 * HOUR), &OverviewRequest::default()).await.unwrap();
    assert_eq!((o.bucket_ms, o.series.len()), (5 * 60_000, 72));
    assert!(o.series.iter().all(|b| b.allow + b.deny + b.challenge + b.log + b.error == 0));
    assert!(o.top_principals.is_empty() && o.top_denied_resources.is_empty() && o.top_denied_ips.is_empty());
    assert!(o.datasets.is_empty(), "{:?}", o.datasets);
    drop(store);
    ch.stop().await.unwrap();
}

/// Migration 16 copies the rows `decisions` held before it; the view then copies each insert.
#[tokio::test]
async fn migration_16_copies_the_rows_stored_before_it() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let db = store.database().to_owned();
    // As before migration 16: no view, no table.
    for sql in [format!("DROP TABLE {db}.decisions_by_time_mv"), format!("DROP TABLE {db}.decisions_by_time")] {
        store.client().query(&sql).execute().await.unwrap();
    }
    load(&store).await;
    let opts = gatelog_store::sql::SchemaOptions { database: db.clone(), ..Default::default() };
    let m16 = gatelog_store::sql::migrations(store.profile(), &opts).into_iter().find(|m| m.version == 16).unwrap();
    for sql in &m16.statements {
        store.client().query(sql).execute().await.unwrap();
    }
    let count = |table: &str| format!("SELECT count() FROM {db}.{table}");
    let copied: u64 = store.client().query(&count("decisions_by_time")).fetch_one().await.unwrap();
    let stored: u64 = store.client().query(&count("decisions")).fetch_one().await.unwrap();
    assert_eq!(copied, stored);
    matches_final(&store, period(T0, T0 + DAY), &OverviewRequest::default()).await;
    // Later inserts go through the view.
    let late = vec![decision(900, T0 + 2 * HOUR, "http_requests")];
    store.write_batch(&batch("late", "http_requests", T0 + 3 * DAY, late)).await.unwrap();
    let copied_after: u64 = store.client().query(&count("decisions_by_time")).fetch_one().await.unwrap();
    assert_eq!(copied_after, copied + 1);
    matches_final(&store, period(T0, T0 + DAY), &OverviewRequest::default()).await;
    drop(store);
    ch.stop().await.unwrap();
}
