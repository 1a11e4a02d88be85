//! Every dashboard in `dashboards/grafana` is well formed ([`lint::check`]) and every query in
//! it (panels and query variables) expands as the plugin would, with the values the dashboard
//! opens with; and the checks do catch what they look for.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_grafana::lint::{self, Problem};
use gatelog_grafana::{Dashboard, QueryContext, VarValue, dashboards_dir, interpolate, load_dir};
use std::collections::BTreeSet;

const CTX: QueryContext = QueryContext { from_ms: 1_772_312_400_000, to_ms: 1_772_334_000_000, interval_ms: 300_000 };

fn all() -> Vec<Dashboard> {
    let dashboards = load_dir(&dashboards_dir()).unwrap();
    assert!(dashboards.len() >= 5, "expected the overview, principal, alerts, denies and proxy dashboards");
    dashboards
}

#[test]
fn every_dashboard_is_well_formed() {
    let dashboards = all();
    let problems: Vec<Problem> = dashboards.iter().flat_map(lint::check).collect();
    let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{}", listed.join("\n"));

    let uids: BTreeSet<_> = dashboards.iter().map(|d| d.uid.clone()).collect();
    let titles: BTreeSet<_> = dashboards.iter().map(|d| d.title.clone()).collect();
    assert_eq!(uids.len(), dashboards.len(), "two dashboards share a uid");
    assert_eq!(titles.len(), dashboards.len(), "two dashboards share a title");
    for d in &dashboards {
        let db = d.variable("database").unwrap_or_else(|| panic!("{}: no database variable", d.file));
        assert_eq!(db.json["query"], "gatelog", "{}: the database defaults to gatelog", d.file);
        assert!(d.panels.iter().any(|p| !p.targets.is_empty()), "{}: no queries", d.file);
    }
}

#[test]
fn every_query_expands_with_the_values_the_dashboard_opens_with() {
    let mut expanded = 0;
    for d in all() {
        let mut values = d.default_values();
        // A list without a saved choice opens on the first value its query returns.
        for v in d.variables.iter().filter(|v| v.kind != "datasource") {
            values.entry(v.name.clone()).or_insert_with(|| VarValue::Text("first@example.com".into()));
        }
        let queries = d
            .panels
            .iter()
            .flat_map(|p| p.targets.iter().map(move |t| (p.label(), t.raw_sql.clone().unwrap_or_default())))
            .chain(d.variables.iter().filter_map(|v| v.sql.clone().map(|s| (format!("variable {}", v.name), s))));
        for (place, sql) in queries {
            let got = interpolate(&sql, &values, &CTX).unwrap_or_else(|e| panic!("{}: {place}: {e}", d.file));
            assert!(!got.contains('$'), "{}: {place}: {got}", d.file);
            assert!(got.contains("gatelog."), "{}: {place} does not read gatelog's database: {got}", d.file);
            expanded += 1;
        }
    }
    assert!(expanded >= 25, "{expanded} queries");
}

/// A dashboard's JSON with `edit` applied, checked.
fn problems_after(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<String> {
    let d = all().into_iter().find(|d| d.file == "gatelog-overview.json").unwrap();
    let mut json = d.json.clone();
    edit(&mut json);
    let changed = Dashboard::parse("edited.json", &json.to_string()).unwrap();
    lint::check(&changed).iter().map(ToString::to_string).collect()
}

fn assert_found(problems: &[String], needle: &str) {
    assert!(problems.iter().any(|p| p.contains(needle)), "no problem mentions {needle:?}: {problems:#?}");
}

#[test]
fn the_checks_catch_what_they_look_for() {
    assert!(problems_after(|_| {}).is_empty());

    let p = problems_after(|j| {
        let copy = j["panels"][1].clone();
        j["panels"].as_array_mut().unwrap().push(copy);
    });
    assert_found(&p, "is used twice");
    assert_found(&p, "overlaps panel");

    let p = problems_after(|j| {
        let panel = &mut j["panels"][1];
        panel["gridPos"]["x"] = 20.into();
        panel["targets"][0]["datasource"]["uid"] = "P1234".into();
        panel["targets"][0]["editorType"] = "builder".into();
        panel["targets"][0]["format"] = 1.into();
        let target = panel["targets"][0].clone();
        panel["targets"].as_array_mut().unwrap().push(target);
        j["panels"][2]["datasource"] = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    });
    assert_found(&p, "outside the 24-column grid");
    assert_found(&p, "datasource is not the data source variable");
    assert_found(&p, "editorType is not \"sql\"");
    assert_found(&p, "does not suit a timeseries panel");
    assert_found(&p, "refId A is used twice");

    let p = problems_after(|j| {
        let sql = j["panels"][0]["targets"][0]["rawSql"].as_str().unwrap().to_owned();
        let sql = sql.replace("${database}", "${databse}").replace(", $tenant)", ", ${tenant:raw})");
        j["panels"][0]["targets"][0]["rawSql"] = sql.replace("percentencode", "lucene").into();
        j["templating"]["list"].as_array_mut().unwrap().retain(|v| v["type"] != "datasource");
    });
    assert_found(&p, "${databse} names no variable");
    assert_found(&p, "is not a plain $variable");
    assert_found(&p, "format \"lucene\"");
    assert_found(&p, "has no data source variable");
}
