//! Renderers: one [`Report`] in, the same evidence in four formats.
//!
//! - [`html`]: one self-contained page (inline CSS, no scripts, no external requests; a CSP
//!   forbids any), laid out for A4 print; minijinja template `report.html`, so auto-escaping
//!   applies to every value.
//! - [`markdown`]: the same, for reading in a repository or a ticket.
//! - [`csv`]: one file per table, text cells guarded against formula injection.
//! - [`json`]: schema-versioned (`gatelog.report/1`), canonical (sorted keys).
//!
//! [`files`] gives them as the files of a bundle.

pub mod csv;
pub mod html;
pub mod json;
pub mod markdown;

use crate::table::{Report, TableError};

/// Why a report cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("cannot write CSV for table {table}: {message}")]
    Csv { table: String, message: String },
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// How much of each table the HTML and Markdown renderings show (the CSV has every row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    pub max_rows: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { max_rows: 200 }
    }
}

/// A rendered file's content: in memory, or (a spilled population's CSV) on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Bytes(Vec<u8>),
    File(std::path::PathBuf),
}

impl Content {
    /// The bytes (read from disk for a file).
    pub fn read(&self) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
        match self {
            Content::Bytes(b) => Ok(b.as_slice().into()),
            Content::File(p) => std::fs::read(p).map(Into::into),
        }
    }
}

/// Every rendering as bundle files: `report.html`, `report.md`, `report.json`, and
/// `csv/<table id>.csv` per table (a spilled population's file as it is), sorted by path.
pub fn files(report: &Report, options: RenderOptions) -> Result<Vec<(String, Content)>, RenderError> {
    report.validate()?;
    let mut out = vec![
        ("report.html".to_owned(), Content::Bytes(html::render(report, options)?.into_bytes())),
        ("report.md".to_owned(), Content::Bytes(markdown::render(report, options).into_bytes())),
        ("report.json".to_owned(), Content::Bytes(json::render(report)?)),
    ];
    for table in report.tables() {
        let content = match &table.spilled {
            Some(s) => Content::File(s.path.clone()),
            None => Content::Bytes(csv::render(table)?),
        };
        out.push((csv::file_name(table), content));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
