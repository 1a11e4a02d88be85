//! The plugin's backend: `macros.Interpolate` (`pkg/macros/macros.go`) over macropro v1.0.1.
//!
//! - Comments are blanked first (`--` to the line end, `/* … */`), byte for byte with spaces,
//!   outside `'…'`/`"…"` strings (backslash escapes understood), `` `…` `` identifiers and
//!   `$tag$…$tag$` strings, so a macro in a comment never expands. A query without `$__` is
//!   sent untouched, comments included.
//! - One forward scan: `$__` then the longest `[A-Za-z0-9_]` name; an unknown name is copied
//!   through; a known one takes an optional `(…)` (closing bracket found respecting `'…'` and
//!   `"…"`), whose arguments are split at top-level commas, trimmed, and expanded first when
//!   they hold macros themselves. Handler output is never rescanned.
//! - Time range: `toDateTime(<unix seconds, floored>)`, or `fromUnixTimestamp64Milli(<ms>)`
//!   for the `_ms` forms; the interval in whole seconds, at least 1.

use crate::interpolate::{InterpolateError, QueryContext};

const PREFIX: &str = "$__";

/// Expands `sql` as the plugin's backend does.
pub(crate) fn expand(sql: &str, ctx: &QueryContext) -> Result<String, InterpolateError> {
    if !sql.contains(PREFIX) {
        return Ok(sql.to_owned());
    }
    let work = strip_comments(sql);
    if !work.contains(PREFIX) {
        return Ok(work);
    }
    expand_at(&work, ctx, 0)
}

fn expand_at(work: &str, ctx: &QueryContext, depth: usize) -> Result<String, InterpolateError> {
    if depth > 128 {
        return Err(InterpolateError::MacroArguments { macro_name: PREFIX.into(), detail: "nested too deep".into() });
    }
    let b = work.as_bytes();
    let mut out = String::with_capacity(work.len());
    let mut i = 0;
    while let Some(rel) = work[i..].find(PREFIX) {
        out.push_str(&work[i..i + rel]);
        i += rel;
        let name_start = i + PREFIX.len();
        let name_end =
            name_start + b[name_start..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
        let name = &work[name_start..name_end];
        if name.is_empty() || !known(name) {
            out.push_str(&work[i..name_end]);
            i = name_end;
            continue;
        }
        let mut raw = "";
        let mut after = name_end;
        if b.get(name_end) == Some(&b'(')
            && let Some(close) = closing_paren(work, name_end)
        {
            raw = &work[name_end + 1..close];
            after = close + 1;
        }
        let mut args = parse_args(raw)
            .map_err(|detail| InterpolateError::MacroArguments { macro_name: format!("{PREFIX}{name}"), detail })?;
        for arg in &mut args {
            if arg.contains(PREFIX) {
                *arg = expand_at(arg, ctx, depth + 1)?;
            }
        }
        out.push_str(&handle(name, &args, ctx)?);
        i = after;
    }
    out.push_str(&work[i..]);
    Ok(out)
}

/// The names `ClickHouseMacros` holds (macropro's defaults merged with the plugin's own),
/// plus the statement macros of its pre-pass.
fn known(name: &str) -> bool {
    matches!(
        name,
        "timeFilter"
            | "timeFilter_ms"
            | "fromTime"
            | "toTime"
            | "fromTime_ms"
            | "toTime_ms"
            | "timeFrom"
            | "timeTo"
            | "timeInterval"
            | "timeInterval_ms"
            | "interval_s"
            | "interval"
            | "interval_ms"
            | "timeGroup"
            | "dateFilter"
            | "dateTimeFilter"
            | "dt"
            | "table"
            | "column"
            | "columns"
            | "rateColumns"
            | "perSecondColumns"
            | "increaseColumns"
            | "lttb"
    )
}

fn want(name: &str, n: usize, args: &[String]) -> Result<(), InterpolateError> {
    if args.len() == n {
        return Ok(());
    }
    Err(InterpolateError::MacroArguments {
        macro_name: format!("{PREFIX}{name}"),
        detail: format!("expected {n} argument(s), received {}", args.len()),
    })
}

/// `toDateTime(<t.Unix()>)`: Go floors to the second.
fn date_time(ms: i64) -> String {
    format!("toDateTime({})", ms.div_euclid(1000))
}

fn date_time64(ms: i64) -> String {
    format!("fromUnixTimestamp64Milli({ms})")
}

/// `int(math.Max(interval.Seconds(), 1))`.
fn interval_seconds(ctx: &QueryContext) -> i64 {
    (ctx.interval_ms as f64 / 1000.0).max(1.0) as i64
}

/// macropro's `FormatDuration` (v1.0.1): the largest whole unit.
fn format_duration(ms: i64) -> String {
    let ms = ms.abs();
    match ms {
        0 => "0s".to_owned(),
        _ if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        _ if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        _ if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        _ => format!("{ms}ms"),
    }
}

fn handle(name: &str, args: &[String], ctx: &QueryContext) -> Result<String, InterpolateError> {
    let (from, to) = (ctx.from_ms, ctx.to_ms);
    Ok(match name {
        "timeFilter" => {
            want(name, 1, args)?;
            let c = &args[0];
            format!("{c} >= {} AND {c} <= {}", date_time(from), date_time(to))
        }
        "timeFilter_ms" => {
            want(name, 1, args)?;
            let c = &args[0];
            format!("{c} >= {} AND {c} <= {}", date_time64(from), date_time64(to))
        }
        "fromTime" => date_time(from),
        "toTime" => date_time(to),
        "fromTime_ms" => date_time64(from),
        "toTime_ms" => date_time64(to),
        "timeFrom" => {
            want(name, 1, args)?;
            format!("{} >= {}", args[0], date_time(from))
        }
        "timeTo" => {
            want(name, 1, args)?;
            format!("{} <= {}", args[0], date_time(to))
        }
        "timeInterval" => {
            want(name, 1, args)?;
            format!("toStartOfInterval(toDateTime({}), INTERVAL {} second)", args[0], interval_seconds(ctx))
        }
        "timeInterval_ms" => {
            want(name, 1, args)?;
            format!("toStartOfInterval(toDateTime64({}, 3), INTERVAL {} millisecond)", args[0], ctx.interval_ms.max(1))
        }
        "interval_s" => interval_seconds(ctx).to_string(),
        "interval" => format_duration(ctx.interval_ms),
        "interval_ms" => ctx.interval_ms.to_string(),
        other => {
            return Err(InterpolateError::Unsupported {
                what: format!("the plugin's {PREFIX}{other}"),
                hint: "gatelog's dashboards use $__timeFilter, $__fromTime, $__toTime and $__interval_s; add it here, from the plugin's source, if a dashboard needs it",
            });
        }
    })
}

/// macropro's `findClosingParen`: the `)` closing the `(` at `open`, skipping `'…'` and `"…"`.
fn closing_paren(s: &str, open: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0i64;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                i = scan_string(b, i, false);
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// macropro's `parseArgs`: split at top-level commas, trimmed; nothing for a blank list.
fn parse_args(raw: &str) -> Result<Vec<String>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let b = raw.as_bytes();
    let (mut args, mut depth, mut start, mut i) = (Vec::new(), 0i64, 0, 0);
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                i = scan_string(b, i, false);
                continue;
            }
            b'(' => depth += 1,
            b')' if depth == 0 => return Err(format!("unexpected ')' at position {i}")),
            b')' => depth -= 1,
            b',' if depth == 0 => {
                args.push(raw[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if depth != 0 {
        return Err("unbalanced parentheses in arguments".into());
    }
    args.push(raw[start..].trim().to_owned());
    Ok(args)
}

/// Past the quoted literal starting at `pos` (its quote doubled inside it, or with
/// `backslash`, escaped by a backslash); the end of input when it is not closed.
fn scan_string(b: &[u8], pos: usize, backslash: bool) -> usize {
    let quote = b[pos];
    let mut j = pos + 1;
    while j < b.len() {
        if backslash && b[j] == b'\\' && j + 1 < b.len() {
            j += 2;
            continue;
        }
        if b[j] == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    j
}

/// macropro's `StripComments` with the plugin's style (line and block comments; backslash
/// escapes, backtick identifiers and dollar-quoted strings respected).
fn strip_comments(sql: &str) -> String {
    if !sql.bytes().any(|c| matches!(c, b'-' | b'/' | b'$')) {
        return sql.to_owned();
    }
    let b = sql.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let end = match c {
            b'\'' | b'"' => Some((scan_string(b, i, true), false)),
            b'`' => Some((scan_string(b, i, false), false)),
            b'$' => dollar_quote_end(b, i).map(|e| (e, false)),
            b'-' if next == Some(b'-') => {
                Some((i + b[i..].iter().take_while(|c| !matches!(c, b'\n' | b'\r')).count(), true))
            }
            b'/' if next == Some(b'*') => {
                let close = b[i + 2..].windows(2).position(|w| w == b"*/").map_or(b.len(), |p| i + 2 + p + 2);
                Some((close, true))
            }
            _ => None,
        };
        match end {
            Some((j, true)) => {
                out.extend(std::iter::repeat_n(b' ', j - i));
                i = j;
            }
            Some((j, false)) => {
                out.extend_from_slice(&b[i..j]);
                i = j;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Only whole comments (which start and end on ASCII bytes) were replaced.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// macropro's `parseDollarQuote`: the end of `$tag$ … $tag$` starting at `pos`, if it is one.
fn dollar_quote_end(b: &[u8], pos: usize) -> Option<usize> {
    let tag_len = b[pos + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
    let close = pos + 1 + tag_len;
    if b.get(close) != Some(&b'$') {
        return None;
    }
    let tag = &b[pos..=close];
    let rest = &b[close + 1..];
    rest.windows(tag.len()).position(|w| w == tag).map(|p| close + 1 + p + tag.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instants of the plugin's `macros_test.go`: 2014-11-12T11:45:26.371Z and a year on.
    const CTX: QueryContext = QueryContext { from_ms: 1_415_792_726_371, to_ms: 1_447_328_726_371, interval_ms: 1_500 };

    fn x(sql: &str) -> String {
        expand(sql, &CTX).unwrap()
    }

    #[test]
    fn time_macros_give_the_plugins_text() {
        assert_eq!(x("$__fromTime"), "toDateTime(1415792726)");
        assert_eq!(x("$__toTime"), "toDateTime(1447328726)");
        assert_eq!(x("$__fromTime_ms"), "fromUnixTimestamp64Milli(1415792726371)");
        assert_eq!(x("$__toTime_ms"), "fromUnixTimestamp64Milli(1447328726371)");
        assert_eq!(x("$__timeFilter(t)"), "t >= toDateTime(1415792726) AND t <= toDateTime(1447328726)");
        assert_eq!(
            x("$__timeFilter_ms(t)"),
            "t >= fromUnixTimestamp64Milli(1415792726371) AND t <= fromUnixTimestamp64Milli(1447328726371)"
        );
        assert_eq!(x("$__timeFrom(t) $__timeTo(t)"), "t >= toDateTime(1415792726) t <= toDateTime(1447328726)");
        // 1.5 s: whole seconds, truncated; milliseconds as they are.
        assert_eq!(x("$__interval_s"), "1");
        assert_eq!(x("$__timeInterval(t)"), "toStartOfInterval(toDateTime(t), INTERVAL 1 second)");
        assert_eq!(x("$__timeInterval_ms(t)"), "toStartOfInterval(toDateTime64(t, 3), INTERVAL 1500 millisecond)");
        let sub_second = QueryContext { interval_ms: 20, ..CTX };
        assert_eq!(expand("$__interval_s $__interval_ms $__interval", &sub_second).unwrap(), "1 20 20ms");
        let before_1970 = QueryContext { from_ms: -1, ..CTX };
        assert_eq!(expand("$__fromTime", &before_1970).unwrap(), "toDateTime(-1)");
    }

    #[test]
    fn scans_as_macropro_does() {
        // Longest name first, unknown names copied through with their arguments scanned.
        assert_eq!(x("$__interval_s$__nope($__interval_s)"), "1$__nope(1)");
        // Nested macros expand first; an argument's commas are fixed before.
        assert_eq!(
            x("$__timeFilter(f($__interval_s, 2))"),
            "f(1, 2) >= toDateTime(1415792726) AND f(1, 2) <= toDateTime(1447328726)"
        );
        // Brackets inside strings do not count; an unclosed list is a call without arguments.
        assert_eq!(
            x("$__timeFilter(concat(')', t))"),
            "concat(')', t) >= toDateTime(1415792726) AND concat(')', t) <= toDateTime(1447328726)"
        );
        assert!(matches!(expand("$__timeFilter(", &CTX), Err(InterpolateError::MacroArguments { .. })));
        assert!(matches!(expand("$__timeFilter(a, b)", &CTX), Err(InterpolateError::MacroArguments { .. })));
        assert!(matches!(expand("$__timeFilter()", &CTX), Err(InterpolateError::MacroArguments { .. })));
    }

    #[test]
    fn comments_are_blanked_strings_are_not() {
        let blank = |s: &str| " ".repeat(s.len());
        assert_eq!(x("a -- $__fromTime\nb"), format!("a {}\nb", blank("-- $__fromTime")));
        assert_eq!(x("a /* $__fromTime */ b"), format!("a {} b", blank("/* $__fromTime */")));
        assert_eq!(x("'--' $__interval_s '\\' -- x' `a--b` $q$ -- $q$"), "'--' 1 '\\' -- x' `a--b` $q$ -- $q$");
        // Without the prefix the query is sent as written, comments and all.
        assert_eq!(x("SELECT 1 -- hi"), "SELECT 1 -- hi");
        assert_eq!(x("/* unterminated $__fromTime"), blank("/* unterminated $__fromTime"));
    }
}
