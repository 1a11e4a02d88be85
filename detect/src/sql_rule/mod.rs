//! Rules as code: SQL detections in `rules/*.toml`, one rule per file.
//!
//! A [`SqlRule`] is a query over gatelog's `decisions` table, run on a schedule over a window
//! of *arrival* time (`received_at_ms >= {from} AND received_at_ms < {to}`, so a decision
//! that arrives late is judged in the window it arrived in, never lost). Each row the query
//! returns is one [`Finding`](gatelog_model::Finding) ([`finding`] maps its columns). A rule
//! carries its own fixtures: decisions in, the findings expected out, run by
//! `gatelog rules test` against a real ClickHouse.
//!
//! This module is pure: it parses and validates rule text (files are read by
//! `gatelog-watch`), renders the SQL and maps result rows. The built-in rules are the files of
//! the repository's `rules/` directory, embedded here ([`builtin`]). Every message names the
//! file and the key: `rules/foo.toml: schedule: must be at least 1m, got 10s`.

pub mod finding;

pub use finding::{Expected, FixtureOutcome, Row, compare, row_to_finding};

use crate::config::SqlRulesConfig;
use gatelog_model::{AccessDecision, Severity, UnixMillis};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// The built-in rules: `(file name, text)` of the repository's `rules/*.toml`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("rules/deny_enumeration.toml", include_str!("../../../rules/deny_enumeration.toml")),
    ("rules/brute_force_success.toml", include_str!("../../../rules/brute_force_success.toml")),
    ("rules/principal_many_ips.toml", include_str!("../../../rules/principal_many_ips.toml")),
];

/// A rule file that is not a valid rule: `file: key: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{message}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct RuleError {
    pub file: String,
    /// The key at fault (`schedule`, `fixtures[1].decisions[0].princpal`); empty when the
    /// file as a whole is (not TOML).
    pub key: String,
    pub message: String,
}

/// The file as written (serde's half of the checks).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: String,
    version: u32,
    title: String,
    description: String,
    runbook: String,
    severity: String,
    soc2: Vec<String>,
    #[serde(with = "humantime_serde")]
    schedule: Duration,
    #[serde(with = "humantime_serde")]
    window: Duration,
    #[serde(default)]
    threshold: Option<u64>,
    query: String,
    dedup_key: String,
    summary: String,
    #[serde(default)]
    fixtures: Vec<FixtureFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    name: String,
    from: String,
    to: String,
    #[serde(default)]
    decisions: Vec<toml::Table>,
    #[serde(default)]
    expect: Vec<Expected>,
}

/// One parsed, validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlRule {
    /// Where it came from (`rules/deny_enumeration.toml`, or a path in `detect.rules_dir`).
    pub file: String,
    pub id: String,
    pub version: u32,
    pub title: String,
    pub description: String,
    pub runbook: String,
    pub severity: Severity,
    /// SOC 2 trust services criteria the rule is evidence for (`CC6.1`, `CC7.2`).
    pub soc2: Vec<String>,
    /// How often a scheduled run starts; each covers the `window` of arrivals before it.
    pub schedule: Duration,
    pub window: Duration,
    /// Substituted for `{threshold}` in the query.
    pub threshold: Option<u64>,
    /// With `{db}`, `{from}`, `{to}` (ms, `received_at_ms`), `{time_from}`, `{time_to}` (the
    /// event-time bound, `DateTime` expressions) and `{threshold}` placeholders.
    pub query: String,
    /// With `{rule}` and `{column}` placeholders, e.g. `{rule}:{principal}`.
    pub dedup_key: String,
    pub summary: String,
    pub fixtures: Vec<Fixture>,
}

/// Decisions in, findings expected out.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixture {
    pub name: String,
    pub from: UnixMillis,
    pub to: UnixMillis,
    pub decisions: Vec<AccessDecision>,
    pub expect: Vec<Expected>,
}

/// Placeholders a query may use.
const QUERY_PLACEHOLDERS: [&str; 6] = ["db", "from", "to", "time_from", "time_to", "threshold"];

impl SqlRule {
    /// Parses and validates the text of `file`; `id` must be the file's name without `.toml`.
    pub fn parse(file: &str, text: &str) -> Result<SqlRule, RuleError> {
        let err = |key: &str, message: String| RuleError { file: file.to_owned(), key: key.to_owned(), message };
        let raw: RuleFile = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_owned();
            if let Some(key) = quoted_after(&message, "missing field `") {
                return err(&key, "missing".into());
            }
            let start = e.span().map(|s| s.start.min(text.len()));
            let line = start.map(|s| text[..s].lines().count().max(1));
            let key = quoted_after(&message, "unknown field `")
                .or_else(|| start.and_then(|s| key_before(&text[..s])))
                .unwrap_or_default();
            err(&key, line.map_or(message.clone(), |l| format!("{message} (line {l})")))
        })?;
        let stem = file.rsplit('/').next().unwrap_or(file).trim_end_matches(".toml");
        if raw.id.is_empty() || !raw.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(err("id", format!("must be lower-case letters, digits and _, got {:?}", raw.id)));
        }
        if raw.id != stem {
            return Err(err("id", format!("must be the file's name ({stem:?}), got {:?}", raw.id)));
        }
        if crate::rules::RULE_IDS.contains(&raw.id.as_str()) {
            return Err(err("id", format!("{:?} is a streaming detector's id", raw.id)));
        }
        if raw.version == 0 {
            return Err(err("version", "must be at least 1".into()));
        }
        for (key, value) in [("title", &raw.title), ("description", &raw.description), ("runbook", &raw.runbook)] {
            if value.trim().is_empty() {
                return Err(err(key, "must not be empty".into()));
            }
        }
        let severity = Severity::parse(&raw.severity).ok_or_else(|| {
            err("severity", format!("must be one of info, low, medium, high, critical, got {:?}", raw.severity))
        })?;
        if raw.soc2.is_empty() || raw.soc2.iter().any(|c| c.trim().is_empty()) {
            return Err(err("soc2", "must name at least one criterion (e.g. \"CC7.2\")".into()));
        }
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        if raw.schedule < Duration::from_secs(60) || raw.schedule > Duration::from_secs(86_400) {
            return Err(err("schedule", format!("must be between 1m and 1day, got {}", fmt(raw.schedule))));
        }
        if raw.window < raw.schedule || raw.window > Duration::from_secs(31 * 86_400) {
            return Err(err(
                "window",
                format!(
                    "must be at least the schedule ({}, so no arrival goes unjudged) and at most 31days, got {}",
                    fmt(raw.schedule),
                    fmt(raw.window)
                ),
            ));
        }
        check_query(&raw.query, raw.threshold.is_some()).map_err(|m| err("query", m))?;
        for (key, value) in [("dedup_key", &raw.dedup_key), ("summary", &raw.summary)] {
            if value.trim().is_empty() {
                return Err(err(key, "must not be empty".into()));
            }
            placeholders(value).map_err(|m| err(key, m))?;
        }
        let mut names = BTreeSet::new();
        let mut fixtures = Vec::with_capacity(raw.fixtures.len());
        for (i, f) in raw.fixtures.into_iter().enumerate() {
            let at = format!("fixtures[{i}]");
            if f.name.trim().is_empty() || !names.insert(f.name.clone()) {
                return Err(err(&format!("{at}.name"), format!("must be non-empty and unique, got {:?}", f.name)));
            }
            fixtures.push(fixture(f, &at).map_err(|(key, m)| err(&key, m))?);
        }
        Ok(SqlRule {
            file: file.to_owned(),
            id: raw.id,
            version: raw.version,
            title: raw.title,
            description: raw.description,
            runbook: raw.runbook,
            severity,
            soc2: raw.soc2,
            schedule: raw.schedule,
            window: raw.window,
            threshold: raw.threshold,
            query: raw.query,
            dedup_key: raw.dedup_key,
            summary: raw.summary,
            fixtures,
        })
    }

    /// The query to run over `[from, to)` of arrival time in database `db`, with the
    /// default event-time bound ([`SqlRulesConfig::default`]).
    pub fn render(&self, db: &str, from: UnixMillis, to: UnixMillis) -> String {
        self.render_with(db, from, to, &SqlRulesConfig::default())
    }

    /// The query to run over `[from, to)` of arrival time in database `db`: `{time_from}` /
    /// `{time_to}` become `toDateTime(…, 'UTC')` of `[from - max_lateness, to +
    /// max_clock_skew)` (whole seconds, widened), which ClickHouse prunes partitions by.
    pub fn render_with(&self, db: &str, from: UnixMillis, to: UnixMillis, bounds: &SqlRulesConfig) -> String {
        let threshold = self.threshold.unwrap_or_default().to_string();
        let (time_from, time_to) = bounds.time_bound(from.0, to.0);
        let time_from = format!("toDateTime({}, 'UTC')", time_from.div_euclid(1000));
        let time_to = format!("toDateTime({}, 'UTC')", time_to.div_euclid(1000) + 1);
        self.query
            .replace("{db}", db)
            .replace("{from}", &from.0.to_string())
            .replace("{to}", &to.0.to_string())
            .replace("{time_from}", &time_from)
            .replace("{time_to}", &time_to)
            .replace("{threshold}", &threshold)
    }

    /// The windows a run over `[from, to)` judges: consecutive windows of `window`, the last
    /// one cut at `to`.
    pub fn windows(&self, from: UnixMillis, to: UnixMillis) -> Vec<(UnixMillis, UnixMillis)> {
        let step = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX).max(1);
        let mut out = Vec::new();
        let mut lo = from.0;
        while lo < to.0 {
            let hi = lo.saturating_add(step).min(to.0);
            out.push((UnixMillis(lo), UnixMillis(hi)));
            lo = hi;
        }
        out
    }
}

/// The built-in rules, parsed (a broken built-in is a bug: the unit tests parse them all).
pub fn builtin() -> Result<Vec<SqlRule>, RuleError> {
    BUILTIN.iter().map(|(file, text)| SqlRule::parse(file, text)).collect()
}

/// `rules`, refused when two share an id (a user rule may not shadow a built-in).
pub fn check_unique(rules: &[SqlRule]) -> Result<(), RuleError> {
    let mut seen: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for r in rules {
        if let Some(first) = seen.insert(&r.id, &r.file) {
            return Err(RuleError {
                file: r.file.clone(),
                key: "id".into(),
                message: format!("{:?} is already the id of {first}", r.id),
            });
        }
    }
    Ok(())
}

/// The field toml names in "unknown field `x`, expected …" or "missing field `x`".
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    Some(rest.split('`').next()?.to_owned())
}

/// The key whose value starts where `before` ends (`schedule = ` → `schedule`), if any.
fn key_before(before: &str) -> Option<String> {
    let line = before.rsplit('\n').next()?.trim_end();
    let line = line.strip_suffix('=')?.trim_end();
    let start = line.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).map_or(0, |i| i + 1);
    let key = &line[start..];
    (!key.is_empty()).then(|| key.to_owned())
}

/// The `{name}` placeholders of a template.
pub(crate) fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| format!("unclosed {{ in {template:?}"))?;
        let name = &after[..close];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("{{{name}}} is not a placeholder (letters, digits and _ between braces)"));
        }
        out.push(name);
        rest = &after[close + 1..];
    }
    Ok(out)
}

fn check_query(query: &str, has_threshold: bool) -> Result<(), String> {
    let used = placeholders(query)?;
    if let Some(bad) = used.iter().find(|p| !QUERY_PLACEHOLDERS.contains(p)) {
        return Err(format!(
            "unknown placeholder {{{bad}}} (known: {{db}}, {{from}}, {{to}}, {{time_from}}, {{time_to}}, {{threshold}})"
        ));
    }
    for needed in ["db", "from", "to", "time_from", "time_to"] {
        if !used.contains(&needed) {
            return Err(format!(
                "must use {{{needed}}} ({{from}}/{{to}} bound received_at_ms, {{time_from}}/{{time_to}} bound time \
                 so ClickHouse reads only the partitions that can hold the window: \
                 `AND time >= {{time_from}} AND time < {{time_to}}`; {{db}} names gatelog's database)"
            ));
        }
    }
    if !query.contains("received_at") {
        return Err("{from}/{to} must bound received_at_ms (arrival time), so late data is not lost".into());
    }
    match (used.contains(&"threshold"), has_threshold) {
        (true, false) => Err("uses {threshold} but the rule sets no threshold".into()),
        (false, true) => Err("the rule sets a threshold the query does not use ({threshold})".into()),
        _ if query.trim_end().ends_with(';') => Err("must be one statement without a trailing ;".into()),
        _ => Ok(()),
    }
}

/// The columns a fixture decision may set: the fields of [`AccessDecision`].
fn decision_fields() -> BTreeSet<String> {
    match serde_json::to_value(AccessDecision::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

fn fixture(f: FixtureFile, at: &str) -> Result<Fixture, (String, String)> {
    let time = |key: &str, text: &str| {
        UnixMillis::parse_str(text).map_err(|e| (format!("{at}.{key}"), format!("{e} (got {text:?})")))
    };
    let (from, to) = (time("from", &f.from)?, time("to", &f.to)?);
    if from >= to {
        return Err((format!("{at}.to"), format!("must be after from ({})", f.from)));
    }
    let fields = decision_fields();
    let mut decisions = Vec::with_capacity(f.decisions.len());
    for (i, table) in f.decisions.into_iter().enumerate() {
        let here = format!("{at}.decisions[{i}]");
        if let Some(bad) = table.keys().find(|k| !fields.contains(*k)) {
            return Err((format!("{here}.{bad}"), "not a field of a decision".into()));
        }
        if table.get("event_id").is_none_or(|v| v.as_str().is_none_or(str::is_empty)) {
            return Err((format!("{here}.event_id"), "every fixture decision needs one".into()));
        }
        let has_received = table.contains_key("received_at");
        let mut d: AccessDecision = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| (here.clone(), e.message().to_owned()))?;
        if !has_received {
            d.received_at = d.time;
        }
        decisions.push(d);
    }
    Ok(Fixture { name: f.name, from, to, decisions, expect: f.expect })
}

#[cfg(test)]
mod tests;
