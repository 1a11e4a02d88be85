//! What the generator planted (from its summaries), whether findings name it, and the
//! per-rule tally of true and false findings.

use super::generated::Generated;
use gatelog_detect::DetectConfig;
use gatelog_detect::baseline::learns_from;
use gatelog_model::{AccessDecision, EventId, Finding};
use std::collections::{BTreeMap, BTreeSet};

/// The rule that must find each planted kind.
pub fn rule_for(kind: &str) -> &'static str {
    match kind {
        "runaway_select" => "runaway_select",
        "new_country_offhours" => "new_country",
        "deny_burst" => "deny_burst_ip",
        "offhours_privileged_change" => "privileged_change",
        "dlp_exfil" => "dlp_exfil",
        other => panic!("the generator planted an unknown kind {other:?}; teach the test about it"),
    }
}

/// One planted anomaly of one dataset.
#[derive(Debug, Clone)]
pub struct Plant {
    pub dataset: String,
    pub kind: String,
    /// Principals the finding may name (any one of them).
    pub principals: BTreeSet<String>,
    /// IPs the finding may name (any one of them); empty when the plant names none.
    pub ips: BTreeSet<String>,
    /// Event ids of the planted decisions.
    pub events: BTreeSet<String>,
}

fn strings(v: &serde_json::Value) -> BTreeSet<String> {
    match v {
        serde_json::Value::String(s) => BTreeSet::from([s.to_ascii_lowercase()]),
        serde_json::Value::Array(items) => {
            items.iter().filter_map(|x| x.as_str()).map(str::to_ascii_lowercase).collect()
        }
        _ => BTreeSet::new(),
    }
}

/// The plants of a generated dataset, with their event ids found among its decisions (by
/// request id, Ray ID or audit-log id, as the mappers derive them).
pub fn plants(g: &Generated) -> Vec<Plant> {
    let mut out = Vec::new();
    let Some(planted) = g.summary["planted"].as_object() else { return out };
    for (kind, p) in planted {
        let mut keys = BTreeSet::new();
        for field in ["request_ids", "ray_ids", "ids"] {
            keys.extend(p[field].as_array().into_iter().flatten().filter_map(|x| x.as_str()).map(str::to_owned));
        }
        let audit: BTreeSet<String> = keys.iter().map(|id| EventId::derive(&[g.spec.dataset, id])).collect();
        let events: BTreeSet<String> = g
            .decisions
            .iter()
            .filter(|d| keys.contains(&d.request_id) || keys.contains(&d.ray_id) || audit.contains(&d.event_id))
            .map(|d| d.event_id.clone())
            .collect();
        assert!(!events.is_empty(), "{} {kind}: no mapped decision carries the planted ids", g.spec.dataset);
        let mut principals = strings(&p["principal"]);
        principals.extend(strings(&p["principals"]));
        let mut ips = strings(&p["ip"]);
        ips.extend(strings(&p["ip_candidates"]));
        out.push(Plant { dataset: g.spec.dataset.to_owned(), kind: kind.clone(), principals, ips, events });
    }
    out
}

/// Whether `f` reports `plant`: the kind's rule, naming one of its principals and IPs (where
/// the plant has them; a deny burst is about its IP), on at least one of `events`.
pub fn names(f: &Finding, plant: &Plant, events: &BTreeSet<String>) -> bool {
    let principal_ok = plant.kind == "deny_burst"
        || plant.principals.is_empty()
        || plant.principals.contains(&f.principal.to_ascii_lowercase());
    let ip_ok = plant.ips.is_empty() || plant.ips.contains(&f.client_ip.to_ascii_lowercase());
    f.rule_id == rule_for(&plant.kind) && principal_ok && ip_ok && f.event_ids.iter().any(|e| events.contains(e))
}

/// Whether the privileged-change detector's documented preconditions hold for a plant in
/// this stream: the actor made `min_history` allowed requests before the plant, the first
/// of them at least `new_ip_grace` before it, and `min_settled_events` of them on earlier
/// UTC days (else the actor's hours are unknown).
fn privileged_judgeable(plant: &Plant, stream: &[&AccessDecision]) -> bool {
    let cfg = DetectConfig::default().privileged_change;
    let start = stream.iter().filter(|d| plant.events.contains(&d.event_id)).map(|d| d.time).min();
    let Some(start) = start else { return false };
    let prior: Vec<&&AccessDecision> = stream
        .iter()
        .filter(|d| d.time < start && learns_from(d) && plant.principals.contains(&d.principal.to_ascii_lowercase()))
        .collect();
    let first = prior.iter().map(|d| d.time).min();
    let day = |t: i64| t.div_euclid(86_400_000);
    let settled = prior.iter().filter(|d| day(d.time.0) < day(start.0)).count() as u64;
    settled >= u64::from(cfg.min_settled_events)
        && prior.len() as u64 >= u64::from(cfg.min_history)
        && first.is_some_and(|f| start.0 - f.0 >= i64::try_from(cfg.new_ip_grace.as_millis()).unwrap_or(i64::MAX))
}

/// Recall and false findings, summed over runs.
#[derive(Debug, Default)]
pub struct Tally {
    /// kind → (planted, found, not judgeable: the detector's preconditions did not hold).
    pub recall: BTreeMap<String, (u64, u64, u64)>,
    /// Why plants were not judgeable.
    pub unjudgeable: Vec<String>,
    /// rule → (findings, findings on no planted event).
    pub findings: BTreeMap<String, (u64, u64)>,
    /// What was missed, for the failure message.
    pub missed: Vec<String>,
    /// False findings of the rules that find planted kinds, for the failure message.
    pub false_on_planted_rules: Vec<String>,
}

impl Tally {
    /// Scores one run: `plants` of the datasets streamed, the decisions streamed, and what
    /// the engine found.
    pub fn score(&mut self, run: &str, plants: &[Plant], stream: &[&AccessDecision], findings: &[Finding]) {
        let all_planted: BTreeSet<&String> = plants.iter().flat_map(|p| &p.events).collect();
        for plant in plants {
            // A plant's evidence may surface in any dataset of the run (the same intrusion is
            // in access_requests, the Worker logs and the audit log): match on the kind's events.
            let kind_events: BTreeSet<String> =
                plants.iter().filter(|p| p.kind == plant.kind).flat_map(|p| p.events.iter().cloned()).collect();
            let e = self.recall.entry(plant.kind.clone()).or_default();
            if plant.kind == "runaway_select" {
                // Every runaway query is its own finding.
                for ev in &plant.events {
                    e.0 += 1;
                    let one = BTreeSet::from([ev.clone()]);
                    if findings.iter().any(|f| names(f, plant, &one)) {
                        e.1 += 1;
                    } else {
                        self.missed.push(format!("{run}: {} runaway_select event {ev}", plant.dataset));
                    }
                }
                continue;
            }
            e.0 += 1;
            if findings.iter().any(|f| names(f, plant, &kind_events)) {
                e.1 += 1;
            } else if plant.kind == "offhours_privileged_change" && !privileged_judgeable(plant, stream) {
                e.2 += 1;
                self.unjudgeable.push(format!(
                    "{run}: {} {}: the actor has too little history before the intrusion in this stream",
                    plant.dataset, plant.kind
                ));
            } else {
                self.missed
                    .push(format!("{run}: {} {} ({:?} {:?})", plant.dataset, plant.kind, plant.principals, plant.ips));
            }
        }
        let planted_rules: BTreeSet<&str> =
            ["runaway_select", "new_country_offhours", "deny_burst", "offhours_privileged_change", "dlp_exfil"]
                .into_iter()
                .map(rule_for)
                .collect();
        for f in findings {
            let t = self.findings.entry(f.rule_id.clone()).or_default();
            t.0 += 1;
            if !f.event_ids.iter().any(|e| all_planted.contains(e)) {
                t.1 += 1;
                if planted_rules.contains(f.rule_id.as_str()) {
                    self.false_on_planted_rules.push(format!("{run}: {} {}", f.rule_id, f.summary));
                }
            }
        }
    }

    /// The table printed at the end of the test.
    pub fn render(&self, title: &str) -> String {
        let mut s = format!(
            "\n## {title}\n\n| planted kind | planted | found | not judgeable | recall of the judgeable |\n| --- | --- | --- | --- | --- |\n"
        );
        for (kind, (n, found, unjudged)) in &self.recall {
            let judged = n - unjudged;
            let pct = if judged == 0 { 100.0 } else { 100.0 * *found as f64 / judged as f64 };
            s.push_str(&format!("| {kind} | {n} | {found} | {unjudged} | {pct:.0}% |\n"));
        }
        for line in &self.unjudgeable {
            s.push_str(&format!("\nnot judgeable: {line}"));
        }
        s.push_str("\n| rule | findings | on no planted event |\n| --- | --- | --- |\n");
        for rule in gatelog_detect::rules::RULE_IDS {
            let (n, false_) = self.findings.get(*rule).copied().unwrap_or_default();
            s.push_str(&format!("| {rule} | {n} | {false_} |\n"));
        }
        s
    }
}
