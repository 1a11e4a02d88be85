//! One CSV per table: a header of column names, then every row (RFC 4180 quoting, `\n` line
//! ends). A text cell that a spreadsheet would run as a formula, one starting with `=`, `+`,
//! `-`, `@`, a tab or a carriage return, is prefixed with `'` (OWASP's advice); numbers are
//! typed cells and are written as they are.

use super::RenderError;
use crate::table::{Cell, Table};

/// `csv/<id>.csv`.
pub fn file_name(table: &Table) -> String {
    format!("csv/{}.csv", table.id)
}

/// A text cell made safe to open in a spreadsheet.
pub fn guard(text: &str) -> std::borrow::Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

pub fn render(table: &Table) -> Result<Vec<u8>, RenderError> {
    table.validate()?;
    let mut w = Writer::new(&table.id, Vec::new(), table.columns.iter().map(|c| c.name.as_str()))?;
    for row in &table.rows {
        w.row(row)?;
    }
    w.finish()
}

/// Writes one table's CSV row by row (the same bytes [`render`] gives), so a population
/// streamed from the store never has to be held whole.
pub struct Writer<W: std::io::Write> {
    table: String,
    inner: csv::Writer<W>,
}

impl<W: std::io::Write> std::fmt::Debug for Writer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("csv::Writer").field("table", &self.table).finish()
    }
}

impl<W: std::io::Write> Writer<W> {
    /// A writer that has written the header.
    pub fn new<'a>(table: &str, out: W, columns: impl IntoIterator<Item = &'a str>) -> Result<Self, RenderError> {
        let inner = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(out);
        let mut w = Writer { table: table.to_owned(), inner };
        let header: Vec<String> = columns.into_iter().map(|c| guard(c).into_owned()).collect();
        w.inner.write_record(&header).map_err(|e| w.err(e.to_string()))?;
        Ok(w)
    }

    fn err(&self, message: String) -> RenderError {
        RenderError::Csv { table: self.table.clone(), message }
    }

    pub fn row(&mut self, row: &[Cell]) -> Result<(), RenderError> {
        let cells = row.iter().map(|cell| match cell {
            Cell::Text(t) => guard(t).into_owned(),
            other => other.display(),
        });
        self.inner
            .write_record(cells)
            .map_err(|e| RenderError::Csv { table: self.table.clone(), message: e.to_string() })
    }

    /// Flushes and returns the output.
    pub fn finish(self) -> Result<W, RenderError> {
        let table = self.table;
        self.inner.into_inner().map_err(|e| RenderError::Csv { table, message: e.to_string() })
    }
}
