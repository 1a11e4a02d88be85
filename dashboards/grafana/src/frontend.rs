//! The browser's part: the plugin's `applyConditionalAll` (`CHDatasource.ts`), then Grafana's
//! variable interpolation (scenes' `sceneInterpolator`) with the plugin's `format` function
//! for values without an explicit format.

use crate::interpolate::{InterpolateError, QueryContext, Values, VarValue};

const CONDITIONAL_ALL: &str = "$__conditionalAll(";

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// One `$__conditionalAll(…)` call: where it starts and its arguments as the plugin splits
/// them (untrimmed; empty when the plugin would find none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConditionalAll {
    pub at: usize,
    pub args: Vec<String>,
}

/// The plugin's `getMacroArgs(query, argsIndex)`: from the `(` at `open`, split at commas
/// one bracket deep until the bracket closes. Quotes are not looked at (as in the plugin).
fn macro_args(s: &str, open: usize) -> Vec<String> {
    let sub = &s.as_bytes()[open..];
    let mut args = Vec::new();
    let mut depth = 0i64;
    let mut last = 1;
    for (i, &b) in sub.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b',' if depth == 1 => {
                args.push(s[open + last..open + i].to_owned());
                last = i + 1;
                continue;
            }
            b',' => {}
            _ => continue,
        }
        if depth == 0 {
            args.push(s[open + last..open + i].to_owned());
            return args;
        }
    }
    Vec::new()
}

/// Every `$__conditionalAll(` call in `sql`, first to last.
pub(crate) fn conditional_all_calls(sql: &str) -> Vec<ConditionalAll> {
    sql.match_indices(CONDITIONAL_ALL)
        .map(|(at, _)| ConditionalAll { at, args: macro_args(sql, at + CONDITIONAL_ALL.len() - 1) })
        .collect()
}

/// The variable name the plugin reads from `$__conditionalAll`'s second argument:
/// `/(?<=\$\{)[\w\d]+(?=\})|(?<=\$)[\w\d]+/` on the trimmed argument, leftmost match.
pub(crate) fn conditional_all_variable(arg: &str) -> Option<&str> {
    let s = arg.trim();
    let b = s.as_bytes();
    for i in 0..b.len() {
        let run = b[i..].iter().take_while(|c| is_word(**c)).count();
        if run == 0 {
            continue;
        }
        if i >= 2 && &b[i - 2..i] == b"${" && b.get(i + run) == Some(&b'}') {
            return Some(&s[i..i + run]);
        }
        if i >= 1 && b[i - 1] == b'$' {
            return Some(&s[i..i + run]);
        }
    }
    None
}

/// `$__conditionalAll(condition, $var)` → `1=1` when `$var` is empty or All, the condition
/// otherwise (the plugin's `applyConditionalAll`, last call first).
pub(crate) fn apply_conditional_all(sql: &str, values: &Values) -> Result<String, InterpolateError> {
    let mut sql = sql.to_owned();
    while let Some(at) = sql.rfind(CONDITIONAL_ALL) {
        let args = macro_args(&sql, at + CONDITIONAL_ALL.len() - 1);
        let [condition, variable] = args.as_slice() else {
            return Err(InterpolateError::ConditionalAllArgs { at });
        };
        // `key?.current.value.toString()`: a multi-value list as JS prints an array.
        let value = conditional_all_variable(variable).and_then(|name| values.get(name)).map(|v| match v {
            VarValue::Text(s) => s.clone(),
            VarValue::Multi(items) => items.join(","),
            VarValue::All => "$__all".to_owned(),
        });
        let phrase = match value.as_deref() {
            Some("" | "$__all") => "1=1",
            _ => condition.as_str(),
        };
        let needle = format!("{CONDITIONAL_ALL}{condition},{variable})");
        sql = js_replace_first(&sql, &needle, phrase);
    }
    Ok(sql)
}

/// JavaScript's `String.prototype.replace(string, string)`: the first occurrence, with the
/// replacement's `$$`, `$&`, `` $` `` and `$'` patterns.
fn js_replace_first(haystack: &str, needle: &str, replacement: &str) -> String {
    let Some(at) = haystack.find(needle) else { return haystack.to_owned() };
    let (before, after) = (&haystack[..at], &haystack[at + needle.len()..]);
    let mut out = String::with_capacity(haystack.len());
    out.push_str(before);
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('$') => out.push('$'),
            Some('&') => out.push_str(needle),
            Some('`') => out.push_str(before),
            Some('\'') => out.push_str(after),
            _ => {
                out.push('$');
                continue;
            }
        }
        chars.next();
    }
    out.push_str(after);
    out
}

/// A variable reference found by Grafana's `VARIABLE_REGEX`:
/// `\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\${(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    pub start: usize,
    pub end: usize,
    pub name: String,
    pub field_path: Option<String>,
    pub format: Option<String>,
}

fn reference_at(s: &str, i: usize) -> Option<Reference> {
    let b = s.as_bytes();
    let words = |from: usize| b[from.min(b.len())..].iter().take_while(|c| is_word(**c)).count();
    let make = |end, name: &str, field_path: Option<&str>, format: Option<&str>| Reference {
        start: i,
        end,
        name: name.to_owned(),
        field_path: field_path.map(str::to_owned),
        format: format.map(str::to_owned),
    };
    match b[i] {
        b'$' => {
            let n = words(i + 1);
            if n > 0 {
                return Some(make(i + 1 + n, &s[i + 1..i + 1 + n], None, None));
            }
            if b.get(i + 1) != Some(&b'{') {
                return None;
            }
            let name_start = i + 2;
            let n = words(name_start);
            if n == 0 {
                return None;
            }
            let mut j = name_start + n;
            let mut field_path = None;
            if b.get(j) == Some(&b'.') {
                let m = b[j + 1..].iter().take_while(|c| !matches!(c, b':' | b'^' | b'}')).count();
                if m == 0 {
                    return None;
                }
                field_path = Some(&s[j + 1..j + 1 + m]);
                j += 1 + m;
            }
            let mut format = None;
            if b.get(j) == Some(&b':') {
                let m = b[j + 1..].iter().take_while(|c| **c != b'}').count();
                if m == 0 {
                    return None;
                }
                format = Some(&s[j + 1..j + 1 + m]);
                j += 1 + m;
            }
            (b.get(j) == Some(&b'}')).then(|| make(j + 1, &s[name_start..name_start + n], field_path, format))
        }
        b'[' if b.get(i + 1) == Some(&b'[') => {
            let name_start = i + 2;
            let n = words(name_start);
            if n == 0 {
                return None;
            }
            let mut j = name_start + n;
            let mut format = None;
            if b.get(j) == Some(&b':') {
                let m = words(j + 1);
                if m == 0 {
                    return None;
                }
                format = Some(&s[j + 1..j + 1 + m]);
                j += 1 + m;
            }
            b[j..].starts_with(b"]]").then(|| make(j + 2, &s[name_start..name_start + n], None, format))
        }
        _ => None,
    }
}

/// Every variable reference in `s`, left to right, as the global regex finds them.
pub(crate) fn references(s: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match reference_at(s, i) {
            Some(r) => {
                i = r.end;
                out.push(r);
            }
            None => i += 1,
        }
    }
    out
}

/// Grafana's built-in variables the checker knows and does not reproduce (hint: why).
const UNSUPPORTED_GLOBALS: [&str; 11] = [
    "__interval",
    "__rate_interval",
    "__range",
    "__range_s",
    "__range_ms",
    "__timezone",
    "__dashboard",
    "__user",
    "__org",
    "__url",
    "__all_variables",
];

/// Replaces every variable reference whose variable exists (declared, or `__from`, `__to`,
/// `__interval_ms`); unknown ones stay as they are, as in Grafana.
pub(crate) fn replace_variables(sql: &str, values: &Values, ctx: &QueryContext) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for r in references(sql) {
        let value = match (r.name.as_str(), values.get(&r.name)) {
            (_, Some(v)) => format_value(&r, v)?,
            ("__from" | "__to" | "__interval_ms", None) => {
                if r.format.is_some() || r.field_path.is_some() {
                    return Err(InterpolateError::Unsupported {
                        what: sql[r.start..r.end].to_owned(),
                        hint: "use the plugin's $__fromTime / $__toTime / $__interval_s macros",
                    });
                }
                let n = match r.name.as_str() {
                    "__from" => ctx.from_ms,
                    "__to" => ctx.to_ms,
                    _ => ctx.interval_ms,
                };
                n.to_string()
            }
            (name, None) if UNSUPPORTED_GLOBALS.contains(&name) => {
                return Err(InterpolateError::Unsupported {
                    what: format!("Grafana's ${name}"),
                    hint: "use the plugin's macros ($__interval_s, $__fromTime, …) in SQL",
                });
            }
            (_, None) => continue,
        };
        out.push_str(&sql[last..r.start]);
        out.push_str(&value);
        last = r.end;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

/// A value as Grafana formats it: `format` if given, else the plugin's `format` function
/// (one value as it is; several as `'a','b'`, unescaped).
fn format_value(r: &Reference, value: &VarValue) -> Result<String, InterpolateError> {
    let items: Vec<&str> = match value {
        VarValue::All => return Err(InterpolateError::AllOutsideConditional { name: r.name.clone() }),
        VarValue::Text(s) => vec![s.as_str()],
        VarValue::Multi(v) => v.iter().map(String::as_str).collect(),
    };
    let multi = matches!(value, VarValue::Multi(_));
    let quote = |q: char, escaped: &str, items: &[&str]| -> String {
        items.iter().map(|v| format!("{q}{}{q}", v.replace(q, escaped))).collect::<Vec<_>>().join(",")
    };
    let format = r.format.as_deref().map(|f| f.split(':').next().unwrap_or_default());
    Ok(match format {
        None if multi => format!("'{}'", items.join("','")),
        None => items.join(""),
        Some("raw" | "csv") => items.join(","),
        Some("pipe") => items.join("|"),
        Some("glob") if items.len() > 1 => format!("{{{}}}", items.join(",")),
        Some("glob") => items.join(","),
        Some("singlequote") => quote('\'', "\\'", &items),
        Some("doublequote") => quote('"', "\\\"", &items),
        Some("sqlstring") => items
            .iter()
            .map(|v| format!("'{}'", v.replace('\'', "''").replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(","),
        Some("percentencode") if multi => percent_encode_strict(&format!("{{{}}}", items.join(","))),
        Some("percentencode") => percent_encode_strict(items.join("").as_str()),
        Some(other) => {
            return Err(InterpolateError::UnsupportedFormat { name: r.name.clone(), format: other.to_owned() });
        }
    })
}

/// `encodeURIComponentStrict`: `encodeURIComponent`, then `! ' ( ) *` too; what is left
/// unencoded is `A-Z a-z 0-9 - _ . ~`.
pub(crate) fn percent_encode_strict(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The formats [`format_value`] reproduces, for the structure checks.
pub(crate) const FORMATS: [&str; 8] =
    ["raw", "csv", "pipe", "glob", "singlequote", "doublequote", "sqlstring", "percentencode"];

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pairs: &[(&str, VarValue)]) -> Values {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    const CTX: QueryContext = QueryContext { from_ms: 1_000, to_ms: 2_000, interval_ms: 60_000 };

    #[test]
    fn finds_references_as_grafanas_regex_does() {
        let refs = references("a $x ${y} ${z:singlequote} ${f.path:raw} [[w]] [[w:csv]] $__timeFilter(t) ${ bad} $");
        let got: Vec<_> = refs.iter().map(|r| (r.name.as_str(), r.format.as_deref())).collect();
        assert_eq!(
            got,
            [
                ("x", None),
                ("y", None),
                ("z", Some("singlequote")),
                ("f", Some("raw")),
                ("w", None),
                ("w", Some("csv")),
                ("__timeFilter", None)
            ]
        );
        assert_eq!(refs[3].field_path.as_deref(), Some("path"));
        // `\w+` is greedy: $__interval_s is one name, not $__interval followed by `_s`.
        assert_eq!(references("$__interval_s")[0].name, "__interval_s");
    }

    #[test]
    fn formats_as_grafana_and_the_plugin_do() {
        let one = v(&[("a", VarValue::Text("it's \\ x".into()))]);
        let many = v(&[("a", VarValue::Multi(vec!["x'1".into(), "y".into()]))]);
        let r = |sql: &str, vals: &Values| replace_variables(sql, vals, &CTX).unwrap();
        assert_eq!(r("$a", &one), "it's \\ x");
        assert_eq!(r("${a}", &many), "'x'1','y'");
        assert_eq!(r("${a:singlequote}", &one), "'it\\'s \\ x'");
        assert_eq!(r("${a:singlequote}", &many), "'x\\'1','y'");
        assert_eq!(r("${a:sqlstring}", &one), "'it''s \\ x'");
        assert_eq!(r("${a:percentencode}", &one), "it%27s%20%5C%20x");
        assert_eq!(r("${a:percentencode}", &many), "%7Bx%271%2Cy%7D");
        assert_eq!(r("${a:raw}", &many), "x'1,y");
        assert_eq!(
            r("${__from} ${__to} $__interval_ms $__timeFilter(t) $unknown", &one),
            "1000 2000 60000 $__timeFilter(t) $unknown"
        );
        assert_eq!(percent_encode_strict("ü!*()~"), "%C3%BC%21%2A%28%29~");
    }

    #[test]
    fn conditional_all_follows_the_plugin() {
        let sql = "WHERE $__conditionalAll(a IN (${a:singlequote}), $a) AND $__conditionalAll(b = f('${b}'), ${b})";
        let got = apply_conditional_all(sql, &v(&[("a", VarValue::All), ("b", VarValue::Text("x".into()))])).unwrap();
        assert_eq!(got, "WHERE 1=1 AND b = f('${b}')");
        let empty = apply_conditional_all(sql, &v(&[("a", VarValue::Multi(vec![])), ("b", VarValue::Text("".into()))]));
        assert_eq!(empty.unwrap(), "WHERE 1=1 AND 1=1");
        // A variable the dashboard does not have: the condition stays.
        assert_eq!(apply_conditional_all("$__conditionalAll(c, $nope)", &Values::new()).unwrap(), "c");
        // A format in the second argument hides the variable from the plugin: never 1=1.
        let formatted = "$__conditionalAll(a = 1, ${a:raw})";
        assert_eq!(apply_conditional_all(formatted, &v(&[("a", VarValue::All)])).unwrap(), "a = 1");
        assert_eq!(
            apply_conditional_all("x $__conditionalAll(only_one) y", &Values::new()),
            Err(InterpolateError::ConditionalAllArgs { at: 2 })
        );
        // The replacement is a JS replacement string: `$&` is the whole call.
        assert_eq!(js_replace_first("a-b-b", "b", "[$&$$]"), "a-[b$]-b");
    }
}
