//! `gatelog detect --from --to [--rule ID]...`: a backtest. Stored history runs through the
//! detectors of `[detect]` ([`gatelog_watch::backtest`]) and what would have fired is
//! printed; nothing is stored and nothing is sent. Beside a running `serve` it uses the
//! managed ClickHouse that serve runs.

use crate::cli::DetectArgs;
use crate::clickhouse::Target;
use anyhow::Context;
use gatelog_model::UnixMillis;
use gatelog_watch::backtest::{self, BacktestReport, BacktestRequest};
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Instant;

pub async fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let from = UnixMillis::parse_str(&args.from).with_context(|| format!("--from {:?}", args.from))?;
    let to = UnixMillis::parse_str(&args.to).with_context(|| format!("--to {:?}", args.to))?;
    let request = BacktestRequest { from, to, rules: args.rule };
    let config = crate::config::resolve(&args.store)?;
    backtest::validate(&request, &config.detect)?;
    let target = Target::connect_beside_serve(&config).await?;
    let bar = if args.no_progress || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
    };
    let print = |line: String| {
        if bar.is_hidden() {
            eprintln!("backtest {line}");
        } else {
            bar.set_message(line);
        }
    };
    let started = Instant::now();
    let report = backtest::backtest(&target.store, &config.detect, &request, &print).await;
    bar.finish_and_clear();
    target.shutdown().await;
    let report = report.context("the backtest failed")?;
    let out = match args.json {
        true => json(&report)?,
        false => text(&request, &report, started.elapsed().as_secs_f64()),
    };
    crate::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// One JSON object per finding, then one per alert (`"kind"` tells them apart).
fn json(report: &BacktestReport) -> anyhow::Result<String> {
    let mut out = String::new();
    for f in &report.findings {
        let mut v = serde_json::to_value(f)?;
        v["kind"] = "finding".into();
        out.push_str(&serde_json::to_string(&v)?);
        out.push('\n');
    }
    for a in &report.alerts {
        let mut v = serde_json::to_value(a)?;
        v["kind"] = "alert".into();
        out.push_str(&serde_json::to_string(&v)?);
        out.push('\n');
    }
    Ok(out)
}

fn text(request: &BacktestRequest, report: &BacktestReport, seconds: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "backtest {} .. {}: {} decisions judged ({} learnt from before, {} second copies skipped, {} days read) in {seconds:.1} s; nothing was stored or sent",
        request.from, request.to, report.judged, report.warmed, report.duplicates, report.days
    );
    if report.alerts.is_empty() {
        out.push_str("no alert would have fired\n");
        return out;
    }
    let _ = writeln!(out, "\nfindings by rule:");
    for (rule, n) in report.findings_by_rule() {
        let _ = writeln!(out, "  {rule:<22} {n}");
    }
    let _ = writeln!(out, "\n{} alerts would have fired:", report.alerts.len());
    let _ = writeln!(
        out,
        "{:<8}  {:<22}  {:>5}  {:<24}  {:<24}  SUMMARY",
        "SEVERITY", "RULE", "COUNT", "FIRST SEEN", "LAST SEEN"
    );
    for a in &report.alerts {
        let _ = writeln!(
            out,
            "{:<8}  {:<22}  {:>5}  {:<24}  {:<24}  {}",
            a.severity.as_str(),
            a.rule_id,
            a.count,
            a.first_seen.to_rfc3339(),
            a.last_seen.to_rfc3339(),
            a.summary
        );
    }
    out
}
