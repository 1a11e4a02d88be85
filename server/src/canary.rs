//! `gatelog canary list`: the runs `gatelog serve`'s canaries recorded in `canary_runs`
//! (see `gatelog_watch::canary`), newest first. With managed ClickHouse it uses the server
//! `gatelog serve` runs under the data dir.

use crate::cli::CanaryCommand;
use crate::clickhouse::Target;
use gatelog_model::UnixMillis;
use gatelog_store::sql::canary::CanaryRun;
use std::fmt::Write as _;
use std::process::ExitCode;

pub async fn run(command: CanaryCommand) -> anyhow::Result<ExitCode> {
    let CanaryCommand::List(args) = command;
    let config = crate::config::resolve(&args.store)?;
    let target = Target::connect_beside_serve(&config).await?;
    let runs = target.store.recent_canary_runs(args.limit).await;
    target.shutdown().await;
    let runs = runs?;
    let out = if args.json {
        let mut out = String::new();
        for r in &runs {
            out.push_str(&serde_json::to_string(r)?);
            out.push('\n');
        }
        out
    } else {
        table(&runs)
    };
    crate::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// One line per run; `latency` is from the canary's 2xx to its alert being stored.
fn table(runs: &[CanaryRun]) -> String {
    if runs.is_empty() {
        return "no canary runs recorded yet (detect.canary: the first goes one interval after the first start)\n"
            .to_owned();
    }
    let mut out =
        format!("{:<32}  {:<24}  {:<14}  {:>10}  {:<32}  {}\n", "RUN", "SENT", "OUTCOME", "LATENCY", "ALERT", "NOTE");
    for r in runs {
        let latency = if r.latency_ms >= 0 { format!("{} ms", r.latency_ms) } else { "-".to_owned() };
        let alert =
            if r.missed_alert_id.is_empty() { r.alert_id.clone() } else { format!("{} (paged)", r.missed_alert_id) };
        let _ = writeln!(
            out,
            "{:<32}  {:<24}  {:<14}  {:>10}  {:<32}  {}",
            r.run_id,
            UnixMillis(r.sent_at_ms).to_rfc3339(),
            r.outcome,
            latency,
            if alert.is_empty() { "-" } else { &alert },
            r.error
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_run_shows_the_alert_that_paged() {
        let ok = CanaryRun {
            run_id: "r1".into(),
            outcome: "ok".into(),
            latency_ms: 812,
            alert_id: "a1".into(),
            ..CanaryRun::default()
        };
        let missed = CanaryRun {
            run_id: "r2".into(),
            outcome: "missed".into(),
            latency_ms: -1,
            missed_alert_id: "m2".into(),
            error: "no alert".into(),
            ..CanaryRun::default()
        };
        let shown = table(&[missed, ok]);
        let lines: Vec<&str> = shown.lines().collect();
        assert!(
            lines[1].contains("missed") && lines[1].contains("m2 (paged)") && lines[1].contains("no alert"),
            "{shown}"
        );
        assert!(lines[2].contains("812 ms") && lines[2].contains("a1"), "{shown}");
        assert!(table(&[]).contains("no canary runs"));
    }
}
