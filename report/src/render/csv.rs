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
    let err = |e: csv::Error| RenderError::Csv { table: table.id.clone(), message: e.to_string() };
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    w.write_record(table.columns.iter().map(|c| guard(&c.name).into_owned())).map_err(err)?;
    for row in &table.rows {
        w.write_record(row.iter().map(|cell| match cell {
            Cell::Text(t) => guard(t).into_owned(),
            other => other.display(),
        }))
        .map_err(err)?;
    }
    w.into_inner().map_err(|e| RenderError::Csv { table: table.id.clone(), message: e.to_string() })
}
