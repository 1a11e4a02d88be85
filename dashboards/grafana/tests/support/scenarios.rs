//! What the dashboards are run with: a scenario per dashboard and set of variable values,
//! chosen from the generated world by property (the busiest principal, the one whose name has
//! a quote and a backslash, the other tenant, the commonest role), never by name; and the
//! model's events a scenario's panels must count.

use super::world::{RANGE, World};
use gatelog_grafana::VarValue;
use gatelog_model::AccessDecision;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct Scenario {
    pub uid: &'static str,
    pub name: String,
    pub tenant: Option<String>,
    pub principal: Option<String>,
    pub outcome: Option<String>,
    pub dataset: Option<String>,
    pub search: Option<String>,
    pub role: Option<String>,
    pub slow_ms: Option<u64>,
    /// The alerts dashboard's filters.
    pub state: Option<String>,
    pub severity: Option<String>,
}

impl Scenario {
    /// The variable values this scenario sets (the rest keep the dashboard's defaults).
    pub fn values(&self) -> Vec<(&'static str, VarValue)> {
        let text = |v: &Option<String>| v.clone().map_or(VarValue::All, VarValue::Text);
        let mut out = vec![("tenant", text(&self.tenant))];
        if let Some(p) = &self.principal {
            out.push(("principal", VarValue::Text(p.clone())));
        }
        if let Some(o) = &self.outcome {
            out.push(("outcome", VarValue::Text(o.clone())));
        }
        if self.uid == "gatelog-denies" {
            out.push(("dataset", text(&self.dataset)));
            out.push(("search", VarValue::Text(self.search.clone().unwrap_or_default())));
        }
        if self.uid == "gatelog-alerts" {
            out.push(("state", text(&self.state)));
            out.push(("severity", text(&self.severity)));
        }
        if self.uid == "gatelog-proxy" {
            out.push(("role", text(&self.role)));
            out.push(("slow_ms", VarValue::Text(self.slow_ms.map(|n| n.to_string()).unwrap_or_default())));
        }
        out
    }

    /// Whether the dashboard's own filters (before the panel's) keep `d`.
    pub fn keeps(&self, d: &AccessDecision) -> bool {
        let tenant = self.tenant.as_ref().is_none_or(|t| *t == d.tenant);
        let own = match self.uid {
            "gatelog-principal" => self.principal.as_ref().is_some_and(|p| *p == d.principal),
            "gatelog-denies" => {
                let haystack = format!("{} {} {} {} {}", d.principal, d.resource, d.client_ip, d.policy, d.reason);
                self.outcome.as_ref().is_some_and(|o| o == d.decision.as_str())
                    && self.dataset.as_ref().is_none_or(|ds| *ds == d.dataset)
                    && self
                        .search
                        .as_ref()
                        .is_none_or(|s| haystack.to_ascii_lowercase().contains(&s.to_ascii_lowercase()))
            }
            "gatelog-proxy" => {
                d.source.as_str() == "proxy"
                    && d.resource.starts_with("clickhouse:")
                    && self.role.as_ref().is_none_or(|r| d.roles.contains(r))
            }
            _ => true,
        };
        tenant && own
    }
}

/// Whether an instant is in the dashboards' range (`$__timeFilter`: both ends included).
pub fn in_range(ms: i64) -> bool {
    (RANGE.from_ms..=RANGE.to_ms).contains(&ms)
}

/// The scenarios the test runs, chosen from `world`.
pub fn scenarios(world: &World) -> Vec<Scenario> {
    let in_range: Vec<&AccessDecision> = world.events.iter().filter(|e| in_range(e.time.0)).collect();
    let busiest = |pick: &dyn Fn(&AccessDecision) -> Option<String>| -> String {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for e in &in_range {
            if let Some(k) = pick(e) {
                *counts.entry(k).or_default() += 1;
            }
        }
        let top = counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
        top.map(|(k, _)| k).expect("the world has events to choose from")
    };
    let principal = busiest(&|e| (!e.principal.is_empty()).then(|| e.principal.clone()));
    let awkward = busiest(&|e| (e.principal.contains('\'') && e.principal.contains('\\')).then(|| e.principal.clone()));
    let other_tenant = busiest(&|e| (e.tenant != "default").then(|| e.tenant.clone()));
    let role = busiest(&|e| (e.source.as_str() == "proxy").then(|| e.roles.first().cloned()).flatten());
    let denied_dataset = busiest(&|e| (e.decision.as_str() == "challenge").then(|| e.dataset.clone()));
    let s = |uid, name: &str| Scenario { uid, name: name.to_owned(), ..Scenario::default() };
    let deny = Some("deny".to_owned());
    vec![
        s("gatelog-overview", "every tenant"),
        Scenario { tenant: Some(other_tenant), ..s("gatelog-overview", "one tenant") },
        Scenario { principal: Some(principal), ..s("gatelog-principal", "the busiest principal") },
        Scenario { principal: Some(awkward.clone()), ..s("gatelog-principal", "a name with ' and \\") },
        Scenario { outcome: deny.clone(), ..s("gatelog-denies", "every deny") },
        Scenario {
            outcome: deny,
            search: Some(awkward.to_ascii_uppercase()),
            ..s("gatelog-denies", "searched, in other case")
        },
        Scenario {
            outcome: Some("challenge".into()),
            dataset: Some(denied_dataset),
            ..s("gatelog-denies", "challenges of one dataset")
        },
        s("gatelog-alerts", "every alert"),
        Scenario {
            tenant: Some("default".into()),
            state: Some("open".into()),
            ..s("gatelog-alerts", "open ones of a tenant")
        },
        Scenario { severity: Some("critical".into()), ..s("gatelog-alerts", "critical ones") },
        Scenario { slow_ms: Some(1000), ..s("gatelog-proxy", "every role") },
        Scenario { role: Some(role), slow_ms: Some(250), ..s("gatelog-proxy", "one role") },
    ]
}
