//! Report tables from query results: [`from_rows`] turns the typed rows of a read query into a
//! [`Table`] with that query's IPE record, column by column as the query names them.

use crate::table::{Cell, Column, Table};
use gatelog_model::{IpeRecord, UnixMillis};
use serde::Serialize;

use super::Soc2Error;

/// A table of `rows` (any serde-serialisable row: fields are looked up by `columns`' names).
/// Integer fields named `*_ms` are epoch milliseconds and print as RFC 3339 UTC text, unless
/// the name says it is a duration ([`is_timestamp`]).
pub fn from_rows<R: Serialize>(
    id: &str,
    title: &str,
    description: &str,
    columns: &[(&str, &str)],
    rows: &[R],
    ipe: IpeRecord,
) -> Result<Table, Soc2Error> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let value = serde_json::to_value(row).map_err(|e| Soc2Error::Internal(format!("table {id}: {e}")))?;
        let cells =
            columns.iter().map(|(name, _)| cell(name, value.get(*name).unwrap_or(&serde_json::Value::Null))).collect();
        out.push(cells);
    }
    Ok(Table {
        id: id.to_owned(),
        title: title.to_owned(),
        description: description.to_owned(),
        columns: columns.iter().map(|(n, d)| Column::new(n, d)).collect(),
        rows: out,
        ipe,
        sample: None,
        spilled: None,
    })
}

/// Whether a column holds epoch milliseconds: named `*_ms` and not a duration (`duration`,
/// `latency`, `elapsed`, `lag`, `delay`, `took`, `age`, `skew`, `time_to_…` in the name).
pub fn is_timestamp(name: &str) -> bool {
    const DURATIONS: [&str; 9] = ["duration", "latency", "elapsed", "lag", "delay", "took", "age", "skew", "time_to_"];
    name.ends_with("_ms") && !DURATIONS.iter().any(|d| name.contains(d))
}

/// One cell from one JSON value; see [`from_rows`] for `*_ms`.
pub fn cell(name: &str, v: &serde_json::Value) -> Cell {
    use serde_json::Value as J;
    match v {
        J::Null => Cell::Null,
        J::Bool(b) => Cell::Bool(*b),
        J::Number(n) if is_timestamp(name) => match n.as_i64() {
            Some(0) => Cell::Null,
            Some(ms) => Cell::Text(UnixMillis(ms).to_rfc3339()),
            None => Cell::Text(n.to_string()),
        },
        J::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Cell::UInt(u),
            (None, Some(i)) => Cell::Int(i),
            _ => Cell::Text(n.to_string()),
        },
        J::String(s) => Cell::Text(s.clone()),
        J::Array(items) => Cell::Text(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        J::Object(_) => Cell::Text(v.to_string()),
    }
}

/// A table computed by gatelog from its input (no query): its record says so, with the
/// input's SHA-256 in place of SQL.
pub fn computed(what: &str, as_of: UnixMillis, rows: u64) -> IpeRecord {
    IpeRecord {
        sql: format!("-- not a query: {what}"),
        parameters: Vec::new(),
        server: "gatelog".to_owned(),
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        database: String::new(),
        row_count: rows,
        ran_at: as_of,
        elapsed_ms: 0,
        reconciliations: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_rfc3339_and_durations_as_numbers() {
        let ms = serde_json::json!(1_767_225_600_000_i64);
        assert_eq!(cell("time_ms", &ms), Cell::Text("2026-01-01T00:00:00.000Z".into()));
        assert_eq!(cell("first_seen_ms", &ms), Cell::Text("2026-01-01T00:00:00.000Z".into()));
        for duration in ["duration_ms", "time_to_ack_ms", "latency_ms", "elapsed_ms"] {
            assert_eq!(cell(duration, &serde_json::json!(1500)), Cell::UInt(1500), "{duration}");
        }
        assert_eq!(cell("roles", &serde_json::json!(["a", "b"])), Cell::Text("a, b".into()));
    }
}
