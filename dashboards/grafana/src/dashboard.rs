//! A dashboard file read into the parts the checks and the SQL runs need. Reading is lenient
//! (a missing field is `None`); [`crate::lint`] says what is missing or wrong.

use crate::interpolate::{Values, VarValue};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Why a dashboard file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{file} is not JSON: {source}")]
    Json { file: String, source: serde_json::Error },
    #[error("{file}: {what}")]
    Shape { file: String, what: String },
}

/// One dashboard file.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// The file name, for messages.
    pub file: String,
    pub uid: Option<String>,
    pub title: Option<String>,
    pub variables: Vec<Variable>,
    /// Every panel, those nested in collapsed rows included, in file order.
    pub panels: Vec<Panel>,
    pub json: Value,
}

/// One template variable (`templating.list[]`).
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    /// `datasource`, `query`, `constant`, `textbox`, `custom`, …
    pub kind: String,
    pub include_all: bool,
    pub multi: bool,
    /// A query variable's SQL (`query.rawSql`).
    pub sql: Option<String>,
    pub json: Value,
}

/// One panel.
#[derive(Debug, Clone)]
pub struct Panel {
    pub id: Option<i64>,
    pub title: String,
    /// `timeseries`, `table`, `stat`, `row`, …
    pub kind: String,
    pub grid: Option<GridPos>,
    pub datasource: Option<Value>,
    pub targets: Vec<Target>,
    /// Inside a collapsed row: laid out only when the row opens.
    pub in_collapsed_row: bool,
    pub json: Value,
}

/// A panel's position in Grafana's 24-column grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridPos {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

/// One query of a panel.
#[derive(Debug, Clone)]
pub struct Target {
    pub ref_id: Option<String>,
    pub editor_type: Option<String>,
    pub raw_sql: Option<String>,
    /// 0 time series, 1 table, 2 logs (the plugin's `format`).
    pub format: Option<i64>,
    pub datasource: Option<Value>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Dashboard {
    /// Reads a dashboard from its JSON text; `file` names it in messages.
    pub fn parse(file: &str, json_text: &str) -> Result<Dashboard, DashboardError> {
        let json: Value =
            serde_json::from_str(json_text).map_err(|source| DashboardError::Json { file: file.to_owned(), source })?;
        let shape = |what: &str| DashboardError::Shape { file: file.to_owned(), what: what.to_owned() };
        if !json.is_object() {
            return Err(shape("the top level is not an object"));
        }
        let variables = match json.pointer("/templating/list") {
            None => Vec::new(),
            Some(Value::Array(list)) => list.iter().map(Variable::read).collect(),
            Some(_) => return Err(shape("templating.list is not an array")),
        };
        let mut panels = Vec::new();
        match json.get("panels") {
            None => {}
            Some(Value::Array(list)) => {
                for p in list {
                    panels.push(Panel::read(p, false));
                    // A collapsed row keeps its panels inside it.
                    if let Some(Value::Array(nested)) = p.get("panels") {
                        panels.extend(nested.iter().map(|n| Panel::read(n, true)));
                    }
                }
            }
            Some(_) => return Err(shape("panels is not an array")),
        }
        Ok(Dashboard {
            file: file.to_owned(),
            uid: text(&json, "uid"),
            title: text(&json, "title"),
            variables,
            panels,
            json,
        })
    }

    /// Reads one file.
    pub fn load(path: &Path) -> Result<Dashboard, DashboardError> {
        let body =
            std::fs::read_to_string(path).map_err(|source| DashboardError::Io { path: path.to_path_buf(), source })?;
        let file = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        Dashboard::parse(&file, &body)
    }

    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// Every variable's value as the dashboard opens: its saved current value (a constant's
    /// or textbox's query), `All` where that is selected. Variables without one are left out.
    pub fn default_values(&self) -> Values {
        self.variables.iter().filter_map(|v| v.default_value().map(|val| (v.name.clone(), val))).collect()
    }
}

impl Variable {
    fn read(v: &Value) -> Variable {
        Variable {
            name: text(v, "name").unwrap_or_default(),
            kind: text(v, "type").unwrap_or_default(),
            include_all: v.get("includeAll").and_then(Value::as_bool).unwrap_or(false),
            multi: v.get("multi").and_then(Value::as_bool).unwrap_or(false),
            sql: v.pointer("/query/rawSql").and_then(Value::as_str).map(str::to_owned),
            json: v.clone(),
        }
    }

    /// The value the dashboard opens with, if it has one.
    pub fn default_value(&self) -> Option<VarValue> {
        if self.kind == "constant" {
            return text(&self.json, "query").map(VarValue::Text);
        }
        match self.json.pointer("/current/value") {
            Some(Value::String(s)) if s == "$__all" => Some(VarValue::All),
            Some(Value::String(s)) => Some(VarValue::Text(s.clone())),
            Some(Value::Array(items)) if items.iter().any(|i| i.as_str() == Some("$__all")) => Some(VarValue::All),
            Some(Value::Array(items)) => {
                Some(VarValue::Multi(items.iter().filter_map(Value::as_str).map(str::to_owned).collect()))
            }
            _ if self.kind == "textbox" => Some(VarValue::Text(text(&self.json, "query").unwrap_or_default())),
            _ => None,
        }
    }
}

impl Panel {
    fn read(p: &Value, in_collapsed_row: bool) -> Panel {
        let grid = p.get("gridPos").and_then(|g| {
            let n = |k: &str| g.get(k).and_then(Value::as_i64);
            Some(GridPos { x: n("x")?, y: n("y")?, w: n("w")?, h: n("h")? })
        });
        let targets = match p.get("targets") {
            Some(Value::Array(list)) => list.iter().map(Target::read).collect(),
            _ => Vec::new(),
        };
        Panel {
            id: p.get("id").and_then(Value::as_i64),
            title: text(p, "title").unwrap_or_default(),
            kind: text(p, "type").unwrap_or_default(),
            grid,
            datasource: p.get("datasource").cloned(),
            targets,
            in_collapsed_row,
            json: p.clone(),
        }
    }

    /// `"title"` (or `panel id N` when untitled), for messages.
    pub fn label(&self) -> String {
        match (self.title.is_empty(), self.id) {
            (false, _) => format!("{:?}", self.title),
            (true, Some(id)) => format!("panel id {id}"),
            (true, None) => "an untitled panel".to_owned(),
        }
    }
}

impl Target {
    fn read(t: &Value) -> Target {
        Target {
            ref_id: text(t, "refId"),
            editor_type: text(t, "editorType"),
            raw_sql: text(t, "rawSql"),
            format: t.get("format").and_then(Value::as_i64),
            datasource: t.get("datasource").cloned(),
        }
    }
}

/// Every `*.json` in `dir`, by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<Dashboard>, DashboardError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DashboardError::Io { path: dir.to_path_buf(), source })?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| DashboardError::Io { path: dir.to_path_buf(), source })?.path();
        if path.extension().is_some_and(|e| e == "json") {
            paths.push(path);
        }
    }
    paths.sort();
    paths.iter().map(|p| Dashboard::load(p)).collect()
}
