//! CC7.4, incidents are responded to: each escalated alert of the period (severity high or
//! critical, or disposed true_positive) and its timeline: every lifecycle event and every
//! e-mail delivery attempt, in order.

use super::cc7_2::tally_check;
use super::cc7_3::{ALERT_COLUMNS, lines};
use super::{Ctx, Soc2Error, tables};
use crate::table::Section;
use gatelog_model::Reconciliation;
use gatelog_store::read::evidence::operations::alerts::ESCALATED_SEVERITIES;

pub async fn section(ctx: &Ctx<'_>) -> Result<Section, Soc2Error> {
    let (reader, input) = (&ctx.reader, ctx.input);
    let as_of = input.as_of.0;
    let c = reader.catalog();
    let escalated = reader.fetch(&c.alerts_raised(input.period, as_of, true)?).await?;
    // The same rule applied in Rust to all alerts of the period: the SQL filter's check.
    let all = reader.fetch(&c.alerts_raised(input.period, as_of, false)?).await?;
    let by_rule = all
        .rows
        .iter()
        .filter(|a| ESCALATED_SEVERITIES.contains(&a.severity.as_str()) || a.disposition == "true_positive")
        .count() as u64;
    let ids: Vec<String> = escalated.rows.iter().map(|a| a.alert_id.clone()).collect();
    let timeline = reader.fetch(&c.alert_timeline(&ids, as_of)?).await?;

    let rows = lines(&escalated.rows);
    let mut ipe = escalated.ipe;
    ipe.reconciliations.push(tally_check(
        "escalated_alerts_match_all_alerts",
        "the escalated alerts listed against the alerts of the period (table cc7.3-alerts' query) that are \
         high, critical or true_positive, filtered by gatelog",
        rows.len() as u64,
        by_rule,
        &all.ipe.sql,
    ));
    let alerts_table = tables::from_rows(
        "cc7.4-escalated",
        "Escalated alerts of the period",
        "Alerts raised in the period of severity high or critical, or resolved as true_positive: the \
         ones treated as (possible) incidents.",
        ALERT_COLUMNS,
        &rows,
        ipe,
    )?;

    let mut tl_ipe = timeline.ipe;
    let lifecycle_rows = timeline.rows.iter().filter(|t| t.source == "alert_events").count() as u64;
    let expected: u64 = escalated.rows.iter().map(|a| a.events).sum();
    tl_ipe.reconciliations.push(Reconciliation {
        name: "timeline_holds_every_lifecycle_event".to_owned(),
        description: "the lifecycle rows of the timelines against the lifecycle events counted for the \
                      escalated alerts (table cc7.4-escalated, column events)"
            .to_owned(),
        expected: expected.to_string(),
        actual: lifecycle_rows.to_string(),
        sql: None,
        passed: expected == lifecycle_rows,
    });
    let deliveries = timeline.rows.len() as u64 - lifecycle_rows;
    let timeline_table = tables::from_rows(
        "cc7.4-timelines",
        "Timeline of each escalated alert",
        "Every lifecycle event (alert_events: open, ack, resolve, with who and the disposition) and every \
         e-mail delivery attempt to on-call (alert_deliveries: sent, failed or folded into a digest), each \
         once, by alert and time, up to the report's as-of time.",
        &[
            ("alert_id", "the alert"),
            ("at_ms", "when"),
            ("source", "alert_events (lifecycle) or alert_deliveries (e-mail)"),
            ("what", "the action, or the delivery's kind and outcome"),
            ("who", "the actor, or the delivery's channel and target"),
            ("detail", "disposition and note, or the message id and any error"),
            ("id", "the event's or delivery's id"),
        ],
        &timeline.rows,
        tl_ipe,
    )?;
    let unresolved = escalated.rows.iter().filter(|a| a.state != "resolved").count();
    let paragraphs = vec![
        "An incident is responded to when on-call is told and the alert is worked to a resolution. For \
         each escalated alert the timeline shows when it opened, when on-call was e-mailed (or why not), \
         who acknowledged and resolved it, and with what disposition."
            .to_owned(),
        format!(
            "{} escalated alerts in the period, {unresolved} not resolved as of {}; their timelines hold {} \
             lifecycle events and {deliveries} delivery attempts.",
            rows.len(),
            input.as_of.to_rfc3339(),
            lifecycle_rows
        ),
        "Limits: the timeline shows what gatelog recorded; work done outside it (a ticket, a call) appears \
         only as the note a responder left on ack or resolve. A digest delivery is listed under each alert \
         it folded."
            .to_owned(),
    ];
    Ok(Section {
        id: "cc7.4".to_owned(),
        title: "CC7.4 Response to security incidents".to_owned(),
        paragraphs,
        tables: vec![alerts_table, timeline_table],
    })
}
