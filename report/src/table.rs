//! The report's building blocks: a [`Report`] of [`Section`]s, each with [`Table`]s; every
//! table carries the [`IpeRecord`] of the query that produced it, and a sample carries how it
//! was drawn ([`SampleSpec`]). The renderers (`render`) turn one `Report` into HTML,
//! Markdown, CSV and JSON; [`Report::files`] gives the set of files a bundle holds.

use crate::sample::{self, Frequency, Risk, SampleError};
use gatelog_model::IpeRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The JSON rendering's `schema` value.
pub const REPORT_SCHEMA: &str = "gatelog.report/1";

/// One cell, typed so that CSV guards text only and JSON keeps numbers as numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Text(String),
}

impl Cell {
    /// The cell as text (empty for null), as the HTML and Markdown renderings show it.
    pub fn display(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(n) => n.to_string(),
            Cell::UInt(n) => n.to_string(),
            Cell::Text(t) => t.clone(),
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}
impl From<u64> for Cell {
    fn from(n: u64) -> Self {
        Cell::UInt(n)
    }
}
impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}
impl From<bool> for Cell {
    fn from(b: bool) -> Self {
        Cell::Bool(b)
    }
}

/// A column: its name (as the query returns it) and what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub description: String,
}

impl Column {
    pub fn new(name: &str, description: &str) -> Self {
        Column { name: name.to_owned(), description: description.to_owned() }
    }
}

/// How a sample was drawn from its population (see [`crate::sample`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleSpec {
    /// The [`Table::id`] of the population.
    pub population: String,
    pub population_size: u64,
    pub id_column: String,
    pub seed: String,
    pub frequency: Frequency,
    pub risk: Risk,
    pub size: u64,
    /// The SQL that re-draws this sample in ClickHouse.
    pub redraw_sql: String,
}

/// A population too large to hold: its rows are in a CSV file written while the query was
/// streamed ([`crate::soc2::population`]); the table keeps the first rows as a preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spilled {
    /// Rows in the file (the population's size).
    pub rows: u64,
    /// The CSV file (`csv/<id>.csv` in the bundle), written in the CSV rendering's format.
    #[serde(skip)]
    pub path: std::path::PathBuf,
}

/// A population or a sample: rows, and how they were produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Stable and file-name safe (`[a-z0-9._-]`): the CSV is `csv/<id>.csv`, the HTML anchor `#<id>`.
    pub id: String,
    pub title: String,
    pub description: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
    pub ipe: IpeRecord,
    pub sample: Option<SampleSpec>,
    /// Set when `rows` is only a preview and every row is in a CSV file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spilled: Option<Spilled>,
}

/// Why a table or report is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("table id {0:?}: use lower-case letters, digits, `.`, `_` and `-` (it names a file)")]
    Id(String),
    #[error("table id {0:?} is used twice")]
    DuplicateId(String),
    #[error("table {table}: row {row} has {found} cells, the table has {expected} columns")]
    Width { table: String, row: usize, found: usize, expected: usize },
    #[error("table {table}: no column {column:?}")]
    NoColumn { table: String, column: String },
    #[error("table {table}: {source}")]
    Sample { table: String, source: SampleError },
}

impl Table {
    /// Checks the id and that every row has one cell per column.
    pub fn validate(&self) -> Result<(), TableError> {
        let ok = !self.id.is_empty()
            && !self.id.starts_with('.')
            && self.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !ok {
            return Err(TableError::Id(self.id.clone()));
        }
        for (i, row) in self.rows.iter().enumerate() {
            if row.len() != self.columns.len() {
                return Err(TableError::Width {
                    table: self.id.clone(),
                    row: i,
                    found: row.len(),
                    expected: self.columns.len(),
                });
            }
        }
        Ok(())
    }

    /// Rows in the table: the population's size even when only a preview is held.
    pub fn total_rows(&self) -> u64 {
        self.spilled.as_ref().map_or(self.rows.len() as u64, |s| s.rows)
    }

    pub(crate) fn column(&self, name: &str) -> Result<usize, TableError> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| TableError::NoColumn { table: self.id.clone(), column: name.to_owned() })
    }

    /// Draws the sample of this population: rows ranked by `SHA-256(seed ‖ id)`, sized by
    /// `frequency` and `risk` (see [`crate::sample`]), with the SQL that re-draws it. The
    /// sample's IPE record is the population's, with the re-draw SQL and its row count.
    pub fn sample(
        &self,
        id: &str,
        id_column: &str,
        seed: &str,
        frequency: Frequency,
        risk: Risk,
    ) -> Result<Table, TableError> {
        let sample_err = |source| TableError::Sample { table: self.id.clone(), source };
        let col = self.column(id_column)?;
        let ids: Vec<String> = self.rows.iter().map(|r| r[col].display()).collect();
        let size = sample::sample_size(frequency, risk, ids.len() as u64);
        let drawn = sample::draw(seed, ids.iter().map(String::as_str), size).map_err(sample_err)?;
        let picked = drawn.into_iter().map(|d| (d.rank, self.rows[d.index].clone())).collect();
        self.sample_of(id, id_column, seed, frequency, risk, picked)
    }

    /// The sample table of this population from rows already drawn (`(rank, row)` in rank
    /// order): what [`Table::sample`] and a streamed population's sampler both build.
    pub(crate) fn sample_of(
        &self,
        id: &str,
        id_column: &str,
        seed: &str,
        frequency: Frequency,
        risk: Risk,
        picked: Vec<(String, Vec<Cell>)>,
    ) -> Result<Table, TableError> {
        let sample_err = |source| TableError::Sample { table: self.id.clone(), source };
        let population = self.total_rows();
        let size = sample::sample_size(frequency, risk, population);
        let redraw_sql = sample::redraw_sql(&self.ipe.sql, id_column, seed, size).map_err(sample_err)?;
        let mut columns = vec![Column::new("sample_rank", "SHA-256(seed ‖ id), lower-case hex: the draw order")];
        columns.extend(self.columns.iter().cloned());
        let drawn = picked.len();
        let rows = picked
            .into_iter()
            .map(|(rank, cells)| {
                let mut row = vec![Cell::Text(rank)];
                row.extend(cells);
                row
            })
            .collect();
        let mut ipe = self.ipe.clone();
        ipe.sql = redraw_sql.clone();
        ipe.row_count = drawn as u64;
        ipe.reconciliations = Vec::new();
        Ok(Table {
            id: id.to_owned(),
            title: format!("Sample of {}", self.title),
            description: format!(
                "{drawn} of {population} rows, drawn with seed {seed:?}: the rows of lowest SHA-256(seed ‖ {id_column})."
            ),
            columns,
            rows,
            ipe,
            sample: Some(SampleSpec {
                population: self.id.clone(),
                population_size: population,
                id_column: id_column.to_owned(),
                seed: seed.to_owned(),
                frequency,
                risk,
                size,
                redraw_sql,
            }),
            spilled: None,
        })
    }
}

/// A part of the report, e.g. one criterion (`CC6.1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Anchor, e.g. `cc6.1`.
    pub id: String,
    pub title: String,
    /// What the section evidences, in plain paragraphs.
    pub paragraphs: Vec<String>,
    pub tables: Vec<Table>,
}

/// A whole report: what every renderer takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub title: String,
    /// e.g. `2026-01-01T00:00:00Z – 2026-04-01T00:00:00Z`.
    pub period: String,
    /// gatelog's version that produced it.
    pub gatelog_version: String,
    /// The report's parameters as given (period, seed, options).
    pub parameters: BTreeMap<String, String>,
    /// The command that regenerates this report byte for byte.
    pub regenerate: String,
    /// The hash chain's head over the batches stored when the report's data was read (its
    /// bundle's manifest carries it), when the store has a chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_head: Option<crate::chain::ChainHead>,
    pub sections: Vec<Section>,
}

impl Report {
    /// Checks every table and that table ids are unique.
    pub fn validate(&self) -> Result<(), TableError> {
        let mut seen = std::collections::BTreeSet::new();
        for t in self.tables() {
            t.validate()?;
            if !seen.insert(t.id.as_str()) {
                return Err(TableError::DuplicateId(t.id.clone()));
            }
        }
        Ok(())
    }

    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.sections.iter().flat_map(|s| s.tables.iter())
    }
}
