//! `gatelog alerts list | show | ack | resolve`: thin printing around
//! [`gatelog_watch::service`], which holds the logic (and which the HTTP routes will share).
//! With managed ClickHouse it uses the server `gatelog serve` runs under the data dir.

use crate::cli::{AlertActorArgs, AlertStateArg, AlertsCommand, DispositionArg};
use crate::clickhouse::Target;
use anyhow::Context;
use gatelog_model::{AlertAction, AlertState, Disposition, SystemClock};
use gatelog_watch::service::{self, AlertDetail, AlertView, Transition};
use std::fmt::Write as _;
use std::process::ExitCode;

pub async fn run(command: AlertsCommand) -> anyhow::Result<ExitCode> {
    let store_args = match &command {
        AlertsCommand::List(a) => &a.store,
        AlertsCommand::Show(a) => &a.store,
        AlertsCommand::Ack(a) => &a.store,
        AlertsCommand::Resolve(a) => &a.store,
    };
    let config = crate::config::resolve(store_args)?;
    let target = Target::connect_beside_serve(&config).await?;
    let result = dispatch(&target.store, command).await;
    target.shutdown().await;
    crate::print_stdout(&result?)?;
    Ok(ExitCode::SUCCESS)
}

async fn dispatch(store: &gatelog_store::Store, command: AlertsCommand) -> anyhow::Result<String> {
    match command {
        AlertsCommand::List(args) => {
            let state = args.state.map(|s| match s {
                AlertStateArg::Open => AlertState::Open,
                AlertStateArg::Acknowledged => AlertState::Acknowledged,
                AlertStateArg::Resolved => AlertState::Resolved,
            });
            let views = service::list(store, args.limit, state).await?;
            if args.json {
                let mut out = String::new();
                for v in &views {
                    out.push_str(&serde_json::to_string(v)?);
                    out.push('\n');
                }
                return Ok(out);
            }
            Ok(table(&views))
        }
        AlertsCommand::Show(args) => {
            let detail = service::show(store, &args.id).await?;
            if args.json {
                return Ok(format!("{}\n", serde_json::to_string_pretty(&detail)?));
            }
            let mut out = describe(&detail);
            // Its e-mail: every attempt the outbox recorded (the table exists once migrated).
            let deliveries = store.deliveries_of(&[&detail.view.alert.alert_id]).await?;
            out.push_str(&describe_deliveries(&deliveries));
            Ok(out)
        }
        AlertsCommand::Ack(args) => {
            let t = transition(AlertAction::Ack, None, args.actor)?;
            let view = service::transition(store, &args.id, t, &SystemClock).await?;
            Ok(format!("alert {} acknowledged by {}\n", view.alert.alert_id, actor_of(&view)))
        }
        AlertsCommand::Resolve(args) => {
            let disposition = match args.disposition {
                DispositionArg::TruePositive => Disposition::TruePositive,
                DispositionArg::FalsePositive => Disposition::FalsePositive,
                DispositionArg::Benign => Disposition::Benign,
                DispositionArg::Duplicate => Disposition::Duplicate,
            };
            let t = transition(AlertAction::Resolve, Some(disposition), args.actor)?;
            let view = service::transition(store, &args.id, t, &SystemClock).await?;
            Ok(format!("alert {} resolved as {disposition} by {}\n", view.alert.alert_id, actor_of(&view)))
        }
    }
}

fn transition(action: AlertAction, disposition: Option<Disposition>, a: AlertActorArgs) -> anyhow::Result<Transition> {
    let actor =
        a.by.or_else(|| std::env::var("USER").ok())
            .filter(|s| !s.trim().is_empty())
            .context("--by: name who acts (or set GATELOG_ACTOR)")?;
    Ok(Transition { action, disposition, note: a.note, actor })
}

fn actor_of(view: &AlertView) -> &str {
    view.events.last().map_or("", |e| e.actor.as_str())
}

fn state_of(v: &AlertView) -> String {
    match v.disposition {
        Some(d) => format!("{} ({d})", v.state),
        None => v.state.to_string(),
    }
}

fn table(views: &[AlertView]) -> String {
    if views.is_empty() {
        return "no alerts\n".to_owned();
    }
    let mut out = format!(
        "{:<32}  {:<27}  {:<8}  {:<20}  {:>5}  {:<24}  {}\n",
        "ID", "STATE", "SEVERITY", "RULE", "COUNT", "LAST SEEN", "SUMMARY"
    );
    for v in views {
        let a = &v.alert;
        let _ = writeln!(
            out,
            "{:<32}  {:<27}  {:<8}  {:<20}  {:>5}  {:<24}  {}",
            a.alert_id,
            state_of(v),
            a.severity.as_str(),
            a.rule_id,
            a.count,
            a.last_seen.to_rfc3339(),
            a.summary
        );
    }
    out
}

fn describe(d: &AlertDetail) -> String {
    let (v, a) = (&d.view, &d.view.alert);
    let mut out = String::new();
    let _ = writeln!(out, "alert     {}", a.alert_id);
    let _ = writeln!(out, "state     {}", state_of(v));
    let _ = writeln!(out, "severity  {}", a.severity);
    let _ = writeln!(out, "rule      {}", a.rule_id);
    let _ = writeln!(out, "key       {}", a.dedup_key);
    for (label, value) in [("principal", &a.principal), ("client ip", &a.client_ip), ("resource", &a.resource)] {
        if !value.is_empty() {
            let _ = writeln!(out, "{label:<9} {value}");
        }
    }
    let _ =
        writeln!(out, "seen      {} findings, {} .. {}", a.count, a.first_seen.to_rfc3339(), a.last_seen.to_rfc3339());
    let _ = writeln!(out, "summary   {}", a.summary);
    let _ = writeln!(out, "\nfindings:");
    for f in &d.findings {
        let f = &f.finding;
        let _ = writeln!(out, "  {}  {}  {}", f.window_start.to_rfc3339(), f.severity, f.summary);
        for (k, val) in &f.evidence {
            let _ = writeln!(out, "      {k}: {val}");
        }
        if !f.event_ids.is_empty() {
            let _ = writeln!(out, "      events: {}", f.event_ids.join(", "));
        }
    }
    let _ = writeln!(out, "\nhistory:");
    for e in &v.events {
        let disposition = e.disposition.map(|d| format!(" as {d}")).unwrap_or_default();
        let note = if e.note.is_empty() { String::new() } else { format!(": {}", e.note) };
        let _ = writeln!(out, "  {}  {}{disposition} by {}{note}", e.at.to_rfc3339(), e.action, e.actor);
    }
    out
}

fn describe_deliveries(rows: &[gatelog_store::sql::deliveries::AlertDelivery]) -> String {
    let mut out = String::from("\ne-mail:\n");
    if rows.is_empty() {
        out.push_str("  not mailed yet\n");
    }
    for d in rows {
        let at = gatelog_model::UnixMillis(d.at_ms).to_rfc3339();
        let (what, attempt) = match d.outcome.as_str() {
            "folded" => ("folded into a digest (rate limit)".to_owned(), String::new()),
            outcome => (format!("{} {}", d.kind, outcome), format!(" attempt {}", d.attempt)),
        };
        let to = if d.target.is_empty() { String::new() } else { format!(" to {}", d.target) };
        let error = if d.error.is_empty() { String::new() } else { format!(": {}", d.error) };
        let _ = writeln!(out, "  {at}  {what}{attempt} via {}{to} <{}>{error}", d.channel, d.message_id);
    }
    out
}
