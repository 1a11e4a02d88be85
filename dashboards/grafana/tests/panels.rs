//! Every panel and query variable of every dashboard, expanded as the plugin expands it, runs
//! on a real ClickHouse 18.16 (legacy schema, the rows written by the store's own writer,
//! copies of events included and merges stopped so they stay separate rows) and on
//! ClickHouse 26.9 in chdb with the same rows under both schema profiles. Each answer is
//! checked against the model (each event once: the sum of the over-time series is the number
//! of distinct events in the range, and so on), and the three answers must agree.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use gatelog_grafana::{Dashboard, VarValue, dashboards_dir, interpolate, load_dir};
use gatelog_model::UnixMillis;
use gatelog_store::sql::{SchemaOptions, migrations};
use gatelog_store::testing::{TestClickHouse, chdb_python};
use gatelog_store::{PartialCheck, SchemaProfile, WriteBatch};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Instant;
use support::checks::{self, Fails};
use support::results::Table;
use support::scenarios::{Scenario, scenarios};
use support::world::{RANGE, T0_MS, World};

enum Kind {
    Panel(String),
    Variable(String),
}

struct Query {
    id: String,
    /// `dashboard / scenario / panel "Title"`, for messages.
    at: String,
    scenario: usize,
    kind: Kind,
    sql: String,
}

/// Every panel target and query variable of every scenario's dashboard, expanded.
fn queries(dashboards: &[Dashboard], scenarios: &[Scenario], db: &str) -> Vec<Query> {
    let mut out = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        let d = dashboards
            .iter()
            .find(|d| d.uid.as_deref() == Some(s.uid))
            .unwrap_or_else(|| panic!("no dashboard {}", s.uid));
        let mut values = d.default_values();
        values.insert("database".into(), VarValue::Text(db.into()));
        for (name, value) in s.values() {
            assert!(d.variable(name).is_some(), "{}: no variable {name}", d.file);
            values.insert(name.into(), value);
        }
        let mut push = |kind: Kind, what: String, sql: &str| {
            let at = format!("{} / {} / {what}", s.uid, s.name);
            let sql = interpolate(sql, &values, &RANGE).unwrap_or_else(|e| panic!("{at}: {e}"));
            out.push(Query { id: format!("q{}", out.len()), at, scenario: i, kind, sql });
        };
        for p in &d.panels {
            for t in &p.targets {
                push(
                    Kind::Panel(p.title.clone()),
                    format!("panel {}", p.label()),
                    t.raw_sql.as_deref().unwrap_or_default(),
                );
            }
        }
        for v in &d.variables {
            if let Some(sql) = &v.sql {
                push(Kind::Variable(v.name.clone()), format!("variable {}", v.name), sql);
            }
        }
    }
    out
}

async fn fetch(client: &clickhouse::Client, sql: &str, format: &str) -> Result<Vec<u8>, String> {
    let mut cursor = client.query_raw(sql).fetch_bytes(format).map_err(|e| e.to_string())?;
    cursor.collect().await.map(|b| b.to_vec()).map_err(|e| e.to_string())
}

async fn table(client: &clickhouse::Client, sql: &str) -> Result<Table, String> {
    let body = fetch(client, sql, "JSONCompact").await?;
    let json: Value = serde_json::from_slice(&body).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&body)))?;
    Table::from_json(&json)
}

/// A table of the 18.16 server as TabSeparated in `dir`, with its stored columns and types.
async fn export(client: &clickhouse::Client, db: &str, name: &str, dir: &std::path::Path) -> Value {
    let columns = table(
        client,
        &format!("SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '{name}' AND default_kind != 'ALIAS'"),
    )
    .await
    .unwrap();
    let columns: Vec<(String, String)> =
        (0..columns.rows.len()).map(|r| (columns.str(r, "name"), columns.str(r, "type"))).collect();
    let list = columns.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
    let body = fetch(client, &format!("SELECT {list} FROM {db}.{name}"), "TabSeparated").await.unwrap();
    let rows = table(client, &format!("SELECT count() AS n FROM {db}.{name}")).await.unwrap().u64(0, "n");
    let file = dir.join(format!("{name}.tsv"));
    std::fs::write(&file, body).unwrap();
    json!({"table": name, "file": file, "columns": columns, "rows": rows})
}

/// The DDL a fresh database of `profile` gets.
fn schema(db: &str, profile: SchemaProfile) -> Vec<String> {
    let opts = SchemaOptions { database: db.to_owned(), cluster: None, retention_days: None };
    let mut out = vec![format!("CREATE DATABASE IF NOT EXISTS {db}")];
    out.extend(migrations(profile, &opts).into_iter().flat_map(|m| m.statements));
    out
}

fn check_all(
    server: &str,
    results: &BTreeMap<String, Result<Table, String>>,
    qs: &[Query],
    world: &World,
    sc: &[Scenario],
    f: &mut Fails,
) {
    for q in qs {
        let at = format!("{server}: {}", q.at);
        match results.get(&q.id) {
            Some(Ok(t)) => match &q.kind {
                Kind::Panel(title) => checks::panel(f, &at, title, t, world, &sc[q.scenario]),
                Kind::Variable(name) => support::ingest::variable(f, &at, name, t, world, &sc[q.scenario]),
            },
            Some(Err(e)) => f.0.push(format!("{at}: {e}\n--- SQL ---\n{}", q.sql)),
            None => f.0.push(format!("{at}: no result")),
        }
    }
}

#[tokio::test]
async fn every_panel_counts_each_event_once_on_18_16_and_in_chdb_26_9() {
    let python = chdb_python().unwrap_or_else(|e| panic!("{e}"));
    let world = World::generate();
    let dashboards = load_dir(&dashboards_dir()).unwrap();
    let sc = scenarios(&world);
    for d in &dashboards {
        assert!(
            sc.iter().any(|s| d.uid.as_deref() == Some(s.uid)),
            "{}: no scenario runs this dashboard's panels",
            d.file
        );
    }

    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let db = ch.database().to_owned();
    let client = clickhouse::Client::default().with_url(ch.url()).with_validation(false);
    // Copies stay separate rows, as on a server that has not merged them yet.
    client.query_raw("SYSTEM STOP MERGES").execute().await.unwrap();
    for group in world.batches.chunks(16) {
        let refs: Vec<(u64, &WriteBatch)> = group.iter().map(|b| (0, b)).collect();
        store.write_batches(&refs, PartialCheck::OnRetry).await.unwrap();
    }
    // Alerts: every version of each (the newest last), the lifecycle, then a replay's copies.
    let alerts = &world.alerts;
    store.write_alerts(&alerts.earlier, UnixMillis(T0_MS)).await.unwrap();
    store.write_alerts(&alerts.alerts, UnixMillis(T0_MS + 1)).await.unwrap();
    store.append_alert_events(&alerts.events).await.unwrap();
    store.append_alert_events(&alerts.replayed).await.unwrap();
    let stored =
        table(&client, &format!("SELECT count() AS rows, uniqExact(tenant, event_id) AS events FROM {db}.decisions"))
            .await
            .unwrap();
    let (rows, events) = (stored.u64(0, "rows"), stored.u64(0, "events"));
    assert_eq!((rows, events), (world.rows.len() as u64, world.events.len() as u64));
    assert!(rows > events, "the stored rows hold copies of events");
    println!("stored {rows} decision rows for {events} events in {} batches", world.batches.len());

    let qs = queries(&dashboards, &sc, &db);
    let started = Instant::now();
    let mut on_18 = BTreeMap::new();
    for q in &qs {
        on_18.insert(q.id.clone(), table(&client, &q.sql).await);
    }
    println!("ClickHouse 18.16: {} queries in {:?}", qs.len(), started.elapsed());

    let dir = tempfile::tempdir().unwrap();
    let mut tables = Vec::new();
    for name in ["decisions", "ingest_batches", "alerts", "alert_events"] {
        tables.push(export(&client, &db, name, dir.path()).await);
    }
    drop(client);
    ch.stop().await.unwrap();

    let mut servers = vec![("ClickHouse 18.16 (legacy schema)".to_owned(), on_18)];
    match &python {
        Some(python) => {
            for profile in [SchemaProfile::Legacy, SchemaProfile::Modern] {
                let job = json!({
                    "database": db,
                    "schema": schema(&db, profile),
                    "tables": tables,
                    "queries": qs.iter().map(|q| json!({"id": q.id, "sql": q.sql})).collect::<Vec<_>>(),
                });
                let started = Instant::now();
                let out = support::chdb::run(python, &job);
                let name = format!("chdb {} ({profile} schema)", out["version"].as_str().unwrap_or("?"));
                println!("{name}: {} queries, load included, in {:?}", qs.len(), started.elapsed());
                let results = qs
                    .iter()
                    .map(|q| {
                        let r = &out["results"][&q.id];
                        let t = match r.get("error") {
                            Some(e) => Err(e.as_str().unwrap_or_default().to_owned()),
                            None => Table::from_json(r),
                        };
                        (q.id.clone(), t)
                    })
                    .collect();
                servers.push((name, results));
            }
        }
        None => println!("skipping chdb: GATELOG_SKIP_CHDB=1"),
    }

    let mut f = Fails::default();
    for (server, results) in &servers {
        check_all(server, results, &qs, &world, &sc, &mut f);
    }
    let (first, rest) = servers.split_first().unwrap();
    for (server, results) in rest {
        for q in &qs {
            if let (Some(Ok(a)), Some(Ok(b))) = (first.1.get(&q.id), results.get(&q.id))
                && a.normalized() != b.normalized()
            {
                f.0.push(format!("{}: {server} answers otherwise than {}", q.at, first.0));
            }
        }
    }
    assert!(f.0.is_empty(), "{} problems:\n{}", f.0.len(), f.0.join("\n"));
}
