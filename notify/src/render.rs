//! Mails from the minijinja templates embedded in the binary (`templates/`): an alert's
//! (`alert.txt`, `alert.html`) and a digest's (`digest.txt`, `digest.html`). The HTML
//! templates' names end in `.html`, so minijinja escapes every value there; the text ones
//! are not escaped (a mail's text part is not markup).
//!
//! An alert's mail says what happened (rule, severity, principal, IP, country, resource,
//! when, how often), why it matters ([`crate::why`]), the decisions behind it (principal,
//! IP, country, resource, action, and the query with its literals masked by
//! [`gatelog_model::query::mask`], as stored, masked again here in case a source stored it
//! raw), the findings' evidence, and links to the alert and to a search for its events.

use crate::config::{NotifyConfig, RateLimitConfig};
use crate::mail::{Mail, MailKind, alert_message_id};
use gatelog_model::{AccessDecision, Alert, Severity, UnixMillis};
use gatelog_store::detection::StoredFinding;
use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde::Serialize;
use std::collections::BTreeMap;

const TEMPLATES: [(&str, &str); 4] = [
    ("alert.txt", include_str!("../templates/alert.txt")),
    ("alert.html", include_str!("../templates/alert.html")),
    ("digest.txt", include_str!("../templates/digest.txt")),
    ("digest.html", include_str!("../templates/digest.html")),
];
/// The longest query text shown per event; the rest is cut with `…`.
const MAX_QUERY_CHARS: usize = 600;
const MAX_SUBJECT_CHARS: usize = 160;
/// How far before the first and after the last event the search link looks.
const SEARCH_MARGIN_MS: i64 = 15 * 60_000;
/// Findings whose evidence an alert's mail shows (the rest are counted).
const FINDINGS_SHOWN: usize = 5;

/// A template failed to render (a bug: the templates are compiled in and tested).
#[derive(Debug, thiserror::Error)]
#[error("cannot render {template}: {message}")]
pub struct RenderError {
    pub template: &'static str,
    pub message: String,
}

/// Renders mails; holds the parsed templates.
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
    base_url: String,
    from: String,
    to: Vec<String>,
    limits: RateLimitConfig,
}

/// What an alert's mail is made of.
#[derive(Debug, Clone, Copy)]
pub struct AlertFacts<'a> {
    pub alert: &'a Alert,
    pub opened: UnixMillis,
    pub findings: &'a [StoredFinding],
    /// The decisions behind the findings found in ClickHouse (at most `events_per_mail`).
    pub events: &'a [AccessDecision],
    /// How many event ids the findings name in all.
    pub total_events: usize,
}

#[derive(Serialize)]
struct Kv {
    key: String,
    value: String,
}

#[derive(Serialize)]
struct FindingView {
    summary: String,
    evidence: Vec<Kv>,
}

#[derive(Serialize)]
struct EventView {
    time: String,
    decision: String,
    status: u16,
    principal: String,
    client_ip: String,
    country: String,
    asn: u32,
    action: String,
    resource: String,
    dataset: String,
    query: String,
    reason: String,
}

#[derive(Serialize)]
struct AlertView {
    subject: String,
    message_id: String,
    alert_id: String,
    short_id: String,
    rule_id: String,
    title: &'static str,
    why: &'static str,
    severity: &'static str,
    color: &'static str,
    summary: String,
    principal: String,
    client_ip: String,
    country: String,
    resource: String,
    first_seen: String,
    last_seen: String,
    opened: String,
    count: u64,
    events: Vec<EventView>,
    total_events: usize,
    more_events: usize,
    findings: Vec<FindingView>,
    /// Findings of the alert not shown.
    more_findings: u64,
    alert_url: String,
    search_url: String,
}

#[derive(Serialize)]
struct ListedAlert {
    alert_id: String,
    short_id: String,
    rule_id: String,
    severity: &'static str,
    summary: String,
    principal: String,
    client_ip: String,
    opened: String,
    alert_url: String,
}

#[derive(Serialize)]
struct DigestView {
    subject: String,
    message_id: String,
    alerts: Vec<()>,
    listed: Vec<ListedAlert>,
    more: usize,
    by_rule: Vec<Kv>,
    window_start: String,
    window_end: String,
    window: String,
    max_mails: u64,
    max_mails_per_rule: u64,
}

/// `2025-03-03 08:31:53` (UTC, to the second): how times read in a mail.
pub fn display_time(t: UnixMillis) -> String {
    let s = t.to_rfc3339();
    s.get(..19).map_or(s.clone(), |head| head.replace('T', " "))
}

fn severity_color(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "#a40e26",
        Severity::High => "#cf222e",
        Severity::Medium => "#bc4c00",
        Severity::Low => "#9a6700",
        Severity::Info => "#57606a",
    }
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// The first 12 hex digits: enough for `gatelog alerts show`.
fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

impl Renderer {
    /// `base_url`: where links point (gatelog's URL as on-call reaches it).
    pub fn new(config: &NotifyConfig, base_url: &str) -> Result<Renderer, RenderError> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build();
        env.set_syntax(syntax.map_err(|e| RenderError { template: "syntax", message: format!("{e:#}") })?);
        for (name, source) in TEMPLATES {
            env.add_template(name, source).map_err(|e| RenderError { template: name, message: format!("{e:#}") })?;
        }
        Ok(Renderer {
            env,
            base_url: base_url.trim_end_matches('/').to_owned(),
            from: config.from.clone(),
            to: config.recipients(),
            limits: config.rate_limit.clone(),
        })
    }

    fn render(&self, name: &'static str, ctx: impl Serialize) -> Result<String, RenderError> {
        let err = |e: minijinja::Error| RenderError { template: name, message: format!("{e:#}") };
        let template = self.env.get_template(name).map_err(err)?;
        template.render(Value::from(Serde(ctx))).map_err(err)
    }

    /// The link to an alert.
    pub fn alert_url(&self, alert_id: &str) -> String {
        format!("{}/v1/alerts/{alert_id}", self.base_url)
    }

    /// The link to a search for the alert's events: its principal (else IP, else resource)
    /// around the time it was seen.
    pub fn search_url(&self, alert: &Alert) -> String {
        let quote = |field: &str, v: &str| format!("{field}:\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let q = if !alert.principal.is_empty() {
            quote("principal", &alert.principal)
        } else if !alert.client_ip.is_empty() {
            quote("client_ip", &alert.client_ip)
        } else if !alert.resource.is_empty() {
            quote("resource", &alert.resource)
        } else {
            "*".to_owned()
        };
        let from = UnixMillis(alert.first_seen.0.saturating_sub(SEARCH_MARGIN_MS)).to_rfc3339();
        let to = UnixMillis(alert.last_seen.0.saturating_add(SEARCH_MARGIN_MS)).to_rfc3339();
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &q)
            .append_pair("from", &from)
            .append_pair("to", &to)
            .finish();
        format!("{}/v1/search?{query}", self.base_url)
    }

    /// An alert's own mail, dated `now`.
    pub fn alert_mail(&self, facts: AlertFacts<'_>, now: UnixMillis) -> Result<Mail, RenderError> {
        let a = facts.alert;
        let (title, why) = crate::why::explain(&a.rule_id);
        let message_id = alert_message_id(&a.alert_id);
        let subject = cut(
            &format!("[gatelog] {} {}: {}", a.severity.as_str().to_uppercase(), a.rule_id, a.summary),
            MAX_SUBJECT_CHARS,
        );
        let country = facts
            .findings
            .iter()
            .map(|f| f.finding.country.as_str())
            .chain(facts.events.iter().filter(|e| e.client_ip == a.client_ip).map(|e| e.country.as_str()))
            .find(|c| !c.is_empty())
            .unwrap_or_default()
            .to_owned();
        let events: Vec<EventView> = facts
            .events
            .iter()
            .map(|e| EventView {
                time: display_time(e.time),
                decision: e.decision.as_str().to_owned(),
                status: e.status,
                principal: e.principal.clone(),
                client_ip: e.client_ip.clone(),
                country: e.country.clone(),
                asn: e.asn,
                action: e.action.clone(),
                resource: e.resource.clone(),
                dataset: e.dataset.clone(),
                query: cut(&gatelog_model::query::mask(&e.query), MAX_QUERY_CHARS),
                reason: cut(&e.reason, 300),
            })
            .collect();
        let findings = facts
            .findings
            .iter()
            .take(FINDINGS_SHOWN)
            .map(|f| FindingView {
                summary: f.finding.summary.clone(),
                evidence: f.finding.evidence.iter().map(|(k, v)| Kv { key: k.clone(), value: cut(v, 300) }).collect(),
            })
            .collect();
        let view = AlertView {
            subject: subject.clone(),
            message_id: message_id.clone(),
            alert_id: a.alert_id.clone(),
            short_id: short(&a.alert_id),
            rule_id: a.rule_id.clone(),
            title,
            why,
            severity: a.severity.as_str(),
            color: severity_color(a.severity),
            summary: a.summary.clone(),
            principal: a.principal.clone(),
            client_ip: a.client_ip.clone(),
            country,
            resource: a.resource.clone(),
            first_seen: display_time(a.first_seen),
            last_seen: display_time(a.last_seen),
            opened: display_time(facts.opened),
            count: a.count,
            total_events: facts.total_events.max(events.len()),
            more_events: facts.total_events.saturating_sub(events.len()),
            events,
            findings,
            more_findings: a.count.max(facts.findings.len() as u64).saturating_sub(FINDINGS_SHOWN as u64),
            alert_url: self.alert_url(&a.alert_id),
            search_url: self.search_url(a),
        };
        let text = self.render("alert.txt", &view)?;
        let html = self.render("alert.html", &view)?;
        Ok(Mail {
            kind: MailKind::Alert,
            message_id,
            from: self.from.clone(),
            to: self.to.clone(),
            subject,
            text,
            html,
            date: now,
            alert_id: Some(a.alert_id.clone()),
            rule_id: Some(a.rule_id.clone()),
        })
    }

    /// The digest `message_id` listing `alerts` (with when each was opened), folded in the
    /// window starting at `window_start`; dated `now`.
    pub fn digest_mail(
        &self,
        message_id: &str,
        alerts: &[(Alert, UnixMillis)],
        window_start: UnixMillis,
        now: UnixMillis,
    ) -> Result<Mail, RenderError> {
        let window_ms = i64::try_from(self.limits.window.as_millis()).unwrap_or(i64::MAX);
        let window_end = UnixMillis(window_start.0.saturating_add(window_ms));
        let mut by_rule: BTreeMap<&str, u64> = BTreeMap::new();
        for (a, _) in alerts {
            *by_rule.entry(a.rule_id.as_str()).or_default() += 1;
        }
        let listed = alerts
            .iter()
            .take(self.limits.digest_max_alerts)
            .map(|(a, opened)| ListedAlert {
                alert_id: a.alert_id.clone(),
                short_id: short(&a.alert_id),
                rule_id: a.rule_id.clone(),
                severity: a.severity.as_str(),
                summary: cut(&a.summary, 200),
                principal: a.principal.clone(),
                client_ip: a.client_ip.clone(),
                opened: display_time(*opened),
                alert_url: self.alert_url(&a.alert_id),
            })
            .collect::<Vec<_>>();
        let subject = format!(
            "[gatelog] digest: {} alert{} folded by the rate limit, {} to {} UTC",
            alerts.len(),
            if alerts.len() == 1 { "" } else { "s" },
            display_time(window_start),
            display_time(window_end)
        );
        let view = DigestView {
            subject: subject.clone(),
            message_id: message_id.to_owned(),
            alerts: vec![(); alerts.len()],
            more: alerts.len().saturating_sub(listed.len()),
            listed,
            by_rule: by_rule.into_iter().map(|(k, v)| Kv { key: k.to_owned(), value: v.to_string() }).collect(),
            window_start: display_time(window_start),
            window_end: display_time(window_end),
            window: humantime::format_duration(self.limits.window).to_string(),
            max_mails: self.limits.max_mails,
            max_mails_per_rule: self.limits.max_mails_per_rule,
        };
        let text = self.render("digest.txt", &view)?;
        let html = self.render("digest.html", &view)?;
        Ok(Mail {
            kind: MailKind::Digest,
            message_id: message_id.to_owned(),
            from: self.from.clone(),
            to: self.to.clone(),
            subject,
            text,
            html,
            date: now,
            alert_id: None,
            rule_id: None,
        })
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
