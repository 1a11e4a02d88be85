//! The completed access review sheet (`csv/cc6.3-review-sheet.csv`, filled in by reviewers)
//! as `gatelog review import` records it: [`parse_sheet`] checks that every row is decided
//! (`keep` or `remove`), that each removal has a rationale, and that every row names its
//! reviewer and date; every problem is reported with its line and column.
//!
//! The review's id is the SHA-256 of its decided rows in a canonical form (sorted by
//! principal and role, fields separated by unit separators), so the same decisions saved
//! again by a spreadsheet (other quoting, line ends or column order) are the same review and
//! are stored once; `sheet_sha256` is the SHA-256 of the file as imported.

use super::Soc2Error;
use super::users::{line_of, parse_instant};
use gatelog_model::{UnixMillis, sha256_hex};
use gatelog_store::sql::reviews::AccessReviewRow;
use std::collections::BTreeMap;

/// The sheet's columns the import reads (any others, e.g. the usage figures, are ignored).
pub const SHEET_COLUMNS: [&str; 6] = ["principal", "role", "decision", "rationale", "reviewer", "reviewed_at"];

/// At most this many problems are listed.
const MAX_PROBLEMS: usize = 50;

/// A cell as typed, without the `'` the CSV rendering puts before a formula-like text.
fn unguard(cell: &str) -> &str {
    let t = cell.trim();
    match t.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => t,
    }
}

/// Parses and checks a completed sheet (`name` is how errors call it). The rows come back
/// sorted by principal and role, each with the review's id, the sheet's hash and `imported_at`.
pub fn parse_sheet(name: &str, bytes: &[u8], imported_at: UnixMillis) -> Result<Vec<AccessReviewRow>, Soc2Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| Soc2Error::Input(format!("{name}: not UTF-8 text: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut problems: Vec<String> = Vec::new();
    let mut index: Option<BTreeMap<&str, usize>> = None;
    let mut rows: BTreeMap<(String, String), (u64, AccessReviewRow)> = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| Soc2Error::Input(format!("{name}: not CSV: {e}")))?;
        let line = line_of(text, record.position());
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let Some(cols) = &index else {
            let header: Vec<String> = record.iter().map(|f| unguard(f).to_ascii_lowercase()).collect();
            let mut found = BTreeMap::new();
            for c in SHEET_COLUMNS {
                match header.iter().position(|h| h == c) {
                    Some(i) => {
                        found.insert(c, i);
                    }
                    None => problems.push(format!("line {line}: the header has no column {c}")),
                }
            }
            if !problems.is_empty() {
                return Err(Soc2Error::Input(format!("{name}: {}", problems.join("; "))));
            }
            index = Some(found);
            continue;
        };
        let get = |c: &str| cols.get(c).and_then(|i| record.get(*i)).map(unguard).unwrap_or_default();
        let mut bad = |column: &str, what: String| problems.push(format!("line {line}, column {column}: {what}"));
        let (principal, role) = (get("principal"), get("role"));
        if principal.is_empty() {
            bad("principal", "empty".to_owned());
        }
        if role.is_empty() {
            bad("role", "empty".to_owned());
        }
        let decision = get("decision").to_ascii_lowercase();
        if decision != "keep" && decision != "remove" {
            bad("decision", format!("{:?}: write keep or remove", get("decision")));
        }
        let rationale = get("rationale");
        if decision == "remove" && rationale.is_empty() {
            bad("rationale", "a removal needs a rationale".to_owned());
        }
        let reviewer = get("reviewer");
        if reviewer.is_empty() {
            bad("reviewer", "empty: who reviewed this row".to_owned());
        }
        let reviewed_at = match get("reviewed_at") {
            "" => {
                bad("reviewed_at", "empty: when this row was reviewed (RFC 3339 or YYYY-MM-DD)".to_owned());
                None
            }
            t => {
                let parsed = parse_instant(t);
                if parsed.is_none() {
                    bad("reviewed_at", format!("{t:?} is neither an RFC 3339 instant nor a date (YYYY-MM-DD)"));
                }
                parsed
            }
        };
        let row = AccessReviewRow {
            review_id: String::new(),
            principal: principal.to_owned(),
            role: role.to_owned(),
            decision,
            rationale: rationale.to_owned(),
            reviewer: reviewer.to_owned(),
            reviewed_at_ms: reviewed_at.map_or(0, |t| t.0),
            imported_at_ms: imported_at.0,
            sheet_sha256: String::new(),
        };
        if let Some((first, _)) = rows.get(&(row.principal.clone(), row.role.clone())) {
            let first = *first;
            bad("principal", format!("{principal} × {role} is listed again (first on line {first})"));
        } else if !principal.is_empty() && !role.is_empty() {
            rows.insert((row.principal.clone(), row.role.clone()), (line, row));
        }
    }
    if index.is_none() {
        return Err(Soc2Error::Input(format!("{name}: empty; expected the review sheet's header")));
    }
    if !problems.is_empty() {
        let more = problems.len().saturating_sub(MAX_PROBLEMS);
        problems.truncate(MAX_PROBLEMS);
        if more > 0 {
            problems.push(format!("and {more} more"));
        }
        return Err(Soc2Error::Input(format!("{name}: the sheet is not complete:\n{}", problems.join("\n"))));
    }
    if rows.is_empty() {
        return Err(Soc2Error::Input(format!("{name}: no rows to record")));
    }
    let canonical: Vec<String> = rows
        .values()
        .map(|(_, r)| {
            [&r.principal, &r.role, &r.decision, &r.rationale, &r.reviewer, &r.reviewed_at_ms.to_string()]
                .map(|s| s.as_str())
                .join("\u{1f}")
        })
        .collect();
    let review_id = sha256_hex(canonical.join("\u{1e}").as_bytes());
    let sheet_sha256 = sha256_hex(bytes);
    Ok(rows
        .into_values()
        .map(|(_, mut r)| {
            r.review_id.clone_from(&review_id);
            r.sheet_sha256.clone_from(&sheet_sha256);
            r
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "principal,role,events,decision,rationale,reviewer,reviewed_at\n";

    #[test]
    fn a_complete_sheet_parses_and_its_id_ignores_formatting() {
        let a = format!(
            "{HEADER}bob@example.com,admin,3,Remove,left the team,carol@example.com,2026-01-15\n\
             alice@example.com,analyst,9,keep,,carol@example.com,2026-01-15T10:00:00Z\n"
        );
        let rows = parse_sheet("sheet.csv", a.as_bytes(), UnixMillis(7)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].principal.as_str(), rows[0].decision.as_str()), ("alice@example.com", "keep"));
        assert_eq!((rows[1].decision.as_str(), rows[1].imported_at_ms), ("remove", 7));
        assert_eq!(rows[0].sheet_sha256, sha256_hex(a.as_bytes()));
        // The same decisions in another order with CRLF line ends: another file, the same review.
        let b = a.lines().rev().collect::<Vec<_>>();
        let b = format!("{HEADER}{}\r\n{}\r\n", b[0], b[1]).replace('\n', "\r\n").replace("\r\r", "\r");
        let again = parse_sheet("sheet.csv", b.as_bytes(), UnixMillis(8)).unwrap();
        assert_eq!(again[0].review_id, rows[0].review_id);
        assert_ne!(again[0].sheet_sha256, rows[0].sheet_sha256);
    }

    #[test]
    fn problems_name_line_and_column() {
        let sheet = format!(
            "{HEADER}a,admin,1,,,,\nb,admin,1,remove,,x,2026-01-01\nc,r,1,keep,,x,yesterday\na,admin,1,keep,,x,2026-01-01\n"
        );
        let err = parse_sheet("sheet.csv", sheet.as_bytes(), UnixMillis(0)).unwrap_err().to_string();
        for want in [
            "line 2, column decision",
            "line 2, column reviewer",
            "line 2, column reviewed_at",
            "line 3, column rationale: a removal needs a rationale",
            "line 4, column reviewed_at: \"yesterday\"",
            "line 5, column principal: a × admin is listed again (first on line 2)",
        ] {
            assert!(err.contains(want), "{want}: {err}");
        }
        let err = parse_sheet("s", b"principal,role\n", UnixMillis(0)).unwrap_err().to_string();
        assert!(err.contains("no column decision"), "{err}");
    }
}
