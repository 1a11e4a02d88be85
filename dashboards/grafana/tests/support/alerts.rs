//! The alerts of the generated world and the checks of the panels that show them.
//!
//! Alerts as detection stores them: every alert written once per change of its count (each
//! later version with a later `last_seen`, so a reader that does not take the newest version
//! shows old figures), lifecycle events appended (`open` by detection, `ack` and `resolve`
//! with a disposition by people), and the `open` events of half the alerts stored a second
//! time, as a replay does. Merges are stopped, so every copy stays a row and only `FINAL`
//! makes each alert and each event count once. Times spread from before the dashboards'
//! range to after it, so some alerts overlap its start or its end.

use super::checks::{Fails, cells, secs};
use super::scenarios::Scenario;
use super::world::{INTERVAL_S, RANGE, T0_MS};
use gatelog_model::{Alert, AlertAction, AlertEvent, AlertState, Disposition, EventId, Severity, UnixMillis};
use std::collections::BTreeMap;

const MINUTE: i64 = 60_000;

/// The alerts and their lifecycle.
#[derive(Debug, Default)]
pub struct Alerts {
    /// Each alert as it is now (its highest count).
    pub alerts: Vec<Alert>,
    /// Each alert's earlier versions (lower counts, earlier `last_seen`), stored first.
    pub earlier: Vec<Alert>,
    /// Every lifecycle event once.
    pub events: Vec<AlertEvent>,
    /// Events stored a second time (a replay).
    pub replayed: Vec<AlertEvent>,
}

const SEVERITIES: [Severity; 5] = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low, Severity::Info];
const DISPOSITIONS: [Disposition; 4] =
    [Disposition::TruePositive, Disposition::FalsePositive, Disposition::Benign, Disposition::Duplicate];

/// `n` alerts about `principals` (an empty one: an alert about an address), in both tenants.
pub fn generate(principals: &[&str], n: usize) -> Alerts {
    let mut out = Alerts::default();
    for i in 0..n {
        let principal = principals[i % principals.len()];
        let tenant = if i % 5 == 4 { "acme" } else { "default" };
        let rule = ["deny_burst_ip", "new_country", "impossible_travel", "sql_exfil"][i % 4];
        let first_seen = T0_MS + i as i64 * 23 * MINUTE + 7_000;
        let count = 1 + (i % 4) as u64;
        let dedup_key = format!("{rule}:{principal}:{i}");
        let mut alert = Alert {
            alert_id: Alert::derive_id(tenant, &dedup_key, &format!("finding-{i}-1")),
            tenant: tenant.into(),
            dedup_key,
            rule_id: rule.into(),
            severity: SEVERITIES[(i + i / 5) % 5],
            first_seen: UnixMillis(first_seen),
            last_seen: UnixMillis(first_seen),
            count: 1,
            summary: format!("{rule} for {}", if principal.is_empty() { "an address" } else { principal }),
            principal: principal.into(),
            client_ip: format!("192.0.2.{}", 10 + i),
            resource: format!("https://api.example.com/v1/{i}"),
            first_finding_id: format!("finding-{i}-1"),
            last_finding_id: format!("finding-{i}-1"),
        };
        for c in 2..=count {
            out.earlier.push(alert.clone());
            alert.count = c;
            alert.last_seen = UnixMillis(first_seen + (c as i64 - 1) * 40 * MINUTE);
            alert.last_finding_id = format!("finding-{i}-{c}");
        }
        let event = |action: AlertAction, at: i64, actor: &str, disposition: Option<Disposition>| AlertEvent {
            event_id: EventId::derive(&["alert_event", &alert.alert_id, action.as_str(), &at.to_string()]),
            alert_id: alert.alert_id.clone(),
            tenant: alert.tenant.clone(),
            action,
            at: UnixMillis(at),
            actor: actor.into(),
            disposition,
            note: format!("{} of alert {i}", action.as_str()),
        };
        let opened = AlertEvent::opened(&alert, UnixMillis(first_seen + 2_000));
        if i % 2 == 0 {
            out.replayed.push(opened.clone());
        }
        out.events.push(opened);
        let later = alert.last_seen.0 + 5 * MINUTE;
        if i % 3 == 1 {
            out.events.push(event(AlertAction::Ack, later, "oncall@example.com", None));
        }
        if i % 4 == 2 || i % 6 == 3 {
            let disposition = DISPOSITIONS[(i / 2) % 4];
            out.events.push(event(AlertAction::Resolve, later + MINUTE, "oncall@example.com", Some(disposition)));
        }
        out.alerts.push(alert);
    }
    out
}

/// An alert as a panel shows it: its state and disposition from its events.
struct Shown<'a> {
    a: &'a Alert,
    state: AlertState,
    disposition: String,
}

fn shown<'a>(alerts: &'a Alerts, s: &Scenario) -> Vec<Shown<'a>> {
    alerts
        .alerts
        .iter()
        .filter(|a| s.tenant.as_ref().is_none_or(|t| *t == a.tenant))
        .map(|a| {
            let events: Vec<AlertEvent> = alerts.events.iter().filter(|e| e.alert_id == a.alert_id).cloned().collect();
            let (state, disposition) = AlertState::from_events(&events);
            Shown { a, state, disposition: disposition.map_or(String::new(), |d| d.as_str().to_owned()) }
        })
        .collect()
}

/// Active in the range: first seen by its end, last seen from its start (whole seconds).
fn overlaps(a: &Alert) -> bool {
    secs(a.last_seen.0) >= secs(RANGE.from_ms) && secs(a.first_seen.0) <= secs(RANGE.to_ms)
}

fn rank(s: Severity) -> usize {
    SEVERITIES.iter().position(|x| *x == s).unwrap_or(SEVERITIES.len())
}

fn row(x: &Shown<'_>, columns: &[&str]) -> Vec<String> {
    let a = x.a;
    columns
        .iter()
        .map(|c| match *c {
            "t:last_seen" => secs(a.last_seen.0).to_string(),
            "t:first_seen" => secs(a.first_seen.0).to_string(),
            "state" => x.state.as_str().to_owned(),
            "severity" => a.severity.as_str().to_owned(),
            "rule_id" => a.rule_id.clone(),
            "principal" if a.principal.is_empty() => "(none)".to_owned(),
            "principal" => a.principal.clone(),
            "client_ip" => a.client_ip.clone(),
            "resource" => a.resource.clone(),
            "n:findings" => a.count.to_string(),
            "disposition" => x.disposition.clone(),
            "summary" => a.summary.clone(),
            "alert_id" => a.alert_id.clone(),
            other => panic!("no alert column {other}"),
        })
        .collect()
}

/// Checks one of the alert panels; `false` when `title` of `uid` is not one.
pub fn panel(f: &mut Fails, at: &str, title: &str, t: &super::results::Table, alerts: &Alerts, s: &Scenario) -> bool {
    let all = shown(alerts, s);
    let filtered = |x: &&Shown<'_>| {
        s.state.as_ref().is_none_or(|st| st == x.state.as_str())
            && s.severity.as_ref().is_none_or(|sv| sv == x.a.severity.as_str())
    };
    let want_rows: Vec<Vec<String>>;
    let spec: Vec<&str>;
    match (s.uid, title) {
        ("gatelog-overview", "Open alerts") => {
            spec = vec![
                "alert_id",
                "t:last_seen",
                "state",
                "severity",
                "rule_id",
                "principal",
                "client_ip",
                "n:findings",
                "summary",
            ];
            let mut open: Vec<&Shown<'_>> = all.iter().filter(|x| x.state != AlertState::Resolved).collect();
            open.sort_by(|a, b| {
                (rank(a.a.severity), -a.a.last_seen.0, &a.a.alert_id).cmp(&(
                    rank(b.a.severity),
                    -b.a.last_seen.0,
                    &b.a.alert_id,
                ))
            });
            want_rows = open.iter().take(100).map(|x| row(x, &spec)).collect();
        }
        ("gatelog-principal", "Alerts") | ("gatelog-alerts", "Alerts") => {
            spec = vec![
                "alert_id",
                "t:last_seen",
                "t:first_seen",
                "state",
                "severity",
                "rule_id",
                "client_ip",
                "resource",
                "n:findings",
                "disposition",
            ];
            let principal = |x: &&Shown<'_>| s.principal.as_ref().is_none_or(|p| *p == x.a.principal);
            let mut list: Vec<&Shown<'_>> =
                all.iter().filter(|x| overlaps(x.a)).filter(filtered).filter(principal).collect();
            list.sort_by(|a, b| (-a.a.last_seen.0, &a.a.alert_id).cmp(&(-b.a.last_seen.0, &b.a.alert_id)));
            want_rows =
                list.iter().take(if s.uid == "gatelog-alerts" { 500 } else { 100 }).map(|x| row(x, &spec)).collect();
        }
        ("gatelog-alerts", "By severity and state") => {
            spec = vec!["severity", "n:open", "n:acknowledged", "n:resolved", "n:alerts"];
            let mut by: BTreeMap<usize, [usize; 4]> = BTreeMap::new();
            for x in all.iter().filter(|x| overlaps(x.a)).filter(filtered) {
                let c = by.entry(rank(x.a.severity)).or_default();
                c[x.state as usize] += 1;
                c[3] += 1;
            }
            want_rows = by
                .into_iter()
                .map(|(r, c)| {
                    let mut v = vec![SEVERITIES[r].as_str().to_owned()];
                    v.extend(c.iter().map(ToString::to_string));
                    v
                })
                .collect();
        }
        ("gatelog-alerts", "Opened over time by severity") => {
            spec = vec!["t:time", "severity", "n:alerts"];
            let mut m: BTreeMap<(i64, String), usize> = BTreeMap::new();
            let in_range = |x: &&Shown<'_>| (secs(RANGE.from_ms)..=secs(RANGE.to_ms)).contains(&secs(x.a.first_seen.0));
            for x in all.iter().filter(in_range).filter(filtered) {
                let bucket = secs(x.a.first_seen.0).div_euclid(INTERVAL_S) * INTERVAL_S;
                *m.entry((bucket, x.a.severity.as_str().to_owned())).or_default() += 1;
            }
            want_rows = m.into_iter().map(|((b, sv), n)| vec![b.to_string(), sv, n.to_string()]).collect();
        }
        ("gatelog-alerts", "Lifecycle") => {
            spec = vec!["event_id", "t:time", "alert_id", "action", "actor", "disposition", "note"];
            let mut events: Vec<&AlertEvent> = alerts
                .events
                .iter()
                .filter(|e| s.tenant.as_ref().is_none_or(|t| *t == e.tenant))
                .filter(|e| (secs(RANGE.from_ms)..=secs(RANGE.to_ms)).contains(&secs(e.at.0)))
                .collect();
            events.sort_by(|a, b| (-a.at.0, &a.event_id).cmp(&(-b.at.0, &b.event_id)));
            want_rows = events
                .iter()
                .take(500)
                .map(|e| {
                    let d = e.disposition.map_or(String::new(), |d| d.as_str().to_owned());
                    vec![
                        e.event_id.clone(),
                        secs(e.at.0).to_string(),
                        e.alert_id.clone(),
                        e.action.as_str().to_owned(),
                        e.actor.clone(),
                        d,
                        e.note.clone(),
                    ]
                })
                .collect();
        }
        _ => return false,
    }
    f.truth(at, !want_rows.is_empty(), "the world gives this panel nothing to show: the check would prove nothing");
    f.rows(at, cells(t, &spec), want_rows);
    true
}
