//! Rules as code against ClickHouse: loading `rules/*.toml` (the built-ins and
//! `detect.rules_dir`), running a rule over stored decisions, and running every rule's
//! fixtures in a fresh database (`gatelog rules list | test | run`). The rule format, its
//! validation and the row → finding mapping are pure, in `gatelog_detect::sql_rule`.

use gatelog_detect::sql_rule::{self, Fixture, FixtureOutcome, RuleError, SqlRule};
use gatelog_detect::{AlertGrouper, AlertsConfig, SqlRulesConfig};
use gatelog_model::{AlertEvent, Batch, Clock, Finding, UnixMillis};
use gatelog_store::sql::detection::DetectorRun;
use gatelog_store::{Store, StoreConfig, StoreError};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Why rules could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("rule {rule}: {message}")]
    Run { rule: String, message: String },
    #[error("rule {rule}: {source}")]
    Store { rule: String, source: StoreError },
    #[error("no rule has the id {0:?}")]
    UnknownRule(String),
}

/// Parses one rule file from disk (its path, as given, names it in messages).
pub fn load_file(path: &Path) -> Result<SqlRule, RulesError> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| RulesError::Read { path: name.clone(), message: e.to_string() })?;
    Ok(SqlRule::parse(&name, &text)?)
}

/// The built-in rules, then the `*.toml` files of `dir` in name order; ids must be unique.
pub fn load(dir: Option<&Path>) -> Result<Vec<SqlRule>, RulesError> {
    let mut rules = sql_rule::builtin()?;
    if let Some(dir) = dir {
        let read = |e: std::io::Error| RulesError::Read { path: dir.display().to_string(), message: e.to_string() };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(read)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            rules.push(load_file(&f)?);
        }
    }
    sql_rule::check_unique(&rules)?;
    Ok(rules)
}

/// What one window of one rule found.
#[derive(Debug, Clone, Default)]
pub struct WindowResult {
    pub findings: Vec<Finding>,
    /// Rows ClickHouse read to answer.
    pub rows_read: u64,
}

/// The findings of `rule` over one window of arrival time `[from, to)`, and the rows read;
/// the query's event-time bound comes from `bounds` (`detect.sql_rules`).
pub async fn run_window(
    store: &Store,
    rule: &SqlRule,
    window: (UnixMillis, UnixMillis),
    bounds: &SqlRulesConfig,
) -> Result<WindowResult, RulesError> {
    let sql = rule.render_with(store.database(), window.0, window.1, bounds);
    let answer = store.rule_query(&sql).await.map_err(|source| RulesError::Store { rule: rule.id.clone(), source })?;
    let findings = answer
        .rows
        .iter()
        .map(|row| sql_rule::row_to_finding(rule, row, window))
        .collect::<Result<_, _>>()
        .map_err(|message| RulesError::Run { rule: format!("{} ({})", rule.id, rule.file), message })?;
    Ok(WindowResult { findings, rows_read: answer.rows_read })
}

/// What `gatelog rules run` found.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Windows run, per rule id.
    pub windows: BTreeMap<String, u64>,
    pub findings: Vec<Finding>,
    /// Whether findings, alerts and detector runs were written.
    pub stored: bool,
}

/// Runs `rules` over `[from, to)` in consecutive windows of each rule's `window`. With
/// `store_results`, every window is recorded in `detector_runs` (kind `manual`) and the
/// findings are stored and grouped into alerts as `gatelog serve` does; finding and alert
/// ids derive from what they are about, so running the same period again stores nothing twice.
pub async fn run(
    store: &Store,
    rules: &[SqlRule],
    (from, to): (UnixMillis, UnixMillis),
    bounds: &SqlRulesConfig,
    store_results: Option<(&AlertsConfig, &dyn Clock)>,
) -> Result<RunReport, RulesError> {
    let mut report = RunReport { stored: store_results.is_some(), ..RunReport::default() };
    for rule in rules {
        let mut grouper = store_results.map(|(config, _)| AlertGrouper::new(config));
        for window in rule.windows(from, to) {
            let started = Instant::now();
            let started_at = store_results.map_or(UnixMillis(0), |(_, clock)| clock.now());
            let result = run_window(store, rule, window, bounds).await;
            *report.windows.entry(rule.id.clone()).or_default() += 1;
            if let (Some((_, clock)), Some(grouper)) = (store_results, grouper.as_mut()) {
                let run = DetectorRun {
                    run_id: uuid::Uuid::new_v4().simple().to_string(),
                    kind: "manual".into(),
                    rule_id: rule.id.clone(),
                    rule_version: rule.version.to_string(),
                    window_start_ms: window.0.0,
                    window_end_ms: window.1.0,
                    findings: result.as_ref().map_or(0, |r| r.findings.len() as u64),
                    rows_scanned: result.as_ref().map_or(0, |r| r.rows_read),
                    started_at_ms: started_at.0,
                    duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    outcome: if result.is_ok() { "ok" } else { "failed" }.into(),
                    error: result.as_ref().err().map(ToString::to_string).unwrap_or_default(),
                    ..DetectorRun::default()
                };
                if let Ok(r) = &result {
                    store_findings(store, &rule.id, grouper, &r.findings, clock.now()).await?;
                }
                let stored = store.write_detector_run(&run).await;
                stored.map_err(|source| RulesError::Store { rule: rule.id.clone(), source })?;
            }
            report.findings.extend(result?.findings);
        }
    }
    Ok(report)
}

/// Stores `findings` of rule `rule_id`, groups them into alerts with `grouper`, stores the alerts
/// and the `open` events of new ones; returns the alerts opened. Ids derive from content,
/// so storing the same findings again adds nothing.
pub(crate) async fn store_findings(
    store: &Store,
    rule_id: &str,
    grouper: &mut AlertGrouper,
    findings: &[Finding],
    now: UnixMillis,
) -> Result<u64, RulesError> {
    if findings.is_empty() {
        return Ok(0);
    }
    let mut grouped = Vec::with_capacity(findings.len());
    let mut alerts = BTreeMap::new();
    let mut opened = Vec::new();
    for f in findings {
        let g = grouper.add(f);
        if g.opened {
            opened.push(AlertEvent::opened(&g.alert, now));
        }
        grouped.push((f.clone(), g.alert.alert_id.clone()));
        alerts.insert(g.alert.alert_id.clone(), g.alert);
    }
    let alerts: Vec<_> = alerts.into_values().collect();
    let err = |source| RulesError::Store { rule: rule_id.to_owned(), source };
    store.write_findings(&grouped, 0, now).await.map_err(err)?;
    store.write_alerts(&alerts, now).await.map_err(err)?;
    store.append_alert_events(&opened).await.map_err(err)?;
    Ok(opened.len() as u64)
}

/// One fixture's result.
#[derive(Debug)]
pub struct FixtureResult {
    pub rule: String,
    pub file: String,
    pub fixture: String,
    /// `Err`: the fixture could not run (its SQL failed on this server, a row did not map).
    pub outcome: Result<FixtureOutcome, String>,
}

impl FixtureResult {
    pub fn passed(&self) -> bool {
        self.outcome.as_ref().is_ok_and(|o| o.passed)
    }
}

/// Runs every fixture of `rules` against the server of `config`: each in a fresh database
/// named `<prefix>_<n>`, migrated, filled with the fixture's decisions, queried over the
/// fixture's window, then dropped. `progress` is told each result as it comes.
pub async fn test(
    config: &StoreConfig,
    prefix: &str,
    rules: &[SqlRule],
    progress: &mut dyn FnMut(&FixtureResult),
) -> Result<Vec<FixtureResult>, StoreError> {
    let mut out = Vec::new();
    let mut n = 0;
    for rule in rules {
        for fixture in &rule.fixtures {
            n += 1;
            let database = format!("{prefix}_{n}");
            let store = Store::connect(&StoreConfig { database: database.clone(), ..config.clone() }).await?;
            let outcome = run_fixture(&store, rule, fixture).await;
            let dropped = store.execute("DROP", &database, &format!("DROP DATABASE IF EXISTS {database}")).await;
            let result = FixtureResult {
                rule: rule.id.clone(),
                file: rule.file.clone(),
                fixture: fixture.name.clone(),
                outcome: outcome.map_err(|e| e.to_string()),
            };
            progress(&result);
            out.push(result);
            dropped?;
        }
    }
    Ok(out)
}

async fn run_fixture(store: &Store, rule: &SqlRule, fixture: &Fixture) -> Result<FixtureOutcome, RulesError> {
    let err = |source| RulesError::Store { rule: rule.id.clone(), source };
    store.migrate().await.map_err(err)?;
    if !fixture.decisions.is_empty() {
        let batch = Batch {
            batch_id: format!("fixture-{}", rule.id),
            dataset: "fixture".into(),
            origin: rule.file.clone(),
            received_at: fixture.from,
            lines: fixture.decisions.len() as u64,
            decisions: fixture.decisions.clone(),
            ..Batch::default()
        };
        store.write_batch(&batch).await.map_err(err)?;
    }
    // The default event-time bound: a fixture judges the rule, not this deployment's settings.
    let got = run_window(store, rule, (fixture.from, fixture.to), &SqlRulesConfig::default()).await?;
    Ok(sql_rule::compare(&fixture.expect, &got.findings))
}
