//! `--users users.csv`: the identity provider's export CC6.2 compares access against. A
//! header `principal,start,end`, then one user a line; `start` and `end` are RFC 3339 instants
//! or dates (`2026-01-31`, midnight UTC); an empty `start` is "since before any stored
//! event", an empty `end` "still active". Every error names the line.

use super::{Soc2Error, UserWindow};
use gatelog_model::UnixMillis;
use std::collections::BTreeMap;

/// An RFC 3339 instant, or a date `YYYY-MM-DD` (its midnight UTC).
pub fn parse_instant(text: &str) -> Option<UnixMillis> {
    let t = text.trim();
    let is_date = t.len() == 10
        && t.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if is_date {
        return UnixMillis::parse_str(&format!("{t}T00:00:00Z")).ok();
    }
    // Epoch numbers are not accepted here: a column of them is too easy to misread.
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    UnixMillis::parse_str(t).ok()
}

/// The 1-based line a record starts on (the CSV reader's own count skips blank lines).
pub(crate) fn line_of(text: &str, at: Option<&csv::Position>) -> u64 {
    let mut byte = at.map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX)).min(text.len());
    // A record's position is where the reader started looking: before any blank lines.
    while matches!(text.as_bytes().get(byte), Some(b'\n' | b'\r')) {
        byte += 1;
    }
    text.as_bytes()[..byte].iter().filter(|b| **b == b'\n').count() as u64 + 1
}

/// Parses the export (`name` is how errors call it, e.g. its path).
pub fn parse_users(name: &str, text: &str) -> Result<Vec<UserWindow>, Soc2Error> {
    let bad = |line: u64, what: String| Soc2Error::Input(format!("{name} line {line}: {what}"));
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut header = false;
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            bad(line, format!("not CSV: {e}"))
        })?;
        let line = line_of(text, record.position());
        let fields: Vec<&str> = record.iter().map(str::trim).collect();
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        if !header {
            let got: Vec<String> =
                fields.iter().map(|f| f.trim_start_matches('\u{feff}').to_ascii_lowercase()).collect();
            if got != ["principal", "start", "end"] {
                return Err(bad(line, format!("the header must be principal,start,end, found {}", fields.join(","))));
            }
            header = true;
            continue;
        }
        if fields.len() != 3 {
            return Err(bad(line, format!("expected 3 fields (principal,start,end), found {}", fields.len())));
        }
        let principal = fields[0];
        if principal.is_empty() {
            return Err(bad(line, "the principal is empty".to_owned()));
        }
        let instant = |column: &str, text: &str| -> Result<Option<UnixMillis>, Soc2Error> {
            if text.is_empty() {
                return Ok(None);
            }
            parse_instant(text).map(Some).ok_or_else(|| {
                bad(line, format!("{column} {text:?} is neither an RFC 3339 instant nor a date (YYYY-MM-DD)"))
            })
        };
        let start = instant("start", fields[1])?;
        let end = instant("end", fields[2])?;
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            return Err(bad(line, format!("end {} is before start {}", fields[2], fields[1])));
        }
        if let Some(first) = seen.insert(principal.to_owned(), line) {
            return Err(bad(line, format!("{principal} is listed again (first on line {first})")));
        }
        out.push(UserWindow { principal: principal.to_owned(), start, end });
    }
    if !header {
        return Err(Soc2Error::Input(format!("{name}: empty; expected a header principal,start,end")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_instants_dates_and_open_ends() {
        let text = "principal,start,end\nalice@example.com,2025-01-01,\n\nbob@example.com,,2025-03-02T12:00:00Z\n";
        let users = parse_users("users.csv", text).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].start, Some(UnixMillis(1_735_689_600_000)));
        assert_eq!(users[0].end, None);
        assert_eq!((users[1].start, users[1].end), (None, Some(UnixMillis(1_740_916_800_000))));
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("user,start,end\n", "line 1: the header"),
            ("principal,start,end\na,2025-13-01,\n", "line 2: start \"2025-13-01\""),
            ("principal,start,end\na,,\nb,2025-02-01,2025-01-01\n", "line 3: end 2025-01-01 is before"),
            ("principal,start,end\na,,\n\na,,\n", "line 4: a is listed again (first on line 2)"),
            ("principal,start,end\n,,\nx,1,\n", "line 3: start \"1\""),
            ("principal,start,end\nx,\n", "line 2: expected 3 fields"),
            ("", "empty"),
        ];
        for (text, want) in cases {
            let err = parse_users("users.csv", text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
