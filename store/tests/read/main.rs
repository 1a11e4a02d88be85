//! The read side against a real ClickHouse 18.16: every figure counts each event once (Tail
//! and Logpush copies, re-delivered batches, rows a ReplacingMergeTree has not merged),
//! equals what the model in `world` computes, stays the same once ClickHouse merges, and
//! comes with an IPE record whose SQL, run again, gives the same rows.
#![allow(clippy::unwrap_used)]

mod batches;
mod world;

use gatelog_model::{AccessDecision, Clock, Decision, FixedClock, UnixMillis};
use gatelog_store::read::{DecisionFilter, EventCount, Fetched, PendingReconciliation, Period, ReadQuery, Reader};
use gatelog_store::testing::TestClickHouse;
use gatelog_store::{Store, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;
use world::{HOUR, MONTH, T0, World};

/// When the tests say the queries ran.
const NOW: i64 = 1_767_225_600_000; // 2026-01-01

pub fn reader(store: &Store) -> Reader {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(UnixMillis(NOW)));
    store.reader(clock)
}

pub fn period(from: i64, to: i64) -> Period {
    Period::new(UnixMillis(from), UnixMillis(to)).unwrap()
}

async fn rows_in(store: &Store, table: &str) -> u64 {
    let sql = format!("SELECT count() FROM {}.{table}", store.database());
    store.client().query(&sql).fetch_one().await.unwrap()
}

/// Runs `sql` as an auditor would paste it, and returns its rows as text lines.
async fn rerun(store: &Store, sql: &str) -> Vec<String> {
    let bytes = store.client().query(sql).fetch_bytes("TSV").unwrap().collect().await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap().lines().map(str::to_owned).collect()
}

/// Every figure for `p`, as comparable values: the population (`tenant/event_id`, with the
/// batch of the copy that counted) and the counts.
async fn figures(reader: &Reader, p: Period) -> (Vec<String>, BTreeMap<(String, String), u64>) {
    let all = reader.decisions(p, &DecisionFilter::default()).await.unwrap();
    let counts = reader.decision_counts(p).await.unwrap();
    let ids = all.rows.iter().map(|r| format!("{}/{} {}", r.tenant, r.event_id, r.batch_id)).collect();
    let counts = counts.rows.into_iter().map(|c| ((c.dataset, c.decision), c.count)).collect();
    (ids, counts)
}

/// `[a, b)` and `[b, c)` hold exactly the events of `[a, c)` whose copy that survives falls in
/// each, as the model says, each with the batch of that copy.
async fn splits_exactly(reader: &Reader, world: &World, [a, b, c]: [i64; 3]) {
    let model = |p: Period| -> Vec<String> {
        let winners = world.winners();
        let mut events: Vec<_> = winners.values().filter(|w| p.contains(w.d.time)).collect();
        events.sort_by_key(|w| (w.d.time, w.d.tenant.clone(), w.d.event_id.clone()));
        events.iter().map(|w| format!("{}/{} {}", w.d.tenant, w.d.event_id, w.batch_id)).collect()
    };
    let (first, _) = figures(reader, period(a, b)).await;
    let (second, _) = figures(reader, period(b, c)).await;
    let (whole, _) = figures(reader, period(a, c)).await;
    assert_eq!(first, model(period(a, b)), "[{a}, {b})");
    assert_eq!(second, model(period(b, c)), "[{b}, {c})");
    assert_eq!([first, second].concat(), whole, "[{a}, {c})");
    // And the independent count agrees, for all events and for those whose copy is Tail's.
    let tail = DecisionFilter { datasets: vec!["tail".into()], ..DecisionFilter::default() };
    for p in [period(a, b), period(b, c), period(a, c)] {
        let mut pending = Vec::new();
        for filter in [&DecisionFilter::default(), &tail] {
            let mut population = reader.decisions(p, filter).await.unwrap();
            let check = reader.reconcile_population(&mut population.ipe, p, filter).await.unwrap();
            assert!(check.passed, "{p} {filter:?}: {check:?}");
            let figure = population.rows.len() as u64;
            pending.push(PendingReconciliation::new("population", "rows", figure, filter.clone()));
        }
        // Both figures in one pass give the same verdicts.
        let many = reader.reconcile_many(p, &pending).await.unwrap();
        assert!(many.len() == 2 && many.iter().all(|r| r.passed), "{p}: {many:?}");
    }
}

#[tokio::test]
async fn populations_and_counts_count_each_event_once() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let db = store.database().to_owned();
    store.execute("SYSTEM", "decisions", &format!("SYSTEM STOP MERGES {db}.decisions")).await.unwrap();
    let (start, mid, end) = (T0, T0 + 3 * HOUR, T0 + 6 * HOUR);
    let world = World::generate(400, &[MONTH, start, mid, end]);
    world.store(&store).await;
    let reader = reader(&store);
    let whole = period(start, end);

    // The data has what the read side must see through: more rows than events.
    let winners = world.winners();
    assert_eq!(rows_in(&store, "decisions").await, world.rows() as u64);
    assert!(world.rows() > winners.len() + 100, "{} rows, {} events", world.rows(), winners.len());
    let (not_highest_seq, not_last_inserted) = world.rule_matters();
    assert!(not_highest_seq > 10 && not_last_inserted > 0, "{not_highest_seq} {not_last_inserted}");

    // The population: each event once, as its copy that survives, oldest first.
    let expected = world.population(whole, |_| true);
    let fetched = reader.decisions(whole, &DecisionFilter::default()).await.unwrap();
    let got: Vec<(i64, String, String)> =
        fetched.rows.iter().map(|r| (r.time_ms, r.tenant.clone(), r.event_id.clone())).collect();
    assert_eq!(got, expected);
    assert!(got.iter().any(|e| e.1 == "acme"), "an event id of two tenants is two events");
    for row in &fetched.rows {
        let w = winners[&(row.tenant.clone(), row.event_id.clone())];
        assert_eq!((&row.dataset, &row.batch_id, row.spool_seq), (&w.d.dataset, &w.batch_id, w.d.spool_seq));
        assert_eq!(AccessDecision::try_from(row.clone()).unwrap(), w.d);
    }

    // Its record: the SQL as sent, typed parameters, server, the fixed clock.
    let ipe = &fetched.ipe;
    assert_eq!(ipe.sql, reader.catalog().decisions(whole, &DecisionFilter::default()).unwrap().sql());
    assert_eq!((ipe.server.as_str(), ipe.server_version.as_str()), ("ClickHouse", store.server_version_text()));
    assert!(ipe.server_version.starts_with("18.16"), "{}", ipe.server_version);
    assert_eq!((ipe.database.as_str(), ipe.row_count), (db.as_str(), expected.len() as u64));
    assert_eq!((ipe.ran_at, ipe.elapsed_ms), (UnixMillis(NOW), 0));
    let params: Vec<(&str, &str, String)> =
        ipe.parameters.iter().map(|p| (p.name.as_str(), p.kind.as_str(), p.value.clone())).collect();
    assert_eq!(
        params,
        [
            ("copy_skew_ms", "Int64", "3600000".to_owned()),
            ("from_ms", "Int64", start.to_string()),
            ("to_ms", "Int64", end.to_string()),
        ]
    );
    // An auditor pasting the SQL gets the same rows.
    let again = rerun(&store, &ipe.sql).await;
    assert_eq!(
        again.iter().map(|l| l.split('\t').next().unwrap().to_owned()).collect::<Vec<_>>(),
        expected.iter().map(|e| e.2.clone()).collect::<Vec<_>>()
    );

    // Streamed: the same rows, and the record at the end; reconciled independently.
    let denies = DecisionFilter::decisions(&[Decision::Deny]);
    let mut stream = reader.stream_decisions(whole, &denies).unwrap();
    let mut streamed = Vec::new();
    while let Some(row) = stream.next().await.unwrap() {
        streamed.push((row.time_ms, row.tenant, row.event_id));
    }
    assert_eq!(streamed, world.population(whole, |d| d.decision == Decision::Deny));
    let mut ipe = stream.finish().unwrap();
    assert_eq!(ipe.row_count, streamed.len() as u64);
    let check = reader.reconcile_population(&mut ipe, whole, &denies).await.unwrap();
    assert!(check.passed && ipe.reconciled(), "{check:?}");
    assert_eq!(
        (check.expected.clone(), check.actual.clone()),
        (streamed.len().to_string(), streamed.len().to_string())
    );
    assert!(check.sql.as_deref().unwrap().contains("argMax("), "{check:?}");

    // Filters apply to the copy that counts: the Tail events of the period are those whose
    // Tail copy survives.
    let tail = DecisionFilter { datasets: vec!["tail".into()], ..DecisionFilter::default() };
    let mut tail_rows = reader.decisions(whole, &tail).await.unwrap();
    let expected_tail = world.population(whole, |d| d.dataset == "tail");
    assert!(!expected_tail.is_empty());
    let got_tail: Vec<_> = tail_rows.rows.iter().map(|r| (r.time_ms, r.tenant.clone(), r.event_id.clone())).collect();
    assert_eq!(got_tail, expected_tail);
    assert!(reader.reconcile_population(&mut tail_rows.ipe, whole, &tail).await.unwrap().passed);

    // Counts by dataset × outcome, and their total reconciled.
    let mut counts = reader.decision_counts(whole).await.unwrap();
    let got: BTreeMap<(String, String), u64> =
        counts.rows.iter().map(|c| ((c.dataset.clone(), c.decision.clone()), c.count)).collect();
    assert_eq!(got, world.counts(whole));
    let total: u64 = got.values().sum();
    let all = DecisionFilter::default();
    let r = reader.reconcile(&mut counts.ipe, "total_matches_decisions", "the counts' total", total, whole, &all);
    assert!(r.await.unwrap().passed);

    // A figure that disagrees is a failed reconciliation, recorded, not an error.
    let mut wrong = fetched.ipe.clone();
    let r = reader.reconcile(&mut wrong, "off_by_one", "a wrong figure", total + 1, whole, &all).await.unwrap();
    assert!(!r.passed && !wrong.reconciled() && r.expected == (total + 1).to_string() && r.actual == total.to_string());

    // Adjacent periods split the events exactly, boundary-straddling copies included; at a
    // month boundary the later month's copy counts, whichever was inserted last.
    splits_exactly(&reader, &world, [start, mid, end]).await;
    splits_exactly(&reader, &world, [MONTH - HOUR, MONTH, MONTH + HOUR]).await;
    assert!(world.population(period(MONTH - HOUR, MONTH), |_| true).is_empty());
    assert_eq!(world.population(period(MONTH, MONTH + HOUR), |_| true).len(), 2);

    // All time: what `gatelog demo` prints.
    let summary = store.summary().await.unwrap();
    assert_eq!(summary.total_decisions(), winners.len() as u64);
    assert_eq!(summary.batches, world.batches().count() as u64);

    // ClickHouse merges the copies it can: no figure changes.
    let before = figures(&reader, whole).await;
    store.execute("SYSTEM", "decisions", &format!("SYSTEM START MERGES {db}.decisions")).await.unwrap();
    for partition in ["202502", "202503"] {
        let sql = format!("OPTIMIZE TABLE {db}.decisions PARTITION {partition} FINAL");
        store.execute("OPTIMIZE", "decisions", &sql).await.unwrap();
    }
    let merged = rows_in(&store, "decisions").await;
    assert!(merged < world.rows() as u64, "OPTIMIZE merged nothing");
    assert!(merged > winners.len() as u64, "copies in two months stay two rows");
    assert_eq!(figures(&reader, whole).await, before);
    splits_exactly(&reader, &world, [MONTH - HOUR, MONTH, MONTH + HOUR]).await;
    assert_eq!(store.summary().await.unwrap().total_decisions(), winners.len() as u64);

    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn a_stream_without_its_end_has_no_record_and_a_failing_query_yields_no_rows() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    World::generate(60, &[]).store(&store).await;
    let reader = reader(&store);
    let p = period(T0 - HOUR, T0 + 6 * HOUR);

    let mut stream = reader.stream_decisions(p, &DecisionFilter::default()).unwrap();
    assert!(stream.next().await.unwrap().is_some());
    let err = stream.finish().unwrap_err();
    assert!(matches!(err, StoreError::StreamNotFinished { rows: 1, failed: false, .. }), "{err}");
    assert!(err.to_string().contains("read.decisions"), "{err}");

    // 18.16 reports an error found after the first rows by appending its text to a 200
    // answer; the reader makes the server finish first, so no such text becomes rows.
    let failing: ReadQuery<EventCount> = ReadQuery::new(
        "read.test_failing",
        "system.numbers",
        "SELECT toUInt64(number + throwIf(number = {at})) AS events FROM system.numbers LIMIT 3000000",
        vec![gatelog_store::read::Param::new("at", gatelog_store::read::Value::UInt64(2_500_000))],
    )
    .unwrap();
    let mut stream = reader.stream(failing.clone()).unwrap();
    let mut seen = 0u64;
    let err = loop {
        match stream.next().await {
            Ok(Some(row)) => {
                assert!(row.events < 2_500_000, "a row made of an error's text: {row:?}");
                seen += 1;
            }
            Ok(None) => panic!("the failing query ended cleanly after {seen} rows"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Some(395), "{err}");
    assert_eq!(seen, 0, "rows before the error");
    assert!(matches!(stream.finish(), Err(StoreError::StreamNotFinished { failed: true, .. })));
    let fetched: Result<Fetched<EventCount>, _> = reader.fetch(&failing).await;
    assert_eq!(fetched.unwrap_err().code(), Some(395));

    drop(store);
    ch.stop().await.unwrap();
}
