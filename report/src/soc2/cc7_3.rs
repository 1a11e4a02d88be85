//! CC7.3, anomalies are evaluated: the alerts raised in the period with their severity, rule,
//! disposition, time to respond and to resolve, their state as of the report (what is still
//! open), reconciled against `alert_events` counted another way, and a seeded sample.

use super::cc7_2::tally_check;
use super::{Ctx, Soc2Error, tables};
use crate::sample::{Frequency, Risk};
use crate::table::{Section, Table};
use gatelog_store::read::evidence::operations::AlertRecord;
use serde::Serialize;

/// How long an alert waited for a response (its first `ack` or `resolve`) and for its
/// resolution, in milliseconds from its `open`; `None` while it has not happened.
pub fn durations(a: &AlertRecord) -> (Option<i64>, Option<i64>) {
    let after = |t: i64| (t != 0).then(|| t - a.opened_ms);
    (after(a.responded_ms), after(a.resolved_ms))
}

/// One alert as the report prints it.
#[derive(Serialize)]
pub(crate) struct AlertLine<'a> {
    #[serde(flatten)]
    pub record: &'a AlertRecord,
    pub to_respond_millis: Option<i64>,
    pub to_resolve_millis: Option<i64>,
}

pub(crate) fn lines(rows: &[AlertRecord]) -> Vec<AlertLine<'_>> {
    rows.iter()
        .map(|record| {
            let (to_respond_millis, to_resolve_millis) = durations(record);
            AlertLine { record, to_respond_millis, to_resolve_millis }
        })
        .collect()
}

pub(crate) const ALERT_COLUMNS: &[(&str, &str)] = &[
    ("alert_id", "the alert"),
    ("tenant", "tenant"),
    ("rule_id", "the rule that raised it"),
    ("severity", "info, low, medium, high or critical"),
    ("principal", "who it is about"),
    ("client_ip", "from where"),
    ("summary", "what was detected"),
    ("count", "findings folded into it"),
    ("opened_ms", "opened"),
    ("responded_ms", "first acknowledged or resolved"),
    ("responded_by", "by whom"),
    ("to_respond_millis", "milliseconds from opened to the first response"),
    ("resolved_ms", "resolved"),
    ("resolved_by", "by whom"),
    ("to_resolve_millis", "milliseconds from opened to resolved"),
    ("disposition", "true_positive, false_positive, … as the resolver recorded it"),
    ("state", "open, acknowledged or resolved, as of the report"),
    ("events", "lifecycle events"),
];

/// `N ms` as `1h 02m 03s` (whole seconds, rounded down).
fn words(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        s if s >= 3600 => format!("{}h {:02}m {:02}s", s / 3600, s / 60 % 60, s % 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

fn median_and_max(mut v: Vec<i64>) -> String {
    v.sort_unstable();
    match (v.get(v.len() / 2), v.last()) {
        (Some(m), Some(x)) => format!("median {}, longest {}", words(*m), words(*x)),
        _ => "none".to_owned(),
    }
}

#[derive(Serialize)]
struct StateLine {
    state: String,
    alerts: u64,
}

pub async fn section(ctx: &Ctx<'_>) -> Result<Section, Soc2Error> {
    let (reader, input) = (&ctx.reader, ctx.input);
    let as_of = input.as_of.0;
    let alerts = reader.fetch(&reader.catalog().alerts_raised(input.period, as_of, false)?).await?;
    let states = reader.fetch(&reader.catalog().alert_states(input.period, as_of)?).await?;
    let rows = lines(&alerts.rows);
    let mut ipe = alerts.ipe;
    let counted_total: u64 = states.rows.iter().map(|s| s.alerts).sum();
    ipe.reconciliations.push(tally_check(
        "alerts_match_alert_events",
        "the alerts listed against the alerts whose open event is in the period, counted from \
         alert_events without FINAL",
        rows.len() as u64,
        counted_total,
        &states.ipe.sql,
    ));
    let population = tables::from_rows(
        "cc7.3-alerts",
        "Alerts raised in the period",
        "Every alert whose open event is in the period, each once, with its lifecycle from alert_events \
         up to the report's as-of time and its attributes from its latest alerts row up to then. \
         Responding means the first acknowledgement, or the resolution when an alert was resolved \
         without one.",
        ALERT_COLUMNS,
        &rows,
        ipe,
    )?;

    // By state, from the population, each state reconciled with the independent count.
    let mut by_state: Vec<StateLine> = ["acknowledged", "open", "resolved"]
        .iter()
        .map(|s| StateLine {
            state: (*s).to_owned(),
            alerts: alerts.rows.iter().filter(|a| a.state == *s).count() as u64,
        })
        .collect();
    for s in &states.rows {
        if !by_state.iter().any(|l| l.state == s.state) {
            by_state.push(StateLine { state: s.state.clone(), alerts: 0 });
        }
    }
    let mut state_ipe =
        tables::computed("the rows of table cc7.3-alerts counted by state", input.as_of, by_state.len() as u64);
    for line in &by_state {
        let counted = states.rows.iter().find(|s| s.state == line.state).map_or(0, |s| s.alerts);
        state_ipe.reconciliations.push(tally_check(
            &format!("{}_alerts_match_alert_events", line.state),
            &format!("{} alerts against the same state decided from alert_events without FINAL", line.state),
            line.alerts,
            counted,
            &states.ipe.sql,
        ));
    }
    let state_table = tables::from_rows(
        "cc7.3-alerts-by-state",
        "Alerts raised in the period by state, as of the report",
        "Resolved: a resolve event; acknowledged: an ack and no resolve; open: neither.",
        &[("state", "state"), ("alerts", "alerts")],
        &by_state,
        state_ipe,
    )?;

    let open: Vec<&AlertLine<'_>> = rows.iter().filter(|r| r.record.state != "resolved").collect();
    let open_table = tables::from_rows(
        "cc7.3-still-open",
        "Alerts not resolved as of the report",
        "The rows of cc7.3-alerts whose state is open or acknowledged at the as-of time.",
        ALERT_COLUMNS,
        &open,
        tables::computed("the rows of table cc7.3-alerts not resolved", input.as_of, open.len() as u64),
    )?;
    let sample =
        population.sample("cc7.3-alerts-sample", "alert_id", &input.seed, Frequency::Recurring, Risk::Lower)?;

    let responded: Vec<i64> = rows.iter().filter_map(|r| r.to_respond_millis).collect();
    let resolved: Vec<i64> = rows.iter().filter_map(|r| r.to_resolve_millis).collect();
    let paragraphs = vec![
        "Anomalies are evaluated when every alert is looked at and resolved with a disposition. The \
         alerts are those gatelog's detectors raised; the lifecycle is what responders recorded with \
         gatelog alerts ack / resolve (or the API), append-only in alert_events, each with who and when."
            .to_owned(),
        format!(
            "{} alerts raised in the period; {} still open or only acknowledged as of {}. Time to respond: {}. \
             Time to resolve: {}.",
            rows.len(),
            open.len(),
            input.as_of.to_rfc3339(),
            median_and_max(responded),
            median_and_max(resolved)
        ),
        "Limits: an alert is counted in the period its open event is in, which is when detection ran, \
         not when the events it is about happened: alerts about this period's events raised later (for \
         events backfilled after the period, say) are in the report of the period they were raised in; \
         events recorded after the as-of time are not shown; the disposition is the responder's \
         judgement, recorded as given."
            .to_owned(),
    ];
    let tables: Vec<Table> = vec![population, state_table, open_table, sample];
    Ok(Section { id: "cc7.3".to_owned(), title: "CC7.3 Evaluation of security events".to_owned(), paragraphs, tables })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_run_from_the_open() {
        let a = AlertRecord {
            tenant: "t".into(),
            alert_id: "a".into(),
            rule_id: "r".into(),
            severity: "high".into(),
            principal: String::new(),
            client_ip: String::new(),
            resource: String::new(),
            count: 1,
            summary: String::new(),
            opened_ms: 1_000,
            responded_ms: 61_000,
            responded_by: "x".into(),
            resolved_ms: 0,
            resolved_by: String::new(),
            disposition: String::new(),
            state: "acknowledged".into(),
            events: 2,
        };
        assert_eq!(durations(&a), (Some(60_000), None));
        assert_eq!(words(3_723_999), "1h 02m 03s");
        assert_eq!(median_and_max(vec![5_000, 1_000, 60_000]), "median 5s, longest 1m 00s");
    }
}
