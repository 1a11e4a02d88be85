//! Populations streamed from a real ClickHouse 18.16 (`soc2::population`): a population larger
//! than `SPILL_ROWS` goes to a CSV file with every row (and the table keeps a preview), its
//! count is reconciled with the store's own, and its sample is the one drawn from the whole
//! population in memory and the one its re-draw SQL gives in ClickHouse; a small population
//! stays whole in the table. Data: the 10M benchmark's generator (`rules_10m.sql`), smaller.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatelog_model::UnixMillis;
use gatelog_report::sample::{Frequency, Risk, draw, sample_size};
use gatelog_report::soc2::population::{self, PREVIEW_ROWS, Population, SPILL_ROWS, SampleOf};
use gatelog_report::soc2::{Ctx, Soc2Input};
use gatelog_store::Store;
use gatelog_store::read::{DecisionFilter, Period};
use gatelog_store::testing::TestClickHouse;
use std::sync::Arc;

const GENERATE: &str = include_str!("../../watch/benches/rules_10m.sql");
const START_MS: i64 = 1_772_323_200_000; // 2026-03-01
const SPAN_MS: i64 = 86_400_000;
const COLUMNS: &[(&str, &str)] = &[
    ("event_id", "id"),
    ("time_ms", "when"),
    ("principal", "who"),
    ("decision", "outcome"),
    ("resource", "what"),
    ("duration_ms", "a duration"),
];

fn input(period: Period) -> Soc2Input {
    Soc2Input {
        period,
        as_of: UnixMillis(START_MS + SPAN_MS),
        seed: "population-test".into(),
        privileged_roles: vec!["role0".into()],
        policy: None,
        users: None,
        detectors: Vec::new(),
        expected_datasets: Vec::new(),
        max_silence: std::time::Duration::from_secs(3600),
        parameters: Vec::new(),
        regenerate: String::new(),
        gatelog_version: "test".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_population_spills_to_csv_and_samples_as_if_whole() {
    let ch = TestClickHouse::start().await.expect("clickhouse");
    let store = Store::connect(&ch.store_config()).await.unwrap();
    store.migrate().await.unwrap();
    let db = store.database().to_owned();
    let rows = 60_000u64;
    let sql = GENERATE
        .replace("{db}", &db)
        .replace("{start_ms}", &START_MS.to_string())
        .replace("{span_ms}", &SPAN_MS.to_string())
        .replace("{rows}", &rows.to_string());
    store.execute("INSERT", "decisions", &sql).await.unwrap();
    // The same rows again: unmerged copies of every event, which must count once.
    store.execute("INSERT", "decisions", &sql).await.unwrap();

    let period = Period::new(UnixMillis(START_MS), UnixMillis(START_MS + SPAN_MS)).unwrap();
    let input = input(period);
    let spill = tempfile::tempdir().unwrap();
    let ctx = Ctx::new(store.reader(Arc::new(gatelog_model::FixedClock::new(input.as_of))), &input, spill.path());
    let filter =
        DecisionFilter { roles_any: vec!["role0".into(), "role1".into(), "role2".into()], ..ctx.population_filter() };
    let spec = Population {
        id: "privileged",
        title: "Privileged decisions",
        description: "test",
        columns: COLUMNS,
        id_column: "event_id",
        sample: Some(SampleOf { id: "privileged-sample", frequency: None, risk: Risk::Higher }),
    };
    let query = ctx.reader.catalog().decisions(period, &filter).unwrap();
    let (mut table, sample) = population::stream(&ctx, spec, query).await.unwrap();
    let sample = sample.expect("a sample");

    let events = table.total_rows();
    assert!(events as usize > SPILL_ROWS, "the test needs a population above the spill size: {events}");
    let spilled = table.spilled.clone().expect("spilled");
    assert_eq!(table.rows.len(), PREVIEW_ROWS);
    let check = ctx.reader.reconcile_population(&mut table.ipe, period, &filter).await.unwrap();
    assert!(check.passed, "{check:?}");

    // The file: the header and every row, unique ids, time as RFC 3339, durations as numbers.
    let text = std::fs::read_to_string(&spilled.path).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), COLUMNS.iter().map(|c| c.0).collect::<Vec<_>>());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len() as u64, events);
    assert!(records[0][1].ends_with('Z') && records[0][5].parse::<u64>().is_ok(), "{:?}", records[0]);
    let ids: Vec<String> = records.iter().map(|r| r[0].to_owned()).collect();

    // The sample equals the one drawn from the whole population, and ClickHouse's re-draw.
    let size = sample_size(Frequency::from_population(events), Risk::Higher, events);
    let whole = draw(&input.seed, ids.iter().map(String::as_str), size).unwrap();
    let streamed: Vec<String> = sample.rows.iter().map(|r| r[1].display()).collect();
    assert_eq!(streamed, whole.iter().map(|d| d.id.clone()).collect::<Vec<_>>());
    let spec = sample.sample.as_ref().unwrap();
    assert_eq!((spec.population_size, spec.size), (events, size));
    let redraw = format!("SELECT event_id FROM ({}) FORMAT TSV", spec.redraw_sql);
    let bytes = store.client().query(&redraw).fetch_bytes("TSV").unwrap().collect().await.unwrap();
    let in_sql: Vec<String> = String::from_utf8(bytes.to_vec()).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(in_sql, streamed, "the re-draw SQL draws the same rows in the same order");

    // A small population stays whole in its table.
    let one = DecisionFilter { principals: vec!["user1@example.com".into()], ..ctx.population_filter() };
    let query = ctx.reader.catalog().decisions(period, &one).unwrap();
    let spec = Population { id: "one", sample: None, ..spec_small() };
    let (small, none) = population::stream(&ctx, spec, query).await.unwrap();
    assert!(none.is_none() && small.spilled.is_none());
    assert_eq!(small.rows.len() as u64, small.ipe.row_count);
    assert!(!small.rows.is_empty());
}

fn spec_small() -> Population<'static> {
    Population { id: "x", title: "x", description: "x", columns: COLUMNS, id_column: "event_id", sample: None }
}
