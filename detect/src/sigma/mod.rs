//! Sigma rules over access decisions: [`SigmaRules`] (parsed, checked, compiled once) and
//! the `sigma` detector that evaluates them in the stream.
//!
//! Parsing and evaluation are `rsigma-parser` / `rsigma-eval` (pinned 0.23.0): detection
//! rules (selections, field modifiers such as `contains`, `startswith`, `endswith`, `re`,
//! `cidr`, `all`, `gt`…, conditions with `and`/`or`/`not`, `1 of selection*`, `all of
//! them`) and correlation rules (`event_count`, `value_count`, `temporal`, … with
//! `group-by` and `timespan`). Fields are the decision's ([`fields::FIELDS`]).
//!
//! What gatelog refuses, naming the file, the rule and the feature (never a silently wrong
//! rule):
//! - a field not in [`fields::FIELDS`];
//! - `logsource.product` other than `gatelog`, `logsource.category` other than
//!   `access_decision`, any `logsource.service`;
//! - the deprecated aggregation in a condition (`| count() by x > n`) and `timeframe`:
//!   write a correlation rule instead;
//! - filter documents, the `expand` modifier (placeholders need a pipeline);
//! - a correlation whose referenced rules are not in the same file, a rule id (or title,
//!   for rules without one) used twice.
//!
//! The loading of files is the caller's (`gatelog-watch`); this module takes their text.

pub mod detector;
pub mod fields;
#[cfg(test)]
mod tests;

use rsigma_eval::CorrelationEngine;
use rsigma_parser::{CorrelationCondition, CorrelationRule, Detection, Level, Modifier, SigmaCollection, SigmaRule};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A Sigma file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct SigmaError {
    pub file: String,
    pub message: String,
}

fn err<T>(file: &str, message: impl Into<String>) -> Result<T, SigmaError> {
    Err(SigmaError { file: file.to_owned(), message: message.into() })
}

/// One Sigma rule as `gatelog rules list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigmaInfo {
    /// The finding's `rule_id`: the Sigma `id`, else the title as a slug.
    pub id: String,
    pub title: String,
    /// `detection` or the correlation type (`event_count`, …).
    pub kind: String,
    pub severity: gatelog_model::Severity,
    pub file: String,
    /// Whether it raises findings (a detection rule only referenced by a correlation with
    /// `generate: false` does not).
    pub generates: bool,
}

#[derive(Debug, Default)]
struct Inner {
    files: Vec<(String, String)>,
    collection: SigmaCollection,
    rules: Vec<SigmaInfo>,
    hash: String,
}

/// The Sigma rules of `detect.sigma_dir`, parsed and checked; cheap to clone. Empty by
/// default. Equal when made from the same files.
#[derive(Debug, Clone, Default)]
pub struct SigmaRules(Arc<Inner>);

impl PartialEq for SigmaRules {
    fn eq(&self, other: &Self) -> bool {
        self.0.files == other.0.files
    }
}

/// The finding `rule_id` of a Sigma rule: its `id`, else its title as a slug.
pub fn rule_id(id: Option<&str>, title: &str) -> String {
    if let Some(id) = id.filter(|s| !s.trim().is_empty()) {
        return id.trim().to_owned();
    }
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('_') && !slug.is_empty() {
            slug.push('_');
        }
    }
    slug.trim_end_matches('_').to_owned()
}

/// A Sigma level as a finding severity (`informational` is `info`).
pub fn severity(level: Option<Level>) -> gatelog_model::Severity {
    use gatelog_model::Severity;
    match level {
        Some(Level::Informational) => Severity::Info,
        Some(Level::Low) | None => Severity::Low,
        Some(Level::Medium) => Severity::Medium,
        Some(Level::High) => Severity::High,
        Some(Level::Critical) => Severity::Critical,
    }
}

impl SigmaRules {
    /// Parses and checks `(file name, YAML text)` pairs, in the order given.
    pub fn parse(files: Vec<(String, String)>) -> Result<SigmaRules, SigmaError> {
        let mut all = SigmaCollection::default();
        let mut rules: Vec<SigmaInfo> = Vec::new();
        for (file, text) in &files {
            let collection = parse_file(file, text)?;
            // Compiled alone, so an error names its file (and correlations find their rules).
            let mut engine = CorrelationEngine::new(rsigma_eval::CorrelationConfig::default());
            if let Err(e) = engine.add_collection(&collection) {
                return err(file, format!("does not compile: {e}"));
            }
            let referenced: Vec<&str> =
                collection.correlations.iter().flat_map(|c| c.rules.iter()).map(String::as_str).collect();
            for r in &collection.rules {
                let is_ref =
                    [r.id.as_deref(), r.name.as_deref()].into_iter().flatten().any(|k| referenced.contains(&k));
                rules.push(SigmaInfo {
                    id: rule_id(r.id.as_deref(), &r.title),
                    title: r.title.clone(),
                    kind: "detection".into(),
                    severity: severity(r.level),
                    file: file.clone(),
                    generates: !is_ref
                        || collection.correlations.iter().any(|c| {
                            c.generate && c.rules.iter().any(|x| Some(x) == r.id.as_ref() || Some(x) == r.name.as_ref())
                        }),
                });
            }
            for c in &collection.correlations {
                rules.push(SigmaInfo {
                    id: rule_id(c.id.as_deref(), &c.title),
                    title: c.title.clone(),
                    kind: c.correlation_type.as_str().to_owned(),
                    severity: severity(c.level),
                    file: file.clone(),
                    generates: true,
                });
            }
            all.rules.extend(collection.rules);
            all.correlations.extend(collection.correlations);
        }
        for (i, r) in rules.iter().enumerate() {
            if r.id.is_empty() {
                return err(&r.file, format!("rule {:?}: needs an id or a title with letters or digits", r.title));
            }
            if let Some(first) = rules[..i].iter().find(|x| x.id == r.id) {
                return err(
                    &r.file,
                    format!("rule id {:?} is also the id of {:?} in {}", r.id, first.title, first.file),
                );
            }
        }
        let mut hasher = Sha256::new();
        for (file, text) in &files {
            hasher.update(format!("{}\n{}\n{}\n", file.len(), file, text.len()).as_bytes());
            hasher.update(text.as_bytes());
        }
        let hash = hex::encode(&hasher.finalize()[..8]);
        Ok(SigmaRules(Arc::new(Inner { files, collection: all, rules, hash })))
    }

    pub fn is_empty(&self) -> bool {
        self.0.rules.is_empty()
    }

    /// Every rule, detection and correlation, in file order.
    pub fn rules(&self) -> &[SigmaInfo] {
        &self.0.rules
    }

    /// A hash of the files' names and texts (for run records); empty without rules.
    pub fn hash(&self) -> &str {
        &self.0.hash
    }

    pub(crate) fn collection(&self) -> &SigmaCollection {
        &self.0.collection
    }
}

/// Parses one file and checks what gatelog supports (see the module docs).
fn parse_file(file: &str, text: &str) -> Result<SigmaCollection, SigmaError> {
    // The parser reads `sel | count() > 5` as a malformed condition; say what it is.
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        if let Some(cond) = trimmed.strip_prefix("condition:").filter(|c| c.contains('|')) {
            return err(
                file,
                format!(
                    "line {}: detection.condition {:?}: the aggregation in a condition (`| count() by …`) is deprecated Sigma and not supported; write a correlation rule (type: event_count, group-by, timespan) in the same file",
                    n + 1,
                    cond.trim()
                ),
            );
        }
    }
    let collection = match rsigma_parser::parse_sigma_yaml(text) {
        Ok(c) => c,
        Err(e) => return err(file, format!("not a Sigma rule file: {e}")),
    };
    if let Some(e) = collection.errors.first() {
        return err(file, format!("not a Sigma rule: {e}"));
    }
    if !collection.filters.is_empty() {
        return err(file, "Sigma filter documents are not supported; put the exclusion in the rule's condition");
    }
    if collection.rules.is_empty() && collection.correlations.is_empty() {
        return err(file, "holds no Sigma rule");
    }
    for rule in &collection.rules {
        check_rule(file, rule)?;
    }
    for c in &collection.correlations {
        check_correlation(file, c)?;
    }
    Ok(collection)
}

fn check_rule(file: &str, rule: &SigmaRule) -> Result<(), SigmaError> {
    let at = format!("rule {:?}", rule.title);
    let ls = &rule.logsource;
    if let Some(p) = ls.product.as_deref().filter(|p| !p.eq_ignore_ascii_case("gatelog")) {
        return err(
            file,
            format!("{at}: logsource.product {p:?} is not supported; gatelog evaluates rules for product: gatelog"),
        );
    }
    if let Some(c) = ls.category.as_deref().filter(|c| !c.eq_ignore_ascii_case("access_decision")) {
        return err(file, format!("{at}: logsource.category {c:?} is not supported; use category: access_decision"));
    }
    if let Some(s) = &ls.service {
        return err(
            file,
            format!(
                "{at}: logsource.service ({s:?}) is not supported; select on the dataset field in the detection instead"
            ),
        );
    }
    if let Some(k) = ls.custom.keys().next() {
        return err(file, format!("{at}: logsource.{k} is not supported"));
    }
    if let Some(c) = rule.detection.condition_strings.iter().find(|c| c.contains('|')) {
        return err(
            file,
            format!(
                "{at}: detection.condition {c:?}: the aggregation in a condition (`| count() by …`) is deprecated Sigma and not supported; write a correlation rule (type: event_count, group-by, timespan) in the same file"
            ),
        );
    }
    if rule.detection.timeframe.is_some() {
        return err(
            file,
            format!("{at}: detection.timeframe is not supported (deprecated Sigma); use a correlation rule's timespan"),
        );
    }
    let mut names: Vec<_> = rule.detection.named.iter().collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (name, detection) in names {
        check_detection(file, &format!("{at}: detection.{name}"), detection)?;
    }
    Ok(())
}

fn check_detection(file: &str, at: &str, detection: &Detection) -> Result<(), SigmaError> {
    match detection {
        Detection::AllOf(items) => {
            for item in items {
                let Some(name) = &item.field.name else { continue };
                if fields::lookup(name).is_none() {
                    return err(
                        file,
                        format!(
                            "{at}: field {name:?} is not an access decision field (see rules/sigma/README.md for the field names)"
                        ),
                    );
                }
                if item.field.modifiers.contains(&Modifier::Expand) {
                    return err(
                        file,
                        format!("{at}: field {name:?}: the expand modifier (placeholders) is not supported"),
                    );
                }
            }
            Ok(())
        }
        Detection::AnyOf(subs) => subs.iter().try_for_each(|d| check_detection(file, at, d)),
        Detection::Keywords(_) => Ok(()),
        #[allow(unreachable_patterns)]
        _ => err(file, format!("{at}: array quantifier blocks (`field[any]:`) are not supported")),
    }
}

fn check_correlation(file: &str, c: &CorrelationRule) -> Result<(), SigmaError> {
    let at = format!("correlation {:?}", c.title);
    for g in &c.group_by {
        if fields::lookup(g).is_none() {
            return err(file, format!("{at}: group-by field {g:?} is not an access decision field"));
        }
    }
    if !c.aliases.is_empty() {
        return err(file, format!("{at}: aliases are not supported (every rule has the same field names)"));
    }
    let CorrelationCondition::Threshold { field, .. } = &c.condition else { return Ok(()) };
    for f in field.iter().flatten() {
        if fields::lookup(f).is_none() {
            return err(file, format!("{at}: condition.field {f:?} is not an access decision field"));
        }
    }
    Ok(())
}
