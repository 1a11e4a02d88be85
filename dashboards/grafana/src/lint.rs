//! Structure checks of one dashboard: what must hold for it to import and query through the
//! ClickHouse plugin with the data source chosen in its variable.

use crate::dashboard::{Dashboard, GridPos, Panel};
use crate::{PLUGIN_TYPE, frontend};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;

/// One thing wrong with a dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// `dashboard`, `variable "x"`, `panel "Title"`, `panel "Title" target A`.
    pub place: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.place, self.message)
    }
}

struct Report<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Report<'_> {
    fn add(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { file: self.file.to_owned(), place: place.into(), message: message.into() });
    }
}

/// Every problem found in `d` (none: it is well formed).
pub fn check(d: &Dashboard) -> Vec<Problem> {
    let mut r = Report { file: &d.file, problems: Vec::new() };
    match d.uid.as_deref() {
        None | Some("") => r.add("dashboard", "has no uid (links and provisioning need a stable one)"),
        Some(uid) if uid.len() > 40 => {
            r.add("dashboard", format!("uid {uid:?} is longer than Grafana's 40 characters"))
        }
        Some(_) => {}
    }
    if d.title.as_deref().is_none_or(str::is_empty) {
        r.add("dashboard", "has no title");
    }
    if !d.json.get("schemaVersion").is_some_and(Value::is_i64) {
        r.add("dashboard", "has no numeric schemaVersion");
    }

    let declared: BTreeSet<&str> = d.variables.iter().map(|v| v.name.as_str()).collect();
    let mut seen = BTreeSet::new();
    for v in &d.variables {
        if v.name.is_empty() || !seen.insert(v.name.as_str()) {
            r.add(format!("variable {:?}", v.name), "is unnamed or named twice");
        }
    }
    let ds_vars: Vec<&str> = d
        .variables
        .iter()
        .filter(|v| v.kind == "datasource" && v.json.get("query").and_then(Value::as_str) == Some(PLUGIN_TYPE))
        .map(|v| v.name.as_str())
        .collect();
    if ds_vars.is_empty() {
        r.add("dashboard", format!("has no data source variable (type datasource, query {PLUGIN_TYPE})"));
    }
    let ds_ok = |ds: Option<&Value>| {
        let Some(ds) = ds else { return false };
        ds.get("type").and_then(Value::as_str) == Some(PLUGIN_TYPE)
            && ds
                .get("uid")
                .and_then(Value::as_str)
                .is_some_and(|uid| ds_vars.iter().any(|n| uid == format!("${{{n}}}") || uid == format!("${n}")))
    };
    let want_ds = format!("{{\"type\":\"{PLUGIN_TYPE}\",\"uid\":\"${{datasource}}\"}}");

    for v in d.variables.iter().filter(|v| v.kind == "query") {
        let place = format!("variable {:?}", v.name);
        if !ds_ok(v.json.get("datasource")) {
            r.add(&place, format!("does not query the data source variable ({want_ds})"));
        }
        if v.json.pointer("/query/editorType").and_then(Value::as_str) != Some("sql") {
            r.add(&place, "query.editorType is not \"sql\"");
        }
        match v.sql.as_deref() {
            Some(sql) if !sql.trim().is_empty() => check_sql(&mut r, &place, sql, &declared),
            _ => r.add(&place, "has no query.rawSql"),
        }
    }

    let mut ids = BTreeSet::new();
    for p in &d.panels {
        let place = format!("panel {}", p.label());
        match p.id {
            Some(id) if !ids.insert(id) => r.add(&place, format!("id {id} is used twice")),
            Some(_) => {}
            None => r.add(&place, "has no id"),
        }
        check_grid(&mut r, &place, p);
        if matches!(p.kind.as_str(), "row" | "text") {
            if !p.targets.is_empty() {
                r.add(&place, format!("a {} panel with queries", p.kind));
            }
            continue;
        }
        if !ds_ok(p.datasource.as_ref()) {
            r.add(&place, format!("datasource is not the data source variable ({want_ds})"));
        }
        if p.targets.is_empty() {
            r.add(&place, "has no targets");
        }
        let mut refs = BTreeSet::new();
        for (i, t) in p.targets.iter().enumerate() {
            let tplace = format!("{place} target {}", t.ref_id.as_deref().unwrap_or(&format!("#{i}")));
            match t.ref_id.as_deref() {
                None | Some("") => r.add(&tplace, "has no refId"),
                Some(id) if !refs.insert(id) => r.add(&tplace, format!("refId {id} is used twice in the panel")),
                Some(_) => {}
            }
            if !ds_ok(t.datasource.as_ref()) {
                r.add(&tplace, format!("datasource is not the data source variable ({want_ds})"));
            }
            if t.editor_type.as_deref() != Some("sql") {
                r.add(&tplace, "editorType is not \"sql\" (the builder would regenerate rawSql)");
            }
            match t.format {
                None => r.add(&tplace, "has no format (0 time series, 1 table, 2 logs)"),
                Some(f) if !(0..=2).contains(&f) => r.add(&tplace, format!("format {f} is not 0, 1 or 2")),
                Some(f) => {
                    let expected = match p.kind.as_str() {
                        "timeseries" => Some(0),
                        "table" => Some(1),
                        "logs" => Some(2),
                        _ => None,
                    };
                    if expected.is_some_and(|e| e != f) {
                        r.add(&tplace, format!("format {f} does not suit a {} panel", p.kind));
                    }
                }
            }
            match t.raw_sql.as_deref() {
                Some(sql) if !sql.trim().is_empty() => check_sql(&mut r, &tplace, sql, &declared),
                _ => r.add(&tplace, "has no rawSql"),
            }
        }
    }
    check_overlaps(&mut r, &d.panels);
    r.problems
}

/// Variables referenced must exist, formats must be ones the checker reproduces, and every
/// `$__conditionalAll` must name its variable plainly.
fn check_sql(r: &mut Report<'_>, place: &str, sql: &str, declared: &BTreeSet<&str>) {
    for reference in frontend::references(sql) {
        let text = &sql[reference.start..reference.end];
        if reference.name.starts_with("__") {
            continue; // macros and Grafana's built-ins: the interpolation judges them
        }
        if !declared.contains(reference.name.as_str()) {
            r.add(place, format!("{text} names no variable of the dashboard"));
        }
        if let Some(format) = reference.format.as_deref() {
            let base = format.split(':').next().unwrap_or_default();
            if !frontend::FORMATS.contains(&base) {
                r.add(place, format!("{text}: format {base:?} is not one of {:?}", frontend::FORMATS));
            }
        }
    }
    for call in frontend::conditional_all_calls(sql) {
        let [_, variable] = call.args.as_slice() else {
            r.add(place, format!("$__conditionalAll at byte {} does not have two arguments", call.at));
            continue;
        };
        let plain = variable.trim();
        match frontend::conditional_all_variable(plain) {
            Some(name) if plain == format!("${name}") || plain == format!("${{{name}}}") => {
                if !declared.contains(name) {
                    r.add(place, format!("$__conditionalAll(…, {plain}) names no variable of the dashboard"));
                }
            }
            _ => r.add(
                place,
                format!("$__conditionalAll's second argument {plain:?} is not a plain $variable: the plugin would never see All"),
            ),
        }
    }
}

fn check_grid(r: &mut Report<'_>, place: &str, p: &Panel) {
    let Some(g) = p.grid else {
        r.add(place, "has no gridPos {x, y, w, h}");
        return;
    };
    if g.w < 1 || g.h < 1 || g.x < 0 || g.y < 0 || g.x + g.w > 24 {
        r.add(place, format!("gridPos {g:?} is outside the 24-column grid"));
    }
}

fn overlap(a: GridPos, b: GridPos) -> bool {
    a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
}

fn check_overlaps(r: &mut Report<'_>, panels: &[Panel]) {
    // Panels of a collapsed row take no space until it opens.
    let placed: Vec<(&Panel, GridPos)> =
        panels.iter().filter(|p| !p.in_collapsed_row).filter_map(|p| p.grid.map(|g| (p, g))).collect();
    for (i, (a, ga)) in placed.iter().enumerate() {
        for (b, gb) in &placed[i + 1..] {
            if overlap(*ga, *gb) {
                r.add(format!("panel {}", a.label()), format!("overlaps panel {} ({ga:?} and {gb:?})", b.label()));
            }
        }
    }
}
