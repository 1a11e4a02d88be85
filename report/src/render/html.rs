//! The report as one self-contained HTML page: the `report.html` minijinja template (named
//! `.html`, so every value is HTML-escaped), inline CSS laid out for A4, no scripts, fonts,
//! images or links out; a Content-Security-Policy forbids the browser any request at all.

use super::{RenderError, RenderOptions};
use crate::table::{Report, Table};
use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde::Serialize;

const TEMPLATE: &str = include_str!("../../templates/report.html");

/// A cell as shown: its text, and whether it is a number (right-aligned).
#[derive(Serialize)]
struct CellView {
    text: String,
    num: bool,
}

#[derive(Serialize)]
struct SectionView<'a> {
    section: &'a crate::table::Section,
    tables: Vec<TableView<'a>>,
}

#[derive(Serialize)]
struct Context<'a> {
    report: &'a Report,
    sections: Vec<SectionView<'a>>,
}

#[derive(Serialize)]
struct TableView<'a> {
    table: &'a Table,
    csv: String,
    columns: Vec<&'a str>,
    rows: Vec<Vec<CellView>>,
    total_rows: u64,
    failed: usize,
}

pub fn render(report: &Report, options: RenderOptions) -> Result<String, RenderError> {
    report.validate()?;
    let mut env = Environment::new();
    let template_err =
        |e: minijinja::Error| RenderError::Template { name: "report.html".into(), message: format!("{e:#}") };
    env.add_template("report.html", TEMPLATE).map_err(template_err)?;
    let sections: Vec<_> = report
        .sections
        .iter()
        .map(|s| {
            let tables: Vec<TableView<'_>> = s
                .tables
                .iter()
                .map(|t| TableView {
                    table: t,
                    csv: super::csv::file_name(t),
                    columns: t.columns.iter().map(|c| c.name.as_str()).collect(),
                    rows: t
                        .rows
                        .iter()
                        .take(options.max_rows)
                        .map(|r| {
                            r.iter()
                                .map(|c| CellView {
                                    text: c.display(),
                                    num: matches!(c, crate::table::Cell::Int(_) | crate::table::Cell::UInt(_)),
                                })
                                .collect()
                        })
                        .collect(),
                    total_rows: t.total_rows(),
                    failed: t.ipe.failed().count(),
                })
                .collect();
            SectionView { section: s, tables }
        })
        .collect();
    let template = env.get_template("report.html").map_err(template_err)?;
    let mut html = template.render(Value::from(Serde(Context { report, sections }))).map_err(template_err)?;
    if !html.ends_with('\n') {
        html.push('\n');
    }
    Ok(html)
}
