//! The report as JSON: `{"schema": "gatelog.report/1", "report": …}`, canonical (sorted keys,
//! two-space indent, final newline), every table with all its rows, typed cells and IPE record.

use super::RenderError;
use crate::json::to_canonical_json;
use crate::table::{REPORT_SCHEMA, Report};

pub fn render(report: &Report) -> Result<Vec<u8>, RenderError> {
    report.validate()?;
    Ok(to_canonical_json(&serde_json::json!({ "schema": REPORT_SCHEMA, "report": report }))?)
}
