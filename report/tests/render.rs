//! The renderings of one report: hostile cell text stays text in every format, the output is
//! the same bytes each time, and the HTML opens in headless Chromium without a single request
//! beyond its own file (a screenshot and an A4 PDF are kept under `target/report-artifacts/`).
#![allow(clippy::unwrap_used)]

#[path = "common/browser.rs"]
mod browser;
use browser::open_in_chromium;

use gatelog_model::{IpeParameter, IpeRecord, Reconciliation, UnixMillis};
use gatelog_report::render::{self, RenderOptions};
use gatelog_report::sample::{Frequency, Risk};
use gatelog_report::table::{Cell, Column, Report, Section, Table};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const HOSTILE: &str = "<script>alert(1)</script><img src=\"http://127.0.0.1:9/x.png\">";

fn ipe(sql: &str, rows: u64, passed: bool) -> IpeRecord {
    IpeRecord {
        sql: sql.to_owned(),
        parameters: vec![
            IpeParameter { name: "from".into(), kind: "DateTime('UTC')".into(), value: "2026-01-01 00:00:00".into() },
            IpeParameter { name: "to".into(), kind: "DateTime('UTC')".into(), value: "2026-04-01 00:00:00".into() },
        ],
        server: "ClickHouse".into(),
        server_version: "18.16.1".into(),
        database: "gatelog".into(),
        row_count: rows,
        ran_at: UnixMillis(1_775_000_000_000),
        elapsed_ms: 42,
        reconciliations: vec![Reconciliation {
            name: "population_count_matches_decisions".into(),
            description: "rows in the population = count() of privileged decisions in decisions FINAL".into(),
            expected: rows.to_string(),
            actual: if passed { rows.to_string() } else { (rows + 1).to_string() },
            sql: Some("SELECT count() FROM gatelog.decisions FINAL WHERE has(roles, 'admin')".into()),
            passed,
        }],
    }
}

pub fn demo_report() -> Report {
    let sql = "SELECT event_id, time, principal, decision, resource\nFROM gatelog.decisions FINAL\nWHERE time >= toDateTime('2026-01-01 00:00:00', 'UTC') AND time < toDateTime('2026-04-01 00:00:00', 'UTC') AND has(roles, 'admin')\nORDER BY time, event_id";
    let principals = ["alice@example.com", "=cmd|' /C calc'!A0", "bob@example.com", "-2+3", "@SUM(A1)", HOSTILE];
    let rows: Vec<Vec<Cell>> = (0..300u64)
        .map(|i| {
            vec![
                Cell::Text(format!("{:032x}", i * 7919)),
                Cell::Text(UnixMillis(1_767_225_600_000 + i as i64 * 3_600_000).to_rfc3339()),
                Cell::Text(principals[i as usize % principals.len()].to_owned()),
                Cell::Text(if i % 9 == 0 { "deny" } else { "allow" }.to_owned()),
                Cell::Text(format!("clickhouse:analytics.t{} | `x`", i % 4)),
                Cell::Int(-(i as i64)),
            ]
        })
        .collect();
    let population = Table {
        id: "cc6.1-privileged-decisions".into(),
        title: "Privileged-role decisions".into(),
        description: "Every decision for a principal holding an admin role in the period.".into(),
        columns: vec![
            Column::new("event_id", "stable event id"),
            Column::new("time", "UTC"),
            Column::new("principal", "who"),
            Column::new("decision", "allow or deny"),
            Column::new("resource", "what"),
            Column::new("delta", "a signed number"),
        ],
        rows,
        ipe: ipe(sql, 300, true),
        sample: None,
        spilled: None,
    };
    let sample = population
        .sample("cc6.1-privileged-decisions-sample", "event_id", "2026Q1-cc6.1", Frequency::Recurring, Risk::Higher)
        .unwrap();
    let mut failed = population.clone();
    failed.id = "cc6.1-failed-reconciliation".into();
    failed.title = "A table whose reconciliation failed".into();
    failed.rows.truncate(3);
    failed.ipe = ipe(sql, 3, false);
    Report {
        title: "SOC 2 evidence".into(),
        period: "2026-01-01T00:00:00Z – 2026-04-01T00:00:00Z".into(),
        gatelog_version: "0.1.0".into(),
        parameters: BTreeMap::from([
            ("from".into(), "2026-01-01T00:00:00Z".into()),
            ("seed".into(), "2026Q1-cc6.1".into()),
            ("to".into(), "2026-04-01T00:00:00Z".into()),
        ]),
        regenerate: "gatelog report soc2 --from 2026-01-01 --to 2026-04-01 --seed 2026Q1-cc6.1 --out evidence".into(),
        chain_head: None,
        sections: vec![Section {
            id: "cc6.1".into(),
            title: "CC6.1 Logical access: privileged access".into(),
            paragraphs: vec![format!("Principals with admin roles and what they did. {HOSTILE}")],
            tables: vec![population, sample, failed],
        }],
    }
}

#[test]
fn hostile_text_stays_text_in_every_format() {
    let report = demo_report();
    let files = render::files(&report, RenderOptions::default()).unwrap();
    let get = |name: &str| {
        String::from_utf8(files.iter().find(|(n, _)| n == name).unwrap().1.read().unwrap().into_owned()).unwrap()
    };

    let html = get("report.html");
    assert!(!html.contains("<script>") && !html.contains("<img"), "unescaped markup in the HTML");
    assert!(html.contains("&lt;script&gt;"));
    assert!(html.contains("FAILED") && html.contains("passed"));
    assert!(
        html.contains("has(roles, &#x27;admin&#x27;)") || html.contains("has(roles, &#39;admin&#39;)"),
        "the SQL is shown"
    );
    assert!(html.contains("@page { size: A4"));

    let md = get("report.md");
    assert!(!md.contains("<script>") && md.contains("&lt;script&gt;"));
    assert!(md.contains("\\| \\`x\\`"), "pipes and backticks in cells are escaped");
    assert!(md.contains("```sql\nSELECT event_id"));

    let csv = get("csv/cc6.1-privileged-decisions.csv");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let principals: Vec<String> = reader.records().map(|r| r.unwrap()[2].to_owned()).collect();
    assert!(principals.contains(&"'=cmd|' /C calc'!A0".to_owned()));
    assert!(principals.contains(&"'-2+3".to_owned()));
    assert!(principals.contains(&"'@SUM(A1)".to_owned()));
    assert!(principals.contains(&"alice@example.com".to_owned()));
    assert!(principals.iter().all(|p| !p.starts_with(['=', '+', '-', '@'])));
    assert!(csv.contains(",-1\n"), "numbers are not guarded");
    assert_eq!(csv.lines().count(), 301, "every row is in the CSV");

    let json: serde_json::Value = serde_json::from_str(&get("report.json")).unwrap();
    assert_eq!(json["schema"], "gatelog.report/1");
    let table = &json["report"]["sections"][0]["tables"][0];
    assert_eq!(table["rows"][1][5], -1, "typed cells stay numbers");
    assert_eq!(table["ipe"]["row_count"], 300);
    let text = get("report.json");
    assert!(text.find("\"gatelog_version\"").unwrap() < text.find("\"parameters\"").unwrap(), "keys sorted");

    // The sample: sized by the table (recurring, higher risk: 60), in rank order, with SQL.
    let sample = &report.sections[0].tables[1];
    assert_eq!(sample.rows.len(), 60);
    assert!(sample.ipe.sql.contains("SHA256(concat('2026Q1-cc6.1', toString(event_id)))"), "{}", sample.ipe.sql);

    assert_eq!(render::files(&report, RenderOptions::default()).unwrap(), files, "renderings are deterministic");
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/report-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_html_opens_in_chromium_without_any_request_and_prints_on_a4() {
    let dir = artifacts();
    let page = dir.join("report.html");
    let html = render::html::render(&demo_report(), RenderOptions { max_rows: 40 }).unwrap();
    std::fs::write(&page, html).unwrap();
    let (requests, errors) = open_in_chromium(&page, &dir.join("report.png"), &dir.join("report.pdf"));
    let outside: Vec<_> = requests.iter().filter(|(u, failed)| *failed || !u.starts_with("file://")).collect();
    assert!(outside.is_empty(), "the report made external or failed requests: {outside:?}");
    assert!(errors.is_empty(), "console or network errors: {errors:#?}");
    assert!(std::fs::metadata(dir.join("report.png")).unwrap().len() > 10_000, "empty screenshot");
    let pdf = std::fs::read(dir.join("report.pdf")).unwrap();
    let text = String::from_utf8_lossy(&pdf);
    // A4 is 595.28 × 841.89 points; Chromium writes its page boxes rounded from that.
    assert!(text.contains("/MediaBox [0 0 594.95996 841.91998]") || text.contains("/MediaBox [0 0 595"), "not A4");

    // The check itself can fail: a page with an external image and a script is caught.
    let bad = dir.join("negative-control.html");
    std::fs::write(&bad, "<!doctype html><img src=\"http://127.0.0.1:9/x.png\"><p>x</p>").unwrap();
    let (requests, _) = open_in_chromium(&bad, &dir.join("negative-control.png"), &dir.join("negative-control.pdf"));
    assert!(
        requests.iter().any(|(u, failed)| u.starts_with("http://127.0.0.1:9/") && *failed),
        "the negative control's failed request went unnoticed: {requests:?}"
    );
}
