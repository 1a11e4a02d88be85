//! `gatelog rules list | test | run | sigma`: thin printing around [`gatelog_watch::rules`] (rules as
//! code, `rules/*.toml`). `test` runs the fixtures in fresh databases of the configured
//! ClickHouse (managed when no URL is set, or the one `gatelog serve` runs); `run` reads
//! stored decisions and writes only with `--store`.

use crate::cli::{RulesCommand, RulesRunArgs, RulesSigmaArgs, RulesTestArgs};
use crate::clickhouse::{Target, start_server, stop_managed, store_config};
use crate::config::Config;
use anyhow::Context;
use gatelog_detect::SqlRule;
use gatelog_detect::sigma::SigmaInfo;
use gatelog_model::{SystemClock, UnixMillis};
use gatelog_watch::rules::{self, FixtureResult};
use std::fmt::Write as _;
use std::process::ExitCode;

pub async fn run(command: RulesCommand) -> anyhow::Result<ExitCode> {
    match command {
        RulesCommand::List(args) => {
            let config = crate::config::resolve(&args.store)?;
            let all = rules::load(config.detect.rules_dir.as_deref())?;
            let mut out = list(&all);
            out.push_str(&sigma_rows(config.detect.sigma_rules.rules()));
            crate::print_stdout(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Test(args) => test(args).await,
        RulesCommand::Run(args) => run_once(args).await,
        RulesCommand::Sigma(args) => sigma(&args),
    }
}

/// Rows of `rules list` for Sigma rules (schedule `stream`: they run on every decision).
fn sigma_rows(all: &[SigmaInfo]) -> String {
    let mut out = String::new();
    for r in all.iter().filter(|r| r.generates) {
        let _ = writeln!(
            out,
            "{:<24}  {:>7}  {:<8}  {:<8}  {:<8}  {:<36}  {} (sigma)",
            r.id,
            "-",
            r.severity.as_str(),
            "stream",
            if r.kind == "detection" { "-" } else { &r.kind },
            r.file,
            r.title
        );
    }
    out
}

/// `gatelog rules sigma FILE... [--decisions F]`: check, list, and optionally run.
fn sigma(args: &RulesSigmaArgs) -> anyhow::Result<ExitCode> {
    let loaded = gatelog_watch::sigma::load_files(&args.files)?;
    let mut out = format!("{} Sigma rules in {} files: ok\n", loaded.rules().len(), args.files.len());
    for r in loaded.rules() {
        let role = if r.generates { "" } else { " (feeds a correlation only)" };
        let _ = writeln!(out, "  {}  {}  {}  {}{role}", r.id, r.severity.as_str(), r.kind, r.title);
    }
    let Some(path) = &args.decisions else {
        crate::print_stdout(&out)?;
        return Ok(ExitCode::SUCCESS);
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let ids: Vec<String> = loaded.rules().iter().map(|r| r.id.clone()).collect();
    let mut engine = gatelog_detect::Engine::new(gatelog_detect::DetectConfig {
        sigma_rules: loaded,
        ..gatelog_detect::DetectConfig::default()
    })?;
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let d: gatelog_model::AccessDecision = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not an access decision", path.display(), n + 1))?;
        engine.process(&d, &mut found);
    }
    out.clear();
    for f in found.iter().filter(|f| ids.contains(&f.rule_id)) {
        out.push_str(&serde_json::to_string(f)?);
        out.push('\n');
    }
    crate::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn list(all: &[SqlRule]) -> String {
    let mut out = format!(
        "{:<24}  {:>7}  {:<8}  {:<8}  {:<8}  {:<36}  TITLE\n",
        "ID", "VERSION", "SEVERITY", "SCHEDULE", "WINDOW", "FILE"
    );
    for r in all {
        let _ = writeln!(
            out,
            "{:<24}  {:>7}  {:<8}  {:<8}  {:<8}  {:<36}  {}",
            r.id,
            r.version,
            r.severity.as_str(),
            humantime::format_duration(r.schedule).to_string(),
            humantime::format_duration(r.window).to_string(),
            r.file,
            r.title
        );
    }
    out
}

async fn test(args: RulesTestArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::resolve(&args.store)?;
    let selected = match args.files.is_empty() {
        true => rules::load(config.detect.rules_dir.as_deref())?,
        false => args.files.iter().map(|f| rules::load_file(f)).collect::<Result<Vec<_>, _>>()?,
    };
    let shared = shared_managed(&config);
    let (url, managed) = start_server(&shared).await?;
    let store_config = match store_config(&shared, &url) {
        Ok(c) => c,
        Err(e) => {
            stop_managed(managed).await;
            return Err(e);
        }
    };
    let prefix = format!("{}_rules_test_{}", store_config.database, std::process::id());
    let mut print = |r: &FixtureResult| {
        let _ = crate::print_stdout(&describe(r));
    };
    let results = rules::test(&store_config, &prefix, &selected, &mut print).await;
    stop_managed(managed).await;
    let results = results.with_context(|| format!("cannot run the fixtures on ClickHouse at {}", store_config.url))?;
    let failed = results.iter().filter(|r| !r.passed()).count();
    crate::print_stdout(&format!(
        "{} rules, {} fixtures: {} passed, {failed} failed\n",
        selected.len(),
        results.len(),
        results.len() - failed
    ))?;
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn describe(r: &FixtureResult) -> String {
    let status = if r.passed() { "ok  " } else { "FAIL" };
    let mut out = format!("{status}  {} ({}): {}\n", r.rule, r.file, r.fixture);
    match &r.outcome {
        Ok(o) => {
            for line in &o.diff {
                let _ = writeln!(out, "      {line}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "      error: {e}");
        }
    }
    out
}

/// `config`, pointed at the managed server `gatelog serve` runs under the data dir if there
/// is one (a second managed server on the same data dir cannot start).
fn shared_managed(config: &Config) -> Config {
    let mut shared = config.clone();
    if shared.clickhouse.url.is_none()
        && let Some(url) = gatelog_store::managed::running_url(&config.data_dir)
    {
        shared.clickhouse.url = Some(url);
    }
    shared
}

async fn run_once(args: RulesRunArgs) -> anyhow::Result<ExitCode> {
    let from = UnixMillis::parse_str(&args.from).with_context(|| format!("--from {:?}", args.from))?;
    let to = UnixMillis::parse_str(&args.to).with_context(|| format!("--to {:?}", args.to))?;
    anyhow::ensure!(from < to, "--to must be after --from");
    let config = crate::config::resolve(&args.store)?;
    let mut selected = rules::load(config.detect.rules_dir.as_deref())?;
    if !args.rule.is_empty() {
        if let Some(unknown) = args.rule.iter().find(|id| !selected.iter().any(|r| &r.id == *id)) {
            return Err(rules::RulesError::UnknownRule(unknown.clone()).into());
        }
        selected.retain(|r| args.rule.contains(&r.id));
    }
    let target = Target::connect_beside_serve(&config).await?;
    let clock = SystemClock;
    let storing = args.store_results.then_some((&config.detect.alerts, &clock as &dyn gatelog_model::Clock));
    let report = rules::run(&target.store, &selected, (from, to), &config.detect.sql_rules, storing).await;
    target.shutdown().await;
    let report = report?;
    let mut out = String::new();
    if args.json {
        for f in &report.findings {
            out.push_str(&serde_json::to_string(f)?);
            out.push('\n');
        }
    } else {
        let windows: u64 = report.windows.values().sum();
        let _ = writeln!(
            out,
            "{} rules over arrivals {} .. {} ({windows} windows): {} findings{}",
            selected.len(),
            from,
            to,
            report.findings.len(),
            if report.stored { ", stored with their alerts and runs" } else { "; nothing was stored" }
        );
        for f in &report.findings {
            let _ = writeln!(
                out,
                "{:<8}  {:<22}  {:<24}  {:<24}  {}",
                f.severity.as_str(),
                f.rule_id,
                f.window_start.to_rfc3339(),
                f.window_end.to_rfc3339(),
                f.summary
            );
        }
    }
    crate::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}
