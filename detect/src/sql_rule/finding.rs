//! A rule's result rows as [`Finding`]s, and fixtures' expected findings against them.
//!
//! Each row is one finding. Columns with a meaning: `principal`, `client_ip`, `country`,
//! `resource`, `dataset`, `tenant` (default `default`), `event_ids` (an array, capped at
//! [`MAX_EVENT_IDS`]), `window_start_ms` / `window_end_ms` (default: the run's window).
//! Every other column (`count`, `denials`, …) is evidence. `dedup_key` and `summary` are
//! templates over the columns, `{rule}` and `{threshold}`.

use super::{SqlRule, placeholders};
use gatelog_model::{Finding, UnixMillis};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One result row (`JSONEachRow`): column name → value.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// Event ids kept per finding.
pub const MAX_EVENT_IDS: usize = 100;

const FIELDS: [&str; 9] = [
    "principal",
    "client_ip",
    "country",
    "resource",
    "dataset",
    "tenant",
    "event_ids",
    "window_start_ms",
    "window_end_ms",
];

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn millis(row: &Row, column: &str) -> Result<Option<i64>, String> {
    let Some(v) = row.get(column) else { return Ok(None) };
    text(v).parse::<i64>().map(Some).map_err(|_| format!("column {column}: expected epoch milliseconds, got {v}"))
}

fn fill(rule: &SqlRule, key: &str, template: &str, row: &Row) -> Result<String, String> {
    let mut out = template.to_owned();
    for name in placeholders(template)? {
        let value = match name {
            "rule" => rule.id.clone(),
            "threshold" if !row.contains_key("threshold") => rule.threshold.unwrap_or_default().to_string(),
            _ => row.get(name).map(text).ok_or_else(|| {
                let columns: Vec<&str> = row.keys().map(String::as_str).collect();
                format!("{key}: {{{name}}} is not a column of the result ({})", columns.join(", "))
            })?,
        };
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    Ok(out)
}

/// The finding a result row of `rule` means, for a run over `window`.
pub fn row_to_finding(rule: &SqlRule, row: &Row, window: (UnixMillis, UnixMillis)) -> Result<Finding, String> {
    let get = |c: &str| row.get(c).map(text).unwrap_or_default();
    let event_ids = match row.get("event_ids") {
        None => Vec::new(),
        Some(serde_json::Value::Array(items)) => items.iter().take(MAX_EVENT_IDS).map(text).collect(),
        Some(other) => return Err(format!("column event_ids: expected an array, got {other}")),
    };
    let tenant = match get("tenant") {
        t if t.is_empty() => "default".to_owned(),
        t => t,
    };
    let evidence: BTreeMap<String, String> =
        row.iter().filter(|(k, _)| !FIELDS.contains(&k.as_str())).map(|(k, v)| (k.clone(), text(v))).collect();
    let finding = Finding {
        rule_id: rule.id.clone(),
        rule_version: rule.version,
        severity: rule.severity,
        dedup_key: fill(rule, "dedup_key", &rule.dedup_key, row)?,
        tenant,
        window_start: millis(row, "window_start_ms")?.map_or(window.0, UnixMillis),
        window_end: millis(row, "window_end_ms")?.map_or(window.1, UnixMillis),
        principal: get("principal"),
        client_ip: get("client_ip"),
        country: get("country"),
        resource: get("resource"),
        dataset: get("dataset"),
        event_ids,
        summary: fill(rule, "summary", &rule.summary, row)?,
        evidence,
        ..Finding::default()
    };
    Ok(finding.seal())
}

/// A finding a fixture expects: only the keys given are compared (`count` and any other
/// name in `evidence` are evidence columns).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub dedup_key: Option<String>,
    pub principal: Option<String>,
    pub client_ip: Option<String>,
    pub country: Option<String>,
    pub resource: Option<String>,
    pub dataset: Option<String>,
    pub summary: Option<String>,
    pub event_ids: Option<Vec<String>>,
    pub count: Option<u64>,
    #[serde(default)]
    pub evidence: BTreeMap<String, String>,
}

impl Expected {
    /// `(key, value)` of what this expectation names.
    fn pairs(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.insert(k.to_owned(), v.clone());
            }
        };
        put("dedup_key", &self.dedup_key);
        put("principal", &self.principal);
        put("client_ip", &self.client_ip);
        put("country", &self.country);
        put("resource", &self.resource);
        put("dataset", &self.dataset);
        put("summary", &self.summary);
        if let Some(ids) = &self.event_ids {
            out.insert("event_ids".into(), format!("{ids:?}"));
        }
        if let Some(n) = self.count {
            out.insert("evidence.count".into(), n.to_string());
        }
        for (k, v) in &self.evidence {
            out.insert(format!("evidence.{k}"), v.clone());
        }
        out
    }
}

fn project(f: &Finding, keys: &[String]) -> BTreeMap<String, String> {
    keys.iter()
        .map(|k| {
            let v = match k.as_str() {
                "dedup_key" => f.dedup_key.clone(),
                "principal" => f.principal.clone(),
                "client_ip" => f.client_ip.clone(),
                "country" => f.country.clone(),
                "resource" => f.resource.clone(),
                "dataset" => f.dataset.clone(),
                "summary" => f.summary.clone(),
                "event_ids" => format!("{:?}", f.event_ids),
                other => {
                    let name = other.strip_prefix("evidence.").unwrap_or(other);
                    f.evidence.get(name).cloned().unwrap_or_else(|| "(none)".into())
                }
            };
            (k.clone(), v)
        })
        .collect()
}

fn line(pairs: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {v:?}")).collect();
    format!("{{ {} }}", inner.join(", "))
}

/// Whether a fixture got what it expected, and if not, how they differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureOutcome {
    pub passed: bool,
    /// `- expected` and `+ got` lines, one finding each (only when it failed).
    pub diff: Vec<String>,
}

/// The findings `got` against `expected`, as multisets of the keys the fixture's expectations
/// name (`dedup_key` when none names any): order does not matter, number does. An
/// expectation that leaves out a key another one names expects it empty.
pub fn compare(expected: &[Expected], got: &[Finding]) -> FixtureOutcome {
    let mut keys: Vec<String> = Vec::new();
    for e in expected {
        for k in e.pairs().into_keys() {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    if keys.is_empty() {
        keys.push("dedup_key".into());
    }
    let mut want: Vec<String> = expected
        .iter()
        .map(|e| {
            let mut p = project(&Finding::default(), &keys);
            p.extend(e.pairs());
            line(&p)
        })
        .collect();
    let mut have: Vec<String> = got.iter().map(|f| line(&project(f, &keys))).collect();
    want.sort();
    have.sort();
    if want == have {
        return FixtureOutcome { passed: true, diff: Vec::new() };
    }
    let mut diff = Vec::new();
    let mut rest = have.clone();
    for w in &want {
        match rest.iter().position(|h| h == w) {
            Some(i) => {
                rest.remove(i);
            }
            None => diff.push(format!("- expected {w}")),
        }
    }
    diff.extend(rest.iter().map(|h| format!("+ got      {h}")));
    FixtureOutcome { passed: false, diff }
}
